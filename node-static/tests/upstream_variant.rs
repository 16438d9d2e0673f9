//! The upstream (nodejs.org) variant, as far as it goes without nodejs.org:
//! the real manifest with its URL pointed at a local HTTP server serving a
//! tarball assembled here. The download is verified, the tree unpacked, and
//! none of the Debian restoration steps run.

use nodeos_build::fetch::{self, Fetcher};
use nodeos_build::{Arch, Env, Manifest};

mod common;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

const UPSTREAM_URL: &str = "https://nodejs.org/dist/v18.20.4/node-v18.20.4.tar.xz";

/// Serves `body` at every path, `requests` times, counting them.
fn serve(body: Vec<u8>, requests: usize) -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut s = stream.unwrap();
            let mut req = [0u8; 2048];
            let n = s.read(&mut req).unwrap_or(0);
            let line = String::from_utf8_lossy(&req[..n]).to_string();
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let _ = tx.send(path);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    (format!("http://{addr}"), rx)
}

/// A small tree laid out like nodejs.org's tarball (one top-level dir).
fn assemble_tarball(dir: &Path) -> PathBuf {
    let top = dir.join("node-v18.20.4");
    std::fs::create_dir_all(top.join("src")).unwrap();
    std::fs::create_dir_all(top.join("deps/acorn/acorn/dist")).unwrap();
    std::fs::write(top.join("configure.py"), "# assembled for the test\n").unwrap();
    std::fs::write(
        top.join("deps/acorn/acorn/dist/acorn.js"),
        "// upstream's own acorn\n",
    )
    .unwrap();
    std::fs::write(
        top.join("src/node_version.h"),
        "#define NODE_MAJOR_VERSION 18\n",
    )
    .unwrap();
    let tarball = dir.join("node-v18.20.4.tar.xz");
    let st = Command::new("tar")
        .arg("-cJf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir)
        .arg("node-v18.20.4")
        .status()
        .unwrap();
    assert!(st.success());
    tarball
}

#[test]
fn upstream_tarball_is_fetched_verified_and_used_as_is() {
    let d = tempfile::tempdir().unwrap();
    let body = std::fs::read(assemble_tarball(d.path())).unwrap();
    let sha = nodeos_build::util::sha256_bytes(&body);
    let (base, requests) = serve(body.clone(), 1);

    // The project's real sources.toml, only the upstream URL and hash
    // replaced: variant order and names are what users get.
    let real = include_str!("../sources.toml");
    let real_sha = node_static::manifest()
        .variants("node")
        .into_iter()
        .find(|s| s.variant == "upstream")
        .expect("an upstream variant is declared")
        .sha256
        .clone();
    assert!(real.contains(UPSTREAM_URL) && real.contains(&real_sha));
    let text = real
        .replace(
            UPSTREAM_URL,
            &format!("{base}/dist/v18.20.4/node-v18.20.4.tar.xz"),
        )
        .replace(&real_sha, &sha);
    let manifest = Manifest::parse(&text, "test").unwrap();

    // A project without patches of its own: this small tree is not Node's,
    // so the project's Node patches cannot apply to it (they are checked
    // against the real tree in nodeos_init_patch.rs).
    let project = d.path().join("project");
    std::fs::create_dir_all(project.join("patches")).unwrap();
    let env = Env::for_tests(&d.path().join("root"), &project);
    std::env::remove_var("NODEOS_SOURCE_VARIANT");
    let mut fetcher = Fetcher::new(&env).unwrap();
    let node = fetch::ensure(&mut fetcher, &manifest, "node").unwrap();
    assert_eq!(
        node.variant(),
        "upstream",
        "an empty download dir tries upstream first"
    );
    assert_eq!(
        node.with.len(),
        0,
        "upstream needs nothing beside its tarball"
    );
    assert_eq!(
        requests.try_recv().unwrap(),
        "/dist/v18.20.4/node-v18.20.4.tar.xz"
    );
    assert_eq!(
        std::fs::read(env.dl_dir.join("node-v18.20.4.tar.xz")).unwrap(),
        body
    );

    let tree = common::prepared_tree(&env, &node, "upstream");
    assert_eq!(
        std::fs::read_to_string(tree.join("configure.py")).unwrap(),
        "# assembled for the test\n"
    );
    // No Debian step touched the tree: upstream's acorn stays, no ada
    // component, no version header rewritten.
    assert_eq!(
        std::fs::read_to_string(tree.join("deps/acorn/acorn/dist/acorn.js")).unwrap(),
        "// upstream's own acorn\n"
    );
    assert!(!tree.join("ada").exists());
    assert!(!tree.join("src/acorn_version.h").exists());

    // Its configure line has nothing of the Debian restoration.
    let recipe = node_static::Recipe::builtin();
    for arch in Arch::all() {
        let args = node_static::recipe::configure_args(
            &recipe,
            arch,
            "upstream",
            &node_static::recipe::ConfigurePaths::default(),
        )
        .unwrap();
        assert!(args.contains(&"--fully-static".to_string()), "{args:?}");
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with("--shared-") || a.starts_with("--with-icu-source")),
            "{arch}: {args:?}"
        );
    }
}
