//! `cargo xtask verify`: checks every published output in the cache
//! against its record (each file's size and sha256, written at publish
//! time). Reuse checks only sizes; this reads every byte.

use crate::Common;
use anyhow::{bail, Context, Result};
use clap::Args;
use nodeos_build::publish::{self, Checked, Depth};

#[derive(Args)]
pub struct VerifyArgs {}

pub fn run(common: &Common, _a: VerifyArgs) -> Result<()> {
    let env = common.env()?;
    let out = env.cache_dir.join("out");
    let mut damaged = Vec::new();
    let (mut intact, mut unrecorded) = (0, 0);
    let phases = match std::fs::read_dir(&out) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("nothing published in {}", out.display());
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", out.display())),
    };
    let mut dirs = Vec::new();
    for phase in phases {
        let phase = phase?.path();
        for key in
            std::fs::read_dir(&phase).with_context(|| format!("reading {}", phase.display()))?
        {
            dirs.push(key?.path());
        }
    }
    dirs.sort();
    for dir in dirs {
        match publish::check(&dir, Depth::Hashes)? {
            Checked::Intact { files } => {
                intact += 1;
                println!("ok         {} ({files} files)", dir.display());
            }
            Checked::Unrecorded => {
                unrecorded += 1;
                println!("unrecorded {} (published before outputs were recorded; rebuild it to record it)", dir.display());
            }
            Checked::Damaged(what) => {
                println!("DAMAGED    {}: {what}", dir.display());
                damaged.push(dir);
            }
        }
    }
    println!(
        "{intact} intact, {unrecorded} unrecorded, {} damaged",
        damaged.len()
    );
    if !damaged.is_empty() {
        bail!(
            "{} cached output(s) differ from what was published; the next build of each moves it to the trash and rebuilds it (or remove them with `cargo xtask clean`)",
            damaged.len()
        );
    }
    Ok(())
}
