//! The hostile tree of the fs hostile suites (`hostile_*.rs`) and the case runner.
//!
//! Every table case runs in its own tree with a fresh server (all tiers allowed, so the tier cap
//! never hides a confinement bug), and afterwards checks that
//!
//! * the call returned the exact expected error code (or succeeded harmlessly, for paths that are
//!   merely odd names and must be treated literally inside the root),
//! * the server still answers normally, and answered the case within ten seconds,
//! * nothing outside the root changed: the sentinel files (content `SENTINEL-<random>`) are intact
//!   and no file appeared, vanished or changed anywhere outside the root,
//! * no tool output contained the sentinel (or the hardlinked outside file's marker).
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bastion_testkit::{Kind, Server, ServerBuilder, missing_prerequisite, temp_dir, write};
use serde_json::{Value, json};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// The hostile tree
// ---------------------------------------------------------------------------------------------

/// What a path outside the root looks like: type, mode, content or link target.
#[derive(Debug, PartialEq)]
pub enum Entry {
    Link(PathBuf),
    File(u32, Vec<u8>),
    Dir(u32),
    Other(u32),
}

pub struct Tree {
    pub _dir: TempDir,
    pub base: PathBuf,
    pub root: PathBuf,
    pub outside: PathBuf,
    pub sentinel: String,
    pub hard_marker: String,
    pub outputs: Vec<String>,
    pub before: BTreeMap<String, Entry>,
}

/// Everything beneath `base` except the root, without following links.
pub fn outside_state(base: &Path, root: &Path) -> BTreeMap<String, Entry> {
    fn walk(dir: &Path, base: &Path, root: &Path, state: &mut BTreeMap<String, Entry>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p == root {
                continue;
            }
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let mode = meta.permissions().mode();
            let ft = meta.file_type();
            if ft.is_symlink() {
                state.insert(rel, Entry::Link(std::fs::read_link(&p).unwrap()));
            } else if ft.is_file() {
                state.insert(rel, Entry::File(mode & 0o7777, std::fs::read(&p).unwrap()));
            } else if ft.is_dir() {
                state.insert(rel, Entry::Dir(mode & 0o7777));
                walk(&p, base, root, state);
            } else {
                state.insert(rel, Entry::Other(mode));
            }
        }
    }
    let mut state = BTreeMap::new();
    walk(base, base, root, &mut state);
    state
}

/// A marker no file on the machine contains by accident.
pub fn marker(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{prefix}-{nanos:x}{:x}{:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

pub fn build_tree() -> Tree {
    let dir = temp_dir();
    let base = dir.path().canonicalize().unwrap();
    let sentinel = marker("SENTINEL");
    let hard_marker = marker("HARDLINK");
    let root = base.join("proj");
    let outside = base.join("outside");
    for d in [root.join("sub/.git"), root.join(".git/hooks"), outside.clone(), base.join("proj-evil"), base.join("cwd")]
    {
        std::fs::create_dir_all(d).unwrap();
    }

    // Outside the root: sentinels everywhere a traversal might land.
    let line = format!("{sentinel}\n");
    write(outside.join("sentinel.txt"), &line);
    write(base.join("outfile.txt"), &line);
    write(base.join("cwd/cwdfile.txt"), &line);
    write(base.join("loot.txt"), &line);
    write(base.join("proj-evil/data.txt"), &line);
    write(outside.join("hard_target.txt"), format!("{hard_marker}\n"));

    // Inside the root.
    write(root.join("README.md"), "# proj\nplain readme\n");
    write(root.join("sub/file.txt"), "inside sub\n");
    write(root.join("sub/.git/HEAD"), "ref: refs/heads/main\n");
    write(root.join(".git/config"), "[core]\n\tbare = false\n");
    write(root.join(".git/HEAD"), "ref: refs/heads/main\n");
    write(root.join(".env"), "TOKEN=inside-root-env-secret\n");
    std::fs::hard_link(outside.join("hard_target.txt"), root.join("hard.txt")).unwrap();

    let o = outside.display().to_string();
    let links: [(&str, String); 15] = [
        ("abs_file_link", format!("{o}/sentinel.txt")),
        ("rel_file_link", "../outside/sentinel.txt".into()),
        ("abs_dir_link", o.clone()),
        ("rel_dir_link", "../outside".into()),
        ("evil_link", "../proj-evil".into()),
        ("dangling_abs", format!("{o}/created_via_abs.txt")),
        ("dangling_rel", "../outside/created_via_rel.txt".into()),
        ("dangling_dir", format!("{o}/newdir")),
        ("dangling_rel_dir", "../outside/newdir_rel".into()),
        ("proc_root", "/proc/self/root".into()),
        ("proc_cwd", "/proc/self/cwd".into()),
        ("notes_env", ".env".into()),
        ("git_link", ".git".into()),
        ("loop_a", "loop_b".into()),
        ("loop_b", "loop_a".into()),
    ];
    for (name, target) in links {
        symlink(target, root.join(name)).unwrap();
    }

    std::fs::create_dir(root.join("holder")).unwrap();
    symlink(&outside, root.join("holder/out")).unwrap();
    symlink("../../outside/sentinel.txt", root.join("holder/sentinel_link")).unwrap();

    let fifo = Command::new("mkfifo").arg(root.join("pipe")).status().unwrap();
    assert!(fifo.success(), "mkfifo failed");
    drop(std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap());
    // A character device needs privileges; without them the chardev cases are skipped (and fail
    // under CI, which runs as root).
    let _ = Command::new("mknod").args(["-m", "666"]).arg(root.join("devnull")).args(["c", "1", "3"]).status();

    let before = outside_state(&base, &root);
    Tree { _dir: dir, base, root, outside, sentinel, hard_marker, outputs: Vec::new(), before }
}

impl Tree {
    /// Replaces `{base}`, `{root}` and `{outside}` in every string of `value`.
    pub fn sub(&self, value: Value) -> Value {
        match value {
            Value::String(s) => Value::String(
                s.replace("{base}", &self.base.display().to_string())
                    .replace("{root}", &self.root.display().to_string())
                    .replace("{outside}", &self.outside.display().to_string()),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(|v| self.sub(v)).collect()),
            Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, self.sub(v))).collect()),
            other => other,
        }
    }

    /// One call; records its output for the leak check. Returns (code or None, structured, text).
    pub fn run(&mut self, s: &mut Server, tool: &str, args: Value) -> (Option<String>, Value, String) {
        let r = s.call(tool, args);
        self.outputs.push(r.text.clone());
        self.outputs.push(r.structured.to_string());
        (r.error_code(), r.structured, r.text)
    }

    pub fn assert_outside_untouched(&self) {
        let after = outside_state(&self.base, &self.root);
        let appeared: Vec<_> = after.keys().filter(|k| !self.before.contains_key(*k)).collect();
        let vanished: Vec<_> = self.before.keys().filter(|k| !after.contains_key(*k)).collect();
        let changed: Vec<_> =
            after.iter().filter(|(k, v)| self.before.get(*k).is_some_and(|b| b != *v)).map(|(k, _)| k).collect();
        assert!(appeared.is_empty(), "new entries outside the root: {appeared:?}");
        assert!(vanished.is_empty(), "entries outside the root vanished: {vanished:?}");
        assert!(changed.is_empty(), "entries outside the root changed: {changed:?}");
        assert_eq!(std::fs::read_to_string(self.outside.join("sentinel.txt")).unwrap(), format!("{}\n", self.sentinel));
        assert_eq!(
            std::fs::read_to_string(self.outside.join("hard_target.txt")).unwrap(),
            format!("{}\n", self.hard_marker)
        );
        assert!(self.root.is_dir());
        for out in &self.outputs {
            assert!(!out.contains(&self.sentinel), "the sentinel leaked into a tool result: {}", cut(out));
            assert!(
                !out.contains(&self.hard_marker),
                "the hardlinked outside file leaked into a tool result: {}",
                cut(out)
            );
        }
    }
}

pub fn cut(s: &str) -> String {
    s.chars().take(300).collect()
}

pub fn fs(root: &Path) -> ServerBuilder {
    ServerBuilder::new(Kind::Fs).root(root).timeout(Duration::from_secs(15))
}

// ---------------------------------------------------------------------------------------------
// Case tables
// ---------------------------------------------------------------------------------------------

/// What to check after a case, beyond its code.
pub enum Check {
    Nothing,
    Gone(&'static str),
    IsLink(&'static str),
    Regular(&'static str, &'static str),
    NothingCreated(&'static [&'static str]),
    CreatedLiterallyInside(&'static str),
}
pub use Check::*;

pub struct Case {
    pub id: String,
    pub tool: &'static str,
    pub args: Value,
    /// An error code, or "ok".
    pub expect: &'static str,
    pub check: Check,
}

pub fn case(id: &str, tool: &'static str, args: Value, expect: &'static str, check: Check) -> Case {
    Case { id: id.to_string(), tool, args, expect, check }
}

impl Check {
    pub fn verify(&self, tree: &Tree) {
        let lexists = |rel: &str| std::fs::symlink_metadata(tree.root.join(rel)).is_ok();
        match self {
            Nothing => {}
            Gone(rel) => assert!(!lexists(rel), "{rel} still exists"),
            IsLink(rel) => assert!(
                std::fs::symlink_metadata(tree.root.join(rel)).is_ok_and(|m| m.file_type().is_symlink()),
                "{rel} is not a symlink"
            ),
            Regular(rel, content) => {
                let p = tree.root.join(rel);
                assert!(!std::fs::symlink_metadata(&p).unwrap().file_type().is_symlink(), "{rel} is a symlink");
                assert_eq!(std::fs::read_to_string(&p).unwrap(), *content);
            }
            NothingCreated(rels) => {
                for rel in *rels {
                    assert!(!lexists(rel), "{rel} was created");
                }
            }
            CreatedLiterallyInside(raw) => {
                let p = tree.root.join(raw);
                assert!(lexists(raw), "{raw:?} was not created as a literal name inside the root");
                let real = std::fs::canonicalize(&p).unwrap();
                assert!(real.starts_with(&tree.root) && real != tree.root, "{}", real.display());
            }
        }
    }
}

/// Arguments aiming `tool` at `path`.
pub fn args_for(tool: &str, path: &str) -> Value {
    match tool {
        "read_file" | "file_info" | "list_directory" | "create_directory" => json!({"path": path}),
        "find_files" => json!({"pattern": "*", "path": path, "include_hidden": true}),
        "search_text" => {
            json!({"pattern": "SENTINEL", "path": path, "include_hidden": true, "respect_gitignore": false})
        }
        "write_file" => json!({"path": path, "content": "pwned\n"}),
        "edit_file" => json!({"path": path, "old_text": "SENTINEL", "new_text": "pwned"}),
        "delete_path" => json!({"path": path, "recursive": true}),
        "move_path.src" => json!({"source": path, "destination": "moved_here.txt"}),
        "move_path.dst" => json!({"source": "README.md", "destination": path, "overwrite": true}),
        "apply_patch.create" => json!({"patch": format!("--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+pwned\n")}),
        "apply_patch.modify" => json!({"patch": format!("--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-x\n+pwned\n")}),
        other => panic!("no arguments for {other}"),
    }
}

/// The tool a table entry names (`move_path.src` → `move_path`).
pub fn tool_of(entry: &'static str) -> &'static str {
    entry.split('.').next().unwrap_or(entry)
}

pub fn run_case(case: &Case) {
    let mut tree = build_tree();
    if case.id.ends_with("chardev") && !tree.root.join("devnull").exists() {
        missing_prerequisite("cannot create device nodes here (run as root)");
        return;
    }
    let args = tree.sub(case.args.clone());
    let mut s = fs(&tree.root).write().destructive().cwd(tree.base.join("cwd")).start();
    let started = Instant::now();
    let (code, _, text) = tree.run(&mut s, case.tool, args.clone());
    let elapsed = started.elapsed();
    // The server must still be alive and well after the case.
    let (alive, _, _) = tree.run(&mut s, "read_file", json!({"path": "sub/file.txt"}));
    assert!(alive.is_none(), "the server stopped answering normally after the hostile call");
    drop(s);
    let got = code.as_deref().unwrap_or("ok");
    assert_eq!(got, case.expect, "{}({}) -> {got}: {}", case.tool, cut(&args.to_string()), cut(&text));
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    case.check.verify(&tree);
    tree.assert_outside_untouched();
}

/// Runs every case (each in its own tree and server) and names all that failed.
pub fn run_table(cases: Vec<Case>) {
    let mut failed = Vec::new();
    for case in &cases {
        if catch_unwind(AssertUnwindSafe(|| run_case(case))).is_err() {
            failed.push(case.id.clone());
        }
    }
    assert!(failed.is_empty(), "{} of {} cases failed: {failed:?}", failed.len(), cases.len());
}
