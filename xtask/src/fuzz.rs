//! `cargo xtask fuzz TARGET --time 1h`: the libFuzzer targets of `fuzz/` (a workspace of its
//! own), with `cargo-fuzz` installed when missing, on the machine's stable toolchain.
//!
//! cargo-fuzz passes nightly-only flags (`-Zsanitizer`, `-Cpasses=sancov-module`, ...);
//! `RUSTC_BOOTSTRAP=1` lets the stable compiler accept them, so no second toolchain is needed.
//! The targets are built without a sanitizer by default: the code under test is safe Rust (the
//! workspace denies `unsafe` outside one syscall module), so AddressSanitizer mostly costs
//! speed; `--sanitizer address` turns it on. Debug assertions and overflow checks are always on.
//!
//! The committed seeds are `fuzz/corpus/TARGET`; what a run discovers goes to
//! `.cache/fuzz/corpus/TARGET` (libFuzzer writes new inputs to the first corpus directory), so
//! long runs do not grow the repository. Crashes land in `fuzz/artifacts/TARGET/`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util::{cache_dir, cargo, display, fmt_duration, repo_root};

/// How long each target runs in CI (`cargo xtask ci`, step `fuzz`).
pub const CI_TIME: Duration = Duration::from_secs(20);

/// Options of `cargo xtask fuzz`.
#[derive(Debug)]
pub struct Options {
    /// The target, or every target when `None`.
    pub target: Option<String>,
    /// How long each target runs.
    pub time: Duration,
    /// The sanitizer (`none`, `address`, ...).
    pub sanitizer: String,
}

/// Parses `90`, `20s`, `5m`, `1h` into a duration.
pub fn parse_time(s: &str) -> Result<Duration, String> {
    let (digits, unit) = s.trim().split_at(s.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(s.trim().len()));
    let n: u64 = digits.parse().map_err(|_| format!("'{s}' is not a duration such as 90, 20s, 5m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("'{s}': unit must be s, m or h")),
    };
    if secs == 0 {
        return Err("the time must be at least one second".into());
    }
    Ok(Duration::from_secs(secs))
}

/// Builds and runs the targets, each for `options.time`, then prints CPU time and executions.
pub fn run(options: &Options) -> Result<()> {
    ensure_cargo_fuzz()?;
    let all = targets()?;
    let chosen: Vec<String> = match &options.target {
        Some(t) if all.contains(t) => vec![t.clone()],
        Some(t) => bail!("no fuzz target '{t}'; targets: {}", all.join(", ")),
        None => all,
    };
    let mut build = fuzz_command("build", &options.sanitizer);
    crate::util::run(&mut build)?;
    let mut summary = vec![];
    for target in &chosen {
        summary.push((target.clone(), run_one(target, options)?));
    }
    eprintln!("\nxtask: fuzz summary");
    for (target, (wall, cpu)) in summary {
        eprintln!("xtask:   {target:<18} {:>9} wall {:>9} CPU  no crash", fmt_duration(wall), fmt_duration(cpu));
    }
    Ok(())
}

/// The CI step: every target for [`CI_TIME`].
pub fn ci() -> Result<()> {
    run(&Options { target: None, time: CI_TIME, sanitizer: "none".into() })
}

/// `cargo fuzz SUBCOMMAND` with the flags every invocation shares (so `run` reuses `build`'s
/// artifacts).
fn fuzz_command(subcommand: &str, sanitizer: &str) -> Command {
    let mut cmd = cargo();
    cmd.env("RUSTC_BOOTSTRAP", "1").args(["fuzz", subcommand, "--sanitizer", sanitizer, "--debug-assertions"]);
    // `cargo run` gives xtask its own package's variables; ring's build script declares
    // `rerun-if-env-changed` on `CARGO_MANIFEST_DIR` and `CARGO_PKG_*`, so passing them on would
    // rebuild ring and everything above it whenever xtask and a plain `cargo fuzz` alternate.
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n.starts_with("CARGO_PKG_")
            || n.starts_with("CARGO_MANIFEST_")
            || matches!(&*n, "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE")
        {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// One target for `options.time`; returns its wall and CPU time.
fn run_one(target: &str, options: &Options) -> Result<(Duration, Duration)> {
    let seeds = repo_root().join("fuzz/corpus").join(target);
    let found = cache_dir().join("fuzz/corpus").join(target);
    for dir in [&seeds, &found] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut cmd = fuzz_command("run", &options.sanitizer);
    cmd.arg(target).arg(&found).arg(&seeds).args([
        "--",
        &format!("-max_total_time={}", options.time.as_secs()),
        // A slow input is a finding too (a grammar that backtracks, a lock held too long).
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
    ]);
    let shown = display(&cmd);
    eprintln!("\nxtask: $ {shown}");
    let cpu0 = children_cpu();
    let t0 = Instant::now();
    let status = cmd.status().with_context(|| format!("could not start `{shown}`"))?;
    let (wall, cpu) = (t0.elapsed(), children_cpu().saturating_sub(cpu0));
    if !status.success() {
        bail!(
            "fuzz target {target} failed ({status}) after {}: the input is in fuzz/artifacts/{target}/; \
             reproduce with `RUSTC_BOOTSTRAP=1 cargo fuzz run {target} -s {} -a fuzz/artifacts/{target}/FILE`",
            fmt_duration(wall),
            options.sanitizer
        );
    }
    Ok((wall, cpu))
}

/// The targets `fuzz/Cargo.toml` declares.
fn targets() -> Result<Vec<String>> {
    let manifest: PathBuf = repo_root().join("fuzz/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let names: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "bastion-fuzz")
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        bail!("{} declares no fuzz targets", manifest.display());
    }
    Ok(names)
}

/// Installs cargo-fuzz when `cargo fuzz` does not run.
fn ensure_cargo_fuzz() -> Result<()> {
    if crate::util::succeeds(cargo().args(["fuzz", "--version"])) {
        return Ok(());
    }
    eprintln!("xtask: cargo-fuzz is missing; installing it");
    crate::util::run(cargo().args(["install", "cargo-fuzz", "--locked"]))
}

/// User plus system CPU time of this process's waited-for children (`/proc/self/stat` fields
/// `cutime` and `cstime`, in clock ticks of 1/100 s on Linux).
fn children_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Duration::ZERO };
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis
    // start at field 3, so cutime (16) and cstime (17) are the 14th and 15th after it.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest.split_whitespace().skip(13).take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_time("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_time("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_time("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_time("1d").is_err());
        assert!(parse_time("0").is_err());
        assert!(parse_time("h").is_err());
    }

    #[test]
    fn the_manifest_declares_targets() {
        let t = targets().unwrap();
        assert!(t.contains(&"path_resolve".to_owned()), "{t:?}");
        assert!(!t.contains(&"bastion-fuzz".to_owned()));
    }
}
