//! The steps that build one package into its prefix: unpack and patch,
//! run its build system with the target toolchain, make the pkg-config
//! file relocatable, check what was installed.

use crate::spec::{Archive, BuildSystem, CompiledLib, Header};
use crate::{Built, Package};
use anyhow::{bail, Context, Result};
use nodeos_build::fetch::{verify, Resolved};
use nodeos_build::jobrec::{self, RecipeShell};
use nodeos_build::util::{build_command, create_dir_all, remove_path};
use nodeos_build::{tree, Arch, StepCtx};
use std::path::{Path, PathBuf};
use std::process::Command;
use toolchain::Toolchain;

/// The first line of every pkg-config file a package publishes: the prefix
/// is wherever the file is, so a published output can sit anywhere.
const RELOCATABLE_PREFIX: &str = "prefix=${pcfiledir}/../..";

pub fn build(
    ctx: &mut StepCtx,
    arch: Arch,
    pkg: &Package,
    src: &Resolved,
    tc: &Toolchain,
    deps: &[&Built],
) -> Result<()> {
    let spec = &pkg.spec;
    let tree_dir = ctx.build_dir().join("src");
    let prefix = ctx.out_dir().to_path_buf();
    let cflags = spec.cflags(arch.name()).join(" ");
    // Nothing from the user's shell leaks in: the toolchain, the flags and
    // the dependencies' paths are all a build sees.
    let mut vars: Vec<(String, String)> = tc
        .env_vars()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.display().to_string()))
        .collect();
    vars.push(("CFLAGS".into(), cflags.clone()));
    vars.push(("CXXFLAGS".into(), cflags));
    let include_flags: Vec<String> = deps
        .iter()
        .map(|d| format!("-I{}", d.include_dir().display()))
        .collect();
    vars.push(("CPPFLAGS".into(), include_flags.join(" ")));
    vars.push((
        "LDFLAGS".into(),
        deps.iter()
            .map(|d| format!("-L{}", d.lib_dir().display()))
            .collect::<Vec<_>>()
            .join(" "),
    ));
    // Only the dependencies' .pc files, never the host's.
    vars.push((
        "PKG_CONFIG_LIBDIR".into(),
        deps.iter()
            .map(|d| d.pkgconfig_dir().display().to_string())
            .collect::<Vec<_>>()
            .join(":"),
    ));
    let cmd = |program: &Path, cwd: &Path| {
        let mut c = build_command(program, cwd);
        c.env_remove("PKG_CONFIG_PATH");
        for (k, v) in &vars {
            c.env(k, v);
        }
        c
    };

    ctx.step("prepare-source", |ctx| {
        let archive = ctx.env.dl_dir.join(&src.main.file);
        verify(&archive, &src.main.sha256)?;
        tree::extract(ctx, &archive, &tree_dir)?;
        let n = tree::apply_series(ctx, &tree_dir, &spec.name, &src.main.version)?;
        ctx.log(&format!("applied {n} project patch(es) to {}", spec.name));
        Ok(())
    })?;

    match &spec.build {
        BuildSystem::Configure { .. } => {
            let args = spec.args(arch.name());
            ctx.step("configure", |ctx| {
                let mut c = cmd(Path::new("sh"), &tree_dir);
                c.arg("./configure")
                    .arg(format!("--prefix={}", prefix.display()))
                    .args(&args);
                ctx.run(c)
            })?;
            let jobs = ctx.env.jobs;
            ctx.resumable_step("make", |ctx| {
                let mut c = cmd(Path::new("make"), &tree_dir);
                c.arg(format!("-j{jobs}"));
                jobrec::run_make(ctx, "make", c, RecipeShell::Sh, jobs)
            })?;
            ctx.step("install", |ctx| {
                let mut c = cmd(Path::new("make"), &tree_dir);
                c.arg("install");
                ctx.run(c)
            })?;
        }
        BuildSystem::Archives {
            include_dirs,
            headers,
            archives,
        } => {
            let mut includes: Vec<PathBuf> =
                include_dirs.iter().map(|d| tree_dir.join(d)).collect();
            includes.extend(deps.iter().map(|d| d.include_dir()));
            let objs = ctx.build_dir().join("obj");
            ctx.step("compile", |ctx| {
                remove_path(&objs)?;
                for a in archives {
                    compile_archive(
                        ctx,
                        tc,
                        &spec.cflags(arch.name()),
                        &tree_dir,
                        &includes,
                        a,
                        &objs,
                        &prefix,
                    )?;
                }
                Ok(())
            })?;
            ctx.step("install", |ctx| {
                let dest = prefix.join("include");
                remove_path(&dest)?;
                let mut c = Command::new("cp");
                c.arg("-R").arg(tree_dir.join(headers)).arg(&dest);
                ctx.run(c)
            })?;
        }
        BuildSystem::Make {
            configure,
            make,
            install,
        } => {
            let subst = |a: &String| {
                a.replace("{prefix}", &prefix.display().to_string())
                    .replace("{host}", arch.triple())
            };
            if let Some((program, rest)) = configure.split_first() {
                let mut args: Vec<String> = rest.iter().map(subst).collect();
                args.extend(spec.args(arch.name()).iter().map(subst));
                ctx.step("configure", |ctx| {
                    let mut c = cmd(Path::new(program), &tree_dir);
                    c.args(&args);
                    ctx.run(c)
                })?;
            }
            let jobs = ctx.env.jobs;
            ctx.resumable_step("make", |ctx| {
                for m in make {
                    let mut c = cmd(Path::new("make"), &tree_dir);
                    c.arg(format!("-j{jobs}")).args(m.iter().map(subst));
                    jobrec::run_make(ctx, "make", c, RecipeShell::Sh, jobs)?;
                }
                Ok(())
            })?;
            ctx.step("install", |ctx| {
                for m in install {
                    let mut c = cmd(Path::new("make"), &tree_dir);
                    c.args(m.iter().map(subst));
                    ctx.run(c)?;
                }
                // libtool's .la files name the build-time prefix and
                // add nothing to a static link (Debian drops them too).
                for f in nodeos_build::util::files_sorted(&prefix.join("lib"))? {
                    if f.extension().is_some_and(|x| x == "la") {
                        remove_path(&f)?;
                        ctx.log(&format!("removed libtool archive {}", f.display()));
                    }
                }
                Ok(())
            })?;
        }
        BuildSystem::Compile {
            host_commands,
            generate,
            include_dirs,
            defines,
            cxxflags,
            libs,
            headers,
        } => {
            ctx.step("generate", |ctx| {
                for line in host_commands {
                    // The host's own compiler: these make sources, which
                    // the target compiler then builds.
                    let mut c = build_command(Path::new("sh"), &tree_dir);
                    c.env("CC", "gcc").arg("-c").arg(line);
                    ctx.run(c)?;
                }
                for g in generate {
                    let from = tree_dir.join(&g.from);
                    let mut text = std::fs::read_to_string(&from)
                        .with_context(|| format!("reading {}", from.display()))?;
                    for (word, value) in &g.replace {
                        let w = format!("@{word}@");
                        if !text.contains(&w) {
                            bail!("{} has no {w} to replace", g.from);
                        }
                        text = text.replace(&w, value);
                    }
                    std::fs::write(tree_dir.join(&g.to), text)?;
                }
                Ok(())
            })?;
            let mut includes: Vec<PathBuf> =
                include_dirs.iter().map(|d| tree_dir.join(d)).collect();
            includes.extend(deps.iter().map(|d| d.include_dir()));
            let objs = ctx.build_dir().join("obj");
            let flags = CompileFlags {
                cflags: spec.cflags(arch.name()),
                cxxflags: cxxflags.clone(),
                defines: defines.clone(),
                includes,
            };
            ctx.resumable_step("compile", |ctx| {
                for l in libs {
                    compile_lib(ctx, tc, &flags, &tree_dir, l, &objs, &prefix)?;
                }
                Ok(())
            })?;
            ctx.step("install", |_| install_headers(&tree_dir, headers, &prefix))?;
        }
    }

    ctx.step("pkgconfig", |ctx| {
        let pc_dir = prefix.join("lib/pkgconfig");
        create_dir_all(&pc_dir)?;
        let own = pc_dir.join(format!("{}.pc", spec.name));
        if !own.is_file() {
            let Some(pc) = &spec.pkgconfig else {
                bail!(
                    "the build installed no {} and package.toml has no [pkgconfig] table to write one",
                    own.display()
                );
            };
            let requires: Vec<&str> = spec.depends.iter().map(String::as_str).collect();
            let text = format!(
                "{RELOCATABLE_PREFIX}\nlibdir=${{prefix}}/lib\nincludedir=${{prefix}}/include\n\n\
                 Name: {}\nDescription: {}\nVersion: {}\n{}Libs: -L${{libdir}} {}\nCflags: -I${{includedir}}\n",
                spec.name,
                pc.description,
                src.main.version,
                if requires.is_empty() {
                    String::new()
                } else {
                    format!("Requires: {}\n", requires.join(" "))
                },
                pc.libs.join(" "),
            );
            std::fs::write(&own, text)?;
        }
        for e in std::fs::read_dir(&pc_dir)?.flatten() {
            if e.path().extension().is_some_and(|x| x == "pc") {
                relocate_pc(&e.path(), &prefix)?;
                ctx.log(&format!("pkg-config file {} made relocatable", e.path().display()));
            }
        }
        Ok(())
    })?;

    ctx.step("check", |_ctx| check_installed(&prefix, &spec.installs))
}

#[allow(clippy::too_many_arguments)]
fn compile_archive(
    ctx: &mut StepCtx,
    tc: &Toolchain,
    cflags: &[String],
    tree_dir: &Path,
    includes: &[PathBuf],
    a: &Archive,
    objs: &Path,
    prefix: &Path,
) -> Result<()> {
    let dir = objs.join(&a.lib);
    create_dir_all(&dir)?;
    let src_dir = tree_dir.join(&a.dir);
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&src_dir)
        .with_context(|| format!("reading {}", src_dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    if sources.is_empty() {
        bail!("{} has no .c files for lib{}.a", src_dir.display(), a.lib);
    }
    sources.sort();
    let mut objects = Vec::new();
    for s in &sources {
        let stem = s.file_stem().expect("a file").to_string_lossy();
        let o = dir.join(format!("{stem}.o"));
        let mut c = build_command(tc.tool("gcc"), tree_dir);
        c.args(cflags).arg("-c");
        for i in includes {
            c.arg("-I").arg(i);
        }
        c.arg(s).arg("-o").arg(&o);
        ctx.run(c)?;
        objects.push(o);
    }
    let lib = prefix.join("lib");
    create_dir_all(&lib)?;
    let archive = lib.join(format!("lib{}.a", a.lib));
    remove_path(&archive)?;
    let mut c = build_command(tc.tool("ar"), tree_dir);
    c.arg("rcs").arg(&archive).args(&objects);
    ctx.run(c)
}

struct CompileFlags {
    cflags: Vec<String>,
    cxxflags: Vec<String>,
    defines: Vec<String>,
    includes: Vec<PathBuf>,
}

/// The files a `sources` entry names: itself, or for `dir/*.ext` every
/// `.ext` file of `dir`, sorted.
fn expand_sources(tree_dir: &Path, pattern: &str) -> Result<Vec<PathBuf>> {
    let Some((dir, ext)) = pattern.rsplit_once("/*.") else {
        let p = tree_dir.join(pattern);
        if !p.is_file() {
            bail!("source {pattern} is not in the tree");
        }
        return Ok(vec![p]);
    };
    let d = tree_dir.join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
        .with_context(|| format!("reading {}", d.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    if files.is_empty() {
        bail!("{pattern} matches no file");
    }
    files.sort();
    Ok(files)
}

fn compile_lib(
    ctx: &mut StepCtx,
    tc: &Toolchain,
    flags: &CompileFlags,
    tree_dir: &Path,
    l: &CompiledLib,
    objs: &Path,
    prefix: &Path,
) -> Result<()> {
    let dir = objs.join(&l.lib);
    create_dir_all(&dir)?;
    let mut sources = Vec::new();
    for pattern in &l.sources {
        sources.extend(expand_sources(tree_dir, pattern)?);
    }
    let mut objects = Vec::new();
    for s in &sources {
        let rel = s.strip_prefix(tree_dir).unwrap_or(s);
        let o = dir.join(format!("{}.o", rel.to_string_lossy().replace('/', "_")));
        objects.push(o.clone());
        // Resumable: an object under its final name is complete (the
        // compiler writes a temporary name, renamed once it succeeded).
        if o.is_file() {
            continue;
        }
        let cxx = s.extension().is_none_or(|x| x != "c");
        let mut c = build_command(tc.tool(if cxx { "g++" } else { "gcc" }), tree_dir);
        c.args(&flags.cflags);
        if cxx {
            c.args(&flags.cxxflags);
        }
        c.args(flags.defines.iter().map(|d| format!("-D{d}")));
        for i in &flags.includes {
            c.arg("-I").arg(i);
        }
        let tmp = o.with_extension("o.tmp");
        c.arg("-c").arg(s).arg("-o").arg(&tmp);
        ctx.run(c)?;
        std::fs::rename(&tmp, &o)?;
    }
    let lib = prefix.join("lib");
    create_dir_all(&lib)?;
    let archive = lib.join(format!("lib{}.a", l.lib));
    remove_path(&archive)?;
    let mut c = build_command(tc.tool("ar"), tree_dir);
    c.arg("rcs").arg(&archive).args(&objects);
    ctx.run(c)
}

fn install_headers(tree_dir: &Path, headers: &[Header], prefix: &Path) -> Result<()> {
    let include = prefix.join("include");
    remove_path(&include)?;
    for h in headers {
        let from = tree_dir.join(&h.from);
        let to = include.join(&h.to);
        create_dir_all(to.parent().expect("under include/"))?;
        if from.is_dir() {
            let st = Command::new("cp").arg("-R").arg(&from).arg(&to).status()?;
            if !st.success() {
                bail!("copying {} to {}", from.display(), to.display());
            }
        } else {
            std::fs::copy(&from, &to).with_context(|| format!("installing header {}", h.from))?;
        }
    }
    Ok(())
}

/// Points a `.pc` file's prefix at its own location and refuses any other
/// mention of the build-time prefix (which is gone once published).
pub(crate) fn relocate_pc(pc: &Path, build_prefix: &Path) -> Result<()> {
    let text = std::fs::read_to_string(pc).with_context(|| format!("reading {}", pc.display()))?;
    let built = build_prefix.display().to_string();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("prefix=") {
            out.push_str(RELOCATABLE_PREFIX);
        } else if line.contains(&built) {
            // e.g. `libdir=/abs/stage/lib`: say it relative to the prefix.
            out.push_str(&line.replace(&built, "${prefix}"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if !out.starts_with("prefix=") && !out.contains(&format!("\n{RELOCATABLE_PREFIX}\n")) {
        bail!("{} has no prefix= line", pc.display());
    }
    std::fs::write(pc, out)?;
    Ok(())
}

/// Every declared file is there; nothing shared or libtool-ish is.
fn check_installed(prefix: &Path, installs: &[String]) -> Result<()> {
    let missing: Vec<&String> = installs
        .iter()
        .filter(|f| !prefix.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        bail!(
            "the build did not install {} (declared in package.toml's installs)",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for e in nodeos_build::util::files_sorted(&prefix.join("lib"))? {
        let name = e.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with(".so") || name.contains(".so.") || name.ends_with(".la") {
            bail!(
                "{} was installed: packages are static libraries only (fix the build flags)",
                e.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pc_files_become_relocatable() {
        let d = tempfile::tempdir().unwrap();
        let pc = d.path().join("z.pc");
        std::fs::write(
            &pc,
            "prefix=/b/stage\nexec_prefix=${prefix}\nlibdir=/b/stage/lib\nincludedir=${prefix}/include\n\nName: z\nLibs: -L${libdir} -lz\n",
        )
        .unwrap();
        relocate_pc(&pc, Path::new("/b/stage")).unwrap();
        let text = std::fs::read_to_string(&pc).unwrap();
        assert!(text.starts_with("prefix=${pcfiledir}/../..\n"), "{text}");
        assert!(text.contains("libdir=${prefix}/lib\n"), "{text}");
        assert!(!text.contains("/b/stage"), "{text}");
        std::fs::write(&pc, "Name: z\n").unwrap();
        assert!(relocate_pc(&pc, Path::new("/b/stage")).is_err());
    }
}
