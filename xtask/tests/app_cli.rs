//! `--app` and `-p` as users meet them: a refused app directory stops every
//! command that takes it with one line, before any build starts, and bad
//! `-p` values are usage errors. (Each refusal rule itself, on real files of
//! each kind, is tested in the initramfs crate's tests/app.rs.)

use std::path::Path;
use std::process::{Command, Output};

/// Runs xtask with an empty cache, target and download dir, offline: a run
/// that got past the app check would fail at once in the fetch, never
/// build.
fn xtask(args: &[&str], scratch: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .arg("--offline")
        .env("NODEOS_CACHE_DIR", scratch.join("cache"))
        .env("NODEOS_DL_DIR", scratch.join("dl"))
        .env("NODEOS_TARGET_DIR", scratch.join("target"))
        .output()
        .unwrap()
}

fn one_line_error(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "exit status 1 expected:\n{err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Nothing was built or fetched: no build dir, no download.
fn nothing_started(scratch: &Path) {
    for d in ["cache/build", "cache/out", "dl"] {
        let p = scratch.join(d);
        let empty = std::fs::read_dir(&p).map_or(true, |mut r| r.next().is_none());
        assert!(empty, "{} is not empty: a build started", p.display());
    }
}

fn app_dir(make: impl FnOnce(&Path)) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("index.js"), "console.log(1)\n").unwrap();
    make(d.path());
    d
}

#[test]
fn refused_apps_stop_every_command_before_any_build() {
    use std::os::unix::fs::symlink;
    let cases: Vec<(&str, tempfile::TempDir, &str)> = vec![
        (
            "socket",
            app_dir(|p| {
                std::mem::forget(std::os::unix::net::UnixListener::bind(p.join("s.sock")).unwrap())
            }),
            "is a socket",
        ),
        (
            "fifo",
            app_dir(|p| {
                let c = std::ffi::CString::new(p.join("pipe").to_str().unwrap()).unwrap();
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
            }),
            "is a FIFO",
        ),
        (
            "absolute symlink",
            app_dir(|p| symlink("/etc/passwd", p.join("pw")).unwrap()),
            "absolute path",
        ),
        (
            "escaping symlink",
            app_dir(|p| symlink("../../secret", p.join("up")).unwrap()),
            "leads outside the app directory",
        ),
        (
            "symlink loop",
            app_dir(|p| {
                symlink("b", p.join("a")).unwrap();
                symlink("a", p.join("b")).unwrap();
            }),
            "is a loop",
        ),
        (
            "non-UTF-8 name",
            app_dir(|p| {
                use std::os::unix::ffi::OsStrExt;
                std::fs::write(p.join(std::ffi::OsStr::from_bytes(b"bad\xff.js")), "").unwrap()
            }),
            "is not valid UTF-8",
        ),
        (
            "native addon",
            app_dir(|p| std::fs::write(p.join("binding.node"), "\x7fELF").unwrap()),
            "native addon",
        ),
        (
            "too big",
            app_dir(|p| std::fs::write(p.join("big"), vec![0u8; 70 << 20]).unwrap()),
            "--app-max-size",
        ),
        (
            "no entry",
            app_dir(|p| std::fs::remove_file(p.join("index.js")).unwrap()),
            "index.js",
        ),
    ];
    let publish = ["-p", "18080:80"];
    for (what, dir, says) in &cases {
        let app = dir.path().to_str().unwrap();
        for cmd in ["image", "qemu-test", "run", "bench"] {
            let scratch = tempfile::tempdir().unwrap();
            let mut args = vec![cmd, "--arch", "x86_64", "--app", app];
            if cmd == "bench" {
                args.extend(publish);
            }
            let o = xtask(&args, scratch.path());
            let err = one_line_error(&o);
            assert!(err.contains(says), "{cmd} with a {what}: {err}");
            nothing_started(scratch.path());
        }
    }
}

#[test]
fn a_raised_limit_lets_a_big_app_through() {
    let dir = app_dir(|p| std::fs::write(p.join("big"), vec![0u8; 3 << 20]).unwrap());
    let app = dir.path().to_str().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let o = xtask(
        &[
            "image",
            "--arch",
            "x86_64",
            "--app",
            app,
            "--app-max-size",
            "2M",
        ],
        scratch.path(),
    );
    assert!(one_line_error(&o).contains("more than the limit of 2M"));
    // Raised, the app is accepted and the run goes on to the build, which
    // stops at the first source missing from the (empty, offline) download
    // dir.
    let o = xtask(
        &[
            "image",
            "--arch",
            "x86_64",
            "--app",
            app,
            "--app-max-size",
            "4M",
        ],
        scratch.path(),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(!err.contains("limit"), "{err}");
    assert!(err.contains("--offline"), "the build started: {err}");
}

#[test]
fn bad_app_and_port_flags_are_usage_errors() {
    let scratch = tempfile::tempdir().unwrap();
    for args in [
        &["run", "-p", "8080"][..],
        &["run", "-p", "0:80"][..],
        &["run", "-p", "8080:99999"][..],
        &["image", "--entry", "x.js"][..],
        &["image", "--app-max-size", "2M"][..],
        &["image", "--app", ".", "--app-max-size", "lots"][..],
    ] {
        let o = xtask(args, scratch.path());
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        // clap's message: the error in one line first, then its hint
        // and the usage line; never a backtrace.
        let err = String::from_utf8_lossy(&o.stderr);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && err.contains(args[1]),
            "{args:?}:\n{err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
    }
}

#[test]
fn a_busy_host_port_is_refused_before_boot() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let dir = app_dir(|_| {});
    let scratch = tempfile::tempdir().unwrap();
    let fwd = format!("{port}:80");
    let o = xtask(
        &[
            "run",
            "--arch",
            "x86_64",
            "--app",
            dir.path().to_str().unwrap(),
            "-p",
            &fwd,
        ],
        scratch.path(),
    );
    let err = one_line_error(&o);
    assert!(
        err.contains(&port.to_string()) && err.contains("free host port"),
        "{err}"
    );
    nothing_started(scratch.path());
}

#[test]
fn ports_need_an_app() {
    let scratch = tempfile::tempdir().unwrap();
    let o = xtask(
        &["qemu-test", "--arch", "x86_64", "-p", "8080:80"],
        scratch.path(),
    );
    let err = one_line_error(&o);
    assert!(err.contains("--app"), "{err}");
}
