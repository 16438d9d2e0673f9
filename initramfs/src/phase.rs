//! The initramfs phase: `/dev`, `/dev/console`, `/init` = a static init
//! (node), and a user's app under `/app` when there is one; cached by the
//! init's phase key and bytes (and the app's content), so the same inputs
//! give the same archive without work.

use crate::{app_layout, nodeos_layout, write_archive_to_path, App, Options, DEFAULT_COMPRESSION};
use anyhow::Result;
use nodeos_build::driver::{self, names, Phase};
use nodeos_build::publish::Outputs;
use nodeos_build::util::{fmt_size, write_atomic};
use nodeos_build::{elf, Arch, Env, Key, PhaseDecl, PhaseOutput, Sources, StepCtx};
use std::path::Path;

/// The phase's name in the cache, logs and timings.
pub const PHASE: &str = names::INITRAMFS;

/// Bump when the step below changes what it writes.
const RECIPE_VERSION: u32 = 2;

/// The archive's file name in the phase's output and in
/// `target/nodeos/<arch>/`.
pub fn file_name() -> String {
    format!("initramfs.cpio{}", DEFAULT_COMPRESSION.file_extension())
}

/// The initramfs phase: no sources of its own; its init is node's output.
pub fn decl() -> PhaseDecl {
    PhaseDecl {
        name: PHASE.into(),
        sources: Vec::new(),
        depends: vec![names::NODE.into()],
        host_tools: Vec::new(),
    }
}

struct InitramfsPhase<'a> {
    arch: Arch,
    init: &'a Path,
    init_key: &'a str,
    init_sha: &'a str,
    app: Option<&'a App>,
    opts: Options,
}

impl Phase for InitramfsPhase<'_> {
    type Output = PhaseOutput;

    fn decl(&self) -> PhaseDecl {
        decl()
    }

    fn arch(&self) -> Option<Arch> {
        Some(self.arch)
    }

    fn key(&self, _env: &Env, _sources: &Sources) -> Result<Key> {
        key(
            self.arch,
            self.init_key,
            self.init_sha,
            &self.opts,
            self.app,
        )
    }

    fn outputs(&self) -> Outputs {
        Outputs::named(&[&file_name(), "uncompressed-size"])
    }

    fn steps(&self, ctx: &mut StepCtx, _sources: &Sources) -> Result<()> {
        ctx.step("write", |ctx| {
            elf::check_static(self.init, self.arch)?;
            let out = ctx.out_dir().join(file_name());
            let layout = match self.app {
                Some(app) => app_layout(self.init, app),
                None => nodeos_layout(self.init),
            };
            let stats = write_archive_to_path(&layout, &self.opts, &out)?;
            ctx.log(&format!(
                "wrote {} ({} entries, {} uncompressed, {} written)",
                out.display(),
                stats.entries,
                fmt_size(stats.bytes_uncompressed),
                fmt_size(stats.bytes_written)
            ));
            write_atomic(
                &ctx.out_dir().join("uncompressed-size"),
                stats.bytes_uncompressed.to_string().as_bytes(),
            )
        })
    }

    fn output(&self, out: PhaseOutput, _sources: &Sources) -> Result<PhaseOutput> {
        Ok(out)
    }
}

/// The phase's key.
fn key(
    arch: Arch,
    init_key: &str,
    init_sha: &str,
    opts: &Options,
    app: Option<&App>,
) -> Result<Key> {
    // The init's bytes, not only its phase key: a Node build is not
    // bit-reproducible (a rebuild of the same key gives another binary),
    // and the archive must hold the node the manifest names.
    let mut k = Key::new(PHASE, RECIPE_VERSION);
    k.str("arch", arch.name())
        .dep("init", init_key)
        .str("init.sha256", init_sha)
        .str("compression", opts.compression.name());
    // xz and zstd are the host's programs, and another version may write
    // other bytes. Only for them, so that the other compressions keep
    // their keys; a missing program stops the phase here, before any work.
    if let Some(compressor) = opts.compression.host_compressor() {
        k.str("compressor", &compressor.version()?);
    }
    k.str("mtime", &opts.mtime.to_string());
    // Only with an app, so that an image without one keeps its key.
    if let Some(app) = app {
        k.str("app.sha256", &app.digest()?);
    }
    Ok(k)
}

/// Builds (or reuses) the initramfs around `init` for `arch`, with the app
/// under `/app` when there is one. `init_key` is the key of the phase that
/// made `init`, `init_sha` the sha256 of its bytes (the caller has it: the
/// manifest names it too).
pub fn build(
    env: &Env,
    arch: Arch,
    init: &Path,
    init_key: &str,
    init_sha: &str,
    app: Option<&App>,
) -> Result<PhaseOutput> {
    driver::build(
        env,
        InitramfsPhase {
            arch,
            init,
            init_key,
            init_sha,
            app,
            opts: Options::from_env()?,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Compression;

    #[test]
    fn the_key_names_the_compressor_version_only_for_xz_and_zstd() {
        let key = |compression| {
            let opts = Options {
                mtime: 0,
                compression,
            };
            key(Arch::X86_64, &"1".repeat(64), &"2".repeat(64), &opts, None).unwrap()
        };
        for c in Compression::ALL {
            let k = key(c);
            let named: Vec<&String> = k
                .inputs
                .iter()
                .filter(|i| i.starts_with("compressor = "))
                .collect();
            match c.host_compressor() {
                Some(h) => {
                    let version = h.version().unwrap_or_else(|e| panic!("{e:#}"));
                    assert_eq!(named, [&format!("compressor = {version}")], "{c}");
                }
                None => assert!(named.is_empty(), "{c}: {named:?}"),
            }
            // The same inputs give the same key.
            assert_eq!(k.hex(), key(c).hex(), "{c}");
        }
    }
}
