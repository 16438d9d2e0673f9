//! Fuzzing by property tests (issue: "the cpio writer under fuzzing over
//! names, modes, sizes and device numbers: no panic, every archive it
//! accepts to write is read back equal").
//!
//! For arbitrary input, valid or not, the writer must not panic, must accept
//! exactly what an independent model of the rules accepts, and what it
//! writes must read back equal to the model's expectation. The reader must
//! not panic on corrupted archives either.
//!
//! The quick variants run in `cargo test`. The long run is time-boxed:
//!
//! ```text
//! NODEOS_FUZZ_SECS=600 cargo test -p initramfs --release --test fuzz -- --ignored --nocapture
//! ```

mod common;

use common::strategies::arbitrary_specs;
use common::*;
use initramfs::{read_archive, write_archive, Compression, Options};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::time::{Duration, Instant};

/// One fuzz case: writer vs model, then read-back.
fn writer_case(specs: &[Spec], mtime: u32) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let entries = materialize(specs, dir.path());
    let mut out = Vec::new();
    let result = write_archive(
        &entries,
        &Options {
            mtime,
            compression: Compression::None,
        },
        &mut out,
    );
    match (model(specs), result) {
        (Some(want), Ok(stats)) => {
            prop_assert_eq!(stats.entries, want.len());
            prop_assert_eq!(stats.bytes_written, out.len() as u64);
            let read = read_archive(&out).map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
            check_read_back(&read, &want, mtime).map_err(TestCaseError::fail)?;
        }
        (None, Err(e)) => {
            // Refusals must say what is wrong, not just fail.
            let msg = format!("{e:#}");
            prop_assert!(msg.contains("initramfs"), "unhelpful error: {}", msg);
        }
        (Some(_), Err(e)) => prop_assert!(false, "writer refused valid input: {:#}", e),
        (None, Ok(_)) => prop_assert!(false, "writer accepted input the rules forbid"),
    }
    Ok(())
}

/// One reader case: a valid archive with some bytes changed or cut off must
/// give Ok or Err, never a panic (and Ok only for well-formed input).
fn reader_case(archive: &[u8], edits: &[(usize, u8)], cut: usize) -> Result<(), TestCaseError> {
    let mut bytes = archive.to_vec();
    for &(pos, val) in edits {
        if !bytes.is_empty() {
            let i = pos % bytes.len();
            bytes[i] = val;
        }
    }
    bytes.truncate(bytes.len().saturating_sub(cut));
    let _ = read_archive(&bytes);
    Ok(())
}

fn reader_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<(usize, u8)>, usize)> {
    let archive = plausible_archive();
    (
        archive,
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        prop_oneof![3 => Just(0usize), 1 => 0usize..600],
    )
}

/// A small valid archive to corrupt.
fn plausible_archive() -> impl Strategy<Value = Vec<u8>> {
    strategies::plausible_specs("[a-z0-9]{1,6}", "[a-z/]{1,10}").prop_map(|specs| {
        let specs = valid_subset(specs);
        let dir = tempfile::tempdir().unwrap();
        let entries = materialize(&specs, dir.path());
        let mut out = Vec::new();
        write_archive(
            &entries,
            &Options {
                mtime: 7,
                compression: Compression::None,
            },
            &mut out,
        )
        .unwrap();
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn writer_agrees_with_the_model_on_arbitrary_input(specs in arbitrary_specs(), mtime in any::<u32>()) {
        writer_case(&specs, mtime)?;
    }

    #[test]
    fn reader_survives_corruption((archive, edits, cut) in reader_strategy()) {
        reader_case(&archive, &edits, cut)?;
    }

    #[test]
    fn reader_survives_garbage(bytes in prop::collection::vec(any::<u8>(), 0..400), magic in any::<bool>()) {
        let mut bytes = bytes;
        if magic && bytes.len() >= 6 {
            bytes[..6].copy_from_slice(b"070701");
        }
        let _ = read_archive(&bytes);
    }
}

/// The long, time-boxed run: `NODEOS_FUZZ_SECS` seconds (default 60) split
/// between writer and reader cases, in batches with fresh random seeds.
#[test]
#[ignore = "long fuzz run; see the module docs"]
fn fuzz_for_a_while() {
    let secs: u64 = std::env::var("NODEOS_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let batch = Config {
        cases: 500,
        failure_persistence: None,
        ..Config::default()
    };
    let (mut writer_cases, mut reader_cases) = (0u64, 0u64);
    let start = Instant::now();
    while Instant::now() < deadline {
        let mut runner = TestRunner::new(batch.clone());
        runner
            .run(&(arbitrary_specs(), any::<u32>()), |(specs, mtime)| {
                writer_case(&specs, mtime)
            })
            .unwrap_or_else(|e| panic!("writer fuzz failure: {e}"));
        writer_cases += u64::from(batch.cases);
        let mut runner = TestRunner::new(batch.clone());
        runner
            .run(&reader_strategy(), |(a, e, c)| reader_case(&a, &e, c))
            .unwrap_or_else(|e| panic!("reader fuzz failure: {e}"));
        reader_cases += u64::from(batch.cases);
    }
    eprintln!(
        "fuzzed for {:.0?}: {writer_cases} writer cases, {reader_cases} reader cases, no failures",
        start.elapsed()
    );
}
