//! `cargo xtask ci`: the whole test suite, in order, stopping at the first failure.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::interop;
use crate::util::{cargo, fmt_duration, run as sh};

/// One CI step: a name for the summary and the work it does.
struct Step {
    name: &'static str,
    action: fn() -> Result<()>,
}

/// Runs fmt, clippy, build, the Rust tests and the interop tests, then prints a timing summary.
pub fn run() -> Result<()> {
    let steps = [
        Step { name: "fmt", action: || sh(cargo().args(["fmt", "--all", "--", "--check"])) },
        Step { name: "tidy", action: || crate::tidy::run(false) },
        Step {
            name: "clippy",
            action: || sh(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])),
        },
        Step { name: "build", action: build_bins },
        Step { name: "test", action: rust_tests },
        Step { name: "fuzz", action: crate::fuzz::ci },
        Step {
            name: "interop",
            // The binaries were built by the `build` step just above.
            action: || interop::run(&[], interop::Build::AlreadyDone),
        },
    ];

    let started = Instant::now();
    let mut timings: Vec<(&str, Duration, bool)> = Vec::new();
    for step in &steps {
        eprintln!("\nxtask: ==> ci step `{}`", step.name);
        let t0 = Instant::now();
        let outcome = (step.action)();
        timings.push((step.name, t0.elapsed(), outcome.is_ok()));
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
        None => sh(cargo().args(["nextest", "run", "--workspace"])),
        Some(reason) => {
            eprintln!("xtask: cargo-nextest is unavailable ({reason}); falling back to `cargo test`");
            sh(cargo().args(["test", "--workspace"]))
        }
    }
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
        eprintln!("  {name:<8} {:>9}  {mark}", fmt_duration(*took));
    }
    eprintln!("  {:<8} {:>9}", "total", fmt_duration(total));
}
