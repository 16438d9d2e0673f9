//! The steps that build a static node: prepare the tree (restoring what a
//! Debian repack removed), configure (linking the variant's library
//! packages), make the `node` target (resumable), install stripped +
//! unstripped, check on the host.

use crate::checks;
use crate::recipe::{self, ConfigurePaths, Recipe};
use anyhow::{bail, Context, Result};
use nodeos_build::fetch::{verify, Resolved};
use nodeos_build::jobrec::RecipeShell;
use nodeos_build::util::create_dir_all;
use nodeos_build::{tree, Arch, Source, StepCtx};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use toolchain::Toolchain;

fn verified(ctx: &StepCtx, s: &Source) -> Result<PathBuf> {
    let p = ctx.env.dl_dir.join(&s.file);
    verify(&p, &s.sha256)?;
    Ok(p)
}

fn with_source<'a>(node: &'a Resolved, name: &str) -> Result<&'a Source> {
    node.with_named(name).with_context(|| {
        format!(
            "the {} variant of node needs source '{name}'",
            node.variant()
        )
    })
}

/// Debian's python3, not a pyenv shim (node's configure picks the first
/// python3.x on PATH, and a broken shim there fails it).
fn python() -> PathBuf {
    let system = PathBuf::from("/usr/bin/python3");
    if system.is_file() {
        system
    } else {
        nodeos_build::host::which("python3").unwrap_or(system)
    }
}

/// `libs` holds the published library packages the variant links, by name.
pub fn build(
    ctx: &mut StepCtx,
    arch: Arch,
    recipe: &Recipe,
    node: &Resolved,
    tc: &Toolchain,
    libs: &BTreeMap<String, packages::Built>,
) -> Result<()> {
    let variant = recipe.variant(node.variant())?.clone();
    let b = ctx.build_dir().to_path_buf();
    let src = b.join("node");
    let py = python();
    let flags = recipe.build_flags(arch)?;
    // Checked before anything is built: a launcher that cannot work says so
    // now, in one line.
    let launch = nodeos_build::launcher::setup_from_env(&ctx.env, &tc.compilers(), &src)?;
    let mut env = recipe::build_env(
        &tc.env_vars(),
        launch.as_ref().map(|l| l.prefix.as_str()),
        &py,
        &flags,
    );
    env.extend(launch.map(|l| l.env).unwrap_or_default());
    // Nothing from the user's shell leaks in; the recipe's variables
    // (compilers, flags, launcher) are set explicitly.
    let cmd = |program: &str, cwd: &Path| {
        let mut c = nodeos_build::util::build_command(program, cwd);
        for (k, v) in &env {
            c.env(k, v);
        }
        c
    };

    ctx.step("prepare-source", |ctx| {
        prepare_source(ctx, node, &variant, &src)
    })?;

    let icu = match &variant.icu {
        Some(name) => Some(verified(ctx, with_source(node, name)?)?),
        None => None,
    };
    let paths = ConfigurePaths {
        brotli: match &variant.brotli {
            Some(name) => Some(
                libs.get(name)
                    .with_context(|| format!("the library package {name} was not built"))?
                    .dir
                    .clone(),
            ),
            None => None,
        },
        icu_source: icu,
        libraries: libs
            .iter()
            .map(|(name, b)| (name.clone(), b.dir.clone()))
            .collect(),
    };
    let args = recipe::configure_args(recipe, arch, node.variant(), &paths)?;
    ctx.step("configure", |ctx| {
        let mut c = cmd(&py.display().to_string(), &src);
        c.arg("configure.py").args(&args);
        ctx.run(c)
    })?;

    let target = recipe.make_target.clone();
    let plan = {
        let mut c = cmd("make", &src);
        c.args(["-n", "-C", "out", "BUILDTYPE=Release", &target]);
        c.output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let obj_dir = src.join("out/Release");
    let total = plan.map(|text| planned_objects(&text, &obj_dir));
    let last = Cell::new((Instant::now() - Duration::from_secs(60), 0u64));
    ctx.progress.set_counter(Some(Box::new(move || {
        // Walking thousands of files: at most every 10 s.
        let (when, n) = last.get();
        let n = if when.elapsed() >= Duration::from_secs(10) {
            let n = count_files(&obj_dir, "o");
            last.set((Instant::now(), n));
            n
        } else {
            n
        };
        total.map(|t| (n.min(t), t))
    })));
    let jobs = ctx.env.jobs;
    let made = ctx.resumable_step("make", |ctx| {
        let mut c = cmd("make", &src);
        c.args([
            "-C",
            "out",
            "BUILDTYPE=Release",
            &format!("-j{jobs}"),
            &target,
        ]);
        nodeos_build::jobrec::run_make(ctx, "make", c, RecipeShell::Sh, jobs)
    });
    ctx.progress.set_counter(None);
    made?;

    ctx.step("install", |ctx| {
        let built = src.join("out/Release/node");
        let out = ctx.out_dir().to_path_buf();
        std::fs::copy(&built, out.join("node.unstripped"))?;
        let mut c = Command::new(tc.tool("strip"));
        c.arg("-o").arg(out.join("node")).arg(&built);
        ctx.run(c)?;
        std::fs::copy(src.join("config.gypi"), out.join("config.gypi"))?;
        Ok(())
    })?;
    ctx.step("check", |ctx| {
        let out = ctx.out_dir().to_path_buf();
        for bin in ["node", "node.unstripped"] {
            nodeos_build::elf::check_static(&out.join(bin), arch)?;
        }
        let report = checks::run(&out.join("node"), arch, &node.main.version)?;
        for (k, v) in &report.lines {
            ctx.log(&format!("check {k} = {v}"));
        }
        if let Some(parts) = &variant.parts {
            let want = library_versions(parts)?;
            let keys: Vec<&str> = want.iter().map(|(k, _)| k.as_str()).collect();
            let script =
                format!("for (const k of {keys:?}) console.log(k + '=' + process.versions[k])");
            let got = Command::new(out.join("node"))
                .args(["-e", &script])
                .output()
                .context("running the built node for process.versions")?;
            let got = String::from_utf8_lossy(&got.stdout).into_owned();
            check_library_versions(&want, &got)?;
            ctx.log(&format!(
                "process.versions of the linked packages: {}",
                got.trim().replace('\n', ", ")
            ));
        }
        Ok(())
    })
}

/// Unpacks the Node tree and, for a repacked variant, restores what the
/// repack removed: components, the distribution's patch series, the JS
/// builtins (with their version headers); then the project's patches.
pub fn prepare_source(
    ctx: &mut StepCtx,
    node: &Resolved,
    variant: &recipe::Variant,
    src: &Path,
) -> Result<()> {
    let b = src
        .parent()
        .expect("the tree is inside the build dir")
        .to_path_buf();
    let archive = verified(ctx, &node.main)?;
    tree::extract(ctx, &archive, src)?;
    for comp in &variant.components {
        let s = with_source(node, &comp.source)?;
        let a = verified(ctx, s)?;
        tree::extract(ctx, &a, &src.join(&comp.dir))?;
    }
    if let Some(series_src) = &variant.patch_series {
        let a = verified(ctx, with_source(node, series_src)?)?;
        let pkg = b.join("debian-package");
        tree::unpack(ctx, &a, &pkg)?;
        let patches = pkg.join("debian/patches");
        let series = std::fs::read_to_string(patches.join("series"))
            .context("reading debian/patches/series")?;
        for name in series
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let name = name.split_whitespace().next().expect("non-empty line");
            tree::apply_patch(ctx, src, &patches.join(name), 1)?;
        }
    }
    for bi in &variant.builtins {
        let deb = verified(ctx, with_source(node, &bi.source)?)?;
        let dest = src.join(&bi.to);
        create_dir_all(dest.parent().expect("under deps/"))?;
        nodeos_build::fetch::extract_deb_member(&deb, &bi.from, &dest)
            .with_context(|| format!("restoring builtin {}", bi.to))?;
        if let Some(vh) = &bi.version_header {
            set_version_header(&src.join(&vh.file), &vh.version)?;
        }
    }
    if let Some(parts) = &variant.parts {
        assemble_parts(ctx, node, parts, src)?;
    }
    let n = tree::apply_series(ctx, src, "node", &node.main.version)?;
    ctx.log(&format!("applied {n} project patch(es) to node"));
    let variant_dir = crate::variant_patch_dir(node);
    if ctx.env.patches_dir().join(&variant_dir).is_dir() {
        let version = variant_dir.trim_start_matches("node-").to_string();
        let n = tree::apply_series(ctx, src, "node", &version)?;
        ctx.log(&format!(
            "applied {n} patch(es) of the {} variant to node",
            node.variant()
        ));
    }
    if let Some(parts) = &variant.parts {
        for vh in &parts.version_checks {
            check_version_header(&src.join(&vh.file), &vh.version)?;
        }
    }
    Ok(())
}

/// Places the parts a repack removed: files and directories of archive
/// sources (JS builtins, tools/gyp), then the esbuild bundles. Each archive
/// is unpacked once, beside the tree.
pub fn assemble_parts(
    ctx: &mut StepCtx,
    node: &Resolved,
    parts: &recipe::Parts,
    src: &Path,
) -> Result<()> {
    let unpacked = src
        .parent()
        .expect("the tree is inside the build dir")
        .join("parts");
    let mut done: Vec<String> = Vec::new();
    let mut unpack = |ctx: &mut StepCtx, name: &str| -> Result<PathBuf> {
        let dir = unpacked.join(name);
        if !done.iter().any(|d| d == name) {
            let a = verified(ctx, with_source(node, name)?)?;
            tree::unpack(ctx, &a, &dir)?;
            done.push(name.to_string());
        }
        Ok(dir)
    };
    for p in &parts.place {
        let from = unpack(ctx, &p.source)?.join(&p.from);
        let to = src.join(&p.to);
        if !from.exists() {
            bail!("part {}: {} is not in its archive", p.source, p.from);
        }
        copy_into_tree(&from, &to)
            .with_context(|| format!("placing {} of {} at {}", p.from, p.source, p.to))?;
        ctx.log(&format!("part {}: {} -> {}", p.source, p.from, p.to));
    }
    if parts.bundles.is_empty() {
        return Ok(());
    }
    let esbuild_src = parts
        .esbuild
        .as_deref()
        .expect("checked by the recipe parser");
    let esbuild = unpack(ctx, esbuild_src)?.join("package/bin/esbuild");
    for b in &parts.bundles {
        let root = unpacked.join(format!("bundle-{}", b.source));
        let a = verified(ctx, with_source(node, &b.source)?)?;
        tree::unpack(ctx, &a, &root)?;
        let pkg = root.join("package");
        for m in &b.node_modules {
            let a = verified(ctx, with_source(node, m)?)?;
            tree::extract(ctx, &a, &pkg.join("node_modules").join(m))?;
        }
        let mut c = nodeos_build::util::build_command(&esbuild, &pkg);
        c.args(&b.esbuild);
        ctx.run(c)?;
        let out = pkg.join(&b.output);
        let mut text = std::fs::read_to_string(&out)
            .with_context(|| format!("reading esbuild's output {}", out.display()))?;
        if b.latin1_fold {
            text = latin1_fold(&text);
        }
        let sha = nodeos_build::util::sha256_bytes(text.as_bytes());
        if sha != b.sha256 {
            bail!(
                "the {} bundle is not the pinned one: sha256 {sha}, recipe says {} (esbuild or the npm parts changed)",
                b.to,
                b.sha256
            );
        }
        let to = src.join(&b.to);
        create_dir_all(to.parent().expect("a file in the tree"))?;
        std::fs::write(&to, text)?;
        ctx.log(&format!("bundle {} -> {} (sha256 {sha})", b.source, b.to));
    }
    Ok(())
}

/// `(process.versions key, version)` of each library package a parts
/// variant links: the version of the source entry it is built from.
pub fn library_versions(parts: &recipe::Parts) -> Result<Vec<(String, String)>> {
    let reg = packages::Registry::builtin();
    parts
        .libraries
        .iter()
        .map(|l| {
            let pkg = reg.get(&l.package)?;
            let source = l.source.as_deref().unwrap_or(&pkg.spec.source);
            let v = pkg
                .manifest
                .variants(source)
                .first()
                .with_context(|| format!("package {} has no source {source}", l.package))?
                .version
                .clone();
            Ok((l.process_versions.clone(), v))
        })
        .collect()
}

/// Compares `key=value` lines of the built node with the packages'
/// versions; a library linked from elsewhere (a `--shared-*` flag that did
/// nothing, or a header from another prefix) differs here.
pub fn check_library_versions(want: &[(String, String)], got: &str) -> Result<()> {
    let got: BTreeMap<&str, &str> = got.lines().filter_map(|l| l.split_once('=')).collect();
    let wrong: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(k.as_str()) != Some(&v.as_str()))
        .map(|(k, v)| {
            format!(
                "{k}: built {} (package {v})",
                got.get(k.as_str()).unwrap_or(&"nothing")
            )
        })
        .collect();
    if !wrong.is_empty() {
        bail!(
            "the built node does not report its library packages' versions: {}",
            wrong.join("; ")
        );
    }
    Ok(())
}

/// Every code point above U+00FF becomes `?`: what undici's build does
/// after esbuild (a Latin-1 round trip with substitution).
pub fn latin1_fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c as u32 {
            0..=0xff => out.push(c),
            // One `?` per UTF-16 code unit, as a JS string has them.
            0x100..=0xffff => out.push('?'),
            _ => out.push_str("??"),
        }
    }
    out
}

fn copy_into_tree(from: &Path, to: &Path) -> Result<()> {
    create_dir_all(to.parent().expect("a path in the tree"))?;
    if from.is_dir() {
        nodeos_build::util::remove_path(to)?;
        let st = Command::new("cp").arg("-R").arg(from).arg(to).status()?;
        if !st.success() {
            bail!("cp -R {} {} failed", from.display(), to.display());
        }
    } else {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

/// A header that must already say `version` (`#define …_VERSION "x"`).
pub fn check_version_header(path: &Path, version: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let says = text
        .lines()
        .filter(|l| l.starts_with("#define ") && l.contains("_VERSION \""))
        .find_map(|l| l.split('"').nth(1));
    match says {
        Some(v) if v == version => Ok(()),
        Some(v) => bail!(
            "{} says version {v}, but the part placed is {version}",
            path.display()
        ),
        None => bail!("{} has no #define …_VERSION \"…\" line", path.display()),
    }
}

/// Rewrites the version string of a `#define X_VERSION "a.b.c"` header, as
/// Debian's rules do, so process.versions tells the truth.
pub fn set_version_header(path: &Path, version: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut found = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("#define ") && l.contains("_VERSION \"") {
                found = true;
                let head = &l[..l.find('"').expect("checked")];
                format!("{head}\"{version}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        bail!("{} has no #define …_VERSION \"…\" line", path.display());
    }
    std::fs::write(path, out.join("\n") + "\n")?;
    Ok(())
}

/// How many objects the make target needs in all: those already in
/// `obj_dir` plus those `make -n` (its dry-run output is `plan`) would still
/// compile. Counting every object the makefiles know would overstate it by
/// a sixth: tests, fuzzers and tools the `node` target never builds.
fn planned_objects(plan: &str, obj_dir: &Path) -> u64 {
    let mut objects: std::collections::HashSet<PathBuf> = walkdir::WalkDir::new(obj_dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "o"))
        .map(|e| e.into_path())
        .collect();
    for line in plan.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words.contains(&"-c") {
            continue;
        }
        if let Some(w) = words
            .windows(2)
            .find(|w| w[0] == "-o" && w[1].ends_with(".o"))
        {
            let p = Path::new(w[1]);
            let out_dir = obj_dir.parent().unwrap_or(obj_dir);
            objects.insert(if p.is_absolute() {
                p.to_path_buf()
            } else {
                out_dir.join(p)
            });
        }
    }
    objects.len() as u64
}

fn count_files(dir: &Path, ext: &str) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == ext))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_versions_are_compared_key_by_key() {
        let want = vec![
            ("openssl".to_string(), "3.5.7".to_string()),
            ("ares".to_string(), "1.34.5".to_string()),
        ];
        check_library_versions(&want, "openssl=3.5.7\nares=1.34.5\n").unwrap();
        let e = check_library_versions(&want, "openssl=3.5.5\nares=1.34.5\n").unwrap_err();
        assert!(
            format!("{e:#}").contains("openssl: built 3.5.5 (package 3.5.7)"),
            "{e:#}"
        );
        let e = check_library_versions(&want, "openssl=3.5.7\n").unwrap_err();
        assert!(format!("{e:#}").contains("ares: built nothing"), "{e:#}");
        // The real recipe: every library of Node 22's parts variant.
        let parts = crate::version("22")
            .unwrap()
            .recipe
            .variant("parts")
            .unwrap()
            .parts
            .clone()
            .unwrap();
        let v = library_versions(&parts).unwrap();
        assert!(
            v.contains(&("brotli".to_string(), "1.1.0".to_string())),
            "{v:?}"
        );
        assert!(
            v.contains(&("ares".to_string(), "1.34.5".to_string())),
            "{v:?}"
        );
        assert_eq!(v.len(), 11);
    }

    #[test]
    fn latin1_fold_counts_utf16_units() {
        assert_eq!(latin1_fold("a\u{e4}\u{2019}\u{1f600}b"), "a\u{e4}???b");
    }

    #[test]
    fn version_header_rewrite() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("acorn_version.h");
        std::fs::write(
            &p,
            "// gen\n#ifndef A\n#define ACORN_VERSION \"8.11.3\"\n#endif\n",
        )
        .unwrap();
        set_version_header(&p, "8.8.1").unwrap();
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .contains("#define ACORN_VERSION \"8.8.1\""));
        std::fs::write(&p, "nothing\n").unwrap();
        assert!(set_version_header(&p, "1").is_err());
    }

    #[test]
    fn planned_objects_are_built_plus_still_to_compile() {
        // Shaped like gyp's `make -n` output: compile lines, an archive
        // line that mentions .o files without -c, a link line.
        let d = tempfile::tempdir().unwrap();
        let rel = d.path().join("out/Release");
        std::fs::create_dir_all(rel.join("obj.target/a")).unwrap();
        std::fs::write(rel.join("obj.target/a/done.o"), "").unwrap();
        std::fs::write(rel.join("obj.target/a/stale.o"), "").unwrap();
        let abs = rel.join("obj.target/v8/x.o");
        let plan = format!(
            "make: Entering directory\n\
             g++ -O3 -c -o {} ../deps/v8/x.cc\n\
             cc -MMD -o Release/obj.target/a/stale.o -c ../a/stale.c\n\
             cc -o Release/obj.target/a/y.o ../a/y.c -O2 -c\n\
             ar crsT Release/obj.target/liba.a Release/obj.target/a/done.o\n\
             g++ -o Release/node Release/obj.target/a/done.o -static\n",
            abs.display()
        );
        // done.o and stale.o exist; x.o and y.o are to compile; stale.o is
        // counted once.
        assert_eq!(planned_objects(&plan, &rel), 4);
    }
}
