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

async fn surface(extra: &[&str], config: Option<&str>) -> Vec<Tool> {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bastion"));
    cmd.arg("serve").arg("--stdio").arg("--root").arg(root.path()).arg("--state-dir").arg(state.path()).args(extra);
    if let Some(text) = config {
        let file = state.path().join("hub.toml");
        std::fs::write(&file, text).unwrap();
        cmd.arg("--config").arg(&file);
    }
    cmd.env("RUST_LOG", "warn");
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    client.cancel().await.unwrap();
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
