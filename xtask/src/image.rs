//! `cargo xtask image`: fetch → toolchain → node → kernel → initramfs, per
//! arch, as needed and cached; writes `target/nodeos/<arch>/` (bzImage,
//! initramfs, node, manifest.json) and ends with a summary table.

use crate::Common;
use anyhow::{bail, Context, Result};
use clap::Args;
use nodeos_build::fetch;
use nodeos_build::util::{fmt_duration, fmt_size, sha256_file, symlink_force, write_atomic};
use nodeos_build::{Arch, Env, PhaseOutput};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ImageArgs {
    /// Use this bzImage instead of building the kernel
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
}

/// One arch's finished image.
pub struct Image {
    pub bzimage: PathBuf,
    pub initramfs: PathBuf,
    pub node: node_static::NodeBinary,
    pub phases: Vec<PhaseOutput>,
    pub manifest: PathBuf,
}

pub use initramfs::phase::{build as build_initramfs, file_name as initramfs_file_name};

/// Checks a `--kernel` against every selected arch before anything is
/// built: with both arches, an i386 bzImage must be refused for x86_64 now,
/// not after the whole i386 build.
pub fn check_user_kernel(user_kernel: Option<&Path>, arches: &[Arch]) -> Result<()> {
    if let Some(p) = user_kernel {
        for &arch in arches {
            kernel::check_user_bzimage_for(p, arch)?;
        }
    }
    Ok(())
}

pub fn build(env: &Env, arch: Arch, user_kernel: Option<&Path>) -> Result<Image> {
    // A bad --kernel must fail before an hour of building, not after.
    if let Some(p) = user_kernel {
        kernel::check_user_bzimage_for(p, arch)?;
    }
    let node = node_static::build(env, arch)?;
    let tc = toolchain::build(env, arch)?; // cached by now: for the manifest
    let mut phases = vec![tc.output.clone()];
    phases.extend(node.packages.iter().cloned());
    phases.push(node.output.clone());
    let (bzimage, kernel_input) = match user_kernel {
        Some(p) => {
            kernel::check_user_bzimage_for(p, arch)?;
            let p = p
                .canonicalize()
                .with_context(|| format!("resolving {}", p.display()))?;
            let sha = sha256_file(&p)?;
            (
                p.clone(),
                json!({ "name": "user kernel (--kernel)", "path": p, "sha256": sha }),
            )
        }
        None => {
            let k = kernel::build(env, arch)?;
            phases.push(k.output.clone());
            (k.bzimage.clone(), serde_json::Value::Null)
        }
    };
    let node_sha = sha256_file(&node.node)?;
    let ird = build_initramfs(env, arch, &node.node, &node.output.key, &node_sha)?;
    let initramfs = ird.dir.join(initramfs_file_name());
    phases.push(ird.clone());

    let art = env.artifact_dir(arch);
    symlink_force(&bzimage, &art.join("bzImage"))?;
    symlink_force(&initramfs, &art.join(initramfs_file_name()))?;
    symlink_force(&node.node, &art.join("node"))?;
    let manifest = art.join("manifest.json");
    write_manifest(
        env,
        arch,
        &manifest,
        &bzimage,
        &initramfs,
        &ird.dir,
        &node,
        &node_sha,
        &phases,
        kernel_input,
    )?;
    Ok(Image {
        bzimage,
        initramfs,
        node,
        phases,
        manifest,
    })
}

#[allow(clippy::too_many_arguments)]
fn write_manifest(
    env: &Env,
    arch: Arch,
    path: &Path,
    bzimage: &Path,
    initramfs: &Path,
    initramfs_dir: &Path,
    node: &node_static::NodeBinary,
    node_sha: &str,
    phases: &[PhaseOutput],
    user_kernel: serde_json::Value,
) -> Result<()> {
    let mut inputs = Vec::new();
    // Every source of every phase this image was built from.
    for p in phases {
        let Some(decl) = crate::phases::get(&p.name) else {
            continue;
        };
        for src in &decl.sources {
            let r = fetch::choose(env, &src.manifest, &src.name)?;
            for s in r.all() {
                inputs.push(json!({ "phase": p.name, "name": s.name, "version": s.version, "variant": s.variant, "file": s.file, "sha256": s.sha256 }));
            }
        }
    }
    if !user_kernel.is_null() {
        inputs.push(user_kernel);
    }
    let output = |name: &str, p: &Path| -> Result<serde_json::Value> {
        Ok(
            json!({ "name": name, "path": p, "size": std::fs::metadata(p)?.len(), "sha256": sha256_file(p)? }),
        )
    };
    let uncompressed: Option<u64> =
        std::fs::read_to_string(initramfs_dir.join("uncompressed-size"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
    let mut ird = output("initramfs", initramfs)?;
    ird["uncompressed_size"] = json!(uncompressed);
    let outputs = vec![
        output("bzImage", bzimage)?,
        ird,
        json!({ "name": "node", "path": node.node, "size": std::fs::metadata(&node.node)?.len(), "sha256": node_sha }),
        output("node.unstripped", &node.node_unstripped)?,
    ];
    let phase_rows: Vec<serde_json::Value> = phases
        .iter()
        .map(|p| {
            let cold = nodeos_build::phase::read_timings(&p.dir);
            json!({
                "phase": p.name,
                "key": p.key,
                "this_run": if p.cached { json!("cached") } else { json!(p.wall.as_secs_f64()) },
                "cold_build_secs": cold.map(|t| t.build_secs),
            })
        })
        .collect();
    let doc = json!({ "arch": arch.name(), "node_version": node.version, "inputs": inputs, "outputs": outputs, "phases": phase_rows });
    write_atomic(path, &serde_json::to_vec_pretty(&doc)?)
}

pub fn run(common: &Common, a: ImageArgs) -> Result<()> {
    let env = common.env()?;
    let started = std::time::Instant::now();
    let arches = common.arches();
    check_user_kernel(a.kernel.as_deref(), &arches)?;
    let mut rows = Vec::new();
    for arch in arches {
        let img = build(&env, arch, a.kernel.as_deref())?;
        for p in &img.phases {
            let how = p.how();
            rows.push(format!("{:<8} {:<10} {:<12}", arch.name(), p.name, how));
        }
        let size = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| fmt_size(m.len()))
                .unwrap_or_default()
        };
        rows.push(format!(
            "{:<8} {:<10} bzImage {}, initramfs {}, node {}  ({})",
            arch.name(),
            "image",
            size(&img.bzimage),
            size(&img.initramfs),
            size(&img.node.node),
            img.manifest.display()
        ));
    }
    if rows.is_empty() {
        bail!("no arch selected");
    }
    println!("{:<8} {:<10} {}", "arch", "phase", "this run");
    for r in rows {
        println!("{r}");
    }
    println!("total {}", fmt_duration(started.elapsed()));
    Ok(())
}
