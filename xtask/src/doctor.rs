//! `cargo xtask doctor`

use crate::Common;
use anyhow::{bail, Result};
use clap::Args;
use nodeos_build::host;

#[derive(Args)]
pub struct DoctorArgs {
    /// Install what is missing with apt-get (through sudo when not root)
    #[arg(long)]
    install: bool,
}

pub fn run(common: &Common, a: DoctorArgs) -> Result<()> {
    let env = common.env()?;
    for t in host::TOOLS {
        let mark = if t.present() { "ok     " } else { "MISSING" };
        println!("{mark} {:<28} (Debian package {})", t.what, t.package);
    }
    println!("cache dir:    {}", env.cache_dir.display());
    println!("download dir: {}", env.dl_dir.display());
    match qemu_tests::kvm_usable() {
        Ok(()) => println!("KVM:          usable"),
        Err(why) => println!("KVM:          not usable ({why}): QEMU will use TCG (slower)"),
    }
    let missing = host::missing(&[]);
    if missing.is_empty() {
        println!("all host tools are present");
        return Ok(());
    }
    let line = host::install_line(&missing);
    if !a.install {
        bail!("{} host tool(s) missing; fix with: {line}", missing.len());
    }
    println!("running: {line}");
    let mut words = line.split_whitespace();
    let prog = words.next().expect("non-empty line");
    let status = std::process::Command::new(prog)
        .args(words)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    let still = host::missing(&[]);
    if !still.is_empty() {
        bail!(
            "still missing after install: {}",
            still.iter().map(|t| t.what).collect::<Vec<_>>().join(", ")
        );
    }
    println!("all host tools are present");
    Ok(())
}
