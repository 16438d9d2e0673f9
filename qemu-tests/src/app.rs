//! Guests that run an app instead of the REPL: how the app's exit status is
//! read from the console, and how a server in the guest is reached through
//! a forwarded port.
//!
//! The exit status has two sources, one per kind of init:
//!
//! * Our node as PID 1 (patches/node-*/0001-nodeos-init.patch) prints
//!   `nodeos: exit status N` ([`crate::node_checks::EXIT_STATUS_PREFIX`]) as
//!   its last line, then powers the machine off: QEMU exits by itself. N is
//!   what a shell would report (the exit code, or 128 + the signal).
//! * Any other init (a node without that patch, such as the test fixture
//!   built from Debian's node) just exits; the kernel then panics with
//!   `Attempted to kill init! exitcode=0x00000300`, the number being init's
//!   wait status (the exit code in bits 8-15, or the killing signal in bits
//!   0-6). With `panic=-1` and QEMU's `-no-reboot` that panic ends QEMU.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::node_checks::{exit_status_regex, parse_exit_status};
use crate::{ExpectError, Fatal, Guest, Pattern};

/// The kernel's line when init exits (`exitcode=0x%08x`); group 1 is the
/// wait status in hex.
pub const INIT_EXIT_REGEX: &str = r"Attempted to kill init! exitcode=(0x[0-9a-fA-F]{8})";

/// How the app (init) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppStatus {
    /// It exited with this code (`process.exit(code)`; 1 after an uncaught
    /// exception). Node as PID 1 reports a signal that ended it as
    /// 128 + the signal, as a shell does, so that is a code here too.
    Exited(u8),
    /// A signal killed it (e.g. 6, SIGABRT, when V8 aborts), as the
    /// kernel's init-exit line tells.
    Killed(u8),
}

/// Which line told the app's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSource {
    /// Node as PID 1: its `nodeos: exit status N` line, before it powers
    /// off.
    NodeStatusLine,
    /// The kernel's `Attempted to kill init!` panic: an init that just
    /// exits.
    KernelInitExit,
}

impl fmt::Display for StatusSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StatusSource::NodeStatusLine => "node's status line",
            StatusSource::KernelInitExit => "the kernel's init-exit line",
        })
    }
}

/// The pattern of either status line: group 1 is node's status, group 2
/// the kernel's wait status.
pub fn app_end_pattern() -> Pattern {
    // The console arrives in pieces: the kernel's line counts only once its
    // newline has come, as a match on `exitcode=0x000` would read status 0.
    Pattern::regex(&format!(r"{}|{INIT_EXIT_REGEX}\r?\n", exit_status_regex()))
        .expect("a valid regex")
}

impl AppStatus {
    /// From a wait status as the kernel prints it.
    pub fn from_wait_status(status: u32) -> AppStatus {
        match status & 0x7f {
            0 => AppStatus::Exited(((status >> 8) & 0xff) as u8),
            sig => AppStatus::Killed(sig as u8),
        }
    }

    /// From one console line (control characters removed): node's status
    /// line or the kernel's init-exit panic; `None` for any other line.
    pub fn from_console_line(line: &str) -> Option<(AppStatus, StatusSource)> {
        if let Some(code) = parse_exit_status(line) {
            return Some((AppStatus::Exited(code), StatusSource::NodeStatusLine));
        }
        let re = regex::Regex::new(INIT_EXIT_REGEX).expect("valid regex");
        let hex = re.captures(line)?.get(1)?.as_str();
        u32::from_str_radix(hex.trim_start_matches("0x"), 16)
            .ok()
            .map(|w| (AppStatus::from_wait_status(w), StatusSource::KernelInitExit))
    }

    /// Exited with 0.
    pub fn success(self) -> bool {
        self == AppStatus::Exited(0)
    }

    /// The code a shell would report for it: the exit code, or 128 + the
    /// signal.
    pub fn shell_code(self) -> u8 {
        match self {
            AppStatus::Exited(code) => code,
            AppStatus::Killed(sig) => 128u8.saturating_add(sig),
        }
    }
}

impl fmt::Display for AppStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppStatus::Exited(code) => write!(f, "exit status {code}"),
            AppStatus::Killed(sig) => write!(f, "killed by signal {sig}"),
        }
    }
}

/// An app's end as seen by the harness.
#[derive(Debug, Clone)]
pub struct AppExit {
    pub status: AppStatus,
    pub source: StatusSource,
    /// Time from launch to the status line.
    pub at: Duration,
    /// QEMU's own exit status (success after a power-off, and after the
    /// init-exit panic with `-no-reboot`).
    pub qemu: ExitStatus,
}

/// Waits for the app in `guest` to end and QEMU to exit; returns how the app
/// ended. Until a status line comes, init exiting is expected (an init
/// without our patch ends so); after node's own status line it is not
/// (node powers off), and any other panic fails either way.
pub fn wait_app_exit(guest: &mut Guest, timeout: Duration) -> Result<AppExit, ExpectError> {
    guest.expect_init_exit();
    let found = guest.expect(app_end_pattern(), timeout)?;
    let (status, source) = match (found.group(1), found.group(2)) {
        (Some(code), _) => (
            AppStatus::Exited(
                code.parse()
                    .expect("node's status line carries a status of 0-255"),
            ),
            StatusSource::NodeStatusLine,
        ),
        (None, Some(hex)) => (
            AppStatus::from_wait_status(
                u32::from_str_radix(hex.trim_start_matches("0x"), 16)
                    .expect("the pattern matched hex digits"),
            ),
            StatusSource::KernelInitExit,
        ),
        (None, None) => unreachable!("the pattern has one of its two groups"),
    };
    if source == StatusSource::NodeStatusLine {
        guest.disallow(Fatal::InitExited);
    }
    let qemu = guest.wait_exit(timeout)?;
    Ok(AppExit {
        status,
        source,
        at: found.at,
        qemu,
    })
}

/// An HTTP response, as far as the harness reads it.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// `GET path` on `addr` over plain HTTP/1.1 with `Connection: close`; the
/// whole response is read. An empty answer (a forwarded port whose guest
/// side does not listen yet: QEMU accepts, then the guest resets) is an
/// error of kind `UnexpectedEof`.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: nodeos-qemu-tests\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    if raw.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the connection closed without an answer",
        ));
    }
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no end of the HTTP header"))?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no HTTP status line"))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("a malformed chunked body"))?
    } else {
        body.to_owned()
    };
    Ok(HttpResponse { status, body })
}

/// The body of a `Transfer-Encoding: chunked` response (Node's default
/// when a handler writes without a Content-Length).
fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// What [`wait_for_http`] ended with.
#[derive(Debug)]
pub enum HttpWait {
    /// The first answer, and the time from launch at which it came.
    Answered(HttpResponse, Duration),
    /// The app ended before answering.
    AppExited(AppExit),
}

/// Polls `GET path` on `127.0.0.1:host_port` (a port forwarded into
/// `guest`) until the guest answers, the app ends, or `timeout` (times the
/// harness's multiplier) passes.
pub fn wait_for_http(
    guest: &mut Guest,
    host_port: u16,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<HttpWait> {
    let deadline = Instant::now() + timeout.mul_f64(guest.timeout_multiplier());
    let addr = SocketAddr::from((crate::net::FORWARD_BIND, host_port));
    let mut last;
    loop {
        match http_get(addr, path, Duration::from_secs(5)) {
            Ok(r) => {
                let at = guest.elapsed();
                guest.note(&format!(
                    "HTTP {} from {addr}{path} at {:.2} s",
                    r.status,
                    at.as_secs_f64()
                ));
                return Ok(HttpWait::Answered(r, at));
            }
            Err(e) => last = e.to_string(),
        }
        if guest.has_exited() {
            return Ok(HttpWait::AppExited(wait_app_exit(
                guest,
                Duration::from_secs(10),
            )?));
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "{}: no HTTP answer on {addr}{path} within {:.0} s (last attempt: {last}); console log: {}",
                guest.label(),
                timeout.mul_f64(guest.timeout_multiplier()).as_secs_f64(),
                guest.log_path().display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses() {
        assert_eq!(AppStatus::from_wait_status(0x300), AppStatus::Exited(3));
        assert_eq!(AppStatus::from_wait_status(0), AppStatus::Exited(0));
        assert_eq!(AppStatus::from_wait_status(0x100), AppStatus::Exited(1));
        assert_eq!(AppStatus::from_wait_status(0xff00), AppStatus::Exited(255));
        assert_eq!(AppStatus::from_wait_status(0x6), AppStatus::Killed(6));
        // A core dump flag (0x80) does not change the signal.
        assert_eq!(AppStatus::from_wait_status(0x86), AppStatus::Killed(6));
        assert_eq!(AppStatus::Killed(6).shell_code(), 134);
        assert!(AppStatus::Exited(0).success() && !AppStatus::Exited(3).success());
    }

    #[test]
    fn console_lines() {
        use StatusSource::{KernelInitExit, NodeStatusLine};
        let line =
            "[    2.5] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000300";
        assert_eq!(
            AppStatus::from_console_line(line),
            Some((AppStatus::Exited(3), KernelInitExit))
        );
        assert_eq!(
            AppStatus::from_console_line("Attempted to kill init! exitcode=0x0000000b"),
            Some((AppStatus::Killed(11), KernelInitExit))
        );
        assert_eq!(
            AppStatus::from_console_line("nodeos: exit status 3"),
            Some((AppStatus::Exited(3), NodeStatusLine))
        );
        // Node as PID 1 reports an abort as 128 + SIGABRT.
        assert_eq!(
            AppStatus::from_console_line("nodeos: exit status 134"),
            Some((AppStatus::Exited(134), NodeStatusLine))
        );
        // The REPL's echo of code holding the text is not the line.
        assert_eq!(
            AppStatus::from_console_line("> 'nodeos: exit status '+3"),
            None
        );
        assert_eq!(
            AppStatus::from_console_line("Kernel panic - not syncing: VFS"),
            None
        );
    }

    #[test]
    fn the_end_pattern_takes_either_line() {
        let Pattern::Regex(re) = app_end_pattern() else {
            panic!("the end pattern is a regex");
        };
        let node = re.captures("x\r\nnodeos: exit status 7\r\n").unwrap();
        assert_eq!(
            (node.get(1).map(|m| m.as_str()), node.get(2)),
            (Some("7"), None)
        );
        let kernel = re
            .captures("Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\r\n")
            .unwrap();
        assert_eq!(
            (kernel.get(1), kernel.get(2).map(|m| m.as_str())),
            (None, Some("0x00000100"))
        );
        // Not before the line is complete.
        assert!(re.captures("nodeos: exit status 1").is_none());
        assert!(
            re.captures("Attempted to kill init! exitcode=0x000")
                .is_none()
        );
        assert!(
            re.captures("Attempted to kill init! exitcode=0x00000100")
                .is_none()
        );
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk("5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n").as_deref(),
            Some("hello!")
        );
        assert_eq!(dechunk("5\r\nhel"), None);
    }

    #[test]
    fn http_get_reads_a_real_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut req = [0u8; 1024];
            let n = c.read(&mut req).unwrap();
            assert!(String::from_utf8_lossy(&req[..n]).starts_with("GET /x HTTP/1.1\r\n"));
            c.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            )
            .unwrap();
        });
        let r = http_get(addr, "/x", Duration::from_secs(5)).unwrap();
        server.join().unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "abc"));
        // A listener that closes at once: an empty answer is an error.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let closer = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let _ = c.read(&mut [0u8; 1024]);
        });
        let e = http_get(addr, "/", Duration::from_secs(5)).unwrap_err();
        closer.join().unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
