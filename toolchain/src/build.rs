//! The steps that build a toolchain, musl-cross-make style: binutils →
//! kernel UAPI headers → musl headers → all-gcc → static libgcc → musl →
//! the rest of GCC → install → self-test. Each is a stamped step; the make
//! steps resume after an interruption.

use crate::recipe::{self, Recipe};
use crate::{Inputs, BUILD_SYSROOT_REL};
use anyhow::{Context, Result};
use nodeos_build::fetch::verify;
use nodeos_build::jobrec::{self, RecipeShell};
use nodeos_build::tree;
use nodeos_build::util::{create_dir_all, remove_path};
use nodeos_build::{Arch, StepCtx};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Host build environment: nothing from the user's shell may leak into the
/// compilers' builds.
fn host_cmd(program: &str, cwd: &Path, stage: &Path) -> Command {
    let mut c = nodeos_build::util::build_command(program, cwd);
    let path = std::env::var("PATH").unwrap_or_default();
    c.env("PATH", format!("{}:{path}", stage.join("bin").display()));
    c
}

fn source_path(ctx: &StepCtx, r: &nodeos_build::Source) -> Result<PathBuf> {
    let p = ctx.env.dl_dir.join(&r.file);
    verify(&p, &r.sha256)?;
    Ok(p)
}

pub fn build(ctx: &mut StepCtx, arch: Arch, inputs: &Inputs) -> Result<()> {
    let recipe = Recipe::builtin();
    let triple = arch.triple().to_string();
    let b = ctx.build_dir().to_path_buf();
    let stage = ctx.out_dir().to_path_buf();
    let sysroot = b.join(BUILD_SYSROOT_REL);
    let flags = recipe::flags(&recipe, arch, &sysroot.display().to_string())?;
    let jobs = ctx.env.jobs.to_string();
    let src = b.join("src");

    // Unpack and patch each source (a re-run starts that tree afresh).
    for (name, r) in [
        ("binutils", &inputs.binutils),
        ("gcc", &inputs.gcc),
        ("musl", &inputs.musl),
        ("linux", &inputs.linux),
    ] {
        ctx.step(&format!("extract-{name}"), |ctx| {
            let dest = src.join(name);
            let archive = source_path(ctx, &r.main)?;
            tree::extract(ctx, &archive, &dest)?;
            if name == "gcc" {
                for sp in &recipe.gcc.source_patches {
                    if let Some(s) = r.with_named(&sp.source) {
                        let p = source_path(ctx, s)?;
                        tree::apply_patch(ctx, &dest, &p, sp.strip)?;
                    }
                }
            }
            if name != "linux" {
                let n = tree::apply_series(ctx, &dest, &r.main.name, &r.main.version)?;
                ctx.log(&format!("applied {n} project patch(es) to {name}"));
            }
            Ok(())
        })?;
    }

    // binutils, installed straight into the output prefix.
    let obj_binutils = b.join("obj-binutils");
    ctx.step("binutils-configure", |ctx| {
        remove_path(&obj_binutils)?;
        create_dir_all(&obj_binutils)?;
        let mut c = host_cmd("../src/binutils/configure", &obj_binutils, &stage);
        c.args(&flags.binutils_configure);
        ctx.run(c)
    })?;
    ctx.resumable_step("binutils-make", |ctx| {
        let mut c = host_cmd("make", &obj_binutils, &stage);
        c.arg(format!("-j{jobs}")).arg("MAKEINFO=true");
        jobrec::run_make(ctx, "binutils-make", c, RecipeShell::Bash, ctx.env.jobs)
    })?;
    ctx.step("binutils-install", |ctx| {
        let mut c = host_cmd("make", &obj_binutils, &stage);
        c.arg("MAKEINFO=true")
            .arg(format!("DESTDIR={}", stage.display()))
            .arg("install");
        ctx.run(c)
    })?;

    // The build sysroot: kernel UAPI headers and musl headers first; musl's
    // libraries join after it is built. usr/ and lib64/ point back into it
    // so the default search paths resolve.
    ctx.step("sysroot-layout", |_| {
        remove_path(&sysroot)?;
        create_dir_all(&sysroot.join("include"))?;
        create_dir_all(&sysroot.join("lib"))?;
        std::os::unix::fs::symlink(".", sysroot.join("usr"))?;
        std::os::unix::fs::symlink("lib", sysroot.join("lib64"))?;
        std::os::unix::fs::symlink("lib", sysroot.join("lib32"))?;
        Ok(())
    })?;
    let headers = b.join("obj-linux-headers");
    ctx.step("linux-headers", |ctx| {
        remove_path(&headers)?;
        create_dir_all(&headers.join("staged"))?;
        let mut c = host_cmd("make", &src.join("linux"), &stage);
        c.arg(format!("ARCH={}", arch.target().linux_srcarch))
            .arg(format!("O={}", headers.display()))
            .arg(format!(
                "INSTALL_HDR_PATH={}",
                headers.join("staged").display()
            ))
            .arg("headers_install");
        ctx.run(c)?;
        copy_tree(
            ctx,
            &headers.join("staged/include"),
            &sysroot.join("include"),
        )
    })?;
    let obj_musl_headers = b.join("obj-musl-headers");
    ctx.step("musl-headers", |ctx| {
        remove_path(&obj_musl_headers)?;
        create_dir_all(&obj_musl_headers)?;
        // Installing headers compiles nothing; the host gcc satisfies configure.
        let mut c = host_cmd("../src/musl/configure", &obj_musl_headers, &stage);
        c.args(&flags.musl_configure).env("CC", "gcc");
        ctx.run(c)?;
        let mut c = host_cmd("make", &obj_musl_headers, &stage);
        c.arg(format!("DESTDIR={}", sysroot.display()))
            .arg("install-headers");
        ctx.run(c)
    })?;

    // GCC in one build dir: cc1/cc1plus are compiled once.
    let obj_gcc = b.join("obj-gcc");
    let tool = |t: &str| {
        stage
            .join("bin")
            .join(format!("{triple}-{t}"))
            .display()
            .to_string()
    };
    ctx.step("gcc-configure", |ctx| {
        remove_path(&obj_gcc)?;
        create_dir_all(&obj_gcc)?;
        let mut c = host_cmd("../src/gcc/configure", &obj_gcc, &stage);
        c.args(&flags.gcc_configure);
        for (var, t) in [
            ("AR", "ar"),
            ("AS", "as"),
            ("LD", "ld"),
            ("NM", "nm"),
            ("OBJCOPY", "objcopy"),
            ("OBJDUMP", "objdump"),
            ("RANLIB", "ranlib"),
            ("READELF", "readelf"),
            ("STRIP", "strip"),
        ] {
            c.arg(format!("{var}_FOR_TARGET={}", tool(t)));
        }
        ctx.run(c)
    })?;
    // GCC's makefiles pass SHELL down to every sub-make themselves, so the
    // recorder reaches the recursive makes too.
    let gcc_make =
        |ctx: &mut StepCtx, step: &str, make: &str, target: Option<&str>| -> Result<()> {
            let mut c = host_cmd("make", &obj_gcc, &stage);
            c.arg(format!("-j{jobs}")).arg(format!("MAKE={make}"));
            c.args(recipe.gcc.make_vars.iter());
            if let Some(t) = target {
                c.arg(t);
            }
            jobrec::run_make(ctx, step, c, RecipeShell::Bash, ctx.env.jobs)
        };
    ctx.resumable_step("gcc-all-gcc", |ctx| {
        gcc_make(ctx, "gcc-all-gcc", &flags.gcc_make, Some("all-gcc"))
    })?;
    ctx.resumable_step("gcc-static-libgcc", |ctx| {
        gcc_make(
            ctx,
            "gcc-static-libgcc",
            &flags.gcc_make_static_libgcc,
            Some("all-target-libgcc"),
        )
    })?;

    // musl, compiled by the in-tree xgcc against the static libgcc.
    let obj_musl = b.join("obj-musl");
    let xgcc_dir = obj_gcc.join("gcc");
    let musl_vars = [
        format!("AR={}", tool("ar")),
        format!("RANLIB={}", tool("ranlib")),
    ];
    ctx.step("musl-configure", |ctx| {
        remove_path(&obj_musl)?;
        create_dir_all(&obj_musl)?;
        let mut c = host_cmd("../src/musl/configure", &obj_musl, &stage);
        c.args(&flags.musl_configure)
            .arg(format!(
                "CC={}/xgcc -B {}/",
                xgcc_dir.display(),
                xgcc_dir.display()
            ))
            .arg(format!(
                "LIBCC={}",
                obj_gcc.join(&triple).join("libgcc/libgcc.a").display()
            ));
        ctx.run(c)
    })?;
    ctx.resumable_step("musl-make", |ctx| {
        let mut c = host_cmd("make", &obj_musl, &stage);
        c.arg(format!("-j{jobs}")).args(&musl_vars);
        jobrec::run_make(ctx, "musl-make", c, RecipeShell::Sh, ctx.env.jobs)
    })?;
    ctx.step("musl-install-sysroot", |ctx| {
        let mut c = host_cmd("make", &obj_musl, &stage);
        c.args(&musl_vars)
            .arg(format!("DESTDIR={}", sysroot.display()))
            .arg("install");
        ctx.run(c)
    })?;

    // The rest of GCC: libgcc (shared too), libstdc++, libatomic.
    ctx.resumable_step("gcc-rest", |ctx| {
        gcc_make(ctx, "gcc-rest", &flags.gcc_make, None)
    })?;

    // Install GCC and musl into the output prefix; the sysroot is
    // <prefix>/<triple>, GCC's tooldir, so the toolchain is relocatable.
    ctx.step("install", |ctx| {
        let mut c = host_cmd("make", &obj_gcc, &stage);
        c.arg(format!("MAKE={}", flags.gcc_make))
            .args(recipe.gcc.make_vars.iter());
        c.arg(format!("DESTDIR={}", stage.display())).arg("install");
        ctx.run(c)?;
        let target_root = stage.join(&triple);
        let mut c = host_cmd("make", &obj_musl, &stage);
        c.args(&musl_vars)
            .arg(format!("DESTDIR={}", target_root.display()))
            .arg("install");
        ctx.run(c)?;
        copy_tree(
            ctx,
            &headers.join("staged/include"),
            &target_root.join("include"),
        )?;
        let cc_link = stage.join("bin").join(format!("{triple}-cc"));
        let _ = std::fs::remove_file(&cc_link);
        std::os::unix::fs::symlink(format!("{triple}-gcc"), &cc_link)?;
        Ok(())
    })?;

    let work = b.join("selftest");
    ctx.step("selftest", |ctx| {
        crate::selftest::run(ctx, &stage, arch, &work)
    })?;
    Ok(())
}

/// `cp -R from/. to/`, skipping the kernel's install bookkeeping files.
fn copy_tree(ctx: &mut StepCtx, from: &Path, to: &Path) -> Result<()> {
    create_dir_all(to)?;
    let mut c = Command::new("cp");
    c.arg("-R").arg(format!("{}/.", from.display())).arg(to);
    ctx.run(c).context("copying kernel headers")?;
    for e in walkdir::WalkDir::new(to).into_iter().flatten() {
        let n = e.file_name().to_string_lossy();
        if n == ".install" || n == "..install.cmd" {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(())
}
