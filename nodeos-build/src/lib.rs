//! The shared build engine of NodeOS.
//!
//! Recipes (toolchain, kernel, node) say *what* to build as data; this crate
//! is the small, general engine that says *how*: it obtains and verifies
//! pinned sources, computes content-addressed cache keys, runs phases as
//! stamped, resumable steps with a log per phase, and publishes results
//! atomically so nothing half-built is ever mistaken for done.

pub mod arch;
pub mod cache;
pub mod driver;
pub mod elf;
pub mod env;
pub mod fetch;
pub mod host;
pub mod jobrec;
pub mod key;
pub mod launcher;
pub mod phase;
pub mod progress;
pub mod publish;
pub mod source;
pub mod timings;
pub mod tree;
pub mod util;

pub use arch::Arch;
pub use driver::{Phase, PhaseDecl, Sources};
pub use env::Env;
pub use key::Key;
pub use phase::{PhaseOutput, PhaseRun, StepCtx};
pub use source::{Manifest, Source};
