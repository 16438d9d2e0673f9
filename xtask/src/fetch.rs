//! `cargo xtask fetch` and `cargo xtask clean`

use crate::Common;
use anyhow::{bail, Result};
use clap::Args;
use nodeos_build::fetch::Fetcher;

#[derive(Args)]
pub struct FetchArgs {
    #[command(flatten)]
    common: Common,
}

pub fn run(a: FetchArgs) -> Result<()> {
    let env = a.common.env()?;
    nodeos_build::host::require("fetch", &[nodeos_build::host::Need::Fetch])?;
    let mut fetcher = Fetcher::new(&env)?;
    // Every phase's sources are the same for both arches today; --arch is
    // accepted so that per-arch sources can join later.
    let _ = a.common.arches();
    let mut packages = vec![
        (toolchain::manifest(), "binutils"),
        (toolchain::manifest(), "gcc"),
        (toolchain::manifest(), "musl"),
        (kernel::manifest(), "linux"),
        (node_static::manifest(), "node"),
    ];
    for p in packages::Registry::builtin().all() {
        packages.push((p.manifest.clone(), p.spec.source.as_str()));
    }
    // Try every package before failing, so that one run lists everything
    // that is missing (an offline user copies all of it at once).
    let mut failures = Vec::new();
    for (manifest, name) in &packages {
        match nodeos_build::fetch::ensure(&mut fetcher, manifest, name) {
            Ok(r) => {
                for s in r.all() {
                    println!("ok  {:<46} {} ({})", s.file, &s.sha256[..16], s.variant);
                }
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} packages could not be fetched:\n{}",
            failures.len(),
            packages.len(),
            failures.join("\n")
        );
    }
    println!("all sources are in {}", env.dl_dir.display());
    Ok(())
}

#[derive(Args)]
pub struct CleanArgs {
    #[command(flatten)]
    common: Common,
    /// Also delete the download directory
    #[arg(long)]
    downloads: bool,
    /// Only these phases (repeat or comma list) [default: all]
    #[arg(long = "phase", value_name = "PHASE", value_delimiter = ',', value_parser = PHASES)]
    phases: Vec<String>,
}

/// Every phase with outputs in the cache.
const PHASES: [&str; 4] = ["toolchain", "kernel", "node", "initramfs"];

pub fn clean(a: CleanArgs) -> Result<()> {
    let env = a.common.env()?;
    // The ccache dir is kept: it is what makes a rebuild after a clean fast.
    let phases: Vec<&str> = if a.phases.is_empty() {
        PHASES
            .into_iter()
            .chain(
                packages::Registry::builtin()
                    .all()
                    .map(|p| p.phase.as_str()),
            )
            .collect()
    } else {
        a.phases.iter().map(String::as_str).collect()
    };
    let done = nodeos_build::cache::clean(&env, &phases, &a.common.arches(), !a.downloads)?;
    for r in &done.removed {
        println!("removed {}", r.display());
    }
    for b in &done.busy {
        println!("kept    {} (a running build holds its lock)", b.display());
    }
    if done.removed.is_empty() && done.busy.is_empty() {
        println!("nothing to remove");
    }
    Ok(())
}
