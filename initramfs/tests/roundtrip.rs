//! Property tests: random trees written and read back are equal to an
//! independent model of what they should contain; compressed archives
//! unpack with the real tools to exactly the uncompressed archive.

mod common;

use common::strategies::plausible_specs;
use common::*;
use initramfs::{read_archive, write_archive, Compression, Options};
use proptest::prelude::*;
use std::process::Command;

/// Component names: any character but '/' and NUL (control characters,
/// blanks and non-ASCII included). Targets: anything but NUL.
const COMPONENT: &str = "[^/\0]{1,12}";
const TARGET: &str = "[^\0]{1,100}";

fn write(entries: &[initramfs::Entry], mtime: u32, compression: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    let stats = write_archive(entries, &Options { mtime, compression }, &mut out).unwrap();
    assert_eq!(stats.bytes_written, out.len() as u64);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn random_trees_read_back_equal(specs in plausible_specs(COMPONENT, TARGET), mtime in any::<u32>()) {
        let specs = valid_subset(specs);
        let want = model(&specs).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let entries = materialize(&specs, dir.path());
        let archive = write(&entries, mtime, Compression::None);
        prop_assert_eq!(archive.len() % 512, 0);
        let read = read_archive(&archive).unwrap();
        if let Err(e) = check_read_back(&read, &want, mtime) {
            return Err(TestCaseError::fail(e));
        }
    }
}

proptest! {
    // Each case runs four external decompressors, so fewer cases.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn compressed_archives_decompress_with_the_real_tools(specs in plausible_specs(COMPONENT, TARGET), mtime in any::<u32>()) {
        let dir = tempfile::tempdir().unwrap();
        let entries = materialize(&valid_subset(specs), dir.path());
        let plain = write(&entries, mtime, Compression::None);
        for (c, tool, package) in [
            (Compression::Gzip, "gzip", "gzip"),
            (Compression::Xz, "xz", "xz-utils"),
            (Compression::Zstd, "zstd", "zstd"),
            (Compression::Lz4, "lz4", "lz4"),
        ] {
            let packed = write(&entries, mtime, c);
            let tool = require_tool(tool, package);
            let out = run(Command::new(tool).arg("-dc"), &packed);
            prop_assert!(out.stdout == plain, "{} -dc output differs from the uncompressed archive", c);
        }
    }
}
