//! What the source-preparation tests share.

use nodeos_build::fetch::Resolved;
use nodeos_build::{Env, Key, PhaseRun};
use std::path::PathBuf;

/// Runs the real `prepare_source` step for `variant` of `recipe` inside a
/// throwaway phase and returns the prepared tree (moved into the published
/// output, so the assertions can read it).
pub fn prepared_tree(
    env: &Env,
    node: &Resolved,
    recipe: &node_static::Recipe,
    variant_name: &str,
) -> PathBuf {
    let variant = recipe.variant(variant_name).unwrap().clone();
    let mut k = Key::new("node-prepare-test", 1);
    k.str("node", &node.main.version)
        .str("variant", variant_name)
        .str("pid", &std::process::id().to_string());
    let out = PhaseRun::new(env, "node-prepare-test", None, k)
        .run(|ctx| {
            let dir = ctx.build_dir().join("node");
            ctx.step("prepare", |ctx| {
                node_static::build::prepare_source(ctx, node, &variant, &dir)
            })?;
            std::fs::rename(&dir, ctx.out_dir().join("node"))?;
            Ok(())
        })
        .unwrap();
    out.dir.join("node")
}
