//! Turning a caller's list of entries into the exact sequence written:
//! path normalization and validation, implicit parent directories, sorting
//! and duplicate detection.

use crate::{Entry, EntryKind};
use anyhow::{bail, Result};
use std::cmp::Ordering;
use std::collections::HashMap;

/// Longest name the kernel unpacks: `init/initramfs.c` skips entries whose
/// name size (including the terminating NUL) exceeds `PATH_MAX` (4096).
/// Silently skipped would be far worse than refused.
pub(crate) const PATH_MAX: usize = 4096;
/// Longest single component any Linux filesystem accepts (`NAME_MAX`).
pub(crate) const NAME_MAX: usize = 255;
/// The kernel's `MKDEV` has 12 bits of major and 20 bits of minor; larger
/// numbers would be silently truncated when the node is created.
pub(crate) const MAX_MAJOR: u32 = (1 << 12) - 1;
pub(crate) const MAX_MINOR: u32 = (1 << 20) - 1;
/// Mode of directories added because an entry needs them.
pub(crate) const IMPLICIT_DIR_MODE: u32 = 0o755;

/// Validates `entries` and returns them exactly as they will be written:
/// paths normalized (no leading `/` or `./`), missing parent directories
/// added with mode 0755, sorted component by component (so every directory
/// directly precedes its contents and the order is independent of the input
/// order).
///
/// Errors: an invalid path, mode, device number or symlink target, two
/// entries with the same path, or an entry below a non-directory.
pub fn normalize(entries: &[Entry]) -> Result<Vec<Entry>> {
    let mut out: Vec<Entry> = Vec::with_capacity(entries.len() + 4);
    // Normalized path -> index in `out`.
    let mut index: HashMap<String, usize> = HashMap::with_capacity(entries.len() * 2);
    // Normalized path -> the path as the caller spelled it, for messages.
    let mut given: HashMap<String, &str> = HashMap::with_capacity(entries.len());
    for e in entries {
        let path = normalize_path(&e.path)?;
        validate_entry(&path, e)?;
        if let Some(first) = given.get(path.as_str()) {
            bail!(
                "initramfs entry {path:?} is given twice (as {first:?} and {:?}); give each path once",
                e.path
            );
        }
        given.insert(path.clone(), &e.path);
        let entry = Entry {
            path,
            mode: e.mode,
            kind: e.kind.clone(),
        };
        if let Some(&i) = index.get(&entry.path) {
            // Added earlier as an implicit parent; the caller's entry wins.
            out[i] = entry;
            continue;
        }
        for (slash, _) in entry.path.match_indices('/') {
            let parent = &entry.path[..slash];
            if !index.contains_key(parent) {
                index.insert(parent.to_string(), out.len());
                out.push(Entry::dir(parent, IMPLICIT_DIR_MODE));
            }
        }
        index.insert(entry.path.clone(), out.len());
        out.push(entry);
    }

    // Everything that has children must be a directory.
    for e in &out {
        if let Some(slash) = e.path.rfind('/') {
            let parent = &out[index[&e.path[..slash]]];
            if parent.kind != EntryKind::Dir {
                bail!(
                    "initramfs entry {:?} is inside {:?}, which is {}, not a directory; make {:?} a directory or move the entry",
                    e.path,
                    parent.path,
                    kind_name(&parent.kind),
                    parent.path
                );
            }
        }
    }

    out.sort_by(|a, b| compare_paths(&a.path, &b.path));
    Ok(out)
}

/// Component-wise byte order: `a/b` sorts before `a-c` (because `a` < `a-c`),
/// unlike plain string order ('-' < '/'). This keeps each directory's
/// subtree contiguous, and a parent (a prefix) always sorts first.
pub(crate) fn compare_paths(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

pub(crate) fn kind_name(kind: &EntryKind) -> &'static str {
    match kind {
        EntryKind::Dir => "a directory",
        EntryKind::File { .. } => "a regular file",
        EntryKind::CharDev { .. } => "a character device",
        EntryKind::BlockDev { .. } => "a block device",
        EntryKind::Symlink { .. } => "a symlink",
    }
}

/// Removes one leading `/` or `./` and checks what remains.
pub(crate) fn normalize_path(raw: &str) -> Result<String> {
    let fix = "use a normalized relative path such as \"dev/console\"";
    let path = raw
        .strip_prefix("./")
        .or_else(|| raw.strip_prefix('/'))
        .unwrap_or(raw);
    if path.contains('\0') {
        bail!(
            "initramfs entry name {raw:?} contains a NUL byte, which cpio names cannot hold; {fix}"
        );
    }
    if path.is_empty() {
        bail!(
            "initramfs entry name {raw:?} names the archive root, which cannot be an entry; {fix}"
        );
    }
    // +1: the stored name includes its terminating NUL.
    if path.len() + 1 > PATH_MAX {
        bail!(
            "initramfs entry name {}... is {} bytes long; the kernel skips names longer than {} bytes; use a shorter path",
            truncate(path),
            path.len(),
            PATH_MAX - 1
        );
    }
    for component in path.split('/') {
        match component {
            "" => bail!("initramfs entry name {raw:?} has an empty component (a doubled or trailing '/'); {fix}"),
            "." => bail!("initramfs entry name {raw:?} has a '.' component; {fix}"),
            ".." => bail!("initramfs entry name {raw:?} has a '..' component; {fix}"),
            c if c.len() > NAME_MAX => bail!(
                "initramfs entry name {}... has a component of {} bytes; file names are limited to {NAME_MAX} bytes; use a shorter name",
                truncate(path),
                c.len()
            ),
            _ => {}
        }
    }
    Ok(path.to_string())
}

fn validate_entry(path: &str, e: &Entry) -> Result<()> {
    if e.mode & !0o7777 != 0 {
        bail!(
            "initramfs entry {path:?} has mode {:#o}, which has bits outside 0o7777; give permission bits only (e.g. 0o644), the file type comes from the entry kind",
            e.mode
        );
    }
    match &e.kind {
        EntryKind::CharDev { major, minor } | EntryKind::BlockDev { major, minor } => {
            if *major > MAX_MAJOR || *minor > MAX_MINOR {
                bail!(
                    "initramfs device {path:?} has number {major}:{minor}; Linux device numbers are at most {MAX_MAJOR}:{MAX_MINOR} (12-bit major, 20-bit minor)"
                );
            }
        }
        EntryKind::Symlink { target } => {
            if target.is_empty() {
                bail!("initramfs symlink {path:?} has an empty target; give the path it should point to");
            }
            if target.contains('\0') {
                bail!("initramfs symlink {path:?} has a target containing a NUL byte, which a symlink cannot hold");
            }
            // Stored with a terminating NUL (as gen_init_cpio does); the
            // kernel skips symlinks whose body exceeds PATH_MAX.
            if target.len() + 1 > PATH_MAX {
                bail!(
                    "initramfs symlink {path:?} has a target of {} bytes; the kernel skips targets longer than {} bytes",
                    target.len(),
                    PATH_MAX - 1
                );
            }
        }
        EntryKind::Dir | EntryKind::File { .. } => {}
    }
    Ok(())
}

/// The start of a very long name, for error messages.
fn truncate(s: &str) -> &str {
    let mut end = s.len().min(60);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_leading_slash_and_dot() {
        assert_eq!(normalize_path("/dev").unwrap(), "dev");
        assert_eq!(normalize_path("./dev/console").unwrap(), "dev/console");
        assert_eq!(normalize_path("init").unwrap(), "init");
    }

    #[test]
    fn orders_components() {
        let mut v = vec!["a-c", "a/b", "a", "b", "a/b/c", "a.b"];
        v.sort_by(|a, b| compare_paths(a, b));
        assert_eq!(v, ["a", "a/b", "a/b/c", "a-c", "a.b", "b"]);
    }

    #[test]
    fn adds_parents_and_sorts() {
        let got = normalize(&[
            Entry::char_dev("/x/y/z", 0o600, 1, 3),
            Entry::dir("./x", 0o700),
        ])
        .unwrap();
        let paths: Vec<_> = got.iter().map(|e| (e.path.as_str(), e.mode)).collect();
        assert_eq!(paths, [("x", 0o700), ("x/y", 0o755), ("x/y/z", 0o600)]);
    }

    #[test]
    fn explicit_dir_after_child_replaces_implicit_one_but_twice_is_an_error() {
        let ok = normalize(&[Entry::dir("a/b", 0o755), Entry::dir("a", 0o711)]).unwrap();
        assert_eq!(ok[0].mode, 0o711);
        let err = normalize(&[
            Entry::dir("a/b", 0o755),
            Entry::dir("a", 0o711),
            Entry::dir("/a", 0o711),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
    }
}
