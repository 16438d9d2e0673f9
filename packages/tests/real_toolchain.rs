//! Each library package built with the real musl toolchain, then a small
//! program (`packages/<name>/check.c`, or `check.cpp` for a C++ library)
//! compiled and linked statically against it with that toolchain, through
//! its pkg-config file, and run on the host; it must print the version of
//! the source the package was built from.
//!
//! The toolchain must already be published in `$NODEOS_CACHE_DIR` (these
//! tests never build one): `cargo xtask toolchain --arch <arch>`, then
//! `cargo test -p packages --test real_toolchain -- --ignored`. An x86_64
//! test without its toolchain fails; an i386 test without its toolchain
//! prints SKIPPED (the i686 toolchain is built separately and later).

use nodeos_build::{Arch, Env};
use std::path::{Path, PathBuf};
use std::process::Command;

fn env() -> Env {
    let root = Env::workspace_root_from(env!("CARGO_MANIFEST_DIR"));
    // One make job: these run beside long builds, never instead of them.
    Env::new(&root, Some(1), false, false).expect("NODEOS_CACHE_DIR or HOME is set")
}

fn build_and_run(name: &str, source: Option<&str>, arch: Arch) {
    let env = env();
    let Some(tc) = toolchain::published(&env, arch).unwrap() else {
        let msg = format!(
            "no published {arch} toolchain in {}: build it first (cargo xtask toolchain --arch {arch}) or point NODEOS_CACHE_DIR at a cache that has it",
            env.cache_dir.display()
        );
        if arch == Arch::I386 {
            eprintln!("\n*** SKIPPED (not a pass): package {name} for {arch}: {msg}\n");
            println!("SKIPPED package {name} {arch}");
            return;
        }
        panic!("{msg}");
    };
    let registry = packages::Registry::builtin();
    let pkg = registry.get(name).unwrap();
    let source = source.unwrap_or(&pkg.spec.source);
    let version = pkg.manifest.variants(source)[0].version.clone();
    let built = packages::build_of(&env, registry, arch, name, source, &tc)
        .unwrap_or_else(|e| panic!("building package {name} ({source}) for {arch}: {e:#}"));
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
    let (src, compiler) = check_program(name);
    let bin = dir.path().join(format!("check-{name}"));
    let st = Command::new(tc.tool(compiler))
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
    assert!(
        stdout.contains(&version),
        "the program linked against {name} reports version {version}: {stdout}"
    );
    println!("{name} {arch}: {}", stdout.trim());

    // A second build of the same key reuses the published output.
    let again = packages::build_of(&env, registry, arch, name, source, &tc).unwrap();
    assert!(again.output.cached, "the second build of {name} is cached");
    assert_eq!(again.dir, built.dir);
}

/// `packages/<name>/check.c` (C) or `check.cpp` (C++), and the
/// toolchain's compiler for it.
fn check_program(name: &str) -> (PathBuf, &'static str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    if dir.join("check.cpp").is_file() {
        (dir.join("check.cpp"), "g++")
    } else {
        (dir.join("check.c"), "gcc")
    }
}

macro_rules! per_package_and_target {
    ($($test:ident: $name:literal $(@ $source:literal)?, $arch:ident;)*) => {$(
        #[test]
        #[ignore = "needs a built musl toolchain (cargo xtask toolchain); run with --ignored"]
        fn $test() {
            build_and_run($name, None $(.or(Some($source)))?, Arch::$arch);
        }
    )*};
}

per_package_and_target! {
    zlib_x86_64: "zlib", X86_64;
    zlib_i386: "zlib", I386;
    brotli_x86_64: "brotli", X86_64;
    brotli_i386: "brotli", I386;
    brotli_1_1_x86_64: "brotli" @ "brotli-1.1.0", X86_64;
    brotli_1_1_i386: "brotli" @ "brotli-1.1.0", I386;
    openssl_x86_64: "openssl", X86_64;
    openssl_i386: "openssl", I386;
    c_ares_x86_64: "c-ares", X86_64;
    c_ares_i386: "c-ares", I386;
    nghttp2_x86_64: "nghttp2", X86_64;
    nghttp2_i386: "nghttp2", I386;
    zstd_x86_64: "zstd", X86_64;
    zstd_i386: "zstd", I386;
    llhttp_x86_64: "llhttp", X86_64;
    llhttp_i386: "llhttp", I386;
    simdutf_x86_64: "simdutf", X86_64;
    simdutf_i386: "simdutf", I386;
    simdjson_x86_64: "simdjson", X86_64;
    simdjson_i386: "simdjson", I386;
    ada_x86_64: "ada", X86_64;
    ada_i386: "ada", I386;
    sqlite_x86_64: "sqlite", X86_64;
    sqlite_i386: "sqlite", I386;
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
            check_program(name).0.is_file(),
            "packages/{name}/check.c (or check.cpp) is the program its test links"
        );
    }
}
