//! Special files (FIFOs, sockets, devices), git metadata and secrets, per-file results, whole-tree
//! walks and forged cursors, through the real `bastion fs` binary.
//! The tree and the checks after each case are in `common/hostile.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::FileTypeExt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

mod common;
use common::hostile::*;

#[test]
fn special_files() {
    run_table(special_cases());
}

#[test]
fn git_metadata_and_secrets() {
    run_table(git_cases());
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
