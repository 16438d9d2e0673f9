//! Files of the Node source tree outside `test/` that tests read
//! (`require('../../tools/icu/icu_versions.json')`,
//! `path.join(srcRoot, 'doc', 'api', 'cli.md')`), found by a scan of the
//! test sources, and checked against the source tree's listing: what it
//! has is packed at the same place under `/node-test`, what it lacks (a
//! repack removed it) is named in the report of a test that fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::LazyLock;

use anyhow::{Context as _, Result};

use super::select::{TestFile, common_requires};

/// The paths of a source tree, relative to its root.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    files: BTreeSet<String>,
    dirs: BTreeSet<String>,
}

impl Listing {
    /// From `tar -t` style text (a top directory, then one path a line,
    /// directories ending in `/`): the tests' way to write a listing.
    #[cfg(test)]
    pub fn parse(text: &str) -> Listing {
        let mut l = Listing::default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let rest = line.split_once('/').map_or("", |(_, rest)| rest);
            l.add(rest.trim_end_matches('/'), rest.ends_with('/'));
        }
        l
    }

    /// Of a source tree on disk: every file and directory under `root`
    /// (symlinks count as files and are not followed).
    pub fn of_tree(root: &Path) -> Result<Listing> {
        let mut l = Listing::default();
        for entry in walkdir::WalkDir::new(root).min_depth(1) {
            let entry = entry.with_context(|| format!("listing {}", root.display()))?;
            let rel = entry
                .path()
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .into_owned();
            l.add(&rel, entry.file_type().is_dir());
        }
        Ok(l)
    }

    fn add(&mut self, path: &str, is_dir: bool) {
        if path.is_empty() {
            return;
        }
        // Parents count as directories even when the listing has no entry
        // of their own.
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            self.dirs.insert(path[..end].to_owned());
            end += 1;
        }
        if is_dir {
            self.dirs.insert(path.to_owned());
        } else {
            self.files.insert(path.to_owned());
        }
    }

    fn has(&self, path: &str) -> bool {
        self.files.contains(path) || self.dirs.contains(path)
    }

    fn is_top(&self, name: &str) -> bool {
        self.has(name)
    }

    /// What `path` (relative to the source root; `*` in a component for a
    /// part computed at run time) is in this tree.
    pub fn resolve(&self, path: &str) -> Found {
        let top = path.split('/').next().unwrap_or(path);
        // `test/` is packed by the test selection; a first component the
        // tree does not have is no path of the source tree (a string
        // such as '../../bar' that a path test computes with).
        if top == "test" || top.contains('*') || !self.is_top(top) {
            return Found::NotSource;
        }
        if path.contains('*') {
            let re = regex::Regex::new(&format!(
                "^{}$",
                regex::escape(path).replace(r"\*", "[^/]*")
            ))
            .expect("an escaped path is a valid regex");
            let hits: BTreeSet<String> = self
                .files
                .iter()
                .filter(|f| re.is_match(f))
                .cloned()
                .collect();
            return if hits.is_empty() {
                Found::Lacking(path.to_owned())
            } else {
                Found::Present(hits)
            };
        }
        // As require() resolves a name without its extension.
        for candidate in [
            path.to_owned(),
            format!("{path}.js"),
            format!("{path}.json"),
        ] {
            if self.has(&candidate) {
                return Found::Present(BTreeSet::from([candidate]));
            }
        }
        Found::Lacking(path.to_owned())
    }
}

/// What a referenced path is in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// These entries (files, or directories taken whole).
    Present(BTreeSet<String>),
    /// A path of the source tree that this tree does not have.
    Lacking(String),
    /// Not a path of the source tree.
    NotSource,
}

/// What one test needs outside `test/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutsideNeeds {
    /// Entries to pack (files, or directories taken whole).
    pub present: BTreeSet<String>,
    /// Paths it reads that the tree lacks.
    pub lacking: BTreeSet<String>,
}

/// Per test (by [`TestFile::name`]), what it reads outside `test/`: a scan
/// of its source and of the `test/common` modules it requires (not
/// `common/index.js`, which every test loads: it only probes for eslint).
pub fn needs(
    source_root: &Path,
    listing: &Listing,
    tests: &[TestFile],
) -> Result<BTreeMap<String, OutsideNeeds>> {
    let test_dir = source_root.join("test");
    let mut out = BTreeMap::new();
    for t in tests {
        let mut refs = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut queue = vec![test_dir.join(t.suite.dir()).join(&t.file_name)];
        while let Some(path) = queue.pop() {
            let source = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            refs.extend(root_refs(&source));
            for module in common_requires(&source) {
                if seen.insert(module.clone()) {
                    let file = test_dir.join("common").join(format!("{module}.js"));
                    if file.is_file() {
                        queue.push(file);
                    }
                }
            }
        }
        let mut n = OutsideNeeds::default();
        for r in refs {
            match listing.resolve(&r) {
                Found::Present(p) => n.present.extend(p),
                Found::Lacking(p) => {
                    n.lacking.insert(p);
                }
                Found::NotSource => {}
            }
        }
        out.insert(t.name(), n);
    }
    Ok(out)
}

/// `'../../X'` written out (from `test/<suite>/` or `test/common/`, the
/// source root); not `'../../../X'`.
static WRITTEN: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r#"['"`]\.\./\.\./([A-Za-z0-9_@$-][^'"`\s]*)['"`]"#).expect("valid regex")
});
/// `const NAME = path.join(` / `path.resolve(`.
static BINDING: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*path\s*\.\s*(?:join|resolve)\s*\(",
    )
    .expect("valid regex")
});
static JOIN: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"path\s*\.\s*(?:join|resolve)\s*\(").expect("valid regex"));
/// `const NAME = 'a/b'` or a template literal: a path part named once.
static STRING_CONST: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r#"(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*(['"`])([^'"`\n]*)['"`]\s*[;\n]"#,
    )
    .expect("valid regex")
});

/// Paths relative to the source root that one JS source names, `*` for a
/// computed part (`${major}` in a template).
pub fn root_refs(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in WRITTEN.captures_iter(source) {
        if let Some(p) = normalize(&[&templated(&c[1])]) {
            out.insert(p);
        }
    }
    // Names bound to the source root: `const srcRoot = path.join(__dirname, '..', '..')`.
    let mut roots = BTreeSet::new();
    for c in BINDING.captures_iter(source) {
        let args = call_args(&source[c.get(0).expect("match").end()..]);
        if is_root(&args) {
            roots.insert(c[1].to_owned());
        }
    }
    let consts: BTreeMap<String, String> = STRING_CONST
        .captures_iter(source)
        .map(|c| (c[1].to_owned(), templated(&c[3])))
        .collect();
    for m in JOIN.find_iter(source) {
        let args = call_args(&source[m.end()..]);
        let rest = match args.first() {
            Some(Arg::Ident(n)) if n == "__dirname" && is_root(&args) => continue,
            Some(Arg::Ident(n)) if n == "__dirname" && args.len() > 3 => {
                if args[1..3] != [Arg::Str("..".into()), Arg::Str("..".into())] {
                    continue;
                }
                &args[3..]
            }
            Some(Arg::Ident(n)) if roots.contains(n) && args.len() > 1 => &args[1..],
            _ => continue,
        };
        let mut parts = Vec::new();
        for a in rest {
            match a {
                Arg::Str(s) => parts.push(templated(s)),
                Arg::Ident(n) => match consts.get(n) {
                    Some(s) => parts.push(s.clone()),
                    None => break,
                },
                Arg::Other => break,
            }
        }
        // A prefix stops at the first part the scan cannot know: the test
        // reads somewhere below it, but where is not known; only a whole
        // path counts.
        if parts.len() == rest.len()
            && let Some(p) = normalize(&parts.iter().map(String::as_str).collect::<Vec<_>>())
        {
            out.insert(p);
        }
    }
    out
}

/// `__dirname, '..', '..'` and nothing more.
fn is_root(args: &[Arg]) -> bool {
    args == [
        Arg::Ident("__dirname".into()),
        Arg::Str("..".into()),
        Arg::Str("..".into()),
    ] || args == [Arg::Ident("__dirname".into()), Arg::Str("../..".into())]
}

/// A template's `${...}` parts as `*`.
fn templated(s: &str) -> String {
    static EXPR: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"\$\{[^}]*\}").expect("valid regex"));
    EXPR.replace_all(s, "*").into_owned()
}

/// The joined path, or `None` when it leaves the root or is empty.
fn normalize(parts: &[&str]) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in parts.iter().flat_map(|p| p.split('/')) {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    (!out.is_empty()).then(|| out.join("/"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Str(String),
    Ident(String),
    Other,
}

/// The arguments of a call whose `(` was just consumed, up to its `)`.
fn call_args(rest: &str) -> Vec<Arg> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    let mut chars = rest.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            cur.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => {
                quote = Some(c);
                cur.push(c);
            }
            '(' | '[' | '{' => {
                depth += 1;
                cur.push(c);
            }
            ')' | ']' | '}' if depth > 0 => {
                depth -= 1;
                cur.push(c);
            }
            ')' => {
                push_arg(&mut args, &cur);
                return args;
            }
            ',' if depth == 0 => {
                push_arg(&mut args, &cur);
                cur.clear();
            }
            c => cur.push(c),
        }
    }
    // No closing parenthesis: nothing known.
    vec![Arg::Other]
}

fn push_arg(args: &mut Vec<Arg>, text: &str) {
    let t = text.trim();
    if t.is_empty() {
        // After a trailing comma.
        return;
    }
    let first = t.chars().next().expect("not empty");
    let last = t.chars().last().expect("not empty");
    let arg = if t.len() >= 2 && matches!(first, '\'' | '"' | '`') && first == last {
        let body = &t[1..t.len() - 1];
        if body.contains(first) || body.contains('\\') {
            Arg::Other
        } else {
            Arg::Str(body.to_owned())
        }
    } else if t
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
    {
        Arg::Ident(t.to_owned())
    } else {
        Arg::Other
    };
    args.push(arg);
}

/// Relative requires of a JS file outside `test/` (`require('./x')`,
/// `from '../y'`), as paths relative to the source root: `file` is its
/// own path there.
pub fn relative_requires(file: &str, source: &str) -> BTreeSet<String> {
    static REL: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r#"(?:require\s*\(\s*|from\s+|import\s*\(\s*)['"](\.\.?/[^'"]+)['"]"#)
            .expect("valid regex")
    });
    let dir = file.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    REL.captures_iter(source)
        .filter_map(|c| normalize(&[dir, &c[1]]))
        .collect()
}

#[cfg(test)]
mod tests;
