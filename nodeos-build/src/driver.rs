//! The phase driver. A phase (toolchain, kernel, a library package, node,
//! the initramfs) declares what it is — its name, its sources, the phases
//! it depends on, the host tools it needs — and supplies its key and its
//! steps; [`build`] owns the sequence every phase shares:
//!
//! choose source variants offline → key → published? → require host tools
//! → fetch → key again (fetching may settle on another variant) → run the
//! steps (lock, log, timings: [`PhaseRun`]) → publish → link artifacts.

use crate::fetch::{self, Fetcher, Resolved};
use crate::host::{self, Need};
use crate::phase::{PhaseOutput, PhaseRun, StepCtx};
use crate::publish::Outputs;
use crate::{Arch, Env, Key, Manifest};
use anyhow::Result;
use std::path::PathBuf;

/// One entry of a source manifest a phase builds from.
#[derive(Debug, Clone)]
pub struct SourceRef {
    pub manifest: Manifest,
    /// The package name in that manifest (`gcc`, `linux`, `node`, …).
    pub name: String,
}

impl SourceRef {
    pub fn new(manifest: &Manifest, name: &str) -> SourceRef {
        SourceRef {
            manifest: manifest.clone(),
            name: name.to_string(),
        }
    }
}

/// What a phase is, independent of any build: what `fetch`, `clean`,
/// `doctor` and `manifest.json` read from the registry of phases.
#[derive(Debug, Clone)]
pub struct PhaseDecl {
    /// Its name in the cache, logs, locks and timings.
    pub name: String,
    pub sources: Vec<SourceRef>,
    /// The phases whose outputs (and keys) it uses.
    pub depends: Vec<String>,
    /// Its subset of the host-tool table.
    pub host_tools: Vec<Need>,
}

/// The variants chosen for a phase's declared sources.
#[derive(Debug, Clone)]
pub struct Sources {
    chosen: Vec<(String, Resolved)>,
}

impl Sources {
    /// The chosen variant of a declared source.
    ///
    /// # Panics
    /// When `name` is not among the phase's declared sources: the phase's
    /// declaration and its code disagree.
    pub fn get(&self, name: &str) -> &Resolved {
        self.chosen
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("source {name} is used but not declared by the phase"))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Resolved> {
        self.chosen.iter().map(|(_, r)| r)
    }

    /// Chooses every declared source without network access.
    pub fn choose(env: &Env, decl: &PhaseDecl) -> Result<Sources> {
        let chosen = decl
            .sources
            .iter()
            .map(|s| Ok((s.name.clone(), fetch::choose(env, &s.manifest, &s.name)?)))
            .collect::<Result<_>>()?;
        Ok(Sources { chosen })
    }

    /// Fetches (if needed) and verifies every declared source.
    pub fn fetch(fetcher: &mut Fetcher, decl: &PhaseDecl) -> Result<Sources> {
        let chosen = decl
            .sources
            .iter()
            .map(|s| {
                Ok((
                    s.name.clone(),
                    fetch::ensure(fetcher, &s.manifest, &s.name)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Sources { chosen })
    }
}

/// Why a phase prepares its dependencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// For a build: dependencies are built when they are not published.
    Build,
    /// For a look-up of the published output: nothing is built or fetched.
    Published,
}

/// A phase for one target (or the host).
pub trait Phase {
    /// What a caller gets: the published output, typed.
    type Output;

    fn decl(&self) -> PhaseDecl;

    fn arch(&self) -> Option<Arch>;

    /// Makes the dependencies that `sources` call for ready before the key
    /// is computed (node's source variant decides which library packages
    /// it links). Called again when fetching settles on other variants.
    fn prepare(&mut self, _env: &Env, _sources: &Sources, _mode: Mode) -> Result<()> {
        Ok(())
    }

    /// Every input of the output: sources, flags, patches, the keys of the
    /// phases it depends on, the host compiler, a recipe version.
    fn key(&self, env: &Env, sources: &Sources) -> Result<Key>;

    /// What it publishes.
    fn outputs(&self) -> Outputs {
        Outputs::Tree
    }

    /// Its steps, writing into `ctx.out_dir()`.
    fn steps(&self, ctx: &mut StepCtx, sources: &Sources) -> Result<()>;

    /// The typed output of a published dir; checks that need the whole
    /// output go here.
    fn output(&self, out: PhaseOutput, sources: &Sources) -> Result<Self::Output>;

    /// Links to make in `target/nodeos/<arch>/` after a build: (link name,
    /// target).
    fn artifacts(&self, _output: &Self::Output) -> Vec<(String, PathBuf)> {
        Vec::new()
    }
}

fn keyed<'e, P: Phase>(
    env: &'e Env,
    phase: &P,
    decl: &PhaseDecl,
    sources: &Sources,
) -> Result<PhaseRun<'e>> {
    let mut run = PhaseRun::new(
        env,
        decl.name.clone(),
        phase.arch(),
        phase.key(env, sources)?,
    );
    run.outputs = phase.outputs();
    Ok(run)
}

/// Returns the phase's output, building it if its key is not published.
pub fn build<P: Phase>(env: &Env, mut phase: P) -> Result<P::Output> {
    let decl = phase.decl();
    let chosen = Sources::choose(env, &decl)?;
    phase.prepare(env, &chosen, Mode::Build)?;
    let run = keyed(env, &phase, &decl, &chosen)?;
    let (sources, run) = if run.cached().is_some() || decl.sources.is_empty() {
        (chosen, run)
    } else {
        if !decl.host_tools.is_empty() {
            host::require(&format!("the {} phase", decl.name), &decl.host_tools)?;
        }
        let mut fetcher = Fetcher::new(env)?;
        let fetched = Sources::fetch(&mut fetcher, &decl)?;
        phase.prepare(env, &fetched, Mode::Build)?;
        let run = keyed(env, &phase, &decl, &fetched)?;
        (fetched, run)
    };
    let out = run.run(|ctx| phase.steps(ctx, &sources))?;
    let output = phase.output(out, &sources)?;
    if let Some(arch) = phase.arch() {
        for (name, target) in phase.artifacts(&output) {
            crate::util::symlink_force(&target, &env.artifact_dir(arch).join(name))?;
        }
    }
    Ok(output)
}

/// The phase's output when its key (for the sources in the download dir)
/// is published; never builds or fetches anything.
pub fn published<P: Phase>(env: &Env, mut phase: P) -> Result<Option<P::Output>> {
    let decl = phase.decl();
    let sources = Sources::choose(env, &decl)?;
    phase.prepare(env, &sources, Mode::Published)?;
    match keyed(env, &phase, &decl, &sources)?.published()? {
        Some(out) => phase.output(out, &sources).map(Some),
        None => Ok(None),
    }
}

/// The phase's key for the sources in the download dir, computed without
/// building or fetching anything: its dependencies are only keyed
/// (`prepare` in [`Mode::Published`]), and the phase keeps what `prepare`
/// found (node: the keys of the packages it links).
pub fn chosen_key<P: Phase>(env: &Env, phase: &mut P) -> Result<Key> {
    let decl = phase.decl();
    let sources = Sources::choose(env, &decl)?;
    phase.prepare(env, &sources, Mode::Published)?;
    phase.key(env, &sources)
}

/// Every phase's name, in one place: the cache, logs, locks, timings and
/// `clean --phase` are named by these.
pub mod names {
    pub const TOOLCHAIN: &str = "toolchain";
    pub const NODE: &str = "node";
    /// Node's source tree as the node phase prepares it.
    pub const NODE_SOURCE: &str = "node-source";
    pub const KERNEL: &str = "kernel";
    pub const INITRAMFS: &str = "initramfs";
    /// icecream's compiler environment of one toolchain key.
    pub const ICECC_ENV: &str = "icecc-env";

    /// A library package's phase: `pkg-<name>`.
    pub fn package(name: &str) -> String {
        format!("pkg-{name}")
    }
}
