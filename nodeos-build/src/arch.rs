//! The target architectures NodeOS builds for, and every per-arch name the
//! phases need. Adding an arch is one more variant and one more row here.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    I386,
    X86_64,
}

/// What `--arch` accepts, for error messages.
pub const ACCEPTED: &str = "i386 (or i686, x86), x86_64 (or amd64)";

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::I386, Arch::X86_64];

    /// The name used in directories, logs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Arch::I386 => "i386",
            Arch::X86_64 => "x86_64",
        }
    }

    /// GCC target triple of the musl cross toolchain.
    pub fn triple(self) -> &'static str {
        match self {
            Arch::I386 => "i686-linux-musl",
            Arch::X86_64 => "x86_64-linux-musl",
        }
    }

    /// `ARCH=` for the Linux kernel build system.
    pub fn kernel_arch(self) -> &'static str {
        match self {
            Arch::I386 => "i386",
            Arch::X86_64 => "x86_64",
        }
    }

    /// `--dest-cpu=` for Node's configure, and Node's `process.arch`.
    pub fn node_cpu(self) -> &'static str {
        match self {
            Arch::I386 => "ia32",
            Arch::X86_64 => "x64",
        }
    }

    /// QEMU system emulator binary.
    pub fn qemu_system(self) -> &'static str {
        match self {
            Arch::I386 => "qemu-system-i386",
            Arch::X86_64 => "qemu-system-x86_64",
        }
    }

    /// QEMU `-cpu` model when the default will not do. V8 needs SSE2: QEMU's
    /// default i386 CPU (qemu32) lacks it and QEMU 7.2 has no pentium4;
    /// coreduo has SSE2/SSE3. qemu64 (x86_64's default) has both.
    pub fn qemu_cpu(self) -> Option<&'static str> {
        match self {
            Arch::I386 => Some("coreduo"),
            Arch::X86_64 => None,
        }
    }

    /// `uname -m` in the guest (the i386 kernel is built for the 686).
    pub fn uname_machine(self) -> &'static str {
        match self {
            Arch::I386 => "i686",
            Arch::X86_64 => "x86_64",
        }
    }

    /// ELF e_machine of binaries for this arch.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::I386 => 3,    // EM_386
            Arch::X86_64 => 62, // EM_X86_64
        }
    }

    /// Whether this arch's ELF files are ELFCLASS64 (a 32-bit file with
    /// x86_64's e_machine is x32, which NodeOS does not boot).
    pub fn elf_is_64(self) -> bool {
        match self {
            Arch::I386 => false,
            Arch::X86_64 => true,
        }
    }

    /// Flag that makes the host compiler (x86_64 gcc) emit code for this arch.
    pub fn host_cc_flag(self) -> &'static str {
        match self {
            Arch::I386 => "-m32",
            Arch::X86_64 => "-m64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "i386" | "i686" | "x86" | "ia32" => Ok(Arch::I386),
            "x86_64" | "amd64" | "x64" => Ok(Arch::X86_64),
            other => Err(format!("unknown arch '{other}'; accepted: {ACCEPTED}")),
        }
    }
}

/// Parses a comma list such as `i386,x86_64` (repeated flags are joined by
/// the caller). Duplicates are dropped; order is normalized.
pub fn parse_list(s: &str) -> Result<Vec<Arch>, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let a: Arch = part.parse()?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err(format!("empty arch list; accepted: {ACCEPTED}"));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_lists() {
        assert_eq!(
            parse_list("i686,amd64").unwrap(),
            vec![Arch::I386, Arch::X86_64]
        );
        assert_eq!(
            parse_list("x86_64,x86,i386").unwrap(),
            vec![Arch::I386, Arch::X86_64]
        );
        let err = parse_list("arm64").unwrap_err();
        assert!(err.contains("arm64") && err.contains("x86_64"), "{err}");
        assert!(parse_list(",").is_err());
    }
}
