//! The control socket end to end: requests and answers, watching, and the peer uid check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::time::Duration;

use bastion_control::{Engine, Request, socket};
use bastion_policy::Tier;
use bastion_policy::approval::Mode;
use bastion_policy::audit::AuditLog;
use serde_json::{Value, json};

fn request(mode: Mode) -> Request {
    Request {
        server: "fs".into(),
        tool: "delete_path".into(),
        tier: Tier::Destructive,
        principal: "local".into(),
        client: None,
        rule: "default: destructive".into(),
        mode,
        timeout: Duration::from_secs(30),
        rendering: "delete a.txt".into(),
        args_hash: "h".into(),
        fingerprint: None,
    }
}

#[tokio::test]
async fn lists_decides_and_switches() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new("fs", Arc::new(AuditLog::disabled()));
    let listening = socket::listen(engine.clone(), &socket::socket_path(dir.path(), "fs")).unwrap();
    let mode = std::fs::metadata(listening.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let control = std::fs::metadata(socket::socket_dir(dir.path())).unwrap().permissions().mode() & 0o777;
    assert_eq!(control, 0o700);
    assert_eq!(socket::sockets(dir.path()), [listening.path().to_path_buf()]);

    let (tx, rx) = std::sync::mpsc::channel();
    let path = listening.path().to_path_buf();
    std::thread::spawn(move || {
        let _ = socket::watch_socket(&path, |ev| tx.send(ev).is_ok());
    });
    let first = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(first["ok"], true);

    let ticket = engine.submit(request(Mode::Hold));
    let id = ticket.id.clone();
    let list = socket::request(listening.path(), &json!({"op": "list"})).unwrap();
    assert_eq!(list["pending"][0]["id"], id.as_str());
    assert_eq!(list["pending"][0]["rendering"], "delete a.txt");
    let answer = socket::request(listening.path(), &json!({"op": "approve", "id": id})).unwrap();
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(ticket.wait().await, bastion_control::Outcome::Approved { channel: "cli".into() });
    // A replay of the id is refused.
    let again = socket::request(listening.path(), &json!({"op": "approve", "id": id})).unwrap();
    assert_eq!((again["ok"].clone(), again["code"].clone()), (json!(false), json!("not_found")));

    for (op, check) in [
        (json!({"op": "mode", "mode": "observe"}), "mode"),
        (json!({"op": "pause"}), "paused"),
        (json!({"op": "resume"}), "paused"),
        (json!({"op": "mode", "mode": "normal"}), "mode"),
    ] {
        let a = socket::request(listening.path(), &op).unwrap();
        assert_eq!(a["ok"], true, "{a}");
        assert!(a.get(check).is_some());
    }
    let bad = socket::request(listening.path(), &json!({"op": "mode", "mode": "chaos"})).unwrap();
    assert_eq!(bad["code"], "invalid_argument");
    let status = socket::request(listening.path(), &json!({"op": "status"})).unwrap();
    assert_eq!((status["mode"].clone(), status["paused"].clone()), (json!("normal"), json!(false)));

    // The watcher reads on its own thread: wait for the six events rather than take what has
    // arrived so far.
    let want = ["request", "decision", "mode_change", "pause", "resume", "mode_change"];
    let mut events: Vec<Value> = Vec::new();
    while events.iter().filter(|e| e["event"].is_string()).count() < want.len() {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(ev) => events.push(ev),
            Err(_) => break,
        }
    }
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names, want);
}

/// Re-executed as another user by `another_uid_is_refused`: connects, asks to pause, prints
/// what came back.
#[test]
fn child_connects() {
    let Some(path) = std::env::var_os("BASTION_TEST_CONTROL_SOCKET") else { return };
    let answer = socket::request(std::path::Path::new(&path), &json!({"op": "pause"}));
    println!("CHILD-ANSWER {}", answer.map(|v| v.to_string()).unwrap_or_else(|e| format!("error {e}")));
}

#[test]
fn another_uid_is_refused() {
    if !rustix::process::getuid().is_root() {
        // Changing uid needs root; CI runs the suite as root (the container's user).
        eprintln!("not root: the other-uid check cannot switch users here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new("fs", Arc::new(AuditLog::disabled()));
    let listening = socket::listen(engine.clone(), &socket::socket_path(dir.path(), "fs")).unwrap();
    // Open every door the file system has, so that only SO_PEERCRED stands in the way.
    for (p, mode) in [(dir.path(), 0o755), (&socket::socket_dir(dir.path()), 0o755), (listening.path(), 0o777)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_connects", "--nocapture", "--test-threads=1"])
        .env("BASTION_TEST_CONTROL_SOCKET", listening.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.contains("CHILD-ANSWER")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("permission_denied"), "{line}");
    assert!(!engine.paused(), "the other user's request did nothing");
}
