//! Library packages: C/C++ libraries built with the project's musl
//! toolchain into their own prefix (`lib/*.a`, `include/`,
//! `lib/pkgconfig/<name>.pc`), one phase per package and target.
//!
//! A package is data: `packages/<name>/package.toml` (what to build and
//! how) and `packages/<name>/sources.toml` (its pinned sources). Every such
//! directory is embedded at compile time (see `build.rs`), so adding a
//! package is adding a directory.

mod build_system;
pub mod spec;

use anyhow::{bail, Context, Result};
use nodeos_build::driver::{self, SourceRef};
use nodeos_build::fetch::{self, Resolved};
use nodeos_build::publish::Outputs;
use nodeos_build::{Arch, Env, Key, Manifest, Phase, PhaseDecl, PhaseOutput, Sources, StepCtx};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use toolchain::Toolchain;

pub use spec::{BuildSystem, Spec};

/// One package's files, as embedded.
pub(crate) struct BuiltinFiles {
    dir: &'static str,
    package: &'static str,
    sources: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// A parsed, checked package.
#[derive(Debug, Clone)]
pub struct Package {
    pub spec: Spec,
    pub manifest: Manifest,
    /// The phase name of its cache outputs: `pkg-<name>`.
    pub phase: String,
}

/// Every package, checked together: names match their directories,
/// dependencies exist and form no cycle.
#[derive(Debug, Clone)]
pub struct Registry {
    packages: BTreeMap<String, Package>,
}

impl Registry {
    /// The packages of this repository.
    pub fn builtin() -> &'static Registry {
        static REG: OnceLock<Registry> = OnceLock::new();
        REG.get_or_init(|| {
            Registry::parse(BUILTIN.iter().map(|f| (f.dir, f.package, f.sources)))
                .expect("packages/*/package.toml are valid (tested)")
        })
    }

    /// Parses `(dir name, package.toml, sources.toml)` triples.
    pub fn parse<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Result<Registry> {
        let mut packages = BTreeMap::new();
        for (dir, package, sources) in files {
            let manifest = Manifest::parse(sources, &format!("packages/{dir}/sources.toml"))?;
            let spec = Spec::parse(package, &manifest, &format!("packages/{dir}/package.toml"))?;
            if spec.name != dir {
                bail!(
                    "packages/{dir}/package.toml names itself '{}'; a package's name is its directory's",
                    spec.name
                );
            }
            let phase = driver::names::package(&spec.name);
            packages.insert(
                spec.name.clone(),
                Package {
                    spec,
                    manifest,
                    phase,
                },
            );
        }
        let reg = Registry { packages };
        for name in reg.packages.keys() {
            reg.closure(name)?;
        }
        Ok(reg)
    }

    pub fn get(&self, name: &str) -> Result<&Package> {
        self.packages.get(name).with_context(|| {
            format!(
                "no package named '{name}' (packages: {})",
                self.packages.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    pub fn all(&self) -> impl Iterator<Item = &Package> {
        self.packages.values()
    }

    /// `name`'s dependencies, transitively, each before its dependents,
    /// ending with `name`.
    pub fn closure(&self, name: &str) -> Result<Vec<&Package>> {
        fn visit<'r>(
            reg: &'r Registry,
            name: &str,
            path: &mut Vec<String>,
            out: &mut Vec<&'r Package>,
        ) -> Result<()> {
            if path.iter().any(|p| p == name) {
                bail!(
                    "packages depend on each other in a cycle: {} -> {name}",
                    path.join(" -> ")
                );
            }
            if out.iter().any(|p| p.spec.name == name) {
                return Ok(());
            }
            let pkg = reg.get(name)?;
            path.push(name.to_string());
            for d in &pkg.spec.depends {
                visit(reg, d, path, out)
                    .with_context(|| format!("package {name} depends on {d}"))?;
            }
            path.pop();
            out.push(pkg);
            Ok(())
        }
        let mut out = Vec::new();
        visit(self, name, &mut Vec::new(), &mut out)?;
        Ok(out)
    }
}

/// A published package prefix.
#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    pub arch: Arch,
    /// The prefix: `lib/`, `include/`, `lib/pkgconfig/`.
    pub dir: PathBuf,
    pub output: PhaseOutput,
}

impl Built {
    pub fn lib_dir(&self) -> PathBuf {
        self.dir.join("lib")
    }
    pub fn include_dir(&self) -> PathBuf {
        self.dir.join("include")
    }
    pub fn pkgconfig_dir(&self) -> PathBuf {
        self.dir.join("lib").join("pkgconfig")
    }
}

/// The key of one package for one target: its data (build system, flags
/// for this target, what it installs), its sources, its patches, the
/// toolchain's key and the keys of the packages it depends on.
pub fn key(
    env: &Env,
    arch: Arch,
    pkg: &Package,
    src: &Resolved,
    toolchain_key: &str,
    dep_keys: &BTreeMap<String, String>,
) -> Result<Key> {
    let s = &pkg.spec;
    let mut k = Key::new(&pkg.phase, s.recipe_version);
    k.str("arch", arch.name())
        .dep("toolchain", toolchain_key)
        .str("build", &format!("{:?}", s.build))
        .list("args", &s.args(arch.name()))
        .list("cflags", &s.cflags(arch.name()))
        .list("installs", &s.installs)
        .str("pkgconfig", &format!("{:?}", s.pkgconfig));
    for d in &s.depends {
        let dk = dep_keys
            .get(d)
            .with_context(|| format!("the key of {}'s dependency {d} is not known", s.name))?;
        k.dep(&format!("package:{d}"), dk);
    }
    for source in src.all() {
        k.source(source);
    }
    k.dir(
        &format!("patches/{}", s.name),
        &env.patches_dir()
            .join(format!("{}-{}", s.name, src.main.version)),
    )?;
    Ok(k)
}

/// The key `name` has for `arch` with the sources in the download dir,
/// computed without building or fetching anything.
pub fn chosen_key(
    env: &Env,
    registry: &Registry,
    arch: Arch,
    name: &str,
    toolchain_key: &str,
) -> Result<String> {
    let source = registry.get(name)?.spec.source.clone();
    chosen_key_of(env, registry, arch, name, &source, toolchain_key)
}

/// [`chosen_key`] of `name` built from another entry (`source`) of its
/// sources.toml, e.g. a newer release a consumer pins.
pub fn chosen_key_of(
    env: &Env,
    registry: &Registry,
    arch: Arch,
    name: &str,
    source: &str,
    toolchain_key: &str,
) -> Result<String> {
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    for pkg in registry.closure(name)? {
        let src = fetch::choose(env, &pkg.manifest, source_of(pkg, name, source))?;
        let k = key(env, arch, pkg, &src, toolchain_key, &keys)?;
        keys.insert(pkg.spec.name.clone(), k.hex());
    }
    Ok(keys
        .remove(name)
        .expect("the closure ends with the package"))
}

/// Builds `name` and its dependencies for `arch` with the musl toolchain
/// (built first if it is not cached).
pub fn build(env: &Env, arch: Arch, name: &str) -> Result<Built> {
    let tc = toolchain::build(env, arch)?;
    build_with(env, Registry::builtin(), arch, name, &tc)
}

/// Builds `name` and its dependencies for `arch` with the given toolchain.
pub fn build_with(
    env: &Env,
    registry: &Registry,
    arch: Arch,
    name: &str,
    tc: &Toolchain,
) -> Result<Built> {
    let source = registry.get(name)?.spec.source.clone();
    build_of(env, registry, arch, name, &source, tc)
}

/// [`build_with`], building `name` from the entry `source` of its
/// sources.toml (its dependencies from their own `source`).
pub fn build_of(
    env: &Env,
    registry: &Registry,
    arch: Arch,
    name: &str,
    source: &str,
    tc: &Toolchain,
) -> Result<Built> {
    if registry.get(name)?.manifest.variants(source).is_empty() {
        bail!("package {name} has no source '{source}' in its sources.toml");
    }
    let mut built: BTreeMap<String, Built> = BTreeMap::new();
    for pkg in registry.closure(name)? {
        let b = build_one(env, arch, pkg, source_of(pkg, name, source), tc, &built)?;
        built.insert(pkg.spec.name.clone(), b);
    }
    Ok(built
        .remove(name)
        .expect("the closure ends with the package"))
}

/// The source entry `pkg` is built from: `source` for the package asked
/// for, each dependency's own otherwise.
fn source_of<'a>(pkg: &'a Package, name: &str, source: &'a str) -> &'a str {
    if pkg.spec.name == name {
        source
    } else {
        &pkg.spec.source
    }
}

fn build_one(
    env: &Env,
    arch: Arch,
    pkg: &Package,
    source: &str,
    tc: &Toolchain,
    deps: &BTreeMap<String, Built>,
) -> Result<Built> {
    driver::build(
        env,
        PackagePhase {
            arch,
            pkg,
            source,
            tc,
            deps,
        },
    )
}

impl Package {
    /// Its phase: its source, the toolchain and the packages it depends on.
    pub fn decl(&self) -> PhaseDecl {
        self.decl_of(&self.spec.source)
    }

    /// Its phase when built from the entry `source` of its sources.toml
    /// (what a consumer pins, e.g. Node 22's brotli 1.1.0).
    pub fn decl_of(&self, source: &str) -> PhaseDecl {
        PhaseDecl {
            name: self.phase.clone(),
            sources: vec![SourceRef::new(&self.manifest, source)],
            depends: std::iter::once(toolchain::PHASE.to_string())
                .chain(self.spec.depends.iter().map(|d| driver::names::package(d)))
                .collect(),
            host_tools: Vec::new(),
        }
    }
}

/// One package for one target, its toolchain and dependencies built.
struct PackagePhase<'a> {
    arch: Arch,
    pkg: &'a Package,
    /// The entry of its sources.toml it is built from.
    source: &'a str,
    tc: &'a Toolchain,
    /// At least the package's dependencies, built.
    deps: &'a BTreeMap<String, Built>,
}

impl Phase for PackagePhase<'_> {
    type Output = Built;

    fn decl(&self) -> PhaseDecl {
        self.pkg.decl_of(self.source)
    }

    fn arch(&self) -> Option<Arch> {
        Some(self.arch)
    }

    fn key(&self, env: &Env, sources: &Sources) -> Result<Key> {
        let dep_keys: BTreeMap<String, String> = self
            .deps
            .iter()
            .map(|(n, b)| (n.clone(), b.output.key.clone()))
            .collect();
        key(
            env,
            self.arch,
            self.pkg,
            sources.get(self.source),
            &self.tc.output.key,
            &dep_keys,
        )
    }

    fn outputs(&self) -> Outputs {
        Outputs::named(&["lib", "include"])
    }

    fn steps(&self, ctx: &mut StepCtx, sources: &Sources) -> Result<()> {
        let dep_dirs: Vec<&Built> = self
            .pkg
            .spec
            .depends
            .iter()
            .map(|d| self.deps.get(d).expect("built before its dependents"))
            .collect();
        build_system::build(
            ctx,
            self.arch,
            self.pkg,
            sources.get(self.source),
            self.tc,
            &dep_dirs,
        )
    }

    fn output(&self, output: PhaseOutput, _sources: &Sources) -> Result<Built> {
        Ok(Built {
            name: self.pkg.spec.name.clone(),
            arch: self.arch,
            dir: output.dir.clone(),
            output,
        })
    }
}
