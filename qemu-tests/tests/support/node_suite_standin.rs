//! The Debian stand-in node for node-test's CI subset: Debian bookworm's
//! Node 18.20.4 (dynamically linked), with the shared libraries and the JS
//! builtins it loads at start, in a TEST initramfs whose /init is that node.
//! It stands in for NodeOS's static node where that is not built; it is
//! never the image. Packages: node-suite/debian-node-standin-x86_64.toml,
//! fetched with the project's fetcher into the download dir.
//!
//! Also: the Node source tree with `test/` (the node-static manifest's
//! tarball, extracted once).

#![allow(dead_code)] // each test binary uses a part

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use nodeos_build::fetch::{self, Fetcher};
use nodeos_build::{Env, Manifest};
use qemu_tests::Arch;

const STANDIN_SOURCES: &str = include_str!("../../node-suite/debian-node-standin-x86_64.toml");

/// The Node version of the stand-in (and of the tests it runs).
pub const STANDIN_VERSION: &str = "18.20.4";

/// Files Debian's libnode reads at start from fixed paths (its
/// `--shared-builtin-*` configure options).
const SHARED_BUILTINS: &[&str] = &[
    "usr/share/nodejs/acorn/dist/acorn.js",
    "usr/share/nodejs/acorn-walk/dist/walk.js",
    "usr/share/nodejs/cjs-module-lexer/lexer.js",
    "usr/share/nodejs/cjs-module-lexer/dist/lexer.js",
    "usr/share/nodejs/undici/undici-fetch.js",
];

/// Directories whose files (not subdirectories) hold the shared libraries.
const LIB_DIRS: &[&str] = &["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn env() -> Env {
    Env::new(&workspace_root(), None, false, false).expect("resolving the cache dirs")
}

fn short_sha(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))[..16].to_owned()
}

/// Held while the stand-in is prepared: the tests of one binary run as
/// threads of one process, so a per-process scratch name alone would let
/// two of them extract into (and delete) the same directory.
static PREPARING: Mutex<()> = Mutex::new(());

/// The stand-in's files, extracted from the pinned packages (fetched if
/// missing), under the test work dir.
pub fn standin_root(work: &Path) -> PathBuf {
    let _one_at_a_time = PREPARING.lock().unwrap_or_else(|e| e.into_inner());
    extracted_root(work)
}

fn extracted_root(work: &Path) -> PathBuf {
    let root = work.join(format!(
        "debian-node-standin-{}",
        short_sha(STANDIN_SOURCES)
    ));
    if root.join("usr/bin/node").is_file() {
        return root;
    }
    let env = env();
    let manifest = Manifest::parse(STANDIN_SOURCES, "debian-node-standin-x86_64.toml")
        .expect("the stand-in manifest parses");
    let mut fetcher = Fetcher::new(&env).expect("a fetcher");
    let part = root.with_extension(format!("part-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&part);
    std::fs::create_dir_all(&part).unwrap();
    for source in &manifest.sources {
        let got = fetch::ensure(&mut fetcher, &manifest, &source.name).unwrap_or_else(|e| {
            panic!(
                "\n\n*** THE DEBIAN STAND-IN NODE CANNOT BE FETCHED ({}): {e:#}\n\n",
                source.name
            )
        });
        let deb = env.dl_dir.join(&got.main.file);
        let status = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&part)
            .status()
            .expect("running dpkg-deb (apt-get install dpkg)");
        assert!(status.success(), "dpkg-deb -x {} failed", deb.display());
    }
    assert!(
        part.join("usr/bin/node").is_file(),
        "the nodejs package has usr/bin/node"
    );
    // Another test process may have published the same root meanwhile;
    // its copy is complete (only whole trees are renamed into place).
    if let Err(e) = std::fs::rename(&part, &root) {
        assert!(
            root.join("usr/bin/node").is_file(),
            "publishing {}: {e}",
            root.display()
        );
        let _ = std::fs::remove_dir_all(&part);
    }
    root
}

/// A test initramfs: /dev/console, /init = Debian's node, its dynamic
/// loader, libraries and builtins. x86_64 only (the packages are amd64).
pub fn standin_initramfs(arch: Arch, work: &Path) -> PathBuf {
    assert_eq!(
        arch,
        Arch::X86_64,
        "the Debian stand-in node is pinned for x86_64 (amd64 packages) only"
    );
    let _one_at_a_time = PREPARING.lock().unwrap_or_else(|e| e.into_inner());
    let root = extracted_root(work);
    let out = work.join(format!(
        "debian-node-standin-{}.cpio{}",
        short_sha(STANDIN_SOURCES),
        initramfs::DEFAULT_COMPRESSION.file_extension()
    ));
    if out.is_file() {
        return out;
    }
    let mut entries = initramfs::nodeos_layout(&root.join("usr/bin/node"));
    let loader = root.join("lib64/ld-linux-x86-64.so.2");
    let target = std::fs::read_link(&loader).expect("libc6 ships lib64/ld-linux-x86-64.so.2");
    entries.push(initramfs::Entry::symlink(
        "lib64/ld-linux-x86-64.so.2",
        0o777,
        target.to_string_lossy().into_owned(),
    ));
    for dir in LIB_DIRS {
        let mut names: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let ft = e.file_type().unwrap();
            let path = format!("{dir}/{}", e.file_name().to_string_lossy());
            if ft.is_symlink() {
                let t = std::fs::read_link(e.path()).unwrap();
                entries.push(initramfs::Entry::symlink(
                    path,
                    0o777,
                    t.to_string_lossy().into_owned(),
                ));
            } else if ft.is_file() {
                entries.push(initramfs::Entry::file(path, 0o755, e.path()));
            }
        }
    }
    for b in SHARED_BUILTINS {
        let src = root.join(b);
        assert!(src.is_file(), "the stand-in lacks {b}");
        entries.push(initramfs::Entry::file(*b, 0o644, src));
    }
    let opts = initramfs::Options::from_env().expect("initramfs options");
    initramfs::write_archive_to_path(&entries, &opts, &out)
        .unwrap_or_else(|e| panic!("writing {}: {e:#}", out.display()));
    out
}

/// The POSIX tools node-test packs beside the tests (the pinned busybox,
/// fetched if missing), as `cargo xtask node-test` does by default.
pub fn test_tools(arch: Arch) -> qemu_tests::node_suite::tools::TestTools {
    qemu_tests::node_suite::tools::fetch(&env(), arch)
        .unwrap_or_else(|e| panic!("\n\n*** THE TEST TOOLS CANNOT BE FETCHED: {e:#}\n\n"))
}

/// A Node source tree with `test/` for `version`: the node-static
/// manifest's tarball (fetched if missing), extracted under `work`.
pub fn node_test_tree(version: &str, work: &Path) -> PathBuf {
    let env = env();
    let m = node_static::node18_manifest();
    let chosen = fetch::choose(&env, &m, "node").unwrap();
    assert_eq!(
        chosen.main.version, version,
        "node-static builds Node {}, the stand-in is {version}",
        chosen.main.version
    );
    let resolved = if env.dl_dir.join(&chosen.main.file).is_file() {
        chosen
    } else {
        let mut f = Fetcher::new(&env).unwrap();
        fetch::ensure(&mut f, &m, "node").unwrap_or_else(|e| {
            panic!("\n\n*** THE NODE SOURCE TARBALL CANNOT BE FETCHED: {e:#}\n\n")
        })
    };
    let tarball = env.dl_dir.join(&resolved.main.file);
    let dest = work.join(format!("node-src-{}", &resolved.main.sha256[..16]));
    qemu_tests::node_suite::source::extract_tests(&tarball, &dest)
        .unwrap_or_else(|e| panic!("{e:#}"));
    dest
}
