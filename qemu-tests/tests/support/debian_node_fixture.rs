//! TEST FIXTURE — not the product image.
//!
//! The app tests need a real Node in the guest, and CI cannot build
//! NodeOS's static node (over an hour per arch). So these tests boot
//! Debian's own node 18 (bookworm, dynamically linked) packed with the
//! shared libraries it needs and its externalized JavaScript builtins into
//! a *test* initramfs: `/init` is Debian's `node`, beside it its ELF
//! interpreter and libraries, and the app under `/app` laid out by the
//! product's own code ([`initramfs::app_layout`]). The kernel is the
//! product's kernel. What these tests prove about the product is the
//! kernel (NIC, IP autoconfiguration, RTC), the app layout and command
//! line, and the harness; not our node, whose tests are marked as needing
//! it.
//!
//! The packages are pinned by sha256 in `tests/data/debian-node-fixture.toml`
//! (the JavaScript builtins come from node-static's own manifest, where
//! they are already pinned) and fetched like any source: download dir,
//! then Debian's archive through the project's private apt.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use initramfs::{App, Entry};
use nodeos_build::fetch::{self, Fetcher};
use nodeos_build::source::Manifest;
use qemu_tests::Arch;

/// The node version of the fixture (`process.versions.node`).
pub const FIXTURE_NODE_VERSION: &str = "18.20.4";

/// The packages of one arch, by Debian package name; the manifest's names
/// are `<package>-<debian arch>`.
const ARCH_PACKAGES: &[&str] = &[
    "nodejs",
    "libnode108",
    "libbrotli1",
    "libc-ares2",
    "libc6",
    "libgcc-s1",
    "libicu72",
    "libnghttp2-14",
    "libssl3",
    "libstdc++6",
    "libuv1",
    "zlib1g",
];

/// The JavaScript builtins Debian's node loads from /usr/share/nodejs at
/// every start (pinned in node-static's manifest).
const BUILTIN_PACKAGES: &[&str] = &["node-acorn", "node-cjs-module-lexer", "node-undici"];

/// Debian's name of `arch` and its multiarch triplet (where its libraries
/// live); the fixture is pinned for the two x86 targets only.
fn debian_names(arch: Arch) -> (&'static str, &'static str) {
    if arch == Arch::I386 {
        ("i386", "i386-linux-gnu")
    } else if arch == Arch::X86_64 {
        ("amd64", "x86_64-linux-gnu")
    } else {
        panic!(
            "the Debian node fixture has no packages pinned for {arch}: add them to tests/data/debian-node-fixture.toml"
        )
    }
}

fn deb_arch(arch: Arch) -> &'static str {
    debian_names(arch).0
}

fn triplet(arch: Arch) -> &'static str {
    debian_names(arch).1
}

/// Debian's node for one arch, unpacked.
pub struct DebianNode {
    pub arch: Arch,
    /// The unpacked packages (a file system root).
    pub root: PathBuf,
    /// Debian's `node` binary (it becomes `/init`).
    pub node: PathBuf,
    /// What node needs besides itself: its ELF interpreter, its libraries
    /// and its builtins, at their paths.
    pub support: Vec<Entry>,
}

/// The fixture for `arch`, fetched and unpacked once per test process (and
/// reused between runs while the pinned packages are the same). Panics with
/// a clear message when it cannot be had: these tests must not pass
/// without a node in the guest.
pub fn debian_node(arch: Arch) -> &'static DebianNode {
    static DONE: OnceLock<Mutex<Vec<&'static DebianNode>>> = OnceLock::new();
    let mut done = DONE
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(d) = done.iter().find(|d| d.arch == arch) {
        return d;
    }
    let d: &'static DebianNode = Box::leak(Box::new(prepare(arch).unwrap_or_else(|e| {
        panic!(
            "\n\n*** TEST FIXTURE: Debian's node 18 for {arch} could not be prepared: {e:#}\n\
             The app tests need it (fetched from Debian's archive through apt, or put the \
             .deb files of tests/data/debian-node-fixture.toml into the download dir).\n\n"
        )
    })));
    done.push(d);
    d
}

fn prepare(arch: Arch) -> anyhow::Result<DebianNode> {
    use anyhow::Context as _;
    let fixture = Manifest::parse(
        include_str!("../data/debian-node-fixture.toml"),
        "qemu-tests/tests/data/debian-node-fixture.toml",
    )?;
    let builtins = node_static::node18_manifest();
    let env = nodeos_build::Env::new(&super::workspace_root(), None, false, false)?;
    let mut fetcher = Fetcher::new(&env)?;
    let mut debs = Vec::new();
    for p in ARCH_PACKAGES {
        let r = fetch::ensure(&mut fetcher, &fixture, &format!("{p}-{}", deb_arch(arch)))?;
        debs.push((r.main.file.clone(), r.main.sha256.clone()));
    }
    for p in BUILTIN_PACKAGES {
        let r = fetch::ensure(&mut fetcher, &builtins, p)?;
        debs.push((r.main.file.clone(), r.main.sha256.clone()));
    }
    // Unpacked once per set of packages; a finished tree is renamed into
    // place, so a half-unpacked one is never used.
    let id = nodeos_build::util::sha256_bytes(
        debs.iter()
            .map(|(_, sha)| sha.as_str())
            .collect::<Vec<_>>()
            .join(",")
            .as_bytes(),
    );
    let root = super::work_dir().join(format!("debian-node-{arch}-{}", &id[..16]));
    if !root.is_dir() {
        let tmp = super::work_dir().join(super::unique(&format!("debian-node-{arch}")));
        std::fs::create_dir_all(&tmp)?;
        for (file, _) in &debs {
            let deb = env.dl_dir.join(file);
            let st = Command::new("dpkg-deb")
                .arg("-x")
                .arg(&deb)
                .arg(&tmp)
                .status()
                .context("running dpkg-deb (apt-get install dpkg)")?;
            anyhow::ensure!(st.success(), "dpkg-deb -x {} failed", deb.display());
        }
        if std::fs::rename(&tmp, &root).is_err() {
            // Another test process finished first.
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    let node = root.join("usr/bin/node");
    let support = support_files(arch, &root, &node)?;
    Ok(DebianNode {
        arch,
        root,
        node,
        support,
    })
}

/// Node's ELF interpreter and every library it needs (transitively, found
/// by `readelf -d` in the unpacked tree), and the builtins under
/// usr/share/nodejs. Symlinks are resolved inside the tree (Debian's are
/// often absolute) and stored as the files they lead to.
fn support_files(arch: Arch, root: &Path, node: &Path) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let interp = interpreter(node)?;
    entries.push(Entry::file(
        interp.trim_start_matches('/'),
        0o755,
        resolve_in(root, &interp)?,
    ));
    let dirs: Vec<String> = ["lib", "usr/lib"]
        .iter()
        .flat_map(|d| [format!("{d}/{}", triplet(arch)), d.to_string()])
        .collect();
    let mut seen = BTreeSet::new();
    let mut todo = vec![node.to_owned()];
    while let Some(elf) = todo.pop() {
        for lib in needed(&elf)? {
            if !seen.insert(lib.clone()) {
                continue;
            }
            let found = dirs
                .iter()
                .map(|d| format!("{d}/{lib}"))
                .find_map(|p| resolve_in(root, &p).ok().map(|host| (p, host)));
            let Some((path, host)) = found else {
                anyhow::bail!("{lib} (needed by {}) is in none of {dirs:?}", elf.display());
            };
            entries.push(Entry::file(path, 0o644, host.clone()));
            todo.push(host);
        }
    }
    for rel in walk_files(root, "usr/share/nodejs")? {
        // Dangling symlinks (to packages not unpacked here) are left out.
        if let Ok(host) = resolve_in(root, &rel)
            && host.is_file()
        {
            entries.push(Entry::file(rel, 0o644, host));
        }
    }
    Ok(entries)
}

/// Every non-directory path under `root/rel`, relative to `root` (symlinks
/// are listed, not followed).
fn walk_files(root: &Path, rel: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root.join(rel))? {
        let e = e?;
        let name = e.file_name().to_str().expect("UTF-8 names").to_owned();
        let child = format!("{rel}/{name}");
        if e.file_type()?.is_dir() {
            out.extend(walk_files(root, &child)?);
        } else {
            out.push(child);
        }
    }
    Ok(out)
}

/// `path` (absolute or relative to `root`) resolved inside `root`: every
/// symlink on the way is followed with `root` as `/`. Errors when it does
/// not exist there.
fn resolve_in(root: &Path, path: &str) -> anyhow::Result<PathBuf> {
    let mut at = PathBuf::new();
    let mut todo: Vec<String> = comps(Path::new(path)).into_iter().rev().collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            at.pop();
            continue;
        }
        let next = at.join(&c);
        let host = root.join(&next);
        let meta = std::fs::symlink_metadata(&host)
            .map_err(|e| anyhow::anyhow!("{path}: {} in the fixture tree: {e}", next.display()))?;
        if meta.file_type().is_symlink() {
            hops += 1;
            anyhow::ensure!(hops < 40, "{path}: too many symlinks");
            let target = std::fs::read_link(&host)?;
            if target.is_absolute() {
                at = PathBuf::new();
            }
            for t in comps(&target).into_iter().rev() {
                todo.push(t);
            }
        } else {
            at = next;
        }
    }
    Ok(root.join(at))
}

fn comps(p: &Path) -> Vec<String> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

fn readelf(args: &[&str], elf: &Path) -> anyhow::Result<String> {
    let out = Command::new("readelf")
        .args(args)
        .arg(elf)
        .output()
        .map_err(|e| anyhow::anyhow!("running readelf (apt-get install binutils): {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "readelf {args:?} {} failed",
        elf.display()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `DT_NEEDED` names of an ELF file.
fn needed(elf: &Path) -> anyhow::Result<Vec<String>> {
    Ok(readelf(&["-d", "-W"], elf)?
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_owned()))
        .collect())
}

/// The program interpreter (`PT_INTERP`) of an ELF executable.
fn interpreter(elf: &Path) -> anyhow::Result<String> {
    readelf(&["-l", "-W"], elf)?
        .lines()
        .find_map(|l| {
            let rest = l.split_once("Requesting program interpreter: ")?.1;
            Some(rest.trim_end_matches(']').trim().to_owned())
        })
        .ok_or_else(|| anyhow::anyhow!("{} has no program interpreter", elf.display()))
}

/// A test initramfs: `app` laid out by the product's code around the
/// fixture node as `/init` (the REPL layout without an app), plus the
/// node's support files, written by the product's writer with its default
/// compression.
pub fn initramfs_with_app(arch: Arch, app: Option<&App>) -> PathBuf {
    let node = debian_node(arch);
    let mut entries = match app {
        Some(app) => initramfs::app_layout(&node.node, app),
        None => initramfs::nodeos_layout(&node.node),
    };
    entries.extend_from_slice(&node.support);
    let out = super::work_dir().join(super::unique(&format!("fixture-initramfs-{arch}")));
    let opts = initramfs::Options::from_env().expect("initramfs options from the environment");
    initramfs::write_archive_to_path(&entries, &opts, &out)
        .unwrap_or_else(|e| panic!("writing the fixture initramfs {}: {e:#}", out.display()));
    out
}
