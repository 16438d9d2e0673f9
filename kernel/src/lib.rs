//! The Linux kernel phase: a pinned Linux LTS source, configured as
//! `make tinyconfig` plus the fragments in `kernel/config/`, checked symbol
//! by symbol, and built with the host compiler into one bzImage per arch.
//!
//! The host compiler is enough: the kernel is freestanding (it links no
//! libc), and the host gcc builds both x86_64 and i386 kernels (`-m32` is
//! the kernel Makefile's business). The musl toolchain is not needed, so the
//! kernel can be built while the toolchain is.

mod build;
pub mod bzimage;
pub mod config;

use anyhow::{Context, Result};
use nodeos_build::driver::{self, SourceRef};
use nodeos_build::fetch::Resolved;
use nodeos_build::host::{HostCompiler, Need};
use nodeos_build::publish::Outputs;
use nodeos_build::{Arch, Env, Key, Manifest, Phase, PhaseDecl, PhaseOutput, Sources, StepCtx};
use std::path::PathBuf;

pub use bzimage::{bzimage_info, check_user_bzimage, check_user_bzimage_for, BzImageInfo};
pub use config::{check_config, parse_fragment, Mismatch};

/// Bumped by hand when the steps below change in a way the key's other
/// inputs do not show.
pub const RECIPE_VERSION: u32 = 1;

/// The phase's name in the cache, logs and timings.
pub const PHASE: &str = driver::names::KERNEL;

/// The Linux sources, shared with the toolchain (UAPI headers).
pub fn manifest() -> Manifest {
    Manifest::parse(include_str!("../sources.toml"), "kernel/sources.toml")
        .expect("kernel/sources.toml is valid (tested)")
}

/// A published kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub arch: Arch,
    pub bzimage: PathBuf,
    /// The final `.config` the kernel was built with.
    pub config: PathBuf,
    /// The kernel's `usr/gen_init_cpio` (a host program), kept for the
    /// initramfs tests that compare archives with it.
    pub gen_init_cpio: PathBuf,
    pub output: PhaseOutput,
}

impl Kernel {
    fn at(arch: Arch, output: PhaseOutput) -> Kernel {
        let dir = &output.dir;
        Kernel {
            arch,
            bzimage: dir.join(image_file_name(arch)),
            config: dir.join("config"),
            gen_init_cpio: dir.join("gen_init_cpio"),
            output,
        }
    }
}

/// The kernel image's file name in the phase's output and in
/// `target/nodeos/<arch>/`: the name of the file the target's build makes
/// (`bzImage` on x86).
pub fn image_file_name(arch: Arch) -> String {
    let path = &arch.target().kernel_image.path;
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// Where the repository's fragments live.
pub fn config_dir(env: &Env) -> PathBuf {
    env.project_root.join("kernel").join("config")
}

/// The repository's fragments for `arch`, in the order they apply: the
/// common one, then the arch's own.
pub fn default_fragments(env: &Env, arch: Arch) -> Vec<PathBuf> {
    let dir = config_dir(env);
    vec![
        dir.join("common.config"),
        dir.join(format!("{}.config", arch.name())),
    ]
}

/// The `make` invocation every kernel step shares, as data: a change here
/// changes the key.
pub(crate) fn make_vars(arch: Arch) -> Vec<String> {
    vec![
        format!("ARCH={}", arch.kernel_arch()),
        // Reproducible: no user, host or date of this machine in the image
        // (they show in `uname -a` and would differ between builders).
        "KBUILD_BUILD_USER=nodeos".into(),
        "KBUILD_BUILD_HOST=nodeos".into(),
        "KBUILD_BUILD_VERSION=1".into(),
        format!("KBUILD_BUILD_TIMESTAMP={}", build::BUILD_TIMESTAMP),
    ]
}

/// The cache key: the source (and any project patches for it), the
/// fragments' bytes in order, the arch, the make invocation, the host
/// compiler and linker, and the recipe version.
pub fn key(
    env: &Env,
    arch: Arch,
    source: &Resolved,
    fragments: &[PathBuf],
    host: &HostCompiler,
) -> Result<Key> {
    let mut k = Key::new(PHASE, RECIPE_VERSION);
    k.str("arch", arch.name());
    for s in source.all() {
        k.source(s);
    }
    let m = &source.main;
    k.dir(
        "patches/linux",
        &env.patches_dir().join(format!("{}-{}", m.name, m.version)),
    )?;
    for (i, f) in fragments.iter().enumerate() {
        // Labelled by position and file name, not path, so the key does not
        // depend on where the checkout is.
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        k.file(&format!("fragment/{i}/{}", name.unwrap_or_default()), f)?;
    }
    k.list(
        "extract.exclude",
        &build::EXTRACT_EXCLUDES
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>(),
    );
    k.list("make", &make_vars(arch));
    k.str("host-cc", &host.cc);
    k.str("host-ld", &host.ld);
    Ok(k)
}

/// The kernel phase: the Linux source and the host tools it needs.
pub fn decl() -> PhaseDecl {
    PhaseDecl {
        name: PHASE.into(),
        sources: vec![SourceRef::new(&manifest(), "linux")],
        depends: Vec::new(),
        host_tools: vec![Need::Kernel],
    }
}

/// The kernel phase for one target and list of fragments.
struct KernelPhase {
    arch: Arch,
    fragments: Vec<PathBuf>,
    /// The fragments' settings, merged in order.
    requested: Vec<(String, String)>,
    host: HostCompiler,
    /// Whether `target/nodeos/<arch>/` links to the image (only for the
    /// repository's fragments).
    link: bool,
}

impl KernelPhase {
    /// `link`: whether `target/nodeos/<arch>/` links to the image.
    fn new(arch: Arch, fragments: Vec<PathBuf>, link: bool) -> Result<KernelPhase> {
        // A malformed fragment fails here, before 1.3 GB of source is unpacked.
        let requested = config::load_fragments(&fragments)?;
        Ok(KernelPhase {
            arch,
            fragments,
            requested,
            host: HostCompiler::probe(),
            link,
        })
    }
}

impl Phase for KernelPhase {
    type Output = Kernel;

    fn decl(&self) -> PhaseDecl {
        decl()
    }

    fn arch(&self) -> Option<Arch> {
        Some(self.arch)
    }

    fn key(&self, env: &Env, sources: &Sources) -> Result<Key> {
        key(
            env,
            self.arch,
            sources.get("linux"),
            &self.fragments,
            &self.host,
        )
    }

    fn outputs(&self) -> Outputs {
        Outputs::named(&[&image_file_name(self.arch), "config", "gen_init_cpio"])
    }

    fn steps(&self, ctx: &mut StepCtx, sources: &Sources) -> Result<()> {
        build::build(
            ctx,
            &build::Plan {
                arch: self.arch,
                source: sources.get("linux"),
                fragments: &self.fragments,
                requested: &self.requested,
            },
        )
    }

    fn output(&self, output: PhaseOutput, _sources: &Sources) -> Result<Kernel> {
        let kernel = Kernel::at(self.arch, output);
        check_user_bzimage_for(&kernel.bzimage, self.arch).with_context(|| {
            format!("the kernel phase's output {}", kernel.output.dir.display())
        })?;
        Ok(kernel)
    }

    fn artifacts(&self, kernel: &Kernel) -> Vec<(String, PathBuf)> {
        if self.link {
            vec![(image_file_name(self.arch), kernel.bzimage.clone())]
        } else {
            Vec::new()
        }
    }
}

/// Returns the kernel for `arch` built from the repository's fragments,
/// building it if it is not cached, and links
/// `target/nodeos/<arch>/bzImage` to it.
pub fn build(env: &Env, arch: Arch) -> Result<Kernel> {
    driver::build(
        env,
        KernelPhase::new(arch, default_fragments(env, arch), true)?,
    )
}

/// Like [`build`] with `extra` fragments applied after the repository's
/// (so they override it). Used by tests; the result is cached under its own
/// key and `target/nodeos/<arch>/bzImage` is left alone.
pub fn build_with_fragments(env: &Env, arch: Arch, extra: &[PathBuf]) -> Result<Kernel> {
    let mut fragments = default_fragments(env, arch);
    fragments.extend(extra.iter().cloned());
    driver::build(env, KernelPhase::new(arch, fragments, false)?)
}

/// A kernel for `arch` built from exactly `fragments`, in order, instead of
/// the repository's: a variant to compare with (`cargo xtask bench
/// --kernel-options`). Cached under its own key; `target/nodeos/<arch>/`
/// is left alone.
pub fn build_from_fragments(env: &Env, arch: Arch, fragments: &[PathBuf]) -> Result<Kernel> {
    driver::build(env, KernelPhase::new(arch, fragments.to_vec(), false)?)
}

/// The heading of common.config's section that gives apps their network
/// (the virtio NIC, the kernel's IP autoconfiguration), as
/// [`fragment_without_section`] takes it.
pub const APP_NETWORK_SECTION: &str = "Network for apps";

/// `text` (a fragment) without the section headed `# --- <heading>`: from
/// that line up to the next `# --- ` heading (or the end). An error when
/// there is no such heading, or more than one.
pub fn fragment_without_section(text: &str, heading: &str) -> Result<String> {
    let is_heading = |l: &str| l.starts_with("# --- ");
    let lines: Vec<&str> = text.lines().collect();
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            is_heading(l)
                && l["# --- ".len()..]
                    .trim_end_matches(['-', ' '])
                    .split(':')
                    .next()
                    == Some(heading)
        })
        .map(|(i, _)| i)
        .collect();
    let [start] = starts[..] else {
        anyhow::bail!(
            "the fragment has {} sections headed `# --- {heading}`, not one",
            starts.len()
        );
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| is_heading(l))
        .map_or(lines.len(), |i| start + 1 + i);
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.extend_from_slice(&lines[end..]);
    Ok(out.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_env() -> (tempfile::TempDir, Env) {
        let d = tempfile::tempdir().unwrap();
        let root = Env::workspace_root_from(env!("CARGO_MANIFEST_DIR"));
        let env = Env::for_tests(d.path(), &root);
        (d, env)
    }

    #[test]
    fn manifest_parses() {
        let m = manifest();
        let v = m.variants("linux");
        assert!(!v.is_empty());
        // Debian's tree comes first: it is reachable here through apt.
        assert_eq!(v[0].variant, "debian");
        // Every variant is the same kernel release.
        assert!(v.iter().all(|s| s.version == v[0].version), "{v:?}");
    }

    /// The repository's fragments parse, and every setting has a comment
    /// saying why it is there (in the lines just above it, up to the
    /// previous blank line).
    #[test]
    fn repo_fragments_parse_and_explain_themselves() {
        let (_d, env) = repo_env();
        for arch in Arch::all() {
            let frags = default_fragments(&env, arch);
            let merged = config::load_fragments(&frags).unwrap();
            assert!(
                merged
                    .iter()
                    .any(|(s, v)| s == "CONFIG_BLK_DEV_INITRD" && v == "y"),
                "{arch}: the initramfs needs BLK_DEV_INITRD"
            );
            for f in &frags {
                let text = std::fs::read_to_string(f).unwrap();
                let mut explained = false;
                for (i, line) in text.lines().enumerate() {
                    let line = line.trim();
                    let is_setting = !parse_fragment(line).unwrap().is_empty();
                    if line.is_empty() {
                        explained = false;
                    } else if is_setting {
                        assert!(
                            explained,
                            "{}:{}: `{line}` has no comment saying why",
                            f.display(),
                            i + 1
                        );
                    } else {
                        explained = true;
                    }
                }
            }
        }
    }

    /// The app network section comes off as a whole: none of its symbols
    /// are left, everything else is as it was (PCI and ACPI included: the
    /// PID 1 section needs them), and the rest still parses.
    #[test]
    fn the_app_network_section_can_be_left_out() {
        let (_d, env) = repo_env();
        let path = config_dir(&env).join("common.config");
        let text = std::fs::read_to_string(&path).unwrap();
        let all = parse_fragment(&text).unwrap();
        let without = fragment_without_section(&text, APP_NETWORK_SECTION).unwrap();
        let rest = parse_fragment(&without).unwrap();
        let gone: Vec<&str> = all
            .iter()
            .filter(|s| !rest.contains(s))
            .map(|(sym, _)| sym.as_str())
            .collect();
        for sym in [
            "CONFIG_VIRTIO_NET",
            "CONFIG_VIRTIO_PCI",
            "CONFIG_IP_PNP",
            "CONFIG_IP_PNP_DHCP",
        ] {
            assert!(gone.contains(&sym), "{sym} is in the section: {gone:?}");
        }
        for kept in [
            "CONFIG_PCI",
            "CONFIG_ACPI",
            "CONFIG_INET",
            "CONFIG_IPV6",
            "CONFIG_NET",
        ] {
            assert!(rest.iter().any(|(s, _)| s == kept), "{kept} stays");
        }
        assert!(rest.iter().all(|s| all.contains(s)), "nothing is added");
        assert_eq!(rest.len() + gone.len(), all.len());
        assert!(!without.contains(APP_NETWORK_SECTION));
        assert!(without.contains("# --- Clock") && without.contains("# --- PID 1"));
        // No such section, or an ambiguous one: refused.
        assert!(fragment_without_section(&text, "No such section").is_err());
        let twice = format!("{text}\n# --- {APP_NETWORK_SECTION} ---\n");
        assert!(fragment_without_section(&twice, APP_NETWORK_SECTION).is_err());
    }

    #[test]
    fn arch_fragments_ask_for_the_right_word_size() {
        let (_d, env) = repo_env();
        let get = |arch: Arch, sym: &str| {
            config::load_fragments(&default_fragments(&env, arch))
                .unwrap()
                .into_iter()
                .find(|(s, _)| s == sym)
                .map(|(_, v)| v)
        };
        assert_eq!(get(Arch::X86_64, "CONFIG_64BIT").as_deref(), Some("y"));
        assert_eq!(get(Arch::I386, "CONFIG_64BIT").as_deref(), Some("n"));
        assert_eq!(get(Arch::I386, "CONFIG_M686").as_deref(), Some("y"));
    }

    #[test]
    fn key_follows_fragment_bytes_and_arch() {
        let (d, env) = repo_env();
        let source = nodeos_build::fetch::choose(&env, &manifest(), "linux").unwrap();
        let extra = d.path().join("extra.config");
        std::fs::write(&extra, "# why\nCONFIG_A=y\n").unwrap();
        let mut frags = default_fragments(&env, Arch::X86_64);
        let base = key(&env, Arch::X86_64, &source, &frags, &HostCompiler::probe())
            .unwrap()
            .hex();
        assert_eq!(
            base,
            key(&env, Arch::X86_64, &source, &frags, &HostCompiler::probe())
                .unwrap()
                .hex()
        );
        assert_ne!(
            base,
            key(&env, Arch::I386, &source, &frags, &HostCompiler::probe())
                .unwrap()
                .hex(),
            "arch"
        );
        frags.push(extra.clone());
        let with_extra = key(&env, Arch::X86_64, &source, &frags, &HostCompiler::probe())
            .unwrap()
            .hex();
        assert_ne!(base, with_extra, "an extra fragment");
        std::fs::write(&extra, "# why\nCONFIG_A=m\n").unwrap();
        assert_ne!(
            with_extra,
            key(&env, Arch::X86_64, &source, &frags, &HostCompiler::probe())
                .unwrap()
                .hex(),
            "a fragment byte"
        );
    }
}
