//! The error a failing expect returns, with the context to debug it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use super::fatal::{Fatal, FatalEvent};

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
