//! The console engine: reader threads copy every byte of the guest console
//! (and QEMU's stderr) to a timestamped log file and keep a bounded window
//! that [`crate::Guest::expect`] searches.
//!
//! Memory stays bounded whatever the guest prints: the search window, the
//! tail of lines kept for error messages, the part of one line that is
//! scanned, and the list of fatal events all have fixed limits. Only the log
//! file grows.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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

/// A pattern to wait for on the console.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Plain text, matched byte for byte.
    Substring(String),
    /// A regular expression (the `regex` crate's syntax); capture groups end
    /// up in [`Match::groups`].
    Regex(regex::Regex),
}

impl Pattern {
    /// A regex pattern, e.g. `Pattern::regex(r"pid=(\d+)")?`.
    pub fn regex(source: &str) -> Result<Pattern, regex::Error> {
        regex::Regex::new(source).map(Pattern::Regex)
    }

    /// The byte regex the engine searches with (the console is bytes, not
    /// necessarily UTF-8).
    pub(crate) fn compile(&self) -> regex::bytes::Regex {
        let source = match self {
            Pattern::Substring(text) => regex::escape(text),
            Pattern::Regex(re) => re.as_str().to_owned(),
        };
        regex::bytes::Regex::new(&source).expect("a valid str regex is a valid bytes regex")
    }
}

impl From<&str> for Pattern {
    fn from(text: &str) -> Pattern {
        Pattern::Substring(text.to_owned())
    }
}

impl From<String> for Pattern {
    fn from(text: String) -> Pattern {
        Pattern::Substring(text)
    }
}

impl From<&Pattern> for Pattern {
    fn from(p: &Pattern) -> Pattern {
        p.clone()
    }
}

impl From<regex::Regex> for Pattern {
    fn from(re: regex::Regex) -> Pattern {
        Pattern::Regex(re)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Substring(text) => write!(f, "{text:?}"),
            Pattern::Regex(re) => write!(f, "regex /{}/", re.as_str()),
        }
    }
}

/// A successful [`crate::Guest::expect`].
#[derive(Debug, Clone)]
pub struct Match {
    /// The matched text (invalid UTF-8 replaced).
    pub text: String,
    /// Capture groups 1.. of a regex pattern.
    pub groups: Vec<Option<String>>,
    /// Console output between the previous match and this one (its last
    /// 64 KiB at most).
    pub before: String,
    /// Time from launch to the match.
    pub at: Duration,
}

impl Match {
    /// Capture group `i` (1-based, as in regex syntax).
    pub fn group(&self, i: usize) -> Option<&str> {
        self.groups.get(i.checked_sub(1)?)?.as_deref()
    }
}

/// Console lines that end the run unless the test said they are expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fatal {
    /// `Kernel panic` for any reason other than init exiting.
    KernelPanic,
    /// `Attempted to kill init`: PID 1 exited (a kernel panic too). This is
    /// how a NodeOS guest ends (`process.exit()`), so tests allow it often.
    InitExited,
    /// `unable to open an initial console`: no `/dev/console` in the
    /// initramfs; init would run without stdio.
    NoConsole,
}

impl Fatal {
    /// The fatal kind of a console line, if any. Init exiting is checked
    /// first because its panic line also says `Kernel panic`.
    pub fn classify(line: &str) -> Option<Fatal> {
        if line.contains("Attempted to kill init") {
            Some(Fatal::InitExited)
        } else if line.contains("Kernel panic") {
            Some(Fatal::KernelPanic)
        } else if line.contains("unable to open an initial console") {
            Some(Fatal::NoConsole)
        } else {
            None
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Fatal::KernelPanic => "the kernel panicked",
            Fatal::InitExited => "init exited (Attempted to kill init)",
            Fatal::NoConsole => {
                "the kernel could not open an initial console (no /dev/console in the initramfs, nor a built-in one?)"
            }
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Fatal::KernelPanic => "if the test expects it, call expect_panic() first",
            Fatal::InitExited => "if the test expects it, call expect_init_exit() first",
            Fatal::NoConsole => "if the test expects it, call allow(Fatal::NoConsole) first",
        }
    }
}

/// One fatal line seen on the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatalEvent {
    pub kind: Fatal,
    /// The console line (control characters removed).
    pub line: String,
    /// Time from launch to the line.
    pub at: Duration,
    /// Byte offsets of the line in the console stream (start, end).
    pub(crate) start: u64,
    pub(crate) end: u64,
}

/// What a failing expect knew about the guest: enough to debug it from the
/// error message alone, plus where the full log is.
#[derive(Debug, Clone)]
pub struct FailureContext {
    /// Which guest, e.g. "x86_64 guest (TCG)".
    pub guest: String,
    pub log_path: PathBuf,
    /// The last console lines (the current partial line last).
    pub tail: Vec<String>,
    /// The last lines QEMU printed on its stderr.
    pub qemu_stderr: Vec<String>,
    /// Time from launch to the failure.
    pub elapsed: Duration,
    /// Set when the log could not be written (disk full...).
    pub log_error: Option<String>,
}

/// Why an expect (or send, or wait) failed.
#[derive(Debug)]
pub enum ExpectError {
    /// The pattern did not appear in time.
    Timeout {
        waiting_for: String,
        /// The timeout after the multiplier.
        waited: Duration,
        context: Box<FailureContext>,
    },
    /// A fatal line that the test did not expect came first.
    Fatal {
        waiting_for: String,
        event: FatalEvent,
        context: Box<FailureContext>,
    },
    /// QEMU exited (console closed) before the pattern appeared.
    Exited {
        waiting_for: String,
        status: Option<ExitStatus>,
        context: Box<FailureContext>,
    },
    /// Writing to the console failed.
    Send {
        error: String,
        context: Box<FailureContext>,
    },
    /// A bad setting (e.g. `NODEOS_TIMEOUT_MULTIPLIER`).
    Config(String),
}

impl ExpectError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, ExpectError::Timeout { .. })
    }

    /// The fatal kind when a fatal line ended the wait.
    pub fn fatal(&self) -> Option<Fatal> {
        match self {
            ExpectError::Fatal { event, .. } => Some(event.kind),
            _ => None,
        }
    }

    pub fn context(&self) -> Option<&FailureContext> {
        match self {
            ExpectError::Timeout { context, .. }
            | ExpectError::Fatal { context, .. }
            | ExpectError::Exited { context, .. }
            | ExpectError::Send { context, .. } => Some(context),
            ExpectError::Config(_) => None,
        }
    }

    pub fn log_path(&self) -> Option<&Path> {
        self.context().map(|c| c.log_path.as_path())
    }
}

impl fmt::Display for ExpectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectError::Config(msg) => return f.write_str(msg),
            ExpectError::Timeout {
                waiting_for,
                waited,
                context,
            } => write!(
                f,
                "{}: timed out after {:.1} s waiting for {waiting_for}",
                context.guest,
                waited.as_secs_f64()
            )?,
            ExpectError::Fatal {
                waiting_for,
                event,
                context,
            } => write!(
                f,
                "{}: {} at {:.2} s while waiting for {waiting_for}: {:?} ({})",
                context.guest,
                event.kind.describe(),
                event.at.as_secs_f64(),
                event.line,
                event.kind.hint()
            )?,
            ExpectError::Exited {
                waiting_for,
                status,
                context,
            } => {
                write!(
                    f,
                    "{}: QEMU exited while waiting for {waiting_for}",
                    context.guest
                )?;
                if let Some(status) = status {
                    write!(f, " ({status})")?;
                }
            }
            ExpectError::Send { error, context } => write!(
                f,
                "{}: could not write to the console: {error}",
                context.guest
            )?,
        }
        let context = self.context().expect("only Config has no context");
        write!(
            f,
            " [{:.2} s after launch]\nfull console log: {}",
            context.elapsed.as_secs_f64(),
            context.log_path.display()
        )?;
        if let Some(err) = &context.log_error {
            write!(f, " (incomplete: {err})")?;
        }
        write!(f, "\nlast {} console lines:", context.tail.len())?;
        for line in &context.tail {
            write!(f, "\n  | {line}")?;
        }
        if !context.qemu_stderr.is_empty() {
            write!(f, "\nQEMU stderr:")?;
            for line in &context.qemu_stderr {
                write!(f, "\n  | {line}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ExpectError {}

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

struct Log {
    out: Option<BufWriter<File>>,
    path: PathBuf,
    at_line_start: bool,
    error: Option<String>,
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

impl Log {
    /// Console bytes go to the log as they are, each line prefixed with the
    /// seconds since launch at which its first byte arrived.
    fn write_console(&mut self, at: Duration, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            if self.at_line_start {
                let prefix = format!("[{:9.3}] ", at.as_secs_f64());
                self.write(prefix.as_bytes());
                self.at_line_start = false;
            }
            let (line, rest) = match chunk.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    self.at_line_start = true;
                    chunk.split_at(nl + 1)
                }
                None => (chunk, &[][..]),
            };
            self.write(line);
            chunk = rest;
        }
    }

    /// A whole line from the harness or QEMU's stderr. If the console is in
    /// the middle of a line, that line is ended first (the log then shows
    /// the console line in two parts).
    fn write_line(&mut self, at: Duration, marker: &str, text: &[u8]) {
        if !self.at_line_start {
            self.write(b"\n");
            self.at_line_start = true;
        }
        let prefix = format!("[{:9.3}] {marker}", at.as_secs_f64());
        self.write(prefix.as_bytes());
        self.write(text);
        self.write(b"\n");
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Some(out) = &mut self.out
            && let Err(err) = out.write_all(bytes)
        {
            self.fail(err);
        }
    }

    /// Flushed after each chunk so the log is complete even if the harness
    /// is killed.
    fn flush(&mut self) {
        if let Some(out) = &mut self.out
            && let Err(err) = out.flush()
        {
            self.fail(err);
        }
    }

    /// The console keeps being read (a stalled pipe would stall the guest),
    /// only the log stops.
    fn fail(&mut self, err: std::io::Error) {
        self.error = Some(format!("writing {} failed: {err}", self.path.display()));
        self.out = None;
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
mod tests {
    use super::*;

    fn console(dir: &Path, limit: usize) -> Arc<Console> {
        Console::create(&dir.join("console.log"), limit).unwrap()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn classify_fatal_lines() {
        let init =
            "[    1.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000";
        assert_eq!(Fatal::classify(init), Some(Fatal::InitExited));
        assert_eq!(
            Fatal::classify("Kernel panic - not syncing: VFS: Unable to mount root fs"),
            Some(Fatal::KernelPanic)
        );
        assert_eq!(
            Fatal::classify("Warning: unable to open an initial console."),
            Some(Fatal::NoConsole)
        );
        assert_eq!(Fatal::classify("Run /init as init process"), None);
    }

    #[test]
    fn clean_line_strips_escapes_and_cr() {
        assert_eq!(clean_line(b"\x1b[1G\x1b[0J> 1+1\r"), "> 1+1");
        assert_eq!(clean_line(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn match_across_chunks_and_cursor_moves() {
        let dir = tempfile::tempdir().unwrap();
        let c = console(dir.path(), WINDOW_LIMIT);
        c.ingest_console(b"hello wo");
        c.ingest_console(b"rld\nsecond world\n");
        let re = Pattern::from("world").compile();
        let mut cursor = 0;
        let Outcome::Matched(m) = c.expect(&re, &mut cursor, &[], soon()) else {
            panic!("no match")
        };
        assert_eq!(m.before, "hello ");
        assert_eq!(cursor, 11);
        let Outcome::Matched(m) = c.expect(&re, &mut cursor, &[], soon()) else {
            panic!("no second match")
        };
        assert_eq!(m.before, "\nsecond ");
        let re = Pattern::regex(r"(\w+) (w)orld").unwrap().compile();
        let mut cursor = 0;
        let Outcome::Matched(m) = c.expect(&re, &mut cursor, &[], soon()) else {
            panic!("no regex match")
        };
        assert_eq!(m.group(1), Some("hello"));
        assert_eq!(m.group(2), Some("w"));
        assert_eq!(m.group(3), None);
    }

    #[test]
    fn output_before_a_fatal_line_still_matches_but_not_after() {
        let dir = tempfile::tempdir().unwrap();
        let c = console(dir.path(), WINDOW_LIMIT);
        c.ingest_console(
            b"marker one\nKernel panic - not syncing: Attempted to kill init!\nlate marker\n",
        );
        let mut cursor = 0;
        let re = Pattern::from("marker").compile();
        assert!(matches!(
            c.expect(&re, &mut cursor, &[], soon()),
            Outcome::Matched(_)
        ));
        match c.expect(&re, &mut cursor, &[], soon()) {
            Outcome::Fatal(e) => assert_eq!(e.kind, Fatal::InitExited),
            _ => panic!("the panic line should end the wait"),
        }
        // Allowed, the panic is passed over.
        assert!(matches!(
            c.expect(&re, &mut cursor, &[Fatal::InitExited], soon()),
            Outcome::Matched(_)
        ));
        assert_eq!(c.pending_fatal(cursor, &[]), None);
    }

    #[test]
    fn window_stays_bounded_and_tail_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let c = console(dir.path(), 4096);
        for i in 0..10_000 {
            c.ingest_console(format!("flood line {i}\n").as_bytes());
        }
        assert!(c.window_bytes() <= 4096);
        let re = Pattern::from("flood line 9999\n").compile();
        let mut cursor = 0;
        assert!(matches!(
            c.expect(&re, &mut cursor, &[], soon()),
            Outcome::Matched(_)
        ));
        let ctx = c.failure_context("test guest");
        assert_eq!(ctx.tail.len(), TAIL_LINES);
        assert_eq!(ctx.tail.last().unwrap(), "flood line 9999");
        c.flush_log();
        let log = std::fs::read_to_string(dir.path().join("console.log")).unwrap();
        assert_eq!(log.lines().count(), 10_000);
        assert!(
            log.lines()
                .all(|l| l.starts_with('[') && l.contains("] flood line"))
        );
    }

    #[test]
    fn long_lines_are_cut_for_scanning() {
        let dir = tempfile::tempdir().unwrap();
        let c = console(dir.path(), 1 << 16);
        for _ in 0..100 {
            c.ingest_console(&[b'x'; 10_000]);
        }
        let ctx = c.failure_context("g");
        assert_eq!(ctx.tail, vec!["x".repeat(LINE_CAP)]);
    }

    #[test]
    fn timeout_and_eof() {
        let dir = tempfile::tempdir().unwrap();
        let c = console(dir.path(), WINDOW_LIMIT);
        let re = Pattern::from("never").compile();
        let mut cursor = 0;
        let t0 = Instant::now();
        assert!(matches!(
            c.expect(&re, &mut cursor, &[], t0 + Duration::from_millis(200)),
            Outcome::Timeout
        ));
        assert!(t0.elapsed() >= Duration::from_millis(200));
        c.pump_console(&b"last words"[..]);
        assert!(matches!(
            c.expect(&re, &mut cursor, &[], soon()),
            Outcome::Eof
        ));
        assert_eq!(c.failure_context("g").tail, vec!["last words"]);
    }

    #[test]
    fn log_lines_carry_timestamps_and_notes() {
        let dir = tempfile::tempdir().unwrap();
        let c = console(dir.path(), WINDOW_LIMIT);
        c.ingest_console(b"abc");
        c.note("sent a line");
        c.ingest_console(b"def\nghi\n");
        c.flush_log();
        let log = std::fs::read_to_string(dir.path().join("console.log")).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 4, "{log}");
        assert!(lines[0].ends_with("] abc"));
        assert!(lines[1].ends_with("] ## sent a line"));
        assert!(lines[2].ends_with("] def"));
        assert!(lines[3].ends_with("] ghi"));
    }
}
