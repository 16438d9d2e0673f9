//! Where things go and how hard to work: resolved once from the command
//! line and the environment, then handed to every phase.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Env {
    /// The repository root (holds `patches/`, recipes, `target/`).
    pub project_root: PathBuf,
    /// `$NODEOS_CACHE_DIR`, default `~/.cache/nodeos`: published phase
    /// outputs, resumable build dirs, locks, ccache, private apt state.
    pub cache_dir: PathBuf,
    /// `$NODEOS_DL_DIR`, default `<cache_dir>/dl`: verified source files,
    /// shareable between checkouts and machines.
    pub dl_dir: PathBuf,
    /// `target/nodeos`: links to final artifacts, logs, timings.
    pub target_dir: PathBuf,
    /// `$NODEOS_CCACHE_DIR`, default `<cache_dir>/ccache`: the compiler
    /// cache of builds through `NODEOS_CC_LAUNCHER=ccache`, shareable
    /// between cache dirs (a fresh cache dir need not mean cold compiles).
    pub ccache_dir: PathBuf,
    pub jobs: usize,
    pub verbose: bool,
    /// Use only the download dir; never apt or the network.
    pub offline: bool,
}

impl Env {
    /// Resolves directories from the environment. `project_root` is the
    /// workspace root.
    pub fn new(
        project_root: &Path,
        jobs: Option<usize>,
        verbose: bool,
        offline: bool,
    ) -> Result<Env> {
        let cache_dir = match std::env::var_os("NODEOS_CACHE_DIR") {
            Some(d) if !d.is_empty() => absolute(Path::new(&d))?,
            _ => home_dir()?.join(".cache").join("nodeos"),
        };
        let dl_dir = match std::env::var_os("NODEOS_DL_DIR") {
            Some(d) if !d.is_empty() => absolute(Path::new(&d))?,
            _ => cache_dir.join("dl"),
        };
        let target_dir = match std::env::var_os("NODEOS_TARGET_DIR") {
            Some(d) if !d.is_empty() => absolute(Path::new(&d))?,
            _ => project_root.join("target").join("nodeos"),
        };
        let ccache_dir = match std::env::var_os("NODEOS_CCACHE_DIR") {
            Some(d) if !d.is_empty() => absolute(Path::new(&d))?,
            _ => cache_dir.join("ccache"),
        };
        let jobs = match jobs {
            Some(0) => bail!("--jobs must be at least 1"),
            Some(j) => j,
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        };
        Ok(Env {
            project_root: project_root.to_path_buf(),
            cache_dir,
            dl_dir,
            target_dir,
            ccache_dir,
            jobs,
            verbose,
            offline,
        })
    }

    /// An Env for tests: everything under one temporary directory.
    pub fn for_tests(root: &Path, project_root: &Path) -> Env {
        Env {
            project_root: project_root.to_path_buf(),
            cache_dir: root.join("cache"),
            dl_dir: root.join("dl"),
            target_dir: root.join("target"),
            ccache_dir: root.join("cache").join("ccache"),
            jobs: 2,
            verbose: false,
            offline: false,
        }
    }

    /// Finds the workspace root from a crate's manifest dir (crates live one
    /// level below it).
    pub fn workspace_root_from(manifest_dir: &str) -> PathBuf {
        let p = Path::new(manifest_dir);
        p.parent().unwrap_or(p).to_path_buf()
    }

    pub fn log_dir(&self, arch: Option<crate::Arch>) -> PathBuf {
        self.target_dir
            .join("logs")
            .join(arch.map_or("host", |a| a.name()))
    }

    pub fn artifact_dir(&self, arch: crate::Arch) -> PathBuf {
        self.target_dir.join(arch.name())
    }

    pub fn patches_dir(&self) -> PathBuf {
        self.project_root.join("patches")
    }
}

fn home_dir() -> Result<PathBuf> {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => Ok(PathBuf::from(h)),
        _ => {
            bail!("HOME is not set; set HOME or NODEOS_CACHE_DIR to say where the build cache goes")
        }
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .context("reading the current directory")?
            .join(p))
    }
}
