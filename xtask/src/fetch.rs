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
    // The sources of every phase of a build with the chosen Node version:
    // the library packages it links (and what they depend on) included,
    // each from the source entry its recipe pins.
    let sources = crate::phases::sources(&crate::phases::of(nv)?);
    // Try every package before failing, so that one run lists everything
    // that is missing (an offline user copies all of it at once).
    let mut failures = Vec::new();
    for src in &sources {
        match nodeos_build::fetch::ensure(&mut fetcher, &src.manifest, &src.name) {
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
            sources.len(),
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
    #[arg(long = "phase", value_name = "PHASE", value_delimiter = ',', value_parser = parse_phase)]
    phases: Vec<String>,
}

/// Every file name a source manifest declares, in every variant: what
/// `clean --downloads` may remove from the download dir.
fn source_files() -> BTreeSet<String> {
    crate::phases::sources(&crate::phases::every())
        .into_iter()
        .flat_map(|s| s.manifest.sources.into_iter().map(|s| s.file))
        .collect()
}

fn parse_phase(s: &str) -> Result<String, String> {
    crate::phases::parse_name(s).map_err(|e| e.to_string())
}

pub fn clean(common: &Common, a: CleanArgs) -> Result<()> {
    let env = common.env()?;
    // The ccache dir is kept: it is what makes a rebuild after a clean fast.
    let phases: Vec<String> = if a.phases.is_empty() {
        crate::phases::names()
    } else {
        a.phases
    };
    let phases: Vec<&str> = phases.iter().map(String::as_str).collect();
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
