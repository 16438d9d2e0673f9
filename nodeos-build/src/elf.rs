//! The static-binary check used by the toolchain self-test, the Node phase
//! and the image: an init in an initramfs that holds nothing else must have
//! no program interpreter and no shared-library dependencies, and must be
//! built for the arch it will run on.

use crate::Arch;
use anyhow::{bail, Context, Result};
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

// The few ELF constants read here (System V ABI, "ELF header" and
// "Program header" chapters).
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;

/// Reads an ELF file's headers. Only a regular file is opened for reading
/// (a FIFO would block forever, a device such as /dev/zero never ends),
/// and its size is checked against [`MAX_ELF_BYTES`] before it is read.
pub fn inspect(path: &Path) -> Result<ElfInfo> {
    let bytes = read_regular_file(path, MAX_ELF_BYTES)?;
    parse(&bytes).map_err(|why| anyhow::anyhow!("{} is not an ELF file: {why}", path.display()))
}

/// Field reader over an ELF image in its own byte order and class.
struct Reader<'a> {
    bytes: &'a [u8],
    big_endian: bool,
    is_64: bool,
}

impl Reader<'_> {
    fn take<const N: usize>(&self, at: u64) -> Result<[u8; N], &'static str> {
        let at = usize::try_from(at).map_err(|_| "an offset past the end of the file")?;
        self.bytes
            .get(
                at..at
                    .checked_add(N)
                    .ok_or("an offset past the end of the file")?,
            )
            .and_then(|b| b.try_into().ok())
            .ok_or("truncated (a header points past the end of the file)")
    }
    fn u16(&self, at: u64) -> Result<u16, &'static str> {
        let b = self.take::<2>(at)?;
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }
    fn u32(&self, at: u64) -> Result<u32, &'static str> {
        let b = self.take::<4>(at)?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
    fn u64(&self, at: u64) -> Result<u64, &'static str> {
        let b = self.take::<8>(at)?;
        Ok(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }
    /// An address-sized field: 4 bytes in ELFCLASS32, 8 in ELFCLASS64.
    fn word(&self, at: u64) -> Result<u64, &'static str> {
        if self.is_64 {
            self.u64(at)
        } else {
            self.u32(at).map(u64::from)
        }
    }
    /// The NUL-terminated string at `at`.
    fn string(&self, at: u64, max_len: u64) -> Result<String, &'static str> {
        let start = usize::try_from(at).map_err(|_| "a string past the end of the file")?;
        let rest = self
            .bytes
            .get(start..)
            .ok_or("a string past the end of the file")?;
        let rest = &rest[..rest.len().min(max_len as usize)];
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
}

/// One program header: type, file offset, virtual address, size in file.
struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// The facts [`ElfInfo`] holds, from the ELF header, the program headers,
/// the PT_INTERP segment and the dynamic section's DT_NEEDED entries.
fn parse(bytes: &[u8]) -> Result<ElfInfo, &'static str> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err("no ELF magic at its start");
    }
    let is_64 = match bytes.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err("an unknown ELF class"),
    };
    let big_endian = match bytes.get(5) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err("an unknown byte order"),
    };
    let r = Reader {
        bytes,
        big_endian,
        is_64,
    };
    let e_type = r.u16(16)?;
    let machine = r.u16(18)?;
    let (phoff, phentsize, phnum) = if is_64 {
        (r.u64(32)?, r.u16(54)?, r.u16(56)?)
    } else {
        (u64::from(r.u32(28)?), r.u16(42)?, r.u16(44)?)
    };
    let mut segments = Vec::with_capacity(phnum as usize);
    for i in 0..u64::from(phnum) {
        let at = phoff
            .checked_add(i * u64::from(phentsize))
            .ok_or("program headers past the end of the file")?;
        segments.push(if is_64 {
            Segment {
                kind: r.u32(at)?,
                offset: r.u64(at + 8)?,
                vaddr: r.u64(at + 16)?,
                filesz: r.u64(at + 32)?,
            }
        } else {
            Segment {
                kind: r.u32(at)?,
                offset: u64::from(r.u32(at + 4)?),
                vaddr: u64::from(r.u32(at + 8)?),
                filesz: u64::from(r.u32(at + 16)?),
            }
        });
    }
    let interpreter = match segments.iter().find(|s| s.kind == PT_INTERP) {
        Some(s) => Some(r.string(s.offset, s.filesz)?),
        None => None,
    };
    let dynamic = segments.iter().find(|s| s.kind == PT_DYNAMIC);
    let mut needed = Vec::new();
    if let Some(d) = dynamic {
        let entry = if is_64 { 16 } else { 8 };
        let (mut needed_at, mut strtab) = (Vec::new(), None);
        for i in 0..d.filesz / entry {
            let at = d
                .offset
                .checked_add(i * entry)
                .ok_or("a dynamic section past the end of the file")?;
            let (tag, val) = (r.word(at)?, r.word(at + entry / 2)?);
            match tag {
                DT_NULL => break,
                DT_NEEDED => needed_at.push(val),
                DT_STRTAB => strtab = Some(val),
                _ => {}
            }
        }
        if !needed_at.is_empty() {
            // DT_STRTAB is an address: find the loaded segment holding it.
            let addr = strtab.ok_or("DT_NEEDED entries without a DT_STRTAB")?;
            let load = segments
                .iter()
                .find(|s| s.kind == PT_LOAD && s.vaddr <= addr && addr - s.vaddr < s.filesz)
                .ok_or("a DT_STRTAB outside every loaded segment")?;
            let past_end = "a string table past the end of the file";
            let table = load.offset.checked_add(addr - load.vaddr).ok_or(past_end)?;
            for n in needed_at {
                needed.push(r.string(table.checked_add(n).ok_or(past_end)?, 4096)?);
            }
        }
    }
    Ok(ElfInfo {
        machine,
        is_64,
        e_type,
        interpreter,
        needed,
        has_dynamic: dynamic.is_some(),
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
    if arch_of(&info) != Some(arch) {
        let bits = if arch.elf_is_64() { 64 } else { 32 };
        bail!(
            "{} is built for {}, not {arch} ({} {bits}-bit); build it for {arch}",
            path.display(),
            target_name(&info),
            machine_name(arch.elf_machine()),
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
