//! The control socket: a Unix socket in the state directory through which the person (the CLI,
//! the dashboard) lists and decides approvals and flips the switches.
//!
//! Protocol: one JSON object per line each way. Requests are `{"op": "list"}`, `{"op":
//! "status"}`, `{"op": "approve", "id": ID}`, `{"op": "deny", "id": ID, "reason": TEXT}`,
//! `{"op": "mode", "mode": "observe"|"normal"}`, `{"op": "pause"}`, `{"op": "resume"}` and
//! `{"op": "watch"}` (after `{"ok": true}`, a stream of event lines). Answers are `{"ok": true,
//! ...}` or `{"ok": false, "code": CODE, "message": TEXT}`.
//!
//! Who may connect: the socket is 0600 in a 0700 directory, and every connection's peer uid is
//! read with `SO_PEERCRED` and compared with the server's own uid, so even a socket file made
//! reachable by mistake answers nobody else. Nothing a model holds reaches it: no tool names it
//! (the state directory is outside every root) and bearer tokens are not accepted here.
//!
//! The listener runs on its own thread, blocking in `accept`, so it costs the server's call path
//! nothing and needs no async runtime.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bastion_policy::ErrorCode;
use serde_json::{Value, json};

use crate::engine::{Decision, Engine, RunMode};

/// The directory holding every control socket of a state directory.
pub fn socket_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("control")
}

/// The socket of this process: `control/{name}-{pid}.sock` (several standalone servers may
/// share a state directory; the CLI talks to all of them).
pub fn socket_path(state_dir: &Path, name: &str) -> PathBuf {
    socket_dir(state_dir).join(format!("{name}-{}.sock", std::process::id()))
}

/// A listening control socket; the file is removed when dropped.
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
}

impl ControlSocket {
    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` (creating its directory 0700, the socket 0600) and serves `engine` on a thread.
pub fn listen(engine: Arc<Engine>, path: &Path) -> io::Result<ControlSocket> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let own_uid = rustix::process::getuid();
    std::thread::Builder::new().name("bastion-control".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            match rustix::net::sockopt::socket_peercred(&stream) {
                Ok(cred) if cred.uid == own_uid => {}
                Ok(cred) => {
                    tracing::warn!(uid = cred.uid.as_raw(), "control socket: refused a connection from another user");
                    // The request is read (and ignored) first so the refusal reaches a client
                    // that writes before it reads, instead of a broken pipe.
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                    let _ = BufReader::new(&stream).read_line(&mut String::new());
                    let _ = write_line(
                        &mut stream,
                        &refusal(ErrorCode::PermissionDenied, "the control socket answers only its owner's uid"),
                    );
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: cannot read the peer's credentials; refused");
                    continue;
                }
            }
            let engine = engine.clone();
            let _ = std::thread::Builder::new().name("bastion-control-conn".into()).spawn(move || {
                let _ = serve_connection(&engine, stream);
            });
        }
    })?;
    Ok(ControlSocket { path: path.to_path_buf() })
}

fn serve_connection(engine: &Engine, stream: UnixStream) -> io::Result<()> {
    let mut out = stream.try_clone()?;
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let request: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                write_line(&mut out, &refusal(ErrorCode::InvalidArgument, &format!("not JSON: {e}")))?;
                continue;
            }
        };
        if request.get("op").and_then(Value::as_str) == Some("watch") {
            return watch(engine, &mut out);
        }
        write_line(&mut out, &answer(engine, &request))?;
    }
    Ok(())
}

/// Answers one request (every op but `watch`).
pub fn answer(engine: &Engine, request: &Value) -> Value {
    let op = request.get("op").and_then(Value::as_str).unwrap_or("");
    let id = request.get("id").and_then(Value::as_str);
    let channel = request.get("channel").and_then(Value::as_str).unwrap_or("cli");
    let decided = |approved: bool| {
        let Some(id) = id else { return refusal(ErrorCode::InvalidArgument, "give the request's id") };
        let reason = request.get("reason").and_then(Value::as_str).map(str::to_owned);
        match engine.decide(id, Decision { approved, reason, channel: channel.to_owned() }) {
            Ok(()) => json!({"ok": true, "id": id, "server": engine.server()}),
            Err(e) => refusal(e.code, &e.message),
        }
    };
    match op {
        "list" => json!({"ok": true, "server": engine.server(), "pid": std::process::id(), "pending": engine.list()}),
        "status" => {
            let mut s = engine.status();
            if let Value::Object(m) = &mut s {
                m.insert("ok".into(), Value::Bool(true));
            }
            s
        }
        "approve" => decided(true),
        "deny" => decided(false),
        "mode" => match request.get("mode").and_then(Value::as_str).and_then(RunMode::parse) {
            Some(mode) => match engine.set_mode(mode, channel) {
                Ok(()) => json!({"ok": true, "server": engine.server(), "mode": mode.as_str()}),
                Err(e) => refusal(e.code, &e.message),
            },
            None => refusal(ErrorCode::InvalidArgument, "mode must be 'observe' or 'normal'"),
        },
        "pause" | "resume" => match engine.set_paused(op == "pause", channel) {
            Ok(()) => json!({"ok": true, "server": engine.server(), "paused": op == "pause"}),
            Err(e) => refusal(e.code, &e.message),
        },
        _ => refusal(
            ErrorCode::InvalidArgument,
            "unknown op; one of list, status, approve, deny, mode, pause, resume, watch",
        ),
    }
}

fn watch(engine: &Engine, out: &mut UnixStream) -> io::Result<()> {
    let events = engine.subscribe();
    write_line(out, &json!({"ok": true, "server": engine.server(), "pending": engine.list()}))?;
    loop {
        // A heartbeat now and then notices a watcher that went away, ending this thread.
        let ev = match events.recv_timeout(Duration::from_secs(15)) {
            Ok(ev) => ev,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => json!({"event": "heartbeat"}),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        write_line(out, &ev)?;
    }
}

fn refusal(code: ErrorCode, message: &str) -> Value {
    json!({"ok": false, "code": code.as_str(), "message": message})
}

fn write_line(out: &mut impl Write, v: &Value) -> io::Result<()> {
    let mut line = serde_json::to_vec(v).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// The live control sockets of a state directory, sorted. Files whose server is gone (the
/// connection is refused) are removed on the way.
pub fn sockets(state_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(socket_dir(state_dir)) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .filter(|p| match UnixStream::connect(p) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                let _ = std::fs::remove_file(p);
                false
            }
            Err(_) => false,
        })
        .collect();
    out.sort();
    out
}

/// Sends one request to the socket at `path` and reads the answer.
pub fn request(path: &Path, request: &Value) -> io::Result<Value> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write_line(&mut stream, request)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the control socket closed without answering"));
    }
    serde_json::from_str(&line).map_err(io::Error::other)
}

/// Streams `watch` events from `path` to `each` until it returns false or the server goes.
pub fn watch_socket(path: &Path, mut each: impl FnMut(Value) -> bool) -> io::Result<()> {
    let mut stream = UnixStream::connect(path)?;
    write_line(&mut stream, &json!({"op": "watch"}))?;
    for line in BufReader::new(stream).lines() {
        let v: Value = serde_json::from_str(&line?).map_err(io::Error::other)?;
        if !each(v) {
            break;
        }
    }
    Ok(())
}
