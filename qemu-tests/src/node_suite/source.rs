//! `test/` out of a Node source tarball, and the files outside it that
//! tests read.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use super::outside::{self, Found, Listing};

/// Extracts the top-level `test/` directory of the Node source tarball
/// `tarball` (any compression GNU tar reads) into `dest/test`. `dest` is
/// complete or absent: the tree is extracted beside it and renamed into
/// place. An existing complete `dest` is reused as is.
pub fn extract_tests(tarball: &Path, dest: &Path) -> Result<()> {
    if super::has_test_tree(dest) {
        return Ok(());
    }
    if !tarball.is_file() {
        bail!(
            "the Node source tarball {} does not exist",
            tarball.display()
        );
    }
    let parent = dest
        .parent()
        .with_context(|| format!("{} has no parent directory", dest.display()))?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let part = parent.join(format!(
        ".{}.part-{}",
        dest.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&part);
    std::fs::create_dir_all(&part)?;
    // `*/test` is node-vX/test only: with --no-wildcards-match-slash the
    // star stops at a slash, so deps/*/test trees stay out.
    let out = nodeos_build::tree::untar(tarball, &part)
        .args([
            "--strip-components=1",
            "--wildcards",
            "--no-wildcards-match-slash",
            "*/test",
        ])
        .output()
        .context("running tar (install it with `apt-get install tar xz-utils`)")?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&part);
        bail!(
            "extracting test/ from {} failed: {}",
            tarball.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if !super::has_test_tree(&part) {
        let _ = std::fs::remove_dir_all(&part);
        bail!(
            "{} has no test/common/index.js: not a Node source tarball with its tests (Debian's +dfsg repack and nodejs.org's release both carry them)",
            tarball.display()
        );
    }
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&part, dest)
        .with_context(|| format!("renaming {} to {}", part.display(), dest.display()))?;
    Ok(())
}

/// The file in a source root (beside `test/`) that holds its tarball's
/// listing.
pub const LISTING_FILE: &str = "source-listing.txt";

/// The listing of `tarball`, kept in `root` (the tree [`extract_tests`]
/// made from it) after the first time.
pub fn listing(tarball: &Path, root: &Path) -> Result<Listing> {
    let kept = root.join(LISTING_FILE);
    if let Ok(text) = std::fs::read_to_string(&kept) {
        return Ok(Listing::parse(&text));
    }
    let out = Command::new("tar")
        .arg("-tf")
        .arg(tarball)
        .output()
        .context("running tar (install it with `apt-get install tar xz-utils`)")?;
    if !out.status.success() {
        bail!(
            "listing {} failed: {}",
            tarball.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let part = root.join(format!(".{LISTING_FILE}.part-{}", std::process::id()));
    std::fs::write(&part, &out.stdout).with_context(|| format!("writing {}", part.display()))?;
    std::fs::rename(&part, &kept)
        .with_context(|| format!("renaming {} to {}", part.display(), kept.display()))?;
    Ok(Listing::parse(&String::from_utf8_lossy(&out.stdout)))
}

/// Extracts `paths` (relative to the source root; files, or directories
/// taken whole) from `tarball` into `root` where they are not there yet,
/// and then, in turn, the files their JS files require by relative path.
/// Returns every path to pack: `paths` and those it added. Each path lands
/// whole or not at all (extracted beside `root`, then renamed into place).
pub fn extract_outside(
    tarball: &Path,
    root: &Path,
    listing: &Listing,
    paths: &BTreeSet<String>,
) -> Result<BTreeSet<String>> {
    let mut all = paths.clone();
    let mut todo: BTreeSet<String> = paths.clone();
    while !todo.is_empty() {
        extract_missing(tarball, root, listing, &todo)?;
        let mut next = BTreeSet::new();
        for p in &todo {
            if !(p.ends_with(".js") || p.ends_with(".mjs") || p.ends_with(".cjs")) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(root.join(p)) else {
                continue;
            };
            for r in outside::relative_requires(p, &text) {
                if let Found::Present(found) = listing.resolve(&r) {
                    next.extend(found.into_iter().filter(|f| !all.contains(f)));
                }
            }
        }
        all.extend(next.iter().cloned());
        todo = next;
    }
    Ok(all)
}

fn extract_missing(
    tarball: &Path,
    root: &Path,
    listing: &Listing,
    paths: &BTreeSet<String>,
) -> Result<()> {
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| root.join(p).symlink_metadata().is_err())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let part = root.join(format!(".outside.part-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&part);
    std::fs::create_dir_all(&part).with_context(|| format!("creating {}", part.display()))?;
    let out = nodeos_build::tree::untar(tarball, &part)
        .args(["--strip-components=1", "--no-wildcards", "--"])
        .args(missing.iter().map(|p| format!("{}/{p}", listing.prefix)))
        .output()
        .context("running tar (install it with `apt-get install tar xz-utils`)")?;
    let result = (|| -> Result<()> {
        if !out.status.success() {
            bail!(
                "extracting {} from {} failed: {}",
                missing
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                tarball.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        for p in &missing {
            let dest = root.join(p);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            if let Err(e) = std::fs::rename(part.join(p), &dest) {
                // Another run on the same cache put it there first.
                if dest.symlink_metadata().is_err() {
                    return Err(e).with_context(|| format!("moving {p} into {}", root.display()));
                }
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&part);
    result
}

#[cfg(test)]
mod tests;
