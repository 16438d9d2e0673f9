//! `cargo xtask node`

use crate::Common;
use anyhow::{bail, Result};
use clap::Args;
use nodeos_build::util::fmt_size;
use nodeos_build::{Arch, Env};

#[derive(Args)]
pub struct NodeArgs {
    #[command(flatten)]
    node: crate::NodeSel,
    /// Only print the key of each phase the build would run (toolchain, library packages, node) and whether it is published; builds and fetches nothing
    #[arg(long)]
    keys: bool,
}

pub fn run(common: &Common, args: NodeArgs) -> Result<()> {
    let env = common.env()?;
    let nv = args.node.version()?;
    for arch in common.arches() {
        if args.keys {
            print_keys(&env, arch, nv)?;
            continue;
        }
        let n = node_static::build(&env, arch, nv)?;
        let size = |p: &std::path::Path| {
            std::fs::metadata(p)
                .map(|m| fmt_size(m.len()))
                .unwrap_or_default()
        };
        let how = n.output.how();
        println!(
            "node {arch}: {} v{} ({} stripped, {} unstripped; {how})",
            n.node.display(),
            n.version,
            size(&n.node),
            size(&n.node_unstripped)
        );
    }
    Ok(())
}

fn print_keys(env: &Env, arch: Arch, nv: &node_static::NodeVersion) -> Result<()> {
    let Some(tc) = toolchain::published(env, arch)? else {
        bail!(
            "node --keys: the toolchain for {arch} is not built, and every other key depends on its key; build it with `cargo xtask toolchain --arch {arch}`"
        );
    };
    let keys = node_static::chosen_keys(env, arch, nv, &tc)?;
    let row = |phase: &str, key: &str| {
        let state = if nodeos_build::cache::out_dir(env, phase, key).is_dir() {
            "published"
        } else {
            "not built"
        };
        println!("{phase:<14} {arch:<7} {key} {state}");
    };
    row(toolchain::PHASE, &tc.output.key);
    for (name, key) in &keys.packages {
        row(&nodeos_build::driver::names::package(name), key);
    }
    row(node_static::PHASE, &keys.node);
    Ok(())
}
