//! The node phase: a fully static Node.js per arch, built with the
//! project's musl toolchain, checked, and published to the cache.

pub mod build;
pub mod checks;
pub mod recipe;

use anyhow::Result;
use nodeos_build::fetch::{self, Fetcher, Resolved};
use nodeos_build::{Arch, Env, Key, Manifest, Phase, PhaseOutput};
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

pub fn key(env: &Env, arch: Arch, node: &Resolved, toolchain_key: &str) -> Result<Key> {
    let recipe = Recipe::builtin();
    let mut k = Key::new("node", recipe.recipe_version);
    k.str("arch", arch.name())
        .str("variant", node.variant())
        .dep("toolchain", toolchain_key);
    // Paths are placeholders: the key must not depend on where things are.
    let paths = recipe::ConfigurePaths {
        brotli: Some("<brotli>".into()),
        icu_source: Some("<icu>".into()),
    };
    let v = recipe.variant(node.variant())?;
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
    let phase = Phase::new(
        env,
        "node",
        Some(arch),
        key(env, arch, &chosen, &tc.output.key)?,
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

/// Returns the static node for `arch`, building the toolchain and node if
/// they are not cached.
pub fn build(env: &Env, arch: Arch) -> Result<NodeBinary> {
    let tc = toolchain::build(env, arch)?;
    let m = manifest();
    let chosen = fetch::choose(env, &m, "node")?;
    let phase = Phase::new(
        env,
        "node",
        Some(arch),
        key(env, arch, &chosen, &tc.output.key)?,
    );
    let (node_src, phase) = if phase.cached().is_some() {
        (chosen, phase)
    } else {
        nodeos_build::host::require("the node phase", &[nodeos_build::host::Need::Node])?;
        let mut fetcher = Fetcher::new(env)?;
        let node_src = fetch::ensure(&mut fetcher, &m, "node")?;
        let phase = Phase::new(
            env,
            "node",
            Some(arch),
            key(env, arch, &node_src, &tc.output.key)?,
        );
        (node_src, phase)
    };
    let output = phase
        .outputs(&["node", "node.unstripped", "config.gypi"])
        .run(|ctx| build::build(ctx, arch, &node_src, &tc))?;
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
