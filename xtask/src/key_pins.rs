//! Pins the cache keys of the toolchain, node, kernel and initramfs phases
//! for fixed inputs. A refactor that changes none of a phase's outputs must
//! keep its key, or every user's cache is rebuilt for nothing (hours for
//! the toolchain and Node). When an output really changes, update the pin
//! here and say in the commit which output changes and why.
//!
//! The inputs are fixtures, not the repository's sources, patches and
//! fragments, so that a new source or patch elsewhere does not move these
//! pins; the recipes are the repository's, so a recipe change shows here.

use nodeos_build::fetch::Resolved;
use nodeos_build::host::HostCompiler;
use nodeos_build::source::Source;
use nodeos_build::{Arch, Env};
use std::path::{Path, PathBuf};

/// A source entry as a key sees it (name, variant, file, sha256).
fn source(name: &str, variant: &str, version: &str) -> Source {
    Source {
        name: name.into(),
        variant: variant.into(),
        version: version.into(),
        file: format!("{name}-{version}.tar.xz"),
        sha256: nodeos_build::util::sha256_bytes(name.as_bytes()),
        urls: Vec::new(),
        debian: None,
        debian_pool: None,
        npm: None,
        pypi: None,
        with: Vec::new(),
    }
}

fn resolved(main: Source, with: Vec<Source>) -> Resolved {
    Resolved { main, with }
}

/// A project root with one patch per patched package and two fragments.
fn fixture_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for (pkg, name) in [
        ("binutils-2.40", "0001-binutils.patch"),
        ("gcc-12.2.0", "0001-gcc.patch"),
        ("musl-1.2.3", "0001-musl.patch"),
        ("node-18.20.4", "0001-node.patch"),
        ("linux-6.1.176", "0001-linux.patch"),
    ] {
        let d = root.join("patches").join(pkg);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), format!("--- a/{pkg}\n+++ b/{pkg}\n")).unwrap();
    }
    let config = root.join("kernel").join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("common.config"), "CONFIG_PRINTK=y\n").unwrap();
    for arch in Arch::all() {
        std::fs::write(
            config.join(format!("{}.config", arch.name())),
            format!("# {}\nCONFIG_TTY=y\n", arch.name()),
        )
        .unwrap();
    }
    root
}

fn toolchain_inputs() -> toolchain::Inputs {
    toolchain::Inputs {
        binutils: resolved(source("binutils", "debian", "2.40"), vec![]),
        gcc: resolved(
            source("gcc", "debian", "12.2.0"),
            vec![source("gcc-gfdl-diff", "debian", "12.2.0")],
        ),
        musl: resolved(source("musl", "upstream", "1.2.3"), vec![]),
        linux: resolved(source("linux", "debian", "6.1.176"), vec![]),
    }
}

fn node_source() -> Resolved {
    resolved(
        source("node", "debian", "18.20.4"),
        vec![source("node-ada", "debian", "18.20.4")],
    )
}

/// A library package's source, named as its sources.toml names it.
fn package_source(name: &str, version: &str) -> Resolved {
    resolved(source(name, "debian", version), vec![])
}

/// The key of each of the repository's library packages (none of them
/// depends on another yet) for the fixture toolchain key.
fn package_keys(env: &Env, arch: Arch, tc: &str) -> std::collections::BTreeMap<String, String> {
    packages::Registry::builtin()
        .all()
        .map(|p| {
            let version = &p.manifest.variants(&p.spec.source)[0].version;
            let src = package_source(&p.spec.source, version);
            let deps = Default::default();
            let k = packages::key(env, arch, p, &src, tc, &deps).unwrap().hex();
            (p.spec.name.clone(), k)
        })
        .collect()
}

/// The host compiler the pins were taken with (Debian 12's).
fn host() -> HostCompiler {
    HostCompiler {
        cc: "gcc (Debian 12.2.0-14+deb12u1) 12.2.0".into(),
        ld: "GNU ld (GNU Binutils for Debian) 2.40".into(),
    }
}

/// Every pinned key: (phase, arch, key).
fn keys(dir: &Path) -> Vec<(String, Arch, String)> {
    let root = fixture_root(dir);
    let env = Env::for_tests(&dir.join("cache"), &root);
    let mut out = Vec::new();
    for arch in Arch::all() {
        let tc = toolchain::key(&env, arch, &toolchain_inputs(), &host())
            .unwrap()
            .hex();
        let pkgs = package_keys(&env, arch, &tc);
        let node = node_static::key(
            &env,
            arch,
            node_static::version("18").unwrap(),
            &node_source(),
            &tc,
            &pkgs,
        )
        .unwrap()
        .hex();
        let fragments = kernel::default_fragments(&env, arch);
        let linux = resolved(source("linux", "debian", "6.1.176"), vec![]);
        let kernel = kernel::key(&env, arch, &linux, &fragments, &host())
            .unwrap()
            .hex();
        out.push(("toolchain".into(), arch, tc));
        // The packages node links are pinned with it; any other package
        // keys nobody's output yet.
        let recipe = node_static::Recipe::builtin();
        let linked: Vec<&str> = recipe
            .variant(node_source().variant())
            .unwrap()
            .packages()
            .collect();
        for (name, k) in pkgs.iter().filter(|(n, _)| linked.contains(&n.as_str())) {
            out.push((format!("pkg-{name}"), arch, k.clone()));
        }
        out.push(("node".into(), arch, node));
        out.push(("kernel".into(), arch, kernel));
        let init = static_init(dir, arch);
        let initramfs = crate::image::build_initramfs(
            &env,
            arch,
            &init,
            &"1".repeat(64),
            &"2".repeat(64),
            None,
        )
        .unwrap()
        .key;
        out.push(("initramfs".into(), arch, initramfs));
    }
    out
}

/// A static executable for `arch` from the host compiler: the initramfs
/// phase refuses anything else as its init. Its bytes are not a key input
/// (the phase is given the sha256), so the host compiler's version does
/// not move the pin.
fn static_init(dir: &Path, arch: Arch) -> PathBuf {
    let src = dir.join("init.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let bin = dir.join(format!("init-{arch}"));
    let st = std::process::Command::new("gcc")
        .arg(arch.host_cc_flag())
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("gcc runs (install build-essential)");
    assert!(
        st.success(),
        "gcc -static {} failed (gcc-multilib installed?)",
        arch.host_cc_flag()
    );
    bin
}

/// Taken on main at ed9eff9 (before the phase driver and targets file),
/// with that commit's key functions; node's (and the brotli package's)
/// since brotli became a library package: node's inputs are the same, now
/// expressed as the package's key instead of brotli's source entry.
const PINNED: &[(&str, Arch, &str)] = &[
    (
        "toolchain",
        Arch::I386,
        "2d7dc26102687b82bf774a5d9e8abfeb164c7a901862bad5dd9505a54bcd64f0",
    ),
    (
        "pkg-brotli",
        Arch::I386,
        "72f68acd0ccbd444e76f9bb3d119109ad59d350f2b3d1b612d29dcbe2bdfbae9",
    ),
    (
        "node",
        Arch::I386,
        "e9077bb5cc7b7f8b73462952745f549d36a86fd4d14844de6425d111c14fc8c9",
    ),
    (
        "kernel",
        Arch::I386,
        "7baf6e7b719c0425c8fb223bd11c04a44d5d94a61ac5a289950921d66ed960f0",
    ),
    (
        "initramfs",
        Arch::I386,
        "4b8806b3ea98842f3a8439911187dbed3e2b58cbe49a25d14cfdcc11986a295a",
    ),
    (
        "toolchain",
        Arch::X86_64,
        "fff769b7eaa5aa36128361eb0302d9685778aa2e7037920322901d1eba508f8b",
    ),
    (
        "pkg-brotli",
        Arch::X86_64,
        "4db7ab2053dd82a95e15d01adad0d6ab3988c1c65999dce4c0a85ff7ea6e150d",
    ),
    (
        "node",
        Arch::X86_64,
        "1a105917bf70bb832e1b6bcf5a33133f89e661ea79c1a8111b87adc4636c4982",
    ),
    (
        "kernel",
        Arch::X86_64,
        "2b6024d021c510b40376a6969c3844da95a6e307af8e9825b7413c485f1df39b",
    ),
    (
        "initramfs",
        Arch::X86_64,
        "2f07599628a8a4a8f813e9853a49fcd72289b7a7daa27f760260dafc7c33aa4e",
    ),
];

#[test]
fn phase_keys_are_pinned() {
    let d = tempfile::tempdir().unwrap();
    let got = keys(d.path());
    let mut moved = Vec::new();
    for (phase, arch, key) in &got {
        let pinned = PINNED
            .iter()
            .find(|(p, a, _)| p == phase && a == arch)
            .unwrap_or_else(|| panic!("no pin for {phase} {arch}"));
        if pinned.2 != key {
            moved.push(format!("{phase} {arch}: pinned {}, now {key}", pinned.2));
        }
    }
    assert_eq!(
        got.len(),
        PINNED.len(),
        "a pin for a phase that is no longer computed"
    );
    assert!(
        moved.is_empty(),
        "cache keys moved (every user's cache of these phases would be rebuilt). If an output really changes, update PINNED and say which output changes in the commit:\n{}",
        moved.join("\n")
    );
}

/// Every declared input of each phase moves its key: the sources (file,
/// variant, sha256 of each, main and companions), each patch dir's bytes,
/// each kernel fragment's bytes, the host compiler and linker, the keys of
/// the phases it depends on, the init's bytes and the archive options. The
/// recipes are inputs too; their fields are checked in each recipe crate.
#[test]
fn each_declared_input_moves_its_phase_key() {
    let d = tempfile::tempdir().unwrap();
    let root = fixture_root(d.path());
    let env = Env::for_tests(&d.path().join("cache"), &root);
    let arch = Arch::X86_64;
    let tc_key = |inputs: &toolchain::Inputs, host: &HostCompiler| {
        toolchain::key(&env, arch, inputs, host).unwrap().hex()
    };
    let base = tc_key(&toolchain_inputs(), &host());
    let mut changed = Vec::new();
    // Each source of the toolchain, each field a key sees.
    type Pick = fn(&mut toolchain::Inputs) -> &mut Source;
    let picks: [(&str, Pick); 5] = [
        ("binutils", |i| &mut i.binutils.main),
        ("gcc", |i| &mut i.gcc.main),
        ("gcc-gfdl-diff", |i| &mut i.gcc.with[0]),
        ("musl", |i| &mut i.musl.main),
        ("linux", |i| &mut i.linux.main),
    ];
    for (what, pick) in picks {
        for field in ["file", "variant", "sha256"] {
            let mut i = toolchain_inputs();
            let s = pick(&mut i);
            match field {
                "file" => s.file.push('x'),
                "variant" => s.variant.push('x'),
                _ => s.sha256 = "0".repeat(64),
            }
            changed.push((
                format!("toolchain: {what}.{field}"),
                base.clone(),
                tc_key(&i, &host()),
            ));
        }
    }
    let mut other_cc = host();
    other_cc.cc.push('x');
    changed.push((
        "toolchain: host cc".into(),
        base.clone(),
        tc_key(&toolchain_inputs(), &other_cc),
    ));
    for pkg in ["binutils-2.40", "gcc-12.2.0", "musl-1.2.3"] {
        let patch = root.join("patches").join(pkg).join("0002-new.patch");
        std::fs::write(&patch, "").unwrap();
        changed.push((
            format!("toolchain: a patch for {pkg}"),
            base.clone(),
            tc_key(&toolchain_inputs(), &host()),
        ));
        std::fs::remove_file(&patch).unwrap();
    }
    assert_eq!(
        tc_key(&toolchain_inputs(), &host()),
        base,
        "the fixture is restored"
    );

    // Node: its sources, patches and the toolchain's key.
    let pkgs = package_keys(&env, arch, &base);
    let node_key = |src: &Resolved, tc: &str, pkgs: &std::collections::BTreeMap<String, String>| {
        node_static::key(
            &env,
            arch,
            node_static::version("18").unwrap(),
            src,
            tc,
            pkgs,
        )
        .unwrap()
        .hex()
    };
    let nbase = node_key(&node_source(), &base, &pkgs);
    changed.push((
        "node: toolchain key".into(),
        nbase.clone(),
        node_key(&node_source(), &"0".repeat(64), &pkgs),
    ));
    let mut other = pkgs.clone();
    other.insert("brotli".into(), "0".repeat(64));
    changed.push((
        "node: the brotli package's key".into(),
        nbase.clone(),
        node_key(&node_source(), &base, &other),
    ));
    for i in 0..2 {
        let mut src = node_source();
        let s = if i == 0 {
            &mut src.main
        } else {
            &mut src.with[i - 1]
        };
        s.sha256 = "0".repeat(64);
        changed.push((
            format!("node: source {} sha256", s.name),
            nbase.clone(),
            node_key(&src, &base, &pkgs),
        ));
    }
    let patch = root.join("patches/node-18.20.4/0001-node.patch");
    std::fs::write(&patch, "changed").unwrap();
    changed.push((
        "node: a patch byte".into(),
        nbase.clone(),
        node_key(&node_source(), &base, &pkgs),
    ));

    // Kernel: source, patches, each fragment, host cc and ld.
    let linux = || resolved(source("linux", "debian", "6.1.176"), vec![]);
    let frags = kernel::default_fragments(&env, arch);
    let k_key =
        |src: &Resolved, h: &HostCompiler| kernel::key(&env, arch, src, &frags, h).unwrap().hex();
    let kbase = k_key(&linux(), &host());
    let mut src = linux();
    src.main.sha256 = "0".repeat(64);
    changed.push((
        "kernel: source sha256".into(),
        kbase.clone(),
        k_key(&src, &host()),
    ));
    let mut h = host();
    h.ld.push('x');
    changed.push(("kernel: host ld".into(), kbase.clone(), k_key(&linux(), &h)));
    let mut h = host();
    h.cc.push('x');
    changed.push(("kernel: host cc".into(), kbase.clone(), k_key(&linux(), &h)));
    for f in &frags {
        let before = std::fs::read(f).unwrap();
        std::fs::write(f, [before.as_slice(), b"# x\n"].concat()).unwrap();
        changed.push((
            format!("kernel: fragment {}", f.display()),
            kbase.clone(),
            k_key(&linux(), &host()),
        ));
        std::fs::write(f, before).unwrap();
    }
    let patch = root.join("patches/linux-6.1.176/0001-linux.patch");
    std::fs::write(&patch, "changed").unwrap();
    changed.push((
        "kernel: a patch byte".into(),
        kbase.clone(),
        k_key(&linux(), &host()),
    ));

    // Initramfs: the init's phase key and its bytes' sha256.
    let init = static_init(d.path(), arch);
    let ird = |init_key: &str, init_sha: &str| {
        crate::image::build_initramfs(&env, arch, &init, init_key, init_sha, None)
            .unwrap()
            .key
    };
    let ibase = ird(&"1".repeat(64), &"2".repeat(64));
    changed.push((
        "initramfs: init key".into(),
        ibase.clone(),
        ird(&"3".repeat(64), &"2".repeat(64)),
    ));
    changed.push((
        "initramfs: init sha256".into(),
        ibase.clone(),
        ird(&"1".repeat(64), &"3".repeat(64)),
    ));

    let unmoved: Vec<&String> = changed
        .iter()
        .filter(|(_, a, b)| a == b)
        .map(|(w, _, _)| w)
        .collect();
    assert!(
        unmoved.is_empty(),
        "these inputs do not move their phase's key: {unmoved:?}"
    );
    assert!(changed.len() > 30, "{} cases", changed.len());
}
