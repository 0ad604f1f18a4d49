//! `cargo xtask ci`: the whole test suite, in order, stopping at the first failure.
//!
//! Steps: `provision` (the system packages the tests run, see `provision.rs`), `fmt`, `clippy`,
//! `build`, `test` (nextest: unit and integration tests, the latter through `bastion-testkit`),
//! `doc` (the doc examples: nextest does not run doctests), `install` (`cargo install`, the
//! units rated, the AppArmor profile parsed), `system` and `ops` (a Debian root booted under
//! systemd-nspawn: the units under a booted systemd, and bastion-host against a real systemd),
//! `package` (one release build; the `.deb` and the `.mcpb` from it), `fuzz`, `interop` (the
//! Python end-to-end tests with the official SDK, except the slow tier and the replicas), `conformance` (the
//! official MCP conformance suite against the hub, see `conformance.rs`) and `slow` (the load and
//! soak tests, pytest marker `slow`) and `replicas` (three hubs on one PostgreSQL behind a load
//! balancer, see `replicas.rs`). Each step's duration is printed as it ends and again in
//! the summary.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::util::{cargo, fmt_duration, run as sh};
use crate::{interop, provision};

/// One CI step: a name for the summary and the work it does.
struct Step {
    name: &'static str,
    action: fn() -> Result<()>,
}

/// Runs every step (see the module comment), then prints a timing summary.
pub fn run() -> Result<()> {
    let steps = [
        Step { name: "provision", action: provision::run },
        Step { name: "fmt", action: || sh(cargo().args(["fmt", "--all", "--", "--check"])) },
        Step { name: "tidy", action: || crate::tidy::run(false) },
        Step {
            name: "clippy",
            action: || sh(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])),
        },
        Step { name: "build", action: build_bins },
        Step { name: "test", action: rust_tests },
        Step { name: "doc", action: || sh(with_bins(cargo().args(["test", "--workspace", "--doc"]))) },
        Step { name: "install", action: crate::dist::install_check },
        Step { name: "system", action: || crate::system::run_system(false) },
        Step { name: "ops", action: crate::ops::run_ops },
        // One release build (fat LTO: minutes), then the .deb and the Claude Desktop bundle.
        Step { name: "package", action: crate::dist::package_ci },
        Step { name: "fuzz", action: crate::fuzz::ci },
        Step { name: "deploy", action: crate::deploy::run },
        Step {
            name: "interop",
            // The binaries were built by the `build` step above.
            action: || interop::run(&["-m".into(), "not slow and not replicas".into()], interop::Build::AlreadyDone),
        },
        Step { name: "conformance", action: || crate::conformance::run(interop::Build::AlreadyDone) },
        Step { name: "fleet", action: crate::fleet::run },
        Step { name: "slow", action: || interop::run(&["-m".into(), "slow".into()], interop::Build::AlreadyDone) },
        Step { name: "replicas", action: crate::replicas::run },
    ];

    let started = Instant::now();
    let mut timings: Vec<(&str, Duration, bool)> = Vec::new();
    for step in &steps {
        eprintln!("\nxtask: ==> ci step `{}`", step.name);
        let t0 = Instant::now();
        let outcome = (step.action)();
        let took = t0.elapsed();
        let mark = if outcome.is_ok() { "ok" } else { "FAILED" };
        eprintln!("xtask: <== ci step `{}` {mark} in {}", step.name, fmt_duration(took));
        timings.push((step.name, took, outcome.is_ok()));
        if let Err(err) = outcome {
            print_summary(&timings, started.elapsed());
            bail!("ci step `{}` failed: {err:#}", step.name);
        }
    }
    print_summary(&timings, started.elapsed());
    Ok(())
}

/// `cargo build --workspace --bins`.
pub fn build_bins() -> Result<()> {
    sh(cargo().args(["build", "--workspace", "--bins"]))
}

/// `cargo nextest run --workspace`, or `cargo test --workspace` when nextest is not installed.
fn rust_tests() -> Result<()> {
    match nextest_missing_reason() {
        None => sh(with_bins(cargo().args(["nextest", "run", "--workspace"]))),
        Some(reason) => {
            eprintln!("xtask: cargo-nextest is unavailable ({reason}); falling back to `cargo test`");
            sh(with_bins(cargo().args(["test", "--workspace", "--all-targets"])))
        }
    }
}

/// Points the test kit at the binaries the `build` step made (`BASTION_BIN_DIR`), so that no test
/// process runs a cargo build of its own.
fn with_bins(cmd: &mut Command) -> &mut Command {
    cmd.env("BASTION_BIN_DIR", interop::target_dir().join("debug"))
}

/// Why `cargo nextest` cannot be used, or `None` if it works.
fn nextest_missing_reason() -> Option<String> {
    match cargo().args(["nextest", "--version"]).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let first = stderr.lines().next().unwrap_or("").trim();
            Some(format!("`cargo nextest --version` exited with {}: {first}", out.status))
        }
        Err(err) => Some(format!("could not run cargo: {err}")),
    }
}

fn print_summary(timings: &[(&str, Duration, bool)], total: Duration) {
    eprintln!("\nxtask: ci timing summary");
    for (name, took, ok) in timings {
        let mark = if *ok { "ok" } else { "FAILED" };
        eprintln!("  {name:<10} {:>9}  {mark}", fmt_duration(*took));
    }
    eprintln!("  {:<10} {:>9}", "total", fmt_duration(total));
}
