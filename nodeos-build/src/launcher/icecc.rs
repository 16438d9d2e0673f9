//! icecream: every compile is preprocessed here and compiled on a farm
//! node inside an *environment*, a tarball of our own gcc, g++, cc1,
//! cc1plus and the assembler they call, so a node compiles with exactly our
//! toolchain whatever it has installed (as Yocto's icecc class does). The
//! environment is made by `icecc-create-env` and cached as a small phase,
//! keyed by the toolchain's key; `ICECC_VERSION` names it for the build.

use super::net::{unix_socket_answers, Endpoint};
use super::Compilers;
use crate::{Env, Key, Phase};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when the environment's contents change for the same toolchain.
const RECIPE_VERSION: u32 = 1;

/// The scheduler's port when `ICECC_SCHEDULER` names none.
const SCHEDULER_PORT: u16 = 8765;

/// The local daemon's TCP port (clients use it when no socket answers).
const DAEMON_PORT: u16 = 10245;

/// icecc refuses smaller environment files.
const MIN_ENV_BYTES: u64 = 500;

/// `icecc-create-env`: on PATH, or where Debian's icecc keeps it.
pub fn create_env_tool() -> Option<PathBuf> {
    crate::host::which("icecc-create-env").or_else(|| {
        let p = PathBuf::from("/usr/lib/icecc/icecc-create-env");
        p.is_file().then_some(p)
    })
}

fn icecc_version() -> String {
    Command::new("icecc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// The key of a toolchain's environment: the toolchain's key and the
/// icecream that packs it.
pub fn key(compilers: &Compilers) -> Key {
    let mut k = Key::new("icecc-env", RECIPE_VERSION);
    k.str("arch", compilers.arch.name())
        .dep("toolchain", &compilers.toolchain_key)
        .str("icecc", &icecc_version());
    k
}

/// The environment tarball of `compilers`, made once per toolchain key and
/// cached in `out/icecc-env/<key>/`.
pub fn environment(env: &Env, compilers: &Compilers) -> Result<PathBuf> {
    let Some(tool) = create_env_tool() else {
        bail!("NODEOS_CC_LAUNCHER=icecc needs icecc-create-env to pack the toolchain; install icecc (`apt-get install icecc`)");
    };
    let phase = Phase::new(env, "icecc-env", Some(compilers.arch), key(compilers));
    let out = phase.run(|ctx| {
        ctx.step("create-env", |ctx| {
            let work = ctx.build_dir().join("work");
            crate::util::remove_path(&work)?;
            crate::util::create_dir_all(&work)?;
            // gcc and g++ given explicitly; cc1, cc1plus and `as` are found
            // by asking the compiler (-print-prog-name), so the target's own
            // assembler goes in, not the host's.
            let mut c = Command::new(&tool);
            c.current_dir(&work).arg(&compilers.cc).arg(&compilers.cxx);
            ctx.run(c)?;
            let made = tarballs(&work)?;
            let [tarball] = made.as_slice() else {
                bail!(
                    "icecc-create-env left {} tarballs in {}, expected one",
                    made.len(),
                    work.display()
                );
            };
            // The file name is the environment's identity on every node:
            // icecc-create-env's content hash, prefixed with our arch.
            let name = format!(
                "nodeos-{}-{}",
                compilers.arch.name(),
                tarball.file_name().expect("a file").to_string_lossy()
            );
            std::fs::rename(tarball, ctx.out_dir().join(&name))
                .with_context(|| format!("moving {} into the output", tarball.display()))?;
            Ok(())
        })
    })?;
    let made = tarballs(&out.dir)?;
    match made.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "{} holds {} environment tarballs, expected one; remove it (`cargo xtask clean`) and retry",
            out.dir.display(),
            made.len()
        ),
    }
}

fn tarballs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            [".tar.gz", ".tar.xz", ".tar.zst", ".tar.bz2", ".tar"]
                .iter()
                .any(|s| n.ends_with(s))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Where icecc clients look for the local daemon, in their order.
pub fn daemon_sockets() -> Vec<PathBuf> {
    if let Some(s) = std::env::var_os("ICECC_TEST_SOCKET") {
        return vec![PathBuf::from(s)];
    }
    let mut v = vec![PathBuf::from("/var/run/icecc/iceccd.socket")];
    if let Some(h) = std::env::var_os("HOME") {
        v.push(PathBuf::from(h).join(".iceccd.socket"));
    }
    v
}

/// Whether a local iceccd answers (its socket, or its TCP port).
fn local_daemon_answers() -> bool {
    daemon_sockets().iter().any(|s| unix_socket_answers(s))
        || (std::env::var_os("ICECC_TEST_SOCKET").is_none()
            && Endpoint {
                host: "127.0.0.1".into(),
                port: DAEMON_PORT,
            }
            .check()
            .is_ok())
}

/// Checks the local daemon and (when `ICECC_SCHEDULER` names it) the
/// scheduler, makes or reuses the environment, and returns
/// `ICECC_VERSION` for the build.
pub(crate) fn prepare(env: &Env, compilers: &Compilers) -> Result<Vec<(String, String)>> {
    if !local_daemon_answers() {
        let tried: Vec<String> = daemon_sockets()
            .iter()
            .map(|s| s.display().to_string())
            .collect();
        bail!("NODEOS_CC_LAUNCHER=icecc but no local iceccd answers (tried {} and 127.0.0.1:{DAEMON_PORT}); start it (`systemctl start iceccd`) or unset NODEOS_CC_LAUNCHER", tried.join(", "));
    }
    if let Ok(s) = std::env::var("ICECC_SCHEDULER") {
        if !s.trim().is_empty() {
            let ep = Endpoint::parse(&s, SCHEDULER_PORT)?;
            if let Err(e) = ep.check() {
                bail!("NODEOS_CC_LAUNCHER=icecc but the scheduler ICECC_SCHEDULER={s} does not answer ({e:#}); start icecc-scheduler there or fix ICECC_SCHEDULER");
            }
        }
    }
    let tarball = environment(env, compilers)?;
    let size = std::fs::metadata(&tarball).map(|m| m.len()).unwrap_or(0);
    if size < MIN_ENV_BYTES {
        bail!(
            "the icecream environment {} is missing or truncated ({size} bytes); remove its dir and retry",
            tarball.display()
        );
    }
    Ok(vec![(
        "ICECC_VERSION".into(),
        tarball.display().to_string(),
    )])
}
