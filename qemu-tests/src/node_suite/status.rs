//! Status files: Node's `test/*/*.status` and our known-failures lists,
//! which use the same syntax.
//!
//! The syntax is the one Node's `tools/test.py` reads (implemented here from
//! its description, not translated):
//!
//! ```text
//! prefix parallel                 # later rule paths start with parallel/
//! def FLAKE_LIST = PASS, FLAKY    # a named outcome set
//! [$system==linux && $arch==x64]  # a section: its rules apply when true
//! test-foo: PASS, FLAKY           # a rule: a path pattern (`*` globs) and
//!                                 # the outcomes it may have
//! test-bar: FAIL if $mode==debug  # outcomes with a condition
//! ```
//!
//! Conditions compare variables (`$arch`) with names: `==` is true when both
//! sides share a value; `&&`, `||` (or `,`) combine; a variable that is not
//! set has no value, so every comparison with it is false.
//!
//! Our known-failures files add one rule: every rule line ends with a
//! comment whose first word is its [`Reason`], e.g.
//! `test-memory-usage: FAIL  # needs-proc: reads /proc/self/stat`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use anyhow::{Context as _, Result, bail};

/// Variable values for conditions, e.g. `arch` → `x64`.
pub type Vars = BTreeMap<String, String>;

/// Why a test is on a known-failures list: one word each, so a list can be
/// counted by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Reads `/proc` (memory usage, CPU list, fd lists), which nothing
    /// mounts in a bare guest.
    NeedsProc,
    /// Opens device nodes beyond `/dev/console` (`/dev/null`, `/dev/zero`,
    /// `/dev/urandom`, a tty).
    NeedsDev,
    /// Uses `/tmp` (`os.tmpdir()`), absent in a bare guest.
    NeedsTmp,
    /// Reads files under `/etc` (`passwd`, `hosts`, `resolv.conf`).
    NeedsEtc,
    /// Talks to 127.0.0.1, which needs the loopback interface up.
    NeedsLoopback,
    /// Needs a network beyond the guest (DNS, the internet, IPv6 routes).
    NeedsNetwork,
    /// Runs npm or corepack, which the image leaves out.
    NeedsNpm,
    /// Loads native addons, which a static musl node cannot.
    NeedsAddons,
    /// Needs full ICU data (locales beyond English).
    NeedsFullIcu,
    /// Needs a tool or source file absent by design (python, openssl CLI,
    /// git, a shell, eslint, `tools/`, `deps/`, `doc/`).
    NeedsTool,
    /// Needs the inspector or a debugger port.
    NeedsInspector,
    /// Needs more than one CPU, or more time than TCG gives it.
    NeedsSpeed,
    /// Behaves differently on musl libc.
    Musl,
    /// Depends on dynamic linking (dlopen, shared builtins).
    Static,
    /// Needs a kernel option our kernel leaves out.
    Kernel,
    /// Changed by the distribution's patch series (the tree the tests come
    /// from) to expect the distribution's own build settings.
    Distro,
    /// Expects the binary to be called `node`: in NodeOS it is `/init`, so
    /// `process.argv0` and the messages built from it say `init`.
    InitName,
    /// Fails now and then for reasons of its own.
    Flaky,
}

impl Reason {
    pub const ALL: [Reason; 18] = [
        Reason::NeedsProc,
        Reason::NeedsDev,
        Reason::NeedsTmp,
        Reason::NeedsEtc,
        Reason::NeedsLoopback,
        Reason::NeedsNetwork,
        Reason::NeedsNpm,
        Reason::NeedsAddons,
        Reason::NeedsFullIcu,
        Reason::NeedsTool,
        Reason::NeedsInspector,
        Reason::NeedsSpeed,
        Reason::Musl,
        Reason::Static,
        Reason::Kernel,
        Reason::Distro,
        Reason::InitName,
        Reason::Flaky,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Reason::NeedsProc => "needs-proc",
            Reason::NeedsDev => "needs-dev",
            Reason::NeedsTmp => "needs-tmp",
            Reason::NeedsEtc => "needs-etc",
            Reason::NeedsLoopback => "needs-loopback",
            Reason::NeedsNetwork => "needs-network",
            Reason::NeedsNpm => "needs-npm",
            Reason::NeedsAddons => "needs-addons",
            Reason::NeedsFullIcu => "needs-full-icu",
            Reason::NeedsTool => "needs-tool",
            Reason::NeedsInspector => "needs-inspector",
            Reason::NeedsSpeed => "needs-speed",
            Reason::Musl => "musl",
            Reason::Static => "static",
            Reason::Kernel => "kernel",
            Reason::Distro => "distro",
            Reason::InitName => "init-name",
            Reason::Flaky => "flaky",
        }
    }

    pub fn from_word(word: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.word() == word)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// Which kind of status file: Node's own, or one of our known-failures
/// lists (every rule needs a reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    Node,
    KnownFailures,
}

/// The outcomes a rule may give a test (lower case, as test.py keeps them:
/// `pass`, `fail`, `skip`, `flaky`, `slow`, `timeout`, `crash`, `okay`).
pub type Outcomes = BTreeSet<String>;

pub const PASS: &str = "pass";
pub const FAIL: &str = "fail";
pub const SKIP: &str = "skip";
pub const FLAKY: &str = "flaky";
pub const SLOW: &str = "slow";

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Const(bool),
    Var(String),
    Name(String),
    Op(Box<Expr>, Op, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Or,
    And,
    Eq,
    If,
}

impl Expr {
    /// Truth of a condition.
    fn holds(&self, vars: &Vars, defs: &HashMap<String, Expr>) -> bool {
        match self {
            Expr::Const(b) => *b,
            Expr::Var(_) | Expr::Name(_) => false,
            Expr::Op(l, Op::Or, r) => l.holds(vars, defs) || r.holds(vars, defs),
            Expr::Op(l, Op::And, r) => l.holds(vars, defs) && r.holds(vars, defs),
            Expr::Op(l, Op::Eq, r) => !l.values(vars, defs).is_disjoint(&r.values(vars, defs)),
            Expr::Op(_, Op::If, _) => false,
        }
    }

    /// The set of names an expression stands for (outcomes, or a
    /// variable's value).
    fn values(&self, vars: &Vars, defs: &HashMap<String, Expr>) -> BTreeSet<String> {
        match self {
            Expr::Const(_) => BTreeSet::new(),
            Expr::Var(name) => vars.get(name).cloned().into_iter().collect(),
            Expr::Name(name) => match defs.get(name) {
                Some(def) => def.values(vars, defs),
                None => BTreeSet::from([name.clone()]),
            },
            Expr::Op(l, Op::Or, r) => {
                let mut v = l.values(vars, defs);
                v.extend(r.values(vars, defs));
                v
            }
            Expr::Op(l, Op::And, r) => l
                .values(vars, defs)
                .intersection(&r.values(vars, defs))
                .cloned()
                .collect(),
            Expr::Op(l, Op::If, r) => {
                if r.holds(vars, defs) {
                    l.values(vars, defs)
                } else {
                    BTreeSet::new()
                }
            }
            Expr::Op(_, Op::Eq, _) => BTreeSet::new(),
        }
    }

    fn variables(&self, out: &mut BTreeSet<String>) {
        match self {
            Expr::Var(v) => {
                out.insert(v.clone());
            }
            Expr::Op(l, _, r) => {
                l.variables(out);
                r.variables(out);
            }
            Expr::Const(_) | Expr::Name(_) => {}
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Dollar,
    Comma,
    Word(String),
    And,
    Or,
    Eq,
}

fn tokenize(text: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let two = |chars: &mut std::iter::Peekable<std::str::Chars>, second: char| {
            chars.next();
            (chars.next() == Some(second)).then_some(())
        };
        match c {
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '$' => {
                chars.next();
                tokens.push(Token::Dollar);
            }
            ',' => {
                chars.next();
                tokens.push(Token::Comma);
            }
            '&' => {
                two(&mut chars, '&')?;
                tokens.push(Token::And);
            }
            '|' => {
                two(&mut chars, '|')?;
                tokens.push(Token::Or);
            }
            '=' => {
                two(&mut chars, '=')?;
                tokens.push(Token::Eq);
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(word));
            }
            _ => return None,
        }
    }
    Some(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn atom(&mut self) -> Option<Expr> {
        match self.next()? {
            Token::Word(w) if w == "true" => Some(Expr::Const(true)),
            Token::Word(w) if w == "false" => Some(Expr::Const(false)),
            Token::Word(w) => Some(Expr::Name(w.to_lowercase())),
            Token::Dollar => match self.next()? {
                Token::Word(w) => Some(Expr::Var(w.to_lowercase())),
                _ => None,
            },
            Token::Open => {
                let e = self.logical()?;
                (self.next()? == Token::Close).then_some(e)
            }
            _ => None,
        }
    }

    /// `a == b == c` groups to the right, as test.py's parser does.
    fn comparison(&mut self) -> Option<Expr> {
        let left = self.atom()?;
        if self.peek() == Some(&Token::Eq) {
            self.next();
            let right = self.comparison()?;
            return Some(Expr::Op(Box::new(left), Op::Eq, Box::new(right)));
        }
        Some(left)
    }

    fn conditional(&mut self) -> Option<Expr> {
        let mut left = self.comparison()?;
        while matches!(self.peek(), Some(Token::Word(w)) if w == "if") {
            self.next();
            let right = self.comparison()?;
            left = Expr::Op(Box::new(left), Op::If, Box::new(right));
        }
        Some(left)
    }

    fn logical(&mut self) -> Option<Expr> {
        let mut left = self.conditional()?;
        loop {
            let op = match self.peek() {
                Some(Token::And) => Op::And,
                Some(Token::Or | Token::Comma) => Op::Or,
                _ => return Some(left),
            };
            self.next();
            let right = self.conditional()?;
            left = Expr::Op(Box::new(left), op, Box::new(right));
        }
    }
}

fn parse_expr(text: &str) -> Option<Expr> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return None;
    }
    let mut p = Parser { tokens, at: 0 };
    let e = p.logical()?;
    (p.at == p.tokens.len()).then_some(e)
}

/// One rule line.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The path pattern as written, with the prefix, e.g. `parallel/test-fs-*`.
    pub pattern: String,
    components: Vec<regex::Regex>,
    value: Expr,
    /// Set for every rule of a known-failures list.
    pub reason: Option<Reason>,
    /// The rest of the comment after the reason word.
    pub note: String,
    /// 1-based line number, for messages.
    pub line: usize,
}

impl Rule {
    /// Whether the rule names `path` (e.g. `["parallel", "test-foo"]`): each
    /// of its components matches, and the path has at least as many.
    fn names(&self, path: &[&str]) -> bool {
        self.components.len() <= path.len()
            && self
                .components
                .iter()
                .zip(path)
                .all(|(re, part)| re.is_match(part))
    }
}

#[derive(Debug, Clone)]
struct Section {
    condition: Expr,
    rules: Vec<Rule>,
}

/// A parsed status file.
#[derive(Debug, Clone)]
pub struct StatusFile {
    pub origin: String,
    pub kind: StatusKind,
    sections: Vec<Section>,
    defs: HashMap<String, Expr>,
}

/// What the rules of one file say about one test.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub outcomes: Outcomes,
    /// `(reason, note, "file:line")` of each rule that matched (known-failures
    /// lists only).
    pub reasons: Vec<(Reason, String, String)>,
}

impl StatusFile {
    /// Parses `text`. `guest_vars` are variables known only once the guest
    /// runs: a known-failures rule that can skip a test may not depend on
    /// them, because skipping is decided before the boot.
    pub fn parse(
        text: &str,
        origin: &str,
        kind: StatusKind,
        guest_vars: &[&str],
    ) -> Result<StatusFile> {
        let mut sections = vec![Section {
            condition: Expr::Const(true),
            rules: Vec::new(),
        }];
        let mut defs = HashMap::new();
        let mut prefix: Vec<String> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let at = || format!("{origin}:{line_no}");
            let (body, comment) = match raw.find('#') {
                Some(i) => (&raw[..i], Some(raw[i + 1..].trim())),
                None => (raw, None),
            };
            let body = body.trim();
            if body.is_empty() {
                continue;
            }
            if let Some(rest) = body.strip_prefix('[') {
                let Some(cond) = rest.strip_suffix(']') else {
                    bail!("{}: a section header must end with ']': {body:?}", at());
                };
                let condition = parse_expr(cond.trim())
                    .with_context(|| format!("{}: malformed condition {cond:?}", at()))?;
                sections.push(Section {
                    condition,
                    rules: Vec::new(),
                });
                continue;
            }
            if let Some(rest) = body
                .strip_prefix("prefix ")
                .or(body.strip_prefix("prefix\t"))
            {
                prefix = split_path(rest.trim());
                continue;
            }
            if let Some(rest) = body.strip_prefix("def ") {
                let Some((name, value)) = rest.split_once('=') else {
                    bail!("{}: a def needs `def NAME = OUTCOMES`: {body:?}", at());
                };
                let value = parse_expr(value.trim())
                    .with_context(|| format!("{}: malformed def value {value:?}", at()))?;
                defs.insert(name.trim().to_lowercase(), value);
                continue;
            }
            let Some((path, value)) = body.split_once(':') else {
                bail!(
                    "{}: not a section, prefix, def or `path: OUTCOMES` rule: {body:?}",
                    at()
                );
            };
            let path = path.trim();
            if path.is_empty() || path.contains(char::is_whitespace) {
                bail!("{}: a rule's path is one word: {path:?}", at());
            }
            let value = parse_expr(value.trim())
                .with_context(|| format!("{}: malformed outcomes {:?}", at(), value.trim()))?;
            let mut full: Vec<String> = prefix.clone();
            full.extend(split_path(path));
            let (reason, note) = match kind {
                StatusKind::Node => (None, String::new()),
                StatusKind::KnownFailures => {
                    let comment = comment.unwrap_or("");
                    let word = comment
                        .split(|c: char| c.is_whitespace() || c == ':')
                        .next()
                        .unwrap_or("");
                    let Some(reason) = Reason::from_word(word) else {
                        bail!(
                            "{}: rule {path:?} needs a reason: end the line with `# REASON`, one of {}",
                            at(),
                            Reason::ALL.map(Reason::word).join(", ")
                        );
                    };
                    let note = comment[word.len()..]
                        .trim_start_matches(':')
                        .trim()
                        .to_owned();
                    (Some(reason), note)
                }
            };
            let components = full
                .iter()
                .map(|c| glob_component(c))
                .collect::<Result<Vec<_>>>()
                .with_context(|| format!("{}: bad path pattern {path:?}", at()))?;
            let rule = Rule {
                pattern: full.join("/"),
                components,
                value,
                reason,
                note,
                line: line_no,
            };
            let section = sections.last_mut().expect("the default section is first");
            if kind == StatusKind::KnownFailures {
                check_skip_independent_of_guest(&section.condition, &rule, guest_vars)
                    .with_context(at)?;
            }
            section.rules.push(rule);
        }
        Ok(StatusFile {
            origin: origin.to_owned(),
            kind,
            sections,
            defs,
        })
    }

    /// What the rules whose sections hold under `vars` say about `path`
    /// (`["parallel", "test-foo"]`); `None` when no rule names it.
    pub fn verdict(&self, path: &[&str], vars: &Vars) -> Option<Verdict> {
        let mut verdict = Verdict::default();
        let mut matched = false;
        for section in &self.sections {
            if !section.condition.holds(vars, &self.defs) {
                continue;
            }
            for rule in section.rules.iter().filter(|r| r.names(path)) {
                matched = true;
                verdict.outcomes.extend(rule.value.values(vars, &self.defs));
                if let Some(reason) = rule.reason {
                    verdict.reasons.push((
                        reason,
                        rule.note.clone(),
                        format!("{}:{}", self.origin, rule.line),
                    ));
                }
            }
        }
        matched.then_some(verdict)
    }

    /// Every rule, in file order (for listing and counting).
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.sections.iter().flat_map(|s| s.rules.iter())
    }
}

/// A rule that may give SKIP must not depend on a guest variable: the
/// decision to skip is taken on the host before the guest runs.
fn check_skip_independent_of_guest(
    section_condition: &Expr,
    rule: &Rule,
    guest_vars: &[&str],
) -> Result<()> {
    let mut names = BTreeSet::new();
    collect_names(&rule.value, &mut names);
    if !names.contains(SKIP) {
        return Ok(());
    }
    let mut used = BTreeSet::new();
    section_condition.variables(&mut used);
    rule.value.variables(&mut used);
    if let Some(v) = used.iter().find(|v| guest_vars.contains(&v.as_str())) {
        bail!(
            "rule {:?} can SKIP but depends on ${v}, which is known only once the guest runs; use FAIL, or a host variable ($arch, $node...)",
            rule.pattern
        );
    }
    Ok(())
}

fn collect_names(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::Name(n) => {
            out.insert(n.clone());
        }
        Expr::Op(l, _, r) => {
            collect_names(l, out);
            collect_names(r, out);
        }
        Expr::Const(_) | Expr::Var(_) => {}
    }
}

fn split_path(path: &str) -> Vec<String> {
    path.split('/')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

/// A path component pattern: `*` is any run of characters, everything else
/// is literal.
fn glob_component(pattern: &str) -> Result<regex::Regex> {
    let body: Vec<String> = pattern.split('*').map(regex::escape).collect();
    Ok(regex::Regex::new(&format!("^{}$", body.join(".*")))?)
}

#[cfg(test)]
mod tests;
