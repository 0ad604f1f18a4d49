//! Developer automation for the Bastion workspace, run as `cargo xtask <command>`.
//!
//! * `cargo xtask ci` — the whole test suite, exactly as CI runs it: provisioning of the programs
//!   the tests run, format check, clippy with warnings denied, a build of every binary, the Rust
//!   tests (nextest, or `cargo test` when nextest is missing), the doc examples, the Python interop
//!   tests, the MCP conformance suite, then the slow tier (pytest marker `slow`: load and soak
//!   tests).
//! * `cargo xtask provision` — installs the Debian packages the tests run (as root or with
//!   passwordless sudo); under CI a prerequisite it cannot install fails the run.
//! * `cargo xtask interop [PYTEST ARGS...]` — (re)creates the Python virtual environment in
//!   `.cache/venv` from `tests/python/requirements.txt` and runs `pytest tests/python` against the
//!   debug binaries.
//! * `cargo xtask conformance [--no-build]` — the official `@modelcontextprotocol/conformance`
//!   suite (and Node 22, both pinned, from npm into `.cache/conformance`) against the hub:
//!   stateless and `--stateful`, the 2026-07-28 and 2025-11-25 requirement sets, `/mcp` and
//!   `/`, and the `authorization` command against its OAuth server; failures outside
//!   `tests/conformance/expected-failures.yml` fail it (CI's `conformance` step).
//! * `cargo xtask tidy [--fix]` — the tool index in ARCHITECTURE.md against the source, and no
//!   source file under `crates/` over 1 000 lines.
//! * `cargo xtask bench fs` — installs the peer servers, generates a large deterministic file tree
//!   and compares `bastion-fs` with them and with `rg` in one run. Never part of CI.
//! * `cargo xtask bench git|shell` — `bastion-git` and `bastion-shell` against their peers.
//! * `cargo xtask bench context` — the bytes of `tools/list`, bastion's and the peers'.
//! * `cargo xtask bench hub` — `bastion serve` against mcp-proxy, supergateway and mcpo in front
//!   of the Node filesystem server (added latency, CPU per call), throughput with 32 clients and
//!   the memory of the hub and its children. Never part of CI.
//!
//! * `cargo xtask dist [--test] [--target aarch64-unknown-linux-gnu]` — the `.deb` (cargo-deb)
//!   with the binary, man pages, completions, systemd units, AppArmor profile and docs; `--test`
//!   checks its contents and lintian, and installs and purges it in throw-away Debian 12 and 13
//!   roots (a cross-built package: its binary runs under qemu-user instead).
//! * `cargo xtask package` — CI's `package` step: one release build, then `dist --test` and
//!   `mcpb` from it.
//! * `cargo xtask install-check` — `cargo install` into a temporary root, completions, man
//!   pages, and the systemd units verified and rated (CI's `install` step).
//! * `cargo xtask system [--release]` — boots a Debian root with `systemd-nspawn -b` and runs
//!   the hub as the hardened `bastion@.service` (CI's `system` step).
//! * `cargo xtask ops` — boots the same root with a test service and drives `bastion-host`
//!   inside it: units, logs, ports, an approved restart, refusals (CI's `ops` step).
//! * `cargo xtask mcpb [--aarch64]` — the Claude Desktop bundle, validated, packed and started.
//! * `cargo xtask deploy` — the compose file, Caddyfile, Dockerfile and Helm chart of `deploy/`
//!   checked without a container engine or cluster (CI's `deploy` step; see `deploy.rs`);
//!   `--smoke` runs the image and the compose recipe under a Docker daemon started here (opt-in).
//! * `cargo xtask fuzz [TARGET] [--time 1h]` — the libFuzzer targets of `fuzz/` (all of them
//!   when no target is named), cargo-fuzz installed when missing; CPU time per target reported.
//!
//! Everything this tool downloads or generates lives under `<repo>/.cache/`.

mod bench;
mod bench_context;
mod bench_git;
mod bench_hub;
mod bench_replicas;
mod bench_shell;
mod ci;
mod conformance;
mod deploy;
mod dist;
mod fleet;
mod fuzz;
mod interop;
mod mcpb;
mod ops;
mod provision;
mod replicas;
mod system;
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
    /// Run the full CI pipeline: provision, fmt, tidy, clippy, build, test, doc, install, system,
    /// ops, package, fuzz, interop, conformance, slow.
    Ci,
    /// Install the system packages the tests need (Debian, as root or with passwordless sudo).
    Provision,
    /// Run the Python interop tests (official MCP SDK) against the debug binaries.
    Interop {
        /// Skip `cargo build --workspace --bins` (use the binaries already built).
        #[arg(long)]
        no_build: bool,
        /// Extra arguments passed through to pytest (e.g. `-k read -x`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        pytest_args: Vec<String>,
    },
    /// Run the official MCP conformance suite against the hub (stateless and stateful, both
    /// requirement sets, and the `authorization` command against its OAuth server).
    Conformance {
        /// Skip `cargo build --workspace --bins` (use the binaries already built).
        #[arg(long)]
        no_build: bool,
    },
    /// Repository checks: the tool index in ARCHITECTURE.md follows the source, no source file
    /// is over 1 000 lines.
    Tidy {
        /// Rewrite the tool index instead of failing on it.
        #[arg(long)]
        fix: bool,
    },
    /// Build the .deb in target/dist (and with --test, check and install it in a throw-away root).
    Dist {
        /// Check the package: contents, install and purge in a Debian root, the units.
        #[arg(long)]
        test: bool,
        /// Package target/release/bastion as it is (built earlier).
        #[arg(long)]
        no_build: bool,
        /// Cross-build for this Rust target (aarch64-unknown-linux-gnu: needs the rustup target
        /// and Debian's gcc-aarch64-linux-gnu; tested under qemu-user-static).
        #[arg(long)]
        target: Option<String>,
    },
    /// The .deb and the Claude Desktop bundle from one release build, checked (CI's `package` step).
    Package,
    /// cargo install into a temporary root, then check completions, man pages and the units.
    InstallCheck,
    /// Boot a Debian root under systemd-nspawn and run the hub as bastion@.service in it.
    System {
        /// Test the release binary (as the .deb ships it) instead of the debug one.
        #[arg(long)]
        release: bool,
    },
    /// Boot a Debian root under systemd-nspawn and drive bastion-host against its systemd.
    Ops,
    /// Build the Claude Desktop bundle (.mcpb) in target/dist, validated and tested.
    Mcpb {
        /// Bundle target/release/bastion as it is (built earlier).
        #[arg(long)]
        no_build: bool,
        /// Also the aarch64 bundle (a cross release build; see `dist --target`).
        #[arg(long)]
        aarch64: bool,
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
    /// Check deploy/: the compose file, the Caddyfile, the Dockerfile (hadolint) and the Helm
    /// chart (rendered by Helm's engine, validated against the Kubernetes schemas).
    Deploy {
        /// Instead, run the image and the compose recipe under a Docker daemon started here
        /// (root; a few minutes; never part of CI).
        #[arg(long)]
        smoke: bool,
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
        Command::Provision => provision::run(),
        Command::Interop { no_build, pytest_args } => {
            let build = if no_build { interop::Build::AlreadyDone } else { interop::Build::Yes };
            interop::run(&pytest_args, build)
        }
        Command::Conformance { no_build } => {
            conformance::run(if no_build { interop::Build::AlreadyDone } else { interop::Build::Yes })
        }
        Command::Tidy { fix } => tidy::run(fix),
        Command::Fuzz { target, time, sanitizer } => fuzz::run(&fuzz::Options { target, time, sanitizer }),
        Command::Bench { target } => bench::run(&target),
        Command::Dist { test, no_build, target } => dist::dist(test, !no_build, target.as_deref()),
        Command::Package => dist::package_ci(),
        Command::InstallCheck => dist::install_check(),
        Command::System { release } => system::run_system(release),
        Command::Ops => ops::run_ops(),
        Command::Deploy { smoke } => {
            if smoke {
                deploy::smoke()
            } else {
                deploy::run()
            }
        }
        Command::Mcpb { no_build, aarch64 } => mcpb::run_mcpb(!no_build, aarch64),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
