//! Publishing a phase's output: only the outputs it names, made durable
//! (every file and directory fsynced before the publishing rename, the
//! parent after it), and recorded (`outputs.json`: each file's size and
//! sha256) so that a cached output can be checked: sizes at every reuse,
//! hashes by `cargo xtask verify`.

use crate::util::{remove_path, write_atomic};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// What a phase publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outputs {
    /// These entries of the output dir (files or whole directories); the
    /// phase must produce each, and anything else it left there (a temp
    /// file of an interrupted step) is removed before publishing.
    Named(Vec<String>),
    /// The whole output dir is one install prefix (a toolchain).
    Tree,
}

impl Outputs {
    pub fn named(names: &[&str]) -> Outputs {
        Outputs::Named(names.iter().map(|n| n.to_string()).collect())
    }
}

/// The files the engine writes into every output.
pub const ENGINE_FILES: &[&str] = &[
    crate::timings::FILE,
    "inputs.txt",
    "build.log",
    RECORD,
    crate::jobrec::RECORD_DIR,
];

/// The record of a published output.
pub const RECORD: &str = "outputs.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordedFile {
    /// Relative to the output dir.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub files: Vec<RecordedFile>,
}

/// Keeps only the named outputs (and the engine's files) in `stage`; the
/// error names a missing output. Returns what was removed, for the log.
pub fn keep_named(stage: &Path, outputs: &Outputs) -> Result<Vec<String>> {
    let Outputs::Named(names) = outputs else {
        return Ok(Vec::new());
    };
    for n in names {
        if fs::symlink_metadata(stage.join(n)).is_err() {
            bail!(
                "the phase did not produce its output {n} (in {})",
                stage.display()
            );
        }
    }
    let mut removed = Vec::new();
    for e in fs::read_dir(stage).with_context(|| format!("reading {}", stage.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if names.contains(&name) || ENGINE_FILES.contains(&name.as_str()) {
            continue;
        }
        remove_path(&e.path())?;
        removed.push(name);
    }
    removed.sort();
    Ok(removed)
}

/// Records every file under `stage` (size, sha256) in [`RECORD`].
pub fn record(stage: &Path) -> Result<Record> {
    let mut files = Vec::new();
    for e in walkdir::WalkDir::new(stage).sort_by_file_name() {
        let e = e.with_context(|| format!("walking {}", stage.display()))?;
        if !e.file_type().is_file() {
            continue;
        }
        let rel = rel_path(stage, e.path());
        if rel == RECORD {
            continue;
        }
        files.push(RecordedFile {
            size: e.metadata()?.len(),
            sha256: crate::util::sha256_file(e.path())?,
            path: rel,
        });
    }
    let rec = Record { files };
    write_atomic(&stage.join(RECORD), &serde_json::to_vec_pretty(&rec)?)?;
    Ok(rec)
}

fn rel_path(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// Fsyncs every file and directory under `dir` (and `dir` itself), so that
/// a rename that publishes it can never expose unwritten blocks after a
/// power loss.
pub fn sync_tree(dir: &Path) -> Result<()> {
    // Directories last (deepest first), after the files in them.
    let mut dirs = Vec::new();
    for e in walkdir::WalkDir::new(dir) {
        let e = e.with_context(|| format!("walking {}", dir.display()))?;
        if e.file_type().is_file() {
            File::open(e.path())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("syncing {}", e.path().display()))?;
        } else if e.file_type().is_dir() {
            dirs.push(e.into_path());
        }
    }
    for d in dirs.iter().rev() {
        sync_dir(d)?;
    }
    Ok(())
}

/// Fsyncs one directory (its entries: a rename into it is durable).
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing the directory {}", dir.display()))
}

/// How thoroughly [`check`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Every recorded file exists with its size (cheap: at every reuse).
    Sizes,
    /// Sizes and sha256 (`cargo xtask verify`).
    Hashes,
}

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Every recorded file is as recorded.
    Intact { files: usize },
    /// Published before outputs were recorded: nothing to check against.
    Unrecorded,
    /// The first difference, e.g. "node: 49001352 bytes recorded, 4096 found".
    Damaged(String),
}

/// Checks a published output against its record.
pub fn check(dir: &Path, depth: Depth) -> Result<Checked> {
    let bytes = match fs::read(dir.join(RECORD)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Checked::Unrecorded),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.join(RECORD).display())),
    };
    let rec: Record = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return Ok(Checked::Damaged(format!("{RECORD} is unreadable: {e}"))),
    };
    for f in &rec.files {
        let p: PathBuf = dir.join(&f.path);
        let size = match fs::metadata(&p) {
            Ok(m) => m.len(),
            Err(_) => return Ok(Checked::Damaged(format!("{} is missing", f.path))),
        };
        if size != f.size {
            return Ok(Checked::Damaged(format!(
                "{}: {} bytes recorded, {size} found",
                f.path, f.size
            )));
        }
        if depth == Depth::Hashes {
            let sha = crate::util::sha256_file(&p)?;
            if sha != f.sha256 {
                return Ok(Checked::Damaged(format!(
                    "{}: sha256 {} recorded, {sha} found",
                    f.path, f.sha256
                )));
            }
        }
    }
    Ok(Checked::Intact {
        files: rec.files.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_outputs_are_published_and_a_missing_one_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let stage = d.path();
        fs::write(stage.join("bzImage"), b"k").unwrap();
        fs::write(stage.join(".initramfs-123.tmp"), b"half").unwrap();
        fs::create_dir(stage.join("junk")).unwrap();
        fs::write(stage.join("timings.json"), b"{}").unwrap();
        let job_record = crate::jobrec::record_path(stage, "bzimage");
        fs::create_dir_all(job_record.parent().unwrap()).unwrap();
        fs::write(&job_record, b"S\t0\t1\n").unwrap();
        let named = Outputs::Named(vec!["bzImage".into()]);
        let removed = keep_named(stage, &named).unwrap();
        assert_eq!(removed, [".initramfs-123.tmp", "junk"]);
        assert!(stage.join("bzImage").is_file() && stage.join("timings.json").is_file());
        assert!(
            job_record.is_file(),
            "the job records (bench --model reads them) are the engine's, kept"
        );
        let e = keep_named(stage, &Outputs::Named(vec!["config".into()])).unwrap_err();
        assert!(
            format!("{e:#}").contains("did not produce its output config"),
            "{e:#}"
        );
        fs::write(stage.join("stray"), b"").unwrap();
        assert!(keep_named(stage, &Outputs::Tree).unwrap().is_empty());
        assert!(stage.join("stray").exists(), "a tree keeps everything");
    }

    #[test]
    fn a_record_catches_a_changed_size_always_and_changed_bytes_when_hashing() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path();
        fs::create_dir(out.join("bin")).unwrap();
        fs::write(out.join("bin/tool"), b"abcd").unwrap();
        fs::write(out.join("node"), b"0123456789").unwrap();
        assert_eq!(check(out, Depth::Sizes).unwrap(), Checked::Unrecorded);
        let rec = record(out).unwrap();
        assert_eq!(rec.files.len(), 2);
        sync_tree(out).unwrap();
        assert_eq!(
            check(out, Depth::Hashes).unwrap(),
            Checked::Intact { files: 2 }
        );
        // Same size, other bytes: only the hash sees it.
        fs::write(out.join("node"), b"0123456780").unwrap();
        assert_eq!(
            check(out, Depth::Sizes).unwrap(),
            Checked::Intact { files: 2 }
        );
        assert!(
            matches!(check(out, Depth::Hashes).unwrap(), Checked::Damaged(m) if m.contains("node: sha256"))
        );
        // A truncated file (a power loss before the data reached the disk).
        fs::write(out.join("bin/tool"), b"").unwrap();
        assert!(
            matches!(check(out, Depth::Sizes).unwrap(), Checked::Damaged(m) if m.contains("bin/tool: 4 bytes recorded, 0 found"))
        );
        fs::remove_file(out.join("bin/tool")).unwrap();
        assert!(
            matches!(check(out, Depth::Sizes).unwrap(), Checked::Damaged(m) if m.contains("missing"))
        );
    }
}
