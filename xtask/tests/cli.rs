//! The command line as users meet it: help, bad input, exit codes.

use std::process::Command;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_working_commands() {
    let o = xtask(&["--help"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for cmd in ["fetch", "doctor", "clean", "toolchain"] {
        assert!(text.contains(cmd), "--help lacks {cmd}:\n{text}");
    }
}

/// stderr of a usage error: exit 2, no panic.
fn usage_error(args: &[&str]) -> String {
    let o = xtask(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn unknown_arch_names_the_accepted_ones_exit_2() {
    let err = usage_error(&["fetch", "--arch", "arm64"]);
    assert!(
        err.contains("arm64") && err.contains("i386") && err.contains("x86_64"),
        "{err}"
    );
}

#[test]
fn unknown_flag_and_command_exit_2() {
    for args in [
        &["fetch", "--bogus"][..],
        &["frobnicate"][..],
        &["toolchain", "-j", "many"][..],
    ] {
        let err = usage_error(args);
        assert!(err.contains(args[args.len() - 1]), "{args:?}: {err}");
    }
}

#[test]
fn usage_errors_show_claps_whole_message() {
    // Which required argument is missing, not only that one is.
    let err = usage_error(&["initramfs", "-o", "x.cpio"]);
    assert!(
        err.contains("required arguments were not provided") && err.contains("--init <BIN>"),
        "{err}"
    );
    assert!(err.contains("Usage: cargo xtask initramfs"), "{err}");
    // Which values are accepted.
    let err = usage_error(&["clean", "--phase", "bogus"]);
    for phase in ["toolchain", "kernel", "node", "initramfs"] {
        assert!(err.contains(phase), "{phase} not listed: {err}");
    }
}

#[test]
fn common_flags_go_before_the_command_too() {
    let d = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .env("NODEOS_CACHE_DIR", d.path())
            .output()
            .unwrap()
    };
    for args in [
        &["--arch", "i386", "clean"][..],
        &["--arch=x86_64", "-v", "clean", "--phase", "node"][..],
        &["-j", "2", "--offline", "clean"][..],
    ] {
        let o = run(args);
        assert!(o.status.success(), "{args:?}: {o:?}");
    }
    // And they mean the same there: a bad value is refused the same way.
    let o = run(&["--arch", "arm64", "clean"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("arm64"));
    let o = run(&["-j", "0", "clean"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--jobs must be at least 1"));
}

#[test]
fn arch_aliases_and_lists_are_accepted() {
    // `clean` on an empty cache is a cheap way to exercise parsing.
    let d = tempfile::tempdir().unwrap();
    for arch in ["i686", "amd64", "x86,x86_64", "i386"] {
        let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["clean", "--arch", arch])
            .env("NODEOS_CACHE_DIR", d.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{arch}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn jobs_zero_is_refused_clearly() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["clean", "-j", "0"])
        .env("NODEOS_CACHE_DIR", d.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--jobs must be at least 1"));
}

#[test]
fn a_kernel_that_is_not_a_bzimage_fails_at_once() {
    let d = tempfile::tempdir().unwrap();
    let not_kernel = d.path().join("vmlinuz");
    std::fs::write(&not_kernel, vec![0u8; 4096]).unwrap();
    for cmd in ["image", "qemu-test"] {
        let started = std::time::Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args([cmd, "--arch", "x86_64", "--kernel"])
            .arg(&not_kernel)
            .env("NODEOS_CACHE_DIR", d.path().join("cache"))
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("vmlinuz") && err.contains("bzImage"),
            "{cmd}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            started.elapsed().as_secs() < 10,
            "{cmd}: the check must come before any build"
        );
    }
}

#[test]
fn a_missing_host_tool_is_named_with_the_install_line() {
    // An empty cache and a PATH without any build tools: the toolchain
    // phase must stop before building, naming the tools and one apt line.
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["toolchain", "--arch", "x86_64", "--offline"])
        .env("NODEOS_CACHE_DIR", d.path().join("cache"))
        .env("PATH", d.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("missing") && err.contains("bison") && err.contains("apt-get install -y"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

/// stderr of a failed run: non-zero exit, no panic, returned for matching.
fn failure_text(o: &std::process::Output) -> String {
    assert!(!o.status.success(), "expected a failure: {o:?}");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn a_dynamic_init_is_refused_with_the_fix() {
    // The host's own /bin/true is a dynamic executable (Debian ships no
    // static coreutils): it could never run alone in the initramfs.
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("x.cpio");
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["initramfs", "--init", "/bin/true", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let err = failure_text(&o);
    assert!(
        err.contains("dynamically linked") && err.contains("-static"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(!out.exists(), "no archive may be written for a bad init");
}

#[test]
fn an_init_that_is_not_an_elf_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("init.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["initramfs", "--init"])
        .arg(&script)
        .arg("-o")
        .arg(d.path().join("x.cpio"))
        .output()
        .unwrap();
    let err = failure_text(&o);
    assert!(err.contains("not an ELF file"), "{err}");
}

#[test]
fn missing_qemu_is_named_before_any_build() {
    // A PATH without QEMU and an empty cache: qemu-test must stop at once
    // with the package to install, not after hours of building.
    let d = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["qemu-test", "--arch", "x86_64", "--offline"])
        .env("NODEOS_CACHE_DIR", d.path().join("cache"))
        .env("PATH", d.path())
        .output()
        .unwrap();
    let err = failure_text(&o);
    assert!(
        err.contains("qemu-system-x86_64") && err.contains("apt-get install -y qemu-system-x86"),
        "{err}"
    );
    assert!(started.elapsed().as_secs() < 10);
    assert!(!d.path().join("cache").join("out").exists());
}

#[test]
fn offline_fetch_lists_every_missing_file() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["fetch", "--offline", "--node", "18"])
        .env("NODEOS_CACHE_DIR", d.path().join("cache"))
        .env_remove("NODEOS_DL_DIR")
        .env_remove("NODEOS_SOURCE_VARIANT")
        .output()
        .unwrap();
    let err = failure_text(&o);
    // One run names the files of every package and where they go, the
    // library packages the chosen Node (18) links included:
    // brotli, and not zlib (Node 18 builds its bundled zlib).
    for file in ["binutils-", "gcc-", "musl-", "linux-", "node", "brotli-"] {
        assert!(err.contains(file), "{file} not listed:\n{err}");
    }
    assert!(!err.contains("zlib_"), "zlib is not Node 18's:\n{err}");
    assert!(
        err.contains(&d.path().join("cache").join("dl").display().to_string()),
        "{err}"
    );
    let counts = err
        .lines()
        .find_map(|l| {
            l.split(" packages could not")
                .next()
                .filter(|_| l.contains(" packages could not"))
        })
        .unwrap_or_else(|| panic!("no count line:\n{err}"));
    let (failed, all) = counts.rsplit_once(" of ").expect("N of M");
    // toolchain (3), kernel, node, brotli
    assert_eq!(all.trim().parse::<usize>().unwrap(), 6, "{err}");
    assert_eq!(
        failed.trim().rsplit(' ').next(),
        Some(all.trim()),
        "every package is listed as missing:\n{err}"
    );
}

/// `fetch --node 22`, and `fetch` with no `--node` (22 is the default),
/// fetch the sources of Node 22's build: its eleven library packages with
/// the entries its recipe pins (brotli 1.1.0, not Node 18's 1.0.9).
#[test]
fn offline_fetch_of_node_22_lists_its_library_packages() {
    for node in [&["--node", "22"][..], &[]] {
        offline_fetch_lists_node_22s_packages(node);
    }
}

fn offline_fetch_lists_node_22s_packages(node: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["fetch", "--offline"])
        .args(node)
        .env("NODEOS_CACHE_DIR", d.path().join("cache"))
        .env_remove("NODEOS_DL_DIR")
        .env_remove("NODEOS_SOURCE_VARIANT")
        .output()
        .unwrap();
    let err = failure_text(&o);
    for file in [
        "binutils-",
        "gcc-",
        "musl-",
        "linux-",
        "openssl_3.5.7",
        "zlib_1.3",
        "c-ares_1.34.5",
        "nghttp2_1.64.0",
        "brotli_1.1.0",
        "libzstd_1.5.7",
        "llhttp-9.3.0",
        "simdutf_8.2.0",
        "pysimdjson-7.0.2",
        "orig-ada",
        "sqlite3_3.46.1",
    ] {
        assert!(err.contains(file), "{file} not listed:\n{err}");
    }
    assert!(!err.contains("brotli-1.0.9"), "Node 18's brotli:\n{err}");
    let counts = err
        .lines()
        .find(|l| l.contains(" packages could not"))
        .unwrap_or_else(|| panic!("no count line:\n{err}"));
    // toolchain (3), kernel, node, eleven library packages
    assert!(counts.contains(" of 16 packages could not"), "{err}");
}

/// `node --keys` prints keys without building: with no toolchain built it
/// refuses in one line (every key depends on the toolchain's) and starts
/// nothing.
#[test]
fn node_keys_without_a_toolchain_is_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "--offline",
            "node",
            "--keys",
            "--node",
            "22",
            "--arch",
            "x86_64",
        ])
        .env("NODEOS_CACHE_DIR", d.path().join("cache"))
        .env_remove("NODEOS_DL_DIR")
        .output()
        .unwrap();
    let err = failure_text(&o);
    assert!(
        err.contains("the toolchain for x86_64 is not built")
            && err.contains("cargo xtask toolchain --arch x86_64"),
        "{err}"
    );
    assert!(started.elapsed().as_secs() < 10);
    assert!(!d.path().join("cache").join("out").exists());
}

#[test]
fn clean_takes_one_phase_and_arch_and_spares_running_builds() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    let mkdir = |p: std::path::PathBuf| {
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    for (key, arch) in [(&a, "x86_64"), (&b, "i386")] {
        let out = mkdir(cache.join("out/node").join(key));
        let timings = format!(
            r#"{{"phase":"node","arch":"{arch}","key":"{key}","build_secs":1.0,"steps":[]}}"#
        );
        std::fs::write(out.join("timings.json"), timings).unwrap();
        mkdir(cache.join(format!("build/node-{arch}-{}", &key[..16])));
    }
    let kernel_build = mkdir(cache.join(format!("build/kernel-x86_64-{}", "c".repeat(16))));
    let ccache = mkdir(cache.join("ccache"));
    let clean = || {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["clean", "--phase", "node", "--arch", "x86_64"])
            .env("NODEOS_CACHE_DIR", &cache)
            .output()
            .unwrap()
    };

    // A build of the x86_64 key is running (util-linux flock holds its lock).
    mkdir(cache.join("locks"));
    let lock = cache.join(format!("locks/node-{}.lock", &a[..16]));
    // -o: the sleeping child does not inherit the lock, so killing flock
    // releases it.
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .expect("flock (util-linux) runs");
    let held = std::time::Instant::now();
    while std::process::Command::new("flock")
        .args(["-n"])
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap()
        .success()
    {
        assert!(held.elapsed().as_secs() < 10, "flock never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = clean();
    assert!(o.status.success(), "{o:?}");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("kept") && text.contains("running build"),
        "{text}"
    );
    assert!(
        cache.join("out/node").join(&a).exists(),
        "a locked key was removed"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();

    let o = clean();
    assert!(o.status.success(), "{o:?}");
    assert!(!cache.join("out/node").join(&a).exists());
    assert!(!cache
        .join(format!("build/node-x86_64-{}", &a[..16]))
        .exists());
    // Other arch, other phase and the ccache stay.
    assert!(cache.join("out/node").join(&b).exists());
    assert!(cache.join(format!("build/node-i386-{}", &b[..16])).exists());
    assert!(kernel_build.exists() && ccache.exists());
}

/// A real static x86_64 executable from the host compiler, with `pad`
/// bytes of noise appended (ELF loaders ignore trailing bytes; xz takes
/// seconds over them).
fn static_init(dir: &std::path::Path, name: &str, pad: usize) -> std::path::PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let bin = dir.join(name);
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("gcc runs (install build-essential)");
    assert!(st.success(), "gcc -static failed (libc6-dev installed?)");
    if pad > 0 {
        let mut bytes = std::fs::read(&bin).unwrap();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        bytes.extend((0..pad).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        }));
        std::fs::write(&bin, bytes).unwrap();
    }
    bin
}

/// `cargo xtask initramfs --init INIT -o OUT`, killed if it runs longer
/// than 20 s (a hang is a failure, not a stuck test run).
fn initramfs_cmd(init: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["initramfs", "--compression", "none", "--init"])
        .arg(init)
        .arg("-o")
        .arg(out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed().as_secs() > 20 {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("initramfs --init {} hung for 20 s", init.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A refusal: one line naming `path`, no panic.
fn refusal(o: &std::process::Output, path: &std::path::Path) -> String {
    let err = failure_text(o);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    err
}

#[test]
fn a_missing_compressor_program_is_named_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    let init = static_init(d.path(), "init", 0);
    let out_dir = d.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let empty = d.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    for (compression, program, package) in [("xz", "xz", "xz-utils"), ("zstd", "zstd", "zstd")] {
        let out = out_dir.join(format!("initramfs.cpio.{compression}"));
        let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["initramfs", "--compression", compression, "--init"])
            .arg(&init)
            .arg("-o")
            .arg(&out)
            .env("PATH", &empty)
            .output()
            .unwrap();
        let err = failure_text(&o);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(&format!("`{program}`"))
                && err.contains(&format!("apt-get install {package}")),
            "{err}"
        );
        assert!(
            std::fs::read_dir(&out_dir).unwrap().next().is_none(),
            "--compression {compression} left a file behind"
        );
    }
}

#[test]
fn the_init_itself_is_never_the_output() {
    let d = tempfile::tempdir().unwrap();
    let init = static_init(d.path(), "init", 0);
    let original = std::fs::read(&init).unwrap();
    let hard = d.path().join("hardlink");
    std::fs::hard_link(&init, &hard).unwrap();
    let soft = d.path().join("symlink");
    std::os::unix::fs::symlink(&init, &soft).unwrap();
    // Through a symlink in the path of the output's directory too.
    let dir_link = d.path().join("dirlink");
    std::os::unix::fs::symlink(d.path(), &dir_link).unwrap();
    for out in [init.clone(), hard, soft, dir_link.join("init")] {
        let o = initramfs_cmd(&init, &out);
        let err = refusal(&o, &out);
        assert!(err.contains("same file as"), "{err}");
        assert_eq!(
            std::fs::read(&init).unwrap(),
            original,
            "-o {} replaced the init",
            out.display()
        );
    }
}

#[test]
fn only_a_new_or_writable_regular_file_is_replaced() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let d = tempfile::tempdir().unwrap();
    let init = static_init(d.path(), "init", 0);

    let target = d.path().join("elsewhere");
    std::fs::write(&target, b"keep me").unwrap();
    let link = d.path().join("link.img");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let readonly = d.path().join("readonly.img");
    std::fs::write(&readonly, b"keep me").unwrap();
    std::fs::set_permissions(&readonly, std::fs::Permissions::from_mode(0o444)).unwrap();
    let fifo = d.path().join("fifo.img");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let dir = d.path().join("dir.img");
    std::fs::create_dir(&dir).unwrap();
    // A character device: a private copy of /dev/null when root may make
    // one, else /dev/null itself (which a non-root run cannot replace
    // anyway, so nothing is at risk).
    let mut chardev = d.path().join("null");
    let made = Command::new("mknod")
        .arg(&chardev)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        chardev = std::path::PathBuf::from("/dev/null");
    }
    for (out, what) in [
        (&link, "symbolic link"),
        (&readonly, "read-only"),
        (&fifo, "FIFO"),
        (&dir, "directory"),
        (&chardev, "character device"),
    ] {
        let o = initramfs_cmd(&init, out);
        let err = refusal(&o, out);
        assert!(err.contains(what), "{what}: {err}");
    }
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    assert_eq!(std::fs::read(&readonly).unwrap(), b"keep me");
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(&chardev)
        .unwrap()
        .file_type()
        .is_char_device());

    // What may be written: a new file, then over it again.
    let fresh = d.path().join("fresh.img");
    for _ in 0..2 {
        let o = initramfs_cmd(&init, &fresh);
        assert!(o.status.success(), "{o:?}");
    }
    assert!(std::fs::symlink_metadata(&fresh).unwrap().is_file());
}

/// `.initramfs-*.tmp` files in `dir`.
fn temp_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(".initramfs-") && n.ends_with(".tmp")
        })
        .collect()
}

/// Starts `initramfs -o` on a large init with xz (seconds of work), waits
/// until its temporary file exists, and sends `signal`.
fn interrupt_initramfs(
    init: &std::path::Path,
    out: &std::path::Path,
    signal: &str,
) -> std::process::ExitStatus {
    use std::os::unix::process::CommandExt;
    let dir = out.parent().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["initramfs", "--compression", "xz", "--init"])
        .arg(init)
        .arg("-o")
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // As at a terminal: the test may run where SIGINT or SIGHUP is ignored
    // (a background job, nohup), which the writer would inherit and keep.
    // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(s, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let started = std::time::Instant::now();
    while temp_files(dir).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the writer finished before it could be interrupted"
        );
        assert!(
            started.elapsed().as_secs() < 30,
            "no temporary file appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let st = Command::new("kill")
        .args(["-s", signal])
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    child.wait().unwrap()
}

#[test]
fn an_interrupted_initramfs_leaves_no_temporary_file() {
    use std::os::unix::process::ExitStatusExt;
    let d = tempfile::tempdir().unwrap();
    let big = static_init(d.path(), "big-init", 48 << 20);
    let small = static_init(d.path(), "init", 0);
    let out_dir = d.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("initramfs.img");
    // Handled signals: the writer removes its file and dies of the signal.
    for (signal, number) in [("TERM", 15), ("INT", 2), ("HUP", 1)] {
        let st = interrupt_initramfs(&big, &out, signal);
        assert_eq!(st.signal(), Some(number), "{signal}: {st:?}");
        assert_eq!(
            temp_files(&out_dir),
            Vec::<std::path::PathBuf>::new(),
            "{signal}"
        );
        assert!(!out.exists());
    }
    // SIGKILL cannot be handled: the file stays until the next run into
    // the same directory removes it.
    let st = interrupt_initramfs(&big, &out, "KILL");
    assert_eq!(st.signal(), Some(9));
    assert_eq!(temp_files(&out_dir).len(), 1, "the killed writer's file");
    let o = initramfs_cmd(&small, &out);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(temp_files(&out_dir), Vec::<std::path::PathBuf>::new());
    assert!(out.is_file());
}

#[test]
fn inits_that_are_not_executables_are_refused_without_reading_forever() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("x.cpio");
    let fifo = d.path().join("init.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let src = d.path().join("main.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let obj = d.path().join("main.o");
    let x32 = d.path().join("x32");
    for (flags, bin) in [(&["-c"][..], &obj), (&["-static", "-mx32"][..], &x32)] {
        let st = Command::new("gcc")
            .args(flags)
            .arg(&src)
            .arg("-o")
            .arg(bin)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "gcc {flags:?} failed (gcc-multilib installed?)"
        );
    }
    let zero = std::path::PathBuf::from("/dev/zero");
    for (init, what) in [
        (&fifo, "a FIFO"),
        (&zero, "a character device"),
        (&obj, "relocatable object"),
        (&x32, "32-bit"),
    ] {
        let o = initramfs_cmd(init, &out);
        let err = refusal(&o, init);
        assert!(err.contains(what), "{what}: {err}");
        assert!(!out.exists());
    }
}

#[test]
fn a_kernel_for_one_arch_is_refused_for_the_other_before_any_build() {
    // An i386 bzImage (boot protocol 2.15, no 64-bit entry) with both
    // arches selected (the default): x86_64 must refuse it at once, not
    // after the i386 build.
    let d = tempfile::tempdir().unwrap();
    let mut b = vec![0u8; 4096];
    b[0x1FE] = 0x55;
    b[0x1FF] = 0xAA;
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&0x020Fu16.to_le_bytes());
    b[0x211] = 1;
    let kernel = d.path().join("bzImage-i386");
    std::fs::write(&kernel, b).unwrap();
    for cmd in ["image", "qemu-test"] {
        let started = std::time::Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args([cmd, "--offline", "--kernel"])
            .arg(&kernel)
            .env("NODEOS_CACHE_DIR", d.path().join("cache"))
            .env("NODEOS_DL_DIR", d.path().join("dl"))
            .output()
            .unwrap();
        let err = failure_text(&o);
        assert!(
            err.contains("bzImage-i386") && err.contains("i386 kernel") && err.contains("x86_64"),
            "{cmd}: {err}"
        );
        assert!(started.elapsed().as_secs() < 10, "{cmd}: too late");
        assert!(
            !d.path().join("cache").join("build").exists(),
            "{cmd} built"
        );
    }
}

#[test]
fn clean_downloads_removes_only_what_the_project_put_there() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    std::fs::create_dir(&home).unwrap();
    // A shared directory: the user's files and one source we downloaded.
    std::fs::write(home.join("notes.txt"), b"mine").unwrap();
    std::fs::create_dir(home.join("project")).unwrap();
    std::fs::write(home.join("project/file"), b"mine").unwrap();
    std::fs::write(home.join("musl-1.2.3.tar.gz"), b"downloaded").unwrap();
    // A killed fetch's scratch dir, and a `.partial` entry that is not one.
    std::fs::create_dir_all(home.join(".partial/4242-0")).unwrap();
    std::fs::create_dir_all(home.join(".partial/keep")).unwrap();
    let clean = |dl: &str, cwd: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["clean", "--downloads"])
            .current_dir(cwd)
            .env("NODEOS_CACHE_DIR", d.path().join("cache"))
            .env("NODEOS_DL_DIR", dl)
            .output()
            .unwrap()
    };
    // A relative value: the current directory.
    let o = clean(".", &home);
    assert!(o.status.success(), "{o:?}");
    assert!(home.join("notes.txt").is_file() && home.join("project/file").is_file());
    assert!(!home.join("musl-1.2.3.tar.gz").exists());
    assert!(!home.join(".partial/4242-0").exists());
    assert!(home.join(".partial/keep").is_dir());

    // An absolute value: the same, and the dir itself stays.
    std::fs::write(home.join("linux-6.1.176.tar.xz"), b"x").unwrap();
    let o = clean(home.to_str().unwrap(), d.path());
    assert!(o.status.success(), "{o:?}");
    assert!(home.join("notes.txt").is_file());
    assert!(!home.join("linux-6.1.176.tar.xz").exists());

    // The default download dir is the project's: it goes once empty.
    let default_dl = d.path().join("cache/dl");
    std::fs::create_dir_all(default_dl.join(".partial/77-1")).unwrap();
    std::fs::write(default_dl.join("musl-1.2.3.tar.gz"), b"x").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["clean", "--downloads"])
        .env("NODEOS_CACHE_DIR", d.path().join("cache"))
        .env_remove("NODEOS_DL_DIR")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(!default_dl.exists());
}

/// A library package's phase is a phase like any other for `clean`: named
/// `pkg-<name>`, only it is removed; an unregistered name is refused with
/// the list of phases.
#[test]
fn clean_takes_a_package_phase() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let key = "d".repeat(64);
    let mut outs = Vec::new();
    for phase in ["pkg-brotli", "node"] {
        let out = cache.join("out").join(phase).join(&key);
        std::fs::create_dir_all(&out).unwrap();
        let timings = format!(
            r#"{{"phase":"{phase}","arch":"x86_64","key":"{key}","build_secs":1.0,"steps":[]}}"#
        );
        std::fs::write(out.join("timings.json"), timings).unwrap();
        outs.push(out);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["clean", "--phase", "pkg-brotli", "--arch", "x86_64"])
        .env("NODEOS_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(!outs[0].exists(), "pkg-brotli's output is still there");
    assert!(outs[1].exists(), "node's output was removed too");

    let err = usage_error(&["clean", "--phase", "pkg-nonesuch"]);
    assert!(
        err.contains("pkg-nonesuch") && err.contains("pkg-brotli") && err.contains("toolchain"),
        "{err}"
    );
}

/// `bench --vs`: a baseline equal to the measured version, or one NodeOS
/// does not build, is refused in one line before anything is built or
/// booted; with a mode that measures no Node (`--model`) it is a usage
/// error.
#[test]
fn bench_vs_refuses_a_bad_baseline_before_any_build() {
    let cases: [(&[&str], &str); 2] = [
        (
            &["--node", "22", "--vs", "22"],
            "--vs 22: that is the version being measured (--node 22)",
        ),
        (
            &["--node", "22", "--vs", "20"],
            "--vs 20: NodeOS does not build Node 20",
        ),
    ];
    for (args, says) in cases {
        let d = tempfile::tempdir().unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["--offline", "bench", "--no-write", "--arch", "x86_64"])
            .args(args)
            .env("NODEOS_CACHE_DIR", d.path().join("cache"))
            .env("NODEOS_DL_DIR", d.path().join("dl"))
            .env("NODEOS_TARGET_DIR", d.path().join("target"))
            .output()
            .unwrap();
        let err = failure_text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        for sub in ["cache/build", "cache/out", "dl"] {
            let p = d.path().join(sub);
            let empty = std::fs::read_dir(&p).map_or(true, |mut r| r.next().is_none());
            assert!(empty, "{args:?}: {} is not empty", p.display());
        }
    }
    let err = usage_error(&["bench", "--model", "--vs", "18"]);
    assert!(err.contains("--vs") && err.contains("--model"), "{err}");
}
