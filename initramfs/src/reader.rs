//! A strict reader for uncompressed newc archives: used by the tests and to
//! verify a finished archive. It accepts what the kernel accepts and is
//! stricter where our writer is (zero check field, zero padding, a trailer,
//! only zeros after it), so that any sloppiness in the writer shows up.

use crate::newc::{self, HEADER_LEN, S_IFBLK, S_IFCHR, S_IFLNK, S_IFMT, S_IFREG, TRAILER_NAME};
use anyhow::{bail, Context, Result};

/// One record as read, trailer excluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadEntry {
    pub path: String,
    pub ino: u32,
    /// Type and permission bits (`S_IFxxx | perms`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub devmajor: u32,
    pub devminor: u32,
    pub rdevmajor: u32,
    pub rdevminor: u32,
    /// File contents, or the symlink target as stored (with its NUL).
    pub data: Vec<u8>,
}

impl ReadEntry {
    /// `S_IFxxx` bits of [`ReadEntry::mode`].
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }

    /// Permission bits of [`ReadEntry::mode`].
    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }

    /// The target of a symlink, without the stored terminating NUL.
    pub fn symlink_target(&self) -> Option<&[u8]> {
        (self.file_type() == S_IFLNK).then(|| self.data.strip_suffix(b"\0").unwrap_or(&self.data))
    }
}

/// Parses an uncompressed newc archive. Errors name the byte offset and
/// the problem.
pub fn read_archive(bytes: &[u8]) -> Result<Vec<ReadEntry>> {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    loop {
        let at = pos;
        let ctx = || format!("cpio record at byte offset {at}");
        let header = range(bytes, pos, HEADER_LEN).with_context(|| {
            format!(
                "archive ends at byte {} without a {TRAILER_NAME} record",
                bytes.len()
            )
        })?;
        if &header[..6] != newc::MAGIC {
            bail!(
                "{}: magic is {:?}, expected \"070701\" (newc without checksum)",
                ctx(),
                String::from_utf8_lossy(&header[..6])
            );
        }
        let mut f = [0u32; 13];
        for (i, v) in f.iter_mut().enumerate() {
            *v = parse_hex(&header[6 + 8 * i..14 + 8 * i]).with_context(ctx)?;
        }
        let [ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check] =
            f;
        if check != 0 {
            bail!(
                "{}: check field is {check:#x}, must be 0 for magic 070701",
                ctx()
            );
        }
        pos += HEADER_LEN;

        let namesize = namesize as usize;
        if namesize == 0 {
            bail!(
                "{}: name size is 0 (must include the terminating NUL)",
                ctx()
            );
        }
        let name = range(bytes, pos, namesize)
            .with_context(|| format!("{}: name runs past the end of the archive", ctx()))?;
        let (nul, name) = name.split_last().expect("namesize >= 1");
        if *nul != 0 || name.contains(&0) {
            bail!("{}: name is not a single NUL-terminated string", ctx());
        }
        let name = std::str::from_utf8(name)
            .with_context(|| format!("{}: name is not UTF-8", ctx()))?
            .to_string();
        pos += namesize;
        pos = skip_padding(bytes, pos)
            .with_context(|| format!("{} ({name:?}): padding after the name", ctx()))?;

        let filesize = filesize as usize;
        let type_bits = mode & S_IFMT;
        if filesize != 0 && type_bits != S_IFREG && type_bits != S_IFLNK {
            bail!("{} ({name:?}): file size {filesize} on an entry that is neither a regular file nor a symlink", ctx());
        }
        if (rdevmajor, rdevminor) != (0, 0) && type_bits != S_IFCHR && type_bits != S_IFBLK {
            bail!("{} ({name:?}): device number {rdevmajor}:{rdevminor} on an entry that is not a device", ctx());
        }
        let data = range(bytes, pos, filesize)
            .with_context(|| {
                format!(
                    "{} ({name:?}): {filesize} bytes of data run past the end of the archive",
                    ctx()
                )
            })?
            .to_vec();
        pos += filesize;
        pos = skip_padding(bytes, pos)
            .with_context(|| format!("{} ({name:?}): padding after the data", ctx()))?;

        if name == TRAILER_NAME {
            if let Some(off) = bytes[pos..].iter().position(|&b| b != 0) {
                bail!(
                    "non-zero byte at offset {} after the {TRAILER_NAME} record",
                    pos + off
                );
            }
            return Ok(entries);
        }
        entries.push(ReadEntry {
            path: name,
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            devmajor,
            devminor,
            rdevmajor,
            rdevminor,
            data,
        });
    }
}

/// `bytes[pos..pos + len]`, or None if out of bounds (without overflowing).
fn range(bytes: &[u8], pos: usize, len: usize) -> Option<&[u8]> {
    bytes.get(pos..pos.checked_add(len)?)
}

fn parse_hex(field: &[u8]) -> Result<u32> {
    let mut v = 0u32;
    for &b in field {
        let d = (b as char).to_digit(16).with_context(|| {
            format!(
                "header field {:?} is not 8 hex digits",
                String::from_utf8_lossy(field)
            )
        })?;
        v = v << 4 | d;
    }
    Ok(v)
}

/// Skips the NUL padding up to the next multiple of 4, checking it is NUL.
fn skip_padding(bytes: &[u8], pos: usize) -> Result<usize> {
    let end = pos + newc::pad4(pos as u64);
    let pad = bytes
        .get(pos..end)
        .context("archive truncated inside padding")?;
    if pad.iter().any(|&b| b != 0) {
        bail!("padding at byte offset {pos} is not NUL");
    }
    Ok(end)
}
