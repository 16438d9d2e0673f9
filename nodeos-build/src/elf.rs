//! The static-binary check used by the toolchain self-test, the Node phase
//! and the image: an init in an initramfs that holds nothing else must have
//! no program interpreter and no shared-library dependencies, and must be
//! built for the arch it will run on.

use crate::Arch;
use anyhow::{bail, Context, Result};
use goblin::elf::{program_header::PT_INTERP, Elf};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub machine: u16,
    pub is_64: bool,
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

pub fn inspect(path: &Path) -> Result<ElfInfo> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let elf =
        Elf::parse(&bytes).with_context(|| format!("{} is not an ELF file", path.display()))?;
    let has_interp_phdr = elf.program_headers.iter().any(|p| p.p_type == PT_INTERP);
    Ok(ElfInfo {
        machine: elf.header.e_machine,
        is_64: elf.is_64,
        interpreter: elf
            .interpreter
            .map(String::from)
            .or(has_interp_phdr.then(|| "?".to_string())),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        has_dynamic: elf.dynamic.is_some(),
    })
}

/// Checks that `path` is a static executable for `arch`: no PT_INTERP, no
/// DT_NEEDED, the right e_machine. The error says which rule failed.
pub fn check_static(path: &Path, arch: Arch) -> Result<ElfInfo> {
    let info = inspect(path)?;
    if info.machine != arch.elf_machine() {
        bail!(
            "{} is built for {}, not {} ({})",
            path.display(),
            machine_name(info.machine),
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
