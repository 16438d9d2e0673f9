use super::*;
use crate::node_suite::select::Suite;

fn file(name: &str) -> TestFile {
    TestFile {
        suite: Suite::Parallel,
        file_name: format!("{name}.js"),
    }
}

fn result(id: usize, outcome: RunOutcome, tail: &[&str]) -> TestResult {
    TestResult {
        id,
        outcome,
        ms: 1500,
        exit: match outcome {
            RunOutcome::Pass => Some(0),
            RunOutcome::Fail => Some(1),
            _ => None,
        },
        signal: match outcome {
            RunOutcome::Crash => Some("SIGSEGV".into()),
            RunOutcome::Timeout => Some("SIGTERM".into()),
            _ => None,
        },
        flags: vec![],
        tail: tail.iter().map(|s| s.to_string()).collect(),
    }
}

fn listed(reason: Reason, may_pass: bool) -> Expected {
    Expected {
        listed: vec![(reason, "why".into(), "k.status:3".into())],
        listed_may_pass: may_pass,
        node_flaky: false,
    }
}

fn sample() -> SuiteReport {
    let files = vec![
        FileReport::judge(
            file("test-pass"),
            Some(result(0, RunOutcome::Pass, &[])),
            Expected::default(),
        ),
        FileReport::judge(
            file("test-fail"),
            Some(result(
                1,
                RunOutcome::Fail,
                &["AssertionError <&>", "  at x"],
            )),
            Expected::default(),
        ),
        FileReport::judge(
            file("test-known"),
            Some(result(2, RunOutcome::Timeout, &[])),
            listed(Reason::NeedsProc, false),
        ),
        FileReport::judge(
            file("test-fixed"),
            Some(result(3, RunOutcome::Pass, &[])),
            listed(Reason::NeedsTmp, false),
        ),
        FileReport::judge(
            file("test-node-flaky"),
            Some(result(4, RunOutcome::Crash, &["segv"])),
            Expected {
                node_flaky: true,
                ..Expected::default()
            },
        ),
        FileReport::judge(file("test-lost"), None, Expected::default()),
        FileReport::skipped(file("test-skip"), "parallel.status".into()),
    ];
    SuiteReport {
        arch: Arch::X86_64,
        node_label: "test node".into(),
        facts: None,
        files,
        end: RunEnd::Done,
        booted: true,
        wall: Duration::from_secs(90),
        boot: Some(Duration::from_secs(3)),
        log_path: "/logs/node-test.log".into(),
        archive_bytes: 1_500_000,
        archive_uncompressed: 4_000_000,
        journal: None,
    }
}

#[test]
fn verdicts_follow_outcome_and_list() {
    let r = sample();
    let verdicts: Vec<Verdict> = r.files.iter().map(|f| f.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Passed,
            Verdict::Failed,
            Verdict::ExpectedFailure,
            Verdict::UnexpectedPass,
            Verdict::FlakyFailure,
            Verdict::NoResult,
            Verdict::Skipped
        ]
    );
    // A listed entry that allows PASS: failing is flaky, passing is fine.
    let f = FileReport::judge(
        file("x"),
        Some(result(0, RunOutcome::Fail, &[])),
        listed(Reason::Flaky, true),
    );
    assert_eq!(f.verdict, Verdict::FlakyFailure);
    let p = FileReport::judge(
        file("x"),
        Some(result(0, RunOutcome::Pass, &[])),
        listed(Reason::Flaky, true),
    );
    assert_eq!(p.verdict, Verdict::Passed);
}

#[test]
fn counts_and_pass_rate_leave_listed_files_out() {
    let r = sample();
    let c = r.counts();
    assert_eq!(
        c,
        Counts {
            passed: 1,
            failed: 1,
            skipped: 1,
            expected_failures: 1,
            unexpected_passes: 1,
            flaky_failures: 1,
            no_result: 1,
        }
    );
    // pass, fail, flaky, lost are unlisted and ran (or should have).
    assert_eq!(c.unlisted_run(), 4);
    assert_eq!(c.pass_rate(), Some(25.0));
    assert!(!r.clean());
    assert_eq!(Counts::default().pass_rate(), None);
}

#[test]
fn failures_text_has_a_line_per_failure_and_the_tail() {
    let text = sample().failures_text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.contains(&"FAIL x86_64 parallel/test-fail.js: fail (exit 1)"),
        "{text}"
    );
    assert!(lines.contains(&"     | AssertionError <&>"), "{text}");
    assert!(
        lines.contains(
            &"FAIL x86_64 parallel/test-node-flaky.js: crash (SIGSEGV) [flaky: not counted]"
        ),
        "{text}"
    );
    assert!(
        lines.contains(&"FAIL x86_64 parallel/test-lost.js: no result"),
        "{text}"
    );
    assert!(
        lines.contains(
            &"UNEXPECTED PASS x86_64 parallel/test-fixed.js: listed as needs-tmp (k.status:3); remove the entry"
        ),
        "{text}"
    );
    assert!(
        !text.contains("test-known"),
        "expected failures are not listed: {text}"
    );
}

#[test]
fn summary_names_every_count() {
    let s = sample().to_string();
    assert!(
        s.contains("7 files: 1 passed, 1 failed, 1 skipped, 1 expected failures, 1 unexpectedly passed, 1 flaky failures, 1 without result"),
        "{s}"
    );
    assert!(s.contains("pass rate 25.0% (1 of 4 files"), "{s}");
    assert!(
        s.contains("expected failures by reason: needs-proc 1, needs-tmp 1"),
        "{s}"
    );
    assert!(
        s.contains("time of this run 90.0 s (boot to runner 3.0 s)"),
        "{s}"
    );
    assert!(s.contains("console log: /logs/node-test.log"), "{s}");
    assert!(!s.contains("journal"), "{s}");
}

#[test]
fn summary_of_a_run_from_the_journal_alone_says_so() {
    let mut r = sample();
    // A file that skipped itself ran (and has its journal line); one a
    // SKIP rule left out, or one without a result, did not.
    for (id, name) in [(7, "test-skips-itself"), (8, "test-skips-too")] {
        r.files.push(FileReport::judge(
            file(name),
            Some(result(id, RunOutcome::Skip, &["no IPv6"])),
            Expected::default(),
        ));
    }
    r.booted = false;
    r.wall = Duration::ZERO;
    r.boot = None;
    r.journal = Some(JournalUse {
        path: "/j/k.jsonl".into(),
        resumed: 7,
        results: 9,
        sessions: 2,
        total_time: Duration::from_millis(123_400),
        write_error: None,
    });
    let s = r.to_string();
    assert!(
        s.contains("time of this run: none, no guest booted (every result from the journal)"),
        "{s}"
    );
    assert!(
        s.contains("journal /j/k.jsonl: 7 of these 7 results from earlier runs; it holds 9 results from 2 guest boots taking 123.4 s in all"),
        "{s}"
    );
    assert!(s.contains("console log: none (no guest booted)"), "{s}");
    let doc = junit(std::slice::from_ref(&r));
    assert!(
        doc.contains("time=\"123.400\">"),
        "the journal's time: {doc}"
    );
    assert!(!s.contains("MISSES"), "{s}");
    r.journal.as_mut().unwrap().write_error = Some("disk full".into());
    assert!(
        r.to_string()
            .contains("THE JOURNAL MISSES RESULTS OF THIS RUN (writing failed: disk full)"),
        "{r}"
    );
}

#[test]
fn tap_document() {
    let r = sample();
    let doc = tap(std::slice::from_ref(&r));
    let lines: Vec<&str> = doc.lines().collect();
    assert_eq!(lines[0], "TAP version 13");
    assert_eq!(lines[1], "1..7");
    assert_eq!(lines[2], "ok 1 - x86_64 parallel/test-pass.js");
    assert!(
        doc.contains("not ok 2 - x86_64 parallel/test-fail.js\n  ---\n  outcome: \"fail (exit 1)\"\n  duration_ms: 1500\n  stderr: |-\n    AssertionError <&>\n      at x\n  ...\n"),
        "{doc}"
    );
    assert!(
        doc.contains(
            "not ok 3 - x86_64 parallel/test-known.js # TODO known failure: needs-proc (k.status:3)"
        ),
        "{doc}"
    );
    assert!(
        doc.contains("ok 4 - x86_64 parallel/test-fixed.js # TODO unexpectedly passed"),
        "{doc}"
    );
    assert!(
        doc.contains("ok 7 - x86_64 parallel/test-skip.js # SKIP parallel.status"),
        "{doc}"
    );
    let numbered = lines
        .iter()
        .filter(|l| l.starts_with("ok ") || l.starts_with("not ok "))
        .count();
    assert_eq!(numbered, 7);
}

#[test]
fn junit_document_escapes_and_counts() {
    let r = sample();
    let doc = junit(std::slice::from_ref(&r));
    assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n"));
    assert!(
        doc.contains("<testsuite name=\"node-test x86_64\" tests=\"7\" failures=\"2\" skipped=\"3\" time=\"90.000\">"),
        "{doc}"
    );
    assert!(
        doc.contains("<testcase classname=\"x86_64.parallel\" name=\"test-pass\" time=\"1.500\"/>")
    );
    assert!(
        doc.contains(
            "<failure message=\"fail (exit 1)\">AssertionError &lt;&amp;&gt;\n  at x</failure>"
        ),
        "{doc}"
    );
    assert!(doc.contains("<skipped message=\"known failure: needs-proc (k.status:3)\"/>"));
    assert!(doc.trim_end().ends_with("</testsuites>"));
    // Every element that opens closes.
    assert_eq!(doc.matches("<testcase").count(), 7);
    assert_eq!(
        doc.matches("</testcase>").count() + doc.matches("\"/>\n").count()
            - doc.matches("<skipped").count(),
        7
    );
}

#[test]
fn a_failure_names_the_paths_the_source_tarball_lacks() {
    let mut r = sample();
    let mut failing = FileReport::judge(
        file("test-npm-version"),
        Some(result(7, RunOutcome::Fail, &["Cannot find module"])),
        Expected::default(),
    );
    failing.lacks = vec!["deps/npm/package.json".into()];
    let mut passing = FileReport::judge(
        file("test-eslint-x"),
        Some(result(8, RunOutcome::Pass, &[])),
        Expected::default(),
    );
    passing.lacks = vec!["tools/node_modules/eslint".into()];
    r.files = vec![failing, passing];
    let text = r.failures_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "FAIL x86_64 parallel/test-npm-version.js: fail (exit 1)",
            "     needs deps/npm/package.json, which this source tree lacks",
            "     | Cannot find module",
        ],
        "{text}"
    );
    assert!(
        !text.contains("eslint"),
        "a passing file is not named: {text}"
    );
}

#[test]
fn a_self_skip_is_a_skip_not_a_pass() {
    let f = FileReport::judge(
        file("test-eslint-x"),
        Some(result(4, RunOutcome::Skip, &["ESLint must be present"])),
        Expected::default(),
    );
    assert_eq!(f.verdict, Verdict::Skipped);
    assert_eq!(
        f.skip.as_deref(),
        Some("skipped itself: ESLint must be present")
    );
    // Listed or not, it ran nothing: a skip.
    let listed_skip = FileReport::judge(
        file("test-listed"),
        Some(result(5, RunOutcome::Skip, &["why"])),
        listed(Reason::NeedsTool, false),
    );
    assert_eq!(listed_skip.verdict, Verdict::Skipped);
}
