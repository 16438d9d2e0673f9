//! The symbol check on the real kernel tree: a fragment asking for symbols
//! that cannot be set makes the kernel phase fail, naming each one, in the
//! configure step, before anything is compiled.
//!
//! One configure run (x86_64) also proves the repository's fragments: the
//! planted symbols must be the *only* ones reported, so every symbol of
//! common.config and x86_64.config stuck.
//!
//! Cost: unpacking the Linux tree (~1.3 GB, ~40 s) plus tinyconfig and
//! olddefconfig. The cache is a temporary directory; the download
//! directory is the real one ($NODEOS_DL_DIR, else the cache's dl/), so
//! the 138 MB source is fetched once per machine, not once per run.

use nodeos_build::{Arch, Env};

/// Symbols that cannot end up as asked, one per way of failing.
const PLANTED: &str = "\
# Misspelt / unknown: Kconfig drops it without a word.
CONFIG_NODEOS_DOES_NOT_EXIST=y
# Real, but its dependencies (SOUND, SND, SND_PCI) are off.
CONFIG_SND_HDA_INTEL=y
# Real, but not user-settable: selected by M686/X86_64 whatever is asked.
# CONFIG_X86_TSC is not set
";

#[test]
fn unsettable_symbols_fail_the_configure_step_by_name() {
    let root = Env::workspace_root_from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let mut env = Env::for_tests(tmp.path(), &root);
    // The real download dir, resolved as `cargo xtask` does.
    env.dl_dir = Env::new(&root, None, false, false).unwrap().dl_dir;
    env.jobs = 1;
    let extra = tmp.path().join("planted.config");
    std::fs::write(&extra, PLANTED).unwrap();

    let err = kernel::build_with_fragments(&env, Arch::X86_64, std::slice::from_ref(&extra))
        .expect_err("a fragment with unsettable symbols must fail the kernel phase");
    let text = format!("{err:#}");
    // The phase's message, without the log tail it appends.
    let message = text.split("--- last lines of").next().unwrap();
    eprintln!("the phase failed as it should:\n{message}");
    assert!(
        message.contains("step configure"),
        "must fail in the configure step:\n{text}"
    );
    let reported: Vec<&str> = message
        .lines()
        .filter_map(|l| l.trim().split(':').next())
        .filter(|w| w.starts_with("CONFIG_") && !w.contains(' '))
        .collect();
    assert_eq!(
        reported,
        [
            "CONFIG_NODEOS_DOES_NOT_EXIST",
            "CONFIG_SND_HDA_INTEL",
            "CONFIG_X86_TSC"
        ],
        "exactly the planted symbols (so every repository symbol stuck):\n{text}"
    );
    assert!(
        message.contains(
            "CONFIG_NODEOS_DOES_NOT_EXIST: asked for =y, but it is not in the final .config"
        ),
        "{text}"
    );
    assert!(
        message.contains("CONFIG_X86_TSC: asked for not set, got =y"),
        "{text}"
    );

    // Nothing was compiled and nothing was published.
    let build_root = env.cache_dir.join("build");
    let build_dir = std::fs::read_dir(&build_root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("kernel-x86_64-")
        })
        .expect("the failed build dir is kept for inspection");
    assert!(build_dir.join("obj/.config").is_file());
    assert!(
        !build_dir.join("obj/vmlinux").exists() && !build_dir.join("obj/init/main.o").exists(),
        "the kernel must not be compiled after a failed check"
    );
    assert!(!env.cache_dir.join("out/kernel").exists());
}
