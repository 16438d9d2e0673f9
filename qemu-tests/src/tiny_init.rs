//! A tiny static init (`tests/data/tiny_init.c`), compiled by the host C
//! compiler for a target: boots a kernel to its first user-space line in a
//! fraction of a second, without a Node build. The boot tests use it, and
//! `cargo xtask bench --kernel-options` measures kernels with it.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::Arch;

/// The init's source; the variant is chosen when it is compiled.
pub const SOURCE: &str = include_str!("../tests/data/tiny_init.c");

/// The init's first line on the console, whatever the variant.
pub const START_LINE: &str = "NODEOS-TINY-INIT start";

/// Compiles the init with `-DVARIANT_<variant>` (`EXIT`, `FAIL`, `HANG`,
/// `FLOOD`, `POWEROFF`: see the source), static, for `arch`, into `out`.
/// The host compiler is `$CC`, else `cc`; i386 needs a static 32-bit libc
/// (`gcc-multilib`).
pub fn compile(arch: Arch, variant: &str, out: &Path) -> anyhow::Result<()> {
    let dir = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let source = dir.join(format!(
        ".tiny_init.{}.{variant}.{arch}.c",
        std::process::id()
    ));
    std::fs::write(&source, SOURCE).with_context(|| format!("writing {}", source.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let result = Command::new(&cc)
        .arg(arch.host_cc_flag())
        .args(["-static", "-Os", "-Wall", "-Werror"])
        .arg(format!("-DVARIANT_{variant}"))
        .arg("-o")
        .arg(out)
        .arg(&source)
        .output();
    let _ = std::fs::remove_file(&source);
    let result = result.with_context(|| format!("running the host C compiler `{cc}`"))?;
    if !result.status.success() {
        bail!(
            "compiling the tiny init for {arch} failed (for i386 a static 32-bit libc is needed: \
             `apt-get install gcc-multilib`): {}",
            String::from_utf8_lossy(&result.stderr).trim()
        );
    }
    Ok(())
}
