//! The static-binary check used by the toolchain self-test, the Node phase
//! and the image: an init in an initramfs that holds nothing else must have
//! no program interpreter and no shared-library dependencies, and must be
//! built for the arch it will run on.

use crate::Arch;
use anyhow::{bail, Context, Result};
use goblin::elf::header::{ET_DYN, ET_EXEC};
use goblin::elf::{program_header::PT_INTERP, Elf};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest file [`inspect`] reads. A NodeOS init is loaded into the
/// guest's RAM twice (the archive and the unpacked file), and the static
/// Node is about 50 MB; anything this large is not an init.
pub const MAX_ELF_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub machine: u16,
    pub is_64: bool,
    /// e_type: `ET_EXEC` (2), `ET_DYN` (3, PIE), `ET_REL` (1, an object file)…
    pub e_type: u16,
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    pub has_dynamic: bool,
}

pub fn machine_name(m: u16) -> String {
    match m {
        3 => "i386 (EM_386)".into(),
        62 => "x86_64 (EM_X86_64)".into(),
        40 => "ARM (EM_ARM)".into(),
        183 => "AArch64 (EM_AARCH64)".into(),
        243 => "RISC-V (EM_RISCV)".into(),
        other => format!("machine {other}"),
    }
}

/// What e_type says a file is, for error messages.
fn type_name(t: u16) -> String {
    match t {
        0 => "no file type (ET_NONE)".into(),
        1 => "a relocatable object file (ET_REL, a .o), not a linked program".into(),
        2 => "an executable (ET_EXEC)".into(),
        3 => "a position-independent executable or shared library (ET_DYN)".into(),
        4 => "a core dump (ET_CORE)".into(),
        other => format!("ELF file type {other}"),
    }
}

/// Reads an ELF file's headers. Only a regular file is opened for reading
/// (a FIFO would block forever, a device such as /dev/zero never ends),
/// and its size is checked against [`MAX_ELF_BYTES`] before it is read.
pub fn inspect(path: &Path) -> Result<ElfInfo> {
    let bytes = read_regular_file(path, MAX_ELF_BYTES)?;
    let elf =
        Elf::parse(&bytes).with_context(|| format!("{} is not an ELF file", path.display()))?;
    let has_interp_phdr = elf.program_headers.iter().any(|p| p.p_type == PT_INTERP);
    Ok(ElfInfo {
        machine: elf.header.e_machine,
        is_64: elf.is_64,
        e_type: elf.header.e_type,
        interpreter: elf
            .interpreter
            .map(String::from)
            .or(has_interp_phdr.then(|| "?".to_string())),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        has_dynamic: elf.dynamic.is_some(),
    })
}

/// The whole of a regular file of at most `max` bytes. The file is opened
/// without blocking and checked through its own descriptor, so a FIFO or a
/// device put in its place is refused, never read.
fn read_regular_file(path: &Path, max: u64) -> Result<Vec<u8>> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let meta = f
        .metadata()
        .with_context(|| format!("inspecting {}", path.display()))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        bail!(
            "{} is {what}, not a regular file; give the path of a program file",
            path.display()
        );
    }
    if meta.len() > max {
        bail!(
            "{} is {} bytes, more than the {} bytes a NodeOS init may have; give the path of a program file",
            path.display(),
            meta.len(),
            max
        );
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // One byte more than allowed tells a file that grew while being read.
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!(
            "{} grew past {max} bytes while being read; give the path of a finished program file",
            path.display()
        );
    }
    Ok(bytes)
}

/// The target arch an ELF file is built for: its e_machine and its class
/// (32/64-bit) must both be that arch's. x32 (ELFCLASS32 with EM_X86_64)
/// belongs to none.
pub fn arch_of(info: &ElfInfo) -> Option<Arch> {
    Arch::all()
        .into_iter()
        .find(|a| a.elf_machine() == info.machine && a.elf_is_64() == info.is_64)
}

/// What an ELF file is built for, e.g. `x86_64 (EM_X86_64) 32-bit`.
pub fn target_name(info: &ElfInfo) -> String {
    let class = if info.is_64 { "64-bit" } else { "32-bit" };
    format!("{} {class}", machine_name(info.machine))
}

/// Checks that `path` is a static executable for `arch`: an executable
/// (e_type EXEC or DYN), the right e_machine and class, no PT_INTERP, no
/// DT_NEEDED. The error says which rule failed.
pub fn check_static(path: &Path, arch: Arch) -> Result<ElfInfo> {
    let info = inspect(path)?;
    if info.e_type != ET_EXEC && info.e_type != ET_DYN {
        bail!(
            "{} is {}; give a linked static executable",
            path.display(),
            type_name(info.e_type)
        );
    }
    if info.machine == arch.elf_machine() && info.is_64 != arch.elf_is_64() {
        bail!(
            "{} is built for {} (e.g. the x32 ABI), not {arch} ({} {}-bit); build it for {arch}",
            path.display(),
            target_name(&info),
            machine_name(arch.elf_machine()),
            if arch.elf_is_64() { 64 } else { 32 }
        );
    }
    if info.machine != arch.elf_machine() {
        bail!(
            "{} is built for {}, not {} ({})",
            path.display(),
            target_name(&info),
            arch,
            machine_name(arch.elf_machine())
        );
    }
    if let Some(interp) = &info.interpreter {
        bail!(
            "{} is dynamically linked (program interpreter {interp}{}); it cannot run alone in the initramfs: link it with -static",
            path.display(),
            if info.needed.is_empty() { String::new() } else { format!(", needs {}", info.needed.join(", ")) }
        );
    }
    if !info.needed.is_empty() {
        bail!(
            "{} needs shared libraries ({}); link it with -static",
            path.display(),
            info.needed.join(", ")
        );
    }
    Ok(info)
}
