//! Recognising an x86 bzImage from its boot header, for kernels users bring
//! themselves (`--kernel PATH`): a wrong file should fail at once with one
//! clear line, not as a silent QEMU hang.
//!
//! Offsets are those of the x86 boot protocol
//! (Documentation/x86/boot.rst): the real-mode header sits in the first
//! sectors of the image.

use anyhow::{bail, Context, Result};
use nodeos_build::arch::KernelImageFormat;
use nodeos_build::Arch;
use std::io::Read;
use std::path::Path;

/// `boot_flag`: the classic boot sector signature 0xAA55 (bytes 55 AA).
const BOOT_FLAG_AT: usize = 0x1FE;
/// `header`: the magic "HdrS" of boot protocol 2.00 and later.
const HEADER_AT: usize = 0x202;
/// `version`: boot protocol version, major in the high byte.
const VERSION_AT: usize = 0x206;
/// `loadflags`: bit 0 (LOADED_HIGH) marks a bzImage rather than a zImage.
const LOADFLAGS_AT: usize = 0x211;
/// `xloadflags` (protocol 2.12+): bit 0 (XLF_KERNEL_64) is set only by
/// x86_64 kernels, which have a 64-bit entry point.
const XLOADFLAGS_AT: usize = 0x236;
/// Bytes needed to read every field above.
const HEADER_LEN: usize = XLOADFLAGS_AT + 2;

/// What the boot header says about a bzImage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BzImageInfo {
    /// Boot protocol version (major, minor), e.g. (2, 15).
    pub protocol: (u8, u8),
    /// Built for x86_64 (boots only 64-bit userspace and only on a 64-bit
    /// CPU); false for an i386 kernel.
    pub is_64bit: bool,
    pub size: u64,
}

impl BzImageInfo {
    /// The arch whose userspace this kernel runs: the bzImage target of
    /// the kernel's word size.
    pub fn arch(&self) -> Option<Arch> {
        let class = if self.is_64bit { 64 } else { 32 };
        Arch::all().into_iter().find(|a| {
            a.target().kernel_image.format == KernelImageFormat::Bzimage && a.elf_class() == class
        })
    }
}

/// Reads the boot header; the error is one line naming the file and what is
/// wrong with it.
pub fn bzimage_info(path: &Path) -> Result<BzImageInfo> {
    let shown = path.display();
    let mut f = std::fs::File::open(path).with_context(|| format!("kernel {shown}"))?;
    let size = f
        .metadata()
        .with_context(|| format!("kernel {shown}"))?
        .len();
    let mut head = Vec::with_capacity(HEADER_LEN);
    f.by_ref()
        .take(HEADER_LEN as u64)
        .read_to_end(&mut head)
        .with_context(|| format!("reading kernel {shown}"))?;
    let hint = "pass the kernel build's arch/x86/boot/bzImage";
    if head.starts_with(b"\x7fELF") {
        bail!("{shown} is an ELF file (a vmlinux?), not an x86 bzImage; {hint}");
    }
    if head.len() < HEADER_LEN {
        bail!(
            "{shown} is not an x86 bzImage: only {size} bytes, too short for a boot header; {hint}"
        );
    }
    if head[BOOT_FLAG_AT..BOOT_FLAG_AT + 2] != [0x55, 0xAA] {
        bail!("{shown} is not an x86 bzImage: no boot signature 55 AA at offset 0x1FE; {hint}");
    }
    if &head[HEADER_AT..HEADER_AT + 4] != b"HdrS" {
        bail!("{shown} is not an x86 bzImage: no \"HdrS\" boot header at offset 0x202 (a pre-2.00 boot protocol image or another boot sector); {hint}");
    }
    let version = u16::from_le_bytes([head[VERSION_AT], head[VERSION_AT + 1]]);
    if head[LOADFLAGS_AT] & 1 == 0 {
        bail!("{shown} is a zImage (loaded low), not a bzImage; {hint}");
    }
    let xloadflags = u16::from_le_bytes([head[XLOADFLAGS_AT], head[XLOADFLAGS_AT + 1]]);
    Ok(BzImageInfo {
        protocol: ((version >> 8) as u8, version as u8),
        is_64bit: version >= 0x020C && xloadflags & 1 == 1,
        size,
    })
}

/// Checks that `path` is an x86 bzImage (for `--kernel PATH`).
pub fn check_user_bzimage(path: &Path) -> Result<()> {
    bzimage_info(path).map(|_| ())
}

/// Checks that `path` is an x86 bzImage that runs `arch`'s userspace: an
/// x86_64 kernel cannot boot under qemu-system-i386, and an i386 kernel
/// cannot run the x86_64 node.
pub fn check_user_bzimage_for(path: &Path, arch: Arch) -> Result<()> {
    let info = bzimage_info(path)?;
    let bits = if info.is_64bit { 64 } else { 32 };
    match info.arch() {
        Some(found) if found == arch => Ok(()),
        Some(found) => bail!(
            "{} is an {found} kernel, but it is to boot the {arch} system; pass an {arch} bzImage (or use --arch {found})",
            path.display(),
        ),
        None => bail!(
            "{} is a {bits}-bit bzImage, but no target boots one; pass an {arch} bzImage",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic image with the fields the checks read.
    fn image(version: u16, loadflags: u8, xloadflags: u16) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[BOOT_FLAG_AT] = 0x55;
        b[BOOT_FLAG_AT + 1] = 0xAA;
        b[HEADER_AT..HEADER_AT + 4].copy_from_slice(b"HdrS");
        b[VERSION_AT..VERSION_AT + 2].copy_from_slice(&version.to_le_bytes());
        b[LOADFLAGS_AT] = loadflags;
        b[XLOADFLAGS_AT..XLOADFLAGS_AT + 2].copy_from_slice(&xloadflags.to_le_bytes());
        b
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn err(p: &Path) -> String {
        let e = format!("{:#}", check_user_bzimage(p).unwrap_err());
        assert!(!e.contains('\n'), "one line: {e}");
        assert!(e.contains(&p.display().to_string()), "names the file: {e}");
        e
    }

    #[test]
    fn accepts_bzimages_and_tells_the_arch() {
        let d = tempfile::tempdir().unwrap();
        let k64 = write(d.path(), "k64", &image(0x020F, 0x01, 0x7F));
        let info = bzimage_info(&k64).unwrap();
        assert_eq!(info.protocol, (2, 15));
        assert!(info.is_64bit);
        assert_eq!(info.size, 4096);
        check_user_bzimage(&k64).unwrap();
        check_user_bzimage_for(&k64, Arch::X86_64).unwrap();
        let e = format!(
            "{:#}",
            check_user_bzimage_for(&k64, Arch::I386).unwrap_err()
        );
        assert!(e.contains("x86_64 kernel") && e.contains("i386"), "{e}");

        let k32 = write(d.path(), "k32", &image(0x020F, 0x01, 0x00));
        assert!(!bzimage_info(&k32).unwrap().is_64bit);
        check_user_bzimage_for(&k32, Arch::I386).unwrap();
        assert!(check_user_bzimage_for(&k32, Arch::X86_64).is_err());
    }

    #[test]
    fn rejects_other_files_with_one_clear_line() {
        let d = tempfile::tempdir().unwrap();
        let e = err(&d.path().join("missing"));
        assert!(e.contains("No such file"), "{e}");
        let e = err(&write(d.path(), "vmlinux", b"\x7fELF\x02\x01\x01rest"));
        assert!(e.contains("ELF") && e.contains("vmlinux"), "{e}");
        let e = err(&write(d.path(), "short", &[0x55; 100]));
        assert!(e.contains("too short"), "{e}");
        let mut no_sig = image(0x020F, 1, 0);
        no_sig[BOOT_FLAG_AT] = 0;
        let e = err(&write(d.path(), "nosig", &no_sig));
        assert!(e.contains("55 AA"), "{e}");
        let mut no_hdrs = image(0x020F, 1, 0);
        no_hdrs[HEADER_AT] = b'X';
        let e = err(&write(d.path(), "nohdrs", &no_hdrs));
        assert!(e.contains("HdrS"), "{e}");
        let e = err(&write(d.path(), "zimage", &image(0x0204, 0, 0)));
        assert!(e.contains("zImage"), "{e}");
        // Old protocols have no xloadflags: never taken for 64-bit.
        let old = write(d.path(), "old", &image(0x020A, 1, 0xFFFF));
        assert!(!bzimage_info(&old).unwrap().is_64bit);
    }
}
