//! `cargo xtask bench --model`: the recorded jobs of the built phases
//! replayed on 2 to 256 workers (see `bench_model`), per phase and arch,
//! and with `--check`, the model checked against real -j1 and -j2 kernel
//! builds (cold, each in a scratch cache of its own, kept for later
//! checks). Writes the "Build-time model" section of BENCHMARKS.md.

use crate::bench_model::{contention, graph, makespan, makespan_with, Contention, Graph};
use anyhow::{bail, Context, Result};
use nodeos_build::jobrec::{self, record_path, CcacheLog, Record};
use nodeos_build::launcher;
use nodeos_build::timings::{self, PhaseTimings};
use nodeos_build::util::{create_dir_all, fmt_duration};
use nodeos_build::{Arch, Env};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Worker counts of the table.
pub const WORKERS: &[usize] = &[2, 8, 16, 64, 256];

/// The heading of the section this command owns in BENCHMARKS.md.
pub const SECTION: &str = "## Build-time model";

fn dur(secs: f64) -> String {
    fmt_duration(Duration::from_secs_f64(secs.max(0.0)))
}

/// One published phase output with its timings and step records.
pub struct PhaseRecord {
    pub timings: PhaseTimings,
    /// (step, its record) for the steps that recorded jobs.
    pub steps: Vec<(String, Record)>,
    /// What ccache said of the steps' compiles, when they went through it
    /// and it wrote a stats log.
    pub ccache: Option<CcacheLog>,
    /// Whether ccache's cache was empty when the phase's first step
    /// through it started (`None`: not noted).
    pub ccache_started_empty: Option<bool>,
}

/// Whether a record's job times are those of a cold local build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coldness {
    /// No compiler cache or farm in between.
    Cold,
    /// Through ccache, and ccache ran the compiler for every call (an
    /// empty cache, or `CCACHE_RECACHE`): cold compiles plus ccache's
    /// own work on a miss.
    EveryCcacheCallCompiled { calls: usize },
    /// Through ccache from an empty cache: the hits are this build's own
    /// compiles met again (the same file for the host and the target
    /// toolset). A cold build as one with ccache runs.
    FromEmptyCcache { calls: usize, hits: usize },
    /// Through a cache or farm: cache hits or remote compiles among the
    /// jobs; `hits` when the cache said how many.
    Not {
        launcher: &'static str,
        hits: Option<CcacheLog>,
    },
}

impl Coldness {
    pub fn is_cold(&self) -> bool {
        !matches!(self, Coldness::Not { .. })
    }

    /// What it is, for a table cell or a left-out note; empty when cold.
    pub fn describe(&self) -> String {
        match self {
            Coldness::Cold => String::new(),
            Coldness::EveryCcacheCallCompiled { calls } => {
                format!("through ccache, all {calls} calls compiled: no hit")
            }
            Coldness::FromEmptyCcache { calls, hits } => format!(
                "through ccache from an empty cache: {hits} of {calls} calls were hits on this build's own compiles"
            ),
            Coldness::Not {
                launcher,
                hits: Some(log),
            } => format!(
                "through {launcher}: {} of {} calls were cache hits",
                log.hits, log.calls
            ),
            Coldness::Not {
                launcher,
                hits: None,
            } => format!("through {launcher}: cache hits or remote compiles"),
        }
    }
}

impl PhaseRecord {
    pub fn read(dir: &Path) -> Result<PhaseRecord> {
        let timings =
            timings::read(dir).with_context(|| format!("{} has no timings.json", dir.display()))?;
        let mut steps = Vec::new();
        let mut ccache: Option<CcacheLog> = None;
        let mut ccache_started_empty = None;
        for s in &timings.steps {
            let p = record_path(dir, &s.step);
            if p.is_file() {
                steps.push((s.step.clone(), Record::read(&p)?));
            }
            if let Some(log) = CcacheLog::read(dir, &s.step) {
                ccache = Some(ccache.unwrap_or_default() + log);
            }
            ccache_started_empty =
                ccache_started_empty.or(jobrec::ccache_started_empty(dir, &s.step));
        }
        Ok(PhaseRecord {
            timings,
            steps,
            ccache,
            ccache_started_empty,
        })
    }

    /// Whether its job times are a cold local build's: not when a cache
    /// hit or a remote compile is among them.
    pub fn coldness(&self) -> Coldness {
        // A log with fewer calls than the jobs that ran ccache misses some
        // (a run before the build step had ccache write it): it cannot
        // tell that there was no hit.
        let launchers: Vec<&'static str> = self
            .steps
            .iter()
            .flat_map(|(_, rec)| rec.jobs.iter())
            .filter_map(|j| launcher_in(&j.head))
            .collect();
        let through = launchers.iter().filter(|l| **l == "ccache").count();
        let log = self.ccache.filter(|l| l.calls >= through);
        match (launchers.first().copied(), log) {
            (None, _) => Coldness::Cold,
            (Some("ccache"), Some(log)) if log.hits == 0 && log.calls > 0 => {
                Coldness::EveryCcacheCallCompiled { calls: log.calls }
            }
            (Some("ccache"), Some(log)) if self.ccache_started_empty == Some(true) => {
                Coldness::FromEmptyCcache {
                    calls: log.calls,
                    hits: log.hits,
                }
            }
            (Some("ccache"), log) => Coldness::Not {
                launcher: "ccache",
                hits: log,
            },
            (Some(launcher), _) => Coldness::Not {
                launcher,
                hits: None,
            },
        }
    }

    /// Predicted cold build on `workers`: recorded steps replayed, the
    /// others (unpacking, configure, install) as they took.
    pub fn predict(&self, graphs: &[(String, Graph)], workers: usize, c: Contention) -> f64 {
        self.timings
            .steps
            .iter()
            .map(|s| match graphs.iter().find(|(n, _)| *n == s.step) {
                Some((_, g)) => makespan_with(g, workers, c),
                None => s.secs,
            })
            .sum()
    }

    /// Whether every step ran in the publishing run (no resumed record).
    pub fn cold(&self) -> bool {
        self.timings.cold()
    }
}

/// The published outputs of the phases whose timings the last builds left
/// in `target/nodeos/logs/<arch>/timings.json`.
fn published(env: &Env, arch: Arch) -> Vec<PathBuf> {
    let path = env.log_dir(Some(arch)).join(timings::FILE);
    let Ok(bytes) = std::fs::read(&path) else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Object(all)) = serde_json::from_slice::<serde_json::Value>(&bytes)
    else {
        return Vec::new();
    };
    all.iter()
        .filter_map(|(phase, t)| {
            let d = nodeos_build::cache::out_dir(env, phase, t["key"].as_str()?);
            d.is_dir().then_some(d)
        })
        .collect()
}

/// Why a built phase has no job record.
const UNRECORDED: &str = "no job record: built without make, or before job records were kept";

/// Launchers that make a compile something other than a local cold one.
/// The launcher a recorded command runs through, if any: a program the
/// shell line runs that is a known launcher (`launcher::Kind`). A
/// launcher named inside a quoted argument is not run (gyp's makefiles
/// follow each compile with a `printf` of its command line into a
/// `.d` file).
fn launcher_in(command: &str) -> Option<&'static str> {
    crate::bench_model::programs(command)
        .into_iter()
        .find_map(|w| launcher::Kind::of_program(Path::new(&w)).program_name())
}

/// The model table for the given phase outputs.
pub fn table(records: &[PhaseRecord], c: Contention) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| arch | phase | recorded (-j) | jobs | {} |\n| --- | --- | --- | --- |{}",
        WORKERS
            .iter()
            .map(|w| format!("{w} workers"))
            .collect::<Vec<_>>()
            .join(" | "),
        " --- |".repeat(WORKERS.len())
    );
    for r in records {
        let graphs: Vec<(String, Graph)> = r
            .steps
            .iter()
            .map(|(s, rec)| (s.clone(), graph(rec)))
            .collect();
        let jobs: usize = r.steps.iter().map(|(_, rec)| rec.jobs.len()).sum();
        let j = r
            .steps
            .iter()
            .flat_map(|(_, rec)| rec.sessions.iter().map(|s| s.jobs))
            .max()
            .unwrap_or(0);
        let mut note = String::new();
        if !r.cold() {
            note.push_str(", resumed");
        }
        let coldness = r.coldness().describe();
        if !coldness.is_empty() {
            note.push_str(&format!(", {coldness}"));
        }
        let cells: Vec<String> = WORKERS
            .iter()
            .map(|&w| dur(r.predict(&graphs, w, c)))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} (-j{j}{note}) | {jobs} | {} |",
            r.timings.arch,
            r.timings.phase,
            dur(r.timings.build_secs),
            cells.join(" | ")
        );
    }
    md
}

/// The kernel's -j1 and -j2 builds of the check, each in a scratch cache
/// of its own (cold the first time, then kept: remove
/// target/nodeos/model-check to rebuild).
fn check_dir(env: &Env, jobs: usize) -> PathBuf {
    env.target_dir.join("model-check").join(format!("j{jobs}"))
}

/// The contention factor measured from a kept pair of -j1 and -j2 kernel
/// builds of a check.
struct KeptPair {
    contention: Contention,
    /// The -j1 build, a cold build with its record.
    serial: PhaseRecord,
}

/// The kept pairs (the same kernel key built with -j1 and -j2), newest
/// first.
fn kept_pairs(env: &Env) -> Vec<KeptPair> {
    let outs = |jobs| check_dir(env, jobs).join("cache/out").join(kernel::PHASE);
    let Ok(entries) = std::fs::read_dir(outs(1)) else {
        return Vec::new();
    };
    let mut keys: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    keys.sort();
    keys.iter()
        .rev()
        .filter_map(|(_, serial)| {
            let parallel = outs(2).join(serial.file_name()?);
            let serial = PhaseRecord::read(serial).ok()?;
            let a = &serial.steps.iter().find(|(s, _)| s == KERNEL_STEP)?.1;
            let b = Record::read(&record_path(&parallel, KERNEL_STEP)).ok()?;
            Some(KeptPair {
                contention: contention(a, &b)?,
                serial,
            })
        })
        .collect()
}

/// The kernel step whose jobs the check replays.
const KERNEL_STEP: &str = "bzimage";

/// What the table's predictions assume about jobs side by side.
fn contention_note(c: Option<Contention>) -> String {
    match c {
        Some(c) => format!(
            "Jobs side by side are slowed by the contention factor {:.3} (a job beside another takes {:+.1}% of its time alone): measured on this machine from the {} compiles both kernel builds of the check ran, -j2 against -j1. Workers are cores of machines like this one.\n",
            c.factor,
            100.0 * (c.factor - 1.0),
            c.compiles
        ),
        None => "CONTENTION NOT MEASURED: no kept -j1/-j2 kernel builds of `cargo xtask bench --model --check`, so these figures assume jobs side by side run as fast as alone (optimistic).\n".to_owned(),
    }
}

/// The check: the kernel built twice from scratch caches, with -j1 and
/// -j2; each record's prediction for 1 and 2 workers against both builds.
/// Returns the check's section, the -j1 build's record and the contention
/// measured from the two.
pub fn check_on_kernel(env: &Env, arch: Arch) -> Result<(String, PhaseRecord, Option<Contention>)> {
    let mut measured = Vec::new();
    let mut serial = None;
    for jobs in [1usize, 2] {
        let dir = check_dir(env, jobs);
        create_dir_all(&dir)?;
        let mut e = env.clone();
        e.cache_dir = dir.join("cache");
        e.target_dir = dir.join("target");
        e.jobs = jobs;
        e.offline = true;
        eprintln!(
            "model check: building the {arch} kernel with -j{jobs} in {}",
            dir.display()
        );
        let k = kernel::build(&e, arch)?;
        let rec = PhaseRecord::read(&k.output.dir)?;
        let step = rec
            .timings
            .steps
            .iter()
            .find(|s| s.step == KERNEL_STEP)
            .context("the kernel phase has no bzimage step")?
            .secs;
        let Some((_, record)) = rec.steps.iter().find(|(s, _)| s == KERNEL_STEP).cloned() else {
            bail!("the -j{jobs} kernel build left no job record");
        };
        measured.push((jobs, step, record, k.bzimage.clone()));
        if jobs == 1 {
            serial = Some(rec);
        }
    }
    let c = contention(&measured[0].2, &measured[1].2);
    let factor = c.unwrap_or(Contention::NONE);
    // A factor measured on another kernel's pair of builds: a check of the
    // factor that does not use the builds it predicts.
    let other = kept_pairs(env)
        .into_iter()
        .find(|p| p.serial.timings.arch != arch.name());
    let same = nodeos_build::util::sha256_file(&measured[0].3)?
        == nodeos_build::util::sha256_file(&measured[1].3)?;
    let mut md = String::new();
    let _ = writeln!(md, "Model check on the {arch} kernel's `make bzImage` (cold, scratch caches, this machine; bzImage identical across the two builds: {same}). The contention factor comes from the same two builds (per-compile times), so the check tests the replay of the dependencies and of the workers; \"alone\" is the replay with jobs as fast side by side as alone:\n");
    if let Some(o) = &other {
        let _ = writeln!(md, "The last column predicts with the factor measured on the {} kernel's builds instead ({:.3}, {} compiles).\n", o.serial.timings.arch, o.contention.factor, o.contention.compiles);
    }
    let cross_head = other.as_ref().map_or(String::new(), |o| {
        format!(" {} factor | error |", o.serial.timings.arch)
    });
    let _ = writeln!(md, "| record used | workers | predicted | error | alone | error | measured (`make -jN`) |{cross_head}\n| --- | --- | --- | --- | --- | --- | --- |{}", if other.is_some() { " --- | --- |" } else { "" });
    for (from_jobs, _, record, _) in &measured {
        let g = graph(record);
        for (jobs, secs, _, _) in &measured {
            let p = makespan_with(&g, *jobs, factor);
            let a = makespan(&g, *jobs);
            let cross = other.as_ref().map_or(String::new(), |o| {
                let x = makespan_with(&g, *jobs, o.contention);
                format!(" {} | {:+.1}% |", dur(x), 100.0 * (x - secs) / secs)
            });
            let _ = writeln!(
                md,
                "| -j{from_jobs} build ({} jobs) | {jobs} | {} | {:+.1}% | {} | {:+.1}% | {} |{cross}",
                record.jobs.len(),
                dur(p),
                100.0 * (p - secs) / secs,
                dur(a),
                100.0 * (a - secs) / secs,
                dur(*secs),
            );
        }
    }
    Ok((md, serial.expect("the -j1 build ran"), c))
}

/// Replaces (or appends) this command's section of BENCHMARKS.md.
pub fn write_section(path: &Path, body: &str) -> Result<()> {
    write_section_headed(path, SECTION, body)
}

/// Replaces (or appends) the section of BENCHMARKS.md under `heading`
/// (a `## ` line), up to the next `## ` heading.
pub fn write_section_headed(path: &Path, heading: &str, body: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{heading}\n\n{body}");
    let new = match old.find(heading) {
        Some(start) => {
            let after = &old[start + heading.len()..];
            let end = after
                .find("\n## ")
                .map(|i| start + heading.len() + i + 1)
                .unwrap_or(old.len());
            format!("{}{section}{}", &old[..start], &old[end..])
        }
        None => format!(
            "{}\n{section}",
            old.trim_end_matches('\n').to_string() + "\n"
        ),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

/// The section as it stands in BENCHMARKS.md, to carry over when the rest
/// of the file is rewritten.
pub fn current_section(path: &Path) -> Option<String> {
    section_headed(path, SECTION)
}

/// The section of BENCHMARKS.md under `heading`, as it stands.
pub fn section_headed(path: &Path, heading: &str) -> Option<String> {
    let old = std::fs::read_to_string(path).ok()?;
    let start = old.find(heading)?;
    let after = &old[start + heading.len()..];
    let end = after
        .find("\n## ")
        .map(|i| start + heading.len() + i + 1)
        .unwrap_or(old.len());
    Some(old[start..end].to_string())
}

pub fn run(env: &Env, arches: &[Arch], extra: &[PathBuf], check: bool, write: bool) -> Result<()> {
    // Records given with --records first: a row per phase and arch, the
    // first record found for it.
    let mut dirs: Vec<PathBuf> = extra.to_vec();
    dirs.extend(arches.iter().flat_map(|&a| published(env, a)));
    // A dir given with --records may also be one the last builds used.
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())));
    let mut records = Vec::new();
    let mut left_out = Vec::new();
    let mut unrecorded = Vec::new();
    for d in &dirs {
        let r = PhaseRecord::read(d)?;
        if r.steps.is_empty() {
            eprintln!(
                "{} {}: {UNRECORDED}; skipped",
                r.timings.arch, r.timings.phase
            );
            unrecorded.push(format!("{} {}", r.timings.arch, r.timings.phase));
            continue;
        }
        let coldness = r.coldness();
        if !coldness.is_cold() {
            let why = format!(
                "{} {} ({}: its jobs' times are not cold compiles)",
                r.timings.arch,
                r.timings.phase,
                coldness.describe()
            );
            eprintln!("{why}; skipped");
            left_out.push(why);
            continue;
        }
        records.push(r);
    }
    let mut checked = None;
    let c = if check {
        // Each arch's check; kept builds of an earlier check are reused,
        // so checking an arch again costs no build.
        let mut texts = Vec::new();
        let mut first = None;
        for &arch in arches {
            let (text, kernel_j1, measured) = check_on_kernel(env, arch)?;
            texts.push(text);
            records.push(kernel_j1);
            first = first.or(Some(measured));
        }
        checked = Some(texts.join("\n"));
        first.flatten()
    } else {
        // The kernels of earlier checks are cold -j1 builds with records;
        // the newest pair's factor is the one measured last.
        let pairs = kept_pairs(env);
        let newest = pairs.first().map(|p| p.contention);
        // Their checks are computed again (no build): the table follows
        // the model as it is now, not as it was when they were built.
        let mut texts = Vec::new();
        for &arch in arches {
            if pairs.iter().any(|p| p.serial.timings.arch == arch.name()) {
                texts.push(check_on_kernel(env, arch)?.0);
            }
        }
        if !texts.is_empty() {
            checked = Some(texts.join("\n"));
        }
        records.extend(
            pairs
                .into_iter()
                .filter(|p| arches.iter().any(|a| a.name() == p.serial.timings.arch))
                .map(|p| p.serial),
        );
        newest
    };
    let mut rows = std::collections::HashSet::new();
    records.retain(|r| rows.insert((r.timings.arch.clone(), r.timings.phase.clone())));
    let order = crate::phases::build_order();
    let build_order = |phase: &str| order.iter().position(|p| p == phase);
    records.sort_by(|a, b| {
        (&a.timings.arch, build_order(&a.timings.phase))
            .cmp(&(&b.timings.arch, build_order(&b.timings.phase)))
    });
    let mut md = String::new();
    let _ = writeln!(md, "Written by `cargo xtask bench --model`. Each build records every job make runs (start, end, command; `nodeos_build::jobrec`); the model replays them on N workers with their dependencies (recursive makes, serial steps: links, generators such as mksnapshot and torque, archives; see `xtask/src/bench_model.rs`). Steps without a record (unpacking, configure, install) count as they took.\n");
    if records.is_empty() {
        let _ = writeln!(md, "No phase with a job record is built yet (phases built before job records were kept have none: rebuild them).\n");
    } else {
        let _ = writeln!(
            md,
            "Predicted cold build per phase and arch. {}",
            contention_note(c)
        );
        md.push_str(&table(&records, c.unwrap_or(Contention::NONE)));
        md.push('\n');
    }
    if !left_out.is_empty() {
        let _ = writeln!(md, "Left out: {}.\n", left_out.join("; "));
    }
    if !unrecorded.is_empty() {
        let _ = writeln!(md, "No row ({UNRECORDED}): {}.\n", unrecorded.join(", "));
    }
    if let Some(text) = checked {
        md.push_str(&text);
        md.push('\n');
    } else if let Some(old) = current_section(&env.project_root.join("BENCHMARKS.md")) {
        // Keep the last check's table.
        if let Some(i) = old.find("Model check on") {
            md.push_str(old[i..].trim_end());
            md.push('\n');
        }
    }
    print!("{SECTION}\n\n{md}");
    if write {
        let path = env.project_root.join("BENCHMARKS.md");
        write_section(&path, &md)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_through_a_cache_or_farm_are_recognised() {
        let cases = [
            (
                "/usr/bin/ccache /opt/tc/bin/x86_64-linux-musl-g++ -o a.o -c a.cc",
                Some("ccache"),
            ),
            ("sccache gcc -c x.c", Some("sccache")),
            (
                "set -e; echo '  CC x.o'; icecc x86_64-linux-musl-gcc -c x.c",
                Some("icecc"),
            ),
            ("'/usr/lib/distcc/distcc' gcc -c y.c", Some("distcc")),
            ("/opt/tc/bin/x86_64-linux-musl-g++ -o a.o -c a.cc", None),
            ("gcc -c ccache.c -o ccache.o", None),
            ("touch stamps/ccache-done", None),
            ("CCACHE_DIR=/c exec ccache gcc -c x.c", Some("ccache")),
            ("cd dir && ccache gcc -c x.c", Some("ccache")),
            // gyp's record of the compile's command line, after it ran.
            (
                "printf '%s\\n' 'cmd_out/a.o := /usr/bin/ccache g++ -c a.cc; x' > out/.deps/a.o.d",
                None,
            ),
            ("echo \"ccache; distcc\" | sed s/a/b/", None),
            ("echo \\\"; ccache gcc -c x.c", Some("ccache")),
            ("echo \"a \\\" ccache\"", None),
        ];
        for (cmd, want) in cases {
            assert_eq!(launcher_in(cmd), want, "{cmd}");
        }
    }

    #[test]
    fn the_section_is_replaced_in_place_or_appended() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("B.md");
        std::fs::write(&p, "# B\n\n## Boot\n\nx\n").unwrap();
        write_section(&p, "one\n").unwrap();
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.starts_with("# B\n\n## Boot\n\nx\n"));
        assert!(t.ends_with("## Build-time model\n\none\n"), "{t}");
        std::fs::write(&p, format!("{t}\n## Later\n\ny\n")).unwrap();
        write_section(&p, "two\n").unwrap();
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(
            t.contains("## Build-time model\n\ntwo\n## Later\n\ny\n"),
            "{t}"
        );
        assert!(!t.contains("one"));
        assert_eq!(current_section(&p).unwrap(), "## Build-time model\n\ntwo\n");
    }
}
