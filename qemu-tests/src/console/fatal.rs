//! Console lines that end a run: their kinds and the events recorded.

use std::time::Duration;

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

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Fatal::KernelPanic => "the kernel panicked",
            Fatal::InitExited => "init exited (Attempted to kill init)",
            Fatal::NoConsole => {
                "the kernel could not open an initial console (no /dev/console in the initramfs, nor a built-in one?)"
            }
        }
    }

    pub(crate) fn hint(self) -> &'static str {
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
