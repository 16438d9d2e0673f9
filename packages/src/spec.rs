//! A library package as data: `packages/<name>/package.toml`.

use anyhow::{bail, Context, Result};
use nodeos_build::Manifest;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    /// The entry of the package's `sources.toml` to build from.
    pub source: String,
    /// Bumped by hand when the build steps change what this package
    /// produces in a way its data does not show.
    pub recipe_version: u32,
    /// C/C++ flags for every target (`CFLAGS`, `CXXFLAGS`).
    #[serde(default)]
    pub cflags: Vec<String>,
    /// Packages this one links against: built first, their keys go into
    /// its key, their prefixes are on its include, library and pkg-config
    /// paths.
    #[serde(default)]
    pub depends: Vec<String>,
    /// Files (relative to the prefix) the package must install; the build
    /// fails without them.
    pub installs: Vec<String>,
    pub build: BuildSystem,
    /// Extra flags per target (a row name of nodeos-build/targets.toml).
    #[serde(default)]
    pub target: BTreeMap<String, TargetFlags>,
    /// How `lib/pkgconfig/<name>.pc` is written when the build system
    /// does not install it.
    pub pkgconfig: Option<PkgConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFlags {
    #[serde(default)]
    pub cflags: Vec<String>,
    /// Appended to the build system's arguments (`configure` only).
    #[serde(default)]
    pub args: Vec<String>,
}

/// How a package is built. A new build system is a new variant here and
/// its steps in `build_system.rs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "system", rename_all = "kebab-case", deny_unknown_fields)]
pub enum BuildSystem {
    /// A `./configure` script that takes `--prefix` and reads `CC`, `AR`,
    /// `RANLIB`, `CFLAGS` from the environment (zlib's hand-written one),
    /// then `make` and `make install`. Nothing else is added to its
    /// command line: `args` says all of it.
    Configure {
        #[serde(default)]
        args: Vec<String>,
    },
    /// No build system: each archive is every `.c` file of one directory,
    /// compiled with the include dirs and archived as `lib/lib<lib>.a`;
    /// `headers` is copied to `include/`.
    Archives {
        #[serde(default)]
        include_dirs: Vec<String>,
        headers: String,
        archives: Vec<Archive>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    pub lib: String,
    pub dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkgConfig {
    pub description: String,
    pub libs: Vec<String>,
}

/// A relative path inside a source tree or prefix: no `..`, not absolute.
fn check_relative(what: &str, p: &str) -> Result<()> {
    if p.is_empty() || p.starts_with('/') || p.split('/').any(|c| c == "..") {
        bail!("{what} '{p}' must be a relative path inside the tree");
    }
    Ok(())
}

impl Spec {
    /// Parses and checks one package file against its sources manifest.
    pub fn parse(text: &str, manifest: &Manifest, origin: &str) -> Result<Spec> {
        let s: Spec = toml::from_str(text).with_context(|| format!("parsing {origin}"))?;
        s.validate(manifest)
            .with_context(|| format!("invalid package {origin}"))?;
        Ok(s)
    }

    fn validate(&self, manifest: &Manifest) -> Result<()> {
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            bail!(
                "name '{}' must be lowercase letters, digits and '-'",
                self.name
            );
        }
        if manifest.variants(&self.source).is_empty() {
            bail!(
                "source '{}' is not declared in its sources.toml",
                self.source
            );
        }
        for t in self.target.keys() {
            nodeos_build::arch::recipe_row(t).map_err(|e| anyhow::anyhow!("target {e}"))?;
        }
        if self.installs.is_empty() {
            bail!("installs is empty: say which files the package provides");
        }
        for f in &self.installs {
            check_relative("installs entry", f)?;
            if !(f.starts_with("lib/") || f.starts_with("include/")) {
                bail!("installs entry '{f}' is outside lib/ and include/, which are all a package publishes");
            }
        }
        let pc = format!("lib/pkgconfig/{}.pc", self.name);
        if !self.installs.contains(&pc) {
            bail!("installs must list {pc}: every package has a pkg-config file");
        }
        match &self.build {
            BuildSystem::Configure { .. } => {}
            BuildSystem::Archives {
                include_dirs,
                headers,
                archives,
            } => {
                for d in include_dirs {
                    check_relative("include dir", d)?;
                }
                check_relative("headers", headers)?;
                if archives.is_empty() {
                    bail!("the archives build system needs at least one archive");
                }
                for a in archives {
                    check_relative("archive dir", &a.dir)?;
                }
                if self.target.values().any(|t| !t.args.is_empty()) {
                    bail!(
                        "target args are for the configure build system; archives take cflags only"
                    );
                }
                if self.pkgconfig.is_none() {
                    bail!(
                        "the archives build system installs no .pc file: add a [pkgconfig] table"
                    );
                }
            }
        }
        Ok(())
    }

    /// Package-wide flags, then the target's.
    pub fn cflags(&self, target: &str) -> Vec<String> {
        let mut f = self.cflags.clone();
        if let Some(t) = self.target.get(target) {
            f.extend(t.cflags.iter().cloned());
        }
        f
    }

    /// The build system's arguments, then the target's.
    pub fn args(&self, target: &str) -> Vec<String> {
        let mut a = match &self.build {
            BuildSystem::Configure { args } => args.clone(),
            BuildSystem::Archives { .. } => Vec::new(),
        };
        if let Some(t) = self.target.get(target) {
            a.extend(t.args.iter().cloned());
        }
        a
    }
}
