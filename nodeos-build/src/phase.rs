//! Phases: a named, keyed unit of work (e.g. `toolchain` for x86_64) made of
//! stamped steps. A phase whose key is published is skipped at once; a
//! phase that was interrupted resumes at its first unfinished step; the
//! output is published by one rename, so it is complete or absent.

use crate::cache::{self, KeyLock};
use crate::progress::PhaseProgress;
use crate::publish::{self, Outputs};
use crate::timings::{self, StepHow, StepTiming};
use crate::util::{create_dir_all, fmt_duration, remove_path, tail_lines, write_atomic};
use crate::{Arch, Env, Key};
use anyhow::{bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// One run of a phase for a computed key: what [`crate::driver`] hands
/// the engine once sources are chosen and the key is known.
pub struct PhaseRun<'a> {
    pub env: &'a Env,
    pub name: String,
    pub arch: Option<Arch>,
    pub key: Key,
    /// What it publishes (the whole output dir unless named).
    pub outputs: Outputs,
}

#[derive(Debug, Clone)]
pub struct PhaseOutput {
    pub name: String,
    pub arch: Option<Arch>,
    pub dir: PathBuf,
    pub key: String,
    pub cached: bool,
    /// Wall time of this run (tiny when cached).
    pub wall: Duration,
}

impl PhaseOutput {
    /// `cached`, or `built in 12m 03s`, for summaries.
    pub fn how(&self) -> String {
        if self.cached {
            "cached".into()
        } else {
            format!("built in {}", fmt_duration(self.wall))
        }
    }
}

impl<'a> PhaseRun<'a> {
    pub fn new(
        env: &'a Env,
        name: impl Into<String>,
        arch: Option<Arch>,
        key: Key,
    ) -> PhaseRun<'a> {
        PhaseRun {
            env,
            name: name.into(),
            arch,
            key,
            outputs: Outputs::Tree,
        }
    }

    /// Publishes only these entries of the output dir.
    pub fn outputs(mut self, names: &[&str]) -> PhaseRun<'a> {
        self.outputs = Outputs::named(names);
        self
    }

    pub fn label(&self) -> String {
        match self.arch {
            Some(a) => format!("{} {a}", self.name),
            None => self.name.to_string(),
        }
    }

    pub fn out_dir(&self) -> PathBuf {
        cache::out_dir(self.env, &self.name, &self.key.hex())
    }

    /// The published output, if this key was built before and its files
    /// still have their recorded sizes. A damaged output is moved to the
    /// trash (and rebuilt by `run`), never reused.
    pub fn cached(&self) -> Option<PathBuf> {
        let d = self.out_dir();
        if !d.is_dir() {
            return None;
        }
        match publish::check(&d, publish::Depth::Sizes) {
            Ok(publish::Checked::Damaged(what)) => {
                eprintln!(
                    "  {}: the cached output {} is damaged ({what}); moving it to the trash and building it again",
                    self.label(),
                    d.display()
                );
                let _ = discard_build_dir(self.env, &d);
                None
            }
            _ => Some(d),
        }
    }

    /// The published output, recorded as reused in the timings, when this
    /// key is in the cache; never builds anything.
    pub fn published(&self) -> Result<Option<PhaseOutput>> {
        let started = Instant::now();
        match self.cached() {
            Some(dir) => self.reuse(dir, self.key.hex(), started).map(Some),
            None => Ok(None),
        }
    }

    /// The already-published output, recorded as cached in the timings.
    fn reuse(&self, dir: PathBuf, key: String, started: Instant) -> Result<PhaseOutput> {
        let out = PhaseOutput {
            name: self.name.clone(),
            arch: self.arch,
            dir,
            key,
            cached: true,
            wall: started.elapsed(),
        };
        record_timings(self.env, &out)?;
        Ok(out)
    }

    /// Runs the phase unless its output is already published.
    pub fn run(self, build: impl FnOnce(&mut StepCtx) -> Result<()>) -> Result<PhaseOutput> {
        let started = Instant::now();
        let key = self.key.hex();
        if let Some(dir) = self.cached() {
            return self.reuse(dir, key, started);
        }
        let label = self.label();
        let progress = PhaseProgress::new(label.clone(), self.env.verbose);
        let _lock: KeyLock =
            cache::lock_key(self.env, &self.name, &key, &label, &|m| progress.println(m))?;
        // Another run may have published it while we waited for the lock.
        if let Some(dir) = self.cached() {
            progress.println(&format!("  {label}: built by the other run; reusing it"));
            return self.reuse(dir, key, started);
        }
        let build_dir = cache::build_dir(self.env, &self.name, self.arch, &key);
        let meta = build_dir.join(".nodeos");
        create_dir_all(&meta.join("stamps"))?;
        let stage = build_dir.join(".nodeos").join("stage");
        create_dir_all(&stage)?;
        let log_dir = self.env.log_dir(self.arch);
        create_dir_all(&log_dir)?;
        let log_path = log_dir.join(format!("{}.log", self.name));
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening log {}", log_path.display()))?;
        writeln!(
            log,
            "=== {label}: key {key}\n=== build dir {}",
            build_dir.display()
        )?;
        for i in &self.key.inputs {
            writeln!(log, "=== input {i}")?;
        }
        progress.println(&format!(
            "  {label}: building (log: {})",
            log_path.display()
        ));
        let mut ctx = StepCtx {
            env: self.env.clone(),
            phase: self.name.clone(),
            arch: self.arch,
            build_dir: build_dir.clone(),
            stage: stage.clone(),
            log_path: log_path.clone(),
            log,
            progress,
            timings: Vec::new(),
        };
        let result = build(&mut ctx);
        if let Err(e) = result {
            ctx.progress.finish();
            let _ = writeln!(ctx.log, "=== FAILED: {e:#}");
            bail!(
                "{label} failed: {e:#}\n--- last lines of {} ---\n{}\n--- full log: {} (build dir kept for resuming: {})",
                log_path.display(),
                tail_lines(&log_path, 40),
                log_path.display(),
                build_dir.display()
            );
        }
        // Publish: only the named outputs; record what went in, how long it
        // took and what came out; make it durable; then one rename.
        for stray in publish::keep_named(&stage, &self.outputs)? {
            let _ = writeln!(ctx.log, "=== not a declared output, removed: {stray}");
        }
        let took = timings::PhaseTimings {
            phase: self.name.clone(),
            arch: self.arch.map_or("host".into(), |a| a.name().into()),
            key: key.clone(),
            build_secs: started.elapsed().as_secs_f64(),
            steps: ctx.timings.clone(),
        };
        write_atomic(
            &stage.join(timings::FILE),
            &serde_json::to_vec_pretty(&took)?,
        )?;
        write_atomic(
            &stage.join("inputs.txt"),
            self.key.inputs.join("\n").as_bytes(),
        )?;
        let _ = fs::copy(&log_path, stage.join("build.log"));
        publish::record(&stage)?;
        publish::sync_tree(&stage)?;
        let out_dir = self.out_dir();
        let parent = out_dir.parent().expect("out dir has a parent");
        create_dir_all(parent)?;
        fs::rename(&stage, &out_dir)
            .with_context(|| format!("publishing {} to {}", stage.display(), out_dir.display()))?;
        publish::sync_dir(parent)?;
        if std::env::var_os("NODEOS_KEEP_BUILD").is_none() {
            discard_build_dir(self.env, &build_dir)?;
        }
        ctx.progress.finish();
        ctx.progress.println(&format!(
            "  {label}: done in {}",
            fmt_duration(started.elapsed())
        ));
        let out = PhaseOutput {
            name: self.name.clone(),
            arch: self.arch,
            dir: out_dir,
            key,
            cached: false,
            wall: started.elapsed(),
        };
        record_timings(self.env, &out)?;
        Ok(out)
    }
}

/// Moves a finished build dir out of the way at once and deletes it in a
/// detached, low-priority process: removing a GCC or Node tree (hundreds of
/// thousands of files) takes minutes and is no part of the phase.
fn discard_build_dir(env: &Env, build_dir: &Path) -> Result<()> {
    let trash = env.cache_dir.join("trash");
    create_dir_all(&trash)?;
    let name = build_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = trash.join(format!("{name}.{}", std::process::id()));
    if fs::rename(build_dir, &target).is_err() {
        return remove_path(build_dir);
    }
    // `setsid` detaches it from this process (and from Ctrl-C); if it cannot
    // start, the next `clean` empties the trash.
    let _ = Command::new("setsid")
        .args(["nice", "-n", "19", "rm", "-rf", "--"])
        .arg(&trash)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    Ok(())
}

/// Merges this run's result into `target/nodeos/logs/<arch>/timings.json`.
fn record_timings(env: &Env, out: &PhaseOutput) -> Result<()> {
    let path = env.log_dir(out.arch).join(timings::FILE);
    let mut all: serde_json::Map<String, serde_json::Value> = fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    all.insert(
        out.name.clone(),
        serde_json::json!({
            "key": out.key,
            "cached": out.cached,
            "this_run_secs": out.wall.as_secs_f64(),
            "cold_build": timings::read(&out.dir),
        }),
    );
    write_atomic(&path, &serde_json::to_vec_pretty(&all)?)
}

/// What a phase's build closure works with.
pub struct StepCtx {
    pub env: Env,
    pub phase: String,
    pub arch: Option<Arch>,
    build_dir: PathBuf,
    stage: PathBuf,
    log_path: PathBuf,
    log: File,
    pub progress: PhaseProgress,
    timings: Vec<StepTiming>,
}

/// How long before the last heartbeat a file may have been written by the
/// killed run and still be suspect.
const SUSPECT_MARGIN: Duration = Duration::from_secs(10);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);

impl StepCtx {
    /// The persistent build directory of this key (survives interruptions).
    pub fn build_dir(&self) -> &Path {
        &self.build_dir
    }

    /// Where the output is assembled; published as a whole on success.
    pub fn out_dir(&self) -> &Path {
        &self.stage
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn log(&mut self, msg: &str) {
        let _ = writeln!(self.log, "{msg}");
        if self.env.verbose {
            self.progress.println(msg);
        }
    }

    fn stamp(&self, step: &str) -> PathBuf {
        self.build_dir
            .join(".nodeos/stamps")
            .join(format!("{step}.done"))
    }

    fn started(&self, step: &str) -> PathBuf {
        self.build_dir
            .join(".nodeos/stamps")
            .join(format!("{step}.started"))
    }

    fn running(&self, step: &str) -> PathBuf {
        self.build_dir
            .join(".nodeos/stamps")
            .join(format!("{step}.running"))
    }

    /// A step that is re-run from its start if it was interrupted. The
    /// closure must make that safe (e.g. remove what it extracts into).
    pub fn step(&mut self, name: &str, f: impl FnOnce(&mut StepCtx) -> Result<()>) -> Result<()> {
        self.step_impl(name, false, f)
    }

    /// A step that continues where an interrupted run stopped (e.g. `make`).
    /// Files written shortly before the interruption may be truncated, so
    /// they are removed first and the build tool remakes them.
    pub fn resumable_step(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut StepCtx) -> Result<()>,
    ) -> Result<()> {
        self.step_impl(name, true, f)
    }

    fn step_impl(
        &mut self,
        name: &str,
        resumable: bool,
        f: impl FnOnce(&mut StepCtx) -> Result<()>,
    ) -> Result<()> {
        let stamp = self.stamp(name);
        if stamp.exists() {
            let secs = fs::read_to_string(&stamp)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0.0);
            self.timings.push(StepTiming {
                step: name.into(),
                secs,
                how: StepHow::Earlier,
            });
            return Ok(());
        }
        let running = self.running(name);
        let mut how = StepHow::Built;
        if let Ok(m) = fs::metadata(&running) {
            let last_alive = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if resumable {
                // Suspect: written in the last seconds the killed run was alive,
                // but never before this step began (earlier steps' files are
                // complete: their stamps say so).
                let since = (last_alive - SUSPECT_MARGIN).max(step_started_at(&self.started(name)));
                let removed = remove_suspect_files(&self.build_dir, since)?;
                self.log(&format!(
                    "=== {name}: resuming after an interruption; removed {} file(s) written just before it",
                    removed.len()
                ));
                for r in removed.iter().take(50) {
                    self.log(&format!("===   removed {}", r.display()));
                }
                how = StepHow::Resumed;
            } else {
                self.log(&format!("=== {name}: restarting after an interruption"));
            }
        }
        self.progress.step(name);
        self.log(&format!("=== step {name}"));
        let started = Instant::now();
        // Heartbeat: its mtime tells a later run when this one was last alive.
        // `.started` dates the attempt with the file system's own clock
        // (coarser than SystemTime::now, and the one other files get);
        // `.running`'s mtime is the heartbeat.
        fs::write(self.started(name), b"")?;
        fs::write(&running, b"")?;
        let stop = Arc::new(AtomicBool::new(false));
        let hb = {
            let (stop, running) = (stop.clone(), running.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = File::options()
                        .write(true)
                        .open(&running)
                        .and_then(|f| f.set_modified(SystemTime::now()));
                    std::thread::sleep(Duration::from_millis(250));
                    for _ in 0..(HEARTBEAT_EVERY.as_millis() / 250) {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(250));
                    }
                }
            })
        };
        let result = f(self);
        stop.store(true, Ordering::Relaxed);
        let _ = hb.join();
        result.with_context(|| format!("step {name}"))?;
        let secs = started.elapsed().as_secs_f64();
        write_atomic(&stamp, format!("{secs:.1}\n").as_bytes())?;
        let _ = fs::remove_file(&running);
        let _ = fs::remove_file(self.started(name));
        self.log(&format!(
            "=== step {name} done in {}",
            fmt_duration(started.elapsed())
        ));
        self.timings.push(StepTiming {
            step: name.into(),
            secs,
            how,
        });
        Ok(())
    }

    /// Runs a command with its output going to the phase log (and the
    /// terminal with -v). Fails with the command line and exit status; the
    /// phase adds the log tail.
    pub fn run(&mut self, cmd: impl Into<Command>) -> Result<()> {
        let mut cmd: Command = cmd.into();
        let shown = format!("{cmd:?}");
        self.log(&format!("$ {shown}"));
        let (reader, writer) = std::io::pipe().context("creating a pipe")?;
        cmd.stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer);
        // SAFETY: prctl is async-signal-safe. If this process dies, the
        // direct child gets SIGKILL instead of running on unsupervised.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().with_context(|| format!("starting {shown}"))?;
        drop(cmd); // closes our copies of the pipe's write end
        let mut lines = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match lines.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    let _ = self.log.write_all(&buf);
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end();
                    if self.env.verbose {
                        self.progress.println(line);
                    }
                    if !line.is_empty() {
                        self.progress.line(line);
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    return Err(e).context("reading command output");
                }
            }
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("command failed ({status}): {shown}");
        }
        Ok(())
    }
}

/// Just after the interrupted attempt of a step began: files written by
/// earlier steps are older. The epoch if unknown.
fn step_started_at(started: &Path) -> SystemTime {
    fs::metadata(started)
        .and_then(|m| m.modified())
        .map(|t| t + Duration::from_nanos(1))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Removes regular files under `dir` modified at or after `since`, except
/// the engine's own metadata. Returns what it removed.
fn remove_suspect_files(dir: &Path, since: SystemTime) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let meta = dir.join(".nodeos");
    for e in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.path() != meta)
    {
        let e = match e {
            Ok(e) => e,
            Err(_) => continue,
        };
        if !e.file_type().is_file() {
            continue;
        }
        if let Ok(m) = e.metadata() {
            if m.modified().map(|t| t >= since).unwrap_or(false) {
                fs::remove_file(e.path())
                    .with_context(|| format!("removing {}", e.path().display()))?;
                removed.push(e.into_path());
            }
        }
    }
    Ok(removed)
}
