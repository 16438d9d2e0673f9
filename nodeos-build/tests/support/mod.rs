//! Shared pieces of the compile-farm tests: free loopback ports, daemons
//! that are stopped when dropped, and a set of C/C++ files built by make.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Tests of one binary that set process environment variables take this
/// first (the launcher reads its settings from the environment).
pub fn env_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Variables a test sets in the process environment: cleared now and
/// again when dropped (also when the test fails).
pub struct EnvVars(Vec<&'static str>);

impl EnvVars {
    pub fn cleared(names: &[&'static str]) -> EnvVars {
        for n in names {
            std::env::remove_var(n);
        }
        EnvVars(names.to_vec())
    }
}

impl Drop for EnvVars {
    fn drop(&mut self) {
        for n in &self.0 {
            std::env::remove_var(n);
        }
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Panics with the package to install when a program is missing: these
/// tests check real daemons and are not skipped silently.
pub fn need(program: &str, package: &str) -> PathBuf {
    need_with(program, &format!("apt-get install {package}"))
}

/// [`need`] for a program installed otherwise than from a Debian package.
pub fn need_with(program: &str, install: &str) -> PathBuf {
    nodeos_build::host::which(program).unwrap_or_else(|| {
        panic!("this test needs `{program}` (install it: {install}; .ci/run does)")
    })
}

/// A loopback TCP port nobody listens on now (and, with `pair`, the next
/// one too: the icecream scheduler also takes port+1).
pub fn free_port(pair: bool) -> u16 {
    for _ in 0..200 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if !pair {
            return p;
        }
        if p < u16::MAX && std::net::TcpListener::bind(("0.0.0.0", p + 1)).is_ok() {
            drop(l);
            if std::net::TcpListener::bind(("0.0.0.0", p)).is_ok() {
                return p;
            }
        }
    }
    panic!("no free pair of loopback ports found");
}

/// Waits until `cond` holds, or panics saying what did not happen.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A daemon started by a test; killed (by its pid) when dropped.
pub struct Daemon {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(name: &str, mut cmd: Command, log: PathBuf) -> Daemon {
        let out = std::fs::File::create(log.with_extension("stderr")).unwrap();
        // Its own process group: daemons that fork workers (distccd) are
        // killed with all of them.
        use std::os::unix::process::CommandExt;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({cmd:?}): {e}"));
        Daemon {
            name: name.into(),
            child,
            log,
        }
    }

    pub fn log_text(&self) -> String {
        let mut s = std::fs::read_to_string(&self.log).unwrap_or_default();
        s.push_str(&std::fs::read_to_string(self.log.with_extension("stderr")).unwrap_or_default());
        s
    }

    /// Panics with its log if it exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(st)) = self.child.try_wait() {
            panic!("{} exited ({st}):\n{}", self.name, self.log_text());
        }
    }

    /// Kills it and its workers now (SIGKILL to its process group), as a
    /// machine that disappears.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: a plain syscall; the group is the one this daemon was
            // started in (its pid), so nothing else is signalled.
            unsafe {
                libc::kill(-(self.child.id() as i32), libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A set of C and C++ files and a Makefile that compiles them to objects.
pub struct CompileSet {
    pub dir: PathBuf,
    pub objects: Vec<PathBuf>,
}

/// Source of file `i`: enough code for a compile to take a moment at -O2,
/// different in every file (so no cache can serve one file for another).
fn c_source(i: usize) -> String {
    let mut s = format!(
        "#include <stdint.h>\n#include <string.h>\nstatic const char tag[] = \"file {i}\";\n"
    );
    for f in 0..60 {
        s.push_str(&format!(
            "uint64_t f{i}_{f}(const uint8_t *p, size_t n) {{\n  uint64_t h = {seed}u;\n  for (size_t k = 0; k < n; k++) {{\n    switch ((p[k] + k) % 7) {{\n    case 0: h = h * 31 + p[k]; break;\n    case 1: h ^= h >> 7; break;\n    case 2: h += (uint64_t)p[k] << (k % 13); break;\n    case 3: h = (h << 5) | (h >> 59); break;\n    case 4: h -= strlen(tag) + {f}; break;\n    default: h *= 0x9E3779B97F4A7C15ull; break;\n    }}\n  }}\n  return h;\n}}\n",
            seed = 1469598103u64 + (i * 1000 + f) as u64
        ));
    }
    s
}

fn cxx_source(i: usize) -> String {
    format!(
        "#include <map>\n#include <string>\n#include <vector>\n#include <algorithm>\n\
         std::vector<std::string> words{i}(const std::map<std::string, int> &m) {{\n\
           std::vector<std::string> v;\n\
           for (auto &kv : m) v.push_back(kv.first + std::to_string(kv.second * {i}));\n\
           std::sort(v.begin(), v.end());\n\
           return v;\n\
         }}\n\
         template <int N> struct Fib {{ static const long v = Fib<N - 1>::v + Fib<N - 2>::v; }};\n\
         template <> struct Fib<1> {{ static const long v = 1; }};\n\
         template <> struct Fib<0> {{ static const long v = 0; }};\n\
         long fib{i}() {{ return Fib<{n}>::v; }}\n",
        n = 40 + i % 20
    )
}

impl CompileSet {
    /// `c_files` C files and `cxx_files` C++ files under `dir`.
    pub fn new(dir: &Path, c_files: usize, cxx_files: usize) -> CompileSet {
        std::fs::create_dir_all(dir.join("obj")).unwrap();
        let mut objects = Vec::new();
        let mut rules = String::new();
        for i in 0..c_files {
            std::fs::write(dir.join(format!("c{i}.c")), c_source(i)).unwrap();
            objects.push(dir.join(format!("obj/c{i}.o")));
            rules.push_str(&format!("obj/c{i}.o: c{i}.c\n\t$(CC) -O2 -c -o $@ $<\n"));
        }
        for i in 0..cxx_files {
            std::fs::write(dir.join(format!("x{i}.cc")), cxx_source(i)).unwrap();
            objects.push(dir.join(format!("obj/x{i}.o")));
            rules.push_str(&format!("obj/x{i}.o: x{i}.cc\n\t$(CXX) -O2 -c -o $@ $<\n"));
        }
        let all: Vec<String> = objects
            .iter()
            .map(|o| o.strip_prefix(dir).unwrap().display().to_string())
            .collect();
        std::fs::write(
            dir.join("Makefile"),
            format!("all: {}\n{rules}", all.join(" ")),
        )
        .unwrap();
        CompileSet {
            dir: dir.to_path_buf(),
            objects,
        }
    }

    pub fn clean(&self) {
        for o in &self.objects {
            let _ = std::fs::remove_file(o);
        }
    }

    /// `make -jN CC=… CXX=…` with extra environment.
    pub fn make(&self, jobs: usize, cc: &str, cxx: &str, env: &[(String, String)]) -> Command {
        let mut c = Command::new("make");
        c.current_dir(&self.dir)
            .arg(format!("-j{jobs}"))
            .arg(format!("CC={cc}"))
            .arg(format!("CXX={cxx}"))
            .env("LC_ALL", "C");
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// Builds and panics with make's output on failure.
    pub fn build(&self, jobs: usize, cc: &str, cxx: &str, env: &[(String, String)]) {
        let out = self.make(jobs, cc, cxx, env).output().unwrap();
        assert!(
            out.status.success(),
            "make failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The objects' bytes, in order.
    pub fn object_bytes(&self) -> Vec<Vec<u8>> {
        self.objects
            .iter()
            .map(|o| std::fs::read(o).unwrap_or_else(|e| panic!("{}: {e}", o.display())))
            .collect()
    }

    /// Asserts every object equals the same object of `other`, byte for byte.
    pub fn assert_same_objects(&self, reference: &[Vec<u8>]) {
        let mine = self.object_bytes();
        assert_eq!(mine.len(), reference.len());
        for (i, (a, b)) in mine.iter().zip(reference).enumerate() {
            assert!(
                a == b,
                "{} differs from the local build ({} vs {} bytes)",
                self.objects[i].display(),
                a.len(),
                b.len()
            );
        }
    }
}
