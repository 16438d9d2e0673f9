//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use initramfs::{Entry, EntryKind};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Finds `tool` on PATH or fails the test: these tests compare against real
/// tools and must never pass silently because one is missing.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{tool}` is not on PATH, and this test needs the real tool; install it \
             (Debian/Ubuntu: `apt-get install {package}`). The test fails rather than skips \
             so that CI cannot pass without it."
            )
        })
}

/// Runs a command with `input` on stdin; panics with its stderr on failure.
pub fn run(cmd: &mut Command, input: &[u8]) -> Output {
    let out = run_unchecked(cmd, input);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn run_unchecked(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Feed stdin from a thread so a tool that writes a lot before reading
    // everything cannot deadlock us.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// Deterministic bytes of length `len` from `seed`.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes a source file under `dir` and returns its path.
pub fn source(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, contents).unwrap();
    p
}

/// A tree with every entry kind, nesting, odd sizes (0..=5 and a large file
/// that spans many read chunks), special permission bits and names whose
/// lengths hit every padding case. Names have no whitespace so that the
/// same tree can be fed to gen_init_cpio.
pub fn rich_tree(src: &Path) -> Vec<Entry> {
    let mut v = vec![
        Entry::dir("/dev", 0o755),
        Entry::char_dev("/dev/console", 0o600, 5, 1),
        Entry::char_dev("dev/null", 0o666, 1, 3),
        Entry::block_dev("dev/vda", 0o660, 254, 0),
        Entry::block_dev("dev/big-numbers", 0o600, 4095, 1_048_575),
        Entry::file(
            "init",
            0o755,
            source(src, "init", &bytes(1, 3 * 1024 * 1024 + 3)),
        ),
        Entry::dir("usr", 0o755),
        Entry::dir("usr/lib", 0o750),
        Entry::file(
            "usr/lib/deep/deeper/file.txt",
            0o640,
            source(src, "deep", b"deep\n"),
        ),
        Entry::symlink("usr/lib/link-to-init", 0o777, "/init"),
        Entry::symlink("usr/lib/rel", 0o777, "../../init"),
        Entry::file("suid", 0o4755, source(src, "suid", b"#!/bin/sh\n")),
        Entry::file("sgid-sticky", 0o3711, source(src, "sgid", b"x")),
        Entry::dir("tmp", 0o1777),
        Entry::dir("empty-dir", 0o700),
        Entry::file("ro", 0o400, source(src, "ro", b"read only")),
        Entry::file(
            "unicode-\u{e9}t\u{e9}",
            0o644,
            source(src, "unicode", "caf\u{e9}".as_bytes()),
        ),
        Entry::file(
            format!("long-{}", "n".repeat(250)),
            0o644,
            source(src, "long", b"long name"),
        ),
    ];
    for size in 0..=5usize {
        for name_len in 1..=4usize {
            let name = format!("sizes/{}{}", "s".repeat(name_len), size);
            v.push(Entry::file(
                name,
                0o644,
                source(
                    src,
                    &format!("size{size}-{name_len}"),
                    &bytes(size as u64, size),
                ),
            ));
        }
    }
    v
}

/// The type letter `ls -l` (and `cpio -tv`) prints for a kind.
pub fn type_char(kind: &EntryKind) -> char {
    match kind {
        EntryKind::Dir => 'd',
        EntryKind::File { .. } => '-',
        EntryKind::CharDev { .. } => 'c',
        EntryKind::BlockDev { .. } => 'b',
        EntryKind::Symlink { .. } => 'l',
    }
}

/// `ls -l`-style permission string for mode bits, e.g. `rwsr-xr-t`.
pub fn perm_string(mode: u32) -> String {
    let mut s = String::new();
    for (shift, special, lower, upper) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => lower,
            (false, true) => upper,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

// ---------------------------------------------------------------------------
// An independent model of the archive rules, for property tests. It is
// deliberately written differently from the crate (sets and plain string
// operations instead of the crate's index maps) so that the two can check
// each other.

/// How a generated entry's kind is specified, before sources exist.
#[derive(Clone, Debug)]
pub enum KindSpec {
    Dir,
    File(Vec<u8>),
    /// A File entry whose source is a directory (must be rejected).
    FileFromDir,
    /// A File entry whose source does not exist (must be rejected).
    FileMissing,
    Char(u32, u32),
    Block(u32, u32),
    Symlink(String),
}

#[derive(Clone, Debug)]
pub struct Spec {
    pub path: String,
    pub mode: u32,
    pub kind: KindSpec,
}

/// What the archive should contain for one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub path: String,
    /// Type and permission bits.
    pub mode: u32,
    pub rdev: (u32, u32),
    pub data: Vec<u8>,
}

/// Creates the sources under `dir` and returns the entries.
pub fn materialize(specs: &[Spec], dir: &Path) -> Vec<Entry> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let kind = match &s.kind {
                KindSpec::Dir => EntryKind::Dir,
                KindSpec::File(data) => EntryKind::File {
                    source: source(dir, &format!("src{i}"), data),
                },
                KindSpec::FileFromDir => EntryKind::File {
                    source: dir.to_path_buf(),
                },
                KindSpec::FileMissing => EntryKind::File {
                    source: dir.join("does-not-exist"),
                },
                KindSpec::Char(a, b) => EntryKind::CharDev {
                    major: *a,
                    minor: *b,
                },
                KindSpec::Block(a, b) => EntryKind::BlockDev {
                    major: *a,
                    minor: *b,
                },
                KindSpec::Symlink(t) => EntryKind::Symlink { target: t.clone() },
            };
            Entry {
                path: s.path.clone(),
                mode: s.mode,
                kind,
            }
        })
        .collect()
}

fn model_path(raw: &str) -> Option<String> {
    let p = if let Some(rest) = raw.strip_prefix("./") {
        rest
    } else if let Some(rest) = raw.strip_prefix('/') {
        rest
    } else {
        raw
    };
    let ok = !p.is_empty()
        && !p.contains('\0')
        && p.len() < 4096
        && p.split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && c.len() <= 255);
    ok.then(|| p.to_string())
}

fn model_entry_ok(s: &Spec) -> bool {
    s.mode <= 0o7777
        && match &s.kind {
            KindSpec::Char(a, b) | KindSpec::Block(a, b) => *a < 4096 && *b < (1 << 20),
            KindSpec::Symlink(t) => !t.is_empty() && !t.contains('\0') && t.len() < 4096,
            KindSpec::FileFromDir | KindSpec::FileMissing => false,
            KindSpec::Dir | KindSpec::File(_) => true,
        }
}

fn model_is_dir(k: &KindSpec) -> bool {
    matches!(k, KindSpec::Dir)
}

/// The archive contents `specs` should produce, in archive order, or None
/// if the writer must refuse them.
pub fn model(specs: &[Spec]) -> Option<Vec<Expected>> {
    use std::collections::{BTreeSet, HashMap};
    let mut explicit: HashMap<String, &Spec> = HashMap::new();
    for s in specs {
        let p = model_path(&s.path)?;
        if !model_entry_ok(s) || explicit.insert(p, s).is_some() {
            return None;
        }
    }
    let mut all: BTreeSet<Vec<String>> = BTreeSet::new();
    for p in explicit.keys() {
        let comps: Vec<String> = p.split('/').map(String::from).collect();
        for n in 1..=comps.len() {
            let ancestor = comps[..n].to_vec();
            if n < comps.len() {
                if let Some(a) = explicit.get(&ancestor.join("/")) {
                    if !model_is_dir(&a.kind) {
                        return None;
                    }
                }
            }
            all.insert(ancestor);
        }
    }
    // BTreeSet<Vec<String>> iterates in component-wise order.
    Some(
        all.into_iter()
            .map(|comps| {
                let path = comps.join("/");
                match explicit.get(&path) {
                    None => Expected {
                        path,
                        mode: 0o040755,
                        rdev: (0, 0),
                        data: vec![],
                    },
                    Some(s) => {
                        let (ty, rdev, data) = match &s.kind {
                            KindSpec::Dir => (0o040000, (0, 0), vec![]),
                            KindSpec::File(d) => (0o100000, (0, 0), d.clone()),
                            KindSpec::Char(a, b) => (0o020000, (*a, *b), vec![]),
                            KindSpec::Block(a, b) => (0o060000, (*a, *b), vec![]),
                            KindSpec::Symlink(t) => {
                                let mut d = t.as_bytes().to_vec();
                                d.push(0);
                                (0o120000, (0, 0), d)
                            }
                            KindSpec::FileFromDir | KindSpec::FileMissing => unreachable!(),
                        };
                        Expected {
                            path,
                            mode: ty | s.mode,
                            rdev,
                            data,
                        }
                    }
                }
            })
            .collect(),
    )
}

/// Keeps the specs that, together, are valid (first one wins).
pub fn valid_subset(specs: Vec<Spec>) -> Vec<Spec> {
    let mut out: Vec<Spec> = Vec::new();
    for s in specs {
        out.push(s);
        if model(&out).is_none() {
            out.pop();
        }
    }
    out
}

/// Checks every field of a read archive against the model.
pub fn check_read_back(
    read: &[initramfs::ReadEntry],
    want: &[Expected],
    mtime: u32,
) -> Result<(), String> {
    if read.len() != want.len() {
        return Err(format!(
            "{} entries read back, {} expected:\nread: {:?}\nwant: {:?}",
            read.len(),
            want.len(),
            read.iter().map(|r| &r.path).collect::<Vec<_>>(),
            want.iter().map(|w| &w.path).collect::<Vec<_>>()
        ));
    }
    for (i, (r, w)) in read.iter().zip(want).enumerate() {
        let is_dir = w.mode & 0o170000 == 0o040000;
        let got = (&r.path, r.mode, (r.rdevmajor, r.rdevminor), &r.data);
        let exp = (&w.path, w.mode, w.rdev, &w.data);
        if got != exp {
            return Err(format!("entry {i}: read {got:?}, expected {exp:?}"));
        }
        let fixed = (
            r.ino, r.uid, r.gid, r.nlink, r.mtime, r.devmajor, r.devminor,
        );
        let want_fixed = (
            721 + i as u32,
            0,
            0,
            if is_dir { 2 } else { 1 },
            mtime,
            3,
            1,
        );
        if fixed != want_fixed {
            return Err(format!(
                "entry {i} ({}): ino/uid/gid/nlink/mtime/dev {fixed:?}, expected {want_fixed:?}",
                r.path
            ));
        }
    }
    Ok(())
}

pub mod strategies {
    use super::{KindSpec, Spec};
    use proptest::prelude::*;

    /// Plausible entries: valid components (any character but '/' and NUL,
    /// sometimes very long), optional leading "/" or "./", all kinds.
    pub fn plausible_specs(
        component: &'static str,
        target: &'static str,
    ) -> impl Strategy<Value = Vec<Spec>> {
        let comp = prop_oneof![8 => component.prop_map(|s| s), 1 => "[a-z]{240,255}"]
            .prop_filter("not . or ..", |c| c != "." && c != "..");
        let path = (
            prop::collection::vec(comp, 1..5),
            prop_oneof![Just(""), Just("/"), Just("./")],
        )
            .prop_map(|(c, prefix)| format!("{prefix}{}", c.join("/")));
        let kind = prop_oneof![
            2 => Just(KindSpec::Dir),
            4 => file_data().prop_map(KindSpec::File),
            1 => (0u32..4096, 0u32..(1 << 20)).prop_map(|(a, b)| KindSpec::Char(a, b)),
            1 => (0u32..4096, 0u32..(1 << 20)).prop_map(|(a, b)| KindSpec::Block(a, b)),
            1 => target.prop_map(KindSpec::Symlink),
        ];
        prop::collection::vec(
            (path, 0u32..=0o7777, kind).prop_map(|(path, mode, kind)| Spec { path, mode, kind }),
            0..24,
        )
    }

    /// Sizes 0..=9 (every padding case) most often, up to a few KB otherwise.
    pub fn file_data() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..10),
            prop::collection::vec(any::<u8>(), 0..5000),
        ]
    }

    /// Anything, including every kind of invalid input: mostly plausible
    /// entries from a tiny alphabet (so that duplicates and entries below
    /// files happen often), each with a ~1 in 8 chance of one fault, many of
    /// them right at a limit (so that both sides of every limit are hit).
    /// About half of the generated lists are valid.
    pub fn arbitrary_specs() -> impl Strategy<Value = Vec<Spec>> {
        let comp = prop_oneof![
            4 => "[ab]{1,2}",
            4 => "[^/\0]{1,8}",
            1 => "[a-z]{254,256}",
        ];
        let path = (
            prop::collection::vec(comp, 1..4),
            prop_oneof![4 => Just(""), 1 => Just("/"), 1 => Just("./")],
        )
            .prop_map(|(c, prefix)| format!("{prefix}{}", c.join("/")));
        let kind = prop_oneof![
            2 => Just(KindSpec::Dir),
            3 => file_data().prop_map(KindSpec::File),
            1 => (0u32..4096, 0u32..(1 << 20)).prop_map(|(a, b)| KindSpec::Char(a, b)),
            1 => (0u32..4096, 0u32..(1 << 20)).prop_map(|(a, b)| KindSpec::Block(a, b)),
            1 => "[^\0]{1,20}".prop_map(KindSpec::Symlink),
        ];
        let spec = (
            path,
            0u32..=0o7777,
            kind,
            0u32..128,
            any::<u32>(),
            any::<bool>(),
        )
            .prop_map(|(path, mode, kind, fault, value, edge)| {
                let mut s = Spec { path, mode, kind };
                apply_fault(&mut s, fault, value, edge);
                s
            });
        prop::collection::vec(spec, 0..10)
    }

    /// Fault number `fault` (most numbers mean none). `edge` picks the
    /// value just inside a limit (valid) or just outside it (invalid).
    fn apply_fault(s: &mut Spec, fault: u32, value: u32, edge: bool) {
        let over = usize::from(!edge);
        match fault {
            0 => s.path = format!("{}//x", s.path),
            1 => s.path = format!("{}/./x", s.path),
            2 => s.path = format!("x/../{}", s.path),
            3 => s.path = format!("{}/", s.path),
            4 => s.path = format!("//{}", s.path),
            5 => s.path = format!("{}\0x", s.path),
            6 => s.path = String::new(),
            7 => s.path = "/".into(),
            // Exactly 4095 bytes (valid) or 4096, in 255-byte components.
            8 => {
                let len = 4095 + over;
                let mut p = String::new();
                while p.len() < len {
                    if !p.is_empty() {
                        p.push('/');
                    }
                    let n = (len - p.len()).min(255);
                    p.push_str(&"p".repeat(n));
                }
                s.path = p;
            }
            9 => s.path = format!("{}/{}", s.path, "c".repeat(255 + over)),
            10 => s.mode = if edge { 0o7777 } else { 0o10000 | value },
            11 => s.kind = KindSpec::Char(if edge { 4095 } else { 4096.max(value) }, 0),
            12 => s.kind = KindSpec::Block(0, if edge { 0xFFFFF } else { 0x100000.max(value) }),
            13 => {
                s.kind = KindSpec::Symlink(if edge {
                    "t".repeat(4095)
                } else {
                    "t".repeat(4096)
                })
            }
            14 => s.kind = KindSpec::Symlink(if edge { "\u{1}".into() } else { String::new() }),
            15 => s.kind = KindSpec::Symlink("a\0b".into()),
            16 => s.kind = KindSpec::FileFromDir,
            17 => s.kind = KindSpec::FileMissing,
            _ => {}
        }
    }
}
