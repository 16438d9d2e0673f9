//! The file an archive is written to: which existing paths may be
//! replaced, the temporary file beside it that receives the archive, and
//! the removal of that temporary file when the writer is stopped.
//!
//! A writer holds an `flock` on its temporary file for as long as it
//! writes. The lock is what tells a live writer's file from the leftover of
//! a killed one (SIGKILL, power loss): the next writer into the same
//! directory removes every temporary file whose lock it can take. SIGINT,
//! SIGTERM and SIGHUP remove the file at once.

use crate::{Entry, EntryKind};
use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

/// Temporary files are `.initramfs-XXXXXX.tmp` beside the output.
const TEMP_PREFIX: &str = ".initramfs-";
const TEMP_SUFFIX: &str = ".tmp";

/// Refuses an output path that is not absent or a regular file this user
/// may replace, and an output that is one of the archive's own inputs
/// (also through a hard or symbolic link): renaming the archive over it
/// would destroy it.
pub(crate) fn check_destination(path: &Path, entries: &[Entry]) -> Result<()> {
    // Following links: an output that resolves to an input is named as such.
    if let Ok(target) = fs::metadata(path) {
        for e in entries {
            if let EntryKind::File { source } = &e.kind {
                if fs::metadata(source).is_ok_and(|s| same_file(&s, &target)) {
                    bail!(
                        "{} is the same file as {}, the archive's /{}; writing the archive there would destroy it: choose another output path",
                        path.display(),
                        source.display(),
                        e.path.trim_start_matches(['/', '.'])
                    );
                }
            }
        }
    }
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "inspecting the output path {}; check that its directory is readable",
                    path.display()
                )
            })
        }
    };
    let kind = meta.file_type();
    let what = if kind.is_symlink() {
        Some("a symbolic link")
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        None
    };
    if let Some(what) = what {
        bail!(
            "{} is {what}; the archive is written only to a new file or over a regular file: choose another output path",
            path.display()
        );
    }
    let c_path = CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{} contains a NUL byte", path.display()))?;
    // SAFETY: access(2) on a NUL-terminated path.
    let writable = unsafe { libc::access(c_path.as_ptr(), libc::W_OK) } == 0;
    if meta.permissions().readonly() || !writable {
        bail!(
            "{} is read-only for you; the archive does not replace a file you may not write: remove it or make it writable first, or choose another output path",
            path.display()
        );
    }
    Ok(())
}

fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// The temporary file an archive is written to, locked and registered for
/// removal on SIGINT/SIGTERM/SIGHUP. Dropped without [`TempOutput::persist`],
/// it is removed.
pub(crate) struct TempOutput {
    /// Taken by `persist`.
    file: Option<tempfile::NamedTempFile>,
    slot: Option<usize>,
}

impl TempOutput {
    /// Removes the temporary files killed writers left in `dir`, then
    /// creates and locks a new one there.
    pub(crate) fn create_in(dir: &Path) -> Result<TempOutput> {
        remove_stale_temp_files(dir);
        install_signal_handlers();
        // A stale-file sweep in another process may take our fresh file
        // before we lock it; then the path no longer names our file and we
        // start over with a new name.
        for _ in 0..16 {
            let file = tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .suffix(TEMP_SUFFIX)
                .tempfile_in(dir)
                .with_context(|| format!("creating a temporary file in {} for the initramfs; check that the directory exists and is writable", dir.display()))?;
            if !try_lock(file.as_file()) {
                continue;
            }
            let ours = file.as_file().metadata().ok();
            let named = fs::symlink_metadata(file.path()).ok();
            if let (Some(a), Some(b)) = (&ours, &named) {
                if same_file(a, b) {
                    let slot = register(file.path());
                    return Ok(TempOutput {
                        file: Some(file),
                        slot,
                    });
                }
            }
        }
        bail!(
            "could not create and lock a temporary file in {}: other processes keep removing them",
            dir.display()
        )
    }

    fn temp(&self) -> &tempfile::NamedTempFile {
        self.file.as_ref().expect("present until persist")
    }

    pub(crate) fn path(&self) -> &Path {
        self.temp().path()
    }

    pub(crate) fn as_file(&self) -> &fs::File {
        self.temp().as_file()
    }

    pub(crate) fn as_file_mut(&mut self) -> &mut fs::File {
        self.file
            .as_mut()
            .expect("present until persist")
            .as_file_mut()
    }

    /// Renames the finished file to `path`.
    pub(crate) fn persist(mut self, path: &Path) -> Result<()> {
        let file = self.file.take().expect("present until persist");
        let result = file.persist(path).map(drop).map_err(|e| e.error);
        // Unregistered only now: until the rename, a signal must remove it.
        unregister(self.slot.take());
        result.with_context(|| format!("renaming the finished initramfs to {}", path.display()))
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        unregister(self.slot.take());
        // Dropping the NamedTempFile removes the file.
        self.file.take();
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: true when taken.
fn try_lock(f: &fs::File) -> bool {
    // SAFETY: flock(2) on a descriptor we own.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Removes `.initramfs-*.tmp` files in `dir` that no live writer holds
/// locked. Best effort: a file that cannot be removed is left alone.
pub(crate) fn remove_stale_temp_files(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)) {
            continue;
        }
        let path = e.path();
        if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let Ok(f) = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        else {
            continue;
        };
        if !try_lock(&f) {
            continue; // a live writer
        }
        // Still the file we locked (not replaced meanwhile)?
        let same = match (f.metadata(), fs::symlink_metadata(&path)) {
            (Ok(a), Ok(b)) => same_file(&a, &b),
            _ => false,
        };
        if same {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Paths to unlink when a termination signal arrives. A fixed table of
/// pointers to leaked-until-unregistered C strings, because a signal
/// handler may only read memory and call async-signal-safe functions.
const SLOTS: usize = 16;
static TEMP_PATHS: [AtomicPtr<libc::c_char>; SLOTS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Registers `path` for removal on a termination signal; `None` when the
/// table is full (the next writer's sweep removes the file then).
fn register(path: &Path) -> Option<usize> {
    let absolute: PathBuf = std::path::absolute(path).ok()?;
    let raw = CString::new(absolute.as_os_str().as_bytes())
        .ok()?
        .into_raw();
    for (i, slot) in TEMP_PATHS.iter().enumerate() {
        if slot
            .compare_exchange(
                std::ptr::null_mut(),
                raw,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
        {
            return Some(i);
        }
    }
    // SAFETY: `raw` came from into_raw above and was not published.
    drop(unsafe { CString::from_raw(raw) });
    None
}

fn unregister(slot: Option<usize>) {
    let Some(i) = slot else { return };
    // With the signals blocked, this thread's handler cannot be reading the
    // string while it is freed.
    let blocked = block_signals();
    let raw = TEMP_PATHS[i].swap(std::ptr::null_mut(), Ordering::SeqCst);
    restore_signals(blocked);
    if !raw.is_null() {
        // SAFETY: `raw` came from CString::into_raw in `register`, and the
        // slot no longer publishes it.
        drop(unsafe { CString::from_raw(raw) });
    }
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: plain signal-mask calls on local sets.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        old
    }
}

fn restore_signals(old: libc::sigset_t) {
    // SAFETY: restores the mask saved by block_signals.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

extern "C" fn remove_temp_files_and_die(sig: libc::c_int) {
    for slot in &TEMP_PATHS {
        let p = slot.load(Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: unlink(2) is async-signal-safe; `p` is a live C string.
            unsafe { libc::unlink(p) };
        }
    }
    // SA_RESETHAND restored the default action: dying of the same signal
    // tells the parent what happened, as if no handler had been installed.
    // SAFETY: raise(3) is async-signal-safe.
    unsafe { libc::raise(sig) };
}

/// Installs the removal handler for SIGINT, SIGTERM and SIGHUP, once, and
/// only for those whose action is still the default: a program that
/// handles them itself keeps its handler.
fn install_signal_handlers() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        for sig in SIGNALS {
            // SAFETY: sigaction(2) with zeroed, then filled, structures.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction != libc::SIG_DFL
                {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = remove_temp_files_and_die as *const () as usize;
                libc::sigemptyset(&mut new.sa_mask);
                new.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
                libc::sigaction(sig, &new, std::ptr::null_mut());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_writers_file_is_kept_and_a_dead_ones_removed() {
        let d = tempfile::tempdir().unwrap();
        let live = TempOutput::create_in(d.path()).unwrap();
        // A killed writer's file: same name pattern, nobody holds its lock.
        let dead = d.path().join(".initramfs-killed.tmp");
        fs::write(&dead, b"half an archive").unwrap();
        let unrelated = d.path().join("initramfs.tmp");
        fs::write(&unrelated, b"not ours").unwrap();

        let next = TempOutput::create_in(d.path()).unwrap();
        assert!(!dead.exists(), "a killed writer's temporary file was kept");
        assert!(live.path().exists(), "a live writer's file was removed");
        assert!(unrelated.exists(), "a file of another name was removed");
        drop(next);
        drop(live);
        let left: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from("initramfs.tmp")]);
    }
}
