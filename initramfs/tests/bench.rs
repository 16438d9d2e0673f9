//! The benchmark runs end to end (on a small file) and, without its tools,
//! says which package to install. One test, because it changes PATH.

#[test]
fn bench_runs_and_names_missing_tools() {
    let dir = tempfile::tempdir().unwrap();
    let report = initramfs::bench(2, dir.path()).unwrap();
    let text = report.to_string();
    for row in [
        "nodeos initramfs (none)",
        "nodeos initramfs (gzip -6)",
        "GNU cpio -o -H newc",
        "| gzip -6",
    ] {
        assert!(text.contains(row), "missing row {row:?} in:\n{text}");
    }
    assert!(report
        .rows
        .iter()
        .all(|r| r.seconds > 0.0 && r.output_bytes > 0));

    let path = std::env::var_os("PATH");
    std::env::set_var("PATH", dir.path());
    let err = format!("{:#}", initramfs::bench(1, dir.path()).unwrap_err());
    match path {
        Some(p) => std::env::set_var("PATH", p),
        None => std::env::remove_var("PATH"),
    }
    assert!(
        err.contains("`cpio` is not on PATH") && err.contains("apt-get install cpio"),
        "{err}"
    );
}
