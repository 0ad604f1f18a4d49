//! `cargo xtask bench context`: what each server's tool definitions cost a model — the bytes of
//! `tools/list` (and bytes/4 as tokens) for bastion's built-in servers, the hub in each tool
//! search mode, and the reference servers (`@modelcontextprotocol/server-filesystem`,
//! `mcp-server-git`, Desktop Commander), measured by `bench/context_cost.py` through the official
//! MCP Python SDK in one run. The sizes do not depend on the build profile, so the debug
//! `bastion` is measured.

use std::process::Command;

use anyhow::{Context, Result};
use clap::Args;

use crate::bench::install_npm_peers;
use crate::interop::{ensure_venv, target_dir};
use crate::util::{cache_dir, cargo, repo_root, run as sh};

/// Options of `cargo xtask bench context`.
#[derive(Debug, Args)]
pub struct ContextArgs {
    /// Do not build; use whatever `target/debug/bastion` exists.
    #[arg(long)]
    no_build: bool,
}

/// Runs the measurement and prints the Markdown table.
pub fn run(args: &ContextArgs) -> Result<()> {
    let peers = cache_dir().join("peers");
    install_npm_peers(&peers);
    let git_peer = crate::bench_git::install_peer();
    if !args.no_build {
        sh(cargo().args(["build", "-p", "bastion-hub", "--bin", "bastion"]))?;
    }
    let python = ensure_venv()?;
    let modules = peers.join("node_modules");
    let mut cmd = Command::new(python);
    cmd.current_dir(repo_root())
        .arg(repo_root().join("bench").join("context_cost.py"))
        .arg("--bastion")
        .arg(target_dir().join("debug").join("bastion"));
    let fs_node = modules.join("@modelcontextprotocol/server-filesystem/dist/index.js");
    if fs_node.is_file() {
        cmd.arg("--fs-node").arg(fs_node);
    }
    let dc = modules.join("@wonderwhy-er/desktop-commander/dist/index.js");
    if dc.is_file() {
        cmd.arg("--dc").arg(dc);
    }
    if let Some(p) = git_peer {
        cmd.arg("--peer-python").arg(p);
    }
    sh(&mut cmd).context("the measurement driver bench/context_cost.py failed")
}
