//! GNU cpio, an independent implementation, must see exactly the entries we
//! meant: names, types, permissions, owners, sizes, device numbers, symlink
//! targets, and (when extracting) contents.

mod common;

use common::*;
use initramfs::{nodeos_layout, write_archive, Compression, Entry, EntryKind, Options};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// One line of `cpio -itv --numeric-uid-gid`.
#[derive(Debug, PartialEq, Eq)]
struct Listed {
    type_char: char,
    perms: String,
    nlink: u32,
    uid: u32,
    gid: u32,
    /// File size, or (major, minor) for devices.
    size: Option<u64>,
    dev: Option<(u32, u32)>,
    name: Vec<u8>,
    target: Option<Vec<u8>>,
}

fn write(entries: &[Entry], mtime: u32) -> Vec<u8> {
    let mut out = Vec::new();
    write_archive(
        entries,
        &Options {
            mtime,
            compression: Compression::None,
        },
        &mut out,
    )
    .unwrap();
    out
}

fn list(archive: &[u8]) -> Vec<Listed> {
    let cpio = require_tool("cpio", "cpio");
    let out = run(
        Command::new(cpio)
            .args(["-i", "-t", "-v", "--numeric-uid-gid", "--quiet"])
            .env("TZ", "UTC")
            .env("LC_ALL", "C"),
        archive,
    );
    assert!(
        out.stderr.is_empty(),
        "cpio complained: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(parse_line)
        .collect()
}

/// Parses GNU cpio's long listing: `perms nlink uid gid (size | maj, min)
/// month day year-or-time name[ -> target]`. The name is the rest of the
/// line (it may contain blanks); GNU cpio escapes unprintable bytes as
/// `\ooo`.
fn parse_line(line: &str) -> Listed {
    // Byte ranges of the blank-separated tokens, so that the name can be
    // taken verbatim from where it starts.
    let mut tokens = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices().chain([(line.len(), ' ')]) {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                tokens.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    let tok = |i: usize| &line[tokens[i].0..tokens[i].1];
    let mode = tok(0);
    let type_char = mode.chars().next().unwrap();
    let (size, dev, date_at) = if tok(4).ends_with(',') {
        let maj = tok(4).trim_end_matches(',').parse().unwrap();
        (None, Some((maj, tok(5).parse().unwrap())), 6)
    } else {
        (Some(tok(4).parse().unwrap()), None, 5)
    };
    // Three date tokens, then the name.
    let rest = &line[tokens[date_at + 3].0..];
    let (name, target) = match rest.split_once(" -> ") {
        Some((n, t)) if type_char == 'l' => (unescape(n), Some(unescape(t))),
        _ => (unescape(rest), None),
    };
    Listed {
        type_char,
        perms: mode[1..].to_string(),
        nlink: tok(1).parse().unwrap(),
        uid: tok(2).parse().unwrap(),
        gid: tok(3).parse().unwrap(),
        size,
        dev,
        name,
        target,
    }
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push(u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap());
            i += 4;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// What `cpio -tv` should print for `e`.
fn expected(e: &Entry) -> Listed {
    let (size, dev, target) = match &e.kind {
        EntryKind::Dir => (Some(0), None, None),
        EntryKind::File { source } => (Some(fs::metadata(source).unwrap().len()), None, None),
        EntryKind::CharDev { major, minor } | EntryKind::BlockDev { major, minor } => {
            (None, Some((*major, *minor)), None)
        }
        // Stored as target + NUL (gen_init_cpio's convention), so the size
        // column is one more than the target length.
        EntryKind::Symlink { target } => (
            Some(target.len() as u64 + 1),
            None,
            Some(target.as_bytes().to_vec()),
        ),
    };
    Listed {
        type_char: type_char(&e.kind),
        perms: perm_string(e.mode),
        nlink: if e.kind == EntryKind::Dir { 2 } else { 1 },
        uid: 0,
        gid: 0,
        size,
        dev,
        name: e
            .path
            .trim_start_matches("./")
            .trim_start_matches('/')
            .as_bytes()
            .to_vec(),
        target,
    }
}

#[test]
fn lists_the_nodeos_layout_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let init = source(dir.path(), "node", &bytes(7, 12345));
    let listed = list(&write(&nodeos_layout(&init), 0));
    // Written out literally rather than derived, as the spec of the layout.
    let want = [
        ('d', "rwxr-xr-x", 2, None, None, "dev"),
        ('c', "rw-------", 1, None, Some((5, 1)), "dev/console"),
        ('-', "rwxr-xr-x", 1, Some(12345), None, "init"),
    ];
    assert_eq!(listed.len(), want.len(), "{listed:#?}");
    for (l, (t, perms, nlink, size, dev, name)) in listed.iter().zip(want) {
        let w = Listed {
            type_char: t,
            perms: perms.into(),
            nlink,
            uid: 0,
            gid: 0,
            size: size.or(if dev.is_none() { Some(0) } else { None }),
            dev,
            name: name.as_bytes().to_vec(),
            target: None,
        };
        assert_eq!(*l, w);
    }
}

#[test]
fn lists_a_rich_tree_exactly_in_parents_first_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = rich_tree(dir.path());
    entries.push(Entry::file(
        "with space\tand\\backslash",
        0o644,
        source(dir.path(), "ws", b"ws"),
    ));
    entries.push(Entry::symlink(
        "link with space",
        0o777,
        "target with space",
    ));
    let listed = list(&write(&entries, 1_700_000_000));

    // Directories we did not list but that must be added for their children.
    let implicit = ["sizes", "usr/lib/deep", "usr/lib/deep/deeper"];
    let mut want: Vec<Listed> = entries.iter().map(expected).collect();
    want.extend(implicit.iter().map(|p| expected(&Entry::dir(*p, 0o755))));
    // Parents first, then component-wise byte order.
    want.sort_by(|a, b| {
        a.name
            .split(|&c| c == b'/')
            .cmp(b.name.split(|&c| c == b'/'))
    });
    assert_eq!(listed, want);
    for (i, l) in listed.iter().enumerate() {
        if let Some(slash) = l.name.iter().rposition(|&c| c == b'/') {
            assert!(
                listed[..i].iter().any(|p| p.name == l.name[..slash]),
                "parent of {:?} not before it",
                l.name
            );
        }
    }
}

#[test]
fn extracts_a_rich_tree_as_a_non_root_user_would() {
    let cpio = require_tool("cpio", "cpio");
    let src = tempfile::tempdir().unwrap();
    // Device nodes cannot be created without root; listing covers them.
    let entries: Vec<Entry> = rich_tree(src.path())
        .into_iter()
        .filter(|e| {
            !matches!(
                e.kind,
                EntryKind::CharDev { .. } | EntryKind::BlockDev { .. }
            )
        })
        .collect();
    let mtime = 1_600_000_000;
    let archive = write(&entries, mtime);
    let dest = tempfile::tempdir().unwrap();
    run(
        Command::new(cpio)
            .args(["-i", "-d", "-m", "--no-absolute-filenames", "--quiet"])
            .current_dir(dest.path()),
        &archive,
    );
    for e in &entries {
        let p = dest.path().join(e.path.trim_start_matches('/'));
        let meta = fs::symlink_metadata(&p)
            .unwrap_or_else(|err| panic!("{} not extracted: {err}", p.display()));
        match &e.kind {
            EntryKind::Dir => assert!(meta.is_dir(), "{p:?}"),
            EntryKind::File { source } => {
                assert!(meta.is_file(), "{p:?}");
                assert!(
                    fs::read(&p).unwrap() == fs::read(source).unwrap(),
                    "contents of {p:?}"
                );
                let mtime_got = meta
                    .modified()
                    .unwrap()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                assert_eq!(mtime_got.as_secs(), u64::from(mtime), "mtime of {p:?}");
            }
            EntryKind::Symlink { target } => {
                assert!(meta.file_type().is_symlink(), "{p:?}");
                assert_eq!(fs::read_link(&p).unwrap(), Path::new(target));
            }
            _ => unreachable!(),
        }
        if !meta.file_type().is_symlink() {
            assert_eq!(meta.permissions().mode() & 0o7777, e.mode, "mode of {p:?}");
        }
    }
}
