use super::*;
use std::process::Command;

/// A small source tarball made with the real tar: `node-v1/` holding
/// `test/common/index.js`, a benchmark file that requires a sibling, and
/// a directory.
fn tarball(dir: &Path) -> std::path::PathBuf {
    let top = dir.join("src").join("node-v1");
    for (p, text) in [
        ("test/common/index.js", "module.exports = {};\n"),
        ("benchmark/_cli.js", "const u = require('./_util');\n"),
        ("benchmark/_util.js", "require('../lib/helper.js');\n"),
        ("benchmark/unused.js", "\n"),
        ("lib/helper.js", "require('fs');\n"),
        ("tools/icu/icu_versions.json", "{}\n"),
        ("tools/icu/other.txt", "x\n"),
    ] {
        let f = top.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, text).unwrap();
    }
    let out = dir.join("node-v1.tar.gz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(dir.join("src"))
        .arg("node-v1")
        .status()
        .expect("tar runs");
    assert!(st.success());
    out
}

#[test]
fn outside_paths_come_with_what_they_require() {
    let dir = tempfile::tempdir().unwrap();
    tarball(dir.path());
    let root = dir.path().join("src").join("node-v1");
    let l = Listing::of_tree(&root).unwrap();
    let wanted: BTreeSet<String> = ["benchmark/_cli.js".to_owned(), "tools/icu".to_owned()].into();
    let got = with_requires(&root, &l, &wanted);
    assert_eq!(
        got.into_iter().collect::<Vec<_>>(),
        [
            "benchmark/_cli.js",
            "benchmark/_util.js",
            "lib/helper.js",
            "tools/icu"
        ]
    );
    assert_eq!(
        l.resolve("benchmark/unused"),
        Found::Present(["benchmark/unused.js".to_owned()].into()),
        "the listing has every file of the tree"
    );
    assert_eq!(
        l.resolve("tools/nothing.json"),
        Found::Lacking("tools/nothing.json".into())
    );
}

#[test]
fn only_test_is_extracted_from_a_tarball() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = tarball(dir.path());
    let root = dir.path().join("tree");
    extract_tests(&tgz, &root).unwrap();
    assert!(root.join("test/common/index.js").is_file());
    assert!(!root.join("benchmark").exists());
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".part")),
        "no part dir is left"
    );
}
