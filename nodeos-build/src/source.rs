//! Sources as data: each crate owns a `sources.toml` that declares every
//! file it needs, pinned by sha256, with where to obtain it.
//!
//! One logical package (`name`) may have several *variants* (e.g.
//! `upstream`, the release tarball, and `debian`, the same release as
//! repacked by Debian and reachable through apt). Each variant is its own
//! file with its own hash; recipes ask for a name and get one variant.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::HashSet;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "source", default)]
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Logical package name the recipe asks for, e.g. `gcc`.
    pub name: String,
    /// Which form of the package this is, e.g. `upstream` or `debian`.
    pub variant: String,
    pub version: String,
    /// File name in the download directory.
    pub file: String,
    pub sha256: String,
    /// HTTPS URLs, tried in order (for users who are online).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Where the file is found in Debian's archive.
    pub debian: Option<DebianOrigin>,
    /// A path under the pool of the host's Debian mirror, for a file whose
    /// version no suite's index lists any more (fetched by plain URL).
    pub debian_pool: Option<String>,
    /// A package tarball of the npm registry, fetched with `npm pack`.
    pub npm: Option<RegistryOrigin>,
    /// A source distribution (sdist) of the Python package index, fetched
    /// with `pip download`.
    pub pypi: Option<RegistryOrigin>,
    /// Other sources of the same manifest (by name) that this variant needs,
    /// e.g. Debian's GCC needs Debian's GFDL build diff.
    #[serde(default)]
    pub with: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DebianOrigin {
    pub package: String,
    pub version: String,
    /// Distribution suite that carries this version, e.g. `bookworm`.
    pub suite: String,
    pub kind: DebianKind,
    /// For `binary`: the path inside the package's data (without `./`),
    /// or absent to take the `.deb` itself. For `source`: the name of one of
    /// the files `apt-get source` downloads.
    pub member: Option<String>,
}

/// A package of a language registry (npm, PyPI), fetched with that
/// registry's own client configured as the user has it (registry URL,
/// proxy, certificates); the pinned sha256 decides, as for every source.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryOrigin {
    pub package: String,
    pub version: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DebianKind {
    /// `apt-get download` (a `.deb`).
    Binary,
    /// `apt-get source --download-only` (`.dsc`, orig and debian tarballs).
    Source,
}

impl Manifest {
    pub fn parse(text: &str, origin: &str) -> Result<Manifest> {
        let m: Manifest =
            toml::from_str(text).with_context(|| format!("parsing source manifest {origin}"))?;
        m.validate()
            .with_context(|| format!("invalid source manifest {origin}"))?;
        Ok(m)
    }

    fn validate(&self) -> Result<()> {
        let mut seen = HashSet::new();
        let mut files = HashSet::new();
        for s in &self.sources {
            let id = format!("{} ({})", s.name, s.variant);
            if s.name.is_empty() || s.variant.is_empty() || s.version.is_empty() {
                bail!("a source has an empty name, variant or version: {id}");
            }
            if !seen.insert((s.name.clone(), s.variant.clone())) {
                bail!("source {id} is declared twice");
            }
            if s.file.is_empty() || s.file.contains('/') || s.file.starts_with('.') {
                bail!(
                    "source {id}: file name '{}' must be a plain file name",
                    s.file
                );
            }
            if !files.insert(s.file.clone()) {
                bail!(
                    "source {id}: file name '{}' is used by another source",
                    s.file
                );
            }
            if s.sha256.len() != 64
                || !s
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                bail!(
                    "source {id}: sha256 '{}' is not 64 lowercase hex digits",
                    s.sha256
                );
            }
            for u in &s.urls {
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    bail!("source {id}: URL '{u}' is not http(s)");
                }
            }
            if let Some(p) = &s.debian_pool {
                if p.is_empty()
                    || p.starts_with('/')
                    || p.split('/').any(|c| c == ".." || c.is_empty())
                {
                    bail!("source {id}: debian_pool '{p}' must be a relative path under the mirror's pool/");
                }
            }
            for (kind, o) in [("npm", &s.npm), ("pypi", &s.pypi)] {
                if let Some(o) = o {
                    if o.package.is_empty() || o.version.is_empty() {
                        bail!("source {id}: {kind} origin needs package and version");
                    }
                    // Passed to the client as one argument; a space or an
                    // option-like name would change what it does.
                    let bad = |t: &str| {
                        t.starts_with('-')
                            || t.chars()
                                .any(|c| c.is_whitespace() || c == '=' || c == '<' || c == '>')
                    };
                    if bad(&o.package) || bad(&o.version) {
                        bail!("source {id}: {kind} origin '{}' '{}' must be a plain name and an exact version", o.package, o.version);
                    }
                }
            }
            if let Some(d) = &s.debian {
                if d.package.is_empty() || d.version.is_empty() || d.suite.is_empty() {
                    bail!("source {id}: debian origin needs package, version and suite");
                }
                if d.kind == DebianKind::Source && d.member.is_none() {
                    bail!("source {id}: a debian source package origin must name the member file it provides");
                }
            }
        }
        for s in &self.sources {
            for w in &s.with {
                if !self
                    .sources
                    .iter()
                    .any(|o| &o.name == w && o.variant == s.variant)
                {
                    bail!(
                        "source {} ({}) needs '{w}' of the same variant, which is not declared",
                        s.name,
                        s.variant
                    );
                }
            }
        }
        Ok(())
    }

    /// All variants of a package, in declared (preference) order.
    pub fn variants(&self, name: &str) -> Vec<&Source> {
        self.sources.iter().filter(|s| s.name == name).collect()
    }

    pub fn get(&self, name: &str, variant: &str) -> Option<&Source> {
        self.sources
            .iter()
            .find(|s| s.name == name && s.variant == variant)
    }
}

impl Source {
    pub fn id(&self) -> String {
        format!("{}-{} ({})", self.name, self.version, self.variant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[source]]
name = "musl"
variant = "upstream"
version = "1.2.3"
file = "musl-1.2.3.tar.gz"
sha256 = "7d5b0b6062521e4627e099e4c9dc8248d32a30285e959b7eecaa780cf8cfd4a4"
urls = ["https://musl.libc.org/releases/musl-1.2.3.tar.gz"]

[[source]]
name = "gcc"
variant = "debian"
version = "12.2.0"
file = "gcc-12.2.0-dfsg.tar.xz"
sha256 = "50c63ff82919323c25fbbb4a9eae259edc974118a0fb30c905190cb782ec11c2"
with = ["gfdl"]
debian = { package = "gcc-12-source", version = "12.2.0-14+deb12u1", suite = "bookworm", kind = "binary", member = "usr/src/gcc-12/gcc-12.2.0-dfsg.tar.xz" }

[[source]]
name = "gfdl"
variant = "debian"
version = "12.2.0"
file = "gfdl.diff"
sha256 = "29b36f739f29959b580364a7aff45a0f291a6bd7c803af6794b737130acfb751"
"#;

    #[test]
    fn parses_good_manifest() {
        let m = Manifest::parse(GOOD, "test").unwrap();
        assert_eq!(m.sources.len(), 3);
        assert_eq!(
            m.variants("gcc")[0].debian.as_ref().unwrap().kind,
            DebianKind::Binary
        );
    }

    fn bad(text: &str, needle: &str) {
        let e = format!("{:#}", Manifest::parse(text, "test").unwrap_err());
        assert!(e.contains(needle), "error '{e}' should mention '{needle}'");
    }

    #[test]
    fn rejects_bad_manifests() {
        bad(&GOOD.replace("7d5b0b", "7D5B0B"), "lowercase hex");
        bad(
            &GOOD.replace("cf8cfd4a4\"", "cf8cfd4\""),
            "64 lowercase hex",
        );
        bad(
            &GOOD.replace("file = \"gfdl.diff\"", "file = \"../gfdl.diff\""),
            "plain file name",
        );
        bad(
            &GOOD.replace("with = [\"gfdl\"]", "with = [\"nope\"]"),
            "'nope'",
        );
        bad(
            &GOOD.replace("name = \"gfdl\"", "name = \"gcc\""),
            "declared twice",
        );
        bad(&format!("{GOOD}\nbogus = 1\n"), "bogus");
        bad(&GOOD.replace("https://musl", "ftp://musl"), "not http");
        bad(&GOOD.replace("kind = \"binary\"", "kind = \"rpm\""), "rpm");
        bad("[[source]]\nname = \"x\"\n", "missing field");
        let musl = "urls = [\"https://musl.libc.org/releases/musl-1.2.3.tar.gz\"]";
        Manifest::parse(
            &GOOD.replace(
                musl,
                "npm = { package = \"@esbuild/linux-x64\", version = \"0.19.10\" }",
            ),
            "test",
        )
        .unwrap();
        bad(
            &GOOD.replace(musl, "npm = { package = \"acorn\", version = \">=8\" }"),
            "exact version",
        );
        bad(
            &GOOD.replace(
                musl,
                "pypi = { package = \"--index-url\", version = \"1\" }",
            ),
            "plain name",
        );
        bad(
            &GOOD.replace(musl, "pypi = { package = \"llhttp\" }"),
            "missing field",
        );
        bad(
            &GOOD.replace(musl, "debian_pool = \"main/c/../../etc/passwd\""),
            "under the mirror's pool",
        );
    }
}
