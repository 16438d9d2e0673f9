//! Cache keys: a sha256 over every input of a phase. Fields are written with
//! their names and lengths so that no two different input sets can produce
//! the same byte stream.

use crate::source::Source;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

#[derive(Clone)]
pub struct Key {
    hasher: Sha256,
    /// Human-readable record of what went in (written next to the output).
    pub inputs: Vec<String>,
}

impl Key {
    /// `recipe_version` is bumped by hand when a recipe's steps change in a
    /// way its data does not show.
    pub fn new(phase: &str, recipe_version: u32) -> Key {
        let mut k = Key {
            hasher: Sha256::new(),
            inputs: Vec::new(),
        };
        k.str("phase", phase);
        k.str("recipe-version", &recipe_version.to_string());
        k
    }

    fn raw(&mut self, label: &str, bytes: &[u8]) {
        self.hasher.update((label.len() as u64).to_le_bytes());
        self.hasher.update(label.as_bytes());
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    pub fn str(&mut self, label: &str, value: &str) -> &mut Self {
        self.raw(label, value.as_bytes());
        self.inputs.push(format!("{label} = {value}"));
        self
    }

    pub fn list(&mut self, label: &str, values: &[String]) -> &mut Self {
        self.raw(label, values.join("\u{0}").as_bytes());
        self.inputs.push(format!("{label} = {}", values.join(" ")));
        self
    }

    pub fn source(&mut self, s: &Source) -> &mut Self {
        self.raw(
            &format!("source:{}", s.name),
            format!("{}\0{}\0{}", s.variant, s.file, s.sha256).as_bytes(),
        );
        self.inputs
            .push(format!("source {} = {} {}", s.name, s.file, s.sha256));
        self
    }

    /// A file's bytes (e.g. a config fragment).
    pub fn file(&mut self, label: &str, path: &Path) -> Result<&mut Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        self.raw(label, &bytes);
        self.inputs.push(format!(
            "{label} = {} sha256 {}",
            path.display(),
            crate::util::sha256_bytes(&bytes)
        ));
        Ok(self)
    }

    /// Every file under a directory, by relative path and bytes, in sorted
    /// order (e.g. a patch directory). A missing directory counts as empty.
    pub fn dir(&mut self, label: &str, dir: &Path) -> Result<&mut Self> {
        let files = crate::util::files_sorted(dir)?;
        self.raw(label, format!("{} files", files.len()).as_bytes());
        for f in files {
            let rel = f
                .strip_prefix(dir)
                .unwrap_or(&f)
                .to_string_lossy()
                .to_string();
            self.file(&format!("{label}/{rel}"), &f)?;
        }
        Ok(self)
    }

    /// The key of a phase this one depends on.
    pub fn dep(&mut self, label: &str, key_hex: &str) -> &mut Self {
        self.str(&format!("dep:{label}"), key_hex)
    }

    pub fn hex(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_changes_with_every_input_and_only_then() {
        let d = tempfile::tempdir().unwrap();
        let patches = d.path().join("patches");
        std::fs::create_dir_all(&patches).unwrap();
        std::fs::write(patches.join("0001-a.patch"), b"--- a\n+++ b\n").unwrap();
        let make = |flag: &str| {
            let mut k = Key::new("toolchain", 1);
            k.str("arch", "x86_64").list("flags", &[flag.to_string()]);
            k.dir("patches", &patches).unwrap();
            k.hex()
        };
        let base = make("--disable-nls");
        assert_eq!(base, make("--disable-nls"), "same inputs, same key");
        assert_ne!(base, make("--disable-nlS"), "a flag byte changes the key");
        std::fs::write(patches.join("0001-a.patch"), b"--- a\n+++ c\n").unwrap();
        let patched = make("--disable-nls");
        assert_ne!(base, patched, "a patch byte changes the key");
        std::fs::write(patches.join("0002-b.patch"), b"").unwrap();
        assert_ne!(
            patched,
            make("--disable-nls"),
            "a new (even empty) patch changes the key"
        );
        // Field boundaries matter: ("ab","c") differs from ("a","bc").
        let mut a = Key::new("p", 1);
        a.str("x", "ab").str("y", "c");
        let mut b = Key::new("p", 1);
        b.str("x", "a").str("y", "bc");
        assert_ne!(a.hex(), b.hex());
    }
}
