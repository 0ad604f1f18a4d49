//! What the hub's tool surface costs a model before its first call, measured on the real binary
//! (`bastion serve --stdio`, rmcp's client): the bytes of `tools/list`, against a budget per
//! surface, and whether the definitions still say which tool a task wants (the selection eval:
//! thirty task phrasings, each of which must rank its intended tool first by BM25 over names and
//! descriptions, as it did before the definitions were made compact).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use bastion_hub::search::{Doc, Index};
use rmcp::ServiceExt;
use rmcp::model::Tool;
use rmcp::transport::TokioChildProcess;
use tokio::process::Command;

/// The read-only surface (fs, git, shell with its read-only profile): at most 22 KB.
const READ_ONLY_BUDGET: usize = 22_000;
/// Everything built in: fs and git with their write tools, shell with `build-test`: 35 KB.
const FULL_BUDGET: usize = 35_000;

/// The host server with its operate tier (seven tools): at most 5 KB, about 700 bytes a tool,
/// below the reference filesystem server's 1.0 KB.
const HOST_BUDGET: usize = 5_000;

/// A hub of the host server alone, every tool offered.
const HOST: &str = r#"
[[upstream]]
name = "host"
builtin = "host"
args = ["--allow-operate"]
"#;

/// A hub configuration offering every built-in tool short of the destructive ones.
const FULL: &str = r#"
[[upstream]]
name = "fs"
builtin = "fs"
args = ["--allow-write"]
[[upstream]]
name = "git"
builtin = "git"
args = ["--allow-write"]
[[upstream]]
name = "shell"
builtin = "shell"
args = ["--profile", "build-test", "--allow-degraded-sandbox"]
"#;

/// (task as a person would phrase it, the tool meant)
const EVAL: [(&str, &str); 30] = [
    ("read the contents of src/main.rs", "fs__read_file"),
    ("read several files in one call", "fs__read_many_files"),
    ("list what is in the src directory", "fs__list_directory"),
    ("size, permissions and modification time of a file", "fs__file_info"),
    ("which directories may I touch", "fs__list_roots"),
    ("find files by name matching *.toml", "fs__find_files"),
    ("search file contents for TODO with a regex", "fs__search_text"),
    ("create a new file with this content", "fs__write_file"),
    ("replace exact text in config.py", "fs__edit_file"),
    ("apply this unified diff", "fs__apply_patch"),
    ("make a new directory called build", "fs__create_directory"),
    ("rename old.txt to new.txt", "fs__move_path"),
    ("which branch am I on and what is staged or untracked", "git__status"),
    ("show the diff of my unstaged changes", "git__diff"),
    ("show the commit history of the repository", "git__log"),
    ("show one commit in full with its message", "git__show"),
    ("who last changed each line of this file", "git__blame"),
    ("list local and remote branches", "git__branches"),
    ("list the git tags", "git__tags"),
    ("list the stashes", "git__stash_list"),
    ("stage files for the next commit", "git__add"),
    ("take a file back out of the index", "git__unstage"),
    ("record the staged changes as a commit", "git__commit"),
    ("create a branch without switching to it", "git__create_branch"),
    ("check out an existing branch", "git__switch"),
    ("stash my local changes", "git__stash_push"),
    ("run cargo test and give me the exit code", "shell__run_command"),
    ("start a dev server in the background", "shell__start_process"),
    ("which programs am I allowed to run", "shell__list_allowed_commands"),
    ("kill the background process", "shell__kill_process"),
];

/// A hub on stdio over a fresh root holding `hello.txt`, and its state directory (the journal).
struct Running {
    client: rmcp::service::RunningService<rmcp::RoleClient, ()>,
    state: tempfile::TempDir,
    _root: tempfile::TempDir,
}

async fn start(extra: &[&str], config: Option<&str>) -> Running {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hello.txt"), "hello\n").unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bastion"));
    cmd.arg("serve").arg("--stdio").arg("--root").arg(root.path()).arg("--state-dir").arg(state.path()).args(extra);
    if let Some(text) = config {
        let file = state.path().join("hub.toml");
        std::fs::write(&file, text.replace("BASTION", env!("CARGO_BIN_EXE_bastion"))).unwrap();
        cmd.arg("--config").arg(&file);
    }
    cmd.env("RUST_LOG", "warn");
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    Running { client, state, _root: root }
}

async fn surface(extra: &[&str], config: Option<&str>) -> Vec<Tool> {
    let hub = start(extra, config).await;
    let tools = hub.client.list_all_tools().await.unwrap();
    hub.client.cancel().await.unwrap();
    tools
}

/// Bytes of `{"tools": [...]}` as the hub sends them.
fn bytes(tools: &[Tool]) -> usize {
    serde_json::to_vec(&serde_json::json!({ "tools": tools })).unwrap().len()
}

/// How many eval phrasings rank their tool first among `docs` (`rename` maps an eval name to
/// the name in `docs`); the misses are returned for the message.
fn eval(docs: Vec<Doc>, rename: impl Fn(&str) -> String) -> (usize, Vec<String>) {
    let index = Index::new(docs);
    let mut misses = vec![];
    for (task, want) in EVAL {
        let want = rename(want);
        let top = index.rank(task, 3);
        let names: Vec<&str> = top.iter().filter_map(|&i| index.doc(i)).map(|d| d.name.as_str()).collect();
        if names.first() != Some(&want.as_str()) {
            misses.push(format!("{task:?}: wanted {want}, ranked {names:?}"));
        }
    }
    (EVAL.len() - misses.len(), misses)
}

#[tokio::test]
async fn read_only_surface_fits_its_budget() {
    let tools = surface(&[], None).await;
    let n = bytes(&tools);
    assert!(
        n <= READ_ONLY_BUDGET,
        "read-only tools/list is {n} bytes (budget {READ_ONLY_BUDGET}) for {} tools",
        tools.len()
    );
    // No schema noise a model would pay for: null unions, `default: null`, formats, `$defs`.
    let text = serde_json::to_string(&tools).unwrap();
    for noise in ["\"null\"", "\"default\":null", "\"format\"", "$defs", "$schema", "outputSchema"] {
        assert!(!text.contains(noise), "{noise} in the read-only surface");
    }
}

#[tokio::test]
async fn host_surface_fits_its_budget() {
    let tools = surface(&[], Some(HOST)).await;
    let n = bytes(&tools);
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"host__overview") && names.contains(&"host__service_action"), "{names:?}");
    assert!(n <= HOST_BUDGET, "host tools/list is {n} bytes (budget {HOST_BUDGET}) for {} tools", tools.len());
    // Compacted like the other built-ins: no schema noise, descriptions on one line.
    let text = serde_json::to_string(&tools).unwrap();
    for noise in ["\"null\"", "\"default\":null", "\"format\"", "$defs", "$schema", "outputSchema", "\\n"] {
        assert!(!text.contains(noise), "{noise} in the host surface");
    }
}

#[tokio::test]
async fn full_builtin_surface_fits_its_budget_and_names_its_tools_plainly() {
    let tools = surface(&[], Some(FULL)).await;
    let n = bytes(&tools);
    assert!(n <= FULL_BUDGET, "full tools/list is {n} bytes (budget {FULL_BUDGET}) for {} tools", tools.len());
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for (_, want) in EVAL {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // The built-ins do not repeat their prefix, and every name fits the default limit.
    assert!(names.iter().all(|n| !n.starts_with("git__git_") && n.len() <= 48), "{names:?}");
}

#[tokio::test]
async fn every_task_ranks_its_tool_first_before_and_after() {
    let tools = surface(&[], Some(FULL)).await;
    let docs = tools.iter().map(|t| Doc::new(&t.name, "", t.description.as_deref().unwrap_or(""), &[])).collect();
    let (after, after_misses) = eval(docs, str::to_owned);

    // The same eval on the definitions as they were before (names with the repeated prefix,
    // the long descriptions), kept as a file: the compact ones must do at least as well.
    let before: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tools-before.json")).unwrap(),
    )
    .unwrap();
    let docs = before
        .iter()
        .map(|t| Doc::new(t["name"].as_str().unwrap(), "", t["description"].as_str().unwrap(), &[]))
        .collect();
    let (was, misses) = eval(docs, |n| n.replacen("git__", "git__git_", 1));
    eprintln!("selection eval: {was}/30 before, {after}/30 after; before missed:\n{}", misses.join("\n"));
    assert_eq!(after, EVAL.len(), "the compact definitions lose tasks:\n{}", after_misses.join("\n"));
    assert!(after >= was);
}

/// The full surface with tool search on: two tools instead of thirty-four.
fn with_search(mode: &str, extra: &str) -> String {
    format!("tool_search = \"{mode}\"\n{extra}\n{FULL}")
}

#[tokio::test]
async fn tool_search_lists_two_tools_finds_each_task_and_calls_the_real_tool() {
    let hub = start(&[], Some(&with_search("on", "pinned_tools = [\"fs__read_file\"]"))).await;
    let listed = hub.client.list_all_tools().await.unwrap();
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["find_tools", "call_tool", "fs__read_file"]);
    let n = bytes(&listed);
    assert!(n <= 4_000, "tools/list with search on is {n} bytes");

    // Every eval task finds its tool in the top three.
    let mut misses = vec![];
    for (task, want) in EVAL {
        let r = hub.client.call_tool(call("find_tools", serde_json::json!({"query": task, "limit": 3}))).await.unwrap();
        let found = r.structured_content.unwrap();
        let found: Vec<&str> = found["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        if !found.contains(&want) {
            misses.push(format!("{task:?}: {want} not in {found:?}"));
        }
    }
    assert!(misses.is_empty(), "{}", misses.join("\n"));

    // call_tool runs the real tool, and the journal names it (never call_tool).
    let r = hub
        .client
        .call_tool(call("call_tool", serde_json::json!({"name": "fs__read_file", "arguments": {"path": "hello.txt"}})))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    assert!(serde_json::to_string(&r.content).unwrap().contains("hello"));
    // A real tool stays callable by its own name.
    let r = hub.client.call_tool(call("git__status", serde_json::json!({}))).await.unwrap();
    assert_eq!(r.structured_content.unwrap()["code"], "not_a_repository");
    // call_tool of an unknown tool is the same protocol error as a direct call.
    let e = hub.client.call_tool(call("call_tool", serde_json::json!({"name": "fs__nope"}))).await.unwrap_err();
    assert!(e.to_string().contains("unknown tool 'fs__nope'"), "{e}");
    hub.client.cancel().await.unwrap();
    let journal = std::fs::read_to_string(hub.state.path().join("audit.jsonl")).unwrap();
    assert!(journal.contains(r#""tool":"fs__read_file""#), "{journal}");
    assert!(!journal.contains(r#""tool":"call_tool""#), "{journal}");
}

#[tokio::test]
async fn auto_search_turns_on_when_a_third_party_upstream_passes_the_budget() {
    // The read-only built-ins alone stay under 22 KB: listed in full.
    let budget = "tool_search_budget = 22000";
    let alone = surface(&[], Some(&format!("tool_search = \"auto\"\n{budget}"))).await;
    assert!(alone.len() > 20 && alone.iter().all(|t| t.name != "find_tools"), "{}", alone.len());
    // A third-party command upstream (here bastion's own git server run as a plain command,
    // uncontained: contained, its home would be a scratch directory under /tmp, which its root
    // would then contain) pushes the surface over the budget: two tools instead.
    let more = format!(
        "tool_search = \"auto\"\n{budget}\n\
         [[upstream]]\nname = \"fs\"\nbuiltin = \"fs\"\n\
         [[upstream]]\nname = \"git\"\nbuiltin = \"git\"\n\
         [[upstream]]\nname = \"shell\"\nbuiltin = \"shell\"\nargs = [\"--profile\", \"read-only\"]\n\
         [[upstream]]\nname = \"ext\"\ncommand = \"BASTION\"\nargs = [\"git\", \"--root\", \"/tmp\", \"--no-approvals\"]\n\
         sandbox = false\n"
    );
    let hub = start(&[], Some(&more)).await;
    // The upstreams come up one by one; wait until all four are listed or searched.
    let mut listed = vec![];
    for _ in 0..100 {
        listed = hub.client.list_all_tools().await.unwrap();
        if listed.iter().any(|t| t.name == "find_tools") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["find_tools", "call_tool"]);
    let r = hub.client.call_tool(call("find_tools", serde_json::json!({"query": "commit history"}))).await.unwrap();
    let found = r.structured_content.unwrap();
    let found: Vec<&str> = found["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(found.contains(&"ext__log") && found.contains(&"git__log"), "{found:?}");
    hub.client.cancel().await.unwrap();
}

fn call(name: &'static str, args: serde_json::Value) -> rmcp::model::CallToolRequestParams {
    let serde_json::Value::Object(args) = args else { panic!("arguments must be an object") };
    rmcp::model::CallToolRequestParams::new(name).with_arguments(args)
}
