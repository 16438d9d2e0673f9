//! Same inputs → same bytes, whatever the host state; the timestamp comes
//! from the options (SOURCE_DATE_EPOCH), never from the clock or the files.

mod common;

use common::*;
use initramfs::{
    mtime_from_source_date_epoch, read_archive, write_archive, write_archive_to_path, Compression,
    Options,
};
use std::time::{Duration, SystemTime};

fn write(entries: &[initramfs::Entry], mtime: u32, compression: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    write_archive(entries, &Options { mtime, compression }, &mut out).unwrap();
    out
}

#[test]
fn two_writes_are_identical_for_every_compression() {
    let dir = tempfile::tempdir().unwrap();
    let entries = rich_tree(dir.path());
    for c in Compression::ALL {
        let a = write(&entries, 1_700_000_000, c);
        // Change what a careless writer would pick up: source mtimes,
        // atimes and the input order.
        for e in &entries {
            if let initramfs::EntryKind::File { source } = &e.kind {
                let f = std::fs::File::options().write(true).open(source).unwrap();
                f.set_modified(SystemTime::now() - Duration::from_secs(12345))
                    .unwrap();
            }
        }
        let mut reversed = entries.clone();
        reversed.reverse();
        let b = write(&reversed, 1_700_000_000, c);
        assert!(a == b, "{c}: two writes of the same inputs differ");
    }
}

#[test]
fn to_path_writes_the_same_bytes_and_a_readable_file() {
    let dir = tempfile::tempdir().unwrap();
    let entries = rich_tree(dir.path());
    let path = dir.path().join("out.cpio");
    let opts = Options {
        mtime: 42,
        compression: Compression::None,
    };
    let stats = write_archive_to_path(&entries, &opts, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes, write(&entries, 42, Compression::None));
    assert_eq!(stats.bytes_written, bytes.len() as u64);
    assert_eq!(stats.bytes_uncompressed, bytes.len() as u64);
    assert_eq!(stats.entries, read_archive(&bytes).unwrap().len());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // Overwriting an existing archive works (atomic rename).
    write_archive_to_path(&entries, &Options { mtime: 43, ..opts }, &path).unwrap();
    assert_eq!(
        read_archive(&std::fs::read(&path).unwrap()).unwrap()[0].mtime,
        43
    );
}

#[test]
fn the_timestamp_is_used_for_every_entry_and_only_changes_mtime_fields() {
    let dir = tempfile::tempdir().unwrap();
    let entries = rich_tree(dir.path());
    let a = read_archive(&write(&entries, 0, Compression::None)).unwrap();
    let b = read_archive(&write(&entries, 0xFFFF_FFFF, Compression::None)).unwrap();
    assert!(a.iter().all(|e| e.mtime == 0));
    assert!(b.iter().all(|e| e.mtime == 0xFFFF_FFFF));
    let strip = |v: Vec<initramfs::ReadEntry>| {
        v.into_iter()
            .map(|e| initramfs::ReadEntry { mtime: 0, ..e })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(a), strip(b));
}

#[test]
fn source_date_epoch_parsing() {
    assert_eq!(mtime_from_source_date_epoch(None).unwrap(), 0);
    assert_eq!(mtime_from_source_date_epoch(Some("0")).unwrap(), 0);
    assert_eq!(
        mtime_from_source_date_epoch(Some("1700000000")).unwrap(),
        1_700_000_000
    );
    assert_eq!(
        mtime_from_source_date_epoch(Some("4294967295")).unwrap(),
        u32::MAX
    );
    for bad in [
        "",
        " 1",
        "1 ",
        "-1",
        "+1",
        "1.5",
        "0x10",
        "abc",
        "4294967296",
        "99999999999999999999",
    ] {
        let err = mtime_from_source_date_epoch(Some(bad))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SOURCE_DATE_EPOCH") && err.contains("unset it"),
            "{bad:?}: {err}"
        );
    }
}
