//! `cargo xtask kernel`

use crate::Common;
use anyhow::Result;
use clap::Args;
use nodeos_build::util::fmt_size;
use std::path::PathBuf;

#[derive(Args)]
pub struct KernelArgs {
    /// Check a bzImage of your own instead of building one (with --arch: that it fits the arch)
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
}

pub fn run(common: &Common, a: KernelArgs) -> Result<()> {
    if let Some(path) = &a.kernel {
        // Without an explicit --arch, any x86 bzImage passes and its arch
        // is reported; with one, it must be that arch's.
        for arch in common.explicit_arches() {
            kernel::check_user_bzimage_for(path, arch)?;
        }
        let info = kernel::bzimage_info(path)?;
        println!(
            "{}: x86 bzImage for {}, boot protocol {}.{:02}, {}",
            path.display(),
            info.arch()
                .map_or_else(|| "no NodeOS target".to_string(), |a| a.to_string()),
            info.protocol.0,
            info.protocol.1,
            fmt_size(info.size)
        );
        return Ok(());
    }
    let env = common.env()?;
    for arch in common.arches() {
        let k = kernel::build(&env, arch)?;
        let size = std::fs::metadata(&k.bzimage)?.len();
        let how = k.output.how();
        println!(
            "kernel {arch}: {} ({}, {how})",
            k.bzimage.display(),
            fmt_size(size)
        );
    }
    Ok(())
}
