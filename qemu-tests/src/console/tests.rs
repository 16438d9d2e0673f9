use super::*;

fn console(dir: &Path, limit: usize) -> Arc<Console> {
    Console::create(&dir.join("console.log"), limit).unwrap()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[test]
fn classify_fatal_lines() {
    let init = "[    1.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000";
    assert_eq!(Fatal::classify(init), Some(Fatal::InitExited));
    assert_eq!(
        Fatal::classify("Kernel panic - not syncing: VFS: Unable to mount root fs"),
        Some(Fatal::KernelPanic)
    );
    assert_eq!(
        Fatal::classify("Warning: unable to open an initial console."),
        Some(Fatal::NoConsole)
    );
    assert_eq!(Fatal::classify("Run /init as init process"), None);
}

#[test]
fn clean_line_strips_escapes_and_cr() {
    assert_eq!(clean_line(b"\x1b[1G\x1b[0J> 1+1\r"), "> 1+1");
    assert_eq!(clean_line(b"a\xffb"), "a\u{fffd}b");
}

#[test]
fn match_across_chunks_and_cursor_moves() {
    let dir = tempfile::tempdir().unwrap();
    let c = console(dir.path(), WINDOW_LIMIT);
    c.ingest_console(b"hello wo");
    c.ingest_console(b"rld\nsecond world\n");
    let re = Pattern::from("world").compile();
    let mut cursor = 0;
    let Outcome::Matched(m) = c.expect(&re, &mut cursor, &[], soon()) else {
        panic!("no match")
    };
    assert_eq!(m.before, "hello ");
    assert_eq!(cursor, 11);
    let Outcome::Matched(m) = c.expect(&re, &mut cursor, &[], soon()) else {
        panic!("no second match")
    };
    assert_eq!(m.before, "\nsecond ");
    let re = Pattern::regex(r"(\w+) (w)orld").unwrap().compile();
    let mut cursor = 0;
    let Outcome::Matched(m) = c.expect(&re, &mut cursor, &[], soon()) else {
        panic!("no regex match")
    };
    assert_eq!(m.group(1), Some("hello"));
    assert_eq!(m.group(2), Some("w"));
    assert_eq!(m.group(3), None);
}

#[test]
fn output_before_a_fatal_line_still_matches_but_not_after() {
    let dir = tempfile::tempdir().unwrap();
    let c = console(dir.path(), WINDOW_LIMIT);
    c.ingest_console(
        b"marker one\nKernel panic - not syncing: Attempted to kill init!\nlate marker\n",
    );
    let mut cursor = 0;
    let re = Pattern::from("marker").compile();
    assert!(matches!(
        c.expect(&re, &mut cursor, &[], soon()),
        Outcome::Matched(_)
    ));
    match c.expect(&re, &mut cursor, &[], soon()) {
        Outcome::Fatal(e) => assert_eq!(e.kind, Fatal::InitExited),
        _ => panic!("the panic line should end the wait"),
    }
    // Allowed, the panic is passed over.
    assert!(matches!(
        c.expect(&re, &mut cursor, &[Fatal::InitExited], soon()),
        Outcome::Matched(_)
    ));
    assert_eq!(c.pending_fatal(cursor, &[]), None);
}

#[test]
fn window_stays_bounded_and_tail_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let c = console(dir.path(), 4096);
    for i in 0..10_000 {
        c.ingest_console(format!("flood line {i}\n").as_bytes());
    }
    assert!(c.window_bytes() <= 4096);
    let re = Pattern::from("flood line 9999\n").compile();
    let mut cursor = 0;
    assert!(matches!(
        c.expect(&re, &mut cursor, &[], soon()),
        Outcome::Matched(_)
    ));
    let ctx = c.failure_context("test guest");
    assert_eq!(ctx.tail.len(), TAIL_LINES);
    assert_eq!(ctx.tail.last().unwrap(), "flood line 9999");
    c.flush_log();
    let log = std::fs::read_to_string(dir.path().join("console.log")).unwrap();
    assert_eq!(log.lines().count(), 10_000);
    assert!(
        log.lines()
            .all(|l| l.starts_with('[') && l.contains("] flood line"))
    );
}

#[test]
fn long_lines_are_cut_for_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let c = console(dir.path(), 1 << 16);
    for _ in 0..100 {
        c.ingest_console(&[b'x'; 10_000]);
    }
    let ctx = c.failure_context("g");
    assert_eq!(ctx.tail, vec!["x".repeat(LINE_CAP)]);
}

#[test]
fn timeout_and_eof() {
    let dir = tempfile::tempdir().unwrap();
    let c = console(dir.path(), WINDOW_LIMIT);
    let re = Pattern::from("never").compile();
    let mut cursor = 0;
    let t0 = Instant::now();
    assert!(matches!(
        c.expect(&re, &mut cursor, &[], t0 + Duration::from_millis(200)),
        Outcome::Timeout
    ));
    assert!(t0.elapsed() >= Duration::from_millis(200));
    c.pump_console(&b"last words"[..]);
    assert!(matches!(
        c.expect(&re, &mut cursor, &[], soon()),
        Outcome::Eof
    ));
    assert_eq!(c.failure_context("g").tail, vec!["last words"]);
}

#[test]
fn log_lines_carry_timestamps_and_notes() {
    let dir = tempfile::tempdir().unwrap();
    let c = console(dir.path(), WINDOW_LIMIT);
    c.ingest_console(b"abc");
    c.note("sent a line");
    c.ingest_console(b"def\nghi\n");
    c.flush_log();
    let log = std::fs::read_to_string(dir.path().join("console.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert!(lines[0].ends_with("] abc"));
    assert!(lines[1].ends_with("] ## sent a line"));
    assert!(lines[2].ends_with("] def"));
    assert!(lines[3].ends_with("] ghi"));
}
