//! Behaviour of `bastion shell`'s tool list and `run_command`, through the real binary over stdio
//! (see `bastion-testkit`): everyday programs, cwd, stdin, exit codes, cut output, timeouts,
//! progress notifications and cancellation. The official-SDK view of the same server is
//! `tests/python/test_shell_interop.py`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bastion_testkit::write;
use serde_json::{Value, json};

mod common;
use common::project::*;
use common::{unique_sleep, wait_gone};

/// `(readOnlyHint, destructiveHint, idempotentHint, openWorldHint)` of a tool.
fn annotations(tool: &Value) -> [Value; 4] {
    let a = &tool["annotations"];
    assert!(a.is_object(), "{}", tool["name"]);
    [a["readOnlyHint"].clone(), a["destructiveHint"].clone(), a["idempotentHint"].clone(), a["openWorldHint"].clone()]
}

fn hints(read_only: bool, destructive: bool, idempotent: bool, open_world: bool) -> [Value; 4] {
    [json!(read_only), json!(destructive), json!(idempotent), json!(open_world)]
}

// ---------------------------------------------------------------------------------------------
// Tools and annotations
// ---------------------------------------------------------------------------------------------

#[test]
fn tools_read_only_profile() {
    let p = project();
    let tools = session(&p.root, "read-only").list_tools();
    let names: Vec<String> = tools.iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, shell_tools());
    for t in &tools {
        let name = t["name"].as_str().unwrap();
        assert_eq!(t["title"], title(name));
        // The title is served once, at the top level; the annotations carry the hints.
        assert!(t["annotations"].is_object() && t["annotations"].get("title").is_none());
        // Running a command is a read in this profile: every tool is read-only and idempotent.
        assert_eq!(annotations(t), hints(true, false, true, false), "{name}");
        assert!(t["description"].as_str().is_some_and(|d| !d.is_empty()), "{name}");
        assert_eq!(t["inputSchema"]["type"], "object");
    }
}

#[test]
fn tools_build_test_profile() {
    let p = project();
    let tools = session(&p.root, "build-test").list_tools();
    let names: Vec<String> = tools.iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, shell_tools());
    let want = [
        ("run_command", hints(false, true, false, false)),
        ("start_process", hints(false, true, false, false)),
        ("write_process_input", hints(false, true, false, false)),
        ("kill_process", hints(false, true, true, false)),
        ("read_process_output", hints(true, false, true, false)),
        ("list_processes", hints(true, false, true, false)),
        ("list_allowed_commands", hints(true, false, true, false)),
        ("sandbox_status", hints(true, false, true, false)),
    ];
    for (name, h) in want {
        let tool = tools.iter().find(|t| t["name"] == name).unwrap();
        assert_eq!(annotations(tool), h, "{name}");
        assert_eq!(tool["title"], title(name));
    }
}

#[test]
fn run_command_schema_names_the_fields() {
    let p = project();
    let tools = session(&p.root, "read-only").list_tools();
    let tool = |name: &str| tools.iter().find(|t| t["name"] == name).unwrap().clone();
    let run = tool("run_command");
    let props: std::collections::BTreeSet<&str> =
        run["inputSchema"]["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(props, ["program", "args", "cwd", "timeout_ms", "stdin"].into_iter().collect());
    assert_eq!(run["inputSchema"]["required"], json!(["program"]));
    // Output schemas are served only when asked for (`--output-schemas`); run_command returns a
    // plain result (a timeout adds the output to the error), the others declare their output.
    assert!(tools.iter().all(|t| t.get("outputSchema").is_none()));
    let tools = builder(&p.root, "read-only").arg("--output-schemas").start().list_tools();
    let tool = |name: &str| tools.iter().find(|t| t["name"] == name).unwrap().clone();
    for (name, field) in
        [("start_process", "id"), ("read_process_output", "next_offset"), ("sandbox_status", "landlock")]
    {
        assert!(tool(name)["outputSchema"]["properties"].get(field).is_some(), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// run_command
// ---------------------------------------------------------------------------------------------

#[test]
fn everyday_programs() {
    let p = project();
    let mut s = session(&p.root, "read-only");
    let out = run(&mut s, "echo", &["hello", "world"]);
    assert!(out["stdout"] == "hello world\n" && out["stderr"] == "" && out["exit_code"] == 0);
    assert!(out["signal"].is_null() && out["program"] == "echo" && out["cwd"] == ".");
    assert!(out["stdout_bytes"] == 12 && out["stderr_bytes"] == 0);
    assert!(out["stdout_truncated"] == false && out["stderr_truncated"] == false);
    assert!(out["duration_ms"].as_u64().is_some_and(|d| d < 10_000));

    let out = run(&mut s, "ls", &[]);
    assert_eq!(out["stdout"], "README.md\ndata\ndocs\nsrc\n");
    let out = run(&mut s, "ls", &["-1", "data"]);
    assert_eq!(out["stdout"], "items.json\nnumbers.txt\nwords.txt\n");
    assert_eq!(out["args"], json!(["-1", "--", "data"]));

    let out = run(&mut s, "cat", &["data/numbers.txt"]);
    assert_eq!(out["stdout"], "10\n2\n33\n4\n");
    let out = run(&mut s, "cat", &["-n", "README.md"]);
    assert_eq!(out["stdout"], "     1\t# demo\n     2\tA small project.\n");

    let out = run(&mut s, "rg", &["-n", "--sort=path", "TODO"]);
    assert_eq!(out["stdout"], "docs/deep/notes.md:2:TODO: write more\nsrc/lib.rs:2:    // TODO: overflow\n");
    // rg never reads a config file: --no-config is always first.
    // What ran: --no-config, the deny globs as exclusions (so a recursive search skips
    // secrets), then the call's own arguments.
    let args = out["args"].as_array().unwrap();
    assert!(
        args[0] == "--no-config"
            && args[args.len() - 4..] == [json!("-n"), json!("--sort=path"), json!("--"), json!("TODO")]
    );
    assert!(args.contains(&json!("--iglob=!.env")));

    let out = run(&mut s, "grep", &["-n", "apple", "data/words.txt"]);
    assert_eq!(out["stdout"], "2:apple\n4:apple\n");
    let out = run(&mut s, "grep", &["-rl", "TODO", "src", "docs"]);
    assert_eq!(sorted_lines(&out["stdout"]), ["docs/deep/notes.md", "src/lib.rs"]);

    let out = run(&mut s, "find", &[".", "-name", "*.rs", "-type", "f"]);
    assert_eq!(sorted_lines(&out["stdout"]), ["./src/lib.rs", "./src/main.rs"]);
    let out = run(&mut s, "find", &["docs", "-mindepth", "1", "-type", "d"]);
    assert_eq!(out["stdout"], "docs/deep\n");

    let out = run(&mut s, "sort", &["-n", "data/numbers.txt"]);
    assert_eq!(out["stdout"], "2\n4\n10\n33\n");
    let out = run(&mut s, "sort", &["-u", "data/words.txt"]);
    assert_eq!(out["stdout"], "apple\nfig\npear\n");

    let out = run(&mut s, "head", &["-n", "2", "data/words.txt"]);
    assert_eq!(out["stdout"], "pear\napple\n");
    let out = run(&mut s, "head", &["-1", "data/words.txt"]);
    assert_eq!(out["stdout"], "pear\n");
    let out = run(&mut s, "tail", &["-n", "1", "data/words.txt"]);
    assert_eq!(out["stdout"], "apple\n");

    let out = run(&mut s, "wc", &["-l", "data/words.txt"]);
    assert_eq!(out["stdout"], "4 data/words.txt\n");
    let out = run_with(&mut s, "wc", &["-c"], json!({"stdin": "12345"}));
    assert_eq!(out["stdout"], "5\n");

    let out = run(&mut s, "pwd", &[]);
    assert_eq!(out["stdout"], format!("{}\n", p.root.canonicalize().unwrap().display()));
    let out = run(&mut s, "sha256sum", &["data/numbers.txt"]);
    // SHA-256 of the fixture's "10\n2\n33\n4\n" (the file is checked below, so the digest is too).
    assert_eq!(std::fs::read(p.root.join("data/numbers.txt")).unwrap(), b"10\n2\n33\n4\n");
    let digest = "c047ed0f041d181b036eacf0a98723f1e33cae5a8948012f23d25ba5cb7e13ac";
    assert_eq!(out["stdout"], format!("{digest}  data/numbers.txt\n"));
}

#[test]
fn jq() {
    // jq 1.6 (Debian 12's) refuses `--` before its filter: the rules insert none for jq and refuse
    // operands that start with '-' instead.
    let p = project();
    let mut s = session(&p.root, "read-only");
    let out = run(&mut s, "jq", &["-r", ".items[].name", "data/items.json"]);
    assert_eq!(out["stdout"], "alpha\nbeta\n", "{out}");
    let out = run(&mut s, "jq", &["-c", "[.items[].n] | add", "data/items.json"]);
    assert_eq!(out["stdout"], "3\n");
    let out = run_with(&mut s, "jq", &["-c", ".a"], json!({"stdin": "{\"a\": [1, 2]}"}));
    assert_eq!(out["stdout"], "[1,2]\n");
    let out = run(&mut s, "jq", &["--arg", "who", "x", "-n", "-c", "{who: $who}"]);
    assert_eq!(out["stdout"], "{\"who\":\"x\"}\n");
    // The read-only profile's commands see only the five fixed variables.
    let out = run(&mut s, "jq", &["-n", "-c", "env | keys"]);
    assert_eq!(out["stdout"], "[\"HOME\",\"LANG\",\"PATH\",\"TERM\",\"TMPDIR\"]\n");
    write(p.root.join("-x.json"), "{}");
    s.err("run_command", json!({"program": "jq", "args": [".", "--", "-x.json"]}), "argument_not_allowed");
}

#[test]
fn abbreviations_are_written_in_full() {
    let p = project();
    let mut s = session(&p.root, "read-only");
    let out = run(&mut s, "sort", &["--rev", "-n", "data/numbers.txt"]);
    assert_eq!(out["args"], json!(["--reverse", "-n", "--", "data/numbers.txt"]));
    assert_eq!(out["stdout"], "33\n10\n4\n2\n");
    // An operand that starts with '-' after `--` stays an operand.
    write(p.root.join("-n"), "dash file\n");
    let out = run(&mut s, "cat", &["--", "-n"]);
    assert_eq!(out["stdout"], "dash file\n");
}

#[test]
fn cwd_in_a_subdirectory() {
    let p = project();
    let mut s = session(&p.root, "read-only");
    let out = run_with(&mut s, "ls", &[], json!({"cwd": "data"}));
    assert!(out["stdout"] == "items.json\nnumbers.txt\nwords.txt\n" && out["cwd"] == "data");
    let out = run_with(&mut s, "cat", &["numbers.txt"], json!({"cwd": "data"}));
    assert_eq!(out["stdout"], "10\n2\n33\n4\n");
    let out = run_with(&mut s, "pwd", &[], json!({"cwd": "docs/deep"}));
    let deep = p.root.join("docs/deep").canonicalize().unwrap();
    assert!(out["stdout"] == format!("{}\n", deep.display()) && out["cwd"] == "docs/deep");
    // An absolute cwd inside the root works and is shown root-relative.
    let out = run_with(&mut s, "ls", &[], json!({"cwd": p.root.join("src")}));
    assert!(out["stdout"] == "lib.rs\nmain.rs\n" && out["cwd"] == "src");
    // Relative paths resolve against cwd; `..` back into the root is fine.
    let out = run_with(&mut s, "cat", &["../README.md"], json!({"cwd": "src"}));
    assert!(out["stdout"].as_str().unwrap().starts_with("# demo"));
    s.err("run_command", json!({"program": "ls", "cwd": "missing"}), "not_found");
    s.err("run_command", json!({"program": "ls", "cwd": "README.md"}), "not_a_directory");
}

#[test]
fn stdin_is_passed_to_the_program() {
    let p = project();
    let mut s = session(&p.root, "read-only");
    let out = run_with(&mut s, "sort", &[], json!({"stdin": "pear\napple\nfig\n"}));
    assert_eq!(out["stdout"], "apple\nfig\npear\n");
    let out = run_with(&mut s, "sort", &["-rn"], json!({"stdin": "1\n30\n200\n"}));
    assert_eq!(out["stdout"], "200\n30\n1\n");
    // Without stdin the program reads an empty input, it does not hang.
    let out = run_with(&mut s, "sort", &[], json!({"timeout_ms": 5000}));
    assert!(out["stdout"] == "" && out["exit_code"] == 0);
    let big: String = (1..=50_000).rev().map(|i| format!("{i:06}\n")).collect();
    let out = run_with(&mut s, "wc", &["-l"], json!({"stdin": big}));
    assert_eq!(out["stdout"], "50000\n");
}

#[test]
fn nonzero_exit_is_a_result() {
    let p = project();
    let mut s = session(&p.root, "read-only");
    let r = s.call("run_command", command("ls", &["missing.txt"], json!({})));
    let out = r.structured;
    assert!(!r.is_error && out.is_object());
    assert!(out["exit_code"] == 2 && out["stderr"].as_str().unwrap().contains("No such file") && out["stdout"] == "");
    let out = run(&mut s, "grep", &["nomatch", "data/words.txt"]);
    assert!(out["exit_code"] == 1 && out["stdout"] == "");
    let out = run(&mut s, "cmp", &["data/words.txt", "data/numbers.txt"]);
    assert!(out["exit_code"] == 1 && out["stdout"].as_str().unwrap().contains("differ"));
    let out = run(&mut s, "jq", &[".", "README.md"]);
    assert!(out["exit_code"] != 0 && !out["stderr"].as_str().unwrap().is_empty());
}

#[test]
fn output_is_cut_with_flags() {
    let p = project();
    let lines: Vec<String> = (0..60_000).map(|i| format!("line-{i:07}-{}", "x".repeat(40))).collect();
    let body = lines.join("\n") + "\n";
    write(p.root.join("big.txt"), &body);
    let mut s = session(&p.root, "read-only");
    let out = run(&mut s, "cat", &["big.txt"]);
    assert_eq!(out["exit_code"], 0);
    assert!(out["stdout_truncated"] == true && out["stderr_truncated"] == false);
    assert_eq!(out["stdout_bytes"], body.len());
    let stdout = out["stdout"].as_str().unwrap();
    assert!(stdout.chars().count() < 200_000);
    assert!(stdout.starts_with(&format!("{}\n", lines[0])));
    assert!(stdout.ends_with(&format!("{}\n", lines[lines.len() - 1])));
    assert!(stdout.contains("bytes omitted"));
    // stderr is cut on its own budget.
    let names: Vec<String> = (0..2500).map(|i| format!("missing-{i:05}-{}", "z".repeat(30))).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let out = run(&mut s, "cat", &names);
    assert!(out["exit_code"] == 1 && out["stderr_truncated"] == true && out["stdout_truncated"] == false);
    let stderr = out["stderr"].as_str().unwrap();
    assert!(
        out["stderr_bytes"].as_u64().unwrap() > stderr.chars().count() as u64
            && stderr.starts_with("cat: missing-00000")
    );
    assert!(stderr.trim_end().ends_with("No such file or directory"));
    // Small output is never marked.
    let out = run(&mut s, "head", &["-c", "100", "big.txt"]);
    assert!(out["stdout_truncated"] == false && out["stdout"] == body[..100]);
}

#[test]
fn timeout_returns_partial_output_quickly() {
    let p = project();
    let marker = unique_sleep();
    makefile(&p.root, &[("slow", &["@echo partial-output-before-sleep", &format!("@sleep {marker}")])]);
    let mut s = session(&p.root, "build-test");
    let t0 = Instant::now();
    let result = s.call("run_command", json!({"program": "make", "args": ["slow"], "timeout_ms": 500}));
    let elapsed = t0.elapsed();
    assert!(result.is_error);
    let sc = &result.structured;
    assert!(sc.is_object() && sc["code"] == "timeout", "{sc}");
    assert!(sc["message"].as_str().unwrap().contains("500 ms"));
    assert_eq!(sc["stdout"], "partial-output-before-sleep\n");
    assert!(sc["exit_code"].is_null() && sc["program"] == "make");
    assert!((400..5000).contains(&sc["duration_ms"].as_u64().unwrap()));
    assert!(elapsed < Duration::from_secs(5), "the timeout took {elapsed:?}");
    // The text content carries the code and the output too.
    assert!(result.text.contains("timeout") && result.text.contains("partial-output-before-sleep"));
    assert_eq!(wait_gone(&marker, Duration::from_secs(2)), Vec::<u32>::new());
    // The server goes on answering.
    assert_eq!(run(&mut s, "echo", &["still", "here"])["stdout"], "still here\n");
}

#[test]
fn progress_notifications_during_a_long_command() {
    let p = project();
    makefile(&p.root, &[("slow", &["@echo begin", "@sleep 3.2", "@echo end"])]);
    let mut s = session(&p.root, "build-test");
    let (result, seen) =
        s.call_with_progress("run_command", json!({"program": "make", "args": ["slow"], "timeout_ms": 20_000}));
    assert!(!result.is_error, "{}", result.text);
    assert_eq!(result.structured["stdout"], "begin\nend\n");
    // Without a progress token a command runs the same.
    let out = run(&mut s, "make", &["slow"]);
    assert_eq!(out["stdout"], "begin\nend\n");
    assert!(seen.len() >= 2, "{seen:?}");
    let progress: Vec<f64> = seen.iter().map(|n| n["progress"].as_f64().unwrap()).collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]) && progress[0] > 0.0);
    assert!(seen.iter().all(|n| n["total"].as_f64() == Some(20.0)), "{seen:?}");
    assert!(seen.iter().all(|n| n["message"].as_str().is_some_and(|m| m.contains("make running for"))), "{seen:?}");
}

#[test]
fn cancellation_kills_the_process_tree() {
    let p = project();
    let marker = unique_sleep();
    makefile(&p.root, &[("hang", &[&format!("@sleep {marker} & sleep {marker}")])]);
    let mut s = session(&p.root, "build-test");
    let id = s.start_call("run_command", json!({"program": "make", "args": ["hang"], "timeout_ms": 60_000}));
    assert_eq!(wait_for_sleeps(&marker, 2), 2, "the command never started");
    s.cancel(id, "the client gave up");
    // The client abandoned the request (notifications/cancelled): the whole tree is gone.
    assert_eq!(wait_gone(&marker, Duration::from_secs(2)), Vec::<u32>::new());
    assert_eq!(run(&mut s, "echo", &["alive"])["stdout"], "alive\n");
}
