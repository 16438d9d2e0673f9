//! The console engine: reader threads copy every byte of the guest console
//! (and QEMU's stderr) to a timestamped log file and keep a bounded window
//! that [`crate::Guest::expect`] searches.
//!
//! Memory stays bounded whatever the guest prints: the search window, the
//! tail of lines kept for error messages, the part of one line that is
//! scanned, and the list of fatal events all have fixed limits. Only the log
//! file grows.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod error;
mod fatal;
mod log;
mod pattern;

pub use error::{ExpectError, FailureContext};
pub use fatal::{Fatal, FatalEvent};
use log::Log;
pub use pattern::{Match, Pattern};

/// Default limit of the search window. When it is exceeded the oldest half
/// is dropped, so a match must arrive within this many bytes of console
/// output after the previous one (the log keeps everything).
pub(crate) const WINDOW_LIMIT: usize = 1 << 20;
/// Console lines kept for error messages.
const TAIL_LINES: usize = 40;
/// QEMU stderr lines kept for error messages.
const STDERR_LINES: usize = 20;
/// Bytes of one console line kept for the fatal-line scan and the tail; a
/// longer line (a flood without newlines) is cut there.
const LINE_CAP: usize = 1024;
/// Fatal events kept (the newest); a panic loop cannot grow memory.
const FATAL_EVENTS: usize = 32;
/// Bytes of [`Match::before`] kept.
const BEFORE_CAP: usize = 64 * 1024;
/// What one wait on the console ended with.
pub(crate) enum Outcome {
    Matched(Match),
    Fatal(FatalEvent),
    Eof,
    Timeout,
}

/// The state shared by the reader threads and the expect engine.
pub(crate) struct Console {
    state: Mutex<State>,
    changed: Condvar,
    log: Mutex<Log>,
    start: Instant,
    window_limit: usize,
}

struct State {
    /// The newest console bytes, `window_start` being the stream offset of
    /// the first one.
    window: Vec<u8>,
    window_start: u64,
    /// Bytes received in all.
    total: u64,
    /// The current line (first LINE_CAP bytes) and its stream offset.
    line: Vec<u8>,
    line_start: u64,
    tail: VecDeque<String>,
    fatal: VecDeque<FatalEvent>,
    stderr_tail: VecDeque<String>,
    console_eof: bool,
    stderr_eof: bool,
    read_error: Option<String>,
}

impl Console {
    /// Creates (truncates) the log file.
    pub(crate) fn create(log_path: &Path, window_limit: usize) -> anyhow::Result<Arc<Console>> {
        use anyhow::Context as _;
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the log directory {}", dir.display()))?;
        }
        let file = File::create(log_path)
            .with_context(|| format!("creating the console log {}", log_path.display()))?;
        Ok(Arc::new(Console {
            state: Mutex::new(State {
                window: Vec::new(),
                window_start: 0,
                total: 0,
                line: Vec::new(),
                line_start: 0,
                tail: VecDeque::new(),
                fatal: VecDeque::new(),
                stderr_tail: VecDeque::new(),
                console_eof: false,
                stderr_eof: false,
                read_error: None,
            }),
            changed: Condvar::new(),
            log: Mutex::new(Log {
                out: Some(BufWriter::new(file)),
                path: log_path.to_owned(),
                at_line_start: true,
                error: None,
            }),
            start: Instant::now(),
            window_limit: window_limit.max(2),
        }))
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Writes a harness line (`## ...`) into the log, so the log tells what
    /// the test was doing when the console said what it said.
    pub(crate) fn note(&self, message: &str) {
        let at = self.elapsed();
        let mut log = lock(&self.log);
        for line in message.lines() {
            log.write_line(at, "## ", line.as_bytes());
        }
        log.flush();
    }

    /// Copies the guest console from `source` until it closes. Runs on its
    /// own thread.
    pub(crate) fn pump_console(&self, source: impl Read) {
        let result = pump(source, |chunk| self.ingest_console(chunk));
        let mut state = lock(&self.state);
        if let Err(err) = result {
            state.read_error = Some(format!("reading the console: {err}"));
        }
        // A last line without newline still counts (QEMU may die mid-line).
        if !state.line.is_empty() {
            let end = state.total;
            state.finish_line(end, self.elapsed());
        }
        state.console_eof = true;
        self.changed.notify_all();
    }

    /// Copies QEMU's stderr into the log and a short tail. Runs on its own
    /// thread.
    pub(crate) fn pump_stderr(&self, source: impl Read) {
        let mut pending = Vec::new();
        let result = pump(source, |chunk| {
            pending.extend_from_slice(chunk);
            while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                self.stderr_line(&line[..nl]);
            }
            // A stderr flood without newlines must not grow memory either.
            if pending.len() > LINE_CAP {
                let line = std::mem::take(&mut pending);
                self.stderr_line(&line);
            }
        });
        if !pending.is_empty() {
            self.stderr_line(&pending);
        }
        if let Err(err) = result {
            self.stderr_line(format!("(reading QEMU stderr failed: {err})").as_bytes());
        }
        lock(&self.state).stderr_eof = true;
        self.changed.notify_all();
    }

    fn stderr_line(&self, line: &[u8]) {
        let at = self.elapsed();
        {
            let mut log = lock(&self.log);
            log.write_line(at, "## qemu stderr: ", line);
            log.flush();
        }
        let mut state = lock(&self.state);
        push_bounded(&mut state.stderr_tail, clean_line(line), STDERR_LINES);
    }

    fn ingest_console(&self, chunk: &[u8]) {
        let at = self.elapsed();
        {
            let mut log = lock(&self.log);
            log.write_console(at, chunk);
            log.flush();
        }
        let mut state = lock(&self.state);
        let mut offset = state.total;
        state.total += chunk.len() as u64;
        state.window.extend_from_slice(chunk);
        if state.window.len() > self.window_limit {
            // Drop the oldest half at once so the copying cost is amortised.
            let excess = state.window.len() - self.window_limit / 2;
            state.window.drain(..excess);
            state.window_start += excess as u64;
        }
        for &byte in chunk {
            offset += 1;
            if byte == b'\n' {
                state.finish_line(offset, at);
            } else if state.line.len() < LINE_CAP {
                state.line.push(byte);
            }
        }
        self.changed.notify_all();
    }

    /// Waits until `re` matches after `cursor`, a fatal line not in
    /// `allowed` comes first, the console closes, or `deadline` passes.
    /// On a match the cursor moves past it.
    pub(crate) fn expect(
        &self,
        re: &regex::bytes::Regex,
        cursor: &mut u64,
        allowed: &[Fatal],
        deadline: Instant,
    ) -> Outcome {
        let mut state = lock(&self.state);
        loop {
            // Output dropped from the window before we looked at it cannot
            // match any more (it is still in the log).
            *cursor = (*cursor).max(state.window_start);
            let skip = (*cursor - state.window_start) as usize;
            let haystack = &state.window[skip..];
            let found = re.captures(haystack).map(|caps| {
                let whole = caps.get(0).expect("group 0 always matches");
                let before_from = whole.start().saturating_sub(BEFORE_CAP);
                let found = Match {
                    text: String::from_utf8_lossy(whole.as_bytes()).into_owned(),
                    groups: caps
                        .iter()
                        .skip(1)
                        .map(|g| g.map(|g| String::from_utf8_lossy(g.as_bytes()).into_owned()))
                        .collect(),
                    before: String::from_utf8_lossy(&haystack[before_from..whole.start()])
                        .into_owned(),
                    at: self.elapsed(),
                };
                (
                    *cursor + whole.start() as u64,
                    *cursor + whole.end() as u64,
                    found,
                )
            });
            let fatal = state.pending_fatal(*cursor, allowed);
            match (found, fatal) {
                (Some((start, _, _)), Some(event)) if event.start <= start => {
                    return Outcome::Fatal(event);
                }
                (Some((_, end, found)), _) => {
                    *cursor = end;
                    return Outcome::Matched(found);
                }
                (None, Some(event)) => return Outcome::Fatal(event),
                (None, None) => {}
            }
            if state.console_eof {
                return Outcome::Eof;
            }
            let now = Instant::now();
            if now >= deadline {
                return Outcome::Timeout;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The first fatal event not in `allowed` that is not wholly before
    /// `cursor`.
    pub(crate) fn pending_fatal(&self, cursor: u64, allowed: &[Fatal]) -> Option<FatalEvent> {
        lock(&self.state).pending_fatal(cursor, allowed)
    }

    /// Waits until both reader threads have seen end of file, or the
    /// deadline. Returns whether they did.
    pub(crate) fn wait_closed(&self, deadline: Instant) -> bool {
        let mut state = lock(&self.state);
        loop {
            if state.console_eof && state.stderr_eof {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The context for an error message.
    pub(crate) fn failure_context(&self, guest: &str) -> FailureContext {
        let (tail, qemu_stderr, read_error) = {
            let state = lock(&self.state);
            let mut tail: Vec<String> = state.tail.iter().cloned().collect();
            if !state.line.is_empty() {
                tail.push(clean_line(&state.line));
            }
            if tail.len() > TAIL_LINES {
                tail.drain(..tail.len() - TAIL_LINES);
            }
            let stderr = state.stderr_tail.iter().cloned().collect();
            (tail, stderr, state.read_error.clone())
        };
        let log = lock(&self.log);
        FailureContext {
            guest: guest.to_owned(),
            log_path: log.path.clone(),
            tail,
            qemu_stderr,
            elapsed: self.elapsed(),
            log_error: log.error.clone().or(read_error),
        }
    }

    /// Bytes received from the console so far.
    pub(crate) fn total_bytes(&self) -> u64 {
        lock(&self.state).total
    }

    /// Bytes held in the search window now (bounded by the window limit).
    pub(crate) fn window_bytes(&self) -> usize {
        lock(&self.state).window.len()
    }

    pub(crate) fn flush_log(&self) {
        lock(&self.log).flush();
    }
}

impl State {
    fn finish_line(&mut self, end: u64, at: Duration) {
        let text = clean_line(&self.line);
        if let Some(kind) = Fatal::classify(&text) {
            let event = FatalEvent {
                kind,
                line: text.clone(),
                at,
                start: self.line_start,
                end,
            };
            push_bounded(&mut self.fatal, event, FATAL_EVENTS);
        }
        push_bounded(&mut self.tail, text, TAIL_LINES);
        self.line.clear();
        self.line_start = end;
    }

    fn pending_fatal(&self, cursor: u64, allowed: &[Fatal]) -> Option<FatalEvent> {
        self.fatal
            .iter()
            .find(|e| e.end > cursor && !allowed.contains(&e.kind))
            .cloned()
    }
}

fn pump(mut source: impl Read, mut sink: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match source.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => sink(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, limit: usize) {
    if queue.len() == limit {
        queue.pop_front();
    }
    queue.push_back(item);
}

/// A console line made printable: lossy UTF-8, ANSI escape sequences (the
/// Node REPL's cursor moves) and other control characters removed.
pub(crate) fn clean_line(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ parameters final-byte(@..~); else a two-char
                // escape.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic on another thread while holding the lock leaves the data
    // consistent enough for logging and error messages.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
