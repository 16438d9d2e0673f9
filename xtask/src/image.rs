//! `cargo xtask image`: fetch → toolchain → node → kernel → initramfs, per
//! arch, as needed and cached; writes `target/nodeos/<arch>/` (bzImage,
//! initramfs, node, manifest.json) and ends with a summary table.
//!
//! `manifest.json` says what the image is made of: every source of each
//! phase built (as `phases::of` declares it for the Node version) with its
//! version, variant and sha256; every output with its size and sha256;
//! each phase's key and this run's time (or `cached`); and the kernel
//! command line the image boots with (`boot`).

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
    #[command(flatten)]
    pub app: crate::app_args::AppArgs,
    #[command(flatten)]
    pub node: crate::NodeSel,
}

/// One arch's finished image.
pub struct Image {
    pub bzimage: PathBuf,
    pub initramfs: PathBuf,
    pub node: node_static::NodeBinary,
    pub phases: Vec<PhaseOutput>,
    pub manifest: PathBuf,
    /// What init (node) must get as `argv[1..]`: the app's entry file, or
    /// nothing for the REPL.
    pub init_args: Vec<String>,
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

pub fn build(
    env: &Env,
    arch: Arch,
    nv: &node_static::NodeVersion,
    user_kernel: Option<&Path>,
    app: Option<&initramfs::App>,
) -> Result<Image> {
    // A bad --kernel must fail before an hour of building, not after.
    if let Some(p) = user_kernel {
        kernel::check_user_bzimage_for(p, arch)?;
    }
    let node = node_static::build(env, arch, nv)?;
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
    let ird = build_initramfs(env, arch, &node.node, &node.output.key, &node_sha, app)?;
    let initramfs = ird.dir.join(initramfs_file_name());
    phases.push(ird.clone());

    let art = env.artifact_dir(arch);
    symlink_force(&bzimage, &art.join("bzImage"))?;
    symlink_force(&initramfs, &art.join(initramfs_file_name()))?;
    symlink_force(&node.node, &art.join("node"))?;
    let manifest = art.join("manifest.json");
    let init_args = app.map(|a| a.init_args()).unwrap_or_default();
    let boot = boot_json(arch, app, &init_args)?;
    write_manifest(
        env,
        arch,
        &manifest,
        &bzimage,
        &initramfs,
        &ird.dir,
        nv,
        &node,
        &node_sha,
        &phases,
        kernel_input,
        boot,
    )?;
    Ok(Image {
        bzimage,
        initramfs,
        node,
        phases,
        manifest,
        init_args,
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
    nv: &node_static::NodeVersion,
    node: &node_static::NodeBinary,
    node_sha: &str,
    phases: &[PhaseOutput],
    user_kernel: serde_json::Value,
    boot: serde_json::Value,
) -> Result<()> {
    let mut inputs = Vec::new();
    // Every source of every phase this image was built from, as the
    // registry declares it for this Node version.
    let decls = crate::phases::of(nv)?;
    for p in phases {
        let Some(decl) = decls.iter().find(|d| d.name == p.name) else {
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
            let cold = nodeos_build::timings::read(&p.dir);
            json!({
                "phase": p.name,
                "key": p.key,
                "this_run": if p.cached { json!("cached") } else { json!(p.wall.as_secs_f64()) },
                "cold_build_secs": cold.map(|t| t.build_secs),
            })
        })
        .collect();
    let doc = json!({ "arch": arch.name(), "node_version": node.version, "boot": boot, "inputs": inputs, "outputs": outputs, "phases": phase_rows });
    write_atomic(path, &serde_json::to_vec_pretty(&doc)?)
}

/// The manifest's `boot` record: the kernel command line this image needs
/// (as `run` passes it: the NIC configured by the kernel, the app's entry
/// after `--`), and the app that is in it.
fn boot_json(
    arch: Arch,
    app: Option<&initramfs::App>,
    init_args: &[String],
) -> Result<serde_json::Value> {
    let mut cfg = qemu_tests::QemuConfig::new(arch, "", "", Path::new(""));
    cfg.network = Some(qemu_tests::Network::default());
    cfg.init_args = init_args.to_vec();
    let app = match app {
        None => serde_json::Value::Null,
        Some(a) => json!({
            "dir": a.dir(),
            "entry": a.guest_entry(),
            "size": a.size(),
            "sha256": a.digest()?,
        }),
    };
    Ok(json!({
        "kernel_cmdline": cfg.kernel_cmdline(),
        "init_argv": std::iter::once("/init".to_string()).chain(init_args.iter().cloned()).collect::<Vec<_>>(),
        "app": app,
    }))
}

pub fn run(common: &Common, a: ImageArgs) -> Result<()> {
    let env = common.env()?;
    let app = a.app.load()?;
    let started = std::time::Instant::now();
    let arches = common.arches();
    check_user_kernel(a.kernel.as_deref(), &arches)?;
    let mut rows = Vec::new();
    for arch in arches {
        let img = build(
            &env,
            arch,
            a.node.version()?,
            a.kernel.as_deref(),
            app.as_ref(),
        )?;
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
    println!("{:<8} {:<10} this run", "arch", "phase");
    for r in rows {
        println!("{r}");
    }
    if let Some(app) = &app {
        println!("app: {}", crate::app_args::describe(app));
    }
    println!("total {}", fmt_duration(started.elapsed()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::process::Command;

    /// A real static x86_64 executable from the host compiler, standing in
    /// for node (the phase only needs a static ELF of the right machine).
    fn static_init(dir: &Path) -> PathBuf {
        let src = dir.join("init.c");
        std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
        let bin = dir.join("init");
        let st = Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&bin)
            .arg(&src)
            .status()
            .expect("gcc runs (install build-essential)");
        assert!(st.success(), "gcc -static failed (libc6-dev installed?)");
        bin
    }

    /// Runs the initramfs phase on `init` (with its real sha256) and
    /// returns the output and the archive's bytes.
    fn archive(env: &Env, init: &Path, key: &str) -> (PhaseOutput, Vec<u8>) {
        let out = build_initramfs(
            env,
            Arch::X86_64,
            init,
            key,
            &sha256_file(init).unwrap(),
            None,
        )
        .unwrap();
        let bytes = std::fs::read(out.dir.join(initramfs_file_name())).unwrap();
        (out, bytes)
    }

    #[test]
    fn same_node_gives_a_byte_identical_initramfs_in_any_cache() {
        let d = tempfile::tempdir().unwrap();
        let root = Env::workspace_root_from(env!("CARGO_MANIFEST_DIR"));
        let init = static_init(d.path());
        let key = "f".repeat(64);

        let env_a = Env::for_tests(&d.path().join("a"), &root);
        let (a, bytes_a) = archive(&env_a, &init, &key);
        assert!(!a.cached);

        // Same node bytes at another path with another mtime, another cache:
        // nothing about the host may leak into the archive.
        let moved = d.path().join("elsewhere-node");
        std::fs::copy(&init, &moved).unwrap();
        let f = std::fs::File::options().write(true).open(&moved).unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1234567))
            .unwrap();
        let env_b = Env::for_tests(&d.path().join("b"), &root);
        let (b, bytes_b) = archive(&env_b, &moved, &key);
        assert!(!b.cached);
        assert!(
            bytes_a == bytes_b,
            "two caches gave different initramfs bytes"
        );

        // Other bytes under the same node key (a rebuild of Node is not
        // bit-reproducible) must not reuse the archive of the old bytes.
        let other = d.path().join("rebuilt-node");
        std::fs::copy(&init, &other).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&other)
            .unwrap()
            .write_all(b"\0")
            .unwrap();
        let (c, c_bytes) = archive(&env_a, &other, &key);
        assert!(!c.cached, "an archive of other init bytes was reused");
        assert_ne!(c_bytes, bytes_a);

        // The same cache again: reused, not rewritten.
        let (again, again_bytes) = archive(&env_a, &init, &key);
        assert!(again.cached);
        assert_eq!(again_bytes, bytes_a);

        // And it holds exactly the NodeOS layout, read back through the
        // real lz4 tool and our reader: /dev, /dev/console (c 5:1), /init.
        assert_eq!(initramfs::DEFAULT_COMPRESSION.name(), "lz4");
        let out = Command::new("lz4")
            .args(["-dc"])
            .arg(a.dir.join(initramfs_file_name()))
            .output()
            .expect("lz4 runs (install lz4)");
        assert!(out.status.success(), "lz4 -dc failed");
        let entries = initramfs::read_archive(&out.stdout).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(names, ["dev", "dev/console", "init"]);
        let console = &entries[1];
        assert_eq!((console.rdevmajor, console.rdevminor), (5, 1));
        assert_eq!(entries[2].data, std::fs::read(&init).unwrap());
    }

    /// Without `--app` the phase key is the one images had before apps
    /// existed, so every cached initramfs stays valid (and its bytes are
    /// the same: see the initramfs crate's `no_app_archive_is_unchanged`).
    #[test]
    fn the_key_without_an_app_is_unchanged() {
        let d = tempfile::tempdir().unwrap();
        let root = Env::workspace_root_from(env!("CARGO_MANIFEST_DIR"));
        let env = Env::for_tests(d.path(), &root);
        let init = static_init(d.path());
        let out = build_initramfs(
            &env,
            Arch::X86_64,
            &init,
            &"e".repeat(64),
            &"f".repeat(64),
            None,
        )
        .unwrap();
        assert_eq!(
            out.key,
            "20bf099aa8df270bcdd9fbfb3229b640b7500644be3ab2a7377cd94a06201d99"
        );
    }

    /// An app goes under /app; its content is part of the key (a changed
    /// file is a new archive), and the archive without it is untouched.
    #[test]
    fn an_app_is_in_the_archive_and_in_the_key() {
        let d = tempfile::tempdir().unwrap();
        let root = Env::workspace_root_from(env!("CARGO_MANIFEST_DIR"));
        let env = Env::for_tests(&d.path().join("cache"), &root);
        let init = static_init(d.path());
        let sha = sha256_file(&init).unwrap();
        let key = "a".repeat(64);
        let dir = d.path().join("app");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("index.js"), "console.log(1)\n").unwrap();
        let app = initramfs::App::scan(&dir, &Default::default()).unwrap();

        let plain = build_initramfs(&env, Arch::X86_64, &init, &key, &sha, None).unwrap();
        let with = build_initramfs(&env, Arch::X86_64, &init, &key, &sha, Some(&app)).unwrap();
        assert_ne!(plain.key, with.key);
        let names = |o: &PhaseOutput| -> Vec<String> {
            let out = Command::new("lz4")
                .args(["-dc"])
                .arg(o.dir.join(initramfs_file_name()))
                .output()
                .expect("lz4 runs (install lz4)");
            initramfs::read_archive(&out.stdout)
                .unwrap()
                .into_iter()
                .map(|e| e.path)
                .collect()
        };
        assert_eq!(names(&plain), ["dev", "dev/console", "init"]);
        assert_eq!(
            names(&with),
            ["app", "app/index.js", "dev", "dev/console", "init"]
        );

        std::fs::write(dir.join("index.js"), "console.log(2)\n").unwrap();
        let changed = initramfs::App::scan(&dir, &Default::default()).unwrap();
        let again = build_initramfs(&env, Arch::X86_64, &init, &key, &sha, Some(&changed)).unwrap();
        assert!(!again.cached, "a changed app reused the old archive");
        assert_ne!(again.key, with.key);
    }

    #[test]
    fn a_dynamic_node_is_refused_by_the_phase() {
        let d = tempfile::tempdir().unwrap();
        let root = Env::workspace_root_from(env!("CARGO_MANIFEST_DIR"));
        let env = Env::for_tests(d.path(), &root);
        let e = build_initramfs(
            &env,
            Arch::X86_64,
            Path::new("/bin/true"),
            &"e".repeat(64),
            &"f".repeat(64),
            None,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("dynamically linked"), "{e:#}");
        // Nothing published: the phase's output dir has no entry.
        let published = env.cache_dir.join("out").join("initramfs");
        let empty = std::fs::read_dir(&published).map_or(true, |mut r| r.next().is_none());
        assert!(
            empty,
            "a refused init left output in {}",
            published.display()
        );
    }
}
