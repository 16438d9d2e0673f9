//! sccache: its cache backend is its own setting (`SCCACHE_*`); the one
//! this checks before a build is Redis, the shared cache a team runs itself.

use super::net::{unix_socket_answers, Endpoint};
use anyhow::{bail, Result};
use std::path::Path;

/// Redis's port when a URL names none.
const REDIS_PORT: u16 = 6379;

/// Where a Redis URL points: `redis://[user:pass@]host[:port][/db]`,
/// `rediss://…`, `tcp://host:port`, `host:port`, or `unix:///path`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RedisAt {
    Tcp(Endpoint),
    Unix(String),
}

pub(crate) fn parse_redis_url(url: &str) -> Result<RedisAt> {
    let url = url.trim();
    let url = url.split('#').next().unwrap_or(url);
    if let Some(path) = url
        .strip_prefix("unix://")
        .or_else(|| url.strip_prefix("redis+unix://"))
    {
        return Ok(RedisAt::Unix(path.to_string()));
    }
    let rest = ["redis://", "rediss://", "tcp://"]
        .iter()
        .find_map(|s| url.strip_prefix(s))
        .unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Ok(RedisAt::Tcp(Endpoint::parse(host_port, REDIS_PORT)?))
}

/// The checked Redis backend, and `SCCACHE_BASEDIRS` so that the same
/// sources under another cache dir (another user, another machine) hit.
pub(crate) fn prepare(tree: &Path) -> Result<Vec<(String, String)>> {
    // SCCACHE_REDIS_ENDPOINT is the current name; SCCACHE_REDIS the old one.
    for var in ["SCCACHE_REDIS_ENDPOINT", "SCCACHE_REDIS"] {
        let Ok(url) = std::env::var(var) else {
            continue;
        };
        if url.trim().is_empty() {
            continue;
        }
        let ok = match parse_redis_url(&url) {
            Ok(RedisAt::Tcp(ep)) => ep.check().map_err(|e| format!("{e:#}")),
            Ok(RedisAt::Unix(p)) => {
                if unix_socket_answers(Path::new(&p)) {
                    Ok(())
                } else {
                    Err(format!("no server on unix socket {p}"))
                }
            }
            Err(e) => Err(format!("{e:#}")),
        };
        if let Err(why) = ok {
            bail!("NODEOS_CC_LAUNCHER=sccache: the shared cache {var}={url} does not answer ({why}); start Redis there or unset {var} to use sccache's local cache");
        }
        break;
    }
    let mut env = Vec::new();
    if std::env::var_os("SCCACHE_BASEDIRS").is_none() {
        env.push(("SCCACHE_BASEDIRS".into(), tree.display().to_string()));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_point_somewhere() {
        let tcp = |h: &str, p| {
            RedisAt::Tcp(Endpoint {
                host: h.into(),
                port: p,
            })
        };
        assert_eq!(
            parse_redis_url("redis://127.0.0.1:6380").unwrap(),
            tcp("127.0.0.1", 6380)
        );
        assert_eq!(
            parse_redis_url("redis://cache.lan").unwrap(),
            tcp("cache.lan", 6379)
        );
        assert_eq!(
            parse_redis_url("rediss://user:secret@cache.lan:7000/2#insecure").unwrap(),
            tcp("cache.lan", 7000)
        );
        assert_eq!(
            parse_redis_url("10.1.1.1:6379").unwrap(),
            tcp("10.1.1.1", 6379)
        );
        assert_eq!(
            parse_redis_url("unix:///run/redis.sock").unwrap(),
            RedisAt::Unix("/run/redis.sock".into())
        );
    }
}
