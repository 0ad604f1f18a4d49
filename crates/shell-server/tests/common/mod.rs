//! The hostile box of the shell hostile suites (`hostile_*.rs`): a tree with an outside sentinel,
//! a probe program and a Makefile, a fresh `bastion shell` per case, and the checks after it.
//!
//! Every case runs in its own tree with a fresh server and afterwards checks that no marker file
//! appeared (in the tree, `/tmp`, `$HOME`, the working directory or `/`), that nothing outside the
//! root changed (content, mode, mtime, xattrs) and that no output contained the outside sentinel
//! or the output of a planted program.
//!
//! `project` is the small project of the tool suites (`tools_*.rs`).
// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod project;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bastion_testkit::{Kind, Server, ServerBuilder, error_code, temp_dir, write};
use serde_json::{Value, json};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// The hostile tree
// ---------------------------------------------------------------------------------------------

/// What project code tries from inside the sandbox: `python3 probe.py OP ARGS...` prints
/// `PROBE-RAN OP`, then the outcome or `DENIED OP <errno>`.
pub const PROBE_PY: &str = r##"
import ctypes, errno, os, socket, sys

def main(op, *a):
    print("PROBE-RAN", op, flush=True)
    try:
        if op == "read":
            print("READ:" + open(a[0], errors="replace").read())
        elif op == "write":
            with open(a[0], "w") as f:
                f.write("x")
            print("WROTE")
        elif op == "listdir":
            print("LISTED:", os.listdir(a[0]))
        elif op == "tcp":
            s = socket.create_connection((a[0], int(a[1])), timeout=2)
            s.sendall(b"hello")
            print("CONNECTED")
        elif op == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"hello", (a[0], int(a[1])))
            print("SENT")
        elif op == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(a[0])
            print("CONNECTED")
        elif op == "abstract":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect("\0" + a[0])
            print("CONNECTED")
        elif op == "socketpair":
            x, y = socket.socketpair()
            x.send(b"pair-ok")
            print(y.recv(7).decode())
        elif op == "unshare":
            libc = ctypes.CDLL(None, use_errno=True)
            flags = {"user": 0x10000000, "net": 0x40000000, "mount": 0x00020000, "pid": 0x20000000}[a[0]]
            if libc.unshare(flags) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            print("UNSHARED")
        elif op == "kill":
            os.kill(int(a[0]), int(a[1]))
            print("SIGNALLED")
        elif op == "bigwrite":
            with open(a[0], "wb") as f:
                for _ in range(int(a[1]) // 65536):
                    f.write(b"z" * 65536)
            print("BIGWROTE")
        elif op == "env":
            for k, v in sorted(os.environ.items()):
                print(f"{k}={v}")
        elif op == "fds":
            print("FDS:", sorted(int(n) for n in os.listdir("/proc/self/fd")))
        else:
            print("unknown op", op)
    except OSError as e:
        print("DENIED", op, errno.errorcode.get(e.errno, e.errno), e, flush=True)

main(*sys.argv[1:])
"##;

/// `make sh CMD='...'` runs one shell snippet in the sandbox; `make py ARGS='...'` runs probe.py.
pub const MAKEFILE: &str = ".PHONY: sh py\nsh:\n\t@$(CMD)\npy:\n\t@python3 probe.py $(ARGS)\n";

/// What a path looks like: type, mode, mtime, xattrs, content or link target.
#[derive(Debug, PartialEq)]
pub enum Entry {
    Link(PathBuf),
    File(u32, i64, i64, Vec<String>, Vec<u8>),
    Dir(u32, Vec<String>),
    Other(u32),
}

pub struct Box {
    pub _dir: TempDir,
    pub base: PathBuf,
    pub root: PathBuf,
    pub outside: PathBuf,
    pub cfg: PathBuf,
    pub sentinel: String,
    pub marker: String,
    pub outputs: Vec<String>,
    pub before_outside: BTreeMap<String, Entry>,
    pub before_root: BTreeMap<String, Entry>,
}

pub fn xattrs(p: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 64 * 1024];
    match rustix::fs::llistxattr(p, &mut buf[..]) {
        Ok(n) => {
            let mut names: Vec<String> = buf[..n]
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            names.sort();
            names
        }
        Err(_) => Vec::new(),
    }
}

/// Type, mode, times, xattrs and content of everything beneath `top` (except `skip`).
pub fn state(top: &Path, skip: &[&Path]) -> BTreeMap<String, Entry> {
    fn walk(dir: &Path, top: &Path, skip: &[&Path], out: &mut BTreeMap<String, Entry>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if skip.contains(&p.as_path()) {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(top).unwrap().display().to_string();
            let mode = m.permissions().mode();
            let ft = m.file_type();
            if ft.is_symlink() {
                out.insert(rel, Entry::Link(std::fs::read_link(&p).unwrap()));
            } else if ft.is_file() {
                let data = std::fs::read(&p).unwrap();
                out.insert(rel, Entry::File(mode & 0o7777, m.mtime(), m.mtime_nsec(), xattrs(&p), data));
            } else if ft.is_dir() {
                out.insert(rel, Entry::Dir(mode & 0o7777, xattrs(&p)));
                walk(&p, top, skip, out);
            } else {
                out.insert(rel, Entry::Other(mode));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(top, top, skip, &mut out);
    out
}

pub fn token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{nanos:x}{:x}{:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

pub fn build_box() -> Box {
    let dir = temp_dir();
    let base = dir.path().canonicalize().unwrap();
    let sentinel = format!("SENTINEL-{}", token());
    let marker = format!("MARKER{}", token());
    let root = base.join("proj");
    let outside = base.join("outside");
    // The test's own files (configs, listening sockets): not checked.
    let cfg = base.join("cfg");
    for d in [root.join("sub/deeper"), root.join("bin"), outside.clone(), base.join("proj-evil"), cfg.clone()] {
        std::fs::create_dir_all(d).unwrap();
    }
    let line = format!("{sentinel}\n");
    write(outside.join("sentinel.txt"), &line);
    write(outside.join("Makefile"), format!("all:\n\t@echo {sentinel}\n"));
    write(base.join("proj-evil/data.txt"), &line);
    write(base.join("loot.txt"), &line);

    write(root.join("in.txt"), "hello\nworld\n");
    write(root.join("a.txt"), "banana\napple\ncherry\n");
    write(root.join("data.json"), "{\"a\": 1}\n");
    write(root.join("sub/deeper/x.txt"), "deep\n");
    write(root.join(".env"), "TOKEN=inside-root-dotenv-secret\n");
    write(root.join("id_rsa"), "-----BEGIN OPENSSH PRIVATE KEY-----\ninside-root-key-secret\n");
    // Programs a hostile flag would run: if they ever run they print the marker.
    for name in ["pre.sh", "x", "touch"] {
        let script = root.join(name);
        write(&script, format!("#!/bin/sh\necho RAN-{marker}\ntouch {}/{marker}\ncat\n", outside.display()));
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    write(root.join("names.lst"), format!("{}/sentinel.txt\n", outside.display()));
    write(root.join("names0.lst"), format!("{}/sentinel.txt\0", outside.display()));
    write(root.join("prog.jq"), ".\n");
    write(root.join("sums.txt"), format!("0000  {}/sentinel.txt\n", outside.display()));
    symlink(&outside, root.join("link_out")).unwrap();
    symlink(outside.join("sentinel.txt"), root.join("link_sentinel")).unwrap();
    symlink("../outside/sentinel.txt", root.join("rel_link_sentinel")).unwrap();
    symlink("/proc/self/environ", root.join("link_environ")).unwrap();
    symlink(".env", root.join("link_env")).unwrap();
    symlink("/", root.join("link_slash")).unwrap();
    assert!(Command::new("mkfifo").arg(root.join("fifo")).status().unwrap().success());
    write(root.join("Makefile"), MAKEFILE);
    write(root.join("probe.py"), PROBE_PY);
    let before_outside = state(&base, &[&root, &cfg]);
    let before_root = state(&root, &[]);
    Box { _dir: dir, base, root, outside, cfg, sentinel, marker, outputs: Vec::new(), before_outside, before_root }
}

impl Box {
    /// Replaces `{m}`, `{root}`, `{outside}`, `{base}`.
    pub fn sub(&self, s: &str) -> String {
        s.replace("{m}", &self.marker)
            .replace("{root}", &self.root.display().to_string())
            .replace("{outside}", &self.outside.display().to_string())
            .replace("{base}", &self.base.display().to_string())
    }

    pub fn sub_all(&self, args: &[&str]) -> Vec<String> {
        args.iter().map(|a| self.sub(a)).collect()
    }

    /// Every file named after the marker where a command could leave one.
    pub fn markers(&self) -> Vec<String> {
        fn walk(dir: &Path, marker: &str, out: &mut Vec<String>) {
            let Ok(rd) = std::fs::read_dir(dir) else { return };
            for e in rd.flatten() {
                let p = e.path();
                if e.file_name().to_string_lossy().contains(marker) {
                    out.push(p.display().to_string());
                }
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&p, marker, out);
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.base, &self.marker, &mut found);
        let mut dirs = vec![PathBuf::from("/tmp"), PathBuf::from("/")];
        if let Some(home) = std::env::var_os("HOME") {
            dirs.push(PathBuf::from(home));
        }
        if let Ok(cwd) = std::env::current_dir() {
            dirs.push(cwd);
        }
        for d in dirs {
            if let Ok(rd) = std::fs::read_dir(&d) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().contains(&self.marker) {
                        found.push(e.path().display().to_string());
                    }
                }
            }
        }
        found
    }

    pub fn assert_contained(&self, root_unchanged: bool) {
        assert_eq!(self.markers(), Vec::<String>::new(), "a marker file appeared");
        let after = state(&self.base, &[&self.root, &self.cfg]);
        let appeared: Vec<_> = after.keys().filter(|k| !self.before_outside.contains_key(*k)).collect();
        let changed: Vec<_> = after
            .iter()
            .filter(|(k, v)| self.before_outside.get(*k).is_some_and(|b| b != *v))
            .map(|(k, _)| k)
            .collect();
        let vanished: Vec<_> = self.before_outside.keys().filter(|k| !after.contains_key(*k)).collect();
        assert!(
            appeared.is_empty() && changed.is_empty() && vanished.is_empty(),
            "{appeared:?} {changed:?} {vanished:?}"
        );
        for out in &self.outputs {
            assert!(!out.contains(&self.sentinel), "the outside sentinel leaked into a result: {}", cut(out));
            assert!(!out.contains(&format!("RAN-{}", self.marker)), "a planted program ran: {}", cut(out));
        }
        if root_unchanged {
            assert!(state(&self.root, &[]) == self.before_root, "the root changed");
        }
    }

    /// One call; records its output for the leak checks. Returns (code or None, structured).
    pub fn call(&mut self, s: &mut Server, tool: &str, args: Value) -> (Option<String>, Value) {
        let r = s.call(tool, args);
        self.outputs.push(r.text.clone());
        self.outputs.push(r.structured.to_string());
        if r.is_error && r.structured["code"] == "timeout" && r.text.starts_with('{') {
            // A timeout's text is the JSON of the whole result (code, message and the output so far).
            assert_eq!(serde_json::from_str::<Value>(&r.text).unwrap()["code"], "timeout");
            return (Some("timeout".into()), r.structured);
        }
        (error_code(&r), r.structured)
    }

    pub fn run(
        &mut self,
        s: &mut Server,
        program: &str,
        args: &[String],
        cwd: Option<&str>,
    ) -> (Option<String>, Value) {
        let mut a = json!({"program": program, "args": args});
        if let Some(c) = cwd {
            a["cwd"] = json!(c);
        }
        self.call(s, "run_command", a)
    }
}

pub fn cut(s: &str) -> String {
    s.chars().take(400).collect()
}

pub fn shell(root: &Path, profile: &str) -> Server {
    ServerBuilder::new(Kind::Shell).root(root).arg("--profile").arg(profile).timeout(Duration::from_secs(15)).start()
}

/// Whether `program` is on `PATH`.
pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

/// Runs `case` once per entry (each with a fresh box), then names every entry that failed.
pub fn each<T>(cases: &[T], id: impl Fn(&T) -> String, case: impl Fn(&T)) {
    let mut failed = Vec::new();
    for c in cases {
        if catch_unwind(AssertUnwindSafe(|| case(c))).is_err() {
            failed.push(id(c));
        }
    }
    assert!(failed.is_empty(), "{} of {} cases failed: {failed:?}", failed.len(), cases.len());
}

pub const REFUSED: [&str; 3] = ["command_not_allowed", "argument_not_allowed", "invalid_argument"];

// ---------------------------------------------------------------------------------------------
// The rest of c.: waits, recursive readers, host secrets
// ---------------------------------------------------------------------------------------------

/// A shell server with a profile (or none: the config says), a config file and extra
/// environment.
pub fn shell_with(root: &Path, profile: Option<&str>, config: Option<&Path>, env: &[(String, String)]) -> Server {
    let mut b = ServerBuilder::new(Kind::Shell).root(root).timeout(Duration::from_secs(30));
    if let Some(p) = profile {
        b = b.arg("--profile").arg(p);
    }
    if let Some(c) = config {
        b = b.arg("--config").arg(c);
    }
    for (k, v) in env {
        b = b.env(k, v);
    }
    b.start()
}

impl Box {
    /// `run_command` with extra fields (`timeout_ms`, `stdin`, ...).
    pub fn run_with(
        &mut self,
        s: &mut Server,
        program: &str,
        args: &[String],
        extra: Value,
    ) -> (Option<String>, Value) {
        let mut a = json!({"program": program, "args": args});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            a[k] = v;
        }
        self.call(s, "run_command", a)
    }

    /// Runs a shell snippet as a make recipe inside the sandbox; returns the run_command result.
    pub fn sandboxed(&mut self, s: &mut Server, snippet: &str, timeout_ms: u64) -> Value {
        let cmd = self.sub(snippet).replace('$', "$$");
        let (code, out) = self.run_with(
            s,
            "make",
            &["-s".into(), "sh".into(), format!("CMD={cmd}")],
            json!({"timeout_ms": timeout_ms}),
        );
        assert!(code.is_none(), "{code:?} {out}");
        out
    }

    /// Runs probe.py inside the sandbox; returns stdout + stderr.
    pub fn probe(&mut self, s: &mut Server, args: &[&str]) -> String {
        let joined = args.iter().map(|a| self.sub(a)).collect::<Vec<_>>().join(" ");
        let (code, out) = self.run_with(
            s,
            "make",
            &["-s".into(), "py".into(), format!("ARGS={joined}")],
            json!({"timeout_ms": 20_000}),
        );
        assert!(code.is_none(), "{code:?} {out}");
        let text =
            format!("{}{}", out["stdout"].as_str().unwrap_or_default(), out["stderr"].as_str().unwrap_or_default());
        assert!(text.contains(&format!("PROBE-RAN {}", args[0])), "the probe did not run: {text}");
        text
    }
}

pub fn stdout(out: &Value) -> &str {
    out["stdout"].as_str().unwrap_or_default()
}

pub fn stderr(out: &Value) -> &str {
    out["stderr"].as_str().unwrap_or_default()
}

/// Pids of live processes whose command line contains `marker` (like `pgrep -f`; this process
/// and zombies excluded), only those whose command name is `name` when given.
pub fn pgrep(marker: &str, name: Option<&str>) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        if !cmdline.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = &stat[open + 1..close];
        let state = stat[close + 2..].chars().next().unwrap_or('?');
        if state == 'Z' || name.is_some_and(|n| n != comm) {
            continue;
        }
        found.push(pid);
    }
    found
}

/// Polls until no process has `marker` in its command line, for at most `within`; returns the
/// survivors.
pub fn wait_gone(marker: &str, within: Duration) -> Vec<u32> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = pgrep(marker, None);
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A unique `sleep` duration that doubles as a marker in the process list.
pub fn unique_sleep() -> String {
    let t = token();
    let n = u64::from_str_radix(&t[t.len().saturating_sub(8)..], 16).unwrap_or(0);
    format!("{}.{:08}", 400 + n % 500, n % 100_000_000)
}
