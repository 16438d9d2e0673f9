use super::*;
use crate::node_suite::report::{RunEnd, Verdict};
use crate::node_suite::{Filter, NodeBuild, SourceKind, Suite, SuiteRequest, plan_run, run_plan};

fn inputs(jobs: usize) -> RunKeyInputs<'static> {
    RunKeyInputs {
        arch: Arch::X86_64,
        node_sha256: "aa11",
        tests_source: "node source sha256 bb22",
        kernel_sha256: "cc33",
        tools: "busybox sha256 dd44",
        jobs,
        timeout: Duration::from_secs(360),
        memory_mib: 1024,
        accel: crate::Accel::Tcg,
    }
}

fn facts(tests: usize) -> GuestFacts {
    GuestFacts {
        protocol: PROTOCOL,
        version: "v99.0.0".into(),
        arch: "x64".into(),
        pid: 1,
        exec_path: "/init".into(),
        proc: true,
        devnull: true,
        tmp: true,
        sh: true,
        loopback: true,
        localhost: true,
        icu: "small".into(),
        inspector: true,
        crypto: true,
        jobs: 2,
        tests,
    }
}

fn result(outcome: RunOutcome, tail: &[&str]) -> TestResult {
    TestResult {
        id: 7,
        outcome,
        ms: 1500,
        exit: Some(if outcome == RunOutcome::Pass { 0 } else { 1 }),
        signal: None,
        flags: vec!["--expose-internals".into()],
        tail: tail.iter().map(|s| s.to_string()).collect(),
    }
}

/// A journal with one finished session: two results.
fn written(dir: &Path, key: &Key) -> PathBuf {
    let mut j = Journal::open(dir, key, false).unwrap();
    assert_eq!(j.loaded_count(), 0);
    let s = j.begin_session().unwrap();
    j.record_facts(s, &facts(2)).unwrap();
    j.record_result(
        s,
        "parallel/test-a.js",
        Duration::from_secs(40),
        &result(RunOutcome::Pass, &[]),
    )
    .unwrap();
    j.record_result(
        s,
        "parallel/test-b.js",
        Duration::from_secs(50),
        &result(RunOutcome::Fail, &["AssertionError", "  at \"x\" é"]),
    )
    .unwrap();
    j.end_session(s, Duration::from_secs(55)).unwrap();
    j.path().to_owned()
}

#[test]
fn results_written_come_back_on_reopening() {
    let d = tempfile::tempdir().unwrap();
    let key = run_key(&inputs(2));
    let path = written(d.path(), &key);
    assert_eq!(path, d.path().join(format!("{}.jsonl", key.hex())));

    let j = Journal::open(d.path(), &key, false).unwrap();
    assert!(j.warnings.is_empty(), "{:?}", j.warnings);
    assert_eq!((j.loaded_count(), j.result_count()), (2, 2));
    assert_eq!(j.session_count(), 1);
    assert_eq!(j.total_time(), Duration::from_secs(55));
    assert_eq!(j.last_facts(), Some(&facts(2)));
    let b = j.result("parallel/test-b.js").unwrap();
    assert_eq!(
        b,
        &TestResult {
            id: 0,
            ..result(RunOutcome::Fail, &["AssertionError", "  at \"x\" é"])
        }
    );
    assert!(j.result("parallel/test-c.js").is_none());

    // The header names the key and its inputs; every line is one record.
    let text = std::fs::read_to_string(&path).unwrap();
    let first = text.lines().next().unwrap();
    assert!(
        first.contains(&key.hex()) && first.contains("jobs = 2"),
        "{first}"
    );
    assert_eq!(text.lines().count(), 6, "{text}");
}

#[test]
fn a_partial_last_line_is_dropped_with_a_warning_and_appending_goes_on() {
    let d = tempfile::tempdir().unwrap();
    let key = run_key(&inputs(2));
    let path = written(d.path(), &key);
    let whole = std::fs::read(&path).unwrap();
    // A run cut off while writing test-c's line.
    let cut = br#"{"rec":"result","session":2,"file":"parallel/test-c.js","at_ms":9"#;
    let mut bytes = whole.clone();
    bytes.extend_from_slice(cut);
    std::fs::write(&path, &bytes).unwrap();

    let mut j = Journal::open(d.path(), &key, false).unwrap();
    assert_eq!(j.warnings.len(), 1, "{:?}", j.warnings);
    assert!(j.warnings[0].contains("incomplete"), "{:?}", j.warnings);
    assert_eq!(j.result_count(), 2);
    assert!(
        j.result("parallel/test-c.js").is_none(),
        "a cut line is no result"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        whole,
        "the cut bytes are gone"
    );

    // Test-c runs again; its line starts a line of its own.
    let s = j.begin_session().unwrap();
    assert_eq!(s, 2);
    j.record_result(
        s,
        "parallel/test-c.js",
        Duration::from_secs(30),
        &result(RunOutcome::Pass, &[]),
    )
    .unwrap();
    drop(j);
    let j = Journal::open(d.path(), &key, false).unwrap();
    assert!(j.warnings.is_empty(), "{:?}", j.warnings);
    assert_eq!(j.result_count(), 3);
    // The second session was cut off (no end): it counts to its last result.
    assert_eq!(j.session_count(), 2);
    assert_eq!(j.total_time(), Duration::from_secs(55 + 30));
}

#[test]
fn a_damaged_line_is_ignored_with_a_warning() {
    let d = tempfile::tempdir().unwrap();
    let key = run_key(&inputs(2));
    let path = written(d.path(), &key);
    let text = std::fs::read_to_string(&path).unwrap();
    let damaged: Vec<String> = text
        .lines()
        .map(|l| {
            if l.contains("test-a.js") {
                l[..l.len() / 2].to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&path, damaged.join("\n") + "\n").unwrap();
    let j = Journal::open(d.path(), &key, false).unwrap();
    assert_eq!(j.warnings.len(), 1, "{:?}", j.warnings);
    assert!(j.warnings[0].contains("line 4"), "{:?}", j.warnings);
    assert!(j.result("parallel/test-a.js").is_none());
    assert!(j.result("parallel/test-b.js").is_some());
}

#[test]
fn a_changed_key_sees_none_of_the_results_and_fresh_discards_them() {
    let d = tempfile::tempdir().unwrap();
    let key = run_key(&inputs(2));
    written(d.path(), &key);

    let other = run_key(&inputs(3));
    assert_ne!(key.hex(), other.hex());
    let j = Journal::open(d.path(), &other, false).unwrap();
    assert_eq!((j.result_count(), j.session_count()), (0, 0));
    assert!(j.last_facts().is_none());
    drop(j);

    // A file under the key's name that another key wrote is started over.
    let mine = d.path().join(format!("{}.jsonl", key.hex()));
    std::fs::copy(d.path().join(format!("{}.jsonl", other.hex())), &mine).unwrap();
    let j = Journal::open(d.path(), &key, false).unwrap();
    assert_eq!(j.result_count(), 0);
    assert!(
        j.warnings[0].contains("written for run key"),
        "{:?}",
        j.warnings
    );
    drop(j);

    written(d.path(), &key);
    let j = Journal::open(d.path(), &key, true).unwrap();
    assert_eq!((j.result_count(), j.session_count()), (0, 0), "--fresh");
    assert!(j.warnings.is_empty(), "{:?}", j.warnings);
}

#[test]
fn every_input_is_part_of_the_key() {
    let base = run_key(&inputs(2)).hex();
    assert_eq!(base, run_key(&inputs(2)).hex(), "same inputs, same key");
    let variants: Vec<RunKeyInputs> = vec![
        RunKeyInputs {
            arch: Arch::I386,
            ..inputs(2)
        },
        RunKeyInputs {
            node_sha256: "aa12",
            ..inputs(2)
        },
        RunKeyInputs {
            tests_source: "node source sha256 bb23",
            ..inputs(2)
        },
        RunKeyInputs {
            kernel_sha256: "cc34",
            ..inputs(2)
        },
        RunKeyInputs {
            tools: crate::node_suite::tools::NO_TOOLS_IDENTITY,
            ..inputs(2)
        },
        inputs(1),
        RunKeyInputs {
            timeout: Duration::from_secs(361),
            ..inputs(2)
        },
        RunKeyInputs {
            memory_mib: 512,
            ..inputs(2)
        },
        RunKeyInputs {
            accel: crate::Accel::Kvm,
            ..inputs(2)
        },
    ];
    for (n, v) in variants.iter().enumerate() {
        assert_ne!(base, run_key(v).hex(), "variant {n} changes the key");
    }
    let inputs = run_key(&inputs(2)).inputs.join("\n");
    assert!(inputs.contains("runner-sha256 = "), "{inputs}");
}

/// A source tree: `test/common/index.js` and the given parallel files, and
/// a status file that skips `test-skipped`.
fn tree(files: &[&str]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let par = d.path().join("test/parallel");
    std::fs::create_dir_all(&par).unwrap();
    std::fs::create_dir_all(d.path().join("test/common")).unwrap();
    std::fs::write(d.path().join("test/common/index.js"), "").unwrap();
    for f in files {
        std::fs::write(par.join(f), "'use strict';\n").unwrap();
    }
    std::fs::write(
        par.join("parallel.status"),
        "prefix parallel\n\n[true]\ntest-skipped: SKIP\n",
    )
    .unwrap();
    d
}

fn request(source_root: &Path, work: &Path, filter: &[&str]) -> SuiteRequest {
    let mut qemu = crate::QemuConfig::new(
        Arch::X86_64,
        work.join("no-such-bzImage"),
        work.join("no-such-initrd"),
        work,
    );
    // No guest may boot in these tests: a launch would fail on the missing
    // kernel, not pass.
    qemu.log_dir = work.join("logs");
    SuiteRequest {
        qemu,
        build: NodeBuild::Nodeos,
        node_label: "test node".into(),
        version: "99.0.0".into(),
        source_root: source_root.to_owned(),
        source_kind: SourceKind::TestsOnly,
        suites: vec![Suite::Parallel],
        filter: Filter::new(&filter.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap(),
        only: None,
        jobs: 2,
        timeout: Duration::from_secs(360),
        work_dir: work.join("work"),
        compression: initramfs::DEFAULT_COMPRESSION,
        tools: None,
    }
}

#[test]
fn journaled_files_are_left_out_of_the_plan() {
    let src = tree(&["test-a.js", "test-b.js", "test-c.js", "test-skipped.js"]);
    let d = tempfile::tempdir().unwrap();
    let key = run_key(&inputs(2));
    written(d.path(), &key);
    let j = Journal::open(d.path(), &key, false).unwrap();
    let req = request(src.path(), d.path(), &[]);
    let plan = plan_run(&req, Some(&j)).unwrap();
    assert_eq!(plan.selection.run.len(), 3);
    assert_eq!(plan.journaled, 2);
    let names: Vec<String> = plan.to_run.iter().map(|t| t.name()).collect();
    assert_eq!(names, ["parallel/test-c.js"]);
    // Without a journal, everything runs.
    assert_eq!(plan_run(&req, None).unwrap().to_run.len(), 3);
}

#[test]
fn a_selection_the_journal_covers_is_reported_without_a_boot() {
    let src = tree(&["test-a.js", "test-b.js", "test-c.js", "test-skipped.js"]);
    let d = tempfile::tempdir().unwrap();
    let key = run_key(&inputs(2));
    written(d.path(), &key);
    let mut j = Journal::open(d.path(), &key, false).unwrap();
    let req = request(src.path(), d.path(), &["test-[ab]*", "test-skipped*"]);
    let plan = plan_run(&req, Some(&j)).unwrap();
    assert!(plan.to_run.is_empty());
    let mut events = 0;
    let report = run_plan(&req, plan, Some(&mut j), &mut |_| events += 1).unwrap();
    assert_eq!(events, 0, "no guest, no runner line");
    assert!(!report.booted);
    assert_eq!(report.end, RunEnd::Done);
    assert_eq!(report.wall, Duration::ZERO);
    assert!(!d.path().join("logs").exists(), "no console log written");
    let verdicts: Vec<(String, Verdict)> = report
        .files
        .iter()
        .map(|f| (f.test.name(), f.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("parallel/test-a.js".to_owned(), Verdict::Passed),
            ("parallel/test-b.js".to_owned(), Verdict::Failed),
            ("parallel/test-skipped.js".to_owned(), Verdict::Skipped),
        ]
    );
    let b = report.files[1].result.as_ref().unwrap();
    assert_eq!(b.tail, ["AssertionError", "  at \"x\" é"]);
    assert_eq!(report.facts, Some(facts(2)), "the journal's guest facts");
    assert_eq!(report.node_label, "test node, v99.0.0");
    let ju = report.journal.as_ref().unwrap();
    assert_eq!((ju.resumed, ju.results, ju.sessions), (2, 2, 1));
    assert_eq!(ju.total_time, Duration::from_secs(55));
    assert_eq!(j.session_count(), 1, "no session was begun");
}
