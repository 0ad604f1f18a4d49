//! `cargo xtask bench shell` (not written yet).

use anyhow::{Result, bail};
use clap::Args;

/// Options of `cargo xtask bench shell`.
#[derive(Debug, Args)]
pub struct ShellArgs {}

/// Runs the benchmark.
pub fn run(_args: &ShellArgs) -> Result<()> {
    bail!("cargo xtask bench shell is not written yet")
}
