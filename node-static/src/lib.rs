//! The node phase: a fully static Node.js per arch, built with the
//! project's musl toolchain, checked, and published to the cache.

pub mod build;
pub mod checks;
pub mod recipe;
pub mod source_tree;

use anyhow::{bail, Context, Result};
use nodeos_build::driver::{self, Mode, SourceRef};
use nodeos_build::fetch::Resolved;
use nodeos_build::host::Need;
use nodeos_build::publish::Outputs;
use nodeos_build::{Arch, Env, Key, Manifest, Phase, PhaseDecl, PhaseOutput, Sources, StepCtx};
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
pub fn node18_manifest() -> Manifest {
    version("18").expect("declared").manifest.clone()
}

/// The phase's name in the cache, logs and timings.
pub const PHASE: &str = driver::names::NODE;

/// The node phase of Node `nv`: its source, the toolchain and the library
/// packages its recipe's variants link; a version with a parts variant
/// needs that variant's host tools too (fetching may settle on it).
pub fn decl(nv: &NodeVersion) -> PhaseDecl {
    let mut depends = vec![toolchain::PHASE.to_string()];
    for v in nv.recipe.variants.values() {
        for p in v.packages() {
            let name = driver::names::package(p);
            if !depends.contains(&name) {
                depends.push(name);
            }
        }
    }
    let mut host_tools = vec![Need::Node];
    if nv.recipe.variants.values().any(|v| v.parts.is_some()) {
        host_tools.push(Need::Parts);
    }
    PhaseDecl {
        name: PHASE.into(),
        sources: vec![SourceRef::new(&nv.manifest, "node")],
        depends,
        host_tools,
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
    nv: &NodeVersion,
    node: &Resolved,
    toolchain_key: &str,
    package_keys: &BTreeMap<String, String>,
) -> Result<Key> {
    let recipe = &nv.recipe;
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
    let flags = recipe.build_flags(arch)?;
    k.list("cflags", &flags.cflags);
    // Only when set: recipes without link flags keep their keys.
    if !flags.ldflags.is_empty() {
        k.list("ldflags", &flags.ldflags);
    }
    source_tree_fields(&mut k, env, v, node)?;
    Ok(k)
}

/// The key fields of the prepared source tree: the variant's recipe, every
/// source, the project's patches. The node phase and the node-source phase
/// both end their keys with these.
fn source_tree_fields(k: &mut Key, env: &Env, v: &recipe::Variant, node: &Resolved) -> Result<()> {
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
    Ok(())
}

/// The node phase for one target: the toolchain, and the library packages
/// the chosen source variant links.
struct NodePhase<'a> {
    arch: Arch,
    nv: &'a NodeVersion,
    tc: &'a toolchain::Toolchain,
    /// The packages the variant links, built (empty for a look-up).
    libs: BTreeMap<String, packages::Built>,
    /// Their keys, by package name.
    package_keys: BTreeMap<String, String>,
}

impl<'a> NodePhase<'a> {
    fn new(arch: Arch, nv: &'a NodeVersion, tc: &'a toolchain::Toolchain) -> NodePhase<'a> {
        NodePhase {
            arch,
            nv,
            tc,
            libs: BTreeMap::new(),
            package_keys: BTreeMap::new(),
        }
    }
}

impl Phase for NodePhase<'_> {
    type Output = NodeBinary;

    fn decl(&self) -> PhaseDecl {
        decl(self.nv)
    }

    fn arch(&self) -> Option<Arch> {
        Some(self.arch)
    }

    /// The variant decides which packages node links: built for a build,
    /// only keyed for a look-up.
    fn prepare(&mut self, env: &Env, sources: &Sources, mode: Mode) -> Result<()> {
        let registry = packages::Registry::builtin();
        let tc_key = &self.tc.output.key;
        let variant = self.nv.recipe.variant(sources.get("node").variant())?;
        self.libs.clear();
        self.package_keys.clear();
        // Each package from the source entry the recipe pins (its own
        // default entry when it pins none).
        for (name, source) in variant.package_sources() {
            let key = match mode {
                Mode::Build => {
                    let b = match source {
                        Some(s) => packages::build_of(env, registry, self.arch, name, s, self.tc)?,
                        None => packages::build_with(env, registry, self.arch, name, self.tc)?,
                    };
                    let key = b.output.key.clone();
                    self.libs.insert(name.to_string(), b);
                    key
                }
                Mode::Published => match source {
                    Some(s) => packages::chosen_key_of(env, registry, self.arch, name, s, tc_key)?,
                    None => packages::chosen_key(env, registry, self.arch, name, tc_key)?,
                },
            };
            self.package_keys.insert(name.to_string(), key);
        }
        Ok(())
    }

    fn key(&self, env: &Env, sources: &Sources) -> Result<Key> {
        key(
            env,
            self.arch,
            self.nv,
            sources.get("node"),
            &self.tc.output.key,
            &self.package_keys,
        )
    }

    fn outputs(&self) -> Outputs {
        Outputs::named(&["node", "node.unstripped", "config.gypi"])
    }

    fn steps(&self, ctx: &mut StepCtx, sources: &Sources) -> Result<()> {
        build::build(
            ctx,
            self.arch,
            &self.nv.recipe,
            sources.get("node"),
            self.tc,
            &self.libs,
        )
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
    driver::published(env, NodePhase::new(arch, nv, &tc))
}

/// The keys a build of Node `nv` for `arch` with the toolchain `tc` would
/// use for the sources in the download dir.
#[derive(Debug, Clone)]
pub struct ChosenKeys {
    /// Each library package the chosen variant links, by package name.
    pub packages: BTreeMap<String, String>,
    pub node: String,
}

/// [`ChosenKeys`]: computed without building or fetching anything.
pub fn chosen_keys(
    env: &Env,
    arch: Arch,
    nv: &NodeVersion,
    tc: &toolchain::Toolchain,
) -> Result<ChosenKeys> {
    let mut phase = NodePhase::new(arch, nv, tc);
    let node = driver::chosen_key(env, &mut phase)?.hex();
    Ok(ChosenKeys {
        packages: phase.package_keys,
        node,
    })
}

/// Returns the static node for `arch`, building the toolchain, the
/// library packages its variant links and node if they are not cached.
pub fn build(env: &Env, arch: Arch, nv: &NodeVersion) -> Result<NodeBinary> {
    let tc = toolchain::build(env, arch)?;
    driver::build(env, NodePhase::new(arch, nv, &tc))
}
