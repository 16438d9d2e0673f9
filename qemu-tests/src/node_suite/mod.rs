//! Node's own test suite inside a booted guest (`cargo xtask node-test`).
//!
//! The pieces, in the order a run uses them:
//! * the source: the very tree the node was built from, patches applied
//!   (node-static's node-source phase), or for the CI stand-in `test/`
//!   out of its tarball ([`source`]).
//! * [`select`]: the test files of `test/parallel` (and `test/sequential`),
//!   narrowed by `--filter`, and the fixtures they need.
//! * [`outside`]: the files of the source tree outside `test/` that the
//!   selected tests read, packed from the same tree when it has them.
//! * [`expect`]: Node's own status files and our known-failures list for the
//!   version (`node-suite/known-failures/<version>.status`), in Node's
//!   status syntax ([`status`]), each of our entries with a one-word reason.
//! * [`journal`]: each result appended to a file per run key as it comes;
//!   a later run with the same key runs only the files it lacks.
//! * [`archive`]: a second initramfs with the runner (`node-suite/runner.js`),
//!   its plan and the tests, joined after the image's own archive; the image
//!   is not changed. The kernel command line makes node run the runner.
//! * [`tools`]: a pinned static busybox with the POSIX commands Node's
//!   tests run (`/bin/sh`, `env`, `cat`...), in an archive of its own joined
//!   after the tests' (the test environment's, never the image's).
//! * [`run`]: one boot; the runner's lines ([`protocol`]) read off the
//!   serial console as they come.
//! * [`report`]: verdict per file, summary, pass rate, TAP and JUnit XML.

pub mod archive;
pub mod expect;
pub mod journal;
pub mod outside;
pub mod protocol;
pub mod report;
pub mod run;
pub mod select;
pub mod source;
pub mod status;
pub mod tools;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

pub use expect::{Expectations, NodeBuild};
pub use journal::Journal;
pub use protocol::Event;
pub use report::{SuiteReport, Verdict};
pub use select::{Filter, Suite, TestFile};

use crate::QemuConfig;

/// tools/test.py's default timeout per test file (`--timeout 120`) for a
/// release build on x86; TCG runs far slower than the hardware it assumes,
/// hence [`DEFAULT_TCG_TIMEOUT_FACTOR`].
pub const TEST_PY_TIMEOUT: Duration = Duration::from_secs(120);
/// The factor applied to [`TEST_PY_TIMEOUT`] by default.
pub const DEFAULT_TCG_TIMEOUT_FACTOR: u32 = 3;

/// What [`SuiteRequest::source_root`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// The whole tree the node was built from: the files outside `test/`
    /// that tests read are packed from it ([`outside`]).
    Whole,
    /// Only `test/` (the CI stand-in's, a tree of a test's own making):
    /// only `test/` is packed.
    TestsOnly,
}

/// Everything one arch's run needs.
pub struct SuiteRequest {
    /// The kernel, the image's initramfs (`initrd`), memory, log place and
    /// accelerator; `initrd` and `append_extra` are replaced for the run.
    pub qemu: QemuConfig,
    pub build: NodeBuild,
    /// E.g. "NodeOS static node" or "Debian's node (stand-in)".
    pub node_label: String,
    /// The version the tests are from, e.g. `18.20.4`.
    pub version: String,
    /// A Node source tree with `test/`.
    pub source_root: PathBuf,
    pub source_kind: SourceKind,
    pub suites: Vec<Suite>,
    pub filter: Filter,
    /// Exactly these files (`parallel/test-x.js`), e.g. the CI subset;
    /// every one must exist.
    pub only: Option<Vec<String>>,
    pub jobs: usize,
    /// Per test file, before `NODEOS_TIMEOUT_MULTIPLIER`.
    pub timeout: Duration,
    /// Where the plan, the test archive and the joined initrd go.
    pub work_dir: PathBuf,
    pub compression: initramfs::Compression,
    /// The POSIX tools joined after the test archive; `None` runs the tests
    /// on the bare image.
    pub tools: Option<tools::TestTools>,
}

impl SuiteRequest {
    /// The timeout per test file the runner applies: [`Self::timeout`]
    /// times `NODEOS_TIMEOUT_MULTIPLIER`.
    pub fn runner_timeout(&self) -> Result<Duration> {
        Ok(self.timeout.mul_f64(crate::timeout_multiplier()?))
    }
}

/// The files a request selects, in order, and those skipped by a status
/// rule (with why).
pub struct Selection {
    pub run: Vec<TestFile>,
    pub skipped: Vec<(TestFile, String)>,
}

/// Lists, filters and splits into run/skip.
pub fn select_tests(req: &SuiteRequest, expectations: &Expectations) -> Result<Selection> {
    let mut all = Vec::new();
    for &suite in &req.suites {
        all.extend(select::list(&req.source_root, suite)?);
    }
    if let Some(only) = &req.only {
        let mut picked = Vec::new();
        for name in only {
            match all.iter().find(|t| &t.name() == name) {
                Some(t) => picked.push(t.clone()),
                None => bail!(
                    "{name} is not a test file of {} in {}",
                    req.suites
                        .iter()
                        .map(|s| s.dir())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    req.source_root.join("test").display()
                ),
            }
        }
        all = picked;
    }
    let unused = req.filter.unused(&all);
    if !unused.is_empty() {
        bail!(
            "--filter {} matches no test file of {}: give globs such as 'test-fs-*' or 'parallel/test-http2-*'",
            unused.join(", "),
            req.suites
                .iter()
                .map(|s| s.dir())
                .collect::<Vec<_>>()
                .join(" + ")
        );
    }
    let host = expect::host_vars(req.qemu.arch, req.build);
    let mut sel = Selection {
        run: Vec::new(),
        skipped: Vec::new(),
    };
    for t in all.into_iter().filter(|t| req.filter.keeps(t)) {
        match expectations.plan(&t, &host) {
            expect::Plan::Run => sel.run.push(t),
            expect::Plan::Skip(why) => sel.skipped.push((t, why)),
        }
    }
    Ok(sel)
}

/// What one run does: the selection, and which of its files run in the
/// guest now (those the journal has no result for).
pub struct RunPlan {
    expectations: Expectations,
    pub selection: Selection,
    /// Files of `selection.run` whose results the journal already holds.
    pub journaled: usize,
    /// Files that go into the guest, in plan order (id = index).
    pub to_run: Vec<TestFile>,
}

/// Selects the request's files and leaves out those `journal` holds a
/// result for.
pub fn plan_run(req: &SuiteRequest, journal: Option<&Journal>) -> Result<RunPlan> {
    let expectations = Expectations::load(&req.source_root, &req.suites, &req.version)?;
    let selection = select_tests(req, &expectations)?;
    if selection.run.is_empty() {
        bail!("no test file to run: every selected file is skipped by a status rule");
    }
    let to_run: Vec<TestFile> = selection
        .run
        .iter()
        .filter(|t| journal.is_none_or(|j| j.result(&t.name()).is_none()))
        .cloned()
        .collect();
    Ok(RunPlan {
        expectations,
        journaled: selection.run.len() - to_run.len(),
        selection,
        to_run,
    })
}

/// Writes the archive, boots, runs, judges: [`plan_run`] then
/// [`run_plan`], without a journal.
pub fn run_suite(req: &SuiteRequest, on_event: &mut dyn FnMut(&Event)) -> Result<SuiteReport> {
    run_plan(req, plan_run(req, None)?, None, on_event)
}

/// What one boot gave.
struct Boot {
    run: run::GuestRun,
    archive: initramfs::WriteStats,
    /// By file name (`parallel/test-x.js`).
    results: BTreeMap<String, protocol::TestResult>,
    journal_error: Option<String>,
}

/// Runs `plan.to_run` in one boot (none when it is empty), appending each
/// result to `journal` as it comes, and judges the whole selection: the
/// results of this boot and the journal's.
pub fn run_plan(
    req: &SuiteRequest,
    plan: RunPlan,
    mut journal: Option<&mut Journal>,
    on_event: &mut dyn FnMut(&Event),
) -> Result<SuiteReport> {
    let outside = match req.source_kind {
        SourceKind::Whole => {
            let listing = outside::Listing::of_tree(&req.source_root)?;
            let needs = outside::needs(&req.source_root, &listing, &plan.selection.run)?;
            Some((listing, needs))
        }
        SourceKind::TestsOnly => None,
    };
    let boot = if plan.to_run.is_empty() {
        None
    } else {
        let packed = match &outside {
            Some((listing, needs)) => {
                let wanted = plan
                    .to_run
                    .iter()
                    .filter_map(|t| needs.get(&t.name()))
                    .flat_map(|n| n.present.iter().cloned())
                    .collect();
                source::with_requires(&req.source_root, listing, &wanted)
            }
            None => Default::default(),
        };
        Some(boot_and_run(
            req,
            &plan.to_run,
            &packed,
            journal.as_deref_mut(),
            on_event,
        )?)
    };
    let facts = match &boot {
        Some(b) => b.run.facts.clone(),
        None => journal.as_deref().and_then(|j| j.last_facts().cloned()),
    };
    let host = expect::host_vars(req.qemu.arch, req.build);
    let vars = match &facts {
        Some(f) => expect::guest_vars(&host, f),
        None => host,
    };
    let mut files = Vec::new();
    for (id, t) in plan.selection.run.iter().enumerate() {
        let name = t.name();
        let result = boot
            .as_ref()
            .and_then(|b| b.results.get(&name))
            .or_else(|| journal.as_deref().and_then(|j| j.result(&name)))
            .map(|r| protocol::TestResult { id, ..r.clone() });
        let expected = plan.expectations.expected(t, &vars);
        let mut file = report::FileReport::judge(t.clone(), result, expected);
        if let Some(n) = outside.as_ref().and_then(|(_, needs)| needs.get(&name)) {
            file.lacks = n.lacking.iter().cloned().collect();
        }
        files.push(file);
    }
    for (t, why) in plan.selection.skipped {
        files.push(report::FileReport::skipped(t, why));
    }
    files.sort_by(|a, b| a.test.cmp(&b.test));
    let node_label = match &facts {
        Some(f) if f.version.trim_start_matches('v') != req.version => format!(
            "{}, {} — NOT the version the tests are from ({})",
            req.node_label, f.version, req.version
        ),
        Some(f) => format!("{}, {}", req.node_label, f.version),
        None => req.node_label.clone(),
    };
    let journal = journal.map(|j| report::JournalUse {
        path: j.path().to_owned(),
        resumed: plan.journaled,
        results: j.result_count(),
        sessions: j.session_count(),
        total_time: j.total_time(),
        write_error: boot.as_ref().and_then(|b| b.journal_error.clone()),
    });
    Ok(match boot {
        Some(b) => SuiteReport {
            arch: req.qemu.arch,
            node_label,
            facts,
            files,
            end: b.run.end,
            booted: true,
            wall: b.run.wall,
            boot: b.run.boot,
            log_path: b.run.log_path,
            archive_bytes: b.archive.bytes_written,
            archive_uncompressed: b.archive.bytes_uncompressed,
            journal,
        },
        None => SuiteReport {
            arch: req.qemu.arch,
            node_label,
            facts,
            files,
            end: report::RunEnd::Done,
            booted: false,
            wall: Duration::ZERO,
            boot: None,
            log_path: req.qemu.log_path(),
            archive_bytes: 0,
            archive_uncompressed: 0,
            journal,
        },
    })
}

/// Packs `to_run`, boots, and collects the results, journaling each.
fn boot_and_run(
    req: &SuiteRequest,
    to_run: &[TestFile],
    outside: &std::collections::BTreeSet<String>,
    mut journal: Option<&mut Journal>,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Boot> {
    let plan = archive::GuestPlan {
        jobs: req.jobs,
        timeout: req.runner_timeout()?,
        tests: to_run.to_vec(),
    };
    let fixtures = select::fixture_needs(&req.source_root, to_run)?;
    std::fs::create_dir_all(&req.work_dir)
        .with_context(|| format!("creating {}", req.work_dir.display()))?;
    let test_archive = archive::write_test_archive(
        &req.source_root,
        &plan,
        fixtures,
        outside,
        &req.work_dir.join("archive-files"),
        &req.work_dir.join(format!(
            "node-test.cpio{}",
            req.compression.file_extension()
        )),
        req.compression,
    )?;
    let mut archive_stats = test_archive.stats;
    let mut extras = vec![test_archive.path.clone()];
    if let Some(t) = &req.tools {
        let tools_archive = req.work_dir.join(format!(
            "test-tools.cpio{}",
            req.compression.file_extension()
        ));
        let stats = tools::write_archive(t, &tools_archive, req.compression)?;
        archive_stats.bytes_written += stats.bytes_written;
        archive_stats.bytes_uncompressed += stats.bytes_uncompressed;
        archive_stats.entries += stats.entries;
        extras.push(tools_archive);
    }
    let joined = req.work_dir.join("initrd-with-tests");
    let extras: Vec<&Path> = extras.iter().map(PathBuf::as_path).collect();
    archive::append_archives(&req.qemu.initrd, &extras, &joined)?;

    let mut cfg = req.qemu.clone();
    cfg.initrd = joined;
    // `quiet`: kernel messages would otherwise land between runner lines.
    cfg.append_extra = format!("quiet {}", archive::kernel_args());

    let session = match journal.as_deref_mut() {
        Some(j) => Some(j.begin_session()?),
        None => None,
    };
    let launched = Instant::now();
    let mut journal_error = None;
    // The harness multiplies its own waits; the runner's timeout already is.
    let run = run::run_guest(&cfg, req.timeout, &mut |ev| {
        if let (Some(j), Some(session)) = (journal.as_deref_mut(), session) {
            let written = match ev {
                Event::Hello(f) => j.record_facts(session, f),
                Event::Result(r) => match to_run.get(r.id) {
                    Some(t) => j.record_result(session, &t.name(), launched.elapsed(), r),
                    None => Ok(()),
                },
                _ => Ok(()),
            };
            if let Err(e) = written {
                journal_error.get_or_insert(format!("{e:#}"));
            }
        }
        on_event(ev)
    })?;
    if let (Some(j), Some(session)) = (journal, session)
        && let Err(e) = j.end_session(session, run.wall)
    {
        journal_error.get_or_insert(format!("{e:#}"));
    }
    let results = run
        .results
        .iter()
        .filter_map(|(id, r)| to_run.get(*id).map(|t| (t.name(), r.clone())))
        .collect();
    Ok(Boot {
        run,
        archive: archive_stats,
        results,
        journal_error,
    })
}

/// The fixed subset CI runs (`node-suite/ci-subset.txt`): names such as
/// `parallel/test-x.js`, one a line, `#` comments.
pub fn ci_subset() -> Vec<String> {
    parse_name_list(include_str!("../../node-suite/ci-subset.txt"))
}

fn parse_name_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The per-test timeout for a factor over tools/test.py's.
pub fn timeout_for_factor(factor: u32) -> Duration {
    TEST_PY_TIMEOUT * factor.max(1)
}

/// Whether `dir` holds an extracted test tree.
pub fn has_test_tree(dir: &Path) -> bool {
    dir.join("test").join("common").join("index.js").is_file()
}
