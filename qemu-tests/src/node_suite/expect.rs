//! What each test is expected to do: Node's own status files
//! (`test/root.status`, `test/<suite>/<suite>.status`) and our
//! known-failures list for the Node version, evaluated for one arch and,
//! after the boot, for what the guest reported.

use std::path::Path;

use anyhow::{Context as _, Result};

use super::protocol::GuestFacts;
use super::select::{Suite, TestFile};
use super::status::{self, Reason, StatusFile, StatusKind, Vars};
use crate::Arch;

/// Our known-failures lists, one per Node version (`<version>.status`).
const KNOWN_FAILURES: &[(&str, &str)] = &[(
    "18.20.4",
    include_str!("../../node-suite/known-failures/18.20.4.status"),
)];

/// Where the lists live in the repository, for messages.
pub const KNOWN_FAILURES_DIR: &str = "qemu-tests/node-suite/known-failures";

/// Variables the guest reports; a known-failures rule may test them for
/// FAIL, never for SKIP (see [`StatusFile::parse`]).
pub const GUEST_VARS: &[&str] = &[
    "proc",
    "devnull",
    "tmp",
    "sh",
    "loopback",
    "localhost",
    "icu",
    "inspector",
    "crypto",
];

/// Which node runs the tests (the `$node` variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeBuild {
    /// NodeOS's own static node.
    Nodeos,
    /// Debian's dynamically linked node, packed with its libraries: the
    /// stand-in the CI runs while our node is not built.
    DebianStandIn,
}

impl NodeBuild {
    pub fn word(self) -> &'static str {
        match self {
            NodeBuild::Nodeos => "nodeos",
            NodeBuild::DebianStandIn => "debian",
        }
    }
}

/// `process.arch` of a guest arch (the `$arch` of status files).
pub fn node_arch(arch: Arch) -> &'static str {
    arch.node_cpu()
}

/// The variables known before the boot, as tools/test.py sets them for a
/// release build on Linux, plus `$node`.
pub fn host_vars(arch: Arch, build: NodeBuild) -> Vars {
    [
        ("system", "linux"),
        ("arch", node_arch(arch)),
        ("mode", "release"),
        ("type", "simple"),
        ("asan", "off"),
        ("node", build.word()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `host` plus what the guest reported (`yes`/`no`, `$icu` as reported).
pub fn guest_vars(host: &Vars, facts: &GuestFacts) -> Vars {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let mut vars = host.clone();
    vars.insert("proc".into(), yes_no(facts.proc));
    vars.insert("devnull".into(), yes_no(facts.devnull));
    vars.insert("tmp".into(), yes_no(facts.tmp));
    vars.insert("sh".into(), yes_no(facts.sh));
    vars.insert("loopback".into(), yes_no(facts.loopback));
    vars.insert("localhost".into(), yes_no(facts.localhost));
    vars.insert("icu".into(), facts.icu.clone());
    vars.insert("inspector".into(), yes_no(facts.inspector));
    vars.insert("crypto".into(), yes_no(facts.crypto));
    vars
}

/// Before the boot: run the file or not.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Run,
    /// A SKIP rule; the string says whose (`parallel.status`, or a list
    /// entry with its reason).
    Skip(String),
}

/// After the run: what the file was expected to do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    /// Matching entries of our known-failures list: (reason, note,
    /// "file:line"). Non-empty means the file is listed.
    pub listed: Vec<(Reason, String, String)>,
    /// A listed entry that also allows PASS (e.g. `PASS, FLAKY`).
    pub listed_may_pass: bool,
    /// Node's own files mark it FLAKY: a failure does not count.
    pub node_flaky: bool,
}

/// The status files for one Node source tree and version.
pub struct Expectations {
    node: Vec<StatusFile>,
    ours: Option<StatusFile>,
    /// `None` when this version has no list of ours.
    pub known_failures_origin: Option<String>,
}

impl Expectations {
    /// Reads Node's status files for `suites` from `source_root` and picks
    /// our list for `version` (e.g. `18.20.4`).
    pub fn load(source_root: &Path, suites: &[Suite], version: &str) -> Result<Expectations> {
        let test = source_root.join("test");
        let mut files = vec![test.join("root.status")];
        files.extend(
            suites
                .iter()
                .map(|s| test.join(s.dir()).join(format!("{}.status", s.dir()))),
        );
        let mut node = Vec::new();
        for f in files {
            if !f.is_file() {
                continue;
            }
            let text =
                std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
            let origin = f
                .strip_prefix(source_root)
                .unwrap_or(&f)
                .display()
                .to_string();
            node.push(StatusFile::parse(&text, &origin, StatusKind::Node, &[])?);
        }
        let ours = known_failures_text(version)
            .map(|(origin, text)| {
                StatusFile::parse(text, &origin, StatusKind::KnownFailures, GUEST_VARS)
            })
            .transpose()?;
        Ok(Expectations {
            known_failures_origin: ours.as_ref().map(|f| f.origin.clone()),
            node,
            ours,
        })
    }

    /// From explicit files (tests).
    pub fn from_files(node: Vec<StatusFile>, ours: Option<StatusFile>) -> Expectations {
        Expectations {
            known_failures_origin: ours.as_ref().map(|f| f.origin.clone()),
            node,
            ours,
        }
    }

    /// Skip or run, from the variables known before the boot.
    pub fn plan(&self, t: &TestFile, host: &Vars) -> Plan {
        let path = t.status_path();
        for f in &self.node {
            if let Some(v) = f.verdict(&path, host)
                && v.outcomes.contains(status::SKIP)
            {
                return Plan::Skip(f.origin.clone());
            }
        }
        if let Some(f) = &self.ours
            && let Some(v) = f.verdict(&path, host)
            && v.outcomes.contains(status::SKIP)
        {
            let why = v
                .reasons
                .iter()
                .map(|(r, note, at)| format!("{r} ({at}){}", sep_note(note)))
                .collect::<Vec<_>>()
                .join("; ");
            return Plan::Skip(why);
        }
        Plan::Run
    }

    /// What a file that ran was expected to do, with the guest's facts in
    /// `vars`.
    pub fn expected(&self, t: &TestFile, vars: &Vars) -> Expected {
        let path = t.status_path();
        let mut e = Expected::default();
        for f in &self.node {
            if let Some(v) = f.verdict(&path, vars) {
                e.node_flaky |= v.outcomes.contains(status::FLAKY);
            }
        }
        if let Some(f) = &self.ours
            && let Some(v) = f.verdict(&path, vars)
        {
            e.listed_may_pass = v.outcomes.contains(status::PASS);
            e.listed = v.reasons;
        }
        e
    }

    /// Our list's rules (for counting the list against the suite).
    pub fn known_failure_rules(&self) -> impl Iterator<Item = &status::Rule> {
        self.ours.iter().flat_map(|f| f.rules())
    }
}

fn sep_note(note: &str) -> String {
    if note.is_empty() {
        String::new()
    } else {
        format!(": {note}")
    }
}

/// Our list for a Node version, with the origin to name in messages.
pub fn known_failures_text(version: &str) -> Option<(String, &'static str)> {
    let version = version.trim_start_matches('v');
    KNOWN_FAILURES
        .iter()
        .find(|(v, _)| *v == version)
        .map(|(v, text)| (format!("{KNOWN_FAILURES_DIR}/{v}.status"), *text))
}

/// The versions that have a list.
pub fn known_failures_versions() -> Vec<&'static str> {
    KNOWN_FAILURES.iter().map(|(v, _)| *v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_failures_list_parses() {
        for (version, text) in KNOWN_FAILURES {
            let f = StatusFile::parse(
                text,
                &format!("{version}.status"),
                StatusKind::KnownFailures,
                GUEST_VARS,
            )
            .unwrap_or_else(|e| panic!("{e:#}"));
            assert!(f.rules().count() > 0, "{version}: an empty list");
        }
        assert!(known_failures_text("v18.20.4").is_some());
        assert!(known_failures_text("0.0.1").is_none());
    }

    /// The tests that run `/bin/sh` are known failures only where the guest
    /// has no shell (`--no-tools`), judged from the runner's `sh` fact.
    #[test]
    fn shell_tests_are_listed_only_without_sh() {
        let (origin, text) = known_failures_text("18.20.4").unwrap();
        let ours = StatusFile::parse(text, &origin, StatusKind::KnownFailures, GUEST_VARS).unwrap();
        let e = Expectations::from_files(vec![], Some(ours));
        let host = host_vars(Arch::X86_64, NodeBuild::Nodeos);
        let with = |sh: &str| {
            let mut v = host.clone();
            v.insert("sh".into(), sh.into());
            v
        };
        let t = test_file("test-child-process-exec-encoding");
        let listed = e.expected(&t, &with("no")).listed;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, Reason::NeedsTool);
        assert!(e.expected(&t, &with("yes")).listed.is_empty());
        // The rest of the list does not depend on the shell.
        let npm = test_file("test-npm-version");
        assert_eq!(e.expected(&npm, &with("yes")).listed.len(), 1);
        assert_eq!(e.expected(&npm, &with("no")).listed.len(), 1);
    }

    fn test_file(name: &str) -> TestFile {
        TestFile {
            suite: Suite::Parallel,
            file_name: format!("{name}.js"),
        }
    }

    #[test]
    fn node_skip_wins_and_ours_is_listed_with_reasons() {
        let node = StatusFile::parse(
            "prefix parallel\n[$arch==ia32]\ntest-a: SKIP\n[true]\ntest-f: PASS,FLAKY\n",
            "test/parallel/parallel.status",
            StatusKind::Node,
            &[],
        )
        .unwrap();
        let ours = StatusFile::parse(
            "prefix parallel\n[$proc==no]\ntest-b: FAIL # needs-proc: memoryUsage\n[$node==debian]\ntest-c: SKIP # static: dlopen\n[true]\ntest-d: PASS, FLAKY # flaky\n",
            "ours.status",
            StatusKind::KnownFailures,
            GUEST_VARS,
        )
        .unwrap();
        let e = Expectations::from_files(vec![node], Some(ours));
        let x64 = host_vars(Arch::X86_64, NodeBuild::Nodeos);
        let ia32 = host_vars(Arch::I386, NodeBuild::Nodeos);
        assert_eq!(e.plan(&test_file("test-a"), &x64), Plan::Run);
        assert_eq!(
            e.plan(&test_file("test-a"), &ia32),
            Plan::Skip("test/parallel/parallel.status".into())
        );
        let debian = host_vars(Arch::X86_64, NodeBuild::DebianStandIn);
        let Plan::Skip(why) = e.plan(&test_file("test-c"), &debian) else {
            panic!("skipped on the stand-in")
        };
        assert!(why.starts_with("static (ours.status:5): dlopen"), "{why}");
        assert_eq!(e.plan(&test_file("test-c"), &x64), Plan::Run);

        let facts = GuestFacts {
            protocol: 1,
            version: "v18.20.4".into(),
            arch: "x64".into(),
            pid: 1,
            exec_path: "/init".into(),
            proc: false,
            devnull: false,
            tmp: false,
            sh: false,
            loopback: true,
            localhost: false,
            icu: "small".into(),
            inspector: true,
            crypto: true,
            jobs: 2,
            tests: 4,
        };
        let vars = guest_vars(&x64, &facts);
        let b = e.expected(&test_file("test-b"), &vars);
        assert_eq!(b.listed[0].0, Reason::NeedsProc);
        assert!(!b.listed_may_pass);
        let with_proc = guest_vars(
            &x64,
            &GuestFacts {
                proc: true,
                ..facts.clone()
            },
        );
        assert!(
            e.expected(&test_file("test-b"), &with_proc)
                .listed
                .is_empty()
        );
        let d = e.expected(&test_file("test-d"), &vars);
        assert!(d.listed_may_pass && d.listed[0].0 == Reason::Flaky);
        let f = e.expected(&test_file("test-f"), &vars);
        assert!(f.node_flaky && f.listed.is_empty());
    }
}
