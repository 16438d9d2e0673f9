//! Boots real kernels in QEMU, on both architectures, with an initramfs
//! around a tiny static init (tests/data/tiny_init.c), and checks what the
//! harness makes of it: a normal boot, init exiting (unexpected and
//! expected), a kernel panic, a guest that hangs and one that floods the
//! console.
//!
//! No case for `unable to open an initial console`: the kernel's built-in
//! default initramfs already holds /dev/console, so an archive without it
//! still boots with a console (the line's detection is unit-tested).
//!
//! Kernels: see `support::kernel` (`NODEOS_TEST_KERNEL_I386`,
//! `NODEOS_TEST_KERNEL_X86_64`). Without them these tests fail, loudly.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use qemu_tests::{Arch, ExpectError, Fatal, Guest, Pattern};
use support::{BOOT_TIMEOUT, config, initramfs, process_gone, tiny_init};

const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

fn launch(arch: Arch, variant: &str, name: &str) -> Guest {
    let init = tiny_init(arch, variant);
    let cfg = config(arch, initramfs(arch, &init), &format!("{name}-{arch}"));
    Guest::launch(&cfg).unwrap_or_else(|e| panic!("launching {arch}: {e:#}"))
}

/// The tiny init's first lines: it runs as PID 1 on the right machine.
fn expect_init_lines(guest: &mut Guest, arch: Arch) -> Duration {
    let found = guest
        .expect(
            Pattern::regex(r"NODEOS-TINY-INIT pid=(\d+) machine=(\S+)\r?\n").unwrap(),
            BOOT_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.group(1), Some("1"), "init is PID 1");
    assert_eq!(found.group(2), Some(arch.uname_machine()));
    found.at
}

fn boots_and_exits(arch: Arch) {
    let mut guest = launch(arch, "EXIT", "boot");
    let init_at = expect_init_lines(&mut guest, arch);
    guest.expect("NODEOS-TINY-INIT done", BOOT_TIMEOUT).unwrap();
    guest.expect_init_exit();
    guest
        .expect(
            "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000",
            EXIT_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let status = guest
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "QEMU: {status}");
    // Read by the lead for the per-arch boot times (cargo test -- --nocapture).
    println!(
        "[timing] {} ({}): init ran at {:.2} s, QEMU exited at {:.2} s after launch",
        arch,
        guest.accel(),
        init_at.as_secs_f64(),
        guest.elapsed().as_secs_f64()
    );
    let log = std::fs::read_to_string(guest.log_path()).unwrap();
    assert!(
        log.contains("NODEOS-TINY-INIT done"),
        "the log keeps the console"
    );
    assert!(log.contains("Linux version"), "kernel messages are kept");
}

fn unexpected_init_exit_is_a_failure(arch: Arch) {
    let mut guest = launch(arch, "FAIL", "init-exit-unexpected");
    expect_init_lines(&mut guest, arch);
    let t0 = Instant::now();
    let err = guest
        .expect("NODEOS-TINY-INIT done", BOOT_TIMEOUT)
        .expect_err("init exited: the harness must fail");
    assert!(
        t0.elapsed() < BOOT_TIMEOUT / 2,
        "it fails fast, not by timeout"
    );
    assert_eq!(err.fatal(), Some(Fatal::InitExited), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("Attempted to kill init! exitcode=0x00000700"),
        "{msg}"
    );
    assert!(
        msg.contains(&guest.log_path().display().to_string()),
        "{msg}"
    );
}

fn expected_panic_passes(arch: Arch) {
    let mut guest = launch(arch, "FAIL", "init-exit-expected");
    expect_init_lines(&mut guest, arch);
    guest.expect_panic();
    guest
        .expect(
            "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000700",
            BOOT_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let status = guest
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "QEMU: {status}");
}

/// What node does as PID 1 at its end, by the tiny init: reboot(RB_POWER_OFF)
/// powers the machine off (ACPI) and QEMU exits, with no panic on the
/// console. Also: the kernel runs every CPU QEMU gives (SMP).
fn powers_off_and_runs_every_cpu(arch: Arch) {
    let init = tiny_init(arch, "POWEROFF");
    let cfg = config(arch, initramfs(arch, &init), &format!("poweroff-{arch}"));
    assert!(cfg.cpus > 1, "one CPU would pass on a uniprocessor kernel");
    let mut guest = Guest::launch(&cfg).unwrap_or_else(|e| panic!("launching {arch}: {e:#}"));
    expect_init_lines(&mut guest, arch);
    let cpus = guest
        .expect(
            Pattern::regex(r"NODEOS-TINY-INIT cpus=(-?\d+)\r?\n").unwrap(),
            BOOT_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cpus.group(1),
        Some(cfg.cpus.to_string().as_str()),
        "CPUs seen"
    );
    // No panic allowed: wait_exit fails on one.
    let status = guest
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "QEMU: {status}");
    let log = std::fs::read_to_string(guest.log_path()).unwrap();
    assert!(log.contains("reboot: Power down"), "the kernel powered off");
    assert!(!log.contains("power off failed"), "reboot() returned");
}

/// A panic that is not init exiting: the initramfs is garbage, so the kernel
/// finds no root filesystem.
fn kernel_panic_fails_fast(arch: Arch) {
    let garbage = support::work_dir().join(format!("garbage-initrd-{arch}"));
    std::fs::write(&garbage, vec![0x5a; 4096]).unwrap();
    let cfg = config(arch, garbage, &format!("kernel-panic-{arch}"));
    let mut guest = Guest::launch(&cfg).unwrap();
    let err = guest
        .expect("NODEOS-TINY-INIT", BOOT_TIMEOUT)
        .expect_err("no init can run");
    assert_eq!(err.fatal(), Some(Fatal::KernelPanic), "{err}");
    assert!(err.to_string().contains("the kernel panicked"), "{err}");
    // Allowed from here on, QEMU then exits by itself.
    guest.expect_panic();
    guest
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

fn hang_times_out_and_qemu_is_reaped(arch: Arch) {
    let mut guest = launch(arch, "HANG", "hang");
    expect_init_lines(&mut guest, arch);
    guest
        .expect("NODEOS-TINY-INIT hanging", BOOT_TIMEOUT)
        .unwrap();
    let pid = guest.pid();
    let log = guest.log_path().to_owned();
    let t0 = Instant::now();
    let err = guest
        .expect("never printed", Duration::from_secs(3))
        .expect_err("the guest hangs");
    assert!(t0.elapsed() >= Duration::from_secs(3));
    assert!(matches!(err, ExpectError::Timeout { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("timed out after"), "{msg}");
    assert!(msg.contains(&log.display().to_string()), "{msg}");
    assert!(msg.contains("NODEOS-TINY-INIT hanging"), "the tail: {msg}");
    assert!(
        !process_gone(pid),
        "QEMU still runs until the guest is dropped"
    );
    drop(guest);
    assert!(process_gone(pid), "QEMU {pid} was not reaped");
    let kept = std::fs::read_to_string(&log).unwrap();
    assert!(kept.contains("NODEOS-TINY-INIT hanging") && kept.contains("## FAILED"));
}

fn flood_times_out_with_bounded_memory(arch: Arch) {
    let mut guest = launch(arch, "FLOOD", "flood");
    guest
        .expect("NODEOS-TINY-INIT flood 1000 ", BOOT_TIMEOUT)
        .unwrap();
    let pid = guest.pid();
    let err = guest
        .expect("never printed", Duration::from_secs(5))
        .expect_err("the guest floods");
    assert!(err.is_timeout(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("NODEOS-TINY-INIT flood"), "{msg}");
    assert!(msg.len() < 16 * 1024, "the error stays short");
    let received = guest.console_bytes();
    assert!(guest.buffered_bytes() <= 1 << 20);
    let log = guest.log_path().to_owned();
    drop(guest);
    assert!(process_gone(pid), "QEMU {pid} was not reaped");
    let logged = std::fs::metadata(&log).unwrap().len();
    assert!(logged >= received, "log {logged} < {received} received");
    println!("[flood] {arch}: {received} console bytes in the flood test, log {logged} bytes");
}

/// A panicking test leaves no QEMU behind.
fn panicking_test_leaves_no_qemu(arch: Arch) {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut guest = launch(arch, "HANG", "panicking-test");
        tx.send(guest.pid()).unwrap();
        guest
            .expect("NODEOS-TINY-INIT hanging", BOOT_TIMEOUT)
            .unwrap();
        panic!("a failing test (expected by panicking_test_leaves_no_qemu)");
    });
    let pid = rx.recv().unwrap();
    assert!(thread.join().is_err());
    assert!(process_gone(pid), "QEMU {pid} outlived the panicking test");
}

per_arch!(
    boots_and_exits,
    powers_off_and_runs_every_cpu,
    unexpected_init_exit_is_a_failure,
    expected_panic_passes,
    kernel_panic_fails_fast,
    hang_times_out_and_qemu_is_reaped,
    flood_times_out_with_bounded_memory,
    panicking_test_leaves_no_qemu,
);
