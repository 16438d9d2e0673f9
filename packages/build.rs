//! Embeds every `<name>/package.toml` (with its `<name>/sources.toml`)
//! found beside this crate's sources, so that a new package is a new
//! directory of data and no code.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let root = Path::new(&root);
    println!("cargo:rerun-if-changed={}", root.display());
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .expect("reading the packages dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("package.toml").is_file())
        .collect();
    dirs.sort();
    let mut out = String::from("pub(crate) const BUILTIN: &[BuiltinFiles] = &[\n");
    for d in &dirs {
        let name = d.file_name().expect("a dir").to_string_lossy();
        let (pkg, src) = (d.join("package.toml"), d.join("sources.toml"));
        for f in [&pkg, &src] {
            println!("cargo:rerun-if-changed={}", f.display());
        }
        writeln!(
            out,
            "    BuiltinFiles {{ dir: {name:?}, package: include_str!({:?}), sources: include_str!({:?}) }},",
            pkg.display().to_string(),
            src.display().to_string()
        )
        .expect("writing to a String");
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("set by cargo")).join("builtin.rs");
    std::fs::write(dest, out).expect("writing builtin.rs");
}
