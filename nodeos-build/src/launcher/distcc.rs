//! distcc: the hosts it sends compiles to (`DISTCC_HOSTS` or its hosts
//! file) must list at least one remote server that answers.
//!
//! Each server runs the compiler by its own path: distccd maps the name the
//! client sends (`x86_64-linux-musl-gcc`) to the entry of the same file name
//! in its `DISTCC_CMDLIST` file, so every node lists its copy of the same
//! toolchain (same toolchain key) there.

use super::net::Endpoint;
use anyhow::{bail, Result};
use std::path::PathBuf;

/// distccd's port.
const DISTCC_PORT: u16 = 3632;

/// A remote host of a distcc host list.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Host {
    Tcp(Endpoint),
    /// `user@host`: reached over ssh, not checked here.
    Ssh(String),
}

/// The remote hosts of a distcc host list (local slots, options and
/// zeroconf left out).
pub(crate) fn remote_hosts(spec: &str) -> Result<Vec<Host>> {
    let mut hosts = Vec::new();
    for word in spec.split_whitespace() {
        if word.starts_with("--") || word.starts_with('+') || word.starts_with('#') {
            continue;
        }
        // host[:port][/limit][,options]
        let word = word.split(',').next().unwrap_or(word);
        let word = word.split('/').next().unwrap_or(word);
        if word == "localhost" || word.is_empty() {
            continue;
        }
        if word.contains('@') {
            hosts.push(Host::Ssh(word.to_string()));
        } else {
            hosts.push(Host::Tcp(Endpoint::parse(word, DISTCC_PORT)?));
        }
    }
    Ok(hosts)
}

/// The host list distcc itself reads: `DISTCC_HOSTS`, else the hosts file.
fn host_spec() -> Option<(String, String)> {
    if let Ok(h) = std::env::var("DISTCC_HOSTS") {
        return Some(("DISTCC_HOSTS".into(), h));
    }
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("DISTCC_DIR") {
        files.push(PathBuf::from(d).join("hosts"));
    } else if let Some(h) = std::env::var_os("HOME") {
        files.push(PathBuf::from(h).join(".distcc/hosts"));
    }
    files.push(PathBuf::from("/etc/distcc/hosts"));
    files.into_iter().find_map(|f| {
        let text = std::fs::read_to_string(&f).ok()?;
        let lines: Vec<&str> = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .collect();
        Some((f.display().to_string(), lines.join(" ")))
    })
}

pub(crate) fn prepare() -> Result<()> {
    let Some((from, spec)) = host_spec() else {
        bail!("NODEOS_CC_LAUNCHER=distcc but no host list: set DISTCC_HOSTS (e.g. 'node1/8 node2/8') or write ~/.distcc/hosts");
    };
    let hosts = remote_hosts(&spec)?;
    if hosts.is_empty() {
        bail!(
            "NODEOS_CC_LAUNCHER=distcc but {from} lists no remote host ('{}'); add a distccd host",
            spec.trim()
        );
    }
    let mut down = Vec::new();
    for h in &hosts {
        match h {
            Host::Ssh(_) => return Ok(()),
            Host::Tcp(ep) => match ep.check() {
                Ok(()) => return Ok(()),
                Err(_) => down.push(ep.to_string()),
            },
        }
    }
    bail!("NODEOS_CC_LAUNCHER=distcc but no distccd in {from} answers (tried {}); start distccd there or unset NODEOS_CC_LAUNCHER", down.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lists_keep_only_remote_hosts() {
        let h =
            remote_hosts("--randomize localhost/2 node1/8,lzo 10.0.0.2:4000 @ssh.lan +zeroconf")
                .unwrap();
        assert_eq!(
            h,
            vec![
                Host::Tcp(Endpoint {
                    host: "node1".into(),
                    port: 3632
                }),
                Host::Tcp(Endpoint {
                    host: "10.0.0.2".into(),
                    port: 4000
                }),
                Host::Ssh("@ssh.lan".into()),
            ]
        );
        assert!(remote_hosts("localhost/4").unwrap().is_empty());
    }
}
