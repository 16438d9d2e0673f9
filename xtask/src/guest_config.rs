//! What booting an image in QEMU takes: the flags of the commands that
//! boot one (`qemu-test`, `run`) and the QEMU settings made from an image.

use crate::image;
use clap::Args;
use nodeos_build::{Arch, Env};
use qemu_tests::{Network, PortForward, QemuConfig};
use std::path::PathBuf;

/// Flags of the commands that boot images (`qemu-test`, `run`).
#[derive(Args)]
pub struct BootArgs {
    /// Use this bzImage instead of building the kernel
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Guest memory in MiB
    #[arg(long, default_value_t = 512)]
    pub memory: u32,
    #[command(flatten)]
    pub app: crate::app_args::AppArgs,
    #[command(flatten)]
    pub net: crate::app_args::NetArgs,
    #[command(flatten)]
    pub node: crate::NodeSel,
}

/// QEMU settings for one image; the console log goes beside the phase logs.
/// The guest always has a NIC (configured by the kernel before init runs),
/// with `forwards` from the host; an app's entry goes to node.
pub fn qemu_config(
    env: &Env,
    arch: Arch,
    img: &image::Image,
    memory: u32,
    forwards: &[PortForward],
) -> QemuConfig {
    let mut cfg = QemuConfig::new(
        arch,
        &img.bzimage,
        &img.initramfs,
        &env.project_root.join("target"),
    );
    cfg.log_dir = env.log_dir(Some(arch));
    cfg.memory_mib = memory;
    cfg.network = Some(Network::with_forwards(forwards.to_vec()));
    cfg.init_args = img.init_args.clone();
    cfg
}
