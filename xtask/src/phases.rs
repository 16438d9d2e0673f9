//! The registry of phases: every phase of a NodeOS build, each as its crate
//! declares it (name, sources, the phases it depends on, host tools), in
//! build order. `fetch`, `clean`, `doctor` and `image`'s manifest.json read
//! it, so none of them keeps its own list.
//!
//! `icecc-env` (icecream's packed toolchain) is keyed and cached like a
//! phase but is not one: the icecc launcher makes it on demand for a
//! compile, with no sources, and no build or image depends on it.

use anyhow::{bail, Result};
use node_static::NodeVersion;
use nodeos_build::driver::SourceRef;
use nodeos_build::PhaseDecl;

/// The phases of a build with Node `nv`, in build order: the toolchain,
/// the library packages its recipe links (dependencies first, each from
/// the source entry the recipe pins), node, the kernel and the initramfs.
pub fn of(nv: &NodeVersion) -> Result<Vec<PhaseDecl>> {
    let registry = packages::Registry::builtin();
    let mut phases = vec![toolchain::decl()];
    for v in nv.recipe.variants.values() {
        for (name, source) in v.package_sources() {
            for p in registry.closure(name)? {
                let decl = match source {
                    Some(s) if p.spec.name == name => p.decl_of(s),
                    _ => p.decl(),
                };
                if !phases.iter().any(|q| q.name == decl.name) {
                    phases.push(decl);
                }
            }
        }
    }
    phases.extend([
        node_static::decl(nv),
        kernel::decl(),
        initramfs::phase::decl(),
    ]);
    Ok(phases)
}

/// Every phase of every Node version's build (and its node-source, which
/// `node-test` builds), then each library package no
/// version links (built on its own, e.g. zlib). A name appears once per
/// version whose declaration of it differs (Node 18's and 22's node and
/// brotli come from different sources).
pub fn every() -> Vec<PhaseDecl> {
    let mut out: Vec<PhaseDecl> = Vec::new();
    let mut push = |d: PhaseDecl| {
        if !out.iter().any(|o| {
            o.name == d.name
                && o.sources
                    .iter()
                    .map(|s| (&s.name, &s.manifest.sources))
                    .eq(d.sources.iter().map(|s| (&s.name, &s.manifest.sources)))
        }) {
            out.push(d);
        }
    };
    for nv in node_static::all_versions() {
        for d in of(nv).expect("versions.toml's recipes name registered packages (tested)") {
            push(d);
        }
        // node-test's: the prepared source tree it takes the tests from.
        push(node_static::source_tree::decl(nv));
    }
    for p in packages::Registry::builtin().all() {
        push(p.decl());
    }
    out
}

/// Every phase name, each once, in build order.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for p in every() {
        if !names.contains(&p.name) {
            names.push(p.name);
        }
    }
    names
}

/// Phase names in the order a build runs them: the newest Node version's
/// build, then what older versions add.
pub fn build_order() -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for nv in node_static::all_versions().iter().rev() {
        for d in of(nv).expect("versions.toml's recipes name registered packages (tested)") {
            if !names.contains(&d.name) {
                names.push(d.name);
            }
        }
    }
    names
}

/// Every source `phases` build from, each once (the Linux source serves
/// the toolchain and the kernel).
pub fn sources(phases: &[PhaseDecl]) -> Vec<SourceRef> {
    let mut out: Vec<SourceRef> = Vec::new();
    for s in phases.iter().flat_map(|p| &p.sources) {
        if !out
            .iter()
            .any(|o| o.name == s.name && o.manifest.sources == s.manifest.sources)
        {
            out.push(s.clone());
        }
    }
    out
}

/// `clean --phase`'s parser: a registered phase name.
pub fn parse_name(s: &str) -> Result<String> {
    let names = names();
    if names.iter().any(|n| n == s) {
        return Ok(s.to_string());
    }
    bail!("no phase named '{s}' (phases: {})", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_order_puts_each_phase_after_what_it_needs() {
        let order = build_order();
        let at = |n: &str| order.iter().position(|p| p == n).unwrap();
        assert_eq!(order[0], toolchain::PHASE);
        assert!(at("pkg-openssl") < at(node_static::PHASE));
        assert!(at("pkg-brotli") < at(node_static::PHASE));
        assert!(at(node_static::PHASE) < at(kernel::PHASE));
        let unique: std::collections::HashSet<&String> = order.iter().collect();
        assert_eq!(unique.len(), order.len(), "each name once: {order:?}");
    }

    /// In each version's build: names are unique, every declared
    /// dependency is a phase listed before its dependents, and every source
    /// is declared by its manifest.
    #[test]
    fn each_build_is_consistent() {
        for nv in node_static::all_versions() {
            let phases = of(nv).unwrap();
            for (i, p) in phases.iter().enumerate() {
                assert_eq!(
                    phases.iter().filter(|q| q.name == p.name).count(),
                    1,
                    "Node {}: {} registered twice",
                    nv.major,
                    p.name
                );
                for d in &p.depends {
                    let at = phases.iter().position(|q| &q.name == d);
                    assert!(
                        at.is_some_and(|j| j < i),
                        "Node {}: {} depends on {d}, which is not a phase listed before it",
                        nv.major,
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
            // The Linux source serves two phases and is fetched once.
            let linux = sources(&phases)
                .iter()
                .filter(|s| s.name == "linux")
                .count();
            assert_eq!(linux, 1);
        }
    }

    fn package_phases(nv: &NodeVersion) -> Vec<(String, Vec<String>)> {
        of(nv)
            .unwrap()
            .into_iter()
            .filter(|p| p.name.starts_with("pkg-"))
            .map(|p| (p.name, p.sources.into_iter().map(|s| s.name).collect()))
            .collect()
    }

    /// Node 18 links brotli 1.0.9 only; Node 22 links all eleven library
    /// packages, brotli from the 1.1.0 entry its recipe pins.
    #[test]
    fn each_version_builds_the_packages_its_recipe_links() {
        let v18 = package_phases(node_static::version("18").unwrap());
        assert_eq!(
            v18,
            vec![("pkg-brotli".to_string(), vec!["brotli".to_string()])]
        );
        let v22 = package_phases(node_static::version("22").unwrap());
        let mut names: Vec<&str> = v22.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "pkg-ada",
                "pkg-brotli",
                "pkg-c-ares",
                "pkg-llhttp",
                "pkg-nghttp2",
                "pkg-openssl",
                "pkg-simdjson",
                "pkg-simdutf",
                "pkg-sqlite",
                "pkg-zlib",
                "pkg-zstd"
            ]
        );
        let brotli = v22.iter().find(|(n, _)| n == "pkg-brotli").unwrap();
        assert_eq!(brotli.1, ["brotli-1.1.0"]);
        // Node 22's node phase declares 22's sources and its parts tools.
        let node = of(node_static::version("22").unwrap())
            .unwrap()
            .into_iter()
            .find(|p| p.name == "node")
            .unwrap();
        assert!(node.sources[0]
            .manifest
            .variants("node")
            .iter()
            .all(|s| s.version.starts_with("22.")));
        assert!(node.host_tools.contains(&nodeos_build::host::Need::Parts));
    }

    #[test]
    fn every_phase_is_named_once() {
        let names = names();
        for name in [
            "toolchain",
            "node",
            "kernel",
            "initramfs",
            "pkg-brotli",
            "pkg-zlib",
        ] {
            assert_eq!(
                names.iter().filter(|n| *n == name).count(),
                1,
                "{name} is not registered once: {names:?}"
            );
        }
    }

    #[test]
    fn an_unknown_phase_name_is_refused_with_the_list() {
        assert_eq!(parse_name("pkg-zlib").unwrap(), "pkg-zlib");
        assert_eq!(parse_name("pkg-simdjson").unwrap(), "pkg-simdjson");
        let e = parse_name("bogus").unwrap_err().to_string();
        assert!(
            e.contains("bogus") && e.contains("pkg-brotli") && e.contains("initramfs"),
            "{e}"
        );
    }
}
