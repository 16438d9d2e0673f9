//! `cargo xtask qemu-test --app DIR`: boots each arch's image with the app
//! and judges it by what an app can be judged by from outside:
//!
//! * with `-p HOST:GUEST` forwards, the app passes when every forwarded
//!   port answers an HTTP `GET /` with a status below 400;
//! * without forwards, the app passes when it exits with status 0.
//!
//! An app that ends with another status fails, and the status is reported.

use crate::guest_config::{qemu_config, BootArgs};
use crate::image;
use anyhow::{bail, Result};
use nodeos_build::{Arch, Env};
use qemu_tests::app::{wait_app_exit, wait_for_http, AppStatus, HttpWait};
use qemu_tests::{Accel, Guest, Network};
use std::fmt;
use std::time::Duration;

/// From QEMU start to the app's first HTTP answer, or to its exit, before
/// `NODEOS_TIMEOUT_MULTIPLIER`: the REPL prompt takes seconds under TCG, and
/// an app's own start-up comes on top.
pub const APP_TIMEOUT: Duration = Duration::from_secs(240);

/// The app ended with a status other than 0: `cargo xtask` exits with that
/// status (128 + the signal for a killed app).
#[derive(Debug)]
pub struct AppFailed(pub AppStatus);

impl fmt::Display for AppFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the app ended with {}", self.0)
    }
}

impl std::error::Error for AppFailed {}

/// What one arch's app run showed.
pub struct AppReport {
    pub arch: Arch,
    pub accel: Accel,
    pub passed: bool,
    /// What was seen: "HTTP 200 on 8080 at 3.1 s", "exit status 3"...
    pub outcome: String,
    /// QEMU start to the first answer or to the app's exit.
    pub at: Option<Duration>,
    pub log: std::path::PathBuf,
}

/// Boots the image of `arch` with the app and judges it (see the module
/// docs). Errors are failures to run at all (no boot, QEMU missing).
pub fn check_app(env: &Env, arch: Arch, img: &image::Image, a: &BootArgs) -> Result<AppReport> {
    let cfg = qemu_config(env, arch, img, a.memory, &a.net.publish);
    let mut guest = Guest::launch(&cfg)?;
    let mut report = AppReport {
        arch,
        accel: guest.accel(),
        passed: false,
        outcome: String::new(),
        at: None,
        log: guest.log_path().to_owned(),
    };
    if a.net.publish.is_empty() {
        let end = match wait_app_exit(&mut guest, APP_TIMEOUT) {
            Ok(end) => end,
            Err(e) if e.is_timeout() => {
                report.outcome = format!(
                    "the app was still running after {} s: a server does not end by itself; \
                     test it over HTTP with -p HOST:GUEST (GUEST = the port it listens on)",
                    APP_TIMEOUT.as_secs()
                );
                return Ok(report);
            }
            Err(e) => return Err(e.into()),
        };
        report.passed = end.status.success();
        report.outcome = format!("the app ended with {} ({})", end.status, end.source);
        report.at = Some(end.at);
        return Ok(report);
    }
    let mut seen = Vec::new();
    for f in &a.net.publish {
        match wait_for_http(&mut guest, f.host, "/", APP_TIMEOUT)? {
            HttpWait::Answered(r, at) => {
                seen.push(format!("HTTP {} on :{}", r.status, f.host));
                report.at.get_or_insert(at);
                if r.status >= 400 {
                    report.outcome = seen.join(", ");
                    return Ok(report);
                }
            }
            HttpWait::AppExited(end) => {
                seen.push(format!(
                    "the app ended with {} before answering on :{}",
                    end.status, f.host
                ));
                report.outcome = seen.join(", ");
                report.at = Some(end.at);
                return Ok(report);
            }
        }
    }
    report.passed = true;
    report.outcome = seen.join(", ");
    Ok(report)
}

pub fn run_app_tests(env: &Env, arches: &[Arch], a: &BootArgs, app: &initramfs::App) -> Result<()> {
    let net = Network::with_forwards(a.net.publish.clone());
    net.check_host_ports()?;
    println!("app: {}", crate::app_args::describe(app));
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for &arch in arches {
        let img = image::build(env, arch, a.node.version()?, a.kernel.as_deref(), Some(app))?;
        match check_app(env, arch, &img, a) {
            Ok(r) => {
                if !r.passed {
                    failed.push(format!("{arch}: {} (log: {})", r.outcome, r.log.display()));
                }
                reports.push(r);
            }
            Err(e) => failed.push(format!("{arch}: {e:#}")),
        }
    }
    println!(
        "{:<8} {:<8} {:<6} {:>14}  outcome",
        "arch", "result", "accel", "boot→answer"
    );
    for r in &reports {
        println!(
            "{:<8} {:<8} {:<6} {:>14}  {}",
            r.arch.name(),
            if r.passed { "PASS" } else { "FAIL" },
            format!("{:?}", r.accel),
            r.at.map(|d| format!("{:.2}s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
            r.outcome
        );
    }
    if !failed.is_empty() {
        bail!("qemu-test --app failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}
