use super::*;

fn vars(pairs: &[(&str, &str)]) -> Vars {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn outcomes(v: Option<Verdict>) -> Vec<String> {
    v.map(|v| v.outcomes.into_iter().collect())
        .unwrap_or_default()
}

const NODE_STYLE: &str = "\
prefix parallel

# A comment line
[true] # This section applies to all platforms
test-always: PASS,FLAKY

[$system==win32]
test-windows-only: SKIP

[$system==linux]
test-linux-flaky: PASS, FLAKY
test-fs-*: SLOW

[$system==win32 && $arch==ia32]
test-win32-ia32: PASS, FLAKY

[$arch==arm || $arch==arm64]
test-crypto-keygen: SKIP

[$asan==on]
test-asan: PASS, FLAKY
";

#[test]
fn node_sections_follow_their_conditions() {
    let f = StatusFile::parse(NODE_STYLE, "parallel.status", StatusKind::Node, &[]).unwrap();
    let linux_x64 = vars(&[("system", "linux"), ("arch", "x64"), ("asan", "off")]);
    let v = |name: &str, vars: &Vars| outcomes(f.verdict(&["parallel", name], vars));
    assert_eq!(v("test-always", &linux_x64), ["flaky", "pass"]);
    assert_eq!(v("test-linux-flaky", &linux_x64), ["flaky", "pass"]);
    assert_eq!(v("test-fs-stat", &linux_x64), ["slow"]);
    assert!(v("test-windows-only", &linux_x64).is_empty());
    assert!(v("test-crypto-keygen", &linux_x64).is_empty());
    assert!(v("test-asan", &linux_x64).is_empty());
    assert!(f.verdict(&["parallel", "test-other"], &linux_x64).is_none());
    // A rule of another suite does not match.
    assert!(
        f.verdict(&["sequential", "test-always"], &linux_x64)
            .is_none()
    );

    let arm = vars(&[("system", "linux"), ("arch", "arm")]);
    assert_eq!(v("test-crypto-keygen", &arm), ["skip"]);
    let win_ia32 = vars(&[("system", "win32"), ("arch", "ia32")]);
    assert_eq!(v("test-win32-ia32", &win_ia32), ["flaky", "pass"]);
    assert_eq!(v("test-windows-only", &win_ia32), ["skip"]);
    // An unset variable compares false.
    assert!(v("test-asan", &vars(&[])).is_empty());
}

#[test]
fn root_status_rules_span_directories() {
    let f = StatusFile::parse(
        "[true]\njs-native-api/test_cannot_run_js/test: PASS,FLAKY\n[$mode==debug]\nasync-hooks/test-callback-error: SLOW\n",
        "root.status",
        StatusKind::Node,
        &[],
    )
    .unwrap();
    let release = vars(&[("mode", "release")]);
    assert_eq!(
        outcomes(f.verdict(&["js-native-api", "test_cannot_run_js", "test"], &release)),
        ["flaky", "pass"]
    );
    assert!(
        f.verdict(&["async-hooks", "test-callback-error"], &release)
            .is_none()
    );
}

#[test]
fn defs_if_and_precedence() {
    let text = "\
def FLAKE = PASS, FLAKY
[true]
a/test-def: FLAKE
a/test-if: FAIL if $arch==ia32
a/test-and: PASS && FAIL
[($arch==x64 || $arch==ia32) && $system==linux]
a/test-paren: FAIL
";
    let f = StatusFile::parse(text, "t.status", StatusKind::Node, &[]).unwrap();
    let x64 = vars(&[("arch", "x64"), ("system", "linux")]);
    let ia32 = vars(&[("arch", "ia32"), ("system", "linux")]);
    assert_eq!(
        outcomes(f.verdict(&["a", "test-def"], &x64)),
        ["flaky", "pass"]
    );
    assert!(outcomes(f.verdict(&["a", "test-if"], &x64)).is_empty());
    assert_eq!(outcomes(f.verdict(&["a", "test-if"], &ia32)), ["fail"]);
    assert!(outcomes(f.verdict(&["a", "test-and"], &x64)).is_empty());
    assert_eq!(outcomes(f.verdict(&["a", "test-paren"], &ia32)), ["fail"]);
    let freebsd = vars(&[("arch", "x64"), ("system", "freebsd")]);
    assert!(f.verdict(&["a", "test-paren"], &freebsd).is_none());
}

#[test]
fn globs_are_literal_but_for_the_star() {
    let text = "[true]\np/test-a.b: SKIP\np/test-c*: SKIP\n";
    let f = StatusFile::parse(text, "t.status", StatusKind::Node, &[]).unwrap();
    let none = Vars::new();
    assert!(f.verdict(&["p", "test-a.b"], &none).is_some());
    assert!(f.verdict(&["p", "test-aXb"], &none).is_none());
    assert!(f.verdict(&["p", "test-c"], &none).is_some());
    assert!(f.verdict(&["p", "test-cdef"], &none).is_some());
    assert!(f.verdict(&["p", "xtest-c"], &none).is_none());
}

#[test]
fn known_failures_need_a_reason() {
    let good = "\
prefix parallel
[$proc==no]
test-memory-usage: FAIL  # needs-proc: reads /proc/self/stat
[true]
test-npm-install: SKIP   # needs-npm
";
    let f = StatusFile::parse(good, "k.status", StatusKind::KnownFailures, &["proc"]).unwrap();
    let v = f
        .verdict(&["parallel", "test-memory-usage"], &vars(&[("proc", "no")]))
        .unwrap();
    assert_eq!(v.outcomes, Outcomes::from(["fail".to_string()]));
    assert_eq!(
        v.reasons,
        vec![(
            Reason::NeedsProc,
            "reads /proc/self/stat".to_string(),
            "k.status:3".to_string()
        )]
    );
    assert!(
        f.verdict(
            &["parallel", "test-memory-usage"],
            &vars(&[("proc", "yes")])
        )
        .is_none()
    );
    let npm = f.verdict(&["parallel", "test-npm-install"], &Vars::new());
    assert_eq!(npm.unwrap().reasons[0].0, Reason::NeedsNpm);

    let missing = "[true]\nparallel/test-x: FAIL\n";
    let err = StatusFile::parse(missing, "k.status", StatusKind::KnownFailures, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("k.status:2") && err.contains("needs a reason"),
        "{err}"
    );
    let unknown = "[true]\nparallel/test-x: FAIL # because\n";
    let err = StatusFile::parse(unknown, "k.status", StatusKind::KnownFailures, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs-proc"), "lists the reasons: {err}");
    // Node's own files have no reasons and need none.
    StatusFile::parse(missing, "n.status", StatusKind::Node, &[]).unwrap();
}

#[test]
fn skip_may_not_depend_on_guest_facts() {
    let text = "[$proc==no]\nparallel/test-x: SKIP # needs-proc\n";
    let err =
        StatusFile::parse(text, "k.status", StatusKind::KnownFailures, &["proc"]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("$proc") && msg.contains("k.status:2"), "{msg}");
    // FAIL under the same condition is fine, and SKIP under a host variable.
    StatusFile::parse(
        "[$proc==no]\nparallel/test-x: FAIL # needs-proc\n[$arch==ia32]\nparallel/test-y: SKIP # needs-speed\n",
        "k.status",
        StatusKind::KnownFailures,
        &["proc"],
    )
    .unwrap();
}

#[test]
fn malformed_lines_are_refused_with_their_place() {
    for (text, what) in [
        ("[$arch==]\n", "malformed condition"),
        ("[true\n", "must end with ']'"),
        ("just words here\n", "not a section"),
        ("[true]\ntest-x: PASS &&\n", "malformed outcomes"),
        ("[true]\ntest x: PASS\n", "one word"),
    ] {
        let err = StatusFile::parse(text, "bad.status", StatusKind::Node, &[]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("bad.status:"), "{msg}");
        assert!(msg.contains(what), "{text:?}: {msg}");
    }
}

#[test]
fn every_reason_word_round_trips() {
    for r in Reason::ALL {
        assert_eq!(Reason::from_word(r.word()), Some(r));
    }
    assert_eq!(Reason::from_word("needs"), None);
}
