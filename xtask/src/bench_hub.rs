//! `cargo xtask bench hub`: what the hub (`bastion serve`) costs per call, how many calls it
//! carries with 32 clients, and how much memory it holds, next to the other stdio→HTTP fronts
//! (mcp-proxy, supergateway, mcpo), all in one run.
//!
//! Every front serves the same upstream, the Node reference filesystem server
//! (`node .../server-filesystem/dist/index.js ROOT`), and is called with the same cheap call: a
//! read of a 1 KiB file. The baseline is that server spoken to directly over stdio; what a front
//! adds is its median minus the baseline's. The client is this program: a blocking HTTP/1.1
//! client over one keep-alive connection (requests written in one `write`, responses with a
//! length, chunked, or SSE-framed), so that the client's own cost is a few µs per call, and the
//! same code calls every HTTP front. Throughput uses 32 threads, each with its own connection.
//!
//! Peers are installed like the other benches': npm packages into `.cache/peers`, the Python
//! ones into their own venv `.cache/peers-venv-hub` (they need `mcp` 1.x, the interop venv has
//! 2.x). Results: `.cache/bench-results/hub.md` and `hub.json`; the servers' output in
//! `.cache/bench-results/logs/hub-*.log`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::bench::{install_npm_packages, installed_version};
use crate::interop::target_dir;
use crate::util::{cache_dir, cargo, output_of, repo_root, run as sh};

/// Options of `cargo xtask bench hub`.
#[derive(Debug, Args)]
pub struct HubArgs {
    /// Timed sequential calls per front (after the warm-up).
    #[arg(long, default_value_t = 3000)]
    calls: u32,
    /// Warm-up calls per front.
    #[arg(long, default_value_t = 300)]
    warmup: u32,
    /// Timed calls through supergateway's stateless mode (it starts a server per request).
    #[arg(long, default_value_t = 20)]
    stateless_calls: u32,
    /// Concurrent clients for the throughput runs.
    #[arg(long, default_value_t = 32)]
    pub(crate) clients: u32,
    /// Calls per client in each throughput run (after a warm-up of 64 calls per client).
    #[arg(long, default_value_t = 1000)]
    pub(crate) load_calls: u32,
    /// Only these fronts (comma-separated: stdio, bastion, bastion-openapi, mcp-proxy,
    /// supergateway, supergateway-stateless, mcpo); the throughput and memory runs are always made.
    #[arg(long, value_delimiter = ',')]
    fronts: Vec<String>,
    /// Do not build; use whatever `target/release/bastion` exists.
    #[arg(long)]
    no_build: bool,
    /// Benchmark this `bastion` binary instead of `target/release/bastion` (implies
    /// `--no-build`).
    #[arg(long)]
    pub(crate) bastion: Option<PathBuf>,
    /// Instead of the fronts: this many hubs (comma-separated counts, e.g. `1,2,3`) on one
    /// PostgreSQL behind nginx, round robin; throughput and p50/p99 through the load balancer
    /// (`bench_replicas.rs`).
    #[arg(long, value_delimiter = ',')]
    pub(crate) replicas: Vec<u32>,
    /// With `--replicas`: the hubs' `--threads` values to measure (comma-separated; default 1).
    #[arg(long, value_delimiter = ',', requires = "replicas")]
    pub(crate) threads: Vec<u16>,
}

/// npm peers, pinned as in `shared/reference/peers.md`.
const NPM: [(&str, &str); 2] = [("@modelcontextprotocol/server-filesystem", "2026.8.31"), ("supergateway", "4.0.0")];

/// PyPI peers and the pins they need to start (`shared/reference/peers.md`: both fail with
/// `mcp` 2.x, and mcpo with newer FastAPI).
const PYPI: [&str; 4] = ["mcp-proxy==0.13.0", "mcpo==0.0.20", "mcp==1.30.0", "fastapi==0.120.0"];

/// Set when `cargo xtask bench hub` re-runs itself from a release build of xtask (after the
/// installs and the build) to do the measuring.
const OPTIMISED: &str = "BASTION_BENCH_HUB_OPTIMISED";

/// A line in the 1 KiB file every front reads; a response without it is an error.
pub(crate) const MARKER: &str = "bastion-bench-marker";

/// Where the upstream and the peers are.
struct Setup {
    node: PathBuf,
    server_js: PathBuf,
    supergateway_js: PathBuf,
    venv_bin: PathBuf,
    bastion: PathBuf,
    root: PathBuf,
    file: PathBuf,
    work: PathBuf,
    logs: PathBuf,
    tick: f64,
}

/// Runs the benchmark.
pub fn run(args: &HubArgs) -> Result<()> {
    let bastion = match &args.bastion {
        Some(path) => std::env::current_dir()?.join(path),
        None => target_dir().join("release").join("bastion"),
    };
    if std::env::var_os(OPTIMISED).is_none() {
        if args.no_build || args.bastion.is_some() {
            eprintln!("xtask: not building; using {}", bastion.display());
        } else {
            sh(cargo().args(["build", "--release", "-p", "bastion-hub", "--bin", "bastion"]))?;
        }
        if cfg!(debug_assertions) {
            // The client and the load generator share the two cores with what they measure:
            // they run as optimised code (a debug build spent ~120 µs of CPU per call).
            sh(cargo().args(["build", "--release", "-p", "xtask"]))?;
            let exe = target_dir().join("release").join("xtask");
            return sh(Command::new(exe).args(std::env::args_os().skip(1)).env(OPTIMISED, "1"));
        }
    }
    if !args.replicas.is_empty() {
        return crate::bench_replicas::run(args, &bastion);
    }
    let peers_dir = cache_dir().join("peers");
    install_npm_packages(&peers_dir, &NPM);
    let venv_bin = install_pypi_peers();
    let node = which("node").context("node is needed: the upstream is the Node reference filesystem server")?;
    let modules = peers_dir.join("node_modules");
    let server_js = modules.join("@modelcontextprotocol/server-filesystem/dist/index.js");
    if !server_js.is_file() {
        bail!("{} is missing: the npm install failed", server_js.display());
    }
    let work = cache_dir().join("bench-hub");
    let root = work.join("root");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    fs::create_dir_all(&root)?;
    // 1 KiB: the marker line, then filler.
    let mut text = format!("{MARKER}\n");
    while text.len() < 1024 {
        text.push_str("lorem ipsum dolor sit amet, consectetur adipiscing elit\n");
    }
    text.truncate(1023);
    text.push('\n');
    let file = root.join("small.txt");
    fs::write(&file, text)?;
    let out_dir = cache_dir().join("bench-results");
    let logs = out_dir.join("logs");
    fs::create_dir_all(&logs)?;
    let tick = output_of(Command::new("getconf").arg("CLK_TCK")).and_then(|t| t.parse().ok()).unwrap_or(100.0);
    let setup = Setup {
        node,
        server_js,
        supergateway_js: modules.join("supergateway/dist/index.js"),
        venv_bin,
        bastion: bastion.clone(),
        root: root.canonicalize()?,
        file: file.canonicalize()?,
        work,
        logs,
        tick,
    };

    let started_at = output_of(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])).unwrap_or_default();
    let load_before = loadavg();
    let wanted = |f: &str| args.fronts.is_empty() || args.fronts.iter().any(|w| w == f);

    // 1. Sequential latency through each front.
    let mut fronts: Vec<FrontResult> = vec![];
    for front in FRONTS {
        if !wanted(front.name()) {
            continue;
        }
        let calls = if matches!(front, Front::SupergatewayStateless) { args.stateless_calls } else { args.calls };
        let warmup = if matches!(front, Front::SupergatewayStateless) { 3 } else { args.warmup };
        eprintln!("xtask: latency through {} ({warmup} warm-up + {calls} calls)", front.name());
        match measure_front(&setup, *front, warmup, calls) {
            Ok(r) => fronts.push(r),
            Err(e) => {
                eprintln!("xtask: warning: {} failed: {e:#}", front.name());
                fronts.push(FrontResult::failed(*front, format!("{e:#}")));
            }
        }
    }

    // 2. Throughput and memory: the hub with its default built-in children, then with the
    // Node server as its only upstream.
    eprintln!("xtask: throughput, bastion serve with the built-in fs, git, shell");
    let builtin = throughput(&setup, Upstreams::Builtin, args.clients, args.load_calls)?;
    eprintln!("xtask: throughput, bastion serve with the Node server");
    let nodefs = throughput(&setup, Upstreams::NodeFs, args.clients, args.load_calls)?;
    let load_after = loadavg();

    let versions = versions(&setup, &peers_dir);
    let report = Report {
        started_at,
        load_before,
        load_after,
        versions,
        fronts,
        builtin,
        nodefs,
        calls: args.calls,
        clients: args.clients,
        load_calls: args.load_calls,
    };
    let md = report.markdown();
    println!("{md}");
    fs::write(out_dir.join("hub.md"), &md)?;
    fs::write(out_dir.join("hub.json"), serde_json::to_string_pretty(&report.json())? + "\n")?;
    eprintln!("xtask: results: {} (hub.md, hub.json)", out_dir.display());
    Ok(())
}

/// Installs the PyPI peers into `.cache/peers-venv-hub` and returns its `bin` directory; a
/// failure is reported, and those fronts then fail (n/a in the table).
fn install_pypi_peers() -> PathBuf {
    let venv = cache_dir().join("peers-venv-hub");
    let bin = venv.join("bin");
    let python = bin.join("python");
    let stamp = venv.join(".bastion-peers");
    let wanted = PYPI.join(" ") + "\n";
    if fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        eprintln!("xtask: PyPI peers {} are installed", PYPI.join(", "));
        return bin;
    }
    let result = (|| -> Result<()> {
        if !python.is_file() {
            sh(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        }
        sh(Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"])
            .args(PYPI))?;
        fs::write(&stamp, &wanted)?;
        Ok(())
    })();
    if let Err(err) = result {
        eprintln!("xtask: warning: the PyPI peers did not install ({err:#}); mcp-proxy and mcpo will be n/a");
    }
    bin
}

fn which(program: &str) -> Option<PathBuf> {
    output_of(Command::new("sh").arg("-c").arg(format!("command -v {program}"))).map(PathBuf::from)
}

pub(crate) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn versions(setup: &Setup, peers_dir: &Path) -> Vec<(String, String)> {
    let mut v = vec![];
    let rev = output_of(Command::new("git").current_dir(repo_root()).args(["rev-parse", "--short", "HEAD"]));
    v.push((
        "bastion".to_owned(),
        format!("{} (release build at {})", setup.bastion.display(), rev.unwrap_or_default()),
    ));
    v.push(("node".to_owned(), output_of(Command::new(&setup.node).arg("--version")).unwrap_or_default()));
    for (package, _) in NPM {
        v.push((package.to_owned(), installed_version(peers_dir, package).unwrap_or_else(|| "not installed".into())));
    }
    for package in PYPI {
        let name = package.split("==").next().unwrap_or(package);
        let shown = output_of(Command::new(setup.venv_bin.join("python")).args(["-m", "pip", "show", name]))
            .and_then(|o| o.lines().find_map(|l| l.strip_prefix("Version: ").map(str::to_owned)))
            .unwrap_or_else(|| "not installed".into());
        v.push((name.to_owned(), shown));
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Fronts

/// A way of reaching the Node server.
#[derive(Clone, Copy, Debug)]
enum Front {
    /// The client speaks MCP over the server's stdin/stdout: the baseline.
    Stdio,
    /// `bastion serve` with the Node server as its one upstream, streamable HTTP, bearer token.
    Bastion,
    /// mcp-proxy's server mode, streamable HTTP at `/mcp`.
    McpProxy,
    /// supergateway `--outputTransport streamableHttp --stateful`.
    Supergateway,
    /// supergateway `--outputTransport streamableHttp` (stateless, its default).
    SupergatewayStateless,
    /// mcpo: the tool as a REST endpoint.
    Mcpo,
    /// `bastion serve`'s OpenAPI facade: `POST /tools/{name}` with the arguments as the body,
    /// the same call as mcpo's (and the same bearer token as `/mcp`).
    BastionOpenapi,
}

const FRONTS: &[Front] = &[
    Front::Stdio,
    Front::Bastion,
    Front::BastionOpenapi,
    Front::McpProxy,
    Front::Supergateway,
    Front::SupergatewayStateless,
    Front::Mcpo,
];

impl Front {
    fn name(self) -> &'static str {
        match self {
            Front::Stdio => "stdio",
            Front::Bastion => "bastion",
            Front::McpProxy => "mcp-proxy",
            Front::Supergateway => "supergateway",
            Front::SupergatewayStateless => "supergateway-stateless",
            Front::Mcpo => "mcpo",
            Front::BastionOpenapi => "bastion-openapi",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Front::Stdio => "direct stdio (baseline)",
            Front::Bastion => "bastion serve",
            Front::McpProxy => "mcp-proxy",
            Front::Supergateway => "supergateway --stateful",
            Front::SupergatewayStateless => "supergateway (stateless)",
            Front::Mcpo => "mcpo (REST)",
            Front::BastionOpenapi => "bastion serve, OpenAPI (REST)",
        }
    }
}

/// What one front measured.
struct FrontResult {
    front: Front,
    error: Option<String>,
    command: String,
    calls: usize,
    median_ms: f64,
    p95_ms: f64,
    /// CPU of the front's own process per call (µs); for the baseline, none.
    proxy_cpu_us: Option<f64>,
    /// The same from the per-thread run times (`/proc/PID/task/*/schedstat`, ns resolution).
    proxy_cpu_sched_us: Option<f64>,
    /// CPU of everything the front started (the Node server, and a shell if any) per call (µs).
    server_cpu_us: f64,
    /// CPU of this client per call (µs).
    client_cpu_us: f64,
    proxy_rss_kib: Option<u64>,
    /// None when the servers do not outlive a request (supergateway stateless).
    server_rss_kib: Option<u64>,
}

impl FrontResult {
    fn failed(front: Front, error: String) -> FrontResult {
        FrontResult {
            front,
            error: Some(error),
            command: String::new(),
            calls: 0,
            median_ms: f64::NAN,
            p95_ms: f64::NAN,
            proxy_cpu_us: None,
            proxy_cpu_sched_us: None,
            server_cpu_us: f64::NAN,
            client_cpu_us: f64::NAN,
            proxy_rss_kib: None,
            server_rss_kib: None,
        }
    }
}

/// A started process, killed with its whole process group when dropped.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) shown: String,
}

impl Proc {
    pub(crate) fn spawn(mut cmd: Command, log: &Path) -> Result<Proc> {
        let shown = crate::util::display(&cmd);
        let log = fs::File::create(log)?;
        cmd.stdin(Stdio::null()).stderr(log.try_clone()?).stdout(log).process_group(0);
        let child = cmd.spawn().with_context(|| format!("starting {shown}"))?;
        Ok(Proc { child, shown })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The JSON-RPC `tools/call` reading the file, with `ID` where the id goes.
pub(crate) fn call_body(tool: &str, path: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 424242, "method": "tools/call", "params": {"name": tool, "arguments": {"path": path}}})
        .to_string()
        .replace("424242", "ID")
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bastion-bench","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

fn measure_front(setup: &Setup, front: Front, warmup: u32, calls: u32) -> Result<FrontResult> {
    if let Front::Stdio = front {
        return measure_stdio(setup, warmup, calls);
    }
    let port = free_port()?;
    let file = setup.file.to_string_lossy().into_owned();
    let root = setup.root.to_string_lossy().into_owned();
    let js = setup.server_js.to_string_lossy().into_owned();
    let node = setup.node.to_string_lossy().into_owned();
    let log = setup.logs.join(format!("hub-{}.log", front.name()));
    let (proc, mut client) = match front {
        Front::Stdio => unreachable!("handled above"),
        Front::Bastion => {
            let hub = start_hub(setup, Upstreams::NodeFs, port, &log)?;
            let client = HttpClient::mcp(port, "/mcp", Some(&hub.token), &call_body("nodefs__read_text_file", &file));
            (hub.proc, client)
        }
        Front::BastionOpenapi => {
            let hub = start_hub(setup, Upstreams::NodeFs, port, &log)?;
            let body = json!({"path": file}).to_string();
            (hub.proc, HttpClient::rest(port, "/tools/nodefs__read_text_file", &hub.token, &body))
        }
        Front::McpProxy => {
            let mut cmd = Command::new(setup.venv_bin.join("mcp-proxy"));
            cmd.args(["--host", "127.0.0.1", "--port", &port.to_string(), &node, &js, &root]);
            let proc = Proc::spawn(cmd, &log)?;
            (proc, HttpClient::mcp(port, "/mcp", None, &call_body("read_text_file", &file)))
        }
        Front::Supergateway | Front::SupergatewayStateless => {
            let mut cmd = Command::new(&setup.node);
            cmd.arg(&setup.supergateway_js)
                .args(["--stdio", &format!("{node} {js} {root}"), "--outputTransport", "streamableHttp"])
                .args(["--port", &port.to_string()]);
            if let Front::Supergateway = front {
                cmd.arg("--stateful");
            }
            let proc = Proc::spawn(cmd, &log)?;
            (proc, HttpClient::mcp(port, "/mcp", None, &call_body("read_text_file", &file)))
        }
        Front::Mcpo => {
            let key = "bench-key";
            let mut cmd = Command::new(setup.venv_bin.join("mcpo"));
            cmd.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--api-key", key, "--", &node, &js, &root]);
            let proc = Proc::spawn(cmd, &log)?;
            let body = json!({"path": file}).to_string();
            (proc, HttpClient::rest(port, "/read_text_file", key, &body))
        }
    };
    // Wait until the front answers a call (peers have no readiness probe in common).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.connect().and_then(|()| client.start_session()).and_then(|()| client.call(0)) {
            Ok(()) => break,
            Err(e) if Instant::now() >= deadline => {
                bail!("{} never answered a call: {e:#}; see {}", front.name(), log.display())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let pid = proc.pid();
    let is_server = |p: u32| cmdline(p).contains("server-filesystem");
    for i in 0..warmup {
        client.call(i as u64 + 1)?;
    }
    let before = Cpu::sample(pid, setup.tick, is_server);
    let mut times = Vec::with_capacity(calls as usize);
    for i in 0..calls {
        let t = Instant::now();
        client.call(u64::from(warmup + i) + 1)?;
        times.push(t.elapsed());
    }
    let after = Cpu::sample(pid, setup.tick, is_server);
    let n = f64::from(calls);
    let (median_ms, p95_ms) = percentiles(&mut times);
    let per_request = matches!(front, Front::SupergatewayStateless);
    let server_pids: Vec<u32> = descendants(pid).into_iter().filter(|p| *p != pid).collect();
    Ok(FrontResult {
        front,
        error: None,
        command: proc.shown.clone(),
        calls: calls as usize,
        median_ms,
        p95_ms,
        proxy_cpu_us: Some((after.proxy - before.proxy) / n * 1e6),
        proxy_cpu_sched_us: Some((after.proxy_sched - before.proxy_sched) / n * 1e6),
        // supergateway's stateless mode starts a server per request and lets it go without
        // waiting for it (its CPU is in no process we can read): not measured.
        server_cpu_us: if per_request {
            f64::NAN
        } else {
            ((after.tree - after.proxy) - (before.tree - before.proxy)) / n * 1e6
        },
        client_cpu_us: (after.client - before.client) / n * 1e6,
        proxy_rss_kib: Some(rss_kib(pid)),
        server_rss_kib: (!per_request).then(|| server_pids.iter().map(|p| rss_kib(*p)).sum()),
    })
}

/// The baseline: MCP over the Node server's stdin/stdout, one line per message.
fn measure_stdio(setup: &Setup, warmup: u32, calls: u32) -> Result<FrontResult> {
    let mut cmd = Command::new(&setup.node);
    cmd.arg(&setup.server_js).arg(&setup.root);
    let shown = crate::util::display(&cmd);
    let log = fs::File::create(setup.logs.join("hub-stdio.log"))?;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(log).spawn()?;
    let pid = child.id();
    let result = (|| -> Result<FrontResult> {
        let mut stdin = child.stdin.take().context("stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let body = call_body("read_text_file", &setup.file.to_string_lossy());
        let mut line = String::new();
        exchange(&mut stdin, &mut stdout, &mut line, INIT, Some(0))?;
        exchange(&mut stdin, &mut stdout, &mut line, INITIALIZED, None)?;
        let mut call = |stdin: &mut ChildStdin, stdout: &mut BufReader<ChildStdout>, id: u64| -> Result<()> {
            exchange(stdin, stdout, &mut line, &body.replace("ID", &id.to_string()), Some(id))?;
            check_body(line.as_bytes())
        };
        for i in 0..warmup {
            call(&mut stdin, &mut stdout, u64::from(i) + 1)?;
        }
        let before = Cpu::sample(pid, setup.tick, |_| true);
        let mut times = Vec::with_capacity(calls as usize);
        for i in 0..calls {
            let t = Instant::now();
            call(&mut stdin, &mut stdout, u64::from(warmup + i) + 1)?;
            times.push(t.elapsed());
        }
        let after = Cpu::sample(pid, setup.tick, |_| true);
        let n = f64::from(calls);
        let (median_ms, p95_ms) = percentiles(&mut times);
        Ok(FrontResult {
            front: Front::Stdio,
            error: None,
            command: shown,
            calls: calls as usize,
            median_ms,
            p95_ms,
            proxy_cpu_us: None,
            proxy_cpu_sched_us: None,
            // The server is the process itself here.
            server_cpu_us: (after.proxy - before.proxy) / n * 1e6,
            client_cpu_us: (after.client - before.client) / n * 1e6,
            proxy_rss_kib: None,
            server_rss_kib: Some(rss_kib(pid)),
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Writes one message line; with an id, reads lines into `line` until the response with that id.
fn exchange(
    stdin: &mut ChildStdin,
    stdout: &mut BufReader<ChildStdout>,
    line: &mut String,
    msg: &str,
    id: Option<u64>,
) -> Result<()> {
    stdin.write_all(msg.as_bytes())?;
    stdin.write_all(b"\n")?;
    stdin.flush()?;
    let Some(id) = id else { return Ok(()) };
    let (end, more) = (format!("\"id\":{id}}}"), format!("\"id\":{id},"));
    loop {
        line.clear();
        if stdout.read_line(line)? == 0 {
            bail!("the server closed its stdout");
        }
        if (line.contains(&end) || line.contains(&more)) && !line.contains("\"method\"") {
            return Ok(());
        }
    }
}

fn percentiles(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    if times.is_empty() { (f64::NAN, f64::NAN) } else { (at(0.5), at(0.95)) }
}

// ---------------------------------------------------------------------------------------------
// The hub

/// Which upstreams `bastion serve` runs.
#[derive(Clone, Copy, Debug)]
enum Upstreams {
    /// No config file: the built-in fs, git and shell children on the root.
    Builtin,
    /// A config with the Node server as the one upstream, `nodefs`.
    NodeFs,
}

struct RunningHub {
    proc: Proc,
    token: String,
}

/// Starts `bastion serve` on `port` with a fresh state directory; returns once `/readyz` says
/// every upstream is ready, with the token it printed.
fn start_hub(setup: &Setup, upstreams: Upstreams, port: u16, log: &Path) -> Result<RunningHub> {
    let tag = format!("{upstreams:?}-{port}").to_lowercase();
    // Outside every root: with only a configured upstream the hub's roots default to its working
    // directory, and it refuses a state directory inside a root.
    let state = std::env::temp_dir().join(format!("bastion-bench-state-{tag}-{}", std::process::id()));
    let mut cmd = Command::new(&setup.bastion);
    cmd.arg("serve").arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--state-dir").arg(&state);
    // The hub's capacity is measured, at ten times the default per-token rate limit.
    cmd.arg("--no-rate-limits");
    match upstreams {
        Upstreams::Builtin => {
            cmd.arg("--root").arg(&setup.root);
        }
        Upstreams::NodeFs => {
            let config = setup.work.join(format!("hub-{tag}.toml"));
            let text = format!(
                // Contained, as third-party upstreams are by default: it is granted its root.
                "[[upstream]]\nname = \"nodefs\"\ncommand = {}\nargs = [{}, {}]\nsandbox = {{ read = [{}] }}\n",
                toml_str(&setup.node.to_string_lossy()),
                toml_str(&setup.server_js.to_string_lossy()),
                toml_str(&setup.root.to_string_lossy()),
                toml_str(&setup.root.to_string_lossy()),
            );
            fs::write(&config, text)?;
            cmd.arg("--config").arg(&config);
        }
    }
    // The hub's default log level (warn), as an operator runs it.
    cmd.env_remove("RUST_LOG");
    let shown = crate::util::display(&cmd);
    let log_file = fs::File::create(log)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let stdout = child.stdout.take().context("hub stdout")?;
    let proc = Proc { child, shown };
    // The token line comes first; the rest of stdout is drained so the hub never blocks on it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(t) = line.strip_prefix("token: ") {
                let _ = tx.send(t.trim().to_owned());
            }
        }
    });
    let token = rx.recv_timeout(Duration::from_secs(30)).context("the hub printed no token")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = TcpStream::connect(("127.0.0.1", port)).ok().is_some_and(|s| {
            let mut c = Conn::new(s);
            c.request(format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
                .is_ok_and(|r| r.status == 200)
        });
        if ready {
            return Ok(RunningHub { proc, token });
        }
        if Instant::now() >= deadline {
            bail!("the hub was not ready within 60 s; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// What a throughput run found.
struct Throughput {
    upstreams: Upstreams,
    calls: u64,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    hub_cpu_us: f64,
    children_cpu_us: f64,
    generator_cpu_s: f64,
    /// `(hub, children)` VmRSS in KiB: after start-up, after the warm-up, after the run.
    rss_start: (u64, u64),
    rss_end: (u64, u64),
    /// PSS of the hub and its children together (shared pages split between them), KiB.
    pss_start: u64,
    pss_end: u64,
    children: Vec<(String, u64)>,
}

fn throughput(setup: &Setup, upstreams: Upstreams, clients: u32, calls: u32) -> Result<Throughput> {
    let port = free_port()?;
    let log = setup.logs.join(format!("hub-load-{}.log", format!("{upstreams:?}").to_lowercase()));
    let hub = start_hub(setup, upstreams, port, &log)?;
    let pid = hub.proc.pid();
    // Let the children finish their own start-up work before the first sample.
    std::thread::sleep(Duration::from_millis(500));
    let rss_start = tree_rss(pid);
    let pss_start = tree_pss(pid);
    let body = match upstreams {
        Upstreams::Builtin => call_body("fs__read_file", "small.txt"),
        Upstreams::NodeFs => call_body("nodefs__read_text_file", &setup.file.to_string_lossy()),
    };
    // Warm-up: every client's connection, 64 calls each.
    load(port, &hub.token, &body, clients, 64)?;
    let before = Cpu::sample(pid, setup.tick, |_| true);
    let t = Instant::now();
    let run = load(port, &hub.token, &body, clients, calls)?;
    let seconds = t.elapsed().as_secs_f64();
    let after = Cpu::sample(pid, setup.tick, |_| true);
    let rss_end = tree_rss(pid);
    let pss_end = tree_pss(pid);
    let children = descendants(pid).into_iter().filter(|p| *p != pid).map(|p| (short_cmdline(p), rss_kib(p))).collect();
    let n = run.calls as f64;
    let mut times = run.times;
    times.sort();
    let at = |q: f64| times.get(((times.len() as f64 - 1.0) * q) as usize).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    Ok(Throughput {
        upstreams,
        calls: run.calls,
        errors: run.errors,
        first_error: run.first_error,
        seconds,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        hub_cpu_us: (after.proxy - before.proxy) / n * 1e6,
        children_cpu_us: (after.tree - after.proxy - (before.tree - before.proxy)) / n * 1e6,
        generator_cpu_s: after.client - before.client,
        rss_start,
        rss_end,
        pss_start,
        pss_end,
        children,
    })
}

pub(crate) struct LoadRun {
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) times: Vec<Duration>,
}

/// `clients` threads, each with its own keep-alive connection, each making `calls` calls.
pub(crate) fn load(port: u16, token: &str, body: &str, clients: u32, calls: u32) -> Result<LoadRun> {
    let barrier = Arc::new(Barrier::new(clients as usize));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let barrier = barrier.clone();
            let mut client = HttpClient::mcp(port, "/mcp", Some(token), body);
            std::thread::spawn(move || {
                let mut times = Vec::with_capacity(calls as usize);
                let (mut errors, mut first_error) = (0u64, None);
                let connected = client.connect();
                barrier.wait();
                if let Err(e) = connected {
                    return (times, u64::from(calls), Some(format!("{e:#}")));
                }
                for i in 0..calls {
                    let t = Instant::now();
                    match client.call(u64::from(i) + 1) {
                        Ok(()) => times.push(t.elapsed()),
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| format!("{e:#}"));
                            let _ = client.connect();
                        }
                    }
                }
                (times, errors, first_error)
            })
        })
        .collect();
    let mut run = LoadRun { calls: 0, errors: 0, first_error: None, times: vec![] };
    for h in handles {
        let (times, errors, first) = h.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))?;
        run.calls += times.len() as u64 + errors;
        run.errors += errors;
        run.times.extend(times);
        if run.first_error.is_none() {
            run.first_error = first;
        }
    }
    Ok(run)
}

// ---------------------------------------------------------------------------------------------
// /proc

/// CPU seconds: the front's own process (utime+stime from /proc/PID/stat, and the sum of its
/// threads' run times from schedstat), its whole tree (those `child` selects plus itself), and
/// this client.
struct Cpu {
    proxy: f64,
    proxy_sched: f64,
    tree: f64,
    client: f64,
}

impl Cpu {
    fn sample(pid: u32, tick: f64, child: impl Fn(u32) -> bool) -> Cpu {
        let proxy = stat_cpu(pid, tick);
        // Children that ended and were waited for (supergateway's stateless servers) count too.
        let reaped = stat_fields(pid, &[16, 17]) / tick;
        let others: f64 =
            descendants(pid).into_iter().filter(|p| *p != pid && child(*p)).map(|p| stat_cpu(p, tick)).sum::<f64>()
                + reaped;
        let me = std::process::id();
        Cpu { proxy, proxy_sched: sched_cpu(pid), tree: proxy + others, client: stat_cpu(me, tick) }
    }
}

/// utime+stime of a process, in seconds.
fn stat_cpu(pid: u32, tick: f64) -> f64 {
    stat_fields(pid, &[14, 15]) / tick
}

/// The sum of the numeric fields `fields` (1-based, as in proc(5)) of /proc/PID/stat.
fn stat_fields(pid: u32, fields: &[usize]) -> f64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name, which is in parentheses and may hold spaces; the first
    // of them is field 3 (state).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    fields.iter().map(|i| f.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)).sum()
}

/// The run time of every live thread of a process, in seconds (nanosecond resolution).
fn sched_cpu(pid: u32) -> f64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return 0.0 };
    tasks
        .filter_map(|t| fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e9
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// `pid` and every process below it.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && let Some(pp) = ppid(p)
            {
                parent.insert(p, pp);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        out.extend(parent.iter().filter(|(_, pp)| **pp == cur).map(|(p, _)| *p));
        i += 1;
    }
    out
}

fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline")).map(|b| String::from_utf8_lossy(&b).replace('\0', " ")).unwrap_or_default()
}

/// `bastion fs`, `node server-filesystem` — the program's base name and its first word.
fn short_cmdline(pid: u32) -> String {
    let full = cmdline(pid);
    let mut words = full.split_whitespace().map(|w| w.rsplit('/').next().unwrap_or(w));
    let program = words.next().unwrap_or("?");
    match words.next() {
        Some(w) if program == "node" && w == "index.js" => "node server-filesystem".to_owned(),
        Some(w) => format!("{program} {w}"),
        None => program.to_owned(),
    }
}

fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// PSS of the process and all its descendants together, in KiB: pages shared between them (the
/// one `bastion` binary's code, mapped by the hub and every child) are counted once in total.
fn tree_pss(pid: u32) -> u64 {
    descendants(pid)
        .into_iter()
        .filter_map(|p| {
            let s = fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok()?;
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum()
}

/// VmRSS of the process and of all its descendants, in KiB.
fn tree_rss(pid: u32) -> (u64, u64) {
    let children: u64 = descendants(pid).into_iter().filter(|p| *p != pid).map(rss_kib).sum();
    (rss_kib(pid), children)
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 client

/// A response: status, the headers this client cares about, the body (de-chunked).
pub(crate) struct Response {
    pub(crate) status: u16,
    session: Option<String>,
    body: Vec<u8>,
}

/// One keep-alive connection.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The server said it would close (no length, or `Connection: close`).
    closing: bool,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    pub(crate) fn new(stream: TcpStream) -> Conn {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
        Conn { stream, buf: Vec::with_capacity(16 * 1024), closing: false }
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Sends one complete request (head and body in one buffer) and reads the response.
    pub(crate) fn request(&mut self, raw: &[u8]) -> Result<Response> {
        self.stream.write_all(raw)?;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.fill()? == 0 {
                bail!("connection closed before a response");
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .context("status line")?;
        let (mut length, mut chunked, mut session) = (None, false, None);
        for l in lines {
            let Some((k, v)) = l.split_once(':') else { continue };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "content-length" => length = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                "mcp-session-id" => session = Some(v.to_owned()),
                "connection" => self.closing |= v.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let body = if chunked {
            let mut body = vec![];
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    if self.fill()? == 0 {
                        bail!("connection closed inside a chunked body");
                    }
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                    .with_context(|| format!("chunk size {size_text:?}"))?;
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    if self.fill()? == 0 {
                        bail!("connection closed inside a chunk");
                    }
                }
                body.extend_from_slice(&self.buf[..size]);
                self.buf.drain(..size + 2);
                if size == 0 {
                    break body;
                }
            }
        } else if let Some(n) = length {
            while self.buf.len() < n {
                if self.fill()? == 0 {
                    bail!("connection closed inside a body");
                }
            }
            self.buf.drain(..n).collect()
        } else if status == 202 || status == 204 || status == 304 {
            vec![]
        } else {
            while self.fill()? > 0 {}
            self.closing = true;
            std::mem::take(&mut self.buf)
        };
        Ok(Response { status, session, body })
    }
}

/// A client of one HTTP front: MCP (JSON-RPC over streamable HTTP, with a session if the front
/// hands one out) or mcpo's REST endpoint.
struct HttpClient {
    port: u16,
    path: String,
    auth: Option<String>,
    /// The call's body with `ID` where the id goes; REST bodies have none.
    body: String,
    mcp: bool,
    session: Option<String>,
    conn: Option<Conn>,
    raw: Vec<u8>,
}

impl HttpClient {
    fn mcp(port: u16, path: &str, token: Option<&str>, body: &str) -> HttpClient {
        HttpClient {
            port,
            path: path.to_owned(),
            auth: token.map(str::to_owned),
            body: body.to_owned(),
            mcp: true,
            session: None,
            conn: None,
            raw: vec![],
        }
    }

    fn rest(port: u16, path: &str, key: &str, body: &str) -> HttpClient {
        HttpClient { mcp: false, ..HttpClient::mcp(port, path, Some(key), body) }
    }

    fn connect(&mut self) -> Result<()> {
        self.conn = Some(Conn::new(TcpStream::connect(("127.0.0.1", self.port))?));
        Ok(())
    }

    /// `initialize` and `notifications/initialized` on MCP fronts; the session id, if the
    /// front gives one, goes on every later request.
    fn start_session(&mut self) -> Result<()> {
        if !self.mcp {
            return Ok(());
        }
        self.session = None;
        let r = self.post(INIT)?;
        if r.status != 200 {
            bail!("initialize: HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body));
        }
        self.session = r.session;
        let r = self.post(INITIALIZED)?;
        if !(200..300).contains(&r.status) {
            bail!("notifications/initialized: HTTP {}", r.status);
        }
        Ok(())
    }

    fn post(&mut self, body: &str) -> Result<Response> {
        self.raw.clear();
        let _ = write!(
            RawWriter(&mut self.raw),
            "POST {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
            self.path,
            self.port,
            body.len()
        );
        if let Some(a) = &self.auth {
            let _ = write!(RawWriter(&mut self.raw), "Authorization: Bearer {a}\r\n");
        }
        if self.mcp {
            self.raw.extend_from_slice(b"MCP-Protocol-Version: 2025-06-18\r\n");
        }
        if let Some(s) = &self.session {
            let _ = write!(RawWriter(&mut self.raw), "Mcp-Session-Id: {s}\r\n");
        }
        self.raw.extend_from_slice(b"\r\n");
        self.raw.extend_from_slice(body.as_bytes());
        if self.conn.as_ref().is_none_or(|c| c.closing) {
            self.connect()?;
        }
        let conn = self.conn.as_mut().context("not connected")?;
        conn.request(&self.raw)
    }

    /// One tool call; an error unless it is a successful result that carries the file.
    fn call(&mut self, id: u64) -> Result<()> {
        let body = if self.mcp { self.body.replace("ID", &id.to_string()) } else { self.body.clone() };
        let r = self.post(&body)?;
        if r.status != 200 {
            bail!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body));
        }
        check_body(&r.body)
    }
}

/// `write!` into a `Vec<u8>` without the `io::Write` ceremony.
struct RawWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for RawWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A successful tool result holding the file's marker line.
fn check_body(body: &[u8]) -> Result<()> {
    if find(body, MARKER.as_bytes()).is_none() || find(body, b"\"isError\":true").is_some() {
        bail!("not a successful read: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Report

struct Report {
    started_at: String,
    load_before: String,
    load_after: String,
    versions: Vec<(String, String)>,
    fronts: Vec<FrontResult>,
    builtin: Throughput,
    nodefs: Throughput,
    calls: u32,
    clients: u32,
    load_calls: u32,
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v.abs() >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.3} ms")
    }
}

fn us(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl Report {
    fn baseline(&self) -> Option<f64> {
        self.fronts.iter().find(|f| matches!(f.front, Front::Stdio) && f.error.is_none()).map(|f| f.median_ms)
    }

    fn added(&self, f: &FrontResult) -> Option<f64> {
        if matches!(f.front, Front::Stdio) || f.error.is_some() {
            return None;
        }
        self.baseline().map(|b| f.median_ms - b)
    }

    fn bastion_added(&self) -> Option<f64> {
        self.fronts.iter().find(|f| matches!(f.front, Front::Bastion)).and_then(|f| self.added(f))
    }

    /// The OpenAPI comparison (issue 15's target: mcpo adds at least 10× what bastion's facade
    /// adds): (bastion's facade added, mcpo added).
    fn openapi_added(&self) -> Option<(f64, f64)> {
        let added =
            |front: Front| self.fronts.iter().find(|f| f.front.name() == front.name()).and_then(|f| self.added(f));
        Some((added(Front::BastionOpenapi)?, added(Front::Mcpo)?))
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} · {} cores · load average {} → {}\n",
            self.started_at,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            self.load_before,
            self.load_after
        );
        let _ = writeln!(
            s,
            "Versions: {}\n",
            self.versions.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(" · ")
        );
        let _ = writeln!(
            s,
            "Per call: `read_text_file` of a 1 KiB file on the Node reference server, {} sequential calls per front on one keep-alive connection after a warm-up.\n",
            self.calls
        );
        s.push_str(
            "| front | median | p95 | added over stdio | added ÷ bastion's | front CPU / call | Node server CPU / call | client CPU / call | front RSS | Node server RSS |\n",
        );
        s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        let bastion = self.bastion_added();
        for f in &self.fronts {
            if let Some(e) = &f.error {
                let _ =
                    writeln!(s, "| {} | n/a ({}) | | | | | | | | |", f.front.label(), e.lines().next().unwrap_or(""));
                continue;
            }
            let added = self.added(f);
            let ratio = match (added, bastion) {
                (Some(a), Some(b)) if !matches!(f.front, Front::Bastion) && b > 0.0 => format!("{:.1}×", a / b),
                _ => "—".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                f.front.label(),
                ms(f.median_ms),
                ms(f.p95_ms),
                added.map_or("—".into(), ms),
                ratio,
                f.proxy_cpu_us.map_or("—".into(), us),
                us(f.server_cpu_us),
                us(f.client_cpu_us),
                f.proxy_rss_kib.map_or("—".into(), mib),
                f.server_rss_kib.map_or("n/a".into(), mib),
            );
        }
        if let Some((bastion, mcpo)) = self.openapi_added() {
            let _ = writeln!(
                s,
                "\nOpenAPI (REST) fronts on the same upstream: bastion's facade adds {}, mcpo adds {} ({:.1}× bastion's; target ≥ 10×).",
                ms(bastion),
                ms(mcpo),
                mcpo / bastion
            );
        }
        let _ = writeln!(
            s,
            "\nThroughput: {} clients, each on its own keep-alive connection, {} calls each after 64 warm-up calls each.\n",
            self.clients, self.load_calls
        );
        s.push_str("| hub upstream | call | calls/s | errors | p50 / p99 under load | hub CPU / call | children CPU / call | generator CPU |\n");
        s.push_str("|---|---|---|---|---|---|---|---|\n");
        for t in [&self.builtin, &self.nodefs] {
            let (what, call) = match t.upstreams {
                Upstreams::Builtin => ("built-in fs, git, shell", "`fs__read_file` 1 KiB"),
                Upstreams::NodeFs => ("Node server-filesystem", "`nodefs__read_text_file` 1 KiB"),
            };
            let _ = writeln!(
                s,
                "| {what} | {call} | {:.0} | {} of {}{} | {} / {} | {} | {} | {:.2} s CPU in {:.2} s ({:.0} %) |",
                t.calls as f64 / t.seconds,
                t.errors,
                t.calls,
                t.first_error.as_ref().map_or(String::new(), |e| format!(" (first: {e})")),
                ms(t.p50_ms),
                ms(t.p99_ms),
                us(t.hub_cpu_us),
                us(t.children_cpu_us),
                t.generator_cpu_s,
                t.seconds,
                t.generator_cpu_s / t.seconds * 100.0,
            );
        }
        s.push_str("\nMemory (VmRSS), `bastion serve` with its default built-in children:\n\n");
        s.push_str("| when | hub | children | hub + children | PSS of hub + children |\n|---|---|---|---|---|\n");
        for (when, (h, c), pss) in [
            ("after start-up", self.builtin.rss_start, self.builtin.pss_start),
            ("after the throughput run", self.builtin.rss_end, self.builtin.pss_end),
        ] {
            let _ = writeln!(s, "| {when} | {} | {} | {} | {} |", mib(h), mib(c), mib(h + c), mib(pss));
        }
        let _ = writeln!(
            s,
            "\nChildren after the run: {}.",
            self.builtin.children.iter().map(|(c, k)| format!("{c} {}", mib(*k))).collect::<Vec<_>>().join(", ")
        );
        let (h, c) = self.nodefs.rss_end;
        let _ = writeln!(s, "With the Node server as upstream, after its run: hub {}, Node server {}.", mib(h), mib(c));
        s.push_str("\nCommands:\n\n");
        for f in &self.fronts {
            if !f.command.is_empty() {
                let _ = writeln!(s, "- {}: `{}`", f.front.label(), f.command);
            }
        }
        s
    }

    fn json(&self) -> Value {
        let fronts: Vec<Value> = self
            .fronts
            .iter()
            .map(|f| {
                json!({
                    "front": f.front.name(),
                    "error": f.error,
                    "command": f.command,
                    "calls": f.calls,
                    "median_ms": finite(f.median_ms),
                    "p95_ms": finite(f.p95_ms),
                    "added_ms": self.added(f).and_then(finite),
                    "added_vs_bastion": match (self.added(f), self.bastion_added()) {
                        (Some(a), Some(b)) if b > 0.0 => finite(a / b),
                        _ => None,
                    },
                    "front_cpu_us_per_call": f.proxy_cpu_us.and_then(finite),
                    "front_cpu_us_per_call_schedstat": f.proxy_cpu_sched_us.and_then(finite),
                    "server_cpu_us_per_call": finite(f.server_cpu_us),
                    "client_cpu_us_per_call": finite(f.client_cpu_us),
                    "front_rss_kib": f.proxy_rss_kib,
                    "server_rss_kib": f.server_rss_kib,
                })
            })
            .collect();
        let tp = |t: &Throughput| {
            json!({
                "upstreams": format!("{:?}", t.upstreams).to_lowercase(),
                "calls": t.calls,
                "errors": t.errors,
                "first_error": t.first_error,
                "seconds": t.seconds,
                "calls_per_s": t.calls as f64 / t.seconds,
                "p50_ms": finite(t.p50_ms),
                "p99_ms": finite(t.p99_ms),
                "hub_cpu_us_per_call": finite(t.hub_cpu_us),
                "children_cpu_us_per_call": finite(t.children_cpu_us),
                "generator_cpu_s": t.generator_cpu_s,
                "rss_kib": {
                    "start": {"hub": t.rss_start.0, "children": t.rss_start.1},
                    "end": {"hub": t.rss_end.0, "children": t.rss_end.1},
                    "pss_start": t.pss_start,
                    "pss_end": t.pss_end,
                    "children_end": t.children.iter().map(|(c, k)| json!({"process": c, "kib": k})).collect::<Vec<_>>(),
                },
            })
        };
        json!({
            "started_at": self.started_at,
            "load_before": self.load_before,
            "load_after": self.load_after,
            "versions": self.versions.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
            "calls": self.calls,
            "clients": self.clients,
            "load_calls_per_client": self.load_calls,
            "fronts": fronts,
            "openapi_added_ms": self.openapi_added().map(|(b, m)| json!({"bastion": b, "mcpo": m, "mcpo_over_bastion": finite(m / b)})),
            "throughput": [tp(&self.builtin), tp(&self.nodefs)],
        })
    }
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}
