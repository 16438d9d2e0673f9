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

/// A file whose bytes are not the pinned ones. Never papered over by
/// another variant or origin: the pin or the mirror is wrong, and a person
/// must look. Any other fetch failure means "unavailable here".
#[derive(Debug)]
pub struct ChecksumMismatch {
    /// The file or URL.
    pub what: String,
    pub expected: String,
    pub actual: String,
    /// What happened to the bytes and what to do.
    pub advice: &'static str,
}

impl std::fmt::Display for ChecksumMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "checksum mismatch for {}\n  expected sha256: {}\n  actual sha256:   {}\n{}",
            self.what, self.expected, self.actual, self.advice
        )
    }
}

impl std::error::Error for ChecksumMismatch {}

/// Whether `e` (or anything in its chain) is a [`ChecksumMismatch`].
pub fn is_checksum_mismatch(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<ChecksumMismatch>())
}

/// Checks a file against its pinned hash. On mismatch the file is deleted
/// and the error ([`ChecksumMismatch`]) names the file and both hashes.
pub fn verify(path: &Path, expected: &str) -> Result<()> {
    let actual = crate::util::sha256_file(path)?;
    if actual != expected {
        let _ = fs::remove_file(path);
        return Err(ChecksumMismatch {
            what: path.display().to_string(),
            expected: expected.to_string(),
            actual,
            advice: "The file was deleted. Fetch it again (`cargo xtask fetch`); if it keeps failing, the mirror serves a different file than the one pinned.",
        }
        .into());
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
            Err(e) if is_checksum_mismatch(&e) => return Err(e),
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

/// Fetches into the download dir. Holds a scratch dir of its own (removed
/// on drop) so that one `.deb` serving several sources is downloaded once.
pub struct Fetcher {
    pub env: Env,
    scratch: ScratchDir,
    apt: Option<PrivateApt>,
}

impl Fetcher {
    pub fn new(env: &Env) -> Result<Fetcher> {
        let root = scratch_root(&env.dl_dir);
        remove_stale_scratch(&root);
        let scratch = ScratchDir::create_in(&root)?;
        Ok(Fetcher {
            env: env.clone(),
            scratch,
            apt: None,
        })
    }

    fn fetch_one(&mut self, s: &Source) -> Result<()> {
        let mut errors = Vec::new();
        if let Some(d) = &s.debian {
            match self.fetch_from_debian(s, d) {
                Ok(()) => return Ok(()),
                Err(e) if is_checksum_mismatch(&e) => return Err(e),
                Err(e) => errors.push(format!("debian archive: {e:#}")),
            }
        }
        if let Some(path) = &s.debian_pool {
            let url = match host_debian_mirror() {
                Ok(m) => Some(format!("{}/pool/{path}", m.uri.trim_end_matches('/'))),
                Err(e) => {
                    errors.push(format!("debian pool: {e:#}"));
                    None
                }
            };
            if let Some(url) = url {
                let dest = self.env.dl_dir.join(&s.file);
                match http_download(&url, &dest, &s.sha256, &self.scratch.dir) {
                    Ok(()) => return Ok(()),
                    Err(e) if is_checksum_mismatch(&e) => return Err(e),
                    Err(e) => errors.push(format!("{url}: {e:#}")),
                }
            }
        }
        for (registry, origin) in [(Registry::Npm, &s.npm), (Registry::Pypi, &s.pypi)] {
            if let Some(o) = origin {
                match self.fetch_from_registry(s, registry, o) {
                    Ok(()) => return Ok(()),
                    Err(e) if is_checksum_mismatch(&e) => return Err(e),
                    Err(e) => errors.push(format!("{}: {e:#}", registry.name())),
                }
            }
        }
        for url in &s.urls {
            let dest = self.env.dl_dir.join(&s.file);
            match http_download(url, &dest, &s.sha256, &self.scratch.dir) {
                Ok(()) => return Ok(()),
                Err(e) if is_checksum_mismatch(&e) => return Err(e),
                Err(e) => errors.push(format!("{url}: {e:#}")),
            }
        }
        if errors.is_empty() {
            bail!(
                "{} has no way to be fetched (no debian, npm or pypi origin, no URL)",
                s.file
            );
        }
        bail!("{}: {}", s.file, errors.join("; "))
    }

    fn fetch_from_debian(&mut self, s: &Source, d: &DebianOrigin) -> Result<()> {
        if crate::host::which("apt-get").is_none() {
            bail!("apt-get is not available on this host");
        }
        let pkg_dir =
            self.scratch
                .dir
                .join(format!("{}_{}", d.package, d.version.replace(':', "%3a")));
        if !pkg_dir.is_dir() {
            let tmp = pkg_dir.with_extension("part");
            remove_path(&tmp)?;
            create_dir_all(&tmp)?;
            if self.apt.is_none() {
                self.apt = Some(PrivateApt::new(&self.env)?);
            }
            let apt = self.apt.as_mut().expect("set above");
            let downloaded = apt.download(d, &tmp);
            accept_apt_result(downloaded, d, &tmp)?;
            fs::rename(&tmp, &pkg_dir)?;
        }
        let dest = self.env.dl_dir.join(&s.file);
        let part = self.scratch.dir.join(format!("{}.part", s.file));
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

/// What `apt-get` left behind decides, not its exit status: `apt-get
/// source` exits non-zero when any file of the source package is missing
/// from the archive (often the `.dsc` or the Debian tarball of a version
/// the mirror only half keeps), even when the one file a source needs
/// arrived. That file is then taken, and its sha256 (checked next) says
/// whether it is the pinned one.
pub fn accept_apt_result(result: Result<()>, d: &DebianOrigin, dir: &Path) -> Result<()> {
    match (result, d.kind, &d.member) {
        (Ok(()), _, _) => Ok(()),
        (Err(e), DebianKind::Source, Some(m)) if dir.join(m).is_file() => {
            eprintln!(
                "note: apt-get source {}={} did not get every file of the source package ({e:#}); {m} arrived and is checked against its pin",
                d.package, d.version
            );
            Ok(())
        }
        (Err(e), _, _) => Err(e),
    }
}

/// A language registry whose own client fetches a pinned package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    Npm,
    Pypi,
}

impl Registry {
    pub fn name(self) -> &'static str {
        match self {
            Registry::Npm => "npm",
            Registry::Pypi => "pypi",
        }
    }

    /// The client program (looked up on PATH).
    pub fn client(self) -> &'static str {
        match self {
            Registry::Npm => "npm",
            Registry::Pypi => "python3",
        }
    }

    /// The client's command line that writes the package's file into
    /// `into`. The registry, proxy and certificates are the client's own
    /// configuration (`npm config`, `pip config`, their environment
    /// variables).
    pub fn command(self, o: &crate::source::RegistryOrigin, into: &Path) -> Command {
        let mut c = Command::new(self.client());
        match self {
            Registry::Npm => {
                c.arg("pack")
                    .arg(format!("{}@{}", o.package, o.version))
                    .arg("--pack-destination")
                    .arg(into)
                    .args(["--json", "--ignore-scripts", "--no-fund", "--no-audit"])
                    .current_dir(into);
            }
            Registry::Pypi => {
                // The sdist only: a wheel is not a source.
                c.args(["-m", "pip", "download", "--no-deps", "--no-binary"])
                    .arg(&o.package)
                    .arg("--dest")
                    .arg(into)
                    .arg(format!("{}=={}", o.package, o.version))
                    .current_dir(into);
            }
        }
        c
    }
}

impl Fetcher {
    fn fetch_from_registry(
        &mut self,
        s: &Source,
        registry: Registry,
        o: &crate::source::RegistryOrigin,
    ) -> Result<()> {
        if crate::host::which(registry.client()).is_none() {
            bail!(
                "{} is not installed: it fetches {} {}",
                registry.client(),
                o.package,
                o.version
            );
        }
        let dir = self.scratch.dir.join(format!(
            "{}-{}-{}",
            registry.name(),
            o.package.replace('/', "_"),
            o.version
        ));
        remove_path(&dir)?;
        create_dir_all(&dir)?;
        let out = registry
            .command(o, &dir)
            .output()
            .with_context(|| format!("running {}", registry.client()))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
            bail!(
                "{} could not fetch {} {}: {}",
                registry.client(),
                o.package,
                o.version,
                last[last.len().saturating_sub(3)..].join(" / ")
            );
        }
        // The client names the file itself (npm drops a scope's `@`, pip
        // keeps the index's name): the one file it wrote is the package.
        let files: Vec<PathBuf> = fs::read_dir(&dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        let [got] = files.as_slice() else {
            bail!(
                "{} left {} files in {} for {} {}, expected one",
                registry.client(),
                files.len(),
                dir.display(),
                o.package,
                o.version
            );
        };
        verify(got, &s.sha256)?;
        fs::rename(got, self.env.dl_dir.join(&s.file))?;
        Ok(())
    }
}

/// Where fetches keep their scratch dirs: `<dl>/.partial/<pid>-<n>/`.
pub fn scratch_root(dl_dir: &Path) -> PathBuf {
    dl_dir.join(".partial")
}

/// A fetch's scratch dir, locked (`flock` on the directory) for as long as
/// the fetch lives. The lock, not the pid in the name, tells a live fetch
/// from a killed one: a fetch of another user or container sharing the
/// download dir is invisible to `kill(pid, 0)` but holds its lock.
struct ScratchDir {
    dir: PathBuf,
    _lock: fs::File,
}

impl ScratchDir {
    fn create_in(root: &Path) -> Result<ScratchDir> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        create_dir_all(root)?;
        for _ in 0..64 {
            let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = root.join(format!("{}-{n}", std::process::id()));
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("creating scratch dir {}", dir.display()))
                }
            }
            let lock = fs::File::open(&dir)
                .with_context(|| format!("opening scratch dir {}", dir.display()))?;
            // A sweep of another fetch may have taken the new dir before
            // the lock did: then it is gone, and the next name is tried.
            if try_flock(&lock) && same_inode(&lock, &dir) {
                return Ok(ScratchDir { dir, _lock: lock });
            }
        }
        bail!(
            "could not create a scratch dir in {}: other fetches keep removing them",
            root.display()
        )
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Removed while still locked, so no sweep races with it.
        let _ = remove_path(&self.dir);
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: true when taken.
fn try_flock(f: &fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a descriptor we own.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Whether `path` still names the file `f` has open.
fn same_inode(f: &fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// What a sweep of the scratch root found.
#[derive(Debug, Default)]
pub struct ScratchSweep {
    pub removed: Vec<PathBuf>,
    /// Scratch dirs of fetches that are running (their lock is held).
    pub live: Vec<PathBuf>,
}

/// Removes the scratch dirs of fetches that are no longer running (killed,
/// or of another machine): those whose lock can be taken. Only names a
/// fetch gives its dir (`<pid>` or `<pid>-<n>`) are considered; anything
/// else in the root is left alone.
pub fn remove_stale_scratch(root: &Path) -> ScratchSweep {
    let mut sweep = ScratchSweep::default();
    let Ok(rd) = fs::read_dir(root) else {
        return sweep;
    };
    let mut dirs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let is_scratch_name = dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            let (pid, n) = n.split_once('-').unwrap_or((n, "0"));
            [pid, n]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        });
        if !is_scratch_name || !fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let Ok(lock) = fs::File::open(&dir) else {
            continue;
        };
        if !try_flock(&lock) {
            sweep.live.push(dir);
            continue;
        }
        if same_inode(&lock, &dir) && remove_path(&dir).is_ok() {
            sweep.removed.push(dir);
        }
    }
    sweep
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
            return Err(ChecksumMismatch {
                what: url.to_string(),
                expected: sha256.to_string(),
                actual,
                advice: "The download was deleted.",
            }
            .into());
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

/// apt with its own configuration and state under the cache dir: its own
/// source list (a `deb-src` entry derived from the host's Debian mirror),
/// lists and package cache. It never edits /etc, works as a non-root user,
/// and reads none of the host's apt configuration (`/etc/apt/apt.conf`,
/// `apt.conf.d`, preferences): no hooks, no extra index targets. It keeps
/// the host's trusted keyrings (to check signed archives), its mirror
/// credentials (`auth.conf`) and its proxy settings, which say how this
/// machine reaches the mirror.
///
/// Runs sharing a cache take turns through an `flock` on `apt/lock`; apt's
/// own locks stay on, in the private dirs.
pub struct PrivateApt {
    dir: PathBuf,
    /// What the lists were last refreshed with in this process (`None`:
    /// not refreshed yet).
    updated: Option<ListsRefreshed>,
}

/// The suites and foreign architectures an `apt-get update` fetched lists
/// for: lists refreshed for bookworm alone know nothing of trixie.
#[derive(Debug, Clone, PartialEq)]
struct ListsRefreshed {
    suites: Vec<String>,
    foreign: Vec<String>,
}

impl ListsRefreshed {
    /// Whether these lists cover `suites` and every architecture of
    /// `foreign`.
    fn cover(&self, suites: &[String], foreign: &[String]) -> bool {
        suites.iter().all(|s| self.suites.contains(s))
            && foreign.iter().all(|a| self.foreign.contains(a))
    }
}

/// The host's proxy settings, carried into the private configuration.
const HOST_KEYS_KEPT: &[&str] = &[
    "Acquire::http::Proxy",
    "Acquire::https::Proxy",
    "Acquire::ftp::Proxy",
];

impl PrivateApt {
    pub fn new(env: &Env) -> Result<PrivateApt> {
        let dir = env.cache_dir.join("apt");
        for sub in [
            "lists/partial",
            "cache/archives/partial",
            "sources.list.d",
            "apt.conf.d",
            "preferences.d",
        ] {
            create_dir_all(&dir.join(sub))?;
        }
        let apt = PrivateApt { dir, updated: None };
        let turn = apt.lock()?;
        apt.write_config()?;
        drop(turn);
        Ok(apt)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("apt.conf")
    }

    /// The configuration apt reads through `APT_CONFIG`: it is read before
    /// the parts dir and the main file, so it can point both away from
    /// /etc (an `-o` option on the command line comes too late for that).
    ///
    /// Release files past their Valid-Until date are accepted: a frozen
    /// mirror (an archive snapshot) serves sid's and the security suites'
    /// indexes long after that date, and no index decides what is used:
    /// every file is checked against the sha256 pinned in a sources file.
    fn write_config(&self) -> Result<()> {
        let d = self.dir.display();
        let mut text = format!(
            "// Written by NodeOS's build (cargo xtask); private to its cache.\n\
             Dir::Etc::main \"/dev/null\";\n\
             Dir::Etc::parts \"{d}/apt.conf.d\";\n\
             Dir::Etc::preferences \"/dev/null\";\n\
             Dir::Etc::preferencesparts \"{d}/preferences.d\";\n\
             Dir::Etc::sourcelist \"/dev/null\";\n\
             Dir::Etc::sourceparts \"{d}/sources.list.d\";\n\
             Dir::State::lists \"{d}/lists\";\n\
             Dir::Cache \"{d}/cache\";\n\
             Acquire::Languages \"none\";\n\
             Acquire::Check-Valid-Until \"false\";\n"
        );
        text.push_str(&host_proxy_settings());
        let path = self.config_path();
        if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            crate::util::write_atomic(&path, text.as_bytes())?;
        }
        Ok(())
    }

    /// An apt program (`apt-get`, `apt-config`) run with the private
    /// configuration only.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("APT_CONFIG", self.config_path()).arg("-q");
        c
    }

    /// Waits for the private apt state to be free, and holds it until the
    /// guard is dropped.
    fn lock(&self) -> Result<fs::File> {
        use std::os::fd::AsRawFd;
        let path = self.dir.join("lock");
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if !try_flock(&f) {
            eprintln!(
                "waiting: another fetch is using the private apt state ({})",
                path.display()
            );
            // SAFETY: flock(2) on a descriptor we own.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("locking {}", path.display()));
            }
        }
        Ok(f)
    }

    fn write_sources(&self, suite: &str) -> Result<bool> {
        let mut suites: Vec<String> = self
            .current_suites()
            .into_iter()
            .chain(std::iter::once(suite.to_string()))
            .collect();
        suites.sort();
        suites.dedup();
        let text = sources_text(&suites, host_debian_mirror, host_security_mirror)?;
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
            .filter_map(|l| l.strip_prefix("Suites:"))
            .flat_map(|s| s.split_whitespace().map(String::from))
            .collect()
    }

    fn run(&self, args: &[&str], cwd: &Path, foreign: &[String]) -> Result<()> {
        let out = self
            .command("apt-get")
            .args(architecture_options(foreign))
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
        self.updated = Some(ListsRefreshed {
            suites: self.current_suites(),
            foreign: foreign.to_vec(),
        });
        Ok(())
    }

    pub fn download(&mut self, d: &DebianOrigin, into: &Path) -> Result<()> {
        let _turn = self.lock()?;
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
        let suites = self.current_suites();
        let refreshed = |updated: &Option<ListsRefreshed>| {
            updated.as_ref().is_some_and(|u| u.cover(&suites, &foreign))
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

/// The host's proxy settings for apt, as configuration lines (empty when
/// none or when apt-config is missing).
fn host_proxy_settings() -> String {
    let Ok(out) = Command::new("apt-config").arg("dump").output() else {
        return String::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| HOST_KEYS_KEPT.iter().any(|k| l.starts_with(k)))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// apt options that list `foreign` architectures (a package named
/// `name:i386`) beside the host's own; none when `foreign` is empty.
fn architecture_options(foreign: &[String]) -> Vec<String> {
    if foreign.is_empty() {
        return Vec::new();
    }
    std::iter::once(native_deb_arch())
        .chain(foreign.iter().cloned())
        .flat_map(|a| ["-o".to_string(), format!("APT::Architectures::={a}")])
        .collect()
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

/// The private apt's deb822 sources: the suites of the main archive in one
/// stanza, security suites (an archive of their own) in another.
fn sources_text(
    suites: &[String],
    main: impl Fn() -> Result<Mirror>,
    security: impl Fn() -> Result<Mirror>,
) -> Result<String> {
    let (sec, rest): (Vec<&String>, Vec<&String>) =
        suites.iter().partition(|s| is_security_suite(s));
    let stanza = |m: &Mirror, suites: &[&String]| {
        let names: Vec<&str> = suites.iter().map(|s| s.as_str()).collect();
        let mut t = format!(
            "Types: deb deb-src\nURIs: {}\nSuites: {}\nComponents: main\n",
            m.uri,
            names.join(" ")
        );
        if let Some(k) = &m.signed_by {
            t.push_str(&format!("Signed-By: {k}\n"));
        }
        t
    };
    let mut text =
        String::from("# Written by NodeOS's build (cargo xtask); private to its cache.\n");
    if !rest.is_empty() {
        text.push_str(&stanza(&main()?, &rest));
    }
    if !sec.is_empty() {
        if !rest.is_empty() {
            text.push('\n');
        }
        text.push_str(&stanza(&security()?, &sec));
    }
    Ok(text)
}

fn is_security_suite(suite: &str) -> bool {
    suite.ends_with("-security")
}

/// The host's Debian mirror (`$NODEOS_DEBIAN_MIRROR` overrides), read from
/// /etc/apt/sources.list.d/*.sources (deb822) or /etc/apt/sources.list.
fn host_debian_mirror() -> Result<Mirror> {
    host_mirror("NODEOS_DEBIAN_MIRROR", false)
}

/// The host's Debian security archive (`$NODEOS_DEBIAN_SECURITY_MIRROR`
/// overrides), for suites such as `trixie-security`.
fn host_security_mirror() -> Result<Mirror> {
    host_mirror("NODEOS_DEBIAN_SECURITY_MIRROR", true)
}

fn host_mirror(override_var: &str, security: bool) -> Result<Mirror> {
    if let Ok(uri) = std::env::var(override_var) {
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
        .find(|(_, suites, _)| suites.split_whitespace().any(is_security_suite) == security)
        .map(|(uri, _, signed_by)| Mirror { uri, signed_by })
        .ok_or_else(|| {
            anyhow!(
                "no Debian {}mirror found in /etc/apt/sources.list(.d); set {override_var} to a Debian {}archive URL",
                if security { "security " } else { "" },
                if security { "security " } else { "" }
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits until `flock(1)` holds the lock on `path`.
    fn wait_until_locked(path: &Path) {
        let t = std::time::Instant::now();
        while Command::new("flock")
            .arg("-n")
            .arg(path)
            .arg("true")
            .status()
            .expect("flock (util-linux) runs")
            .success()
        {
            assert!(t.elapsed().as_secs() < 10, "flock never took the lock");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_live_fetchs_scratch_dir_is_kept_whatever_its_pid_says() {
        let d = tempfile::tempdir().unwrap();
        let env = Env::for_tests(d.path(), d.path());
        let root = scratch_root(&env.dl_dir);
        // A fetch in another container or of another user: its pid names
        // no process visible here (kill(pid, 0) fails), but it is running
        // and holds its dir's lock.
        let live = root.join("2147483646");
        // A killed fetch: nobody holds its lock.
        let stale = root.join("2147483645-3");
        // Not a scratch dir's name: never touched.
        let other = root.join("notes");
        for p in [&live, &stale, &other] {
            create_dir_all(p).unwrap();
        }
        let mut holder = Command::new("flock")
            .arg("-o")
            .arg(&live)
            .args(["sleep", "60"])
            .spawn()
            .expect("flock (util-linux) runs");
        wait_until_locked(&live);

        let f = Fetcher::new(&env).unwrap();
        assert!(live.is_dir(), "a running fetch's scratch dir was deleted");
        assert!(!stale.exists(), "a killed fetch's scratch dir was kept");
        assert!(other.is_dir());
        // Two fetchers at once (one process or two) get separate dirs.
        let g = Fetcher::new(&env).unwrap();
        assert_ne!(f.scratch.dir, g.scratch.dir);
        assert!(f.scratch.dir.is_dir() && g.scratch.dir.is_dir());
        let f_dir = f.scratch.dir.clone();
        drop(f);
        assert!(!f_dir.exists(), "a fetcher's own dir outlived it");

        holder.kill().unwrap();
        holder.wait().unwrap();
        let sweep = remove_stale_scratch(&root);
        assert_eq!(sweep.removed, std::slice::from_ref(&live), "{sweep:?}");
        assert_eq!(sweep.live, std::slice::from_ref(&g.scratch.dir));
    }

    fn origin(kind: DebianKind, member: Option<&str>) -> DebianOrigin {
        DebianOrigin {
            package: "brotli".into(),
            version: "1.1.0-2+deb13u1".into(),
            suite: "trixie".into(),
            kind,
            member: member.map(String::from),
        }
    }

    #[test]
    fn a_failed_apt_get_source_is_accepted_only_with_its_member_file() {
        let d = tempfile::tempdir().unwrap();
        let member = "brotli_1.1.0.orig.tar.gz";
        let failed = || {
            Err(anyhow!(
                "apt-get source --download-only brotli=1.1.0-2+deb13u1 failed: 404  Not Found"
            ))
        };
        let src = origin(DebianKind::Source, Some(member));
        // Nothing arrived: the failure stands.
        let e = accept_apt_result(failed(), &src, d.path()).unwrap_err();
        assert!(format!("{e:#}").contains("404"), "{e:#}");
        // The orig arrived (the .dsc did not): taken, for verify to judge.
        fs::write(d.path().join(member), b"orig bytes").unwrap();
        accept_apt_result(failed(), &src, d.path()).unwrap();
        let part = d.path().join(member);
        let pinned = crate::util::sha256_bytes(b"the pinned orig");
        let e = verify(&part, &pinned).unwrap_err();
        assert!(is_checksum_mismatch(&e));
        assert!(
            format!("{e:#}").contains(&pinned)
                && format!("{e:#}").contains(&crate::util::sha256_bytes(b"orig bytes")),
            "{e:#}"
        );
        assert!(!part.exists(), "a mismatching orig is deleted");
        // A binary package has no partial success.
        fs::write(d.path().join(member), b"x").unwrap();
        assert!(accept_apt_result(
            failed(),
            &origin(DebianKind::Binary, Some(member)),
            d.path()
        )
        .is_err());
        accept_apt_result(Ok(()), &src, d.path()).unwrap();
    }

    #[test]
    fn lists_refreshed_for_one_suite_do_not_cover_another() {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // An empty cache's first download (binutils, bookworm) refreshes
        // bookworm's lists; the next one names trixie.
        let bookworm = ListsRefreshed {
            suites: v(&["bookworm"]),
            foreign: v(&[]),
        };
        assert!(bookworm.cover(&v(&["bookworm"]), &v(&[])));
        assert!(!bookworm.cover(&v(&["bookworm", "trixie"]), &v(&[])));
        assert!(!bookworm.cover(&v(&["bookworm"]), &v(&["i386"])));
        let both = ListsRefreshed {
            suites: v(&["bookworm", "trixie"]),
            foreign: v(&["i386"]),
        };
        assert!(both.cover(&v(&["trixie"]), &v(&["i386"])));
        assert!(both.cover(&v(&["bookworm", "trixie"]), &v(&[])));
    }

    #[test]
    fn security_suites_go_to_the_security_archive() {
        let main = || {
            Ok(Mirror {
                uri: "http://mirror.test/debian".into(),
                signed_by: Some("/k.gpg".into()),
            })
        };
        let sec = || {
            Ok(Mirror {
                uri: "http://mirror.test/debian-security".into(),
                signed_by: None,
            })
        };
        let none = || -> Result<Mirror> { bail!("no security mirror") };
        let suites: Vec<String> = ["sid", "trixie", "trixie-security"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let text = sources_text(&suites, main, sec).unwrap();
        let stanzas: Vec<&str> = text.split("\n\n").collect();
        assert_eq!(stanzas.len(), 2, "{text}");
        assert!(
            stanzas[0].contains("URIs: http://mirror.test/debian\n")
                && stanzas[0].contains("Suites: sid trixie\n")
                && stanzas[0].contains("Signed-By: /k.gpg"),
            "{text}"
        );
        assert!(
            stanzas[1].contains("URIs: http://mirror.test/debian-security\n")
                && stanzas[1].contains("Suites: trixie-security\n"),
            "{text}"
        );
        // Without a security suite the security mirror is never asked.
        let text = sources_text(&suites[..2], main, none).unwrap();
        assert!(!text.contains("security"), "{text}");
        assert!(sources_text(&suites, main, none).is_err());
    }

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

    #[test]
    fn a_mismatch_is_typed_through_context_and_other_failures_are_not() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"x").unwrap();
        let e = verify(&p, &"0".repeat(64))
            .context("fetching f")
            .context("ensuring the sources")
            .unwrap_err();
        assert!(is_checksum_mismatch(&e), "{e:#}");
        // A missing file names "checksum mismatch" nowhere in its type: it
        // is unavailable, and another variant may be tried.
        let e = verify(&d.path().join("absent"), &"0".repeat(64)).unwrap_err();
        assert!(!is_checksum_mismatch(&e), "{e:#}");
        let e = anyhow!("mirror said: checksum mismatch for something else");
        assert!(
            !is_checksum_mismatch(&e),
            "decided on the type, not the text"
        );
    }

    /// `apt-config dump` lines (`Key "value";`) of a command.
    fn dump(mut c: Command) -> std::collections::BTreeSet<String> {
        let out = c
            .arg("dump")
            .output()
            .expect("apt-config runs (Debian's apt)");
        assert!(out.status.success(), "apt-config dump failed: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn the_private_apt_reads_none_of_the_hosts_configuration() {
        let d = tempfile::tempdir().unwrap();
        let env = Env::for_tests(d.path(), d.path());
        let apt = PrivateApt::new(&env).unwrap();
        let private = dump(apt.command("apt-config"));
        let has = |line: &str| private.contains(line);
        let pd = apt.dir.display();
        assert!(
            has(&format!("Dir::Etc::parts \"{pd}/apt.conf.d\";")),
            "{private:?}"
        );
        assert!(has("Dir::Etc::main \"/dev/null\";"), "{private:?}");
        assert!(has(&format!(
            "Dir::Etc::preferencesparts \"{pd}/preferences.d\";"
        )));
        assert!(has(&format!(
            "Dir::Etc::sourceparts \"{pd}/sources.list.d\";"
        )));
        // apt's own locking stays on.
        assert!(
            !private.iter().any(|l| l.starts_with("Debug::NoLocking")),
            "{private:?}"
        );
        // The host's keyrings stay trusted (archives are signed).
        assert!(
            has("Dir::Etc::trustedparts \"trusted.gpg.d\";"),
            "{private:?}"
        );
        assert!(
            has("Dir \"/\";") && has("Dir::Etc \"etc/apt\";"),
            "{private:?}"
        );

        // What the host's parts dir and main file add: a dump of the host's
        // configuration minus one that reads neither.
        let bare_conf = d.path().join("bare.conf");
        fs::write(
            &bare_conf,
            "Dir::Etc::main \"/dev/null\";\nDir::Etc::parts \"/nonexistent\";\n",
        )
        .unwrap();
        let mut bare = Command::new("apt-config");
        bare.env("APT_CONFIG", &bare_conf);
        let bare = dump(bare);
        let mut host = Command::new("apt-config");
        host.env_remove("APT_CONFIG");
        let from_host_files: Vec<String> = dump(host)
            .difference(&bare)
            .filter(|l| !l.starts_with("Dir::Etc::"))
            // Set in the private file on purpose.
            .filter(|l| !l.starts_with("Acquire::Languages"))
            .filter(|l| !l.starts_with("Acquire::Check-Valid-Until"))
            .filter(|l| !HOST_KEYS_KEPT.iter().any(|k| l.starts_with(k)))
            .cloned()
            .collect();
        if from_host_files.is_empty() {
            eprintln!("SKIPPED part of the_private_apt_reads_none_of_the_hosts_configuration: this host's apt.conf.d and apt.conf set nothing, so their absence cannot be seen");
        }
        let leaked: Vec<&String> = from_host_files.iter().filter(|l| has(l)).collect();
        assert!(
            leaked.is_empty(),
            "the private apt reads the host's configuration files: {leaked:?}"
        );
    }

    #[test]
    fn two_fetches_sharing_a_cache_take_turns_with_apt() {
        let d = tempfile::tempdir().unwrap();
        let env = Env::for_tests(d.path(), d.path());
        let started = std::time::Instant::now();
        let turns: Vec<(Duration, Duration)> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..2)
                .map(|_| {
                    let env = &env;
                    s.spawn(move || {
                        let apt = PrivateApt::new(env).unwrap();
                        let _turn = apt.lock().unwrap();
                        let from = started.elapsed();
                        std::thread::sleep(Duration::from_millis(400));
                        (from, started.elapsed())
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let (a, b) = (turns[0], turns[1]);
        assert!(
            a.1 <= b.0 || b.1 <= a.0,
            "two users of the private apt ran at once: {turns:?}"
        );
    }
}
