//! The host server on a plain host (no systemd needed): its inspection programs and typed tools
//! against processes and listeners this test starts, every mutating form refused before
//! anything runs, and a service action that waits for the person's approval and shows the
//! exact command.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};

use bastion_testkit::{Server, ServerBuilder};
use serde_json::{Value, json};

fn host(args: &[&str]) -> Server {
    ServerBuilder::program(env!("CARGO_BIN_EXE_bastion-host")).args(args).expect_name("bastion-host").start()
}

/// A process of our own with a name to look for.
struct Sleeper(Child);

impl Sleeper {
    fn start() -> Self {
        Sleeper(Command::new("sleep").arg("300").spawn().unwrap())
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stdout_of(s: &mut Server, program: &str, args: &[&str]) -> String {
    let r = s.call("run_command", json!({"program": program, "args": args}));
    assert_eq!(r.error_code(), None, "{program} {args:?}: {}", r.structured);
    assert_eq!(r.structured["exit_code"], json!(0), "{program} {args:?}: {}", r.structured);
    r.structured["stdout"].as_str().unwrap().to_string()
}

#[test]
fn inspection_programs_see_our_processes_and_listeners() {
    let sleeper = Sleeper::start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let me = std::process::id();
    let mut s = host(&[]);

    let ps = stdout_of(&mut s, "ps", &["-eo", "pid,comm"]);
    let line = ps.lines().find(|l| l.split_whitespace().next() == Some(&sleeper.0.id().to_string()));
    assert!(line.is_some_and(|l| l.ends_with("sleep")), "ps does not list our sleep:\n{ps}");

    // ss lists the socket; the owner comes from check_port (Landlock keeps a sandboxed program
    // from reading another domain's /proc/PID/fd, so `ss -p` names no process).
    let ss = stdout_of(&mut s, "ss", &["-ltnH"]);
    assert!(ss.lines().any(|l| l.contains(&format!("127.0.0.1:{port} "))), "{ss}");

    assert!(stdout_of(&mut s, "df", &["-h"]).contains("Filesystem"));
    assert!(stdout_of(&mut s, "free", &["-m"]).contains("Mem:"));
    assert!(!stdout_of(&mut s, "uname", &["-r"]).trim().is_empty());
    assert!(stdout_of(&mut s, "uptime", &[]).contains("load average"));

    let held = s.call("check_port", json!({"port": port})).structured;
    assert_eq!(held["free"], json!(false), "{held}");
    let owners = &held["held_by"][0]["owners"];
    assert!(owners.as_array().unwrap().iter().any(|o| o["pid"] == json!(me)), "{held}");
    let nearest = held["nearest_free"].as_u64().unwrap();
    assert_ne!(nearest, u64::from(port));
    assert!(nearest.abs_diff(u64::from(port)) < 50, "{held}");

    drop(listener);
    let free = s.call("check_port", json!({"port": port})).structured;
    assert_eq!((free["free"].clone(), free["nearest_free"].clone()), (json!(true), json!(port)), "{free}");
    assert_eq!(s.call("check_port", json!({"port": 0})).error_code().as_deref(), Some("invalid_argument"));

    let overview = s.call("overview", json!({})).structured;
    assert!(overview["os"]["cpus"].as_u64().unwrap() >= 1, "{overview}");
    assert!(overview["memory"]["total_mib"].as_u64().unwrap() > 0, "{overview}");
    assert!(overview["top_memory"].as_array().is_some_and(|t| !t.is_empty()), "{overview}");
    drop(sleeper);
}

#[test]
fn changes_name_a_port_opened_since_the_last_look() {
    let state = bastion_testkit::temp_dir();
    let mut s = host(&["--state-dir", &state.path().display().to_string()]);
    let first = s.call("changes", json!({})).structured;
    assert_eq!(first["baseline_recorded"], json!(true), "{first}");
    assert!(state.path().join("host/snapshot.json").is_file());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let second = s.call("changes", json!({})).structured;
    let added: Vec<&str> =
        second["diff"]["ports"]["added"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let want = format!("tcp 127.0.0.1:{port}: ");
    assert!(added.iter().any(|a| a.starts_with(&want)), "{second}");
    drop(listener);
    let third = s.call("changes", json!({})).structured;
    let removed = third["diff"]["ports"]["removed"].as_array().unwrap();
    assert!(removed.iter().filter_map(Value::as_str).any(|a| a.starts_with(&want)), "{third}");
}

/// Every form that changes state is refused by the rules, before anything runs: the answer is
/// the rules' code, never a program's error.
#[test]
fn mutating_forms_are_refused_before_anything_runs() {
    let mut s = host(&[]);
    let table: &[(&str, &[&str], &str)] = &[
        ("systemctl", &["edit", "nginx"], "argument_not_allowed"),
        ("systemctl", &["set-property", "nginx", "CPUQuota=1%"], "argument_not_allowed"),
        ("systemctl", &["enable", "nginx"], "argument_not_allowed"),
        ("systemctl", &["disable", "nginx"], "argument_not_allowed"),
        ("systemctl", &["mask", "nginx"], "argument_not_allowed"),
        ("systemctl", &["kill", "nginx"], "argument_not_allowed"),
        ("systemctl", &["daemon-reload"], "argument_not_allowed"),
        ("systemctl", &["restart", "nginx"], "argument_not_allowed"),
        ("journalctl", &["--vacuum-size=1K"], "argument_not_allowed"),
        ("journalctl", &["--vacuum-time=1s"], "argument_not_allowed"),
        ("journalctl", &["--vacuum-files=1"], "argument_not_allowed"),
        ("journalctl", &["--rotate"], "argument_not_allowed"),
        ("journalctl", &["--flush"], "argument_not_allowed"),
        ("ip", &["addr", "add", "10.9.9.9/32", "dev", "lo"], "argument_not_allowed"),
        ("ip", &["a", "a", "10.9.9.9/32", "dev", "lo"], "argument_not_allowed"),
        ("docker", &["rm", "-f", "web"], "command_not_allowed"),
        ("docker", &["exec", "web", "sh"], "command_not_allowed"),
        ("docker", &["run", "alpine"], "command_not_allowed"),
        ("sh", &["-c", "id"], "command_not_allowed"),
    ];
    for (program, args, code) in table {
        let r = s.call("run_command", json!({"program": program, "args": args}));
        assert_eq!(r.error_code().as_deref(), Some(*code), "{program} {args:?}: {}", r.structured);
    }
    // The operate tier is not offered without --allow-operate.
    let tools = s.request("tools/list", json!({}));
    let names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["overview", "check_port", "service_logs", "changes", "run_command", "list_allowed_commands"]);
    let r = s.call("service_action", json!({"action": "restart", "unit": "nginx"}));
    assert_eq!(r.error_code().as_deref(), Some("tier_not_allowed"), "{}", r.structured);
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("bastion.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The operate tier asks the person (return mode here, so the test can decide), the request
/// shows the exact command, and the approved call runs once. A unit outside `[ops] units`
/// never runs.
#[test]
fn a_service_action_waits_for_approval_and_shows_the_command() {
    let state = bastion_testkit::temp_dir();
    let config =
        write_config(state.path(), "[ops]\nunits = [\"bastion-test-*.service\"]\n[approval]\nmode = \"return\"\n");
    let state_dir = state.path().join("state");
    let mut s = ServerBuilder::program(env!("CARGO_BIN_EXE_bastion-host"))
        .args(["--allow-operate", "--config", &config, "--state-dir", &state_dir.display().to_string()])
        .approvals()
        .start();
    let args = json!({"action": "restart", "unit": "bastion-test-web"});
    let first = s.call("service_action", args.clone());
    assert_eq!(first.error_code().as_deref(), Some("approval_pending"), "{}", first.structured);
    let sockets = bastion_control::socket::sockets(&state_dir);
    let [socket] = sockets.as_slice() else { panic!("one control socket: {sockets:?}") };
    let list = bastion_control::socket::request(socket, &json!({"op": "list"})).unwrap();
    let pending = &list["pending"][0];
    assert_eq!(pending["tool"], json!("service_action"), "{list}");
    assert_eq!(pending["rule"], json!("default: host operation"), "{list}");
    assert_eq!(pending["rendering"], json!("$ systemctl --no-pager restart -- bastion-test-web.service"), "{list}");
    let id = pending["id"].as_str().unwrap();
    let ok = bastion_control::socket::request(socket, &json!({"op": "approve", "id": id})).unwrap();
    assert_eq!(ok["ok"], json!(true), "{ok}");
    let ran = s.call("service_action", args.clone());
    assert_eq!(ran.error_code(), None, "{}", ran.structured);
    assert_eq!(ran.structured["command"], json!("systemctl --no-pager restart -- bastion-test-web.service"));
    // Spent: the same call asks again.
    assert_eq!(s.call("service_action", args).error_code().as_deref(), Some("approval_pending"));

    // Outside the allowlist: refused (after the person's approval, before systemctl runs).
    let other = json!({"action": "restart", "unit": "ssh.service"});
    assert_eq!(s.call("service_action", other.clone()).error_code().as_deref(), Some("approval_pending"));
    let list = bastion_control::socket::request(socket, &json!({"op": "list"})).unwrap();
    let pending = list["pending"].as_array().unwrap();
    let p = pending.iter().find(|p| p["rendering"].as_str().is_some_and(|r| r.contains("ssh.service"))).unwrap();
    bastion_control::socket::request(socket, &json!({"op": "approve", "id": p["id"]})).unwrap();
    let refused = s.call("service_action", other);
    assert_eq!(refused.error_code().as_deref(), Some("unit_not_allowed"), "{}", refused.structured);
}

/// Container restarts exist only when enabled, name the runtime in the call (so the approval
/// shows the exact command), and check the container's name.
#[test]
fn container_actions_only_when_enabled() {
    let dir = bastion_testkit::temp_dir();
    let config = write_config(
        dir.path(),
        "[ops]\ncontainers = true\ncontainer_restart = true\ncontainer_runtime = \"podman\"\n",
    );
    let mut s = host(&["--allow-operate", "--config", &config]);
    let tools = s.request("tools/list", json!({}));
    let names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"container_action") && names.contains(&"service_action"), "{names:?}");
    let table: &[(Value, &str)] = &[
        (json!({"container": "web", "runtime": "docker"}), "invalid_argument"),
        (json!({"container": "-H", "runtime": "podman"}), "invalid_argument"),
        (json!({"container": "web;id", "runtime": "podman"}), "invalid_argument"),
    ];
    for (args, code) in table {
        let r = s.call("container_action", args.clone());
        assert_eq!(r.error_code().as_deref(), Some(*code), "{args}: {}", r.structured);
    }
    let listed = s.call("list_allowed_commands", json!({})).structured;
    assert_eq!(listed["container_runtime"], json!("podman"), "{listed}");
    let programs: Vec<&str> =
        listed["commands"].as_array().unwrap().iter().filter_map(|c| c["program"].as_str()).collect();
    assert!(programs.contains(&"podman") && programs.contains(&"docker"), "{programs:?}");

    let mut plain = host(&["--allow-operate"]);
    let tools = plain.request("tools/list", json!({}));
    let names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(!names.contains(&"container_action"), "{names:?}");
    let unknown = plain.try_call("container_action", json!({"container": "web", "runtime": "docker"}));
    assert!(unknown.is_err(), "an unknown tool is a protocol error");
}
