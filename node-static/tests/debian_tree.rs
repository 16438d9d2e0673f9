//! The Debian variant's source preparation on the real Debian sources
//! (fetched through the private apt configuration when not in the download
//! dir): every removed JS builtin is restored where configure's builtin
//! table expects it, so js2c embeds it; nothing is left for node to read
//! from disk at start-up.

use nodeos_build::fetch::{self, Fetcher};
use nodeos_build::Env;

mod common;
use std::path::PathBuf;

fn real_dl_dir() -> PathBuf {
    match std::env::var_os("NODEOS_DL_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let cache = match std::env::var_os("NODEOS_CACHE_DIR") {
                Some(c) if !c.is_empty() => PathBuf::from(c),
                _ => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/nodeos"),
            };
            cache.join("dl")
        }
    }
}

#[test]
fn debian_tree_has_embedded_builtins() {
    let root = tempfile::tempdir().unwrap();
    let project = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut env = Env::for_tests(root.path(), &project);
    // Share the real download dir (and apt state) so the sources are
    // fetched once per machine, not once per test run.
    env.dl_dir = real_dl_dir();
    env.cache_dir = env.dl_dir.parent().unwrap().to_path_buf();
    let manifest = node_static::node18_manifest();
    std::env::set_var("NODEOS_SOURCE_VARIANT", "debian");
    let mut fetcher = Fetcher::new(&env).unwrap();
    let node =
        fetch::ensure(&mut fetcher, &manifest, "node").expect("fetching Debian's node sources");
    let recipe = node_static::Recipe::builtin();
    let variant = recipe.variant("debian").unwrap().clone();

    let mut test_env = env.clone();
    test_env.cache_dir = root.path().join("cache");
    let tree = common::prepared_tree(&test_env, &node, &recipe, "debian");
    let configure = std::fs::read_to_string(tree.join("configure.py")).unwrap();
    let node_gyp = std::fs::read_to_string(tree.join("node.gyp")).unwrap();
    for b in &variant.builtins {
        let placed = tree.join(&b.to);
        let len = std::fs::metadata(&placed)
            .unwrap_or_else(|_| panic!("{} not restored", b.to))
            .len();
        assert!(len > 1000, "{} is suspiciously small ({len} bytes)", b.to);
        // configure's shareable-builtin table (or node.gyp's deps_files)
        // names this path, so js2c embeds it when no --shared-builtin-* is given.
        assert!(
            configure.contains(&format!("'{}'", b.to)) || node_gyp.contains(&format!("'{}'", b.to)),
            "{} is not in configure's builtin table nor node.gyp",
            b.to
        );
        if let Some(vh) = &b.version_header {
            let h = std::fs::read_to_string(tree.join(&vh.file)).unwrap();
            assert!(
                h.contains(&format!("\"{}\"", vh.version)),
                "{}: {h}",
                vh.file
            );
        }
    }
    // The repack's other removals are handled: ada from its component
    // (Debian's patch points deps/ada there), the Debian patches applied.
    assert!(tree.join("ada/src/ada.cpp").is_file() || tree.join("ada/include/ada.h").is_file());
    assert!(std::fs::read_to_string(tree.join("deps/ada/ada.gyp"))
        .unwrap()
        .contains("../../ada/"));
    assert!(
        !node_gyp.contains("deps/minimatch/index.js"),
        "node.gyp still expects the removed minimatch"
    );
    // Debian's security fixes change tests beside the code they fix, which
    // is why node-test takes test/ from this prepared tree and not from the
    // tarball: CVE-2026-21710's patch adds one test and rewrites another.
    assert!(tree
        .join("test/parallel/test-http-headers-distinct-proto.js")
        .is_file());
    assert!(
        std::fs::read_to_string(tree.join("test/parallel/test-http-multiple-headers.js"))
            .unwrap()
            .contains("{ __proto__: null }")
    );
    assert!(
        tree.join("lib/internal/nodeos/init.js").is_file(),
        "the project's patches are applied last"
    );
}
