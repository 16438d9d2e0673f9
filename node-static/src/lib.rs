//! The node phase: a fully static Node.js per arch, built with the
//! project's musl toolchain, checked, and published to the cache.

pub mod build;
pub mod checks;
pub mod recipe;

use anyhow::{bail, Context, Result};
use nodeos_build::fetch::{self, Fetcher, Resolved};
use nodeos_build::{Arch, Env, Key, Manifest, Phase, PhaseOutput};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

pub use recipe::Recipe;

include!(concat!(env!("OUT_DIR"), "/versions.rs"));

/// One Node version NodeOS builds (a row of versions.toml).
#[derive(Debug, Clone)]
pub struct NodeVersion {
    /// What `--node` takes, e.g. `22`.
    pub major: String,
    pub manifest: Manifest,
    pub recipe: Recipe,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionsFile {
    default: String,
    version: Vec<VersionRow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionRow {
    major: String,
    sources: String,
    recipe: String,
}

struct Versions {
    default: String,
    all: Vec<NodeVersion>,
}

fn parse_versions(text: &str, file: impl Fn(&str) -> Option<&'static str>) -> Result<Versions> {
    let v: VersionsFile = toml::from_str(text).context("parsing node-static/versions.toml")?;
    let mut all = Vec::new();
    for row in v.version {
        let get = |name: &str| {
            file(name).with_context(|| {
                format!("node-static/{name} (named in versions.toml) is not embedded")
            })
        };
        let manifest =
            Manifest::parse(get(&row.sources)?, &format!("node-static/{}", row.sources))?;
        let recipe = Recipe::parse(get(&row.recipe)?)
            .with_context(|| format!("node-static/{}", row.recipe))?;
        let versions: Vec<&str> = manifest
            .variants("node")
            .iter()
            .map(|s| s.version.as_str())
            .collect();
        if versions.is_empty() {
            bail!("node-static/{} declares no `node` source", row.sources);
        }
        if let Some(v) = versions
            .iter()
            .find(|v| v.split('.').next() != Some(&row.major))
        {
            bail!(
                "node-static/{}: node {v} is not Node {}",
                row.sources,
                row.major
            );
        }
        for s in manifest.variants("node") {
            recipe
                .variant(&s.variant)
                .with_context(|| format!("node-static/{}", row.recipe))?;
        }
        all.push(NodeVersion {
            major: row.major,
            manifest,
            recipe,
        });
    }
    if !all.iter().any(|n| n.major == v.default) {
        bail!(
            "versions.toml: the default {} is not a declared version",
            v.default
        );
    }
    Ok(Versions {
        default: v.default,
        all,
    })
}

fn versions() -> &'static Versions {
    static V: OnceLock<Versions> = OnceLock::new();
    V.get_or_init(|| {
        parse_versions(include_str!("../versions.toml"), |name| {
            FILES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
        })
        .expect("node-static/versions.toml and its files are valid (tested)")
    })
}

/// Every Node version NodeOS builds.
pub fn all_versions() -> &'static [NodeVersion] {
    &versions().all
}

/// The version `--node` selects when it is not given.
pub fn default_version() -> &'static NodeVersion {
    version(&versions().default).expect("checked when parsed")
}

/// The version `--node <major>` names.
pub fn version(major: &str) -> Result<&'static NodeVersion> {
    let all = &versions().all;
    all.iter().find(|v| v.major == major).with_context(|| {
        format!(
            "--node {major}: NodeOS builds Node {} (node-static/versions.toml)",
            all.iter()
                .map(|v| v.major.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Node 18's sources (sources.toml).
pub fn manifest() -> Manifest {
    version("18").expect("declared").manifest.clone()
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
    nv: &NodeVersion,
    node: &Resolved,
    toolchain_key: &str,
    package_keys: &BTreeMap<String, String>,
) -> Result<Key> {
    let recipe = &nv.recipe;
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
        brotli: v.brotli.as_ref().map(|_| "<brotli>".into()),
        icu_source: v.icu.as_ref().map(|_| "<icu>".into()),
        libraries: v
            .packages()
            .map(|p| (p.to_string(), format!("<{p}>").into()))
            .collect(),
    };
    k.list(
        "configure",
        &recipe::configure_args(recipe, arch, node.variant(), &paths)?,
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
    // A variant's own patches, when it has any (added after the
    // version's, so variants without such a dir keep their keys).
    let variant_patches = env.patches_dir().join(variant_patch_dir(node));
    if variant_patches.is_dir() {
        k.dir("patches/node-variant", &variant_patches)?;
    }
    Ok(k)
}

/// `node-<version>-<variant>`: patches only that variant needs, applied
/// after `node-<version>`'s.
pub fn variant_patch_dir(node: &Resolved) -> String {
    format!("node-{}-{}", node.main.version, node.variant())
}

/// The static node for `arch` when it is already built; never builds or
/// fetches anything (nor the toolchain its key depends on).
pub fn published(env: &Env, arch: Arch, nv: &NodeVersion) -> Result<Option<NodeBinary>> {
    let Some(tc) = toolchain::published(env, arch)? else {
        return Ok(None);
    };
    let chosen = fetch::choose(env, &nv.manifest, "node")?;
    let registry = packages::Registry::builtin();
    let package_keys = nv
        .recipe
        .variant(chosen.variant())?
        .package_sources()
        .map(|(name, source)| {
            let k = match source {
                Some(s) => packages::chosen_key_of(env, registry, arch, name, s, &tc.output.key)?,
                None => packages::chosen_key(env, registry, arch, name, &tc.output.key)?,
            };
            Ok((name.to_string(), k))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    let phase = Phase::new(
        env,
        "node",
        Some(arch),
        key(env, arch, nv, &chosen, &tc.output.key, &package_keys)?,
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
pub fn build(env: &Env, arch: Arch, nv: &NodeVersion) -> Result<NodeBinary> {
    let tc = toolchain::build(env, arch)?;
    let m = &nv.manifest;
    let chosen = fetch::choose(env, m, "node")?;
    let (libs, phase) = phase_for(env, arch, nv, &chosen, &tc)?;
    let (node_src, libs, phase) = if phase.cached().is_some() {
        (chosen, libs, phase)
    } else {
        // Fetching may settle on a parts variant: its tools are checked
        // whenever the version has one.
        let parts = nv.recipe.variants.values().any(|v| v.parts.is_some());
        let mut needs = vec![nodeos_build::host::Need::Node];
        if parts {
            needs.push(nodeos_build::host::Need::Parts);
        }
        nodeos_build::host::require("the node phase", &needs)?;
        let mut fetcher = Fetcher::new(env)?;
        let node_src = fetch::ensure(&mut fetcher, m, "node")?;
        // Fetching may settle on another variant, which links other
        // packages.
        let (libs, phase) = phase_for(env, arch, nv, &node_src, &tc)?;
        (node_src, libs, phase)
    };
    run(env, arch, nv, phase, &node_src, &tc, &libs)
}

/// The library packages `src`'s variant links, built for `arch`, and the
/// node phase they key.
fn phase_for<'e>(
    env: &'e Env,
    arch: Arch,
    nv: &NodeVersion,
    src: &Resolved,
    tc: &toolchain::Toolchain,
) -> Result<(BTreeMap<String, packages::Built>, Phase<'e>)> {
    let registry = packages::Registry::builtin();
    let libs = nv
        .recipe
        .variant(src.variant())?
        .package_sources()
        .map(|(name, source)| {
            let b = match source {
                Some(s) => packages::build_of(env, registry, arch, name, s, tc)?,
                None => packages::build_with(env, registry, arch, name, tc)?,
            };
            Ok((name.to_string(), b))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    let package_keys: BTreeMap<String, String> = libs
        .iter()
        .map(|(n, b)| (n.clone(), b.output.key.clone()))
        .collect();
    let k = key(env, arch, nv, src, &tc.output.key, &package_keys)?;
    Ok((libs, Phase::new(env, "node", Some(arch), k)))
}

fn run(
    env: &Env,
    arch: Arch,
    nv: &NodeVersion,
    phase: Phase,
    node_src: &Resolved,
    tc: &toolchain::Toolchain,
    libs: &BTreeMap<String, packages::Built>,
) -> Result<NodeBinary> {
    let output = phase
        .outputs(&["node", "node.unstripped", "config.gypi"])
        .run(|ctx| build::build(ctx, arch, &nv.recipe, node_src, tc, libs))?;
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
