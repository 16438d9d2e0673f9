//! Which test files run: the suites' files as tools/test.py lists them,
//! narrowed by `--filter` globs, and which of `test/fixtures` they need.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use anyhow::{Context as _, Result, bail};

/// A directory of Node's `test/` tree whose files run one per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Suite {
    /// `test/parallel`: files that may run beside each other.
    Parallel,
    /// `test/sequential`: files that run alone.
    Sequential,
}

impl Suite {
    pub fn dir(self) -> &'static str {
        match self {
            Suite::Parallel => "parallel",
            Suite::Sequential => "sequential",
        }
    }

    /// Whether its files may share the guest with other tests.
    pub fn parallel(self) -> bool {
        self == Suite::Parallel
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir())
    }
}

/// One test file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TestFile {
    pub suite: Suite,
    /// The file name, e.g. `test-fs-stat.js`.
    pub file_name: String,
}

impl TestFile {
    /// The name without extension, as status files name it: `test-fs-stat`.
    pub fn stem(&self) -> &str {
        self.file_name
            .rsplit_once('.')
            .map(|(stem, _)| stem)
            .unwrap_or(&self.file_name)
    }

    /// `parallel/test-fs-stat.js`: how reports name it.
    pub fn name(&self) -> String {
        format!("{}/{}", self.suite, self.file_name)
    }

    /// `test/parallel/test-fs-stat.js`: relative to the source root.
    pub fn rel_path(&self) -> String {
        format!("test/{}/{}", self.suite, self.file_name)
    }

    /// The path status rules match: `["parallel", "test-fs-stat"]`.
    pub fn status_path(&self) -> [&str; 2] {
        [self.suite.dir(), self.stem()]
    }
}

/// The test files of `suite` under `source_root` (a Node source tree), as
/// tools/test.py lists them: `test-*.js` and `test-*.mjs`, sorted.
pub fn list(source_root: &Path, suite: Suite) -> Result<Vec<TestFile>> {
    let dir = source_root.join("test").join(suite.dir());
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir)
        .with_context(|| format!("listing the {suite} tests in {}", dir.display()))?
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("test-") && (name.ends_with(".js") || name.ends_with(".mjs")) {
            out.push(TestFile {
                suite,
                file_name: name,
            });
        }
    }
    out.sort();
    Ok(out)
}

/// `--filter` globs: a test is kept when any glob matches its suite path
/// (`parallel/test-fs-*`) or its file name (`test-fs-*`, `test-fs-stat.js`),
/// with or without the extension. `*` is any run of characters, `?` one,
/// `[a-f]` one of a set (`[!a-f]` or `[^a-f]`: one not in it), as in the
/// shell.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    globs: Vec<(String, regex::Regex)>,
}

impl Filter {
    pub fn new(globs: &[String]) -> Result<Filter> {
        let mut out = Vec::new();
        for g in globs {
            if g.trim().is_empty() {
                bail!("--filter needs a glob such as 'test-fs-*' or 'parallel/test-http2-*'");
            }
            let re = glob_regex(g.trim()).ok_or_else(|| {
                anyhow::anyhow!(
                    "--filter {g}: a '[' opens a set that no ']' closes; close it, e.g. 'test-path-[a-f]*'"
                )
            })?;
            out.push((g.clone(), regex::Regex::new(&re)?));
        }
        Ok(Filter { globs: out })
    }

    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    pub fn keeps(&self, t: &TestFile) -> bool {
        if self.globs.is_empty() {
            return true;
        }
        let names = [
            t.name(),
            t.file_name.clone(),
            format!("{}/{}", t.suite, t.stem()),
            t.stem().to_owned(),
        ];
        self.globs
            .iter()
            .any(|(_, re)| names.iter().any(|n| re.is_match(n)))
    }

    /// The globs that kept nothing (to say so instead of running nothing).
    pub fn unused<'a>(&'a self, tests: &[TestFile]) -> Vec<&'a str> {
        self.globs
            .iter()
            .filter(|(_, re)| {
                !tests.iter().any(|t| {
                    [t.name(), t.file_name.clone(), t.stem().to_owned()]
                        .iter()
                        .any(|n| re.is_match(n))
                        || re.is_match(&format!("{}/{}", t.suite, t.stem()))
                })
            })
            .map(|(g, _)| g.as_str())
            .collect()
    }
}

/// The anchored regex of a shell glob; `None` when a `[` set is not closed.
fn glob_regex(glob: &str) -> Option<String> {
    let chars: Vec<char> = glob.chars().collect();
    let mut re = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                let mut j = i + 1;
                let negated = matches!(chars.get(j), Some('!' | '^'));
                if negated {
                    j += 1;
                }
                let first = j;
                // A `]` first in the set is one of its members.
                while j < chars.len() && (chars[j] != ']' || j == first) {
                    j += 1;
                }
                if j >= chars.len() {
                    return None;
                }
                re.push('[');
                if negated {
                    re.push('^');
                }
                for (k, &c) in chars[first..j].iter().enumerate() {
                    // A `-` between two members makes a range; at an end
                    // it is a member.
                    if c == '-' && k > 0 && first + k + 1 < j {
                        re.push('-');
                    } else if c == '-' {
                        re.push_str("\\-");
                    } else {
                        re.push_str(&regex::escape(&c.to_string()));
                    }
                }
                re.push(']');
                i = j;
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Some(re)
}

/// Which entries of `test/fixtures` a set of tests needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FixtureNeeds {
    /// The whole directory: some test names fixtures in a way a scan of its
    /// source cannot follow (`fixtures.fixturesDir`, a computed path).
    All {
        /// A test (or common module) that made it so.
        because: String,
    },
    /// Only these top-level entries (files or directories).
    Some(BTreeSet<String>),
}

/// The fixtures `tests` need, by a scan of their sources and of the
/// `test/common` modules they require: every literal reference
/// (`fixtures.path('a', ...)`, `fixtures.readKey('k')`, `'../fixtures/a'`)
/// names a top-level entry, taken whole; anything else means all of them.
pub fn fixture_needs(source_root: &Path, tests: &[TestFile]) -> Result<FixtureNeeds> {
    let test_dir = source_root.join("test");
    let mut needs = BTreeSet::new();
    let mut seen_common = BTreeSet::new();
    let mut queue: Vec<(String, PathBuf)> = tests
        .iter()
        .map(|t| (t.name(), test_dir.join(t.suite.dir()).join(&t.file_name)))
        .collect();
    while let Some((name, path)) = queue.pop() {
        let source = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        match scan_fixture_refs(&source) {
            Scan::Dynamic(why) => {
                return Ok(FixtureNeeds::All {
                    because: format!("{name} ({why})"),
                });
            }
            Scan::Literal(found) => needs.extend(found),
        }
        for module in common_requires(&source) {
            if seen_common.insert(module.clone()) {
                let file = test_dir.join("common").join(format!("{module}.js"));
                if file.is_file() {
                    queue.push((format!("common/{module}.js"), file));
                }
            }
        }
    }
    Ok(FixtureNeeds::Some(needs))
}

static NAMED_IMPORT: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r#"import\s*\{[^}]*\}\s*from\s*['"][./]*common/fixtures"#)
        .expect("valid regex")
});
/// `fixtures.NAME` and whether a call follows.
static CALL: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"\bfixtures\s*\.\s*([A-Za-z_]+)\b\s*(\()?").expect("valid regex")
});
static WRITTEN_PATH: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r#"['"`]((?:\.\./)+(?:test/)?fixtures(/[^'"`]*)?)['"`]"#)
        .expect("valid regex")
});
static COMPONENT: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r#"['"`]fixtures['"`]"#).expect("valid regex"));
static COMMON_REQUIRE: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r#"(?:require\s*\(|from)\s*['"](?:\.\./|\./)+common/([A-Za-z0-9_.-]+?)(?:\.m?js)?['"]"#,
    )
    .expect("valid regex")
});

enum Scan {
    Literal(BTreeSet<String>),
    Dynamic(String),
}

/// Fixture references in one JS source.
fn scan_fixture_refs(source: &str) -> Scan {
    let mut found = BTreeSet::new();
    // `import { path } from '../common/fixtures.mjs'`: the calls are
    // renamed, so the scan below would not see them.
    if NAMED_IMPORT.is_match(source) {
        return Scan::Dynamic("named imports from common/fixtures".to_owned());
    }
    for caps in CALL.captures_iter(source) {
        let method = caps.get(1).expect("group 1").as_str();
        let call_end = caps.get(0).expect("match").end();
        let first_arg = caps
            .get(2)
            .map(|_| first_string_argument(&source[call_end..]));
        match (method, first_arg) {
            // Keys live in one directory, whatever the name.
            ("readKey", Some(_)) => {
                found.insert("keys".to_owned());
            }
            ("path" | "readSync" | "fileURL", Some(Some(arg))) => {
                match arg.split('/').find(|c| !c.is_empty() && *c != ".") {
                    Some(top) if top != ".." => {
                        found.insert(top.to_owned());
                    }
                    _ => return Scan::Dynamic(format!("fixtures.{method}('{arg}')")),
                }
            }
            ("path" | "readSync" | "fileURL", _) => {
                return Scan::Dynamic(format!("fixtures.{method} with a computed path"));
            }
            ("fixturesDir" | "entries", _) => {
                return Scan::Dynamic(format!("fixtures.{method}"));
            }
            // Another object named fixtures (e.g. a local variable's
            // property): not the fixtures module's API.
            _ => {}
        }
    }
    // Paths written out: '../fixtures/x', "../../test/fixtures/x".
    for caps in WRITTEN_PATH.captures_iter(source) {
        match caps
            .get(2)
            .and_then(|rest| rest.as_str().split('/').find(|c| !c.is_empty()))
        {
            Some(top) if !top.contains("${") => {
                found.insert(top.to_owned());
            }
            _ => {
                return Scan::Dynamic(format!("the path {}", &caps[1]));
            }
        }
    }
    // 'fixtures' as a path component in a join.
    if COMPONENT.is_match(source) {
        return Scan::Dynamic("'fixtures' joined into a path".to_owned());
    }
    Scan::Literal(found)
}

/// The first argument of a call whose `(` was just consumed, when it is a
/// plain string literal (or an array literal starting with one).
fn first_string_argument(rest: &str) -> Option<String> {
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('[').map(str::trim_start).unwrap_or(rest);
    let quote = rest.chars().next()?;
    if !matches!(quote, '\'' | '"' | '`') {
        return None;
    }
    let body = &rest[1..];
    let end = body.find(quote)?;
    let arg = &body[..end];
    if arg.contains('\\') || (quote == '`' && arg.contains("${")) {
        return None;
    }
    Some(arg.to_owned())
}

/// Names of `test/common` modules a source requires (`../common/tls` →
/// `tls`; `../common` itself is index.js, always packed).
pub(super) fn common_requires(source: &str) -> BTreeSet<String> {
    COMMON_REQUIRE
        .captures_iter(source)
        .map(|c| c[1].to_owned())
        .filter(|m| m != "index" && m != "fixtures")
        .collect()
}

#[cfg(test)]
mod tests;
