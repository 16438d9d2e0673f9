//! The NodeOS init patches (patches/node-*/0001-nodeos-init.patch) on their
//! own, without building node: their JavaScript runs on the host's node
//! against a recording stand-in for the C++ binding
//! (tests/data/nodeos_init_harness.js), and the patches apply to the trees
//! they are for.
//!
//! Needs the host's `node` (Debian's `nodejs`); says so and fails without
//! it. The apply tests need the Node sources in the download dir and are
//! ignored by default.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// Linux's reboot(2) commands, as the binding's constants give them.
const RB_POWER_OFF: i64 = 0x4321fedc;
const RB_AUTOBOOT: i64 = 0x01234567;
const MS_NOSUID: i64 = 2;
const MS_NODEV: i64 = 4;
const MS_NOEXEC: i64 = 8;

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn patch_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(project().join("patches"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("node-")
                // A Node version's own tree; `node-<v>-parts` holds patches
                // for the parts a variant restores, not for node's tree.
                && p.join("0001-nodeos-init.patch").is_file()
        })
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 2, "patches for Node 18 and 22: {dirs:?}");
    dirs
}

fn patch_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("0001-nodeos-init.patch"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// The content of a file the patch creates (`--- /dev/null`), from its
/// `+` lines.
fn new_file(patch: &str, path: &str) -> String {
    let header = format!("+++ b/{path}\n");
    let start = patch
        .find(&header)
        .unwrap_or_else(|| panic!("the patch does not create {path}"));
    let before = &patch[..start];
    assert!(
        before.ends_with("--- /dev/null\n"),
        "{path} is not a new file in the patch"
    );
    let mut out = String::new();
    for line in patch[start + header.len()..].lines() {
        if line.starts_with("@@") {
            continue;
        }
        if line.starts_with("diff --git ") {
            break;
        }
        match line.strip_prefix('+') {
            Some(l) => {
                out.push_str(l);
                out.push('\n');
            }
            None if line == "\\ No newline at end of file" => {}
            None => panic!("{path}: unexpected line in a new file's hunk: {line:?}"),
        }
    }
    out
}

fn host_node() -> PathBuf {
    nodeos_build::host::which("node").expect(
        "these tests run the patch's JavaScript on the host's node: install it (`apt-get install nodejs`)",
    )
}

/// Runs one harness scenario on the JS of the patch in `dir`.
fn run(dir: &Path, scenario: Value) -> Value {
    let patch = patch_text(dir);
    let lib = tempfile::tempdir().unwrap();
    for name in ["config", "init"] {
        let rel = format!("lib/internal/nodeos/{name}.js");
        let dest = lib.path().join(format!("internal/nodeos/{name}.js"));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, new_file(&patch, &rel)).unwrap();
    }
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nodeos_init_harness.js");
    let out = Command::new(host_node())
        .arg("--expose-internals")
        .arg("--no-warnings")
        .arg(&harness)
        .arg(lib.path())
        .arg(scenario.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {scenario}\n{stdout}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Argument `i` (a string) of every call named `name`.
fn string_args<'a>(result: &'a Value, name: &str, i: usize) -> Vec<&'a str> {
    calls_named(result, name)
        .into_iter()
        .map(|c| c[i].as_str().unwrap())
        .collect()
}

fn calls_named<'a>(result: &'a Value, name: &str) -> Vec<&'a Vec<Value>> {
    result["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_array().unwrap())
        .filter(|c| c[0] == name)
        .collect()
}

#[test]
fn command_line_switches() {
    for dir in patch_dirs() {
        let r = run(
            &dir,
            json!({"call": "config", "cmdline": "console=ttyS0 panic=-1"}),
        );
        assert_eq!(
            r["settings"],
            json!({"proc": true, "sys": true, "dev": true, "tmp": true, "lo": true,
                   "hostname": "nodeos", "hosts": true, "users": true, "resolv": true, "reap": true,
                   "cad": true, "exit": "poweroff", "shutdownTimeout": 5000}),
            "{}",
            dir.display()
        );
        assert_eq!(r["problems"], json!([]));
        assert_eq!(
            r["hosts"],
            "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\tnodeos\n"
        );

        let r = run(
            &dir,
            json!({"call": "config", "cmdline":
                "nodeos.mount=0 nodeos.tmp=on nodeos.hostname=box-1 nodeos.exit=reboot \
                 nodeos.shutdown_timeout=250 nodeos.cad=maybe nodeos.bogus nodeos.exit=sleep \
                 -- nodeos.reap=0"}),
        );
        let s = &r["settings"];
        assert_eq!(
            (&s["proc"], &s["sys"], &s["dev"], &s["tmp"]),
            (&json!(false), &json!(false), &json!(false), &json!(true)),
            "a specific mount switch wins over nodeos.mount"
        );
        assert_eq!(s["hostname"], "box-1");
        assert_eq!(
            s["exit"], "poweroff",
            "the last word wins, and a bad value keeps the default"
        );
        assert_eq!(s["shutdownTimeout"], 250);
        assert_eq!(s["cad"], true, "a bad boolean keeps the default");
        assert_eq!(s["reap"], true, "words after -- are init's arguments");
        let problems: Vec<&str> = r["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems
            .iter()
            .any(|p| p.starts_with("nodeos.bogus: unknown")));
        assert!(problems.iter().any(|p| p.starts_with("nodeos.cad=maybe:")));
        assert!(problems.iter().any(|p| p.starts_with("nodeos.exit=sleep:")));

        let r = run(
            &dir,
            json!({"call": "config", "cmdline": "a=\"b c\" nodeos.hostname= \"nodeos.lo=0\" nodeos.hostname=bad_name!"}),
        );
        assert_eq!(
            r["words"],
            json!([
                "a=b c",
                "nodeos.hostname=",
                "nodeos.lo=0",
                "nodeos.hostname=bad_name!"
            ])
        );
        assert_eq!(r["settings"]["lo"], false, "quotes group a word");
        assert_eq!(
            r["settings"]["hostname"], "nodeos",
            "an invalid name is refused"
        );
        assert_eq!(
            r["hosts"],
            "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\tnodeos\n"
        );
        let r = run(
            &dir,
            json!({"call": "config", "cmdline": "nodeos.hostname="}),
        );
        assert_eq!(r["settings"]["hostname"], "", "empty: keep the kernel's");
        assert_eq!(r["hosts"], "127.0.0.1\tlocalhost\n::1\tlocalhost\n");
    }
}

#[test]
fn resolv_conf_from_the_kernels_ip_autoconfiguration() {
    for dir in patch_dirs() {
        // /proc/net/pnp as net/ipv4/ipconfig.c writes it.
        let pnp = "#PROTO: DHCP\ndomain example.org\nnameserver 10.0.2.3\nnameserver 10.0.2.4\nbootserver 10.0.2.2\n";
        let r = run(&dir, json!({"call": "config", "cmdline": "", "pnp": pnp}));
        assert_eq!(
            r["resolv"],
            "# From the kernel's IP autoconfiguration (/proc/net/pnp).\n\
             domain example.org\nnameserver 10.0.2.3\nnameserver 10.0.2.4\n"
        );
        let r = run(
            &dir,
            json!({"call": "config", "cmdline": "", "pnp": "#MANUAL\n"}),
        );
        assert_eq!(r["resolv"], Value::Null, "no name server, no file");
    }
}

#[test]
fn start_mounts_names_and_arms_the_end_in_order() {
    for dir in patch_dirs() {
        let pnp = "#PROTO: DHCP\nnameserver 10.0.2.3\n";
        let r = run(
            &dir,
            json!({"call": "start", "cmdline": "console=ttyS0", "files": {"/proc/net/pnp": pnp}}),
        );
        assert_eq!(
            r["said"],
            json!([]),
            "{}: a clean boot is silent",
            dir.display()
        );
        let order: Vec<String> = r["calls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c[0] != "mkdir")
            .map(|c| match c[0].as_str().unwrap() {
                "mount" => format!("mount {}", c[2].as_str().unwrap()),
                "write" | "symlink" => {
                    format!("{} {}", c[0].as_str().unwrap(), c[1].as_str().unwrap())
                }
                other => other.to_owned(),
            })
            .collect();
        let writes = string_args(&r, "write", 1);
        assert_eq!(
            writes,
            [
                "/etc/hosts",
                "/etc/passwd",
                "/etc/group",
                "/etc/resolv.conf"
            ]
        );
        assert_eq!(
            order,
            [
                "mount /proc",
                "mount /sys",
                "mount /dev",
                "symlink /dev/fd",
                "symlink /dev/stdin",
                "symlink /dev/stdout",
                "symlink /dev/stderr",
                "mount /tmp",
                "setLinkUp",
                "sethostname",
                "write /etc/hosts",
                "write /etc/passwd",
                "write /etc/group",
                "write /etc/resolv.conf",
                "reboot",
                "armReaper",
                "reapOrphans",
                "setExitCommand"
            ],
            "{}",
            dir.display()
        );
        let mounts = calls_named(&r, "mount");
        assert_eq!(
            *mounts[0],
            json!([
                "mount",
                "proc",
                "/proc",
                "proc",
                MS_NOSUID | MS_NODEV | MS_NOEXEC,
                null
            ])
            .as_array()
            .unwrap()
            .clone()
        );
        assert_eq!(mounts[2][3], "devtmpfs");
        assert_eq!(mounts[3][3], "tmpfs");
        assert_eq!(mounts[3][5], "mode=1777");
        assert_eq!(
            calls_named(&r, "reboot")[0][1],
            0,
            "RB_DISABLE_CAD: Ctrl-Alt-Del signals PID 1"
        );
        assert_eq!(calls_named(&r, "setExitCommand")[0][1], RB_POWER_OFF);
        assert_eq!(calls_named(&r, "setLinkUp")[0][1], "lo");
        let links: Vec<(String, String)> = calls_named(&r, "symlink")
            .into_iter()
            .map(|c| {
                (
                    c[1].as_str().unwrap().to_owned(),
                    c[2].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            links,
            [
                ("/dev/fd", "/proc/self/fd"),
                ("/dev/stdin", "/proc/self/fd/0"),
                ("/dev/stdout", "/proc/self/fd/1"),
                ("/dev/stderr", "/proc/self/fd/2"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned())),
            "{}",
            dir.display()
        );
        let written = string_args(&r, "write", 2);
        let passwd: Vec<Vec<&str>> = written[1].lines().map(|l| l.split(':').collect()).collect();
        assert_eq!(passwd.len(), 2, "{passwd:?}");
        assert_eq!(passwd[0][..6], ["root", "x", "0", "0", "root", "/root"]);
        assert!(
            passwd[0][6].ends_with("node"),
            "root's shell is this node: {passwd:?}"
        );
        assert_eq!(passwd[1][..4], ["nobody", "x", "65534", "65534"]);
        assert_eq!(
            written[2], "root:x:0:\nnogroup:x:65534:\n",
            "Debian's name for 65534, which Node's own tests use"
        );
        assert!(
            calls_named(&r, "mkdir")
                .iter()
                .any(|c| c[1] == "/root" && c[2] == 0o700),
            "root's home exists"
        );
        assert!(
            written[3].ends_with("nameserver 10.0.2.3\n"),
            "{}",
            written[3]
        );
    }
}

#[test]
fn an_existing_dev_entry_is_kept_and_nodeos_dev_0_makes_no_links() {
    for dir in patch_dirs() {
        let r = run(
            &dir,
            json!({"call": "start", "cmdline": "console=ttyS0", "files": {"/dev/stdin": "an image's own"}}),
        );
        assert_eq!(r["said"], json!([]), "{}", dir.display());
        let linked = string_args(&r, "symlink", 1);
        assert_eq!(
            linked,
            ["/dev/fd", "/dev/stdout", "/dev/stderr"],
            "{}",
            dir.display()
        );

        let r = run(
            &dir,
            json!({"call": "start", "cmdline": "console=ttyS0 nodeos.dev=0"}),
        );
        assert!(calls_named(&r, "symlink").is_empty(), "{}", dir.display());
    }
}

#[test]
fn switches_turn_steps_off_and_failures_do_not_stop_the_boot() {
    for dir in patch_dirs() {
        let r = run(
            &dir,
            json!({"call": "start",
                   "cmdline": "nodeos.proc=0 nodeos.dev=0 nodeos.hosts=0 nodeos.users=0 nodeos.reap=0 nodeos.cad=0 nodeos.exit=reboot nodeos.lo=0",
                   "fail": {"mount /sys": -16, "sethostname": -1}}),
        );
        let said: Vec<&str> = r["said"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(
            said,
            [
                "nodeos: mount /sys failed: EBUSY: resource busy or locked, mount '/sys'",
                "nodeos: set the host name failed: EPERM: operation not permitted, sethostname",
            ],
            "{}: one line per failed step",
            dir.display()
        );
        let targets = string_args(&r, "mount", 2);
        assert_eq!(
            targets,
            ["/proc", "/sys", "/tmp"],
            "the boot went on after /sys"
        );
        assert!(
            calls_named(&r, "write").is_empty(),
            "no /etc/hosts, /etc/passwd, /etc/group; no pnp for resolv.conf"
        );
        assert!(calls_named(&r, "armReaper").is_empty());
        assert!(
            calls_named(&r, "reboot").is_empty(),
            "Ctrl-Alt-Del left to the kernel"
        );
        assert!(calls_named(&r, "setLinkUp").is_empty());
        assert_eq!(calls_named(&r, "setExitCommand")[0][1], RB_AUTOBOOT);
        let last = r["calls"].as_array().unwrap().last().unwrap();
        assert_eq!(
            *last,
            json!(["umount", "/proc", 0]),
            "/proc goes away at the end of the start"
        );

        let r = run(
            &dir,
            json!({"call": "start", "cmdline": "nodeos.exit=none nodeos.mount=0"}),
        );
        assert!(
            calls_named(&r, "setExitCommand").is_empty(),
            "nothing armed: node exits"
        );
        let targets = string_args(&r, "mount", 2);
        assert_eq!(targets, ["/proc"], "only to read the command line");
        assert_eq!(
            *r["calls"].as_array().unwrap().last().unwrap(),
            json!(["umount", "/proc", 0])
        );
    }
}

#[test]
fn signals_run_the_shutdown_hooks_then_end() {
    for dir in patch_dirs() {
        let r = run(
            &dir,
            json!({"call": "start", "cmdline": "", "signal": "SIGTERM", "hooks": ["ok", "throw"]}),
        );
        assert_eq!(r["exit"], 143, "{}: 128 + SIGTERM", dir.display());
        let hooks = calls_named(&r, "hook");
        assert_eq!(hooks.len(), 2);
        assert!(hooks.iter().all(|h| h[2] == "SIGTERM"));
        assert_eq!(
            r["said"],
            json!(["nodeos: shutdown hook failed: hook failed on purpose"])
        );

        // Ctrl-Alt-Del arrives as SIGINT; a hook that never settles is cut
        // off after nodeos.shutdown_timeout.
        let r = run(
            &dir,
            json!({"call": "start", "cmdline": "nodeos.shutdown_timeout=300", "signal": "SIGINT", "hooks": ["hang"]}),
        );
        assert_eq!(r["exit"], 130);
        assert_eq!(
            r["said"],
            json!(["nodeos: shutdown hooks still running after 300 ms; ending anyway"])
        );
        let ms = r["ms"].as_u64().unwrap();
        assert!((300..5000).contains(&ms), "ended after {ms} ms");

        // An app that handles SIGTERM itself decides.
        let r = run(
            &dir,
            json!({"call": "start", "cmdline": "", "signal": "SIGTERM", "hooks": ["ok"], "appListens": true}),
        );
        assert_eq!(r["exit"], Value::Null);
        assert!(calls_named(&r, "hook").is_empty());
        assert_eq!(calls_named(&r, "app").len(), 1);
    }
}

/// The patch applies to the tree it is for, prepared as the build prepares
/// it (Debian's repack plus Debian's series for 18).
#[test]
#[ignore = "needs the Node sources in the download dir (cargo xtask fetch); run with --ignored"]
fn node_18_patch_applies_to_the_debian_tree() {
    let dl = dl_dir();
    let orig = dl.join("nodejs_18.20.4+dfsg.orig.tar.xz");
    let series = dl.join("nodejs_18.20.4+dfsg-1~deb12u2.debian.tar.xz");
    for f in [&orig, &series] {
        assert!(
            f.is_file(),
            "{} is missing: run `cargo xtask fetch`",
            f.display()
        );
    }
    let tree = tempfile::tempdir().unwrap();
    let src = tree.path().join("node");
    untar(&orig, &src, 1);
    let deb = tree.path().join("debian");
    untar(&series, &deb, 0);
    let patches = deb.join("debian/patches");
    let list = std::fs::read_to_string(patches.join("series")).unwrap();
    for name in list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        patch(&src, &patches.join(name.split_whitespace().next().unwrap()));
    }
    patch(
        &src,
        &project().join("patches/node-18.20.4/0001-nodeos-init.patch"),
    );
    assert!(src.join("src/node_nodeos.cc").is_file());
}

#[test]
#[ignore = "needs Debian's Node 22 repack in the download dir; run with --ignored"]
fn node_22_patch_applies_to_the_debian_repack() {
    let orig = dl_dir().join("nodejs_22.22.2+dfsg+~cs22.19.15.orig.tar.xz");
    assert!(
        orig.is_file(),
        "{} is missing: fetch Node 22's sources",
        orig.display()
    );
    let tree = tempfile::tempdir().unwrap();
    let src = tree.path().join("node");
    untar(&orig, &src, 1);
    patch(
        &src,
        &project().join("patches/node-22.22.2/0001-nodeos-init.patch"),
    );
    assert!(src.join("src/node_nodeos.cc").is_file());
}

fn dl_dir() -> PathBuf {
    match std::env::var_os("NODEOS_DL_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => match std::env::var_os("NODEOS_CACHE_DIR") {
            Some(c) if !c.is_empty() => PathBuf::from(c).join("dl"),
            _ => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/nodeos/dl"),
        },
    }
}

fn untar(archive: &Path, dest: &Path, strip: u32) {
    std::fs::create_dir_all(dest).unwrap();
    let ok = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dest)
        .arg(format!("--strip-components={strip}"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "unpacking {}", archive.display());
}

fn patch(src: &Path, file: &Path) {
    let out = Command::new("patch")
        .current_dir(src)
        .args(["-p1", "--forward", "--batch", "-i"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} does not apply:\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}
