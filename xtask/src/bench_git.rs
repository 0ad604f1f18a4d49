//! `cargo xtask bench git` (not written yet).

use anyhow::{Result, bail};
use clap::Args;

/// Options of `cargo xtask bench git`.
#[derive(Debug, Args)]
pub struct GitArgs {}

/// Runs the benchmark.
pub fn run(_args: &GitArgs) -> Result<()> {
    bail!("cargo xtask bench git is not written yet")
}
