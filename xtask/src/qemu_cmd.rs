//! `cargo xtask qemu-test` and `cargo xtask run`: boot the images in QEMU.

use crate::image;
use crate::Common;
use anyhow::{bail, Result};
use clap::Args;
use nodeos_build::{Arch, Env};
use qemu_tests::node_checks::{run_node_checks, IntlExpectation, NodeExpectations, NodeReport};
use qemu_tests::{Guest, QemuConfig};
use std::path::PathBuf;

/// Flags of the commands that boot images (`qemu-test`, `run`).
#[derive(Args)]
pub struct BootArgs {
    /// Use this bzImage instead of building the kernel
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Guest memory in MiB
    #[arg(long, default_value_t = 512)]
    pub memory: u32,
    #[command(flatten)]
    pub node: crate::NodeSel,
}

/// QEMU settings for one image; the console log goes beside the phase logs.
pub fn qemu_config(env: &Env, arch: Arch, img: &image::Image, memory: u32) -> QemuConfig {
    let mut cfg = QemuConfig::new(
        arch,
        &img.bzimage,
        &img.initramfs,
        &env.project_root.join("target"),
    );
    cfg.log_dir = env.log_dir(Some(arch));
    cfg.memory_mib = memory;
    cfg
}

/// Whether the node build has ICU (configure's `--with-intl` other than none).
fn intl_of(node: &node_static::NodeBinary) -> IntlExpectation {
    let gypi = std::fs::read_to_string(node.output.dir.join("config.gypi")).unwrap_or_default();
    if gypi.contains("\"v8_enable_i18n_support\": 1")
        || gypi.contains("'v8_enable_i18n_support': 1")
    {
        IntlExpectation::Present
    } else {
        IntlExpectation::Absent
    }
}

/// Boots one image and runs the Node checks.
pub fn boot_and_check(
    env: &Env,
    arch: Arch,
    img: &image::Image,
    memory: u32,
) -> Result<NodeReport> {
    let cfg = qemu_config(env, arch, img, memory);
    let exp = NodeExpectations::new(arch, &img.node.version, memory, intl_of(&img.node));
    let mut guest = Guest::launch(&cfg)?;
    run_node_checks(&mut guest, &exp)
}

pub fn run_tests(common: &Common, a: BootArgs) -> Result<()> {
    let env = common.env()?;
    nodeos_build::host::require("qemu-test", &[nodeos_build::host::Need::Qemu])?;
    let arches = common.arches();
    image::check_user_kernel(a.kernel.as_deref(), &arches)?;
    let mut failed = Vec::new();
    let mut reports = Vec::new();
    for arch in arches {
        let img = image::build(&env, arch, a.node.version()?, a.kernel.as_deref())?;
        match boot_and_check(&env, arch, &img, a.memory) {
            Ok(r) => {
                println!("{r}");
                if !r.passed() {
                    failed.push(format!(
                        "{arch}: some checks failed (log: {})",
                        r.log_path.display()
                    ));
                }
                reports.push((arch, r));
            }
            Err(e) => failed.push(format!("{arch}: {e:#}")),
        }
    }
    println!(
        "{:<8} {:<8} {:<6} {:>14} {:>10} {:>6}",
        "arch", "result", "accel", "boot→prompt", "total", "status"
    );
    for (arch, r) in &reports {
        println!(
            "{:<8} {:<8} {:<6} {:>13.2}s {:>9.2}s {:>6}",
            arch.name(),
            if r.passed() { "PASS" } else { "FAIL" },
            format!("{:?}", r.accel),
            r.boot_to_prompt.as_secs_f64(),
            r.total.as_secs_f64(),
            r.exit_status
                .map_or_else(|| "-".to_owned(), |s| s.to_string())
        );
    }
    if !failed.is_empty() {
        bail!("qemu-test failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

pub fn run_interactive(common: &Common, a: BootArgs) -> Result<()> {
    let env = common.env()?;
    let arches = common.arches();
    let [arch] = arches[..] else {
        bail!("`run` boots one image: pick it with --arch i386 or --arch x86_64");
    };
    nodeos_build::host::require("run", &[nodeos_build::host::Need::Qemu])?;
    let img = image::build(&env, arch, a.node.version()?, a.kernel.as_deref())?;
    let cfg = qemu_config(&env, arch, &img, a.memory);
    eprintln!("Booting NodeOS ({arch}). Quit with Ctrl-A x, or process.exit() at the > prompt.");
    match qemu_tests::run_interactive(&cfg)? {
        Some(0) => {
            eprintln!("NodeOS powered off: node exited with status 0");
            Ok(())
        }
        Some(status) => bail!("NodeOS powered off: node exited with status {status}"),
        None => {
            eprintln!("QEMU exited without node's exit status line (quit with Ctrl-A x?)");
            Ok(())
        }
    }
}
