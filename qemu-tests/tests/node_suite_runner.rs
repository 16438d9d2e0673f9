//! The guest runner (node-suite/runner.js) on this host, under the host's
//! `node`: the cases that are slow or awkward to provoke in a guest
//! (parallel slots, a test's children on timeout, pipes held open by a
//! grandchild, stdin, the environment tools/test.py sets). The same runner
//! runs as PID 1 in tests/node_suite.rs.
//!
//! Needs `node` on PATH (any release since 16); without it these tests
//! fail and say so.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use qemu_tests::node_suite::archive::RUNNER_JS;
use qemu_tests::node_suite::protocol::{
    Event, GuestFacts, LINE_PREFIX, PROTOCOL, PlanEntry, PlanFile, RunOutcome, TestResult,
};

fn host_node() -> &'static str {
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "\n\n*** NO `node` ON PATH: these tests run the node-test runner on the host; install Node.js (e.g. `apt-get install nodejs`)\n\n"
    );
    "node"
}

struct Run {
    facts: GuestFacts,
    results: BTreeMap<String, TestResult>,
    order: Vec<String>,
    done: bool,
    wall: Duration,
}

/// Writes `files` under test/parallel (or test/sequential for names
/// starting with `seq/`), a plan with `jobs` and `timeout_ms`, runs the
/// runner, parses every line.
fn run(files: &[(&str, &str)], jobs: usize, timeout_ms: u64) -> Run {
    run_with(files, &[], jobs, timeout_ms)
}

/// As [`run`], with `missing` files in the plan that are not written.
fn run_with(files: &[(&str, &str)], missing: &[&str], jobs: usize, timeout_ms: u64) -> Run {
    let node = host_node();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("runner.js"), RUNNER_JS).unwrap();
    let mut tests = Vec::new();
    let mut names = BTreeMap::new();
    for (id, (name, text)) in files.iter().enumerate() {
        let (suite, file) = match name.strip_prefix("seq/") {
            Some(f) => ("sequential", f),
            None => ("parallel", *name),
        };
        let rel = format!("test/{suite}/{file}");
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        tests.push(PlanEntry {
            id,
            file: rel,
            parallel: suite == "parallel",
        });
        names.insert(id, file.trim_end_matches(".js").to_owned());
    }
    for name in missing {
        let id = tests.len();
        tests.push(PlanEntry {
            id,
            file: format!("test/parallel/{name}"),
            parallel: true,
        });
        names.insert(id, name.trim_end_matches(".js").to_owned());
    }
    let plan = PlanFile {
        protocol: PROTOCOL,
        root: ".".into(),
        jobs,
        timeout_ms,
        tail_lines: 3,
        tail_bytes: 4096,
        tests,
    };
    std::fs::write(
        root.join("plan.json"),
        serde_json::to_string(&plan).unwrap(),
    )
    .unwrap();
    let started = Instant::now();
    let out = Command::new(node)
        .arg(root.join("runner.js"))
        .current_dir(root)
        .output()
        .unwrap();
    let wall = started.elapsed();
    let stdout = String::from_utf8(out.stdout).expect("the runner prints ASCII");
    assert!(
        out.status.success(),
        "runner failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut facts = None;
    let mut results = BTreeMap::new();
    let mut order = Vec::new();
    let mut done = false;
    for line in stdout.lines() {
        assert!(line.is_ascii(), "non-ASCII line: {line}");
        let json = line
            .strip_prefix(LINE_PREFIX)
            .unwrap_or_else(|| panic!("stray line {line:?}"));
        match Event::parse(json).unwrap() {
            Event::Hello(f) => facts = Some(f),
            Event::Start { id } => order.push(format!("start {}", names[&id])),
            Event::Result(r) => {
                order.push(format!("end {}", names[&r.id]));
                results.insert(names[&r.id].clone(), r);
            }
            Event::Done { results: n, .. } => {
                assert_eq!(n, files.len() + missing.len());
                done = true;
            }
            Event::Error { message } => panic!("runner error: {message}"),
        }
    }
    Run {
        facts: facts.expect("hello"),
        results,
        order,
        done,
        wall,
    }
}

#[test]
fn outcomes_exit_codes_and_tails() {
    let r = run(
        &[
            ("test-pass.js", "console.log('fine');"),
            (
                "test-fail.js",
                "console.error('a\\nb\\nc\\nd'); process.exit(3);",
            ),
            ("test-throw.js", "throw new Error('thrown here');"),
            ("test-crash.js", "process.kill(process.pid, 'SIGABRT');"),
            (
                "test-stdout-only.js",
                "console.log('only stdout'); process.exitCode = 1;",
            ),
            (
                "test-unicode.js",
                "console.error('caf\\u00e9 \\u2713'); process.exit(1);",
            ),
        ],
        2,
        60_000,
    );
    assert!(r.done);
    assert_eq!(r.facts.tests, 6);
    let get = |n: &str| &r.results[n];
    assert_eq!(get("test-pass").outcome, RunOutcome::Pass);
    assert_eq!(get("test-pass").exit, Some(0));
    assert!(get("test-pass").tail.is_empty(), "no tail for a pass");
    let fail = get("test-fail");
    assert_eq!((fail.outcome, fail.exit), (RunOutcome::Fail, Some(3)));
    assert_eq!(fail.tail, ["b", "c", "d"], "the last tail_lines lines");
    assert_eq!(
        (get("test-throw").outcome, get("test-throw").exit),
        (RunOutcome::Fail, Some(1))
    );
    let crash = get("test-crash");
    assert_eq!(crash.outcome, RunOutcome::Crash);
    assert_eq!(crash.signal.as_deref(), Some("SIGABRT"));
    assert_eq!(
        get("test-stdout-only").tail,
        ["only stdout"],
        "stdout when stderr is empty"
    );
    assert_eq!(
        get("test-unicode").tail,
        ["café ✓"],
        "escaped on the wire, intact after parsing"
    );
}

#[test]
fn flags_lines_and_the_test_py_environment() {
    let r = run(
        &[
            (
                "test-flags.js",
                "'use strict';\n// Flags: --expose-internals --no-warnings\nrequire('internal/util');\nconst assert = require('assert');\nassert.deepStrictEqual(process.execArgv, ['--expose-internals', '--no-warnings']);\n",
            ),
            (
                "test-env.js",
                "const assert = require('assert');\nassert.strictEqual(process.env.NODE_OPTIONS, '');\nassert.strictEqual(process.env.TEST_PARALLEL, '1');\nassert.match(process.env.TEST_THREAD_ID, /^[01]$/);\nassert.match(process.env.TEST_SERIAL_ID, /^\\d+$/);\nassert.strictEqual(process.env.NODE_PATH, undefined);\nassert.strictEqual(require('path').basename(process.cwd()), require('path').basename(require('path').resolve(__dirname, '../..')));\n",
            ),
            (
                "seq/test-seq-env.js",
                "require('assert').strictEqual(process.env.TEST_PARALLEL, '0');",
            ),
            (
                "test-stdin.js",
                "let n = 0; process.stdin.on('data', (d) => n += d.length); process.stdin.on('end', () => process.exit(n === 0 ? 0 : 5));",
            ),
            (
                // As under tools/test.py: stdin is /dev/null, no pipe handle
                // (test-process-getactiveresources counts handles).
                "test-stdin-null.js",
                "const assert = require('assert');\nassert(require('fs').fstatSync(0).isCharacterDevice());\nsetTimeout(() => {}, 0);\nassert.deepStrictEqual(process.getActiveResourcesInfo(), ['Timeout']);\n",
            ),
        ],
        2,
        60_000,
    );
    for (name, res) in &r.results {
        assert_eq!(res.outcome, RunOutcome::Pass, "{name}: {:?}", res.tail);
    }
    assert_eq!(
        r.results["test-flags"].flags,
        ["--expose-internals", "--no-warnings"]
    );
    assert!(r.results["test-env"].flags.is_empty());
}

#[test]
fn timeout_kills_the_test_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let hang = format!(
        "const {{ spawn }} = require('child_process');\nconst c = spawn(process.execPath, ['-e', 'setInterval(() => {{}}, 1000)'], {{ stdio: 'inherit' }});\nrequire('fs').writeFileSync({:?}, String(c.pid));\nsetInterval(() => {{}}, 1000);\n",
        pid_file.display().to_string()
    );
    let r = run(&[("test-hang.js", &hang)], 1, 3_000);
    let res = &r.results["test-hang"];
    assert_eq!(res.outcome, RunOutcome::Timeout);
    assert!(res.ms >= 3_000 && res.ms < 10_000, "{} ms", res.ms);
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed with the test's process group (then reaped by nobody on this
    // host but its parent, which is gone too: not running either way).
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let running = state
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .is_some_and(|s| s != "Z");
    if running {
        // Not left behind on the host by a failing run.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        panic!("the test's child {pid} outlived the timeout: {state}");
    }
}

#[test]
fn a_grandchild_holding_the_pipes_does_not_stall_the_runner() {
    // The test exits at once; its detached child keeps stdout open for 30 s.
    let text = "require('child_process').spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'inherit', detached: true }).unref();";
    let r = run(&[("test-holder.js", text)], 1, 60_000);
    let res = &r.results["test-holder"];
    assert_eq!(res.outcome, RunOutcome::Pass);
    assert!(
        r.wall < Duration::from_secs(20),
        "the runner waited for the pipes: {:?}",
        r.wall
    );
}

#[test]
fn jobs_run_side_by_side_and_sequential_files_alone_afterwards() {
    let sleeper = "setTimeout(() => {}, 1500);";
    let r = run(
        &[
            ("test-a.js", sleeper),
            ("seq/test-s.js", sleeper),
            ("test-b.js", sleeper),
            ("test-c.js", sleeper),
        ],
        3,
        60_000,
    );
    assert!(r.results.values().all(|x| x.outcome == RunOutcome::Pass));
    // The three parallel files start before any ends; the sequential one
    // starts after all of them ended.
    let pos = |what: &str| r.order.iter().position(|e| e == what).unwrap();
    let first_end = ["end test-a", "end test-b", "end test-c"]
        .map(pos)
        .into_iter()
        .min()
        .unwrap();
    for s in ["start test-a", "start test-b", "start test-c"] {
        assert!(pos(s) < first_end, "{:?}", r.order);
    }
    let last_parallel_end = ["end test-a", "end test-b", "end test-c"]
        .map(pos)
        .into_iter()
        .max()
        .unwrap();
    assert!(pos("start test-s") > last_parallel_end, "{:?}", r.order);
}

#[test]
fn a_missing_file_is_a_failure_with_the_reason() {
    let r = run_with(&[("test-here.js", "")], &["test-gone.js"], 1, 60_000);
    assert_eq!(r.results["test-here"].outcome, RunOutcome::Pass);
    let gone = &r.results["test-gone"];
    assert_eq!((gone.outcome, gone.exit), (RunOutcome::Fail, None));
    assert!(
        gone.tail[0].starts_with("runner: cannot read "),
        "{:?}",
        gone.tail
    );
    assert!(gone.tail[0].contains("test-gone.js"), "{:?}", gone.tail);
}
