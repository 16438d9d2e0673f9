//! `cargo xtask toolchain`

use crate::Common;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct ToolchainArgs {
    /// Print CC=… CXX=… AR=… RANLIB=… STRIP=… for shell use (builds first if needed)
    #[arg(long)]
    print_env: bool,
}

pub fn run(common: &Common, a: ToolchainArgs) -> Result<()> {
    let env = common.env()?;
    for arch in common.arches() {
        let tc = toolchain::build(&env, arch)?;
        if a.print_env {
            print!("{}", tc.print_env());
        } else {
            let how = tc.output.how();
            println!("toolchain {arch}: {} ({how})", tc.dir.display());
        }
    }
    Ok(())
}
