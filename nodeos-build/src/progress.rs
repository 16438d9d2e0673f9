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
    pace: Pace,
}

/// How long is left at the recent pace: samples of the counter over the
/// last [`Pace::WINDOW`]. The recent pace, not the average since the
/// start: a resumed build or a warm compiler cache rushes through its
/// first steps.
#[derive(Debug, Default)]
pub struct Pace {
    samples: std::collections::VecDeque<(Duration, u64)>,
}

impl Pace {
    pub const WINDOW: Duration = Duration::from_secs(15 * 60);
    /// No estimate from less than this much of the window.
    pub const MIN_SPAN: Duration = Duration::from_secs(3 * 60);
    const EVERY: Duration = Duration::from_secs(5);

    /// Notes `done` at `at` (time since the phase started).
    pub fn sample(&mut self, at: Duration, done: u64) {
        match self.samples.back() {
            // The counter went back (a new step): start over.
            Some(&(_, d)) if d > done => self.samples.clear(),
            // A terminal redraws at every log line: a sample every few
            // seconds is plenty.
            Some(&(t, _)) if at.saturating_sub(t) < Pace::EVERY => return,
            _ => {}
        }
        self.samples.push_back((at, done));
        while self
            .samples
            .front()
            .is_some_and(|&(t, _)| at.saturating_sub(t) > Pace::WINDOW)
            && self.samples.len() > 2
        {
            self.samples.pop_front();
        }
    }

    /// Time left for `total` at the pace of the window; `None` until the
    /// window spans [`Pace::MIN_SPAN`] with some progress in it.
    pub fn left(&self, total: u64) -> Option<(Duration, Duration)> {
        let (&(t0, d0), &(t1, d1)) = (self.samples.front()?, self.samples.back()?);
        let span = t1.saturating_sub(t0);
        if span < Pace::MIN_SPAN || d1 <= d0 {
            return None;
        }
        let per_step = span.as_secs_f64() / (d1 - d0) as f64;
        let left = per_step * total.saturating_sub(d1) as f64;
        Some((Duration::from_secs_f64(left), span))
    }
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
            pace: Pace::default(),
        }
    }

    pub fn set_counter(&mut self, c: Option<Counter>) {
        self.counter = c;
        self.pace = Pace::default();
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
            let percent = self.percent();
            eprintln!(
                "  {} {} {} (phase {}){percent}: {}",
                self.label,
                self.step,
                crate::util::fmt_duration(self.step_started.elapsed()),
                crate::util::fmt_duration(self.started.elapsed()),
                self.last_line
            );
        }
    }

    fn percent(&mut self) -> String {
        match self.counter.as_ref().and_then(|c| c()) {
            Some((done, total)) if total > 0 => {
                self.pace.sample(self.started.elapsed(), done);
                let left = match self.pace.left(total) {
                    Some((left, span)) => format!(
                        ", about {} left at the pace of the last {}",
                        fmt_minutes(left),
                        fmt_minutes(span)
                    ),
                    None => String::new(),
                };
                format!(
                    " {done}/{total} ({:.0}%{left})",
                    100.0 * done as f64 / total as f64
                )
            }
            _ => String::new(),
        }
    }

    fn redraw(&mut self) {
        if self.bar.is_some() {
            let percent = self.percent();
            let msg = format!("{}{percent}  {}", self.step, self.last_line);
            if let Some(b) = &self.bar {
                b.set_message(msg);
            }
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

/// An estimate to the minute (`2h 19m`, `7 min`): seconds would claim a
/// precision it does not have.
fn fmt_minutes(d: Duration) -> String {
    let m = (d.as_secs() + 30) / 60;
    if m >= 60 {
        format!("{}h {:02}m", m / 60, m % 60)
    } else {
        format!("{m} min")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn min(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    #[test]
    fn time_left_follows_the_recent_pace_not_the_start() {
        let mut p = Pace::default();
        // A warm cache: 1,000 steps in the first 2 minutes...
        p.sample(min(0), 0);
        p.sample(min(2), 1000);
        assert_eq!(p.left(3000), None, "under 3 min of samples");
        // ...then 4 steps a minute.
        for m in 3..=40 {
            p.sample(min(m), 1000 + 4 * (m - 2));
        }
        let (left, span) = p.left(3000).unwrap();
        assert_eq!(span, min(15));
        // 1,848 steps left at 4 a minute: 462 min.
        assert_eq!(left.as_secs(), 462 * 60);
        assert_eq!(fmt_minutes(left), "7h 42m");
        assert_eq!(fmt_minutes(Duration::from_secs(89)), "1 min");
        assert_eq!(fmt_minutes(Duration::from_secs(90)), "2 min");
    }

    #[test]
    fn a_counter_that_goes_back_or_stands_still_gives_no_estimate() {
        let mut p = Pace::default();
        p.sample(min(0), 500);
        p.sample(min(10), 900);
        p.sample(min(11), 3);
        assert_eq!(p.left(1000), None);
        p.sample(min(20), 3);
        assert_eq!(p.left(1000), None, "no progress: no pace");
        p.sample(min(25), 103);
        let (left, _) = p.left(1003).unwrap();
        // 100 steps in 14 min; 900 left.
        assert_eq!(left.as_secs(), 900 * 14 * 60 / 100);
    }
}
