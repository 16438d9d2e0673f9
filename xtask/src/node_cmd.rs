//! `cargo xtask node`

use crate::Common;
use anyhow::Result;
use clap::Args;
use nodeos_build::util::fmt_size;

#[derive(Args)]
pub struct NodeArgs {
    #[command(flatten)]
    node: crate::NodeSel,
}

pub fn run(common: &Common, args: NodeArgs) -> Result<()> {
    let env = common.env()?;
    let nv = args.node.version()?;
    for arch in common.arches() {
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
