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
    /// A project's own scripts and makefiles, each command given in full:
    /// `configure` (e.g. `["perl", "./Configure", …]`; empty: none), then
    /// `make` once per entry of `make`, then once per entry of `install`.
    /// `{prefix}` in any argument is the package's prefix and `{host}` the
    /// target's triplet; nothing else is added. The toolchain comes in as
    /// `CC`, `CXX`, `AR`, `RANLIB` and the flags as `CFLAGS`, `CXXFLAGS`.
    Make {
        #[serde(default)]
        configure: Vec<String>,
        make: Vec<Vec<String>>,
        install: Vec<Vec<String>>,
    },
    /// Plain compiles, no build system: `host_commands` first (shell
    /// lines run in the tree with the host's compiler, for sources that
    /// are generated, such as SQLite's amalgamation), then `generate`
    /// (template files with `@WORD@` replaced), then every source of each
    /// library compiled (`.c` as C, `.cc`/`.cpp` as C++ with `cxxflags`)
    /// and archived as `lib/lib<lib>.a`; `headers` are copied under
    /// `include/`.
    Compile {
        #[serde(default)]
        host_commands: Vec<String>,
        #[serde(default)]
        generate: Vec<Generate>,
        #[serde(default)]
        include_dirs: Vec<String>,
        #[serde(default)]
        defines: Vec<String>,
        #[serde(default)]
        cxxflags: Vec<String>,
        libs: Vec<CompiledLib>,
        headers: Vec<Header>,
    },
}

/// One static library of the `compile` build system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompiledLib {
    pub lib: String,
    /// Paths in the tree; `dir/*.ext` takes every `.ext` file of `dir`.
    pub sources: Vec<String>,
}

/// A file or directory of the tree copied to `include/<to>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub from: String,
    pub to: String,
}

/// A template in the tree written out with `@WORD@`s replaced.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    pub from: String,
    pub to: String,
    pub replace: BTreeMap<String, String>,
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
                        "target args are for the configure and make build systems; archives take cflags only"
                    );
                }
                if self.pkgconfig.is_none() {
                    bail!(
                        "the archives build system installs no .pc file: add a [pkgconfig] table"
                    );
                }
            }
            BuildSystem::Make {
                configure,
                make,
                install,
            } => {
                if make.is_empty() || install.is_empty() {
                    bail!("the make build system needs make and install commands");
                }
                if !configure.is_empty() && configure.len() < 2 {
                    bail!(
                        "configure is an interpreter and a script, e.g. [\"sh\", \"./configure\"]"
                    );
                }
                if configure.is_empty() && self.target.values().any(|t| !t.args.is_empty()) {
                    bail!(
                        "target args are appended to configure, which this package does not have"
                    );
                }
            }
            BuildSystem::Compile {
                generate,
                include_dirs,
                libs,
                headers,
                ..
            } => {
                for d in include_dirs {
                    check_relative("include dir", d)?;
                }
                for g in generate {
                    check_relative("generate from", &g.from)?;
                    check_relative("generate to", &g.to)?;
                }
                if libs.is_empty() {
                    bail!("the compile build system needs at least one lib");
                }
                for l in libs {
                    if l.sources.is_empty() {
                        bail!("lib{}.a has no sources", l.lib);
                    }
                    for f in &l.sources {
                        check_relative("source", f)?;
                        if !(f.ends_with(".c") || f.ends_with(".cc") || f.ends_with(".cpp")) {
                            bail!("source '{f}' is neither C (.c) nor C++ (.cc, .cpp)");
                        }
                    }
                }
                if headers.is_empty() {
                    bail!("the compile build system needs headers to install");
                }
                if self.target.values().any(|t| !t.args.is_empty()) {
                    bail!("target args are for the configure and make build systems; compile takes cflags only");
                }
                for h in headers {
                    check_relative("header", &h.from)?;
                    check_relative("header destination", &h.to)?;
                }
                if self.pkgconfig.is_none() {
                    bail!("the compile build system installs no .pc file: add a [pkgconfig] table");
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
            BuildSystem::Archives { .. }
            | BuildSystem::Make { .. }
            | BuildSystem::Compile { .. } => Vec::new(),
        };
        if let Some(t) = self.target.get(target) {
            a.extend(t.args.iter().cloned());
        }
        a
    }
}
