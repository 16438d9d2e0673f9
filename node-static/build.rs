//! Embeds versions.toml and every sources and recipe file it names, so
//! that a new Node version is data and no code.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let root = Path::new(&root);
    let versions = root.join("versions.toml");
    println!("cargo:rerun-if-changed={}", versions.display());
    let text = std::fs::read_to_string(&versions).expect("reading versions.toml");
    let mut out = String::from("pub(crate) const FILES: &[(&str, &str)] = &[\n");
    for line in text.lines() {
        let line = line.trim();
        let Some(value) = line
            .strip_prefix("sources =")
            .or_else(|| line.strip_prefix("recipe ="))
        else {
            continue;
        };
        let name = value.trim().trim_matches('"');
        let path = root.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String");
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("set by cargo")).join("versions.rs");
    std::fs::write(dest, out).expect("writing versions.rs");
}
