//! `cargo xtask verify` against a cache holding a recorded output whose
//! bytes changed after publishing (same size: only a hash sees it).

use std::process::Command;

#[test]
fn verify_reports_changed_bytes_that_reuse_does_not_see() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out").join("kernel").join("k".repeat(64));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("bzImage"), b"0123456789").unwrap();
    nodeos_build::publish::record(&out).unwrap();
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("verify")
            .env("NODEOS_CACHE_DIR", d.path())
            .output()
            .unwrap()
    };
    let ok = verify();
    let text = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert!(ok.status.success(), "{text}");
    assert!(text.contains("1 intact, 0 unrecorded, 0 damaged"), "{text}");

    std::fs::write(out.join("bzImage"), b"0123456780").unwrap();
    let bad = verify();
    let text = String::from_utf8_lossy(&bad.stdout).into_owned();
    let err = String::from_utf8_lossy(&bad.stderr).into_owned();
    assert!(!bad.status.success());
    assert!(
        text.contains("DAMAGED") && text.contains("bzImage: sha256"),
        "{text}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}
