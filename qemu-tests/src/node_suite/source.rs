//! `test/` out of a Node source tarball (the CI stand-in's tests), and the
//! files outside `test/` that tests read, from a whole source tree.

use std::collections::BTreeSet;
use std::path::Path;

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

/// `paths` (relative to the source tree `root`; files, or directories
/// taken whole) and, in turn, the files their JS files require by relative
/// path: every path to pack.
pub fn with_requires(root: &Path, listing: &Listing, paths: &BTreeSet<String>) -> BTreeSet<String> {
    let mut all = paths.clone();
    let mut todo: BTreeSet<String> = paths.clone();
    while !todo.is_empty() {
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
    all
}

#[cfg(test)]
mod tests;
