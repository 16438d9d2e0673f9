//! Node 22's parts variant: the recipe and its sources agree (every part
//! pinned is used, every part used is pinned), the configure line links
//! every library package, and the tree assembled from the real pinned
//! files (Debian's repack, gyp-next, packaging, the npm builtins, the
//! esbuild bundles, the project's patches) has every builtin configure's
//! table and node.gyp name, an importable gyp, and the headers' versions;
//! node itself is not built.
//!
//! The tree test uses the download dir (`$NODEOS_DL_DIR`, else
//! `$NODEOS_CACHE_DIR/dl`, else ~/.cache/nodeos/dl) and fetches what is
//! missing there (apt, npm, pip: `cargo xtask fetch --node 22`).

use node_static::recipe::{self, ConfigurePaths, Variant};
use nodeos_build::fetch::{self, Fetcher, Resolved};
use nodeos_build::{Arch, Env, Key, PhaseRun};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn parts_variant() -> &'static Variant {
    node_static::version("22")
        .unwrap()
        .recipe
        .variant("parts")
        .unwrap()
}

/// Every source a parts variant's recipe row names.
fn used_sources(v: &Variant) -> BTreeSet<String> {
    let p = v.parts.as_ref().expect("the parts variant has parts");
    let mut used: BTreeSet<String> = p.place.iter().map(|x| x.source.clone()).collect();
    for b in &p.bundles {
        used.insert(b.source.clone());
        used.extend(b.node_modules.iter().cloned());
    }
    used.extend(p.esbuild.iter().cloned());
    used.extend(v.icu.iter().cloned());
    used
}

#[test]
fn every_pinned_part_is_used_and_every_used_part_is_pinned() {
    let nv = node_static::version("22").unwrap();
    let node = nv.manifest.get("node", "parts").unwrap();
    let pinned: BTreeSet<String> = node.with.iter().cloned().collect();
    let used = used_sources(parts_variant());
    assert_eq!(
        pinned, used,
        "sources-22.toml's `with` list and recipe-22.toml's parts differ"
    );
}

#[test]
fn the_configure_line_links_every_library_package_by_its_prefix() {
    let nv = node_static::version("22").unwrap();
    let v = parts_variant();
    let libs = &v.parts.as_ref().unwrap().libraries;
    assert_eq!(libs.len(), 11, "{libs:?}");
    let paths = ConfigurePaths {
        brotli: None,
        icu_source: Some("/dl/icu.tgz".into()),
        libraries: v
            .packages()
            .map(|p| (p.to_string(), PathBuf::from(format!("/p/{p}"))))
            .collect(),
    };
    for arch in Arch::all() {
        let args = recipe::configure_args(&nv.recipe, arch, "parts", &paths).unwrap();
        for l in libs {
            let f = &l.flag;
            for want in [
                format!("--shared-{f}"),
                format!("--shared-{f}-includes=/p/{}/include", l.package),
                format!("--shared-{f}-libpath=/p/{}/lib", l.package),
                format!("--shared-{f}-libname={}", l.libname),
            ] {
                assert!(args.contains(&want), "{arch}: {want} missing from {args:?}");
            }
        }
        assert!(
            !args.iter().any(|a| a == "--openssl-no-asm"),
            "configure refuses --openssl-no-asm with --shared-openssl: {args:?}"
        );
        assert!(!args.iter().any(|a| a.starts_with("--shared-builtin")));
        assert!(args.contains(&"--with-icu-source=/dl/icu.tgz".to_string()));
    }
    // A library without its prefix cannot become a configure line.
    let mut missing = paths.clone();
    missing.libraries.remove("sqlite");
    assert!(recipe::configure_args(&nv.recipe, Arch::X86_64, "parts", &missing).is_err());
}

#[test]
fn node_18_and_22_are_both_declared_and_22_is_the_default() {
    let majors: Vec<&str> = node_static::all_versions()
        .iter()
        .map(|v| v.major.as_str())
        .collect();
    assert_eq!(majors, ["18", "22"]);
    // 18 is past its end of life; 22 passed qemu-test on both arches.
    assert_eq!(node_static::default_version().major, "22");
    let e = node_static::version("20").unwrap_err();
    assert!(format!("{e:#}").contains("18, 22"), "{e:#}");
}

/// The real download dir (not a test's temp dir): where fetch puts parts.
fn real_dl_dir(root: &Path) -> PathBuf {
    Env::new(root, Some(1), false, false)
        .expect("HOME or NODEOS_CACHE_DIR is set")
        .dl_dir
}

/// Quoted `deps/….js` / `.mjs` paths of a file (node.gyp's deps_files,
/// configure.py's shareable_builtins table).
fn quoted_js_paths(text: &str) -> Vec<String> {
    text.split('\'')
        .filter(|s| s.starts_with("deps/") && (s.ends_with(".js") || s.ends_with(".mjs")))
        .map(String::from)
        .collect()
}

#[test]
fn the_parts_tree_is_assembled_with_every_builtin() {
    let root = Env::workspace_root_from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let env = Env {
        dl_dir: real_dl_dir(&root),
        jobs: 1,
        ..Env::for_tests(tmp.path(), &root)
    };
    std::fs::create_dir_all(&env.dl_dir).unwrap();
    let nv = node_static::version("22").unwrap();
    let m = &nv.manifest;
    let main = m.get("node", "parts").unwrap().clone();
    let with: Vec<_> = main
        .with
        .iter()
        .map(|w| m.get(w, "parts").unwrap().clone())
        .collect();
    let node = Resolved { main, with };
    // Fetch what the download dir lacks (this process only fetches the
    // parts variant).
    std::env::set_var("NODEOS_SOURCE_VARIANT", "parts");
    let mut f = Fetcher::new(&env).unwrap();
    for s in node.all() {
        fetch::ensure(&mut f, m, &s.name).unwrap_or_else(|e| {
            panic!(
                "the parts tree needs {} in {}: {e:#}\n(run `cargo xtask fetch --node 22`)",
                s.file,
                env.dl_dir.display()
            )
        });
    }

    let variant = parts_variant().clone();
    let mut key = Key::new("parts-tree-test", 1);
    key.str("tmp", &tmp.path().display().to_string());
    PhaseRun::new(&env, "parts-tree-test", None, key)
        .run(|ctx| {
            let src = ctx.build_dir().join("node");
            node_static::build::prepare_source(ctx, &node, &variant, &src)?;
            check_tree(&src, &variant);
            std::fs::write(ctx.out_dir().join("checked"), "parts tree checked\n")?;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("assembling the parts tree: {e:#}"));
}

fn check_tree(tree: &Path, variant: &Variant) {
    // Every builtin node.gyp and configure's table expect, present.
    let gyp = std::fs::read_to_string(tree.join("node.gyp")).unwrap();
    let configure = std::fs::read_to_string(tree.join("configure.py")).unwrap();
    let mut expected = quoted_js_paths(&gyp);
    let shareable = quoted_js_paths(&configure);
    assert_eq!(
        shareable.len(),
        4,
        "configure.py's shareable_builtins table changed: {shareable:?}"
    );
    expected.extend(shareable);
    for want in [
        "deps/acorn/acorn/dist/acorn.js",
        "deps/acorn/acorn-walk/dist/walk.js",
        "deps/minimatch/index.js",
        "deps/cjs-module-lexer/lexer.js",
        "deps/cjs-module-lexer/dist/lexer.js",
        "deps/undici/undici.js",
        "deps/amaro/dist/index.js",
    ] {
        assert!(
            expected.iter().any(|e| e == want),
            "{want} not expected by the tree: {expected:?}"
        );
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|p| std::fs::metadata(tree.join(p)).map_or(true, |m| m.len() == 0))
        .collect();
    assert!(
        missing.is_empty(),
        "builtins missing from the tree: {missing:?}"
    );

    // The bundles are the pinned bytes (prepare_source refuses others;
    // checked again here on the placed files).
    for b in &variant.parts.as_ref().unwrap().bundles {
        let sha = nodeos_build::util::sha256_file(&tree.join(&b.to)).unwrap();
        assert_eq!(sha, b.sha256, "{}", b.to);
    }
    let undici = std::fs::read_to_string(tree.join("deps/undici/undici.js")).unwrap();
    assert!(
        undici.chars().all(|c| (c as u32) <= 0xff),
        "undici.js is folded to Latin-1"
    );

    // tools/gyp is importable with its packaging, by the python configure
    // runs with.
    let out = std::process::Command::new("/usr/bin/python3")
        .current_dir(tree)
        .args([
            "-c",
            "import sys; sys.path.insert(0, 'tools/gyp/pylib'); import gyp, gyp.generator.make, packaging.version; print(gyp.__file__)",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "gyp does not import: {out:?}");
    let from = String::from_utf8_lossy(&out.stdout);
    assert!(from.contains("tools/gyp/pylib/gyp"), "{from}");
    // The project's patches are in: simdjson 3.12's string receiver, the
    // OpenSSL config placeholder (parts variant only).
    assert!(tree.join("deps/openssl/nodejs-openssl.cnf").is_file());
    let sea = std::fs::read_to_string(tree.join("src/node_sea.cc")).unwrap();
    assert!(sea.contains("get_string(result.main_path)"), "0010 applied");
    // The repack's own deps are there; what it dropped stays out (the
    // libraries come from packages).
    assert!(tree.join("deps/v8/include/v8.h").is_file());
    for dropped in [
        "deps/openssl/openssl",
        "deps/cares",
        "deps/llhttp",
        "deps/icu-small",
    ] {
        assert!(
            !tree.join(dropped).exists(),
            "{dropped} is in the repack after all"
        );
    }
    println!("parts tree assembled: {} builtins present", expected.len());
}
