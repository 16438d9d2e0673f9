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
use std::collections::BTreeSet;
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
    let (mut file, path) = open_lock_file(env, phase, &key[..16])?;
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

/// `locks/<phase>-<key16>.lock`, created if missing.
fn open_lock_file(env: &Env, phase: &str, key16: &str) -> Result<(File, PathBuf)> {
    let dir = env.cache_dir.join("locks");
    create_dir_all(&dir)?;
    let path = dir.join(format!("{phase}-{key16}.lock"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening lock {}", path.display()))?;
    Ok((file, path))
}

/// Takes the lock of a key without waiting: `None` while another run
/// holds it (its pid is in the file).
fn try_lock(env: &Env, phase: &str, key16: &str) -> Result<Option<File>> {
    let (file, _) = open_lock_file(env, phase, key16)?;
    // SAFETY: a plain syscall on a descriptor we own.
    let got = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    Ok(got.then_some(file))
}

/// What `clean` did.
#[derive(Debug, Default)]
pub struct Cleaned {
    pub removed: Vec<PathBuf>,
    /// Dirs left alone because a running build or fetch holds their lock.
    pub busy: Vec<PathBuf>,
}

/// Removes published outputs and build dirs of `phases` for `arches`
/// (`clean`). The ccache dir is kept. A key whose lock is held (a build is
/// running) is skipped, never pulled out from under the build.
///
/// With `downloads` (the file names the source manifests declare), the
/// download dir loses those files and the scratch dirs of fetches that are
/// not running, and nothing else: `NODEOS_DL_DIR` may be a directory
/// shared with other files. The download dir itself goes only when it is
/// the default one inside the cache and nothing else is left in it.
pub fn clean(
    env: &Env,
    phases: &[&str],
    arches: &[Arch],
    downloads: Option<&BTreeSet<String>>,
) -> Result<Cleaned> {
    let mut done = Cleaned::default();
    let selected = |arch: &str| arch == "host" || arches.iter().any(|a| a.name() == arch);
    // (phase, key16, dir) of everything that matches.
    let mut targets: Vec<(&str, String, PathBuf)> = Vec::new();
    for &phase in phases {
        for e in read_dir_sorted(&env.cache_dir.join("out").join(phase)) {
            let key = e
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // The arch is recorded in the output's timings; an output
            // without them is incomplete anyway and goes.
            let arch = crate::timings::read(&e).map(|t| t.arch);
            if arch.as_deref().is_none_or(&selected) && key.len() >= 16 {
                targets.push((phase, key[..16].to_string(), e));
            }
        }
        for e in read_dir_sorted(&env.cache_dir.join("build")) {
            let name = e
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // <phase>-<arch>-<key16>
            let Some(rest) = name.strip_prefix(&format!("{phase}-")) else {
                continue;
            };
            let Some((arch, key16)) = rest.rsplit_once('-') else {
                continue;
            };
            if selected(arch) {
                targets.push((phase, key16.to_string(), e));
            }
        }
    }
    for (phase, key16, dir) in targets {
        match try_lock(env, phase, &key16)? {
            Some(_held_while_removing) => {
                crate::util::remove_path(&dir)?;
                done.removed.push(dir);
            }
            None => done.busy.push(dir),
        }
    }
    let trash = env.cache_dir.join("trash");
    if trash.exists() {
        crate::util::remove_path(&trash)?;
        done.removed.push(trash);
    }
    if let Some(files) = downloads {
        clean_downloads(env, files, &mut done)?;
    }
    Ok(done)
}

/// The download-dir half of [`clean`].
fn clean_downloads(env: &Env, files: &BTreeSet<String>, done: &mut Cleaned) -> Result<()> {
    let dl = &env.dl_dir;
    for name in files {
        // Manifest names are plain file names; anything else is not ours
        // to resolve against a shared directory.
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            continue;
        }
        let p = dl.join(name);
        if fs::symlink_metadata(&p).is_ok_and(|m| !m.is_dir()) {
            fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            done.removed.push(p);
        }
    }
    let root = crate::fetch::scratch_root(dl);
    let sweep = crate::fetch::remove_stale_scratch(&root);
    done.removed.extend(sweep.removed);
    done.busy.extend(sweep.live);
    // The scratch root is the project's own; it goes once empty.
    if fs::remove_dir(&root).is_ok() {
        done.removed.push(root);
    }
    if *dl == env.cache_dir.join("dl") && fs::remove_dir(dl).is_ok() {
        done.removed.push(dl.clone());
    }
    Ok(())
}

fn read_dir_sorted(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}
