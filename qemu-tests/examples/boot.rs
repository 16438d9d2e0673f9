//! Boots a kernel + initramfs by hand, with the harness or interactively.
//!
//! ```text
//! cargo run -p qemu-tests --example boot -- ARCH KERNEL INITRD [--interactive] [--node VERSION]
//! ```
//!
//! Without flags: waits for QEMU to exit (init exiting is allowed) and
//! prints where the log is. `--node VERSION`: runs the Node checks.
//! `--interactive`: the console on this terminal (quit: Ctrl-A x).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use qemu_tests::node_checks::{IntlExpectation, NodeExpectations, run_node_checks};
use qemu_tests::{Arch, Guest, QemuConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arch, kernel, initrd, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: boot ARCH KERNEL INITRD [--interactive] [--node VERSION]");
    };
    let arch: Arch = arch.parse().map_err(anyhow::Error::msg)?;
    let target =
        PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()));
    let mut cfg = QemuConfig::new(arch, kernel, initrd, &target);
    cfg.log_name = "example-boot.log".into();
    match rest {
        [flag] if flag == "--interactive" => {
            let status = qemu_tests::run_interactive(&cfg)?;
            println!("node's exit status: {status:?}");
            Ok(())
        }
        [flag, version] if flag == "--node" => {
            let mut guest = Guest::launch(&cfg)?;
            let exp = NodeExpectations::new(arch, version, cfg.memory_mib, IntlExpectation::Absent);
            let report = run_node_checks(&mut guest, &exp)?;
            println!("{report}");
            anyhow::ensure!(report.passed(), "some Node checks failed");
            Ok(())
        }
        [] => {
            let mut guest = Guest::launch(&cfg)?;
            println!("{} ({})", guest.label(), guest.accel_reason());
            guest.expect_init_exit();
            let status = guest
                .wait_exit(Duration::from_secs(120))
                .context("booting")?;
            println!(
                "QEMU exited ({status}) after {:.2} s; log: {}",
                guest.elapsed().as_secs_f64(),
                guest.log_path().display()
            );
            Ok(())
        }
        _ => anyhow::bail!("unknown arguments {rest:?}"),
    }
}
