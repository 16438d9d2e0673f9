//! `cargo xtask drill`: the fault cases that need a real phase, run against
//! the kernel phase (the cheapest real one: a few minutes) in a scratch
//! cache, and compared with the kernel in the user's own cache:
//!
//! - a corrupt and a truncated download are refused with both hashes and
//!   deleted;
//! - a full disk (a tmpfs filled up, mounted in a user namespace: no root)
//!   fails the phase with the path, publishes nothing, and the same cache
//!   builds once space is freed;
//! - two runs at once: the second waits for the lock and says so; the first
//!   is SIGKILLed in the middle of its make; the second resumes the make
//!   and publishes a bzImage byte-identical to an uninterrupted build;
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
    nodeos_build::host::require("drill", &[nodeos_build::host::Need::Kernel])?;
    let started = Instant::now();
    let mut cases = vec![non_root()];

    eprintln!("drill: the reference kernel ({arch}) from your cache (built if missing)");
    let reference = kernel::build(&env, arch)?;
    let sha = sha256_file(&reference.bzimage)?;

    let scratch = env.cache_dir.join("drill");
    remove_path(&scratch)?;
    create_dir_all(&scratch)?;
    cases.push(Case::of(
        "corrupt download",
        corrupt_download(&env, &scratch.join("dl"), false),
    ));
    cases.push(Case::of(
        "truncated download",
        corrupt_download(&env, &scratch.join("dl"), true),
    ));

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

    let mut table = String::new();
    writeln!(table, "\n{:<8} {:<28} detail", "result", "case")?;
    for c in &cases {
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
    let names: [&'static str; 3] = ["disk full", "concurrent run waits", "sigkill mid-make"];
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
/// the bad file deleted.
fn corrupt_download(env: &Env, dl: &Path, truncate: bool) -> Result<String> {
    let manifest = toolchain::manifest();
    let chosen = fetch::choose(env, &manifest, "musl")?;
    let s = &chosen.main;
    let good = std::fs::read(env.dl_dir.join(&s.file)).with_context(|| {
        format!(
            "{} is not in the download dir; run `cargo xtask fetch`",
            s.file
        )
    })?;
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
    let err = match fetch::ensure(&mut f, &manifest, "musl") {
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
    cases.push(Case::of("concurrent run waits", wait));
    cases.push(Case::of("sigkill mid-make", kill));
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
        Ok(format!(
            "killed {kill_after} s into make; the waiting run took over, finished {:.0} s later; bzImage sha256 {} = uninterrupted build",
            killed_at.elapsed().as_secs_f64(),
            &got[..16]
        ))
    })();
    (wait_ok, kill)
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
