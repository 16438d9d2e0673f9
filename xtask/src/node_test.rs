//! `cargo xtask node-test`: Node's own tests (`test/parallel`, optionally
//! `test/sequential`) inside the booted guest, per arch, judged against
//! the known-failures list; summary, TAP, JUnit, and a summary file that
//! `bench` reads. The work is in `qemu_tests::node_suite`.

use crate::Common;
use anyhow::{bail, Context, Result};
use clap::Args;
use nodeos_build::fetch;
use nodeos_build::util::{sha256_file, write_atomic};
use nodeos_build::{Arch, Env};
use qemu_tests::node_suite::{
    self, journal, protocol::RunOutcome, Event, Filter, Journal, NodeBuild, SourceKind, Suite,
    SuiteReport, SuiteRequest,
};
use qemu_tests::QemuConfig;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Tests at once in the guest when `--jobs` is not given: the guest has one
/// CPU, and a second test overlaps the first one's waits.
const DEFAULT_GUEST_JOBS: usize = 2;

#[derive(Args)]
pub struct NodeTestArgs {
    /// The node to test: the path of a static node binary, or the Node
    /// version this tree builds [default: the node `cargo xtask node` built]
    #[arg(long, value_name = "VERSION|PATH")]
    pub node: Option<String>,
    /// Only test files matching GLOB, e.g. 'test-fs-*' or 'parallel/test-http2-*' (repeatable)
    #[arg(long = "filter", value_name = "GLOB")]
    pub filter: Vec<String>,
    /// Also run test/sequential, one file at a time after test/parallel
    #[arg(long)]
    pub sequential: bool,
    /// Only the fixed CI subset (qemu-tests/node-suite/ci-subset.txt)
    #[arg(long, conflicts_with_all = ["filter", "sequential"])]
    pub ci_subset: bool,
    /// Timeout per test file, in multiples of tools/test.py's 120 s (TCG is slow)
    #[arg(long, value_name = "N", default_value_t = node_suite::DEFAULT_TCG_TIMEOUT_FACTOR)]
    pub timeout_factor: u32,
    /// Write the results as TAP (version 13) to FILE
    #[arg(long, value_name = "FILE")]
    pub tap: Option<PathBuf>,
    /// Write the results as JUnit XML to FILE
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Use this bzImage instead of building the kernel
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Guest memory in MiB (tests run side by side, each a node)
    #[arg(long, default_value_t = 1024)]
    pub memory: u32,
    /// Fail when fewer of the files not on the known-failures list pass (percent)
    #[arg(long, value_name = "PERCENT", default_value_t = 95.0)]
    pub min_pass_rate: f64,
    /// Leave out the POSIX tools (a static busybox as /bin/sh, env, cat,
    /// grep...) that the test archive carries by default: the tests then
    /// see the bare image, node and /dev/console only
    #[arg(long)]
    pub no_tools: bool,
    /// Discard the journal of earlier runs with the same node, tests, kernel,
    /// jobs, timeout, memory and accelerator, and run every selected file
    #[arg(long)]
    pub fresh: bool,
}

/// The node one arch runs, with what the report says about it.
struct NodeUnderTest {
    path: PathBuf,
    version: String,
    /// The initramfs phase's dependency key.
    key: String,
    label: String,
}

pub fn run(common: &Common, a: NodeTestArgs) -> Result<()> {
    let env = common.env()?;
    nodeos_build::host::require("node-test", &[nodeos_build::host::Need::Qemu])?;
    if !(0.0..=100.0).contains(&a.min_pass_rate) {
        bail!(
            "--min-pass-rate {} is not a percentage: give 0 to 100",
            a.min_pass_rate
        );
    }
    let jobs = common.jobs.unwrap_or(DEFAULT_GUEST_JOBS).max(1);
    let mut reports = Vec::new();
    let mut problems = Vec::new();
    for arch in common.arches() {
        let report = run_arch(&env, &a, arch, jobs)?;
        println!("{}", report.failures_text());
        println!("{report}");
        if let Err(e) = judge(&report, a.min_pass_rate) {
            problems.push(e);
        }
        write_summary(&env, &report, &a)?;
        reports.push(report);
    }
    if let Some(path) = &a.tap {
        write_atomic(path, node_suite::report::tap(&reports).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &a.junit {
        write_atomic(path, node_suite::report::junit(&reports).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if !problems.is_empty() {
        bail!("node-test failed:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

/// Why a report fails the command, if it does.
fn judge(r: &SuiteReport, min_pass_rate: f64) -> std::result::Result<(), String> {
    use node_suite::report::RunEnd;
    match &r.end {
        RunEnd::Done => {}
        RunEnd::RunnerError(m) => return Err(format!("{}: the runner failed: {m}", r.arch)),
        RunEnd::GuestFailed(m) => {
            let kept = match &r.journal {
                Some(j) => format!(
                    "; the {} results that came are kept in {}: run the same command again to run only the rest",
                    r.files.iter().filter(|f| f.result.is_some()).count() - j.resumed,
                    j.path.display()
                ),
                None => String::new(),
            };
            return Err(format!(
                "{}: the guest stopped before the runner finished: {} (console log: {}){kept}",
                r.arch,
                m.lines().next().unwrap_or(""),
                r.log_path.display()
            ));
        }
    }
    if let Some(e) = r.journal.as_ref().and_then(|j| j.write_error.as_ref()) {
        return Err(format!(
            "{}: writing the journal failed ({e}): this run's results are reported above but will run again next time",
            r.arch
        ));
    }
    match r.counts().pass_rate() {
        Some(rate) if rate + 1e-9 < min_pass_rate => Err(format!(
            "{}: pass rate {rate:.1}% is below {min_pass_rate}% (failures listed above)",
            r.arch
        )),
        _ => Ok(()),
    }
}

fn run_arch(env: &Env, a: &NodeTestArgs, arch: Arch, jobs: usize) -> Result<SuiteReport> {
    let node = node_under_test(env, a.node.as_deref(), arch)?;
    let tests = test_tree(env, &node.version)?;
    let bzimage = match &a.kernel {
        Some(p) => {
            kernel::check_user_bzimage_for(p, arch)?;
            p.clone()
        }
        None => kernel::build(env, arch)?.bzimage,
    };
    let node_sha = sha256_file(&node.path)?;
    let ird = crate::image::build_initramfs(env, arch, &node.path, &node.key, &node_sha, None)?;
    let initramfs = ird.dir.join(crate::image::initramfs_file_name());

    let mut qemu = QemuConfig::new(arch, &bzimage, &initramfs, &env.project_root.join("target"));
    qemu.log_dir = env.log_dir(Some(arch));
    qemu.log_name = "node-test.log".into();
    qemu.memory_mib = a.memory;
    let mut suites = vec![Suite::Parallel];
    if a.sequential {
        suites.push(Suite::Sequential);
    }
    let req = SuiteRequest {
        qemu,
        build: NodeBuild::Nodeos,
        node_label: node.label.clone(),
        version: node.version.clone(),
        source_root: tests.root,
        source_kind: SourceKind::Whole,
        suites,
        filter: Filter::new(&a.filter)?,
        only: a.ci_subset.then(node_suite::ci_subset),
        jobs,
        timeout: node_suite::timeout_for_factor(a.timeout_factor),
        work_dir: env.artifact_dir(arch).join("node-test"),
        compression: initramfs::DEFAULT_COMPRESSION,
        tools: if a.no_tools {
            None
        } else {
            Some(node_suite::tools::fetch(env, arch)?)
        },
    };
    let tools_identity = req
        .tools
        .as_ref()
        .map_or(node_suite::tools::NO_TOOLS_IDENTITY.to_owned(), |t| {
            t.identity()
        });
    let key = journal::run_key(&journal::RunKeyInputs {
        arch,
        node_sha256: &node_sha,
        tests_source: &format!("node source tree {}", tests.output.key),
        kernel_sha256: &sha256_file(&bzimage)?,
        tools: &tools_identity,
        jobs,
        timeout: req.runner_timeout()?,
        memory_mib: a.memory,
        accel: qemu_tests::AccelChoice::resolve(req.qemu.accel)?.accel,
    });
    let mut journal = Journal::open(&journal_dir(env, arch), &key, a.fresh)?;
    for w in &journal.warnings {
        eprintln!("warning: {w}");
    }
    let plan = node_suite::plan_run(&req, Some(&journal))?;
    let selected = plan.selection.run.len();
    if plan.journaled > 0 {
        eprintln!(
            "node-test {arch}: resuming: {} of {selected} files already run (journal {}); running {}{}",
            plan.journaled,
            journal.path().display(),
            plan.to_run.len(),
            if plan.to_run.is_empty() {
                ": no guest boots, the report is the journal's (--fresh runs everything again)"
            } else {
                " (--fresh runs everything again)"
            }
        );
    } else {
        eprintln!(
            "node-test {arch}: {selected} files; results are journaled in {} as they come",
            journal.path().display()
        );
    }
    if !plan.to_run.is_empty() {
        eprintln!(
            "node-test {arch}: {} with Node {}'s tests, {jobs} at a time, {}; console log {}",
            node.label,
            node.version,
            match &req.tools {
                Some(t) => format!("POSIX tools from busybox {} (test archive only)", t.version),
                None => "no POSIX tools (--no-tools)".to_owned(),
            },
            req.qemu.log_path().display()
        );
    }
    let mut progress = Progress::new(arch);
    node_suite::run_plan(&req, plan, Some(&mut journal), &mut |ev| progress.event(ev))
}

/// Where each arch's journals go, one file per run key.
fn journal_dir(env: &Env, arch: Arch) -> PathBuf {
    env.target_dir.join("node-test").join(arch.name())
}

/// Prints a count now and then: files done in this boot, the pace, the
/// time left at that pace, and how many did not pass (known failures are
/// sorted out in the report at the end).
struct Progress {
    arch: Arch,
    planned: usize,
    done: usize,
    failed: usize,
    skipped: usize,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(arch: Arch) -> Progress {
        Progress {
            arch,
            planned: 0,
            done: 0,
            failed: 0,
            skipped: 0,
            started: Instant::now(),
            last: Instant::now(),
        }
    }

    fn event(&mut self, ev: &Event) {
        match ev {
            Event::Hello(f) => {
                self.planned = f.tests;
                self.started = Instant::now();
                eprintln!(
                    "  {}: runner up: node {} ({}) as pid {}; /proc {}, /dev/null {}, /tmp {}, /bin/sh {}, loopback {}, localhost {}, ICU {}",
                    self.arch,
                    f.version,
                    f.arch,
                    f.pid,
                    yes_no(f.proc),
                    yes_no(f.devnull),
                    yes_no(f.tmp),
                    yes_no(f.sh),
                    yes_no(f.loopback),
                    yes_no(f.localhost),
                    f.icu
                );
            }
            Event::Result(r) => {
                self.done += 1;
                match r.outcome {
                    RunOutcome::Pass => {}
                    RunOutcome::Skip => self.skipped += 1,
                    _ => self.failed += 1,
                }
                if self.last.elapsed().as_secs() >= 30 || self.done == self.planned {
                    self.last = Instant::now();
                    eprintln!("  {}", self.line(self.started.elapsed()));
                }
            }
            Event::Start { .. } | Event::Done { .. } | Event::Error { .. } => {}
        }
    }

    /// `x86_64: 270/3290 files (10.8/min, about 4h 40m left), 2 did not
    /// pass (known failures included), 3 skipped`.
    fn line(&self, elapsed: Duration) -> String {
        let per_min = self.done as f64 / elapsed.as_secs_f64().max(1.0) * 60.0;
        let left = self.planned.saturating_sub(self.done);
        let pace = if self.done == 0 || left == 0 {
            format!("{per_min:.1}/min")
        } else {
            let secs = left as f64 / per_min * 60.0;
            format!(
                "{per_min:.1}/min, about {} left",
                nodeos_build::util::fmt_duration(Duration::from_secs(
                    (secs / 60.0).round() as u64 * 60
                ))
            )
        };
        format!(
            "{}: {}/{} files ({pace}), {} did not pass (known failures included), {} skipped",
            self.arch, self.done, self.planned, self.failed, self.skipped
        )
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The node `--node` names, or the one the node phase built. Never builds
/// a node: without one it says what to do.
fn node_under_test(env: &Env, node: Option<&str>, arch: Arch) -> Result<NodeUnderTest> {
    let is_path = |p: &str| Path::new(p).exists() || p.contains('/');
    let nv = match node {
        Some(v) if !is_path(v) => {
            let v = v.trim_start_matches('v');
            node_static::version(v.split('.').next().unwrap_or(v))?
        }
        _ => node_static::default_version(),
    };
    let built_version = fetch::choose(env, &nv.manifest, "node")?.main.version;
    match node {
        Some(p) if Path::new(p).exists() || p.contains('/') => {
            let path = Path::new(p)
                .canonicalize()
                .with_context(|| format!("--node {p}: no such file"))?;
            nodeos_build::elf::check_static(&path, arch).with_context(|| {
                format!("--node {p}: the guest's init must be a static {arch} executable")
            })?;
            let version = binary_version(&path)?;
            let sha = sha256_file(&path)?;
            Ok(NodeUnderTest {
                label: format!("node {}", path.display()),
                key: format!("user-node-{sha}"),
                path,
                version,
            })
        }
        Some(v)
            if v.trim_start_matches('v') != nv.major
                && v.trim_start_matches('v') != built_version =>
        {
            bail!(
            "--node {v}: this tree builds Node {built_version} for major {}; give that version, or the path of a static node binary",
            nv.major
        )
        }
        _ => match node_static::published(env, arch, nv)? {
            Some(n) => Ok(NodeUnderTest {
                label: "NodeOS static node".into(),
                key: n.output.key.clone(),
                path: n.node,
                version: n.version,
            }),
            None => bail!(
                "NO STATIC NODE FOR {arch}: node-test tests the node `cargo xtask node --arch {}` builds (≈ 1 h 10 min on 2 cores), and it is not built yet; build it, or give one with --node PATH",
                arch.name()
            ),
        },
    }
}

/// `process.versions.node` of a node binary, by running it here (static
/// i686 and x86_64 binaries run on an x86_64 host).
fn binary_version(path: &Path) -> Result<String> {
    let out = std::process::Command::new(path)
        .args(["-p", "process.versions.node"])
        .output()
        .with_context(|| format!("running {} to learn its version", path.display()))?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || v.is_empty() {
        bail!(
            "{} -p process.versions.node failed ({}): is it a node binary this host can run?",
            path.display(),
            out.status
        );
    }
    Ok(v)
}

/// The source tree Node `version` was built from, patches applied
/// (node-static's node-source phase: prepared once, then cached).
fn test_tree(env: &Env, version: &str) -> Result<node_static::source_tree::SourceTree> {
    let major = version.split('.').next().unwrap_or(version);
    let nv = node_static::version(major)?;
    let chosen = fetch::choose(env, &nv.manifest, "node")?;
    if chosen.main.version != version {
        bail!(
            "no source of Node {version} is declared in node-static/{{versions,sources}}.toml (it has {}): the tests must come from the node's own source",
            chosen.main.version
        );
    }
    node_static::source_tree::build(env, nv)
}

/// The last run's figures per arch, for `bench`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub arch: String,
    pub node: String,
    pub selection: String,
    pub files: usize,
    /// Per verdict; flattened so the file keeps one level of fields.
    #[serde(flatten)]
    pub counts: node_suite::report::Counts,
    pub pass_rate: Option<f64>,
    /// This run's guest time (0 when the journal held every result).
    pub wall_secs: f64,
    /// Files whose results came from the journal (earlier runs).
    #[serde(default)]
    pub from_journal: usize,
    /// The files that ran (a test that skipped itself ran; one a SKIP rule
    /// left out did not).
    #[serde(default)]
    pub ran: usize,
    /// The journal's guest boots, this run's included, and their summed time.
    #[serde(default)]
    pub journal_sessions: usize,
    #[serde(default)]
    pub journal_secs: f64,
    pub jobs: usize,
    pub completed: bool,
}

fn summary_path(env: &Env, arch: Arch) -> PathBuf {
    env.artifact_dir(arch)
        .join("node-test")
        .join("summary.json")
}

fn write_summary(env: &Env, r: &SuiteReport, a: &NodeTestArgs) -> Result<()> {
    let c = r.counts();
    let selection = if a.ci_subset {
        "CI subset".to_owned()
    } else {
        let mut s = String::from("test/parallel");
        if a.sequential {
            s.push_str(" + test/sequential");
        }
        if !a.filter.is_empty() {
            s.push_str(&format!(" matching {}", a.filter.join(", ")));
        }
        s
    };
    let s = Summary {
        arch: r.arch.name().into(),
        node: r.node_label.clone(),
        selection,
        files: r.files.len(),
        counts: c,
        pass_rate: c.pass_rate(),
        wall_secs: r.wall.as_secs_f64(),
        from_journal: r.journal.as_ref().map_or(0, |j| j.resumed),
        ran: r.files.iter().filter(|f| f.result.is_some()).count(),
        journal_sessions: r.journal.as_ref().map_or(0, |j| j.sessions),
        journal_secs: r
            .journal
            .as_ref()
            .map_or(0.0, |j| j.total_time.as_secs_f64()),
        jobs: r.facts.as_ref().map(|f| f.jobs).unwrap_or(0),
        completed: r.end == node_suite::report::RunEnd::Done,
    };
    let path = summary_path(env, r.arch);
    write_atomic(&path, serde_json::to_string_pretty(&s)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The time of a run; of a resumed one, its journal's summed time with
/// this run's share.
fn time_cell(s: &Summary) -> String {
    let d = |secs: f64| nodeos_build::util::fmt_duration(std::time::Duration::from_secs_f64(secs));
    if s.from_journal == 0 {
        d(s.wall_secs)
    } else {
        format!(
            "{} over {} guest boots, this run {} ({} of {} files resumed from the journal)",
            d(s.journal_secs),
            s.journal_sessions,
            d(s.wall_secs),
            s.from_journal,
            s.ran
        )
    }
}

/// The heading of the section [`bench_section`] writes in BENCHMARKS.md.
pub const SECTION: &str = "## Node's own tests (last `cargo xtask node-test`)";

/// `bench --node-test`: prints the section and, with `write`, replaces it
/// in BENCHMARKS.md.
pub fn bench_run(env: &Env, arches: &[Arch], write: bool) -> Result<()> {
    let md = bench_section(env, arches);
    print!("{md}");
    if write {
        let path = env.project_root.join("BENCHMARKS.md");
        let body = md
            .strip_prefix(SECTION)
            .expect("the section starts with its heading")
            .trim_start_matches('\n');
        crate::model_report::write_section_headed(&path, SECTION, body)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The BENCHMARKS.md section: the last node-test run per arch.
pub fn bench_section(env: &Env, arches: &[Arch]) -> String {
    let mut md = format!("{SECTION}\n\n| arch | node | files | passed | failed | known failures | skipped | pass rate | time | jobs |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for &arch in arches {
        let s: Option<Summary> = std::fs::read(summary_path(env, arch))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match s {
            Some(s) => md.push_str(&format!(
                "| {arch} | {} ({}{}) | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                s.node,
                s.selection,
                if s.completed { "" } else { ", INCOMPLETE" },
                s.files,
                s.counts.passed,
                s.counts.failed + s.counts.no_result,
                s.counts.expected_failures + s.counts.unexpected_passes,
                s.counts.skipped,
                s.pass_rate
                    .map(|r| format!("{r:.1}%"))
                    .unwrap_or("-".into()),
                time_cell(&s),
                s.jobs
            )),
            None => md.push_str(&format!(
                "| {arch} | not run: `cargo xtask node-test --arch {}` | | | | | | | | |\n",
                arch.name()
            )),
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_counts_failures_and_skips_apart_and_says_the_time_left() {
        let mut p = Progress::new(Arch::X86_64);
        p.planned = 300;
        p.done = 100;
        p.failed = 2;
        p.skipped = 3;
        assert_eq!(
            p.line(Duration::from_secs(600)),
            "x86_64: 100/300 files (10.0/min, about 20m 00s left), 2 did not pass (known failures included), 3 skipped"
        );
        p.done = 300;
        assert_eq!(
            p.line(Duration::from_secs(1800)),
            "x86_64: 300/300 files (10.0/min), 2 did not pass (known failures included), 3 skipped"
        );
    }

    fn summary(from_journal: usize) -> Summary {
        Summary {
            arch: "x86_64".into(),
            node: "NodeOS static node".into(),
            selection: "test/parallel".into(),
            files: 12,
            counts: node_suite::report::Counts {
                passed: 10,
                skipped: 2,
                ..Default::default()
            },
            pass_rate: Some(100.0),
            wall_secs: 90.0,
            from_journal,
            ran: 10,
            journal_sessions: if from_journal > 0 { 3 } else { 1 },
            journal_secs: 4000.0,
            jobs: 2,
            completed: true,
        }
    }

    #[test]
    fn bench_node_test_replaces_only_its_section() {
        let d = tempfile::tempdir().unwrap();
        let env = Env::for_tests(&d.path().join("cache"), d.path());
        let bench = d.path().join("BENCHMARKS.md");
        std::fs::write(
            &bench,
            format!("# Benchmarks\n\n## Boot\n\nkept\n\n{SECTION}\n\nold figures\n\n## Sizes\n\nkept too\n"),
        )
        .unwrap();
        let p = summary_path(&env, Arch::X86_64);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, serde_json::to_vec(&summary(0)).unwrap()).unwrap();
        bench_run(&env, &[Arch::X86_64, Arch::I386], true).unwrap();
        let text = std::fs::read_to_string(&bench).unwrap();
        assert!(!text.contains("old figures"), "{text}");
        assert_eq!(text.matches(SECTION).count(), 1, "{text}");
        assert!(
            text.contains(
                "| x86_64 | NodeOS static node (test/parallel) | 12 | 10 | 0 | 0 | 2 | 100.0% |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| i386 | not run: `cargo xtask node-test --arch i386` |"),
            "{text}"
        );
        assert!(
            text.contains("## Boot\n\nkept\n") && text.ends_with("## Sizes\n\nkept too\n"),
            "{text}"
        );
    }

    #[test]
    fn bench_time_of_a_resumed_run_is_the_journals_with_this_runs_share() {
        assert_eq!(time_cell(&summary(0)), "1m 30s");
        assert_eq!(
            time_cell(&summary(4)),
            "1h 06m 40s over 3 guest boots, this run 1m 30s (4 of 10 files resumed from the journal)"
        );
    }
}
