//! Host tools the phases need, as data: what to look for and which Debian
//! package provides it. `doctor` checks them all; each phase checks its own
//! subset before it starts, and stops with the one `apt-get install` line
//! that fixes what is missing.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The host compiler and linker, as a key sees them: a phase built with
/// them is rebuilt when either changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCompiler {
    /// First line of `gcc --version`.
    pub cc: String,
    /// First line of `ld --version`.
    pub ld: String,
}

impl HostCompiler {
    /// Asks the host's `gcc` and `ld`. A tool that cannot run reads as
    /// "unknown": the phase's host-tool check reports it properly.
    pub fn probe() -> HostCompiler {
        HostCompiler {
            cc: first_line_of("gcc", "--version"),
            ld: first_line_of("ld", "--version"),
        }
    }
}

fn first_line_of(program: &str, arg: &str) -> String {
    std::process::Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(String::from))
        .unwrap_or_else(|| "unknown".into())
}

#[derive(Debug, Clone, Copy)]
pub enum Probe {
    /// An executable on PATH.
    Command(&'static str),
    /// A header in the host's include dirs (multiarch included).
    Header(&'static str),
    /// A file found by glob-free path list (first that exists).
    AnyFile(&'static [&'static str]),
}

#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub what: &'static str,
    pub probe: Probe,
    pub package: &'static str,
    /// Which phases need it.
    pub needed_by: &'static [Need],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Fetch,
    Toolchain,
    Kernel,
    Node,
    Initramfs,
    Qemu,
    /// The tests (`cargo test`): host-compiled tiny inits for both arches.
    Tests,
    /// A Node built from pinned parts (Node 22's parts variant): npm and
    /// PyPI parts, SQLite's amalgamation generated on the host.
    Parts,
}

use Need::*;
use Probe::*;

pub const TOOLS: &[Tool] = &[
    Tool {
        what: "make",
        probe: Command("make"),
        package: "make",
        needed_by: &[Toolchain, Kernel, Node],
    },
    Tool {
        what: "gcc",
        probe: Command("gcc"),
        package: "gcc",
        needed_by: &[Toolchain, Kernel, Node, Tests],
    },
    Tool {
        what: "g++",
        probe: Command("g++"),
        package: "g++",
        needed_by: &[Toolchain],
    },
    Tool {
        what: "bison",
        probe: Command("bison"),
        package: "bison",
        needed_by: &[Toolchain, Kernel],
    },
    Tool {
        what: "flex",
        probe: Command("flex"),
        package: "flex",
        needed_by: &[Toolchain, Kernel],
    },
    Tool {
        what: "makeinfo",
        probe: Command("makeinfo"),
        package: "texinfo",
        needed_by: &[Toolchain],
    },
    Tool {
        what: "bc",
        probe: Command("bc"),
        package: "bc",
        needed_by: &[Kernel],
    },
    Tool {
        what: "perl",
        probe: Command("perl"),
        package: "perl",
        needed_by: &[Toolchain, Kernel],
    },
    Tool {
        what: "python3",
        probe: Command("python3"),
        package: "python3",
        needed_by: &[Node],
    },
    Tool {
        what: "rsync",
        probe: Command("rsync"),
        package: "rsync",
        needed_by: &[Toolchain],
    },
    Tool {
        what: "xz",
        probe: Command("xz"),
        package: "xz-utils",
        needed_by: &[Fetch, Toolchain, Kernel, Node],
    },
    Tool {
        what: "tar",
        probe: Command("tar"),
        package: "tar",
        needed_by: &[Fetch, Toolchain, Kernel, Node],
    },
    Tool {
        what: "patch",
        probe: Command("patch"),
        package: "patch",
        needed_by: &[Toolchain, Node],
    },
    Tool {
        what: "file",
        probe: Command("file"),
        package: "file",
        needed_by: &[Toolchain],
    },
    Tool {
        what: "libelf headers",
        probe: Header("libelf.h"),
        package: "libelf-dev",
        needed_by: &[Kernel],
    },
    Tool {
        what: "gmp headers",
        probe: Header("gmp.h"),
        package: "libgmp-dev",
        needed_by: &[Toolchain],
    },
    Tool {
        what: "mpfr headers",
        probe: Header("mpfr.h"),
        package: "libmpfr-dev",
        needed_by: &[Toolchain],
    },
    Tool {
        what: "mpc headers",
        probe: Header("mpc.h"),
        package: "libmpc-dev",
        needed_by: &[Toolchain],
    },
    Tool {
        what: "32-bit libc for gcc -m32",
        probe: AnyFile(&["/usr/lib32/libc.a", "/usr/lib/i386-linux-gnu/libc.a"]),
        package: "gcc-multilib",
        needed_by: &[Tests],
    },
    Tool {
        what: "qemu-system-i386",
        probe: Command("qemu-system-i386"),
        package: "qemu-system-x86",
        needed_by: &[Qemu, Tests],
    },
    Tool {
        what: "qemu-system-x86_64",
        probe: Command("qemu-system-x86_64"),
        package: "qemu-system-x86",
        needed_by: &[Qemu, Tests],
    },
    Tool {
        what: "cpio",
        probe: Command("cpio"),
        package: "cpio",
        needed_by: &[Initramfs, Tests],
    },
    Tool {
        what: "gzip",
        probe: Command("gzip"),
        package: "gzip",
        // The kernel build compresses the bzImage with the host's gzip.
        needed_by: &[Initramfs, Tests, Kernel],
    },
    Tool {
        what: "npm (npm parts)",
        probe: Command("npm"),
        package: "npm",
        needed_by: &[Parts],
    },
    Tool {
        what: "pip (PyPI parts)",
        probe: Command("pip3"),
        package: "python3-pip",
        needed_by: &[Parts],
    },
    Tool {
        what: "tclsh (SQLite's amalgamation)",
        probe: Command("tclsh"),
        package: "tcl",
        needed_by: &[Parts],
    },
    Tool {
        what: "apt-get (Debian sources)",
        probe: Command("apt-get"),
        package: "apt",
        needed_by: &[Fetch],
    },
    Tool {
        what: "dpkg-deb (Debian sources)",
        probe: Command("dpkg-deb"),
        package: "dpkg",
        needed_by: &[Fetch],
    },
];

pub fn which(cmd: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return is_executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn header_present(h: &str) -> bool {
    let mut dirs = vec![
        PathBuf::from("/usr/include"),
        PathBuf::from("/usr/local/include"),
    ];
    if let Ok(rd) = std::fs::read_dir("/usr/include") {
        dirs.extend(rd.flatten().map(|e| e.path()).filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("-linux-gnu"))
        }));
    }
    dirs.iter().any(|d| d.join(h).is_file())
}

impl Tool {
    pub fn present(&self) -> bool {
        match self.probe {
            Command(c) => which(c).is_some(),
            Header(h) => header_present(h),
            AnyFile(files) => files.iter().any(|f| Path::new(f).exists()),
        }
    }
}

/// Tools missing for the given needs (all tools when `needs` is empty).
pub fn missing(needs: &[Need]) -> Vec<&'static Tool> {
    TOOLS
        .iter()
        .filter(|t| needs.is_empty() || t.needed_by.iter().any(|n| needs.contains(n)))
        .filter(|t| !t.present())
        .collect()
}

/// The one command line that installs the given tools' packages.
pub fn install_line(tools: &[&Tool]) -> String {
    let mut pkgs: Vec<&str> = tools.iter().map(|t| t.package).collect();
    pkgs.sort();
    pkgs.dedup();
    let sudo = if unsafe { libc::geteuid() } == 0 {
        ""
    } else {
        "sudo "
    };
    format!("{sudo}apt-get install -y {}", pkgs.join(" "))
}

/// Fails with one line naming what is missing and how to fix it.
pub fn require(what: &str, needs: &[Need]) -> Result<()> {
    let miss = missing(needs);
    if miss.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = miss
        .iter()
        .map(|t| format!("{} ({})", t.what, t.package))
        .collect();
    bail!(
        "{what} needs host tools that are missing: {}. Install them with `{}` (or run `cargo xtask doctor --install`)",
        names.join(", "),
        install_line(&miss)
    )
}
