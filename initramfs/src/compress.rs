//! Compression of the whole archive, each format in the flavour the kernel's
//! initramfs unpacker (`init/initramfs.c` → `lib/decompress_*.c`, Linux
//! 6.1) accepts.

use anyhow::{anyhow, bail, Context, Result};
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::str::FromStr;
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};

/// How the archive is compressed. The kernel detects the format from the
/// magic bytes, but only unpacks formats its config enables
/// ([`Compression::kernel_config_symbol`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
    Lz4,
}

/// The default: LZ4, because it boots fastest, which matters most when
/// NodeOS runs under QEMU without KVM (TCG), as in CI.
///
/// Measured on a 99.7 MB archive (the 99 MB host `node` binary plus a tiny
/// static init), booted with a Debian Linux 6.1 kernel under QEMU TCG.
/// "Kernel unpack" is the kernel's own decompress + unpack, counted in
/// instructions with `-icount shift=0` (deterministic), and in wall-clock
/// seconds (best of 4, on a loaded 2-core host):
///
/// | format (as we write it) | size    | kernel unpack        | compress (ours) |
/// |-------------------------|---------|----------------------|-----------------|
/// | none                    | 99.7 MB | 0.16 G insns, 0.35 s | 0.3 s           |
/// | lz4 (legacy, fast)      | 52.5 MB | 0.42 G insns, 0.71 s | 0.8 s           |
/// | zstd -19, 8 MiB window  | 27.0 MB | 1.52 G insns, 2.83 s | 60-140 s        |
/// | gzip -6                 | 37.3 MB | 1.69 G insns, 3.10 s | 2.7-3.9 s       |
/// | xz -6, CRC32            | 24.4 MB | 9.07 G insns, 25 s   | 70-170 s        |
///
/// LZ4 unpacks 3.6x faster than zstd and 4x faster than gzip (about 2 s
/// saved per TCG boot) and compresses in under a second; the price is an
/// image twice the size of zstd's. xz is the smallest but costs ~25 s per
/// TCG boot. Pick [`Compression::Zstd`] when image size matters more than
/// boot time (e.g. images that are downloaded).
pub const DEFAULT_COMPRESSION: Compression = Compression::Lz4;

/// gzip level 6: on a 99 MB node binary -9 is only 0.7% smaller but three
/// times slower to compress; decompression speed is the same.
pub const GZIP_LEVEL: u32 = 6;
/// xz preset 6 (8 MiB dictionary; the kernel's unxz allocates the
/// dictionary dynamically when unpacking an initramfs, so any size works).
pub const XZ_PRESET: u32 = 6;
/// zstd level 19, as the kernel's own build uses for zstd initramfs: the
/// smallest output whose window (8 MiB) the kernel accepts. Lower levels
/// decompress as fast or slightly faster (15: 30.2 MB; 9: 30.9 MB) and
/// compress far faster; 19 is for when size is the point of choosing zstd.
pub const ZSTD_LEVEL: i32 = 19;
/// `lib/decompress_unzstd.c` rejects frames whose window is larger than
/// `ZSTD_WINDOWSIZE_MAX` and its comments promise only 8 MiB; 2^23 keeps
/// the kernel's allocation small and is what level 19 picks anyway.
pub const ZSTD_WINDOW_LOG: u32 = 23;
/// `lib/decompress_unlz4.c`: the legacy format's fixed block size.
pub const LZ4_LEGACY_BLOCK: usize = 8 << 20;
/// `lib/decompress_unlz4.c`: `ARCHIVE_MAGICNUMBER`.
pub const LZ4_LEGACY_MAGIC: u32 = 0x184C_2102;

impl Compression {
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
        Compression::Lz4,
    ];

    /// The kernel option that lets the kernel unpack an initramfs compressed
    /// this way (`None` needs none).
    pub fn kernel_config_symbol(&self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("CONFIG_RD_GZIP"),
            Compression::Xz => Some("CONFIG_RD_XZ"),
            Compression::Zstd => Some("CONFIG_RD_ZSTD"),
            Compression::Lz4 => Some("CONFIG_RD_LZ4"),
        }
    }

    /// What follows `.cpio` in a conventional file name: `""`, `".gz"`,
    /// `".xz"`, `".zst"` or `".lz4"` (so `initramfs.cpio.lz4`).
    pub fn file_extension(&self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Lz4 => ".lz4",
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Compression> {
        match Compression::ALL.iter().find(|c| c.name() == s) {
            Some(c) => Ok(*c),
            None => {
                bail!("unknown initramfs compression {s:?}; use one of none, gzip, xz, zstd, lz4")
            }
        }
    }
}

/// A host program that writes one of the formats (xz and zstd), as the
/// kernel's own `usr/gen_initramfs.sh` uses the host's compressors.
/// Bundling their C libraries would cost the first build of this
/// workspace more CPU time than everything else in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostCompressor {
    compression: Compression,
    /// The executable looked up on PATH.
    pub program: &'static str,
    /// The Debian package that provides it.
    pub package: &'static str,
}

impl HostCompressor {
    /// The arguments that compress stdin to stdout with our settings.
    /// Every setting the output depends on is explicit: defaults differ
    /// between versions (xz 5.6 compresses multithreaded by default, which
    /// changes the bytes).
    fn args(&self) -> Vec<String> {
        match self.compression {
            Compression::Xz => vec![
                "--format=xz".into(),
                format!("-{XZ_PRESET}"),
                // The kernel's xz decoder supports only the CRC32 check (and
                // none); xz's default CRC64 would be rejected at boot.
                "--check=crc32".into(),
                "--threads=1".into(),
                "--stdout".into(),
            ],
            Compression::Zstd => vec![
                format!("-{ZSTD_LEVEL}"),
                format!("--zstd=wlog={ZSTD_WINDOW_LOG}"),
                // The checksum lets the kernel detect a corrupt image.
                "--check".into(),
                // One thread for I/O and compression: the frame does not
                // depend on the worker layout, and on a zstd built without
                // threads it is the same.
                "--single-thread".into(),
                "--no-progress".into(),
                "--quiet".into(),
                "--stdout".into(),
            ],
            Compression::None | Compression::Gzip | Compression::Lz4 => {
                unreachable!("{} is written in-process", self.compression)
            }
        }
    }

    /// Environment variables these programs read settings from; the child
    /// gets none of them, so the user's environment cannot change the
    /// archive.
    const SETTINGS_ENV: [&'static str; 4] =
        ["XZ_DEFAULTS", "XZ_OPT", "ZSTD_CLEVEL", "ZSTD_NBTHREADS"];

    /// The program's path on `search_path` (a PATH value); not found is
    /// one line that names the package to install.
    fn locate_in(&self, search_path: Option<&OsStr>) -> Result<PathBuf> {
        let found = search_path.and_then(|paths| {
            std::env::split_paths(paths)
                .map(|d| d.join(self.program))
                .find(|p| is_executable(p))
        });
        match found {
            Some(p) => Ok(p),
            None => Err(anyhow!(
                "initramfs compression {} needs the host program `{}`, which is not on PATH; install it with `apt-get install {}` or choose another --compression",
                self.compression,
                self.program,
                self.package
            )),
        }
    }

    /// The program's path on this process's PATH.
    pub fn locate(&self) -> Result<PathBuf> {
        self.locate_in(std::env::var_os("PATH").as_deref())
    }

    /// The first line of `<program> --version`: a cache key that names the
    /// archive's bytes must name it, since another version may compress
    /// differently.
    pub fn version(&self) -> Result<String> {
        let program = self.locate()?;
        let out = Command::new(&program)
            .arg("--version")
            .env_clear_settings()
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {} --version", program.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().map(str::trim).find(|l| !l.is_empty()) {
            Some(line) if out.status.success() => Ok(line.to_string()),
            _ => bail!(
                "`{} --version` failed ({}{}); reinstall it with `apt-get install --reinstall {}`",
                program.display(),
                out.status,
                stderr_tail(&out.stderr)
                    .map(|t| format!(": {t}"))
                    .unwrap_or_default(),
                self.package
            ),
        }
    }

    /// Starts the program compressing into `out`.
    fn spawn<W: Write>(&self, out: W) -> Result<ChildEncoder<W>> {
        let program = self.locate()?;
        let mut cmd = Command::new(&program);
        cmd.args(self.args()).env_clear_settings();
        ChildEncoder::spawn(cmd, self.program, out)
    }
}

trait ClearSettings {
    fn env_clear_settings(&mut self) -> &mut Self;
}

impl ClearSettings for Command {
    fn env_clear_settings(&mut self) -> &mut Self {
        for var in HostCompressor::SETTINGS_ENV {
            self.env_remove(var);
        }
        self
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The last lines of a child's stderr as one line, or `None` when it
/// wrote nothing.
fn stderr_tail(stderr: &[u8]) -> Option<String> {
    const LINES: usize = 3;
    const CHARS: usize = 400;
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return None;
    }
    let tail = lines[lines.len().saturating_sub(LINES)..].join(" / ");
    let skip = tail.chars().count().saturating_sub(CHARS);
    Some(tail.chars().skip(skip).collect())
}

impl Compression {
    /// The host program that writes this format, for the formats not
    /// written in-process (xz, zstd).
    pub fn host_compressor(&self) -> Option<HostCompressor> {
        let (program, package) = match self {
            Compression::None | Compression::Gzip | Compression::Lz4 => return None,
            Compression::Xz => ("xz", "xz-utils"),
            Compression::Zstd => ("zstd", "zstd"),
        };
        Some(HostCompressor {
            compression: *self,
            program,
            package,
        })
    }

    /// Fails with one line when this format's host program is missing;
    /// meant to run before any work.
    pub fn check_host_program(&self) -> Result<()> {
        match self.host_compressor() {
            Some(h) => h.locate().map(drop),
            None => Ok(()),
        }
    }
}

/// A compressing writer; [`Encoder::finish`] writes the end of the stream
/// and returns the inner writer.
pub(crate) enum Encoder<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    /// xz and zstd, by a host program.
    Child(ChildEncoder<W>),
    Lz4(Lz4LegacyEncoder<W>),
}

impl<W: Write> Encoder<W> {
    pub(crate) fn new(compression: Compression, out: W) -> Result<Encoder<W>> {
        Ok(match compression {
            Compression::None => Encoder::None(out),
            // GzBuilder's defaults are reproducible: mtime 0, no file name,
            // OS byte 255 ("unknown") whatever the host.
            Compression::Gzip => Encoder::Gzip(
                flate2::GzBuilder::new().write(out, flate2::Compression::new(GZIP_LEVEL)),
            ),
            Compression::Xz | Compression::Zstd => Encoder::Child(
                compression
                    .host_compressor()
                    .expect("xz and zstd are host programs")
                    .spawn(out)?,
            ),
            Compression::Lz4 => Encoder::Lz4(Lz4LegacyEncoder::new(out)?),
        })
    }

    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Child(e) => e.finish(),
            Encoder::Lz4(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Child(e) => e.write(buf),
            Encoder::Lz4(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Child(e) => e.flush(),
            Encoder::Lz4(e) => e.flush(),
        }
    }
}

/// A child process as a compressing writer: what is written goes to its
/// stdin, and its stdout is copied to the output.
///
/// A thread reads the child's stdout into a channel, so the child never
/// blocks on a full stdout pipe while we block on its full stdin pipe; the
/// chunks are written to the output by the caller's thread (at each write
/// and at the end), so the output need not be `Send`. A second thread
/// collects stderr for the error message.
pub(crate) struct ChildEncoder<W: Write> {
    /// For messages: `xz`, `zstd`.
    name: &'static str,
    out: Option<W>,
    /// `None` once finished; a child still here when dropped is killed.
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    output: Receiver<io::Result<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

/// Size of the chunks read from the child's stdout.
const CHILD_READ_CHUNK: usize = 256 * 1024;

impl<W: Write> ChildEncoder<W> {
    fn spawn(mut cmd: Command, name: &'static str, out: W) -> Result<ChildEncoder<W>> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let (tx, output) = mpsc::channel();
        thread::spawn(move || loop {
            let mut chunk = vec![0; CHILD_READ_CHUNK];
            match stdout.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    chunk.truncate(n);
                    if tx.send(Ok(chunk)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stderr.read_to_end(&mut all);
            all
        });
        Ok(ChildEncoder {
            name,
            out: Some(out),
            child: Some(child),
            stdin: Some(stdin),
            output,
            stderr: Some(stderr),
        })
    }

    /// Writes what the child has produced so far to the output.
    fn drain_ready(&mut self) -> io::Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Err(self.stopped());
        };
        while let Ok(chunk) = self.output.try_recv() {
            out.write_all(&chunk?)?;
        }
        Ok(())
    }

    /// Closes stdin, copies the rest of stdout, and waits for the child:
    /// a non-zero exit is an error with the end of its stderr.
    fn end(&mut self) -> io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Err(self.stopped());
        };
        drop(self.stdin.take());
        let out = self.out.as_mut().expect("not finished");
        // Ends when the reader thread does: at EOF, or after an error.
        let copied = self
            .output
            .iter()
            .try_for_each(|chunk| out.write_all(&chunk?));
        if copied.is_err() {
            let _ = child.kill();
        }
        let status = child.wait()?;
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        copied?;
        if !status.success() {
            let why = stderr_tail(&stderr)
                .map(|t| format!(": {t}"))
                .unwrap_or_else(|| " and wrote nothing to stderr".into());
            return Err(io::Error::other(format!(
                "{} failed ({status}){why}",
                self.name
            )));
        }
        Ok(())
    }

    /// The error for a use after the child has ended.
    fn stopped(&self) -> io::Error {
        io::Error::other(format!("{} has already ended", self.name))
    }

    fn finish(mut self) -> io::Result<W> {
        self.end()?;
        Ok(self.out.take().expect("not finished"))
    }
}

impl<W: Write> Write for ChildEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.drain_ready()?;
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.stopped());
        };
        match stdin.write(buf) {
            Ok(n) => Ok(n),
            // The child stopped reading: its exit status and stderr say why.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.end()?;
                Err(io::Error::other(format!(
                    "{} exited before reading all of its input",
                    self.name
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// Copies what the child has produced so far; the child itself cannot
    /// be made to flush its compressor through a pipe.
    fn flush(&mut self) -> io::Result<()> {
        self.drain_ready()?;
        self.out.as_mut().expect("not finished").flush()
    }
}

impl<W: Write> Drop for ChildEncoder<W> {
    /// An encoder dropped unfinished (the archive failed mid-stream) stops
    /// its child rather than leaving it running.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The LZ4 "legacy" frame format, the only LZ4 framing the kernel unpacks
/// (`lib/decompress_unlz4.c`; `lz4 -l` writes it): the little-endian magic
/// 0x184C2102, then for each 8 MiB of input (the last one shorter) a
/// little-endian u32 compressed size followed by an independent LZ4 block.
/// There is no end marker and no checksum.
pub(crate) struct Lz4LegacyEncoder<W: Write> {
    out: W,
    /// Input not yet compressed; compressed when it reaches a full block.
    block: Vec<u8>,
    compressed: Vec<u8>,
}

impl<W: Write> Lz4LegacyEncoder<W> {
    fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&LZ4_LEGACY_MAGIC.to_le_bytes())?;
        Ok(Lz4LegacyEncoder {
            out,
            block: Vec::with_capacity(LZ4_LEGACY_BLOCK),
            compressed: vec![0; lz4_flex::block::get_maximum_output_size(LZ4_LEGACY_BLOCK)],
        })
    }

    fn emit_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let n = lz4_flex::block::compress_into(&self.block, &mut self.compressed)
            .map_err(io::Error::other)?;
        // The kernel decodes a block into an 8 MiB buffer; a block never
        // exceeds that since its input never does.
        self.out.write_all(&(n as u32).to_le_bytes())?;
        self.out.write_all(&self.compressed[..n])?;
        self.block.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.emit_block()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Lz4LegacyEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(LZ4_LEGACY_BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == LZ4_LEGACY_BLOCK {
            self.emit_block()?;
        }
        Ok(n)
    }

    /// Only flushes the inner writer: emitting a short block here would
    /// make the output depend on how callers flush.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Compression::ALL {
            assert_eq!(c.to_string().parse::<Compression>().unwrap(), c);
        }
        let err = "bzip2".parse::<Compression>().unwrap_err().to_string();
        assert!(err.contains("none, gzip, xz, zstd, lz4"), "{err}");
    }

    fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        let mut e = Encoder::new(c, Vec::new()).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn xz_uses_crc32_check() {
        let out = compress(Compression::Xz, b"hello");
        // Stream header: magic, then stream flags 0x00 <check id>; CRC32 = 1.
        assert_eq!(&out[..6], b"\xfd7zXZ\0");
        assert_eq!(&out[6..8], &[0, 1]);
    }

    #[test]
    fn zstd_window_fits_the_kernel() {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let out = compress(Compression::Zstd, &data);
        assert_eq!(&out[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        let fhd = out[4];
        assert_eq!(
            fhd & 0x20,
            0,
            "single-segment frame has no window descriptor"
        );
        assert_ne!(fhd & 0x04, 0, "content checksum flag");
        let wd = out[5];
        let window_log = 10 + u32::from(wd >> 3);
        let base = 1u64 << window_log;
        let window = base + base / 8 * u64::from(wd & 7);
        assert!(window <= 8 << 20, "window {window}");
    }

    /// The xz and zstd programs, with the test's need for them said loudly
    /// when one is missing.
    fn host(c: Compression) -> HostCompressor {
        let h = c.host_compressor().expect("a host compressor");
        if let Err(e) = h.locate() {
            panic!("this test needs the real program: {e:#}");
        }
        h
    }

    #[test]
    fn only_xz_and_zstd_use_a_host_program() {
        for c in Compression::ALL {
            let program = c.host_compressor().map(|h| (h.program, h.package));
            let want = match c {
                Compression::Xz => Some(("xz", "xz-utils")),
                Compression::Zstd => Some(("zstd", "zstd")),
                _ => None,
            };
            assert_eq!(program, want, "{c}");
        }
    }

    #[test]
    fn a_missing_program_is_one_line_naming_the_package() {
        let empty = tempfile::tempdir().unwrap();
        for (c, package) in [(Compression::Xz, "xz-utils"), (Compression::Zstd, "zstd")] {
            let h = c.host_compressor().unwrap();
            let err = h
                .locate_in(Some(empty.path().as_os_str()))
                .unwrap_err()
                .to_string();
            assert!(!err.contains('\n'), "{err}");
            assert!(err.contains(&format!("apt-get install {package}")), "{err}");
            assert!(err.contains(&format!("`{}`", h.program)), "{err}");
            let err = h.locate_in(None).unwrap_err().to_string();
            assert!(err.contains(&format!("apt-get install {package}")), "{err}");
        }
    }

    #[test]
    fn versions_are_the_programs_first_lines() {
        let xz = host(Compression::Xz).version().unwrap();
        assert!(xz.starts_with("xz (XZ Utils) "), "{xz}");
        let zstd = host(Compression::Zstd).version().unwrap();
        assert!(zstd.contains("Zstandard CLI"), "{zstd}");
    }

    #[test]
    fn settings_from_the_environment_do_not_reach_the_child() {
        let mut cmd = Command::new("env");
        for var in HostCompressor::SETTINGS_ENV {
            cmd.env(var, "-9");
        }
        let out = cmd.env_clear_settings().output().unwrap();
        let env = String::from_utf8(out.stdout).unwrap();
        for var in HostCompressor::SETTINGS_ENV {
            assert!(!env.contains(&format!("{var}=")), "{var} reached the child");
        }
    }

    /// Bytes that compress a little, neither trivially nor not at all.
    fn sample(len: usize) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 & 0x3f)
            .collect()
    }

    #[test]
    fn xz_and_zstd_round_trip_through_their_own_decoders() {
        let data = sample(5 << 20);
        for c in [Compression::Xz, Compression::Zstd] {
            let h = host(c);
            let packed = compress(c, &data);
            let mut child = Command::new(h.program)
                .arg("-dc")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let writer = thread::spawn(move || stdin.write_all(&packed));
            let out = child.wait_with_output().unwrap();
            writer.join().unwrap().unwrap();
            assert!(out.status.success(), "{c} -dc failed");
            assert!(out.stdout == data, "{c} -dc gave other bytes");
        }
    }

    /// `cat` returns every byte at once: the pipes fill in both directions
    /// unless stdout is read while stdin is written.
    #[test]
    fn a_child_that_echoes_everything_does_not_deadlock() {
        let data = sample(24 << 20);
        let mut e = ChildEncoder::spawn(Command::new("cat"), "cat", Vec::new()).unwrap();
        e.write_all(&data).unwrap();
        assert!(e.finish().unwrap() == data);
    }

    #[test]
    fn a_failing_child_is_an_error_with_its_stderr() {
        // Reads everything, then fails.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "cat >/dev/null; echo 'sh: first' >&2; echo 'sh: out of luck' >&2; exit 3",
        ]);
        let mut e = ChildEncoder::spawn(cmd, "sh", Vec::new()).unwrap();
        e.write_all(&sample(1 << 20)).unwrap();
        let err = e.finish().unwrap_err().to_string();
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("sh: first / sh: out of luck"), "{err}");
        assert!(!err.contains('\n'), "{err}");

        // Stops reading at once: the write fails, with the same message.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'sh: refusing' >&2; exit 5"]);
        let mut e = ChildEncoder::spawn(cmd, "sh", Vec::new()).unwrap();
        let err = e.write_all(&sample(8 << 20)).unwrap_err().to_string();
        assert!(err.contains("exit status: 5"), "{err}");
        assert!(err.contains("sh: refusing"), "{err}");
        assert!(e.finish().is_err(), "a stopped encoder cannot finish");
    }

    #[test]
    fn a_dropped_encoder_stops_its_child() {
        let mut e = ChildEncoder::spawn(Command::new("cat"), "cat", Vec::new()).unwrap();
        e.write_all(b"partial").unwrap();
        let pid = e.child.as_ref().unwrap().id() as libc::pid_t;
        drop(e);
        // Killed and reaped: the pid no longer exists.
        // SAFETY: kill with signal 0 only checks for the process.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(
            !alive,
            "cat ({pid}) still runs after its encoder was dropped"
        );
    }

    #[test]
    fn lz4_legacy_framing() {
        // 20 MiB → blocks of 8, 8 and 4 MiB.
        let data: Vec<u8> = (0..20u32 << 20)
            .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
            .collect();
        let out = compress(Compression::Lz4, &data);
        assert_eq!(&out[..4], &LZ4_LEGACY_MAGIC.to_le_bytes());
        let mut pos = 4;
        let mut decoded = Vec::new();
        while pos < out.len() {
            let n = u32::from_le_bytes(out[pos..pos + 4].try_into().unwrap()) as usize;
            pos += 4;
            let block = lz4_flex_decode(&out[pos..pos + n]);
            assert!(block.len() <= LZ4_LEGACY_BLOCK);
            decoded.extend_from_slice(&block);
            pos += n;
        }
        assert_eq!(pos, out.len());
        assert!(decoded == data);
    }

    /// A minimal LZ4 block decoder (the crate's decoder is not compiled
    /// in), enough to check our framing independently.
    fn lz4_flex_decode(mut src: &[u8]) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        let read_len = |src: &mut &[u8], mut len: usize| {
            if len == 15 {
                loop {
                    let b = src[0];
                    *src = &src[1..];
                    len += b as usize;
                    if b != 255 {
                        break;
                    }
                }
            }
            len
        };
        loop {
            let token = src[0];
            src = &src[1..];
            let lit = read_len(&mut src, (token >> 4) as usize);
            out.extend_from_slice(&src[..lit]);
            src = &src[lit..];
            if src.is_empty() {
                return out;
            }
            let offset = u16::from_le_bytes([src[0], src[1]]) as usize;
            src = &src[2..];
            let len = read_len(&mut src, (token & 15) as usize) + 4;
            let start = out.len() - offset;
            for i in 0..len {
                out.push(out[start + i]);
            }
        }
    }
}
