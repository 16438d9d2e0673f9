//! The POSIX tools of the test environment: Node's tests assume a POSIX
//! host (exec() and `shell: true` run `/bin/sh`, others spawn
//! `/usr/bin/env`, `cat`, `echo`, `grep`...), as distributions that test
//! Node have. A pinned static busybox (`node-suite/test-tools.toml`) with a
//! link per applet the tests call, packed in an archive of its own that is
//! joined after the test archive: TEST files only, the image is untouched.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use nodeos_build::Env;
use nodeos_build::fetch::{self, Fetcher};
use nodeos_build::source::Manifest;

use crate::Arch;

/// The pins, one busybox per guest arch (`busybox-<arch>`).
pub const SOURCES: &str = include_str!("../../node-suite/test-tools.toml");
const SOURCES_ORIGIN: &str = "qemu-tests/node-suite/test-tools.toml";

/// Where busybox lands in the guest.
pub const BUSYBOX: &str = "bin/busybox";

/// The applets linked into `/bin`: the commands Node's test/parallel and
/// test/common spawn or run through the shell on a non-Windows host.
pub const APPLETS: &[&str] = &[
    "sh", "env", "echo", "cat", "grep", "ls", "pwd", "sleep", "true", "false", "printf", "head",
    "tail", "sort", "wc", "kill", "yes", "touch", "rm", "mkdir", "sed", "id", "mkfifo", "date",
    "tr", "find", "cp", "mv", "ln", "dd", "chmod", "ps", "hostname", "test", "uname", "od", "stat",
    "readlink", "realpath", "seq", "tee", "xargs", "cut", "basename", "dirname", "awk",
];

/// Links outside `/bin`, absolute paths tests name (`#!/usr/bin/env`,
/// `spawn('/usr/bin/env')`).
pub const EXTRA_LINKS: &[&str] = &["usr/bin/env"];

/// `PATH` the runner gives the tests: the kernel hands PID 1 none.
pub const GUEST_PATH: &str = "/usr/bin:/bin";

/// A fetched, verified busybox for one arch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestTools {
    pub busybox: PathBuf,
    /// The pinned sha256 of the busybox binary (what it is, for run keys).
    pub sha256: String,
    /// Debian's version, for messages.
    pub version: String,
}

impl TestTools {
    /// What a run key records about the tools.
    pub fn identity(&self) -> String {
        format!("busybox sha256 {}", self.sha256)
    }
}

/// What a run key records when the tools are left out.
pub const NO_TOOLS_IDENTITY: &str = "none";

fn manifest() -> Result<Manifest> {
    Manifest::parse(SOURCES, SOURCES_ORIGIN)
}

/// The source name of an arch's busybox.
pub fn source_name(arch: Arch) -> String {
    format!("busybox-{}", arch.name())
}

/// The busybox for `arch`, from the download dir or fetched there (sha256
/// verified either way; a mismatch deletes the file and names both hashes).
pub fn fetch(env: &Env, arch: Arch) -> Result<TestTools> {
    let m = manifest()?;
    let name = source_name(arch);
    let resolved = fetch::ensure(&mut Fetcher::new(env)?, &m, &name)
        .with_context(|| format!("fetching the test tools ({name} of {SOURCES_ORIGIN})"))?;
    Ok(TestTools {
        busybox: env.dl_dir.join(&resolved.main.file),
        sha256: resolved.main.sha256.clone(),
        version: resolved.main.version.clone(),
    })
}

/// The archive's entries: `/bin/busybox`, a link per applet beside it, and
/// [`EXTRA_LINKS`] to it.
pub fn entries(tools: &TestTools) -> Vec<initramfs::Entry> {
    let mut e = vec![
        initramfs::Entry::dir("bin", 0o755),
        initramfs::Entry::file(BUSYBOX, 0o755, &tools.busybox),
    ];
    e.extend(
        APPLETS
            .iter()
            .map(|a| initramfs::Entry::symlink(format!("bin/{a}"), 0o777, "busybox")),
    );
    for link in EXTRA_LINKS {
        if let Some((dir, _)) = link.rsplit_once('/') {
            e.push(initramfs::Entry::dir(dir, 0o755));
        }
        e.push(initramfs::Entry::symlink(
            *link,
            0o777,
            format!("/{BUSYBOX}"),
        ));
    }
    e
}

/// Writes the tools' archive to `out`.
pub fn write_archive(
    tools: &TestTools,
    out: &Path,
    compression: initramfs::Compression,
) -> Result<initramfs::WriteStats> {
    let opts = initramfs::Options {
        compression,
        ..initramfs::Options::from_env()?
    };
    initramfs::write_archive_to_path(&entries(tools), &opts, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pins_parse_and_cover_every_arch() {
        let m = manifest().unwrap();
        for arch in Arch::all() {
            let v = m.variants(&source_name(arch));
            assert_eq!(v.len(), 1, "{}: one pinned busybox", arch.name());
            let d = v[0].debian.as_ref().expect("from Debian's archive");
            assert_eq!(d.member.as_deref(), Some(BUSYBOX));
            assert!(d.package.starts_with("busybox-static"));
        }
    }

    #[test]
    fn entries_link_every_applet_to_busybox() {
        let tools = TestTools {
            busybox: "/x/busybox".into(),
            sha256: "ab".repeat(32),
            version: "1".into(),
        };
        let e = entries(&tools);
        let link = |p: &str| {
            e.iter().find(|x| x.path == p).map(|x| match &x.kind {
                initramfs::EntryKind::Symlink { target } => target.clone(),
                k => panic!("{p} is {k:?}"),
            })
        };
        for a in ["sh", "env", "cat", "echo", "grep", "ls", "pwd", "sleep"] {
            assert_eq!(link(&format!("bin/{a}")).as_deref(), Some("busybox"), "{a}");
        }
        assert_eq!(link("usr/bin/env").as_deref(), Some("/bin/busybox"));
        let bb = e.iter().find(|x| x.path == BUSYBOX).unwrap();
        assert_eq!(bb.mode, 0o755);
        let mut names: Vec<_> = e.iter().map(|x| &x.path).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "no path twice");
        assert_eq!(
            tools.identity(),
            format!("busybox sha256 {}", "ab".repeat(32))
        );
    }

    #[test]
    fn the_runner_gives_the_tests_this_path() {
        assert!(
            super::super::archive::RUNNER_JS
                .contains(&format!("const GUEST_PATH = '{GUEST_PATH}';")),
            "runner.js and tools.rs disagree on the tests' PATH"
        );
        let dirs: Vec<&str> = GUEST_PATH.split(':').collect();
        assert!(dirs.contains(&"/bin"), "the applets are in /bin");
        for link in EXTRA_LINKS {
            let dir = format!("/{}", link.rsplit_once('/').unwrap().0);
            assert!(dirs.contains(&dir.as_str()), "{dir} is on the PATH");
        }
    }

    /// Each arch's pinned busybox (fetched if missing) is its sha256 and
    /// has every applet we link: a busybox without one would leave a
    /// dangling name in the guest. (i386 runs here: static i686 binaries
    /// run on an x86_64 host.)
    #[test]
    fn pinned_busybox_has_every_linked_applet() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let env = Env::new(root, None, false, false).unwrap();
        for arch in Arch::all() {
            let tools = fetch(&env, arch).unwrap_or_else(|e| {
                panic!("\n\n*** THE PINNED BUSYBOX CANNOT BE FETCHED: {e:#}\n\n")
            });
            assert_eq!(
                nodeos_build::util::sha256_file(&tools.busybox).unwrap(),
                tools.sha256
            );
            nodeos_build::elf::check_static(&tools.busybox, arch)
                .unwrap_or_else(|e| panic!("{}: {e:#}", arch.name()));
            // busybox picks the applet by argv[0]: run it as `busybox`.
            let dir = tempfile::tempdir().unwrap();
            let bb = dir.path().join("busybox");
            std::fs::copy(&tools.busybox, &bb).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&bb, std::fs::Permissions::from_mode(0o755)).unwrap();
            let out = std::process::Command::new(&bb)
                .arg("--list")
                .output()
                .unwrap();
            assert!(out.status.success(), "{}: busybox --list", arch.name());
            let list = String::from_utf8_lossy(&out.stdout);
            let have: Vec<&str> = list.lines().collect();
            for a in APPLETS {
                assert!(
                    have.contains(a),
                    "{}: busybox {} lacks {a}",
                    arch.name(),
                    tools.version
                );
            }
        }
    }
}
