//! Behaviour of `bastion shell`'s background processes, `list_allowed_commands`,
//! `sandbox_status`, the audit journal and argument errors, through the real binary over stdio
//! (see `bastion-testkit`). The official-SDK view of the same server is
//! `tests/python/test_shell_interop.py`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use bastion_testkit::{error_code, write};
use serde_json::{Value, json};

mod common;
use common::project::*;
use common::{unique_sleep, wait_gone};

const READ_ONLY_PROGRAMS: [&str; 29] = [
    "basename",
    "cat",
    "cmp",
    "cut",
    "date",
    "df",
    "diff",
    "dirname",
    "du",
    "echo",
    "file",
    "find",
    "grep",
    "head",
    "jq",
    "ls",
    "md5sum",
    "pwd",
    "realpath",
    "rg",
    "sha256sum",
    "sort",
    "stat",
    "tail",
    "tr",
    "tree",
    "uniq",
    "wc",
    "which",
];
const BUILD_TEST_EXTRA: [&str; 8] = ["cargo", "go", "make", "node", "npm", "npx", "pytest", "python"];

const SIGKILL: i64 = 9;

fn default_rlimits() -> Value {
    json!({"address_space_mib": 8192, "cpu_seconds": 900, "file_size_mib": 2048, "open_files": 4096})
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The part of each `denied` entry before its `:`.
fn denied_flags(command: &Value) -> BTreeSet<String> {
    command["denied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().split(':').next().unwrap().to_string())
        .collect()
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect()
}

// ---------------------------------------------------------------------------------------------
// Background processes
// ---------------------------------------------------------------------------------------------

#[test]
fn read_process_output_offsets() {
    let p = project();
    let body: String = (0..4000).map(|i| format!("{i:06} {}\n", "y".repeat(50))).collect(); // 232 000 bytes: > one read
    write(p.root.join("big.txt"), &body);
    let mut s = session(&p.root, "read-only");
    let started = s.ok("start_process", json!({"program": "cat", "args": ["big.txt"]}));
    assert!(started["id"].is_i64() && started["program"] == "cat" && started["args"] == json!(["--", "big.txt"]));
    let id = &started["id"];
    // Wait for the end, then read from 0: the first page is cut and says so.
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let first = s.ok("read_process_output", json!({"id": id, "offset": 0, "wait_ms": 200}));
        if first["running"] == false {
            break first;
        }
        assert!(Instant::now() < deadline);
    };
    assert!(first["exit_code"] == 0 && first["signal"].is_null());
    assert!(first["offset"] == 0 && first["truncated"] == true);
    let next = first["next_offset"].as_i64().unwrap();
    let output = first["output"].as_str().unwrap();
    assert!(0 < next && next < body.len() as i64 && body.starts_with(output));
    // Continuing from next_offset yields the rest, byte for byte.
    let (rest, last) = read_until_exit(&mut s, id, next);
    assert_eq!(format!("{output}{rest}"), body);
    assert_eq!(last["next_offset"], body.len());
    // A negative offset is a tail.
    let tail = s.ok("read_process_output", json!({"id": id, "offset": -20}));
    assert!(
        tail["output"] == body[body.len() - 20..]
            && tail["offset"] == body.len() - 20
            && tail["next_offset"] == body.len()
    );
    // Past the end: nothing, not an error.
    let past = s.ok("read_process_output", json!({"id": id, "offset": body.len() + 100}));
    assert!(past["output"] == "" && past["next_offset"] == body.len() && past["truncated"] == false);
}

#[test]
fn process_input_wait_and_exit() {
    let p = project();
    let mut s = session(&p.root, "read-only");
    let started = s.ok("start_process", json!({"program": "cat", "args": []}));
    let id = started["id"].clone();
    // Nothing written yet: wait_ms waits, then returns an empty page of a running process.
    let t0 = Instant::now();
    let out = s.ok("read_process_output", json!({"id": id, "offset": 0, "wait_ms": 400}));
    assert!(t0.elapsed() >= Duration::from_millis(350));
    assert!(out["output"] == "" && out["running"] == true && out["exit_code"].is_null());
    let w = s.ok("write_process_input", json!({"id": id, "data": "first line\n"}));
    assert_eq!(w, json!({"id": id, "bytes": 11, "closed": false}));
    // wait_ms returns as soon as output arrives.
    let t0 = Instant::now();
    let out = s.ok("read_process_output", json!({"id": id, "offset": 0, "wait_ms": 10_000}));
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(out["output"] == "first line\n" && out["running"] == true);
    let w = s.ok("write_process_input", json!({"id": id, "data": "last line\n", "close": true}));
    assert_eq!(w["closed"], true);
    let (rest, last) = read_until_exit(&mut s, &id, out["next_offset"].as_i64().unwrap());
    assert!(rest == "last line\n" && last["exit_code"] == 0 && last["running"] == false);
    // Output stays readable after the end.
    let again = s.ok("read_process_output", json!({"id": id, "offset": 0}));
    assert!(again["output"] == "first line\nlast line\n" && again["exit_code"] == 0);
    // Writing to an ended process is process_not_found.
    s.err("write_process_input", json!({"id": id, "data": "late\n"}), "process_not_found");

    let sorter = s.ok("start_process", json!({"program": "sort", "args": ["-r"]}));
    s.ok("write_process_input", json!({"id": sorter["id"], "data": "b\nc\n"}));
    s.ok("write_process_input", json!({"id": sorter["id"], "data": "a\n", "close": true}));
    let (text, last) = read_until_exit(&mut s, &sorter["id"], 0);
    assert!(text == "c\nb\na\n" && last["exit_code"] == 0);
}

#[test]
fn list_and_kill_processes() {
    let p = project();
    let mut s = session(&p.root, "read-only");
    assert_eq!(s.ok("list_processes", json!({})), json!({"processes": []}));
    let done = s.ok("start_process", json!({"program": "echo", "args": ["quick"]}));
    read_until_exit(&mut s, &done["id"], 0);
    let waiting = s.ok("start_process", json!({"program": "cat", "args": [], "cwd": "data"}));
    let listed = s.ok("list_processes", json!({}));
    let by_id =
        |listed: &Value, id: &Value| listed["processes"].as_array().unwrap().iter().find(|p| p["id"] == *id).cloned();
    let ids: BTreeSet<i64> =
        listed["processes"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [done["id"].as_i64().unwrap(), waiting["id"].as_i64().unwrap()].into_iter().collect());
    let (d, w) = (by_id(&listed, &done["id"]).unwrap(), by_id(&listed, &waiting["id"]).unwrap());
    assert!(d["program"] == "echo" && d["args"] == json!(["quick"]) && d["running"] == false && d["exit_code"] == 0);
    assert!(d["output_bytes"] == 6 && d["cwd"] == ".");
    assert!(w["program"] == "cat" && w["running"] == true && w["exit_code"].is_null() && w["cwd"] == "data");
    assert!(w["started_at"].as_str().unwrap().ends_with('Z') && w["elapsed_seconds"].as_f64().unwrap() >= 0.0);

    let killed = s.ok("kill_process", json!({"id": waiting["id"]}));
    assert!(killed["killed"] == true && killed["signal"] == SIGKILL && killed["exit_code"].is_null());
    let out = s.ok("read_process_output", json!({"id": waiting["id"]}));
    assert!(out["running"] == false && out["signal"] == SIGKILL);
    // Killing again is harmless and says it had already ended.
    let again = s.ok("kill_process", json!({"id": waiting["id"]}));
    assert!(again["killed"] == false && again["signal"] == SIGKILL);
    let finished = s.ok("kill_process", json!({"id": done["id"]}));
    assert_eq!(finished, json!({"id": done["id"], "killed": false, "exit_code": 0, "signal": null}));
    let listed = s.ok("list_processes", json!({}));
    assert_eq!(by_id(&listed, &waiting["id"]).unwrap()["running"], false);

    for (tool, args) in [
        ("read_process_output", json!({"id": 424242})),
        ("write_process_input", json!({"id": 424242, "data": "x"})),
        ("kill_process", json!({"id": 424242})),
    ] {
        let msg = s.err(tool, args, "process_not_found");
        assert!(msg.contains("424242"));
    }
    s.err("read_process_output", json!({"id": -1}), "invalid_argument");
    s.err("start_process", json!({"program": "sh", "args": ["-c", "id"]}), "command_not_allowed");
    s.err("start_process", json!({"program": "cat", "args": ["/etc/passwd"]}), "path_outside_root");
    s.err("start_process", json!({"program": "tail", "args": ["-f", "README.md"]}), "argument_not_allowed");
}

#[test]
fn running_processes_are_capped() {
    let p = project();
    let mut s = session(&p.root, "read-only");
    let ids: Vec<Value> =
        (0..8).map(|_| s.ok("start_process", json!({"program": "cat", "args": []}))["id"].clone()).collect();
    s.err("start_process", json!({"program": "cat", "args": []}), "busy");
    s.ok("kill_process", json!({"id": ids[0]}));
    let extra = s.ok("start_process", json!({"program": "cat", "args": []}));
    for id in ids[1..].iter().chain([&extra["id"]]) {
        s.ok("kill_process", json!({"id": id}));
    }
}

#[test]
fn kill_process_kills_the_whole_tree() {
    let p = project();
    let marker = unique_sleep();
    makefile(&p.root, &[("tree", &[&format!("@sleep {marker} & setsid sleep {marker} & sleep {marker}")])]);
    let mut s = session(&p.root, "build-test");
    let started = s.ok("start_process", json!({"program": "make", "args": ["tree"]}));
    assert_eq!(wait_for_sleeps(&marker, 3), 3);
    let killed = s.ok("kill_process", json!({"id": started["id"]}));
    assert_eq!(killed["killed"], true);
    assert_eq!(wait_gone(&marker, Duration::from_secs(2)), Vec::<u32>::new());
}

#[test]
fn processes_die_with_the_server() {
    let p = project();
    let marker = unique_sleep();
    makefile(&p.root, &[("hang", &[&format!("@setsid sleep {marker} & sleep {marker}")])]);
    let mut s = session(&p.root, "build-test");
    s.ok("start_process", json!({"program": "make", "args": ["hang"]}));
    assert_eq!(wait_for_sleeps(&marker, 2), 2);
    let server_pid = s.pid();
    // The client closes its end: the server exits and takes every process along.
    s.close();
    assert_eq!(wait_gone(&marker, Duration::from_secs(2)), Vec::<u32>::new());
    assert!(!Path::new(&format!("/proc/{server_pid}")).exists() || is_zombie(server_pid));
}

fn is_zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return true };
    stat.rfind(')').is_some_and(|at| stat[at + 2..].starts_with('Z'))
}

#[test]
fn processes_die_when_the_server_is_killed() {
    let p = project();
    let marker = unique_sleep();
    makefile(&p.root, &[("hang", &[&format!("@setsid sleep {marker} & sleep {marker}")])]);
    let mut s = session(&p.root, "build-test");
    let scratch = s.ok("sandbox_status", json!({}))["scratch_dir"].as_str().unwrap().to_string();
    s.ok("start_process", json!({"program": "make", "args": ["hang"]}));
    assert_eq!(wait_for_sleeps(&marker, 2), 2);
    // No clean shutdown: SIGKILL the server (parent-death signal and the pid namespace must take
    // the commands along).
    let status = std::process::Command::new("kill").args(["-KILL", &s.pid().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(wait_gone(&marker, Duration::from_secs(2)), Vec::<u32>::new());
    drop(s);
    assert_eq!(wait_gone(&marker, Duration::from_millis(100)), Vec::<u32>::new());
    // A killed server cannot remove its scratch directory; do not leave it in /tmp. The kit
    // starts the server without TMPDIR, so its temporary directory is /tmp.
    assert!(scratch.starts_with("/tmp/") && Path::new(&scratch).is_dir(), "{scratch}");
    let _ = std::fs::remove_dir_all(&scratch);
}

// ---------------------------------------------------------------------------------------------
// list_allowed_commands, sandbox_status
// ---------------------------------------------------------------------------------------------

#[test]
fn list_allowed_commands_read_only() {
    let p = project();
    let allowed = session(&p.root, "read-only").ok("list_allowed_commands", json!({}));
    assert!(allowed["profile"] == "read-only" && allowed["description"].as_str().is_some_and(|d| !d.is_empty()));
    let commands: Vec<Value> = allowed["commands"].as_array().unwrap().clone();
    let command = |name: &str| commands.iter().find(|c| c["program"] == name).unwrap().clone();
    let names: BTreeSet<String> = commands.iter().map(|c| c["program"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, set(&READ_ONLY_PROGRAMS));
    for name in ["cat", "echo", "find", "grep", "head", "jq", "ls", "rg", "sort", "wc"] {
        assert_eq!(command(name)["available"], true, "{name}");
    }
    let never: BTreeSet<String> = strs(&allowed["never_allowed"]).into_iter().map(str::to_string).collect();
    let must_never = set(&[
        "sh", "bash", "env", "xargs", "timeout", "nice", "sudo", "eval", "command", "git", "perl", "awk", "sed",
        "busybox", "ssh", "nohup", "setsid", "unshare",
    ]);
    assert!(must_never.is_subset(&never));
    assert!(never.is_disjoint(&names));
    let rg = command("rg");
    let flags = strs(&rg["flags"]);
    assert!(flags.contains(&"-e VALUE") && flags.contains(&"-f PATH") && flags.contains(&"--no-config"));
    let denied = strs(&rg["denied"]);
    assert!(denied.iter().any(|d| d.starts_with("--pre: ")) && denied.iter().any(|d| d.starts_with("-z: ")));
    assert!(rg["usage"].as_str().unwrap().contains("first operand is the pattern"));
    let sort = command("sort");
    assert!(!strs(&sort["flags"]).iter().any(|f| f.starts_with("-o")));
    assert!(set(&["-o", "--output", "--compress-program", "-T"]).is_subset(&denied_flags(&sort)));
    let find = command("find");
    assert!(set(&["-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint"]).is_subset(&denied_flags(&find)));
    assert!(find["usage"].as_str().unwrap().contains("find expression"));
    assert!(command("echo")["usage"].as_str().unwrap().contains("literal"));
    assert!(command("uniq")["usage"].as_str().unwrap().ends_with("at most 1 operand(s)"));
}

#[test]
fn list_allowed_commands_build_test() {
    let p = project();
    let allowed = session(&p.root, "build-test").ok("list_allowed_commands", json!({}));
    assert_eq!(allowed["profile"], "build-test");
    let commands: Vec<Value> = allowed["commands"].as_array().unwrap().clone();
    let command = |name: &str| commands.iter().find(|c| c["program"] == name).unwrap().clone();
    let names: BTreeSet<String> = commands.iter().map(|c| c["program"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, set(&READ_ONLY_PROGRAMS).union(&set(&BUILD_TEST_EXTRA)).cloned().collect());
    assert_eq!(command("make")["available"], true);
    assert_eq!(denied_flags(&command("make")), set(&["--eval", "-E"]));
    assert!(command("make")["usage"].as_str().unwrap().contains("runs project code inside the sandbox"));
    assert!(command("python")["usage"].as_str().unwrap().contains("must start with: -m pytest"));
    assert!(command("cargo")["usage"].as_str().unwrap().contains("subcommands: build"));
    assert!(set(&["--config", "-Z"]).is_subset(&denied_flags(&command("cargo"))));
}

#[test]
fn sandbox_status() {
    let p = project();
    for profile in ["read-only", "build-test"] {
        let st = session(&p.root, profile).ok("sandbox_status", json!({}));
        assert_eq!(st["profile"], profile);
        // The facts of this machine (and of CI): Landlock ABI 7, user namespaces, seccomp.
        assert!(st["landlock_abi"].as_u64().unwrap() >= 6);
        assert_eq!(st["landlock"], "full");
        for key in ["seccomp", "userns", "private_proc", "no_new_privs", "capabilities_dropped", "scoped", "tcp_rules"]
        {
            assert_eq!(st[key], true, "{key}: {st}");
        }
        assert_eq!(st["notes"], json!([]));
        assert_eq!(st["profile_refused"], false);
        assert_eq!(st["tcp_connect"], json!([]));
        assert_eq!(st["rlimits"], default_rlimits());
    }
}

#[test]
fn sandbox_status_reflects_the_config() {
    let p = project();
    let config = p.base.path().join("bastion.toml");
    write(
        &config,
        "[shell]\nprofile = \"build-test\"\ntcp_connect = [5432]\n\
         [shell.rlimits]\nfile_size_mib = 1\nopen_files = 256\ncpu_seconds = 30\naddress_space_mib = 0\n",
    );
    let mut s = bastion_testkit::ServerBuilder::new(bastion_testkit::Kind::Shell)
        .root(&p.root)
        .arg("--config")
        .arg(&config)
        .timeout(Duration::from_secs(60))
        .start();
    let st = s.ok("sandbox_status", json!({}));
    assert!(st["profile"] == "build-test" && st["tcp_connect"] == json!([5432]));
    assert_eq!(
        st["rlimits"],
        json!({"address_space_mib": 0, "cpu_seconds": 30, "file_size_mib": 1, "open_files": 256})
    );
}

// ---------------------------------------------------------------------------------------------
// The `bastion shell` entry point, the audit journal, argument errors
// ---------------------------------------------------------------------------------------------

#[test]
fn bastion_shell_subcommand() {
    let p = project();
    let mut s = session(&p.root, "read-only");
    assert_eq!(s.tool_names(), shell_tools());
    let out = run(&mut s, "sort", &["data/words.txt"]);
    assert_eq!(out["stdout"], "apple\napple\nfig\npear\n");
    let st = s.ok("sandbox_status", json!({}));
    assert!(st["profile"] == "read-only" && st["landlock"] == "full");
    s.err("run_command", json!({"program": "bash", "args": ["-c", "id"]}), "command_not_allowed");
}

#[test]
fn exit_codes_and_signals_are_journaled() {
    let p = project();
    let log = p.base.path().join("shell.jsonl");
    let mut s = builder(&p.root, "read-only").arg("--audit-log").arg(&log).start();
    run_with(&mut s, "sort", &[], json!({"stdin": "a\nb\n"}));
    // `sort -c` on unsorted input exits 1.
    let failed = run_with(&mut s, "sort", &["-c"], json!({"stdin": "b\na\n"}));
    assert_eq!(failed["exit_code"], 1, "{failed}");
    let started = s.ok("start_process", json!({"program": "cat", "args": ["data/words.txt"]}));
    let id = started["id"].clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.ok("read_process_output", json!({"id": id, "offset": 0, "wait_ms": 200}))["running"] != false {
        assert!(Instant::now() < deadline);
    }
    s.close();
    let lines: Vec<Value> =
        std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let runs: Vec<&Value> = lines.iter().filter(|e| e["tool"] == "run_command").collect();
    assert_eq!(runs.len(), 2);
    assert!(runs[0]["exit_code"] == 0 && runs[0]["signal"].is_null(), "{}", runs[0]);
    assert!(runs[1]["exit_code"] == 1 && runs[1]["signal"].is_null(), "{}", runs[1]);
    // Other tools' lines keep their shape.
    let start = lines.iter().find(|e| e["tool"] == "start_process").unwrap();
    assert!(start.get("exit_code").is_none(), "{start}");
    // A background process's end is an event of its own.
    let ended: Vec<&Value> = lines.iter().filter(|e| e["event"] == "process_exit").collect();
    assert_eq!(ended.len(), 1, "{lines:?}");
    let d = &ended[0]["detail"];
    assert!(d["id"] == id && d["program"] == "cat" && d["exit_code"] == 0 && d["signal"].is_null(), "{d}");
    assert!(d["duration_ms"].is_u64());
}

#[test]
fn audit_log() {
    let p = project();
    let log = p.base.path().join("audit").join("shell.jsonl");
    std::fs::create_dir(log.parent().unwrap()).unwrap();
    let mut s = builder(&p.root, "read-only").arg("--audit-log").arg(&log).start();
    run_with(&mut s, "sort", &[], json!({"stdin": "secret-stdin-text\n"}));
    s.call("run_command", json!({"program": "sh", "args": ["-c", "id"]}));
    s.call("run_command", json!({"program": "cat", "args": ["/etc/passwd"]}));
    s.ok("sandbox_status", json!({}));
    s.close();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let start: Vec<&Value> = lines.iter().filter(|e| e["event"] == "start").collect();
    assert!(start.len() == 1 && start[0]["server"] == "shell");
    let detail = &start[0]["detail"];
    let root = p.root.canonicalize().unwrap();
    assert!(detail["profile"] == "read-only" && detail["roots"] == json!([root]));
    assert!(detail["sandbox"]["landlock"] == "full" && detail["sandbox"]["seccomp"] == true);
    let calls: Vec<&Value> = lines.iter().filter(|e| e.get("tool").is_some()).collect();
    let outcomes: Vec<(&str, &str)> =
        calls.iter().map(|e| (e["tool"].as_str().unwrap(), e["outcome"].as_str().unwrap())).collect();
    assert_eq!(
        outcomes,
        [
            ("run_command", "ok"),
            ("run_command", "command_not_allowed"),
            ("run_command", "path_outside_root"),
            ("sandbox_status", "ok"),
        ]
    );
    for e in &calls {
        assert!(e["server"] == "shell" && e["time"].as_str().unwrap().ends_with('Z'));
        assert!(e["duration_ms"].is_number() && e["result_bytes"].is_u64());
    }
    assert_eq!(calls[0]["args"]["program"], "sort");
    assert_eq!(calls[0]["args"]["stdin"], "[18 bytes]");
    assert_eq!(calls[1]["args"]["args"], json!(["-c", "id"]));
    assert!(!text.contains("secret-stdin-text"));
}

#[test]
fn argument_errors() {
    let p = project();
    let mut s = session(&p.root, "read-only");
    s.err("run_command", json!({"args": ["x"]}), "invalid_argument");
    s.err("run_command", json!({"program": "ls", "args": "-la"}), "invalid_argument");
    s.err("run_command", json!({"program": "ls", "timeout_ms": -5}), "invalid_argument");
    s.err("read_process_output", json!({}), "invalid_argument");
    s.err("run_command", json!({"program": "touch", "args": ["x"]}), "command_not_allowed");
    s.err("run_command", json!({"program": "make", "args": []}), "command_not_allowed");
    let msg = s.err("run_command", json!({"program": "sort", "args": ["-o", "x"]}), "argument_not_allowed");
    assert!(msg.contains("-o") && msg.contains("list_allowed_commands"));
    // An unknown tool is a protocol error, not a result.
    assert!(s.try_call("no_such_tool", json!({})).is_err());
    let r = s.call("sandbox_status", json!({}));
    assert_eq!(error_code(&r), None);
}
