//! The lines the guest runner (`node-suite/runner.js`) prints on the
//! console, and the plan it reads. Both sides change together: the runner's
//! `PROTOCOL` and [`PROTOCOL`] must be equal.

use serde::{Deserialize, Serialize};

/// The version of the line format and of the plan.
pub const PROTOCOL: u32 = 2;

/// Every runner line starts with this; the rest is one JSON object.
pub const LINE_PREFIX: &str = "@@NODETEST ";

/// The console pattern of one runner line; group 1 is the JSON.
pub const LINE_REGEX: &str = r"@@NODETEST (\{[^\r\n]*\})\r?\n";

/// What the runner reads from `plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanFile {
    pub protocol: u32,
    /// Relative to the plan's directory: the tree holding `test/`, every
    /// child's working directory.
    pub root: String,
    /// Tests running at once.
    pub jobs: usize,
    /// Per test file, before it gets SIGTERM (then SIGKILL 5 s later).
    pub timeout_ms: u64,
    /// How much of a failing test's stderr comes back.
    pub tail_lines: usize,
    pub tail_bytes: usize,
    pub tests: Vec<PlanEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanEntry {
    pub id: usize,
    /// Relative to `root`, e.g. `test/parallel/test-fs-stat.js`.
    pub file: String,
    /// Whether it may run beside other tests.
    pub parallel: bool,
}

/// What the runner found out about the node and the guest before the
/// first test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestFacts {
    pub protocol: u32,
    /// `process.version`, e.g. `v18.20.4`.
    pub version: String,
    /// `process.arch`: `x64` or `ia32`.
    pub arch: String,
    pub pid: u32,
    pub exec_path: String,
    /// `/proc/self/stat` exists.
    pub proc: bool,
    /// `/dev/null` exists.
    pub devnull: bool,
    /// `/tmp` exists.
    pub tmp: bool,
    /// `/bin/sh` exists (the test tools, [`super::tools`]).
    #[serde(default)]
    pub sh: bool,
    /// A TCP connection to 127.0.0.1 worked.
    pub loopback: bool,
    /// `dns.lookup('localhost')` answered (it needs `/etc/hosts`).
    pub localhost: bool,
    /// `none`, `small` or `full`.
    pub icu: String,
    pub inspector: bool,
    pub crypto: bool,
    pub jobs: usize,
    pub tests: usize,
}

/// How a test file's process ended, as tools/test.py tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    /// Exit status 0.
    Pass,
    /// Exit status 0 after saying it skipped itself (`1..0 # Skipped: why`,
    /// what tools/test.py reports as a skip); the reason is the tail's line.
    Skip,
    /// Another exit status (or the process could not start).
    Fail,
    /// Killed by the runner after the timeout.
    Timeout,
    /// Killed by a signal it did not get from the runner.
    Crash,
}

impl RunOutcome {
    pub fn word(self) -> &'static str {
        match self {
            RunOutcome::Pass => "pass",
            RunOutcome::Skip => "skip",
            RunOutcome::Fail => "fail",
            RunOutcome::Timeout => "timeout",
            RunOutcome::Crash => "crash",
        }
    }
}

/// One test file's result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TestResult {
    pub id: usize,
    pub outcome: RunOutcome,
    /// Wall time in the guest.
    pub ms: u64,
    pub exit: Option<i64>,
    pub signal: Option<String>,
    /// The `// Flags:` the file ran with.
    #[serde(default)]
    pub flags: Vec<String>,
    /// The last lines of its stderr (of stdout when stderr was empty); only
    /// for results other than pass.
    #[serde(default)]
    pub tail: Vec<String>,
}

/// One runner line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "ev", rename_all = "lowercase")]
pub enum Event {
    Hello(GuestFacts),
    Start {
        id: usize,
    },
    Result(TestResult),
    Done {
        ms: u64,
        results: usize,
    },
    /// The runner itself failed (a bad plan, an exception of its own).
    Error {
        message: String,
    },
}

impl Event {
    /// Parses the JSON of one line (without [`LINE_PREFIX`]).
    pub fn parse(json: &str) -> Result<Event, String> {
        serde_json::from_str(json).map_err(|e| format!("{e} in runner line {json:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_lines_parse() {
        let hello = r#"{"ev":"hello","protocol":2,"version":"v18.20.4","arch":"x64","pid":1,"exec_path":"/init","proc":false,"devnull":false,"tmp":false,"sh":true,"loopback":false,"localhost":false,"icu":"small","inspector":true,"crypto":true,"jobs":2,"tests":3}"#;
        let Event::Hello(f) = Event::parse(hello).unwrap() else {
            panic!("not hello")
        };
        assert_eq!(
            (f.pid, f.arch.as_str(), f.proc, f.sh),
            (1, "x64", false, true)
        );
        assert_eq!(
            Event::parse(r#"{"ev":"start","id":7}"#).unwrap(),
            Event::Start { id: 7 }
        );
        let result = r#"{"ev":"result","id":7,"outcome":"timeout","ms":120000,"exit":null,"signal":"SIGTERM","flags":["--expose-internals"],"tail":["a","b"]}"#;
        let Event::Result(r) = Event::parse(result).unwrap() else {
            panic!("not a result")
        };
        assert_eq!(r.outcome, RunOutcome::Timeout);
        assert_eq!(r.signal.as_deref(), Some("SIGTERM"));
        assert_eq!(r.tail, ["a", "b"]);
        let pass =
            r#"{"ev":"result","id":1,"outcome":"pass","ms":5,"exit":0,"signal":null,"flags":[]}"#;
        let Event::Result(r) = Event::parse(pass).unwrap() else {
            panic!("not a result")
        };
        assert!(r.tail.is_empty());
        assert_eq!(
            Event::parse(r#"{"ev":"done","ms":9,"results":3}"#).unwrap(),
            Event::Done { ms: 9, results: 3 }
        );
        assert!(Event::parse(r#"{"ev":"result","id":1}"#).is_err());
        assert!(Event::parse(r#"{"ev":"bogus"}"#).is_err());
    }

    #[test]
    fn the_runner_speaks_this_protocol() {
        let runner = include_str!("../../node-suite/runner.js");
        assert!(
            runner.contains(&format!("const PROTOCOL = {PROTOCOL};")),
            "runner.js and protocol.rs disagree on the protocol version"
        );
        assert!(runner.contains(&format!("const PREFIX = '{LINE_PREFIX}';")));
    }

    /// The runner itself, under the host's node: a test that skips itself
    /// the way `common.skip()` does comes back as a skip with its reason,
    /// not as a pass.
    #[test]
    fn the_runner_tells_a_self_skip_from_a_pass() {
        let Ok(out) = std::process::Command::new("node").arg("--version").output() else {
            eprintln!("SKIPPED the_runner_tells_a_self_skip_from_a_pass: no `node` on this host");
            return;
        };
        assert!(out.status.success());
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("test/parallel");
        std::fs::create_dir_all(&t).unwrap();
        for (name, body) in [
            ("test-pass.js", "console.log('ok');\n"),
            (
                "test-skip.js",
                "console.log('1..0 # Skipped: no widget here');\nprocess.exit(0);\n",
            ),
            ("test-fail.js", "process.exit(1);\n"),
            // node:test's summary has a `# skipped 0` line: the file ran.
            (
                "test-runner-summary.js",
                "console.log('ok 1 - works\\n1..1\\n# tests 1\\n# pass 1\\n# skipped 0\\n# todo 0');\n",
            ),
        ] {
            std::fs::write(t.join(name), body).unwrap();
        }
        let plan = PlanFile {
            protocol: PROTOCOL,
            root: ".".into(),
            jobs: 1,
            timeout_ms: 60_000,
            tail_lines: 10,
            tail_bytes: 4096,
            tests: [
                "test-pass.js",
                "test-skip.js",
                "test-fail.js",
                "test-runner-summary.js",
            ]
            .iter()
            .enumerate()
            .map(|(id, f)| PlanEntry {
                id,
                file: format!("test/parallel/{f}"),
                parallel: true,
            })
            .collect(),
        };
        std::fs::write(
            d.path().join("plan.json"),
            serde_json::to_vec(&plan).unwrap(),
        )
        .unwrap();
        let runner = d.path().join("runner.js");
        std::fs::write(&runner, super::super::archive::RUNNER_JS).unwrap();
        let out = std::process::Command::new("node")
            .arg(&runner)
            .arg(d.path().join("plan.json"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let results: Vec<TestResult> = text
            .lines()
            .filter_map(|l| l.strip_prefix(LINE_PREFIX))
            .filter_map(|j| match Event::parse(j).unwrap() {
                Event::Result(r) => Some(r),
                _ => None,
            })
            .collect();
        let by_id = |id| results.iter().find(|r| r.id == id).unwrap();
        assert_eq!(by_id(0).outcome, RunOutcome::Pass, "{text}");
        assert_eq!(by_id(1).outcome, RunOutcome::Skip, "{text}");
        assert_eq!(by_id(1).tail, vec!["no widget here".to_string()]);
        assert_eq!(by_id(3).outcome, RunOutcome::Pass, "{text}");
        assert_eq!(by_id(2).outcome, RunOutcome::Fail, "{text}");
    }
}
