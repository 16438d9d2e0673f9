//! The initramfs phase through the phase driver: byte-identical archives
//! for the same init in any cache, a new archive for new init bytes under
//! the same key, reuse, the NodeOS layout, and a dynamic init refused.

use initramfs::phase::{build, file_name};
use nodeos_build::util::sha256_file;
use nodeos_build::{Arch, Env, PhaseOutput};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A real static x86_64 executable from the host compiler, standing in
/// for node (the phase only needs a static ELF of the right machine).
fn static_init(dir: &Path) -> PathBuf {
    let src = dir.join("init.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let bin = dir.join("init");
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("gcc runs (install build-essential)");
    assert!(st.success(), "gcc -static failed (libc6-dev installed?)");
    bin
}

/// Runs the initramfs phase on `init` (with its real sha256) and
/// returns the output and the archive's bytes.
fn archive(env: &Env, init: &Path, key: &str) -> (PhaseOutput, Vec<u8>) {
    let out = build(env, Arch::X86_64, init, key, &sha256_file(init).unwrap()).unwrap();
    let bytes = std::fs::read(out.dir.join(file_name())).unwrap();
    (out, bytes)
}

#[test]
fn same_node_gives_a_byte_identical_initramfs_in_any_cache() {
    let d = tempfile::tempdir().unwrap();
    let root = Env::workspace_root_from(env!("CARGO_MANIFEST_DIR"));
    let init = static_init(d.path());
    let key = "f".repeat(64);

    let env_a = Env::for_tests(&d.path().join("a"), &root);
    let (a, bytes_a) = archive(&env_a, &init, &key);
    assert!(!a.cached);

    // Same node bytes at another path with another mtime, another cache:
    // nothing about the host may leak into the archive.
    let moved = d.path().join("elsewhere-node");
    std::fs::copy(&init, &moved).unwrap();
    let f = std::fs::File::options().write(true).open(&moved).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1234567))
        .unwrap();
    let env_b = Env::for_tests(&d.path().join("b"), &root);
    let (b, bytes_b) = archive(&env_b, &moved, &key);
    assert!(!b.cached);
    assert!(
        bytes_a == bytes_b,
        "two caches gave different initramfs bytes"
    );

    // Other bytes under the same node key (a rebuild of Node is not
    // bit-reproducible) must not reuse the archive of the old bytes.
    let other = d.path().join("rebuilt-node");
    std::fs::copy(&init, &other).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&other)
        .unwrap()
        .write_all(b"\0")
        .unwrap();
    let (c, c_bytes) = archive(&env_a, &other, &key);
    assert!(!c.cached, "an archive of other init bytes was reused");
    assert_ne!(c_bytes, bytes_a);

    // The same cache again: reused, not rewritten.
    let (again, again_bytes) = archive(&env_a, &init, &key);
    assert!(again.cached);
    assert_eq!(again_bytes, bytes_a);

    // And it holds exactly the NodeOS layout, read back through the
    // real lz4 tool and our reader: /dev, /dev/console (c 5:1), /init.
    assert_eq!(initramfs::DEFAULT_COMPRESSION.name(), "lz4");
    let out = Command::new("lz4")
        .args(["-dc"])
        .arg(a.dir.join(file_name()))
        .output()
        .expect("lz4 runs (install lz4)");
    assert!(out.status.success(), "lz4 -dc failed");
    let entries = initramfs::read_archive(&out.stdout).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(names, ["dev", "dev/console", "init"]);
    let console = &entries[1];
    assert_eq!((console.rdevmajor, console.rdevminor), (5, 1));
    assert_eq!(entries[2].data, std::fs::read(&init).unwrap());
}

#[test]
fn a_dynamic_node_is_refused_by_the_phase() {
    let d = tempfile::tempdir().unwrap();
    let root = Env::workspace_root_from(env!("CARGO_MANIFEST_DIR"));
    let env = Env::for_tests(d.path(), &root);
    let e = build(
        &env,
        Arch::X86_64,
        Path::new("/bin/true"),
        &"e".repeat(64),
        &"f".repeat(64),
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("dynamically linked"), "{e:#}");
    // Nothing published: the phase's output dir has no entry.
    let published = env.cache_dir.join("out").join("initramfs");
    let empty = std::fs::read_dir(&published).map_or(true, |mut r| r.next().is_none());
    assert!(
        empty,
        "a refused init left output in {}",
        published.display()
    );
}
