//! Helpers for the integration tests: the real `bastion-git` binary driven over stdio with plain
//! JSON-RPC lines, and repositories built with the `git` program (only ever to build fixtures).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

/// A running server.
pub struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

/// One tool result: `Ok(structured)` or `Err((code, message))`.
pub type Outcome = Result<Value, (String, String)>;

impl Server {
    /// Starts `bastion-git` with every tier allowed on `roots`, `HOME` pointing at `home` (so the
    /// machine's global git config plays no part).
    pub fn start(roots: &[&Path], home: &Path, extra: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bastion-git"));
        for r in roots {
            cmd.arg("--root").arg(r);
        }
        // Approvals (a destructive call asks the person by default) are tested with the
        // approvals engine; these tests drive the tools directly.
        cmd.args(["--allow-destructive", "--no-approvals"]).args(extra);
        Server::start_with(cmd, home)
    }

    /// Starts the server command `cmd` (arguments already set).
    pub fn start_with(mut cmd: Command, home: &Path) -> Server {
        cmd.env_clear()
            .env("HOME", home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut s = Server { child, stdin, stdout, next_id: 1 };
        let init = s.request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}),
        );
        assert_eq!(init["result"]["serverInfo"]["name"], "bastion-git", "{init}");
        s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        s
    }

    fn send(&mut self, v: &Value) {
        self.stdin.write_all(format!("{v}\n").as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    /// Sends a request and returns its response.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "server closed stdout");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == json!(id) {
                return v;
            }
        }
    }

    /// Calls a tool; checks the error shape (text starts with the code) and returns the outcome.
    pub fn call(&mut self, tool: &str, args: Value) -> Outcome {
        let v = self.request("tools/call", json!({"name": tool, "arguments": args}));
        let result = &v["result"];
        assert!(result.is_object(), "{tool} {args}: protocol error {v}");
        let text = result["content"][0]["text"].as_str().unwrap_or_default().to_string();
        let structured = result["structuredContent"].clone();
        if result["isError"] == json!(true) {
            let code = structured["code"].as_str().unwrap().to_string();
            assert!(text.starts_with(&format!("{code}: ")), "{text}");
            Err((code, structured["message"].as_str().unwrap().to_string()))
        } else {
            assert!(!text.is_empty(), "{tool}: no text content");
            Ok(structured)
        }
    }

    /// Calls a tool that must succeed.
    pub fn ok(&mut self, tool: &str, args: Value) -> Value {
        match self.call(tool, args.clone()) {
            Ok(v) => v,
            Err((code, message)) => panic!("{tool} {args} failed: {code}: {message}"),
        }
    }

    /// Calls a tool that must fail with `code`; returns the message.
    pub fn err(&mut self, tool: &str, args: Value, code: &str) -> String {
        match self.call(tool, args.clone()) {
            Ok(v) => panic!("{tool} {args} succeeded, expected {code}: {v}"),
            Err((got, message)) => {
                assert_eq!(got, code, "{tool} {args}: {message}");
                message
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `git` (to build fixtures only) with a clean environment and no global configuration.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_command(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `git` command in `dir` with a neutral environment.
pub fn git_command(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Fixture")
        .env("GIT_AUTHOR_EMAIL", "fixture@example.com")
        .env("GIT_COMMITTER_NAME", "Fixture")
        .env("GIT_COMMITTER_EMAIL", "fixture@example.com")
        .env("GIT_AUTHOR_DATE", "2024-05-01T12:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-05-01T12:00:00Z");
    c
}

/// A new repository at `dir` with an identity in its own config.
pub fn init(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.name", "Repo User"]);
    git(dir, &["config", "user.email", "repo@example.com"]);
}

/// Writes a file (creating parents).
pub fn write(path: impl AsRef<Path>, content: &str) {
    let path = path.as_ref();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
