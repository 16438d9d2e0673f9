use super::*;

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
fn outside_paths_and_their_relative_requires_are_extracted_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = tarball(dir.path());
    let root = dir.path().join("tree");
    extract_tests(&tgz, &root).unwrap();
    let l = listing(&tgz, &root).unwrap();
    assert_eq!(l.prefix, "node-v1");
    assert!(root.join(LISTING_FILE).is_file(), "the listing is kept");
    let wanted: BTreeSet<String> = ["benchmark/_cli.js".to_owned(), "tools/icu".to_owned()].into();
    let got = extract_outside(&tgz, &root, &l, &wanted).unwrap();
    assert_eq!(
        got.into_iter().collect::<Vec<_>>(),
        [
            "benchmark/_cli.js",
            "benchmark/_util.js",
            "lib/helper.js",
            "tools/icu"
        ]
    );
    assert!(
        root.join("tools/icu/other.txt").is_file(),
        "a directory comes whole"
    );
    assert!(
        !root.join("benchmark/unused.js").exists(),
        "only what is read"
    );
    assert!(
        std::fs::read_dir(&root).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".part")),
        "no part dir is left"
    );
    // Kept: a second call with the tarball gone extracts nothing.
    std::fs::remove_file(&tgz).unwrap();
    let again = extract_outside(&tgz, &root, &l, &wanted).unwrap();
    assert_eq!(again.len(), 4);
    assert_eq!(listing(&tgz, &root).unwrap().prefix, "node-v1");
}
