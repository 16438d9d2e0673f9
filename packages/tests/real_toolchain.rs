//! Each library package built with the real musl toolchain, then a small
//! program (`packages/<name>/check.c`) compiled and linked statically
//! against it with that toolchain, through its pkg-config file, and run on
//! the host.
//!
//! The toolchain must already be published in `$NODEOS_CACHE_DIR` (these
//! tests never build one): `cargo xtask toolchain --arch <arch>`, then
//! `cargo test -p packages --test real_toolchain -- --ignored`.

use nodeos_build::{Arch, Env};
use std::path::{Path, PathBuf};
use std::process::Command;

fn env() -> Env {
    let root = Env::workspace_root_from(env!("CARGO_MANIFEST_DIR"));
    Env::new(&root, None, false, false).expect("NODEOS_CACHE_DIR or HOME is set")
}

fn build_and_run(name: &str, arch: Arch) {
    let env = env();
    let Some(tc) = toolchain::published(&env, arch).unwrap() else {
        panic!(
            "no published {arch} toolchain in {}: build it first (cargo xtask toolchain --arch {arch}) or point NODEOS_CACHE_DIR at a cache that has it",
            env.cache_dir.display()
        );
    };
    let registry = packages::Registry::builtin();
    let built = packages::build_with(&env, registry, arch, name, &tc)
        .unwrap_or_else(|e| panic!("building package {name} for {arch}: {e:#}"));
    for f in &registry.get(name).unwrap().spec.installs {
        assert!(built.dir.join(f).is_file(), "{f} is published");
    }

    // Compile and link flags from the package's own .pc file: a wrong
    // prefix or library list fails here.
    let pkg_config = |what: &str| -> Vec<String> {
        let out = Command::new("pkg-config")
            .env("PKG_CONFIG_LIBDIR", built.pkgconfig_dir())
            .env_remove("PKG_CONFIG_PATH")
            .args(["--static", what, name])
            .output()
            .expect("pkg-config runs (apt-get install pkg-config)");
        assert!(
            out.status.success(),
            "pkg-config {what} {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let cflags = pkg_config("--cflags");
    let libs = pkg_config("--libs");
    assert!(
        cflags
            .iter()
            .any(|f| f.starts_with("-I") && f.contains(&built.dir.display().to_string())),
        "cflags point into the published prefix: {cflags:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let src: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(name)
        .join("check.c");
    let bin = dir.path().join(format!("check-{name}"));
    let st = Command::new(tc.tool("gcc"))
        .args(&cflags)
        .arg("-static")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .args(&libs)
        .status()
        .unwrap();
    assert!(st.success(), "linking {} against {name}", src.display());
    nodeos_build::elf::check_static(&bin, arch).unwrap();
    let out = Command::new(&bin).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} exited {}: {stdout}",
        bin.display(),
        out.status
    );
    assert!(stdout.contains("round trip"), "{stdout}");
    println!("{name} {arch}: {}", stdout.trim());

    // A second build of the same key reuses the published output.
    let again = packages::build_with(&env, registry, arch, name, &tc).unwrap();
    assert!(again.output.cached, "the second build of {name} is cached");
    assert_eq!(again.dir, built.dir);
}

macro_rules! per_package_and_target {
    ($($test:ident: $name:literal, $arch:ident;)*) => {$(
        #[test]
        #[ignore = "needs a built musl toolchain (cargo xtask toolchain); run with --ignored"]
        fn $test() {
            build_and_run($name, Arch::$arch);
        }
    )*};
}

per_package_and_target! {
    zlib_x86_64: "zlib", X86_64;
    zlib_i386: "zlib", I386;
    brotli_x86_64: "brotli", X86_64;
    brotli_i386: "brotli", I386;
}

/// Every package has its check program and a test above.
#[test]
fn every_package_has_a_real_toolchain_test() {
    let text = include_str!("real_toolchain.rs");
    for p in packages::Registry::builtin().all() {
        let name = &p.spec.name;
        assert!(
            text.contains(&format!("\"{name}\", X86_64;"))
                && text.contains(&format!("\"{name}\", I386;")),
            "add real-toolchain tests for package {name} (one per target) above"
        );
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(name)
                .join("check.c")
                .is_file(),
            "packages/{name}/check.c is the program its test links"
        );
    }
}
