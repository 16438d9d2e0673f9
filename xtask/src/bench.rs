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
    let mut cfg = crate::qemu_cmd::qemu_config(env, arch, img, memory);
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

pub fn run(common: &Common, a: BenchArgs) -> Result<()> {
    let env = common.env()?;
    if a.initramfs_only {
        println!("{}", initramfs_throughput(&env, a.archive_mb)?);
        return Ok(());
    }
    if a.model {
        return crate::model_report::run(&env, &common.arches(), &a.records, a.check, !a.no_write);
    }
    let arches = common.arches();
    let mut md = String::new();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(md, "Written by `cargo xtask bench` on {} ({} CPUs). Re-run it to refresh; do not edit by hand.\n", host_name(), env.jobs)?;

    // Cached: a no-op image run for every selected arch.
    let mut images = Vec::new();
    for &arch in &arches {
        images.push((arch, image::build(&env, arch, a.node.version()?, None)?));
    }
    let started = Instant::now();
    for &arch in &arches {
        image::build(&env, arch, a.node.version()?, None)?;
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

    writeln!(md, "\n{}", crate::node_test::bench_section(&env, &arches))?;

    writeln!(md, "## initramfs writer throughput\n")?;
    writeln!(md, "{}", initramfs_throughput(&env, a.archive_mb)?)?;

    let path = env.project_root.join("BENCHMARKS.md");
    // The model's section is written by `bench --model`; keep it.
    if let Some(model) = crate::model_report::current_section(&path) {
        writeln!(md, "\n{}", model.trim_end())?;
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
