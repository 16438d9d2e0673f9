//! Sources from language registries and Debian's pool, each against a
//! local HTTP server: npm (through the real `npm pack`), PyPI (through the
//! real `pip download`) and a file under the Debian mirror's `pool/`. A
//! registry serving other bytes than the pinned ones is refused, naming
//! both hashes, and nothing is kept.
//!
//! One test function: the clients are pointed at the local server through
//! their own environment variables, which are per process.

use nodeos_build::fetch::{self, Fetcher};
use nodeos_build::util::sha256_bytes;
use nodeos_build::{Env, Manifest};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// An HTTP/1.1 server on 127.0.0.1 answering GETs from a path → body map
/// (query strings and a trailing `/` ignored); it records each path asked.
struct Server {
    base: String,
    asked: Arc<Mutex<Vec<String>>>,
}

/// The routes are made from the server's own base URL (an npm packument
/// names its tarball by absolute URL).
fn serve(routes: impl FnOnce(&str) -> BTreeMap<String, Vec<u8>>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let routes = routes(&base);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req).to_string();
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let path = path.split('?').next().unwrap_or("/");
            let path = path.trim_end_matches('/').to_string();
            log.lock().unwrap().push(path.clone());
            let (status, body) = match routes.get(&path) {
                Some(b) => ("200 OK", b.clone()),
                None => ("404 Not Found", Vec::new()),
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                if path.contains("/simple/") { "text/html" } else { "application/octet-stream" },
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    Server { base, asked }
}

fn run(c: &mut Command) {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{c:?}: {out:?}");
}

/// An npm package tarball (`package/package.json`), gzip'd by tar.
fn npm_tarball(dir: &Path, name: &str, version: &str, marker: &str) -> Vec<u8> {
    let root = dir.join(format!("npm-{marker}"));
    std::fs::create_dir_all(root.join("package")).unwrap();
    std::fs::write(
        root.join("package/package.json"),
        format!("{{\"name\":\"{name}\",\"version\":\"{version}\",\"description\":\"{marker}\"}}"),
    )
    .unwrap();
    run(Command::new("tar")
        .current_dir(&root)
        .args(["czf", "p.tgz", "package"]));
    std::fs::read(root.join("p.tgz")).unwrap()
}

/// An sdist with an in-tree PEP 517 backend, so that pip prepares its
/// metadata without installing anything from the index.
fn sdist(dir: &Path, marker: &str) -> Vec<u8> {
    let root = dir.join(format!("pypi-{marker}"));
    let top = root.join("nodeos_pin_test-1.0");
    std::fs::create_dir_all(&top).unwrap();
    std::fs::write(
        top.join("pyproject.toml"),
        "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n",
    )
    .unwrap();
    std::fs::write(
        top.join("backend.py"),
        format!(
            "# {marker}\nimport os\n\
             def get_requires_for_build_wheel(config_settings=None):\n    return []\n\
             def prepare_metadata_for_build_wheel(d, config_settings=None):\n    \
             di = os.path.join(d, 'nodeos_pin_test-1.0.dist-info')\n    os.makedirs(di, exist_ok=True)\n    \
             open(os.path.join(di, 'METADATA'), 'w').write('Metadata-Version: 2.1\\nName: nodeos-pin-test\\nVersion: 1.0\\n')\n    \
             return 'nodeos_pin_test-1.0.dist-info'\n\
             def build_wheel(d, config_settings=None, metadata_directory=None):\n    raise RuntimeError('only the sdist is fetched')\n"
        ),
    )
    .unwrap();
    std::fs::write(
        top.join("PKG-INFO"),
        "Metadata-Version: 2.1\nName: nodeos-pin-test\nVersion: 1.0\n",
    )
    .unwrap();
    run(Command::new("tar")
        .current_dir(&root)
        .args(["czf", "s.tar.gz", "nodeos_pin_test-1.0"]));
    std::fs::read(root.join("s.tar.gz")).unwrap()
}

fn manifest(entries: &str) -> Manifest {
    Manifest::parse(entries, "test").unwrap()
}

fn entry(name: &str, file: &str, sha: &str, origin: &str) -> String {
    format!(
        "[[source]]\nname = \"{name}\"\nvariant = \"upstream\"\nversion = \"1\"\nfile = \"{file}\"\nsha256 = \"{sha}\"\n{origin}\n"
    )
}

/// Fetches `name`, expecting a refusal naming both hashes, and checks that
/// neither the download dir nor the scratch dirs kept any bytes.
fn refused(env: &Env, m: &Manifest, name: &str, file: &str, pinned: &str, served: &str) {
    let mut f = Fetcher::new(env).unwrap();
    let e = fetch::ensure(&mut f, m, name).unwrap_err();
    let msg = format!("{e:#}");
    assert!(fetch::is_checksum_mismatch(&e), "{msg}");
    assert!(
        msg.contains(pinned) && msg.contains(served),
        "the refusal names both hashes: {msg}"
    );
    drop(f);
    assert!(!env.dl_dir.join(file).exists(), "a corrupt {file} was kept");
    let left: Vec<_> = walkdir(&env.dl_dir.join(".partial"));
    assert!(left.is_empty(), "scratch files left: {left:?}");
}

fn walkdir(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(walkdir(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn npm_pypi_and_debian_pool_origins_fetch_verify_and_refuse() {
    for tool in ["npm", "python3"] {
        assert!(
            nodeos_build::host::which(tool).is_some(),
            "{tool} is needed by this test (apt-get install npm python3-pip)"
        );
    }
    let d = tempfile::tempdir().unwrap();
    let work = d.path().join("work");
    std::fs::create_dir_all(&work).unwrap();

    let good_tgz = npm_tarball(&work, "nodeos-pin-test", "1.0.0", "good");
    let bad_tgz = npm_tarball(&work, "nodeos-pin-test", "1.0.0", "republished");
    let good_sdist = sdist(&work, "good");
    let bad_sdist = sdist(&work, "republished");
    let pool_file = b"c-ares orig tarball stand-in".to_vec();
    let bad_pool_file = b"c-ares orig tarball stand-in, other bytes".to_vec();

    // Two servers: one serves the pinned bytes, the other different ones.
    let routes = |tgz: Vec<u8>, sd: Vec<u8>, pool: Vec<u8>| {
        move |base: &str| {
            let mut r = BTreeMap::new();
            r.insert(
                "/nodeos-pin-test".to_string(),
                format!(
                    "{{\"name\":\"nodeos-pin-test\",\"dist-tags\":{{\"latest\":\"1.0.0\"}},\"versions\":{{\"1.0.0\":{{\"name\":\"nodeos-pin-test\",\"version\":\"1.0.0\",\"dist\":{{\"tarball\":\"{base}/tarballs/nodeos-pin-test-1.0.0.tgz\"}}}}}}}}"
                )
                .into_bytes(),
            );
            r.insert("/tarballs/nodeos-pin-test-1.0.0.tgz".into(), tgz);
            r.insert(
                "/simple/nodeos-pin-test".into(),
                format!(
                    "<html><body><a href=\"{base}/files/nodeos_pin_test-1.0.tar.gz#sha256={}\">nodeos_pin_test-1.0.tar.gz</a></body></html>",
                    sha256_bytes(&sd)
                )
                .into_bytes(),
            );
            r.insert("/files/nodeos_pin_test-1.0.tar.gz".into(), sd);
            r.insert(
                "/debian/pool/main/c/c-ares/c-ares_1.34.5.orig.tar.gz".into(),
                pool,
            );
            r
        }
    };
    let good = serve(routes(
        good_tgz.clone(),
        good_sdist.clone(),
        pool_file.clone(),
    ));
    let bad = serve(routes(
        bad_tgz.clone(),
        bad_sdist.clone(),
        bad_pool_file.clone(),
    ));

    let pins = [
        (
            "npm-part",
            "nodeos-pin-test-1.0.0.tgz",
            &good_tgz,
            &bad_tgz,
            "npm = { package = \"nodeos-pin-test\", version = \"1.0.0\" }",
        ),
        (
            "pypi-part",
            "nodeos_pin_test-1.0.tar.gz",
            &good_sdist,
            &bad_sdist,
            "pypi = { package = \"nodeos-pin-test\", version = \"1.0\" }",
        ),
        (
            "pool-part",
            "c-ares_1.34.5.orig.tar.gz",
            &pool_file,
            &bad_pool_file,
            "debian_pool = \"main/c/c-ares/c-ares_1.34.5.orig.tar.gz\"",
        ),
    ];
    let text: String = pins
        .iter()
        .map(|(n, f, good, _, o)| entry(n, f, &sha256_bytes(good), o))
        .collect();
    let m = manifest(&text);

    let point_at = |s: &Server| {
        std::env::set_var("npm_config_registry", format!("{}/", s.base));
        std::env::set_var(
            "npm_config_cache",
            work.join(format!("npm-cache-{}", s.base.len())),
        );
        std::env::set_var("PIP_INDEX_URL", format!("{}/simple/", s.base));
        std::env::set_var("PIP_NO_CACHE_DIR", "1");
        std::env::set_var("PIP_FIND_LINKS", "");
        std::env::set_var("NODEOS_DEBIAN_MIRROR", format!("{}/debian", s.base));
    };

    // A registry serving other bytes than pinned: refused, nothing kept.
    let env_bad = Env::for_tests(&d.path().join("bad"), d.path());
    point_at(&bad);
    for (name, file, good, served, _) in &pins {
        refused(
            &env_bad,
            &m,
            name,
            file,
            &sha256_bytes(good),
            &sha256_bytes(served),
        );
    }
    // Each origin was really asked (not some other one).
    let asked = bad.asked.lock().unwrap().clone();
    for p in [
        "/tarballs/nodeos-pin-test-1.0.0.tgz",
        "/files/nodeos_pin_test-1.0.tar.gz",
        "/debian/pool/main/c/c-ares/c-ares_1.34.5.orig.tar.gz",
    ] {
        assert!(asked.iter().any(|a| a == p), "{p} never asked: {asked:?}");
    }

    // The pinned bytes: fetched with the registries' clients, verified,
    // placed under the pinned file name.
    let env = Env::for_tests(&d.path().join("good"), d.path());
    point_at(&good);
    for (name, file, bytes, _, _) in &pins {
        let mut f = Fetcher::new(&env).unwrap();
        let r =
            fetch::ensure(&mut f, &m, name).unwrap_or_else(|e| panic!("fetching {name}: {e:#}"));
        assert_eq!(r.main.file, *file);
        assert_eq!(&std::fs::read(env.dl_dir.join(file)).unwrap(), *bytes);
    }
    // Cached: a second ensure asks nobody (the server would log it).
    let before = good.asked.lock().unwrap().len();
    for (name, ..) in &pins {
        let mut f = Fetcher::new(&env).unwrap();
        fetch::ensure(&mut f, &m, name).unwrap();
    }
    assert_eq!(
        good.asked.lock().unwrap().len(),
        before,
        "a cached part was fetched again"
    );
    // A cached part corrupted on disk: refused naming both hashes, deleted.
    let (name, file, bytes, _, _) = &pins[0];
    let mut rotten = (*bytes).clone();
    rotten[20] ^= 0x55;
    std::fs::write(env.dl_dir.join(file), &rotten).unwrap();
    refused(
        &env,
        &m,
        name,
        file,
        &sha256_bytes(bytes),
        &sha256_bytes(&rotten),
    );
}
