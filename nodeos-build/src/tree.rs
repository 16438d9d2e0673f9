//! Source trees: unpacking verified archives and applying patches.

use crate::util::{create_dir_all, remove_path};
use crate::StepCtx;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Unpacks `archive` into `dest` (replaced if present), dropping the
/// archive's top directory. Safe to re-run after an interruption.
pub fn extract(ctx: &mut StepCtx, archive: &Path, dest: &Path) -> Result<()> {
    extract_excluding(ctx, archive, dest, &[])
}

/// [`extract`], leaving out members that match GNU tar `--exclude`
/// patterns, anchored at the archive root (`*` does not cross `/`).
pub fn extract_excluding(
    ctx: &mut StepCtx,
    archive: &Path,
    dest: &Path,
    excludes: &[&str],
) -> Result<()> {
    remove_path(dest)?;
    create_dir_all(dest)?;
    let mut c = untar(archive, dest);
    c.arg("--strip-components=1");
    if !excludes.is_empty() {
        // These apply to the --exclude options after them.
        c.args(["--anchored", "--no-wildcards-match-slash"]);
        for e in excludes {
            c.arg(format!("--exclude={e}"));
        }
    }
    ctx.run(c)
}

/// Unpacks all of `archive` into `dest` (replaced if present), keeping its
/// top directory (e.g. a Debian `debian.tar.xz`, whose top is `debian/`).
pub fn unpack(ctx: &mut StepCtx, archive: &Path, dest: &Path) -> Result<()> {
    remove_path(dest)?;
    create_dir_all(dest)?;
    ctx.run(untar(archive, dest))
}

/// `tar -xf ARCHIVE -C DEST --no-same-owner`: the files belong to whoever
/// builds, whatever owners the archive records (run as root, tar would
/// otherwise give them the archive's uids). Callers add member selection.
pub fn untar(archive: &Path, dest: &Path) -> Command {
    let mut c = Command::new("tar");
    c.arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dest)
        .arg("--no-same-owner");
    c
}

/// The patches of `patches/<package>-<version>/`, in name order (the order
/// they are applied in). A missing directory means no patches.
pub fn patch_series(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = crate::util::files_sorted(dir)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "patch" || e == "diff"))
        .collect();
    // Name order, compared bytewise, regardless of walk order.
    out.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    for p in &out {
        if p.parent() != Some(dir) {
            bail!(
                "patch {} is in a subdirectory; keep patches flat in {}",
                p.display(),
                dir.display()
            );
        }
    }
    Ok(out)
}

/// Applies one patch file with `patch -p<strip>` inside `src`.
pub fn apply_patch(ctx: &mut StepCtx, src: &Path, patch: &Path, strip: u32) -> Result<()> {
    let mut c = Command::new("patch");
    c.current_dir(src)
        .arg(format!("-p{strip}"))
        .args(["--forward", "--batch", "-i"])
        .arg(patch);
    ctx.run(c)
}

/// Applies the project's patch series for `<package>-<version>` to `src`.
pub fn apply_series(ctx: &mut StepCtx, src: &Path, package: &str, version: &str) -> Result<usize> {
    let dir = ctx.env.patches_dir().join(format!("{package}-{version}"));
    let series = patch_series(&dir)?;
    for p in &series {
        apply_patch(ctx, src, p, 1)?;
    }
    Ok(series.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacked_files_belong_to_the_builder_not_the_archive() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src/debian/patches");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("series"), "a.patch\n").unwrap();
        let archive = d.path().join("pkg.debian.tar");
        let st = Command::new("tar")
            .args(["--owner=12345", "--group=12345", "-cf"])
            .arg(&archive)
            .arg("-C")
            .arg(d.path().join("src"))
            .arg("debian")
            .status()
            .expect("tar runs");
        assert!(st.success());
        let dest = d.path().join("out");
        create_dir_all(&dest).unwrap();
        let st = untar(&archive, &dest).status().expect("tar runs");
        assert!(st.success());
        // SAFETY: geteuid(2) cannot fail.
        let me = unsafe { libc::geteuid() };
        if me != 0 {
            eprintln!("note: not root, so tar could not have kept the archive's owner; this run checks less than a root run");
        }
        for p in ["debian", "debian/patches", "debian/patches/series"] {
            let uid = std::fs::metadata(dest.join(p)).unwrap().uid();
            assert_eq!(uid, me, "{p} is owned by uid {uid}, not the builder ({me})");
        }
    }

    #[test]
    fn series_is_in_name_order_and_ignores_other_files() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "0010-late.patch",
            "0002-early.patch",
            "README",
            "0001-first.diff",
            "0100-last.patch",
        ] {
            std::fs::write(d.path().join(n), b"").unwrap();
        }
        let names: Vec<String> = patch_series(d.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "0001-first.diff",
                "0002-early.patch",
                "0010-late.patch",
                "0100-last.patch"
            ]
        );
        assert!(patch_series(&d.path().join("none")).unwrap().is_empty());
    }
}
