//! A file that changes while it is being archived must make the write fail,
//! never produce a silently corrupt archive. The change is made
//! deterministically: an output sink performs it as soon as the first bytes
//! of the archive (the file's header) reach it, while the writer is still
//! part-way through reading the 16 MiB file.

mod common;

use common::*;
use initramfs::{write_archive, write_archive_to_path, Compression, Entry, Options};
use std::fs;
use std::io::{self, Write};
use std::path::Path;

const SIZE: usize = 16 << 20;

/// Runs `action` once, on the first write it receives.
struct Trigger<F: FnMut()> {
    action: Option<F>,
    out: Vec<u8>,
}

impl<F: FnMut()> Write for Trigger<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(mut action) = self.action.take() {
            action();
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn archive_while(src: &Path, action: impl FnMut()) -> String {
    let mut sink = Trigger {
        action: Some(action),
        out: Vec::new(),
    };
    let err = write_archive(
        &[Entry::file("init", 0o755, src)],
        &Options {
            mtime: 0,
            compression: Compression::None,
        },
        &mut sink,
    )
    .expect_err("a file changed during archiving must be an error");
    assert!(sink.action.is_none(), "the change was never made");
    format!("{err:#}")
}

#[test]
fn a_file_that_shrinks_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), "node", &bytes(1, SIZE));
    let msg = archive_while(&src, || {
        fs::File::options()
            .write(true)
            .open(&src)
            .unwrap()
            .set_len(1 << 20)
            .unwrap()
    });
    assert!(
        msg.contains("\"init\"")
            && msg.contains("shrank")
            && msg.contains(&format!("{SIZE} bytes")),
        "{msg}"
    );
}

#[test]
fn a_file_that_grows_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), "node", &bytes(1, SIZE));
    let msg = archive_while(&src, || {
        fs::File::options()
            .append(true)
            .open(&src)
            .unwrap()
            .write_all(b"more")
            .unwrap();
    });
    assert!(msg.contains("\"init\"") && msg.contains("grew"), "{msg}");
}

#[test]
fn a_file_modified_in_place_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), "node", &bytes(1, SIZE));
    let msg = archive_while(&src, || {
        use std::os::unix::fs::FileExt;
        let f = fs::File::options().write(true).open(&src).unwrap();
        f.write_at(b"patched", 0).unwrap();
        // Timestamps are coarse (jiffies); set one that surely differs.
        f.set_modified(std::time::UNIX_EPOCH).unwrap();
    });
    assert!(
        msg.contains("\"init\"") && msg.contains("modified while"),
        "{msg}"
    );
}

/// procfs files report size 0 but have contents: the bytes read do not
/// match the size in the header.
#[test]
fn a_file_whose_size_lies_is_an_error_and_to_path_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("initramfs.cpio");
    let err = write_archive_to_path(
        &[Entry::file("status", 0o644, "/proc/self/status")],
        &Options::default(),
        &out,
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("grew"), "{msg}");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no archive or temporary file may remain"
    );
}
