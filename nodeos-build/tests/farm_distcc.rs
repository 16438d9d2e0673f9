//! distcc with a cross compiler on loopback: the client calls the compiler
//! by its absolute path in *its* toolchain dir; distccd, started here, maps
//! the compiler's file name to *its own* copy through DISTCC_CMDLIST (as
//! each farm node would list its toolchain), compiles, and the objects
//! equal a local build. Then distccd is killed mid-build and the build
//! still succeeds, compiled locally.

mod support;

use nodeos_build::launcher::{Compilers, Launcher};
use nodeos_build::{Arch, Env};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

/// A toolchain dir named like ours whose compilers are the host's (links
/// to them: gcc finds its parts through the link).
fn fake_cross_toolchain(dir: &Path) -> (PathBuf, PathBuf) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let cc = bin.join("x86_64-linux-musl-gcc");
    let cxx = bin.join("x86_64-linux-musl-g++");
    std::os::unix::fs::symlink(need("gcc", "gcc"), &cc).unwrap();
    std::os::unix::fs::symlink(need("g++", "g++"), &cxx).unwrap();
    (cc, cxx)
}

fn compiles_served(log: &str) -> usize {
    log.matches("COMPILE_OK").count()
}

/// (remote, local) compiles in distcc's client log ("compile x.c on HOST
/// completed ok"; the local preprocessing lines say "cpp x.c on …").
fn client_counts(client_log: &Path, port: u16) -> (usize, usize) {
    let log = std::fs::read_to_string(client_log).unwrap_or_default();
    let compiled_on = |host: &str| {
        log.lines()
            .filter(|l| {
                l.contains("] compile ") && l.ends_with(&format!(" on {host} completed ok"))
            })
            .count()
    };
    (
        compiled_on(&format!("127.0.0.1:{port}/4")),
        compiled_on("localhost"),
    )
}

#[test]
fn distcc_compiles_a_cross_named_compiler_remotely_and_falls_back_when_distccd_goes() {
    let _env = env_lock();
    let _vars = EnvVars::cleared(&["DISTCC_HOSTS", "DISTCC_DIR"]);
    let distccd = need("distccd", "distcc");
    need("distcc", "distcc");
    need("make", "make");
    let t = tempfile::tempdir().unwrap();
    // distccd drops root for `nobody`: it must read the command list.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = Env::for_tests(
        t.path(),
        &Env::workspace_root_from(env!("CARGO_MANIFEST_DIR")),
    );
    let (cc, cxx) = fake_cross_toolchain(&t.path().join("client-toolchain"));
    let (node_cc, node_cxx) = fake_cross_toolchain(&t.path().join("node-toolchain"));
    let compilers = Compilers {
        arch: Arch::X86_64,
        toolchain_key: "test".into(),
        cc: cc.clone(),
        cxx: cxx.clone(),
    };
    let set = CompileSet::new(&t.path().join("src"), 16, 4);
    set.build(
        2,
        &cc.display().to_string(),
        &cxx.display().to_string(),
        &[],
    );
    let reference = set.object_bytes();
    set.clean();

    let port = free_port(false);
    std::env::set_var("DISTCC_HOSTS", format!("127.0.0.1:{port}/4"));
    std::env::set_var("DISTCC_DIR", t.path().join("distcc-state"));
    std::fs::create_dir_all(t.path().join("distcc-state")).unwrap();
    let launcher = Launcher::find("distcc").unwrap();
    let msg = format!(
        "{:#}",
        launcher.prepare(&env, &compilers, &set.dir).unwrap_err()
    );
    assert!(msg.contains("no distccd") && !msg.contains('\n'), "{msg}");

    let cmdlist = t.path().join("cmdlist");
    std::fs::write(
        &cmdlist,
        format!("{}\n{}\n", node_cc.display(), node_cxx.display()),
    )
    .unwrap();
    std::fs::set_permissions(&cmdlist, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = t.path().join("distccd.log");
    let mut c = Command::new(&distccd);
    c.env("DISTCC_CMDLIST", &cmdlist)
        .args([
            "--daemon",
            "--no-detach",
            "--log-stderr",
            "--log-level=info",
            "-j",
            "4",
        ])
        .args([
            "--listen",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--allow",
            "127.0.0.1",
        ]);
    if is_root() {
        c.args(["--user", "nobody"]);
    }
    let mut daemon = Daemon::start("distccd", c, log.clone());
    wait_for("distccd to listen", Duration::from_secs(20), || {
        daemon.assert_running();
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let setup = launcher.prepare(&env, &compilers, &set.dir).unwrap();
    let no_fallback = vec![("DISTCC_FALLBACK".to_string(), "0".to_string())];
    set.build(4, &setup.wrap(&cc), &setup.wrap(&cxx), &no_fallback);
    set.assert_same_objects(&reference);
    // distccd logs a job after it has sent the object back, so the last
    // jobs' lines may trail the build by a moment.
    let all = set.objects.len();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while compiles_served(&daemon.log_text()) < all && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let served = compiles_served(&daemon.log_text());
    eprintln!("distcc: {served} of {} compiles ran on distccd (through DISTCC_CMDLIST), objects byte-identical", set.objects.len());
    assert_eq!(served, all, "{}", daemon.log_text());
    assert!(
        daemon.log_text().contains(&node_cc.display().to_string()),
        "distccd ran its own compiler path"
    );

    // distccd killed mid-build: distcc compiles the rest here.
    set.clean();
    let client_log = t.path().join("distcc-client.log");
    let mut build_env = setup.env.clone();
    build_env.push(("DISTCC_LOG".into(), client_log.display().to_string()));
    let mut make = set
        .make(2, &setup.wrap(&cc), &setup.wrap(&cxx), &build_env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "three compiles on distccd",
        Duration::from_secs(300),
        || client_counts(&client_log, port).0 >= 3,
    );
    daemon.kill();
    let st = make.wait().unwrap();
    assert!(st.success(), "the build failed when distccd went away");
    set.assert_same_objects(&reference);
    let (remote, local) = client_counts(&client_log, port);
    eprintln!(
        "distcc, distccd killed mid-build: {remote} remote, {local} local of {}",
        set.objects.len()
    );
    assert!(
        remote >= 3 && local >= 1 && remote + local == set.objects.len(),
        "{}",
        std::fs::read_to_string(&client_log).unwrap_or_default()
    );
}
