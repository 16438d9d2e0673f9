//! The Linux kernel phase (work in progress: sources only so far).

use nodeos_build::Manifest;

/// The Linux sources, shared with the toolchain (UAPI headers).
pub fn manifest() -> Manifest {
    Manifest::parse(include_str!("../sources.toml"), "kernel/sources.toml")
        .expect("kernel/sources.toml is valid (tested)")
}

#[cfg(test)]
mod tests {
    #[test]
    fn manifest_parses() {
        assert!(!super::manifest().variants("linux").is_empty());
    }
}
