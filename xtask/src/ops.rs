//! `cargo xtask ops`: bastion-host inside a real systemd.
//!
//! The Debian root of `cargo xtask system` (mmdebstrap minbase with systemd, systemd-sysv and
//! dbus, cached as `.cache/nspawn-bookworm-login.tar`) is unpacked afresh; the built `bastion-host`
//! binary, a test service (`bastion-ops-web.service`: a Perl listener on a free port that logs a
//! marker line) and a host configuration (`[ops] units = ["bastion-ops-*.service"]`, approvals in
//! return mode) are copied in, and the root is booted with `systemd-nspawn -b`. Then
//! `bastion-host --allow-operate` runs inside the container (`nsenter` into its namespaces, as
//! root, stdio piped to this process) and is driven over MCP:
//!
//! - `systemctl is-active` through `run_command` says `active`; `service_logs` holds the
//!   marker; `check_port` names the port's owner (`perl`) and its unit; `overview` lists the
//!   port with the unit;
//! - `service_action restart` waits for an approval (the request's rendering is the exact
//!   command), is approved through the server's control socket, and changes the unit's
//!   `ExecMainStartTimestamp`;
//! - a unit outside `[ops] units` is refused (`unit_not_allowed`) and keeps its start time;
//! - the mutating forms (`systemctl kill|daemon-reload|set-property|mask`, `journalctl
//!   --vacuum-size|--rotate|--flush`) are refused before anything runs, and the unit stays
//!   active.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use crate::interop::target_dir;
use crate::system::{Container, free_port, fresh_root};
use crate::util::{apt_install, cargo, have, run};

const UNIT: &str = "bastion-ops-web.service";
const STATE_DIR: &str = "var/lib/bastion-host";

/// Runs the suite.
pub fn run_ops() -> Result<()> {
    if !have("systemd-nspawn") {
        apt_install(&["systemd-container"])?;
    }
    run(cargo().args(["build", "--locked", "-p", "bastion-host", "--bin", "bastion-host"]))?;
    let binary = target_dir().join("debug/bastion-host");
    let root = fresh_root("ops")?;
    let result = boot_and_test(&root, &binary);
    std::fs::remove_dir_all(&root).ok();
    result
}

fn install_into(root: &Path, binary: &Path, port: u16) -> Result<()> {
    let write = |to: &str, text: &str, mode: u32| -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dest = root.join(to);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dest, text).with_context(|| format!("writing {}", dest.display()))?;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    let dest = root.join("usr/local/bin/bastion-host");
    std::fs::copy(binary, &dest).with_context(|| format!("copying {}", binary.display()))?;
    // perl-base is in every Debian root: a listener that logs a marker, with nothing to install.
    write(
        "usr/local/bin/bastion-ops-web",
        "#!/usr/bin/perl\nuse strict;\nuse IO::Socket::INET;\n$| = 1;\nmy $port = shift;\n\
         my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 5, ReuseAddr => 1)\n\
         \x20   or die \"listen: $!\";\nprint \"bastion-ops-marker listening on $port\\n\";\n\
         while (my $c = $s->accept) { close $c }\n",
        0o755,
    )?;
    write(
        &format!("etc/systemd/system/{UNIT}"),
        &format!(
            "[Unit]\nDescription=Bastion ops test service\n\n[Service]\nExecStart=/usr/local/bin/bastion-ops-web {port}\n\n\
             [Install]\nWantedBy=multi-user.target\n"
        ),
        0o644,
    )?;
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants)?;
    std::os::unix::fs::symlink(format!("/etc/systemd/system/{UNIT}"), wants.join(UNIT)).ok();
    write(
        "etc/bastion/host.toml",
        "[ops]\nunits = [\"bastion-ops-*.service\"]\n\n[approval]\nmode = \"return\"\n",
        0o644,
    )?;
    Ok(())
}

fn boot_and_test(root: &Path, binary: &Path) -> Result<()> {
    let port = free_port()?;
    install_into(root, binary, port)?;
    let mut nspawn = Command::new("systemd-nspawn");
    nspawn
        .arg("-D")
        .arg(root)
        .args(["-b", "--register=no", "--keep-unit", "--console=pipe", "-M", "bastion-ops"])
        // As in `cargo xtask system`: systemd 252's nspawn filter lacks the Landlock calls.
        .arg("--system-call-filter=landlock_create_ruleset landlock_add_rule landlock_restrict_self")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    eprintln!("xtask: booting {} with systemd-nspawn", root.display());
    let started = Instant::now();
    let child = nspawn.spawn().context("starting systemd-nspawn")?;
    let mut container = Container { child, leader: None };
    let result = (|| {
        let leader = container.wait_for_boot()?;
        eprintln!("xtask: the container's systemd is running after {:.1} s", started.elapsed().as_secs_f64());
        let mut host = Mcp::start(leader)?;
        let outcome = drive(&mut host, root, leader, port);
        host.stop();
        outcome
    })();
    container.stop();
    result
}

fn drive(host: &mut Mcp, root: &Path, leader: u32, port: u16) -> Result<()> {
    // The service may still be starting right after boot.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = host.call("run_command", json!({"program": "systemctl", "args": ["is-active", UNIT]}))?;
        if r["structuredContent"]["stdout"].as_str().is_some_and(|s| s.trim() == "active") {
            break;
        }
        ensure!(Instant::now() < deadline, "{UNIT} never became active: {r}");
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("xtask: run_command systemctl is-active {UNIT}: active");

    let logs = host.call("service_logs", json!({"unit": UNIT, "lines": 20}))?;
    let lines = logs["structuredContent"]["lines"].as_array().cloned().unwrap_or_default();
    let marker = format!("bastion-ops-marker listening on {port}");
    ensure!(lines.iter().filter_map(Value::as_str).any(|l| l.contains(&marker)), "service_logs: {logs}");
    eprintln!("xtask: service_logs holds the marker");

    let held = host.call("check_port", json!({"port": port}))?;
    let st = &held["structuredContent"];
    ensure!(st["free"] == false, "check_port: {held}");
    let owner = &st["held_by"][0]["owners"][0];
    ensure!(owner["command"] == "bastion-ops-web" || owner["command"] == "perl", "check_port owner: {held}");
    ensure!(owner["unit"] == UNIT, "check_port unit: {held}");
    eprintln!("xtask: check_port {port}: held by {} in {UNIT}", owner["command"]);

    let overview = host.call("overview", json!({}))?;
    let ov = &overview["structuredContent"];
    ensure!(ov["os"]["systemd"] == true, "overview: {overview}");
    ensure!(ov["failed_units"].is_array(), "overview: {overview}");
    let listed =
        ov["listening"].as_array().into_iter().flatten().any(|l| {
            l["port"] == json!(port) && l["owners"].as_array().into_iter().flatten().any(|o| o["unit"] == UNIT)
        });
    ensure!(listed, "overview does not list the port with its unit: {overview}");

    for (program, args) in [
        ("systemctl", vec!["kill", UNIT]),
        ("systemctl", vec!["daemon-reload"]),
        ("systemctl", vec!["set-property", UNIT, "CPUQuota=1%"]),
        ("systemctl", vec!["mask", UNIT]),
        ("journalctl", vec!["--vacuum-size=1K"]),
        ("journalctl", vec!["--rotate"]),
        ("journalctl", vec!["--flush"]),
    ] {
        let r = host.call("run_command", json!({"program": program, "args": args}))?;
        ensure!(code_of(&r) == Some("argument_not_allowed"), "{program} {args:?} was not refused: {r}");
    }
    eprintln!("xtask: mutating forms refused");

    let before = start_time(host)?;
    std::thread::sleep(Duration::from_millis(1100));
    let args = json!({"action": "restart", "unit": UNIT});
    let asked = host.call("service_action", args.clone())?;
    ensure!(code_of(&asked) == Some("approval_pending"), "service_action did not ask: {asked}");
    let socket = control_socket(root)?;
    let list = control(leader, &socket, &json!({"op": "list"}))?;
    let pending = &list["pending"][0];
    let want = format!("$ systemctl --no-pager restart -- {UNIT}");
    ensure!(pending["rendering"] == json!(want), "the approval does not show the command: {list}");
    let id = pending["id"].as_str().context("no request id")?.to_owned();
    let decided = control(leader, &socket, &json!({"op": "approve", "id": id}))?;
    ensure!(decided["ok"] == true, "approve: {decided}");
    let ran = host.call("service_action", args)?;
    ensure!(ran["structuredContent"]["succeeded"] == true, "service_action: {ran}");
    let after = start_time(host)?;
    ensure!(before != after && !after.is_empty(), "the restart did not change the start time ({before} → {after})");
    eprintln!("xtask: an approved restart moved {UNIT}'s start time: {before} → {after}");

    // Outside the allowlist: the person is asked (the gate comes first), then the rules refuse.
    let other = json!({"action": "restart", "unit": "systemd-journald.service"});
    let journald_before = host.call(
        "run_command",
        json!({"program": "systemctl", "args": ["show", "-p", "ExecMainStartTimestamp", "--value", "systemd-journald"]}),
    )?;
    let asked = host.call("service_action", other.clone())?;
    ensure!(code_of(&asked) == Some("approval_pending"), "{asked}");
    let list = control(leader, &socket, &json!({"op": "list"}))?;
    let id = list["pending"][0]["id"].as_str().context("no request id")?.to_owned();
    control(leader, &socket, &json!({"op": "approve", "id": id}))?;
    let refused = host.call("service_action", other)?;
    ensure!(code_of(&refused) == Some("unit_not_allowed"), "a unit outside [ops] units ran: {refused}");
    let journald_after = host.call(
        "run_command",
        json!({"program": "systemctl", "args": ["show", "-p", "ExecMainStartTimestamp", "--value", "systemd-journald"]}),
    )?;
    ensure!(
        journald_before["structuredContent"]["stdout"] == journald_after["structuredContent"]["stdout"],
        "journald was restarted"
    );
    let still = host.call("run_command", json!({"program": "systemctl", "args": ["is-active", UNIT]}))?;
    ensure!(still["structuredContent"]["stdout"].as_str().is_some_and(|s| s.trim() == "active"), "{still}");
    eprintln!("xtask: a unit outside [ops] units was refused");
    Ok(())
}

fn start_time(host: &mut Mcp) -> Result<String> {
    let r = host.call(
        "run_command",
        json!({"program": "systemctl", "args": ["show", "-p", "ExecMainStartTimestamp", "--value", UNIT]}),
    )?;
    Ok(r["structuredContent"]["stdout"].as_str().unwrap_or_default().trim().to_owned())
}

fn code_of(result: &Value) -> Option<&str> {
    (result["isError"] == true).then(|| result["structuredContent"]["code"].as_str()).flatten()
}

/// The server's control socket, found through the container's root directory, as the
/// container names it.
fn control_socket(root: &Path) -> Result<String> {
    let dir = root.join(STATE_DIR).join("control");
    let entries = std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
    let name = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".sock"))
        .with_context(|| format!("no control socket in {}", dir.display()))?;
    Ok(format!("/{STATE_DIR}/control/{name}"))
}

/// One request to the control socket, from inside the container (the socket checks its peer's
/// credentials, which a process outside the container's pid namespace cannot present): Perl's
/// IO::Socket::UNIX, which every Debian root has.
fn control(leader: u32, socket: &str, request: &Value) -> Result<Value> {
    const CLIENT: &str = "use IO::Socket::UNIX; my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die \"connect: $!\"; \
                          print $s $ARGV[1], \"\\n\"; my $l = <$s>; print $l;";
    let out = Command::new("nsenter")
        .args(["-t", &leader.to_string(), "-a", "perl", "-e", CLIENT, socket, &request.to_string()])
        .output()
        .context("running the control client in the container")?;
    let answer = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(answer.trim()).with_context(|| {
        format!("control socket answered {answer:?} ({})", String::from_utf8_lossy(&out.stderr).trim())
    })
}

/// bastion-host inside the container over stdio: line-delimited JSON-RPC.
struct Mcp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    next_id: u64,
}

impl Mcp {
    fn start(leader: u32) -> Result<Mcp> {
        let mut child = Command::new("nsenter")
            .args(["-t", &leader.to_string(), "-a", "/usr/local/bin/bastion-host", "--allow-operate"])
            .args(["--config", "/etc/bastion/host.toml", "--state-dir", &format!("/{STATE_DIR}")])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/root")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting bastion-host in the container")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut mcp = Mcp { child, stdin, lines, next_id: 1 };
        let init = mcp.request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "xtask-ops", "version": "1"}}),
        )?;
        ensure!(init["result"]["serverInfo"]["name"] == "bastion-host", "initialize: {init}");
        mcp.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(mcp)
    }

    fn send(&mut self, msg: &Value) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        let mut line = serde_json::to_vec(msg)?;
        line.push(b'\n');
        stdin.write_all(&line)?;
        stdin.flush()?;
        Ok(())
    }

    fn request(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let deadline = Instant::now() + Duration::from_secs(150);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).with_context(|| format!("{method}: no answer"))?;
            let msg: Value = serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))?;
            if msg["id"] == json!(id) && msg.get("method").is_none() {
                return Ok(msg);
            }
        }
    }

    /// A tools/call's result (a protocol error is an error here).
    fn call(&mut self, tool: &str, args: Value) -> Result<Value> {
        let answer = self.request("tools/call", json!({"name": tool, "arguments": args}))?;
        match answer.get("result") {
            Some(result) => Ok(result.clone()),
            None => bail!("{tool}: {answer}"),
        }
    }

    fn stop(&mut self) {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
