//! Checks of a guest whose init is Node: the REPL comes up on the console,
//! then each check evaluates a line of JavaScript whose printed result is
//! compared with a value computed here on the host.
//!
//! The REPL echoes every input line, so each result is printed behind a
//! marker that the source line does not contain: the JS builds it as
//! `'@@'+'pid='`, so only the output has `@@pid=`.
//!
//! The checks of node's duties as init (mounts, names, orphans, TLS) are in
//! [`pid1`]; the run ends with `process.exit(3)`, which node as PID 1 turns
//! into the [`EXIT_STATUS_PREFIX`] line and a power-off.

mod pid1;

pub use pid1::GUEST_ONLY_KEYS;

use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use crate::{Accel, Arch, Guest, Pattern};

/// From QEMU start to the Node prompt (boot, unpacking the initramfs, V8
/// start-up); before the multiplier. TCG on a busy 2-core machine took 4-6 s.
pub const PROMPT_TIMEOUT: Duration = Duration::from_secs(180);
/// For one check's output.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// From `process.exit()` to QEMU's exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// What node as PID 1 prints on the console as its last line before it
/// powers off, followed by the exit status (0-255, as wait() reports it) and
/// a newline. Printed by patches/node-*/0001-nodeos-init.patch
/// (src/node_nodeos.cc, WriteStatusLine).
pub const EXIT_STATUS_PREFIX: &str = "nodeos: exit status ";

/// The regex of the status line; group 1 is the status.
pub fn exit_status_regex() -> String {
    format!(r"{}(\d+)\r?\n", regex::escape(EXIT_STATUS_PREFIX))
}

/// The pattern of the status line; group 1 is the status.
pub fn exit_status_pattern() -> Pattern {
    Pattern::regex(&exit_status_regex()).expect("a valid regex")
}

/// The status of the last [`EXIT_STATUS_PREFIX`] line in `console` output.
pub fn parse_exit_status(console: &str) -> Option<u8> {
    console
        .lines()
        .rev()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(EXIT_STATUS_PREFIX))
        .and_then(|s| s.trim().parse().ok())
}

/// The status the run ends with (`process.exit(3)`): not 0, so a status
/// that is lost or defaulted cannot pass.
pub const FINAL_EXIT_STATUS: u8 = 3;

/// Whether the Node build has `Intl` (`--with-intl=none` removes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntlExpectation {
    /// `Intl` must exist and format numbers for en-US.
    Present,
    /// `Intl` must not exist.
    Absent,
}

/// How the run ends after `process.exit(FINAL_EXIT_STATUS)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOfRun {
    /// Node is PID 1 (a NodeOS guest): it prints the status line, syncs and
    /// powers off; QEMU exits with success and the console shows no kernel
    /// panic.
    PowerOff,
    /// Node is an ordinary process (the host tests): it exits with the
    /// status.
    ProcessExit,
}

/// What the host expects of the image.
#[derive(Debug, Clone)]
pub struct NodeExpectations {
    pub arch: Arch,
    /// `process.versions.node`, with or without a leading `v`.
    pub node_version: String,
    /// The guest's `-m`; `os.totalmem()` must fall in a plausible range.
    pub memory_mib: u32,
    pub intl: IntlExpectation,
    /// The PID Node must have: 1 as init.
    pub pid: u32,
    /// A file the fs check writes and reads back (the rootfs is writable).
    pub fs_path: String,
    /// The guest's `-smp` ([`crate::QemuConfig::cpus`]); `os.cpus()` must
    /// list as many.
    pub cpus: u32,
    /// `os.hostname()`: PID 1 sets "nodeos" unless the kernel command line
    /// says otherwise (`nodeos.hostname=`).
    pub hostname: String,
    /// A writable directory for the checks' files (the TLS test files, the
    /// orphan check's note): /tmp, the tmpfs PID 1 mounts.
    pub scratch_dir: String,
    pub end: EndOfRun,
    /// Hashed by the sha256 check and compressed by the zlib check; varied
    /// per run so that no cached answer can pass.
    pub token: String,
}

impl NodeExpectations {
    /// Expectations for Node as init in a guest of `arch` with `memory_mib`.
    pub fn new(arch: Arch, node_version: &str, memory_mib: u32, intl: IntlExpectation) -> Self {
        NodeExpectations {
            arch,
            node_version: node_version.trim_start_matches('v').to_owned(),
            memory_mib,
            intl,
            pid: 1,
            fs_path: "/nodeos-fs-check.txt".to_owned(),
            cpus: crate::QemuConfig::DEFAULT_CPUS,
            hostname: "nodeos".to_owned(),
            scratch_dir: "/tmp".to_owned(),
            end: EndOfRun::PowerOff,
            token: run_token(),
        }
    }
}

/// A token unique to this run.
fn run_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos:x}", std::process::id())
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub name: String,
    pub expected: String,
    pub got: String,
    pub ok: bool,
}

/// The outcome of [`run_node_checks`] on one guest.
#[derive(Debug, Clone)]
pub struct NodeReport {
    pub arch: Arch,
    pub accel: Accel,
    pub checks: Vec<CheckResult>,
    /// From QEMU start to the first `> ` prompt.
    pub boot_to_prompt: Duration,
    /// From QEMU start to its exit (or to the failure).
    pub total: Duration,
    /// The status the run ended with: from node's [`EXIT_STATUS_PREFIX`]
    /// line as PID 1, from the process otherwise; None when it never came.
    pub exit_status: Option<u8>,
    pub log_path: PathBuf,
}

impl NodeReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| !c.ok)
    }
}

impl fmt::Display for NodeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let passed = self.checks.iter().filter(|c| c.ok).count();
        writeln!(
            f,
            "{} ({}): {passed}/{} checks passed; boot to prompt {:.1} s, total {:.1} s; exit status {}",
            self.arch,
            self.accel,
            self.checks.len(),
            self.boot_to_prompt.as_secs_f64(),
            self.total.as_secs_f64(),
            self.exit_status
                .map_or_else(|| "none".to_owned(), |s| s.to_string())
        )?;
        let width = |pick: fn(&CheckResult) -> &str, title: &str| {
            self.checks
                .iter()
                .map(|c| pick(c).chars().count())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
                .min(48)
        };
        let (wn, we) = (
            width(|c| &c.name, "check"),
            width(|c| &c.expected, "expected"),
        );
        writeln!(f, "  {:<wn$}  {:<4}  {:<we$}  got", "check", "", "expected")?;
        for c in &self.checks {
            let status = if c.ok { "ok" } else { "FAIL" };
            writeln!(
                f,
                "  {:<wn$}  {status:<4}  {:<we$}  {}",
                c.name,
                shorten(&c.expected, 48),
                shorten(&c.got, 64)
            )?;
        }
        write!(f, "  log: {}", self.log_path.display())
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

/// How a printed value is judged.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    Equals(String),
    /// An integer in `lo..=hi`.
    Range {
        lo: u64,
        hi: u64,
        unit: &'static str,
    },
}

impl Expected {
    pub fn accepts(&self, got: &str) -> bool {
        match self {
            Expected::Equals(want) => got == want,
            Expected::Range { lo, hi, .. } => {
                got.parse::<u64>().is_ok_and(|v| (*lo..=*hi).contains(&v))
            }
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Equals(want) => f.write_str(want),
            Expected::Range { lo, hi, unit } => write!(f, "{lo}..={hi} {unit}"),
        }
    }
}

/// One check: a line of JS that prints `@@<key>=<value>`, and what the value
/// must be.
#[derive(Debug, Clone)]
pub struct Probe {
    pub name: &'static str,
    pub js: String,
    pub key: &'static str,
    pub expected: Expected,
}

impl Probe {
    /// A probe printing the value of the JS expression `expr`.
    fn new(name: &'static str, key: &'static str, expr: &str, expected: Expected) -> Probe {
        Probe {
            name,
            js: format!("console.log({}+({expr}))", marker_js(key)),
            key,
            expected,
        }
    }

    /// The pattern of the probe's output line; group 1 is the value.
    pub fn output_pattern(&self) -> Pattern {
        Pattern::regex(&format!(r"@@{}=([^\r\n]*)\r?\n", regex::escape(self.key)))
            .expect("keys are plain words")
    }

    pub fn judge(&self, got: &str) -> CheckResult {
        CheckResult {
            name: self.name.to_owned(),
            expected: self.expected.to_string(),
            got: got.to_owned(),
            ok: self.expected.accepts(got),
        }
    }
}

/// The JS for the marker `@@<key>=`, written so that the source text does
/// not contain it.
fn marker_js(key: &str) -> String {
    format!("'@@'+'{key}='")
}

/// A JS single-quoted string literal of `text`.
pub fn js_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            c => {
                // \uXXXX for everything else, surrogate pairs included, so
                // that the line stays plain ASCII on the serial console.
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('\'');
    out
}

/// The text the sha256 and zlib checks work on, the same here and in JS.
fn payload(token: &str) -> String {
    (0..24)
        .map(|i| format!("nodeos-{token}-{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The checks for `exp`, in the order they run. The timer check is not
/// among them: it prints asynchronously (see [`timer_probe`]).
pub fn plan(exp: &NodeExpectations) -> Vec<Probe> {
    let payload = payload(&exp.token);
    let sha256 = hex::encode(Sha256::digest(payload.as_bytes()));
    let deflated = {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(payload.as_bytes()).expect("writing to a Vec");
        z.finish().expect("writing to a Vec")
    };
    let fs_content = format!("nodeos fs check {}", exp.token);
    // os.totalmem() is the kernel's MemTotal: guest RAM minus what the
    // kernel reserves (its image, page tables...), so below -m but not far.
    let mem_lo = u64::from(exp.memory_mib) / 2;
    let mem_hi = u64::from(exp.memory_mib);
    let intl_expected = match exp.intl {
        IntlExpectation::Present => "1,234,567.891",
        IntlExpectation::Absent => "absent",
    };
    let mut probes = vec![
        Probe::new(
            "pid",
            "pid",
            "process.pid",
            Expected::Equals(exp.pid.to_string()),
        ),
        Probe::new(
            "arch",
            "arch",
            "process.arch",
            Expected::Equals(exp.arch.node_cpu().to_owned()),
        ),
        Probe::new(
            "node version",
            "version",
            "process.versions.node",
            Expected::Equals(exp.node_version.clone()),
        ),
        Probe::new(
            "crypto sha256",
            "sha256",
            &format!(
                "require('crypto').createHash('sha256').update({}).digest('hex')",
                js_string(&payload)
            ),
            Expected::Equals(sha256.clone()),
        ),
        // Both directions: the guest inflates what the host deflated, and
        // inflates what it deflated itself.
        Probe::new(
            "zlib round trip",
            "zlib",
            &format!(
                "(()=>{{const z=require('zlib'),c=require('crypto'),s=Buffer.from({});\
                 const a=z.inflateSync(Buffer.from('{}','hex'));\
                 return c.createHash('sha256').update(a).digest('hex')+','+z.inflateSync(z.deflateSync(s)).equals(s)}})()",
                js_string(&payload),
                hex::encode(&deflated)
            ),
            Expected::Equals(format!("{sha256},true")),
        ),
        Probe::new(
            "fs write+read",
            "fs",
            &format!(
                "(()=>{{const fs=require('fs'),p={};fs.writeFileSync(p,{});return fs.readFileSync(p,'utf8')}})()",
                js_string(&exp.fs_path),
                js_string(&fs_content)
            ),
            Expected::Equals(fs_content.clone()),
        ),
        Probe::new(
            "os.totalmem (MiB)",
            "mem",
            "Math.round(require('os').totalmem()/1048576)",
            Expected::Range {
                lo: mem_lo,
                hi: mem_hi,
                unit: "MiB",
            },
        ),
        Probe::new(
            "Intl",
            "intl",
            "typeof Intl==='object'?new Intl.NumberFormat('en-US').format(1234567.891):'absent'",
            Expected::Equals(intl_expected.to_owned()),
        ),
    ];
    probes.extend(pid1::probes(exp));
    probes
}

/// The async check: `setTimeout` prints after the line has finished
/// evaluating (`async`) and at least 200 ms later (`true`).
pub fn timer_probe() -> Probe {
    Probe {
        name: "setTimeout round trip",
        js: format!(
            "(()=>{{let sync=true;const t0=Date.now();setTimeout(()=>console.log({}+(sync?'sync':'async')+','+(Date.now()-t0>=200)),200);sync=false}})()",
            marker_js("timer")
        ),
        key: "timer",
        expected: Expected::Equals("async,true".to_owned()),
    }
}

/// Waits for Node's REPL banner and prompt; returns the time from QEMU's
/// start to the prompt.
pub fn wait_for_prompt(guest: &mut Guest) -> anyhow::Result<Duration> {
    guest
        .expect(
            Pattern::regex(r"Welcome to Node\.js v?([0-9]+\.[0-9]+\.[0-9]+)\.")
                .expect("valid regex"),
            PROMPT_TIMEOUT,
        )
        .context("the Node REPL did not start")?;
    guest
        .expect("> ", PROMPT_TIMEOUT)
        .context("the Node REPL printed its banner but no prompt")?;
    Ok(guest.elapsed())
}

/// Waits for the Node REPL on `guest`, runs every check, then ends the guest
/// with `process.exit()`.
///
/// Returns `Err` only when the prompt never comes (the image did not boot);
/// a check that fails or gets no answer is a failed [`CheckResult`] (after
/// a check gets no answer the rest are not run: the REPL is gone).
pub fn run_node_checks(guest: &mut Guest, exp: &NodeExpectations) -> anyhow::Result<NodeReport> {
    let boot_to_prompt = wait_for_prompt(guest)?;
    let mut report = NodeReport {
        arch: exp.arch,
        accel: guest.accel(),
        checks: Vec::new(),
        boot_to_prompt,
        total: Duration::ZERO,
        exit_status: None,
        log_path: guest.log_path().to_owned(),
    };
    let mut probes = plan(exp);
    probes.push(timer_probe());
    let mut alive = true;
    for probe in &probes {
        if !alive {
            report.checks.push(CheckResult {
                name: probe.name.to_owned(),
                expected: probe.expected.to_string(),
                got: "not run (the REPL stopped answering)".to_owned(),
                ok: false,
            });
            continue;
        }
        guest.note(&format!("check {}", probe.name));
        let answer = guest
            .send_line(&probe.js)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                guest
                    .expect(probe.output_pattern(), CHECK_TIMEOUT)
                    .map(|m| m.group(1).unwrap_or_default().to_owned())
                    .map_err(|e| first_line(&e))
            });
        match answer {
            Ok(got) => report.checks.push(probe.judge(&got)),
            Err(why) => {
                alive = false;
                let mut result = probe.judge("");
                result.got = format!("no answer: {why}");
                result.ok = false;
                report.checks.push(result);
            }
        }
    }
    report.checks.push(if alive {
        let (check, status) = exit_guest(guest, exp);
        report.exit_status = status;
        check
    } else {
        CheckResult {
            name: "exit".into(),
            expected: exit_expectation(exp),
            got: "not run".into(),
            ok: false,
        }
    });
    report.total = guest.elapsed();
    Ok(report)
}

fn exit_expectation(exp: &NodeExpectations) -> String {
    match exp.end {
        EndOfRun::PowerOff => {
            format!("{EXIT_STATUS_PREFIX}{FINAL_EXIT_STATUS}, power off, no panic")
        }
        EndOfRun::ProcessExit => format!("node exits with {FINAL_EXIT_STATUS}"),
    }
}

/// `process.exit(FINAL_EXIT_STATUS)`. As PID 1, node prints the status
/// line and powers off: QEMU exits with success, and a kernel panic
/// anywhere in the console output (init exiting included) fails the check.
/// Returns the check and the status seen.
fn exit_guest(guest: &mut Guest, exp: &NodeExpectations) -> (CheckResult, Option<u8>) {
    let expected = exit_expectation(exp);
    let result = |got: String, ok| CheckResult {
        name: "exit".into(),
        expected: expected.clone(),
        got,
        ok,
    };
    if let Err(err) = guest.send_line(&format!("process.exit({FINAL_EXIT_STATUS})")) {
        return (result(format!("could not send: {err}"), false), None);
    }
    let mut status = None;
    let mut got = Vec::new();
    if exp.end == EndOfRun::PowerOff {
        match guest.expect(exit_status_pattern(), EXIT_TIMEOUT) {
            Ok(m) => {
                status = m.group(1).and_then(|s| s.parse::<u8>().ok());
                got.push(format!(
                    "{EXIT_STATUS_PREFIX}{}",
                    m.group(1).unwrap_or_default()
                ));
            }
            Err(err) => return (result(first_line(&err), false), None),
        }
    }
    match guest.wait_exit(EXIT_TIMEOUT) {
        Ok(qemu) => {
            let ok = match exp.end {
                EndOfRun::PowerOff => {
                    got.push(format!("QEMU {qemu}"));
                    qemu.success() && status == Some(FINAL_EXIT_STATUS)
                }
                EndOfRun::ProcessExit => {
                    status = qemu.code().and_then(|c| u8::try_from(c).ok());
                    got.push(format!("node {qemu}"));
                    status == Some(FINAL_EXIT_STATUS)
                }
            };
            (result(got.join(", "), ok), status)
        }
        Err(err) => {
            got.push(first_line(&err));
            (result(got.join(", "), false), status)
        }
    }
}

fn first_line(err: &dyn fmt::Display) -> String {
    err.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests;
