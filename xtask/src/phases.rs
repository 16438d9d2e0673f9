//! The registry of phases: every phase of a NodeOS build, each as its crate
//! declares it (name, sources, the phases it depends on, host tools), in
//! build order. `fetch`, `clean`, `doctor` and `image`'s manifest.json read
//! it, so none of them keeps its own list.

use anyhow::{bail, Result};
use nodeos_build::driver::SourceRef;
use nodeos_build::PhaseDecl;

/// Every phase: the toolchain, each library package, node, the kernel and
/// the initramfs.
pub fn all() -> Vec<PhaseDecl> {
    let mut phases = vec![toolchain::decl()];
    phases.extend(packages::Registry::builtin().all().map(|p| p.decl()));
    phases.extend([
        node_static::decl(),
        kernel::decl(),
        initramfs::phase::decl(),
    ]);
    phases
}

/// The phase of this name.
pub fn get(name: &str) -> Option<PhaseDecl> {
    all().into_iter().find(|p| p.name == name)
}

/// Every source any phase builds from, each once (the Linux source serves
/// the toolchain and the kernel).
pub fn sources() -> Vec<SourceRef> {
    let mut out: Vec<SourceRef> = Vec::new();
    for s in all().into_iter().flat_map(|p| p.sources) {
        if !out
            .iter()
            .any(|o| o.name == s.name && o.manifest.sources == s.manifest.sources)
        {
            out.push(s);
        }
    }
    out
}

/// `clean --phase`'s parser: a registered phase name.
pub fn parse_name(s: &str) -> Result<String> {
    let names: Vec<String> = all().into_iter().map(|p| p.name).collect();
    if names.iter().any(|n| n == s) {
        return Ok(s.to_string());
    }
    bail!("no phase named '{s}' (phases: {})", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are unique, every declared dependency is a phase listed before
    /// its dependents, and every source is declared by its manifest.
    #[test]
    fn the_registry_is_consistent() {
        let phases = all();
        for (i, p) in phases.iter().enumerate() {
            assert_eq!(
                phases.iter().filter(|q| q.name == p.name).count(),
                1,
                "{} registered twice",
                p.name
            );
            for d in &p.depends {
                let at = phases.iter().position(|q| &q.name == d);
                assert!(
                    at.is_some_and(|j| j < i),
                    "{} depends on {d}, which is not a phase listed before it",
                    p.name
                );
            }
            for s in &p.sources {
                assert!(
                    !s.manifest.variants(&s.name).is_empty(),
                    "{}: source {} is not in its manifest",
                    p.name,
                    s.name
                );
            }
        }
        for name in ["toolchain", "node", "kernel", "initramfs", "pkg-brotli"] {
            assert!(get(name).is_some(), "{name} is not registered");
        }
        // The Linux source serves two phases and is fetched once.
        let linux = sources().iter().filter(|s| s.name == "linux").count();
        assert_eq!(linux, 1);
    }

    #[test]
    fn an_unknown_phase_name_is_refused_with_the_list() {
        assert_eq!(parse_name("pkg-zlib").unwrap(), "pkg-zlib");
        let e = parse_name("bogus").unwrap_err().to_string();
        assert!(
            e.contains("bogus") && e.contains("pkg-brotli") && e.contains("initramfs"),
            "{e}"
        );
    }
}
