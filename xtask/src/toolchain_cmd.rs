//! `cargo xtask toolchain`

use crate::Common;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct ToolchainArgs {
    #[command(flatten)]
    common: Common,
    /// Print CC=… CXX=… AR=… RANLIB=… STRIP=… for shell use (builds first if needed)
    #[arg(long)]
    print_env: bool,
}

pub fn run(a: ToolchainArgs) -> Result<()> {
    let env = a.common.env()?;
    for arch in a.common.arches() {
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
