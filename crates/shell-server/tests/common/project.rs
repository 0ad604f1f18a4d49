//! The small project the shell tool suites (`tools_*.rs`) run programs in, and helpers to call
//! `bastion shell` on it. The `build-test` cases use `make` with a Makefile written into the root:
//! make runs project code by design, so it is the natural way to get a long-running or
//! output-producing command.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bastion_testkit::{Kind, Server, ServerBuilder, temp_dir, write};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Every tool, in the server's table order, with its title.
pub const TOOL_TITLES: [(&str, &str); 8] = [
    ("run_command", "Run a command"),
    ("start_process", "Start a background process"),
    ("read_process_output", "Read process output"),
    ("write_process_input", "Write to process input"),
    ("list_processes", "List processes"),
    ("kill_process", "Kill a process"),
    ("list_allowed_commands", "List allowed commands"),
    ("sandbox_status", "Sandbox status"),
];

/// The tool names, in the server's table order.
pub fn shell_tools() -> Vec<String> {
    TOOL_TITLES.iter().map(|(n, _)| n.to_string()).collect()
}

/// The title of `tool`.
pub fn title(tool: &str) -> &'static str {
    TOOL_TITLES.iter().find(|(n, _)| *n == tool).map(|(_, t)| *t).unwrap_or_default()
}

/// A fresh base directory (for configs and logs) holding the project `proj`.
pub struct Project {
    pub base: TempDir,
    pub root: PathBuf,
}

pub fn project() -> Project {
    let base = temp_dir();
    let root = base.path().join("proj");
    write(root.join("README.md"), "# demo\nA small project.\n");
    write(root.join("src/main.rs"), "fn main() {\n    println!(\"hi\");\n}\n");
    write(root.join("src/lib.rs"), "pub fn add(a: i32, b: i32) -> i32 {\n    // TODO: overflow\n    a + b\n}\n");
    write(root.join("data/numbers.txt"), "10\n2\n33\n4\n");
    write(root.join("data/words.txt"), "pear\napple\nfig\napple\n");
    write(
        root.join("data/items.json"),
        json!({"items": [{"name": "alpha", "n": 1}, {"name": "beta", "n": 2}]}).to_string(),
    );
    write(root.join("docs/deep/notes.md"), "deep notes\nTODO: write more\n");
    Project { base, root }
}

/// Writes `root/Makefile` with one target per entry, each line one recipe line (`$` must be
/// written `$$` for the shell).
pub fn makefile(root: &Path, recipes: &[(&str, &[&str])]) {
    let targets: Vec<&str> = recipes.iter().map(|(t, _)| *t).collect();
    let mut text = format!(".PHONY: {}\n", targets.join(" "));
    for (target, lines) in recipes {
        text += &format!("{target}:\n");
        for line in *lines {
            text += &format!("\t{line}\n");
        }
    }
    write(root.join("Makefile"), text);
}

/// `bastion shell --root ROOT --profile PROFILE` (sixty seconds per call, the Python suite's
/// budget per test).
pub fn builder(root: &Path, profile: &str) -> ServerBuilder {
    ServerBuilder::new(Kind::Shell).root(root).arg("--profile").arg(profile).timeout(Duration::from_secs(60))
}

/// A started server with `profile`.
pub fn session(root: &Path, profile: &str) -> Server {
    builder(root, profile).start()
}

/// `run_command` that must succeed (as a call: the program's exit code may be anything).
pub fn run(s: &mut Server, program: &str, args: &[&str]) -> Value {
    run_with(s, program, args, json!({}))
}

/// `run_command` with more fields (`cwd`, `timeout_ms`, `stdin`) that must succeed.
pub fn run_with(s: &mut Server, program: &str, args: &[&str], fields: Value) -> Value {
    s.ok("run_command", command(program, args, fields))
}

/// The arguments of `run_command`.
pub fn command(program: &str, args: &[&str], fields: Value) -> Value {
    let mut call = json!({"program": program, "args": args});
    if let (Some(call), Some(fields)) = (call.as_object_mut(), fields.as_object()) {
        call.extend(fields.clone());
    }
    call
}

/// The lines of a string field, sorted.
pub fn sorted_lines(v: &Value) -> Vec<String> {
    let mut lines: Vec<String> = v.as_str().unwrap_or_default().lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// Reads a process's output from `offset` until it has ended and nothing is left.
pub fn read_until_exit(s: &mut Server, id: &Value, mut offset: i64) -> (String, Value) {
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = s.ok("read_process_output", json!({"id": id, "offset": offset, "wait_ms": 500}));
        assert_eq!(out["offset"], json!(offset));
        text += out["output"].as_str().unwrap();
        offset = out["next_offset"].as_i64().unwrap();
        if out["running"] == json!(false) && out["truncated"] == json!(false) {
            return (text, out);
        }
        assert!(Instant::now() < deadline, "the process never ended");
    }
}

/// Polls `pgrep(marker, "sleep")` until `n` are running, for at most ten seconds.
pub fn wait_for_sleeps(marker: &str, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    while super::pgrep(marker, Some("sleep")).len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    super::pgrep(marker, Some("sleep")).len()
}
