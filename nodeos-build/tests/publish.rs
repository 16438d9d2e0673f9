//! Publishing through the engine: a step restarted after an interruption
//! may have left temp files in the output dir; only the named outputs are
//! published, recorded (size, sha256) and checked at reuse.

use nodeos_build::publish::{self, Checked, Depth};
use nodeos_build::{Env, Key, Phase};

fn key() -> Key {
    let mut k = Key::new("toy", 1);
    k.str("what", "publish test");
    k
}

fn run(env: &Env, builds: &mut u32) -> std::path::PathBuf {
    Phase::new(env, "toy", None, key())
        .outputs(&["image"])
        .run(|ctx| {
            *builds += 1;
            ctx.step("write", |ctx| {
                let out = ctx.out_dir().to_path_buf();
                // What an interrupted earlier attempt of the step left.
                std::fs::write(out.join(".image-4242.tmp"), b"half an image")?;
                std::fs::write(out.join("image"), b"the image")?;
                Ok(())
            })
        })
        .unwrap()
        .dir
}

#[test]
fn only_named_outputs_are_published_recorded_and_checked_at_reuse() {
    let d = tempfile::tempdir().unwrap();
    let env = Env::for_tests(d.path(), d.path());
    let mut builds = 0;
    let out = run(&env, &mut builds);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "build.log",
            "image",
            "inputs.txt",
            "outputs.json",
            "timings.json"
        ]
    );
    assert_eq!(
        publish::check(&out, Depth::Hashes).unwrap(),
        Checked::Intact { files: 4 },
        "every published file but the record itself is recorded"
    );

    // Reused while intact.
    assert_eq!(run(&env, &mut builds), out);
    assert_eq!(builds, 1);

    // A file cut short (a power loss before its blocks reached the disk):
    // not reused, rebuilt.
    std::fs::write(out.join("image"), b"the").unwrap();
    let again = run(&env, &mut builds);
    assert_eq!(builds, 2, "a damaged output was reused");
    assert_eq!(std::fs::read(again.join("image")).unwrap(), b"the image");
}

#[test]
fn an_output_published_before_records_is_still_reused() {
    let d = tempfile::tempdir().unwrap();
    let env = Env::for_tests(d.path(), d.path());
    let mut builds = 0;
    let out = run(&env, &mut builds);
    std::fs::remove_file(out.join(publish::RECORD)).unwrap();
    assert_eq!(
        publish::check(&out, Depth::Sizes).unwrap(),
        Checked::Unrecorded
    );
    assert_eq!(run(&env, &mut builds), out);
    assert_eq!(
        builds, 1,
        "an unrecorded (older) output must not be rebuilt"
    );
}
