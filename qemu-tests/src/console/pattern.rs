//! What a test waits for on the console, and what it gets back.

use std::fmt;
use std::time::Duration;

/// A pattern to wait for on the console.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Plain text, matched byte for byte.
    Substring(String),
    /// A regular expression (the `regex` crate's syntax); capture groups end
    /// up in [`Match::groups`]. The console is searched as it arrives, so a
    /// regex that captures a value should also match what ends it (a
    /// newline, say): `pid=(\d+)` matches `pid=4` while `pid=42` is still
    /// on its way.
    Regex(regex::Regex),
}

impl Pattern {
    /// A regex pattern, e.g. `Pattern::regex(r"pid=(\d+)")?`.
    pub fn regex(source: &str) -> Result<Pattern, regex::Error> {
        regex::Regex::new(source).map(Pattern::Regex)
    }

    /// The byte regex the engine searches with (the console is bytes, not
    /// necessarily UTF-8).
    pub(crate) fn compile(&self) -> regex::bytes::Regex {
        let source = match self {
            Pattern::Substring(text) => regex::escape(text),
            Pattern::Regex(re) => re.as_str().to_owned(),
        };
        regex::bytes::Regex::new(&source).expect("a valid str regex is a valid bytes regex")
    }
}

impl From<&str> for Pattern {
    fn from(text: &str) -> Pattern {
        Pattern::Substring(text.to_owned())
    }
}

impl From<String> for Pattern {
    fn from(text: String) -> Pattern {
        Pattern::Substring(text)
    }
}

impl From<&Pattern> for Pattern {
    fn from(p: &Pattern) -> Pattern {
        p.clone()
    }
}

impl From<regex::Regex> for Pattern {
    fn from(re: regex::Regex) -> Pattern {
        Pattern::Regex(re)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Substring(text) => write!(f, "{text:?}"),
            Pattern::Regex(re) => write!(f, "regex /{}/", re.as_str()),
        }
    }
}

/// A successful [`crate::Guest::expect`].
#[derive(Debug, Clone)]
pub struct Match {
    /// The matched text (invalid UTF-8 replaced).
    pub text: String,
    /// Capture groups 1.. of a regex pattern.
    pub groups: Vec<Option<String>>,
    /// Console output between the previous match and this one (its last
    /// 64 KiB at most).
    pub before: String,
    /// Time from launch to the match.
    pub at: Duration,
}

impl Match {
    /// Capture group `i` (1-based, as in regex syntax).
    pub fn group(&self, i: usize) -> Option<&str> {
        self.groups.get(i.checked_sub(1)?)?.as_deref()
    }
}
