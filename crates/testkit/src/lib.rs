//! Bastion's integration-test kit: the real `bastion` binary, in a fresh temporary root, driven over
//! stdio with MCP.
//!
//! Every server test in the workspace goes through here, so that they all spawn the binary users
//! run (`bastion fs|shell|git ARGS`), speak the wire protocol a client speaks, and check the error
//! convention (`isError`, a `code` in the structured content, text starting with `code: `) the
//! same way.
//!
//! ```
//! use bastion_testkit::{Kind, ServerBuilder, temp_dir, write};
//! use serde_json::json;
//!
//! let root = temp_dir();
//! write(root.path().join("hello.txt"), "hello\n");
//! let mut fs = ServerBuilder::new(Kind::Fs).root(root.path()).start();
//! let read = fs.ok("read_file", json!({"path": "hello.txt"}));
//! assert_eq!(read["content"], "hello\n");
//! fs.err("read_file", json!({"path": "../x"}), "path_outside_root");
//! ```
//!
//! The client is a small line-delimited JSON-RPC loop rather than rmcp's: it is synchronous (no
//! runtime per test), shows the exact bytes a server sent when something is off, and answers the
//! one server-to-client request the servers make (`roots/list`) from a list the test sets.
//! Long calls are observed with [`Server::call_with_progress`] (the progress notifications) and
//! abandoned with [`Server::start_call`] and [`Server::cancel`].
//! Independent clients (the official Python SDK) are the job of `tests/python`.
#![deny(missing_docs)]

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use serde_json::{Value, json};

pub mod git;

/// Seconds allowed for one request (a hang is a failure, not a stuck suite).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A built-in server of the `bastion` binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `bastion fs`
    Fs,
    /// `bastion shell`
    Shell,
    /// `bastion git`
    Git,
}

impl Kind {
    /// The subcommand that runs this server.
    pub fn subcommand(self) -> &'static str {
        match self {
            Kind::Fs => "fs",
            Kind::Shell => "shell",
            Kind::Git => "git",
        }
    }
}

/// The workspace this kit belongs to.
pub fn workspace_root() -> PathBuf {
    // crates/testkit → the workspace root, two levels up.
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).map(Path::to_path_buf).unwrap_or_default()
}

/// The `bastion` binary the tests drive.
///
/// With `BASTION_BIN_DIR` set (as `cargo xtask ci` does after its build step) the binary there is
/// used as is. Otherwise `cargo build -p bastion-hub --bin bastion` runs once per test run (per
/// process under `cargo test`, per `NEXTEST_RUN_ID` under nextest):
/// `env!("CARGO_BIN_EXE_bastion")` exists only inside the hub crate, and a binary merely found in
/// `target/` may predate the source under test, which is worse than the second a no-op build
/// costs.
pub fn bastion_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(dir) = std::env::var_os("BASTION_BIN_DIR") {
            let bin = PathBuf::from(dir).join("bastion");
            assert!(bin.is_file(), "{} does not exist (BASTION_BIN_DIR is set)", bin.display());
            return bin;
        }
        let workspace = workspace_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| if t.is_absolute() { t } else { workspace.join(t) })
            .unwrap_or_else(|| workspace.join("target"));
        let bin = target.join("debug").join("bastion");
        // nextest runs each test in its own process: one build per run is enough, and a stamp
        // named after the run says it happened (cargo test shares one process per test binary,
        // where the OnceLock alone does this).
        let stamp = std::env::var("NEXTEST_RUN_ID")
            .ok()
            .map(|run| target.join("tmp").join(format!("bastion-testkit-built-{run}")));
        if stamp.as_ref().is_some_and(|s| s.exists()) && bin.is_file() {
            return bin;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let status = Command::new(&cargo)
            .args(["build", "--quiet", "-p", "bastion-hub", "--bin", "bastion"])
            .current_dir(&workspace)
            .stdin(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => panic!("cargo build -p bastion-hub --bin bastion failed: {other:?}"),
        }
        assert!(bin.is_file(), "{} does not exist after the build", bin.display());
        if let Some(stamp) = stamp {
            // Best effort: without the stamp the next test process runs the no-op build again.
            let _ = std::fs::create_dir_all(target.join("tmp")).and_then(|()| std::fs::write(stamp, b""));
        }
        bin
    })
}

/// Whether the tests run under CI: `CI` set to anything but `""`, `0` or `false` (the rule of
/// `tests/python/prereq.py` and of `cargo xtask`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// A prerequisite of a test is missing: locally the caller skips (this prints why), under CI this
/// panics, since `cargo xtask ci` provisions every prerequisite.
pub fn missing_prerequisite(why: &str) {
    assert!(!in_ci(), "prerequisite missing under CI: {why}");
    eprintln!("skipped: {why}");
}

/// A fresh temporary directory (removed when dropped), named `bastion-test-<random>`.
///
/// The random part mixes cases, as real paths do: a path spliced into a bundled short flag
/// (`make -C/tmp/bastion-test-xE…`) must mean the same whatever letters it holds.
pub fn temp_dir() -> tempfile::TempDir {
    match tempfile::Builder::new().prefix("bastion-test-").tempdir() {
        Ok(d) => d,
        Err(e) => panic!("cannot create a temporary directory: {e}"),
    }
}

/// Writes `data` to `path`, creating its parents.
pub fn write(path: impl AsRef<Path>, data: impl AsRef<[u8]>) {
    let path = path.as_ref();
    if let Some(parent) = path.parent() {
        must(std::fs::create_dir_all(parent), parent);
    }
    must(std::fs::write(path, data), path);
}

/// Every file (not directory) under `dir`, recursively, without following links.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn must<T>(r: std::io::Result<T>, what: &Path) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{}: {e}", what.display()),
    }
}

/// How to start a server: which program, its flags, its environment and the client's roots.
#[derive(Debug)]
pub struct ServerBuilder {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    client_roots: Option<Vec<String>>,
    timeout: Duration,
    expect_name: Option<String>,
    protocol_version: String,
    /// Whether the server's approval gate stays on (off unless asked: these tests drive the
    /// tools themselves; the approvals engine has its own tests).
    approvals: bool,
}

impl ServerBuilder {
    /// `bastion KIND` (see [`bastion_binary`]).
    pub fn new(kind: Kind) -> ServerBuilder {
        let mut b = ServerBuilder::program(bastion_binary());
        b.args.push(kind.subcommand().into());
        b
    }

    /// Another server binary (for example `env!("CARGO_BIN_EXE_bastion-git")` inside its crate).
    pub fn program(path: impl Into<PathBuf>) -> ServerBuilder {
        ServerBuilder {
            program: path.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            client_roots: None,
            timeout: DEFAULT_TIMEOUT,
            expect_name: None,
            protocol_version: "2025-11-25".into(),
            approvals: false,
        }
    }

    /// `--root PATH`.
    pub fn root(self, path: impl AsRef<Path>) -> ServerBuilder {
        self.arg("--root").arg(path.as_ref())
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> ServerBuilder {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// More arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> ServerBuilder {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// `--allow-write`.
    pub fn write(self) -> ServerBuilder {
        self.arg("--allow-write")
    }

    /// `--allow-destructive`.
    pub fn destructive(self) -> ServerBuilder {
        self.arg("--allow-destructive")
    }

    /// Keeps the approval gate on (by default the server starts with `--no-approvals`, so a
    /// destructive call runs instead of waiting for a person).
    pub fn approvals(mut self) -> ServerBuilder {
        self.approvals = true;
        self
    }

    /// One environment variable (the server starts with `PATH`, `HOME` and `RUST_BACKTRACE=1`
    /// only, like a client that passes a clean environment).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> ServerBuilder {
        self.env.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// `HOME` for the server.
    pub fn home(self, dir: impl AsRef<Path>) -> ServerBuilder {
        self.env("HOME", dir.as_ref())
    }

    /// The server's working directory.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> ServerBuilder {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Declares the roots capability and answers `roots/list` with these URIs, as given (no
    /// normalisation: hostile URIs reach the server unchanged).
    pub fn client_root_uris<I: IntoIterator<Item = S>, S: Into<String>>(mut self, uris: I) -> ServerBuilder {
        self.client_roots = Some(uris.into_iter().map(Into::into).collect());
        self
    }

    /// Declares these directories as the client's roots (`file://` URIs of their real paths).
    pub fn client_roots<I: IntoIterator<Item = P>, P: AsRef<Path>>(self, dirs: I) -> ServerBuilder {
        let uris: Vec<String> = dirs
            .into_iter()
            .map(|d| {
                let d = d.as_ref();
                let real = std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf());
                format!("file://{}", real.display())
            })
            .collect();
        self.client_root_uris(uris)
    }

    /// Seconds allowed for each request.
    pub fn timeout(mut self, timeout: Duration) -> ServerBuilder {
        self.timeout = timeout;
        self
    }

    /// Checks `serverInfo.name` in the initialize answer.
    pub fn expect_name(mut self, name: impl Into<String>) -> ServerBuilder {
        self.expect_name = Some(name.into());
        self
    }

    /// The `protocolVersion` the client asks for.
    pub fn protocol_version(mut self, version: impl Into<String>) -> ServerBuilder {
        self.protocol_version = version.into();
        self
    }

    /// Spawns the server and completes the initialize handshake.
    pub fn start(self) -> Server {
        let stderr = must(tempfile::tempfile(), Path::new("stderr capture"));
        let stderr_for_child = must(stderr.try_clone(), Path::new("stderr capture"));
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .args((!self.approvals).then_some("--no-approvals"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_else(|| "/".into()))
            .env("RUST_BACKTRACE", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_for_child));
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("cannot start {}: {e}", self.program.display()),
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            panic!("no stdio pipes");
        };
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                let msg = serde_json::from_str(&line)
                    .unwrap_or_else(|e| json!({"__not_json__": line, "__error__": e.to_string()}));
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            stdin: Some(stdin),
            rx,
            stderr,
            next_id: 1,
            client_roots: self.client_roots.clone(),
            timeout: self.timeout,
        };
        let mut capabilities = json!({});
        if self.client_roots.is_some() {
            capabilities["roots"] = json!({"listChanged": true});
        }
        let init = server.request(
            "initialize",
            json!({
                "protocolVersion": self.protocol_version,
                "capabilities": capabilities,
                "clientInfo": {"name": "bastion-testkit", "version": "1"},
            }),
        );
        assert!(init.get("result").is_some(), "initialize failed: {init}");
        if let Some(name) = &self.expect_name {
            assert_eq!(init["result"]["serverInfo"]["name"], json!(name), "{init}");
        }
        server.notify("notifications/initialized", json!({}));
        server
    }
}

/// A running server (hung up on when dropped, then killed; its stderr is printed if the test is
/// failing).
pub struct Server {
    child: Child,
    // `None` once closed.
    stdin: Option<ChildStdin>,
    rx: Receiver<Value>,
    stderr: std::fs::File,
    next_id: u64,
    client_roots: Option<Vec<String>>,
    timeout: Duration,
}

/// One `tools/call` result.
#[derive(Clone, Debug)]
pub struct CallResult {
    /// `isError`.
    pub is_error: bool,
    /// `structuredContent` (`Null` when absent).
    pub structured: Value,
    /// Every text content block, joined by newlines.
    pub text: String,
    /// The content blocks as sent.
    pub content: Vec<Value>,
}

impl CallResult {
    /// The stable error code (checking text and structured content agree), or `None` on success.
    pub fn error_code(&self) -> Option<String> {
        error_code(self)
    }
}

/// The stable error code of a result, or `None` on success; asserts the error convention: a
/// structured `code` and `message`, and text that starts with `code: `.
pub fn error_code(r: &CallResult) -> Option<String> {
    if !r.is_error {
        return None;
    }
    assert!(r.structured.is_object(), "error without structured content: {}", r.text);
    let Some(code) = r.structured["code"].as_str() else {
        panic!("error without a code: {}", r.structured);
    };
    assert!(r.text.starts_with(&format!("{code}: ")), "error text does not start with its code {code:?}: {:?}", r.text);
    assert!(
        r.structured["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without a message: {}",
        r.structured
    );
    Some(code.to_string())
}

/// One tool result as the git tests take it: `Ok(structured)` or `Err((code, message))`.
pub type Outcome = Result<Value, (String, String)>;

impl Server {
    fn send(&mut self, v: &Value) {
        let line = format!("{v}\n");
        let Some(stdin) = self.stdin.as_mut() else { panic!("the server's stdin is closed") };
        if let Err(e) = stdin.write_all(line.as_bytes()).and_then(|()| stdin.flush()) {
            panic!("cannot write to the server ({e}); stderr:\n{}", self.stderr_text());
        }
    }

    /// Sends a notification.
    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and returns the whole response (`result` or `error`), answering the
    /// server's own requests (`roots/list`, `ping`) while it waits.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        self.wait(id, method, |_| {})
    }

    /// Sends a request without waiting for its answer; returns its id (for [`Server::response`]
    /// or [`Server::cancel`]).
    pub fn send_request(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// Waits for the response to request `id` (sent with [`Server::send_request`]).
    pub fn response(&mut self, id: u64) -> Value {
        self.wait(id, "the request", |_| {})
    }

    /// Abandons request `id` as a client does (`notifications/cancelled`); the server sends no
    /// response to it, and later waits skip one if it comes anyway.
    pub fn cancel(&mut self, id: u64, reason: &str) {
        self.notify("notifications/cancelled", json!({"requestId": id, "reason": reason}));
    }

    /// Reads messages until the response to `id`, answering the server's requests and handing
    /// every notification to `on_notification` (other responses, to abandoned requests, are
    /// skipped).
    fn wait(&mut self, id: u64, what: &str, mut on_notification: impl FnMut(&Value)) -> Value {
        loop {
            let msg = match self.rx.recv_timeout(self.timeout) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{what}: no answer within {:?}; stderr:\n{}", self.timeout, self.stderr_text())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{what}: the server closed stdout; stderr:\n{}", self.stderr_text())
                }
            };
            assert!(msg.get("__not_json__").is_none(), "the server wrote a line that is not JSON: {msg}");
            if let Some(server_method) = msg.get("method").and_then(Value::as_str) {
                match msg.get("id") {
                    Some(req_id) => {
                        let answer = self.answer(server_method, req_id.clone());
                        self.send(&answer);
                    }
                    None => on_notification(&msg),
                }
                continue;
            }
            if msg.get("id") == Some(&json!(id)) {
                return msg;
            }
        }
    }

    fn answer(&self, method: &str, id: Value) -> Value {
        match (method, &self.client_roots) {
            ("roots/list", Some(uris)) => {
                let roots: Vec<Value> = uris.iter().map(|u| json!({"uri": u})).collect();
                json!({"jsonrpc": "2.0", "id": id, "result": {"roots": roots}})
            }
            ("ping", _) => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
            _ => json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}}),
        }
    }

    /// `tools/call`; `Err(error)` for a JSON-RPC (protocol) error.
    pub fn try_call(&mut self, tool: &str, args: Value) -> Result<CallResult, Value> {
        let v = self.request("tools/call", json!({"name": tool, "arguments": args}));
        call_result(tool, &v)
    }

    /// `tools/call` with a progress token: the result (which must not be a protocol error) and
    /// the `params` of every `notifications/progress` the server sent for it, in order.
    pub fn call_with_progress(&mut self, tool: &str, args: Value) -> (CallResult, Vec<Value>) {
        let token = format!("progress-{}", self.next_id);
        let params = json!({"name": tool, "arguments": args, "_meta": {"progressToken": token}});
        let id = self.send_request("tools/call", params);
        let mut progress = Vec::new();
        let v = self.wait(id, tool, |n| {
            if n["method"] == "notifications/progress" && n["params"]["progressToken"] == json!(token) {
                progress.push(n["params"].clone());
            }
        });
        match call_result(tool, &v) {
            Ok(r) => (r, progress),
            Err(e) => panic!("{tool}({}): protocol error {e}", short(&args)),
        }
    }

    /// Starts a `tools/call` without waiting for it; returns the request id (for
    /// [`Server::cancel`], or [`Server::response`]).
    pub fn start_call(&mut self, tool: &str, args: Value) -> u64 {
        self.send_request("tools/call", json!({"name": tool, "arguments": args}))
    }

    /// `tools/call` that must not be a protocol error.
    pub fn call(&mut self, tool: &str, args: Value) -> CallResult {
        match self.try_call(tool, args.clone()) {
            Ok(r) => r,
            Err(e) => panic!("{tool}({}): protocol error {e}", short(&args)),
        }
    }

    /// A call as an [`Outcome`], the error convention checked.
    pub fn outcome(&mut self, tool: &str, args: Value) -> Outcome {
        let r = self.call(tool, args);
        match error_code(&r) {
            Some(code) => Err((code, r.structured["message"].as_str().unwrap_or_default().to_string())),
            None => Ok(r.structured),
        }
    }

    /// Calls a tool that must succeed; returns its structured content.
    pub fn ok(&mut self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args.clone());
        assert!(!r.is_error, "{tool}({}) failed: {}", short(&args), r.text);
        assert!(r.structured.is_object(), "{tool}({}) returned no structured content: {}", short(&args), r.text);
        assert!(!r.text.is_empty(), "{tool}({}) returned no text content", short(&args));
        r.structured
    }

    /// Calls a tool that must fail with `code`; returns the message.
    pub fn err(&mut self, tool: &str, args: Value, code: &str) -> String {
        let r = self.call(tool, args.clone());
        let got = error_code(&r);
        assert_eq!(got.as_deref(), Some(code), "{tool}({}): {}", short(&args), truncate(&r.text, 500));
        r.structured["message"].as_str().unwrap_or_default().to_string()
    }

    /// Every tool of `tools/list`, following cursors.
    pub fn list_tools(&mut self) -> Vec<Value> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let page = self.request("tools/list", params);
            let result = &page["result"];
            assert!(result.is_object(), "tools/list: {page}");
            tools.extend(result["tools"].as_array().cloned().unwrap_or_default());
            match result["nextCursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
                _ => return tools,
            }
        }
    }

    /// The names `tools/list` offers.
    pub fn tool_names(&mut self) -> Vec<String> {
        self.list_tools().iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        let mut f = match self.stderr.try_clone() {
            Ok(f) => f,
            Err(_) => return String::new(),
        };
        let mut s = String::new();
        if f.rewind().is_ok() {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Closes stdin and waits for the server to exit (killing it after the timeout).
    pub fn close(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = self.child.kill();
                    return match self.child.wait() {
                        Ok(s) => s,
                        Err(e) => panic!("wait: {e}"),
                    };
                }
            }
        }
    }
}

/// A `tools/call` response as a [`CallResult`]; `Err(error)` for a JSON-RPC (protocol) error.
fn call_result(tool: &str, v: &Value) -> Result<CallResult, Value> {
    if let Some(e) = v.get("error") {
        return Err(e.clone());
    }
    let result = &v["result"];
    assert!(result.is_object(), "{tool}: malformed response {v}");
    let content = result["content"].as_array().cloned().unwrap_or_default();
    let text: Vec<&str> = content.iter().filter(|c| c["type"] == "text").filter_map(|c| c["text"].as_str()).collect();
    Ok(CallResult {
        is_error: result["isError"] == json!(true),
        structured: result.get("structuredContent").cloned().unwrap_or(Value::Null),
        text: text.join("\n"),
        content,
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        // Like a client hanging up: EOF on stdin, a moment to clean up (the shell server removes
        // its scratch directories), then SIGKILL.
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = self.stderr_text();
            if !text.is_empty() {
                eprintln!("--- stderr of the server ---\n{text}");
            }
        }
    }
}

/// `args` as JSON, cut to 200 characters, for failure messages.
pub fn short(args: &Value) -> String {
    truncate(&args.to_string(), 200)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max).collect::<String>()) }
}
