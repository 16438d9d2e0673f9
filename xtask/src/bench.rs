//! `cargo xtask bench`: figures measured on this machine, printed and
//! written to BENCHMARKS.md. Every number in that file comes from here.

use crate::bench_boot::{boot_to_http, boot_to_prompt, median, min_memory};
use crate::bench_compare::{self, Figures};
use crate::image;
use crate::model_report::Coldness;
use crate::Common;
use anyhow::{bail, Context, Result};
use clap::Args;
use nodeos_build::timings::StepHow;
use nodeos_build::util::{fmt_duration, fmt_size};
use nodeos_build::{Arch, Env};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    node: crate::NodeSel,
    /// Also measure this Node version (a major, e.g. 18) as the baseline in
    /// the same run, boots alternating between the two, and compare sizes,
    /// boot time and memory floor as ratios against the 20% goal
    #[arg(long, value_name = "MAJOR", conflicts_with_all = ["initramfs_only", "kernel_options", "model"])]
    vs: Option<String>,
    /// Boots per image (each arch, and each Node version with --vs) for the
    /// boot-to-prompt median
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
    /// Only the pass rates of the last `cargo xtask node-test` per arch (no
    /// image is built or booted)
    #[arg(long, conflicts_with_all = ["initramfs_only", "kernel_options", "model", "vs", "app"])]
    node_test: bool,
}

fn initramfs_throughput(env: &Env, archive_mb: u64) -> Result<String> {
    let work = tempdir_in(env)?;
    let report = initramfs::bench(archive_mb, &work);
    let _ = std::fs::remove_dir_all(&work);
    Ok(format!("```\n{}```", report?))
}

/// One arch's image of one Node version, and what was measured of it.
struct Measured {
    arch: Arch,
    nv: &'static node_static::NodeVersion,
    img: image::Image,
    figures: Figures,
}

impl Measured {
    fn node(&self) -> &str {
        &self.img.node.version
    }
}

fn file_size(p: &std::path::Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

fn size_cell(bytes: Option<u64>) -> String {
    bytes.map(fmt_size).unwrap_or("?".into())
}

/// The phase table's cold-build and steps cells of one phase output.
fn timing_cells(p: &nodeos_build::PhaseOutput) -> (String, String) {
    let t = nodeos_build::timings::read(&p.dir);
    // A phase finished by a resumed run took longer in all than its
    // publishing run, and one compiled through a compiler cache or a farm
    // shows cache hits or remote compiles: say so instead of passing
    // either off as cold.
    let coldness = crate::model_report::PhaseRecord::read(&p.dir)
        .map(|r| r.coldness())
        .unwrap_or(Coldness::Cold);
    let cold = t
        .as_ref()
        .map(|t| {
            let d = fmt_duration(Duration::from_secs_f64(t.build_secs));
            match coldness {
                Coldness::Not { .. } => format!("{d} ({}: not a cold build)", coldness.describe()),
                _ if !t.cold() => {
                    format!("{d} (last run only: resumed; earlier runs not counted)")
                }
                Coldness::EveryCcacheCallCompiled { .. } | Coldness::FromEmptyCcache { .. } => {
                    format!("{d} ({})", coldness.describe())
                }
                Coldness::Cold => d,
            }
        })
        .unwrap_or("?".into());
    let steps = t
        .map(|t| {
            t.steps
                .iter()
                .map(|s| {
                    let note = match s.how {
                        StepHow::Built => String::new(),
                        how => format!(" ({})", how.name()),
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
    (cold, steps)
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
    if a.node_test {
        return crate::node_test::bench_run(&env, &common.arches(), !a.no_write);
    }
    let versions = bench_compare::versions(&a.node, a.vs.as_deref())?;
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

    // Cached: a no-op image run for every selected arch and version. The
    // baseline is built first: the artifacts dir then points at the image
    // built last, the one --node selects.
    let mut images = Vec::new();
    for &arch in &arches {
        for &nv in &versions {
            let img = image::build(&env, arch, nv, None, None)?;
            let figures = Figures {
                node_stripped: file_size(&img.node.node),
                initramfs: file_size(&img.initramfs),
                ..Figures::default()
            };
            images.push(Measured {
                arch,
                nv,
                img,
                figures,
            });
        }
    }
    let started = Instant::now();
    for &arch in &arches {
        for &nv in &versions {
            image::build(&env, arch, nv, None, None)?;
        }
    }
    let noop = started.elapsed();
    let nodes = {
        let mut v: Vec<&str> = Vec::new();
        for m in &images {
            if !v.contains(&m.node()) {
                v.push(m.node());
            }
        }
        v.join(" and ")
    };

    writeln!(md, "## Phase wall times\n")?;
    writeln!(
        md,
        "| arch | node | phase | cold build | steps |\n| --- | --- | --- | --- | --- |"
    )?;
    for &arch in &arches {
        let of_arch: Vec<(&str, &[nodeos_build::PhaseOutput])> = images
            .iter()
            .filter(|m| m.arch == arch)
            .map(|m| (m.node(), m.img.phases.as_slice()))
            .collect();
        for row in bench_compare::phase_rows(&of_arch) {
            let (cold, steps) = timing_cells(row.phase);
            writeln!(
                md,
                "| {arch} | {} | {} | {cold} | {steps} |",
                row.node_cell(),
                row.phase.name
            )?;
        }
    }
    writeln!(
        md,
        "\nNo-op `image` run (everything cached), {}, Node {nodes}: **{:.3} s**\n",
        arches
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(" + "),
        noop.as_secs_f64()
    )?;

    writeln!(md, "## Sizes\n")?;
    writeln!(md, "| arch | node | node (stripped) | node (unstripped) | bzImage | initramfs ({}) | initramfs uncompressed |\n| --- | --- | --- | --- | --- | --- | --- |", initramfs::DEFAULT_COMPRESSION)?;
    for m in &images {
        let img = &m.img;
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
            "| {} | {} | {} | {} | {} | {} | {unc} |",
            m.arch,
            m.node(),
            size_cell(m.figures.node_stripped),
            size_cell(file_size(&img.node.node_unstripped)),
            size_cell(file_size(&img.bzimage)),
            size_cell(m.figures.initramfs)
        )?;
    }

    writeln!(md, "\n## Boot\n")?;
    if versions.len() > 1 {
        writeln!(md, "Boots alternate between the Node versions' images of each arch (one boot of each per round).\n")?;
    }
    writeln!(md, "| arch | node | accel | boot → REPL prompt (median of {}) | all runs | smallest -m reaching the prompt |\n| --- | --- | --- | --- | --- | --- |", a.boots)?;
    let accel = qemu_tests::AccelChoice::resolve(qemu_tests::Accel::Auto)
        .map(|c| format!("{:?}", c.accel))
        .unwrap_or("?".into());
    for &arch in &arches {
        let idx: Vec<usize> = (0..images.len())
            .filter(|&i| images[i].arch == arch)
            .collect();
        let mut runs = vec![Vec::new(); idx.len()];
        for (boot, k) in bench_compare::alternating(a.boots, idx.len()) {
            let m = &images[idx[k]];
            let tag = format!("boot-{}-{boot}", m.node());
            runs[k].push(boot_to_prompt(&env, arch, &m.img, 512, &tag)?.as_secs_f64());
        }
        for (k, runs) in runs.into_iter().enumerate() {
            let m = &mut images[idx[k]];
            let mem = min_memory(&env, arch, &m.img).context("bisecting guest memory")?;
            m.figures.boot_median = median(runs.clone());
            m.figures.min_memory = Some(mem);
            let all = runs
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ");
            writeln!(
                md,
                "| {arch} | {} | {accel} | {} | {all} | {mem} MiB |",
                m.node(),
                m.figures
                    .boot_median
                    .map(|s| format!("{s:.2} s"))
                    .unwrap_or("?".into())
            )?;
        }
    }

    if let [baseline, candidate] = versions.as_slice() {
        writeln!(md)?;
        let mut head = true;
        for &arch in &arches {
            let find = |nv: &node_static::NodeVersion| {
                images
                    .iter()
                    .find(|m| m.arch == arch && m.nv.major == nv.major)
                    .expect("an image per arch and version")
            };
            let (b, c) = (find(baseline), find(candidate));
            if head {
                writeln!(
                    md,
                    "{}",
                    bench_compare::section_head(b.node(), c.node(), a.boots)
                )?;
                head = false;
            }
            writeln!(
                md,
                "{}",
                bench_compare::comparison_table(arch, b.node(), &b.figures, c.node(), &c.figures)
            )?;
        }
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
            "| arch | node | boot → first HTTP response (median of {}) | all runs |\n| --- | --- | --- | --- |",
            a.boots
        )?;
        for &arch in &arches {
            let mut apps = Vec::new();
            for &nv in &versions {
                apps.push(image::build(&env, arch, nv, None, Some(app))?);
            }
            let mut runs = vec![Vec::new(); apps.len()];
            for (boot, k) in bench_compare::alternating(a.boots, apps.len()) {
                let tag = format!("app-{}-{boot}", apps[k].node.version);
                runs[k].push(boot_to_http(&env, arch, &apps[k], forward, &tag)?.as_secs_f64());
            }
            for (img, runs) in apps.iter().zip(runs) {
                let all = runs
                    .iter()
                    .map(|r| format!("{r:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let med = median(runs)
                    .map(|s| format!("{s:.2} s"))
                    .unwrap_or("?".into());
                writeln!(md, "| {arch} | {} | {med} | {all} |", img.node.version)?;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A published output with a timings file and one make record whose
    /// compile ran through `compiler`.
    fn output(dir: &std::path::Path, compiler: &str) -> nodeos_build::PhaseOutput {
        let t = nodeos_build::timings::PhaseTimings {
            phase: "node".into(),
            arch: "x86_64".into(),
            key: "k".into(),
            build_secs: 188.0,
            steps: vec![nodeos_build::timings::StepTiming {
                step: "make".into(),
                secs: 180.0,
                how: StepHow::Built,
            }],
        };
        std::fs::write(
            dir.join(nodeos_build::timings::FILE),
            serde_json::to_vec(&t).unwrap(),
        )
        .unwrap();
        std::fs::create_dir_all(dir.join(nodeos_build::jobrec::RECORD_DIR)).unwrap();
        let cmd = format!("{compiler} -c a.cc -o a.o");
        std::fs::write(
            dir.join(nodeos_build::jobrec::RECORD_DIR).join("make.tsv"),
            format!(
                "S\t100.0\t2\nJ\t1\t\t100.0\t101.0\t0\ta.o\t{}\t{cmd}\t{cmd}\nE\t101.5\t0\n",
                cmd.len()
            ),
        )
        .unwrap();
        nodeos_build::PhaseOutput {
            name: "node".into(),
            arch: Some(Arch::X86_64),
            dir: dir.to_path_buf(),
            key: "k".into(),
            cached: true,
            wall: Duration::ZERO,
        }
    }

    #[test]
    fn a_build_through_a_compiler_cache_is_not_shown_as_cold() {
        let d = tempfile::tempdir().unwrap();
        let (cold, steps) = timing_cells(&output(d.path(), "/usr/bin/ccache g++"));
        assert_eq!(
            cold,
            "3m 08s (through ccache: cache hits or remote compiles: not a cold build)"
        );
        assert_eq!(steps, "make 3m 00s");
        // ccache's stats log (as the build step has ccache write it) says
        // whether any call was a hit.
        let log = nodeos_build::jobrec::ccache_log_path(d.path(), "make");
        std::fs::write(&log, "# a.cc\ndirect_cache_hit\n# b.cc\ncache_miss\n").unwrap();
        let (cold, _) = timing_cells(&output(d.path(), "/usr/bin/ccache g++"));
        assert_eq!(
            cold,
            "3m 08s (through ccache: 1 of 2 calls were cache hits: not a cold build)"
        );
        // The same hits from a cache that was empty when the step started:
        // they can only be the build's own compiles met again.
        let start = nodeos_build::jobrec::ccache_start_path(d.path(), "make");
        std::fs::write(&start, "files_in_cache\t0\n").unwrap();
        let (cold, _) = timing_cells(&output(d.path(), "/usr/bin/ccache g++"));
        assert_eq!(
            cold,
            "3m 08s (through ccache from an empty cache: 1 of 2 calls were hits on this build's own compiles)"
        );
        std::fs::write(&start, "files_in_cache\t1897\n").unwrap();
        let (cold, _) = timing_cells(&output(d.path(), "/usr/bin/ccache g++"));
        assert!(cold.ends_with("not a cold build)"), "{cold}");
        std::fs::remove_file(&start).unwrap();
        // A log that misses calls (the record has 1 job through ccache
        // here; a log of none cannot vouch for it).
        std::fs::write(&log, "").unwrap();
        let (cold, _) = timing_cells(&output(d.path(), "/usr/bin/ccache g++"));
        assert_eq!(
            cold,
            "3m 08s (through ccache: cache hits or remote compiles: not a cold build)"
        );
        std::fs::write(&log, "# a.cc\nrecache\n# b.cc\ncache_miss\n").unwrap();
        let (cold, _) = timing_cells(&output(d.path(), "/usr/bin/ccache g++"));
        assert_eq!(
            cold,
            "3m 08s (through ccache, all 2 calls compiled: no hit)"
        );
        let d = tempfile::tempdir().unwrap();
        let (cold, _) = timing_cells(&output(d.path(), "/opt/tc/bin/x86_64-linux-musl-g++"));
        assert_eq!(cold, "3m 08s");
    }
}
