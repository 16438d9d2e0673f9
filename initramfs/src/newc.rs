//! The cpio "newc" record format, written exactly as the kernel's
//! `usr/gen_init_cpio.c` (Linux 6.1) writes it.
//!
//! A record is a 110-byte ASCII header (`070701` and 13 fields of 8
//! upper-case hex digits), the NUL-terminated name padded with NUL so that
//! header + name is a multiple of 4 bytes, then the data padded to a
//! multiple of 4. The archive ends with a `TRAILER!!!` record and is padded
//! with NUL to a multiple of 512 bytes.
//!
//! Field conventions (all of them gen_init_cpio's, so that the kernel's own
//! tool is a byte-exact reference for our output):
//!
//! | field      | value                                                   |
//! |------------|---------------------------------------------------------|
//! | ino        | [`FIRST_INO`] (721), +1 per entry in archive order       |
//! | mode       | file type bits (`S_IFxxx`) + permission bits            |
//! | uid, gid   | 0                                                       |
//! | nlink      | 2 for directories, 1 otherwise                          |
//! | mtime      | the archive timestamp, for every entry                  |
//! | filesize   | file size; symlink target length + 1 (target and NUL); else 0 |
//! | devmajor/devminor | [`DEV_MAJOR`]:[`DEV_MINOR`] = 3:1                |
//! | rdevmajor/rdevminor | device number for device nodes; else 0         |
//! | check      | 0 (magic `070701` has no checksum)                      |
//!
//! Two of these differ from what `stat` would say on a real filesystem, and
//! neither matters to any reader: directory nlink is always 2 (the kernel
//! and GNU cpio use nlink only to detect hard links among non-directories),
//! and devmajor:devminor is 3:1 (gen_init_cpio's fixed value, the historic
//! `/dev/hda1`; it only matters together with nlink ≥ 2, which we never
//! write for a non-directory).
//!
//! The one place gen_init_cpio 6.1 takes a value from the host is a regular
//! file's mtime (it uses the file's own mtime, not `-t`); we use the archive
//! timestamp for files too, which is what makes the output reproducible.

use crate::{Entry, EntryKind};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

pub const MAGIC: &[u8; 6] = b"070701";
pub const HEADER_LEN: usize = 110;
/// gen_init_cpio's first inode number.
pub const FIRST_INO: u32 = 721;
/// gen_init_cpio's devmajor:devminor for every entry but the trailer.
pub const DEV_MAJOR: u32 = 3;
pub const DEV_MINOR: u32 = 1;
pub const TRAILER_NAME: &str = "TRAILER!!!";
/// The archive is padded to a multiple of this (as gen_init_cpio does).
pub const BLOCK: u64 = 512;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;

/// Size of each read from a source file: large enough that syscall
/// overhead is negligible, small enough that a 100 MB file is never in
/// memory.
const COPY_CHUNK: usize = 256 * 1024;

/// The 13 header fields, in on-disk order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub filesize: u32,
    pub devmajor: u32,
    pub devminor: u32,
    pub rdevmajor: u32,
    pub rdevminor: u32,
    pub namesize: u32,
    pub check: u32,
}

impl Header {
    pub fn fields(&self) -> [u32; 13] {
        [
            self.ino,
            self.mode,
            self.uid,
            self.gid,
            self.nlink,
            self.mtime,
            self.filesize,
            self.devmajor,
            self.devminor,
            self.rdevmajor,
            self.rdevminor,
            self.namesize,
            self.check,
        ]
    }

    /// The 110 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut buf = [0u8; HEADER_LEN];
        buf[..6].copy_from_slice(MAGIC);
        for (i, field) in self.fields().iter().enumerate() {
            for (j, b) in buf[6 + 8 * i..14 + 8 * i].iter_mut().enumerate() {
                *b = HEX[((field >> (28 - 4 * j)) & 0xf) as usize];
            }
        }
        buf
    }
}

/// Zero bytes needed after `len` bytes to reach a multiple of 4.
pub fn pad4(len: u64) -> usize {
    ((4 - len % 4) % 4) as usize
}

/// Writes header, name, NUL and padding. Every record starts 4-aligned, so
/// aligning header + name (as gen_init_cpio's `push_rest` does) aligns the
/// stream.
fn write_header_and_name(out: &mut impl Write, header: &Header, name: &str) -> io::Result<u64> {
    debug_assert_eq!(header.namesize as usize, name.len() + 1);
    out.write_all(&header.encode())?;
    out.write_all(name.as_bytes())?;
    let len = (HEADER_LEN + name.len() + 1) as u64;
    let pad = pad4(len);
    out.write_all(&[0u8; 4][..1 + pad])?;
    Ok(len + pad as u64)
}

/// Checks every regular-file source before anything is written, so that the
/// common mistakes (missing file, a directory, a file too large for newc)
/// fail early with a clear message. [`write_entries`] re-checks on the open
/// file, which is the check that counts.
pub(crate) fn preflight(plan: &[Entry]) -> Result<()> {
    for e in plan {
        if let EntryKind::File { source } = &e.kind {
            let meta = std::fs::metadata(source).with_context(|| {
                format!("initramfs entry {:?}: cannot read source file {}; check that it exists and is readable", e.path, source.display())
            })?;
            check_source_metadata(&e.path, source, &meta)?;
        }
    }
    Ok(())
}

fn check_source_metadata(name: &str, source: &Path, meta: &std::fs::Metadata) -> Result<u32> {
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else if meta.file_type().is_symlink() {
            "a symlink"
        } else {
            "not a regular file (a device, FIFO or socket)"
        };
        bail!(
            "initramfs entry {name:?}: source {} is {what}; a File entry needs a regular file (use a Dir/CharDev/BlockDev/Symlink entry for other kinds)",
            source.display()
        );
    }
    u32::try_from(meta.len()).map_err(|_| {
        anyhow::anyhow!(
            "initramfs entry {name:?}: source {} is {} bytes; the newc format holds at most 4294967295 bytes per file",
            source.display(),
            meta.len()
        )
    })
}

/// Writes the records of `plan` (already normalized) and the trailer;
/// returns nothing because the caller counts bytes itself.
pub(crate) fn write_entries(plan: &[Entry], mtime: u32, out: &mut impl Write) -> Result<()> {
    let mut offset = 0u64;
    let mut buf = vec![0u8; COPY_CHUNK];
    for (i, e) in plan.iter().enumerate() {
        let ino = u32::try_from(i)
            .ok()
            .and_then(|i| FIRST_INO.checked_add(i))
            .context("too many initramfs entries for 32-bit inode numbers")?;
        let mut h = Header {
            ino,
            mode: e.mode,
            nlink: 1,
            mtime,
            devmajor: DEV_MAJOR,
            devminor: DEV_MINOR,
            namesize: e.path.len() as u32 + 1,
            ..Header::default()
        };
        let io_ctx = || format!("writing initramfs entry {:?}", e.path);
        match &e.kind {
            EntryKind::Dir => {
                h.mode |= S_IFDIR;
                h.nlink = 2;
                offset += write_header_and_name(out, &h, &e.path).with_context(io_ctx)?;
            }
            EntryKind::CharDev { major, minor } | EntryKind::BlockDev { major, minor } => {
                h.mode |= if matches!(e.kind, EntryKind::CharDev { .. }) {
                    S_IFCHR
                } else {
                    S_IFBLK
                };
                h.rdevmajor = *major;
                h.rdevminor = *minor;
                offset += write_header_and_name(out, &h, &e.path).with_context(io_ctx)?;
            }
            EntryKind::Symlink { target } => {
                h.mode |= S_IFLNK;
                // Target plus NUL, like gen_init_cpio; the kernel and GNU
                // cpio both stop at the NUL.
                h.filesize = target.len() as u32 + 1;
                offset += write_header_and_name(out, &h, &e.path).with_context(io_ctx)?;
                out.write_all(target.as_bytes()).with_context(io_ctx)?;
                let pad = pad4(u64::from(h.filesize));
                out.write_all(&[0u8; 4][..1 + pad]).with_context(io_ctx)?;
                offset += u64::from(h.filesize) + pad as u64;
            }
            EntryKind::File { source } => {
                h.mode |= S_IFREG;
                offset += write_file(out, &mut h, &e.path, source, &mut buf)?;
            }
        }
        debug_assert_eq!(
            offset % 4,
            0,
            "record of {:?} left the stream unaligned",
            e.path
        );
    }

    // The trailer is all zeros but for nlink 1 and its name (not even the
    // timestamp: gen_init_cpio writes mtime 0 here).
    let trailer = Header {
        nlink: 1,
        namesize: TRAILER_NAME.len() as u32 + 1,
        ..Header::default()
    };
    offset += write_header_and_name(out, &trailer, TRAILER_NAME)
        .context("writing the initramfs trailer")?;
    let pad = (BLOCK - offset % BLOCK) % BLOCK;
    out.write_all(&[0u8; BLOCK as usize][..pad as usize])
        .context("writing the initramfs trailer")?;
    Ok(())
}

/// Writes one regular file record, streaming the contents. The size in the
/// header comes from `fstat` on the opened file; exactly that many bytes
/// must then be readable and no more, and size and mtime must be unchanged
/// afterwards. Anything else means the file changed under us, and the
/// archive would be corrupt or inconsistent, so it is an error.
fn write_file(
    out: &mut impl Write,
    h: &mut Header,
    name: &str,
    source: &Path,
    buf: &mut [u8],
) -> Result<u64> {
    let disp = source.display();
    // O_NONBLOCK: if the path was swapped for a FIFO since preflight, open
    // must not hang waiting for a writer; the fstat check below rejects it.
    // It has no effect on regular files.
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(source)
        .with_context(|| format!("initramfs entry {name:?}: cannot open source file {disp}"))?;
    let before = file
        .metadata()
        .with_context(|| format!("initramfs entry {name:?}: cannot stat source file {disp}"))?;
    h.filesize = check_source_metadata(name, source, &before)?;

    let io_ctx = || format!("writing initramfs entry {name:?}");
    let mut written = write_header_and_name(out, h, name).with_context(io_ctx)?;
    let size = u64::from(h.filesize);
    let mut remaining = size;
    while remaining > 0 {
        let want = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let n = read_retrying(&mut file, &mut buf[..want])
            .with_context(|| format!("initramfs entry {name:?}: reading {disp}"))?;
        if n == 0 {
            bail!(
                "initramfs entry {name:?}: {disp} shrank while it was being archived (it was {size} bytes, only {} could be read); make sure nothing writes to it during the build and retry",
                size - remaining
            );
        }
        out.write_all(&buf[..n]).with_context(io_ctx)?;
        remaining -= n as u64;
    }
    if read_retrying(&mut file, &mut buf[..1])
        .with_context(|| format!("initramfs entry {name:?}: reading {disp}"))?
        != 0
    {
        bail!(
            "initramfs entry {name:?}: {disp} grew while it was being archived (it was {size} bytes when the header was written); make sure nothing writes to it during the build and retry"
        );
    }
    let after = file
        .metadata()
        .with_context(|| format!("initramfs entry {name:?}: cannot stat source file {disp}"))?;
    if after.len() != before.len()
        || (after.mtime(), after.mtime_nsec()) != (before.mtime(), before.mtime_nsec())
    {
        bail!(
            "initramfs entry {name:?}: {disp} was modified while it was being archived; make sure nothing writes to it during the build and retry"
        );
    }
    let pad = pad4(size);
    out.write_all(&[0u8; 4][..pad]).with_context(io_ctx)?;
    written += size + pad as u64;
    Ok(written)
}

fn read_retrying(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_encoding_matches_gen_init_cpio_printf() {
        let h = Header {
            ino: 721,
            mode: 0o40755,
            nlink: 2,
            mtime: 0x12ab,
            devmajor: 3,
            devminor: 1,
            namesize: 4,
            ..Header::default()
        };
        let enc = h.encode();
        // gen_init_cpio: sprintf("%s%08X%08X%08lX%08lX%08X%08lX%08X%08X%08X%08X%08X%08X%08X", ...)
        let expected = format!(
            "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            721, 0o40755, 0, 0, 2, 0x12ab, 0, 3, 1, 0, 0, 4, 0
        );
        assert_eq!(std::str::from_utf8(&enc).unwrap(), expected);
        assert!(expected.contains("000002D1000041ED"));
    }

    #[test]
    fn pad4_values() {
        assert_eq!([0, 1, 2, 3, 4, 5].map(pad4), [0, 3, 2, 1, 0, 3]);
    }

    #[test]
    fn name_padding_aligns_header_plus_name() {
        for len in 1..20 {
            let name = "x".repeat(len);
            let h = Header {
                namesize: len as u32 + 1,
                ..Header::default()
            };
            let mut v = Vec::new();
            let n = write_header_and_name(&mut v, &h, &name).unwrap();
            assert_eq!(n as usize, v.len());
            assert_eq!(v.len() % 4, 0);
            assert!(v.len() - (HEADER_LEN + len + 1) < 4);
        }
    }
}
