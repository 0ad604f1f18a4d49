//! Killing the server in the middle of a write leaves the old content or the new, never a torn
//! file: writes go to a temporary file that is renamed over the target only once complete.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn rpc(id: u64, method: &str, params: serde_json::Value) -> String {
    format!("{}\n", serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
}

#[test]
fn killed_mid_write_leaves_old_or_new() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("big.txt");
    let old = "old line\n".repeat(200_000);
    std::fs::write(&target, &old).unwrap();
    let new = "NEW LINE\n".repeat(1_500_000); // 13.5 MB: long enough to be killed mid-write
    let call = rpc(
        2,
        "tools/call",
        serde_json::json!({"name": "write_file", "arguments": {"path": "big.txt", "content": new}}),
    );
    let mut outcomes = (0, 0);
    for delay_ms in [0u64, 5, 10, 20, 30, 45, 60, 80, 100, 130, 160, 200, 260, 330, 400, 500] {
        std::fs::write(&target, &old).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_bastion-fs"))
            .args(["--allow-write", "--root"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdin
            .write_all(
                rpc(1, "initialize", serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "crash", "version": "1"}}))
                    .as_bytes(),
            )
            .unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(line.contains("bastion-fs"), "{line}");
        stdin.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n").unwrap();
        stdin.write_all(call.as_bytes()).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let now = std::fs::read_to_string(&target).unwrap();
        if now == old {
            outcomes.0 += 1;
        } else if now == new {
            outcomes.1 += 1;
        } else {
            panic!("torn file after kill at {delay_ms} ms: {} bytes", now.len());
        }
        // Only our own temporary files may be left behind, never a half-written target.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(name == "big.txt" || name.starts_with(".bastion-tmp-"), "unexpected file {name}");
        }
    }
    eprintln!("old kept: {}, new written: {}", outcomes.0, outcomes.1);
}
