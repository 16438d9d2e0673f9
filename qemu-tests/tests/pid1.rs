//! Node as PID 1 in a real guest, in the ways a run can end that the REPL
//! session of `cargo xtask qemu-test` does not reach: the app's script
//! (given on the kernel command line after `--`, which the kernel passes to
//! init as arguments) ends with an exit code, an uncaught exception,
//! `abort()`, SIGTERM with a shutdown hook, or a restart; and the `nodeos.*`
//! switches.
//!
//! Needs our static node: `NODEOS_TEST_NODE_<ARCH>` (a path), or the one
//! `cargo xtask image` links at `target/nodeos/<arch>/node`. Without it these
//! tests fail, loudly; they are ignored by default because building that
//! node takes an hour per arch.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use qemu_tests::node_checks::{EXIT_STATUS_PREFIX, exit_status_pattern};
use qemu_tests::{Arch, Guest, Pattern};
use support::{config, initramfs, target_dir};

const TIMEOUT: Duration = Duration::from_secs(180);

/// Our node for `arch`; panics with what to do when there is none.
fn node(arch: Arch) -> PathBuf {
    let var = format!("NODEOS_TEST_NODE_{}", arch.name().to_uppercase());
    let path = match std::env::var_os(&var) {
        Some(p) => PathBuf::from(p),
        None => target_dir().join("nodeos").join(arch.name()).join("node"),
    };
    assert!(
        path.is_file(),
        "\n\n*** NO NODE FOR {arch}: {} does not exist. Build it with `cargo xtask image --arch {arch}`, or set {var}.\n\n",
        path.display()
    );
    path
}

/// Boots our node as /init with `append` on the kernel command line.
fn boot(arch: Arch, name: &str, append: &str) -> Guest {
    let ird = initramfs(arch, &node(arch));
    let mut cfg = config(arch, ird, &format!("pid1-{name}-{arch}"));
    cfg.memory_mib = 512;
    cfg.append_extra = append.to_owned();
    Guest::launch(&cfg).unwrap_or_else(|e| panic!("launching {arch}: {e:#}"))
}

/// Waits for the status line and QEMU's exit; a kernel panic anywhere
/// fails (none is allowed).
fn expect_end(guest: &mut Guest, status: u8) {
    let m = guest
        .expect(exit_status_pattern(), TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        m.group(1),
        Some(status.to_string().as_str()),
        "{EXIT_STATUS_PREFIX}"
    );
    let qemu = guest.wait_exit(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(qemu.success(), "QEMU: {qemu}");
}

fn log(guest: &Guest) -> String {
    std::fs::read_to_string(guest.log_path()).unwrap()
}

/// A script for `node -e` on the kernel command line: one double-quoted
/// word, so no double quotes inside.
fn script(js: &str) -> String {
    assert!(!js.contains('"'), "the kernel's quoting has no escapes");
    format!("-- -e \"{js}\"")
}

fn exit_code_when_the_loop_runs_empty(arch: Arch) {
    let mut guest = boot(
        arch,
        "exitcode",
        &script("console.log('@@'+'script ran');process.exitCode=5"),
    );
    guest
        .expect("@@script ran", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    expect_end(&mut guest, 5);
    assert!(log(&guest).contains("reboot: Power down"));
}

fn uncaught_exception_ends_with_1(arch: Arch) {
    let mut guest = boot(
        arch,
        "uncaught",
        &script("setTimeout(()=>{throw new Error('boom'+'-on-purpose')},10)"),
    );
    guest
        .expect("Error: boom-on-purpose", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    expect_end(&mut guest, 1);
}

fn abort_ends_with_134(arch: Arch) {
    let mut guest = boot(arch, "abort", &script("setTimeout(()=>process.abort(),10)"));
    expect_end(&mut guest, 134);
}

fn sigterm_runs_the_shutdown_hooks(arch: Arch) {
    let mut guest = boot(
        arch,
        "sigterm",
        &script(
            "require('node:nodeos').onShutdown(async s=>{await new Promise(r=>setTimeout(r,200));console.log('@@'+'hook '+s)});\
             setInterval(()=>{},1000);setTimeout(()=>process.kill(1,'SIGTERM'),100)",
        ),
    );
    guest
        .expect("@@hook SIGTERM", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    expect_end(&mut guest, 143);
}

fn restart_when_asked_for(arch: Arch) {
    // -no-reboot turns the restart into QEMU's exit.
    let mut guest = boot(
        arch,
        "restart",
        &format!("nodeos.exit=reboot {}", script("process.exit(0)")),
    );
    expect_end(&mut guest, 0);
    assert!(log(&guest).contains("reboot: Restarting system"));
}

fn switches_change_the_start(arch: Arch) {
    let mut guest = boot(
        arch,
        "switches",
        &format!(
            "nodeos.hostname=box-7 nodeos.tmp=0 nodeos.bogus=1 {}",
            script(
                "const fs=require('fs'),m=fs.readFileSync('/proc/self/mounts','utf8');\
                 console.log('@@'+'got='+[require('os').hostname(),/ \\/tmp /.test(m),/ \\/sys /.test(m),require('node:nodeos').settings.tmp].join())",
            )
        ),
    );
    let found = guest
        .expect(Pattern::regex(r"@@got=([^\r\n]*)\r?\n").unwrap(), TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.group(1), Some("box-7,false,true,false"));
    expect_end(&mut guest, 0);
    assert!(
        log(&guest).contains("nodeos: nodeos.bogus: unknown switch, ignored"),
        "one line for an unknown switch"
    );
}

macro_rules! per_arch {
    ($($case:ident),* $(,)?) => {
        mod i386 {
            $(#[test] #[ignore = "needs the built static node: cargo xtask image; run with --ignored"]
              fn $case() { super::$case(qemu_tests::Arch::I386) })*
        }
        mod x86_64 {
            $(#[test] #[ignore = "needs the built static node: cargo xtask image; run with --ignored"]
              fn $case() { super::$case(qemu_tests::Arch::X86_64) })*
        }
    };
}

per_arch!(
    exit_code_when_the_loop_runs_empty,
    uncaught_exception_ends_with_1,
    abort_ends_with_134,
    sigterm_runs_the_shutdown_hooks,
    restart_when_asked_for,
    switches_change_the_start,
);
