//! The node phase: a fully static Node.js per arch, built with the
//! project's musl toolchain, checked, and published to the cache.

pub mod build;
pub mod checks;
pub mod recipe;

use anyhow::{Context, Result};
use nodeos_build::fetch::{self, Fetcher, Resolved};
use nodeos_build::{Arch, Env, Key, Manifest, Phase, PhaseOutput};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub use recipe::Recipe;

pub fn manifest() -> Manifest {
    Manifest::parse(include_str!("../sources.toml"), "node-static/sources.toml")
        .expect("node-static/sources.toml is valid (tested)")
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
    let mut k = Key::new("node", recipe.recipe_version);
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

/// The static node for `arch` when it is already built; never builds or
/// fetches anything (nor the toolchain its key depends on).
pub fn published(env: &Env, arch: Arch) -> Result<Option<NodeBinary>> {
    let Some(tc) = toolchain::published(env, arch)? else {
        return Ok(None);
    };
    let chosen = fetch::choose(env, &manifest(), "node")?;
    let registry = packages::Registry::builtin();
    let package_keys = Recipe::builtin()
        .variant(chosen.variant())?
        .packages()
        .map(|name| {
            Ok((
                name.to_string(),
                packages::chosen_key(env, registry, arch, name, &tc.output.key)?,
            ))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    let phase = Phase::new(
        env,
        "node",
        Some(arch),
        key(env, arch, &chosen, &tc.output.key, &package_keys)?,
    );
    Ok(phase.cached().map(|dir| NodeBinary {
        arch,
        node: dir.join("node"),
        node_unstripped: dir.join("node.unstripped"),
        version: chosen.main.version.clone(),
        output: PhaseOutput {
            name: "node".into(),
            arch: Some(arch),
            dir,
            key: phase.key.hex(),
            cached: true,
            wall: std::time::Duration::ZERO,
        },
    }))
}

/// Returns the static node for `arch`, building the toolchain, the
/// library packages its variant links and node if they are not cached.
pub fn build(env: &Env, arch: Arch) -> Result<NodeBinary> {
    let tc = toolchain::build(env, arch)?;
    let m = manifest();
    let chosen = fetch::choose(env, &m, "node")?;
    let (libs, phase) = phase_for(env, arch, &chosen, &tc)?;
    let (node_src, libs, phase) = if phase.cached().is_some() {
        (chosen, libs, phase)
    } else {
        nodeos_build::host::require("the node phase", &[nodeos_build::host::Need::Node])?;
        let mut fetcher = Fetcher::new(env)?;
        let node_src = fetch::ensure(&mut fetcher, &m, "node")?;
        // Fetching may settle on another variant, which links other
        // packages.
        let (libs, phase) = phase_for(env, arch, &node_src, &tc)?;
        (node_src, libs, phase)
    };
    run(env, arch, phase, &node_src, &tc, &libs)
}

/// The library packages `src`'s variant links, built for `arch`, and the
/// node phase they key.
fn phase_for<'e>(
    env: &'e Env,
    arch: Arch,
    src: &Resolved,
    tc: &toolchain::Toolchain,
) -> Result<(BTreeMap<String, packages::Built>, Phase<'e>)> {
    let registry = packages::Registry::builtin();
    let libs = Recipe::builtin()
        .variant(src.variant())?
        .packages()
        .map(|name| {
            Ok((
                name.to_string(),
                packages::build_with(env, registry, arch, name, tc)?,
            ))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    let package_keys: BTreeMap<String, String> = libs
        .iter()
        .map(|(n, b)| (n.clone(), b.output.key.clone()))
        .collect();
    let k = key(env, arch, src, &tc.output.key, &package_keys)?;
    Ok((libs, Phase::new(env, "node", Some(arch), k)))
}

fn run(
    env: &Env,
    arch: Arch,
    phase: Phase,
    node_src: &Resolved,
    tc: &toolchain::Toolchain,
    libs: &BTreeMap<String, packages::Built>,
) -> Result<NodeBinary> {
    let output = phase
        .outputs(&["node", "node.unstripped", "config.gypi"])
        .run(|ctx| build::build(ctx, arch, node_src, tc, libs))?;
    let bin = NodeBinary {
        arch,
        node: output.dir.join("node"),
        node_unstripped: output.dir.join("node.unstripped"),
        version: node_src.main.version.clone(),
        output,
    };
    nodeos_build::util::symlink_force(&bin.node, &env.artifact_dir(arch).join("node"))?;
    Ok(bin)
}
