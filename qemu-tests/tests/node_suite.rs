//! node-test in a real guest: the CI subset of Node's own tests
//! (node-suite/ci-subset.txt) run by the runner as PID 1 under QEMU, on the
//! x86_64 kernel of the kernel phase.
//!
//! The node is Debian's Node 18.20.4, dynamically linked, packed with its
//! libraries into a test initramfs (support/node_suite_standin.rs): a
//! stand-in, because NodeOS's static node takes an hour to build and CI does
//! not build it. `cargo xtask node-test` runs the same code with our node.

#[path = "support/node_suite_standin.rs"]
mod standin;
#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::time::Instant;

use qemu_tests::node_suite::protocol::RunOutcome;
use qemu_tests::node_suite::report::{self, RunEnd, Verdict};
use qemu_tests::node_suite::{self, Event, Filter, NodeBuild, SourceKind, Suite, SuiteRequest};
use qemu_tests::{Arch, QemuConfig};

fn request(
    source_root: std::path::PathBuf,
    only: Option<Vec<String>>,
    name: &str,
    timeout: std::time::Duration,
) -> SuiteRequest {
    let arch = Arch::X86_64;
    let work = support::work_dir();
    let initrd = standin::standin_initramfs(arch, &work);
    let mut qemu = QemuConfig::new(arch, support::kernel(arch), initrd, &support::target_dir());
    qemu.memory_mib = 1024;
    qemu.log_name = format!("{name}.log");
    SuiteRequest {
        qemu,
        build: NodeBuild::DebianStandIn,
        node_label: "Debian's node, dynamically linked (CI stand-in)".into(),
        version: standin::STANDIN_VERSION.into(),
        source_root,
        source_kind: SourceKind::TestsOnly,
        suites: vec![Suite::Parallel],
        filter: Filter::default(),
        only,
        jobs: 2,
        timeout,
        work_dir: work.join(name),
        compression: initramfs::DEFAULT_COMPRESSION,
        tools: Some(standin::test_tools(arch)),
    }
}

#[test]
fn ci_subset_passes_in_the_guest_with_the_debian_standin() {
    let work = support::work_dir();
    let tree = standin::node_test_tree(standin::STANDIN_VERSION, &work);
    let subset = node_suite::ci_subset();
    let req = request(
        tree,
        Some(subset.clone()),
        "node-test-ci-subset",
        node_suite::timeout_for_factor(node_suite::DEFAULT_TCG_TIMEOUT_FACTOR),
    );
    let started = Instant::now();
    let mut events = Vec::new();
    let report = node_suite::run_suite(&req, &mut |ev| events.push(ev.clone()))
        .unwrap_or_else(|e| panic!("{e:#}"));
    println!("{}", report.failures_text());
    println!("{report}");
    println!(
        "[timing] CI subset: {} files in {:.1} s of guest time ({:.1} s in all with the archive), test archive {} bytes",
        report.files.len(),
        report.wall.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        report.archive_bytes
    );
    assert_eq!(report.end, RunEnd::Done, "the runner finished: {report}");
    let facts = report.facts.as_ref().expect("the runner said hello");
    assert_eq!(facts.pid, 1, "the runner is init");
    assert_eq!(facts.version, format!("v{}", standin::STANDIN_VERSION));
    assert_eq!(facts.arch, "x64");
    assert_eq!(facts.tests, subset.len());
    assert!(facts.sh, "the test tools put /bin/sh in the guest");
    // Every planned file came back, in the order of events: start, result.
    let mut started_ids = BTreeMap::new();
    for ev in &events {
        match ev {
            Event::Start { id } => {
                started_ids.insert(*id, true);
            }
            Event::Result(r) => assert!(started_ids.contains_key(&r.id), "result before start"),
            _ => {}
        }
    }
    assert_eq!(started_ids.len(), subset.len());
    let counts = report.counts();
    assert_eq!(
        counts.failed + counts.no_result,
        0,
        "{}",
        report.failures_text()
    );
    assert_eq!(counts.unexpected_passes, 0, "{}", report.failures_text());
    assert!(
        counts.expected_failures >= 1,
        "the subset keeps a known failure, so the list is exercised: {report}"
    );
    assert!(counts.passed >= subset.len() * 3 / 4, "{report}");
    // `// Flags:` lines reach the command line.
    let flagged = report
        .files
        .iter()
        .filter(|f| f.result.as_ref().is_some_and(|r| !r.flags.is_empty()))
        .count();
    assert!(
        flagged >= 1,
        "a subset file with a // Flags: line ran with them"
    );
    // The machine-readable reports hold every file.
    let tap = report::tap(std::slice::from_ref(&report));
    assert!(tap.contains(&format!("1..{}", subset.len())));
    let junit = report::junit(std::slice::from_ref(&report));
    assert_eq!(junit.matches("<testcase ").count(), subset.len());
}

/// The runner as PID 1 on synthetic test files: a timeout kills the test
/// (and its child), a crash is a crash, a failure brings its stderr back.
#[test]
fn runner_in_the_guest_reports_timeout_crash_and_failure() {
    let work = support::work_dir();
    let tree = work.join("node-test-synthetic");
    let _ = std::fs::remove_dir_all(&tree);
    let files = [
        (
            "test-pass.js",
            "require('assert').strictEqual(process.ppid, 1);\n",
        ),
        (
            "test-fail.js",
            "console.error('first line');\nconsole.error('the reason');\nprocess.exit(7);\n",
        ),
        (
            "test-hang.js",
            "require('child_process').spawn(process.execPath, ['-e', 'setInterval(()=>{},1000)'], {stdio: 'inherit'});\nsetInterval(() => {}, 1000);\n",
        ),
        ("test-crash.js", "process.kill(process.pid, 'SIGSEGV');\n"),
        (
            "test-tools.js",
            "const cp = require('child_process');\nconst assert = require('assert');\nassert.strictEqual(cp.execSync('echo one two | grep -o two').toString(), 'two\\n');\nassert.strictEqual(cp.spawnSync('/usr/bin/env', ['cat'], { input: 'x' }).stdout.toString(), 'x');\nassert.strictEqual(cp.execFileSync('pwd', { cwd: '/node-test' }).toString(), '/node-test\\n');\n",
        ),
        (
            "test-flags.js",
            "// Flags: --expose-internals\nrequire('internal/errors');\n",
        ),
    ];
    std::fs::create_dir_all(tree.join("test/parallel")).unwrap();
    std::fs::create_dir_all(tree.join("test/common")).unwrap();
    std::fs::create_dir_all(tree.join("test/fixtures")).unwrap();
    std::fs::write(tree.join("test/common/index.js"), "module.exports = {};\n").unwrap();
    for (name, text) in files {
        std::fs::write(tree.join("test/parallel").join(name), text).unwrap();
    }
    let req = request(
        tree,
        None,
        "node-test-synthetic",
        std::time::Duration::from_secs(20),
    );
    let report = node_suite::run_suite(&req, &mut |_| {}).unwrap_or_else(|e| panic!("{e:#}"));
    println!("{}", report.failures_text());
    println!("{report}");
    assert_eq!(report.end, RunEnd::Done, "{report}");
    let by_name: BTreeMap<String, _> = report
        .files
        .iter()
        .map(|f| (f.test.stem().to_owned(), f))
        .collect();
    let outcome = |n: &str| by_name[n].result.as_ref().expect("a result").outcome;
    assert_eq!(outcome("test-pass"), RunOutcome::Pass);
    assert_eq!(outcome("test-flags"), RunOutcome::Pass);
    assert_eq!(
        outcome("test-tools"),
        RunOutcome::Pass,
        "the test tools run in the guest: {:?}",
        by_name["test-tools"].result.as_ref().unwrap().tail
    );
    assert_eq!(
        by_name["test-flags"].result.as_ref().unwrap().flags,
        ["--expose-internals"]
    );
    assert_eq!(outcome("test-fail"), RunOutcome::Fail);
    let fail = by_name["test-fail"].result.as_ref().unwrap();
    assert_eq!(fail.exit, Some(7));
    assert_eq!(fail.tail, ["first line", "the reason"]);
    assert_eq!(outcome("test-hang"), RunOutcome::Timeout);
    let hang = by_name["test-hang"].result.as_ref().unwrap();
    assert!(hang.ms >= 20_000 && hang.ms < 40_000, "{} ms", hang.ms);
    assert_eq!(outcome("test-crash"), RunOutcome::Crash);
    assert_eq!(
        by_name["test-crash"]
            .result
            .as_ref()
            .unwrap()
            .signal
            .as_deref(),
        Some("SIGSEGV")
    );
    assert_eq!(by_name["test-hang"].verdict, Verdict::Failed);
}
