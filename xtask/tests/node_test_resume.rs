//! `cargo xtask node-test` resumes from its journal, in a real guest with
//! the static node `cargo xtask node --node 18 --arch x86_64` builds
//! (the version whose full suite ran here). Ignored: CI
//! does not build that node (≈ 1 h 10 min). Run it with
//! `cargo test -p xtask --test node_test_resume -- --ignored` where that
//! node is in the cache; it boots QEMU three times (TCG: a few minutes).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NARROW: &str = "test-path-[a-f]*";
const WIDE: &str = "test-path-*";

struct Run {
    out: String,
    err: String,
}

fn node_test(target: &Path, filter: &str, extra: &[&str]) -> Run {
    let o: Output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["node-test", "--node", "18", "--arch", "x86_64"])
        .args(["--min-pass-rate", "0"])
        .args(["--filter", filter])
        .args(extra)
        .env("NODEOS_TARGET_DIR", target)
        .output()
        .unwrap();
    let run = Run {
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    // What each run said, for `--nocapture`.
    println!(
        "$ cargo xtask node-test --filter '{filter}' {}\n{}{}",
        extra.join(" "),
        run.err,
        run.out
    );
    if run.err.contains("NO STATIC NODE") {
        panic!(
            "NOT RUN: this test needs the static x86_64 node; build it with `cargo xtask node --arch x86_64`:\n{}",
            run.err
        );
    }
    assert!(
        o.status.success(),
        "node-test --filter {filter} {extra:?} failed:\n{}\n{}",
        run.out,
        run.err
    );
    run
}

/// The summary's counts line, e.g. `  3 files: 3 passed, 0 failed, ...`.
fn counts_line(r: &Run) -> String {
    r.out
        .lines()
        .find(|l| l.starts_with("  ") && l.contains(" files: "))
        .unwrap_or_else(|| panic!("no counts line in:\n{}", r.out))
        .trim()
        .to_owned()
}

fn journal(target: &Path) -> PathBuf {
    let dir = target.join("node-test").join("x86_64");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one journal: {files:?}");
    files.into_iter().next().unwrap()
}

fn journaled_results(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("{\"rec\":\"result\""))
        .count()
}

#[test]
#[ignore = "needs the static x86_64 Node 18 (`cargo xtask node --node 18 --arch x86_64`) and boots QEMU three times"]
fn a_rerun_takes_its_results_from_the_journal_and_runs_only_new_files() {
    let target = tempfile::tempdir().unwrap();

    let first = node_test(target.path(), NARROW, &[]);
    assert!(
        first.err.contains("3 files; results are journaled in"),
        "{}",
        first.err
    );
    assert!(
        first.err.contains("runner up"),
        "a guest ran: {}",
        first.err
    );
    let counts = counts_line(&first);
    assert!(counts.starts_with("3 files:"), "{counts}");
    let path = journal(target.path());
    assert_eq!(journaled_results(&path), 3);

    // A run cut off while writing a line leaves a partial last line.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(br#"{"rec":"result","session":2,"file":"parallel/test-path-z"#);
    std::fs::write(&path, bytes).unwrap();

    let again = node_test(target.path(), NARROW, &[]);
    assert!(
        again.err.contains("warning: ") && again.err.contains("incomplete"),
        "the partial line is reported: {}",
        again.err
    );
    assert!(
        again.err.contains(&format!(
            "resuming: 3 of 3 files already run (journal {})",
            path.display()
        )),
        "{}",
        again.err
    );
    assert!(!again.err.contains("runner up"), "no guest: {}", again.err);
    assert!(
        again
            .out
            .contains("no guest booted (every result from the journal)"),
        "{}",
        again.out
    );
    assert_eq!(counts_line(&again), counts, "the same counts");

    let wider = node_test(target.path(), WIDE, &[]);
    assert!(
        wider.err.contains("resuming: 3 of 14 files already run"),
        "{}",
        wider.err
    );
    assert!(wider.err.contains("; running 11"), "{}", wider.err);
    assert!(
        wider.err.contains("11/11 files"),
        "only the new files ran: {}",
        wider.err
    );
    assert!(
        counts_line(&wider).starts_with("14 files:"),
        "{}",
        wider.out
    );
    assert_eq!(journaled_results(&path), 14);
    assert!(
        wider
            .out
            .contains("3 of these 14 results from earlier runs")
            && wider.out.contains("from 2 guest boots"),
        "{}",
        wider.out
    );

    let fresh = node_test(target.path(), NARROW, &["--fresh"]);
    assert!(!fresh.err.contains("resuming"), "{}", fresh.err);
    assert!(fresh.err.contains("runner up"), "{}", fresh.err);
    assert_eq!(counts_line(&fresh), counts);
    assert_eq!(journaled_results(&path), 3, "--fresh started it over");
}
