//! The steps of the kernel phase: unpack → configure (tinyconfig +
//! fragments + olddefconfig, then the symbol check) → make bzImage →
//! collect. Configuring is its own step and fails before anything is
//! compiled, so a fragment mistake costs seconds, not a kernel build.

use crate::config;
use anyhow::{bail, Context, Result};
use nodeos_build::fetch::{verify, Resolved};
use nodeos_build::jobrec::RecipeShell;
use nodeos_build::tree;
use nodeos_build::util::{create_dir_all, remove_path};
use nodeos_build::{Arch, StepCtx};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `KBUILD_BUILD_TIMESTAMP`: a fixed date (the epoch) instead of the build
/// time, so that the same inputs give the same image. It must be a date
/// `date -d` parses: the kernel's usr/gen_initramfs.sh reads it.
pub(crate) const BUILD_TIMESTAMP: &str = "Thu Jan  1 00:00:00 UTC 1970";

/// Parts of the Linux tarball an x86 build never reads, left out when
/// unpacking (GNU tar patterns, anchored at the tarball's top directory, `*`
/// not crossing `/`). They are a third of its 79k files and 45% of its
/// bytes (1.3 GB unpacked → 0.73 GB), and every file costs time twice:
/// written at unpack, deleted with the build dir after publishing (measured
/// here: unpack 27 s → 16 s). What Kconfig reads stays.
pub(crate) const EXTRACT_EXCLUDES: &[&str] = &[
    // Other architectures (lowercase names, so arch/Kconfig stays; x86 and
    // the small xtensa sort after `w`), all but their crypto/Kconfig, which
    // crypto/Kconfig sources for every arch.
    "*/arch/[a-w]*/[!c]*",
    "*/arch/[a-w]*/c[!r]*",
    "*/arch/[a-w]*/crypto/[!K]*",
    // Documentation, except Documentation/Kconfig, which the top Kconfig
    // sources.
    "*/Documentation/[!K]*",
    // Self-tests for tools; the build uses tools/objtool, tools/include and
    // tools/lib only.
    "*/tools/testing",
    // AMD GPU register headers: 378 MB, no Kconfig, compiled only with the
    // amdgpu driver (which needs PCI).
    "*/drivers/gpu/drm/amd/include",
];

/// Unpacks the kernel tarball into `dest` (replaced if present) without
/// [`EXTRACT_EXCLUDES`], dropping the tarball's top directory.
fn extract(ctx: &mut StepCtx, archive: &Path, dest: &Path) -> Result<()> {
    nodeos_build::tree::extract_excluding(ctx, archive, dest, EXTRACT_EXCLUDES)
}

pub(crate) struct Plan<'a> {
    pub arch: Arch,
    pub source: &'a Resolved,
    pub fragments: &'a [PathBuf],
    /// The fragments' settings, merged in order.
    pub requested: &'a [(String, String)],
}

/// Variables that would change what the kernel's make does behind the
/// recipe's back (compiler, flags, output dir, config file, job server).
const SCRUBBED_ENV: &[&str] = &[
    "ARCH",
    "SRCARCH",
    "CROSS_COMPILE",
    "LLVM",
    "LLVM_IAS",
    "CC",
    "LD",
    "AR",
    "NM",
    "OBJCOPY",
    "HOSTCC",
    "HOSTCXX",
    "CFLAGS",
    "CPPFLAGS",
    "LDFLAGS",
    "KCFLAGS",
    "KCPPFLAGS",
    "KAFLAGS",
    "KRUSTFLAGS",
    "HOSTCFLAGS",
    "HOSTLDFLAGS",
    "KBUILD_OUTPUT",
    "KBUILD_EXTMOD",
    "KBUILD_VERBOSE",
    "KBUILD_DEFCONFIG",
    "KCONFIG_CONFIG",
    "KCONFIG_ALLCONFIG",
    "KCONFIG_OVERWRITECONFIG",
    "INSTALL_PATH",
    "INSTALL_MOD_PATH",
    "C_INCLUDE_PATH",
    "CPATH",
    "LIBRARY_PATH",
    "LD_LIBRARY_PATH",
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "GNUMAKEFLAGS",
];

/// `make -C <src> O=<obj> ARCH=… KBUILD_BUILD_…=…` in a clean environment.
fn kmake(src: &Path, obj: &Path, arch: Arch) -> Command {
    let mut c = Command::new("make");
    scrub(&mut c);
    c.arg("-C")
        .arg(src)
        .arg(format!("O={}", obj.display()))
        .args(crate::make_vars(arch));
    c
}

fn scrub(c: &mut Command) {
    for v in SCRUBBED_ENV {
        c.env_remove(v);
    }
    c.env("LC_ALL", "C");
}

pub(crate) fn build(ctx: &mut StepCtx, plan: &Plan) -> Result<()> {
    let arch = plan.arch;
    let b = ctx.build_dir().to_path_buf();
    let stage = ctx.out_dir().to_path_buf();
    let src = b.join("src");
    let obj = b.join("obj");
    let jobs = ctx.env.jobs;

    ctx.step("extract", |ctx| {
        let s = &plan.source.main;
        let archive = ctx.env.dl_dir.join(&s.file);
        verify(&archive, &s.sha256)?;
        extract(ctx, &archive, &src)?;
        let n = tree::apply_series(ctx, &src, &s.name, &s.version)?;
        ctx.log(&format!("applied {n} project patch(es) to linux"));
        Ok(())
    })?;

    // tinyconfig, then the fragments merged in by the kernel's own script,
    // then olddefconfig to settle every dependency; then the check.
    ctx.step("configure", |ctx| {
        remove_path(&obj)?;
        create_dir_all(&obj)?;
        let mut c = kmake(&src, &obj, arch);
        c.arg("tinyconfig");
        ctx.run(c)?;
        let mut c = Command::new("sh");
        scrub(&mut c);
        c.current_dir(&src)
            .arg("scripts/kconfig/merge_config.sh")
            .arg("-m")
            .arg("-O")
            .arg(&obj)
            .arg(obj.join(".config"))
            .args(plan.fragments);
        ctx.run(c)?;
        let mut c = kmake(&src, &obj, arch);
        c.arg("olddefconfig");
        ctx.run(c)?;
        let final_config =
            std::fs::read_to_string(obj.join(".config")).context("reading the final .config")?;
        match config::check_config(plan.requested, &final_config) {
            Ok(()) => {
                ctx.log(&format!(
                    "config check: all {} requested symbol(s) are as asked",
                    plan.requested.len()
                ));
                Ok(())
            }
            Err(m) => {
                let text = config::describe_mismatches(&m);
                ctx.log(&text);
                bail!("{text}")
            }
        }
    })?;

    let image = &arch.target().kernel_image;
    // The step keeps its name (stamps of interrupted builds refer to it).
    ctx.resumable_step("bzimage", |ctx| {
        let mut c = kmake(&src, &obj, arch);
        c.arg(format!("-j{jobs}")).arg(&image.make_target);
        nodeos_build::jobrec::run_make(ctx, "bzimage", c, RecipeShell::Sh, jobs)
    })?;

    ctx.step("collect", |ctx| {
        create_dir_all(&stage)?;
        let built = obj.join(&image.path);
        crate::check_user_bzimage_for(&built, arch)?;
        copy(&built, &stage.join(crate::image_file_name(arch)))?;
        copy(&obj.join(".config"), &stage.join("config"))?;
        // With BLK_DEV_INITRD the kernel builds usr/gen_init_cpio for its
        // built-in (empty) initramfs; should a config ever skip it, build
        // the one C file directly with the host compiler.
        let gen = obj.join("usr/gen_init_cpio");
        if !gen.is_file() {
            let mut c = Command::new("gcc");
            scrub(&mut c);
            c.args(["-O2", "-o"])
                .arg(&gen)
                .arg(src.join("usr/gen_init_cpio.c"));
            ctx.run(c)?;
        }
        copy(&gen, &stage.join("gen_init_cpio"))?;
        let name = crate::image_file_name(arch);
        let size = std::fs::metadata(stage.join(&name))?.len();
        ctx.log(&format!("{name}: {size} bytes"));
        Ok(())
    })?;
    Ok(())
}

/// Copies a file, keeping its permissions (gen_init_cpio stays executable).
fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}
