//! `cargo xtask bench --kernel-options`: what the kernel options that give
//! apps a network cost. Per arch, two kernels: the repository's, and the
//! same without common.config's "Network for apps" section (the virtio NIC,
//! the kernel's IP autoconfiguration, and the PCI extras they turn off).
//! The clock needs no option (x86 kernels read the CMOS clock at boot), so
//! the network section is the whole difference. Compared: bzImage size, and
//! boot time from QEMU's start to init's first line with a tiny static init
//! (no Node build needed), each kernel booted as `cargo xtask` boots it:
//! without the section, no NIC (as before apps); with it, a NIC and
//! `ip=dhcp`, so the DHCP exchange is in the figure. Node's own start-up
//! comes on top of both equally, so the difference is the same at the REPL
//! prompt. Prints a table and writes its section of BENCHMARKS.md.

use anyhow::{Context, Result};
use nodeos_build::util::{create_dir_all, write_atomic};
use nodeos_build::{Arch, Env};
use qemu_tests::{Guest, Network, QemuConfig};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The heading of the section this command owns in BENCHMARKS.md.
pub const SECTION: &str = "## Kernel: the app network options";

/// The goals: a bzImage of at most 2 MiB, and no more than 0.3 s more from
/// QEMU's start to init.
pub const SIZE_GOAL: u64 = 2 << 20;
pub const BOOT_GOAL: Duration = Duration::from_millis(300);

/// From QEMU's start to the tiny init's first line, before
/// `NODEOS_TIMEOUT_MULTIPLIER`: about 1-2 s under TCG, more when loaded.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// One kernel's figures.
struct Figures {
    bzimage_bytes: u64,
    /// QEMU start → the init's first line, per boot.
    boots: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// The fragments of `arch` with common.config's network section left out,
/// written under `dir` (as `common.config`, so the kernel key names it as
/// the repository's does).
fn fragments_without_network(env: &Env, arch: Arch, dir: &Path) -> Result<Vec<PathBuf>> {
    let repo = kernel::default_fragments(env, arch);
    let common = &repo[0];
    let text =
        std::fs::read_to_string(common).with_context(|| format!("reading {}", common.display()))?;
    let without = kernel::fragment_without_section(&text, kernel::APP_NETWORK_SECTION)
        .with_context(|| format!("in {}", common.display()))?;
    create_dir_all(dir)?;
    let path = dir.join("common.config");
    write_atomic(&path, without.as_bytes())?;
    let mut fragments = vec![path];
    fragments.extend(repo[1..].iter().cloned());
    Ok(fragments)
}

/// Boots `bzimage` with the tiny init `boots` times; returns the times to
/// its first line. `with_nic`: a NIC on QEMU's user network and `ip=dhcp`.
fn boot_times(
    env: &Env,
    arch: Arch,
    bzimage: &Path,
    initrd: &Path,
    with_nic: bool,
    boots: usize,
) -> Result<Vec<f64>> {
    let mut times = Vec::new();
    for i in 0..boots {
        let mut cfg = QemuConfig::new(arch, bzimage, initrd, &env.target_dir);
        cfg.log_dir = env.log_dir(Some(arch));
        cfg.log_name = format!(
            "bench-kernel-{}-{i}.log",
            if with_nic { "net" } else { "nonet" }
        );
        cfg.memory_mib = 128;
        if with_nic {
            cfg.network = Some(Network::default());
        }
        let mut guest = Guest::launch(&cfg)?;
        let first = guest
            .expect(qemu_tests::tiny_init::START_LINE, BOOT_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("{arch}: {e}"))?;
        times.push(first.at.as_secs_f64());
        // The POWEROFF variant ends the machine itself.
        guest
            .wait_exit(BOOT_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("{arch}: {e}"))?;
    }
    Ok(times)
}

pub fn run(env: &Env, arches: &[Arch], boots: usize, write: bool) -> Result<()> {
    anyhow::ensure!(boots > 0, "--boots must be at least 1");
    nodeos_build::host::require("bench --kernel-options", &[nodeos_build::host::Need::Qemu])?;
    let work = env.target_dir.join("bench-kernel");
    let mut rows = Vec::new();
    for &arch in arches {
        let init = work.join(format!("tiny-init-{arch}"));
        qemu_tests::tiny_init::compile(arch, "POWEROFF", &init)?;
        let initrd = work.join(format!("initramfs-{arch}"));
        initramfs::write_archive_to_path(
            &initramfs::nodeos_layout(&init),
            &initramfs::Options::from_env()?,
            &initrd,
        )?;
        eprintln!("{arch}: the kernel without the network section");
        let before_fragments = fragments_without_network(env, arch, &work.join(arch.name()))?;
        let before_kernel = kernel::build_from_fragments(env, arch, &before_fragments)?;
        eprintln!("{arch}: the repository's kernel");
        let after_kernel = kernel::build(env, arch)?;
        let mut figures = Vec::new();
        for (kernel, with_nic) in [(&before_kernel, false), (&after_kernel, true)] {
            let bzimage_bytes = std::fs::metadata(&kernel.bzimage)
                .with_context(|| format!("reading {}", kernel.bzimage.display()))?
                .len();
            let boots = boot_times(env, arch, &kernel.bzimage, &initrd, with_nic, boots)?;
            figures.push(Figures {
                bzimage_bytes,
                boots,
            });
        }
        let [before, after]: [Figures; 2] = figures.try_into().ok().expect("two kernels");
        rows.push((arch, before, after));
    }

    let mut md = String::new();
    writeln!(
        md,
        "Written by `cargo xtask bench --kernel-options`. Per arch: the repository's kernel, and the same without common.config's \"{}\" section. Boot: QEMU start to the first line of a tiny static init (qemu-tests/tests/data/tiny_init.c), median of {boots}; without the section the guest has no NIC, with it a virtio NIC and `ip=dhcp` (DHCP included), as `cargo xtask` boots it. Goals: bzImage ≤ {} MiB, boot no more than {:.1} s slower.\n",
        kernel::APP_NETWORK_SECTION,
        SIZE_GOAL >> 20,
        BOOT_GOAL.as_secs_f64()
    )?;
    writeln!(
        md,
        "| arch | bzImage without | bzImage with | Δ size | size goal | boot without | boot with | Δ boot | boot goal | all boots without / with (s) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )?;
    for (arch, before, after) in &rows {
        let (b, a) = (median(&before.boots), median(&after.boots));
        let all = |f: &Figures| {
            f.boots
                .iter()
                .map(|t| format!("{t:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            md,
            "| {arch} | {} B | {} B | {:+} B | {} | {b:.2} s | {a:.2} s | {:+.2} s | {} | {} / {} |",
            before.bzimage_bytes,
            after.bzimage_bytes,
            after.bzimage_bytes as i64 - before.bzimage_bytes as i64,
            if after.bzimage_bytes <= SIZE_GOAL {
                "met"
            } else {
                "MISSED"
            },
            a - b,
            if a - b <= BOOT_GOAL.as_secs_f64() {
                "met"
            } else {
                "MISSED"
            },
            all(before),
            all(after),
        )?;
    }
    print!("{SECTION}\n\n{md}");
    if write {
        let path = env.project_root.join("BENCHMARKS.md");
        crate::model_report::write_section_headed(&path, SECTION, &md)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
