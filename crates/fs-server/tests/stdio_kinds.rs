//! The server speaks MCP whatever its stdio is: pipes (polled on the reactor) or, for stdout, a
//! regular file (tokio's blocking stdio), without leaving stdin non-blocking in the mixed case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

const SESSION: &str = concat!(
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    "\n",
    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    "\n",
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_roots","arguments":{}}}"#,
    "\n",
);

fn run(stdout: Stdio) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bastion-fs"))
        .arg("--root")
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(SESSION.as_bytes()).unwrap();
    // Give the server time to answer before EOF, so both replies are written.
    std::thread::sleep(std::time::Duration::from_millis(500));
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn answers_over_pipes() {
    let out = run(Stdio::piped());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"serverInfo\""), "{text}");
    assert!(text.contains("\"max_tier\""), "{text}");
}

#[test]
fn answers_into_a_regular_file() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = run(Stdio::from(file.reopen().unwrap()));
    let text = std::fs::read_to_string(file.path()).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("temporarily unavailable"), "{stderr}");
    assert!(text.contains("\"serverInfo\""), "{text}\n{stderr}");
    assert!(text.contains("\"max_tier\""), "{text}\n{stderr}");
}
