//! Throughput of our writer next to GNU `cpio -o -H newc` and `gzip`, on the
//! same file in the same run (`cargo xtask initramfs-bench`).

use crate::{write_archive, Compression, Entry, Options, DEFAULT_COMPRESSION};
use anyhow::{bail, ensure, Context, Result};
use std::fmt;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Each measurement is repeated this many times and the fastest run kept:
/// the minimum is the least disturbed by other load on the machine.
const REPEATS: u32 = 3;
const PAYLOAD: &str = "payload.bin";

/// Describes [`write_payload`]'s data, printed with the report.
pub const PAYLOAD_DESCRIPTION: &str = "deterministic executable-like data: 4 KiB pages of \
     recurring instruction sequences with random immediates (75%), random bytes (15%) and \
     zeros (10%); compresses like a real node binary (gzip -6: 37% vs 36%)";

#[derive(Clone, Debug)]
pub struct BenchRow {
    pub name: String,
    /// Fastest of [`BenchReport::repeats`] runs.
    pub seconds: f64,
    pub output_bytes: u64,
}

#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Size of the archived file.
    pub file_bytes: u64,
    pub repeats: u32,
    pub rows: Vec<BenchRow>,
}

impl BenchRow {
    /// Input megabytes (10^6 bytes) of file per second.
    pub fn mb_per_s(&self, file_bytes: u64) -> f64 {
        file_bytes as f64 / 1e6 / self.seconds
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "initramfs writer benchmark: one {} MiB file ({:.1} MB), fastest of {} runs",
            self.file_bytes >> 20,
            self.file_bytes as f64 / 1e6,
            self.repeats
        )?;
        writeln!(f, "data: {PAYLOAD_DESCRIPTION}")?;
        writeln!(
            f,
            "{:<40} {:>9} {:>10} {:>14} {:>7}",
            "writer", "seconds", "MB/s", "output bytes", "ratio"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<40} {:>9.3} {:>10.1} {:>14} {:>6.1}%",
                r.name,
                r.seconds,
                r.mb_per_s(self.file_bytes),
                r.output_bytes,
                100.0 * r.output_bytes as f64 / self.file_bytes as f64
            )?;
        }
        Ok(())
    }
}

/// Creates a `file_size_mb` MiB file under `workdir`, archives it with our
/// writer (uncompressed, gzip, and the default compression if that is
/// neither) and with GNU `cpio -o -H newc` (alone and piped into `gzip` at
/// the same level we use), and reports throughput. Needs `cpio` and `gzip`
/// on PATH.
pub fn bench(file_size_mb: u64, workdir: &Path) -> Result<BenchReport> {
    ensure!(
        file_size_mb > 0,
        "the benchmark file size must be at least 1 MB"
    );
    let cpio = require_tool("cpio", "cpio")?;
    let gzip = require_tool("gzip", "gzip")?;
    let version = Command::new(&cpio)
        .arg("--version")
        .output()
        .context("running cpio --version")?;
    if !String::from_utf8_lossy(&version.stdout).contains("GNU cpio") {
        bail!(
            "{} is not GNU cpio; install GNU cpio (Debian/Ubuntu: `apt-get install cpio`)",
            cpio.display()
        );
    }

    let tree = workdir.join("tree");
    fs::create_dir_all(&tree).with_context(|| format!("creating {}", tree.display()))?;
    let payload = tree.join(PAYLOAD);
    let file_bytes = file_size_mb << 20;
    write_payload(&payload, file_bytes)?;
    let entries = [Entry::file(PAYLOAD, 0o644, &payload)];

    let mut rows = Vec::new();
    let mut ours = vec![Compression::None, Compression::Gzip];
    if !ours.contains(&DEFAULT_COMPRESSION) {
        ours.push(DEFAULT_COMPRESSION);
    }
    for c in ours {
        let out = workdir.join(format!("ours.cpio{}", c.file_extension()));
        let opts = Options {
            mtime: 0,
            compression: c,
        };
        let level = match c {
            Compression::Gzip => format!(" -{}", crate::compress::GZIP_LEVEL),
            Compression::Zstd => format!(" -{}", crate::compress::ZSTD_LEVEL),
            Compression::Xz => format!(" -{}", crate::compress::XZ_PRESET),
            _ => String::new(),
        };
        rows.push(measure(
            &format!("nodeos initramfs ({c}{level})"),
            &out,
            || {
                let file =
                    File::create(&out).with_context(|| format!("creating {}", out.display()))?;
                write_archive(&entries, &opts, file)?;
                Ok(())
            },
        )?);
    }

    let gnu_out = workdir.join("gnu.cpio");
    rows.push(measure("GNU cpio -o -H newc", &gnu_out, || {
        run_cpio(&cpio, &tree, File::create(&gnu_out)?, None)
    })?);
    let level = format!("-{}", crate::compress::GZIP_LEVEL);
    let gz_out = workdir.join("gnu.cpio.gz");
    rows.push(measure(
        &format!("GNU cpio -o -H newc | gzip {level}"),
        &gz_out,
        || run_cpio(&cpio, &tree, File::create(&gz_out)?, Some((&gzip, &level))),
    )?);

    // Both are the same newc layout for the same one-entry tree, so they
    // must be the same size; a difference would mean a format bug.
    let ours_len = fs::metadata(workdir.join("ours.cpio"))?.len();
    let gnu_len = fs::metadata(&gnu_out)?.len();
    ensure!(
        ours_len == gnu_len,
        "our uncompressed archive is {ours_len} bytes but GNU cpio's is {gnu_len} for the same file; this is a bug in the initramfs crate"
    );
    Ok(BenchReport {
        file_bytes,
        repeats: REPEATS,
        rows,
    })
}

fn measure(name: &str, out: &Path, mut run: impl FnMut() -> Result<()>) -> Result<BenchRow> {
    let mut best = f64::INFINITY;
    for _ in 0..REPEATS {
        let start = Instant::now();
        run().with_context(|| format!("benchmark step {name:?}"))?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    let output_bytes = fs::metadata(out)
        .with_context(|| format!("reading size of {}", out.display()))?
        .len();
    Ok(BenchRow {
        name: name.to_string(),
        seconds: best,
        output_bytes,
    })
}

/// `cpio -o -H newc` on the payload (file list on stdin), optionally piped
/// through `gzip -<level>`, into `out`.
fn run_cpio(cpio: &Path, tree: &Path, out: File, gzip: Option<(&Path, &str)>) -> Result<()> {
    let mut cmd = Command::new(cpio);
    cmd.args(["-o", "-H", "newc", "--quiet"])
        .current_dir(tree)
        .stdin(Stdio::piped());
    let mut gz_child = None;
    let mut cpio_child = match gzip {
        None => cmd.stdout(out).spawn()?,
        Some((gzip, level)) => {
            let mut c = cmd.stdout(Stdio::piped()).spawn()?;
            let pipe = c.stdout.take().expect("piped");
            gz_child = Some(
                Command::new(gzip)
                    .args([level, "-n", "-c"])
                    .stdin(pipe)
                    .stdout(out)
                    .spawn()?,
            );
            c
        }
    };
    cpio_child
        .stdin
        .take()
        .expect("piped")
        .write_all(format!("{PAYLOAD}\n").as_bytes())?;
    let status = cpio_child.wait()?;
    ensure!(status.success(), "cpio failed: {status}");
    if let Some(mut g) = gz_child {
        let status = g.wait()?;
        ensure!(status.success(), "gzip failed: {status}");
    }
    Ok(())
}

fn require_tool(tool: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .with_context(|| format!("`{tool}` is not on PATH; the benchmark compares against it: install it (Debian/Ubuntu: `apt-get install {package}`)"))
}

/// Writes `len` bytes of deterministic data that compresses roughly like an
/// executable (see [`PAYLOAD_DESCRIPTION`]): all-random data would make
/// every compressor look slow and useless, all-zero data would make them
/// look absurdly fast. The mix was tuned against the 99 MB host `node`
/// binary (gzip -6 36%, zstd -19 27%, lz4 -1 52%); this data gives 37%,
/// 27% and 44%.
pub fn write_payload(path: &Path, len: u64) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    // Code is repetitive at two levels: a small vocabulary of instruction
    // encodings, and recurring instruction sequences ("phrases"), with
    // nearby code reusing nearby phrases.
    let vocab: Vec<Vec<u8>> = (0..256)
        .map(|_| {
            let n = 1 + (rng.next() % 7) as usize;
            (0..n).map(|_| rng.next() as u8).collect()
        })
        .collect();
    const PHRASES: u64 = 16384;
    let phrases: Vec<Vec<u8>> = (0..PHRASES)
        .map(|_| {
            let n = 2 + rng.next() % 9;
            (0..n)
                .flat_map(|_| vocab[(rng.next() % 256) as usize].iter().copied())
                .collect()
        })
        .collect();
    let mut page = Vec::with_capacity(4096 + 128);
    let mut written = 0u64;
    while written < len {
        page.clear();
        match rng.next() % 100 {
            // Compressed or encrypted data, hashes: incompressible.
            0..=14 => {
                while page.len() < 4096 {
                    page.extend_from_slice(&rng.next().to_le_bytes());
                }
            }
            // Alignment padding, .bss-like zeros.
            15..=24 => page.resize(4096, 0),
            _ => {
                let base = rng.next() % PHRASES;
                while page.len() < 4096 {
                    page.extend_from_slice(&phrases[((base + rng.next() % 64) % PHRASES) as usize]);
                    // An immediate or displacement.
                    if rng.next() % 10 < 4 {
                        page.extend_from_slice(&((rng.next() as u32) & 0xF_FFFF).to_le_bytes());
                    }
                }
            }
        }
        let n = 4096.min(len - written) as usize;
        out.write_all(&page[..n])?;
        written += n as u64;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// xorshift64*: tiny, fast and deterministic across platforms.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
