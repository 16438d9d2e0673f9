//! The toolchain recipe (recipe.toml) and the flags it turns into.

use anyhow::{Context, Result};
use nodeos_build::Arch;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub recipe_version: u32,
    pub targets: BTreeMap<String, Target>,
    pub binutils: Package,
    pub gcc: Gcc,
    pub musl: Package,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(default)]
    pub gcc_configure: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    #[serde(default)]
    pub configure: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gcc {
    pub configure: Vec<String>,
    pub make_vars: Vec<String>,
    #[serde(default)]
    pub source_patches: Vec<SourcePatch>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePatch {
    pub source: String,
    pub strip: u32,
}

impl Recipe {
    pub fn builtin() -> Recipe {
        Self::parse(include_str!("../recipe.toml"))
            .expect("toolchain/recipe.toml is valid (tested)")
    }

    pub fn parse(text: &str) -> Result<Recipe> {
        let r: Recipe = toml::from_str(text).context("parsing toolchain recipe")?;
        for name in r.targets.keys() {
            nodeos_build::arch::recipe_row(name)
                .map_err(|e| anyhow::anyhow!("toolchain recipe target {e}"))?;
        }
        Ok(r)
    }

    pub fn target(&self, arch: Arch) -> Result<&Target> {
        self.targets
            .get(arch.name())
            .with_context(|| format!("the toolchain recipe has no target for {arch}"))
    }
}

/// Flags derived from the recipe for one target. Paths are given by the
/// caller, so the same function serves the build and the tests.
pub struct Flags {
    pub binutils_configure: Vec<String>,
    pub gcc_configure: Vec<String>,
    pub musl_configure: Vec<String>,
    /// The value of MAKE for GCC's recursive makes.
    pub gcc_make: String,
    /// The same plus `enable_shared=no`, for the static libgcc step.
    pub gcc_make_static_libgcc: String,
}

pub fn flags(recipe: &Recipe, arch: Arch, build_sysroot: &str) -> Result<Flags> {
    let t = recipe.target(arch)?;
    let triple = arch.triple();
    // The sysroot is /<triple> under an empty prefix, i.e. relative to the
    // installed compiler: that makes the toolchain relocatable.
    let common = vec![
        format!("--target={triple}"),
        "--prefix=".to_string(),
        "--libdir=/lib".to_string(),
        format!("--with-sysroot=/{triple}"),
    ];
    let mut binutils_configure = common.clone();
    binutils_configure.extend(recipe.binutils.configure.iter().cloned());
    let mut gcc_configure = common;
    gcc_configure.extend(recipe.gcc.configure.iter().cloned());
    gcc_configure.extend(t.gcc_configure.iter().cloned());
    // Target headers and libs are found here while GCC is being built.
    gcc_configure.push(format!("--with-build-sysroot={build_sysroot}"));
    let mut musl_configure = vec!["--prefix=".to_string(), format!("--host={triple}")];
    musl_configure.extend(recipe.musl.configure.iter().cloned());
    // No -j here: the top-level make's jobserver already bounds every
    // recursive make; a -j in MAKE would start a second pool per sub-make.
    let gcc_make = format!("make {}", recipe.gcc.make_vars.join(" "));
    let gcc_make_static_libgcc = format!("{gcc_make} enable_shared=no");
    Ok(Flags {
        binutils_configure,
        gcc_configure,
        musl_configure,
        gcc_make,
        gcc_make_static_libgcc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_recipe_has_a_row_for_every_target() {
        let r = Recipe::builtin();
        for arch in Arch::all() {
            r.target(arch).unwrap();
        }
        assert_eq!(r.targets.len(), Arch::all().len());
    }

    #[test]
    fn flags_per_target() {
        let r = Recipe::builtin();
        for arch in Arch::all() {
            let f = flags(&r, arch, "/b/sysroot").unwrap();
            let t = arch.triple();
            for list in [&f.binutils_configure, &f.gcc_configure] {
                assert!(list.contains(&format!("--target={t}")));
                assert!(list.contains(&format!("--with-sysroot=/{t}")));
                assert!(list.contains(&"--prefix=".to_string()));
            }
            assert!(f
                .binutils_configure
                .contains(&"--enable-deterministic-archives".into()));
            assert!(f
                .gcc_configure
                .contains(&"--with-build-sysroot=/b/sysroot".into()));
            for off in [
                "--disable-bootstrap",
                "--disable-multilib",
                "--disable-libsanitizer",
            ] {
                assert!(f.gcc_configure.contains(&off.into()), "{off}");
            }
            assert!(f.gcc_configure.contains(&"--enable-languages=c,c++".into()));
            assert_eq!(
                f.musl_configure,
                vec!["--prefix=".to_string(), format!("--host={t}")]
            );
            assert!(f.gcc_make.starts_with("make ") && f.gcc_make.contains("MULTILIB_OSDIRNAMES="));
            assert!(
                !f.gcc_make.contains("-j"),
                "sub-makes share the top-level jobserver"
            );
            assert!(!f.gcc_make.contains("enable_shared"));
            assert!(f.gcc_make_static_libgcc.ends_with(" enable_shared=no"));
        }
    }

    #[test]
    fn bad_recipes_are_refused() {
        let text = include_str!("../recipe.toml");
        let e = Recipe::parse(&text.replace("[targets.i386]", "[targets.i686]")).unwrap_err();
        assert!(format!("{e:#}").contains("not an alias"), "{e:#}");
        let e = Recipe::parse(&text.replace("[targets.i386]", "[targets.sparc]")).unwrap_err();
        assert!(format!("{e:#}").contains("sparc"), "{e:#}");
        // A repeated fact is refused, not silently ignored.
        let e = Recipe::parse(&text.replace(
            "[targets.i386]\n",
            "[targets.i386]\ntriple = \"i686-linux-musl\"\n",
        ))
        .unwrap_err();
        assert!(format!("{e:#}").contains("triple"), "{e:#}");
        assert!(Recipe::parse(&format!("{text}\nextra = 1\n")).is_err());
    }
}
