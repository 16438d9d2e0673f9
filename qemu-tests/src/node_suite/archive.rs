//! The second initramfs: the runner, its plan and the selected part of
//! Node's `test/` tree under `/node-test`, written with the project's own
//! writer; and the boot archive made of the image's initramfs followed by
//! it (the kernel unpacks concatenated archives one after the other).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use super::protocol::{PROTOCOL, PlanEntry, PlanFile};
use super::select::{FixtureNeeds, TestFile};

/// The runner, shipped in the archive.
pub const RUNNER_JS: &str = include_str!("../../node-suite/runner.js");

/// Where the archive's files land in the guest.
pub const GUEST_DIR: &str = "node-test";

/// What the kernel command line needs so that node (PID 1) runs the runner:
/// everything after `--` becomes init's arguments.
pub fn kernel_args() -> String {
    format!("-- /{GUEST_DIR}/runner.js")
}

/// The plan for one boot.
#[derive(Debug, Clone)]
pub struct GuestPlan {
    pub jobs: usize,
    /// Per test file.
    pub timeout: std::time::Duration,
    /// Id = index.
    pub tests: Vec<TestFile>,
}

/// Lines of a failing test's output that come back.
pub const TAIL_LINES: usize = 20;
pub const TAIL_BYTES: usize = 4096;

impl GuestPlan {
    pub fn file(&self) -> PlanFile {
        PlanFile {
            protocol: PROTOCOL,
            root: ".".into(),
            jobs: self.jobs.max(1),
            timeout_ms: self.timeout.as_millis() as u64,
            tail_lines: TAIL_LINES,
            tail_bytes: TAIL_BYTES,
            tests: self
                .tests
                .iter()
                .enumerate()
                .map(|(id, t)| PlanEntry {
                    id,
                    file: t.rel_path(),
                    parallel: t.suite.parallel(),
                })
                .collect(),
        }
    }
}

/// Bumped when what the archive packs beside the test files changes: a
/// test's result depends on the files it can read, so it enters the run
/// key (2: the files outside `test/` that tests read).
pub const ARCHIVE_LAYOUT: u32 = 2;

/// A written test archive.
#[derive(Debug, Clone)]
pub struct TestArchive {
    pub path: PathBuf,
    pub stats: initramfs::WriteStats,
    pub fixtures: FixtureNeeds,
}

/// Writes the test archive to `out`: `/node-test/runner.js`,
/// `/node-test/plan.json`, `/node-test/test/common/**`, the planned test
/// files, the fixtures they need and `outside`: paths of the source tree
/// outside `test/` (files or directories, present under `source_root`),
/// at the same place under `/node-test`. `work` holds the runner and plan
/// files the archive is written from.
pub fn write_test_archive(
    source_root: &Path,
    plan: &GuestPlan,
    fixtures: FixtureNeeds,
    outside: &BTreeSet<String>,
    work: &Path,
    out: &Path,
    compression: initramfs::Compression,
) -> Result<TestArchive> {
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let runner = work.join("runner.js");
    std::fs::write(&runner, RUNNER_JS).with_context(|| format!("writing {}", runner.display()))?;
    let plan_path = work.join("plan.json");
    let json = serde_json::to_string_pretty(&plan.file()).expect("a plan serializes");
    std::fs::write(&plan_path, json).with_context(|| format!("writing {}", plan_path.display()))?;

    let mut entries = vec![
        initramfs::Entry::file(format!("{GUEST_DIR}/runner.js"), 0o644, &runner),
        initramfs::Entry::file(format!("{GUEST_DIR}/plan.json"), 0o644, &plan_path),
    ];
    let test = source_root.join("test");
    add_tree(
        &mut entries,
        &test.join("common"),
        &format!("{GUEST_DIR}/test/common"),
    )?;
    match &fixtures {
        FixtureNeeds::All { .. } => add_tree(
            &mut entries,
            &test.join("fixtures"),
            &format!("{GUEST_DIR}/test/fixtures"),
        )?,
        FixtureNeeds::Some(names) => {
            for name in names {
                let src = test.join("fixtures").join(name);
                // A name the scan found in a test that the tree lacks: the
                // test will say what it missed.
                if src.symlink_metadata().is_ok() {
                    add_tree(
                        &mut entries,
                        &src,
                        &format!("{GUEST_DIR}/test/fixtures/{name}"),
                    )?;
                }
            }
        }
    }
    for path in outside {
        add_tree(
            &mut entries,
            &source_root.join(path),
            &format!("{GUEST_DIR}/{path}"),
        )?;
    }
    for t in &plan.tests {
        let src = source_root.join(t.rel_path());
        if !src.is_file() {
            bail!(
                "{} is not in the test tree {}",
                t.rel_path(),
                source_root.display()
            );
        }
        entries.push(initramfs::Entry::file(
            format!("{GUEST_DIR}/{}", t.rel_path()),
            mode_of(&src)?,
            &src,
        ));
    }
    let opts = initramfs::Options {
        compression,
        ..initramfs::Options::from_env()?
    };
    let stats = initramfs::write_archive_to_path(&entries, &opts, out)?;
    Ok(TestArchive {
        path: out.to_owned(),
        stats,
        fixtures,
    })
}

/// `src` (a file, symlink or directory, recursively) as entries under
/// `dest`.
fn add_tree(entries: &mut Vec<initramfs::Entry>, src: &Path, dest: &str) -> Result<()> {
    let meta = src
        .symlink_metadata()
        .with_context(|| format!("reading {}", src.display()))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(src)?;
        entries.push(initramfs::Entry::symlink(
            dest,
            0o777,
            target.to_string_lossy().into_owned(),
        ));
    } else if ft.is_dir() {
        entries.push(initramfs::Entry::dir(dest, 0o755));
        let mut children: Vec<_> = std::fs::read_dir(src)
            .with_context(|| format!("listing {}", src.display()))?
            .collect::<io::Result<_>>()?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let name = child.file_name();
            let name = name.to_string_lossy();
            add_tree(entries, &child.path(), &format!("{dest}/{name}"))?;
        }
    } else if ft.is_file() {
        entries.push(initramfs::Entry::file(dest, mode_of(src)?, src));
    }
    // Sockets, FIFOs and devices are never part of Node's test tree.
    Ok(())
}

fn mode_of(path: &Path) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    // Executable bits matter (fixtures run as scripts); the rest is 644.
    Ok(if mode & 0o111 != 0 { 0o755 } else { 0o644 })
}

/// Writes `image` then each of `extras` to `out`, with zero bytes after
/// every archive but the last so that the next starts at a multiple of 4
/// and at least 4 zeros follow the one before. Why: the kernel only takes a
/// cpio header at a 4-byte-aligned offset, skips zero padding between
/// archives, and an LZ4 (legacy) stream has no end marker of its own: it
/// ends at a zero chunk size, or runs on into the next archive and fails.
pub fn append_archives(image: &Path, extras: &[&Path], out: &Path) -> Result<u64> {
    let tmp = out.with_extension("part");
    let result = (|| -> Result<u64> {
        let mut w = io::BufWriter::new(
            File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        let mut len = io::copy(
            &mut File::open(image).with_context(|| format!("opening {}", image.display()))?,
            &mut w,
        )?;
        for extra in extras {
            let pad = padding_after(len);
            w.write_all(&vec![0u8; pad as usize])?;
            len += pad
                + io::copy(
                    &mut File::open(extra)
                        .with_context(|| format!("opening {}", extra.display()))?,
                    &mut w,
                )?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(len)
    })();
    match result {
        Ok(len) => {
            std::fs::rename(&tmp, out)
                .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
            Ok(len)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Zero bytes after an archive of `len` bytes: at least 4, up to the next
/// multiple of 4.
pub fn padding_after(len: u64) -> u64 {
    4 + (4 - len % 4) % 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_aligns_and_is_at_least_four() {
        for len in 0..64u64 {
            let pad = padding_after(len);
            assert!((4..8).contains(&pad), "{len}: {pad}");
            assert_eq!((len + pad) % 4, 0);
        }
    }

    #[test]
    fn appended_file_is_image_zeros_extra() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, out) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("out"),
        );
        std::fs::write(&a, b"12345").unwrap();
        std::fs::write(&b, b"0707").unwrap();
        let len = append_archives(&a, &[&b], &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(len as usize, bytes.len());
        assert_eq!(bytes, b"12345\0\0\0\0\0\0\0\x30\x37\x30\x37");
        assert!(!dir.path().join("out.part").exists());
    }

    #[test]
    fn each_extra_is_padded_after_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c, out) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
            dir.path().join("out"),
        );
        std::fs::write(&a, b"123456").unwrap();
        std::fs::write(&b, b"0707").unwrap();
        std::fs::write(&c, b"x").unwrap();
        let len = append_archives(&a, &[&b, &c], &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(len as usize, bytes.len());
        assert_eq!(bytes, b"123456\0\0\0\0\0\0\x30\x37\x30\x37\0\0\0\0x");
    }

    #[test]
    fn kernel_args_point_at_the_runner() {
        assert_eq!(kernel_args(), "-- /node-test/runner.js");
    }
}
