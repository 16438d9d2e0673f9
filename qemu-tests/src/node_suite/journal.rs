//! The run journal: each test file's result is appended (one JSON line,
//! flushed to disk) the moment its runner line reaches the host, so a run
//! that is cut off (Ctrl-C, the end of a session, a guest crash) keeps every
//! result it got, and the next run with the same inputs runs only the rest.
//!
//! One file per run key, `<key>.jsonl`. Its records, one a line:
//! * `header`: the key and the inputs it is made of (for people);
//! * `session`: a guest boot began;
//! * `facts`: the runner's hello in that boot (the report's guest facts);
//! * `result`: one test file's result, named by its file, not its plan id;
//! * `end`: the boot ended, with its wall time.
//!
//! Only complete lines count: a file whose result line was not written, or
//! was cut in the middle, runs again. What the results mean (the verdicts)
//! is never stored: it is judged again on every run, against the
//! known-failures list as it is then.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use nodeos_build::Key;
use serde::{Deserialize, Serialize};

use super::archive::{ARCHIVE_LAYOUT, RUNNER_JS};
use super::protocol::{GuestFacts, PROTOCOL, RunOutcome, TestResult};
use crate::{Accel, Arch};

/// Bumped when the journal's records change in a way the key's other
/// inputs do not show.
const JOURNAL_FORMAT: u32 = 1;

/// Everything a file's result depends on besides the file itself. The
/// selection (filters, suites) is not part of it: a result is per file, so
/// a wider filter reuses the narrower run's results. The known-failures
/// list is not either: verdicts are judged again every run.
pub struct RunKeyInputs<'a> {
    pub arch: Arch,
    /// sha256 of the node binary under test.
    pub node_sha256: &'a str,
    /// What the test files are from, e.g. `node source sha256 <hex>`.
    pub tests_source: &'a str,
    /// sha256 of the kernel the guest boots.
    pub kernel_sha256: &'a str,
    /// The test tools in the guest ([`super::tools::TestTools::identity`],
    /// or [`super::tools::NO_TOOLS_IDENTITY`]): with a shell, other tests
    /// pass.
    pub tools: &'a str,
    /// Tests at once in the guest: neighbours change timings and load.
    pub jobs: usize,
    /// Per test file, as the runner applies it (after
    /// `NODEOS_TIMEOUT_MULTIPLIER`): it decides what times out.
    pub timeout: Duration,
    /// Guest RAM: tests run side by side, each a node.
    pub memory_mib: u32,
    /// KVM or TCG, resolved: TCG's pace decides what times out.
    pub accel: Accel,
}

/// The run key: a sha256 over labelled, length-prefixed fields (the
/// project's [`Key`]), with the runner's own source and protocol.
pub fn run_key(i: &RunKeyInputs) -> Key {
    let mut k = Key::new("node-test-journal", JOURNAL_FORMAT);
    k.str("arch", i.arch.name())
        .str("node-sha256", i.node_sha256)
        .str("tests-source", i.tests_source)
        .str("kernel-sha256", i.kernel_sha256)
        .str("tools", i.tools)
        .str("protocol", &PROTOCOL.to_string())
        .str("archive-layout", &ARCHIVE_LAYOUT.to_string())
        .str(
            "runner-sha256",
            &nodeos_build::util::sha256_bytes(RUNNER_JS.as_bytes()),
        )
        .str("jobs", &i.jobs.to_string())
        .str("timeout-ms", &i.timeout.as_millis().to_string())
        .str("memory-mib", &i.memory_mib.to_string())
        .str("accel", i.accel.qemu_name());
    k
}

/// One line of the journal. A result's fields are spelled out here rather
/// than taken from the runner's `TestResult`: the journal is kept on disk
/// across runs, and a change of the wire protocol must not change what an
/// older journal line means without the run key noticing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rec", rename_all = "lowercase")]
enum Record {
    Header {
        key: String,
        inputs: Vec<String>,
    },
    Session {
        session: usize,
        /// Seconds since the Unix epoch.
        started: u64,
    },
    Facts {
        session: usize,
        facts: GuestFacts,
    },
    Result {
        session: usize,
        /// How reports name it: `parallel/test-fs-stat.js`.
        file: String,
        /// Host time from the boot's start to this line.
        at_ms: u64,
        outcome: RunOutcome,
        ms: u64,
        exit: Option<i64>,
        signal: Option<String>,
        flags: Vec<String>,
        tail: Vec<String>,
    },
    End {
        session: usize,
        wall_ms: u64,
    },
}

/// What the journal knows of one guest boot.
#[derive(Debug, Clone, Default, PartialEq)]
struct Session {
    facts: Option<GuestFacts>,
    /// From its `end` record; a boot that was cut off has none.
    wall: Option<Duration>,
    /// Host time to its last result.
    last_result: Duration,
}

impl Session {
    /// Its wall time, or for a boot that was cut off, the time up to its
    /// last result (what came after is lost, and reruns).
    fn time(&self) -> Duration {
        self.wall.unwrap_or(self.last_result)
    }
}

/// An open journal: what it held when opened plus what was appended since.
pub struct Journal {
    path: PathBuf,
    file: File,
    key: String,
    results: BTreeMap<String, TestResult>,
    sessions: Vec<Session>,
    /// Results (by file) taken from the file when it was opened.
    loaded: usize,
    /// Lines that were not records, each said once (a partial write when
    /// a run was cut off, or damage).
    pub warnings: Vec<String>,
}

impl Journal {
    /// Opens (creating it if needed) the journal of run key `key` in `dir`.
    /// `fresh`: discards what it holds first.
    pub fn open(dir: &Path, key: &Key, fresh: bool) -> Result<Journal> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let key_hex = key.hex();
        let path = dir.join(format!("{key_hex}.jsonl"));
        if fresh {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("removing {}", path.display()));
                }
            }
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut j = Journal {
            file: OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?,
            path,
            key: key_hex,
            results: BTreeMap::new(),
            sessions: Vec::new(),
            loaded: 0,
            warnings: Vec::new(),
        };
        let complete = j.load(&bytes);
        if complete < bytes.len() {
            // A line cut short: dropped, so the next record starts a line
            // of its own instead of completing a broken one.
            j.file
                .set_len(complete as u64)
                .with_context(|| format!("truncating {}", j.path.display()))?;
        }
        if j.header_missing(&bytes[..complete]) {
            // Not one of ours (or empty): start it over.
            j.file
                .set_len(0)
                .with_context(|| format!("truncating {}", j.path.display()))?;
            j.results.clear();
            j.sessions.clear();
            j.append(&Record::Header {
                key: j.key.clone(),
                inputs: key.inputs.clone(),
            })?;
        }
        j.loaded = j.results.len();
        Ok(j)
    }

    /// Reads `bytes`' complete lines; returns the length of that prefix.
    fn load(&mut self, bytes: &[u8]) -> usize {
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete < bytes.len() {
            self.warnings.push(format!(
                "{}: its last line is incomplete ({} bytes; a run was cut off while writing it): ignored",
                self.path.display(),
                bytes.len() - complete
            ));
        }
        for (n, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Record>(line) {
                Ok(r) => self.take(r),
                Err(e) => self.warnings.push(format!(
                    "{} line {}: not a journal record ({e}): ignored",
                    self.path.display(),
                    n + 1
                )),
            }
        }
        complete
    }

    /// Whether `bytes` lacks our header as its first record.
    fn header_missing(&mut self, bytes: &[u8]) -> bool {
        let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        match serde_json::from_slice::<Record>(first) {
            Ok(Record::Header { key, .. }) if key == self.key => false,
            Ok(Record::Header { key, .. }) => {
                self.warnings.push(format!(
                    "{}: written for run key {key}, not {}: started over",
                    self.path.display(),
                    self.key
                ));
                true
            }
            _ => {
                if !bytes.is_empty() {
                    self.warnings.push(format!(
                        "{}: no journal header on its first line: started over",
                        self.path.display()
                    ));
                }
                true
            }
        }
    }

    /// Session `n` (numbered from 1), added if it is new.
    fn session_mut(&mut self, n: usize) -> &mut Session {
        let n = n.max(1);
        if self.sessions.len() < n {
            self.sessions.resize(n, Session::default());
        }
        &mut self.sessions[n - 1]
    }

    /// Folds one record into the state.
    fn take(&mut self, r: Record) {
        match r {
            Record::Header { .. } => {}
            Record::Session { session, .. } => {
                self.session_mut(session);
            }
            Record::Facts { session, facts } => self.session_mut(session).facts = Some(facts),
            Record::Result {
                session,
                file,
                at_ms,
                outcome,
                ms,
                exit,
                signal,
                flags,
                tail,
            } => {
                let s = self.session_mut(session);
                s.last_result = s.last_result.max(Duration::from_millis(at_ms));
                self.results.insert(
                    file,
                    TestResult {
                        id: 0,
                        outcome,
                        ms,
                        exit,
                        signal,
                        flags,
                        tail,
                    },
                );
            }
            Record::End { session, wall_ms } => {
                self.session_mut(session).wall = Some(Duration::from_millis(wall_ms))
            }
        }
    }

    /// Writes one record as one line and flushes it to the disk, then
    /// folds it into the state.
    fn append(&mut self, r: &Record) -> Result<()> {
        let mut line = serde_json::to_vec(r).expect("a journal record serializes");
        line.push(b'\n');
        // One write of the whole line: a cut leaves at most a partial last
        // line, which `load` drops.
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.take(r.clone());
        Ok(())
    }

    /// A guest boot begins; returns its session number.
    pub fn begin_session(&mut self) -> Result<usize> {
        let session = self.sessions.len() + 1;
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.append(&Record::Session { session, started })?;
        Ok(session)
    }

    pub fn record_facts(&mut self, session: usize, facts: &GuestFacts) -> Result<()> {
        self.append(&Record::Facts {
            session,
            facts: facts.clone(),
        })
    }

    /// `file`'s result (as reports name it), `at` after the boot began.
    pub fn record_result(
        &mut self,
        session: usize,
        file: &str,
        at: Duration,
        r: &TestResult,
    ) -> Result<()> {
        self.append(&Record::Result {
            session,
            file: file.to_owned(),
            at_ms: at.as_millis() as u64,
            outcome: r.outcome,
            ms: r.ms,
            exit: r.exit,
            signal: r.signal.clone(),
            flags: r.flags.clone(),
            tail: r.tail.clone(),
        })
    }

    pub fn end_session(&mut self, session: usize, wall: Duration) -> Result<()> {
        self.append(&Record::End {
            session,
            wall_ms: wall.as_millis() as u64,
        })
    }

    /// The journaled result of `file` (as reports name it), `id` 0.
    pub fn result(&self, file: &str) -> Option<&TestResult> {
        self.results.get(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Results it holds, for any file.
    pub fn result_count(&self) -> usize {
        self.results.len()
    }

    /// Results it held when opened.
    pub fn loaded_count(&self) -> usize {
        self.loaded
    }

    /// Guest boots it has seen.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The summed time of its boots (a boot cut off counts up to its last
    /// result).
    pub fn total_time(&self) -> Duration {
        self.sessions.iter().map(Session::time).sum()
    }

    /// The newest boot's runner facts.
    pub fn last_facts(&self) -> Option<&GuestFacts> {
        self.sessions.iter().rev().find_map(|s| s.facts.as_ref())
    }
}

#[cfg(test)]
mod tests;
