//! The job recorder: every command make runs in a build step (compiles,
//! links, generators, recursive makes) is written down with its start, end,
//! parent job and command, so that `cargo xtask bench --model` can replay
//! the build on any number of workers.
//!
//! It is make's `SHELL`: a small bash script that notes the time, runs the
//! recipe line with the shell make would have used, notes the time again
//! and appends one line to the step's record. It is on for every build: a
//! few milliseconds a job. Records go to `<output>/jobs/<step>.tsv` and are
//! published with the phase.
//!
//! Record lines (tab-separated; tabs and newlines in commands become
//! spaces):
//! - `S <epoch> <jobs>`: make started (once per run of the step);
//! - `J <id> <parent> <start> <end> <status> <target> <length> <head> <tail>`:
//!   one recipe line; `parent` is the recorded job that ran the make that
//!   ran it (empty at the top); `head`/`tail` are the first and last
//!   characters of the command, `length` its full length;
//! - `E <epoch> <status>`: make finished.

use crate::util::{create_dir_all, sha256_bytes, write_atomic};
use crate::StepCtx;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// How many characters of a command's start and end are kept.
pub const KEEP_CHARS: usize = 400;

const SCRIPT: &str = r#"#!/bin/bash
# make's SHELL during NodeOS build steps: records each recipe line (start,
# end, parent job, command) into $NODEOS_JOBREC_FILE, then runs it with
# $NODEOS_JOBREC_SHELL. Anything else is passed straight to that shell.
inner=${NODEOS_JOBREC_SHELL:-/bin/sh}
# Makefiles that export CONFIG_SHELL=$(SHELL) (GCC's) would have configure
# write this script into what it generates: it gets the real shell instead.
if [ "${CONFIG_SHELL:-}" = "$0" ]; then
  export CONFIG_SHELL=$inner
fi
target=
if [ "$#" -eq 3 ] && [ "${1#-}" = "$1" ] && [ "${2#-}" != "$2" ]; then
  target=$1
  shift
fi
if [ -z "${NODEOS_JOBREC_FILE:-}" ] || [ "$#" -ne 2 ] || [ "${1#-}" = "$1" ]; then
  exec "$inner" "$@"
fi
start=$EPOCHREALTIME
id=$$.$start
NODEOS_JOBREC_PARENT=$id "$inner" "$@"
status=$?
end=$EPOCHREALTIME
cmd=${2//[$'\t\n\r']/ }
target=${target//[$'\t\n\r']/ }
keep=__KEEP__
if [ "${#cmd}" -gt $((2 * keep)) ]; then
  head=${cmd:0:keep}
  tail=${cmd: -keep}
else
  head=$cmd
  tail=
fi
printf -v line 'J\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$id" "${NODEOS_JOBREC_PARENT:-}" "$start" "$end" "$status" "$target" "${#cmd}" "$head" "$tail"
printf '%s\n' "$line" >>"$NODEOS_JOBREC_FILE"
exit $status
"#;

/// The shell a build's makefiles expect for their recipes.
#[derive(Debug, Clone, Copy)]
pub enum RecipeShell {
    /// make's default, `/bin/sh` (Kbuild, gyp).
    Sh,
    /// `/bin/bash`, which GCC's and binutils' configure choose.
    Bash,
}

impl RecipeShell {
    fn path(self) -> &'static str {
        match self {
            RecipeShell::Sh => "/bin/sh",
            RecipeShell::Bash => "/bin/bash",
        }
    }
}

/// Writes the recorder script into the cache (once per content) and
/// returns its path.
pub fn script(cache_dir: &Path) -> Result<PathBuf> {
    let text = SCRIPT.replace("__KEEP__", &KEEP_CHARS.to_string());
    let path = cache_dir.join("tools").join(format!(
        "jobrec-{}.sh",
        &sha256_bytes(text.as_bytes())[..16]
    ));
    if !path.is_file() {
        write_atomic(&path, text.as_bytes())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
    }
    Ok(path)
}

/// The directory of an output that holds its steps' job records; the
/// engine writes it into every output that runs make, so it is published
/// with the phase's named outputs.
pub const RECORD_DIR: &str = "jobs";

/// Where a step's record goes in the phase output.
pub fn record_path(out_dir: &Path, step: &str) -> PathBuf {
    out_dir.join(RECORD_DIR).join(format!("{step}.tsv"))
}

/// Where ccache writes, for a step, what each compile was (a hit, a miss,
/// not cacheable): a record of a build through ccache is a cold build's
/// only if no compile was a hit.
pub fn ccache_log_path(out_dir: &Path, step: &str) -> PathBuf {
    out_dir.join(RECORD_DIR).join(format!("{step}.ccache.log"))
}

/// Where a step notes how many files ccache's cache held when the step
/// first started: 0 says every hit of the step was on a compile of the
/// same build (Node compiles V8's sources for the host and the target
/// toolset with one compiler and the same flags).
pub fn ccache_start_path(out_dir: &Path, step: &str) -> PathBuf {
    out_dir
        .join(RECORD_DIR)
        .join(format!("{step}.ccache-start"))
}

/// Writes `step`'s [`ccache_start_path`]: the files in the cache at
/// `ccache_dir` now, as ccache counts them. Nothing when ccache cannot
/// say.
fn note_ccache_start(out_dir: &Path, step: &str, ccache_dir: &std::ffi::OsStr) -> Result<()> {
    let Ok(out) = Command::new("ccache")
        .arg("--print-stats")
        .env("CCACHE_DIR", ccache_dir)
        .output()
    else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let files = text.lines().find_map(|l| {
        let (k, v) = l.split_once('\t')?;
        (k == "files_in_cache").then(|| v.trim().to_string())
    });
    if let (true, Some(files)) = (out.status.success(), files) {
        crate::util::write_atomic(
            &ccache_start_path(out_dir, step),
            format!("files_in_cache\t{files}\n").as_bytes(),
        )?;
    }
    Ok(())
}

/// Whether ccache's cache was empty when `step` first started (`None`:
/// not noted, e.g. not through ccache).
pub fn ccache_started_empty(out_dir: &Path, step: &str) -> Option<bool> {
    let text = std::fs::read_to_string(ccache_start_path(out_dir, step)).ok()?;
    let files = text
        .lines()
        .find_map(|l| l.strip_prefix("files_in_cache\t"))?;
    Some(files.trim() == "0")
}

/// What a step's calls of ccache were, from its stats log (ccache's
/// `stats_log`: a `# <input>` line per call, then its counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CcacheLog {
    pub calls: usize,
    /// Served from the cache: no compiler ran.
    pub hits: usize,
}

impl CcacheLog {
    pub fn parse(text: &str) -> CcacheLog {
        let mut log = CcacheLog::default();
        for line in text.lines() {
            if line.starts_with('#') {
                log.calls += 1;
            } else if matches!(line.trim(), "direct_cache_hit" | "preprocessed_cache_hit") {
                log.hits += 1;
            }
        }
        log
    }

    /// The log of `step` in `out_dir`, if ccache wrote one.
    pub fn read(out_dir: &Path, step: &str) -> Option<CcacheLog> {
        let text = std::fs::read_to_string(ccache_log_path(out_dir, step)).ok()?;
        Some(CcacheLog::parse(&text))
    }
}

impl std::ops::Add for CcacheLog {
    type Output = CcacheLog;
    fn add(self, other: CcacheLog) -> CcacheLog {
        CcacheLog {
            calls: self.calls + other.calls,
            hits: self.hits + other.hits,
        }
    }
}

/// Makes `make` record its jobs into `record`: the recorder as `SHELL`,
/// the target name passed to it, the variables it reads.
pub fn apply(cmd: &mut Command, script: &Path, record: &Path, shell: RecipeShell) {
    cmd.arg(format!("SHELL={}", script.display()))
        .arg(".SHELLFLAGS=$@ -c")
        .env("NODEOS_JOBREC_FILE", record)
        .env("NODEOS_JOBREC_SHELL", shell.path())
        .env_remove("NODEOS_JOBREC_PARENT");
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn append(path: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(line.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs a `make` command for `step` with its jobs recorded. `jobs` is the
/// `-j` it was given (written down with the record).
pub fn run_make(
    ctx: &mut StepCtx,
    step: &str,
    mut cmd: Command,
    shell: RecipeShell,
    jobs: usize,
) -> Result<()> {
    let script = script(&ctx.env.cache_dir)?;
    let record = record_path(ctx.out_dir(), step);
    create_dir_all(record.parent().expect("jobs/ has a parent"))?;
    // The cache as the step first found it (a resumed step keeps its
    // first note; one resumed from before notes were kept gets none).
    let ccache_dir = cmd
        .get_envs()
        .find(|(k, _)| *k == "CCACHE_DIR")
        .and_then(|(_, v)| v.map(|v| v.to_os_string()));
    if let (Some(dir), false) = (ccache_dir, record.exists()) {
        note_ccache_start(ctx.out_dir(), step, &dir)?;
    }
    apply(&mut cmd, &script, &record, shell);
    // ccache (when the build's compiles go through it) says per compile
    // whether it was a hit; a stats log the user set is left alone.
    if std::env::var_os("CCACHE_STATSLOG").is_none() {
        cmd.env("CCACHE_STATSLOG", ccache_log_path(ctx.out_dir(), step));
    }
    append(&record, &format!("S\t{:.6}\t{jobs}\n", epoch_now()))?;
    let result = ctx.run(cmd);
    let status = if result.is_ok() { 0 } else { 1 };
    append(&record, &format!("E\t{:.6}\t{status}\n", epoch_now()))?;
    result
}

/// One recorded recipe line.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    /// The job that ran the make that ran this one; `None` at the top.
    pub parent: Option<String>,
    /// Seconds since the epoch.
    pub start: f64,
    pub end: f64,
    pub status: i32,
    /// make's target (`$@`), when make passed it.
    pub target: String,
    /// Length of the whole command.
    pub len: usize,
    /// Its first characters; the whole command if short.
    pub head: String,
    /// Its last characters (empty when `head` is all of it).
    pub tail: String,
}

impl Job {
    pub fn secs(&self) -> f64 {
        (self.end - self.start).max(0.0)
    }
}

/// One run of make in a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub start: f64,
    /// `None` when the run was killed before it finished.
    pub end: Option<f64>,
    /// The `-j` it ran with.
    pub jobs: usize,
}

/// A step's record: its make runs and their jobs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub sessions: Vec<Session>,
    pub jobs: Vec<Job>,
    /// Lines that could not be read (a run killed mid-write leaves one).
    pub unreadable: usize,
}

impl Record {
    pub fn parse(text: &str) -> Record {
        let mut r = Record::default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            let ok = match f.first().copied() {
                Some("S") if f.len() == 3 => match (f[1].parse::<f64>(), f[2].parse::<usize>()) {
                    (Ok(start), Ok(jobs)) => {
                        r.sessions.push(Session {
                            start,
                            end: None,
                            jobs,
                        });
                        true
                    }
                    _ => false,
                },
                Some("E") if f.len() == 3 => match (f[1].parse::<f64>(), r.sessions.last_mut()) {
                    (Ok(end), Some(s)) if s.end.is_none() => {
                        s.end = Some(end);
                        true
                    }
                    _ => false,
                },
                Some("J") if f.len() == 10 => {
                    match (
                        f[3].parse::<f64>(),
                        f[4].parse::<f64>(),
                        f[5].parse::<i32>(),
                        f[7].parse::<usize>(),
                    ) {
                        (Ok(start), Ok(end), Ok(status), Ok(len)) => {
                            r.jobs.push(Job {
                                id: f[1].to_string(),
                                parent: (!f[2].is_empty()).then(|| f[2].to_string()),
                                start,
                                end,
                                status,
                                target: f[6].to_string(),
                                len,
                                head: f[8].to_string(),
                                tail: f[9].to_string(),
                            });
                            true
                        }
                        _ => false,
                    }
                }
                _ => false,
            };
            if !ok {
                r.unreadable += 1;
            }
        }
        r
    }

    pub fn read(path: &Path) -> Result<Record> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Record::parse(&text))
    }

    /// Wall time of all finished make runs.
    pub fn wall(&self) -> f64 {
        self.sessions
            .iter()
            .filter_map(|s| s.end.map(|e| e - s.start))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real ccache, as the build step sets it up: a miss, a hit, a
    /// forced recompile (`CCACHE_RECACHE`) and a link call.
    #[test]
    fn the_ccache_log_tells_hits_from_compiles() {
        if crate::host::which("ccache").is_none() || crate::host::which("gcc").is_none() {
            panic!("this test needs ccache and gcc (apt-get install ccache gcc)");
        }
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.c"), "int f(void) { return 1; }\n").unwrap();
        let out = d.path().join("out");
        let ccache = |args: &[&str], recache: bool| {
            let mut c = Command::new("ccache");
            c.current_dir(d.path())
                .env("CCACHE_DIR", d.path().join("cache"))
                .env("CCACHE_STATSLOG", ccache_log_path(&out, "make"))
                .env_remove("CCACHE_RECACHE")
                .env_remove("CCACHE_DISABLE")
                .arg("gcc")
                .args(args);
            if recache {
                c.env("CCACHE_RECACHE", "1");
            }
            assert!(c.status().unwrap().success(), "{args:?}");
        };
        create_dir_all(&out.join(RECORD_DIR)).unwrap();
        ccache(&["-c", "a.c", "-o", "a.o"], false);
        assert_eq!(
            CcacheLog::read(&out, "make"),
            Some(CcacheLog { calls: 1, hits: 0 })
        );
        ccache(&["-c", "a.c", "-o", "b.o"], false);
        ccache(&["-c", "a.c", "-o", "c.o"], true);
        ccache(&["a.o", "-nostdlib", "-shared", "-o", "a.so"], false);
        assert_eq!(
            CcacheLog::read(&out, "make"),
            Some(CcacheLog { calls: 4, hits: 1 })
        );
        assert_eq!(CcacheLog::read(&out, "other"), None);
    }

    /// Real ccache: the note a step takes of the cache it starts with.
    #[test]
    fn the_cache_a_step_starts_with_is_noted() {
        if crate::host::which("ccache").is_none() || crate::host::which("gcc").is_none() {
            panic!("this test needs ccache and gcc (apt-get install ccache gcc)");
        }
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        create_dir_all(&out.join(RECORD_DIR)).unwrap();
        let cache = d.path().join("cache");
        assert_eq!(ccache_started_empty(&out, "make"), None, "not noted");
        note_ccache_start(&out, "make", cache.as_os_str()).unwrap();
        assert_eq!(ccache_started_empty(&out, "make"), Some(true));
        std::fs::write(d.path().join("a.c"), "int f(void) { return 1; }\n").unwrap();
        let st = Command::new("ccache")
            .current_dir(d.path())
            .env("CCACHE_DIR", &cache)
            .args(["gcc", "-c", "a.c", "-o", "a.o"])
            .status()
            .unwrap();
        assert!(st.success());
        note_ccache_start(&out, "later", cache.as_os_str()).unwrap();
        assert_eq!(ccache_started_empty(&out, "later"), Some(false));
    }

    /// The recorder itself, run by a real make: targets, parents of
    /// recursive makes, tabs in commands, the exit status of a failing job.
    #[test]
    fn make_with_the_recorder_writes_a_readable_record() {
        if crate::host::which("make").is_none() || !Path::new("/bin/bash").exists() {
            panic!("this test needs make and /bin/bash (apt-get install make bash)");
        }
        let d = tempfile::tempdir().unwrap();
        let script = script(&d.path().join("cache")).unwrap();
        assert_eq!(script, super::script(&d.path().join("cache")).unwrap());
        std::fs::write(
            d.path().join("Makefile"),
            "all: a.o sub\n\
             a.o:\n\techo 'x\ty' > $@\n\ttouch $@\n\
             sub:\n\t$(MAKE) -f Makefile inner\n\
             inner:\n\ttrue inner\n\
             fail:\n\texit 3\n",
        )
        .unwrap();
        let rec = d.path().join("rec.tsv");
        let run = |target: &str| {
            let mut c = Command::new("make");
            c.current_dir(d.path()).arg("-j2").arg(target);
            apply(&mut c, &script, &rec, RecipeShell::Sh);
            c.output().unwrap()
        };
        assert!(run("all").status.success());
        assert!(!run("fail").status.success());
        let r = Record::read(&rec).unwrap();
        assert_eq!(r.unreadable, 0);
        let by_target = |t: &str| r.jobs.iter().filter(|j| j.target == t).collect::<Vec<_>>();
        assert_eq!(by_target("a.o").len(), 2, "{r:#?}");
        assert!(
            by_target("a.o")[0].head.contains("x y"),
            "tab kept as space"
        );
        let sub = by_target("sub");
        let inner = by_target("inner");
        assert_eq!((sub.len(), inner.len()), (1, 1), "{r:#?}");
        assert_eq!(inner[0].parent.as_deref(), Some(sub[0].id.as_str()));
        assert!(sub[0].start <= inner[0].start && inner[0].end <= sub[0].end);
        assert_eq!(by_target("fail")[0].status, 3);
        assert!(std::fs::read_to_string(d.path().join("a.o"))
            .unwrap()
            .contains('x'));
    }

    #[test]
    fn long_commands_keep_head_tail_and_length() {
        let d = tempfile::tempdir().unwrap();
        let script = script(&d.path().join("cache")).unwrap();
        let rec = d.path().join("rec.tsv");
        let long = format!("true {} -c -o end.o end.c", "-DX ".repeat(1000));
        let st = Command::new(&script)
            .args(["end.o", "-c", &long])
            .env("NODEOS_JOBREC_FILE", &rec)
            .status()
            .unwrap();
        assert!(st.success());
        let r = Record::read(&rec).unwrap();
        let j = &r.jobs[0];
        assert_eq!(j.len, long.len());
        assert_eq!(j.head.len(), KEEP_CHARS);
        assert!(j.tail.ends_with("-c -o end.o end.c"));
    }

    #[test]
    fn a_truncated_last_line_is_counted_not_fatal() {
        let r = Record::parse(
            "S\t10.0\t2\nJ\ta\t\t10.1\t10.5\t0\tx.o\t3\tcc -c\t\nE\t11.0\t0\nJ\tb\t\t10.2",
        );
        assert_eq!(r.jobs.len(), 1);
        assert_eq!(r.unreadable, 1);
        assert!((r.wall() - 1.0).abs() < 1e-9);
    }
}
