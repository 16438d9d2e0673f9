//! `cargo xtask bench --vs MAJOR`: one Node version measured against a
//! baseline version in the same run, on the same machine under the same
//! load, and rendered as ratios against issue 14's goal.

use anyhow::{bail, Result};
use nodeos_build::util::fmt_size;
use nodeos_build::{Arch, PhaseOutput};
use std::fmt::Write as _;

/// The Node versions to measure, in the order their images are built and
/// booted: the `--vs` baseline first, then the `--node` one.
pub fn versions(
    node: &crate::NodeSel,
    vs: Option<&str>,
) -> Result<Vec<&'static node_static::NodeVersion>> {
    let candidate = node.version()?;
    let Some(vs) = vs else {
        return Ok(vec![candidate]);
    };
    let major = vs.trim_start_matches('v');
    let others = || {
        node_static::all_versions()
            .iter()
            .map(|v| v.major.as_str())
            .filter(|m| *m != candidate.major)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Ok(baseline) = node_static::version(major) else {
        bail!(
            "--vs {vs}: NodeOS does not build Node {major} (node-static/versions.toml); give a declared version as the baseline: {}",
            others()
        );
    };
    if baseline.major == candidate.major {
        let measured = match &node.node {
            Some(_) => format!("--node {}", candidate.major),
            None => format!("--node's default, {}", candidate.major),
        };
        bail!(
            "--vs {vs}: that is the version being measured ({measured}); the baseline must be another version: {}",
            others()
        );
    }
    Ok(vec![baseline, candidate])
}

/// The largest candidate / baseline ratio that meets the goal. Issue 14
/// ("Node.js 22 LTS ... the Node version is selectable"): Node 22 "no worse
/// than 18 by more than 20% on size, boot time and RAM".
pub const GOAL_MAX_RATIO: f64 = 1.20;

/// The goal as users read it: "20%".
pub fn goal_percent() -> String {
    format!("{:.0}%", (GOAL_MAX_RATIO - 1.0) * 100.0)
}

/// What bench measured of one image: the figures the goal compares. A
/// figure is `None` when it could not be measured (e.g. an unreadable
/// file, or no boots asked for).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Bytes of the stripped node that goes into the initramfs.
    pub node_stripped: Option<u64>,
    /// Bytes of the compressed initramfs the kernel unpacks.
    pub initramfs: Option<u64>,
    /// Seconds from QEMU's start to the REPL prompt (median of the boots).
    pub boot_median: Option<f64>,
    /// The smallest guest memory (MiB) that still reaches the prompt.
    pub min_memory: Option<u32>,
}

/// Where one figure stands against [`GOAL_MAX_RATIO`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// At most the limit (smaller is better for every figure compared).
    Within,
    Over,
    /// One of the two values is missing: no verdict either way.
    NotMeasured,
}

/// candidate / baseline, when both are known and the baseline is positive.
pub fn ratio(baseline: Option<f64>, candidate: Option<f64>) -> Option<f64> {
    match (baseline, candidate) {
        (Some(b), Some(c)) if b > 0.0 => Some(c / b),
        _ => None,
    }
}

/// The verdict on the unrounded ratio: a ratio of exactly the limit meets
/// the goal ("no worse by more than 20%").
pub fn verdict(ratio: Option<f64>) -> Verdict {
    match ratio {
        Some(r) if r <= GOAL_MAX_RATIO => Verdict::Within,
        Some(_) => Verdict::Over,
        None => Verdict::NotMeasured,
    }
}

fn verdict_cell(v: Verdict) -> &'static str {
    match v {
        Verdict::Within => "yes",
        Verdict::Over => "**no**",
        Verdict::NotMeasured => "? (not measured)",
    }
}

/// One row of a comparison table: the measure's name, both values as
/// shown, and both as numbers for the ratio.
struct Row {
    measure: String,
    shown: [String; 2],
    values: [Option<f64>; 2],
}

fn rows(baseline: &Figures, candidate: &Figures) -> Vec<Row> {
    fn row<T: Copy>(
        measure: String,
        pick: impl Fn(&Figures) -> Option<T>,
        show: impl Fn(T) -> String,
        num: impl Fn(T) -> f64,
        figs: [&Figures; 2],
    ) -> Row {
        let v = figs.map(&pick);
        Row {
            measure,
            shown: v.map(|x| x.map(&show).unwrap_or_else(|| "?".into())),
            values: v.map(|x| x.map(&num)),
        }
    }
    let figs = [baseline, candidate];
    vec![
        row(
            "node (stripped)".into(),
            |f| f.node_stripped,
            fmt_size,
            |b| b as f64,
            figs,
        ),
        row(
            format!("initramfs ({})", initramfs::DEFAULT_COMPRESSION),
            |f| f.initramfs,
            fmt_size,
            |b| b as f64,
            figs,
        ),
        row(
            "boot → REPL prompt (median)".into(),
            |f| f.boot_median,
            |s| format!("{s:.2} s"),
            |s| s,
            figs,
        ),
        row(
            "smallest -m reaching the prompt".into(),
            |f| f.min_memory,
            |m| format!("{m} MiB"),
            f64::from,
            figs,
        ),
    ]
}

/// The "Node X vs Node Y" table of one arch: both values of each figure,
/// their ratio (candidate / baseline, 2 decimals) and the verdict.
pub fn comparison_table(
    arch: Arch,
    baseline_node: &str,
    baseline: &Figures,
    candidate_node: &str,
    candidate: &Figures,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### {arch}: Node {candidate_node} vs Node {baseline_node}\n\n\
         | measure | Node {baseline_node} (baseline) | Node {candidate_node} | ratio | within the {} goal |\n\
         | --- | --- | --- | --- | --- |",
        goal_percent()
    );
    for r in rows(baseline, candidate) {
        let ratio = ratio(r.values[0], r.values[1]);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            r.measure,
            r.shown[0],
            r.shown[1],
            ratio
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "?".into()),
            verdict_cell(verdict(ratio))
        );
    }
    md
}

/// The comparison section's heading and what its figures mean.
pub fn section_head(baseline_node: &str, candidate_node: &str, boots: usize) -> String {
    format!(
        "## Node {candidate_node} vs Node {baseline_node}\n\n\
         Both measured in this run on this machine (`--vs`): the {boots} boots per image \
         alternate between the two images (baseline, candidate, baseline, ...) so both see \
         the same load, and the memory floor is bisected for each. Ratio: Node {candidate_node} / \
         Node {baseline_node}, lower is better. Goal (issue 14): at most {GOAL_MAX_RATIO:.2}, \
         no worse by more than {}; judged on the unrounded ratio.\n",
        goal_percent()
    )
}

/// The boots of `images` images, `boots` each, in the order they run:
/// `(boot number, image index)`, every image once per round, so that a
/// change in the machine's load during the run falls on all of them alike.
pub fn alternating(boots: usize, images: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..boots).flat_map(move |b| (0..images).map(move |i| (b, i)))
}

/// One row of the phase wall-times table: a phase output and the Node
/// versions whose images use it.
#[derive(Debug)]
pub struct PhaseRow<'a> {
    pub phase: &'a PhaseOutput,
    pub nodes: Vec<&'a str>,
}

impl PhaseRow<'_> {
    /// Built once and used by more than one version's image (same key).
    pub fn shared(&self) -> bool {
        self.nodes.len() > 1
    }

    /// The table's node cell: the version, or every version sharing it.
    pub fn node_cell(&self) -> String {
        let v = self.nodes.join(", ");
        if self.shared() {
            format!("{v} (shared: one build)")
        } else {
            v
        }
    }
}

/// The phases of one arch's images (one per Node version, `(node version,
/// phases)`), each published output once: the phases the versions share
/// (same output, e.g. the toolchain and the kernel) first, in the first
/// image's order, then each version's own phases in its image's order.
pub fn phase_rows<'a>(images: &[(&'a str, &'a [PhaseOutput])]) -> Vec<PhaseRow<'a>> {
    let mut all: Vec<PhaseRow<'a>> = Vec::new();
    for &(node, phases) in images {
        for p in phases {
            match all.iter_mut().find(|r| r.phase.dir == p.dir) {
                Some(r) => {
                    if !r.nodes.contains(&node) {
                        r.nodes.push(node)
                    }
                }
                None => all.push(PhaseRow {
                    phase: p,
                    nodes: vec![node],
                }),
            }
        }
    }
    let (mut rows, own): (Vec<_>, Vec<_>) = all.into_iter().partition(PhaseRow::shared);
    rows.extend(own);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn node(major: &str) -> crate::NodeSel {
        crate::NodeSel {
            node: Some(major.into()),
        }
    }

    fn majors(v: &[&node_static::NodeVersion]) -> Vec<String> {
        v.iter().map(|v| v.major.clone()).collect()
    }

    #[test]
    fn the_baseline_comes_first_then_the_measured_version() {
        assert_eq!(
            majors(&versions(&node("22"), Some("18")).unwrap()),
            ["18", "22"]
        );
        assert_eq!(
            majors(&versions(&node("22"), Some("v18")).unwrap()),
            ["18", "22"]
        );
        assert_eq!(majors(&versions(&node("22"), None).unwrap()), ["22"]);
    }

    #[test]
    fn the_same_version_twice_is_refused_in_one_line() {
        let e = format!("{:#}", versions(&node("22"), Some("22")).unwrap_err());
        assert_eq!(
            e,
            "--vs 22: that is the version being measured (--node 22); the baseline must be another version: 18"
        );
    }

    #[test]
    fn the_default_version_as_baseline_says_it_is_the_default() {
        let default = node_static::default_version();
        let e = versions(&crate::NodeSel::default(), Some(&default.major)).unwrap_err();
        assert!(
            format!("{e:#}").contains(&format!(
                "is the version being measured (--node's default, {})",
                default.major
            )),
            "{e:#}"
        );
    }

    #[test]
    fn an_undeclared_baseline_is_refused_naming_the_declared_ones() {
        let e = format!("{:#}", versions(&node("22"), Some("20")).unwrap_err());
        assert_eq!(
            e,
            "--vs 20: NodeOS does not build Node 20 (node-static/versions.toml); give a declared version as the baseline: 18"
        );
    }

    fn figures(node: u64, ird: u64, boot: f64, mem: u32) -> Figures {
        Figures {
            node_stripped: Some(node),
            initramfs: Some(ird),
            boot_median: Some(boot),
            min_memory: Some(mem),
        }
    }

    /// The table's body rows (after the header and the separator).
    fn body(table: &str) -> Vec<&str> {
        table.lines().skip(4).collect()
    }

    #[test]
    fn the_goal_is_twenty_percent() {
        assert_eq!(goal_percent(), "20%");
    }

    #[test]
    fn exactly_at_the_limit_is_within_and_just_above_is_over() {
        // Integers whose ratio is exactly 1.2, in each kind of unit.
        for (b, c) in [(100.0, 120.0), (5.0, 6.0), (40_000_000.0, 48_000_000.0)] {
            let r = ratio(Some(b), Some(c));
            assert_eq!(verdict(r), Verdict::Within, "{c}/{b}");
            assert_eq!(verdict(ratio(Some(b), Some(c + 1.0))), Verdict::Over);
        }
        assert_eq!(verdict(ratio(Some(2.0), Some(1.0))), Verdict::Within);
    }

    #[test]
    fn a_missing_or_zero_value_gives_no_ratio_and_no_verdict() {
        for (b, c) in [(None, Some(1.0)), (Some(1.0), None), (None, None)] {
            assert_eq!(ratio(b, c), None);
        }
        assert_eq!(ratio(Some(0.0), Some(1.0)), None);
        assert_eq!(verdict(None), Verdict::NotMeasured);
    }

    #[test]
    fn renders_both_values_the_ratio_and_the_verdict_per_figure() {
        let mib = 1 << 20;
        let base = figures(40 * mib, 20 * mib, 2.00, 120);
        // node +10%, initramfs exactly +20%, boot +25%, memory -10%.
        let cand = figures(44 * mib, 24 * mib, 2.50, 108);
        let t = comparison_table(Arch::X86_64, "18.20.4", &base, "22.22.2", &cand);
        let c = initramfs::DEFAULT_COMPRESSION;
        assert_eq!(
            t.lines().take(4).collect::<Vec<_>>(),
            [
                "### x86_64: Node 22.22.2 vs Node 18.20.4",
                "",
                "| measure | Node 18.20.4 (baseline) | Node 22.22.2 | ratio | within the 20% goal |",
                "| --- | --- | --- | --- | --- |",
            ]
        );
        assert_eq!(
            body(&t),
            [
                "| node (stripped) | 40.0 MiB | 44.0 MiB | 1.10 | yes |".to_string(),
                format!("| initramfs ({c}) | 20.0 MiB | 24.0 MiB | 1.20 | yes |"),
                "| boot → REPL prompt (median) | 2.00 s | 2.50 s | 1.25 | **no** |".into(),
                "| smallest -m reaching the prompt | 120 MiB | 108 MiB | 0.90 | yes |".into(),
            ]
        );
    }

    #[test]
    fn a_ratio_shown_as_1_20_but_above_it_is_over() {
        let base = figures(500, 1000, 1.0, 100);
        let cand = figures(602, 1000, 1.0, 100);
        let t = comparison_table(Arch::I386, "18.20.4", &base, "22.22.2", &cand);
        assert_eq!(
            body(&t)[0],
            "| node (stripped) | 500 B | 602 B | 1.20 | **no** |"
        );
    }

    #[test]
    fn a_missing_value_shows_a_question_mark_and_no_verdict() {
        let base = figures(1000, 1000, 2.0, 100);
        let cand = Figures {
            boot_median: None,
            ..figures(1000, 1000, 0.0, 100)
        };
        let t = comparison_table(Arch::I386, "18.20.4", &base, "22.22.2", &cand);
        assert_eq!(
            body(&t)[2],
            "| boot → REPL prompt (median) | 2.00 s | ? | ? | ? (not measured) |"
        );
        assert_eq!(
            body(&t)[3],
            "| smallest -m reaching the prompt | 100 MiB | 100 MiB | 1.00 | yes |"
        );
    }

    #[test]
    fn boots_alternate_between_the_images_round_by_round() {
        assert_eq!(
            alternating(3, 2).collect::<Vec<_>>(),
            [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
        );
        assert_eq!(alternating(2, 1).collect::<Vec<_>>(), [(0, 0), (1, 0)]);
        assert_eq!(alternating(0, 2).count(), 0);
    }

    fn phase(name: &str, key: &str) -> PhaseOutput {
        PhaseOutput {
            name: name.into(),
            arch: Some(Arch::X86_64),
            dir: PathBuf::from(format!("/cache/out/{name}/{key}")),
            key: key.into(),
            cached: true,
            wall: Duration::ZERO,
        }
    }

    #[test]
    fn shared_phases_come_first_once_then_each_versions_own() {
        let n18 = [
            phase("toolchain", "t"),
            phase("node", "n18"),
            phase("kernel", "k"),
            phase("initramfs", "i18"),
        ];
        let n22 = [
            phase("toolchain", "t"),
            phase("openssl", "o"),
            phase("node", "n22"),
            phase("kernel", "k"),
            phase("initramfs", "i22"),
        ];
        let rows = phase_rows(&[("18.20.4", &n18), ("22.22.2", &n22)]);
        let got: Vec<(&str, &str, String)> = rows
            .iter()
            .map(|r| (r.phase.name.as_str(), r.phase.key.as_str(), r.node_cell()))
            .collect();
        let shared = "18.20.4, 22.22.2 (shared: one build)";
        assert_eq!(
            got,
            [
                ("toolchain", "t", shared.into()),
                ("kernel", "k", shared.into()),
                ("node", "n18", "18.20.4".into()),
                ("initramfs", "i18", "18.20.4".into()),
                ("openssl", "o", "22.22.2".into()),
                ("node", "n22", "22.22.2".into()),
                ("initramfs", "i22", "22.22.2".into()),
            ]
        );
    }

    #[test]
    fn one_version_lists_its_phases_in_order() {
        let n22 = [phase("toolchain", "t"), phase("node", "n22")];
        let rows = phase_rows(&[("22.22.2", &n22)]);
        let got: Vec<(&str, String)> = rows
            .iter()
            .map(|r| (r.phase.name.as_str(), r.node_cell()))
            .collect();
        assert_eq!(
            got,
            [("toolchain", "22.22.2".into()), ("node", "22.22.2".into())]
        );
    }
}
