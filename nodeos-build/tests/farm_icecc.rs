//! icecream on loopback: a scheduler and two daemons started here (a
//! client-side one that never compiles for others, and a "farm node"),
//! compiles forced onto the farm node through the launcher's setup, objects
//! compared byte for byte with a local build, and the farm killed mid-build.
//!
//! The farm node needs CAP_SYS_CHROOT to unpack environments: as root it
//! runs as the `icecc` user (iceccd drops to it); otherwise it runs in a
//! user namespace of its own (`unshare --user --map-current-user
//! --keep-caps`), which needs unprivileged user namespaces.

mod support;

use nodeos_build::launcher::{icecc, Compilers, Launcher};
use nodeos_build::{Arch, Env};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

struct Farm {
    sched: Daemon,
    local: Daemon,
    remote: Daemon,
    sched_port: u16,
    remote_port: u16,
    local_socket: PathBuf,
}

/// The user iceccd drops to when started as root, and its uid/gid.
fn daemon_user() -> (String, u32, u32) {
    for name in ["icecc", "nobody"] {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: getpwnam returns a pointer into static storage or null;
        // read at once, on this thread.
        let pw = unsafe { libc::getpwnam(c.as_ptr()) };
        if !pw.is_null() {
            let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            return (name.into(), uid, gid);
        }
    }
    panic!("neither an `icecc` nor a `nobody` user exists");
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

fn start_farm(dir: &Path) -> Farm {
    need("icecc", "icecc");
    let iceccd = need("iceccd", "icecc").to_path_buf();
    let scheduler = need("icecc-scheduler", "icecc").to_path_buf();
    let d = dir.join("daemons");
    std::fs::create_dir_all(&d).unwrap();
    let root = is_root();
    let user = if root {
        // iceccd and the scheduler drop to this user: it must reach and
        // write their dir.
        let (name, uid, gid) = daemon_user();
        use std::os::unix::fs::PermissionsExt;
        let mut p = d.clone();
        while let Some(parent) = p.parent() {
            if parent == Path::new("/") {
                break;
            }
            if parent.starts_with(std::env::temp_dir()) && parent != std::env::temp_dir() {
                std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            p = parent.to_path_buf();
        }
        chown(&d, uid, gid);
        Some(name)
    } else {
        None
    };
    let net = format!("nodeostest{}", std::process::id());
    let sched_port = free_port(true);
    let remote_port = free_port(false);
    let user_args = |c: &mut Command| {
        if let Some(u) = &user {
            c.args(["-u", u]);
        }
    };

    let mut c = Command::new(&scheduler);
    c.env("ICECC_TESTS", "1")
        .args(["-p", &sched_port.to_string(), "-n", &net, "-vvv", "-l"])
        .arg(d.join("scheduler.log"));
    user_args(&mut c);
    let sched = Daemon::start("icecc-scheduler", c, d.join("scheduler.log"));

    let local_socket = d.join("local.sock");
    let mut c = Command::new(&iceccd);
    c.env("ICECC_TESTS", "1")
        .env("ICECC_TEST_SOCKET", &local_socket)
        .args([
            "--no-remote",
            "-m",
            "2",
            "-vvv",
            "-n",
            &net,
            "-N",
            "localice",
        ])
        .args(["-s", &format!("127.0.0.1:{sched_port}")])
        .arg("-b")
        .arg(d.join("envs-local"))
        .arg("-l")
        .arg(d.join("local.log"));
    user_args(&mut c);
    let local = Daemon::start("iceccd (client side)", c, d.join("local.log"));

    // The scheduler skips a node whose CPUs look busy (idle under 10%), and
    // this machine may be busy with other work: the farm node reads an idle
    // /proc/stat, bound over the real one in a mount namespace of its own,
    // so whether the test's jobs go remote does not depend on the machine's
    // load. Its compiles are real.
    let fake_stat = d.join("idle-proc-stat");
    std::fs::write(
        &fake_stat,
        "cpu  100 0 100 100000 0 0 0 0 0 0\ncpu0 50 0 50 50000 0 0 0 0 0 0\ncpu1 50 0 50 50000 0 0 0 0 0 0\n",
    )
    .unwrap();
    let mut c = Command::new(need("unshare", "util-linux"));
    if !root {
        c.args(["--user", "--map-current-user", "--keep-caps"]);
    }
    c.args([
        "--mount",
        "sh",
        "-c",
        r#"mount --bind "$0" /proc/stat && exec "$@""#,
    ])
    .arg(&fake_stat)
    .arg(&iceccd);
    c.env("ICECC_TESTS", "1")
        .env("ICECC_TEST_SOCKET", d.join("remote.sock"))
        .args([
            "-p",
            &remote_port.to_string(),
            "-m",
            "2",
            "-vvv",
            "-n",
            &net,
            "-N",
            "remoteice",
        ])
        .args(["-s", &format!("127.0.0.1:{sched_port}")])
        .arg("-b")
        .arg(d.join("envs-remote"))
        .arg("-l")
        .arg(d.join("remote.log"));
    user_args(&mut c);
    let remote = Daemon::start("iceccd (farm node)", c, d.join("remote.log"));

    let mut farm = Farm {
        sched,
        local,
        remote,
        sched_port,
        remote_port,
        local_socket,
    };
    wait_for(
        "both iceccd to log in to the scheduler",
        Duration::from_secs(60),
        || {
            farm.sched.assert_running();
            farm.local.assert_running();
            farm.remote.assert_running();
            farm.local.log_text().contains("Connected to scheduler")
                && farm.remote.log_text().contains("Connected to scheduler")
        },
    );
    let log = farm.remote.log_text();
    if log.contains("Cannot use chroot") {
        panic!("the farm node cannot chroot, so it takes no remote jobs: run as root, or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 / kernel.apparmor_restrict_unprivileged_userns=0)\n{log}");
    }
    farm
}

fn host_compilers() -> Compilers {
    let v = Command::new("gcc")
        .arg("-dumpfullversion")
        .output()
        .unwrap();
    Compilers {
        arch: Arch::X86_64,
        toolchain_key: format!("host-gcc-{}", String::from_utf8_lossy(&v.stdout).trim()),
        cc: need("gcc", "gcc"),
        cxx: need("g++", "g++"),
    }
}

/// Client-side settings: the test's own local daemon, jobs forced onto
/// another daemon even though it is on this machine, a debug log whose
/// lines say where each compile went.
fn client_env(farm: &Farm, client_log: &Path) -> Vec<(String, String)> {
    vec![
        (
            "ICECC_TEST_SOCKET".into(),
            farm.local_socket.display().to_string(),
        ),
        ("ICECC_TEST_REMOTEBUILD".into(), "1".into()),
        ("ICECC_PREFERRED_HOST".into(), "remoteice".into()),
        ("ICECC_DEBUG".into(), "debug".into()),
        ("ICECC_LOGFILE".into(), client_log.display().to_string()),
    ]
}

/// Compiles the client log says went to the farm node.
fn remote_compiles(client_log: &Path, remote_port: u16) -> usize {
    std::fs::read_to_string(client_log)
        .unwrap_or_default()
        .matches(&format!("Have to use host 127.0.0.1:{remote_port} "))
        .count()
}

/// Compiles the client log says ran here: by the client itself, or by
/// the local daemon ("building myself, but telling localhost").
fn local_compiles(client_log: &Path) -> usize {
    let log = std::fs::read_to_string(client_log).unwrap_or_default();
    log.matches("<building_local>").count()
        + log
            .matches("building myself, but telling localhost")
            .count()
}

/// The client log's last lines, for failure messages.
fn log_tail(client_log: &Path) -> String {
    let log = std::fs::read_to_string(client_log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

#[test]
fn icecream_farm_compiles_byte_identical_objects_and_survives_losing_the_farm() {
    let _env = env_lock();
    let _vars = EnvVars::cleared(&["ICECC_TEST_SOCKET", "ICECC_SCHEDULER"]);
    need("make", "make");
    let t = tempfile::tempdir().unwrap();
    let env = Env::for_tests(
        t.path(),
        &Env::workspace_root_from(env!("CARGO_MANIFEST_DIR")),
    );
    let compilers = host_compilers();

    // The reference: a plain local build.
    let set = CompileSet::new(&t.path().join("src"), 16, 4);
    let cc = compilers.cc.display().to_string();
    let cxx = compilers.cxx.display().to_string();
    set.build(2, &cc, &cxx, &[]);
    let reference = set.object_bytes();

    // Before any farm exists, the launcher refuses in one line.
    std::env::set_var("ICECC_TEST_SOCKET", t.path().join("no-such.sock"));
    let icecc = Launcher::find("icecc").unwrap();
    let e = icecc.prepare(&env, &compilers, &set.dir).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("no local iceccd answers") && !msg.contains('\n'),
        "{msg}"
    );

    let mut farm = start_farm(t.path());
    std::env::set_var("ICECC_TEST_SOCKET", &farm.local_socket);
    // A scheduler that does not answer is named.
    let dead = free_port(false);
    std::env::set_var("ICECC_SCHEDULER", format!("127.0.0.1:{dead}"));
    let msg = format!(
        "{:#}",
        icecc.prepare(&env, &compilers, &set.dir).unwrap_err()
    );
    assert!(
        msg.contains("ICECC_SCHEDULER") && !msg.contains('\n'),
        "{msg}"
    );
    std::env::set_var("ICECC_SCHEDULER", format!("127.0.0.1:{}", farm.sched_port));

    // The environment is packed once and cached by the toolchain's key.
    let setup = icecc.prepare(&env, &compilers, &set.dir).unwrap();
    let (k, v) = &setup.env[0];
    assert_eq!(k, "ICECC_VERSION");
    let tarball = PathBuf::from(v);
    assert!(
        tarball.starts_with(env.cache_dir.join("out/icecc-env")),
        "{}",
        tarball.display()
    );
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&tarball)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for f in [
        "usr/bin/gcc",
        "usr/bin/g++",
        "usr/bin/cc1",
        "usr/bin/cc1plus",
        "usr/bin/as",
    ] {
        assert!(
            listing.lines().any(|l| l == f),
            "{f} not in {}:\n{listing}",
            tarball.display()
        );
    }
    let again = icecc.prepare(&env, &compilers, &set.dir).unwrap();
    assert_eq!(
        again.env, setup.env,
        "a second build reuses the environment"
    );

    // Every compile on the farm node, objects identical to the local ones.
    let client_log = t.path().join("icecc-client.log");
    let mut build_env = setup.env.clone();
    build_env.extend(client_env(&farm, &client_log));
    set.clean();
    set.build(
        4,
        &setup.wrap(&compilers.cc),
        &setup.wrap(&compilers.cxx),
        &build_env,
    );
    set.assert_same_objects(&reference);
    let remote = remote_compiles(&client_log, farm.remote_port);
    eprintln!(
        "icecc: {remote} of {} compiles ran on the farm node ({} local)",
        set.objects.len(),
        local_compiles(&client_log)
    );
    assert_eq!(
        remote,
        set.objects.len(),
        "every compile goes remote:\n{}",
        std::fs::read_to_string(&client_log).unwrap_or_default()
    );
    assert!(farm
        .remote
        .log_text()
        .contains("Remote compilation completed with exit code 0"));

    // The farm disappears mid-build: the build still succeeds, the rest is
    // compiled here, and the objects are still the same.
    let client_log = t.path().join("icecc-client-2.log");
    let mut build_env = setup.env.clone();
    build_env.extend(client_env(&farm, &client_log));
    set.clean();
    let mut make = set
        .make(
            2,
            &setup.wrap(&compilers.cc),
            &setup.wrap(&compilers.cxx),
            &build_env,
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "three compiles on the farm node",
        Duration::from_secs(300),
        || remote_compiles(&client_log, farm.remote_port) >= 3,
    );
    farm.remote.kill();
    farm.sched.kill();
    let status = make.wait().unwrap();
    assert!(
        status.success(),
        "the build failed when the farm went away:\n{}",
        std::fs::read_to_string(&client_log).unwrap_or_default()
    );
    set.assert_same_objects(&reference);
    let (remote, local) = (
        remote_compiles(&client_log, farm.remote_port),
        local_compiles(&client_log),
    );
    eprintln!(
        "icecc, farm killed mid-build: {remote} sent to the farm node, {local} compiled here \
         (a job the kill cut off counts in both), {} objects",
        set.objects.len()
    );
    assert!(
        remote >= 3 && local >= 1 && remote + local >= set.objects.len(),
        "compiles after the farm went must run here:\n{}",
        log_tail(&client_log)
    );
    farm.local.assert_running();
}

/// The toolchain `cargo xtask toolchain` built, found in NODEOS_CACHE_DIR
/// (only read: the environment is made in a scratch cache).
fn built_toolchain(arch: Arch) -> Option<(String, PathBuf)> {
    let cache = std::env::var_os("NODEOS_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/nodeos")))?;
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(cache.join("out/toolchain"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.join("bin")
                .join(format!("{}-gcc", arch.triple()))
                .is_file()
        })
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    found.sort();
    found.pop()
}

#[test]
#[ignore = "needs a built musl toolchain (cargo xtask toolchain); run with --ignored"]
fn icecream_farm_compiles_with_our_musl_toolchain() {
    let _env = env_lock();
    let _vars = EnvVars::cleared(&["ICECC_TEST_SOCKET", "ICECC_SCHEDULER"]);
    let arch = Arch::X86_64;
    let (key, dir) = built_toolchain(arch).unwrap_or_else(|| {
        panic!("no {arch} toolchain under $NODEOS_CACHE_DIR/out/toolchain (build one: cargo xtask toolchain --arch x86_64)")
    });
    let tool = |t: &str| dir.join("bin").join(format!("{}-{t}", arch.triple()));
    let compilers = Compilers {
        arch,
        toolchain_key: key,
        cc: tool("gcc"),
        cxx: tool("g++"),
    };
    let t = tempfile::tempdir().unwrap();
    let env = Env::for_tests(
        t.path(),
        &Env::workspace_root_from(env!("CARGO_MANIFEST_DIR")),
    );
    let set = CompileSet::new(&t.path().join("src"), 12, 6);
    let (cc, cxx) = (
        compilers.cc.display().to_string(),
        compilers.cxx.display().to_string(),
    );
    set.build(2, &cc, &cxx, &[]);
    let reference = set.object_bytes();

    let tarball = icecc::environment(&env, &compilers).unwrap();
    // The assembler in the environment is the toolchain's, for its target.
    let as_out = t.path().join("env-as");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -xzOf '{}' usr/bin/as > '{}' && chmod +x '{}' && '{}' --version",
            tarball.display(),
            as_out.display(),
            as_out.display(),
            as_out.display()
        ))
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&st.stdout);
    assert!(
        version.contains(arch.triple()),
        "the environment's as is not {}'s:\n{version}",
        arch.triple()
    );

    let farm = start_farm(t.path());
    std::env::set_var("ICECC_TEST_SOCKET", &farm.local_socket);
    let setup = Launcher::find("icecc")
        .unwrap()
        .prepare(&env, &compilers, &set.dir)
        .unwrap();
    let client_log = t.path().join("icecc-client.log");
    let mut build_env = setup.env.clone();
    build_env.extend(client_env(&farm, &client_log));
    set.clean();
    set.build(
        4,
        &setup.wrap(&compilers.cc),
        &setup.wrap(&compilers.cxx),
        &build_env,
    );
    set.assert_same_objects(&reference);
    let remote = remote_compiles(&client_log, farm.remote_port);
    eprintln!(
        "icecc with {}: {remote} of {} compiles on the farm node, objects byte-identical",
        compilers.cc.display(),
        set.objects.len()
    );
    assert_eq!(remote, set.objects.len());
}
