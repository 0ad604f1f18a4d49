//! `cargo xtask deploy --smoke`: the image and the compose recipe run for real under a Docker
//! daemon on this machine, as far as a machine that reaches package registries only allows.
//!
//! Opt-in (never part of `cargo xtask ci`): it needs root, Debian's `docker.io` (installed when
//! missing), `mmdebstrap`, PostgreSQL and Caddy, and takes a few minutes.
//!
//! `deploy/compose-hub.toml` names `sealing_key`, so this needs a hub that knows that key (the
//! sealed sessions of issue 18).
//!
//! What is real: the runtime stage of `deploy/Dockerfile` (its packages, user, volume, health
//! check, entrypoint), built by the daemon; `deploy/compose-hub.toml`; the hubs' runtime settings
//! from `deploy/docker-compose.yml` (`security_opt`, `cap_drop`, `read_only`, `tmpfs`);
//! `deploy/Caddyfile`; a PostgreSQL store both hubs share.
//!
//! What stands in, and why:
//! * the base image `debian:bookworm-slim` is a `mmdebstrap --variant=minbase bookworm` root
//!   imported into the daemon, and the build stage is replaced by the `bastion` binary built on
//!   this machine: no container registry is reachable here, so neither the Debian nor the Rust
//!   image can be pulled;
//! * PostgreSQL and Caddy are Debian's, run on loopback (not the `postgres` and `caddy` images);
//! * every container uses the host's network, and the hubs and Caddy listen on free loopback
//!   ports (the listen line of compose-hub.toml and the addresses of the Caddyfile rewritten to
//!   them): the daemon is started without its bridge and firewall rules, because compose's
//!   bridge network would put the services on private-range addresses and rewrite the host's
//!   firewall, on a machine where traffic goes to loopback only. So compose itself (its network,
//!   `depends_on` and health checks) is not exercised.
//!
//! Checks: `/readyz` through Caddy; four tool calls through Caddy land two on each hub (their
//! audit journals); the owner token one hub created works on the other (one store); the shell
//! sandbox inside the container reports Landlock, seccomp, namespaces, a private `/proc` and
//! read-only mounts; with one hub stopped, every request through Caddy still succeeds.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::util::{apt_install, cache_dir, have, output_of, repo_root, run as sh, succeeds};

/// Runs the smoke test; everything it started is stopped and its daemon's data removed, also on
/// failure.
pub fn run() -> Result<()> {
    if output_of(Command::new("id").arg("-u")).as_deref() != Some("0") {
        bail!("the smoke test starts a Docker daemon and PostgreSQL: run it as root");
    }
    if !have("dockerd") {
        apt_install(&["docker.io"])?;
    }
    for program in ["mmdebstrap", "caddy", "curl"] {
        if !succeeds(Command::new("sh").arg("-c").arg(format!("command -v {program}"))) {
            bail!("{program} is missing (cargo xtask provision installs it)");
        }
    }
    let dir = cache_dir().join("deploy/smoke");
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir)?;
    let base = base_tarball()?;
    crate::ci::build_bins()?;

    let mut lab = Lab { dir: dir.clone(), dockerd: None, caddy: None, postgres: None };
    let outcome = lab.run(&base);
    if outcome.is_err() {
        lab.diagnose();
    }
    lab.stop();
    let _ = fs::remove_dir_all(&dir);
    outcome
}

/// The cached Debian root the image is based on.
fn base_tarball() -> Result<PathBuf> {
    let tarball = cache_dir().join("deploy/bookworm-minbase.tar");
    if !tarball.is_file() {
        let partial = tarball.with_extension("partial.tar");
        sh(Command::new("mmdebstrap").args(["--variant=minbase", "--quiet", "bookworm"]).arg(&partial))?;
        fs::rename(&partial, &tarball)?;
    }
    Ok(tarball)
}

/// What the smoke test started, to be stopped by [`Lab::stop`].
struct Lab {
    dir: PathBuf,
    dockerd: Option<Child>,
    caddy: Option<Child>,
    /// The PostgreSQL data directory, once started.
    postgres: Option<PathBuf>,
}

impl Lab {
    fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", format!("unix://{}", self.dir.join("docker.sock").display()));
        cmd
    }

    fn run(&mut self, base: &Path) -> Result<()> {
        self.start_dockerd()?;
        sh(self.docker().arg("import").arg(base).arg("debian:bookworm-slim").stdout(Stdio::null()))?;
        self.build_image()?;
        let pg_port = free_port()?;
        self.start_postgres(pg_port)?;
        let hub_ports = [free_port()?, free_port()?];
        let store = format!("postgres://bastion:smoke-password@127.0.0.1:{pg_port}/bastion");
        for (n, port) in hub_ports.iter().enumerate() {
            self.start_hub(n + 1, *port, &store)?;
        }
        let lb = free_port()?;
        self.start_caddy(lb, hub_ports)?;
        check(self, lb)
    }

    fn start_dockerd(&mut self) -> Result<()> {
        let log = fs::File::create(self.dir.join("dockerd.log"))?;
        let child = Command::new("dockerd")
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false", "--ip-masq=false"])
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", self.dir.join("docker.sock").display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting dockerd")?;
        self.dockerd = Some(child);
        wait_for("the Docker daemon", Duration::from_secs(60), || succeeds(self.docker().arg("version")))
    }

    /// deploy/Dockerfile with its build stage replaced by the binary built here (see the module
    /// comment); its runtime stage as it is.
    fn build_image(&self) -> Result<()> {
        let dockerfile = fs::read_to_string(repo_root().join("deploy/Dockerfile"))?;
        let (Some(build), Some(runtime)) = (dockerfile.find("# ---- build"), dockerfile.find("# ---- run")) else {
            bail!("deploy/Dockerfile no longer has its `# ---- build` and `# ---- run` markers");
        };
        let stand_in = "# ---- build (smoke test: the binary built on this machine) ----\n\
                        FROM debian:${DEBIAN_RELEASE}-slim AS build\n\
                        COPY bastion /usr/local/bin/bastion\n\n";
        let context = self.dir.join("context");
        fs::create_dir_all(context.join("deploy"))?;
        fs::write(context.join("Dockerfile"), format!("{}{stand_in}{}", &dockerfile[..build], &dockerfile[runtime..]))?;
        fs::copy(crate::interop::target_dir().join("debug/bastion"), context.join("bastion"))?;
        fs::copy(repo_root().join("deploy/hub.toml"), context.join("deploy/hub.toml"))?;
        // The runtime stage's apt-get needs the network: the host's (the daemon has no bridge).
        sh(self.docker().args(["build", "--network", "host", "-q", "-t", "bastion:smoke"]).arg(&context))
    }

    fn start_postgres(&mut self, port: u16) -> Result<()> {
        let bin = fs::read_dir("/usr/lib/postgresql")?
            .filter_map(|d| d.ok().map(|d| d.path().join("bin")))
            .find(|b| b.join("initdb").exists())
            .context("no PostgreSQL server under /usr/lib/postgresql (cargo xtask provision installs it)")?;
        let pg = self.dir.join("pg");
        fs::create_dir_all(&pg)?;
        sh(Command::new("chown").arg("postgres").arg(&pg))?;
        let data = pg.join("data");
        let as_postgres = |program: &str, args: &[&str]| {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(bin.join(program)).args(args);
            cmd
        };
        let data_s = data.to_string_lossy().into_owned();
        sh(as_postgres("initdb", &["-D", &data_s, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .stdout(Stdio::null()))?;
        let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1", pg.display());
        let log = pg.join("log").to_string_lossy().into_owned();
        sh(as_postgres("pg_ctl", &["-D", &data_s, "-o", &options, "-l", &log, "-w", "start"]).stdout(Stdio::null()))?;
        self.postgres = Some(data);
        let psql = |sql: &str| {
            let mut cmd = Command::new(bin.join("psql"));
            cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-q", "-c", sql]);
            cmd
        };
        sh(&mut psql("CREATE ROLE bastion LOGIN PASSWORD 'smoke-password'"))?;
        sh(&mut psql("CREATE DATABASE bastion OWNER bastion"))
    }

    fn start_hub(&self, n: usize, port: u16, store: &str) -> Result<()> {
        let config = fs::read_to_string(repo_root().join("deploy/compose-hub.toml"))?;
        let Some(listen) = config.lines().find(|l| l.starts_with("listen = ")) else {
            bail!("deploy/compose-hub.toml has no listen line");
        };
        let config = config.replace(listen, &format!("listen = \"127.0.0.1:{port}\""));
        let file = self.dir.join(format!("hub{n}.toml"));
        fs::write(&file, config)?;
        let workspace = self.dir.join("workspace");
        fs::create_dir_all(&workspace)?;
        fs::write(workspace.join("hello.txt"), "hello from the workspace\n")?;
        let mut cmd = self.docker();
        cmd.args(["run", "-d", "--name", &format!("hub{n}"), "--network", "host"]);
        for arg in compose_hub_settings()? {
            cmd.arg(arg);
        }
        cmd.args(["-e", &format!("BASTION_STORE={store}")])
            .args(["-e", &format!("BASTION_SEALING_KEY={}", "5a".repeat(32))])
            .arg("-v")
            .arg(format!("{}:/etc/bastion/hub.toml:ro", file.display()))
            .args(["-v", &format!("hub{n}-state:/var/lib/bastion")])
            .arg("-v")
            .arg(format!("{}:/srv/workspace:ro", workspace.display()))
            .arg("bastion:smoke")
            .stdout(Stdio::null());
        sh(&mut cmd)
    }

    fn start_caddy(&mut self, port: u16, hubs: [u16; 2]) -> Result<()> {
        let caddyfile = fs::read_to_string(repo_root().join("deploy/Caddyfile"))?;
        let rewritten = caddyfile
            // A site address naming an IP would turn on TLS and match that Host only: keep the
            // site host-less and bind it to loopback.
            .replace("\n:8080 {", &format!("\n:{port} {{\n\tbind 127.0.0.1"))
            .replace("hub1:8080 hub2:8080", &format!("127.0.0.1:{} 127.0.0.1:{}", hubs[0], hubs[1]));
        if !rewritten.contains("bind 127.0.0.1") || rewritten.matches("127.0.0.1:").count() != 2 {
            bail!(
                "deploy/Caddyfile no longer has the `:8080` site and `hub1:8080 hub2:8080` upstreams this test rewrites"
            );
        }
        let file = self.dir.join("Caddyfile");
        fs::write(&file, rewritten)?;
        let log = fs::File::create(self.dir.join("caddy.log"))?;
        let child = Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .env("XDG_DATA_HOME", self.dir.join("caddy"))
            .env("XDG_CONFIG_HOME", self.dir.join("caddy"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting caddy")?;
        self.caddy = Some(child);
        Ok(())
    }

    /// Prints the ends of the hubs' and Caddy's logs, for a failed run.
    fn diagnose(&self) {
        for hub in ["hub1", "hub2"] {
            if let Some(log) = logs(self, hub) {
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!("xtask: --- {hub}'s log (end) ---");
                tail.iter().rev().for_each(|l| eprintln!("{l}"));
            }
        }
        if let Ok(log) = fs::read_to_string(self.dir.join("caddy.log")) {
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            eprintln!("xtask: --- caddy's log (end) ---");
            tail.iter().rev().for_each(|l| eprintln!("{l}"));
        }
    }

    /// Stops what was started, in reverse order, by the handles and pids this test holds.
    fn stop(&mut self) {
        if let Some(mut caddy) = self.caddy.take() {
            let _ = caddy.kill();
            let _ = caddy.wait();
        }
        if let Some(mut dockerd) = self.dockerd.take() {
            let _ =
                self.docker().args(["rm", "-f", "hub1", "hub2"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
            // SIGTERM: dockerd stops its containerd and shims itself.
            let _ = Command::new("kill").arg(dockerd.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && matches!(dockerd.try_wait(), Ok(None)) {
                sleep(Duration::from_millis(200));
            }
            let _ = dockerd.kill();
            let _ = dockerd.wait();
            // dockerd leaves its network namespace's mount point behind.
            let _ = Command::new("umount").arg(self.dir.join("exec/netns/default")).stderr(Stdio::null()).status();
        }
        if let Some(data) = self.postgres.take()
            && let Some(bin) = fs::read_dir("/usr/lib/postgresql")
                .ok()
                .and_then(|mut dirs| dirs.find_map(|d| d.ok().map(|d| d.path().join("bin/pg_ctl"))))
        {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bin)
                .arg("-D")
                .arg(&data)
                .args(["-m", "fast", "stop"])
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// The hub services' runtime settings in deploy/docker-compose.yml (the `x-hub` block), as
/// `docker run` flags: `security_opt`, `cap_drop`, `read_only`, `tmpfs`.
fn compose_hub_settings() -> Result<Vec<String>> {
    let compose = fs::read_to_string(repo_root().join("deploy/docker-compose.yml"))?;
    let block: Vec<&str> = compose
        .lines()
        .skip_while(|l| !l.starts_with("x-hub:"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
        .collect();
    let list = |key: &str| -> Vec<String> {
        block
            .iter()
            .skip_while(|l| l.trim() != format!("{key}:"))
            .skip(1)
            .map(|l| l.trim())
            .take_while(|l| l.starts_with("- "))
            .map(|l| l.trim_start_matches("- ").to_owned())
            .collect()
    };
    let mut args = Vec::new();
    for opt in list("security_opt") {
        args.extend(["--security-opt".to_owned(), opt]);
    }
    if block.iter().any(|l| l.trim() == "cap_drop: [ALL]") {
        args.extend(["--cap-drop".to_owned(), "ALL".to_owned()]);
    }
    if block.iter().any(|l| l.trim() == "read_only: true") {
        args.push("--read-only".to_owned());
    }
    for path in list("tmpfs") {
        args.extend(["--tmpfs".to_owned(), path]);
    }
    if !args.iter().any(|a| a == "--security-opt") {
        bail!("found no security_opt in deploy/docker-compose.yml's x-hub block");
    }
    eprintln!("xtask: the hubs run with compose's settings: {}", args.join(" "));
    Ok(args)
}

/// The checks of the module comment, through Caddy on `lb`.
fn check(lab: &Lab, lb: u16) -> Result<()> {
    let base = format!("http://127.0.0.1:{lb}");
    wait_for("both hubs ready through Caddy", Duration::from_secs(90), || {
        get(&format!("{base}/readyz")).is_ok_and(|(status, _)| status == 200)
    })?;
    // The first hub to reach an empty store creates the owner token and prints it once.
    let token = ["hub1", "hub2"]
        .iter()
        .filter_map(|hub| logs(lab, hub))
        .find_map(|log| log.lines().find_map(|l| l.strip_prefix("token: ").map(str::to_owned)))
        .context("no hub printed an owner token")?;

    for _ in 0..4 {
        let result = call(&base, &token, "fs__read_file", json!({"path": "hello.txt"}))?;
        if !result.to_string().contains("hello from the workspace") {
            bail!("fs__read_file through Caddy: {result}");
        }
    }
    for hub in ["hub1", "hub2"] {
        let journal = lab
            .docker()
            .args(["exec", hub, "cat", "/var/lib/bastion/audit.jsonl"])
            .output()
            .context("reading a hub's journal")?;
        let calls = String::from_utf8_lossy(&journal.stdout).lines().filter(|l| l.contains("read_file")).count();
        if calls != 2 {
            bail!("{hub} served {calls} of the 4 calls, not 2: Caddy is not spreading them round-robin");
        }
    }
    eprintln!("xtask: 4 calls through Caddy: 2 on each hub, with the token one hub created (one store)");

    let status = call(&base, &token, "shell__sandbox_status", json!({}))?;
    let s = &status["structuredContent"];
    for (key, want) in [
        ("landlock", json!("full")),
        ("seccomp", json!(true)),
        ("userns", json!(true)),
        ("private_proc", json!(true)),
        ("readonly_mounts", json!(true)),
    ] {
        if s[key] != want {
            bail!("the shell sandbox in the container: {key} is {}, not {want} ({s})", s[key]);
        }
    }
    eprintln!(
        "xtask: the shell sandbox in the container: Landlock, seccomp, namespaces, private /proc, read-only mounts"
    );

    sh(lab.docker().args(["stop", "-t", "10", "hub1"]).stdout(Stdio::null()))?;
    for _ in 0..6 {
        let (status, body) = get(&format!("{base}/readyz"))?;
        if status != 200 {
            bail!("with hub1 stopped, /readyz through Caddy answered {status}: {body}");
        }
    }
    eprintln!("xtask: with hub1 stopped, 6 of 6 requests through Caddy were answered by hub2");
    Ok(())
}

/// A hub container's log (the hub prints to stderr).
fn logs(lab: &Lab, hub: &str) -> Option<String> {
    let out = lab.docker().args(["logs", hub]).output().ok()?;
    Some(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// `GET url` with a loopback `Host`: (status, body).
fn get(url: &str) -> Result<(u16, String)> {
    curl(&["-H", "Host: localhost", url])
}

/// A stateless `tools/call` through `base`; the JSON-RPC result.
fn call(base: &str, token: &str, tool: &str, arguments: Value) -> Result<Value> {
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}});
    let (status, text) = curl(&[
        "-H",
        "Host: localhost",
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-H",
        "Content-Type: application/json",
        "-H",
        "Accept: application/json, text/event-stream",
        "-H",
        "MCP-Protocol-Version: 2025-11-25",
        "--data-binary",
        &body.to_string(),
        &format!("{base}/mcp"),
    ])?;
    let reply: Value = serde_json::from_str(&text).with_context(|| format!("{tool}: {status} {text}"))?;
    match reply.get("result") {
        Some(result) if status == 200 && result["isError"] != true => Ok(result.clone()),
        _ => bail!("{tool} through Caddy: {status} {text}"),
    }
}

fn curl(args: &[&str]) -> Result<(u16, String)> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .context("running curl")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.trim().parse().unwrap_or(0), body.to_owned()))
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        sleep(Duration::from_millis(500));
    }
    bail!("timed out after {} s waiting for {what}", limit.as_secs())
}
