//! `cargo xtask bench`: figures measured on this machine, printed and
//! written to BENCHMARKS.md. Every number in that file comes from here.

use crate::image;
use crate::Common;
use anyhow::{bail, Context, Result};
use clap::Args;
use nodeos_build::util::{fmt_duration, fmt_size};
use nodeos_build::{Arch, Env};
use qemu_tests::node_checks::wait_for_prompt;
use qemu_tests::Guest;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    node: crate::NodeSel,
    /// Boots per arch for the boot-to-prompt median
    #[arg(long, default_value_t = 5)]
    boots: usize,
    /// Size of the file archived by the initramfs throughput benchmark (MB)
    #[arg(long, default_value_t = 100)]
    archive_mb: u64,
    /// Print only; do not rewrite BENCHMARKS.md
    #[arg(long)]
    no_write: bool,
    /// Only the initramfs writer throughput (needs no image)
    #[arg(long)]
    initramfs_only: bool,
    /// Only the cost of the kernel's app network options: bzImage size and
    /// boot time with and without them (two kernels per arch and a tiny
    /// static init; needs no Node build)
    #[arg(long, conflicts_with_all = ["initramfs_only", "model", "app"])]
    kernel_options: bool,
    /// With --app and one -p HOST:GUEST: also measure boot → the app's first
    /// HTTP response on that port
    #[command(flatten)]
    app: crate::app_args::AppArgs,
    #[command(flatten)]
    net: crate::app_args::NetArgs,
    /// Only the build-time model: replay the recorded jobs of the built
    /// phases on 2 to 256 workers
    #[arg(long)]
    model: bool,
    /// With --model: check the model against real -j1 and -j2 kernel
    /// builds (two cold kernel builds in scratch caches)
    #[arg(long, requires = "model")]
    check: bool,
    /// With --model: also model this published phase output (a dir with
    /// timings.json and jobs/), e.g. one copied from another machine
    #[arg(long, value_name = "DIR", requires = "model")]
    records: Vec<std::path::PathBuf>,
}

fn initramfs_throughput(env: &Env, archive_mb: u64) -> Result<String> {
    let work = tempdir_in(env)?;
    let report = initramfs::bench(archive_mb, &work);
    let _ = std::fs::remove_dir_all(&work);
    Ok(format!("```\n{}```", report?))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// Boots to the REPL prompt; returns the time, or an error if it never came.
fn boot_to_prompt(
    env: &Env,
    arch: Arch,
    img: &image::Image,
    memory: u32,
    tag: &str,
) -> Result<Duration> {
    let mut cfg = crate::qemu_cmd::qemu_config(env, arch, img, memory, &[]);
    cfg.log_name = format!("bench-{tag}.log");
    let mut guest = Guest::launch(&cfg)?;
    wait_for_prompt(&mut guest)
}

/// The smallest -m (MiB) that still reaches the prompt, by bisection.
fn min_memory(env: &Env, arch: Arch, img: &image::Image) -> Result<u32> {
    let (mut bad, mut good) = (16u32, 1024u32);
    if boot_to_prompt(env, arch, img, good, "mem-1024").is_err() {
        bail!("{arch} does not reach the prompt even with {good} MiB");
    }
    while good - bad > 8 {
        let mid = (bad + good) / 2;
        match boot_to_prompt(env, arch, img, mid, &format!("mem-{mid}")) {
            Ok(_) => good = mid,
            Err(_) => bad = mid,
        }
    }
    Ok(good)
}

/// Boots the app image and waits for its first HTTP answer on the
/// forwarded port; returns the time from QEMU's start.
fn boot_to_http(
    env: &Env,
    arch: Arch,
    img: &image::Image,
    forward: qemu_tests::PortForward,
    tag: &str,
) -> Result<Duration> {
    let mut cfg = crate::qemu_cmd::qemu_config(env, arch, img, 512, &[forward]);
    cfg.log_name = format!("bench-{tag}.log");
    let mut guest = Guest::launch(&cfg)?;
    match qemu_tests::app::wait_for_http(
        &mut guest,
        forward.host,
        "/",
        crate::app_run::APP_TIMEOUT,
    )? {
        qemu_tests::app::HttpWait::Answered(_, at) => Ok(at),
        qemu_tests::app::HttpWait::AppExited(end) => {
            bail!("{arch}: the app ended with {} before answering", end.status)
        }
    }
}

pub fn run(common: &Common, a: BenchArgs) -> Result<()> {
    let env = common.env()?;
    if a.initramfs_only {
        println!("{}", initramfs_throughput(&env, a.archive_mb)?);
        return Ok(());
    }
    if a.kernel_options {
        return crate::bench_kernel::run(&env, &common.arches(), a.boots, !a.no_write);
    }
    if a.model {
        return crate::model_report::run(&env, &common.arches(), &a.records, a.check, !a.no_write);
    }
    let app = a.app.load()?;
    let forward = match (&app, a.net.publish.as_slice()) {
        (None, []) => None,
        (Some(_), [f]) => Some(*f),
        (Some(_), _) => bail!("bench --app measures one port: give exactly one -p HOST:GUEST (the port the app serves HTTP on)"),
        (None, _) => bail!("-p is for the app's port: give the app with --app DIR"),
    };
    if let Some(f) = forward {
        qemu_tests::Network::with_forwards(vec![f]).check_host_ports()?;
    }
    let arches = common.arches();

    let mut md = String::new();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(md, "Written by `cargo xtask bench` on {} ({} CPUs). Re-run it to refresh; do not edit by hand.\n", host_name(), env.jobs)?;

    // Cached: a no-op image run for every selected arch.
    let mut images = Vec::new();
    for &arch in &arches {
        images.push((
            arch,
            image::build(&env, arch, a.node.version()?, None, None)?,
        ));
    }
    let started = Instant::now();
    for &arch in &arches {
        image::build(&env, arch, a.node.version()?, None, None)?;
    }
    let noop = started.elapsed();

    writeln!(md, "## Phase wall times\n")?;
    writeln!(
        md,
        "| arch | phase | cold build | steps |\n| --- | --- | --- | --- |"
    )?;
    for (arch, img) in &images {
        for p in &img.phases {
            let t = nodeos_build::phase::read_timings(&p.dir);
            // A phase finished by a resumed run took longer in all than its
            // publishing run: say so instead of passing it off as cold.
            let cold = t
                .as_ref()
                .map(|t| {
                    let d = fmt_duration(Duration::from_secs_f64(t.build_secs));
                    if t.steps.iter().any(|s| s.how != "built") {
                        format!("{d} (last run only: resumed; earlier runs not counted)")
                    } else {
                        d
                    }
                })
                .unwrap_or("?".into());
            let steps = t
                .map(|t| {
                    t.steps
                        .iter()
                        .map(|s| {
                            let note = match s.how.as_str() {
                                "built" => String::new(),
                                how => format!(" ({how})"),
                            };
                            format!(
                                "{} {}{note}",
                                s.step,
                                fmt_duration(Duration::from_secs_f64(s.secs))
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            writeln!(md, "| {arch} | {} | {cold} | {steps} |", p.name)?;
        }
    }
    writeln!(
        md,
        "\nNo-op `image` run (everything cached), {}: **{:.3} s**\n",
        arches
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(" + "),
        noop.as_secs_f64()
    )?;

    writeln!(md, "## Sizes\n")?;
    writeln!(md, "| arch | node (stripped) | node (unstripped) | bzImage | initramfs ({}) | initramfs uncompressed |\n| --- | --- | --- | --- | --- | --- |", initramfs::DEFAULT_COMPRESSION)?;
    for (arch, img) in &images {
        let size = |p: &std::path::Path| {
            std::fs::metadata(p)
                .map(|m| fmt_size(m.len()))
                .unwrap_or("?".into())
        };
        let unc = std::fs::read_to_string(
            img.initramfs
                .parent()
                .expect("in a dir")
                .join("uncompressed-size"),
        )
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(fmt_size)
        .unwrap_or("?".into());
        writeln!(
            md,
            "| {arch} | {} | {} | {} | {} | {unc} |",
            size(&img.node.node),
            size(&img.node.node_unstripped),
            size(&img.bzimage),
            size(&img.initramfs)
        )?;
    }

    writeln!(md, "\n## Boot\n")?;
    writeln!(md, "| arch | accel | boot → REPL prompt (median of {}) | all runs | smallest -m reaching the prompt |\n| --- | --- | --- | --- | --- |", a.boots)?;
    for (arch, img) in &images {
        let mut runs = Vec::new();
        for i in 0..a.boots {
            runs.push(boot_to_prompt(&env, *arch, img, 512, &format!("boot-{i}"))?.as_secs_f64());
        }
        let accel = qemu_tests::AccelChoice::resolve(qemu_tests::Accel::Auto)
            .map(|c| format!("{:?}", c.accel))
            .unwrap_or("?".into());
        let mem = min_memory(&env, *arch, img).context("bisecting guest memory")?;
        let all = runs
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            md,
            "| {arch} | {accel} | {:.2} s | {all} | {mem} MiB |",
            median(runs)
        )?;
    }

    if let (Some(app), Some(forward)) = (&app, forward) {
        writeln!(md, "\n## App: boot → first HTTP response\n")?;
        writeln!(
            md,
            "The app {} (`--app`), port {} forwarded; QEMU start to the first answer to `GET /` on the host.\n",
            crate::app_args::describe(app),
            forward.guest
        )?;
        writeln!(
            md,
            "| arch | boot → first HTTP response (median of {}) | all runs |\n| --- | --- | --- |",
            a.boots
        )?;
        for &arch in &arches {
            let img = image::build(&env, arch, a.node.version()?, None, Some(app))?;
            let mut runs = Vec::new();
            for i in 0..a.boots {
                runs.push(
                    boot_to_http(&env, arch, &img, forward, &format!("app-{i}"))?.as_secs_f64(),
                );
            }
            let all = runs
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ");
            writeln!(md, "| {arch} | {:.2} s | {all} |", median(runs))?;
        }
    }

    writeln!(md, "\n{}", crate::node_test::bench_section(&env, &arches))?;

    writeln!(md, "## initramfs writer throughput\n")?;
    writeln!(md, "{}", initramfs_throughput(&env, a.archive_mb)?)?;

    let path = env.project_root.join("BENCHMARKS.md");
    // The model's and the kernel options' sections are written by
    // `bench --model` and `bench --kernel-options`; keep them.
    if let Some(model) = crate::model_report::current_section(&path) {
        writeln!(md, "\n{}", model.trim_end())?;
    }
    if let Some(k) = crate::model_report::section_headed(&path, crate::bench_kernel::SECTION) {
        writeln!(md, "\n{}", k.trim_end())?;
    }
    print!("{md}");
    if !a.no_write {
        std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn tempdir_in(env: &Env) -> Result<std::path::PathBuf> {
    let d = env.target_dir.join("bench-tmp");
    nodeos_build::util::remove_path(&d)?;
    nodeos_build::util::create_dir_all(&d)?;
    Ok(d)
}

fn host_name() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    cpu
}
