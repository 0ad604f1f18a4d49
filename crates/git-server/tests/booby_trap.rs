//! A booby-trapped repository: every configuration key and hook through which the `git` program
//! runs code (fsmonitor, hooks and core.hooksPath, clean/smudge/process filters named in
//! .gitattributes, external diff, textconv, pager, sshCommand, credential helper, editor, aliases,
//! an included config file, a merge driver) points at a script that leaves a marker file. The
//! same fixture is first shown to be armed — the real `git` program leaves markers — and then
//! every tool of bastion-git runs on it, each one succeeding, with no marker appearing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{files_under, git, git_command, init, write};
use serde_json::json;

const HOOKS: &[&str] = &[
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "sendemail-validate",
    "fsmonitor-watchman",
    "post-index-change",
];

fn executable(path: &Path, body: &str) {
    write(path, body);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Builds the trapped repository under `base/root/repo`; markers land in `markers`.
fn trapped(base: &Path, markers: &Path) -> PathBuf {
    std::fs::create_dir_all(markers).unwrap();
    let root = base.join("root");
    let repo = root.join("repo");
    init(&repo);
    write(repo.join("a.txt"), "line 1\nline 2\nline 3\n");
    write(repo.join("sub/c.txt"), "c\n");
    write(repo.join(".gitattributes"), "* filter=evil diff=evil merge=evil\n");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    write(repo.join("a.txt"), "line 1\nline two\nline 3\n");
    git(&repo, &["commit", "-q", "-am", "second"]);
    git(&repo, &["tag", "-a", "v1", "-m", "release one"]);
    git(&repo, &["checkout", "-q", "-b", "feature"]);
    write(repo.join("feature.txt"), "feature\n");
    git(&repo, &["add", "feature.txt"]);
    git(&repo, &["commit", "-q", "-m", "feature work"]);
    git(&repo, &["checkout", "-q", "main"]);
    // A branch literally named like an option, written straight into the ref store.
    let head = git(&repo, &["rev-parse", "HEAD"]);
    write(repo.join(".git/refs/heads/--format=x"), &head);
    // Work-tree state: an unstaged change, a staged file, an untracked file.
    write(repo.join("a.txt"), "line 1\nline two\nline 3\nline 4\n");
    write(repo.join("staged.txt"), "staged\n");
    git(&repo, &["add", "staged.txt"]);
    write(repo.join("new.txt"), "untracked\n");

    // Arm everything.
    let evil = base.join("evil.sh");
    executable(&evil, &format!("#!/bin/sh\ntouch '{}/'\"$1\"\nexit 0\n", markers.display()));
    let e = |what: &str| format!("{} {what}", evil.display());
    let hooks = base.join("hooks");
    for hook in HOOKS {
        executable(&hooks.join(hook), &format!("#!/bin/sh\n{}\n", e(&format!("hook-{hook}"))));
        executable(&repo.join(".git/hooks").join(hook), &format!("#!/bin/sh\n{}\n", e(&format!("githook-{hook}"))));
    }
    let included = base.join("included.gitconfig");
    write(
        &included,
        format!("[core]\n\teditor = {}\n[alias]\n\tst = !{}\n", e("included-editor"), e("included-alias")),
    );
    let settings: Vec<(&str, String)> = vec![
        ("core.fsmonitor", e("fsmonitor")),
        ("core.hooksPath", hooks.display().to_string()),
        ("filter.evil.clean", e("clean")),
        ("filter.evil.smudge", e("smudge")),
        ("filter.evil.process", e("process")),
        ("diff.external", e("external-diff")),
        ("diff.evil.textconv", e("textconv")),
        ("diff.evil.command", e("diff-command")),
        ("merge.evil.driver", e("merge-driver")),
        ("core.pager", e("pager")),
        ("pager.log", e("pager-log")),
        ("core.sshCommand", e("ssh")),
        ("core.gitProxy", e("proxy")),
        ("core.askPass", e("askpass")),
        ("core.editor", e("editor")),
        ("sequence.editor", e("sequence-editor")),
        ("credential.helper", format!("!{}", e("credential"))),
        ("gpg.program", e("gpg")),
        ("uploadpack.packObjectsHook", e("pack-objects")),
        ("remote.origin.url", format!("ext::{}", e("ext-remote"))),
        ("remote.origin.uploadpack", e("upload-pack")),
        ("protocol.ext.allow", "always".to_string()),
        ("alias.st", format!("!{}", e("alias"))),
        ("alias.lg", format!("!{}", e("alias-lg"))),
        ("include.path", included.display().to_string()),
    ];
    for (key, value) in &settings {
        git(&repo, &["config", key, value]);
    }
    repo
}

fn markers_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        files_under(dir).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn the_fixture_is_armed_for_the_git_program() {
    let base = tempfile::tempdir().unwrap();
    let markers = base.path().join("markers");
    let repo = trapped(base.path(), &markers);
    // The git program, run the ordinary way on the same fixture, executes the traps.
    let _ = git_command(&repo).args(["status"]).output().unwrap();
    let _ = git_command(&repo).args(["st"]).output().unwrap();
    // With the process filter out of the way, the rest fire too.
    let quiet = ["-c", "filter.evil.process="];
    let _ = git_command(&repo).args(quiet).args(["diff"]).output().unwrap();
    let _ = git_command(&repo).args(quiet).args(["commit", "-q", "--allow-empty", "-m", "x"]).output().unwrap();
    let _ = git_command(&repo).args(quiet).args(["checkout", "-q", "feature"]).output().unwrap();
    let fired = markers_in(&markers);
    let expected_markers = [
        "fsmonitor",
        "process",
        "included-alias",
        "diff-command",
        "hook-pre-commit",
        "hook-post-checkout",
        "hook-reference-transaction",
    ];
    for expected in expected_markers {
        assert!(fired.iter().any(|m| m == expected), "{expected} did not fire for git: {fired:?}");
    }
}

#[test]
fn every_tool_succeeds_and_nothing_runs() {
    let base = tempfile::tempdir().unwrap();
    let markers = base.path().join("markers");
    let repo = trapped(base.path(), &markers);
    // The global config is trapped too.
    let home = base.path().join("home");
    write(
        home.join(".gitconfig"),
        format!(
            "[core]\n\tfsmonitor = {0} global-fsmonitor\n\tpager = {0} global-pager\n[credential]\n\thelper = !{0} global-credential\n",
            base.path().join("evil.sh").display()
        ),
    );
    let root = repo.parent().unwrap().to_path_buf();
    let mut s = common::start(&[&root], &home, &[]);
    let r = json!("repo");
    let calls: Vec<(&str, serde_json::Value)> = vec![
        ("status", json!({"repo": r})),
        ("status", json!({"repo": r, "untracked_files": "all", "paths": ["a.txt", "sub"]})),
        ("diff", json!({"repo": r})),
        ("diff", json!({"repo": r, "staged": true})),
        ("diff", json!({"repo": r, "from": "HEAD~1"})),
        ("diff", json!({"repo": r, "from": "HEAD~1", "to": "feature", "stat_only": true})),
        ("diff", json!({"repo": r, "from": "v1", "staged": true, "paths": ["a.txt"]})),
        ("log", json!({"repo": r})),
        ("log", json!({"repo": r, "rev": "main..feature", "paths": ["feature.txt"]})),
        ("log", json!({"repo": r, "author": "fixture", "grep": "second", "since": "2024-01-01"})),
        ("show", json!({"repo": r})),
        ("show", json!({"repo": r, "rev": "v1"})),
        ("show", json!({"repo": r, "rev": "HEAD:a.txt"})),
        ("show", json!({"repo": r, "rev": "HEAD:sub"})),
        ("blame", json!({"repo": r, "path": "a.txt"})),
        ("branches", json!({"repo": r})),
        ("tags", json!({"repo": r})),
        ("stash_list", json!({"repo": r})),
        ("add", json!({"repo": r, "paths": ["a.txt", "new.txt"]})),
        ("unstage", json!({"repo": r, "paths": ["new.txt"]})),
        ("commit", json!({"repo": r, "message": "commit through bastion"})),
        ("create_branch", json!({"repo": r, "name": "topic", "from": "HEAD~1"})),
        ("switch", json!({"repo": r, "branch": "feature"})),
        ("switch", json!({"repo": r, "branch": "main"})),
        ("stash_push", json!({"repo": r, "message": "wip", "include_untracked": true})),
        ("stash_list", json!({"repo": r})),
        ("show", json!({"repo": r, "rev": "stash@{0}"})),
        ("reset", json!({"repo": r, "rev": "HEAD~1", "mode": "soft"})),
        ("reset", json!({"repo": r, "rev": "HEAD", "mode": "mixed"})),
        ("restore", json!({"repo": r, "paths": ["a.txt"]})),
        ("reset", json!({"repo": r, "mode": "hard"})),
        ("restore", json!({"repo": r, "paths": ["."], "staged": true})),
        ("delete_branch", json!({"repo": r, "name": "topic", "force": true})),
    ];
    for (tool, args) in calls {
        s.ok(tool, args.clone());
        let fired = markers_in(&markers);
        assert!(fired.is_empty(), "{tool} {args} ran {fired:?}");
    }
    drop(s);
    assert!(markers_in(&markers).is_empty());
}
