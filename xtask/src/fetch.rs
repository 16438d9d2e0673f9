//! `cargo xtask fetch` and `cargo xtask clean`

use crate::Common;
use anyhow::Result;
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
    let inputs = toolchain::fetch_inputs(&mut fetcher)?;
    let node = nodeos_build::fetch::ensure(&mut fetcher, &node_static::manifest(), "node")?;
    for r in [
        &inputs.binutils,
        &inputs.gcc,
        &inputs.musl,
        &inputs.linux,
        &node,
    ] {
        for s in r.all() {
            println!("ok  {:<46} {} ({})", s.file, &s.sha256[..16], s.variant);
        }
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
}

pub fn clean(a: CleanArgs) -> Result<()> {
    let env = a.common.env()?;
    let removed = nodeos_build::cache::clean(
        &env,
        &["toolchain", "kernel", "node", "image"],
        !a.downloads,
    )?;
    for r in &removed {
        println!("removed {}", r.display());
    }
    if removed.is_empty() {
        println!("nothing to remove");
    }
    Ok(())
}
