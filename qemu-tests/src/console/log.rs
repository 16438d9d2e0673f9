//! The console log file: every console byte with a timestamp per line,
//! plus the harness's and QEMU's lines.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

pub(super) struct Log {
    pub(super) out: Option<BufWriter<File>>,
    pub(super) path: PathBuf,
    pub(super) at_line_start: bool,
    pub(super) error: Option<String>,
}

impl Log {
    /// Console bytes go to the log as they are, each line prefixed with the
    /// seconds since launch at which its first byte arrived.
    pub(super) fn write_console(&mut self, at: Duration, mut chunk: &[u8]) {
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
    pub(super) fn write_line(&mut self, at: Duration, marker: &str, text: &[u8]) {
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
    pub(super) fn flush(&mut self) {
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
