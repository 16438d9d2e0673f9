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

#[test]
fn unknown_arch_is_one_line_exit_2() {
    let o = xtask(&["fetch", "--arch", "arm64"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected:\n{err}"
    );
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
        let o = xtask(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line expected:\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
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
        .args(["fetch", "--offline"])
        .env("NODEOS_CACHE_DIR", d.path().join("cache"))
        .env_remove("NODEOS_DL_DIR")
        .env_remove("NODEOS_SOURCE_VARIANT")
        .output()
        .unwrap();
    let err = failure_text(&o);
    // One run names the files of every package and where they go.
    // (the library packages' sources too: brotli, zlib)
    for file in [
        "binutils-",
        "gcc-",
        "musl-",
        "linux-",
        "node",
        "brotli-",
        "zlib_",
    ] {
        assert!(err.contains(file), "{file} not listed:\n{err}");
    }
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
    assert!(all.trim().parse::<usize>().unwrap() >= 7, "{err}");
    assert_eq!(
        failed.trim().rsplit(' ').next(),
        Some(all.trim()),
        "every package is listed as missing:\n{err}"
    );
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
