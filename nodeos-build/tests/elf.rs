//! The static-binary checker against real binaries from the host compiler:
//! static and dynamic, 64- and 32-bit.

use nodeos_build::{elf, Arch};
use std::path::{Path, PathBuf};
use std::process::Command;

fn compile(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join("main.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
    )
    .unwrap();
    let out = dir.join(name);
    let o = Command::new("gcc")
        .args(flags)
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("gcc is needed (apt-get install gcc)");
    assert!(
        o.status.success(),
        "gcc {flags:?} failed (for -m32 install gcc-multilib): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn static_binaries_pass_for_their_arch_only() {
    let d = tempfile::tempdir().unwrap();
    for (arch, flag, other) in [
        (Arch::X86_64, "-m64", Arch::I386),
        (Arch::I386, "-m32", Arch::X86_64),
    ] {
        let bin = compile(d.path(), &format!("static-{arch}"), &["-static", flag]);
        let info = elf::check_static(&bin, arch).unwrap();
        assert_eq!(info.machine, arch.elf_machine());
        assert!(info.interpreter.is_none() && info.needed.is_empty());
        let e = format!("{:#}", elf::check_static(&bin, other).unwrap_err());
        assert!(e.contains("built for") && e.contains(other.name()), "{e}");
    }
}

#[test]
fn dynamic_binaries_are_refused_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    for (arch, flag) in [(Arch::X86_64, "-m64"), (Arch::I386, "-m32")] {
        let bin = compile(d.path(), &format!("dynamic-{arch}"), &[flag]);
        let info = elf::inspect(&bin).unwrap();
        assert!(
            info.needed.iter().any(|n| n.starts_with("libc.so")),
            "{info:?}"
        );
        let e = format!("{:#}", elf::check_static(&bin, arch).unwrap_err());
        assert!(
            e.contains("dynamically linked") && e.contains("libc.so"),
            "{e}"
        );
    }
}

#[test]
fn static_pie_is_static() {
    // A static PIE has a dynamic section but no interpreter and no NEEDED:
    // it runs alone, so it passes.
    let d = tempfile::tempdir().unwrap();
    let bin = compile(d.path(), "static-pie", &["-static-pie", "-fPIE"]);
    let info = elf::check_static(&bin, Arch::X86_64).unwrap();
    assert!(info.has_dynamic);
}

#[test]
fn non_elf_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("script.sh");
    std::fs::write(&p, "#!/bin/sh\necho hi\n").unwrap();
    let e = format!("{:#}", elf::check_static(&p, Arch::X86_64).unwrap_err());
    assert!(e.contains("not an ELF"), "{e}");
}

/// Runs `f` on another thread; a call that does not return within 10 s is
/// a hang, reported as a failure instead of blocking the test run.
fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("the check hung for 10 s instead of refusing the file")
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("init.fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success(), "mkfifo failed");
    let e =
        within_10s(move || format!("{:#}", elf::check_static(&fifo, Arch::X86_64).unwrap_err()));
    assert!(e.contains("a FIFO") && e.contains("regular file"), "{e}");
}

#[test]
fn a_device_is_refused_without_reading_it() {
    // /dev/zero never ends: reading it would fill memory.
    let e = within_10s(|| {
        format!(
            "{:#}",
            elf::check_static(Path::new("/dev/zero"), Arch::X86_64).unwrap_err()
        )
    });
    assert!(e.contains("character device"), "{e}");
}

#[test]
fn an_oversized_file_is_refused_before_reading() {
    // A sparse file: its size is checked, its bytes never read.
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("huge");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(elf::MAX_ELF_BYTES + 1).unwrap();
    let e = within_10s(move || format!("{:#}", elf::check_static(&p, Arch::X86_64).unwrap_err()));
    assert!(e.contains("bytes, more than"), "{e}");
}

#[test]
fn an_object_file_is_not_an_executable() {
    let d = tempfile::tempdir().unwrap();
    let obj = compile(d.path(), "main.o", &["-c"]);
    let info = elf::inspect(&obj).unwrap();
    assert_eq!(elf::arch_of(&info), Some(Arch::X86_64));
    let e = format!("{:#}", elf::check_static(&obj, Arch::X86_64).unwrap_err());
    assert!(e.contains("relocatable object"), "{e}");
}

#[test]
fn x32_belongs_to_no_arch() {
    // ELFCLASS32 with EM_X86_64: neither i386 nor x86_64 runs it as init.
    let d = tempfile::tempdir().unwrap();
    let bin = compile(d.path(), "x32", &["-static", "-mx32"]);
    let info = elf::inspect(&bin).unwrap();
    assert_eq!(
        (info.machine, info.is_64),
        (Arch::X86_64.elf_machine(), false)
    );
    assert_eq!(elf::arch_of(&info), None);
    for arch in Arch::all() {
        let e = format!("{:#}", elf::check_static(&bin, arch).unwrap_err());
        assert!(e.contains("32-bit"), "{arch}: {e}");
    }
}
