//! `cargo xtask bench git`: bastion-git against `mcp-server-git` (PyPI) and the `git` program, in
//! one run, on a generated repository of a few thousand commits.
//!
//! The peer is installed into its own virtual environment (`.cache/peers-venv`, pinned version
//! from `shared/reference/peers.md`); the repository is generated deterministically with
//! `git fast-import` into `.cache/bench-git/repo` (once; a stamp file records the recipe); the
//! measuring is done by `bench/git_bench.py` through the official MCP Python SDK.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::interop::{ensure_venv, target_dir};
use crate::util::{apt_install, cache_dir, cargo, have, repo_root, run as sh};

/// Options of `cargo xtask bench git`.
#[derive(Debug, Args)]
pub struct GitArgs {
    /// Commits in the generated repository.
    #[arg(long, default_value_t = 2500)]
    commits: u32,
    /// Timed calls per operation and server (after warm-up), and runs per `git` command.
    #[arg(long, default_value_t = 30)]
    runs: u32,
    /// Do not build; use whatever `target/release/bastion-git` exists.
    #[arg(long)]
    no_build: bool,
    /// Benchmark this bastion-git binary instead of `target/release/bastion-git` (implies
    /// `--no-build`).
    #[arg(long)]
    bastion: Option<PathBuf>,
}

/// The peer, pinned as in `shared/reference/peers.md`.
const PEER: (&str, &str) = ("mcp-server-git", "2026.10.19");

/// Bumped whenever the generated repository's recipe changes.
const RECIPE: &str = "bench-git v1";

/// Runs the benchmark.
pub fn run(args: &GitArgs) -> Result<()> {
    if !have("hyperfine")
        && let Err(err) = apt_install(&["hyperfine"])
    {
        eprintln!("xtask: warning: could not install hyperfine ({err:#}); git is timed with a loop");
    }
    let peer_python = install_peer();
    let bastion = match &args.bastion {
        Some(path) => std::env::current_dir()?.join(path),
        None => target_dir().join("release").join("bastion-git"),
    };
    if args.no_build || args.bastion.is_some() {
        eprintln!("xtask: not building; using {}", bastion.display());
    } else {
        sh(cargo().args(["build", "--release", "-p", "bastion-git", "--bin", "bastion-git"]))?;
    }
    let python = ensure_venv()?;
    let work = cache_dir().join("bench-git");
    let repo = ensure_repo(&work, args.commits)?;
    // Every server returns the whole answer: the operator raises bastion's output budget so the
    // 2 000-commit log and the big diff are measured in full, as the peer and git print them.
    let config = work.join("bastion.toml");
    fs::write(&config, "[limits]\noutput_chars = 100000000\n")?;
    let out_dir = cache_dir().join("bench-results");
    fs::create_dir_all(&out_dir)?;
    let mut cmd = Command::new(python);
    cmd.current_dir(repo_root())
        .arg(repo_root().join("bench").join("git_bench.py"))
        .arg("--repo")
        .arg(&repo)
        .arg("--bastion")
        .arg(&bastion)
        .arg("--bastion-config")
        .arg(&config)
        .arg("--out")
        .arg(&out_dir)
        .args(["--runs", &args.runs.to_string()]);
    if let Some(p) = &peer_python {
        cmd.arg("--peer-python").arg(p);
    }
    sh(&mut cmd).context("the benchmark driver bench/git_bench.py failed")?;
    eprintln!("xtask: results: {} (git.md, git.json)", out_dir.display());
    Ok(())
}

/// Installs the peer into `.cache/peers-venv`; `None` (reported as n/a) when that fails.
pub(crate) fn install_peer() -> Option<PathBuf> {
    let venv = cache_dir().join("peers-venv");
    let python = venv.join("bin").join("python");
    let (package, version) = PEER;
    let installed = Command::new(&python)
        .args(["-m", "pip", "show", package])
        .stderr(Stdio::null())
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l == format!("Version: {version}")));
    if installed {
        eprintln!("xtask: peer {package}=={version} is installed");
        return Some(python);
    }
    let result = (|| -> Result<()> {
        if !python.is_file() {
            sh(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        }
        sh(Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"])
            .arg(format!("{package}=={version}")))
    })();
    match result {
        Ok(()) => Some(python),
        Err(err) => {
            eprintln!("xtask: warning: {package} did not install ({err:#}); it will be n/a");
            None
        }
    }
}

/// Generates the repository unless the stamp says it is current. Returns its path.
fn ensure_repo(work: &Path, commits: u32) -> Result<PathBuf> {
    let repo = work.join("repo");
    let stamp = work.join("repo.stamp");
    let wanted = format!("{RECIPE} commits={commits}\n");
    if repo.join(".git").is_dir() && fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        eprintln!("xtask: bench repository {} is up to date", repo.display());
        return Ok(repo);
    }
    if repo.exists() {
        fs::remove_dir_all(&repo).with_context(|| format!("removing {}", repo.display()))?;
    }
    fs::create_dir_all(&repo)?;
    eprintln!("xtask: generating a {commits}-commit repository in {}", repo.display());
    git(&repo, &["init", "-q", "-b", "main"])?;
    let mut child = git_cmd(&repo)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .context("starting git fast-import")?;
    let stream = fast_import_stream(commits);
    child.stdin.take().context("fast-import stdin")?.write_all(stream.as_bytes())?;
    if !child.wait()?.success() {
        bail!("git fast-import failed");
    }
    git(&repo, &["checkout", "-q", "-f", "main"])?;
    git(&repo, &["config", "user.name", "Bench"])?;
    git(&repo, &["config", "user.email", "bench@example.com"])?;
    // A dirty work tree: a few edited files and an untracked one, for status and diff.
    for i in [3, 57, 111, 158, 199] {
        let path = repo.join(file_name(i));
        let mut text = fs::read_to_string(&path)?;
        text.push_str("local edit, not committed\n");
        text = text.replacen("line 5 ", "line five ", 1);
        fs::write(&path, text)?;
    }
    fs::write(repo.join("untracked.txt"), "new\n")?;
    git(&repo, &["gc", "-q"])?;
    fs::write(&stamp, wanted)?;
    Ok(repo)
}

/// Files in the generated tree.
const FILES: u32 = 240;

fn file_name(i: u32) -> String {
    format!("src/mod{:02}/file{:03}.txt", i % 12, i)
}

/// A deterministic history: an initial commit with every file (40 lines each), then commits that
/// each change two or three lines of one to three files; a branch every 500 commits; a tag
/// every 250. Authors and dates advance deterministically.
fn fast_import_stream(commits: u32) -> String {
    let mut s = String::new();
    let mut lines: Vec<Vec<String>> =
        (0..FILES).map(|f| (0..40).map(|l| format!("line {l} of file {f}: original text")).collect()).collect();
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let authors =
        ["Ada Lovelace <ada@example.com>", "Alan Turing <alan@example.com>", "Grace Hopper <grace@example.com>"];
    let base_time = 1_600_000_000u64;
    for n in 0..commits {
        let when = base_time + u64::from(n) * 3600;
        let author = authors[(n % 3) as usize];
        let _ = writeln!(s, "commit refs/heads/main\nmark :{}", n + 1);
        let _ = writeln!(s, "author {author} {when} +0000\ncommitter {author} {when} +0000");
        let msg = if n == 0 { "Initial import".to_string() } else { format!("Change {n}: adjust a few lines") };
        let _ = writeln!(s, "data {}\n{msg}", msg.len());
        if n > 0 {
            let _ = writeln!(s, "from :{n}");
        }
        let touched: Vec<u32> = if n == 0 {
            (0..FILES).collect()
        } else {
            (0..1 + next() % 3).map(|_| (next() % u64::from(FILES)) as u32).collect()
        };
        for f in touched {
            if n > 0 {
                for _ in 0..2 + next() % 2 {
                    let l = (next() % 40) as usize;
                    lines[f as usize][l] = format!("line {l} of file {f}: edited in commit {n}");
                }
            }
            let body = lines[f as usize].join("\n") + "\n";
            let _ = writeln!(s, "M 100644 inline {}\ndata {}\n{body}", file_name(f), body.len());
        }
        s.push('\n');
        if n > 0 && n % 250 == 0 {
            let _ = writeln!(s, "reset refs/tags/v{}\nfrom :{}\n", n / 250, n + 1);
        }
        if n > 0 && n % 500 == 0 {
            let _ = writeln!(s, "reset refs/heads/release-{}\nfrom :{}\n", n / 500, n + 1);
        }
    }
    s
}

fn git_cmd(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir).env("GIT_CONFIG_NOSYSTEM", "1").env("GIT_CONFIG_GLOBAL", "/dev/null");
    c
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    sh(git_cmd(dir).args(args))
}
