//! Guests that run an app instead of the REPL: how the app's exit status is
//! read from the console, and how a server in the guest is reached through
//! a forwarded port.
//!
//! The exit status: when init (node) exits, the kernel panics with
//! `Attempted to kill init! exitcode=0x00000300`, where the number is the
//! wait status of init: the exit code in bits 8-15, or the signal that
//! killed it in bits 0-6. With `panic=-1` and QEMU's `-no-reboot` that panic
//! ends QEMU, so the status is the last thing on the console.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::{ExpectError, Guest, Pattern};

/// The kernel's line when init exits; group 1 is the wait status in hex.
pub const INIT_EXIT_REGEX: &str = r"Attempted to kill init! exitcode=(0x[0-9a-fA-F]+)";

/// How the app (init) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppStatus {
    /// It exited with this code (`process.exit(code)`; 1 after an uncaught
    /// exception).
    Exited(u8),
    /// A signal killed it (e.g. 6, SIGABRT, when V8 aborts).
    Killed(u8),
}

impl AppStatus {
    /// From a wait status as the kernel prints it.
    pub fn from_wait_status(status: u32) -> AppStatus {
        match status & 0x7f {
            0 => AppStatus::Exited(((status >> 8) & 0xff) as u8),
            sig => AppStatus::Killed(sig as u8),
        }
    }

    /// From a console line holding the kernel's init-exit panic, if it is
    /// one.
    pub fn from_console_line(line: &str) -> Option<AppStatus> {
        let re = regex::Regex::new(INIT_EXIT_REGEX).expect("valid regex");
        let hex = re.captures(line)?.get(1)?.as_str();
        u32::from_str_radix(hex.trim_start_matches("0x"), 16)
            .ok()
            .map(AppStatus::from_wait_status)
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
    /// Time from launch to the kernel's line.
    pub at: Duration,
    /// QEMU's own exit status (success when the panic ended it).
    pub qemu: ExitStatus,
}

/// Waits for the app in `guest` to end and QEMU to exit; returns how the app
/// ended. Init exiting is expected from here on; any other panic fails.
pub fn wait_app_exit(guest: &mut Guest, timeout: Duration) -> Result<AppExit, ExpectError> {
    guest.expect_init_exit();
    let found = guest.expect(
        Pattern::regex(INIT_EXIT_REGEX).expect("valid regex"),
        timeout,
    )?;
    let status =
        AppStatus::from_console_line(&found.text).expect("the pattern matched the init-exit line");
    let qemu = guest.wait_exit(timeout)?;
    Ok(AppExit {
        status,
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
        let line =
            "[    2.5] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000300";
        assert_eq!(
            AppStatus::from_console_line(line),
            Some(AppStatus::Exited(3))
        );
        assert_eq!(
            AppStatus::from_console_line("Attempted to kill init! exitcode=0x0000000b"),
            Some(AppStatus::Killed(11))
        );
        assert_eq!(
            AppStatus::from_console_line("Kernel panic - not syncing: VFS"),
            None
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
