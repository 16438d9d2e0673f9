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
    // Node's phase needs other tools per version (22's parts variant:
    // npm, pip, tclsh); the other phases' are the same in every build.
    let mut shown: Vec<String> = Vec::new();
    for nv in node_static::all_versions() {
        for p in crate::phases::of(nv)? {
            if p.host_tools.is_empty() {
                continue;
            }
            let label = if p.name == node_static::PHASE {
                format!("{} --node {}", p.name, nv.major)
            } else {
                p.name.clone()
            };
            if shown.contains(&label) {
                continue;
            }
            let missing: Vec<&str> = host::missing(&p.host_tools)
                .iter()
                .map(|t| t.what)
                .collect();
            if missing.is_empty() {
                println!("phase {label:<20} ready");
            } else {
                println!("phase {label:<20} missing {}", missing.join(", "));
            }
            shown.push(label);
        }
    }
    // Optional: a missing one does not fail doctor, only its compression.
    for c in initramfs::Compression::ALL {
        if let Some(h) = c.host_compressor() {
            let mark = if h.locate().is_ok() {
                "ok     "
            } else {
                "absent "
            };
            println!(
                "{mark} {:<28} (Debian package {}; only for `initramfs --compression {c}`)",
                h.program, h.package
            );
        }
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
