//! The node phase: a fully static Node.js per arch, built with the
//! project's musl toolchain, checked, and published to the cache.

pub mod build;
pub mod checks;
pub mod recipe;

use anyhow::{Context, Result};
use nodeos_build::driver::{self, Mode, SourceRef};
use nodeos_build::fetch::Resolved;
use nodeos_build::host::Need;
use nodeos_build::publish::Outputs;
use nodeos_build::{Arch, Env, Key, Manifest, Phase, PhaseDecl, PhaseOutput, Sources, StepCtx};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub use recipe::Recipe;

pub fn manifest() -> Manifest {
    Manifest::parse(include_str!("../sources.toml"), "node-static/sources.toml")
        .expect("node-static/sources.toml is valid (tested)")
}

/// The phase's name in the cache, logs and timings.
pub const PHASE: &str = driver::names::NODE;

/// The node phase: its source, the toolchain and the library packages its
/// recipe's variants link.
pub fn decl() -> PhaseDecl {
    let recipe = Recipe::builtin();
    let mut depends = vec![toolchain::PHASE.to_string()];
    for v in recipe.variants.values() {
        for p in v.packages() {
            let name = driver::names::package(p);
            if !depends.contains(&name) {
                depends.push(name);
            }
        }
    }
    PhaseDecl {
        name: PHASE.into(),
        sources: vec![SourceRef::new(&manifest(), "node")],
        depends,
        host_tools: vec![Need::Node],
    }
}

/// A published static Node.
#[derive(Debug, Clone)]
pub struct NodeBinary {
    pub arch: Arch,
    /// Stripped binary (what goes into the image).
    pub node: PathBuf,
    /// Unstripped, for debugging.
    pub node_unstripped: PathBuf,
    pub version: String,
    pub output: PhaseOutput,
    /// The library packages it links, when built by this run or reused
    /// (empty for a look-up of the published node).
    pub packages: Vec<PhaseOutput>,
}

/// `package_keys` holds the key of each library package the variant links
/// (by package name).
pub fn key(
    env: &Env,
    arch: Arch,
    node: &Resolved,
    toolchain_key: &str,
    package_keys: &BTreeMap<String, String>,
) -> Result<Key> {
    let recipe = Recipe::builtin();
    let mut k = Key::new(PHASE, recipe.recipe_version);
    k.str("arch", arch.name())
        .str("variant", node.variant())
        .dep("toolchain", toolchain_key);
    let v = recipe.variant(node.variant())?;
    for name in v.packages() {
        let pk = package_keys
            .get(name)
            .with_context(|| format!("the key of package {name} is not known"))?;
        k.dep(&format!("package:{name}"), pk);
    }
    // Paths are placeholders: the key must not depend on where things are.
    let paths = recipe::ConfigurePaths {
        brotli: Some("<brotli>".into()),
        icu_source: Some("<icu>".into()),
    };
    let paths = recipe::ConfigurePaths {
        brotli: v.brotli.as_ref().and(paths.brotli),
        icu_source: v.icu.as_ref().and(paths.icu_source),
    };
    k.list(
        "configure",
        &recipe::configure_args(&recipe, arch, node.variant(), &paths)?,
    );
    k.str("make_target", &recipe.make_target);
    k.list("cflags", &recipe.arch_flags(arch)?.cflags);
    k.str("variant-recipe", &format!("{v:?}"));
    for s in node.all() {
        k.source(s);
    }
    k.dir(
        "patches/node",
        &env.patches_dir()
            .join(format!("node-{}", node.main.version)),
    )?;
    Ok(k)
}

/// The node phase for one target: the toolchain, and the library packages
/// the chosen source variant links.
struct NodePhase<'a> {
    arch: Arch,
    tc: &'a toolchain::Toolchain,
    /// The packages the variant links, built (empty for a look-up).
    libs: BTreeMap<String, packages::Built>,
    /// Their keys, by package name.
    package_keys: BTreeMap<String, String>,
}

impl<'a> NodePhase<'a> {
    fn new(arch: Arch, tc: &'a toolchain::Toolchain) -> NodePhase<'a> {
        NodePhase {
            arch,
            tc,
            libs: BTreeMap::new(),
            package_keys: BTreeMap::new(),
        }
    }
}

impl Phase for NodePhase<'_> {
    type Output = NodeBinary;

    fn decl(&self) -> PhaseDecl {
        decl()
    }

    fn arch(&self) -> Option<Arch> {
        Some(self.arch)
    }

    /// The variant decides which packages node links: built for a build,
    /// only keyed for a look-up.
    fn prepare(&mut self, env: &Env, sources: &Sources, mode: Mode) -> Result<()> {
        let registry = packages::Registry::builtin();
        let tc_key = &self.tc.output.key;
        let recipe = Recipe::builtin();
        let variant = recipe.variant(sources.get("node").variant())?;
        self.libs.clear();
        self.package_keys.clear();
        for name in variant.packages() {
            let key = match mode {
                Mode::Build => {
                    let b = packages::build_with(env, registry, self.arch, name, self.tc)?;
                    let key = b.output.key.clone();
                    self.libs.insert(name.to_string(), b);
                    key
                }
                Mode::Published => packages::chosen_key(env, registry, self.arch, name, tc_key)?,
            };
            self.package_keys.insert(name.to_string(), key);
        }
        Ok(())
    }

    fn key(&self, env: &Env, sources: &Sources) -> Result<Key> {
        key(
            env,
            self.arch,
            sources.get("node"),
            &self.tc.output.key,
            &self.package_keys,
        )
    }

    fn outputs(&self) -> Outputs {
        Outputs::named(&["node", "node.unstripped", "config.gypi"])
    }

    fn steps(&self, ctx: &mut StepCtx, sources: &Sources) -> Result<()> {
        build::build(ctx, self.arch, sources.get("node"), self.tc, &self.libs)
    }

    fn output(&self, output: PhaseOutput, sources: &Sources) -> Result<NodeBinary> {
        Ok(NodeBinary {
            arch: self.arch,
            node: output.dir.join("node"),
            node_unstripped: output.dir.join("node.unstripped"),
            version: sources.get("node").main.version.clone(),
            output,
            packages: self.libs.values().map(|b| b.output.clone()).collect(),
        })
    }

    fn artifacts(&self, bin: &NodeBinary) -> Vec<(String, PathBuf)> {
        vec![("node".into(), bin.node.clone())]
    }
}

/// The static node for `arch` when it is already built; never builds or
/// fetches anything (nor the toolchain its key depends on).
pub fn published(env: &Env, arch: Arch) -> Result<Option<NodeBinary>> {
    let Some(tc) = toolchain::published(env, arch)? else {
        return Ok(None);
    };
    driver::published(env, NodePhase::new(arch, &tc))
}

/// Returns the static node for `arch`, building the toolchain, the
/// library packages its variant links and node if they are not cached.
pub fn build(env: &Env, arch: Arch) -> Result<NodeBinary> {
    let tc = toolchain::build(env, arch)?;
    driver::build(env, NodePhase::new(arch, &tc))
}
