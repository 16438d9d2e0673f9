//! `cargo xtask drill` sets up what its cases need itself: run with an
//! empty download dir (a new user who never fetched), its download cases
//! fetch the good file they corrupt and pass; run with SIGINT ignored (a
//! background job), its interrupted writer still gets a real Ctrl-C.

use std::process::Command;

/// The verdict of `case` in the drill's closing table.
fn verdict<'a>(table: &'a str, case: &str) -> Option<&'a str> {
    table.lines().find_map(|l| {
        let (verdict, rest) = l.split_once(' ')?;
        let rest = rest.trim_start();
        (rest.starts_with(case) && rest[case.len()..].starts_with("  ")).then_some(verdict)
    })
}

#[test]
fn the_drill_fetches_what_its_cases_need_into_an_empty_download_dir() {
    let d = tempfile::tempdir().unwrap();
    let dl = d.path().join("dl");
    // Started as a background job or under nohup is: SIGINT and SIGHUP
    // ignored, which the writers the drill interrupts would inherit.
    let o = Command::new("sh")
        .args(["-c", "trap '' INT HUP; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_xtask"))
        .args(["drill", "--without-kernel", "--arch", "x86_64"])
        .env("NODEOS_DL_DIR", &dl)
        .env("NODEOS_CACHE_DIR", d.path().join("cache"))
        .env("NODEOS_TARGET_DIR", d.path().join("target"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    for case in [
        "corrupt download",
        "truncated download",
        "initramfs interrupted",
    ] {
        match verdict(&table, case) {
            Some("PASS") => {}
            Some(v) => panic!(
                "drill case '{case}' is {v}, not PASS (a SKIPPED download case means the good \
                 musl source could not be fetched from the Debian mirror here):\n{table}\n{err}"
            ),
            None => panic!("drill case '{case}' is missing from its table:\n{table}\n{err}"),
        }
    }
    assert!(o.status.success(), "{}\n{table}\n{err}", o.status);
    let fetched: Vec<String> = std::fs::read_dir(&dl)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("musl"))
        .collect();
    assert!(
        !fetched.is_empty(),
        "the drill passed its download cases without fetching musl into {}",
        dl.display()
    );
}
