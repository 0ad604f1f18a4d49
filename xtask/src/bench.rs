//! `cargo xtask bench ...`: benchmarks against the peer servers, in one run on one machine.
//!
//! Benchmarks are never part of CI. They install what they need into `<repo>/.cache` (peer
//! servers with npm, `ripgrep` and `hyperfine` with apt-get), build the release binaries and hand
//! the measuring to a Python driver in `bench/` that speaks MCP through the official SDK.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::interop::{ensure_venv, target_dir};
use crate::tree;
use crate::util::{apt_install, cache_dir, cargo, have, repo_root, run as sh};

/// What to benchmark.
#[derive(Debug, Subcommand)]
pub enum Target {
    /// bastion-fs against @modelcontextprotocol/server-filesystem, desktop-commander and rg.
    Fs(FsArgs),
    /// bastion-git against mcp-server-git (PyPI) and the git CLI.
    Git(crate::bench_git::GitArgs),
    /// bastion-shell against Desktop Commander's start_process, and the sandbox's own cost.
    Shell(crate::bench_shell::ShellArgs),
    /// The hub (`bastion serve`) against mcp-proxy, supergateway and mcpo in front of the Node
    /// filesystem server: added latency, CPU per call, throughput with 32 clients, memory.
    Hub(crate::bench_hub::HubArgs),
    /// The bytes (and ~tokens) of `tools/list`: the built-in servers, the hub in each tool search
    /// mode, and the reference fs and git servers and Desktop Commander.
    Context(crate::bench_context::ContextArgs),
}

/// Options of `cargo xtask bench fs`.
#[derive(Debug, Args)]
pub struct FsArgs {
    /// Spawns per server for the start-up time (median is reported).
    #[arg(long, default_value_t = 10)]
    spawns: u32,
    /// Minimum calls per small operation (read, list, info) for latency and CPU.
    #[arg(long, default_value_t = 300)]
    calls: u32,
    /// Minimum seconds spent per small operation (more calls are made until reached).
    #[arg(long, default_value_t = 2.0)]
    min_seconds: f64,
    /// Runs per search (name and content) per server and for rg.
    #[arg(long, default_value_t = 5)]
    search_runs: u32,
    /// Only these servers (comma-separated: bastion-fs, server-filesystem, desktop-commander).
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
    /// Do not run `cargo build --release`; use whatever `target/release/bastion-fs` exists.
    #[arg(long)]
    no_build: bool,
    /// Benchmark this bastion-fs binary instead of `target/release/bastion-fs` (implies
    /// `--no-build`).
    #[arg(long)]
    bastion: Option<PathBuf>,
}

/// npm packages of the peers, pinned to the versions in `shared/reference/peers.md`.
const NPM_PEERS: [(&str, &str); 2] =
    [("@modelcontextprotocol/server-filesystem", "2026.8.31"), ("@wonderwhy-er/desktop-commander", "0.2.52")];

/// Runs the benchmark for `target`.
pub fn run(target: &Target) -> Result<()> {
    match target {
        Target::Fs(args) => bench_fs(args),
        Target::Git(args) => crate::bench_git::run(args),
        Target::Shell(args) => crate::bench_shell::run(args),
        Target::Hub(args) => crate::bench_hub::run(args),
        Target::Context(args) => crate::bench_context::run(args),
    }
}

fn bench_fs(args: &FsArgs) -> Result<()> {
    ensure_cli_tools();
    let peers_dir = cache_dir().join("peers");
    install_npm_peers(&peers_dir);

    let bastion = match &args.bastion {
        Some(path) => std::env::current_dir()?.join(path),
        None => target_dir().join("release").join("bastion-fs"),
    };
    if args.no_build || args.bastion.is_some() {
        eprintln!("xtask: not building; using {}", bastion.display());
    } else {
        sh(cargo().args(["build", "--release", "--workspace", "--bins"]))?;
    }

    let python = ensure_venv()?;
    let tree_root = cache_dir().join("bench-tree");
    tree::prepare_parent(&tree_root)?;
    let manifest = tree::ensure(&tree_root)?;

    let out_dir = cache_dir().join("bench-results");
    fs::create_dir_all(&out_dir)?;
    let driver = repo_root().join("bench").join("fs_bench.py");
    let mut cmd = Command::new(python);
    cmd.current_dir(repo_root())
        .arg(&driver)
        .arg("--tree")
        .arg(&tree_root)
        .arg("--manifest")
        .arg(&manifest)
        .arg("--peers-dir")
        .arg(&peers_dir)
        .arg("--bastion")
        .arg(&bastion)
        .arg("--out")
        .arg(&out_dir)
        .args(["--spawns", &args.spawns.to_string()])
        .args(["--calls", &args.calls.to_string()])
        .args(["--min-seconds", &args.min_seconds.to_string()])
        .args(["--search-runs", &args.search_runs.to_string()]);
    if !args.servers.is_empty() {
        cmd.args(["--servers", &args.servers.join(",")]);
    }
    sh(&mut cmd).context("the benchmark driver bench/fs_bench.py failed")?;
    eprintln!("xtask: results: {} (fs.md, fs.json)", out_dir.display());
    Ok(())
}

/// `rg` and `hyperfine` are the floors the servers are compared with; install them if missing.
/// A failure is reported, not fatal: the driver then times `rg` itself or marks it n/a.
pub(crate) fn ensure_cli_tools() {
    let missing: Vec<&str> = [("rg", "ripgrep"), ("hyperfine", "hyperfine")]
        .into_iter()
        .filter(|(program, _)| !have(program))
        .map(|(_, package)| package)
        .collect();
    if let Err(err) = apt_install(&missing) {
        eprintln!("xtask: warning: could not install {missing:?}: {err:#}");
    }
}

/// Installs the npm peers into `dir` unless the pinned versions are already there. Failures are
/// reported and left for the driver to show as "n/a".
pub(crate) fn install_npm_peers(dir: &Path) {
    install_npm_packages(dir, &NPM_PEERS);
}

/// Installs `(package, version)` pairs into `dir` with npm, skipping those already there.
/// Failures are reported, not fatal.
pub(crate) fn install_npm_packages(dir: &Path, packages: &[(&str, &str)]) {
    if !have("npm") || !have("node") {
        eprintln!("xtask: warning: node/npm not found; the npm peers will be reported as n/a");
        return;
    }
    if let Err(err) = fs::create_dir_all(dir).and_then(|()| {
        let manifest = dir.join("package.json");
        if manifest.exists() {
            Ok(())
        } else {
            fs::write(manifest, "{\"name\": \"bastion-bench-peers\", \"private\": true}\n")
        }
    }) {
        eprintln!("xtask: warning: cannot prepare {}: {err}", dir.display());
        return;
    }
    for &(package, version) in packages {
        if installed_version(dir, package).as_deref() == Some(version) {
            eprintln!("xtask: peer {package}@{version} is installed");
            continue;
        }
        eprintln!("xtask: installing peer {package}@{version} into {}", dir.display());
        let result = sh(Command::new("npm")
            .current_dir(dir)
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .arg(format!("{package}@{version}"))
            // desktop-commander pulls puppeteer, which would otherwise download a browser.
            .env("PUPPETEER_SKIP_DOWNLOAD", "1"));
        if let Err(err) = result {
            eprintln!("xtask: warning: {package} did not install ({err:#}); it will be n/a");
        }
    }
}

/// The version in `<dir>/node_modules/<package>/package.json`, if installed.
pub(crate) fn installed_version(dir: &Path, package: &str) -> Option<String> {
    let path: PathBuf = dir.join("node_modules").join(package).join("package.json");
    let text = fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["version"].as_str().map(str::to_owned)
}
