//! A native writer for Linux initramfs archives (cpio "newc", magic `070701`).
//!
//! NodeOS boots a kernel whose only userspace is one static binary, so the
//! initramfs is tiny in structure (a handful of entries) but huge in payload
//! (a ~100 MB `node`). This crate writes it without root and reproducibly
//! (host programs only for the optional xz and zstd compressions):
//!
//! * **Format.** The byte layout follows the kernel's own generator,
//!   `usr/gen_init_cpio.c` (Linux 6.1), field for field: for the same spec
//!   and timestamp our output is byte-identical to it (a test checks this by
//!   compiling the real `gen_init_cpio`). See [`newc`] for the
//!   conventions this implies.
//! * **Tree.** Entries are validated, missing parent directories are added,
//!   and everything is sorted so that parents come before children
//!   ([`normalize`]).
//! * **Reproducible.** No field comes from the host: mtime is
//!   [`Options::mtime`] (from `SOURCE_DATE_EPOCH`), owners are 0, inode
//!   numbers are sequential.
//! * **Streaming and safe.** File contents are streamed in small chunks; a
//!   file whose size or mtime changes while it is copied is an error rather
//!   than a silently corrupt archive.
//! * **Compression.** gzip, xz, zstd or lz4, each in the flavour the kernel's
//!   initramfs unpacker accepts ([`Compression`]); LZ4 by default because it
//!   boots fastest ([`DEFAULT_COMPRESSION`] has the measurements). gzip and
//!   lz4 are written in-process; xz and zstd by the host's `xz` and `zstd`
//!   programs with fixed settings ([`HostCompressor`]), whose version a
//!   cache key must then name.
//!
//! * **Apps.** [`App`] checks a user's app directory and lays it out under
//!   `/app` ([`app_layout`]); without an app the archive is exactly
//!   [`nodeos_layout`], byte for byte as before apps existed.
//!
//! [`read_archive`] is a strict reader used by the tests and to verify
//! archives; [`bench()`] compares throughput with GNU cpio and gzip.

pub mod app;
mod bench;
mod compress;
pub mod newc;
mod output;
pub mod phase;
mod reader;
mod tree;

use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

pub use app::{App, AppError, AppOptions};
pub use bench::{bench, BenchReport, BenchRow};
pub use compress::{Compression, HostCompressor, DEFAULT_COMPRESSION};
pub use reader::{read_archive, ReadEntry};
pub use tree::normalize;

/// What an archive entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// A regular file whose contents are streamed from `source` at write
    /// time (symlinks in `source` are followed).
    File {
        source: PathBuf,
    },
    CharDev {
        major: u32,
        minor: u32,
    },
    BlockDev {
        major: u32,
        minor: u32,
    },
    Symlink {
        target: String,
    },
}

/// One archive entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, e.g. `dev/console`. A leading `/` or `./` is
    /// accepted and removed; otherwise the path must already be normalized
    /// (no `.`/`..`/empty components).
    pub path: String,
    /// Permission bits only (`0o7777` at most), e.g. `0o600`; the file type
    /// comes from [`Entry::kind`].
    pub mode: u32,
    pub kind: EntryKind,
}

impl Entry {
    pub fn dir(path: impl Into<String>, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            mode,
            kind: EntryKind::Dir,
        }
    }

    pub fn file(path: impl Into<String>, mode: u32, source: impl Into<PathBuf>) -> Entry {
        Entry {
            path: path.into(),
            mode,
            kind: EntryKind::File {
                source: source.into(),
            },
        }
    }

    pub fn char_dev(path: impl Into<String>, mode: u32, major: u32, minor: u32) -> Entry {
        Entry {
            path: path.into(),
            mode,
            kind: EntryKind::CharDev { major, minor },
        }
    }

    pub fn block_dev(path: impl Into<String>, mode: u32, major: u32, minor: u32) -> Entry {
        Entry {
            path: path.into(),
            mode,
            kind: EntryKind::BlockDev { major, minor },
        }
    }

    pub fn symlink(path: impl Into<String>, mode: u32, target: impl Into<String>) -> Entry {
        Entry {
            path: path.into(),
            mode,
            kind: EntryKind::Symlink {
                target: target.into(),
            },
        }
    }
}

/// How to write an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Modification time of every entry, in seconds since the epoch.
    pub mtime: u32,
    pub compression: Compression,
}

impl Default for Options {
    /// mtime 0 and [`DEFAULT_COMPRESSION`]; ignores the environment.
    fn default() -> Options {
        Options {
            mtime: 0,
            compression: DEFAULT_COMPRESSION,
        }
    }
}

impl Options {
    /// [`DEFAULT_COMPRESSION`] and the mtime from `SOURCE_DATE_EPOCH` (0 when
    /// unset). A malformed value is an error, as the reproducible-builds
    /// specification asks, rather than being silently ignored.
    pub fn from_env() -> Result<Options> {
        let value = std::env::var_os("SOURCE_DATE_EPOCH");
        let value = match &value {
            None => None,
            Some(v) => Some(v.to_str().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v:?} is not valid UTF-8; set it to a number of seconds since 1970 or unset it")
            })?),
        };
        Ok(Options {
            mtime: mtime_from_source_date_epoch(value)?,
            compression: DEFAULT_COMPRESSION,
        })
    }
}

/// Parses a `SOURCE_DATE_EPOCH` value (`None` = unset = 0). Exposed so the
/// rule can be tested without touching the process environment.
pub fn mtime_from_source_date_epoch(value: Option<&str>) -> Result<u32> {
    let Some(value) = value else { return Ok(0) };
    let fix = "set it to a whole number of seconds since 1970-01-01 UTC (e.g. `git log -1 --format=%ct`) or unset it";
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        bail!("SOURCE_DATE_EPOCH={value:?} is not a non-negative whole number; {fix}");
    }
    // The newc mtime field is 8 hex digits: 2106-02-07 is the last second it
    // can hold.
    value.parse::<u32>().map_err(|_| {
        anyhow::anyhow!("SOURCE_DATE_EPOCH={value} is after 2106-02-07, the last time a cpio newc header can hold (0xFFFFFFFF); {fix}")
    })
}

/// Sizes of a written archive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Size of the cpio archive before compression.
    pub bytes_uncompressed: u64,
    /// Bytes handed to the output (after compression).
    pub bytes_written: u64,
    /// Entries written, including added parent directories, excluding the
    /// trailer.
    pub entries: usize,
}

/// Writes `entries` (plus any missing parent directories) as a newc archive,
/// compressed as `opts` says, to `out`.
///
/// All entries and file sources are validated before the first byte is
/// written. An error can still occur mid-stream (a file changed, an I/O
/// error); then what was written to `out` is unusable, which is why callers
/// that write files should use [`write_archive_to_path`].
pub fn write_archive<W: Write>(entries: &[Entry], opts: &Options, out: W) -> Result<WriteStats> {
    opts.compression.check_host_program()?;
    let plan = normalize(entries)?;
    newc::preflight(&plan)?;

    let counted_out = CountingWriter::new(out);
    let encoder = compress::Encoder::new(opts.compression, counted_out)
        .with_context(|| format!("starting the {} compressor", opts.compression))?;
    // Headers are 110-byte writes; buffering them keeps per-call overhead of
    // the compressors (and of syscalls when uncompressed) off the hot path.
    let mut cpio = CountingWriter::new(BufWriter::with_capacity(256 * 1024, encoder));
    newc::write_entries(&plan, opts.mtime, &mut cpio)?;

    let bytes_uncompressed = cpio.count;
    let encoder = cpio
        .inner
        .into_inner()
        .map_err(|e| e.into_error())
        .context("writing the archive")?;
    let mut counted_out = encoder
        .finish()
        .with_context(|| format!("finishing {} compression", opts.compression))?;
    counted_out.flush().context("flushing the archive")?;
    Ok(WriteStats {
        bytes_uncompressed,
        bytes_written: counted_out.count,
        entries: plan.len(),
    })
}

/// Like [`write_archive`], but to a file, atomically: the archive is written
/// to a temporary file in the same directory, synced, and renamed over
/// `path` only when complete. On error nothing is left behind, so a partial
/// archive can never be mistaken for a finished one.
///
/// `path` must be absent or a regular file this user may write, and not
/// one of the archive's inputs (it would be destroyed). Temporary files of
/// writers that were killed in the same directory are removed first; one
/// stopped by SIGINT, SIGTERM or SIGHUP removes its own.
pub fn write_archive_to_path(entries: &[Entry], opts: &Options, path: &Path) -> Result<WriteStats> {
    opts.compression.check_host_program()?;
    output::check_destination(path, entries)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = output::TempOutput::create_in(dir)?;
    let stats = write_archive(entries, opts, tmp.as_file_mut())
        .with_context(|| format!("writing initramfs {}", path.display()))?;
    let file = tmp.as_file();
    // tempfile creates 0600; an initramfs is not secret and other users
    // (e.g. a QEMU run as another user) may need to read it.
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .with_context(|| format!("setting permissions of {}", tmp.path().display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {} to disk", tmp.path().display()))?;
    tmp.persist(path)?;
    // Make the rename itself durable; failure here is harmless to
    // correctness (the file is complete either way), so it is not an error.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(stats)
}

/// The NodeOS initramfs: `/dev` (dir 0755), `/dev/console` (char 5:1, 0600)
/// and `/init` = `init` (0755). Nothing else: the kernel needs the console
/// node to give PID 1 its stdio before devtmpfs could be mounted, and
/// `init` is the whole userspace.
pub fn nodeos_layout(init: &Path) -> Vec<Entry> {
    vec![
        Entry::dir("dev", 0o755),
        Entry::char_dev("dev/console", 0o600, 5, 1),
        Entry::file("init", 0o755, init),
    ]
}

/// The NodeOS layout ([`nodeos_layout`]) with a user's app under `/app`
/// ([`App`]); node gets the app's entry file as its argument from the
/// kernel command line ([`App::init_args`]).
pub fn app_layout(init: &Path, app: &App) -> Vec<Entry> {
    let mut entries = nodeos_layout(init);
    entries.extend_from_slice(app.entries());
    entries
}

/// Counts bytes passing through, for [`WriteStats`].
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W> CountingWriter<W> {
    fn new(inner: W) -> Self {
        CountingWriter { inner, count: 0 }
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
