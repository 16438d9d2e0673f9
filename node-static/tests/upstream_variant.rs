//! The upstream (nodejs.org) variant of every declared Node version, as far
//! as it goes without nodejs.org: the real sources file with its URL pointed
//! at a local HTTP server serving a tarball assembled by the test. The download is verified, the tree unpacked, and
//! none of the Debian restoration steps run.

use node_static::NodeVersion;
use nodeos_build::fetch::{self, Fetcher};
use nodeos_build::{Arch, Env, Manifest};

mod common;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

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

/// A small tree laid out like nodejs.org's tarball of `version` (one
/// top-level dir), returned as the tarball's bytes.
fn assemble_tarball(dir: &Path, version: &str) -> Vec<u8> {
    let name = format!("node-v{version}");
    let top = dir.join(&name);
    let major = version.split('.').next().unwrap();
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
        format!("#define NODE_MAJOR_VERSION {major}\n"),
    )
    .unwrap();
    let tarball = dir.join(format!("{name}.tar.xz"));
    let st = Command::new("tar")
        .arg("-cJf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir)
        .arg(&name)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(tarball).unwrap()
}

/// The text of `nv`'s sources file, as versions.toml names it: the test
/// points its real upstream entry at the local server.
fn sources_text(nv: &NodeVersion) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let versions: toml::Value =
        toml::from_str(&std::fs::read_to_string(dir.join("versions.toml")).unwrap()).unwrap();
    let row = versions["version"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["major"].as_str() == Some(nv.major.as_str()))
        .expect("each version has a row");
    std::fs::read_to_string(dir.join(row["sources"].as_str().unwrap())).unwrap()
}

#[test]
fn upstream_tarball_is_fetched_verified_and_used_as_is() {
    let versions = node_static::all_versions();
    assert!(versions.len() >= 2, "Node 18 and 22 are declared");
    for nv in versions {
        upstream_variant_of(nv);
    }
}

fn upstream_variant_of(nv: &NodeVersion) {
    let major = &nv.major;
    let upstream = nv
        .manifest
        .variants("node")
        .into_iter()
        .find(|s| s.variant == "upstream")
        .unwrap_or_else(|| panic!("Node {major} declares an upstream variant"))
        .clone();
    let real_url = &upstream.urls[0];
    let url_path = real_url
        .strip_prefix("https://nodejs.org")
        .unwrap_or_else(|| panic!("Node {major}'s upstream URL is nodejs.org's: {real_url}"));
    assert_eq!(
        url_path,
        format!("/dist/v{0}/node-v{0}.tar.xz", upstream.version)
    );

    let d = tempfile::tempdir().unwrap();
    let body = assemble_tarball(d.path(), &upstream.version);
    let sha = nodeos_build::util::sha256_bytes(&body);
    let (base, requests) = serve(body.clone(), 1);

    // The project's real sources file, only the upstream URL and hash
    // replaced: variant order and names are what users get.
    let real = sources_text(nv);
    assert!(real.contains(real_url.as_str()) && real.contains(&upstream.sha256));
    let text = real
        .replace(real_url.as_str(), &format!("{base}{url_path}"))
        .replace(&upstream.sha256, &sha);
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
        "Node {major}: an empty download dir tries upstream first"
    );
    assert_eq!(
        node.with.len(),
        0,
        "Node {major}: upstream needs nothing beside its tarball"
    );
    assert_eq!(requests.try_recv().unwrap(), url_path);
    assert_eq!(
        std::fs::read(env.dl_dir.join(&upstream.file)).unwrap(),
        body
    );

    let tree = common::prepared_tree(&env, &node, &nv.recipe, "upstream");
    assert_eq!(
        std::fs::read_to_string(tree.join("configure.py")).unwrap(),
        "# assembled for the test\n"
    );
    // No restoration step touched the tree: upstream's acorn stays, no ada
    // component, no version header rewritten.
    assert_eq!(
        std::fs::read_to_string(tree.join("deps/acorn/acorn/dist/acorn.js")).unwrap(),
        "// upstream's own acorn\n",
        "Node {major}"
    );
    assert!(!tree.join("ada").exists(), "Node {major}");
    assert!(!tree.join("src/acorn_version.h").exists(), "Node {major}");

    // Its configure line links nothing from outside the tarball.
    for arch in Arch::all() {
        let args = node_static::recipe::configure_args(
            &nv.recipe,
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
            "Node {major} {arch}: {args:?}"
        );
    }
}
