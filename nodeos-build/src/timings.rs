//! How long a published output took to build: written into every output
//! (`timings.json`) and merged per arch into
//! `target/nodeos/logs/<arch>/timings.json` by the phase engine; read by
//! `bench`, the model and `cache`.

use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;

/// The file's name, in an output and in a log dir.
pub const FILE: &str = "timings.json";

/// How a step's time was spent in the run that published the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepHow {
    /// Ran whole in the publishing run: its time is a cold build's.
    Built,
    /// Continued in the publishing run after an interruption: its time is
    /// only the last part.
    Resumed,
    /// Finished by an earlier, interrupted run of the phase.
    Earlier,
}

impl StepHow {
    /// `built`, `resumed` or `earlier`, as the file spells it.
    pub fn name(self) -> &'static str {
        match self {
            StepHow::Built => "built",
            StepHow::Resumed => "resumed",
            StepHow::Earlier => "earlier",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepTiming {
    pub step: String,
    pub secs: f64,
    pub how: StepHow,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseTimings {
    pub phase: String,
    pub arch: String,
    pub key: String,
    /// Wall time of the run that built it.
    pub build_secs: f64,
    pub steps: Vec<StepTiming>,
}

impl PhaseTimings {
    /// Whether every step ran whole in the publishing run, so that
    /// `build_secs` is a cold build's time.
    pub fn cold(&self) -> bool {
        self.steps.iter().all(|s| s.how == StepHow::Built)
    }
}

/// Reads the cold-build timings of a published output.
pub fn read(out_dir: &Path) -> Option<PhaseTimings> {
    fs::read(out_dir.join(FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}
