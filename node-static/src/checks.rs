//! Checks of a built node on the host: it is a static ELF for its arch and
//! it computes what the host computes (crypto, zlib, Intl).

use anyhow::{bail, Context, Result};
use nodeos_build::{elf, Arch};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

/// Printed by `node -e`: one `key=value` line per check.
pub const SCRIPT: &str = r#"
const crypto = require('crypto'), zlib = require('zlib');
const input = 'NodeOS static node self-check';
console.log('version=' + process.version);
console.log('arch=' + process.arch);
console.log('sha256=' + crypto.createHash('sha256').update(input).digest('hex'));
const packed = zlib.deflateSync(Buffer.from(input.repeat(50)));
console.log('zlib=' + (zlib.inflateSync(packed).toString() === input.repeat(50)) + ',' + (packed.length < input.length * 50));
console.log('brotli=' + (zlib.brotliDecompressSync(zlib.brotliCompressSync(input)).toString() === input));
console.log('intl=' + (typeof Intl === 'object' ? new Intl.NumberFormat('en-US').format(1234567.891) : 'none'));
console.log('snapshot=' + process.config.variables.node_use_node_snapshot);
let nodeos;
try {
  const m = require('node:nodeos');
  nodeos = typeof m.mount + ',' + typeof m.reboot + ',' + m.isInit;
} catch (e) {
  nodeos = e.code;
}
console.log('nodeos=' + nodeos);
console.log('rootcerts=' + (require('tls').rootCertificates.length >= 100));
console.log('systemcastore=' + process.config.target_defaults.defines.includes('NODE_OPENSSL_CERT_STORE'));
"#;

pub const INPUT: &str = "NodeOS static node self-check";

#[derive(Debug)]
pub struct Report {
    pub lines: Vec<(String, String)>,
}

/// What the script must print for this arch and version.
pub fn expected(arch: Arch, version: &str) -> Vec<(String, String)> {
    let sha = hex::encode(Sha256::digest(INPUT.as_bytes()));
    [
        ("version", format!("v{version}")),
        ("arch", arch.node_cpu().to_string()),
        ("sha256", sha),
        ("zlib", "true,true".into()),
        ("brotli", "true".into()),
        ("intl", "1,234,567.891".into()),
        ("snapshot", "true".into()),
        // The NodeOS patch is in (patches/node-*), and node is not PID 1.
        ("nodeos", "function,function,false".into()),
        // Node's bundled root certificates, and not the system's store as
        // the default (the image has none).
        ("rootcerts", "true".into()),
        ("systemcastore", "false".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub fn parse(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Compares printed values with the expected ones; lists every mismatch.
pub fn compare(got: &[(String, String)], want: &[(String, String)]) -> Result<()> {
    let mut bad = Vec::new();
    for (k, v) in want {
        match got.iter().find(|(gk, _)| gk == k) {
            Some((_, gv)) if gv == v => {}
            Some((_, gv)) => bad.push(format!("{k}: got {gv:?}, expected {v:?}")),
            None => bad.push(format!("{k}: not printed, expected {v:?}")),
        }
    }
    if !bad.is_empty() {
        bail!("node self-check failed:\n  {}", bad.join("\n  "));
    }
    Ok(())
}

pub fn run(node: &Path, arch: Arch, version: &str) -> Result<Report> {
    elf::check_static(node, arch)?;
    let out = Command::new(node)
        .arg("-e")
        .arg(SCRIPT)
        .env_clear()
        .output()
        .with_context(|| format!("running {}", node.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{} -e … exited with {}: {}",
            node.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = parse(&stdout);
    compare(&got, &expected(arch, version))?;
    Ok(Report { lines: got })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_lists_each_mismatch() {
        let want = expected(Arch::X86_64, "18.20.4");
        let mut got = want.clone();
        compare(&got, &want).unwrap();
        got[1].1 = "ia32".into();
        got.retain(|(k, _)| k != "intl");
        let e = format!("{:#}", compare(&got, &want).unwrap_err());
        assert!(
            e.contains("arch: got \"ia32\"") && e.contains("intl: not printed"),
            "{e}"
        );
    }

    #[test]
    fn expected_sha_is_the_host_computation() {
        let want = expected(Arch::I386, "18.20.4");
        let sha = &want.iter().find(|(k, _)| k == "sha256").unwrap().1;
        // echo -n 'NodeOS static node self-check' | sha256sum
        assert_eq!(sha.len(), 64);
        assert_eq!(want.iter().find(|(k, _)| k == "arch").unwrap().1, "ia32");
    }

    /// The script itself against the host's node, when there is one: proves
    /// the script prints what `expected` describes (versions aside).
    #[test]
    fn script_runs_on_a_real_node() {
        let node = nodeos_build::host::which("node")
            .expect("this test runs the check script on the host's node: install Node.js (`apt-get install nodejs`)");
        let out = Command::new(node).arg("-e").arg(SCRIPT).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = parse(&String::from_utf8_lossy(&out.stdout));
        // A node without the NodeOS patch says so, and does not crash.
        let nodeos = got
            .iter()
            .find(|(k, _)| k == "nodeos")
            .map(|(_, v)| v.as_str());
        assert_eq!(nodeos, Some("ERR_UNKNOWN_BUILTIN_MODULE"), "{got:?}");
        let want = expected(Arch::X86_64, "ignored");
        for k in ["sha256", "zlib", "brotli", "intl", "rootcerts"] {
            let g = got.iter().find(|(gk, _)| gk == k).map(|(_, v)| v.clone());
            let w = want.iter().find(|(wk, _)| wk == k).map(|(_, v)| v.clone());
            assert_eq!(g, w, "{k}");
        }
    }
}
