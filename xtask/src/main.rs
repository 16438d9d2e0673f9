//! `cargo xtask`: parses flags and dispatches; each command lives in its
//! own module.

mod app_args;
mod app_run;
mod bench;
mod bench_boot;
mod bench_compare;
mod bench_kernel;
mod bench_model;
mod doctor;
mod drill;
mod fetch;
mod guest_config;
mod image;
mod initramfs_cmd;
mod kernel_cmd;
#[cfg(test)]
mod key_pins;
mod model_report;
mod node_cmd;
mod node_test;
mod phases;
mod qemu_cmd;
mod toolchain_cmd;
mod verify;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use nodeos_build::{Arch, Env};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build NodeOS: a Linux whose whole userspace is a static Node.js",
    disable_help_subcommand = true
)]
struct Cli {
    /// Global: accepted before the command name as well as after it.
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command takes, before or after the command name.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Target arch(es): i386 (i686, x86), x86_64 (amd64); repeat or use a comma list [default: both]
    #[arg(long = "arch", value_name = "ARCH", global = true, value_parser = parse_arch_list)]
    arch: Vec<Vec<Arch>>,
    /// Parallel jobs for make [default: number of CPUs]
    #[arg(short = 'j', long = "jobs", global = true)]
    jobs: Option<usize>,
    /// Stream build logs to the terminal
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Use only the download directory; never apt or the network
    #[arg(long, global = true)]
    offline: bool,
}

/// `--node <MAJOR>`: which Node version a command builds or boots.
#[derive(Args, Clone, Debug, Default)]
pub struct NodeSel {
    /// Node version to build: a major of node-static/versions.toml (18, 22) [default: its `default`]
    #[arg(long = "node", value_name = "MAJOR")]
    node: Option<String>,
}

impl NodeSel {
    pub fn version(&self) -> Result<&'static node_static::NodeVersion> {
        match &self.node {
            Some(m) => node_static::version(m.trim_start_matches('v')),
            None => Ok(node_static::default_version()),
        }
    }
}

fn parse_arch_list(s: &str) -> Result<Vec<Arch>, String> {
    nodeos_build::arch::parse_list(s)
}

impl Common {
    /// The selected arches: those given with --arch, else all.
    pub fn arches(&self) -> Vec<Arch> {
        let v = self.explicit_arches();
        if v.is_empty() {
            Arch::all()
        } else {
            v
        }
    }

    /// The arches given with --arch (none when it was not given).
    pub fn explicit_arches(&self) -> Vec<Arch> {
        let mut v: Vec<Arch> = self.arch.iter().flatten().copied().collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn env(&self) -> Result<Env> {
        let root = Env::workspace_root_from(env!("CARGO_MANIFEST_DIR"));
        Env::new(&root, self.jobs, self.verbose, self.offline)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Download and verify every source the selected phases need
    Fetch(fetch::FetchArgs),
    /// Check (and with --install, install) the host tools the phases need
    Doctor(doctor::DoctorArgs),
    /// Build the GCC + binutils + musl cross toolchains
    Toolchain(toolchain_cmd::ToolchainArgs),
    /// Build the Linux kernels (bzImage per arch)
    Kernel(kernel_cmd::KernelArgs),
    /// Build the fully static Node.js (and the toolchain it needs)
    Node(node_cmd::NodeArgs),
    /// Build the images: toolchain, node, kernel and initramfs per arch
    Image(image::ImageArgs),
    /// Write the NodeOS initramfs (/dev/console + /init) around any static init
    Initramfs(initramfs_cmd::InitramfsArgs),
    /// Boot each image in QEMU and check Node over the serial console
    QemuTest(guest_config::BootArgs),
    /// Run Node's own test suite inside the booted guest; -j/--jobs: tests at once [default: 2]
    NodeTest(node_test::NodeTestArgs),
    /// Boot one image in QEMU with the console on this terminal (quit: Ctrl-A x)
    Run(guest_config::BootArgs),
    /// Measure phases, sizes, boot time, memory floor and initramfs throughput; write BENCHMARKS.md
    Bench(bench::BenchArgs),
    /// Fault drill on a real kernel build: corrupt download, disk full, concurrent runs, SIGKILL mid-make
    Drill(drill::DrillArgs),
    /// Remove cached phase outputs and build dirs (downloads are kept)
    Clean(fetch::CleanArgs),
    /// Check every cached output against the sizes and sha256 recorded when it was published
    Verify(verify::VerifyArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's whole message: what was wrong, which arguments are
            // missing or which values are accepted, and the usage line.
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    let common = &cli.common;
    let result = match cli.command {
        Command::Fetch(a) => fetch::run(common, a),
        Command::Doctor(a) => doctor::run(common, a),
        Command::Toolchain(a) => toolchain_cmd::run(common, a),
        Command::Kernel(a) => kernel_cmd::run(common, a),
        Command::Node(a) => node_cmd::run(common, a),
        Command::Image(a) => image::run(common, a),
        Command::Initramfs(a) => initramfs_cmd::run(common, a),
        Command::QemuTest(a) => qemu_cmd::run_tests(common, a),
        Command::NodeTest(a) => node_test::run(common, a),
        Command::Run(a) => qemu_cmd::run_interactive(common, a),
        Command::Bench(a) => bench::run(common, a),
        Command::Drill(a) => drill::run(common, a),
        Command::Clean(a) => fetch::clean(common, a),
        Command::Verify(a) => verify::run(common, a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // An app's own failure: its status, as a shell would give it.
            match e.downcast_ref::<app_run::AppFailed>() {
                Some(app_run::AppFailed(status)) => ExitCode::from(status.shell_code()),
                None => ExitCode::FAILURE,
            }
        }
    }
}
