//! A user's Node app in the initramfs: the tree of a directory on the host,
//! checked, under `/app`, and the file node runs.
//!
//! What a directory may hold is decided here, once, for every command that
//! takes `--app`: regular files, directories, and symlinks whose target stays
//! inside the directory. Everything else is refused with one line saying
//! which path, why, and what to do ([`AppError`]):
//!
//! * device files, sockets and FIFOs: an app is code and data, and a node
//!   copied out of the host's `/dev` would be a hole in the guest;
//! * symlinks that are absolute or whose target leaves the directory: in the
//!   guest the directory is `/app`, so they would point at something else
//!   (or at nothing) there;
//! * native addons (`*.node`): NodeOS's node is a static musl binary and
//!   cannot `dlopen` them, so the app would fail at `require()` time;
//! * an app bigger than a limit ([`DEFAULT_MAX_SIZE`], raised with
//!   `--app-max-size`): the initramfs and its unpacked copy both sit in guest
//!   RAM.
//!
//! The entries are normalized the way the rest of the archive is: owners 0
//! and one mtime (the writer's), permissions reduced to 0755 (directories,
//! executables) or 0644, symlinks 0777, so the same tree gives the same
//! archive bytes on any host and from any checkout.

use crate::{Entry, EntryKind};
use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::FileTypeExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

/// Where the app goes in the archive (`/app` in the guest).
pub const APP_DIR: &str = "app";

/// The default limit on the app's size (the sum of its regular files):
/// with the default 512 MiB of guest RAM, the compressed archive, the
/// unpacked files and node's heap must all fit.
pub const DEFAULT_MAX_SIZE: u64 = 64 << 20;

/// Linux follows at most 40 symlinks in one lookup (`MAXSYMLINKS`); a chain
/// longer than that fails in the guest with ELOOP, so it is refused here.
const MAX_SYMLINK_HOPS: u32 = 40;

/// The entry file's path goes on the kernel command line, whose words are
/// split at spaces (double quotes group them) and which x86 caps at 2048
/// bytes in all.
const MAX_ENTRY_PATH: usize = 1024;

/// How to take the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppOptions {
    /// The file node runs, relative to the app directory; `None`: the
    /// `main` of `package.json`, else `index.js`.
    pub entry: Option<String>,
    /// Refuse an app whose regular files add up to more bytes than this.
    pub max_size: u64,
}

impl Default for AppOptions {
    fn default() -> AppOptions {
        AppOptions {
            entry: None,
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

/// Where the entry file's name came from (for messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntrySource {
    /// `--entry`.
    Flag,
    /// `package.json`'s `main`.
    PackageMain,
    /// Neither was given: `index.js`.
    Default,
}

/// Why an app directory was refused. Each displays as one line: the path,
/// what is wrong, what to do.
#[derive(Debug)]
pub enum AppError {
    /// The app path is not a directory (or does not exist).
    NotADirectory { dir: PathBuf, why: String },
    /// A block or character device file.
    Device { path: String },
    /// A Unix domain socket.
    Socket { path: String },
    /// A FIFO (named pipe).
    Fifo { path: String },
    /// A symlink with an absolute target.
    AbsoluteSymlink { path: String, target: String },
    /// A symlink whose target, resolved as the guest will resolve it, leaves
    /// the app directory.
    EscapingSymlink { path: String, target: String },
    /// A symlink chain longer than the kernel follows, or a loop.
    SymlinkLoop { path: String },
    /// A native addon (`*.node`).
    NativeAddon { path: String },
    /// The app's regular files add up to more than the limit.
    TooBig { size: u64, limit: u64 },
    /// A file name (or symlink target) that is not UTF-8: cpio names here
    /// are strings, and the entry goes on the kernel command line.
    NonUtf8Name { path: PathBuf },
    /// The file to run does not exist (as a regular file) in the app.
    EntryMissing {
        entry: String,
        from: EntrySource,
        tried: Vec<String>,
    },
    /// The entry names a path outside the app or is not a relative path.
    EntryOutside { entry: String },
    /// The entry's path cannot be passed on the kernel command line as one
    /// word.
    EntryUnfit { entry: String, why: &'static str },
    /// `package.json` exists but is not JSON (or `main` is not a string).
    BadPackageJson { why: String },
    /// Reading the directory failed.
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fix_remove = "remove it from the app directory (or copy the app without it)";
        match self {
            AppError::NotADirectory { dir, why } => write!(
                f,
                "app {}: {why}; give --app the directory that holds the app's files",
                dir.display()
            ),
            AppError::Device { path } => write!(
                f,
                "app file {path:?} is a device file; an app may hold only regular files, directories and symlinks: {fix_remove}"
            ),
            AppError::Socket { path } => write!(
                f,
                "app file {path:?} is a socket; an app may hold only regular files, directories and symlinks: {fix_remove}"
            ),
            AppError::Fifo { path } => write!(
                f,
                "app file {path:?} is a FIFO (named pipe); an app may hold only regular files, directories and symlinks: {fix_remove}"
            ),
            AppError::AbsoluteSymlink { path, target } => write!(
                f,
                "app symlink {path:?} points to the absolute path {target:?}, which in the guest is outside /app; make it relative to a file inside the app directory, or replace it with the file"
            ),
            AppError::EscapingSymlink { path, target } => write!(
                f,
                "app symlink {path:?} -> {target:?} leads outside the app directory, where the guest has nothing; point it at a file inside the app directory, or replace it with the file"
            ),
            AppError::SymlinkLoop { path } => write!(
                f,
                "app symlink {path:?} is a loop or a chain of more than {MAX_SYMLINK_HOPS} symlinks, which the kernel refuses to follow; make it point straight at its file"
            ),
            AppError::NativeAddon { path } => write!(
                f,
                "app file {path:?} is a native addon (*.node); NodeOS's node is a static binary and cannot load addons: use a pure-JavaScript (or WebAssembly) package instead"
            ),
            AppError::TooBig { size, limit } => write!(
                f,
                "the app's files add up to {} ({size} bytes), more than the limit of {} ({limit} bytes); leave out what it does not need, or raise the limit with --app-max-size (e.g. --app-max-size {})",
                human(*size),
                human(*limit),
                human(size.next_power_of_two())
            ),
            AppError::NonUtf8Name { path } => write!(
                f,
                "app path {} is not valid UTF-8; rename it (initramfs names and the kernel command line need UTF-8 here)",
                path.display()
            ),
            AppError::EntryMissing { entry, from, tried } => {
                let (what, fix) = match from {
                    EntrySource::Flag => ("--entry", "give --entry a file inside the app directory"),
                    EntrySource::PackageMain => (
                        "package.json's \"main\"",
                        "fix \"main\" in package.json or name the file with --entry",
                    ),
                    EntrySource::Default => (
                        "the default entry (no --entry, no \"main\" in package.json)",
                        "add an index.js, set \"main\" in package.json, or name the file to run with --entry",
                    ),
                };
                write!(
                    f,
                    "{what} {entry:?} is not a file in the app directory (tried {}); {fix}",
                    tried.join(", ")
                )
            }
            AppError::EntryOutside { entry } => write!(
                f,
                "--entry {entry:?} is not a path inside the app directory; give it relative to the app directory, e.g. --entry server.js"
            ),
            AppError::EntryUnfit { entry, why } => write!(
                f,
                "the entry {entry:?} {why}, so it cannot be passed to node on the kernel command line; rename the file"
            ),
            AppError::BadPackageJson { why } => write!(
                f,
                "the app's package.json cannot be used: {why}; fix it, or name the file to run with --entry"
            ),
            AppError::Io { path, error } => {
                write!(f, "reading the app at {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for AppError {}

/// `n` bytes as the `--app-max-size` syntax writes it: `64M`, `1G`, or plain
/// bytes.
pub fn human(n: u64) -> String {
    for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    if n >= 1 << 20 {
        return format!("{:.1}M", n as f64 / f64::from(1 << 20));
    }
    n.to_string()
}

/// Parses a size for `--app-max-size`: bytes, or a number with `K`, `M` or
/// `G` (powers of 1024; a trailing `B`/`iB` is accepted).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let stem = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (digits, shift) = match stem.chars().last() {
        Some('K') => (&stem[..stem.len() - 1], 10),
        Some('M') => (&stem[..stem.len() - 1], 20),
        Some('G') => (&stem[..stem.len() - 1], 30),
        _ => (stem, 0),
    };
    let bad =
        || format!("{text:?} is not a size; write bytes or a number with K, M or G (e.g. 128M)");
    let n: u64 = digits.trim().parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift).ok_or_else(bad)
}

/// A checked app directory, ready to go into an archive.
#[derive(Clone, Debug)]
pub struct App {
    dir: PathBuf,
    /// Under [`APP_DIR`], in archive order.
    entries: Vec<Entry>,
    /// The entry file, relative to the app directory.
    entry: String,
    entry_from: EntrySource,
    size: u64,
}

impl App {
    /// Reads and checks `dir` (see the module docs for the rules).
    pub fn scan(dir: &Path, opts: &AppOptions) -> Result<App, AppError> {
        let not_dir = |why: String| AppError::NotADirectory {
            dir: dir.to_owned(),
            why,
        };
        let root = fs::canonicalize(dir).map_err(|e| not_dir(e.to_string()))?;
        let meta = fs::metadata(&root).map_err(|e| not_dir(e.to_string()))?;
        if !meta.is_dir() {
            return Err(not_dir("not a directory".into()));
        }
        let mut scan = Scan {
            root: root.clone(),
            entries: vec![Entry::dir(APP_DIR, 0o755)],
            size: 0,
        };
        scan.walk(&root, "")?;
        if scan.size > opts.max_size {
            return Err(AppError::TooBig {
                size: scan.size,
                limit: opts.max_size,
            });
        }
        let (entry, entry_from) = choose_entry(&root, opts.entry.as_deref())?;
        let mut entries = scan.entries;
        entries.sort_by(|a, b| crate::tree::compare_paths(&a.path, &b.path));
        Ok(App {
            dir: root,
            entries,
            entry,
            entry_from,
            size: scan.size,
        })
    }

    /// The app directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The archive entries: `app` and everything under it.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry file relative to the app directory, e.g. `server.js`.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// Where the entry's name came from.
    pub fn entry_source(&self) -> EntrySource {
        self.entry_from
    }

    /// The entry file in the guest, e.g. `/app/server.js`.
    pub fn guest_entry(&self) -> String {
        format!("/{APP_DIR}/{}", self.entry)
    }

    /// The arguments init (node) must get after its own name: the entry
    /// file. The kernel passes the words after `--` on its command line to
    /// init as `argv[1..]`.
    pub fn init_args(&self) -> Vec<String> {
        vec![self.guest_entry()]
    }

    /// The sum of the app's regular file sizes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// A sha256 of everything that reaches the archive: each entry's path,
    /// kind, mode, and its file bytes or symlink target. Two trees with the
    /// same digest give the same archive; it is the app's part of the
    /// initramfs cache key.
    pub fn digest(&self) -> anyhow::Result<String> {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        let mut buf = vec![0u8; 256 * 1024];
        for e in &self.entries {
            field(e.path.as_bytes());
            field(&e.mode.to_le_bytes());
            match &e.kind {
                EntryKind::Dir => field(b"dir"),
                EntryKind::Symlink { target } => {
                    field(b"symlink");
                    field(target.as_bytes());
                }
                EntryKind::File { source } => {
                    field(b"file");
                    let mut fh = Sha256::new();
                    let mut file = fs::File::open(source)
                        .with_context(|| format!("reading app file {}", source.display()))?;
                    loop {
                        let n = file
                            .read(&mut buf)
                            .with_context(|| format!("reading app file {}", source.display()))?;
                        if n == 0 {
                            break;
                        }
                        fh.update(&buf[..n]);
                    }
                    field(&fh.finalize());
                }
                EntryKind::CharDev { .. } | EntryKind::BlockDev { .. } => {
                    unreachable!("App::scan never admits device files")
                }
            }
        }
        Ok(hex(&h.finalize()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Scan {
    root: PathBuf,
    entries: Vec<Entry>,
    size: u64,
}

impl Scan {
    /// Adds the contents of `dir` (whose path in the app is `rel`, "" for
    /// the app directory itself), in name order so that the first refusal
    /// is the same on every run.
    fn walk(&mut self, dir: &Path, rel: &str) -> Result<(), AppError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |error| AppError::Io { path, error }
        };
        let mut names: Vec<OsString> = fs::read_dir(dir)
            .map_err(io(dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io(dir))?;
        names.sort();
        for name in names {
            let host = dir.join(&name);
            let Some(name) = name.to_str() else {
                return Err(AppError::NonUtf8Name { path: host });
            };
            let path = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            let meta = fs::symlink_metadata(&host).map_err(io(&host))?;
            let ft = meta.file_type();
            let in_archive = format!("{APP_DIR}/{path}");
            if ft.is_dir() {
                self.entries.push(Entry::dir(in_archive, 0o755));
                self.walk(&host, &path)?;
            } else if ft.is_symlink() {
                if path.ends_with(".node") {
                    return Err(AppError::NativeAddon { path });
                }
                let target = fs::read_link(&host).map_err(io(&host))?;
                let Some(target_str) = target.to_str() else {
                    return Err(AppError::NonUtf8Name { path: host });
                };
                check_symlink(&self.root, &path, &target)?;
                self.entries
                    .push(Entry::symlink(in_archive, 0o777, target_str));
            } else if ft.is_file() {
                if path.ends_with(".node") {
                    return Err(AppError::NativeAddon { path });
                }
                let exec = meta.permissions().mode() & 0o111 != 0;
                self.entries.push(Entry::file(
                    in_archive,
                    if exec { 0o755 } else { 0o644 },
                    host,
                ));
                self.size = self.size.saturating_add(meta.len());
            } else if ft.is_block_device() || ft.is_char_device() {
                return Err(AppError::Device { path });
            } else if ft.is_socket() {
                return Err(AppError::Socket { path });
            } else if ft.is_fifo() {
                return Err(AppError::Fifo { path });
            } else {
                return Err(AppError::Device { path });
            }
        }
        Ok(())
    }
}

/// Follows the symlink at `link` (a path inside the app) the way the guest's
/// kernel will, with the app directory as `/app`: component by component,
/// expanding every symlink met on the way. Refused when any step is above
/// the app directory (even if a later `..`-free step would come back: in the
/// guest, `/app/..` is `/`), when a target is absolute, or when the chain is
/// longer than the kernel follows. A target that does not exist stops the
/// walk: the kernel stops there too (ENOENT), inside the app.
fn check_symlink(root: &Path, link: &str, target: &Path) -> Result<(), AppError> {
    let refuse_abs = || AppError::AbsoluteSymlink {
        path: link.to_owned(),
        target: target.to_string_lossy().into_owned(),
    };
    let escape = || AppError::EscapingSymlink {
        path: link.to_owned(),
        target: target.to_string_lossy().into_owned(),
    };
    if target.is_absolute() {
        return Err(refuse_abs());
    }
    // Where the walk is: components below the app directory.
    let mut at: Vec<OsString> = link.split('/').map(OsString::from).collect();
    at.pop();
    let mut todo: VecDeque<OsString> = components(target);
    let mut hops = 1;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            if at.pop().is_none() {
                return Err(escape());
            }
            continue;
        }
        at.push(c);
        let host = at.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        let Ok(meta) = fs::symlink_metadata(&host) else {
            return Ok(());
        };
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(AppError::SymlinkLoop {
                    path: link.to_owned(),
                });
            }
            let next = fs::read_link(&host).map_err(|error| AppError::Io {
                path: host.clone(),
                error,
            })?;
            if next.is_absolute() {
                return Err(escape());
            }
            at.pop();
            for c in components(&next).into_iter().rev() {
                todo.push_front(c);
            }
        } else if !meta.is_dir() && !todo.is_empty() {
            // A file used as a directory: ENOTDIR in the guest, inside.
            return Ok(());
        }
    }
    Ok(())
}

/// The `..` and name components of a relative path (`.` dropped).
fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::ParentDir => Some(OsString::from("..")),
            Component::Normal(n) => Some(n.to_owned()),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// The file node runs, relative to the app directory.
fn choose_entry(root: &Path, flag: Option<&str>) -> Result<(String, EntrySource), AppError> {
    let (name, from) = match flag {
        Some(f) => (f.to_owned(), EntrySource::Flag),
        None => match package_main(root)? {
            Some(main) => (main, EntrySource::PackageMain),
            None => ("index.js".to_owned(), EntrySource::Default),
        },
    };
    let clean = normalize_entry(&name).ok_or_else(|| AppError::EntryOutside {
        entry: name.clone(),
    })?;
    // Node resolves `main` as a file, then with `.js`, then as a directory
    // with an index.js; --entry and the default name a file as they are.
    let tried: Vec<String> = match from {
        EntrySource::PackageMain => vec![
            clean.clone(),
            format!("{clean}.js"),
            format!("{clean}/index.js"),
        ],
        EntrySource::Flag | EntrySource::Default => vec![clean.clone()],
    };
    let found = tried.iter().find(|t| {
        // Symlinks in the app have been checked to stay inside it, so
        // following them on the host finds what the guest will find.
        fs::metadata(root.join(t)).is_ok_and(|m| m.is_file())
    });
    let Some(found) = found else {
        return Err(AppError::EntryMissing {
            entry: name,
            from,
            tried,
        });
    };
    if found.ends_with(".node") {
        return Err(AppError::NativeAddon {
            path: found.clone(),
        });
    }
    let unfit = if found.chars().any(char::is_whitespace) {
        Some("contains whitespace")
    } else if found.contains('"') {
        Some("contains a double quote")
    } else if found.chars().any(char::is_control) {
        Some("contains a control character")
    } else if found.len() > MAX_ENTRY_PATH {
        Some("is longer than 1024 bytes")
    } else {
        None
    };
    if let Some(why) = unfit {
        return Err(AppError::EntryUnfit {
            entry: found.clone(),
            why,
        });
    }
    Ok((found.clone(), from))
}

/// `name` as a clean relative path (`./` and `.` dropped), or `None` when it
/// is absolute, empty, or climbs out with `..`.
fn normalize_entry(name: &str) -> Option<String> {
    let p = Path::new(name);
    if p.is_absolute() {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// `package.json`'s `main`, if the file exists and sets it.
fn package_main(root: &Path) -> Result<Option<String>, AppError> {
    let path = root.join("package.json");
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(AppError::Io { path, error }),
    };
    let doc: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| AppError::BadPackageJson {
            why: format!("not valid JSON ({e})"),
        })?;
    match doc.get("main") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(other) => Err(AppError::BadPackageJson {
            why: format!("\"main\" is {other}, not a file name"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size(" 2MB "), Ok(2 << 20));
        for bad in ["", "M", "-1", "1.5M", "12X", "99999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(human(64 << 20), "64M");
        assert_eq!(human(3 << 30), "3G");
        assert_eq!(human(1000), "1000");
        assert_eq!(human((1 << 20) + 1), "1.0M");
    }

    #[test]
    fn entry_names_are_normalized_inside_the_app() {
        assert_eq!(normalize_entry("./a/b.js").as_deref(), Some("a/b.js"));
        assert_eq!(normalize_entry("a/../b.js").as_deref(), Some("b.js"));
        assert_eq!(normalize_entry("../b.js"), None);
        assert_eq!(normalize_entry("/app/b.js"), None);
        assert_eq!(normalize_entry("."), None);
    }
}
