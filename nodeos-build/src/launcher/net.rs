//! Reachability checks for launcher servers: a TCP endpoint or a unix
//! socket, with a short timeout, answered in one line.

use anyhow::{bail, Context, Result};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

/// `host:port` of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// `host`, `host:port` or `[v6]:port`; `default_port` when none given.
    pub fn parse(s: &str, default_port: u16) -> Result<Endpoint> {
        let s = s.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, tail) = rest
                .split_once(']')
                .with_context(|| format!("'{s}': unclosed ["))?;
            (h.to_string(), tail.strip_prefix(':'))
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
                _ => (s.to_string(), None),
            }
        };
        if host.is_empty() {
            bail!("'{s}' names no host");
        }
        let port = match port {
            Some(p) => p
                .parse()
                .with_context(|| format!("'{s}': port '{p}' is not a number"))?,
            None => default_port,
        };
        Ok(Endpoint { host, port })
    }

    /// Connects and closes at once; the error says why it failed.
    pub fn check(&self) -> Result<()> {
        let addrs: Vec<_> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {self}"))?
            .collect();
        let mut last = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, TIMEOUT) {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(e).with_context(|| format!("connecting to {self}")),
            None => bail!("{self} resolves to no address"),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Whether a unix stream socket accepts a connection.
pub fn unix_socket_answers(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_and_without_port() {
        assert_eq!(
            Endpoint::parse("sched.lan", 8765).unwrap(),
            Endpoint {
                host: "sched.lan".into(),
                port: 8765
            }
        );
        assert_eq!(Endpoint::parse("10.0.0.2:9000", 1).unwrap().port, 9000);
        let v6 = Endpoint::parse("[::1]:6379", 1).unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 6379));
        assert_eq!(v6.to_string(), "[::1]:6379");
        assert!(Endpoint::parse("host:notaport", 1).is_err());
        assert!(Endpoint::parse(":80", 1).is_err());
    }

    #[test]
    fn a_closed_port_is_reported_and_an_open_one_answers() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        Endpoint::parse(&format!("127.0.0.1:{port}"), 1)
            .unwrap()
            .check()
            .unwrap();
        drop(l);
        let e = Endpoint::parse(&format!("127.0.0.1:{port}"), 1)
            .unwrap()
            .check()
            .unwrap_err();
        assert!(
            format!("{e:#}").contains("connecting to 127.0.0.1"),
            "{e:#}"
        );
    }
}
