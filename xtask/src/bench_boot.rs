//! `cargo xtask bench`'s boots: an image booted in QEMU to the REPL prompt
//! or to an app's first HTTP answer, timed, and its memory floor bisected.

use crate::image;
use anyhow::{bail, Result};
use nodeos_build::{Arch, Env};
use qemu_tests::node_checks::wait_for_prompt;
use qemu_tests::Guest;
use std::time::Duration;

/// The median, or `None` for no runs (`--boots 0`).
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v.get(v.len() / 2).copied()
}

/// Boots to the REPL prompt; returns the time, or an error if it never came.
pub fn boot_to_prompt(
    env: &Env,
    arch: Arch,
    img: &image::Image,
    memory: u32,
    tag: &str,
) -> Result<Duration> {
    let mut cfg = crate::guest_config::qemu_config(env, arch, img, memory, &[]);
    cfg.log_name = format!("bench-{tag}.log");
    let mut guest = Guest::launch(&cfg)?;
    wait_for_prompt(&mut guest)
}

/// The smallest -m (MiB) that still reaches the prompt, by bisection.
pub fn min_memory(env: &Env, arch: Arch, img: &image::Image) -> Result<u32> {
    let (mut bad, mut good) = (16u32, 1024u32);
    let node = &img.node.version;
    if boot_to_prompt(env, arch, img, good, &format!("mem-{node}-{good}")).is_err() {
        bail!("{arch}, Node {node}: does not reach the prompt even with {good} MiB");
    }
    while good - bad > 8 {
        let mid = (bad + good) / 2;
        match boot_to_prompt(env, arch, img, mid, &format!("mem-{node}-{mid}")) {
            Ok(_) => good = mid,
            Err(_) => bad = mid,
        }
    }
    Ok(good)
}

/// Boots the app image and waits for its first HTTP answer on the
/// forwarded port; returns the time from QEMU's start.
pub fn boot_to_http(
    env: &Env,
    arch: Arch,
    img: &image::Image,
    forward: qemu_tests::PortForward,
    tag: &str,
) -> Result<Duration> {
    let mut cfg = crate::guest_config::qemu_config(env, arch, img, 512, &[forward]);
    cfg.log_name = format!("bench-{tag}.log");
    let mut guest = Guest::launch(&cfg)?;
    match qemu_tests::app::wait_for_http(
        &mut guest,
        forward.host,
        "/",
        crate::app_run::APP_TIMEOUT,
    )? {
        qemu_tests::app::HttpWait::Answered(_, at) => Ok(at),
        qemu_tests::app::HttpWait::AppExited(end) => {
            bail!("{arch}: the app ended with {} before answering", end.status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts_and_of_none() {
        assert_eq!(median(vec![2.5, 2.1, 2.4]), Some(2.4));
        // Even count: the upper of the two middle runs.
        assert_eq!(median(vec![3.0, 1.0, 2.0, 4.0]), Some(3.0));
        assert_eq!(median(Vec::new()), None);
    }
}
