use super::*;

fn refs(source: &str) -> Vec<String> {
    root_refs(source).into_iter().collect()
}

const LISTING: &str = "node-v1/\nnode-v1/CHANGELOG.md\nnode-v1/benchmark/\nnode-v1/benchmark/_cli.js\n\
node-v1/benchmark/common.js\nnode-v1/doc/api/cli.md\nnode-v1/doc/changelogs/CHANGELOG_V1.md\n\
node-v1/doc/changelogs/CHANGELOG_V2.md\nnode-v1/doc/changelogs/README.md\nnode-v1/tools/icu/icu_versions.json\n\
node-v1/tools/eslint-rules/\nnode-v1/tools/eslint-rules/crypto-check.js\nnode-v1/deps/v8/src/x.h\n\
node-v1/test/common/index.js\nnode-v1/src/node_version.h\n";

#[test]
fn written_paths_from_the_test_dir_name_the_source_root() {
    assert_eq!(
        refs(
            "const x = require('../../tools/icu/icu_versions.json');\n\
              const y = require(\"../../benchmark/_cli.js\");\n\
              const n = path.join(__dirname, '../../deps/npm/bin/npm-cli.js');\n\
              const c = `../../doc/changelogs/CHANGELOG_V${major}.md`;"
        ),
        [
            "benchmark/_cli.js",
            "deps/npm/bin/npm-cli.js",
            "doc/changelogs/CHANGELOG_V*.md",
            "tools/icu/icu_versions.json"
        ]
    );
    // Three levels up leaves the source root: not one of its paths.
    assert!(refs("path.join('foo', '../../../bar')").is_empty());
    assert!(refs("const f = '../fixtures/a';").is_empty());
}

#[test]
fn joins_from_dirname_and_from_a_root_binding() {
    let src = "const srcRoot = path.join(__dirname, '..', '..');\n\
        const rootDir = path.resolve(__dirname, '..', '..');\n\
        const a = path.join(srcRoot, 'tools', 'icu', 'icu_versions.json');\n\
        const b = path.join(rootDir, 'doc', 'api', 'cli.md');\n\
        const c = path.resolve(__dirname, '..', '..', 'config.gypi');\n\
        path.join(__dirname, '..', '..', 'tools', 'node_modules', 'eslint',\n);\n\
        const changelogPath = `doc/changelogs/CHANGELOG_V${major}.md`;\n\
        fs.readFileSync(path.join(srcRoot, changelogPath));\n\
        fs.readFileSync(path.join(srcRoot, computed()));\n\
        path.join(other, 'lib', 'x.js');\n";
    assert_eq!(
        refs(src),
        [
            "config.gypi",
            "doc/api/cli.md",
            "doc/changelogs/CHANGELOG_V*.md",
            "tools/icu/icu_versions.json",
            "tools/node_modules/eslint"
        ]
    );
}

#[test]
fn the_listing_says_present_lacking_or_not_a_source_path() {
    let l = Listing::parse(LISTING);
    let present = |p: &[&str]| Found::Present(p.iter().map(|s| s.to_string()).collect());
    assert_eq!(
        l.resolve("tools/icu/icu_versions.json"),
        present(&["tools/icu/icu_versions.json"])
    );
    // Without an extension, as require() finds it.
    assert_eq!(
        l.resolve("tools/eslint-rules/crypto-check"),
        present(&["tools/eslint-rules/crypto-check.js"])
    );
    // A directory is taken whole, also one only its files imply.
    assert_eq!(l.resolve("deps/v8"), present(&["deps/v8"]));
    assert_eq!(
        l.resolve("doc/changelogs/CHANGELOG_V*.md"),
        present(&[
            "doc/changelogs/CHANGELOG_V1.md",
            "doc/changelogs/CHANGELOG_V2.md"
        ])
    );
    assert_eq!(
        l.resolve("tools/node_modules/eslint"),
        Found::Lacking("tools/node_modules/eslint".into())
    );
    assert_eq!(
        l.resolve("doc/api/none-*.md"),
        Found::Lacking("doc/api/none-*.md".into())
    );
    // Not of the tree: no such top-level entry, or test/ (packed anyway).
    assert_eq!(l.resolve("bar"), Found::NotSource);
    assert_eq!(l.resolve("config.gypi"), Found::NotSource);
    assert_eq!(l.resolve("test/common/index.js"), Found::NotSource);
}

#[test]
fn needs_follow_each_test_and_the_common_modules_it_requires() {
    let dir = tempfile::tempdir().unwrap();
    let write = |p: &str, text: &str| {
        let p = dir.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "test/parallel/test-icu.js",
        "require('../common');\nrequire('../../tools/icu/icu_versions.json');\n\
         require('../../tools/node_modules/eslint');\n",
    );
    write(
        "test/parallel/test-bench.js",
        "require('../common/bench');\nconst x = 1;\n",
    );
    write(
        "test/common/bench.js",
        "const runjs = path.join(__dirname, '..', '..', 'benchmark', '_cli.js');\n",
    );
    write(
        "test/common/index.js",
        "path.join(__dirname, '..', '..', 'tools', 'node_modules', 'eslint');\n",
    );
    write("test/parallel/test-plain.js", "require('../common');\n");
    let tests =
        crate::node_suite::select::list(dir.path(), crate::node_suite::Suite::Parallel).unwrap();
    let got = needs(dir.path(), &Listing::parse(LISTING), &tests).unwrap();
    let set = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        got["parallel/test-icu.js"],
        OutsideNeeds {
            present: set(&["tools/icu/icu_versions.json"]),
            lacking: set(&["tools/node_modules/eslint"]),
        }
    );
    assert_eq!(
        got["parallel/test-bench.js"].present,
        set(&["benchmark/_cli.js"])
    );
    // common/index.js is every test's: its eslint probe is nobody's need.
    assert_eq!(got["parallel/test-plain.js"], OutsideNeeds::default());
}

#[test]
fn relative_requires_resolve_against_the_files_dir() {
    let got = relative_requires(
        "tools/eslint-rules/a.js",
        "const u = require('./rules-utils.js');\nimport x from '../lib/y';\nrequire('fs');",
    );
    assert_eq!(
        got.into_iter().collect::<Vec<_>>(),
        ["tools/eslint-rules/rules-utils.js", "tools/lib/y"]
    );
}

/// The real sources of Node 18.20.4: the tree `cargo xtask node-test`
/// prepares in the cache. Set NODEOS_NODE_TEST_TREE to that directory
/// (…/out/node-source/<key>/node).
#[test]
#[ignore = "needs a prepared Node 18.20.4 source tree: NODEOS_NODE_TEST_TREE"]
fn node_18_tests_that_read_outside_test() {
    let root = std::path::PathBuf::from(
        std::env::var("NODEOS_NODE_TEST_TREE")
            .expect("set NODEOS_NODE_TEST_TREE to an extracted node-test source dir"),
    );
    let listing = Listing::of_tree(&root).unwrap();
    let tests = crate::node_suite::select::list(&root, crate::node_suite::Suite::Parallel).unwrap();
    let got = needs(&root, &listing, &tests).unwrap();
    let with: Vec<_> = got
        .iter()
        .filter(|(_, n)| **n != OutsideNeeds::default())
        .collect();
    for (t, n) in &with {
        eprintln!("{t}: present {:?} lacking {:?}", n.present, n.lacking);
    }
    let icu = &got["parallel/test-icu-minimum-version.js"];
    assert!(
        icu.present.contains("tools/icu/icu_versions.json"),
        "{icu:?}"
    );
    assert!(
        icu.present.contains("deps/v8/src/objects/intl-objects.h"),
        "{icu:?}"
    );
    assert!(
        got["parallel/test-benchmark-cli.js"]
            .present
            .contains("benchmark/_cli.js")
    );
    assert!(
        got["parallel/test-process-env-allowed-flags-are-documented.js"]
            .present
            .contains("doc/api/cli.md")
    );
    let changelog = &got["parallel/test-release-changelog.js"];
    assert!(changelog.present.contains("CHANGELOG.md"), "{changelog:?}");
    assert!(
        changelog
            .present
            .contains("doc/changelogs/CHANGELOG_V18.md"),
        "{changelog:?}"
    );
    let eslint = &got["parallel/test-eslint-crypto-check.js"];
    assert!(
        eslint.lacking.contains("tools/node_modules/eslint"),
        "{eslint:?}"
    );
    let eslint_tests = got
        .keys()
        .filter(|t| t.starts_with("parallel/test-eslint-"))
        .count();
    assert!(eslint_tests >= 20, "{eslint_tests}");
    assert!(with.len() >= 25, "{} tests read outside test/", with.len());
}
