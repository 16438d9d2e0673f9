//! The flags that put a user's app into the image (`--app`, `--entry`,
//! `--app-max-size`) and forward host ports to the guest (`-p`), shared by
//! `image`, `qemu-test`, `run` and `bench`.

use anyhow::Result;
use clap::Args;
use initramfs::app::{human, parse_size, DEFAULT_MAX_SIZE};
use initramfs::{App, AppOptions};
use qemu_tests::PortForward;
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct AppArgs {
    /// Boot this Node app: DIR goes to /app in the initramfs and node runs
    /// its entry file as PID 1 (pure JavaScript only: no *.node addons)
    #[arg(long, value_name = "DIR")]
    pub app: Option<PathBuf>,
    /// The file node runs, relative to DIR [default: package.json's "main",
    /// else index.js]
    #[arg(long, value_name = "FILE", requires = "app")]
    pub entry: Option<String>,
    /// Refuse an app whose files add up to more than this (bytes, or with
    /// K, M, G) [default: 64M]
    #[arg(long, value_name = "SIZE", value_parser = parse_size, requires = "app")]
    pub app_max_size: Option<u64>,
}

impl AppArgs {
    /// Reads and checks the app, if one was given: done before any build
    /// starts, so a refused app costs no time.
    pub fn load(&self) -> Result<Option<App>> {
        let Some(dir) = &self.app else {
            return Ok(None);
        };
        let opts = AppOptions {
            entry: self.entry.clone(),
            max_size: self.app_max_size.unwrap_or(DEFAULT_MAX_SIZE),
        };
        Ok(Some(App::scan(dir, &opts)?))
    }
}

#[derive(Args, Clone, Debug, Default)]
pub struct NetArgs {
    /// Forward 127.0.0.1:HOST on this machine to port GUEST in the guest
    /// (TCP; repeatable), e.g. -p 8080:80
    #[arg(short = 'p', long = "publish", value_name = "HOST:GUEST")]
    pub publish: Vec<PortForward>,
}

/// One line for the app, for summaries: `DIR (entry /app/x.js, 12K)`.
pub fn describe(app: &App) -> String {
    format!(
        "{} (runs {}, {})",
        app.dir().display(),
        app.guest_entry(),
        human(app.size())
    )
}
