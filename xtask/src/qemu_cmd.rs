//! `cargo xtask qemu-test` and `cargo xtask run`: boot the images in QEMU.

use crate::guest_config::{qemu_config, BootArgs};
use crate::image;
use crate::Common;
use anyhow::{bail, Result};
use nodeos_build::{Arch, Env};
use qemu_tests::node_checks::{run_node_checks, IntlExpectation, NodeExpectations, NodeReport};
use qemu_tests::{Guest, Network};

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
    let cfg = qemu_config(env, arch, img, memory, &[]);
    let exp = NodeExpectations::new(arch, &img.node.version, memory, intl_of(&img.node));
    let mut guest = Guest::launch(&cfg)?;
    run_node_checks(&mut guest, &exp)
}

pub fn run_tests(common: &Common, a: BootArgs) -> Result<()> {
    let env = common.env()?;
    let app = a.app.load()?;
    nodeos_build::host::require("qemu-test", &[nodeos_build::host::Need::Qemu])?;
    let arches = common.arches();
    image::check_user_kernel(a.kernel.as_deref(), &arches)?;
    if let Some(app) = &app {
        return crate::app_run::run_app_tests(&env, &arches, &a, app);
    }
    if !a.net.publish.is_empty() {
        bail!("-p forwards ports to an app's server: give the app with --app DIR (the REPL checks need no ports)");
    }
    let mut failed = Vec::new();
    let mut reports = Vec::new();
    for arch in arches {
        let img = image::build(&env, arch, a.node.version()?, a.kernel.as_deref(), None)?;
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
    let app = a.app.load()?;
    let net = Network::with_forwards(a.net.publish.clone());
    net.check_host_ports()?;
    nodeos_build::host::require("run", &[nodeos_build::host::Need::Qemu])?;
    let img = image::build(
        &env,
        arch,
        a.node.version()?,
        a.kernel.as_deref(),
        app.as_ref(),
    )?;
    // Checked again: the build may have taken an hour.
    net.check_host_ports()?;
    let cfg = qemu_config(&env, arch, &img, a.memory, &a.net.publish);
    match &app {
        Some(app) => eprintln!(
            "Booting NodeOS ({arch}) with the app {}. Quit with Ctrl-A x.",
            crate::app_args::describe(app)
        ),
        None => eprintln!(
            "Booting NodeOS ({arch}). Quit with Ctrl-A x, or process.exit() at the > prompt."
        ),
    }
    for f in &a.net.publish {
        eprintln!("forwarding {f}");
    }
    let end = qemu_tests::run_interactive(&cfg)?;
    match end.app {
        Some((status, source)) => {
            eprintln!("NodeOS ({arch}): node (PID 1) ended with {status} ({source})");
            if status.success() {
                Ok(())
            } else {
                Err(crate::app_run::AppFailed(status).into())
            }
        }
        None if end.qemu.success() => Ok(()),
        None => bail!(
            "{} ended with {} and no exit status of node on the console",
            arch.target().qemu.system,
            end.qemu
        ),
    }
}
