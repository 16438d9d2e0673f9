//! The node-source phase: Node's source tree exactly as the node phase
//! prepares it (a repack's parts restored, the distribution's patch series
//! and the project's patches applied), published on its own. `node-test`
//! takes `test/` and the files tests read from it: a distribution's
//! security fixes change tests beside the code they fix, so the tests of
//! the unpatched tarball do not match the node that was built.

use anyhow::Result;
use nodeos_build::driver::{self, names};
use nodeos_build::publish::Outputs;
use nodeos_build::{Arch, Env, Key, Phase, PhaseDecl, PhaseOutput, Sources, StepCtx};
use std::path::PathBuf;

use crate::NodeVersion;

/// The phase's name in the cache, logs and timings.
pub const PHASE: &str = names::NODE_SOURCE;

/// The directory of the published output that holds the tree.
const TREE: &str = "node";

/// A published, prepared Node source tree.
#[derive(Debug, Clone)]
pub struct SourceTree {
    /// The tree's root (holds `test/`, `lib/`, `deps/`...).
    pub root: PathBuf,
    pub output: PhaseOutput,
}

struct SourcePhase<'a> {
    nv: &'a NodeVersion,
}

/// The node-source phase of Node `nv`: node's sources, no dependencies.
pub fn decl(nv: &NodeVersion) -> PhaseDecl {
    let node = crate::decl(nv);
    PhaseDecl {
        name: PHASE.into(),
        sources: node.sources,
        depends: Vec::new(),
        // Unpacking and patching need the node phase's tar, xz, patch and,
        // for a parts variant, its parts tools.
        host_tools: node.host_tools,
    }
}

impl Phase for SourcePhase<'_> {
    type Output = SourceTree;

    fn decl(&self) -> PhaseDecl {
        decl(self.nv)
    }

    /// One tree for every arch.
    fn arch(&self) -> Option<Arch> {
        None
    }

    fn key(&self, env: &Env, sources: &Sources) -> Result<Key> {
        let node = sources.get("node");
        let mut k = Key::new(PHASE, self.nv.recipe.recipe_version);
        k.str("variant", node.variant());
        crate::source_tree_fields(&mut k, env, self.nv.recipe.variant(node.variant())?, node)?;
        Ok(k)
    }

    fn outputs(&self) -> Outputs {
        Outputs::named(&[TREE])
    }

    fn steps(&self, ctx: &mut StepCtx, sources: &Sources) -> Result<()> {
        let node = sources.get("node");
        let variant = self.nv.recipe.variant(node.variant())?.clone();
        let src = ctx.out_dir().join(TREE);
        ctx.step("prepare-source", |ctx| {
            crate::build::prepare_source(ctx, node, &variant, &src)
        })
    }

    fn output(&self, output: PhaseOutput, _sources: &Sources) -> Result<SourceTree> {
        Ok(SourceTree {
            root: output.dir.join(TREE),
            output,
        })
    }
}

/// Node `nv`'s prepared source tree, made (fetching what it needs) if it
/// is not cached.
pub fn build(env: &Env, nv: &NodeVersion) -> Result<SourceTree> {
    driver::build(env, SourcePhase { nv })
}
