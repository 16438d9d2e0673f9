//! Our archives must be byte-identical to the Linux kernel's own generator,
//! `usr/gen_init_cpio` (Linux 6.1), for the same spec and timestamp. The
//! test uses the real program, found (in this order):
//!
//! 1. `$NODEOS_GEN_INIT_CPIO`: a built `gen_init_cpio` binary;
//! 2. `$NODEOS_GEN_INIT_CPIO_SRC`: `gen_init_cpio.c`, or a kernel source tree;
//! 3. under the NodeOS cache dir (`$NODEOS_CACHE_DIR`, default
//!    `~/.cache/nodeos`): the `gen_init_cpio` the kernel phase publishes next
//!    to its `bzImage`, or a kernel source tree;
//! 4. in the download dir (`$NODEOS_DL_DIR`, default `<cache dir>/dl`): a
//!    `linux-source-6.1_*.deb`, `linux-source-6.1_*.tar.xz` or
//!    `linux-6.1.*.tar.xz`, from which the one file is extracted (cached
//!    under cargo's target tmpdir).
//!
//! Sources are compiled with the host `cc`. If nothing is found the test
//! fails (never skips) and says how to provide it.
//!
//! gen_init_cpio 6.1 stamps regular files with their own mtime (not `-t`),
//! so the sources' mtimes are set to the archive timestamp first.

mod common;

use common::*;
use initramfs::{nodeos_layout, normalize, write_archive, Compression, Entry, EntryKind, Options};
use proptest::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

/// The gen_init_cpio program, located (and if need be compiled) once per
/// test process.
fn gen_init_cpio() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let (cache, dl) = dirs();
        if let Some(p) = std::env::var_os("NODEOS_GEN_INIT_CPIO").filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "NODEOS_GEN_INIT_CPIO={} does not exist",
                p.display()
            );
            return p;
        }
        if std::env::var_os("NODEOS_GEN_INIT_CPIO_SRC").is_none() {
            if let Some(bin) = search(&cache, 5, &|d| {
                let bin = d.join("gen_init_cpio");
                (bin.is_file() && d.join("bzImage").is_file()).then_some(bin)
            }) {
                eprintln!("using the kernel phase's {}", bin.display());
                return bin;
            }
        }
        let src = find_source(&cache, &dl);
        let cc = require_tool("cc", "gcc");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gen_init_cpio");
        fs::create_dir_all(&dir).unwrap();
        // Always rebuilt (it takes a fraction of a second), then renamed into
        // place so that concurrent test processes never see a partial file.
        let tmp = dir.join(format!("gen_init_cpio.{}.tmp", std::process::id()));
        run(
            Command::new(cc)
                .args(["-O1", "-w", "-o"])
                .arg(&tmp)
                .arg(&src),
            b"",
        );
        let bin = dir.join("gen_init_cpio");
        fs::rename(&tmp, &bin).unwrap();
        eprintln!("using gen_init_cpio built from {}", src.display());
        bin
    })
}

/// The NodeOS cache and download dirs, resolved as nodeos-build does.
fn dirs() -> (PathBuf, PathBuf) {
    let cache = match std::env::var_os("NODEOS_CACHE_DIR").filter(|p| !p.is_empty()) {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/nodeos"),
    };
    let dl = match std::env::var_os("NODEOS_DL_DIR").filter(|p| !p.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => cache.join("dl"),
    };
    (cache, dl)
}

fn find_source(cache: &Path, dl: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("NODEOS_GEN_INIT_CPIO_SRC").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        let file = if p.is_dir() {
            p.join("usr/gen_init_cpio.c")
        } else {
            p.clone()
        };
        assert!(
            file.is_file(),
            "NODEOS_GEN_INIT_CPIO_SRC={} but {} does not exist",
            p.display(),
            file.display()
        );
        return file;
    }
    if let Some(found) = search(cache, 5, &kernel_tree_source) {
        return found;
    }
    if let Some(found) = extract_from_downloads(dl) {
        return found;
    }
    // Nothing local: fetch the kernel phase's pinned Linux source (verified
    // by sha256) into the download dir, as the kernel phase would.
    if fetch_linux_source().is_ok() {
        if let Some(found) = extract_from_downloads(dl) {
            return found;
        }
    }
    panic!(
        "cannot find the kernel's gen_init_cpio, which this test compares our archives with.\n\
         Provide it in one of these ways:\n\
         - NODEOS_GEN_INIT_CPIO=/path/to/built/gen_init_cpio;\n\
         - NODEOS_GEN_INIT_CPIO_SRC=/path/to/linux/usr/gen_init_cpio.c (or the kernel source dir);\n\
         - build the kernel phase (`cargo xtask kernel`), which publishes gen_init_cpio under {};\n\
         - put linux-source-6.1_*.deb (`apt-get download linux-source-6.1`) or a linux 6.1 source \
         tarball in {}.",
        cache.display(),
        dl.display()
    );
}

fn kernel_tree_source(dir: &Path) -> Option<PathBuf> {
    let c = dir.join("usr/gen_init_cpio.c");
    c.is_file().then_some(c)
}

/// The first `found(d)` for `dir` and the directories up to `depth` levels
/// below it (not descending into the download dir or symlinks).
fn search(dir: &Path, depth: u32, found: &dyn Fn(&Path) -> Option<PathBuf>) -> Option<PathBuf> {
    if let Some(hit) = found(dir) {
        return Some(hit);
    }
    if depth == 0 {
        return None;
    }
    let mut subdirs: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) && e.file_name() != "dl")
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    subdirs
        .into_iter()
        .find_map(|d| search(&d, depth - 1, found))
}

fn extract_from_downloads(dl: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = fs::read_dir(dl)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            (n.starts_with("linux-source-6.1_") && (n.ends_with(".deb") || n.ends_with(".tar.xz")))
                || (n.starts_with("linux-6.1.")
                    && (n.ends_with(".tar.xz") || n.ends_with(".tar.gz")))
        })
        .collect();
    candidates.sort();
    // The last by name: the newest version if there are several.
    let archive = candidates.pop()?;
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("gen_init_cpio-src")
        .join(&name);
    if let Some(found) = search(&cache, 2, &kernel_tree_source) {
        return Some(found);
    }
    eprintln!(
        "extracting usr/gen_init_cpio.c from {} (once)",
        archive.display()
    );
    let tmp = cache.with_file_name(format!("{name}.{}.partial", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).unwrap();
    let pattern = "'*/usr/gen_init_cpio.c'";
    let script = if name.ends_with(".deb") {
        require_tool("dpkg-deb", "dpkg");
        format!(
            "dpkg-deb --fsys-tarfile {a} | tar -xO --wildcards './usr/src/linux-source-*.tar.xz' | tar -xJ --wildcards {pattern}",
            a = shell_quote(&archive)
        )
    } else {
        format!("tar -xf {} --wildcards {pattern}", shell_quote(&archive))
    };
    run(
        Command::new("bash")
            .args(["-o", "pipefail", "-c", &script])
            .current_dir(&tmp),
        b"",
    );
    fs::create_dir_all(cache.parent().unwrap()).unwrap();
    let _ = fs::remove_dir_all(&cache);
    fs::rename(&tmp, &cache).unwrap();
    Some(
        search(&cache, 2, &kernel_tree_source).unwrap_or_else(|| {
            panic!("{} does not contain usr/gen_init_cpio.c", archive.display())
        }),
    )
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// The gen_init_cpio spec for our normalized entries, in our order.
fn spec(plan: &[Entry]) -> String {
    let mut s = String::from("# written by the initramfs crate's tests\n");
    for e in plan {
        let line = match &e.kind {
            EntryKind::Dir => format!("dir /{} {:o} 0 0", e.path, e.mode),
            EntryKind::File { source } => {
                format!("file /{} {} {:o} 0 0", e.path, source.display(), e.mode)
            }
            EntryKind::CharDev { major, minor } => {
                format!("nod /{} {:o} 0 0 c {major} {minor}", e.path, e.mode)
            }
            EntryKind::BlockDev { major, minor } => {
                format!("nod /{} {:o} 0 0 b {major} {minor}", e.path, e.mode)
            }
            EntryKind::Symlink { target } => format!("slink /{} {target} {:o} 0 0", e.path, e.mode),
        };
        s.push_str(&line);
        s.push('\n');
    }
    s
}

fn assert_identical(entries: &[Entry], mtime: u32) {
    let plan = normalize(entries).unwrap();
    for e in &plan {
        if let EntryKind::File { source } = &e.kind {
            let f = fs::File::options().write(true).open(source).unwrap();
            f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime.into()))
                .unwrap();
        }
    }
    let spec = spec(&plan);
    let theirs = run(
        Command::new(gen_init_cpio()).args(["-t", &mtime.to_string(), "-"]),
        spec.as_bytes(),
    )
    .stdout;
    let mut ours = Vec::new();
    write_archive(
        entries,
        &Options {
            mtime,
            compression: Compression::None,
        },
        &mut ours,
    )
    .unwrap();
    if ours != theirs {
        let at = ours
            .iter()
            .zip(&theirs)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(theirs.len()));
        let from = at.saturating_sub(64);
        panic!(
            "archive differs from gen_init_cpio's at byte {at} (ours {} bytes, theirs {})\nspec:\n{spec}\nours:   {:?}\ntheirs: {:?}",
            ours.len(),
            theirs.len(),
            String::from_utf8_lossy(&ours[from..(at + 64).min(ours.len())]),
            String::from_utf8_lossy(&theirs[from..(at + 64).min(theirs.len())]),
        );
    }
}

#[test]
fn nodeos_layout_is_identical_to_gen_init_cpio() {
    let dir = tempfile::tempdir().unwrap();
    let init = source(dir.path(), "node", &bytes(3, 1_000_003));
    assert_identical(&nodeos_layout(&init), 0);
    assert_identical(&nodeos_layout(&init), 1_700_000_000);
}

#[test]
fn rich_tree_is_identical_to_gen_init_cpio() {
    let dir = tempfile::tempdir().unwrap();
    let entries = rich_tree(dir.path());
    assert_identical(&entries, 1_234_567_890);
    // The largest timestamp both can express.
    assert_identical(&entries, u32::MAX);
}

#[test]
fn empty_archive_is_identical_to_gen_init_cpio() {
    assert_identical(&[], 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// Random trees in gen_init_cpio's spec syntax (names without blanks).
    #[test]
    fn random_trees_are_identical_to_gen_init_cpio(
        specs in strategies::plausible_specs("[a-zA-Z0-9._+=@-]{1,12}", "[a-zA-Z0-9./_-]{1,80}"),
        mtime in any::<u32>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let entries = materialize(&valid_subset(specs), dir.path());
        assert_identical(&entries, mtime);
    }
}

/// Fetches the Linux source the kernel phase uses (same pins, same dirs).
fn fetch_linux_source() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let env = nodeos_build::Env::new(root, None, false, false)?;
    let mut fetcher = nodeos_build::fetch::Fetcher::new(&env)?;
    nodeos_build::fetch::ensure(&mut fetcher, &kernel::manifest(), "linux")?;
    Ok(())
}
