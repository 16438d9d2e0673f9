//! A running QEMU guest with its serial console on a pipe.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::accel::{Accel, AccelChoice};
use crate::console::{self, Console, ExpectError, Fatal, Match, Outcome, Pattern};
use crate::{QemuConfig, timeout_multiplier};

/// How long a single console write may stay blocked (a guest that does not
/// read its UART stops QEMU from reading its stdin), before the multiplier.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the reader threads may take to see end of file once QEMU is
/// gone.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A running QEMU whose serial console is a pipe.
///
/// Dropping it kills QEMU (SIGKILL) and reaps it, whatever happened, even
/// while a test thread unwinds from a panic. QEMU is also started with
/// `PR_SET_PDEATHSIG`, so it gets SIGKILL when the harness dies.
///
/// Caveat of `PR_SET_PDEATHSIG`: the signal comes when the *thread* that
/// launched QEMU exits, not the process, so launch a guest on the thread
/// that drives it (as tests do), not on a short-lived helper thread.
pub struct Guest {
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<Console>,
    readers: Vec<JoinHandle<()>>,
    /// Stream offset up to which the console has been consumed by matches.
    cursor: u64,
    allowed: Vec<Fatal>,
    multiplier: f64,
    accel: AccelChoice,
    label: String,
    log_path: PathBuf,
    status: Option<ExitStatus>,
}

impl Guest {
    /// Boots `cfg` in QEMU. Fails with a clear message when QEMU, the kernel
    /// or the initramfs is missing, when `NODEOS_TIMEOUT_MULTIPLIER` is bad,
    /// or when KVM was required and is not usable.
    pub fn launch(cfg: &QemuConfig) -> anyhow::Result<Guest> {
        let multiplier = timeout_multiplier()?;
        let (mut cmd, accel) = checked_qemu_command(cfg)?;
        // No monitor, no escape character on the pipe: every byte written
        // goes to the guest's UART.
        cmd.args(["-nodefaults", "-display", "none", "-serial", "stdio"]);
        let label = format!("{} guest ({})", cfg.arch, accel.accel);
        Guest::spawn(cmd, &cfg.log_path(), label, accel, multiplier)
    }

    /// Starts `cmd` with its stdin/stdout as the console. Tests use it with
    /// a fake console (a shell script) to exercise the same code as QEMU.
    pub(crate) fn spawn(
        mut cmd: Command,
        log_path: &Path,
        label: String,
        accel: AccelChoice,
        multiplier: f64,
    ) -> anyhow::Result<Guest> {
        Guest::spawn_with_window(
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            log_path,
            label,
            accel,
            multiplier,
            console::WINDOW_LIMIT,
        )
    }

    pub(crate) fn spawn_with_window(
        cmd: &mut Command,
        log_path: &Path,
        label: String,
        accel: AccelChoice,
        multiplier: f64,
        window_limit: usize,
    ) -> anyhow::Result<Guest> {
        let console = Console::create(log_path, window_limit)?;
        console.note(&format!("launching {label}: {}", describe_command(cmd)));
        console.note(&format!("accelerator: {}", accel.reason));
        set_parent_death_signal(cmd);
        let mut child = cmd
            .spawn()
            .map_err(|err| spawn_error(err, &cmd.get_program().to_string_lossy()))?;
        console.note(&format!("pid {}", child.id()));

        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let stdin = child.stdin.take().expect("stdin is piped");
        // Writes must not block forever (see SEND_TIMEOUT).
        set_nonblocking(&stdin)?;
        let readers = vec![
            spawn_reader("console", {
                let console = console.clone();
                move || console.pump_console(stdout)
            })?,
            spawn_reader("qemu-stderr", {
                let console = console.clone();
                move || console.pump_stderr(stderr)
            })?,
        ];
        Ok(Guest {
            child,
            stdin: Some(stdin),
            console,
            readers,
            cursor: 0,
            allowed: Vec::new(),
            multiplier,
            accel,
            label,
            log_path: log_path.to_owned(),
            status: None,
        })
    }

    /// Waits for `pattern` in console output after the previous match.
    ///
    /// `timeout` is multiplied by `NODEOS_TIMEOUT_MULTIPLIER`. Fails fast on
    /// a kernel panic, init exiting, or a missing console, unless allowed
    /// ([`Guest::expect_panic`], [`Guest::expect_init_exit`],
    /// [`Guest::allow`]); output printed before the fatal line still
    /// matches.
    pub fn expect(
        &mut self,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<Match, ExpectError> {
        let pattern = pattern.into();
        let waited = self.scaled(timeout);
        let re = pattern.compile();
        let outcome = self.console.expect(
            &re,
            &mut self.cursor,
            &self.allowed,
            Instant::now() + waited,
        );
        let waiting_for = pattern.to_string();
        match outcome {
            Outcome::Matched(found) => {
                self.console.note(&format!("matched {waiting_for}"));
                Ok(found)
            }
            Outcome::Fatal(event) => Err(self.fail(|context| ExpectError::Fatal {
                waiting_for,
                event,
                context,
            })),
            Outcome::Timeout => Err(self.fail(|context| ExpectError::Timeout {
                waiting_for,
                waited,
                context,
            })),
            Outcome::Eof => {
                let status = self.try_reap(Duration::from_secs(2));
                if status.is_some() {
                    // stdout closed first; QEMU's last stderr lines (often
                    // the reason it exited) may still be in the pipe.
                    self.console
                        .wait_closed(Instant::now() + self.scaled(CLOSE_TIMEOUT));
                }
                Err(self.fail(|context| ExpectError::Exited {
                    waiting_for,
                    status,
                    context,
                }))
            }
        }
    }

    /// Writes `line` and a carriage return (what the Enter key sends: the
    /// guest tty turns it into a newline in cooked mode, and the Node REPL
    /// takes it as Enter in raw mode).
    pub fn send_line(&mut self, line: &str) -> anyhow::Result<()> {
        self.console.note(&format!("send {line:?}"));
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\r');
        self.send(&bytes).map_err(anyhow::Error::new)
    }

    /// Writes raw bytes to the console.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ExpectError> {
        let deadline = Instant::now() + self.scaled(SEND_TIMEOUT);
        let result = match &mut self.stdin {
            None => Err("the console input is closed".to_owned()),
            Some(stdin) => write_with_deadline(stdin, bytes, deadline),
        };
        result.map_err(|error| self.fail(|context| ExpectError::Send { error, context }))
    }

    /// Waits for QEMU to exit (with `-no-reboot` and `panic=-1` it exits
    /// when init exits). Fails on timeout, and on a fatal console line that
    /// was not allowed and not already reported.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, ExpectError> {
        let waited = self.scaled(timeout);
        let waiting_for = "QEMU to exit".to_owned();
        let Some(status) = self.try_reap(waited) else {
            return Err(self.fail(|context| ExpectError::Timeout {
                waiting_for,
                waited,
                context,
            }));
        };
        // All output is in once the pipes close; then judge it.
        self.console
            .wait_closed(Instant::now() + self.scaled(CLOSE_TIMEOUT));
        self.console.note(&format!("QEMU exited: {status}"));
        if let Some(event) = self.console.pending_fatal(self.cursor, &self.allowed) {
            return Err(self.fail(|context| ExpectError::Fatal {
                waiting_for,
                event,
                context,
            }));
        }
        Ok(status)
    }

    /// Whether QEMU has exited (reaped now if so); never waits.
    pub fn has_exited(&mut self) -> bool {
        self.try_reap(Duration::ZERO).is_some()
    }

    /// Lets a kernel panic (any, including init exiting) pass.
    pub fn expect_panic(&mut self) -> &mut Self {
        self.allow(Fatal::KernelPanic).allow(Fatal::InitExited)
    }

    /// Lets init exiting (`Attempted to kill init`) pass: how a guest whose
    /// init runs to its end finishes.
    pub fn expect_init_exit(&mut self) -> &mut Self {
        self.allow(Fatal::InitExited)
    }

    /// Makes one kind of fatal line fatal again (from the current match on;
    /// an allowed line already passed stays passed).
    pub fn disallow(&mut self, fatal: Fatal) -> &mut Self {
        if self.allowed.contains(&fatal) {
            self.allowed.retain(|f| *f != fatal);
            self.console
                .note(&format!("{fatal:?} is fatal again from now on"));
        }
        self
    }

    /// Lets one kind of fatal line pass.
    pub fn allow(&mut self, fatal: Fatal) -> &mut Self {
        if !self.allowed.contains(&fatal) {
            self.allowed.push(fatal);
            self.console
                .note(&format!("{fatal:?} is expected from now on"));
        }
        self
    }

    /// The console log (kept after the guest is dropped).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Time since launch.
    pub fn elapsed(&self) -> Duration {
        self.console.elapsed()
    }

    /// The accelerator in use (KVM or TCG, never `Auto`).
    pub fn accel(&self) -> Accel {
        self.accel.accel
    }

    /// Why that accelerator, e.g. "TCG: KVM not usable (...)".
    pub fn accel_reason(&self) -> &str {
        &self.accel.reason
    }

    /// QEMU's process id (gone once the guest is dropped).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// E.g. "x86_64 guest (TCG)".
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The factor applied to every timeout.
    pub fn timeout_multiplier(&self) -> f64 {
        self.multiplier
    }

    /// Console bytes received so far.
    pub fn console_bytes(&self) -> u64 {
        self.console.total_bytes()
    }

    /// Console bytes held in memory for matching (bounded).
    pub fn buffered_bytes(&self) -> usize {
        self.console.window_bytes()
    }

    /// Writes a `## ...` line into the log.
    pub fn note(&self, message: &str) {
        self.console.note(message);
    }

    fn scaled(&self, timeout: Duration) -> Duration {
        timeout.mul_f64(self.multiplier)
    }

    fn fail(&self, make: impl FnOnce(Box<console::FailureContext>) -> ExpectError) -> ExpectError {
        let err = make(Box::new(self.console.failure_context(&self.label)));
        // The first line of the error in the log says why the run ended.
        if let Some(first) = err.to_string().lines().next() {
            self.console.note(&format!("FAILED: {first}"));
        }
        err
    }

    /// Polls for QEMU's exit for up to `timeout`, reaping it.
    fn try_reap(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.status {
                return Some(status);
            }
            match self.child.try_wait() {
                Ok(Some(status)) => self.status = Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => return None,
                Err(err) => {
                    self.console.note(&format!("waitpid failed: {err}"));
                    return None;
                }
            }
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.status.is_none() {
            // SIGKILL: QEMU holds nothing worth a clean shutdown, and a hung
            // TCG guest may not react to anything gentler.
            let _ = self.child.kill();
            match self.child.wait() {
                Ok(status) => {
                    self.console
                        .note(&format!("QEMU killed by the harness: {status}"));
                    self.status = Some(status);
                }
                Err(err) => self.console.note(&format!("reaping QEMU failed: {err}")),
            }
        }
        // The readers end at end of file, which comes now that QEMU is
        // gone; bounded anyway, in case something else inherited the pipe.
        let closed = self.console.wait_closed(Instant::now() + CLOSE_TIMEOUT);
        if closed {
            for reader in self.readers.drain(..) {
                let _ = reader.join();
            }
        }
        self.console.flush_log();
    }
}

/// How an interactive run ended.
#[derive(Debug, Clone, Copy)]
pub struct InteractiveEnd {
    /// QEMU's exit status.
    pub qemu: ExitStatus,
    /// How the app (node, PID 1) ended and which line said so; `None` when
    /// QEMU was quit with `Ctrl-A x`.
    pub app: Option<(crate::app::AppStatus, crate::app::StatusSource)>,
}

/// Boots `cfg` with the console on this terminal, until QEMU exits.
///
/// Quit with `Ctrl-A x` (QEMU's escape; `Ctrl-A c` toggles the QEMU
/// monitor), or end node at the prompt (`process.exit(N)`): node as PID 1
/// prints its status line and powers off, and QEMU exits (an init without
/// that line exits, and the kernel's init-exit panic ends QEMU with
/// `-no-reboot`, `panic=-1`). The console passes through this process on
/// its way to the terminal, which is how the app's status is read
/// ([`crate::app`]); nothing is logged to a file in this mode.
pub fn run_interactive(cfg: &QemuConfig) -> anyhow::Result<InteractiveEnd> {
    let (mut cmd, accel) = checked_qemu_command(cfg)?;
    // `mon:stdio` multiplexes the monitor on the terminal, which gives the
    // Ctrl-A escape (`-nographic` would add the same, but `-nodefaults`
    // turns its serial port off). QEMU sets the terminal (its stdin) raw
    // itself; only its output is piped.
    cmd.args(["-nodefaults", "-display", "none", "-serial", "mon:stdio"])
        .stdout(Stdio::piped());
    set_parent_death_signal(&mut cmd);
    eprintln!(
        "booting the {} image ({}); quit with Ctrl-A x, or process.exit() at the Node prompt",
        cfg.arch, accel.reason
    );
    let mut child = cmd
        .spawn()
        .map_err(|err| spawn_error(err, cfg.arch.qemu_system()))?;
    let console = child.stdout.take().expect("stdout is piped");
    let app = pass_through_console(console, std::io::stdout().lock());
    let qemu = child
        .wait()
        .with_context(|| format!("waiting for {}", cfg.arch.qemu_system()))?;
    Ok(InteractiveEnd { qemu, app })
}

/// Copies the console to `out` as it comes, and returns the app's status
/// from the last status line (node's own or the kernel's init-exit line).
fn pass_through_console(
    mut console: impl Read,
    mut out: impl Write,
) -> Option<(crate::app::AppStatus, crate::app::StatusSource)> {
    let mut buf = [0u8; 4096];
    let mut line: Vec<u8> = Vec::new();
    let mut status = None;
    loop {
        let n = match console.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        // The terminal may be gone; the console is still read to the end so
        // that QEMU never blocks on a full pipe.
        let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
        for &b in &buf[..n] {
            if b == b'\n' {
                let text = console::clean_line(&line);
                if let Some(s) = crate::app::AppStatus::from_console_line(&text) {
                    status = Some(s);
                }
                line.clear();
            } else if line.len() < 1024 {
                line.push(b);
            }
        }
    }
    if status.is_none() && !line.is_empty() {
        status = crate::app::AppStatus::from_console_line(&console::clean_line(&line));
    }
    status
}

/// The QEMU command line common to both modes, without the console options.
fn qemu_command(cfg: &QemuConfig, accel: Accel) -> Command {
    let qemu = &cfg.arch.target().qemu;
    let mut cmd = Command::new(&qemu.system);
    cmd.args(["-machine", &qemu.machine]);
    cmd.args(["-accel", accel.qemu_name()]);
    if let Some(cpu) = &qemu.cpu {
        cmd.args(["-cpu", cpu]);
    }
    cmd.args(&qemu.extra_args);
    cmd.arg("-m")
        .arg(format!("{}M", cfg.memory_mib))
        .arg("-smp")
        .arg(cfg.cpus.to_string())
        .arg("-kernel")
        .arg(&cfg.kernel)
        .arg("-initrd")
        .arg(&cfg.initrd)
        .arg("-append")
        .arg(cfg.kernel_cmdline())
        .arg("-no-reboot");
    if let Some(net) = &cfg.network {
        cmd.args(net.qemu_args());
    }
    cmd
}

fn spawn_error(err: std::io::Error, program: &str) -> anyhow::Error {
    if err.kind() == std::io::ErrorKind::NotFound {
        if program.starts_with("qemu-system-") {
            return anyhow::anyhow!(
                "{program} not found: install it with `apt-get install qemu-system-x86`"
            );
        }
        return anyhow::anyhow!("{program} not found");
    }
    anyhow::anyhow!("starting {program}: {err}")
}

/// QEMU gets SIGKILL when the thread that started it dies, so a harness
/// killed by anything (even SIGKILL, when Drop cannot run) leaves no QEMU.
fn set_parent_death_signal(cmd: &mut Command) {
    // SAFETY: only async-signal-safe calls (prctl, getppid) between fork
    // and exec.
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

fn set_nonblocking(stdin: &ChildStdin) -> anyhow::Result<()> {
    let fd = stdin.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    if !ok {
        return Err(std::io::Error::last_os_error())
            .context("making the console input non-blocking");
    }
    Ok(())
}

fn write_with_deadline(
    out: &mut ChildStdin,
    mut bytes: &[u8],
    deadline: Instant,
) -> Result<(), String> {
    while !bytes.is_empty() {
        match out.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "the guest has not read its console input for {SEND_TIMEOUT:?} (x multiplier); {} bytes unsent",
                        bytes.len()
                    ));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.to_string()),
        }
    }
    Ok(())
}

fn spawn_reader(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("qemu-tests-{name}"))
        .spawn(body)
        .context("starting a console reader thread")
}

fn describe_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if arg.contains(' ') {
                format!("'{arg}'")
            } else {
                arg.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;

/// The QEMU command for `cfg` (without the serial wiring), after checking
/// that the kernel and initramfs exist and choosing the accelerator.
fn checked_qemu_command(cfg: &QemuConfig) -> anyhow::Result<(Command, AccelChoice)> {
    for (what, path) in [("kernel", &cfg.kernel), ("initramfs", &cfg.initrd)] {
        if !path.is_file() {
            bail!(
                "the {what} {} does not exist (or is not a file)",
                path.display()
            );
        }
    }
    let accel = AccelChoice::resolve(cfg.accel)?;
    Ok((qemu_command(cfg, accel.accel), accel))
}
