//! The toolchain phase: GCC + binutils + musl cross compilers for each
//! arch, built from pinned sources without root, published to the cache.

mod build;
pub mod recipe;
pub mod selftest;

use anyhow::Result;
use nodeos_build::fetch::{self, Fetcher, Resolved};
use nodeos_build::host::HostCompiler;
use nodeos_build::{Arch, Env, Key, Manifest, Phase, PhaseOutput};
use std::path::PathBuf;

pub use recipe::Recipe;

/// The toolchain's own sources (binutils, GCC, musl).
pub fn manifest() -> Manifest {
    Manifest::parse(include_str!("../sources.toml"), "toolchain/sources.toml")
        .expect("toolchain/sources.toml is valid (tested)")
}

/// A published toolchain.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub arch: Arch,
    /// Install prefix: bin/<triple>-gcc, <triple>/ (the sysroot), …
    pub dir: PathBuf,
    pub output: PhaseOutput,
}

impl Toolchain {
    pub fn triple(&self) -> &'static str {
        self.arch.triple()
    }
    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir
            .join("bin")
            .join(format!("{}-{name}", self.triple()))
    }
    /// `CC`, `CXX`, … for builds that use this toolchain.
    pub fn env_vars(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("CC", self.tool("gcc")),
            ("CXX", self.tool("g++")),
            ("AR", self.tool("ar")),
            ("RANLIB", self.tool("ranlib")),
            ("STRIP", self.tool("strip")),
            ("NM", self.tool("nm")),
            ("LD", self.tool("ld")),
        ]
    }
    /// Its gcc and g++, for a compiler launcher to wrap.
    pub fn compilers(&self) -> nodeos_build::launcher::Compilers {
        nodeos_build::launcher::Compilers {
            arch: self.arch,
            toolchain_key: self.output.key.clone(),
            cc: self.tool("gcc"),
            cxx: self.tool("g++"),
        }
    }
    /// Lines for `--print-env` (shell-quoted).
    pub fn print_env(&self) -> String {
        self.env_vars()
            .into_iter()
            .map(|(k, v)| format!("{k}='{}'\n", v.display()))
            .collect()
    }
}

/// The sources a toolchain build uses, chosen without network access.
pub struct Inputs {
    pub binutils: Resolved,
    pub gcc: Resolved,
    pub musl: Resolved,
    pub linux: Resolved,
}

fn choose_inputs(env: &Env) -> Result<Inputs> {
    let m = manifest();
    let k = kernel::manifest();
    Ok(Inputs {
        binutils: fetch::choose(env, &m, "binutils")?,
        gcc: fetch::choose(env, &m, "gcc")?,
        musl: fetch::choose(env, &m, "musl")?,
        linux: fetch::choose(env, &k, "linux")?,
    })
}

/// Fetches (if needed) and verifies every source; may settle on another
/// variant than [`choose_inputs`] when the first cannot be had.
pub fn fetch_inputs(fetcher: &mut Fetcher) -> Result<Inputs> {
    let m = manifest();
    let k = kernel::manifest();
    Ok(Inputs {
        binutils: fetch::ensure(fetcher, &m, "binutils")?,
        gcc: fetch::ensure(fetcher, &m, "gcc")?,
        musl: fetch::ensure(fetcher, &m, "musl")?,
        linux: fetch::ensure(fetcher, &k, "linux")?,
    })
}

/// Where the build sysroot sits inside a build dir (the key uses this
/// relative form so it does not depend on the cache location).
const BUILD_SYSROOT_REL: &str = "sysroot";

pub fn key(env: &Env, arch: Arch, inputs: &Inputs, host: &HostCompiler) -> Result<Key> {
    let recipe = Recipe::builtin();
    let mut k = Key::new("toolchain", recipe.recipe_version);
    k.str("arch", arch.name());
    let f = recipe::flags(&recipe, arch, &format!("<build>/{BUILD_SYSROOT_REL}"))?;
    k.list("binutils.configure", &f.binutils_configure)
        .list("gcc.configure", &f.gcc_configure)
        .list("musl.configure", &f.musl_configure)
        .str("gcc.make_vars", &recipe.gcc.make_vars.join(" "))
        .list(
            "gcc.source_patches",
            &recipe
                .gcc
                .source_patches
                .iter()
                .map(|p| format!("{} -p{}", p.source, p.strip))
                .collect::<Vec<_>>(),
        )
        .str("linux_arch", &arch.target().linux_srcarch);
    for r in [&inputs.binutils, &inputs.gcc, &inputs.musl, &inputs.linux] {
        for s in r.all() {
            k.source(s);
        }
    }
    for r in [&inputs.binutils, &inputs.gcc, &inputs.musl] {
        let dir = env
            .patches_dir()
            .join(format!("{}-{}", r.main.name, r.main.version));
        k.dir(&format!("patches/{}", r.main.name), &dir)?;
    }
    k.str("selftest.c", selftest::C_SOURCE)
        .str("selftest.cpp", selftest::CXX_SOURCE);
    // The host compiler builds the cross compiler; a new host GCC is a new
    // input.
    k.str("host-cc", &host.cc);
    Ok(k)
}

/// The published toolchain for `arch`, if its key is in the cache; never
/// builds or fetches anything.
pub fn published(env: &Env, arch: Arch) -> Result<Option<Toolchain>> {
    let host = HostCompiler::probe();
    let phase = Phase::new(
        env,
        "toolchain",
        Some(arch),
        key(env, arch, &choose_inputs(env)?, &host)?,
    );
    if phase.cached().is_none() {
        return Ok(None);
    }
    let output = phase.run(|_| {
        anyhow::bail!("the published toolchain was removed while being reused; run again")
    })?;
    Ok(Some(Toolchain {
        arch,
        dir: output.dir.clone(),
        output,
    }))
}

/// Returns the toolchain for `arch`, building it if it is not cached.
pub fn build(env: &Env, arch: Arch) -> Result<Toolchain> {
    let host = HostCompiler::probe();
    let chosen = choose_inputs(env)?;
    let phase = Phase::new(
        env,
        "toolchain",
        Some(arch),
        key(env, arch, &chosen, &host)?,
    );
    let (inputs, phase) = if phase.cached().is_some() {
        (chosen, phase)
    } else {
        nodeos_build::host::require(
            "the toolchain phase",
            &[nodeos_build::host::Need::Toolchain],
        )?;
        let mut fetcher = Fetcher::new(env)?;
        let inputs = fetch_inputs(&mut fetcher)?;
        let phase = Phase::new(
            env,
            "toolchain",
            Some(arch),
            key(env, arch, &inputs, &host)?,
        );
        (inputs, phase)
    };
    let output = phase.run(|ctx| build::build(ctx, arch, &inputs))?;
    let tc = Toolchain {
        arch,
        dir: output.dir.clone(),
        output,
    };
    nodeos_build::util::symlink_force(&tc.dir, &env.artifact_dir(arch).join("toolchain"))?;
    Ok(tc)
}
