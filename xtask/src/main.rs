//! Developer automation for the Bastion workspace, run as `cargo xtask <command>`.
//!
//! * `cargo xtask ci` — the whole test suite, exactly as CI runs it: format check, clippy with
//!   warnings denied, a build of every binary, the Rust tests (nextest, or `cargo test` when
//!   nextest is missing), then the Python interop tests.
//! * `cargo xtask interop [PYTEST ARGS...]` — (re)creates the Python virtual environment in
//!   `.cache/venv` from `tests/python/requirements.txt` and runs `pytest tests/python` against the
//!   debug binaries.
//! * `cargo xtask tidy [--fix]` — the tool index in ARCHITECTURE.md against the source, and no
//!   source file under `crates/` over 1 000 lines.
//! * `cargo xtask bench fs` — installs the peer servers, generates a large deterministic file tree
//!   and compares `bastion-fs` with them and with `rg` in one run. Never part of CI.
//! * `cargo xtask bench git|shell` — `bastion-git` and `bastion-shell` against their peers.
//! * `cargo xtask bench hub` — `bastion serve` against mcp-proxy, supergateway and mcpo in front
//!   of the Node filesystem server (added latency, CPU per call), throughput with 32 clients and
//!   the memory of the hub and its children. Never part of CI.
//!
//! * `cargo xtask fuzz [TARGET] [--time 1h]` — the libFuzzer targets of `fuzz/` (all of them
//!   when no target is named), cargo-fuzz installed when missing; CPU time per target reported.
//!
//! Everything this tool downloads or generates lives under `<repo>/.cache/`.

mod bench;
mod bench_git;
mod bench_hub;
mod bench_shell;
mod ci;
mod fuzz;
mod interop;
mod tidy;
mod tree;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command-line interface of `cargo xtask`.
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", about = "Bastion developer automation", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The tasks `cargo xtask` knows.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the full CI pipeline: fmt, clippy, build, tests, interop.
    Ci,
    /// Run the Python interop tests (official MCP SDK) against the debug binaries.
    Interop {
        /// Skip `cargo build --workspace --bins` (use the binaries already built).
        #[arg(long)]
        no_build: bool,
        /// Extra arguments passed through to pytest (e.g. `-k read -x`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        pytest_args: Vec<String>,
    },
    /// Repository checks: the tool index in ARCHITECTURE.md follows the source, no source file
    /// is over 1 000 lines.
    Tidy {
        /// Rewrite the tool index instead of failing on it.
        #[arg(long)]
        fix: bool,
    },
    /// Run the fuzz targets of `fuzz/` (seeds in `fuzz/corpus/TARGET`).
    Fuzz {
        /// The target (`path_resolve`, `command_rules`, ...); every target when omitted.
        target: Option<String>,
        /// How long each target runs: 90, 20s, 5m, 1h.
        #[arg(long, default_value = "5m", value_parser = fuzz::parse_time)]
        time: std::time::Duration,
        /// libFuzzer sanitizer: none (default; the code under test is safe Rust) or address.
        #[arg(long, default_value = "none")]
        sanitizer: String,
    },
    /// Benchmarks against the peer servers (never run in CI).
    Bench {
        #[command(subcommand)]
        target: bench::Target,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ci => ci::run(),
        Command::Interop { no_build, pytest_args } => {
            let build = if no_build { interop::Build::AlreadyDone } else { interop::Build::Yes };
            interop::run(&pytest_args, build)
        }
        Command::Tidy { fix } => tidy::run(fix),
        Command::Fuzz { target, time, sanitizer } => fuzz::run(&fuzz::Options { target, time, sanitizer }),
        Command::Bench { target } => bench::run(&target),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
