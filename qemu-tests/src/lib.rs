//! Boots NodeOS images (a kernel plus an initramfs) in QEMU and checks them
//! over the serial console.
//!
//! * [`Guest`] runs one QEMU with the guest's serial console on a pipe and an
//!   expect engine over it ([`Guest::expect`], [`Guest::send_line`],
//!   [`Guest::wait_exit`]). QEMU is always killed and reaped: on success,
//!   failure, timeout, and when the test thread panics ([`Drop`]), and it dies
//!   with the harness (`PR_SET_PDEATHSIG`).
//! * Every console byte goes to a log file with a timestamp per line; errors
//!   carry the last console lines and the log path.
//! * [`node_checks`] drives the Node REPL of an image whose init is node.
//! * [`node_suite`] runs Node's own test suite inside the guest.
//! * [`run_interactive`] boots with the console on the terminal.
//! * [`tiny_init`]: a tiny static init for kernel-only boots.
//! * [`net`]: the guest's NIC on QEMU's user network, with forwarded ports.
//! * [`app`]: guests that run an app: its exit status, HTTP through a
//!   forwarded port.
//!
//! This crate takes paths (kernel, initramfs) and does not depend on the
//! crates that build them, so it can be tested on its own.
//!
//! Environment:
//! * `NODEOS_TIMEOUT_MULTIPLIER` (float, default 1): scales every timeout.
//! * `NODEOS_QEMU_ACCEL` (`auto`, `kvm`, `tcg`): overrides [`Accel::Auto`].
//! * `NODEOS_TEST_KERNEL_I386`, `NODEOS_TEST_KERNEL_X86_64`: the kernels the
//!   boot tests (tests/boot.rs) use; without one they fail.

mod accel;
pub mod app;
mod console;
mod guest;
pub mod net;
pub mod node_checks;
pub mod node_suite;
pub mod tiny_init;

use std::path::{Path, PathBuf};

pub use accel::{ACCEL_VAR, Accel, AccelChoice, kvm_usable};
pub use console::{ExpectError, Fatal, FatalEvent, Match, Pattern};
pub use guest::{Guest, InteractiveEnd, run_interactive};
pub use net::{Network, PortForward};

/// The environment variable that scales every timeout of the harness, for
/// slow machines (a float, e.g. `2` or `1.5`).
pub const TIMEOUT_MULTIPLIER_VAR: &str = "NODEOS_TIMEOUT_MULTIPLIER";

/// The guest architectures: the project's one arch table.
pub use nodeos_build::Arch;

/// How to boot one guest.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub arch: Arch,
    /// The kernel image (`bzImage`).
    pub kernel: PathBuf,
    /// The initramfs (a cpio newc archive, compressed or not).
    pub initrd: PathBuf,
    /// Guest RAM. The initramfs and its unpacked files are both in RAM while
    /// the kernel unpacks it, so a big image needs more than its size.
    pub memory_mib: u32,
    /// Virtual CPUs (`-smp`); the guest's `os.cpus()` must list as many.
    pub cpus: u32,
    /// Appended to the kernel command line after `console=<the target's
    /// serial console> panic=-1` (and the network's argument).
    pub append_extra: String,
    /// Arguments for init after its own name (`argv[1..]`): put on the
    /// kernel command line after `--`, which the kernel hands to init.
    pub init_args: Vec<String>,
    /// A NIC on QEMU's user network; `None`: no NIC at all.
    pub network: Option<Network>,
    /// Where the console log goes, e.g. `target/nodeos/logs/<arch>/`.
    pub log_dir: PathBuf,
    /// The log file's name in `log_dir` (overwritten if it exists).
    pub log_name: String,
    pub accel: Accel,
}

impl QemuConfig {
    pub const DEFAULT_MEMORY_MIB: u32 = 512;
    /// Two, not one: a check that the guest sees as many CPUs as QEMU gives
    /// must not pass by accident of a uniprocessor kernel.
    pub const DEFAULT_CPUS: u32 = 2;

    /// A configuration with the defaults: 512 MiB, 2 CPUs, no extra kernel
    /// arguments, the log in `<target_dir>/nodeos/logs/<arch>/qemu.log`,
    /// KVM when usable.
    pub fn new(
        arch: Arch,
        kernel: impl Into<PathBuf>,
        initrd: impl Into<PathBuf>,
        target_dir: &Path,
    ) -> QemuConfig {
        QemuConfig {
            arch,
            kernel: kernel.into(),
            initrd: initrd.into(),
            memory_mib: Self::DEFAULT_MEMORY_MIB,
            cpus: Self::DEFAULT_CPUS,
            append_extra: String::new(),
            init_args: Vec::new(),
            network: None,
            log_dir: logs_dir(target_dir, arch),
            log_name: "qemu.log".to_owned(),
            accel: Accel::Auto,
        }
    }

    /// The full kernel command line.
    ///
    /// `panic=-1` reboots at once on a panic and `-no-reboot` turns that
    /// reboot into a QEMU exit, so init exiting ends QEMU. `quiet` is left
    /// to the caller: it keeps the panic lines (printed at KERN_EMERG) but
    /// hides the boot messages that make a failing log readable.
    ///
    /// With a network, [`net::NET_AUTOCONF_ARG`] has the kernel configure
    /// the NIC before init starts. [`QemuConfig::init_args`] come last,
    /// after `--`: everything after it goes to init.
    pub fn kernel_cmdline(&self) -> String {
        let qemu = &self.arch.target().qemu;
        let mut cmdline = format!("console={} panic=-1", qemu.console);
        // The target's own words (targets.toml says why each is there).
        for word in &qemu.kernel_args {
            cmdline.push(' ');
            cmdline.push_str(word);
        }
        if self.network.is_some() {
            cmdline.push(' ');
            cmdline.push_str(net::NET_AUTOCONF_ARG);
        }
        if !self.append_extra.trim().is_empty() {
            cmdline.push(' ');
            cmdline.push_str(self.append_extra.trim());
        }
        if !self.init_args.is_empty() {
            cmdline.push_str(" --");
            for a in &self.init_args {
                cmdline.push(' ');
                cmdline.push_str(a);
            }
        }
        cmdline
    }

    /// The full path of the console log.
    pub fn log_path(&self) -> PathBuf {
        self.log_dir.join(&self.log_name)
    }
}

/// `<target_dir>/nodeos/logs/<arch>`: where console logs are kept.
pub fn logs_dir(target_dir: &Path, arch: Arch) -> PathBuf {
    target_dir.join("nodeos").join("logs").join(arch.name())
}

/// The value of [`TIMEOUT_MULTIPLIER_VAR`]: 1 when unset; an error naming the
/// variable when it is not a positive finite number.
pub fn timeout_multiplier() -> anyhow::Result<f64> {
    match std::env::var(TIMEOUT_MULTIPLIER_VAR) {
        Err(std::env::VarError::NotPresent) => Ok(1.0),
        Err(std::env::VarError::NotUnicode(raw)) => anyhow::bail!(
            "{TIMEOUT_MULTIPLIER_VAR}={raw:?} is not a number: set it to a positive factor such as 2 or 1.5, or unset it"
        ),
        Ok(raw) => parse_multiplier(&raw),
    }
}

fn parse_multiplier(raw: &str) -> anyhow::Result<f64> {
    match raw.trim().parse::<f64>() {
        Ok(m) if m.is_finite() && m > 0.0 => Ok(m),
        _ => anyhow::bail!(
            "{TIMEOUT_MULTIPLIER_VAR}={raw:?} is not a positive number: set it to a factor such as 2 or 1.5, or unset it"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_parsing() {
        assert_eq!(parse_multiplier("2").unwrap(), 2.0);
        assert_eq!(parse_multiplier(" 1.5 ").unwrap(), 1.5);
        for bad in ["", "abc", "0", "-1", "inf", "NaN"] {
            let err = parse_multiplier(bad).unwrap_err().to_string();
            assert!(err.contains(TIMEOUT_MULTIPLIER_VAR), "{err}");
            assert!(err.contains("positive"), "{err}");
        }
    }

    #[test]
    fn cmdline_keeps_console_and_panic() {
        let mut cfg = QemuConfig::new(Arch::I386, "k", "i", Path::new("/t"));
        assert_eq!(
            cfg.kernel_cmdline(),
            "console=ttyS0 panic=-1 no_timer_check"
        );
        cfg.append_extra = " quiet ".into();
        assert_eq!(
            cfg.kernel_cmdline(),
            "console=ttyS0 panic=-1 no_timer_check quiet"
        );
        assert_eq!(cfg.log_path(), Path::new("/t/nodeos/logs/i386/qemu.log"));
    }

    #[test]
    fn cmdline_with_network_and_init_args() {
        let mut cfg = QemuConfig::new(Arch::X86_64, "k", "i", Path::new("/t"));
        cfg.network = Some(Network::default());
        cfg.init_args = vec!["/app/server.js".into()];
        cfg.append_extra = "quiet".into();
        assert_eq!(
            cfg.kernel_cmdline(),
            "console=ttyS0 panic=-1 no_timer_check ip=dhcp quiet -- /app/server.js"
        );
        cfg.arch = Arch::I386;
        assert_eq!(
            cfg.kernel_cmdline(),
            "console=ttyS0 panic=-1 no_timer_check ip=dhcp quiet -- /app/server.js"
        );
    }
}
