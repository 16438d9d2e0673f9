use super::*;

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn names(tests: &[TestFile]) -> Vec<String> {
    tests.iter().map(|t| t.name()).collect()
}

#[test]
fn lists_like_test_py() {
    let t = tree(&[
        ("test/parallel/test-b.js", ""),
        ("test/parallel/test-a.mjs", ""),
        ("test/parallel/parallel.status", ""),
        ("test/parallel/testcfg.py", ""),
        ("test/parallel/helper.js", ""),
        ("test/parallel/test-c.json", ""),
    ]);
    let got = list(t.path(), Suite::Parallel).unwrap();
    assert_eq!(names(&got), ["parallel/test-a.mjs", "parallel/test-b.js"]);
    assert_eq!(got[0].stem(), "test-a");
    assert_eq!(got[1].rel_path(), "test/parallel/test-b.js");
    assert_eq!(got[1].status_path(), ["parallel", "test-b"]);
    let err = list(t.path(), Suite::Sequential).unwrap_err();
    assert!(format!("{err:#}").contains("sequential"), "{err:#}");
}

#[test]
fn filter_globs_match_names_with_or_without_suite_and_extension() {
    let tests = vec![
        TestFile {
            suite: Suite::Parallel,
            file_name: "test-fs-stat.js".into(),
        },
        TestFile {
            suite: Suite::Parallel,
            file_name: "test-http-agent.js".into(),
        },
        TestFile {
            suite: Suite::Sequential,
            file_name: "test-fs-watch.js".into(),
        },
    ];
    let keep = |globs: &[&str]| -> Vec<String> {
        let f = Filter::new(&globs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        names(
            &tests
                .iter()
                .filter(|t| f.keeps(t))
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(keep(&[]).len(), 3);
    assert_eq!(
        keep(&["test-fs-*"]),
        ["parallel/test-fs-stat.js", "sequential/test-fs-watch.js"]
    );
    assert_eq!(keep(&["parallel/test-fs-*"]), ["parallel/test-fs-stat.js"]);
    assert_eq!(keep(&["test-http-agent"]), ["parallel/test-http-agent.js"]);
    assert_eq!(
        keep(&["test-fs-sta?.js", "*agent*"]),
        ["parallel/test-fs-stat.js", "parallel/test-http-agent.js"]
    );
    // A dot is a dot.
    assert!(keep(&["test-fs-stat.jsx"]).is_empty());
    // Sets, as in the shell.
    assert_eq!(
        keep(&["test-[a-g]*"]),
        ["parallel/test-fs-stat.js", "sequential/test-fs-watch.js"]
    );
    assert_eq!(keep(&["test-[!a-g]*"]), ["parallel/test-http-agent.js"]);
    assert_eq!(keep(&["test-[^f]*"]), ["parallel/test-http-agent.js"]);
    assert_eq!(keep(&["test-fs-[sw][ta]*"]).len(), 2);
    assert_eq!(keep(&["test[-.]fs-stat"]), ["parallel/test-fs-stat.js"]);
    assert_eq!(keep(&["test-fs-sta[]t]"]), ["parallel/test-fs-stat.js"]);
    let err = Filter::new(&["test-[a-f".into()]).unwrap_err();
    assert!(format!("{err}").contains("no ']' closes"), "{err}");
    let f = Filter::new(&["test-nothing-*".into(), "test-fs-*".into()]).unwrap();
    assert_eq!(f.unused(&tests), ["test-nothing-*"]);
    assert!(Filter::new(&[" ".into()]).is_err());
}

fn scan(source: &str) -> Result<Vec<String>, String> {
    match scan_fixture_refs(source) {
        Scan::Literal(found) => Ok(found.into_iter().collect()),
        Scan::Dynamic(why) => Err(why),
    }
}

#[test]
fn literal_fixture_references_name_top_level_entries() {
    assert_eq!(scan("const x = 1;"), Ok(vec![]));
    assert_eq!(
        scan("fixtures.path('es-modules', 'a.mjs'); fixtures.readSync(\"x.txt\", 'utf8');"),
        Ok(vec!["es-modules".into(), "x.txt".into()])
    );
    assert_eq!(scan("fixtures.path('a/b/c.js')"), Ok(vec!["a".into()]));
    assert_eq!(
        scan("fixtures.readSync(['keys', 'x.pem'])"),
        Ok(vec!["keys".into()])
    );
    assert_eq!(
        scan("fixtures.readKey('agent1-key.pem')"),
        Ok(vec!["keys".into()])
    );
    assert_eq!(
        scan("fixtures.readKey(`${name}.pem`)"),
        Ok(vec!["keys".into()])
    );
    assert_eq!(
        scan("fixtures.fileURL('loop.js')"),
        Ok(vec!["loop.js".into()])
    );
    assert_eq!(scan("require('../fixtures/a.js')"), Ok(vec!["a.js".into()]));
    assert_eq!(
        scan("import x from '../fixtures/es-modules/x.mjs';"),
        Ok(vec!["es-modules".into()])
    );
    assert_eq!(
        scan("spawn(process.execPath, ['../../test/fixtures/echo.js'])"),
        Ok(vec!["echo.js".into()])
    );
    // Local objects called fixtures with other members are not the module.
    assert_eq!(scan("const fixtures = {}; fixtures.other = 1;"), Ok(vec![]));
}

#[test]
fn computed_fixture_references_need_everything() {
    for src in [
        "fixtures.path(name)",
        "fixtures.path(`${dir}/x.js`)",
        "fixtures.readSync(file)",
        "const d = fixtures.fixturesDir;",
        "path.join(__dirname, '..', 'fixtures', name)",
        "require(`../fixtures/${name}`)",
        "require('../fixtures')",
        "import { path } from '../common/fixtures.mjs';",
        "fixtures.path('..', 'x')",
    ] {
        assert!(scan(src).is_err(), "{src}: {:?}", scan(src));
    }
}

#[test]
fn fixture_needs_follow_common_modules() {
    let t = tree(&[
        (
            "test/parallel/test-a.js",
            "require('../common'); const fixtures = require('../common/fixtures'); fixtures.path('a.js');",
        ),
        (
            "test/parallel/test-b.js",
            "require('../common/inspector-helper');",
        ),
        ("test/parallel/test-c.js", "require('../common/wpt');"),
        ("test/common/index.js", ""),
        (
            "test/common/fixtures.js",
            "const fixturesDir = path.join(__dirname, '..', 'fixtures');",
        ),
        (
            "test/common/inspector-helper.js",
            "const fixtures = require('../common/fixtures'); fixtures.path('loop.js');",
        ),
        ("test/common/wpt.js", "fixtures.path('wpt', url)"),
        (
            "test/parallel/test-d.js",
            "require('../common/everything');",
        ),
        (
            "test/common/everything.js",
            "fs.readdirSync(fixtures.fixturesDir)",
        ),
    ]);
    let files = list(t.path(), Suite::Parallel).unwrap();
    assert_eq!(
        fixture_needs(t.path(), &files[..2]).unwrap(),
        FixtureNeeds::Some(["a.js".to_string(), "loop.js".to_string()].into())
    );
    // A computed name after a literal top-level one still needs only it.
    assert_eq!(
        fixture_needs(t.path(), &files[..3]).unwrap(),
        FixtureNeeds::Some(["a.js".to_string(), "loop.js".to_string(), "wpt".to_string()].into())
    );
    match fixture_needs(t.path(), &files).unwrap() {
        FixtureNeeds::All { because } => {
            assert!(because.starts_with("common/everything.js"), "{because}")
        }
        other => panic!("{other:?}"),
    }
}
