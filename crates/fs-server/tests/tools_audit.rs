//! The audit log of `bastion fs` and its answer to arguments of the wrong type, through the real
//! binary over stdio.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{Value, json};

mod common;
use common::project::*;

// ---------------------------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------------------------

fn audit_calls(log: &Path) -> Vec<Value> {
    read(log)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|rec| rec.get("tool").is_some())
        .collect()
}

#[test]
fn audit_log() {
    let p = project();
    let log = p.base.join("audit.jsonl");
    let secret_content = "TOP-SECRET-FILE-CONTENT-91c2e";
    let token = "ghp_0123456789abcdefghij";
    let mut s = fs(&p.root).write().arg("--audit-log").arg(&log).start();
    s.ok("read_file", json!({"path": "README.md"}));
    s.ok("write_file", json!({"path": "out.txt", "content": secret_content}));
    s.err("read_file", json!({"path": token}), "not_found");
    s.err("read_file", json!({"path": "../outside"}), "path_outside_root");
    s.err("delete_path", json!({"path": "out.txt"}), "tier_not_allowed");
    s.ok("search_text", json!({"pattern": "x", "globs": [token]}));
    drop(s);
    let raw = read(&log);
    assert!(!raw.contains(secret_content));
    assert!(!raw.contains(token));
    assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o7777, 0o600);
    let calls = audit_calls(&log);
    let field = |f: &str| calls.iter().map(|c| c[f].as_str().unwrap_or_default().to_string()).collect::<Vec<_>>();
    assert_eq!(field("tool"), ["read_file", "write_file", "read_file", "read_file", "delete_path", "search_text"]);
    assert_eq!(field("outcome"), ["ok", "ok", "not_found", "path_outside_root", "tier_not_allowed", "ok"]);
    for c in &calls {
        assert!(c["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{c}");
        assert!(c["result_bytes"].as_u64().is_some_and(|b| b > 0), "{c}");
        assert!(c["server"] == "fs" && c["time"].as_str().is_some_and(|t| !t.is_empty()), "{c}");
    }
    assert_eq!(calls[0]["args"]["path"], "README.md");
    assert_eq!(calls[1]["args"]["content"], format!("[{} bytes]", secret_content.len()));
    assert_eq!(calls[1]["args"]["path"], "out.txt");
    assert_eq!(calls[2]["args"]["path"], "[redacted]");
    assert_eq!(calls[5]["args"]["globs"], json!(["[redacted]"]));
    // The read result (the README) is recorded by size only.
    assert!(!raw.contains("A small example project"));
}

#[test]
fn audit_log_records_unknown_tool_calls() {
    let p = project();
    let log = p.base.join("audit.jsonl");
    let mut s = fs(&p.root).arg("--audit-log").arg(&log).start();
    assert!(s.try_call("no_such_tool", json!({"path": "x"})).is_err(), "an unknown tool is a protocol error");
    s.ok("list_roots", json!({}));
    drop(s);
    let calls = audit_calls(&log);
    let tools: Vec<&str> = calls.iter().map(|c| c["tool"].as_str().unwrap()).collect();
    assert_eq!(tools, ["no_such_tool", "list_roots"]);
    assert!(calls[0]["outcome"].as_str().unwrap().starts_with("protocol_error"));
}

#[test]
fn bad_argument_types_are_invalid_argument() {
    let p = project();
    let mut s = fs(&p.root).write().start();
    s.err("read_file", json!({"path": 5}), "invalid_argument");
    s.err("read_file", json!({"path": "README.md", "offset": "ten"}), "invalid_argument");
    s.err("read_file", json!({}), "invalid_argument");
    s.err("read_many_files", json!({"paths": "README.md"}), "invalid_argument");
    s.err("read_many_files", json!({"paths": vec!["README.md"; 101]}), "invalid_argument");
    s.err("write_file", json!({"path": "x.txt"}), "invalid_argument");
    s.err("list_directory", json!({"cursor": "not-a-cursor"}), "invalid_argument");
    drop(s);
    assert!(!p.root.join("x.txt").exists());
}
