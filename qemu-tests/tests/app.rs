//! Apps booted as PID 1, on both architectures, on the product's kernel
//! with its NIC, IP autoconfiguration and RTC: an HTTP server reached from
//! the host through a forwarded port, a guest that reaches a server on the
//! host, its clock, and how an app's exit status comes out.
//!
//! The node in these guests is a TEST FIXTURE (Debian's dynamically linked
//! node 18 with its libraries: see `support/debian_node_fixture.rs`), not
//! NodeOS's static node, which CI cannot build. The tests that need our own
//! node are at the end, ignored unless asked for, and say so.

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use initramfs::{App, AppOptions};
use qemu_tests::app::{AppStatus, HttpWait, StatusSource, wait_app_exit, wait_for_http};
use qemu_tests::net::{GUEST_ADDR, HOST_FROM_GUEST, free_port};
use qemu_tests::{Arch, Guest, Network, PortForward};
use support::debian_node_fixture::{FIXTURE_NODE_VERSION, initramfs_with_app};

/// From QEMU start to the app's answer or end, before the multiplier: the
/// fixture initramfs is ~90 MB unpacked and its node links a dozen shared
/// libraries, which TCG makes slow on a busy machine.
const APP_TIMEOUT: Duration = Duration::from_secs(240);
/// The fixture's unpacked size plus node's heap.
const FIXTURE_MEMORY_MIB: u32 = 512;

/// A test initramfs that is deleted with the guest's test (they are large).
struct Booted {
    guest: Guest,
    initrd: PathBuf,
}

impl Drop for Booted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.initrd);
    }
}

fn boot(arch: Arch, app: &App, name: &str, forwards: Vec<PortForward>) -> Booted {
    let initrd = initramfs_with_app(arch, Some(app));
    let mut cfg = support::config(arch, initrd.clone(), &format!("{name}-{arch}"));
    cfg.memory_mib = FIXTURE_MEMORY_MIB;
    cfg.network = Some(Network::with_forwards(forwards));
    cfg.init_args = app.init_args();
    let guest = Guest::launch(&cfg).unwrap_or_else(|e| panic!("launching {arch}: {e:#}"));
    Booted { guest, initrd }
}

fn example_dir() -> PathBuf {
    support::workspace_root().join("examples/hello-server")
}

/// An app directory with one `index.js` holding `js`.
fn app_of(js: &str) -> (tempfile::TempDir, App) {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("index.js"), js).unwrap();
    let app = App::scan(d.path(), &AppOptions::default()).unwrap();
    (d, app)
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// The repository's example server, booted with a forwarded port: the host
/// fetches over real TCP and gets the guest's node version, arch and
/// uptime.
fn example_serves_http_through_a_forwarded_port(arch: Arch) {
    let app = App::scan(&example_dir(), &AppOptions::default()).unwrap();
    assert_eq!(app.guest_entry(), "/app/server.js", "package.json's main");
    let port = free_port().expect("a free port on 127.0.0.1");
    let mut b = boot(
        arch,
        &app,
        "app-example",
        vec![PortForward {
            host: port,
            guest: 80,
        }],
    );
    let g = &mut b.guest;
    let first = match wait_for_http(g, port, "/", APP_TIMEOUT).unwrap_or_else(|e| panic!("{e:#}")) {
        HttpWait::Answered(r, at) => {
            println!(
                "[timing] {arch} ({}): boot to first HTTP response {:.2} s (fixture node)",
                g.accel(),
                at.as_secs_f64()
            );
            r
        }
        HttpWait::AppExited(end) => {
            panic!("the example ended with {} before answering", end.status)
        }
    };
    assert_eq!(first.status, 200, "{first:?}");
    let doc: serde_json::Value = serde_json::from_str(&first.body).expect("a JSON body");
    assert_eq!(doc["node"], FIXTURE_NODE_VERSION, "{doc}");
    assert_eq!(doc["arch"], arch.node_cpu(), "{doc}");
    assert_eq!(doc["pid"], 1, "node is PID 1: {doc}");
    let up = doc["uptime"].as_f64().expect("uptime is a number");
    assert!(
        up > 0.0 && up < APP_TIMEOUT.as_secs_f64() * 4.0,
        "uptime {up}"
    );
    g.expect("hello-server: listening on port 80", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));

    // A second request a second later: the guest's uptime moves on.
    std::thread::sleep(Duration::from_millis(1100));
    let addr = (qemu_tests::net::FORWARD_BIND, port).into();
    let again = qemu_tests::app::http_get(addr, "/", Duration::from_secs(30)).unwrap();
    let doc2: serde_json::Value = serde_json::from_str(&again.body).unwrap();
    assert!(
        doc2["uptime"].as_f64().unwrap() >= up + 1.0,
        "{doc} then {doc2}"
    );
}

/// One boot: the NIC and loopback are up when node starts (IPv4 and IPv6),
/// the guest reaches a server this test runs on the host through QEMU's
/// gateway, its wall clock is the host's (RTC), and an app whose work is
/// done ends with status 0 and ends QEMU.
fn network_clock_and_clean_exit(arch: Arch) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = listener.local_addr().unwrap().port();
    let token = format!("nodeos-host-token-{}-{}", std::process::id(), now_ms());
    let hits = Arc::new(AtomicUsize::new(0));
    let server = {
        let (token, hits) = (token.clone(), hits.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { continue };
                let mut req = [0u8; 2048];
                let _ = c.read(&mut req);
                hits.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{token}",
                    token.len()
                );
            }
        })
    };
    let js = format!(
        r#"'use strict';
const os = require('os'), http = require('http'), net = require('net');
const fs = require('fs'), dns = require('dns');
const ifs = os.networkInterfaces();
const fam = (a, v) => a.family === 'IPv' + v || a.family === v;
const out = {{
  eth4: (ifs.eth0 || []).filter(a => fam(a, 4)).map(a => a.address),
  eth6: (ifs.eth0 || []).filter(a => fam(a, 6)).map(a => a.address),
  lo: (ifs.lo || []).map(a => a.address),
  now: Date.now(),
}};
const get = (host, port) => new Promise((ok, fail) => http.get({{ host, port, path: '/token' }}, res => {{
  let body = '';
  res.on('data', d => body += d);
  res.on('end', () => ok(body));
}}).on('error', fail));
const v6 = () => new Promise(ok => {{
  const srv = net.createServer(c => c.end('v6-ok')).listen(0, '::1', () => {{
    const c = net.connect(srv.address().port, '::1');
    let got = '';
    c.on('data', d => got += d);
    c.on('end', () => {{ srv.close(); ok(got); }});
  }});
}});
(async () => {{
  out.host = await get('{HOST_FROM_GUEST}', {host_port});
  out.v6 = await v6();
  // Names: nothing resolves until the app (or init) writes /etc/hosts.
  out.before = await dns.promises.lookup('localhost', 4).then(a => a.address, e => e.code);
  fs.mkdirSync('/etc', {{ recursive: true }});
  fs.writeFileSync('/etc/hosts', '127.0.0.1 localhost\n');
  out.after = await dns.promises.lookup('localhost', 4).then(a => a.address, e => e.code);
  console.log('@@NET ' + JSON.stringify(out));
}})().catch(e => {{
  console.log('@@NET ' + JSON.stringify({{ error: String(e) }}));
  process.exitCode = 2;
}});
"#
    );
    let (_dir, app) = app_of(&js);
    let launched = now_ms();
    let mut b = boot(arch, &app, "app-network", Vec::new());
    let g = &mut b.guest;
    let m = g
        .expect(
            qemu_tests::Pattern::regex(r"@@NET (\{[^\r\n]*\})\r?\n").unwrap(),
            APP_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = now_ms();
    let out: serde_json::Value = serde_json::from_str(m.group(1).unwrap()).unwrap();
    assert!(
        out.get("error").is_none(),
        "the guest could not reach the host: {out}"
    );
    assert_eq!(out["host"], token.as_str(), "{out}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the host server saw the request"
    );
    let has = |k: &str, v: &str| out[k].as_array().unwrap().iter().any(|a| a == v);
    assert!(
        has("eth4", &GUEST_ADDR.to_string()),
        "DHCP address on eth0: {out}"
    );
    assert!(
        has("lo", "127.0.0.1") && has("lo", "::1"),
        "loopback up: {out}"
    );
    assert!(
        out["eth6"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("fe80:")),
        "IPv6 link-local address on eth0: {out}"
    );
    assert_eq!(out["v6"], "v6-ok", "an IPv6 loopback connection: {out}");
    // What the README says about names: none before /etc/hosts exists, and
    // `localhost` once the app wrote it.
    assert_ne!(out["before"], "127.0.0.1", "{out}");
    assert_eq!(out["after"], "127.0.0.1", "{out}");
    // The guest's clock came from the RTC: its Date.now(), taken after boot,
    // lies between this test's launch and the line's arrival (the RTC has
    // whole seconds, so a second of slack each side).
    let guest_now = out["now"].as_u64().unwrap() as u128;
    assert!(
        guest_now + 2000 >= launched && guest_now <= seen + 2000,
        "guest clock {guest_now} ms is not within [{launched}, {seen}] ms (host), ±2 s: no RTC?"
    );
    println!(
        "[clock] {arch}: guest Date.now() {} ms after the launch, {} ms before the host saw it",
        guest_now as i128 - launched as i128,
        seen as i128 - guest_now as i128
    );
    let end = wait_app_exit(g, APP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(end.status, AppStatus::Exited(0));
    assert_eq!(
        end.source,
        StatusSource::KernelInitExit,
        "the fixture node has no PID 1 patch: its status comes from the kernel's line"
    );
    assert!(end.qemu.success(), "QEMU: {}", end.qemu);
    drop(server);
}

/// An uncaught exception: its stack on the console, then a non-zero status
/// that the harness reports as such.
fn throwing_app_reports_its_status(arch: Arch) {
    let (_dir, app) = app_of(
        "setTimeout(function nodeosTestThrower() { throw new Error('nodeos-test-boom'); }, 10);\n",
    );
    let mut b = boot(arch, &app, "app-throws", Vec::new());
    let g = &mut b.guest;
    g.expect("Error: nodeos-test-boom", APP_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    g.expect("at Timeout.nodeosTestThrower", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("the stack is on the console: {e}"));
    let end = wait_app_exit(g, APP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        end.status,
        AppStatus::Exited(1),
        "node's status for an uncaught exception"
    );
    assert!(!end.status.success());
    assert!(end.qemu.success(), "QEMU: {}", end.qemu);
}

/// `process.exit(3)`: the status comes through exactly.
fn exit_code_comes_through(arch: Arch) {
    let (_dir, app) = app_of("console.log('leaving with 3'); process.exit(3);\n");
    let mut b = boot(arch, &app, "app-exit3", Vec::new());
    let end = wait_app_exit(&mut b.guest, APP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(end.status, AppStatus::Exited(3));
    assert_eq!(end.source, StatusSource::KernelInitExit);
}

per_arch!(
    example_serves_http_through_a_forwarded_port,
    network_clock_and_clean_exit,
    throwing_app_reports_its_status,
    exit_code_comes_through,
);

/// NodeOS's own static node, from `NODEOS_TEST_NODE_<ARCH>` or
/// `target/nodeos/<arch>/node` (written by `cargo xtask image`). Panics when
/// there is none: an ignored test that is asked for must not pass without
/// it.
fn our_node(arch: Arch) -> PathBuf {
    let var = format!("NODEOS_TEST_NODE_{}", arch.name().to_uppercase());
    let path = std::env::var_os(&var)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            support::workspace_root().join(format!("target/nodeos/{}/node", arch.name()))
        });
    assert!(
        path.is_file(),
        "\n\n*** NEEDS THE BUILT STATIC NODE for {arch}: {} does not exist. Build it with \
         `cargo xtask image --arch {arch}` (about an hour) or set {var}.\n\n",
        path.display()
    );
    path
}

/// The example on NodeOS's own node: the same checks as with the fixture,
/// on the image layout exactly (only /dev/console, /init and /app).
fn our_node_serves_the_example(arch: Arch) {
    let node = our_node(arch);
    let app = App::scan(&example_dir(), &AppOptions::default()).unwrap();
    let initrd = support::work_dir().join(format!("our-node-app-{arch}"));
    let opts = initramfs::Options::from_env().unwrap();
    initramfs::write_archive_to_path(&initramfs::app_layout(&node, &app), &opts, &initrd).unwrap();
    let port = free_port().unwrap();
    let mut cfg = support::config(arch, initrd.clone(), &format!("our-node-app-{arch}"));
    cfg.memory_mib = FIXTURE_MEMORY_MIB;
    cfg.network = Some(Network::with_forwards(vec![PortForward {
        host: port,
        guest: 80,
    }]));
    cfg.init_args = app.init_args();
    let mut b = Booted {
        guest: Guest::launch(&cfg).unwrap(),
        initrd,
    };
    match wait_for_http(&mut b.guest, port, "/", APP_TIMEOUT).unwrap() {
        HttpWait::Answered(r, at) => {
            println!(
                "[timing] {arch}: our node, boot to first HTTP response {:.2} s",
                at.as_secs_f64()
            );
            let doc: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(doc["arch"], arch.node_cpu());
            assert_eq!(doc["pid"], 1);
        }
        HttpWait::AppExited(end) => panic!("ended with {}", end.status),
    }
}

/// NodeOS's own node ends an app itself: names resolve through the files
/// PID 1 wrote (`/etc/hosts`, and `/etc/resolv.conf` from DHCP: QEMU's
/// forwarder), then `process.exit(3)` gives node's status line and a
/// power-off, no kernel panic.
fn our_node_names_and_status_line(arch: Arch) {
    let node = our_node(arch);
    let (_dir, app) = app_of(
        r#"'use strict';
const fs = require('fs'), dns = require('dns');
const read = f => { try { return fs.readFileSync(f, 'utf8'); } catch (e) { return e.code; } };
dns.promises.lookup('localhost', 4).then(a => a.address, e => e.code).then(localhost => {
  console.log('@@NAMES ' + JSON.stringify({ localhost, resolv: read('/etc/resolv.conf') }));
  process.exit(3);
});
"#,
    );
    let initrd = support::work_dir().join(format!("our-node-names-{arch}"));
    let opts = initramfs::Options::from_env().unwrap();
    initramfs::write_archive_to_path(&initramfs::app_layout(&node, &app), &opts, &initrd).unwrap();
    let mut cfg = support::config(arch, initrd.clone(), &format!("our-node-names-{arch}"));
    cfg.memory_mib = FIXTURE_MEMORY_MIB;
    cfg.network = Some(Network::default());
    cfg.init_args = app.init_args();
    let mut b = Booted {
        guest: Guest::launch(&cfg).unwrap(),
        initrd,
    };
    let m = b
        .guest
        .expect(
            qemu_tests::Pattern::regex(r"@@NAMES (\{[^\r\n]*\})\r?\n").unwrap(),
            APP_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let out: serde_json::Value = serde_json::from_str(m.group(1).unwrap()).unwrap();
    assert_eq!(out["localhost"], "127.0.0.1", "{out}");
    assert!(
        out["resolv"]
            .as_str()
            .is_some_and(|r| r.contains(&format!("nameserver {}", qemu_tests::net::DNS_FROM_GUEST))),
        "/etc/resolv.conf names QEMU's forwarder: {out}"
    );
    let end = wait_app_exit(&mut b.guest, APP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(end.status, AppStatus::Exited(3));
    assert_eq!(end.source, StatusSource::NodeStatusLine);
    assert!(end.qemu.success(), "QEMU after the power-off: {}", end.qemu);
}

/// Not a check: boot → REPL prompt of the fixture node, to compare
/// kernels (`NODEOS_TEST_KERNEL_<ARCH>`). `NODEOS_MEASURE_NIC=1` boots with
/// the NIC and `ip=dhcp` (as `cargo xtask` now does), `0` without (as it
/// did before the network); `NODEOS_MEASURE_BOOTS` boots per arch (5).
#[test]
#[ignore = "a measurement, not a check: run by hand with --ignored --nocapture"]
fn measure_fixture_boot_to_prompt() {
    let nic = std::env::var("NODEOS_MEASURE_NIC").is_ok_and(|v| v == "1");
    let boots: usize = std::env::var("NODEOS_MEASURE_BOOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    for arch in [Arch::I386, Arch::X86_64] {
        if std::env::var_os(support::kernel_var(arch)).is_none() {
            println!(
                "[measure] {arch}: SKIPPED (no {} set)",
                support::kernel_var(arch)
            );
            continue;
        }
        let initrd = initramfs_with_app(arch, None);
        let mut runs = Vec::new();
        for i in 0..boots {
            let mut cfg = support::config(arch, initrd.clone(), &format!("measure-{arch}-{i}"));
            cfg.memory_mib = FIXTURE_MEMORY_MIB;
            if nic {
                cfg.network = Some(Network::default());
            }
            let mut g = Guest::launch(&cfg).unwrap();
            runs.push(
                qemu_tests::node_checks::wait_for_prompt(&mut g)
                    .unwrap()
                    .as_secs_f64(),
            );
        }
        let _ = std::fs::remove_file(&initrd);
        let mut sorted = runs.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "[measure] {arch} nic={nic}: boot to prompt median {:.2} s, runs {runs:.2?}",
            sorted[sorted.len() / 2]
        );
    }
}

mod our_node {
    #[test]
    #[ignore = "needs the built static node (cargo xtask image --arch i386, ~1 h): run with --ignored"]
    fn i386_serves_the_example() {
        super::our_node_serves_the_example(qemu_tests::Arch::I386)
    }

    #[test]
    #[ignore = "needs the built static node (cargo xtask image --arch x86_64, ~1 h): run with --ignored"]
    fn x86_64_serves_the_example() {
        super::our_node_serves_the_example(qemu_tests::Arch::X86_64)
    }

    #[test]
    #[ignore = "needs the built static node (cargo xtask image --arch i386, ~1 h): run with --ignored"]
    fn i386_names_and_status_line() {
        super::our_node_names_and_status_line(qemu_tests::Arch::I386)
    }

    #[test]
    #[ignore = "needs the built static node (cargo xtask image --arch x86_64, ~1 h): run with --ignored"]
    fn x86_64_names_and_status_line() {
        super::our_node_names_and_status_line(qemu_tests::Arch::X86_64)
    }
}
