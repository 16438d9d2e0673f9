//! The Node recipe (recipe.toml) and the configure line it becomes.

use anyhow::{bail, Context, Result};
use nodeos_build::Arch;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub recipe_version: u32,
    pub make_target: String,
    pub configure: Vec<String>,
    /// C/C++ flags for every arch's target and host compiles, before the
    /// arch's own.
    #[serde(default)]
    pub cflags: Vec<String>,
    /// Link flags for every arch's target and host links.
    #[serde(default)]
    pub ldflags: Vec<String>,
    pub arch: BTreeMap<String, ArchFlags>,
    pub variants: BTreeMap<String, Variant>,
}

/// The compile and link flags of one arch's build: the recipe's, then
/// the arch's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildFlags {
    pub cflags: Vec<String>,
    pub ldflags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchFlags {
    pub configure: Vec<String>,
    /// Extra C/C++ flags for target and host compiles of this arch.
    #[serde(default)]
    pub cflags: Vec<String>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    #[serde(default)]
    pub configure: Vec<String>,
    #[serde(default)]
    pub components: Vec<Component>,
    pub patch_series: Option<String>,
    /// The library package linked as `--shared-brotli`.
    pub brotli: Option<String>,
    pub icu: Option<String>,
    #[serde(default)]
    pub builtins: Vec<Builtin>,
    /// A tree assembled from pinned parts (library packages, files of npm
    /// and PyPI archives, bundles).
    pub parts: Option<Parts>,
}

/// The Debug form is a key input (node's `variant-recipe`): fields added
/// later appear only when set, so variants without them keep their keys.
impl std::fmt::Debug for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Variant");
        d.field("configure", &self.configure)
            .field("components", &self.components)
            .field("patch_series", &self.patch_series)
            .field("brotli", &self.brotli)
            .field("icu", &self.icu)
            .field("builtins", &self.builtins);
        if let Some(p) = &self.parts {
            d.field("parts", p);
        }
        d.finish()
    }
}

/// What a parts variant restores into the repacked tree.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parts {
    /// Library packages handed to configure as `--shared-<flag>`.
    #[serde(default)]
    pub libraries: Vec<Library>,
    /// Files and directories of archive sources copied into the tree.
    #[serde(default)]
    pub place: Vec<Place>,
    /// JS bundles made with esbuild from npm packages.
    #[serde(default)]
    pub bundles: Vec<Bundle>,
    /// The source whose `package/bin/esbuild` makes the bundles.
    pub esbuild: Option<String>,
    /// Headers that must already carry a part's version (process.versions
    /// reads them), checked after assembly.
    #[serde(default)]
    pub version_checks: Vec<VersionHeader>,
}

/// One `--shared-<flag>` library.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Library {
    /// The package (packages/<name>).
    pub package: String,
    /// The entry of the package's sources.toml (default: the package's).
    pub source: Option<String>,
    /// configure's name for it: `--shared-<flag>`.
    pub flag: String,
    /// `--shared-<flag>-libname`, in static link order.
    pub libname: String,
    /// The key of `process.versions` that reports this library's version:
    /// the built node must report the package's (a `--shared-*` flag
    /// that linked something else shows here).
    pub process_versions: String,
}

/// `from` (a file or directory inside `source`'s archive, top directory
/// included) copied to `to` in the tree.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Place {
    pub source: String,
    pub from: String,
    pub to: String,
}

/// An npm package bundled into one file, as Node's own dep updaters do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// The npm tarball whose `package/` is the working directory.
    pub source: String,
    /// npm tarballs unpacked as `package/node_modules/<source>`.
    #[serde(default)]
    pub node_modules: Vec<String>,
    /// esbuild's arguments, run in `package/`.
    pub esbuild: Vec<String>,
    /// The file esbuild writes (relative to `package/`).
    pub output: String,
    /// Every code point above U+00FF becomes `?` (undici's own
    /// strip-comments step after its build).
    #[serde(default)]
    pub latin1_fold: bool,
    pub to: String,
    /// The bundle's bytes are known: a different esbuild output is refused.
    pub sha256: String,
}

impl Variant {
    /// The library packages (packages/<name>) this variant links.
    pub fn packages(&self) -> impl Iterator<Item = &str> {
        self.package_sources().map(|(p, _)| p)
    }

    /// Each linked package with the entry of its sources.toml the variant
    /// pins (None: the package's own).
    pub fn package_sources(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.brotli.iter().map(|b| (b.as_str(), None)).chain(
            self.parts
                .iter()
                .flat_map(|p| p.libraries.iter())
                .map(|l| (l.package.as_str(), l.source.as_deref())),
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub source: String,
    pub dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Builtin {
    /// A `.deb` source of the manifest.
    pub source: String,
    /// Path inside the package's data.
    pub from: String,
    /// Path in the Node tree (under deps/).
    pub to: String,
    pub version_header: Option<VersionHeader>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionHeader {
    pub file: String,
    pub version: String,
}

impl Recipe {
    /// Node 18's recipe (recipe.toml).
    pub fn builtin() -> Recipe {
        crate::version("18")
            .expect("Node 18 is declared in versions.toml")
            .recipe
            .clone()
    }

    pub fn parse(text: &str) -> Result<Recipe> {
        let r: Recipe = toml::from_str(text).context("parsing the node recipe")?;
        for (name, flags) in &r.arch {
            nodeos_build::arch::recipe_row(name)
                .map_err(|e| anyhow::anyhow!("node recipe arch {e}"))?;
            if let Some(f) = flags.configure.iter().find(|f| f.starts_with("--dest-cpu")) {
                bail!("node recipe arch {name}: {f} comes from nodeos-build/targets.toml (node_dest_cpu); remove it here");
            }
        }
        for (vname, v) in &r.variants {
            for p in v.packages() {
                packages::Registry::builtin()
                    .get(p)
                    .with_context(|| format!("node recipe variant {vname}"))?;
            }
            if let Some(parts) = &v.parts {
                let reg = packages::Registry::builtin();
                for l in &parts.libraries {
                    let pkg = reg
                        .get(&l.package)
                        .with_context(|| format!("node recipe variant {vname}"))?;
                    if let Some(src) = &l.source {
                        if pkg.manifest.variants(src).is_empty() {
                            bail!(
                                "node recipe variant {vname}: package {} has no source '{src}'",
                                l.package
                            );
                        }
                    }
                }
                let to_paths = parts
                    .place
                    .iter()
                    .map(|p| &p.to)
                    .chain(parts.bundles.iter().map(|b| &b.to));
                for to in to_paths {
                    if to.starts_with('/') || to.split('/').any(|c| c == "..") {
                        bail!("node recipe variant {vname}: {to} must be a path inside the tree");
                    }
                }
                if !parts.bundles.is_empty() && parts.esbuild.is_none() {
                    bail!("node recipe variant {vname}: bundles need an esbuild source");
                }
            }
            for b in &v.builtins {
                if !b.to.starts_with("deps/") || b.to.contains("..") {
                    bail!(
                        "node recipe variant {vname}: builtin target {} must be a path under deps/",
                        b.to
                    );
                }
            }
        }
        Ok(r)
    }

    pub fn variant(&self, name: &str) -> Result<&Variant> {
        self.variants
            .get(name)
            .with_context(|| format!("the node recipe has no variant '{name}'"))
    }

    pub fn arch_flags(&self, arch: Arch) -> Result<&ArchFlags> {
        self.arch
            .get(arch.name())
            .with_context(|| format!("the node recipe has no entry for {arch}"))
    }

    /// The flags `arch`'s compiles and links get.
    pub fn build_flags(&self, arch: Arch) -> Result<BuildFlags> {
        let own = self.arch_flags(arch)?;
        Ok(BuildFlags {
            cflags: self.cflags.iter().chain(&own.cflags).cloned().collect(),
            ldflags: self.ldflags.clone(),
        })
    }
}

/// Where the variant's restored pieces are on disk.
#[derive(Debug, Clone, Default)]
pub struct ConfigurePaths {
    /// The static brotli build: `include/` and `lib/`.
    pub brotli: Option<PathBuf>,
    /// The ICU source tarball.
    pub icu_source: Option<PathBuf>,
    /// Each parts library's prefix, by package name.
    pub libraries: BTreeMap<String, PathBuf>,
}

/// `./configure` arguments for one arch and variant.
pub fn configure_args(
    recipe: &Recipe,
    arch: Arch,
    variant: &str,
    paths: &ConfigurePaths,
) -> Result<Vec<String>> {
    let v = recipe.variant(variant)?;
    let mut args = recipe.configure.clone();
    args.push(format!("--dest-cpu={}", arch.node_cpu()));
    args.extend(recipe.arch_flags(arch)?.configure.iter().cloned());
    args.extend(v.configure.iter().cloned());
    if v.brotli.is_some() {
        let b = paths
            .brotli
            .as_deref()
            .context("the variant builds brotli, but no brotli dir was given")?;
        args.push("--shared-brotli".into());
        args.push(format!(
            "--shared-brotli-includes={}",
            b.join("include").display()
        ));
        args.push(format!(
            "--shared-brotli-libpath={}",
            b.join("lib").display()
        ));
        args.push("--shared-brotli-libname=brotlidec,brotlienc,brotlicommon".into());
    }
    for l in v.parts.iter().flat_map(|p| p.libraries.iter()) {
        let dir = paths.libraries.get(&l.package).with_context(|| {
            format!(
                "the variant links package {}, but no prefix was given",
                l.package
            )
        })?;
        let f = &l.flag;
        args.push(format!("--shared-{f}"));
        args.push(format!(
            "--shared-{f}-includes={}",
            dir.join("include").display()
        ));
        args.push(format!(
            "--shared-{f}-libpath={}",
            dir.join("lib").display()
        ));
        args.push(format!("--shared-{f}-libname={}", l.libname));
    }
    if v.icu.is_some() {
        let icu = paths
            .icu_source
            .as_deref()
            .context("the variant uses an ICU source, but none was given")?;
        args.push(format!("--with-icu-source={}", icu.display()));
    }
    Ok(args)
}

/// Environment for configure and make: the target toolchain as both the
/// target and the "host" compiler. This x86 host runs static i686 and
/// x86_64 binaries, so mksnapshot and torque run and the snapshot is kept.
pub fn build_env(
    tools: &[(&'static str, PathBuf)],
    launcher: Option<&str>,
    python: &Path,
    flags: &BuildFlags,
) -> Vec<(String, String)> {
    let get = |k: &str| {
        tools
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, p)| p.display().to_string())
            .unwrap_or_default()
    };
    let wrap = |p: String| match launcher {
        Some(l) => format!("{l} {p}"),
        None => p,
    };
    let (cc, cxx) = (wrap(get("CC")), wrap(get("CXX")));
    let mut env = vec![
        ("CC".to_string(), cc.clone()),
        ("CXX".to_string(), cxx.clone()),
        ("CC_host".to_string(), cc),
        ("CXX_host".to_string(), cxx),
        ("AR".to_string(), get("AR")),
        ("AR_host".to_string(), get("AR")),
        ("RANLIB".to_string(), get("RANLIB")),
        ("RANLIB_host".to_string(), get("RANLIB")),
        ("LINK".to_string(), get("CXX")),
        ("LINK_host".to_string(), get("CXX")),
        // The host's .pc files (e.g. libbrotli-dev) must not leak in.
        ("PKG_CONFIG".to_string(), "false".to_string()),
        ("PYTHON".to_string(), python.display().to_string()),
        ("LC_ALL".to_string(), "C".to_string()),
    ];
    // gyp's makefiles read these for the target and the host toolset.
    if !flags.cflags.is_empty() {
        for var in ["CFLAGS", "CXXFLAGS", "CFLAGS_host", "CXXFLAGS_host"] {
            env.push((var.to_string(), flags.cflags.join(" ")));
        }
    }
    if !flags.ldflags.is_empty() {
        for var in ["LDFLAGS", "LDFLAGS_host"] {
            env.push((var.to_string(), flags.ldflags.join(" ")));
        }
    }
    env.sort();
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<(&'static str, PathBuf)> {
        ["CC", "CXX", "AR", "RANLIB", "STRIP"]
            .iter()
            .map(|k| (*k, PathBuf::from(format!("/tc/bin/x-{}", k.to_lowercase()))))
            .collect()
    }

    fn paths() -> ConfigurePaths {
        ConfigurePaths {
            brotli: Some("/b/brotli".into()),
            icu_source: Some("/dl/icu.tgz".into()),
            libraries: BTreeMap::new(),
        }
    }

    #[test]
    fn configure_line_per_arch_and_variant() {
        let r = Recipe::builtin();
        for (arch, cpu) in [(Arch::I386, "ia32"), (Arch::X86_64, "x64")] {
            let up = configure_args(&r, arch, "upstream", &ConfigurePaths::default()).unwrap();
            assert!(up.contains(&"--fully-static".into()));
            assert!(up.contains(&format!("--dest-cpu={cpu}")));
            assert!(up.contains(&"--with-intl=small-icu".into()));
            assert!(
                !up.iter()
                    .any(|a| a.contains("brotli") || a.contains("icu-source")),
                "{up:?}"
            );
            let deb = configure_args(&r, arch, "debian", &paths()).unwrap();
            assert!(deb.contains(&format!("--dest-cpu={cpu}")));
            assert!(deb.contains(&"--shared-brotli".into()));
            assert!(deb.contains(&"--shared-brotli-libpath=/b/brotli/lib".into()));
            assert!(deb.contains(&"--with-icu-source=/dl/icu.tgz".into()));
            assert!(
                !deb.iter().any(|a| a.starts_with("--shared-builtin")),
                "builtins are embedded, never shared"
            );
        }
        assert!(configure_args(&r, Arch::X86_64, "debian", &ConfigurePaths::default()).is_err());
        assert!(configure_args(&r, Arch::X86_64, "fedora", &paths()).is_err());
    }

    #[test]
    fn recipe_flags_come_before_the_archs_and_links_get_their_own() {
        let r22 = &crate::version("22").unwrap().recipe;
        let i386 = r22.build_flags(Arch::I386).unwrap();
        assert_eq!(
            i386.cflags,
            ["-ffunction-sections", "-fdata-sections", "-msse2"],
            "the recipe's flags, then the arch's"
        );
        assert_eq!(i386.ldflags, ["-Wl,--gc-sections"]);
        let x64 = r22.build_flags(Arch::X86_64).unwrap();
        assert_eq!(x64.cflags, ["-ffunction-sections", "-fdata-sections"]);
        // Node 18's recipe has none of its own: its arch flags alone.
        let r18 = Recipe::builtin();
        assert_eq!(
            r18.build_flags(Arch::I386).unwrap(),
            BuildFlags {
                cflags: vec!["-msse2".into()],
                ldflags: vec![],
            }
        );
    }

    #[test]
    fn launcher_wraps_compilers_only() {
        let py = Path::new("/usr/bin/python3");
        let plain = build_env(&tools(), None, py, &BuildFlags::default());
        let get =
            |e: &Vec<(String, String)>, k: &str| e.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get(&plain, "CC"), "/tc/bin/x-cc");
        assert_eq!(get(&plain, "CC_host"), "/tc/bin/x-cc");
        assert_eq!(get(&plain, "PKG_CONFIG"), "false");
        let flags = BuildFlags {
            cflags: vec!["-msse2".to_string()],
            ldflags: vec!["-Wl,--gc-sections".to_string()],
        };
        let cc = build_env(&tools(), Some("ccache"), py, &flags);
        assert_eq!(get(&cc, "CC"), "ccache /tc/bin/x-cc");
        assert_eq!(get(&cc, "CXX_host"), "ccache /tc/bin/x-cxx");
        assert_eq!(get(&cc, "AR"), "/tc/bin/x-ar");
        assert_eq!(get(&cc, "LINK"), "/tc/bin/x-cxx", "links are not wrapped");
        assert_eq!(get(&cc, "CXXFLAGS_host"), "-msse2");
        assert_eq!(get(&cc, "LDFLAGS"), "-Wl,--gc-sections");
        assert_eq!(get(&cc, "LDFLAGS_host"), "-Wl,--gc-sections");
        assert!(
            !plain.iter().any(|(k, _)| k == "CFLAGS" || k == "LDFLAGS"),
            "no flags, no CFLAGS or LDFLAGS"
        );
    }

    #[test]
    fn arch_rows_name_targets_and_do_not_repeat_them() {
        let text = include_str!("../recipe.toml");
        for arch in Arch::all() {
            Recipe::builtin().arch_flags(arch).unwrap();
        }
        let e = Recipe::parse(&text.replace("[arch.i386]", "[arch.i686]")).unwrap_err();
        assert!(format!("{e:#}").contains("not an alias"), "{e:#}");
        let e = Recipe::parse(&text.replace("[arch.i386]", "[arch.m68k]")).unwrap_err();
        assert!(format!("{e:#}").contains("no such row"), "{e:#}");
        let e = Recipe::parse(&text.replace(
            "configure = [\"--openssl-no-asm\"]",
            "configure = [\"--dest-cpu=ia32\", \"--openssl-no-asm\"]",
        ))
        .unwrap_err();
        assert!(format!("{e:#}").contains("node_dest_cpu"), "{e:#}");
    }

    #[test]
    fn builtins_must_land_under_deps() {
        let text = include_str!("../recipe.toml")
            .replace("to = \"deps/undici/undici.js\"", "to = \"lib/x.js\"");
        assert!(format!("{:#}", Recipe::parse(&text).unwrap_err()).contains("under deps/"));
    }
}
