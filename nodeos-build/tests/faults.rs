//! SIGKILL during each kind of step of a real (small) phase: download,
//! extract, configure, make, install, publish. After a rerun the output
//! must be byte-identical to an uninterrupted build's, and nothing partial
//! may ever be published.

use nodeos_build::fetch::{self, Fetcher};
use nodeos_build::{tree, Env, Key, Manifest, PhaseRun};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A tarball of a small C project whose make takes a few seconds.
fn project_tarball(dir: &Path) -> Vec<u8> {
    let src = dir.join("proj-1");
    std::fs::create_dir_all(&src).unwrap();
    let mut objs = Vec::new();
    for i in 0..12 {
        std::fs::write(
            src.join(format!("f{i}.c")),
            format!("int f{i}(void) {{ return {i}; }}\n"),
        )
        .unwrap();
        objs.push(format!("f{i}.o"));
    }
    let calls: String = (0..12).map(|i| format!("f{i}()+")).collect();
    let decls: String = (0..12).map(|i| format!("int f{i}(void);")).collect();
    std::fs::write(src.join("main.c"), format!("#include <stdio.h>\n{decls}\nint main(void) {{ printf(\"%d\\n\", {calls}0); return 0; }}\n")).unwrap();
    std::fs::write(
        src.join("Makefile"),
        format!(
            "include config.mk\nprog: main.o {objs}\n\t$(CC) -o $@ $^\n%.o: %.c\n\tsleep 0.4\n\t$(CC) -O2 -c $< -o $@\n",
            objs = objs.join(" ")
        ),
    )
    .unwrap();
    // Incompressible padding so that the slow download lasts seconds.
    let mut x: u32 = 12345;
    let noise: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    std::fs::write(src.join("noise.bin"), noise).unwrap();
    let tar = dir.join("proj-1.tar.gz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&tar)
        .arg("-C")
        .arg(dir)
        .arg("proj-1")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(tar).unwrap()
}

/// Serves the tarball slowly (so a download can be killed half-way).
fn serve_slowly(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let mut req = [0u8; 1024];
                let _ = s.read(&mut req);
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                for chunk in body.chunks(256) {
                    if s.write_all(chunk).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
    });
    format!("http://{addr}/proj-1.tar.gz")
}

fn manifest(url: &str, sha: &str) -> Manifest {
    Manifest::parse(
        &format!("[[source]]\nname = \"proj\"\nvariant = \"upstream\"\nversion = \"1\"\nfile = \"proj-1.tar.gz\"\nsha256 = \"{sha}\"\nurls = [\"{url}\"]\n"),
        "faults",
    )
    .unwrap()
}

/// The child: runs the phase; `FAULT_MARK_AT=<step>` makes it write a
/// marker file when that step is under way (the parent then kills it).
#[test]
fn fault_child() {
    let Ok(root) = std::env::var("FAULT_ROOT") else {
        return;
    };
    let root = PathBuf::from(root);
    let env = Env::for_tests(&root, &root);
    let url = std::env::var("FAULT_URL").unwrap();
    let sha = std::env::var("FAULT_SHA").unwrap();
    let mark_at = std::env::var("FAULT_MARK_AT").unwrap_or_default();
    let mark = |step: &str| {
        if step == mark_at {
            std::fs::write(root.join("marker"), step).unwrap();
            std::thread::sleep(Duration::from_secs(30));
        }
    };
    let m = manifest(&url, &sha);
    if mark_at == "download" {
        std::fs::write(root.join("marker"), "download").unwrap();
    }
    let mut f = Fetcher::new(&env).unwrap();
    let src = fetch::ensure(&mut f, &m, "proj").unwrap();
    let mut k = Key::new("faults", 1);
    k.source(&src.main);
    let out = PhaseRun::new(&env, "faults", None, k)
        .run(|ctx| {
            let b = ctx.build_dir().to_path_buf();
            ctx.step("extract", |ctx| {
                tree::extract(ctx, &ctx.env.dl_dir.join(&src.main.file), &b.join("src"))?;
                mark("extract");
                Ok(())
            })?;
            ctx.step("configure", |ctx| {
                let mut c = Command::new("sh");
                c.current_dir(b.join("src"))
                    .args(["-c", "echo 'CC = cc' > config.mk"]);
                ctx.run(c)?;
                mark("configure");
                Ok(())
            })?;
            ctx.resumable_step("make", |ctx| {
                if mark_at == "make" {
                    std::fs::write(root.join("marker"), "make").unwrap();
                }
                let mut c = Command::new("make");
                c.current_dir(b.join("src")).arg("-j2");
                ctx.run(c)
            })?;
            ctx.step("install", |ctx| {
                std::fs::copy(b.join("src/prog"), ctx.out_dir().join("prog"))?;
                mark("install");
                Ok(())
            })?;
            // Everything is built; the engine is about to publish.
            mark("publish");
            Ok(())
        })
        .unwrap();
    println!("RESULT {}", out.dir.display());
}

fn run_child(root: &Path, url: &str, sha: &str, mark_at: Option<&str>) -> std::process::Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["fault_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("FAULT_ROOT", root)
        .env("FAULT_URL", url)
        .env("FAULT_SHA", sha)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(m) = mark_at {
        c.env("FAULT_MARK_AT", m);
    }
    c.spawn().unwrap()
}

fn finish(child: std::process::Child) -> PathBuf {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest prints "test fault_child ... " before the test's own output.
    let line = text
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, p)| p))
        .expect("RESULT line");
    PathBuf::from(line.trim())
}

#[test]
fn sigkill_at_every_kind_of_step_then_rerun_gives_identical_output() {
    let work = tempfile::tempdir().unwrap();
    let body = project_tarball(work.path());
    let sha = nodeos_build::util::sha256_bytes(&body);
    let url = serve_slowly(body);

    let clean_root = work.path().join("clean");
    let reference =
        std::fs::read(finish(run_child(&clean_root, &url, &sha, None)).join("prog")).unwrap();
    assert!(!reference.is_empty());

    for step in [
        "download",
        "extract",
        "configure",
        "make",
        "install",
        "publish",
    ] {
        let root = work.path().join(step);
        std::fs::create_dir_all(&root).unwrap();
        let mut child = run_child(&root, &url, &sha, Some(step));
        let started = Instant::now();
        while !root.join("marker").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{step}: never reached"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the step get properly under way (a make has compiled some
        // objects, a download has some bytes).
        std::thread::sleep(Duration::from_millis(if step == "make" {
            1500
        } else {
            300
        }));
        child.kill().unwrap();
        let _ = child.wait();
        let env = Env::for_tests(&root, &root);
        let published = env.cache_dir.join("out/faults");
        let entries: Vec<_> = std::fs::read_dir(&published)
            .map(|d| d.flatten().collect())
            .unwrap_or_default();
        assert!(
            entries.is_empty(),
            "{step}: something was published by a killed run: {entries:?}"
        );
        assert!(
            !env.dl_dir.join("proj-1.tar.gz").exists() || step != "download",
            "{step}: a partial download was kept"
        );
        std::fs::remove_file(root.join("marker")).unwrap();
        let dir = finish(run_child(&root, &url, &sha, None));
        let got = std::fs::read(dir.join("prog")).unwrap();
        assert_eq!(
            got, reference,
            "{step}: the rerun's output differs from an uninterrupted build's"
        );
        let run = Command::new(dir.join("prog")).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "66", "{step}");
    }
}
