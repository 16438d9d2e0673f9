//! Progress display. On a terminal: one spinner line per phase with step,
//! elapsed time and the last log line. Elsewhere (CI, logs, background
//! runs): plain lines at each step and a heartbeat line every minute, so
//! an hour-long phase never looks hung.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub fn is_tty() -> bool {
    std::io::stderr().is_terminal()
}

pub struct PhaseProgress {
    label: String,
    bar: Option<ProgressBar>,
    step: String,
    started: Instant,
    step_started: Instant,
    last_heartbeat: Instant,
    last_line: String,
    /// Optional counter (done, total) shown as a percentage, e.g. objects
    /// compiled out of those the build will compile.
    counter: Option<Counter>,
}

/// A progress counter: (done, total), or `None` while unknown.
pub type Counter = Box<dyn Fn() -> Option<(u64, u64)>>;

const HEARTBEAT: Duration = Duration::from_secs(60);

impl PhaseProgress {
    /// `quiet_bar`: no spinner (e.g. when the log is streamed with -v).
    pub fn new(label: String, quiet_bar: bool) -> PhaseProgress {
        let bar = (is_tty() && !quiet_bar).then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:.bold} [{elapsed_precise}] {wide_msg}",
                )
                .expect("static template"),
            );
            b.set_prefix(label.clone());
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        let now = Instant::now();
        PhaseProgress {
            label,
            bar,
            step: String::new(),
            started: now,
            step_started: now,
            last_heartbeat: now,
            last_line: String::new(),
            counter: None,
        }
    }

    pub fn set_counter(&mut self, c: Option<Counter>) {
        self.counter = c;
    }

    pub fn println(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    pub fn step(&mut self, step: &str) {
        self.step = step.to_string();
        self.step_started = Instant::now();
        self.last_line.clear();
        self.println(&format!("  {} → {step}", self.label));
        self.redraw();
    }

    pub fn line(&mut self, line: &str) {
        self.last_line = line.chars().take(160).collect();
        if self.bar.is_some() {
            self.redraw();
        } else if self.last_heartbeat.elapsed() >= HEARTBEAT {
            self.last_heartbeat = Instant::now();
            eprintln!(
                "  {} {} {} (phase {}){}: {}",
                self.label,
                self.step,
                crate::util::fmt_duration(self.step_started.elapsed()),
                crate::util::fmt_duration(self.started.elapsed()),
                self.percent(),
                self.last_line
            );
        }
    }

    fn percent(&self) -> String {
        match self.counter.as_ref().and_then(|c| c()) {
            Some((done, total)) if total > 0 => {
                format!(
                    " {done}/{total} ({:.0}%)",
                    100.0 * done as f64 / total as f64
                )
            }
            _ => String::new(),
        }
    }

    fn redraw(&self) {
        if let Some(b) = &self.bar {
            b.set_message(format!(
                "{}{}  {}",
                self.step,
                self.percent(),
                self.last_line
            ));
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for PhaseProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A byte-count bar for downloads (hidden off a terminal).
pub fn bytes_bar(name: &str, len: Option<u64>) -> ProgressBar {
    if !is_tty() {
        eprintln!("  downloading {name}");
        return ProgressBar::hidden();
    }
    let b = match len {
        Some(l) => ProgressBar::new(l),
        None => ProgressBar::new_spinner(),
    };
    b.set_style(
        ProgressStyle::with_template("  {prefix} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("static template"),
    );
    b.set_prefix(name.to_string());
    b
}
