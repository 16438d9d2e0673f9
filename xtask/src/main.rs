//! `cargo xtask`: parses flags and dispatches; each command lives in its
//! own module.

mod app_args;
mod app_run;
mod bench;
mod doctor;
mod drill;
mod fetch;
mod image;
mod initramfs_cmd;
mod kernel_cmd;
mod node_cmd;
mod qemu_cmd;
mod toolchain_cmd;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use nodeos_build::{Arch, Env};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build NodeOS: a Linux whose whole userspace is a static Node.js",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Flags every command takes.
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

fn parse_arch_list(s: &str) -> Result<Vec<Arch>, String> {
    nodeos_build::arch::parse_list(s)
}

impl Common {
    pub fn arches(&self) -> Vec<Arch> {
        let mut v: Vec<Arch> = self.arch.iter().flatten().copied().collect();
        if v.is_empty() {
            v = Arch::ALL.to_vec();
        }
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
    QemuTest(qemu_cmd::BootArgs),
    /// Boot one image in QEMU with the console on this terminal (quit: Ctrl-A x)
    Run(qemu_cmd::BootArgs),
    /// Measure phases, sizes, boot time, memory floor and initramfs throughput; write BENCHMARKS.md
    Bench(bench::BenchArgs),
    /// Fault drill on a real kernel build: corrupt download, disk full, concurrent runs, SIGKILL mid-make
    Drill(drill::DrillArgs),
    /// Remove cached phase outputs and build dirs (downloads are kept)
    Clean(fetch::CleanArgs),
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
            // One line: what was wrong and what is accepted.
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("cargo xtask: {first} (see `cargo xtask --help`)");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Fetch(a) => fetch::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Toolchain(a) => toolchain_cmd::run(a),
        Command::Kernel(a) => kernel_cmd::run(a),
        Command::Node(a) => node_cmd::run(a),
        Command::Image(a) => image::run(a),
        Command::Initramfs(a) => initramfs_cmd::run(a),
        Command::QemuTest(a) => qemu_cmd::run_tests(a),
        Command::Run(a) => qemu_cmd::run_interactive(a),
        Command::Bench(a) => bench::run(a),
        Command::Drill(a) => drill::run(a),
        Command::Clean(a) => fetch::clean(a),
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
