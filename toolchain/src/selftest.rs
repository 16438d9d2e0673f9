//! The toolchain self-test: static C and C++ programs built with the new
//! compilers, checked as ELF files and run on the host (x86 hosts run i686
//! and x86_64 static binaries), their output compared with what is known.

use anyhow::{bail, Context, Result};
use nodeos_build::{elf, Arch, StepCtx};
use std::path::Path;
use std::process::Command;

pub const C_SOURCE: &str = include_str!("../selftest/hello.c");
pub const CXX_SOURCE: &str = include_str!("../selftest/hello.cpp");

/// What the programs print: sum 1..100, sqrt(2), an env var seen; four
/// threads adding 0+1+2+3 a thousand times each; a caught exception.
pub const C_EXPECTED: &str = "c: 5050/1.414/env len=14\n";
pub const CXX_EXPECTED: &str = "c++: threads=4 total=6000 caught=boom\n";

pub fn run(ctx: &mut StepCtx, prefix: &Path, arch: Arch, work: &Path) -> Result<()> {
    nodeos_build::util::create_dir_all(work)?;
    let triple = arch.triple();
    let cases = [
        ("hello.c", C_SOURCE, "gcc", C_EXPECTED, vec!["-lm"]),
        (
            "hello.cpp",
            CXX_SOURCE,
            "g++",
            CXX_EXPECTED,
            vec!["-pthread"],
        ),
    ];
    for (file, source, driver, expected, libs) in cases {
        let src = work.join(file);
        std::fs::write(&src, source)?;
        let exe = work.join(format!("{file}.exe"));
        let mut c = Command::new(prefix.join("bin").join(format!("{triple}-{driver}")));
        c.args(["-static", "-O2"])
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .args(&libs);
        ctx.run(c)
            .with_context(|| format!("compiling the self-test {file}"))?;
        let info = elf::check_static(&exe, arch)?;
        ctx.log(&format!(
            "self-test {file}: static ELF for {}",
            elf::machine_name(info.machine)
        ));
        let out = Command::new(&exe)
            .env("NODEOS_SELFTEST", "1")
            .output()
            .with_context(|| format!("running the self-test {}", exe.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ctx.log(&format!("self-test {file} printed: {stdout}"));
        if !out.status.success() || stdout != expected {
            bail!(
                "the self-test {file} built with {triple}-{driver} printed {stdout:?} (exit {}), expected {expected:?}",
                out.status
            );
        }
    }
    Ok(())
}
