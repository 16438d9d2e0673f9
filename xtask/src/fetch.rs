//! `cargo xtask fetch` and `cargo xtask clean`

use crate::Common;
use anyhow::{bail, Result};
use clap::Args;
use nodeos_build::fetch::Fetcher;
use std::collections::BTreeSet;

#[derive(Args)]
pub struct FetchArgs {
    #[command(flatten)]
    node: crate::NodeSel,
}

pub fn run(common: &Common, args: FetchArgs) -> Result<()> {
    let nv = args.node.version()?;
    let env = common.env()?;
    nodeos_build::host::require("fetch", &[nodeos_build::host::Need::Fetch])?;
    let mut fetcher = Fetcher::new(&env)?;
    // Every phase's sources are the same for both arches today; --arch is
    // accepted so that per-arch sources can join later.
    let _ = common.arches();
    let mut packages = vec![
        (toolchain::manifest(), "binutils"),
        (toolchain::manifest(), "gcc"),
        (toolchain::manifest(), "musl"),
        (kernel::manifest(), "linux"),
        (nv.manifest.clone(), "node"),
    ];
    // The library packages the chosen Node version links (and what they
    // depend on), each from the source entry its recipe pins.
    let registry = packages::Registry::builtin();
    for v in nv.recipe.variants.values() {
        for (name, source) in v.package_sources() {
            for p in registry.closure(name)? {
                let s = if p.spec.name == name {
                    source.unwrap_or(&p.spec.source)
                } else {
                    &p.spec.source
                };
                if !packages
                    .iter()
                    .any(|(m, n)| *n == s && m.sources == p.manifest.sources)
                {
                    packages.push((p.manifest.clone(), s));
                }
            }
        }
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
    /// Also delete the downloaded sources (the files the manifests name; other files in the download dir are kept)
    #[arg(long)]
    downloads: bool,
    /// Only these phases (repeat or comma list) [default: all]
    #[arg(long = "phase", value_name = "PHASE", value_delimiter = ',', value_parser = PHASES)]
    phases: Vec<String>,
}

/// Every file name a source manifest declares, in every variant: what
/// `clean --downloads` may remove from the download dir.
fn source_files() -> BTreeSet<String> {
    [toolchain::manifest(), kernel::manifest()]
        .into_iter()
        .chain(
            node_static::all_versions()
                .iter()
                .map(|v| v.manifest.clone()),
        )
        .chain(
            packages::Registry::builtin()
                .all()
                .map(|p| p.manifest.clone()),
        )
        .flat_map(|m| m.sources.into_iter().map(|s| s.file))
        .collect()
}

/// Every phase with outputs in the cache.
const PHASES: [&str; 4] = ["toolchain", "kernel", "node", "initramfs"];

pub fn clean(common: &Common, a: CleanArgs) -> Result<()> {
    let env = common.env()?;
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
    let downloads = a.downloads.then(source_files);
    let done = nodeos_build::cache::clean(&env, &phases, &common.arches(), downloads.as_ref())?;
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
