//! The package engine without the musl toolchain (CI cannot build one):
//! every package file of the repository parses and checks; bad files are
//! refused; each input moves a package's key; and two fixture packages
//! (one per build system, the second depending on the first) are built
//! end to end with the HOST gcc standing in for the musl toolchain,
//! then linked against and run.

use nodeos_build::fetch::Resolved;
use nodeos_build::{Arch, Env, PhaseOutput};
use packages::{Package, Registry};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[test]
fn every_repository_package_parses_and_checks() {
    let reg = Registry::builtin();
    let names: Vec<&str> = reg.all().map(|p| p.spec.name.as_str()).collect();
    assert!(
        names.contains(&"brotli") && names.contains(&"zlib"),
        "{names:?}"
    );
    for p in reg.all() {
        assert_eq!(p.phase, format!("pkg-{}", p.spec.name));
        assert!(reg.closure(&p.spec.name).is_ok());
    }
}

const SOURCES: &str = r#"
[[source]]
name = "a"
variant = "upstream"
version = "1.0"
file = "a-1.0.tar.gz"
sha256 = "SHA"
"#;

const CONFIGURE_PKG: &str = r#"
name = "a"
source = "a"
recipe_version = 1
cflags = ["-O2"]
installs = ["lib/liba.a", "include/a.h", "lib/pkgconfig/a.pc"]
[build]
system = "configure"
args = ["--static"]
[target.i386]
cflags = ["-m32"]
"#;

fn parse_one(dir: &str, pkg: &str, sources: &str) -> anyhow::Result<Registry> {
    Registry::parse([(dir, pkg, sources)])
}

fn sources_with(sha: &str) -> String {
    SOURCES.replace("SHA", sha)
}

#[test]
fn bad_package_files_are_refused() {
    let src = sources_with(&"a".repeat(64));
    parse_one("a", CONFIGURE_PKG, &src).unwrap();
    let bad = |pkg: String, needle: &str| {
        let e = format!("{:#}", parse_one("a", &pkg, &src).unwrap_err());
        assert!(e.contains(needle), "'{e}' should mention '{needle}'");
    };
    bad(
        CONFIGURE_PKG.replace("source = \"a\"", "source = \"b\""),
        "not declared",
    );
    bad(
        CONFIGURE_PKG
            .replace("name = \"a\"", "name = \"b\"")
            .replace("pkgconfig/a.pc", "pkgconfig/b.pc"),
        "its directory's",
    );
    bad(
        CONFIGURE_PKG.replace("[target.i386]", "[target.i686]"),
        "not an alias",
    );
    bad(
        CONFIGURE_PKG.replace("[target.i386]", "[target.m68k]"),
        "no such row",
    );
    bad(
        CONFIGURE_PKG.replace("\"include/a.h\"", "\"share/a.h\""),
        "outside lib/",
    );
    bad(
        CONFIGURE_PKG.replace("\"include/a.h\"", "\"include/../../a.h\""),
        "relative path",
    );
    bad(
        CONFIGURE_PKG.replace(", \"lib/pkgconfig/a.pc\"", ""),
        "pkg-config",
    );
    bad(
        CONFIGURE_PKG.replace("system = \"configure\"", "system = \"scons\""),
        "scons",
    );
    bad(format!("{CONFIGURE_PKG}bogus = 1\n"), "bogus");
    bad(
        CONFIGURE_PKG.replace(
            "recipe_version = 1",
            "recipe_version = 1\ndepends = [\"zz\"]",
        ),
        "no package named 'zz'",
    );
    // The make and compile build systems.
    let make_pkg = CONFIGURE_PKG.replace(
        "system = \"configure\"\nargs = [\"--static\"]",
        "system = \"make\"\nconfigure = [\"perl\", \"./Configure\", \"--prefix={prefix}\"]\nmake = [[\"build_libs\"]]\ninstall = [[\"install_dev\"]]",
    );
    parse_one("a", &make_pkg, &src).unwrap();
    bad(
        make_pkg.replace("install = [[\"install_dev\"]]", "install = []"),
        "make and install commands",
    );
    bad(
        make_pkg.replace(
            "[\"perl\", \"./Configure\", \"--prefix={prefix}\"]",
            "[\"./configure\"]",
        ),
        "an interpreter and a script",
    );
    let compile_pkg = CONFIGURE_PKG
        .replace(
            "system = \"configure\"\nargs = [\"--static\"]",
            "system = \"compile\"\ncxxflags = [\"-std=c++17\"]\nlibs = [{ lib = \"a\", sources = [\"src/*.c\", \"src/x.cpp\"] }]\nheaders = [{ from = \"a.h\", to = \"a.h\" }]",
        )
        .replace("[target.i386]", "[pkgconfig]\ndescription = \"a\"\nlibs = [\"-la\"]\n\n[target.i386]");
    parse_one("a", &compile_pkg, &src).unwrap();
    bad(compile_pkg.replace("src/x.cpp", "src/x.s"), "neither C");
    bad(
        compile_pkg.replace("src/x.cpp", "../x.cpp"),
        "relative path",
    );
    bad(
        compile_pkg.replace(
            "headers = [{ from = \"a.h\", to = \"a.h\" }]",
            "headers = []",
        ),
        "headers to install",
    );
    bad(
        compile_pkg.replace("[pkgconfig]\ndescription = \"a\"\nlibs = [\"-la\"]\n", ""),
        "[pkgconfig]",
    );
    bad(
        compile_pkg.replace("cflags = [\"-m32\"]", "cflags = [\"-m32\"]\nargs = [\"x\"]"),
        "compile takes cflags only",
    );
    // Two packages that depend on each other.
    let b_src = src.replace("\"a\"", "\"b\"").replace("a-1.0", "b-1.0");
    let a = CONFIGURE_PKG.replace(
        "recipe_version = 1",
        "recipe_version = 1\ndepends = [\"b\"]",
    );
    let b = a
        .replace("name = \"a\"", "name = \"b\"")
        .replace("source = \"a\"", "source = \"b\"")
        .replace("depends = [\"b\"]", "depends = [\"a\"]")
        .replace("lib/pkgconfig/a.pc", "lib/pkgconfig/b.pc");
    let e = format!(
        "{:#}",
        Registry::parse([
            ("a", a.as_str(), src.as_str()),
            ("b", b.as_str(), b_src.as_str())
        ])
        .unwrap_err()
    );
    assert!(e.contains("cycle"), "{e}");
}

fn source_of(pkg: &Package) -> Resolved {
    Resolved {
        main: pkg.manifest.variants(&pkg.spec.source)[0].clone(),
        with: vec![],
    }
}

#[test]
fn each_input_moves_the_package_key() {
    let d = tempfile::tempdir().unwrap();
    let env = Env::for_tests(d.path(), d.path());
    let src = sources_with(&"a".repeat(64));
    let key_of =
        |pkg: &str, sources: &str, arch: Arch, tc: &str, deps: &BTreeMap<String, String>| {
            let reg = parse_one("a", pkg, sources).unwrap();
            let p = reg.get("a").unwrap();
            packages::key(&env, arch, p, &source_of(p), tc, deps)
                .unwrap()
                .hex()
        };
    let no_deps = BTreeMap::new();
    let tc = "1".repeat(64);
    let base = key_of(CONFIGURE_PKG, &src, Arch::X86_64, &tc, &no_deps);
    assert_eq!(
        base,
        key_of(CONFIGURE_PKG, &src, Arch::X86_64, &tc, &no_deps)
    );
    let mut moved = vec![
        (
            "arch",
            key_of(CONFIGURE_PKG, &src, Arch::I386, &tc, &no_deps),
        ),
        (
            "toolchain key",
            key_of(CONFIGURE_PKG, &src, Arch::X86_64, &"2".repeat(64), &no_deps),
        ),
        (
            "source sha256",
            key_of(
                CONFIGURE_PKG,
                &sources_with(&"b".repeat(64)),
                Arch::X86_64,
                &tc,
                &no_deps,
            ),
        ),
        (
            "cflags",
            key_of(
                &CONFIGURE_PKG.replace("\"-O2\"", "\"-O3\""),
                &src,
                Arch::X86_64,
                &tc,
                &no_deps,
            ),
        ),
        (
            "configure args",
            key_of(
                &CONFIGURE_PKG.replace("\"--static\"", "\"--const\""),
                &src,
                Arch::X86_64,
                &tc,
                &no_deps,
            ),
        ),
        (
            "installs",
            key_of(
                &CONFIGURE_PKG.replace("\"include/a.h\"", "\"include/b.h\""),
                &src,
                Arch::X86_64,
                &tc,
                &no_deps,
            ),
        ),
        (
            "recipe_version",
            key_of(
                &CONFIGURE_PKG.replace("recipe_version = 1", "recipe_version = 2"),
                &src,
                Arch::X86_64,
                &tc,
                &no_deps,
            ),
        ),
        (
            "this target's flags",
            key_of(
                &format!("{CONFIGURE_PKG}\n[target.x86_64]\nargs = [\"--64\"]\n"),
                &src,
                Arch::X86_64,
                &tc,
                &no_deps,
            ),
        ),
    ];
    // Another target's flags do not move this target's key.
    assert_eq!(
        base,
        key_of(
            &CONFIGURE_PKG.replace("\"-m32\"", "\"-m32\", \"-msse2\""),
            &src,
            Arch::X86_64,
            &tc,
            &no_deps
        )
    );
    // A patch in patches/a-1.0/.
    let patches = d.path().join("patches/a-1.0");
    std::fs::create_dir_all(&patches).unwrap();
    std::fs::write(patches.join("0001-x.patch"), "x").unwrap();
    moved.push((
        "a patch",
        key_of(CONFIGURE_PKG, &src, Arch::X86_64, &tc, &no_deps),
    ));
    std::fs::remove_dir_all(&patches).unwrap();
    // A dependency's key (the dependency itself is a second package).
    let dep_src = src.replace("\"a\"", "\"b\"").replace("a-1.0", "b-1.0");
    let dep_pkg = CONFIGURE_PKG
        .replace("name = \"a\"", "name = \"b\"")
        .replace("source = \"a\"", "source = \"b\"")
        .replace("lib/pkgconfig/a.pc", "lib/pkgconfig/b.pc");
    let with_dep = CONFIGURE_PKG.replace(
        "recipe_version = 1",
        "recipe_version = 1\ndepends = [\"b\"]",
    );
    let reg = Registry::parse([
        ("a", with_dep.as_str(), src.as_str()),
        ("b", dep_pkg.as_str(), dep_src.as_str()),
    ])
    .unwrap();
    let a = reg.get("a").unwrap();
    let dep_key = |k: &str| {
        let deps = BTreeMap::from([("b".to_string(), k.to_string())]);
        packages::key(&env, Arch::X86_64, a, &source_of(a), &tc, &deps)
            .unwrap()
            .hex()
    };
    assert_ne!(
        dep_key(&"3".repeat(64)),
        dep_key(&"4".repeat(64)),
        "a dependency's key moves the key"
    );
    assert!(
        packages::key(&env, Arch::X86_64, a, &source_of(a), &tc, &BTreeMap::new()).is_err(),
        "a missing dependency key is an error"
    );
    moved.push(("depends", dep_key(&"3".repeat(64))));
    let unmoved: Vec<&str> = moved
        .iter()
        .filter(|(_, k)| *k == base)
        .map(|(w, _)| *w)
        .collect();
    assert!(
        unmoved.is_empty(),
        "these inputs do not move the key: {unmoved:?}"
    );
}

/// A toolchain dir whose `<triple>-gcc`, `-ar`, … run the HOST tools: a
/// stand-in for the musl toolchain, which CI cannot build. It exercises
/// the engine (unpack, build systems, flags, dependencies, pkg-config,
/// checks, publishing), not musl.
fn host_standin_toolchain(dir: &Path, arch: Arch) -> toolchain::Toolchain {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (tool, host) in [
        ("gcc", "gcc"),
        ("g++", "g++"),
        ("ar", "ar"),
        ("ranlib", "ranlib"),
        ("strip", "strip"),
        ("nm", "nm"),
        ("ld", "ld"),
    ] {
        let p = bin.join(format!("{}-{tool}", arch.triple()));
        std::fs::write(&p, format!("#!/bin/sh\nexec {host} \"$@\"\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    toolchain::Toolchain {
        arch,
        dir: dir.to_path_buf(),
        output: PhaseOutput {
            name: "toolchain".into(),
            arch: Some(arch),
            dir: dir.to_path_buf(),
            key: "f".repeat(64),
            cached: true,
            wall: Duration::ZERO,
        },
    }
}

/// A tar.gz of `files` under a top directory, written to `dl`; its sha256.
fn tarball(dl: &Path, name: &str, files: &[(&str, &str)]) -> String {
    let work = tempfile::tempdir().unwrap();
    let top = work.path().join(format!("{name}-1.0"));
    for (path, text) in files {
        let p = top.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }
    std::fs::create_dir_all(dl).unwrap();
    let out = dl.join(format!("{name}-1.0.tar.gz"));
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(work.path())
        .arg(format!("{name}-1.0"))
        .status()
        .unwrap();
    assert!(st.success());
    nodeos_build::util::sha256_file(&out).unwrap()
}

#[test]
fn standin_build_with_the_host_gcc_links_and_runs() {
    let d = tempfile::tempdir().unwrap();
    let env = Env::for_tests(d.path(), d.path());
    let arch = Arch::X86_64;
    // `a`: a configure script of its own (like zlib's) writing a Makefile.
    let a_sha = tarball(&env.dl_dir, "a", &[
        ("configure", "#!/bin/sh\nfor o; do case $o in --prefix=*) prefix=${o#--prefix=};; --static) ;; *) echo \"unknown option $o\"; exit 1;; esac; done\nsed \"s|@PREFIX@|$prefix|g\" Makefile.in > Makefile\n"),
        ("Makefile.in", "all: liba.a\nliba.a: a.o\n\t$(AR) rcs $@ a.o\na.o: a.c\n\t$(CC) $(CFLAGS) -c a.c -o a.o\ninstall: all\n\tmkdir -p @PREFIX@/lib/pkgconfig @PREFIX@/include @PREFIX@/share/doc\n\tcp liba.a @PREFIX@/lib/\n\tcp a.h @PREFIX@/include/\n\tcp a.h @PREFIX@/share/doc/\n\tsed 's|%PREFIX%|@PREFIX@|g' a.pc.in > @PREFIX@/lib/pkgconfig/a.pc\n"),
        ("a.pc.in", "prefix=%PREFIX%\nlibdir=%PREFIX%/lib\nincludedir=${prefix}/include\n\nName: a\nDescription: a\nVersion: 1.0\nLibs: -L${libdir} -la\nCflags: -I${includedir}\n"),
        ("a.h", "int a_twice(int);\n"),
        ("a.c", "#include \"a.h\"\nint a_twice(int x) { return 2 * x; }\n"),
    ]);
    // `b`: no build system; includes a's header and calls it.
    let b_sha = tarball(&env.dl_dir, "b", &[
        ("include/b.h", "int b_quad(int);\n"),
        ("src/b.c", "#include <a.h>\n#include \"b.h\"\nint b_quad(int x) { return a_twice(a_twice(x)); }\n"),
    ]);
    let a_src = sources_with(&a_sha);
    let b_src = sources_with(&b_sha)
        .replace("\"a\"", "\"b\"")
        .replace("a-1.0", "b-1.0");
    let b_pkg = r#"
name = "b"
source = "b"
recipe_version = 1
cflags = ["-O2"]
depends = ["a"]
installs = ["lib/libb.a", "include/b.h", "lib/pkgconfig/b.pc"]
[build]
system = "archives"
include_dirs = ["include"]
headers = "include"
archives = [{ lib = "b", dir = "src" }]
[pkgconfig]
description = "b"
libs = ["-lb"]
"#;
    let reg = Registry::parse([
        ("a", CONFIGURE_PKG, a_src.as_str()),
        ("b", b_pkg, b_src.as_str()),
    ])
    .unwrap();
    let tc = host_standin_toolchain(&d.path().join("standin-toolchain"), arch);
    let b = packages::build_with(&env, &reg, arch, "b", &tc).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(!b.output.cached);
    let a_dir = env.cache_dir.join("out/pkg-a");
    assert_eq!(
        std::fs::read_dir(&a_dir).unwrap().count(),
        1,
        "a was built first, as b's dependency"
    );
    let a_prefix: PathBuf = std::fs::read_dir(&a_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Its make step recorded each job make ran (the build-time model's
    // input): the compile, then the archive.
    let rec =
        nodeos_build::jobrec::Record::read(&nodeos_build::jobrec::record_path(&a_prefix, "make"))
            .unwrap();
    let targets: Vec<&str> = rec.jobs.iter().map(|j| j.target.as_str()).collect();
    assert_eq!(targets, ["a.o", "liba.a"], "{:?}", rec.jobs);
    assert!(rec.jobs[0].head.contains("-c a.c"), "{:?}", rec.jobs[0]);
    let a_pc = std::fs::read_to_string(a_prefix.join("lib/pkgconfig/a.pc")).unwrap();
    assert!(a_pc.starts_with("prefix=${pcfiledir}/../..\n"), "{a_pc}");
    assert!(
        !a_pc.contains(".nodeos"),
        "no build-time path is left: {a_pc}"
    );
    assert!(a_pc.contains("libdir=${prefix}/lib\n"), "{a_pc}");
    assert!(
        !a_prefix.join("share").exists(),
        "only lib/ and include/ are published"
    );
    let b_pc = std::fs::read_to_string(b.pkgconfig_dir().join("b.pc")).unwrap();
    assert!(
        b_pc.contains("Requires: a\n") && b_pc.contains("Version: 1.0\n"),
        "{b_pc}"
    );
    // Link through pkg-config, as a user of the packages would.
    let libdirs = format!(
        "{}:{}",
        b.pkgconfig_dir().display(),
        a_prefix.join("lib/pkgconfig").display()
    );
    let flags = Command::new("pkg-config")
        .env("PKG_CONFIG_LIBDIR", &libdirs)
        .env_remove("PKG_CONFIG_PATH")
        .args(["--static", "--cflags", "--libs", "b"])
        .output()
        .expect("pkg-config runs (apt-get install pkg-config)");
    assert!(
        flags.status.success(),
        "{}",
        String::from_utf8_lossy(&flags.stderr)
    );
    let flags = String::from_utf8(flags.stdout).unwrap();
    let main = d.path().join("main.c");
    std::fs::write(&main, "#include <b.h>\n#include <stdio.h>\nint main(void) { printf(\"%d\\n\", b_quad(5)); return b_quad(5) == 20 ? 0 : 1; }\n").unwrap();
    let exe = d.path().join("main");
    let st = Command::new(tc.tool("gcc"))
        .arg("-static")
        .arg("-o")
        .arg(&exe)
        .arg(&main)
        .args(flags.split_whitespace())
        .status()
        .unwrap();
    assert!(st.success(), "linking against b and a with {flags}");
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "20\n");
    // Built once: the second call reuses both outputs.
    let again = packages::build_with(&env, &reg, arch, "b", &tc).unwrap();
    assert!(again.output.cached);
    assert_eq!(again.dir, b.dir);
}
