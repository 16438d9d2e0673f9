//! The toolchain phase: GCC + binutils + musl cross compilers for each
//! arch, built from pinned sources without root, published to the cache.

mod build;
pub mod recipe;
pub mod selftest;

use anyhow::Result;
use nodeos_build::driver::{self, SourceRef};
use nodeos_build::fetch::Resolved;
use nodeos_build::host::{HostCompiler, Need};
use nodeos_build::{Arch, Env, Key, Manifest, Phase, PhaseDecl, PhaseOutput, Sources, StepCtx};
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

/// The phase's name in the cache, logs and timings.
pub const PHASE: &str = driver::names::TOOLCHAIN;

/// The toolchain phase: its sources (binutils, GCC, musl and the kernel's
/// Linux source for the UAPI headers) and host tools.
pub fn decl() -> PhaseDecl {
    let m = manifest();
    let k = kernel::manifest();
    PhaseDecl {
        name: PHASE.into(),
        sources: vec![
            SourceRef::new(&m, "binutils"),
            SourceRef::new(&m, "gcc"),
            SourceRef::new(&m, "musl"),
            SourceRef::new(&k, "linux"),
        ],
        depends: Vec::new(),
        host_tools: vec![Need::Toolchain],
    }
}

/// The sources a toolchain build uses.
pub struct Inputs {
    pub binutils: Resolved,
    pub gcc: Resolved,
    pub musl: Resolved,
    pub linux: Resolved,
}

impl Inputs {
    fn of(s: &Sources) -> Inputs {
        Inputs {
            binutils: s.get("binutils").clone(),
            gcc: s.get("gcc").clone(),
            musl: s.get("musl").clone(),
            linux: s.get("linux").clone(),
        }
    }
}

/// Where the build sysroot sits inside a build dir (the key uses this
/// relative form so it does not depend on the cache location).
const BUILD_SYSROOT_REL: &str = "sysroot";

pub fn key(env: &Env, arch: Arch, inputs: &Inputs, host: &HostCompiler) -> Result<Key> {
    let recipe = Recipe::builtin();
    let mut k = Key::new(PHASE, recipe.recipe_version);
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

/// The toolchain phase for one target.
struct ToolchainPhase {
    arch: Arch,
    host: HostCompiler,
}

impl ToolchainPhase {
    fn new(arch: Arch) -> ToolchainPhase {
        ToolchainPhase {
            arch,
            host: HostCompiler::probe(),
        }
    }
}

impl Phase for ToolchainPhase {
    type Output = Toolchain;

    fn decl(&self) -> PhaseDecl {
        decl()
    }

    fn arch(&self) -> Option<Arch> {
        Some(self.arch)
    }

    fn key(&self, env: &Env, sources: &Sources) -> Result<Key> {
        key(env, self.arch, &Inputs::of(sources), &self.host)
    }

    fn steps(&self, ctx: &mut StepCtx, sources: &Sources) -> Result<()> {
        build::build(ctx, self.arch, &Inputs::of(sources))
    }

    fn output(&self, output: PhaseOutput, _sources: &Sources) -> Result<Toolchain> {
        Ok(Toolchain {
            arch: self.arch,
            dir: output.dir.clone(),
            output,
        })
    }

    fn artifacts(&self, tc: &Toolchain) -> Vec<(String, PathBuf)> {
        vec![(PHASE.into(), tc.dir.clone())]
    }
}

/// The published toolchain for `arch`, if its key is in the cache; never
/// builds or fetches anything.
pub fn published(env: &Env, arch: Arch) -> Result<Option<Toolchain>> {
    driver::published(env, ToolchainPhase::new(arch))
}

/// Returns the toolchain for `arch`, building it if it is not cached.
pub fn build(env: &Env, arch: Arch) -> Result<Toolchain> {
    driver::build(env, ToolchainPhase::new(arch))
}
