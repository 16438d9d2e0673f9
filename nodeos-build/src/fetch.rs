//! Obtaining sources: the download directory first, then Debian's archive
//! through a private apt configuration, then upstream URLs. Every file is
//! verified by sha256 before it is used; a bad file is deleted.

use crate::source::{DebianKind, DebianOrigin, Manifest, Source};
use crate::util::{create_dir_all, remove_path};
use crate::Env;
use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Checks a file against its pinned hash. On mismatch the file is deleted
/// and the error names the file and both hashes.
pub fn verify(path: &Path, expected: &str) -> Result<()> {
    let actual = crate::util::sha256_file(path)?;
    if actual != expected {
        let _ = fs::remove_file(path);
        bail!(
            "checksum mismatch for {}\n  expected sha256: {expected}\n  actual sha256:   {actual}\nThe file was deleted. Fetch it again (`cargo xtask fetch`); if it keeps failing, the mirror serves a different file than the one pinned.",
            path.display()
        );
    }
    Ok(())
}

/// A source chosen for a build: the variant plus the files it pulls in.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub main: Source,
    pub with: Vec<Source>,
}

impl Resolved {
    pub fn all(&self) -> impl Iterator<Item = &Source> {
        std::iter::once(&self.main).chain(self.with.iter())
    }
    pub fn variant(&self) -> &str {
        &self.main.variant
    }
    /// The `with` source of this name.
    pub fn with_named(&self, name: &str) -> Option<&Source> {
        self.with.iter().find(|s| s.name == name)
    }
    fn present(&self, env: &Env) -> bool {
        self.all().all(|s| env.dl_dir.join(&s.file).is_file())
    }
}

fn resolved_of(manifest: &Manifest, main: &Source) -> Resolved {
    let with = main
        .with
        .iter()
        .filter_map(|w| manifest.get(w, &main.variant).cloned())
        .collect();
    Resolved {
        main: main.clone(),
        with,
    }
}

/// Variants remembered from earlier successful fetches, so that a warm cache
/// is found again without touching the network.
fn selection_file(env: &Env) -> PathBuf {
    env.cache_dir.join("selected-variants.json")
}

fn remembered(env: &Env) -> BTreeMap<String, String> {
    fs::read(selection_file(env))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn remember(env: &Env, name: &str, variant: &str) {
    let mut m = remembered(env);
    if m.get(name).map(|v| v.as_str()) != Some(variant) {
        m.insert(name.to_string(), variant.to_string());
        if let Ok(b) = serde_json::to_vec_pretty(&m) {
            let _ = crate::util::write_atomic(&selection_file(env), &b);
        }
    }
}

fn forced_variant() -> Option<String> {
    std::env::var("NODEOS_SOURCE_VARIANT")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Chooses a variant without any network access: `$NODEOS_SOURCE_VARIANT`
/// if set; else the first variant whose files are all in the download dir;
/// else the one an earlier fetch settled on; else the first declared.
pub fn choose(env: &Env, manifest: &Manifest, name: &str) -> Result<Resolved> {
    let variants = manifest.variants(name);
    if variants.is_empty() {
        bail!("no source named '{name}' is declared");
    }
    if let Some(v) = forced_variant() {
        return match variants.iter().find(|s| s.variant == v) {
            Some(s) => Ok(resolved_of(manifest, s)),
            None => bail!(
                "NODEOS_SOURCE_VARIANT={v}, but {name} has only: {}",
                variants
                    .iter()
                    .map(|s| s.variant.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
    }
    for s in &variants {
        let r = resolved_of(manifest, s);
        if r.present(env) {
            return Ok(r);
        }
    }
    if let Some(v) = remembered(env).get(name) {
        if let Some(s) = variants.iter().find(|s| &s.variant == v) {
            return Ok(resolved_of(manifest, s));
        }
    }
    Ok(resolved_of(manifest, variants[0]))
}

/// Makes sure every file of a package is in the download dir and verified,
/// fetching what is missing. Returns the variant actually used (which may
/// differ from `choose` when the first choice cannot be fetched).
pub fn ensure(fetcher: &mut Fetcher, manifest: &Manifest, name: &str) -> Result<Resolved> {
    let env = fetcher.env.clone();
    let first = choose(&env, manifest, name)?;
    if first.present(&env) {
        for s in first.all() {
            verify(&env.dl_dir.join(&s.file), &s.sha256)?;
        }
        return Ok(first);
    }
    if env.offline {
        let missing: Vec<String> = first
            .all()
            .filter(|s| !env.dl_dir.join(&s.file).is_file())
            .map(|s| format!("  {}  sha256 {}", s.file, s.sha256))
            .collect();
        bail!(
            "--offline: {} is not in the download directory {}\nPut these files there (from any machine that ran `cargo xtask fetch`), or run without --offline:\n{}",
            first.main.id(),
            env.dl_dir.display(),
            missing.join("\n")
        );
    }
    let mut candidates = vec![first.clone()];
    if forced_variant().is_none() {
        for s in manifest.variants(name) {
            if s.variant != first.main.variant {
                candidates.push(resolved_of(manifest, s));
            }
        }
    }
    let mut failures = Vec::new();
    for cand in candidates {
        match fetch_resolved(fetcher, &cand) {
            Ok(()) => {
                remember(&env, name, cand.variant());
                return Ok(cand);
            }
            // A hash mismatch is never papered over by another variant.
            Err(e) if format!("{e:#}").contains("checksum mismatch") => return Err(e),
            Err(e) => failures.push(format!("{} variant: {e:#}", cand.variant())),
        }
    }
    bail!(
        "could not obtain {name}:\n  {}\nPut the file of any variant into {} (see the crate's sources.toml for names and hashes).",
        failures.join("\n  "),
        env.dl_dir.display()
    )
}

fn fetch_resolved(fetcher: &mut Fetcher, r: &Resolved) -> Result<()> {
    for s in r.all() {
        let dest = fetcher.env.dl_dir.join(&s.file);
        if dest.is_file() {
            verify(&dest, &s.sha256)?;
            continue;
        }
        fetcher.fetch_one(s)?;
    }
    Ok(())
}

/// Fetches into the download dir. Holds a per-process scratch dir (removed
/// on drop) so that one `.deb` serving several sources is downloaded once.
pub struct Fetcher {
    pub env: Env,
    scratch: PathBuf,
    apt: Option<PrivateApt>,
}

impl Fetcher {
    pub fn new(env: &Env) -> Result<Fetcher> {
        let partial = env.dl_dir.join(".partial");
        create_dir_all(&partial)?;
        clean_stale_scratch(&partial);
        let scratch = partial.join(std::process::id().to_string());
        remove_path(&scratch)?;
        create_dir_all(&scratch)?;
        Ok(Fetcher {
            env: env.clone(),
            scratch,
            apt: None,
        })
    }

    fn fetch_one(&mut self, s: &Source) -> Result<()> {
        let mut errors = Vec::new();
        if let Some(d) = &s.debian {
            match self.from_debian(s, d) {
                Ok(()) => return Ok(()),
                Err(e) if format!("{e:#}").contains("checksum mismatch") => return Err(e),
                Err(e) => errors.push(format!("debian archive: {e:#}")),
            }
        }
        for url in &s.urls {
            let dest = self.env.dl_dir.join(&s.file);
            match http_download(url, &dest, &s.sha256, &self.scratch) {
                Ok(()) => return Ok(()),
                Err(e) if format!("{e:#}").contains("checksum mismatch") => return Err(e),
                Err(e) => errors.push(format!("{url}: {e:#}")),
            }
        }
        if errors.is_empty() {
            bail!(
                "{} has no way to be fetched (no debian origin, no URL)",
                s.file
            );
        }
        bail!("{}: {}", s.file, errors.join("; "))
    }

    fn from_debian(&mut self, s: &Source, d: &DebianOrigin) -> Result<()> {
        if crate::host::which("apt-get").is_none() {
            bail!("apt-get is not available on this host");
        }
        let pkg_dir = self
            .scratch
            .join(format!("{}_{}", d.package, d.version.replace(':', "%3a")));
        if !pkg_dir.is_dir() {
            let tmp = pkg_dir.with_extension("part");
            remove_path(&tmp)?;
            create_dir_all(&tmp)?;
            if self.apt.is_none() {
                self.apt = Some(PrivateApt::new(&self.env)?);
            }
            let apt = self.apt.as_mut().expect("set above");
            apt.download(d, &tmp)?;
            fs::rename(&tmp, &pkg_dir)?;
        }
        let dest = self.env.dl_dir.join(&s.file);
        let part = self.scratch.join(format!("{}.part", s.file));
        match (d.kind, &d.member) {
            (DebianKind::Binary, member) => {
                let deb = fs::read_dir(&pkg_dir)?
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .find(|p| p.extension().is_some_and(|x| x == "deb"))
                    .ok_or_else(|| {
                        anyhow!("apt-get download left no .deb in {}", pkg_dir.display())
                    })?;
                match member {
                    None => {
                        fs::copy(&deb, &part)?;
                    }
                    Some(m) => extract_deb_member(&deb, m, &part)?,
                }
            }
            (DebianKind::Source, Some(m)) => {
                fs::copy(pkg_dir.join(m), &part).with_context(|| {
                    format!(
                        "apt-get source {}={} did not provide {m}",
                        d.package, d.version
                    )
                })?;
            }
            (DebianKind::Source, None) => unreachable!("validated by the manifest parser"),
        }
        verify(&part, &s.sha256)?;
        fs::rename(&part, &dest)?;
        Ok(())
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        let _ = remove_path(&self.scratch);
    }
}

/// Scratch dirs of killed runs (their pid is gone) are removed.
fn clean_stale_scratch(partial: &Path) {
    let Ok(rd) = fs::read_dir(partial) else {
        return;
    };
    for e in rd.flatten() {
        if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
            let alive = unsafe { libc::kill(pid, 0) } == 0;
            if !alive {
                let _ = remove_path(&e.path());
            }
        }
    }
}

/// Copies one file out of a `.deb`'s data archive.
pub fn extract_deb_member(deb: &Path, member: &str, out: &Path) -> Result<()> {
    // dpkg-deb knows every data.tar compression; tar picks the one member.
    let script = "dpkg-deb --fsys-tarfile \"$1\" | tar -xO \"./$2\" > \"$3\"";
    let st = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(deb)
        .arg(member)
        .arg(out)
        .status()
        .context("running dpkg-deb | tar")?;
    if !st.success() {
        let _ = fs::remove_file(out);
        bail!("could not extract {member} from {}", deb.display());
    }
    Ok(())
}

/// Downloads `url` to `dest` through a partial file, hashing as it goes.
/// A short body (truncated transfer) or a wrong hash deletes the partial.
pub fn http_download(url: &str, dest: &Path, sha256: &str, scratch: &Path) -> Result<()> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(20))
        .timeout_read(Duration::from_secs(60))
        .build();
    let resp = agent.get(url).call().map_err(|e| anyhow!("{e}"))?;
    let expected_len: Option<u64> = resp.header("Content-Length").and_then(|v| v.parse().ok());
    let name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("download");
    let part = scratch.join(format!("{name}.part"));
    let bar = crate::progress::bytes_bar(name, expected_len);
    let result = (|| -> Result<()> {
        let mut reader = resp.into_reader();
        let mut f = fs::File::create(&part)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) => bail!(
                    "truncated download: the transfer broke off after {got}{} bytes ({e})",
                    expected_len.map(|l| format!(" of {l}")).unwrap_or_default()
                ),
            };
            if n == 0 {
                break;
            }
            f.write_all(&buf[..n])
                .with_context(|| format!("writing {}", part.display()))?;
            h.update(&buf[..n]);
            got += n as u64;
            bar.set_position(got);
        }
        f.sync_all().ok();
        if let Some(len) = expected_len {
            if got != len {
                bail!("truncated download: got {got} of {len} bytes");
            }
        }
        let actual = hex::encode(h.finalize());
        if actual != sha256 {
            bail!(
                "checksum mismatch for {url}\n  expected sha256: {sha256}\n  actual sha256:   {actual}\nThe download was deleted."
            );
        }
        Ok(())
    })();
    bar.finish_and_clear();
    match result {
        Ok(()) => fs::rename(&part, dest)
            .with_context(|| format!("moving download to {}", dest.display())),
        Err(e) => {
            let _ = fs::remove_file(&part);
            Err(e)
        }
    }
}

/// apt with its own state under the cache dir: its own source list (a
/// `deb-src` entry derived from the host's Debian mirror), lists and
/// package cache. It never edits /etc and works as a non-root user.
pub struct PrivateApt {
    dir: PathBuf,
    /// The foreign architectures the lists were refreshed with in this
    /// process (`None`: not refreshed yet).
    updated: Option<Vec<String>>,
}

impl PrivateApt {
    pub fn new(env: &Env) -> Result<PrivateApt> {
        let dir = env.cache_dir.join("apt");
        for sub in ["lists/partial", "cache/archives/partial", "sources.list.d"] {
            create_dir_all(&dir.join(sub))?;
        }
        Ok(PrivateApt { dir, updated: None })
    }

    /// `foreign`: architectures besides the host's whose packages are
    /// wanted (a package named `name:i386`); apt then lists both.
    fn options(&self, foreign: &[String]) -> Vec<String> {
        let d = self.dir.display();
        let mut arches = Vec::new();
        if !foreign.is_empty() {
            for a in std::iter::once(native_deb_arch()).chain(foreign.iter().cloned()) {
                arches.push("-o".into());
                arches.push(format!("APT::Architectures::={a}"));
            }
        }
        let mut opts = vec![
            "-o".into(),
            "Dir::Etc::SourceList=/dev/null".into(),
            "-o".into(),
            format!("Dir::Etc::SourceParts={d}/sources.list.d"),
            "-o".into(),
            format!("Dir::State::Lists={d}/lists"),
            "-o".into(),
            format!("Dir::Cache={d}/cache"),
            // The private lists need no lock shared with the system's apt.
            "-o".into(),
            "Debug::NoLocking=1".into(),
            "-q".into(),
        ];
        opts.extend(arches);
        opts
    }

    fn write_sources(&self, suite: &str) -> Result<bool> {
        let mirror = host_debian_mirror()?;
        let mut suites: Vec<String> = self
            .current_suites()
            .into_iter()
            .chain(std::iter::once(suite.to_string()))
            .collect();
        suites.sort();
        suites.dedup();
        let mut text = format!(
            "# Written by NodeOS's build (cargo xtask); private to its cache.\nTypes: deb deb-src\nURIs: {}\nSuites: {}\nComponents: main\n",
            mirror.uri,
            suites.join(" ")
        );
        if let Some(k) = &mirror.signed_by {
            text.push_str(&format!("Signed-By: {k}\n"));
        }
        let path = self.dir.join("sources.list.d/nodeos.sources");
        let changed = fs::read_to_string(&path).ok().as_deref() != Some(text.as_str());
        if changed {
            crate::util::write_atomic(&path, text.as_bytes())?;
        }
        Ok(changed)
    }

    fn current_suites(&self) -> Vec<String> {
        let text =
            fs::read_to_string(self.dir.join("sources.list.d/nodeos.sources")).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("Suites:"))
            .map(|s| s.split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    }

    fn run(&self, args: &[&str], cwd: &Path, foreign: &[String]) -> Result<()> {
        let out = Command::new("apt-get")
            .args(self.options(foreign))
            .args(args)
            .current_dir(cwd)
            .output()
            .context("running apt-get")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
            bail!(
                "apt-get {} failed: {}",
                args.join(" "),
                last[last.len().saturating_sub(3)..].join(" / ")
            );
        }
        Ok(())
    }

    fn update(&mut self, foreign: &[String]) -> Result<()> {
        self.run(&["update"], &self.dir.clone(), foreign)?;
        self.updated = Some(foreign.to_vec());
        Ok(())
    }

    pub fn download(&mut self, d: &DebianOrigin, into: &Path) -> Result<()> {
        let changed = self.write_sources(&d.suite)?;
        let stale = changed
            || fs::read_dir(self.dir.join("lists"))
                .map(|rd| rd.flatten().filter(|e| e.path().is_file()).count() < 2)
                .unwrap_or(true);
        // `nodejs:i386`: a package of another architecture, whose list
        // the private apt fetches only when such a package is asked for.
        let foreign: Vec<String> = d
            .package
            .split_once(':')
            .map(|(_, arch)| vec![arch.to_string()])
            .unwrap_or_default();
        let refreshed = |updated: &Option<Vec<String>>| {
            updated
                .as_ref()
                .is_some_and(|u| foreign.iter().all(|a| u.contains(a)))
        };
        if stale && !refreshed(&self.updated) {
            self.update(&foreign)?;
        }
        let spec = format!("{}={}", d.package, d.version);
        let args: Vec<&str> = match d.kind {
            DebianKind::Binary => vec!["download", &spec],
            DebianKind::Source => vec!["source", "--download-only", &spec],
        };
        match self.run(&args, into, &foreign) {
            Ok(()) => Ok(()),
            // Lists may be old, or lack that architecture: refresh once and
            // retry.
            Err(_) if !refreshed(&self.updated) => {
                self.update(&foreign)?;
                self.run(&args, into, &foreign)
            }
            Err(e) => Err(e),
        }
    }
}

/// The host's Debian architecture name (`amd64` on x86_64), which apt
/// keeps listing beside a foreign one.
fn native_deb_arch() -> String {
    Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "amd64".to_string())
}

struct Mirror {
    uri: String,
    signed_by: Option<String>,
}

/// The host's Debian mirror (`$NODEOS_DEBIAN_MIRROR` overrides), read from
/// /etc/apt/sources.list.d/*.sources (deb822) or /etc/apt/sources.list.
fn host_debian_mirror() -> Result<Mirror> {
    if let Ok(uri) = std::env::var("NODEOS_DEBIAN_MIRROR") {
        if !uri.trim().is_empty() {
            return Ok(Mirror {
                uri: uri.trim().to_string(),
                signed_by: None,
            });
        }
    }
    let mut stanzas: Vec<(String, String, Option<String>)> = Vec::new();
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|x| x == "sources"))
        {
            for stanza in fs::read_to_string(f).unwrap_or_default().split("\n\n") {
                let field = |k: &str| {
                    stanza
                        .lines()
                        .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
                };
                if let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) {
                    let uri = uris.split_whitespace().next().unwrap_or("").to_string();
                    stanzas.push((uri, suites, field("Signed-By:")));
                }
            }
        }
    }
    for line in fs::read_to_string("/etc/apt/sources.list")
        .unwrap_or_default()
        .lines()
    {
        let mut words = line
            .split_whitespace()
            .filter(|w| !w.starts_with('[') && !w.ends_with(']'));
        if words.next() == Some("deb") {
            if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
                stanzas.push((uri.to_string(), suite.to_string(), None));
            }
        }
    }
    stanzas
        .into_iter()
        .find(|(uri, suites, _)| !uri.contains("security") && !suites.contains("-security"))
        .map(|(uri, _, signed_by)| Mirror { uri, signed_by })
        .ok_or_else(|| {
            anyhow!("no Debian mirror found in /etc/apt/sources.list(.d); set NODEOS_DEBIAN_MIRROR to a Debian archive URL")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_deletes_bad_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"hello").unwrap();
        let good = crate::util::sha256_bytes(b"hello");
        verify(&p, &good).unwrap();
        fs::write(&p, b"hellO").unwrap();
        let e = format!("{:#}", verify(&p, &good).unwrap_err());
        assert!(
            e.contains(&good) && e.contains(&crate::util::sha256_bytes(b"hellO")),
            "{e}"
        );
        assert!(!p.exists(), "a mismatching file must be deleted");
    }
}
