//! Bastion's own state as git pathspecs: a state directory and a config file inside a
//! repository (`bastion serve --state-dir PROJECT/.bst --allow-state-in-root`, the hub passing
//! `--protect` to its children) are refused to every path-taking tool with `protected_path`,
//! left out, silently, of what status and add report, and a whole-tree diff never shows their
//! content.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{git, init, start, write};
use serde_json::json;

#[test]
fn protected_paths_are_refused_as_pathspecs_and_hidden_from_status() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let root = base.join("root");
    let repo = root.join("repo");
    let home = base.join("home");
    std::fs::create_dir_all(&home).unwrap();
    init(&repo);
    write(repo.join("a.txt"), "one\n");
    write(repo.join("bastion.toml"), "[[upstream]]\nname = \"fs\"\nbuiltin = \"fs\"\n");
    git(&repo, &["add", "a.txt", "bastion.toml"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    write(repo.join(".bst/tokens.json"), "[{\"hash\":\"TOKEN-HASH\"}]\n");
    write(repo.join("bastion.toml"), "changed\n");
    write(repo.join("a.txt"), "two\n");
    let state = repo.join(".bst");
    let config = repo.join("bastion.toml");
    let mut s = start(
        &[&root],
        &home,
        &["--allow-write", "--protect", state.to_str().unwrap(), "--protect", config.to_str().unwrap()],
    );
    let abs = state.join("tokens.json").display().to_string();
    for path in [".bst", ".bst/tokens.json", ".BST/tokens.json", "sub/../.bst/tokens.json", "bastion.toml", &abs] {
        for tool in ["add", "unstage", "restore", "diff", "log", "status"] {
            s.err(tool, json!({"repo": "repo", "paths": [path]}), "protected_path");
        }
        s.err("blame", json!({"repo": "repo", "path": path}), "protected_path");
    }
    s.err("show", json!({"repo": "repo", "rev": "HEAD:bastion.toml"}), "protected_path");
    // Whole-tree views leave it out without a word.
    let status = s.ok("status", json!({"repo": "repo"})).to_string();
    assert!(status.contains("a.txt"), "{status}");
    assert!(!status.contains(".bst") && !status.contains("bastion.toml"), "{status}");
    // A whole-tree diff names the changed file as it names deny-listed ones, never its content.
    let diff = s.ok("diff", json!({"repo": "repo"})).to_string();
    assert!(diff.contains("+two") && !diff.contains("changed"), "{diff}");
    let add = s.ok("add", json!({"repo": "repo", "paths": ["."]}));
    assert_eq!(add["added"], json!(["a.txt"]), "{add}");
    assert!(!add.to_string().contains(".bst") && !add.to_string().contains("bastion.toml"), "{add}");
    let index = git(&repo, &["ls-files", "--stage"]);
    assert!(!index.contains(".bst"), "{index}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "changed\n");
}
