//! `cargo xtask initramfs --init BIN -o FILE`: the NodeOS layout around any
//! static init binary (users bring their own).

use crate::Common;
use anyhow::{bail, Result};
use clap::Args;
use nodeos_build::util::fmt_size;
use nodeos_build::{elf, Arch};
use std::path::PathBuf;

#[derive(Args)]
pub struct InitramfsArgs {
    /// The static binary to run as /init
    #[arg(long, value_name = "BIN")]
    init: PathBuf,
    /// Where to write the archive
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    /// Compression: gzip, xz, zstd, lz4 or none (the kernel must enable it)
    #[arg(long)]
    compression: Option<initramfs::Compression>,
}

pub fn run(common: &Common, a: InitramfsArgs) -> Result<()> {
    let info = elf::inspect(&a.init)?;
    let Some(arch) = elf::arch_of(&info) else {
        let boots: Vec<String> = Arch::all()
            .iter()
            .map(|x| format!("{x} ({}-bit)", if x.elf_is_64() { 64 } else { 32 }))
            .collect();
        bail!(
            "{} is built for {}, which NodeOS does not boot (it boots {}); build the init for one of those",
            a.init.display(),
            elf::target_name(&info),
            boots.join(", ")
        );
    };
    // The arch comes from the init itself; an explicit --arch must agree.
    let asked = common.explicit_arches();
    if !asked.is_empty() && !asked.contains(&arch) {
        bail!(
            "{} is built for {arch}, but --arch asks for {}; drop --arch or give an init built for it",
            a.init.display(),
            asked.iter().map(|x| x.name()).collect::<Vec<_>>().join(",")
        );
    }
    // A dynamic init cannot run in an archive that holds nothing else.
    elf::check_static(&a.init, arch)?;
    let mut opts = initramfs::Options::from_env()?;
    if let Some(c) = a.compression {
        opts.compression = c;
    }
    let stats =
        initramfs::write_archive_to_path(&initramfs::nodeos_layout(&a.init), &opts, &a.output)?;
    println!(
        "{}: /dev, /dev/console, /init ({arch}); {} uncompressed, {} {}",
        a.output.display(),
        fmt_size(stats.bytes_uncompressed),
        fmt_size(stats.bytes_written),
        opts.compression
    );
    if let Some(sym) = opts.compression.kernel_config_symbol() {
        println!("the kernel needs {sym}=y to unpack it");
    }
    Ok(())
}
