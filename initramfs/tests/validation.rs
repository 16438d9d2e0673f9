//! Bad input is refused before anything is written, with a message that
//! says what is wrong and what to do.

mod common;

use common::*;
use initramfs::{write_archive, write_archive_to_path, Compression, Entry, Options};
use std::path::Path;

fn error_for(entries: &[Entry]) -> String {
    let mut out = Vec::new();
    let err = write_archive(
        entries,
        &Options {
            mtime: 0,
            compression: Compression::None,
        },
        &mut out,
    )
    .expect_err("the writer must refuse this input");
    assert!(
        out.is_empty(),
        "nothing may be written before validation passes ({} bytes were)",
        out.len()
    );
    format!("{err:#}")
}

fn assert_refused(entries: &[Entry], fragments: &[&str]) {
    let msg = error_for(entries);
    for f in fragments {
        assert!(msg.contains(f), "error {msg:?} should mention {f:?}");
    }
}

#[test]
fn rejects_bad_names() {
    let long_component = "c".repeat(256);
    let long_path = vec!["p".repeat(255); 17].join("/"); // 4351 bytes
    let cases: &[(&str, &[&str])] = &[
        ("a/../b", &["\"a/../b\"", "'..' component", "normalized"]),
        ("..", &["'..' component"]),
        ("../etc", &["'..' component"]),
        ("a/./b", &["'.' component"]),
        (".", &["'.' component"]),
        ("a//b", &["empty component"]),
        ("dev/", &["empty component"]),
        ("//dev", &["empty component"]),
        ("", &["archive root"]),
        ("/", &["archive root"]),
        ("./", &["archive root"]),
        ("a\0b", &["NUL"]),
        (&long_component, &["256 bytes", "255"]),
        (&long_path, &["4351 bytes", "4095"]),
    ];
    for (name, fragments) in cases {
        assert_refused(&[Entry::dir(*name, 0o755)], fragments);
    }
}

#[test]
fn accepts_names_right_at_the_limits() {
    let component = "c".repeat(255);
    let path = vec!["p".repeat(255); 16].join("/"); // 4095 bytes
    assert_eq!(path.len(), 4095);
    for name in [
        component,
        path,
        "/dev".into(),
        "./dev".into(),
        "sp ace\ttab\nnewline-\u{1F600}".into(),
    ] {
        let mut out = Vec::new();
        write_archive(
            &[Entry::dir(name.clone(), 0o755)],
            &Options::default(),
            &mut out,
        )
        .unwrap_or_else(|e| panic!("{name:?} refused: {e:#}"));
    }
}

#[test]
fn rejects_duplicates_in_any_spelling() {
    for pair in [
        ["dev", "dev"],
        ["dev", "/dev"],
        ["./dev", "dev"],
        ["/a/b", "a/b"],
    ] {
        assert_refused(
            &[Entry::dir(pair[0], 0o755), Entry::dir(pair[1], 0o700)],
            &["given twice"],
        );
    }
    let src = tempfile::tempdir().unwrap();
    let f = source(src.path(), "f", b"x");
    assert_refused(
        &[
            Entry::file("init", 0o755, &f),
            Entry::symlink("/init", 0o777, "x"),
        ],
        &["\"init\"", "given twice"],
    );
}

#[test]
fn an_explicit_parent_after_its_child_is_not_a_duplicate() {
    let mut out = Vec::new();
    write_archive(
        &[
            Entry::char_dev("dev/console", 0o600, 5, 1),
            Entry::dir("dev", 0o700),
        ],
        &Options::default(),
        &mut out,
    )
    .unwrap();
}

#[test]
fn rejects_entries_below_non_directories() {
    let src = tempfile::tempdir().unwrap();
    let f = source(src.path(), "f", b"x");
    assert_refused(
        &[
            Entry::file("init", 0o755, &f),
            Entry::dir("init/sub", 0o755),
        ],
        &[
            "\"init/sub\"",
            "inside \"init\"",
            "a regular file, not a directory",
        ],
    );
    assert_refused(
        &[
            Entry::char_dev("a/b/c", 0o600, 1, 1),
            Entry::symlink("a/b", 0o777, "x"),
        ],
        &["\"a/b/c\"", "a symlink"],
    );
}

#[test]
fn rejects_bad_modes_devices_and_targets() {
    assert_refused(
        &[Entry::dir("d", 0o40755)],
        &["mode 0o40755", "permission bits only"],
    );
    assert_refused(&[Entry::dir("d", 0o10000)], &["0o10000"]);
    assert_refused(
        &[Entry::char_dev("c", 0o600, 4096, 0)],
        &["4096:0", "4095:1048575"],
    );
    assert_refused(&[Entry::block_dev("b", 0o600, 8, 1 << 20)], &["8:1048576"]);
    assert_refused(&[Entry::symlink("l", 0o777, "")], &["empty target"]);
    assert_refused(&[Entry::symlink("l", 0o777, "a\0b")], &["NUL"]);
    assert_refused(
        &[Entry::symlink("l", 0o777, "t".repeat(4096))],
        &["4096 bytes"],
    );
    // Exactly at the limits is fine.
    let mut out = Vec::new();
    write_archive(
        &[
            Entry::char_dev("c", 0o7777, 4095, (1 << 20) - 1),
            Entry::symlink("l", 0o777, "t".repeat(4095)),
        ],
        &Options::default(),
        &mut out,
    )
    .unwrap();
}

#[test]
fn rejects_sources_that_are_not_regular_files() {
    let src = tempfile::tempdir().unwrap();
    assert_refused(
        &[Entry::file("init", 0o755, src.path())],
        &["\"init\"", "is a directory", "regular file"],
    );
    assert_refused(
        &[Entry::file("init", 0o755, "/dev/null")],
        &["not a regular file"],
    );
    assert_refused(
        &[Entry::file("init", 0o755, src.path().join("missing"))],
        &["cannot read source file", "missing"],
    );

    // A FIFO must be refused, not opened (opening one for reading blocks
    // until a writer appears, which would hang the build).
    let fifo = src.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_refused(
        &[Entry::file("init", 0o755, &fifo)],
        &["not a regular file"],
    );
}

#[test]
fn rejects_files_too_large_for_newc() {
    let src = tempfile::tempdir().unwrap();
    let big = src.path().join("big");
    // Sparse: takes no disk space.
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 32)
        .unwrap();
    assert_refused(
        &[Entry::file("big", 0o644, &big)],
        &["4294967296 bytes", "at most 4294967295"],
    );
}

#[test]
fn to_path_leaves_nothing_behind_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("initramfs.cpio");
    std::fs::write(&out, b"previous archive").unwrap();
    let err = write_archive_to_path(&[Entry::dir("a/../b", 0o755)], &Options::default(), &out)
        .unwrap_err();
    assert!(
        format!("{err:#}").contains(&out.display().to_string()),
        "{err:#}"
    );
    // The previous file is untouched and no temporary file remains.
    assert_eq!(std::fs::read(&out).unwrap(), b"previous archive");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn to_path_in_a_missing_directory_says_so() {
    let err = write_archive_to_path(
        &[],
        &Options::default(),
        Path::new("/nonexistent-dir/x.cpio"),
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("/nonexistent-dir") && msg.contains("exists"),
        "{msg}"
    );
}
