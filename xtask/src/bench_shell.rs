//! `cargo xtask bench shell`: bastion-shell's `run_command` against Desktop Commander's
//! `start_process` (npm), and the sandbox's own cost (a spawn with and without it), in one run.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use clap::Args;

use crate::bench::install_npm_peers;
use crate::interop::{ensure_venv, target_dir};
use crate::util::{cache_dir, cargo, repo_root, run as sh};

/// Options of `cargo xtask bench shell`.
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Timed calls per command and server (after warm-up).
    #[arg(long, default_value_t = 200)]
    calls: u32,
    /// Spawns per sandbox configuration for the sandbox's own cost.
    #[arg(long, default_value_t = 300)]
    spawns: u32,
    /// Do not build; use whatever `target/release/bastion-shell` exists.
    #[arg(long)]
    no_build: bool,
}

/// Runs the benchmark.
pub fn run(args: &ShellArgs) -> Result<()> {
    let peers_dir = cache_dir().join("peers");
    install_npm_peers(&peers_dir);
    let bastion: PathBuf = target_dir().join("release").join("bastion-shell");
    if args.no_build {
        eprintln!("xtask: not building; using {}", bastion.display());
    } else {
        sh(cargo().args(["build", "--release", "-p", "bastion-shell", "--bin", "bastion-shell"]))?;
    }
    let python = ensure_venv()?;
    let out_dir = cache_dir().join("bench-results");
    fs::create_dir_all(&out_dir)?;
    let work = cache_dir().join("bench-shell");
    fs::create_dir_all(&work)?;
    let mut cmd = Command::new(python);
    cmd.current_dir(repo_root())
        .arg(repo_root().join("bench").join("shell_bench.py"))
        .arg("--bastion")
        .arg(&bastion)
        .arg("--peers-dir")
        .arg(&peers_dir)
        .arg("--work")
        .arg(&work)
        .arg("--out")
        .arg(&out_dir)
        .args(["--calls", &args.calls.to_string()])
        .args(["--spawns", &args.spawns.to_string()]);
    sh(&mut cmd).context("the benchmark driver bench/shell_bench.py failed")?;
    eprintln!("xtask: results: {} (shell.md, shell.json)", out_dir.display());
    Ok(())
}
