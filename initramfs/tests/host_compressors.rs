//! The xz and zstd archives, as the real tools describe them: the settings
//! the kernel's unpacker needs (xz's CRC32 check, zstd's window of at most
//! 8 MiB and its content checksum) are in the written streams.

mod common;

use common::*;
use initramfs::{write_archive_to_path, Compression, Entry, Options};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An archive around a 3 MB file that compresses a little, written with
/// `compression` into `dir`.
fn archive(dir: &Path, compression: Compression) -> PathBuf {
    let payload = dir.join("payload");
    let mut data = bytes(7, 1 << 20);
    data.extend((0..2u32 << 20).map(|i| (i % 97) as u8));
    std::fs::write(&payload, &data).unwrap();
    let out = dir.join(format!("initramfs.cpio{}", compression.file_extension()));
    let opts = Options {
        mtime: 0,
        compression,
    };
    write_archive_to_path(&[Entry::file("payload", 0o644, &payload)], &opts, &out).unwrap();
    out
}

#[test]
fn the_xz_stream_checks_with_crc32() {
    let xz = require_tool("xz", "xz-utils");
    let dir = tempfile::tempdir().unwrap();
    let out = archive(dir.path(), Compression::Xz);
    let listed = run(Command::new(xz).args(["--robot", "--list"]).arg(&out), b"");
    let text = String::from_utf8(listed.stdout).unwrap();
    // `file` line: name, streams, blocks, compressed, uncompressed, ratio,
    // check names, padding.
    let file = text
        .lines()
        .find_map(|l| l.strip_prefix("file\t"))
        .unwrap_or_else(|| panic!("no file line in xz --robot --list:\n{text}"));
    let cols: Vec<&str> = file.split('\t').collect();
    assert_eq!(cols[0], "1", "one stream:\n{text}");
    assert_eq!(
        cols[5], "CRC32",
        "the kernel's unxz accepts only CRC32:\n{text}"
    );
}

#[test]
fn the_zstd_frame_has_a_window_of_at_most_8_mib_and_a_checksum() {
    let zstd = require_tool("zstd", "zstd");
    let dir = tempfile::tempdir().unwrap();
    let out = archive(dir.path(), Compression::Zstd);
    let listed = run(Command::new(zstd).arg("-lv").arg(&out), b"");
    let text = String::from_utf8(listed.stdout).unwrap();
    assert!(text.contains("# Zstandard Frames: 1"), "{text}");
    // "Window Size: 8.00 MiB (8388608 B)"
    let window: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Window Size: "))
        .and_then(|rest| rest.split_once('(')?.1.strip_suffix(" B)")?.parse().ok())
        .unwrap_or_else(|| panic!("no window size in zstd -lv:\n{text}"));
    assert!(
        window <= 8 << 20,
        "window {window} B is more than lib/decompress_unzstd.c takes:\n{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("Check: XXH64")),
        "no content checksum:\n{text}"
    );
}
