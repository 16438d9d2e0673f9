//! The phase driver on a toy phase with one real source file: the sequence
//! (choose → key → published? → fetch → key again → steps → publish → link),
//! reuse without running a step, look-ups that never build, and a missing
//! source refused before any step runs.

use anyhow::Result;
use nodeos_build::driver::{self, Mode, SourceRef};
use nodeos_build::publish::Outputs;
use nodeos_build::{Arch, Env, Key, Manifest, Phase, PhaseDecl, PhaseOutput, Sources, StepCtx};
use std::cell::RefCell;
use std::path::{Path, PathBuf};

const BODY: &[u8] = b"the toy source's bytes\n";

fn manifest() -> Manifest {
    let sha = nodeos_build::util::sha256_bytes(BODY);
    Manifest::parse(
        &format!(
            "[[source]]\nname = \"pkg\"\nvariant = \"upstream\"\nversion = \"1\"\nfile = \"pkg-1.txt\"\nsha256 = \"{sha}\"\nurls = [\"http://127.0.0.1:9/pkg-1.txt\"]\n"
        ),
        "driver test",
    )
    .unwrap()
}

/// What the driver did to the toy phase, in order.
#[derive(Default)]
struct Calls(RefCell<Vec<String>>);

impl Calls {
    fn push(&self, s: &str) {
        self.0.borrow_mut().push(s.into());
    }
    fn take(&self) -> Vec<String> {
        self.0.borrow_mut().drain(..).collect()
    }
}

struct Toy<'a> {
    calls: &'a Calls,
}

impl Phase for Toy<'_> {
    type Output = PathBuf;

    fn decl(&self) -> PhaseDecl {
        PhaseDecl {
            name: "toy".into(),
            sources: vec![SourceRef::new(&manifest(), "pkg")],
            depends: Vec::new(),
            host_tools: Vec::new(),
        }
    }

    fn arch(&self) -> Option<Arch> {
        Some(Arch::X86_64)
    }

    fn prepare(&mut self, _env: &Env, _sources: &Sources, mode: Mode) -> Result<()> {
        self.calls.push(&format!("prepare {mode:?}"));
        Ok(())
    }

    fn key(&self, _env: &Env, sources: &Sources) -> Result<Key> {
        self.calls.push("key");
        let mut k = Key::new("toy", 1);
        for s in sources.get("pkg").all() {
            k.source(s);
        }
        Ok(k)
    }

    fn outputs(&self) -> Outputs {
        Outputs::named(&["copy"])
    }

    fn steps(&self, ctx: &mut StepCtx, sources: &Sources) -> Result<()> {
        self.calls.push("steps");
        let file = ctx.env.dl_dir.join(&sources.get("pkg").main.file);
        ctx.step("copy", |ctx| {
            std::fs::copy(&file, ctx.out_dir().join("copy"))?;
            // Not a declared output: the driver must not publish it.
            std::fs::write(ctx.out_dir().join("stray"), b"x")?;
            Ok(())
        })
    }

    fn output(&self, out: PhaseOutput, _sources: &Sources) -> Result<PathBuf> {
        self.calls.push("output");
        Ok(out.dir.join("copy"))
    }

    fn artifacts(&self, copy: &PathBuf) -> Vec<(String, PathBuf)> {
        vec![("toy-copy".into(), copy.clone())]
    }
}

fn env_with_source(root: &Path) -> Env {
    let env = Env::for_tests(root, root);
    std::fs::create_dir_all(&env.dl_dir).unwrap();
    std::fs::write(env.dl_dir.join("pkg-1.txt"), BODY).unwrap();
    env
}

#[test]
fn builds_once_then_reuses_and_links() {
    let d = tempfile::tempdir().unwrap();
    let env = env_with_source(d.path());
    let calls = Calls::default();

    // Nothing published: the look-up builds and fetches nothing.
    assert!(driver::published(&env, Toy { calls: &calls })
        .unwrap()
        .is_none());
    assert_eq!(calls.take(), ["prepare Published", "key"]);
    assert!(!env.cache_dir.join("out").join("toy").exists());

    // Cold: chosen, keyed, fetched (verified), keyed again, built.
    let copy = driver::build(&env, Toy { calls: &calls }).unwrap();
    assert_eq!(
        calls.take(),
        [
            "prepare Build",
            "key",
            "prepare Build",
            "key",
            "steps",
            "output"
        ]
    );
    assert_eq!(std::fs::read(&copy).unwrap(), BODY);
    assert!(
        !copy.with_file_name("stray").exists(),
        "an undeclared file was published"
    );
    let link = env.artifact_dir(Arch::X86_64).join("toy-copy");
    assert_eq!(std::fs::read_link(&link).unwrap(), copy);

    // Warm: reused at once, no fetch, no step.
    std::fs::remove_file(&link).unwrap();
    let again = driver::build(&env, Toy { calls: &calls }).unwrap();
    assert_eq!(again, copy);
    assert_eq!(calls.take(), ["prepare Build", "key", "output"]);
    assert!(link.exists(), "a reused output is linked again");

    // And the look-up finds it.
    let found = driver::published(&env, Toy { calls: &calls }).unwrap();
    assert_eq!(found, Some(copy));
}

#[test]
fn a_missing_source_fails_before_any_step() {
    let d = tempfile::tempdir().unwrap();
    let mut env = Env::for_tests(d.path(), d.path());
    env.offline = true;
    let calls = Calls::default();
    let e = driver::build(&env, Toy { calls: &calls }).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("pkg-1.txt") && msg.contains("--offline"),
        "{msg}"
    );
    assert!(!calls.take().contains(&"steps".to_string()));
    assert!(!env.cache_dir.join("out").join("toy").exists());
}
