//! `bastion serve --stdio` end to end with rmcp's own client: the three built-in servers start as
//! children of the real binary and their tools come back namespaced and callable. (The HTTP
//! surface, tokens and scopes are tested with independent clients in `tests/python/test_hub.py`.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use tokio::process::Command;

#[tokio::test]
async fn serve_stdio_aggregates_the_builtin_servers() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hello.txt"), "hello\n").unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bastion"));
    cmd.arg("serve").arg("--stdio").arg("--root").arg(root.path()).arg("--state-dir").arg(state.path());
    cmd.env("RUST_LOG", "warn");
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();

    let info = client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "bastion");
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    for want in ["fs__read_file", "git__status", "shell__run_command"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    // Read-only by default, and every tool carries all the hints.
    assert!(!names.iter().any(|n| n == "fs__write_file"));
    for t in &tools {
        let a = t.annotations.as_ref().unwrap();
        assert!(
            a.read_only_hint.is_some() && a.destructive_hint.is_some() && a.open_world_hint.is_some(),
            "{}",
            t.name
        );
    }

    let mut args = serde_json::Map::new();
    args.insert("path".into(), "hello.txt".into());
    let r = client.call_tool(CallToolRequestParams::new("fs__read_file").with_arguments(args)).await.unwrap();
    assert_ne!(r.is_error, Some(true));
    assert!(serde_json::to_string(&r.content).unwrap().contains("hello"));

    // Unknown tools are protocol errors, as from the servers themselves.
    let e = client.call_tool(CallToolRequestParams::new("fs__nope")).await.unwrap_err();
    assert!(e.to_string().contains("unknown tool"), "{e}");

    client.cancel().await.unwrap();
    let journal = std::fs::read_to_string(state.path().join("audit.jsonl")).unwrap();
    assert!(journal.contains(r#""principal":"stdio""#) && journal.contains(r#""tool":"fs__read_file""#), "{journal}");
}
