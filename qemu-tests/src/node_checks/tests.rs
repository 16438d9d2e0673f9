use super::*;
use crate::accel::AccelChoice;
use std::process::{Command, Stdio};

fn expectations() -> NodeExpectations {
    NodeExpectations::new(Arch::X86_64, "v18.20.4", 512, IntlExpectation::Absent)
}

/// The host's node, when there is one: used to run the checks' JS for
/// real. These tests say so loudly when they cannot (they are extras; the
/// guest runs are the real thing).
fn host_node() -> Option<String> {
    let out = Command::new("node")
        .args(["-p", "process.versions.node"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn node_eval(js: &str) -> String {
    let out = Command::new("node").args(["-e", js]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn echoed_source_never_contains_the_marker() {
    let mut probes = plan(&expectations());
    probes.push(timer_probe());
    for probe in &probes {
        let marker = format!("@@{}=", probe.key);
        assert!(!probe.js.contains(&marker), "{}: {}", probe.name, probe.js);
        let re = probe.output_pattern().compile();
        assert!(!re.is_match(probe.js.as_bytes()), "{}", probe.name);
        assert!(!re.is_match(format!("> {}\r\n", probe.js).as_bytes()));
        assert!(
            probe.js.is_ascii(),
            "{}: the serial line stays ASCII",
            probe.name
        );
        assert!(
            probe.js.len() < 2048,
            "{}: {} bytes",
            probe.name,
            probe.js.len()
        );
    }
    let keys: std::collections::HashSet<_> = probes.iter().map(|p| p.key).collect();
    assert_eq!(keys.len(), probes.len(), "keys are unique");
}

#[test]
fn output_pattern_takes_the_value_up_to_the_line_end() {
    let probe = &plan(&expectations())[0];
    let re = probe.output_pattern().compile();
    let caps = re.captures(b"undefined\r\n@@pid=1\r\n> ").unwrap();
    assert_eq!(&caps[1], b"1");
}

#[test]
fn expectations_are_judged() {
    let probes = plan(&expectations());
    let by_name = |name: &str| probes.iter().find(|p| p.name == name).unwrap();
    assert!(by_name("pid").judge("1").ok);
    assert!(!by_name("pid").judge("12").ok);
    assert!(by_name("arch").judge("x64").ok);
    assert!(!by_name("arch").judge("ia32").ok);
    assert!(by_name("node version").judge("18.20.4").ok);
    assert!(!by_name("node version").judge("v18.20.4").ok);
    let mem = by_name("os.totalmem (MiB)");
    assert!(mem.judge("490").ok);
    assert!(!mem.judge("600").ok && !mem.judge("100").ok && !mem.judge("lots").ok);
    assert_eq!(mem.judge("490").expected, "256..=512 MiB");
    assert!(by_name("Intl").judge("absent").ok);
    assert!(!by_name("Intl").judge("1,234,567.891").ok);

    let i386 = NodeExpectations::new(Arch::I386, "18.20.4", 512, IntlExpectation::Present);
    let probes = plan(&i386);
    assert!(
        probes
            .iter()
            .any(|p| p.name == "arch" && p.judge("ia32").ok)
    );
    assert!(
        probes
            .iter()
            .any(|p| p.name == "Intl" && p.judge("1,234,567.891").ok)
    );
}

#[test]
fn sha256_expectation_is_the_host_digest() {
    let exp = expectations();
    let probe = plan(&exp).into_iter().find(|p| p.key == "sha256").unwrap();
    // Independent of the sha2 crate: coreutils' sha256sum.
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(payload(&exp.token).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let digest = String::from_utf8(out.stdout).unwrap();
    assert_eq!(probe.expected, Expected::Equals(digest[..64].to_owned()));
}

#[test]
fn js_strings_round_trip_through_node() {
    let texts = [
        "plain",
        "it's",
        r"back\slash",
        "tab\tnl\n",
        "é ☃ 😀",
        "'+process.exit(3)+'",
    ];
    for text in texts {
        let lit = js_string(text);
        assert!(lit.is_ascii());
        if host_node().is_some() {
            let got = node_eval(&format!("process.stdout.write({lit})"));
            assert_eq!(got, text);
        }
    }
    if host_node().is_none() {
        eprintln!("SKIPPED part of js_strings_round_trip_through_node: no host node");
    }
}

/// Expectations that hold for the host's node, as far as they can: the
/// host's CPU count and host name, a scratch dir in `dir`.
fn host_expectations(version: &str, dir: &std::path::Path) -> NodeExpectations {
    let mut exp = NodeExpectations::new(Arch::X86_64, version, 512, IntlExpectation::Present);
    exp.fs_path = dir.join("fs-check.txt").display().to_string();
    exp.scratch_dir = dir.display().to_string();
    // libuv's os.cpus() lists the cpuN lines of /proc/stat.
    exp.cpus = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count() as u32;
    exp.hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    exp
}

#[test]
fn probes_pass_on_the_host_node() {
    let Some(version) = host_node() else {
        eprintln!("SKIPPED probes_pass_on_the_host_node: no `node` on this host");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let exp = host_expectations(&version, dir.path());
    let mut probes = plan(&exp);
    probes.push(timer_probe());
    for probe in probes {
        if matches!(probe.key, "pid" | "mem") || GUEST_ONLY_KEYS.contains(&probe.key) {
            continue; // host values; checked in a guest
        }
        let out = node_eval(&probe.js);
        let got = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("@@{}=", probe.key)))
            .unwrap_or_else(|| panic!("{}: no marker in {out:?}", probe.name));
        let result = probe.judge(got);
        assert!(result.ok, "{result:?}");
    }
}

/// The host's node REPL on a pseudo-terminal (`script`), driven by the same
/// code as a guest's: banner, prompt, echo, markers, async output, exit.
#[test]
fn full_run_against_the_host_node_repl() {
    let Some(version) = host_node() else {
        eprintln!("SKIPPED full_run_against_the_host_node_repl: no `node` on this host");
        return;
    };
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED full_run_against_the_host_node_repl: no `script` (util-linux)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("script");
    // As in a guest: TERM=linux is what the kernel gives init.
    cmd.args(["-qfec", "node", "/dev/null"])
        .env("TERM", "linux")
        .env_remove("NODE_OPTIONS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let accel = AccelChoice {
        accel: Accel::Tcg,
        reason: "TCG: host node over a pty".into(),
    };
    let mut guest = Guest::spawn(
        cmd,
        &dir.path().join("repl.log"),
        "host node".into(),
        accel,
        1.0,
    )
    .unwrap();
    let mut exp = host_expectations(&version, dir.path());
    exp.memory_mib = host_mem_mib();
    exp.end = EndOfRun::ProcessExit;
    exp.pid = 0; // node is not init here: this check must fail
    let guest_only: Vec<&str> = plan(&exp)
        .iter()
        .filter(|p| GUEST_ONLY_KEYS.contains(&p.key))
        .map(|p| p.name)
        .collect();
    let report = run_node_checks(&mut guest, &exp).unwrap();
    println!("{report}");
    for check in &report.checks {
        if guest_only.contains(&check.name.as_str()) {
            continue; // a NodeOS guest's values
        }
        let should_pass = check.name != "pid";
        assert_eq!(check.ok, should_pass, "{check:?}\n{report}");
    }
    assert_eq!(report.exit_status, Some(FINAL_EXIT_STATUS), "{report}");
    let pid = report.checks.iter().find(|c| c.name == "pid").unwrap();
    assert!(pid.got.parse::<u32>().is_ok_and(|p| p > 1), "{pid:?}");
    assert!(!report.passed());
    assert!(report.boot_to_prompt <= report.total);
    assert_eq!(
        std::fs::read_to_string(&exp.fs_path).unwrap(),
        format!("nodeos fs check {}", exp.token)
    );
    let table = report.to_string();
    assert!(table.contains("x86_64 (TCG): "), "{table}");
    assert!(table.contains("; exit status 3"), "{table}");
    assert!(table.contains("  pid "), "{table}");
}

fn host_mem_mib() -> u32 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    u32::try_from(kib.div_ceil(1024)).unwrap()
}

#[test]
fn exit_status_line_is_parsed() {
    let console = "> process.exit(3)\r\nreboot: x\r\nnodeos: exit status 3\r\n[    1.2] reboot: Power down\r\n";
    assert_eq!(parse_exit_status(console), Some(3));
    assert_eq!(parse_exit_status("nodeos: exit status 0\n"), Some(0));
    assert_eq!(
        parse_exit_status("nodeos: exit status 1\nnodeos: exit status 255\n"),
        Some(255),
        "the last line counts"
    );
    assert_eq!(parse_exit_status("nodeos: exit status 256\n"), None);
    assert_eq!(parse_exit_status("> 'nodeos: exit status '+3\r\n"), None);
    assert_eq!(parse_exit_status("no line here\n"), None);
    let re = exit_status_pattern().compile();
    let caps = re.captures(b"x\r\nnodeos: exit status 143\r\n").unwrap();
    assert_eq!(&caps[1], b"143");
    assert!(!re.is_match(b"nodeos: exit status \r\n"));
}

/// The line's text is defined twice, in the harness and in the C++ of each
/// Node patch: they must agree.
#[test]
fn every_node_patch_prints_the_exit_status_line() {
    let patches = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../patches");
    let mut seen = 0;
    for entry in std::fs::read_dir(&patches).unwrap() {
        let dir = entry.unwrap().path();
        // `node-<version>` holds a Node version's patches; `node-<version>-<variant>`
        // only what one source variant adds on top of them.
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let is_version_dir = name
            .strip_prefix("node-")
            .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'));
        if !is_version_dir {
            continue;
        }
        let patch = std::fs::read_to_string(dir.join("0001-nodeos-init.patch"))
            .unwrap_or_else(|e| panic!("{}: no nodeos init patch: {e}", dir.display()));
        assert!(
            patch.contains(&format!(
                "+  static const char prefix[] = \"{EXIT_STATUS_PREFIX}\";"
            )),
            "{} does not print {EXIT_STATUS_PREFIX:?}",
            dir.display()
        );
        seen += 1;
    }
    assert!(
        seen >= 2,
        "patches for Node 18 and 22 expected, found {seen}"
    );
}

#[test]
fn run_ends_with_a_nonzero_status() {
    assert_ne!(FINAL_EXIT_STATUS, 0);
    let exp = expectations();
    assert_eq!(exp.end, EndOfRun::PowerOff);
    assert_eq!(exp.cpus, crate::QemuConfig::DEFAULT_CPUS);
    assert!(exp.cpus > 1, "one CPU would pass on a uniprocessor kernel");
    assert!(exit_expectation(&exp).contains("nodeos: exit status 3"));
}
