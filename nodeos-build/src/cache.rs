//! Cache layout and locks.
//!
//! ```text
//! $NODEOS_CACHE_DIR/
//!   out/<phase>/<key>/          published outputs: complete or absent
//!   build/<phase>-<arch>-<key16>/ resumable build dirs (+ .nodeos/ stamps)
//!   locks/<phase>-<key16>.lock  one builder per key
//!   ccache/  apt/  selected-variants.json
//! ```

use crate::util::create_dir_all;
use crate::{Arch, Env};
use anyhow::{Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

pub fn out_dir(env: &Env, phase: &str, key: &str) -> PathBuf {
    env.cache_dir.join("out").join(phase).join(key)
}

pub fn build_dir(env: &Env, phase: &str, arch: Option<Arch>, key: &str) -> PathBuf {
    let arch = arch.map_or("host", |a| a.name());
    env.cache_dir
        .join("build")
        .join(format!("{phase}-{arch}-{}", &key[..16]))
}

pub fn ccache_dir(env: &Env) -> PathBuf {
    env.cache_dir.join("ccache")
}

/// An exclusive lock on one cache key, held until dropped.
///
/// The descriptor is deliberately inherited by the build's child processes:
/// if this process is killed, the lock stays held until the last orphaned
/// compiler exits, so a new run never works in a build dir that something
/// is still writing.
pub struct KeyLock {
    _file: File,
    pub path: PathBuf,
}

pub fn lock_key(
    env: &Env,
    phase: &str,
    key: &str,
    what: &str,
    report: &dyn Fn(&str),
) -> Result<KeyLock> {
    let dir = env.cache_dir.join("locks");
    create_dir_all(&dir)?;
    let path = dir.join(format!("{phase}-{}.lock", &key[..16]));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening lock {}", path.display()))?;
    let fd = file.as_raw_fd();
    // SAFETY: plain syscalls on a descriptor we own.
    unsafe {
        if libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            report(&format!(
                "waiting: another run is building {what} (lock {}, held by pid {})",
                path.display(),
                holder.trim()
            ));
            if libc::flock(fd, libc::LOCK_EX) != 0 {
                return Err(std::io::Error::last_os_error()).context("locking the cache key");
            }
        }
        let flags = libc::fcntl(fd, libc::F_GETFD);
        libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
    }
    file.set_len(0).ok();
    file.seek(SeekFrom::Start(0)).ok();
    let _ = write!(file, "{}", std::process::id());
    Ok(KeyLock { _file: file, path })
}

/// Removes published outputs and build dirs (`clean`), keeping downloads.
pub fn clean(env: &Env, phases: &[&str], keep_downloads: bool) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let mut targets = Vec::new();
    for p in phases {
        targets.push(env.cache_dir.join("out").join(p));
        if let Ok(rd) = fs::read_dir(env.cache_dir.join("build")) {
            for e in rd.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{p}-"))
                {
                    targets.push(e.path());
                }
            }
        }
    }
    targets.push(env.cache_dir.join("trash"));
    if !keep_downloads {
        targets.push(env.dl_dir.clone());
    }
    for t in targets {
        if t.exists() {
            crate::util::remove_path(&t)?;
            removed.push(t);
        }
    }
    Ok(removed)
}
