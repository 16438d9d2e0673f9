//! The targets NodeOS builds for, as data: one row per target in
//! `nodeos-build/targets.toml`. [`Arch`] is a small handle into that table;
//! every per-target fact (triple, kernel `ARCH`, QEMU machine, ELF machine,
//! ...) is read from the row, so no code outside this module decides
//! anything by matching on the arch.

use serde::Deserialize;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// One row of `targets.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub triple: String,
    pub linux_arch: String,
    pub linux_srcarch: String,
    pub kernel_image: KernelImage,
    pub node_dest_cpu: String,
    pub uname_machine: String,
    pub elf_machine: u16,
    pub elf_class: u8,
    pub host_run: HostRun,
    pub host_cc_flag: String,
    pub qemu: Qemu,
}

/// The kernel's boot image for a target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelImage {
    /// What `make` builds, e.g. `bzImage`.
    pub make_target: String,
    /// Where it lands in the kernel's build tree.
    pub path: String,
    pub format: KernelImageFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelImageFormat {
    /// The x86 boot protocol image (boot header "HdrS"); the only format
    /// `--kernel` checks today.
    Bzimage,
}

/// How the target's static binaries run on the build host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostRun {
    /// The host CPU runs them (x86 targets on an x86_64 host).
    Direct,
    /// Through qemu-user; no phase supports this yet (see ARCHITECTURE.md).
    QemuUser,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qemu {
    /// The system emulator binary.
    pub system: String,
    /// `-machine`.
    pub machine: String,
    /// `-cpu`, when QEMU's default will not do.
    pub cpu: Option<String>,
    /// The serial console device the kernel writes to (`console=`).
    pub console: String,
    /// More arguments for this target's QEMU.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Words for the kernel command line of this target's guests (after
    /// `console=`).
    #[serde(default)]
    pub kernel_args: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    target: Vec<Target>,
}

/// The targets file's text (for tests that check other data against it).
pub const TARGETS_TOML: &str = include_str!("../targets.toml");

/// Parses and checks a targets file: names and aliases unique, at most
/// 256 rows.
pub fn parse_targets(text: &str) -> Result<Vec<Target>, String> {
    let file: TargetsFile = toml::from_str(text).map_err(|e| format!("targets.toml: {e}"))?;
    let mut seen = std::collections::HashSet::new();
    for t in &file.target {
        for n in std::iter::once(&t.name).chain(&t.aliases) {
            if !seen.insert(n.to_ascii_lowercase()) {
                return Err(format!("targets.toml: the name {n:?} is used twice"));
            }
        }
        if ![32, 64].contains(&t.elf_class) {
            return Err(format!(
                "targets.toml: {}: elf_class must be 32 or 64",
                t.name
            ));
        }
    }
    if file.target.is_empty() || file.target.len() > usize::from(u8::MAX) {
        return Err("targets.toml: between 1 and 255 targets".into());
    }
    Ok(file.target)
}

/// Every target, in the file's order.
pub fn targets() -> &'static [Target] {
    static TARGETS: OnceLock<Vec<Target>> = OnceLock::new();
    TARGETS.get_or_init(|| parse_targets(TARGETS_TOML).expect("targets.toml is valid (tested)"))
}

/// A target: an index into [`targets`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arch(u8);

impl Arch {
    /// The first row of targets.toml (a test checks the name).
    pub const I386: Arch = Arch(0);
    /// The second row of targets.toml (a test checks the name).
    pub const X86_64: Arch = Arch(1);

    /// Every target, in the file's order.
    pub fn all() -> Vec<Arch> {
        (0..targets().len()).map(|i| Arch(i as u8)).collect()
    }

    /// The target's row.
    pub fn target(self) -> &'static Target {
        &targets()[usize::from(self.0)]
    }

    /// The target of this name or alias (case-insensitive).
    pub fn named(name: &str) -> Option<Arch> {
        let name = name.trim().to_ascii_lowercase();
        Arch::all().into_iter().find(|a| {
            let t = a.target();
            t.name == name || t.aliases.contains(&name)
        })
    }

    /// The name used in directories, logs and on the command line.
    pub fn name(self) -> &'static str {
        &self.target().name
    }

    /// GCC target triple of the musl cross toolchain.
    pub fn triple(self) -> &'static str {
        &self.target().triple
    }

    /// `ARCH=` for the Linux kernel build system.
    pub fn kernel_arch(self) -> &'static str {
        &self.target().linux_arch
    }

    /// `--dest-cpu=` for Node's configure, and Node's `process.arch`.
    pub fn node_cpu(self) -> &'static str {
        &self.target().node_dest_cpu
    }

    /// QEMU system emulator binary.
    pub fn qemu_system(self) -> &'static str {
        &self.target().qemu.system
    }

    /// QEMU `-cpu` model when the default will not do.
    pub fn qemu_cpu(self) -> Option<&'static str> {
        self.target().qemu.cpu.as_deref()
    }

    /// `uname -m` in the guest.
    pub fn uname_machine(self) -> &'static str {
        &self.target().uname_machine
    }

    /// ELF e_machine of binaries for this arch.
    pub fn elf_machine(self) -> u16 {
        self.target().elf_machine
    }

    /// ELF class (32 or 64) of binaries for this arch.
    pub fn elf_class(self) -> u8 {
        self.target().elf_class
    }

    /// Whether this arch's ELF files are ELFCLASS64 (a 32-bit file with
    /// x86_64's e_machine is x32, which NodeOS does not boot).
    pub fn elf_is_64(self) -> bool {
        self.elf_class() == 64
    }

    /// Flag that makes the host compiler (x86_64 gcc) emit code for this arch.
    pub fn host_cc_flag(self) -> &'static str {
        &self.target().host_cc_flag
    }
}

/// The target a recipe row names: its row name exactly (an alias would
/// make two spellings of one row possible). The error says what to write.
pub fn recipe_row(name: &str) -> Result<Arch, String> {
    match Arch::named(name) {
        Some(arch) if arch.name() == name => Ok(arch),
        Some(arch) => Err(format!(
            "{name}: name the target by its row name {arch}, not an alias"
        )),
        None => Err(format!(
            "{name}: no such row in nodeos-build/targets.toml (accepted: {})",
            accepted()
        )),
    }
}

/// What `--arch` accepts, for error messages.
pub fn accepted() -> String {
    targets()
        .iter()
        .map(|t| {
            if t.aliases.is_empty() {
                t.name.clone()
            } else {
                format!("{} (or {})", t.name, t.aliases.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Arch({})", self.name())
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arch::named(s).ok_or_else(|| {
            format!(
                "unknown arch '{}'; accepted: {}",
                s.trim().to_ascii_lowercase(),
                accepted()
            )
        })
    }
}

/// Parses a comma list such as `i386,x86_64` (repeated flags are joined by
/// the caller). Duplicates are dropped; order is the targets file's.
pub fn parse_list(s: &str) -> Result<Vec<Arch>, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let a: Arch = part.parse()?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err(format!("empty arch list; accepted: {}", accepted()));
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

    #[test]
    fn the_targets_file_parses_and_the_named_handles_match_it() {
        assert_eq!(Arch::I386.name(), "i386");
        assert_eq!(Arch::X86_64.name(), "x86_64");
        for a in Arch::all() {
            let t = a.target();
            assert_eq!(Arch::named(&t.name), Some(a));
            for alias in &t.aliases {
                assert_eq!(Arch::named(alias), Some(a), "{alias}");
            }
            assert!(t.triple.ends_with("-linux-musl"), "{}", t.triple);
            assert!(
                t.kernel_image
                    .path
                    .starts_with(&format!("arch/{}/", t.linux_srcarch)),
                "{}: the kernel image path is outside arch/{}",
                t.name,
                t.linux_srcarch
            );
        }
    }

    #[test]
    fn a_name_used_twice_is_refused() {
        let twice = TARGETS_TOML.replace("aliases = [\"amd64\", \"x64\"]", "aliases = [\"i686\"]");
        let err = parse_targets(&twice).unwrap_err();
        assert!(err.contains("\"i686\" is used twice"), "{err}");
    }
}
