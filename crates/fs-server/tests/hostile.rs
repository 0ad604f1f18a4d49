//! Hostile inputs through the real `bastion fs` binary: traversal strings, prefix confusion,
//! symlinks and hardlinks leading out, special files, over-long and NUL paths, git metadata, and
//! moves/deletes aimed at the root itself.
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
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bastion_testkit::{Kind, Server, ServerBuilder, missing_prerequisite, temp_dir, write};
use serde_json::{Value, json};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// The hostile tree
// ---------------------------------------------------------------------------------------------

/// What a path outside the root looks like: type, mode, content or link target.
#[derive(Debug, PartialEq)]
enum Entry {
    Link(PathBuf),
    File(u32, Vec<u8>),
    Dir(u32),
    Other(u32),
}

struct Tree {
    _dir: TempDir,
    base: PathBuf,
    root: PathBuf,
    outside: PathBuf,
    sentinel: String,
    hard_marker: String,
    outputs: Vec<String>,
    before: BTreeMap<String, Entry>,
}

/// Everything beneath `base` except the root, without following links.
fn outside_state(base: &Path, root: &Path) -> BTreeMap<String, Entry> {
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
fn marker(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{prefix}-{nanos:x}{:x}{:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn build_tree() -> Tree {
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
    fn sub(&self, value: Value) -> Value {
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
    fn run(&mut self, s: &mut Server, tool: &str, args: Value) -> (Option<String>, Value, String) {
        let r = s.call(tool, args);
        self.outputs.push(r.text.clone());
        self.outputs.push(r.structured.to_string());
        (r.error_code(), r.structured, r.text)
    }

    fn assert_outside_untouched(&self) {
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

fn cut(s: &str) -> String {
    s.chars().take(300).collect()
}

fn fs(root: &Path) -> ServerBuilder {
    ServerBuilder::new(Kind::Fs).root(root).timeout(Duration::from_secs(15))
}

// ---------------------------------------------------------------------------------------------
// Case tables
// ---------------------------------------------------------------------------------------------

/// What to check after a case, beyond its code.
enum Check {
    Nothing,
    Gone(&'static str),
    IsLink(&'static str),
    Regular(&'static str, &'static str),
    NothingCreated(&'static [&'static str]),
    CreatedLiterallyInside(&'static str),
}
use Check::*;

struct Case {
    id: String,
    tool: &'static str,
    args: Value,
    /// An error code, or "ok".
    expect: &'static str,
    check: Check,
}

fn case(id: &str, tool: &'static str, args: Value, expect: &'static str, check: Check) -> Case {
    Case { id: id.to_string(), tool, args, expect, check }
}

impl Check {
    fn verify(&self, tree: &Tree) {
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
fn args_for(tool: &str, path: &str) -> Value {
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
fn tool_of(entry: &'static str) -> &'static str {
    entry.split('.').next().unwrap_or(entry)
}

const ALL_TOOLS: [&str; 13] = [
    "read_file",
    "file_info",
    "list_directory",
    "find_files",
    "search_text",
    "write_file",
    "edit_file",
    "create_directory",
    "delete_path",
    "move_path.src",
    "move_path.dst",
    "apply_patch.create",
    "apply_patch.modify",
];

/// Paths that lead outside the root, by any spelling: always path_outside_root, for every tool.
const OUTSIDE_PATHS: [(&str, &str); 19] = [
    ("dotdot", "../outfile.txt"),
    ("dotdot-deep", "../../../../../../../../etc/passwd"),
    ("sub-dotdot-dotdot", "sub/../../outfile.txt"),
    ("dot-dotdot", "./../outfile.txt"),
    ("sub-dot-dotdot", "sub/./../../outside/sentinel.txt"),
    ("abs-outside", "{outside}/sentinel.txt"),
    ("abs-etc-passwd", "/etc/passwd"),
    ("abs-slash", "/"),
    ("abs-double-slash", "//etc/passwd"),
    ("abs-root-dotdot", "{root}/../outfile.txt"),
    ("abs-root-sub-dotdot", "{root}/sub/../../outside/sentinel.txt"),
    ("abs-root-out-and-back", "{root}/../proj/README.md"),
    ("sibling-dotdot", "../proj-evil/data.txt"),
    ("sibling-prefix-abs", "{base}/proj-evil/data.txt"),
    ("sibling-prefix-concat", "{root}-evil/data.txt"),
    ("abs-base", "{base}"),
    ("abs-proc-self-root", "/proc/self/root{outside}/sentinel.txt"),
    ("abs-proc-self-cwd", "/proc/self/cwd/cwdfile.txt"),
    ("abs-proc-fd", "/proc/self/fd/0"),
];

/// Odd spellings that are NOT traversal on Linux: treated as literal names inside the root.
const LITERAL_PATHS: [(&str, &str); 15] = [
    ("urlenc-slash", "..%2f..%2floot.txt"),
    ("urlenc-dots", "%2e%2e/%2e%2e/loot.txt"),
    ("urlenc-all", "%2e%2e%2f%2e%2e%2floot.txt"),
    ("double-urlenc", "%252e%252e%252floot.txt"),
    ("dots4-slashes", "....//....//loot.txt"),
    ("dots3", ".../loot.txt"),
    ("backslashes", "..\\..\\loot.txt"),
    ("mixed-slashes", "..\\/..\\/loot.txt"),
    ("overlong-utf8-urlenc", "%c0%ae%c0%ae/%c0%ae%c0%ae/loot.txt"),
    ("overlong-utf8-chars", "\u{c0}\u{ae}\u{c0}\u{ae}/loot.txt"),
    ("fullwidth-dots", "\u{ff0e}\u{ff0e}/\u{ff0e}\u{ff0e}/loot.txt"),
    ("one-dot-leader", "\u{2025}/loot.txt"),
    ("tomcat-semicolon", "..;/loot.txt"),
    ("file-uri", "file:///etc/loot.txt"),
    ("trailing-space-dots", ".. /loot.txt"),
];

/// What each tool says about a literal name that does not exist yet.
fn literal_expect(tool: &str) -> &'static str {
    match tool {
        "write_file" | "create_directory" | "move_path.dst" | "apply_patch.create" => "ok",
        _ => "not_found",
    }
}

fn outside_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, path) in OUTSIDE_PATHS {
        for tool in ALL_TOOLS {
            cases.push(case(
                &format!("{name}-{tool}"),
                tool_of(tool),
                args_for(tool, path),
                "path_outside_root",
                Nothing,
            ));
        }
    }
    cases
}

fn literal_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, path) in LITERAL_PATHS {
        for tool in ALL_TOOLS {
            let mut expect = literal_expect(tool);
            if tool.starts_with("apply_patch") && path.contains('\\') {
                expect = "patch_failed"; // diff headers cannot carry an unquoted backslash
            }
            let check = if expect == "ok" { CreatedLiterallyInside(path) } else { Nothing };
            cases.push(case(&format!("{name}-{tool}"), tool_of(tool), args_for(tool, path), expect, check));
        }
    }
    cases
}

fn malformed_cases() -> Vec<Case> {
    let long_name = "n".repeat(300);
    let paths = [
        ("nul", "sub/a\x00b.txt".to_string()),
        ("nul-dotdot", "..\x00/outfile.txt".to_string()),
        ("long-path-5000", "a/".repeat(2500)),
        ("long-single-5000", "x".repeat(5000)),
        ("long-name-300", format!("sub/{long_name}")),
        ("long-name-300-abs", format!("{{root}}/{long_name}")),
    ];
    let tools = [
        "read_file",
        "file_info",
        "list_directory",
        "search_text",
        "write_file",
        "edit_file",
        "create_directory",
        "delete_path",
        "move_path.src",
        "move_path.dst",
    ];
    let mut cases = Vec::new();
    for (label, path) in &paths {
        for tool in tools {
            cases.push(case(&format!("{label}-{tool}"), tool_of(tool), args_for(tool, path), "invalid_path", Nothing));
        }
    }
    cases
}

fn run_case(case: &Case) {
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
fn run_table(cases: Vec<Case>) {
    let mut failed = Vec::new();
    for case in &cases {
        if catch_unwind(AssertUnwindSafe(|| run_case(case))).is_err() {
            failed.push(case.id.clone());
        }
    }
    assert!(failed.is_empty(), "{} of {} cases failed: {failed:?}", failed.len(), cases.len());
}

#[test]
fn paths_leading_outside_are_refused_by_every_tool() {
    run_table(outside_cases());
}

#[test]
fn odd_spellings_are_literal_names_inside_the_root() {
    run_table(literal_cases());
}

#[test]
fn symlinks() {
    run_table(symlink_cases());
}

#[test]
fn hardlinks() {
    run_table(hardlink_cases());
}

#[test]
fn malformed_paths() {
    run_table(malformed_cases());
}

#[test]
fn special_files() {
    run_table(special_cases());
}

#[test]
fn git_metadata_and_secrets() {
    run_table(git_cases());
}

#[test]
fn moves() {
    run_table(move_cases());
}

#[test]
fn deletes_and_writes_aimed_at_the_root() {
    run_table(delete_cases());
}

// The tables below are the Python suite's, case for case.

/// `SYMLINK_CASES` of the Python table.
fn symlink_cases() -> Vec<Case> {
    vec![
        case("read-abs-file-link", "read_file", json!({"path": "abs_file_link"}), "path_outside_root", Nothing),
        case("read-rel-file-link", "read_file", json!({"path": "rel_file_link"}), "path_outside_root", Nothing),
        case(
            "read-abs-dir-link",
            "read_file",
            json!({"path": "abs_dir_link/sentinel.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "read-rel-dir-link",
            "read_file",
            json!({"path": "rel_dir_link/sentinel.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case("read-sibling-link", "read_file", json!({"path": "evil_link/data.txt"}), "path_outside_root", Nothing),
        case(
            "read-abs-via-link-prefix",
            "read_file",
            json!({"path": "{root}/abs_dir_link/sentinel.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case("info-abs-file-link", "file_info", json!({"path": "abs_file_link"}), "path_outside_root", Nothing),
        case("info-rel-dir-link", "file_info", json!({"path": "rel_dir_link"}), "path_outside_root", Nothing),
        case("list-abs-dir-link", "list_directory", json!({"path": "abs_dir_link"}), "path_outside_root", Nothing),
        case("list-rel-dir-link", "list_directory", json!({"path": "rel_dir_link"}), "path_outside_root", Nothing),
        case(
            "find-rel-dir-link",
            "find_files",
            json!({"pattern": "*", "path": "rel_dir_link"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "search-abs-dir-link",
            "search_text",
            json!({"pattern": "SENTINEL", "path": "abs_dir_link"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "search-rel-file-link",
            "search_text",
            json!({"pattern": "SENTINEL", "path": "rel_file_link"}),
            "path_outside_root",
            Nothing,
        ),
        case("read-loop", "read_file", json!({"path": "loop_a"}), "path_outside_root", Nothing),
        case(
            "read-proc-root-passwd",
            "read_file",
            json!({"path": "proc_root/etc/passwd"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "read-proc-root-sentinel",
            "read_file",
            json!({"path": "proc_root{outside}/sentinel.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case("read-proc-cwd", "read_file", json!({"path": "proc_cwd/cwdfile.txt"}), "path_outside_root", Nothing),
        case("list-proc-root", "list_directory", json!({"path": "proc_root"}), "path_outside_root", Nothing),
        case(
            "write-proc-root",
            "write_file",
            json!({"path": "proc_root{outside}/pwned.txt", "content": "x"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "write-abs-file-link",
            "write_file",
            json!({"path": "abs_file_link", "content": "pwned"}),
            "not_a_regular_file",
            IsLink("abs_file_link"),
        ),
        case(
            "write-rel-file-link",
            "write_file",
            json!({"path": "rel_file_link", "content": "pwned"}),
            "not_a_regular_file",
            IsLink("rel_file_link"),
        ),
        case(
            "write-dangling-abs",
            "write_file",
            json!({"path": "dangling_abs", "content": "pwned"}),
            "not_a_regular_file",
            IsLink("dangling_abs"),
        ),
        case(
            "write-dangling-rel",
            "write_file",
            json!({"path": "dangling_rel", "content": "pwned"}),
            "not_a_regular_file",
            IsLink("dangling_rel"),
        ),
        case(
            "write-dangling-abs-no-overwrite",
            "write_file",
            json!({"path": "dangling_abs", "content": "pwned", "overwrite": false}),
            "already_exists",
            Nothing,
        ),
        case(
            "write-into-dangling-dir",
            "write_file",
            json!({"path": "dangling_dir/x.txt", "content": "pwned"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "write-into-dangling-rel-dir",
            "write_file",
            json!({"path": "dangling_rel_dir/x.txt", "content": "pwned"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "write-into-abs-dir-link",
            "write_file",
            json!({"path": "abs_dir_link/new.txt", "content": "pwned"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "write-into-rel-dir-link",
            "write_file",
            json!({"path": "rel_dir_link/new.txt", "content": "pwned"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "write-over-abs-dir-link-file",
            "write_file",
            json!({"path": "abs_dir_link/sentinel.txt", "content": "pwned"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "edit-abs-file-link",
            "edit_file",
            json!({"path": "abs_file_link", "old_text": "SENTINEL", "new_text": "pwned"}),
            "not_a_regular_file",
            Nothing,
        ),
        case(
            "edit-through-dir-link",
            "edit_file",
            json!({"path": "rel_dir_link/sentinel.txt", "old_text": "SENTINEL", "new_text": "pwned"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "patch-through-dir-link",
            "apply_patch",
            json!({"patch": "--- a/abs_dir_link/sentinel.txt\n+++ b/abs_dir_link/sentinel.txt\n@@ -1 +1 @@\n-x\n+pwned\n"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "patch-create-dangling",
            "apply_patch",
            json!({"patch": "--- /dev/null\n+++ b/dangling_abs\n@@ -0,0 +1 @@\n+pwned\n"}),
            "already_exists",
            Nothing,
        ),
        case("mkdir-dangling-dir", "create_directory", json!({"path": "dangling_dir"}), "path_outside_root", Nothing),
        case(
            "mkdir-dangling-rel-dir",
            "create_directory",
            json!({"path": "dangling_rel_dir/deeper"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "mkdir-in-abs-dir-link",
            "create_directory",
            json!({"path": "abs_dir_link/newdir"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "move-into-dir-link",
            "move_path",
            json!({"source": "README.md", "destination": "abs_dir_link/README.md"}),
            "path_outside_root",
            Regular("README.md", "# proj\nplain readme\n"),
        ),
        case(
            "move-from-dir-link",
            "move_path",
            json!({"source": "rel_dir_link/sentinel.txt", "destination": "stolen.txt"}),
            "path_outside_root",
            NothingCreated(&["stolen.txt"]),
        ),
        case(
            "move-link-itself",
            "move_path",
            json!({"source": "abs_file_link", "destination": "renamed_link"}),
            "ok",
            IsLink("renamed_link"),
        ),
        case(
            "move-over-link-no-overwrite",
            "move_path",
            json!({"source": "README.md", "destination": "abs_file_link"}),
            "already_exists",
            IsLink("abs_file_link"),
        ),
        case(
            "move-over-link-replaces-link",
            "move_path",
            json!({"source": "README.md", "destination": "abs_file_link", "overwrite": true}),
            "ok",
            Regular("abs_file_link", "# proj\nplain readme\n"),
        ),
        case("delete-file-link", "delete_path", json!({"path": "abs_file_link"}), "ok", Gone("abs_file_link")),
        case(
            "delete-dir-link-recursive",
            "delete_path",
            json!({"path": "abs_dir_link", "recursive": true}),
            "ok",
            Gone("abs_dir_link"),
        ),
        case(
            "delete-dir-holding-links-out",
            "delete_path",
            json!({"path": "holder", "recursive": true}),
            "ok",
            Gone("holder"),
        ),
        case(
            "move-dir-holding-links-out",
            "move_path",
            json!({"source": "holder", "destination": "holder2"}),
            "ok",
            IsLink("holder2/out"),
        ),
        case(
            "read-through-nested-link",
            "read_file",
            json!({"path": "holder/out/sentinel.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "read-nested-file-link",
            "read_file",
            json!({"path": "holder/sentinel_link"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "delete-through-dir-link",
            "delete_path",
            json!({"path": "rel_dir_link/sentinel.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "delete-through-abs-dir-link",
            "delete_path",
            json!({"path": "abs_dir_link/sentinel.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case("read-link-to-env", "read_file", json!({"path": "notes_env"}), "denied_by_glob", Nothing),
        case("info-link-to-env", "file_info", json!({"path": "notes_env"}), "denied_by_glob", Nothing),
        case(
            "search-link-to-env",
            "search_text",
            json!({"pattern": "TOKEN", "path": "notes_env"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "write-link-to-env",
            "write_file",
            json!({"path": "notes_env", "content": "TOKEN=x"}),
            "not_a_regular_file",
            IsLink("notes_env"),
        ),
        case(
            "write-via-git-link",
            "write_file",
            json!({"path": "git_link/config", "content": "[core]\n\thooksPath = /tmp\n"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "write-hook-via-git-link",
            "write_file",
            json!({"path": "git_link/hooks/pre-commit", "content": "#!/bin/sh\n"}),
            "denied_by_glob",
            NothingCreated(&[".git/hooks/pre-commit"]),
        ),
        case(
            "edit-via-git-link",
            "edit_file",
            json!({"path": "git_link/config", "old_text": "bare = false", "new_text": "bare = true"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "patch-via-git-link",
            "apply_patch",
            json!({"patch": "--- a/git_link/config\n+++ b/git_link/config\n@@ -1,2 +1,2 @@\n [core]\n-\tbare = false\n+\tbare = true\n"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "mkdir-via-git-link",
            "create_directory",
            json!({"path": "git_link/hooks/new"}),
            "denied_by_glob",
            NothingCreated(&[".git/hooks/new"]),
        ),
        case("delete-via-git-link", "delete_path", json!({"path": "git_link/config"}), "denied_by_glob", Nothing),
        case(
            "move-into-git-link",
            "move_path",
            json!({"source": "README.md", "destination": "git_link/README.md"}),
            "denied_by_glob",
            NothingCreated(&[".git/README.md"]),
        ),
    ]
}

/// `HARDLINK_CASES` of the Python table.
fn hardlink_cases() -> Vec<Case> {
    vec![
        case(
            "write-hardlink",
            "write_file",
            json!({"path": "hard.txt", "content": "pwned\n"}),
            "hardlinked_file",
            Nothing,
        ),
        case(
            "edit-hardlink",
            "edit_file",
            json!({"path": "hard.txt", "old_text": "HARDLINK", "new_text": "pwned"}),
            "hardlinked_file",
            Nothing,
        ),
        case(
            "edit-hardlink-dry-run-shows-no-content",
            "edit_file",
            json!({"path": "hard.txt", "old_text": "nomatch-zzz", "new_text": "pwned"}),
            "edit_mismatch",
            Nothing,
        ),
        case("delete-hardlink-name-only", "delete_path", json!({"path": "hard.txt"}), "ok", Gone("hard.txt")),
        case(
            "write-hardlink-abs",
            "write_file",
            json!({"path": "{root}/hard.txt", "content": "pwned\n"}),
            "hardlinked_file",
            Nothing,
        ),
    ]
}

/// `SPECIAL_CASES` of the Python table.
fn special_cases() -> Vec<Case> {
    vec![
        case("read-fifo", "read_file", json!({"path": "pipe"}), "not_a_regular_file", Nothing),
        case("write-fifo", "write_file", json!({"path": "pipe", "content": "x"}), "not_a_regular_file", Nothing),
        case(
            "edit-fifo",
            "edit_file",
            json!({"path": "pipe", "old_text": "x", "new_text": "y"}),
            "not_a_regular_file",
            Nothing,
        ),
        case("read-socket", "read_file", json!({"path": "sock"}), "not_a_regular_file", Nothing),
        case("write-socket", "write_file", json!({"path": "sock", "content": "x"}), "not_a_regular_file", Nothing),
        case("read-chardev", "read_file", json!({"path": "devnull"}), "not_a_regular_file", Nothing),
        case("write-chardev", "write_file", json!({"path": "devnull", "content": "x"}), "not_a_regular_file", Nothing),
        case(
            "edit-chardev",
            "edit_file",
            json!({"path": "devnull", "old_text": "x", "new_text": "y"}),
            "not_a_regular_file",
            Nothing,
        ),
        case("read-dir", "read_file", json!({"path": "sub"}), "not_a_regular_file", Nothing),
        case("search-fifo", "search_text", json!({"pattern": "x", "path": "pipe"}), "ok", Nothing),
        case(
            "patch-fifo",
            "apply_patch",
            json!({"patch": "--- a/pipe\n+++ b/pipe\n@@ -1 +1 @@\n-x\n+y\n"}),
            "not_a_regular_file",
            Nothing,
        ),
        case(
            "patch-symlink",
            "apply_patch",
            json!({"patch": "--- a/notes_env\n+++ b/notes_env\n@@ -1 +1 @@\n-x\n+y\n"}),
            "not_a_regular_file",
            Nothing,
        ),
    ]
}

/// `GIT_CASES` of the Python table.
fn git_cases() -> Vec<Case> {
    vec![
        case(
            "write-git-config",
            "write_file",
            json!({"path": ".git/config", "content": "[core]\n\thooksPath = /tmp\n"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "write-GIT-hooks",
            "write_file",
            json!({"path": ".GIT/hooks/x", "content": "#!/bin/sh\n"}),
            "denied_by_glob",
            NothingCreated(&[".GIT"]),
        ),
        case(
            "write-Git-config",
            "write_file",
            json!({"path": ".Git/config", "content": "x"}),
            "denied_by_glob",
            NothingCreated(&[".Git"]),
        ),
        case(
            "write-git-hook",
            "write_file",
            json!({"path": ".git/hooks/pre-commit", "content": "#!/bin/sh\n"}),
            "denied_by_glob",
            NothingCreated(&[".git/hooks/pre-commit"]),
        ),
        case(
            "write-sub-git-file",
            "write_file",
            json!({"path": "sub/.git", "content": "gitdir: /tmp\n"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "write-sub-git-head",
            "write_file",
            json!({"path": "sub/.git/HEAD", "content": "x"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "write-new-nested-git",
            "write_file",
            json!({"path": "vendor/lib/.git/config", "content": "x"}),
            "denied_by_glob",
            NothingCreated(&["vendor/lib/.git"]),
        ),
        case("write-dot-git-itself", "write_file", json!({"path": ".git", "content": "x"}), "denied_by_glob", Nothing),
        case(
            "write-git-dot-segments",
            "write_file",
            json!({"path": "sub/./../.git/config", "content": "x"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "write-git-abs",
            "write_file",
            json!({"path": "{root}/.git/config", "content": "x"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "edit-git-config",
            "edit_file",
            json!({"path": ".git/config", "old_text": "bare = false", "new_text": "bare = true"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "patch-create-git-hook",
            "apply_patch",
            json!({"patch": "--- /dev/null\n+++ b/.git/hooks/post-checkout\n@@ -0,0 +1 @@\n+#!/bin/sh\n"}),
            "denied_by_glob",
            Nothing,
        ),
        case("mkdir-git-hooks-new", "create_directory", json!({"path": ".git/hooks/new"}), "denied_by_glob", Nothing),
        case(
            "mkdir-GIT",
            "create_directory",
            json!({"path": "sub2/.GIT"}),
            "denied_by_glob",
            NothingCreated(&["sub2/.GIT"]),
        ),
        case("delete-git", "delete_path", json!({"path": ".git", "recursive": true}), "denied_by_glob", Nothing),
        case("delete-git-config", "delete_path", json!({"path": ".git/config"}), "denied_by_glob", Nothing),
        case(
            "delete-dir-holding-git",
            "delete_path",
            json!({"path": "sub", "recursive": true}),
            "denied_by_glob",
            Nothing,
        ),
        case("write-env", "write_file", json!({"path": ".env", "content": "TOKEN=x"}), "denied_by_glob", Nothing),
        case(
            "write-ssh-key-via-tilde",
            "write_file",
            json!({"path": "~/.ssh/id_rsa", "content": "x"}),
            "denied_by_glob",
            Nothing,
        ),
        case("read-ssh-key-via-tilde", "read_file", json!({"path": "~/.ssh/id_rsa"}), "denied_by_glob", Nothing),
    ]
}

/// `MOVE_CASES` of the Python table.
fn move_cases() -> Vec<Case> {
    vec![
        case(
            "move-into-git",
            "move_path",
            json!({"source": "README.md", "destination": ".git/README.md"}),
            "denied_by_glob",
            Regular("README.md", "# proj\nplain readme\n"),
        ),
        case(
            "move-over-git-config",
            "move_path",
            json!({"source": "README.md", "destination": ".git/config", "overwrite": true}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "move-into-sub-git",
            "move_path",
            json!({"source": "README.md", "destination": "sub/.git/hooks/pre-commit"}),
            "denied_by_glob",
            NothingCreated(&["sub/.git/hooks"]),
        ),
        case(
            "move-git-away",
            "move_path",
            json!({"source": ".git", "destination": "notgit"}),
            "denied_by_glob",
            NothingCreated(&["notgit"]),
        ),
        case(
            "move-git-hook-out",
            "move_path",
            json!({"source": ".git/config", "destination": "config"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "move-dir-holding-git",
            "move_path",
            json!({"source": "sub", "destination": "sub_moved"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "move-env-away",
            "move_path",
            json!({"source": ".env", "destination": "env.txt"}),
            "denied_by_glob",
            NothingCreated(&["env.txt"]),
        ),
        case(
            "move-over-env",
            "move_path",
            json!({"source": "README.md", "destination": ".env", "overwrite": true}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "move-out-dotdot",
            "move_path",
            json!({"source": "README.md", "destination": "../moved.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "move-out-abs",
            "move_path",
            json!({"source": "README.md", "destination": "{outside}/moved.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "move-out-sibling",
            "move_path",
            json!({"source": "README.md", "destination": "{base}/proj-evil/moved.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "move-in-from-outside",
            "move_path",
            json!({"source": "{outside}/sentinel.txt", "destination": "stolen.txt"}),
            "path_outside_root",
            NothingCreated(&["stolen.txt"]),
        ),
        case(
            "move-in-dotdot",
            "move_path",
            json!({"source": "../outfile.txt", "destination": "stolen.txt"}),
            "path_outside_root",
            NothingCreated(&["stolen.txt"]),
        ),
        case("move-root", "move_path", json!({"source": ".", "destination": "elsewhere"}), "invalid_path", Nothing),
        case(
            "move-root-abs",
            "move_path",
            json!({"source": "{root}", "destination": "elsewhere"}),
            "invalid_path",
            Nothing,
        ),
        case(
            "move-onto-root",
            "move_path",
            json!({"source": "README.md", "destination": ".", "overwrite": true}),
            "invalid_path",
            Nothing,
        ),
        case("move-dotdot-name", "move_path", json!({"source": "sub/..", "destination": "x"}), "invalid_path", Nothing),
    ]
}

/// `DELETE_CASES` of the Python table.
fn delete_cases() -> Vec<Case> {
    vec![
        case("delete-dotdot", "delete_path", json!({"path": "..", "recursive": true}), "path_outside_root", Nothing),
        case(
            "delete-dotdot-slash",
            "delete_path",
            json!({"path": "../", "recursive": true}),
            "path_outside_root",
            Nothing,
        ),
        case("delete-dot", "delete_path", json!({"path": ".", "recursive": true}), "invalid_path", Nothing),
        case("delete-empty", "delete_path", json!({"path": "", "recursive": true}), "invalid_path", Nothing),
        case("delete-root-abs", "delete_path", json!({"path": "{root}", "recursive": true}), "invalid_path", Nothing),
        case(
            "delete-root-abs-slash",
            "delete_path",
            json!({"path": "{root}/", "recursive": true}),
            "invalid_path",
            Nothing,
        ),
        case(
            "delete-root-abs-dot",
            "delete_path",
            json!({"path": "{root}/.", "recursive": true}),
            "invalid_path",
            Nothing,
        ),
        case("delete-sub-dotdot", "delete_path", json!({"path": "sub/..", "recursive": true}), "invalid_path", Nothing),
        case("delete-base", "delete_path", json!({"path": "{base}", "recursive": true}), "path_outside_root", Nothing),
        case("delete-slash", "delete_path", json!({"path": "/", "recursive": true}), "path_outside_root", Nothing),
        case(
            "delete-outside-dir",
            "delete_path",
            json!({"path": "../outside", "recursive": true}),
            "path_outside_root",
            Nothing,
        ),
        case("delete-env", "delete_path", json!({"path": ".env"}), "denied_by_glob", Nothing),
        case("write-root", "write_file", json!({"path": ".", "content": "x"}), "invalid_path", Nothing),
        case("write-empty", "write_file", json!({"path": "", "content": "x"}), "invalid_path", Nothing),
        case("write-sub-dotdot", "write_file", json!({"path": "sub/..", "content": "x"}), "invalid_path", Nothing),
    ]
}

// ---------------------------------------------------------------------------------------------
// Calls that return per-file results, and whole-tree walks
// ---------------------------------------------------------------------------------------------

#[test]
fn read_many_files_hostile() {
    let mut tree = build_tree();
    let long = "x".repeat(5000);
    let paths: Vec<(&str, Option<&str>)> = vec![
        ("../outfile.txt", Some("path_outside_root")),
        ("{outside}/sentinel.txt", Some("path_outside_root")),
        ("{base}/proj-evil/data.txt", Some("path_outside_root")),
        ("abs_file_link", Some("path_outside_root")),
        ("rel_dir_link/sentinel.txt", Some("path_outside_root")),
        ("proc_root/etc/passwd", Some("path_outside_root")),
        ("notes_env", Some("denied_by_glob")),
        (".env", Some("denied_by_glob")),
        ("pipe", Some("not_a_regular_file")),
        ("sock", Some("not_a_regular_file")),
        ("a\x00b", Some("invalid_path")),
        (&long, Some("invalid_path")),
        ("..%2f..%2floot.txt", Some("not_found")),
        ("README.md", None),
    ];
    let mut s = fs(&tree.root).start();
    let list: Vec<&str> = paths.iter().map(|(p, _)| *p).collect();
    let args = tree.sub(json!({"paths": list}));
    let (code, r, _) = tree.run(&mut s, "read_many_files", args);
    drop(s);
    assert!(code.is_none());
    let files = r["files"].as_array().unwrap();
    assert_eq!(files.len(), paths.len());
    for ((path, want), f) in paths.iter().zip(files) {
        assert_eq!(f["error_code"].as_str(), *want, "{}", cut(path));
    }
    assert_eq!(files.last().unwrap()["content"], "# proj\nplain readme\n");
    tree.assert_outside_untouched();
}

#[test]
fn walks_never_leave_the_root() {
    let mut tree = build_tree();
    let mut s = fs(&tree.root).start();
    let (code, r, _) = tree.run(&mut s, "list_directory", json!({"depth": 10, "include_hidden": true}));
    assert!(code.is_none());
    let entries = r["entries"].as_array().unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e["path"].as_str().unwrap()).collect();
    let kind = |p: &str| entries.iter().find(|e| e["path"] == p).map(|e| e["type"].clone()).unwrap();
    assert!(kind("abs_dir_link") == "symlink" && kind("pipe") == "other");
    let through_links: Vec<_> =
        paths.iter().filter(|p| p.contains('/') && p.split('/').next().unwrap().ends_with("_link")).collect();
    assert!(through_links.is_empty(), "{paths:?}");
    assert!(
        !paths
            .iter()
            .any(|p| ["proc_root/", "proc_cwd/", "evil_link/", "holder/out/"].iter().any(|x| p.starts_with(x)))
    );
    assert!(!paths.contains(&".env") && r["hidden_denied"].as_u64().unwrap() >= 1);

    let (code, r, _) = tree.run(
        &mut s,
        "find_files",
        json!({"pattern": "*", "kind": "any", "include_hidden": true, "respect_gitignore": false, "max_results": 10_000}),
    );
    assert!(code.is_none());
    let bad: Vec<_> = r["matches"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|p| {
            p.contains("sentinel")
                || p.contains("secret")
                || ["abs_", "rel_", "proc_", "evil_"].iter().any(|x| p.starts_with(x))
        })
        .collect();
    assert!(bad.is_empty(), "{}", r["matches"]);

    let (code, r, _) = tree.run(
        &mut s,
        "search_text",
        json!({"pattern": "SENTINEL|root:x:0:0", "include_hidden": true, "respect_gitignore": false, "max_results": 10_000}),
    );
    assert!(code.is_none() && r["matches"] == json!([]));
    drop(s);
    tree.assert_outside_untouched();
}

#[test]
fn fifo_does_not_hang_any_reader() {
    let mut tree = build_tree();
    let mut s = fs(&tree.root).write().timeout(Duration::from_secs(5)).start();
    let started = Instant::now();
    let (code, _, _) = tree.run(&mut s, "read_file", json!({"path": "pipe"}));
    assert_eq!(code.as_deref(), Some("not_a_regular_file"));
    let (code, r, _) = tree.run(&mut s, "file_info", json!({"path": "pipe"}));
    assert!(code.is_none() && r["type"] == "other" && r.get("line_count").is_none());
    let (code, r, _) = tree.run(&mut s, "read_many_files", json!({"paths": ["pipe", "README.md"]}));
    assert!(code.is_none() && r["files"][0]["error_code"] == "not_a_regular_file");
    let (code, _, _) =
        tree.run(&mut s, "search_text", json!({"pattern": "x", "include_hidden": true, "respect_gitignore": false}));
    assert!(code.is_none());
    let (code, _, _) = tree.run(&mut s, "edit_file", json!({"path": "pipe", "old_text": "a", "new_text": "b"}));
    assert_eq!(code.as_deref(), Some("not_a_regular_file"));
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(s);
    assert!(std::fs::symlink_metadata(tree.root.join("pipe")).unwrap().file_type().is_fifo());
    tree.assert_outside_untouched();
}

/// A client root at the sibling `proj-evil` (a string prefix match of `proj`) adds nothing.
#[test]
fn client_root_prefix_confusion() {
    let mut tree = build_tree();
    let evil = tree.base.join("proj-evil");
    let mut s = fs(&tree.root).write().client_roots([&evil]).start();
    let (code, _, _) = tree.run(&mut s, "read_file", json!({"path": evil.join("data.txt")}));
    assert_eq!(code.as_deref(), Some("path_outside_root"));
    let (code, _, _) = tree.run(&mut s, "write_file", json!({"path": evil.join("new.txt"), "content": "x"}));
    assert_eq!(code.as_deref(), Some("path_outside_root"));
    drop(s);
    tree.assert_outside_untouched();
}

/// Root `proj` must not grant `proj-evil`, whatever spelling reaches it.
#[test]
fn config_root_prefix_confusion() {
    let mut tree = build_tree();
    let mut s = fs(&tree.root).write().destructive().start();
    for path in [
        "{base}/proj-evil/data.txt",
        "{root}-evil/data.txt",
        "{root}/../proj-evil/data.txt",
        "evil_link/data.txt",
        "../proj-evil/data.txt",
    ] {
        let parent = path.rsplit_once('/').map_or(path, |(p, _)| p);
        for (tool, args) in [
            ("read_file", json!({"path": path})),
            ("write_file", json!({"path": path, "content": "pwned"})),
            ("delete_path", json!({"path": path})),
            ("list_directory", json!({"path": parent})),
        ] {
            let args = tree.sub(args);
            let (code, _, text) = tree.run(&mut s, tool, args);
            assert_eq!(code.as_deref(), Some("path_outside_root"), "{tool} {path}: {text}");
        }
    }
    drop(s);
    tree.assert_outside_untouched();
}

#[test]
fn hostile_client_roots_never_widen() {
    let uris = [
        ("link-abs", "file://{root}/abs_dir_link"),
        ("link-rel", "file://{root}/rel_dir_link"),
        ("pct-dotdot", "file://{root}/..%2Foutside"),
        ("pct-dotdot-deep", "file://{root}/sub/..%2F..%2Foutside"),
        ("pct-slash-dotdot", "file://{root}%2F..%2Foutside"),
        ("outside", "file://{outside}"),
        ("sibling-prefix", "file://{base}/proj-evil"),
    ];
    for (id, uri) in uris {
        let mut tree = build_tree();
        let uri = tree.sub(json!(uri)).as_str().unwrap().to_string();
        let mut s = fs(&tree.root).write().destructive().client_root_uris([uri.clone()]).start();
        for (tool, args) in [
            ("read_file", json!({"path": "{outside}/sentinel.txt"})),
            ("read_file", json!({"path": "sentinel.txt"})),
            ("read_file", json!({"path": "{base}/proj-evil/data.txt"})),
            ("write_file", json!({"path": "{outside}/pwned.txt", "content": "x"})),
            ("write_file", json!({"path": "pwned.txt", "content": "x"})),
            ("delete_path", json!({"path": "{outside}/sentinel.txt"})),
            ("list_directory", json!({"path": "{outside}"})),
        ] {
            let args = tree.sub(args);
            let (code, _, text) = tree.run(&mut s, tool, args.clone());
            assert_eq!(
                code.as_deref(),
                Some("path_outside_root"),
                "[{id}] client root {uri}: {tool} {args} -> {}",
                cut(&text)
            );
        }
        let (code, r, _) = tree.run(&mut s, "list_roots", json!({}));
        assert!(code.is_none());
        let root = tree.root.display().to_string();
        assert!(
            r["roots"].as_array().unwrap().iter().all(|x| {
                let p = x["path"].as_str().unwrap();
                p == root || p.starts_with(&format!("{root}/"))
            }),
            "[{id}] {r}"
        );
        drop(s);
        assert!(!tree.root.join("pwned.txt").exists(), "[{id}]");
        tree.assert_outside_untouched();
    }
}

#[test]
fn forged_cursors() {
    let mut tree = build_tree();
    let forge = |raw: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let mut s = fs(&tree.root).start();
    let outside_cursor = format!("0:{}/sentinel.txt", tree.outside.display());
    for cursor in
        [forge("0:../outfile.txt"), forge("0:/etc/passwd"), forge(&outside_cursor), forge("99999999999:README.md")]
    {
        for (tool, args) in [
            (
                "search_text",
                json!({"pattern": "SENTINEL", "cursor": cursor, "include_hidden": true, "respect_gitignore": false}),
            ),
            ("find_files", json!({"pattern": "*", "cursor": cursor})),
        ] {
            let (code, r, _) = tree.run(&mut s, tool, args);
            // A forged cursor is either refused outright or taken as a position in the sorted
            // listing; it never names a file to open.
            assert!(code.is_none() || code.as_deref() == Some("invalid_argument"), "{code:?}");
            if code.is_some() {
                continue;
            }
            if tool == "search_text" {
                assert_eq!(r["matches"], json!([]));
            } else {
                assert!(r["matches"].as_array().unwrap().iter().all(|m| {
                    let m = m.as_str().unwrap();
                    !m.starts_with('/') && !m.starts_with("..")
                }));
            }
        }
    }
    for cursor in ["not base64 at all!".to_string(), forge("no-colon"), forge("x:README.md")] {
        for tool in ["search_text", "find_files"] {
            let (code, _, _) = tree.run(&mut s, tool, json!({"pattern": "x", "cursor": cursor}));
            assert_eq!(code.as_deref(), Some("invalid_argument"), "{tool} {cursor}");
        }
    }
    for cursor in ["-1", "abc", "99999999999999999999999999"] {
        let (code, _, _) = tree.run(&mut s, "list_directory", json!({"cursor": cursor}));
        assert_eq!(code.as_deref(), Some("invalid_argument"), "{cursor}");
    }
    let (code, r, _) = tree.run(&mut s, "list_directory", json!({"cursor": "1000000"}));
    assert!(code.is_none() && r["entries"] == json!([]));
    drop(s);
    tree.assert_outside_untouched();
}

#[test]
fn replacing_content_drops_setuid_and_setgid() {
    for tool in ["write_file", "edit_file"] {
        let mut tree = build_tree();
        let prog = tree.root.join("tool.sh");
        write(&prog, "#!/bin/sh\necho safe\n");
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o6755)).unwrap();
        let args = if tool == "write_file" {
            json!({"path": "tool.sh", "content": "#!/bin/sh\necho replaced\n"})
        } else {
            json!({"path": "tool.sh", "old_text": "echo safe", "new_text": "echo replaced"})
        };
        let mut s = fs(&tree.root).write().start();
        let (code, _, _) = tree.run(&mut s, tool, args);
        assert!(code.is_none(), "{tool}: {code:?}");
        drop(s);
        assert_eq!(std::fs::read_to_string(&prog).unwrap(), "#!/bin/sh\necho replaced\n");
        let mode = std::fs::metadata(&prog).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode & 0o6000, 0, "{tool}: {mode:o}");
        assert_eq!(mode & 0o777, 0o755, "{tool}");
        tree.assert_outside_untouched();
    }
}
