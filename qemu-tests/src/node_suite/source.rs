//! `test/` out of a Node source tarball.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

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
    let out = Command::new("tar")
        .arg("-xf")
        .arg(tarball)
        .arg("-C")
        .arg(&part)
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
