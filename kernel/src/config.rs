//! Kconfig fragments as data: parsing them, merging several, and checking
//! that what they ask for is what the final `.config` holds.
//!
//! Kconfig silently drops what it cannot honour (an unknown symbol, one whose
//! dependencies are off, a value out of range), so a misspelt option would
//! otherwise pass unnoticed. [`check_config`] closes that gap.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// The value a fragment gives `# CONFIG_X is not set` (and `CONFIG_X=n`).
pub const NOT_SET: &str = "n";

/// Parses a Kconfig fragment into `(symbol, value)` pairs in file order.
///
/// Accepted lines, as Kconfig itself reads them:
/// - `CONFIG_X=y`, `=m`, `=n`, numbers, hex, and quoted strings
///   (`CONFIG_X="a b"`, kept with their quotes, as `.config` writes them);
/// - `# CONFIG_X is not set` (value [`NOT_SET`]);
/// - blank lines and other comments.
///
/// Anything else is an error naming the line, rather than a setting Kconfig
/// would quietly misread: a line without `CONFIG_`, an unquoted value with
/// spaces (e.g. a trailing `# comment`, which Kconfig does not strip), a
/// symbol given twice in one fragment.
pub fn parse_fragment(text: &str) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        let entry = if line.is_empty() {
            None
        } else if let Some(comment) = line.strip_prefix('#') {
            not_set_symbol(comment).map(|s| (s.to_string(), NOT_SET.to_string()))
        } else {
            let Some((sym, value)) = line.split_once('=') else {
                bail!("line {n}: expected `CONFIG_NAME=value` or `# CONFIG_NAME is not set`, found `{line}`");
            };
            let sym = sym.trim();
            let value = value.trim();
            if !valid_symbol(sym) {
                bail!("line {n}: `{sym}` is not a Kconfig symbol (they are CONFIG_ followed by letters, digits and _)");
            }
            check_value(value).with_context(|| format!("line {n}: {sym}"))?;
            Some((sym.to_string(), value.to_string()))
        };
        if let Some((sym, value)) = entry {
            if let Some(first) = seen.insert(sym.clone(), n) {
                bail!("line {n}: {sym} is already set on line {first} of the same fragment");
            }
            out.push((sym, value));
        }
    }
    Ok(out)
}

/// `# CONFIG_X is not set` → `CONFIG_X` (given the text after `#`), read
/// the way Kconfig reads it: exactly one space after `#`, and anything may
/// follow "is not set". Other comments that mention a symbol are comments.
fn not_set_symbol(comment: &str) -> Option<&str> {
    let rest = comment.strip_prefix(' ')?;
    let (sym, tail) = rest.split_once(' ')?;
    (valid_symbol(sym) && tail.starts_with("is not set")).then_some(sym)
}

fn valid_symbol(s: &str) -> bool {
    s.strip_prefix("CONFIG_").is_some_and(|name| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

fn check_value(v: &str) -> Result<()> {
    if v.is_empty() {
        bail!("empty value (write `# CONFIG_NAME is not set` to unset it)");
    }
    if let Some(inner) = v.strip_prefix('"') {
        // A quoted string: it must close at the end, with `\"` and `\\` as
        // the only escapes (Kconfig's own rules).
        let mut chars = inner.chars();
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    closed = true;
                    break;
                }
                _ => {}
            }
        }
        if !closed || !chars.as_str().is_empty() {
            bail!("badly quoted string value `{v}`");
        }
        return Ok(());
    }
    if v.chars().any(char::is_whitespace) || v.contains('#') {
        bail!("value `{v}` has spaces or a `#`: Kconfig would take it literally (comments go on their own line; quote strings)");
    }
    Ok(())
}

/// Merges parsed fragments in order: a later fragment's value for a symbol
/// replaces an earlier one's (this is how a per-arch fragment overrides the
/// common one, and what `merge_config.sh` does to the `.config`).
pub fn merge_requests(fragments: &[Vec<(String, String)>]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for frag in fragments {
        for (sym, value) in frag {
            match out.iter_mut().find(|(s, _)| s == sym) {
                Some(slot) => slot.1 = value.clone(),
                None => out.push((sym.clone(), value.clone())),
            }
        }
    }
    out
}

/// Reads and parses fragment files; errors name the file and line.
pub fn load_fragments(paths: &[impl AsRef<Path>]) -> Result<Vec<(String, String)>> {
    let mut parsed = Vec::new();
    for p in paths {
        let p = p.as_ref();
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("reading kernel config fragment {}", p.display()))?;
        parsed.push(
            parse_fragment(&text)
                .with_context(|| format!("kernel config fragment {}", p.display()))?,
        );
    }
    Ok(merge_requests(&parsed))
}

/// One symbol that did not end up as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub symbol: String,
    /// What the fragments asked for ([`NOT_SET`] for "not set").
    pub requested: String,
    /// What the final `.config` holds: `Some(NOT_SET)` for
    /// `# CONFIG_X is not set`, `None` when the symbol is not in it at all
    /// (unknown, or hidden because its dependencies are off).
    pub actual: Option<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let asked = show(&self.requested);
        match &self.actual {
            Some(v) => write!(f, "{}: asked for {asked}, got {}", self.symbol, show(v)),
            None => write!(
                f,
                "{}: asked for {asked}, but it is not in the final .config (misspelt or unknown symbol, or its dependencies are off)",
                self.symbol
            ),
        }
    }
}

fn show(v: &str) -> String {
    if v == NOT_SET {
        "not set".into()
    } else {
        format!("={v}")
    }
}

/// The final `.config` as symbol → value (`# … is not set` → [`NOT_SET`]).
/// Lenient: `.config` is generated, and anything that is not a setting is
/// ignored.
pub fn parse_config(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix('#') {
            if let Some(sym) = not_set_symbol(comment) {
                out.insert(sym.to_string(), NOT_SET.to_string());
            }
        } else if let Some((sym, value)) = line.split_once('=') {
            if valid_symbol(sym) {
                out.insert(sym.to_string(), value.to_string());
            }
        }
    }
    out
}

/// Checks every requested symbol against the final `.config`. A request for
/// "not set" is met by `# CONFIG_X is not set` or by the symbol's absence
/// (Kconfig omits symbols whose dependencies are off); any other request
/// needs the exact value. Returns every mismatch, in request order.
pub fn check_config(
    requested: &[(String, String)],
    final_config: &str,
) -> Result<(), Vec<Mismatch>> {
    let actual = parse_config(final_config);
    let mismatches: Vec<Mismatch> = requested
        .iter()
        .filter_map(|(sym, want)| {
            let got = actual.get(sym);
            let ok = match got {
                Some(v) => v == want,
                None => want == NOT_SET,
            };
            (!ok).then(|| Mismatch {
                symbol: sym.clone(),
                requested: want.clone(),
                actual: got.cloned(),
            })
        })
        .collect();
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(mismatches)
    }
}

/// The failure message for mismatches; one symbol per line, so that both
/// people and tests can find the names.
pub fn describe_mismatches(m: &[Mismatch]) -> String {
    let mut s = format!(
        "{} kernel config symbol(s) requested by the fragments did not stick:\n",
        m.len()
    );
    for x in m {
        s.push_str(&format!("  {x}\n"));
    }
    s.push_str("Fix the fragment (kernel/config/*.config): check the spelling and the symbol's `depends on` in the kernel's Kconfig files.");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_kind_of_line() {
        let text = "\
# A comment explaining things.
CONFIG_A=y
CONFIG_B=m

# CONFIG_C is not set
CONFIG_D=n
CONFIG_E=\"console=ttyS0 panic=-1\"
CONFIG_F=0x1000
CONFIG_G=-14
  CONFIG_H=y  \r
#CONFIG_I is not set
# CONFIG_J is not set because it is slow
# CONFIG_K=y
CONFIG_L=\"with \\\"escaped\\\" quotes\"
";
        assert_eq!(
            parse_fragment(text).unwrap(),
            pairs(&[
                ("CONFIG_A", "y"),
                ("CONFIG_B", "m"),
                ("CONFIG_C", "n"),
                ("CONFIG_D", "n"),
                ("CONFIG_E", "\"console=ttyS0 panic=-1\""),
                ("CONFIG_F", "0x1000"),
                ("CONFIG_G", "-14"),
                ("CONFIG_H", "y"),
                ("CONFIG_J", "n"),
                ("CONFIG_L", "\"with \\\"escaped\\\" quotes\""),
            ])
        );
        assert!(parse_fragment("").unwrap().is_empty());
    }

    fn parse_err(text: &str) -> String {
        format!("{:#}", parse_fragment(text).unwrap_err())
    }

    #[test]
    fn rejects_what_kconfig_would_misread() {
        let e = parse_err("CONFIG_A=y\nCONFIG_B\n");
        assert!(e.contains("line 2") && e.contains("CONFIG_B"), "{e}");
        let e = parse_err("PRINTK=y\n");
        assert!(e.contains("line 1") && e.contains("PRINTK"), "{e}");
        let e = parse_err("CONFIG_A=y # why\n");
        assert!(e.contains("CONFIG_A") && e.contains("own line"), "{e}");
        let e = parse_err("CONFIG_A=\n");
        assert!(e.contains("empty value"), "{e}");
        let e = parse_err("CONFIG_A=\"open\n");
        assert!(e.contains("quoted"), "{e}");
        let e = parse_err("CONFIG_A=\"a\"b\n");
        assert!(e.contains("quoted"), "{e}");
        let e = parse_err("CONFIG_A=y\n# CONFIG_A is not set\n");
        assert!(
            e.contains("line 2") && e.contains("CONFIG_A") && e.contains("line 1"),
            "{e}"
        );
        let e = parse_err("CONFIG_=y\n");
        assert!(e.contains("CONFIG_"), "{e}");
        let e = parse_err("CONFIG_A-B=y\n");
        assert!(e.contains("CONFIG_A-B"), "{e}");
    }

    #[test]
    fn later_fragments_override_earlier_ones() {
        let common = pairs(&[("CONFIG_A", "y"), ("CONFIG_B", "y")]);
        let arch = pairs(&[("CONFIG_B", "n"), ("CONFIG_C", "y")]);
        assert_eq!(
            merge_requests(&[common, arch]),
            pairs(&[("CONFIG_A", "y"), ("CONFIG_B", "n"), ("CONFIG_C", "y")])
        );
    }

    const FINAL: &str = "\
#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.1.176 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT=\"gcc (Debian 12.2.0-14+deb12u1) 12.2.0\"
CONFIG_PRINTK=y
CONFIG_RD_GZIP=y
# CONFIG_VT is not set
CONFIG_64BIT=y
CONFIG_HZ=250
CONFIG_CMDLINE=\"console=ttyS0\"
";

    #[test]
    fn check_passes_when_everything_stuck() {
        let req = pairs(&[
            ("CONFIG_PRINTK", "y"),
            ("CONFIG_VT", "n"),
            // Not in the file at all: hidden behind an unmet dependency,
            // which is as good as "not set".
            ("CONFIG_VGA_CONSOLE", "n"),
            ("CONFIG_HZ", "250"),
            ("CONFIG_CMDLINE", "\"console=ttyS0\""),
        ]);
        assert_eq!(check_config(&req, FINAL), Ok(()));
        assert_eq!(check_config(&[], FINAL), Ok(()));
    }

    #[test]
    fn check_names_a_symbol_set_differently() {
        let req = pairs(&[
            ("CONFIG_PRINTK", "y"),
            ("CONFIG_64BIT", "n"),
            ("CONFIG_HZ", "100"),
            ("CONFIG_RD_GZIP", "m"),
        ]);
        let m = check_config(&req, FINAL).unwrap_err();
        assert_eq!(
            m,
            vec![
                Mismatch {
                    symbol: "CONFIG_64BIT".into(),
                    requested: "n".into(),
                    actual: Some("y".into())
                },
                Mismatch {
                    symbol: "CONFIG_HZ".into(),
                    requested: "100".into(),
                    actual: Some("250".into())
                },
                Mismatch {
                    symbol: "CONFIG_RD_GZIP".into(),
                    requested: "m".into(),
                    actual: Some("y".into())
                },
            ]
        );
        assert_eq!(m[0].to_string(), "CONFIG_64BIT: asked for not set, got =y");
    }

    #[test]
    fn check_names_a_missing_symbol() {
        let req = pairs(&[
            ("CONFIG_NODEOS_DOES_NOT_EXIST", "y"),
            ("CONFIG_PRINTK", "y"),
        ]);
        let m = check_config(&req, FINAL).unwrap_err();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].symbol, "CONFIG_NODEOS_DOES_NOT_EXIST");
        assert_eq!(m[0].actual, None);
        let text = describe_mismatches(&m);
        assert!(
            text.contains(
                "CONFIG_NODEOS_DOES_NOT_EXIST: asked for =y, but it is not in the final .config"
            ),
            "{text}"
        );
    }

    #[test]
    fn check_handles_is_not_set() {
        // Asked on, left off: the `# … is not set` line is the answer.
        let req = pairs(&[("CONFIG_VT", "y")]);
        let m = check_config(&req, FINAL).unwrap_err();
        assert_eq!(m[0].actual.as_deref(), Some(NOT_SET));
        assert_eq!(m[0].to_string(), "CONFIG_VT: asked for =y, got not set");
        // A comment that merely mentions a symbol is not a setting.
        let cfg = "# CONFIG_VT was dropped in 2.4\n#CONFIG_VT is not set\nCONFIG_A=y\n";
        assert_eq!(parse_config(cfg).get("CONFIG_VT"), None);
        // A quoted value containing `=` is kept whole.
        assert_eq!(
            parse_config(FINAL)
                .get("CONFIG_CMDLINE")
                .map(String::as_str),
            Some("\"console=ttyS0\"")
        );
    }
}
