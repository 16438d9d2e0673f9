//! A run's results, judged against the expectations: the verdict per file,
//! the summary, the pass rate, and TAP and JUnit XML for CI systems.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use super::expect::Expected;
use super::protocol::{GuestFacts, RunOutcome, TestResult};
use super::select::TestFile;
use super::status::Reason;
use crate::Arch;

/// What a file's result means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Passed,
    /// Not on the list, did not pass.
    Failed,
    /// Not run: a SKIP rule.
    Skipped,
    /// On our list, did not pass.
    ExpectedFailure,
    /// On our list (without PASS), passed: the entry can go.
    UnexpectedPass,
    /// Did not pass, but a FLAKY mark (Node's, or ours with PASS) lets it.
    FlakyFailure,
    /// Planned, but no result came back (the guest stopped first).
    NoResult,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::Skipped => "skipped",
            Verdict::ExpectedFailure => "expected failure",
            Verdict::UnexpectedPass => "unexpectedly passed",
            Verdict::FlakyFailure => "flaky failure",
            Verdict::NoResult => "no result",
        }
    }

    /// Whether it makes the run fail.
    pub fn is_failure(self) -> bool {
        matches!(self, Verdict::Failed | Verdict::NoResult)
    }
}

/// One file's line in the report.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub test: TestFile,
    pub verdict: Verdict,
    pub result: Option<TestResult>,
    pub expected: Expected,
    /// Why it was skipped.
    pub skip: Option<String>,
    /// Paths outside `test/` it reads that the source tree lacks.
    pub lacks: Vec<String>,
}

impl FileReport {
    /// Judges `result` against `expected`.
    pub fn judge(test: TestFile, result: Option<TestResult>, expected: Expected) -> FileReport {
        let verdict = match &result {
            None => Verdict::NoResult,
            Some(r) if r.outcome == RunOutcome::Skip => Verdict::Skipped,
            Some(r) => {
                let passed = r.outcome == RunOutcome::Pass;
                let listed = !expected.listed.is_empty();
                match (passed, listed) {
                    (true, true) if !expected.listed_may_pass => Verdict::UnexpectedPass,
                    (true, _) => Verdict::Passed,
                    (false, true) if expected.listed_may_pass => Verdict::FlakyFailure,
                    (false, true) => Verdict::ExpectedFailure,
                    (false, false) if expected.node_flaky => Verdict::FlakyFailure,
                    (false, false) => Verdict::Failed,
                }
            }
        };
        let skip = result
            .as_ref()
            .filter(|r| r.outcome == RunOutcome::Skip)
            .map(|r| format!("skipped itself: {}", r.tail.first().map_or("", |s| s)));
        FileReport {
            test,
            verdict,
            result,
            expected,
            skip,
            lacks: Vec::new(),
        }
    }

    pub fn skipped(test: TestFile, why: String) -> FileReport {
        FileReport {
            test,
            verdict: Verdict::Skipped,
            result: None,
            expected: Expected::default(),
            skip: Some(why),
            lacks: Vec::new(),
        }
    }

    /// `fail (exit 1)`, `timeout`, `crash (SIGSEGV)`.
    pub fn outcome_text(&self) -> String {
        match &self.result {
            None => "no result".into(),
            Some(r) => match (r.outcome, r.exit, &r.signal) {
                (RunOutcome::Fail, Some(code), _) => format!("fail (exit {code})"),
                (RunOutcome::Crash, _, Some(sig)) => format!("crash ({sig})"),
                (RunOutcome::Timeout, _, _) => {
                    format!("timeout after {:.0} s", r.ms as f64 / 1000.0)
                }
                (o, _, _) => o.word().into(),
            },
        }
    }

    pub fn reasons_text(&self) -> String {
        self.expected
            .listed
            .iter()
            .map(|(r, _, at)| format!("{r} ({at})"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How the guest's run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// The runner said `done`.
    Done,
    /// The runner reported an error of its own.
    RunnerError(String),
    /// The guest stopped, hung or could not boot (the harness's message).
    GuestFailed(String),
}

/// One arch's run.
#[derive(Debug, Clone)]
pub struct SuiteReport {
    pub arch: Arch,
    /// Which node, e.g. "NodeOS static node 18.20.4".
    pub node_label: String,
    pub facts: Option<GuestFacts>,
    pub files: Vec<FileReport>,
    pub end: RunEnd,
    /// Whether a guest ran any test now; not when the journal held every
    /// result.
    pub booted: bool,
    /// From QEMU's start to its exit (zero without a boot).
    pub wall: Duration,
    /// From QEMU's start to the runner's hello.
    pub boot: Option<Duration>,
    pub log_path: PathBuf,
    /// Size of the test archive (as written, and uncompressed).
    pub archive_bytes: u64,
    pub archive_uncompressed: u64,
    /// The journal the run read and appended to, if any.
    pub journal: Option<JournalUse>,
}

/// What a run took from its journal, and the journal's figures after it.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalUse {
    pub path: PathBuf,
    /// Files of this report whose results are from earlier sessions.
    pub resumed: usize,
    /// Results it holds now (any file, this run's included).
    pub results: usize,
    /// Guest boots it has seen, this run's included.
    pub sessions: usize,
    /// Their summed wall time (a boot cut off counts up to its last
    /// result).
    pub total_time: Duration,
    /// Appending failed: results after it are in this report, not in the
    /// journal.
    pub write_error: Option<String>,
}

/// Counts per verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub expected_failures: usize,
    pub unexpected_passes: usize,
    pub flaky_failures: usize,
    pub no_result: usize,
}

impl Counts {
    /// Files that ran (or should have) and are not on our list.
    pub fn unlisted_run(&self) -> usize {
        self.passed + self.failed + self.flaky_failures + self.no_result
    }

    /// Passed / unlisted files that ran, in percent; `None` when none ran.
    pub fn pass_rate(&self) -> Option<f64> {
        let n = self.unlisted_run();
        (n > 0).then(|| 100.0 * self.passed as f64 / n as f64)
    }
}

impl SuiteReport {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for f in &self.files {
            match f.verdict {
                Verdict::Passed => c.passed += 1,
                Verdict::Failed => c.failed += 1,
                Verdict::Skipped => c.skipped += 1,
                Verdict::ExpectedFailure => c.expected_failures += 1,
                Verdict::UnexpectedPass => c.unexpected_passes += 1,
                Verdict::FlakyFailure => c.flaky_failures += 1,
                Verdict::NoResult => c.no_result += 1,
            }
        }
        c
    }

    /// The run completed and no file failed unexpectedly.
    pub fn clean(&self) -> bool {
        self.end == RunEnd::Done && !self.files.iter().any(|f| f.verdict.is_failure())
    }

    /// One line per file that failed (or gave no result), each followed by
    /// the last lines of its stderr; then the unexpected passes.
    pub fn failures_text(&self) -> String {
        let mut out = String::new();
        for f in self
            .files
            .iter()
            .filter(|f| f.verdict.is_failure() || f.verdict == Verdict::FlakyFailure)
        {
            let flaky = if f.verdict == Verdict::FlakyFailure {
                " [flaky: not counted]"
            } else {
                ""
            };
            let flags = f
                .result
                .as_ref()
                .filter(|r| !r.flags.is_empty())
                .map(|r| format!(" [flags: {}]", r.flags.join(" ")))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "FAIL {} {}: {}{flags}{flaky}",
                self.arch,
                f.test.name(),
                f.outcome_text()
            );
            for path in &f.lacks {
                let _ = writeln!(out, "     needs {path}, which this source tree lacks");
            }
            if let Some(r) = &f.result {
                for line in &r.tail {
                    let _ = writeln!(out, "     | {line}");
                }
            }
        }
        for f in self
            .files
            .iter()
            .filter(|f| f.verdict == Verdict::UnexpectedPass)
        {
            let _ = writeln!(
                out,
                "UNEXPECTED PASS {} {}: listed as {}; remove the entry",
                self.arch,
                f.test.name(),
                f.reasons_text()
            );
        }
        out
    }

    /// Expected failures per reason, most common first.
    pub fn by_reason(&self) -> Vec<(Reason, usize)> {
        let mut counts: BTreeMap<Reason, usize> = BTreeMap::new();
        for f in self.files.iter().filter(|f| {
            matches!(
                f.verdict,
                Verdict::ExpectedFailure | Verdict::UnexpectedPass
            )
        }) {
            if let Some((r, _, _)) = f.expected.listed.first() {
                *counts.entry(*r).or_default() += 1;
            }
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// TAP version 13 lines for this arch's files, numbered from `first`.
    pub fn tap_lines(&self, first: usize, out: &mut String) {
        for (i, f) in self.files.iter().enumerate() {
            let n = first + i;
            let name = format!("{} {}", self.arch, f.test.name());
            let (ok, directive) = match f.verdict {
                Verdict::Passed => (true, String::new()),
                Verdict::Skipped => (true, format!(" # SKIP {}", f.skip.as_deref().unwrap_or(""))),
                Verdict::ExpectedFailure => (
                    false,
                    format!(" # TODO known failure: {}", f.reasons_text()),
                ),
                Verdict::FlakyFailure => (false, " # TODO flaky".to_owned()),
                Verdict::UnexpectedPass => (
                    true,
                    format!(
                        " # TODO unexpectedly passed; listed as {}",
                        f.reasons_text()
                    ),
                ),
                Verdict::Failed | Verdict::NoResult => (false, String::new()),
            };
            let _ = writeln!(
                out,
                "{} {n} - {name}{directive}",
                if ok { "ok" } else { "not ok" }
            );
            if !ok {
                let _ = writeln!(out, "  ---");
                let _ = writeln!(out, "  outcome: {}", yaml_str(&f.outcome_text()));
                if let Some(r) = &f.result {
                    let _ = writeln!(out, "  duration_ms: {}", r.ms);
                    if !r.tail.is_empty() {
                        let _ = writeln!(out, "  stderr: |-");
                        for line in &r.tail {
                            let _ = writeln!(out, "    {line}");
                        }
                    }
                }
                let _ = writeln!(out, "  ...");
            }
        }
    }

    /// The time the whole report took: this run's, or when results came
    /// from the journal, the journal's summed time (this run included).
    pub fn suite_time(&self) -> Duration {
        match &self.journal {
            Some(j) if j.resumed > 0 => j.total_time,
            _ => self.wall,
        }
    }

    /// One `<testsuite>` element.
    pub fn junit_suite(&self, out: &mut String) {
        let c = self.counts();
        let _ = writeln!(
            out,
            "  <testsuite name=\"node-test {}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            self.arch,
            self.files.len(),
            c.failed + c.no_result,
            c.skipped + c.expected_failures + c.flaky_failures,
            self.suite_time().as_secs_f64()
        );
        for f in &self.files {
            let secs = f
                .result
                .as_ref()
                .map(|r| r.ms as f64 / 1000.0)
                .unwrap_or(0.0);
            let _ = write!(
                out,
                "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{secs:.3}\"",
                self.arch,
                f.test.suite,
                xml(f.test.stem())
            );
            let tail = f
                .result
                .as_ref()
                .map(|r| r.tail.join("\n"))
                .unwrap_or_default();
            match f.verdict {
                Verdict::Passed => {
                    let _ = writeln!(out, "/>");
                }
                Verdict::UnexpectedPass => {
                    let _ = writeln!(out, ">");
                    let _ = writeln!(
                        out,
                        "      <system-out>unexpectedly passed; listed as {}</system-out>",
                        xml(&f.reasons_text())
                    );
                    let _ = writeln!(out, "    </testcase>");
                }
                Verdict::Skipped | Verdict::ExpectedFailure | Verdict::FlakyFailure => {
                    let why = match f.verdict {
                        Verdict::Skipped => f.skip.clone().unwrap_or_default(),
                        Verdict::ExpectedFailure => format!("known failure: {}", f.reasons_text()),
                        _ => "flaky".into(),
                    };
                    let _ = writeln!(out, ">");
                    let _ = writeln!(out, "      <skipped message=\"{}\"/>", xml(&why));
                    let _ = writeln!(out, "    </testcase>");
                }
                Verdict::Failed | Verdict::NoResult => {
                    let _ = writeln!(out, ">");
                    let _ = writeln!(
                        out,
                        "      <failure message=\"{}\">{}</failure>",
                        xml(&f.outcome_text()),
                        xml(&tail)
                    );
                    let _ = writeln!(out, "    </testcase>");
                }
            }
        }
        let _ = writeln!(out, "  </testsuite>");
    }
}

/// A TAP document for one or more arches.
pub fn tap(reports: &[SuiteReport]) -> String {
    let total: usize = reports.iter().map(|r| r.files.len()).sum();
    let mut out = format!("TAP version 13\n1..{total}\n");
    let mut first = 1;
    for r in reports {
        r.tap_lines(first, &mut out);
        first += r.files.len();
    }
    out
}

/// A JUnit XML document, one `<testsuite>` per arch.
pub fn junit(reports: &[SuiteReport]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for r in reports {
        r.junit_suite(&mut out);
    }
    out.push_str("</testsuites>\n");
    out
}

impl fmt::Display for SuiteReport {
    /// The summary block.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.counts();
        writeln!(f, "node-test {} ({}):", self.arch, self.node_label)?;
        writeln!(
            f,
            "  {} files: {} passed, {} failed, {} skipped, {} expected failures, {} unexpectedly passed, {} flaky failures{}",
            self.files.len(),
            c.passed,
            c.failed,
            c.skipped,
            c.expected_failures,
            c.unexpected_passes,
            c.flaky_failures,
            if c.no_result > 0 {
                format!(", {} without result", c.no_result)
            } else {
                String::new()
            }
        )?;
        match c.pass_rate() {
            Some(rate) => writeln!(
                f,
                "  pass rate {rate:.1}% ({} of {} files not on the known-failures list)",
                c.passed,
                c.unlisted_run()
            )?,
            None => writeln!(f, "  pass rate: no file ran")?,
        }
        let reasons = self.by_reason();
        if !reasons.is_empty() {
            writeln!(
                f,
                "  expected failures by reason: {}",
                reasons
                    .iter()
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        if self.booted {
            write!(f, "  time of this run {:.1} s", self.wall.as_secs_f64())?;
            if let Some(b) = self.boot {
                write!(f, " (boot to runner {:.1} s)", b.as_secs_f64())?;
            }
            writeln!(
                f,
                "; test archive {:.1} MB ({:.1} MB unpacked)",
                self.archive_bytes as f64 / 1e6,
                self.archive_uncompressed as f64 / 1e6
            )?;
        } else {
            writeln!(
                f,
                "  time of this run: none, no guest booted (every result from the journal)"
            )?;
        }
        if let Some(j) = &self.journal {
            writeln!(
                f,
                "  journal {}: {} of these {} results from earlier runs; it holds {} results from {} guest boot{} taking {:.1} s in all",
                j.path.display(),
                j.resumed,
                // The files that ran: a test that skipped itself ran, one
                // a SKIP rule left out did not.
                self.files.iter().filter(|f| f.result.is_some()).count(),
                j.results,
                j.sessions,
                if j.sessions == 1 { "" } else { "s" },
                j.total_time.as_secs_f64()
            )?;
            if let Some(e) = &j.write_error {
                writeln!(
                    f,
                    "  THE JOURNAL MISSES RESULTS OF THIS RUN (writing failed: {e}); they run again next time"
                )?;
            }
        }
        match &self.end {
            RunEnd::Done => {}
            RunEnd::RunnerError(m) => writeln!(f, "  THE RUNNER FAILED: {m}")?,
            RunEnd::GuestFailed(m) => writeln!(
                f,
                "  THE GUEST STOPPED BEFORE THE END: {}",
                m.lines().next().unwrap_or("")
            )?,
        }
        if self.booted {
            write!(f, "  console log: {}", self.log_path.display())
        } else {
            write!(f, "  console log: none (no guest booted)")
        }
    }
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

fn yaml_str(s: &str) -> String {
    format!("{:?}", s)
}

#[cfg(test)]
mod tests;
