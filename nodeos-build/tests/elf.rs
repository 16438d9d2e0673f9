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
