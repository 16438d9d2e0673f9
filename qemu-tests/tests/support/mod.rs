//! What the boot tests need around the harness: a kernel, a tiny static
//! init, an initramfs.
//!
//! The kernel is the kernel phase's output (built once per machine and
//! cached like any phase), or `NODEOS_TEST_KERNEL_<ARCH>` when set.

#![allow(dead_code)] // each test binary uses a part

pub mod debian_node_fixture;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use qemu_tests::{Accel, Arch, QemuConfig};

/// Boot step timeout (before `NODEOS_TIMEOUT_MULTIPLIER`): TCG boots these
/// kernels in 1-2 s on an idle machine; this leaves room for a loaded one.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// The env var naming a prebuilt kernel for `arch`.
pub fn kernel_var(arch: Arch) -> String {
    format!("NODEOS_TEST_KERNEL_{}", arch.name().to_uppercase())
}

/// The kernel to boot on `arch`: `NODEOS_TEST_KERNEL_<ARCH>` if set, else
/// the project's kernel phase (cached; built on first use, a few minutes).
/// Panics, loudly, when there is none: these tests must never pass without
/// booting something.
pub fn kernel(arch: Arch) -> PathBuf {
    let var = kernel_var(arch);
    if let Some(path) = std::env::var_os(&var) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{var}={} is not a file: point it at a bzImage",
            path.display()
        );
        return path;
    }
    // One build per arch per test process; the phase's own lock covers
    // other processes.
    static BUILT: std::sync::Mutex<Vec<(Arch, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(a, _)| *a == arch) {
        return p.clone();
    }
    let env = nodeos_build::Env::new(&workspace_root(), None, false, false)
        .expect("resolving the cache dirs");
    let k = kernel::build(&env, arch).unwrap_or_else(|e| {
        panic!("\n\n*** NO KERNEL FOR {arch}: building it failed: {e:#}\nOr set {var} to a bzImage.\n\n")
    });
    built.push((arch, k.bzimage.clone()));
    k.bzimage
}

/// The repository's root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// Where test artifacts go: `<target>/tmp/qemu-tests`.
pub fn work_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("qemu-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The cargo target dir (`CARGO_TARGET_TMPDIR` is `<target>/tmp`), under
/// which logs go to `nodeos/logs/<arch>/`.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .to_owned()
}

/// A file name unique in this process (tests run in parallel threads).
fn unique(stem: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{stem}.{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Compiles tests/data/tiny_init.c with `-DVARIANT_<variant>`, static, for
/// `arch` ([`qemu_tests::tiny_init`]).
pub fn tiny_init(arch: Arch, variant: &str) -> PathBuf {
    let out = work_dir().join(format!("tiny-init-{arch}-{}", variant.to_lowercase()));
    let tmp = work_dir().join(unique("tiny-init"));
    qemu_tests::tiny_init::compile(arch, variant, &tmp).unwrap_or_else(|e| panic!("{e:#}"));
    // Renamed into place: parallel tests may build the same variant.
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// An initramfs in the NodeOS layout (/dev/console and /init), written by
/// the `initramfs` crate (lz4 by default; `SOURCE_DATE_EPOCH` honoured).
pub fn initramfs(arch: Arch, init: &Path) -> PathBuf {
    let out = work_dir().join(unique(&format!("initramfs-{arch}")));
    let opts = initramfs::Options::from_env().expect("initramfs options from the environment");
    initramfs::write_archive_to_path(&initramfs::nodeos_layout(init), &opts, &out)
        .unwrap_or_else(|e| panic!("writing {}: {e:#}", out.display()));
    out
}

/// A QEMU configuration for a test: small memory, TCG or KVM as available,
/// the log in `<target>/nodeos/logs/<arch>/<name>.log`.
pub fn config(arch: Arch, initrd: PathBuf, name: &str) -> QemuConfig {
    let mut cfg = QemuConfig::new(arch, kernel(arch), initrd, &target_dir());
    cfg.memory_mib = 128;
    cfg.log_name = format!("{name}.log");
    cfg.accel = Accel::Auto;
    cfg
}

/// Whether a process is gone (no /proc entry).
pub fn process_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// One `#[test]` per arch for each case `fn case(arch: Arch)`.
#[allow(unused_macros)]
macro_rules! per_arch {
    ($($case:ident),* $(,)?) => {
        mod i386 {
            $(#[test] fn $case() { super::$case(qemu_tests::Arch::I386) })*
        }
        mod x86_64 {
            $(#[test] fn $case() { super::$case(qemu_tests::Arch::X86_64) })*
        }
    };
}
