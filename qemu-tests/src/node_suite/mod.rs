//! Node's own test suite inside a booted guest (`cargo xtask node-test`).
//!
//! The pieces, in the order a run uses them:
//! * [`source`]: `test/` out of the very Node source tarball the node was
//!   built from.
//! * [`select`]: the test files of `test/parallel` (and `test/sequential`),
//!   narrowed by `--filter`, and the fixtures they need.
//! * [`expect`]: Node's own status files and our known-failures list for the
//!   version (`node-suite/known-failures/<version>.status`), in Node's
//!   status syntax ([`status`]), each of our entries with a one-word reason.
//! * [`archive`]: a second initramfs with the runner (`node-suite/runner.js`),
//!   its plan and the tests, joined after the image's own archive; the image
//!   is not changed. The kernel command line makes node run the runner.
//! * [`run`]: one boot; the runner's lines ([`protocol`]) read off the
//!   serial console as they come.
//! * [`report`]: verdict per file, summary, pass rate, TAP and JUnit XML.

pub mod archive;
pub mod expect;
pub mod protocol;
pub mod report;
pub mod run;
pub mod select;
pub mod source;
pub mod status;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

pub use expect::{Expectations, NodeBuild};
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
    /// A Node source tree with `test/` (see [`source::extract_tests`]).
    pub source_root: PathBuf,
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

/// Writes the archive, boots, runs, judges.
pub fn run_suite(req: &SuiteRequest, on_event: &mut dyn FnMut(&Event)) -> Result<SuiteReport> {
    let expectations = Expectations::load(&req.source_root, &req.suites, &req.version)?;
    let sel = select_tests(req, &expectations)?;
    if sel.run.is_empty() {
        bail!("no test file to run: every selected file is skipped by a status rule");
    }
    let multiplier = crate::timeout_multiplier()?;
    let plan = archive::GuestPlan {
        jobs: req.jobs,
        timeout: req.timeout.mul_f64(multiplier),
        tests: sel.run.clone(),
    };
    let fixtures = select::fixture_needs(&req.source_root, &sel.run)?;
    std::fs::create_dir_all(&req.work_dir)
        .with_context(|| format!("creating {}", req.work_dir.display()))?;
    let test_archive = archive::write_test_archive(
        &req.source_root,
        &plan,
        fixtures,
        &req.work_dir.join("archive-files"),
        &req.work_dir.join(format!(
            "node-test.cpio{}",
            req.compression.file_extension()
        )),
        req.compression,
    )?;
    let joined = req.work_dir.join("initrd-with-tests");
    archive::append_archive(&req.qemu.initrd, &test_archive.path, &joined)?;

    let mut cfg = req.qemu.clone();
    cfg.initrd = joined;
    // `quiet`: kernel messages would otherwise land between runner lines.
    cfg.append_extra = format!("quiet {}", archive::kernel_args());
    // The harness multiplies its own waits; the runner's timeout already is.
    let run = run::run_guest(&cfg, req.timeout, on_event)?;

    let host = expect::host_vars(req.qemu.arch, req.build);
    let vars = match &run.facts {
        Some(f) => expect::guest_vars(&host, f),
        None => host,
    };
    let mut files = Vec::new();
    let mut results = run.results;
    for (id, t) in sel.run.iter().enumerate() {
        let expected = expectations.expected(t, &vars);
        files.push(report::FileReport::judge(
            t.clone(),
            results.remove(&id),
            expected,
        ));
    }
    for (t, why) in sel.skipped {
        files.push(report::FileReport::skipped(t, why));
    }
    files.sort_by(|a, b| a.test.cmp(&b.test));
    let node_label = match &run.facts {
        Some(f) if f.version.trim_start_matches('v') != req.version => format!(
            "{}, {} — NOT the version the tests are from ({})",
            req.node_label, f.version, req.version
        ),
        Some(f) => format!("{}, {}", req.node_label, f.version),
        None => req.node_label.clone(),
    };
    Ok(SuiteReport {
        arch: req.qemu.arch,
        node_label,
        facts: run.facts,
        files,
        end: run.end,
        wall: run.wall,
        boot: run.boot,
        log_path: run.log_path,
        archive_bytes: test_archive.stats.bytes_written,
        archive_uncompressed: test_archive.stats.bytes_uncompressed,
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
