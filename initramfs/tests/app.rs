//! A user's app under /app: what a directory may hold, what is refused (one
//! case per rule, each on a real file of that kind), the entry file, and
//! reproducible bytes. Also: without an app the archive is byte for byte
//! what the writer produced before apps existed.

mod common;

use common::*;
use initramfs::app::{parse_size, EntrySource, DEFAULT_MAX_SIZE};
use initramfs::{
    app_layout, nodeos_layout, write_archive, App, AppError, AppOptions, Compression, Options,
};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

fn opts() -> AppOptions {
    AppOptions::default()
}

fn scan(dir: &Path) -> Result<App, AppError> {
    App::scan(dir, &opts())
}

fn refused(dir: &Path, o: &AppOptions) -> AppError {
    let e = App::scan(dir, o).expect_err("this app must be refused");
    let line = e.to_string();
    assert!(!line.contains('\n'), "one line, got {line:?}");
    e
}

fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, text).unwrap();
}

fn archive(entries: &[initramfs::Entry], compression: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    write_archive(
        entries,
        &Options {
            mtime: 0,
            compression,
        },
        &mut out,
    )
    .unwrap();
    out
}

fn sha256(bytes: &[u8]) -> String {
    nodeos_build::util::sha256_bytes(bytes)
}

/// A small app: files, a nested dir, an executable, an empty dir, a symlink
/// to a sibling file and one through `..` that stays inside.
fn sample_app(dir: &Path) {
    write(&dir.join("index.js"), "console.log('hi')\n");
    write(
        &dir.join("package.json"),
        r#"{"name":"sample","main":"lib/server"}"#,
    );
    write(&dir.join("lib/server.js"), "require('./util')\n");
    write(&dir.join("lib/util.js"), "module.exports = 1\n");
    write(
        &dir.join("node_modules/dep/index.js"),
        "module.exports = 2\n",
    );
    write(&dir.join("bin/run"), "#!/init\n");
    fs::set_permissions(dir.join("bin/run"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::create_dir_all(dir.join("empty")).unwrap();
    symlink("util.js", dir.join("lib/alias.js")).unwrap();
    symlink("../node_modules/dep", dir.join("lib/dep")).unwrap();
}

#[test]
fn an_app_goes_under_app_with_normalized_modes() {
    let d = tempfile::tempdir().unwrap();
    sample_app(d.path());
    let app = scan(d.path()).unwrap();
    assert_eq!(app.entry(), "lib/server.js", "package.json main, with .js");
    assert_eq!(app.entry_source(), EntrySource::PackageMain);
    assert_eq!(app.init_args(), ["/app/lib/server.js"]);

    let bytes = archive(&app_layout(Path::new("/bin/true"), &app), Compression::None);
    let got = initramfs::read_archive(&bytes).unwrap();
    let listing: Vec<(String, u32)> = got.iter().map(|e| (e.path.clone(), e.mode)).collect();
    let want: Vec<(String, u32)> = [
        ("app", 0o40755),
        ("app/bin", 0o40755),
        ("app/bin/run", 0o100755),
        ("app/empty", 0o40755),
        ("app/index.js", 0o100644),
        ("app/lib", 0o40755),
        ("app/lib/alias.js", 0o120777),
        ("app/lib/dep", 0o120777),
        ("app/lib/server.js", 0o100644),
        ("app/lib/util.js", 0o100644),
        ("app/node_modules", 0o40755),
        ("app/node_modules/dep", 0o40755),
        ("app/node_modules/dep/index.js", 0o100644),
        ("app/package.json", 0o100644),
        ("dev", 0o40755),
        ("dev/console", 0o20600),
        ("init", 0o100755),
    ]
    .iter()
    .map(|(p, m)| (p.to_string(), *m))
    .collect();
    assert_eq!(listing, want);
    for e in &got {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 0), "{}", e.path);
    }
    let by = |p: &str| got.iter().find(|e| e.path == p).unwrap();
    assert_eq!(
        by("app/lib/dep").symlink_target(),
        Some(&b"../node_modules/dep"[..])
    );
    assert_eq!(by("app/lib/util.js").data, b"module.exports = 1\n");
}

#[test]
fn gnu_cpio_extracts_the_app_as_it_was() {
    require_tool("cpio", "cpio");
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    sample_app(&src);
    let app = scan(&src).unwrap();
    let bytes = archive(app.entries(), Compression::None);
    let out = d.path().join("out");
    fs::create_dir(&out).unwrap();
    run(
        Command::new("cpio")
            .args(["-id", "--quiet", "--no-absolute-filenames"])
            .current_dir(&out),
        &bytes,
    );
    let root = out.join("app");
    for f in [
        "index.js",
        "lib/server.js",
        "node_modules/dep/index.js",
        "bin/run",
    ] {
        assert_eq!(
            fs::read(root.join(f)).unwrap(),
            fs::read(src.join(f)).unwrap(),
            "{f}"
        );
    }
    assert_eq!(
        fs::read_link(root.join("lib/dep")).unwrap(),
        Path::new("../node_modules/dep")
    );
    // Through the extracted symlink, as the guest will read it.
    assert_eq!(
        fs::read(root.join("lib/dep/index.js")).unwrap(),
        b"module.exports = 2\n"
    );
    assert!(root.join("empty").is_dir());
}

#[test]
fn the_same_tree_gives_the_same_bytes_anywhere() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a");
    let b = d.path().join("elsewhere/b");
    sample_app(&a);
    sample_app(&b);
    // Other mtimes and other permission bits of the same kind (a umask of
    // 077, group-executable): nothing of the host may show.
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
    for f in ["index.js", "lib/util.js"] {
        fs::File::options()
            .write(true)
            .open(b.join(f))
            .unwrap()
            .set_modified(old)
            .unwrap();
        fs::set_permissions(b.join(f), fs::Permissions::from_mode(0o600)).unwrap();
    }
    fs::set_permissions(b.join("bin/run"), fs::Permissions::from_mode(0o710)).unwrap();
    fs::set_permissions(b.join("lib"), fs::Permissions::from_mode(0o700)).unwrap();
    let (aa, ab) = (scan(&a).unwrap(), scan(&b).unwrap());
    for c in [Compression::None, initramfs::DEFAULT_COMPRESSION] {
        assert_eq!(
            sha256(&archive(aa.entries(), c)),
            sha256(&archive(ab.entries(), c)),
            "{c}"
        );
    }
    assert_eq!(aa.digest().unwrap(), ab.digest().unwrap());

    // One byte of content changes the digest (the cache key) and the bytes.
    write(&b.join("lib/util.js"), "module.exports = 3\n");
    let ab2 = scan(&b).unwrap();
    assert_ne!(aa.digest().unwrap(), ab2.digest().unwrap());
    assert_ne!(
        archive(aa.entries(), Compression::None),
        archive(ab2.entries(), Compression::None)
    );
    // So does a new empty directory, and an executable bit.
    fs::create_dir(b.join("new")).unwrap();
    let ab3 = scan(&b).unwrap();
    assert_ne!(ab2.digest().unwrap(), ab3.digest().unwrap());
    fs::set_permissions(b.join("index.js"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_ne!(ab3.digest().unwrap(), scan(&b).unwrap().digest().unwrap());
}

/// The archive without an app, for a fixed init, as the writer produced it
/// before apps were added (sha256 recorded then): `--app` must not change a
/// byte of the REPL image.
#[test]
fn no_app_archive_is_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let init = d.path().join("init");
    fs::write(&init, bytes(7, 100_003)).unwrap();
    let layout = nodeos_layout(&init);
    assert_eq!(
        sha256(&archive(&layout, Compression::None)),
        "e23902e4668c73e511dcfab0248c79cd9a5697dbf2f6fa74335f996e3a636737"
    );
    assert_eq!(
        sha256(&archive(&layout, initramfs::DEFAULT_COMPRESSION)),
        "a7cc3b1b19ada18c278bf74229eb5984d44a6247fa74ca93713b4d2ff7838bf6"
    );
}

#[test]
fn entry_rules() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(&dir.join("index.js"), "");
    assert_eq!(scan(dir).unwrap().entry(), "index.js");
    assert_eq!(scan(dir).unwrap().entry_source(), EntrySource::Default);

    // main naming a directory: its index.js.
    write(&dir.join("srv/index.js"), "");
    write(&dir.join("package.json"), r#"{"main":"./srv"}"#);
    assert_eq!(scan(dir).unwrap().entry(), "srv/index.js");
    // main naming a file exactly; package.json without main: index.js.
    write(&dir.join("package.json"), r#"{"main":"srv/index.js"}"#);
    assert_eq!(scan(dir).unwrap().entry(), "srv/index.js");
    write(&dir.join("package.json"), r#"{"name":"x"}"#);
    assert_eq!(scan(dir).unwrap().entry(), "index.js");

    // --entry wins over package.json, and may be an ES module.
    write(&dir.join("main.mjs"), "");
    let o = AppOptions {
        entry: Some("./main.mjs".into()),
        ..opts()
    };
    let app = App::scan(dir, &o).unwrap();
    assert_eq!(
        (app.entry(), app.entry_source()),
        ("main.mjs", EntrySource::Flag)
    );
    assert_eq!(app.guest_entry(), "/app/main.mjs");
}

#[test]
fn entry_refusals() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(&dir.join("lib/a.js"), "");
    // No index.js, no package.json.
    assert!(matches!(
        refused(dir, &opts()),
        AppError::EntryMissing {
            from: EntrySource::Default,
            ..
        }
    ));
    let with = |e: &str| AppOptions {
        entry: Some(e.into()),
        ..opts()
    };
    assert!(matches!(
        refused(dir, &with("nope.js")),
        AppError::EntryMissing {
            from: EntrySource::Flag,
            ..
        }
    ));
    // A directory is not a file to run.
    assert!(matches!(
        refused(dir, &with("lib")),
        AppError::EntryMissing { .. }
    ));
    for outside in ["../x.js", "/etc/passwd", "."] {
        assert!(
            matches!(refused(dir, &with(outside)), AppError::EntryOutside { .. }),
            "{outside}"
        );
    }
    write(&dir.join("has space.js"), "");
    assert!(matches!(
        refused(dir, &with("has space.js")),
        AppError::EntryUnfit { .. }
    ));
    write(&dir.join("package.json"), r#"{"main":"gone"}"#);
    let e = refused(dir, &opts());
    assert!(matches!(
        e,
        AppError::EntryMissing {
            from: EntrySource::PackageMain,
            ..
        }
    ));
    assert!(
        e.to_string().contains("gone.js"),
        "says what was tried: {e}"
    );
    write(&dir.join("package.json"), "{not json");
    assert!(matches!(
        refused(dir, &opts()),
        AppError::BadPackageJson { .. }
    ));
    write(&dir.join("package.json"), r#"{"main":3}"#);
    assert!(matches!(
        refused(dir, &opts()),
        AppError::BadPackageJson { .. }
    ));
}

#[test]
fn not_a_directory_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("file.js");
    write(&f, "");
    assert!(matches!(
        refused(&f, &opts()),
        AppError::NotADirectory { .. }
    ));
    assert!(matches!(
        refused(&d.path().join("missing"), &opts()),
        AppError::NotADirectory { .. }
    ));
}

/// A directory with index.js and `name` made by `make`.
fn app_with(make: impl FnOnce(&Path)) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(&d.path().join("index.js"), "");
    make(d.path());
    d
}

#[test]
fn socket_is_refused() {
    let d = app_with(|p| {
        std::os::unix::net::UnixListener::bind(p.join("sock")).unwrap();
    });
    let e = refused(d.path(), &opts());
    assert!(
        matches!(&e, AppError::Socket { path } if path == "sock"),
        "{e}"
    );
}

#[test]
fn fifo_is_refused() {
    let d = app_with(|p| {
        let c = std::ffi::CString::new(p.join("sub/pipe").to_str().unwrap()).unwrap();
        fs::create_dir(p.join("sub")).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    });
    let e = refused(d.path(), &opts());
    assert!(
        matches!(&e, AppError::Fifo { path } if path == "sub/pipe"),
        "{e}"
    );
}

/// The env var that hands a prepared directory to the device check when it
/// runs in a user namespace (see `device_file_is_refused`).
const DEVICE_DIR_VAR: &str = "NODEOS_TEST_APP_WITH_DEVICE";

/// A real character device in an app directory. With CAP_MKNOD, mknod makes
/// one. Without it (CI as a plain user), this test re-runs itself in a user
/// and mount namespace where /dev/null is bind-mounted over a file, which
/// makes that path a real character device for the scan. If neither works
/// the test fails: it never passes without having seen a device.
#[test]
fn device_file_is_refused() {
    if let Some(dir) = std::env::var_os(DEVICE_DIR_VAR) {
        // Inside the namespace: the bind mount is in place.
        return assert_device_refused(Path::new(&dir));
    }
    let d = app_with(|_| {});
    let dev = d.path().join("null");
    let c = std::ffi::CString::new(dev.to_str().unwrap()).unwrap();
    let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) } == 0;
    if made {
        return assert_device_refused(d.path());
    }
    fs::write(&dev, "").unwrap();
    let me = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(r#"mount --bind /dev/null "$1" && exec "$2" --exact device_file_is_refused --nocapture"#)
        .arg("sh")
        .arg(&dev)
        .arg(&me)
        .env(DEVICE_DIR_VAR, d.path())
        .output()
        .expect("running unshare (util-linux)");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "no device file could be made here: mknod needs CAP_MKNOD, and the user-namespace \
         bind mount of /dev/null failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_device_refused(dir: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let ft = fs::symlink_metadata(dir.join("null")).unwrap().file_type();
    assert!(ft.is_char_device(), "the test's device file is not one");
    let e = refused(dir, &opts());
    assert!(
        matches!(&e, AppError::Device { path } if path == "null"),
        "{e}"
    );
}

#[test]
fn symlinks_leaving_the_app_are_refused() {
    type IsExpected = fn(&AppError) -> bool;
    let cases: &[(&str, &str, IsExpected)] = &[
        ("abs", "/etc/passwd", |e| {
            matches!(e, AppError::AbsoluteSymlink { .. })
        }),
        ("up", "../outside.js", |e| {
            matches!(e, AppError::EscapingSymlink { .. })
        }),
        ("deep/up2", "../../x", |e| {
            matches!(e, AppError::EscapingSymlink { .. })
        }),
        // Out and back in: on the host it lands inside, in the guest
        // /app/.. is /, so it does not.
        ("round", "../APPNAME/index.js", |e| {
            matches!(e, AppError::EscapingSymlink { .. })
        }),
        // Through a symlink to the app dir itself, then up: lexically
        // "here/.." is inside, but the kernel resolves `here` first.
        ("sneaky", "here/..", |e| {
            matches!(e, AppError::EscapingSymlink { .. })
        }),
        ("loop", "loop", |e| {
            matches!(e, AppError::SymlinkLoop { .. })
        }),
    ];
    for (name, target, is) in cases {
        let d = tempfile::tempdir().unwrap();
        let app = d.path().join("APPNAME");
        write(&app.join("index.js"), "");
        fs::create_dir_all(app.join("deep")).unwrap();
        symlink(".", app.join("here")).unwrap();
        symlink(target, app.join(name)).unwrap();
        let e = refused(&app, &opts());
        assert!(is(&e), "{name} -> {target}: {e:?}");
        assert!(e.to_string().contains(name), "names the link: {e}");
    }
}

#[test]
fn symlinks_staying_inside_are_kept() {
    let d = app_with(|p| {
        fs::create_dir_all(p.join("a/b")).unwrap();
        write(&p.join("a/b/f.js"), "");
        symlink(".", p.join("self")).unwrap();
        symlink("b/../b/f.js", p.join("a/link")).unwrap();
        symlink("../a/link", p.join("a/b/chain")).unwrap();
        symlink("self/self/index.js", p.join("via-self")).unwrap();
        symlink("missing.js", p.join("dangling")).unwrap();
    });
    let app = scan(d.path()).unwrap();
    assert!(app.entries().iter().any(|e| e.path == "app/via-self"));
}

#[test]
fn native_addons_are_refused() {
    let d = app_with(|p| write(&p.join("node_modules/x/build/Release/x.node"), "\x7fELF"));
    let e = refused(d.path(), &opts());
    assert!(
        matches!(&e, AppError::NativeAddon { path } if path == "node_modules/x/build/Release/x.node"),
        "{e}"
    );
    assert!(e.to_string().contains("static"), "says why: {e}");
    // Also as a symlink's name.
    let d = app_with(|p| symlink("index.js", p.join("y.node")).unwrap());
    assert!(matches!(
        refused(d.path(), &opts()),
        AppError::NativeAddon { .. }
    ));
}

#[test]
fn an_app_over_the_limit_is_refused_until_the_limit_is_raised() {
    let d = app_with(|p| write(&p.join("big.bin"), &"x".repeat(3000)));
    let small = AppOptions {
        max_size: 2048,
        ..opts()
    };
    let e = refused(d.path(), &small);
    assert!(
        matches!(
            e,
            AppError::TooBig {
                size: 3000,
                limit: 2048
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("--app-max-size"),
        "says how to raise it: {e}"
    );
    let raised = AppOptions {
        max_size: parse_size("4K").unwrap(),
        ..opts()
    };
    assert_eq!(App::scan(d.path(), &raised).unwrap().size(), 3000);
    assert_eq!(DEFAULT_MAX_SIZE, 64 << 20);
}

#[test]
fn non_utf8_names_are_refused() {
    use std::os::unix::ffi::OsStrExt;
    let d = app_with(|p| {
        let name = std::ffi::OsStr::from_bytes(b"bad-\xff.js");
        write(&p.join(name), "");
    });
    assert!(matches!(
        refused(d.path(), &opts()),
        AppError::NonUtf8Name { .. }
    ));
}

#[test]
fn the_first_refusal_is_the_same_on_every_run() {
    let d = app_with(|p| {
        write(&p.join("z.node"), "");
        write(&p.join("a.node"), "");
        symlink("/x", p.join("m")).unwrap();
    });
    for _ in 0..3 {
        let e = refused(d.path(), &opts());
        assert!(
            matches!(&e, AppError::NativeAddon { path } if path == "a.node"),
            "{e}"
        );
    }
}
