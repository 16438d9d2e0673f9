//! The expect engine and the reaping, over fake consoles: shell scripts that
//! speak on the same pipes QEMU would, through the same code.

use super::*;
use crate::{Arch, TIMEOUT_MULTIPLIER_VAR};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Env var that turns the `helper_*` tests (ignored otherwise) on when this
/// test binary is re-executed by another test.
const HELPER_VAR: &str = "QEMU_TESTS_HELPER";

fn fake_guest(dir: &Path, script: &str) -> Guest {
    fake_guest_with_window(dir, script, console::WINDOW_LIMIT)
}

fn fake_guest_with_window(dir: &Path, script: &str, window: usize) -> Guest {
    // Scripts end with `exec` so that killing the shell's pid kills the
    // process holding the pipes (as with QEMU, a single process).
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let accel = AccelChoice {
        accel: Accel::Tcg,
        reason: "TCG: fake console".into(),
    };
    Guest::spawn_with_window(
        &mut cmd,
        &dir.join("fake.log"),
        "fake guest".into(),
        accel,
        1.0,
        window,
    )
    .unwrap()
}

/// Whether a process is gone: no /proc entry, or a zombie whose reaping is
/// up to whoever adopted it (never us: we only check after our own wait).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if process_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    process_gone(pid)
}

const SEC: Duration = Duration::from_secs(1);

#[test]
fn finds_substrings_and_regexes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut guest = fake_guest(
        dir.path(),
        r"printf 'booting\nMARK pid=1 machine=x86_64\n'; sleep 0.2; printf 'later\n'; exec sleep 60",
    );
    let m = guest
        .expect(
            Pattern::regex(r"pid=(\d+) machine=(\S+)").unwrap(),
            10 * SEC,
        )
        .unwrap();
    assert_eq!(m.group(1), Some("1"));
    assert_eq!(m.group(2), Some("x86_64"));
    assert!(m.before.contains("booting"));
    guest.expect("later", 10 * SEC).unwrap();
    // A match is consumed: the same text is not found twice.
    let err = guest.expect("MARK", SEC / 5).unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[test]
fn timeout_reports_the_tail_and_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut guest = fake_guest(
        dir.path(),
        r"for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45; do echo line $i; done; exec sleep 60",
    );
    guest.expect("line 45", 10 * SEC).unwrap();
    let t0 = Instant::now();
    let err = guest.expect("never printed", SEC / 2).unwrap_err();
    let waited = t0.elapsed();
    assert!(waited >= SEC / 2 && waited < 5 * SEC, "{waited:?}");
    assert!(err.is_timeout());
    let msg = err.to_string();
    assert!(
        msg.contains("fake guest: timed out after 0.5 s waiting for \"never printed\""),
        "{msg}"
    );
    assert!(
        msg.contains(&dir.path().join("fake.log").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("last 40 console lines:"), "{msg}");
    assert!(
        msg.contains("  | line 45") && msg.contains("  | line 6\n"),
        "{msg}"
    );
    assert!(
        !msg.contains("  | line 5\n"),
        "only the last 40 lines: {msg}"
    );
    // The log has everything, with the harness' own notes.
    drop(guest);
    let log = std::fs::read_to_string(dir.path().join("fake.log")).unwrap();
    assert!(
        log.contains("] line 1\n") && log.contains("] line 45\n"),
        "{log}"
    );
    assert!(log.contains("## FAILED: fake guest: timed out"), "{log}");
    assert!(log.contains("## QEMU killed by the harness"), "{log}");
}

#[test]
fn unexpected_panic_fails_fast_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut guest = fake_guest(
        dir.path(),
        r"printf 'hello\n[    1.5] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n'; exec sleep 60",
    );
    guest.expect("hello", 10 * SEC).unwrap();
    let t0 = Instant::now();
    let err = guest.expect("never printed", 60 * SEC).unwrap_err();
    assert!(t0.elapsed() < 10 * SEC, "fail fast, not at the timeout");
    assert_eq!(err.fatal(), Some(Fatal::InitExited), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("init exited (Attempted to kill init)"),
        "{msg}"
    );
    assert!(msg.contains("exitcode=0x00000100"), "{msg}");
    assert!(msg.contains("expect_init_exit()"), "{msg}");
}

#[test]
fn other_fatal_lines_fail_fast() {
    let dir = tempfile::tempdir().unwrap();
    for (line, kind) in [
        (
            "Kernel panic - not syncing: VFS: Unable to mount root fs",
            Fatal::KernelPanic,
        ),
        (
            "Warning: unable to open an initial console.",
            Fatal::NoConsole,
        ),
    ] {
        let mut guest = fake_guest(dir.path(), &format!("echo '{line}'; exec sleep 60"));
        let err = guest.expect("never printed", 60 * SEC).unwrap_err();
        assert_eq!(err.fatal(), Some(kind), "{err}");
        // init exiting is allowed, but this is another panic.
        guest.expect_init_exit();
        if kind == Fatal::KernelPanic {
            let err = guest.expect("never printed", 60 * SEC).unwrap_err();
            assert_eq!(err.fatal(), Some(kind), "{err}");
        }
    }
}

#[test]
fn expected_panic_passes_and_qemu_exit_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let mut guest = fake_guest(
        dir.path(),
        r"printf 'Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000\n'; exit 0",
    );
    guest.expect_panic();
    guest.expect("Attempted to kill init", 10 * SEC).unwrap();
    let status = guest.wait_exit(10 * SEC).unwrap();
    assert!(status.success());
}

#[test]
fn wait_exit_reports_an_unexpected_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut guest = fake_guest(
        dir.path(),
        r"printf 'Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000\n'; exit 0",
    );
    let err = guest.wait_exit(10 * SEC).unwrap_err();
    assert_eq!(err.fatal(), Some(Fatal::InitExited), "{err}");
}

#[test]
fn exit_before_the_pattern_is_reported_with_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let mut guest = fake_guest(
        dir.path(),
        r"echo bye; echo 'qemu: could not load kernel' >&2; exit 1",
    );
    let err = guest.expect("never printed", 10 * SEC).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ExpectError::Exited { .. }), "{msg}");
    assert!(msg.contains("QEMU exited while waiting for"), "{msg}");
    assert!(msg.contains("exit status: 1"), "{msg}");
    assert!(msg.contains("  | bye"), "{msg}");
    assert!(
        msg.contains("QEMU stderr:\n  | qemu: could not load kernel"),
        "{msg}"
    );
}

#[test]
fn send_line_reaches_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    // The fake guest echoes the 17 bytes it reads, then exits.
    let mut guest = fake_guest(dir.path(), "exec head -c 17");
    guest.send_line("console.log(1+1)").unwrap();
    guest.expect("console.log(1+1)\r", 10 * SEC).unwrap();
}

#[test]
fn send_to_a_guest_that_does_not_read_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut guest = fake_guest(dir.path(), "exec sleep 60");
    // 1 MiB does not fit in a pipe: the write blocks until the deadline.
    let t0 = Instant::now();
    let err = guest.send(&vec![b'x'; 1 << 20]).unwrap_err();
    assert!(t0.elapsed() >= SEND_TIMEOUT, "{err}");
    assert!(
        err.to_string().contains("has not read its console input"),
        "{err}"
    );
}

#[test]
fn console_flood_keeps_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let window = 64 * 1024;
    let mut guest = fake_guest_with_window(dir.path(), "exec yes 'flood flood flood'", window);
    // Wait for the flood by volume, not by time: a loaded machine runs
    // `yes` slower, and the point is the bound, not the rate.
    let t0 = Instant::now();
    let err = loop {
        let err = guest.expect("never printed", SEC).unwrap_err();
        assert!(err.is_timeout(), "{err}");
        if guest.console_bytes() > 20 * window as u64 {
            break err;
        }
        assert!(
            t0.elapsed() < 60 * SEC,
            "only {} bytes of flood in a minute",
            guest.console_bytes()
        );
    };
    let received = guest.console_bytes();
    assert!(guest.buffered_bytes() <= window);
    let msg = err.to_string();
    assert!(msg.contains("  | flood flood flood"), "{msg}");
    assert!(
        msg.len() < 16 * 1024,
        "the error stays short: {} bytes",
        msg.len()
    );
    let pid = guest.pid();
    drop(guest);
    assert!(process_gone(pid));
    // Every byte went to the log (plus a timestamp per line).
    let logged = std::fs::metadata(dir.path().join("fake.log"))
        .unwrap()
        .len();
    assert!(
        logged > received,
        "log {logged} bytes < {received} received"
    );
}

#[test]
fn drop_kills_and_reaps() {
    let dir = tempfile::tempdir().unwrap();
    let guest = fake_guest(dir.path(), "exec sleep 1000");
    let pid = guest.pid();
    assert!(!process_gone(pid));
    let t0 = Instant::now();
    drop(guest);
    assert!(t0.elapsed() < 5 * SEC);
    // Reaped by Drop itself: no /proc entry, not even a zombie.
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn a_panicking_test_thread_leaves_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut guest = fake_guest(&path, "echo up; exec sleep 1000");
        tx.send(guest.pid()).unwrap();
        guest.expect("up", 10 * SEC).unwrap();
        panic!("a failing test (expected in this test)");
    });
    let pid = rx.recv().unwrap();
    assert!(thread.join().is_err());
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

/// Re-runs this test binary with only the helper test `name` and `envs`.
fn run_helper(name: &str, envs: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(HELPER_VAR, "1")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (key, value) in envs {
        cmd.env(key, value);
    }
    cmd.spawn().unwrap()
}

#[test]
#[ignore = "helper of qemu_dies_with_the_harness"]
fn helper_launch_and_hang() {
    if std::env::var_os(HELPER_VAR).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let guest = fake_guest(dir.path(), "exec sleep 1000");
    println!("PID={}", guest.pid());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn qemu_dies_with_the_harness() {
    let mut helper = run_helper("guest::tests::helper_launch_and_hang", &[]);
    let stdout = BufReader::new(helper.stdout.take().unwrap());
    let pid: u32 = stdout
        .lines()
        .map_while(Result::ok)
        // libtest prints the test name first on the same line.
        .find_map(|line| {
            line.split_once("PID=")
                .map(|(_, p)| p.trim().parse().unwrap())
        })
        .expect("the helper prints the guest pid");
    assert!(!process_gone(pid));
    // SIGKILL: no Drop runs in the harness, only PR_SET_PDEATHSIG acts.
    helper.kill().unwrap();
    helper.wait().unwrap();
    assert!(wait_gone(pid, 5 * SEC), "pid {pid} outlived its harness");
}

#[test]
#[ignore = "helper of launch_errors_are_clear"]
fn helper_launch_error() {
    if std::env::var_os(HELPER_VAR).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("bzImage");
    let initrd = dir.path().join("initrd");
    std::fs::write(&kernel, b"not a kernel").unwrap();
    std::fs::write(&initrd, b"").unwrap();
    let mut cfg = QemuConfig::new(Arch::X86_64, &kernel, &initrd, dir.path());
    cfg.accel = Accel::Tcg;
    let err = Guest::launch(&cfg).err().expect("launch must fail");
    println!("ERROR={err:#}");
}

#[test]
fn launch_errors_are_clear() {
    let cases = [
        (
            vec![("PATH", "/nonexistent")],
            "qemu-system-x86_64 not found: install it with `apt-get install qemu-system-x86`",
        ),
        (
            vec![(TIMEOUT_MULTIPLIER_VAR, "fast")],
            "NODEOS_TIMEOUT_MULTIPLIER=\"fast\" is not a positive number",
        ),
    ];
    for (envs, expected) in cases {
        let out = run_helper("guest::tests::helper_launch_error", &envs)
            .wait_with_output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("ERROR={expected}")), "{stdout}");
    }
}

#[test]
fn missing_kernel_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = QemuConfig::new(
        Arch::I386,
        dir.path().join("nope"),
        dir.path().join("x"),
        dir.path(),
    );
    let err = Guest::launch(&cfg)
        .err()
        .expect("launch must fail")
        .to_string();
    assert!(err.contains("the kernel") && err.contains("nope"), "{err}");
}

#[test]
fn interactive_console_passes_through_and_yields_the_init_status() {
    let console: &[u8] =
        b"\x1b[1G> process.exit(3)\r\n[    2.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000300\r\n[    2.1] ---[ end ]---";
    let mut shown = Vec::new();
    let status = pass_through_console(console, &mut shown);
    assert_eq!(shown, console, "every byte reaches the terminal unchanged");
    assert_eq!(
        status,
        Some((
            crate::app::AppStatus::Exited(3),
            crate::app::StatusSource::KernelInitExit
        ))
    );
    // Node as PID 1: its own status line, then the power-off.
    let console: &[u8] =
        b"> process.exit(4)\r\nnodeos: exit status 4\r\n[    2.2] reboot: Power down\r\n";
    assert_eq!(
        pass_through_console(console, Vec::new()),
        Some((
            crate::app::AppStatus::Exited(4),
            crate::app::StatusSource::NodeStatusLine
        ))
    );
    // Quit with Ctrl-A x: no status line, no status.
    assert_eq!(pass_through_console(&b"> "[..], Vec::new()), None);
}

#[test]
fn has_exited_does_not_wait() {
    let dir = tempfile::tempdir().unwrap();
    let mut guest = fake_guest(dir.path(), "exec sleep 30");
    let t0 = Instant::now();
    assert!(!guest.has_exited());
    assert!(t0.elapsed() < Duration::from_secs(1));
    let other = tempfile::tempdir().unwrap();
    let mut done = fake_guest(other.path(), "exec true");
    let t0 = Instant::now();
    while !done.has_exited() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "`true` never exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_exit_status_split_across_reads_is_read_whole() {
    // The kernel's line arrives in two pieces, the first ending inside the
    // number: the status is the whole number's, not its prefix's.
    let dir = tempfile::tempdir().unwrap();
    let mut guest = fake_guest(
        dir.path(),
        r"printf 'Kernel panic - not syncing: Attempted to kill init! exitcode=0x000'; sleep 1; printf '00100\n'; exit 0",
    );
    let end = crate::app::wait_app_exit(&mut guest, 30 * SEC).unwrap();
    assert_eq!(end.status, crate::app::AppStatus::Exited(1));
    assert_eq!(end.source, crate::app::StatusSource::KernelInitExit);
}
