//! One boot: QEMU with the joined archive, the runner's lines read off the
//! console as they come.

use std::collections::BTreeMap;
use std::time::Duration;

use super::protocol::{Event, GuestFacts, LINE_REGEX, TestResult};
use super::report::RunEnd;
use crate::{Guest, Pattern, QemuConfig};

/// From QEMU's start to the runner's first line (boot, unpacking both
/// archives, node's start); before `NODEOS_TIMEOUT_MULTIPLIER`.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
/// Beyond a test's own timeout, how long the host waits for the next line:
/// the runner's SIGKILL grace (5 s), the pipes' drain (1 s), slack.
pub const LINE_SLACK: Duration = Duration::from_secs(60);
/// From the runner's `done` to QEMU's exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// What came back from one boot.
#[derive(Debug)]
pub struct GuestRun {
    pub facts: Option<GuestFacts>,
    pub results: BTreeMap<usize, TestResult>,
    pub end: RunEnd,
    pub wall: Duration,
    pub boot: Option<Duration>,
    pub log_path: std::path::PathBuf,
    /// Lines that looked like the runner's but did not parse (a kernel
    /// message printed into the middle of one, say).
    pub garbled: Vec<String>,
}

/// Boots `cfg` (whose initrd holds the test archive and whose command line
/// starts the runner) and collects the runner's lines until `done`, an
/// error, or the guest's end. `per_test` is the runner's timeout per file;
/// `on_event` sees every event as it arrives (progress output).
pub fn run_guest(
    cfg: &QemuConfig,
    per_test: Duration,
    on_event: &mut dyn FnMut(&Event),
) -> anyhow::Result<GuestRun> {
    let mut guest = Guest::launch(cfg)?;
    let pattern = Pattern::regex(LINE_REGEX).expect("a valid regex");
    let mut run = GuestRun {
        facts: None,
        results: BTreeMap::new(),
        end: RunEnd::GuestFailed(String::new()),
        wall: Duration::ZERO,
        boot: None,
        log_path: guest.log_path().to_owned(),
        garbled: Vec::new(),
    };
    let end = loop {
        let timeout = if run.facts.is_none() {
            BOOT_TIMEOUT
        } else {
            per_test + LINE_SLACK
        };
        let found = match guest.expect(&pattern, timeout) {
            Ok(m) => m,
            Err(e) => break RunEnd::GuestFailed(e.to_string()),
        };
        let json = found.group(1).unwrap_or_default();
        let event = match Event::parse(json) {
            Ok(ev) => ev,
            Err(e) => {
                guest.note(&format!("garbled runner line: {e}"));
                run.garbled.push(e);
                continue;
            }
        };
        on_event(&event);
        match event {
            Event::Hello(facts) => {
                run.boot = Some(found.at);
                run.facts = Some(facts);
            }
            Event::Start { .. } => {}
            Event::Result(r) => {
                run.results.insert(r.id, r);
            }
            Event::Done { .. } => break RunEnd::Done,
            Event::Error { message } => break RunEnd::RunnerError(message),
        }
    };
    // The runner is done (or dead): node, PID 1, exits, and the kernel
    // panics with "Attempted to kill init" unless the node powers off.
    if matches!(end, RunEnd::Done | RunEnd::RunnerError(_)) {
        guest.expect_init_exit();
        if let Err(e) = guest.wait_exit(EXIT_TIMEOUT) {
            guest.note(&format!("QEMU did not exit after the runner ended: {e}"));
        }
    }
    run.wall = guest.elapsed();
    run.end = end;
    Ok(run)
}
