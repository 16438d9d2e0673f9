//! The engine against real processes, files and sockets: interrupted
//! phases, concurrent runs, downloads from a local HTTP server.

use nodeos_build::fetch::{self, Fetcher};
use nodeos_build::{Env, Key, Manifest, PhaseRun};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn test_env(root: &Path) -> Env {
    Env::for_tests(root, root)
}

/// Re-runs this test binary as a child that executes one scenario.
fn child(root: &Path, scenario: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env("NODEOS_TEST_CHILD", scenario)
        .env("NODEOS_TEST_ROOT", root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn slow_key() -> Key {
    let mut k = Key::new("slow", 1);
    k.str("what", "engine test");
    k
}

/// The child side of the multi-process tests.
#[test]
fn child_entry() {
    let Ok(scenario) = std::env::var("NODEOS_TEST_CHILD") else {
        return;
    };
    let root = PathBuf::from(std::env::var("NODEOS_TEST_ROOT").unwrap());
    let env = test_env(&root);
    let counter = root.join("builds.txt");
    if scenario == "disk" {
        return disk_scenario(&env);
    }
    let out = PhaseRun::new(&env, "slow", None, slow_key())
        .run(|ctx| {
            ctx.step("first", |ctx| {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&counter)?;
                writeln!(f, "first {}", std::process::id())?;
                std::fs::write(ctx.build_dir().join("first.txt"), "1")?;
                Ok(())
            })?;
            ctx.resumable_step("second", |ctx| {
                // Written while the step is under way (not in its first tick).
                std::thread::sleep(Duration::from_millis(50));
                std::fs::write(ctx.build_dir().join("partial.o"), "half-written")?;
                let secs = if scenario == "hang" { "60" } else { "2" };
                let mut c = Command::new("sleep");
                c.arg(secs);
                ctx.run(c)?;
                std::fs::write(ctx.out_dir().join("result.txt"), "complete")?;
                Ok(())
            })
        })
        .unwrap();
    println!("RESULT cached={}", out.cached);
}

fn wait_for(path: &Path, timeout: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < timeout,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn killed_phase_is_rebuilt_not_reused() {
    let d = tempfile::tempdir().unwrap();
    let env = test_env(d.path());
    let mut c = child(d.path(), "hang").spawn().unwrap();
    let key = slow_key().hex();
    let build = nodeos_build::cache::build_dir(&env, "slow", None, &key);
    wait_for(
        &build.join(".nodeos/stamps/second.running"),
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_millis(300));
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();
    let phase = PhaseRun::new(&env, "slow", None, slow_key());
    assert!(
        phase.cached().is_none(),
        "a killed phase must not look done"
    );
    assert!(build.join(".nodeos/stamps/first.done").exists());
    assert!(build.join("partial.o").exists());

    // Re-run: the finished step is not redone, the interrupted one resumes
    // with the file written just before the kill removed.
    let out = child(d.path(), "fast").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let builds = std::fs::read_to_string(d.path().join("builds.txt")).unwrap();
    assert_eq!(
        builds.lines().count(),
        1,
        "step `first` ran again: {builds}"
    );
    let published = phase.cached().expect("published after the re-run");
    assert_eq!(
        std::fs::read_to_string(published.join("result.txt")).unwrap(),
        "complete"
    );
    let timings = nodeos_build::timings::read(&published).unwrap();
    let how: Vec<(&str, &str)> = timings
        .steps
        .iter()
        .map(|s| (s.step.as_str(), s.how.name()))
        .collect();
    assert_eq!(how, [("first", "earlier"), ("second", "resumed")]);
    let log = std::fs::read_to_string(env.log_dir(None).join("slow.log")).unwrap();
    assert!(
        log.contains("removed") && log.contains("partial.o"),
        "suspect file not removed:\n{log}"
    );
    assert!(!build.exists(), "the build dir is removed once published");
}

#[test]
fn concurrent_runs_build_once() {
    let d = tempfile::tempdir().unwrap();
    let a = child(d.path(), "fast").spawn().unwrap();
    let b = child(d.path(), "fast").spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for o in [&a, &b] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let builds = std::fs::read_to_string(d.path().join("builds.txt")).unwrap();
    assert_eq!(builds.lines().count(), 1, "built more than once: {builds}");
    let outs = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
    assert!(
        outs.contains("RESULT cached=false") && outs.contains("RESULT cached=true"),
        "{outs}"
    );
    let errs = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(
        errs.contains("waiting: another run is building slow"),
        "the waiting run says so:\n{errs}"
    );
}

#[test]
fn failing_step_reports_log_tail_and_stays_unpublished() {
    let d = tempfile::tempdir().unwrap();
    let env = test_env(d.path());
    let mut k = Key::new("fails", 1);
    k.str("x", "y");
    let err = PhaseRun::new(&env, "fails", None, k.clone())
        .run(|ctx| {
            ctx.step("compile", |ctx| {
                let mut c = Command::new("sh");
                c.args([
                    "-c",
                    "echo line-one; echo 'fatal: something broke' >&2; exit 3",
                ]);
                ctx.run(c)
            })
        })
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("fatal: something broke") && msg.contains("fails.log"),
        "{msg}"
    );
    assert!(PhaseRun::new(&env, "fails", None, k).cached().is_none());
}

/// A one-shot HTTP/1.1 server on 127.0.0.1: `/good` serves the body,
/// `/truncated` promises it all but sends half, `/corrupt` flips a byte.
fn serve(body: Vec<u8>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut s = stream.unwrap();
            let mut req = [0u8; 1024];
            let n = s.read(&mut req).unwrap();
            let line = String::from_utf8_lossy(&req[..n]).to_string();
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, send): (&str, Vec<u8>) = match path.as_str() {
                "/good" => ("200 OK", body.clone()),
                "/truncated" => ("200 OK", body[..body.len() / 2].to_vec()),
                "/corrupt" => {
                    let mut b = body.clone();
                    b[7] ^= 1;
                    ("200 OK", b)
                }
                _ => ("404 Not Found", Vec::new()),
            };
            let len = if path == "/truncated" {
                body.len()
            } else {
                send.len()
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
            );
            let _ = s.write_all(&send);
        }
    });
    format!("http://{addr}")
}

fn manifest_for(url: &str, sha: &str) -> Manifest {
    Manifest::parse(
        &format!(
            "[[source]]\nname = \"pkg\"\nvariant = \"upstream\"\nversion = \"1\"\nfile = \"pkg-1.tar\"\nsha256 = \"{sha}\"\nurls = [\"{url}\"]\n"
        ),
        "test",
    )
    .unwrap()
}

#[test]
fn http_provider_fetches_and_verifies() {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sha = nodeos_build::util::sha256_bytes(&body);
    let base = serve(body.clone(), 4);
    let d = tempfile::tempdir().unwrap();
    let env = test_env(d.path());
    let dest = env.dl_dir.join("pkg-1.tar");

    for (path, needle) in [
        ("/truncated", "truncated download"),
        ("/corrupt", "checksum mismatch"),
        ("/missing", "404"),
    ] {
        let m = manifest_for(&format!("{base}{path}"), &sha);
        let mut f = Fetcher::new(&env).unwrap();
        let e = format!("{:#}", fetch::ensure(&mut f, &m, "pkg").unwrap_err());
        assert!(e.contains(needle), "{path}: {e}");
        assert!(!dest.exists(), "{path}: a bad download must not be kept");
        let partial: Vec<_> = walk_files(&env.dl_dir.join(".partial"));
        assert!(
            partial.is_empty(),
            "{path}: partial files left: {partial:?}"
        );
    }
    let m = manifest_for(&format!("{base}/good"), &sha);
    let mut f = Fetcher::new(&env).unwrap();
    fetch::ensure(&mut f, &m, "pkg").unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);

    // Second fetch: no download (the server has no requests left) and the
    // file is verified again.
    fetch::ensure(&mut f, &m, "pkg").unwrap();
    // A file corrupted in the download dir is refused and deleted.
    let mut bytes = body.clone();
    bytes[100] ^= 0xff;
    std::fs::write(&dest, &bytes).unwrap();
    let e = format!("{:#}", fetch::ensure(&mut f, &m, "pkg").unwrap_err());
    assert!(
        e.contains(&sha) && e.contains(&nodeos_build::util::sha256_bytes(&bytes)),
        "{e}"
    );
    assert!(!dest.exists());
}

#[test]
fn offline_lists_what_to_put_where() {
    let d = tempfile::tempdir().unwrap();
    let mut env = test_env(d.path());
    env.offline = true;
    let m = manifest_for("http://127.0.0.1:9/none", &"ab".repeat(32));
    let mut f = Fetcher::new(&env).unwrap();
    let e = format!("{:#}", fetch::ensure(&mut f, &m, "pkg").unwrap_err());
    assert!(
        e.contains("--offline")
            && e.contains("pkg-1.tar")
            && e.contains(&env.dl_dir.display().to_string()),
        "{e}"
    );
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    if !dir.exists() {
        return Vec::new();
    }
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

/// Writes 3 MB in a step; run on a cache dir that is a 1 MB tmpfs.
fn disk_scenario(env: &Env) {
    let mut k = Key::new("disk", 1);
    k.str("size", "3MB");
    let r = PhaseRun::new(env, "disk", None, k).run(|ctx| {
        ctx.step("fill", |ctx| {
            let mut c = Command::new("sh");
            c.current_dir(ctx.build_dir())
                .args(["-c", "head -c 3000000 /dev/zero > big.bin"]);
            ctx.run(c)?;
            std::fs::rename(
                ctx.build_dir().join("big.bin"),
                ctx.out_dir().join("big.bin"),
            )?;
            Ok(())
        })
    });
    match r {
        Ok(out) => println!("RESULT published={}", out.dir.display()),
        Err(e) => {
            println!("RESULT error={e:#}");
            std::process::exit(1);
        }
    }
}

/// Disk full during a phase: a clear error naming the file, nothing
/// published, and the next run after space is freed succeeds. The cache is
/// a small tmpfs mounted in a user namespace (no root needed).
#[test]
fn disk_full_fails_clearly_and_recovers() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let exe = std::env::current_exe().unwrap();
    let script = r#"
set -u
mount -t tmpfs -o size=1m tmpfs "$CACHE" || { echo "MOUNT-FAILED"; exit 0; }
"$EXE" child_entry --exact --nocapture --test-threads=1 > "$ROOT/first.out" 2>&1
echo "first=$?"
ls "$CACHE/out/disk" 2>/dev/null | grep -v '^\.' > "$ROOT/published-after-failure.txt"
mount -o remount,size=16m "$CACHE"
"$EXE" child_entry --exact --nocapture --test-threads=1 > "$ROOT/second.out" 2>&1
echo "second=$?"
"#;
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
        .env("CACHE", &cache)
        .env("EXE", &exe)
        .env("ROOT", d.path())
        .env("NODEOS_TEST_CHILD", "disk")
        .env("NODEOS_TEST_ROOT", d.path())
        .output()
        .expect("unshare (util-linux) is needed for this test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("MOUNT-FAILED"),
        "cannot mount a tmpfs in a user namespace here: {text}"
    );
    assert!(
        text.contains("first=1"),
        "the full disk must fail the phase: {text}"
    );
    let first = std::fs::read_to_string(d.path().join("first.out")).unwrap();
    assert!(
        first.contains("No space left on device") && first.contains("big.bin"),
        "{first}"
    );
    assert!(
        first.contains("disk.log"),
        "the error names the log: {first}"
    );
    let published =
        std::fs::read_to_string(d.path().join("published-after-failure.txt")).unwrap_or_default();
    assert!(
        published.trim().is_empty(),
        "nothing may be published after a failure: {published}"
    );
    assert!(
        text.contains("second=0"),
        "the run after freeing space succeeds: {text}\n{}",
        std::fs::read_to_string(d.path().join("second.out")).unwrap_or_default()
    );
}
