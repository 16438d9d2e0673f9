//! `cargo xtask drill`: the fault cases that need a real phase, run against
//! the kernel phase (the cheapest real one: a few minutes) in a scratch
//! cache, and compared with the kernel in the user's own cache:
//!
//! - a corrupt and a truncated download are refused with both hashes and
//!   deleted (the drill fetches the good file first when it is missing);
//! - `initramfs -o` stopped by SIGTERM or SIGINT removes its temporary
//!   file; stopped by SIGKILL, the next run into that directory does;
//! - a full disk (a tmpfs filled up, mounted in a user namespace: no root)
//!   fails the phase with the path, publishes nothing, and the same cache
//!   builds once space is freed;
//! - two runs at once: the second waits for the lock and says so; the first
//!   is SIGKILLed in the middle of its make; the second resumes the make
//!   and publishes a bzImage byte-identical to an uninterrupted build, and
//!   not the stray temporary file the killed run left in its stage dir;
//! - what a power loss does to a published output: a flipped byte is found
//!   by `cargo xtask verify`, an emptied bzImage is refused at the next
//!   reuse (moved to the trash and built again);
//! - the whole thing as a non-root user (reported, not faked, when root).
//!
//! The engine-level versions of these run in `cargo test`; this is the
//! same on a real kernel build.

use crate::Common;
use anyhow::{bail, Context, Result};
use clap::Args;
use nodeos_build::util::{create_dir_all, remove_path, sha256_file};
use nodeos_build::{fetch, Arch, Env};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DrillArgs {
    /// Seconds into the kernel's make before the first run is killed
    #[arg(long, default_value_t = 30)]
    kill_after: u64,
    /// Only the cases that need no kernel build (downloads, initramfs -o)
    #[arg(long)]
    without_kernel: bool,
    /// Internal: run the namespace cases in this scratch dir
    #[arg(long, hide = true, value_name = "DIR")]
    inner: Option<PathBuf>,
    /// Internal: the bzImage sha256 the resumed build must reproduce
    #[arg(long, hide = true)]
    expect_sha: Option<String>,
}

/// One case's outcome, printed as `CASE <verdict> <name>: <detail>` by the
/// inner run and collected by the outer one.
struct Case {
    name: &'static str,
    verdict: &'static str,
    detail: String,
}

impl Case {
    fn of(name: &'static str, r: Result<String>) -> Case {
        match r {
            Ok(detail) => Case {
                name,
                verdict: "PASS",
                detail,
            },
            Err(e) => Case {
                name,
                verdict: "FAIL",
                detail: format!("{e:#}"),
            },
        }
    }
    fn skipped(name: &'static str, why: String) -> Case {
        Case {
            name,
            verdict: "SKIPPED",
            detail: why,
        }
    }
    fn line(&self) -> String {
        format!(
            "CASE {} {}: {}",
            self.verdict,
            self.name,
            self.detail.replace('\n', " | ")
        )
    }
}

pub fn run(common: &Common, a: DrillArgs) -> Result<()> {
    let env = common.env()?;
    let arch = *common.arches().last().expect("at least one arch");
    if let Some(scratch) = &a.inner {
        let sha = a
            .expect_sha
            .as_deref()
            .context("--inner needs --expect-sha")?;
        for c in inner_cases(arch, scratch, sha, a.kill_after) {
            println!("{}", c.line());
        }
        return Ok(());
    }
    let started = Instant::now();
    let mut cases = vec![non_root()];
    let scratch = env.cache_dir.join("drill");
    remove_path(&scratch)?;
    create_dir_all(&scratch)?;
    cases.push(corrupt_download(&env, &scratch.join("dl"), false));
    cases.push(corrupt_download(&env, &scratch.join("dl"), true));
    cases.push(initramfs_interrupted(&scratch.join("initramfs")));
    if a.without_kernel {
        let _ = remove_path(&scratch);
        return report(&cases, started);
    }

    nodeos_build::host::require("drill", &[nodeos_build::host::Need::Kernel])?;
    eprintln!("drill: the reference kernel ({arch}) from your cache (built if missing)");
    let reference = kernel::build(&env, arch)?;
    let sha = sha256_file(&reference.bzimage)?;

    // The rest runs in a user namespace, where an unprivileged user may
    // mount a small tmpfs as the cache.
    let ns = scratch.join("ns");
    create_dir_all(&ns)?;
    eprintln!("drill: disk full, concurrent runs and a SIGKILL in the make (a kernel build, a few minutes)");
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount"])
        .arg(&exe)
        .args(["drill", "--arch", arch.name(), "--kill-after"])
        .arg(a.kill_after.to_string())
        .arg("--inner")
        .arg(&ns)
        .arg("--expect-sha")
        .arg(&sha)
        .env("NODEOS_DL_DIR", &env.dl_dir)
        .stderr(Stdio::inherit())
        .output();
    match out {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            let found = parse_cases(&text);
            if found.is_empty() {
                cases.push(Case::of(
                    "namespace cases",
                    Err(anyhow::anyhow!(
                        "the inner run printed no result ({}): {text}",
                        o.status
                    )),
                ));
            }
            cases.extend(found);
        }
        Err(e) => cases.push(Case::skipped(
            "namespace cases",
            format!("cannot run unshare (util-linux): {e}"),
        )),
    }
    let _ = remove_path(&scratch);
    report(&cases, started)
}

/// Prints the table; fails when a case failed, says loudly what was skipped.
fn report(cases: &[Case], started: Instant) -> Result<()> {
    let mut table = String::new();
    writeln!(table, "\n{:<8} {:<28} detail", "result", "case")?;
    for c in cases {
        writeln!(table, "{:<8} {:<28} {}", c.verdict, c.name, c.detail)?;
    }
    writeln!(table, "drill took {:.0} s", started.elapsed().as_secs_f64())?;
    print!("{table}");
    let failed = cases.iter().filter(|c| c.verdict == "FAIL").count();
    let skipped = cases.iter().filter(|c| c.verdict == "SKIPPED").count();
    if skipped > 0 {
        eprintln!(
            "drill: {skipped} case(s) could NOT be run here (see SKIPPED above); they did not pass"
        );
    }
    if failed > 0 {
        bail!("drill: {failed} case(s) failed");
    }
    Ok(())
}

fn parse_cases(text: &str) -> Vec<Case> {
    let names: [&'static str; 4] = [
        "disk full",
        "concurrent run waits",
        "sigkill mid-make",
        "power loss, published",
    ];
    text.lines()
        .filter_map(|l| l.strip_prefix("CASE "))
        .filter_map(|rest| {
            let (verdict, rest) = rest.split_once(' ')?;
            let (name, detail) = rest.split_once(": ")?;
            let name = names.iter().find(|n| **n == name)?;
            let verdict = match verdict {
                "PASS" => "PASS",
                "SKIPPED" => "SKIPPED",
                _ => "FAIL",
            };
            Some(Case {
                name,
                verdict,
                detail: detail.to_string(),
            })
        })
        .collect()
}

fn non_root() -> Case {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_else(|| "?".into());
    let home = std::env::var("HOME").unwrap_or_default();
    if uid == "0" {
        Case::skipped(
            "non-root",
            "running as root: run the drill as an ordinary user to check it".into(),
        )
    } else {
        Case::of(
            "non-root",
            Ok(format!("ran as uid {uid}, HOME={home}, no sudo")),
        )
    }
}

/// Copies a real source file into a scratch download dir with one byte
/// flipped (or cut in half), then asks for it: refused, both hashes named,
/// the bad file deleted. The good file is fetched first when it is not in
/// the download dir: that is the drill's setup, not the case under test, so
/// a failure there is reported as SKIPPED with its reason.
fn corrupt_download(env: &Env, dl: &Path, truncate: bool) -> Case {
    let name = if truncate {
        "truncated download"
    } else {
        "corrupt download"
    };
    let manifest = toolchain::manifest();
    let setup = (|| -> Result<fetch::Resolved> {
        let mut f = fetch::Fetcher::new(env)?;
        fetch::ensure(&mut f, &manifest, "musl")
    })();
    let chosen = match setup {
        Ok(r) => r,
        Err(e) => {
            return Case::skipped(
                name,
                format!("could not fetch the good musl source to corrupt: {e:#}"),
            )
        }
    };
    Case::of(
        name,
        corrupt_file(env, &manifest, &chosen.main, dl, truncate),
    )
}

fn corrupt_file(
    env: &Env,
    manifest: &nodeos_build::source::Manifest,
    s: &nodeos_build::source::Source,
    dl: &Path,
    truncate: bool,
) -> Result<String> {
    let good = std::fs::read(env.dl_dir.join(&s.file))
        .with_context(|| format!("reading the fetched {}", s.file))?;
    let bad = if truncate {
        good[..good.len() / 2].to_vec()
    } else {
        let mut b = good.clone();
        let i = b.len() / 3;
        b[i] ^= 0x40;
        b
    };
    remove_path(dl)?;
    create_dir_all(dl)?;
    let path = dl.join(&s.file);
    std::fs::write(&path, &bad)?;
    let mut scratch = env.clone();
    scratch.dl_dir = dl.to_path_buf();
    scratch.offline = true;
    let mut f = fetch::Fetcher::new(&scratch)?;
    let err = match fetch::ensure(&mut f, manifest, &s.name) {
        Ok(_) => bail!("a bad {} was accepted", s.file),
        Err(e) => format!("{e:#}"),
    };
    let bad_sha = nodeos_build::util::sha256_bytes(&bad);
    if !(err.contains(&s.sha256) && err.contains(&bad_sha)) {
        bail!("the error does not name both hashes: {err}");
    }
    if path.exists() {
        bail!("the bad file was kept at {}", path.display());
    }
    Ok(format!(
        "{} ({} bytes): refused, both hashes named, file deleted",
        s.file,
        bad.len()
    ))
}

/// `cargo xtask initramfs -o` stopped mid-write: by SIGTERM and SIGINT it
/// removes its temporary file itself; after SIGKILL (which no process can
/// handle) the next run into the same directory removes it.
fn initramfs_interrupted(work: &Path) -> Case {
    let name = "initramfs interrupted";
    // Setup: a static init from the host compiler, made large enough (with
    // incompressible bytes appended, which ELF loaders ignore) that xz
    // takes seconds to write the archive.
    let setup = (|| -> Result<(PathBuf, PathBuf)> {
        remove_path(work)?;
        create_dir_all(work)?;
        let small = work.join("init");
        std::fs::write(work.join("init.c"), "int main(void) { return 0; }\n")?;
        let st = Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&small)
            .arg(work.join("init.c"))
            .status()
            .context("running gcc")?;
        if !st.success() {
            bail!("gcc -static failed (is libc6-dev installed?)");
        }
        let big = work.join("big-init");
        let mut bytes = std::fs::read(&small)?;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        bytes.extend((0..(48usize << 20)).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        }));
        std::fs::write(&big, bytes)?;
        Ok((small, big))
    })();
    let (small, big) = match setup {
        Ok(p) => p,
        Err(e) => return Case::skipped(name, format!("could not make a test init: {e:#}")),
    };
    Case::of(name, interrupt_initramfs(work, &small, &big))
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(".initramfs-") && n.ends_with(".tmp"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The child's exit status, or `None` if it is still running after `limit`.
fn wait_at_most(child: &mut Child, limit: Duration) -> Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if Instant::now() > deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn interrupt_initramfs(work: &Path, small: &Path, big: &Path) -> Result<String> {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let out_dir = work.join("out");
    create_dir_all(&out_dir)?;
    let out = out_dir.join("initramfs.cpio.xz");
    let mut said = Vec::new();
    for (sig, sig_name) in [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGKILL, "SIGKILL"),
    ] {
        let mut cmd = Command::new(&exe);
        cmd.args(["initramfs", "--compression", "xz", "--init"])
            .arg(big)
            .arg("-o")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // The writer leaves alone a signal its parent ignores (a background
        // job ignores SIGINT, nohup SIGHUP); the case is a user at a
        // terminal, where each has its default action.
        // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
        unsafe {
            cmd.pre_exec(|| {
                for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                    libc::signal(s, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("starting cargo xtask initramfs")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while temp_files(&out_dir).is_empty() {
            if Instant::now() > deadline || child.try_wait()?.is_some() {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "initramfs -o never showed its temporary file in {}",
                    out_dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Let it write for a moment: the file is then mid-archive.
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let st = match wait_at_most(&mut child, Duration::from_secs(60))? {
            Some(st) => st,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the writer was still running 60 s after {sig_name}");
            }
        };
        if st.signal() != Some(sig) {
            bail!("after {sig_name} the writer ended with {st}, not by the signal");
        }
        if out.exists() {
            bail!(
                "after {sig_name} an archive was published at {}",
                out.display()
            );
        }
        let left = temp_files(&out_dir);
        if sig != libc::SIGKILL {
            if !left.is_empty() {
                bail!("after {sig_name} the temporary file was left: {left:?}");
            }
            said.push(format!("{sig_name}: temporary file removed at once"));
            continue;
        }
        let size: u64 = left
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let st = Command::new(&exe)
            .args(["initramfs", "--compression", "none", "--init"])
            .arg(small)
            .arg("-o")
            .arg(&out)
            .output()
            .context("running cargo xtask initramfs again")?;
        if !st.status.success() {
            bail!(
                "the run after the SIGKILL failed: {}",
                String::from_utf8_lossy(&st.stderr).trim()
            );
        }
        let still = temp_files(&out_dir);
        if !still.is_empty() {
            bail!("the next run left the killed writer's temporary file: {still:?}");
        }
        said.push(format!(
            "SIGKILL: {} temporary file(s) of {size} bytes left, removed by the next run",
            left.len()
        ));
    }
    Ok(said.join("; "))
}

/// Runs `cargo xtask kernel` with its cache in `cache`, output to `log`.
fn spawn_kernel(arch: Arch, cache: &Path, log: &Path) -> Result<Child> {
    let exe = std::env::current_exe()?;
    let file = std::fs::File::create(log)?;
    Command::new(exe)
        .args(["kernel", "--arch", arch.name()])
        .env("NODEOS_CACHE_DIR", cache)
        .env("NODEOS_TARGET_DIR", cache.join("target"))
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .context("starting a kernel build")
}

fn wait_for_text(log: &Path, needle: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if std::fs::read_to_string(log).is_ok_and(|t| t.contains(needle)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "'{needle}' did not appear in {} within {timeout:?}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn published(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache.join("out/kernel"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn inner_cases(arch: Arch, scratch: &Path, sha: &str, kill_after: u64) -> Vec<Case> {
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_MB}m"), "tmpfs"])
        .arg(scratch)
        .output();
    let mut cases = Vec::new();
    let cache = scratch.join("cache");
    match mounted {
        Ok(o) if o.status.success() => {
            cases.push(Case::of("disk full", disk_full(arch, scratch, &cache)));
        }
        Ok(o) => cases.push(Case::skipped(
            "disk full",
            format!(
                "cannot mount a tmpfs in a user namespace here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        )),
        Err(e) => cases.push(Case::skipped("disk full", format!("no mount(8): {e}"))),
    }
    let (wait, kill) = kill_and_resume(arch, scratch, &cache, sha, kill_after);
    let resumed = kill.is_ok();
    cases.push(Case::of("concurrent run waits", wait));
    cases.push(Case::of("sigkill mid-make", kill));
    cases.push(if resumed {
        Case::of(
            "power loss, published",
            damaged_output(arch, scratch, &cache),
        )
    } else {
        Case::skipped(
            "power loss, published",
            "needs the kernel the sigkill case publishes".into(),
        )
    });
    cases
}

/// The scratch tmpfs: room for a kernel build once the ballast is gone.
const TMPFS_MB: u64 = 4096;
/// What the ballast leaves free: far less than the kernel tree needs.
const FREE_MB: u64 = 300;

/// With only 300 MB free the kernel tree does not fit: the phase fails
/// naming the path, nothing is published. Then the ballast is deleted
/// ("the user frees space") and the next case builds in the same cache.
fn disk_full(arch: Arch, scratch: &Path, cache: &Path) -> Result<String> {
    // An unprivileged user cannot remount (resize) a tmpfs in its
    // namespace, so the disk is filled and freed instead.
    let ballast = scratch.join("ballast");
    let filled = Command::new("fallocate")
        .arg("-l")
        .arg(format!("{}m", TMPFS_MB - FREE_MB))
        .arg(&ballast)
        .status()
        .context("fallocate (util-linux)")?;
    if !filled.success() {
        bail!("could not fill the tmpfs with fallocate");
    }
    let log = scratch.join("full.log");
    let st = spawn_kernel(arch, cache, &log)?.wait()?;
    let text = std::fs::read_to_string(&log)?;
    if st.success() {
        bail!("the build succeeded in 300 MB?");
    }
    if !text.contains("No space left on device") {
        bail!("the error does not say the disk is full: {text}");
    }
    if text.contains("panicked") {
        bail!("panic: {text}");
    }
    if !published(cache).is_empty() {
        bail!("something was published after the failure");
    }
    // The line that says what filled up, as the user sees it.
    let why = text
        .lines()
        .find(|l| l.contains("No space left on device"))
        .unwrap_or("")
        .trim()
        .chars()
        .take(160)
        .collect::<String>();
    std::fs::remove_file(&ballast).context("freeing the space")?;
    Ok(format!(
        "{FREE_MB} MB free: failed, nothing published, space freed for the next case (same cache); said: {why}"
    ))
}

fn kill_and_resume(
    arch: Arch,
    scratch: &Path,
    cache: &Path,
    sha: &str,
    kill_after: u64,
) -> (Result<String>, Result<String>) {
    let (l1, l2) = (scratch.join("run1.log"), scratch.join("run2.log"));
    let mut first = match spawn_kernel(arch, cache, &l1) {
        Ok(c) => c,
        Err(e) => return (Err(e), Err(anyhow::anyhow!("no first run"))),
    };
    let setup = (|| -> Result<Child> {
        wait_for_text(&l1, "→ bzimage", Duration::from_secs(600))?;
        let second = spawn_kernel(arch, cache, &l2)?;
        wait_for_text(
            &l2,
            "waiting: another run is building",
            Duration::from_secs(60),
        )?;
        Ok(second)
    })();
    let mut second = match setup {
        Ok(s) => s,
        Err(e) => {
            let _ = first.kill();
            let _ = first.wait();
            return (Err(e), Err(anyhow::anyhow!("not reached")));
        }
    };
    let wait_ok = Ok("the second run printed that it waits for the first's lock".to_string());

    std::thread::sleep(Duration::from_secs(kill_after));
    let _ = first.kill(); // SIGKILL
    let _ = first.wait();
    let killed_at = Instant::now();
    let kill = (|| -> Result<String> {
        if !published(cache).is_empty() {
            bail!("a half-built kernel was published after the SIGKILL");
        }
        // What an interrupted step can leave in the stage dir (the image
        // phase's initramfs writer killed mid-write): never published.
        let stray = plant_stray_in_stage(cache)?;
        let st = second.wait()?;
        let text = std::fs::read_to_string(&l2)?;
        if !st.success() {
            bail!("the second run failed: {}", tail(&text, 5));
        }
        let outs = published(cache);
        let [out] = &outs[..] else {
            bail!("expected one published kernel, found {outs:?}");
        };
        let got = sha256_file(&out.join("bzImage"))?;
        if got != sha {
            bail!("the resumed build's bzImage differs: {got} vs uninterrupted {sha}");
        }
        if out.join(STRAY).exists() {
            bail!(
                "the stray {} the killed run left in its stage dir was published",
                stray.display()
            );
        }
        Ok(format!(
            "killed {kill_after} s into make; the waiting run took over, finished {:.0} s later, published without the stray {STRAY} left in the stage; bzImage sha256 {} = uninterrupted build",
            killed_at.elapsed().as_secs_f64(),
            &got[..16]
        ))
    })();
    (wait_ok, kill)
}

/// A file named as the initramfs writer names its temporary files.
const STRAY: &str = ".initramfs-drill.tmp";

/// Writes [`STRAY`] into the stage dir of the kernel build in `cache`.
fn plant_stray_in_stage(cache: &Path) -> Result<PathBuf> {
    let builds: Vec<PathBuf> = std::fs::read_dir(cache.join("build"))
        .context("reading the scratch cache's build dirs")?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("kernel-"))
        })
        .collect();
    let [build] = &builds[..] else {
        bail!("expected one kernel build dir in the scratch cache, found {builds:?}");
    };
    let stage = build.join(".nodeos/stage");
    create_dir_all(&stage)?;
    let stray = stage.join(STRAY);
    std::fs::write(&stray, vec![0u8; 1 << 20])
        .with_context(|| format!("writing {}", stray.display()))?;
    Ok(stray)
}

/// Damages the published kernel as a power loss can (blocks never written)
/// and checks both guards: `verify` finds a changed byte of the same size,
/// and the next build refuses an emptied bzImage (the size recorded at
/// publish time differs) instead of reusing it.
fn damaged_output(arch: Arch, scratch: &Path, cache: &Path) -> Result<String> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let verify = || {
        Command::new(&exe)
            .arg("verify")
            .env("NODEOS_CACHE_DIR", cache)
            .env("NODEOS_TARGET_DIR", cache.join("target"))
            .output()
            .context("running cargo xtask verify")
    };
    let outs = published(cache);
    let [out] = &outs[..] else {
        bail!("expected one published kernel, found {outs:?}");
    };
    let o = verify()?;
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success() || !said.contains(" 0 damaged") {
        bail!("verify of the intact output: {}", said.trim());
    }

    let bz = out.join("bzImage");
    let mut bytes = std::fs::read(&bz)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&bz, &bytes).with_context(|| format!("writing {}", bz.display()))?;
    let o = verify()?;
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = said
        .lines()
        .find(|l| l.starts_with("DAMAGED"))
        .unwrap_or("")
        .to_string();
    if o.status.success() || !line.contains("bzImage: sha256") {
        bail!(
            "verify did not find a flipped byte in bzImage ({}): {}",
            o.status,
            said.trim()
        );
    }

    std::fs::File::create(&bz).with_context(|| format!("emptying {}", bz.display()))?;
    let log = scratch.join("damaged.log");
    let mut run = spawn_kernel(arch, cache, &log)?;
    let seen = wait_for_text(&log, "is damaged", Duration::from_secs(120));
    // Building it again is the kernel case above: stop here.
    let _ = run.kill();
    let _ = run.wait();
    seen?;
    if out.exists() {
        bail!(
            "the damaged output {} is still published after the next run refused it",
            out.display()
        );
    }
    let text = std::fs::read_to_string(&log)?;
    let refused = text
        .lines()
        .find(|l| l.contains("is damaged"))
        .unwrap_or("")
        .trim()
        .to_string();
    Ok(format!(
        "verify: {}; the next build: {refused}",
        line.trim()
    ))
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
