//! Hostile inputs: option injection in every string parameter, pathspec traversal, repositories
//! outside the roots or reaching out of them, and repositories owned by another user. Each case
//! names the exact error code, or — where the value is merely an odd name — checks that it was
//! treated as a name and nothing else happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::{git, init, write};
use serde_json::{Value, json};

struct Fixture {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    repo: PathBuf,
    home: PathBuf,
}

/// `base/root/repo` with history, a branch, a ref named `--format=x`, and `base/outside` holding
/// a secret; `root/repo/link` is a symlink to `outside`.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    let root = base.join("root");
    let repo = root.join("repo");
    init(&repo);
    write(repo.join("a.txt"), "one\n");
    git(&repo, &["add", "a.txt"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    write(repo.join("a.txt"), "one\ntwo\n");
    git(&repo, &["commit", "-q", "-am", "second"]);
    git(&repo, &["branch", "side"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    write(repo.join(".git/refs/heads/--format=x"), &head);
    write(repo.join(".git/refs/heads/-p"), &head);
    write(base.join("outside/private.txt"), "SECRET\n");
    symlink(base.join("outside"), repo.join("link")).unwrap();
    symlink(base.join("outside/private.txt"), repo.join("out-link")).unwrap();
    let home = base.join("home");
    std::fs::create_dir_all(&home).unwrap();
    Fixture { _dir: dir, base, root, repo, home }
}

fn index_paths(repo: &Path) -> String {
    git(repo, &["ls-files", "--stage"])
}

#[test]
fn option_injection_is_refused_or_taken_literally() {
    let f = fixture();
    let mut s = common::start(&[&f.root], &f.home, &[]);
    let pwned = f.base.join("pwned");
    let out = format!("--output={}", pwned.display());
    let r = "repo";
    let refused: Vec<(&str, Value, &str)> = vec![
        ("log", json!({"repo": r, "rev": out}), "invalid_revision"),
        ("log", json!({"repo": r, "rev": "-p --ext-diff"}), "invalid_revision"),
        ("log", json!({"repo": r, "rev": "--format=x"}), "invalid_revision"),
        ("log", json!({"repo": r, "since": out}), "invalid_argument"),
        ("log", json!({"repo": r, "until": "--until=yesterday"}), "invalid_argument"),
        ("diff", json!({"repo": r, "from": out}), "invalid_revision"),
        ("diff", json!({"repo": r, "from": "HEAD", "to": "-p --ext-diff"}), "invalid_revision"),
        ("diff", json!({"repo": r, "from": "--no-index"}), "invalid_revision"),
        ("show", json!({"repo": r, "rev": "--format=x"}), "invalid_revision"),
        ("show", json!({"repo": r, "rev": out}), "invalid_revision"),
        ("show", json!({"repo": r, "rev": "-p"}), "invalid_revision"),
        ("blame", json!({"repo": r, "path": "a.txt", "rev": "--contents=/etc/hostname"}), "invalid_revision"),
        ("blame", json!({"repo": r, "path": "--contents=/etc/hostname"}), "not_found"),
        ("create_branch", json!({"repo": r, "name": "--force"}), "invalid_reference_name"),
        ("create_branch", json!({"repo": r, "name": "-D"}), "invalid_reference_name"),
        ("create_branch", json!({"repo": r, "name": "ok", "from": out}), "invalid_revision"),
        ("switch", json!({"repo": r, "branch": "--format=x"}), "invalid_reference_name"),
        ("switch", json!({"repo": r, "branch": "-p"}), "invalid_reference_name"),
        ("switch", json!({"repo": r, "branch": "-"}), "invalid_reference_name"),
        ("delete_branch", json!({"repo": r, "name": "--format=x"}), "invalid_reference_name"),
        ("delete_branch", json!({"repo": r, "name": "-D"}), "invalid_reference_name"),
        ("reset", json!({"repo": r, "rev": "--hard"}), "invalid_revision"),
        ("reset", json!({"repo": r, "rev": out, "mode": "hard"}), "invalid_revision"),
        ("reset", json!({"repo": r, "rev": "main", "mode": "--hard"}), "invalid_argument"),
        ("log", json!({"repo": r, "until": "--until=now"}), "invalid_argument"),
        ("status", json!({"repo": "--git-dir=/etc"}), "not_found"),
        ("status", json!({"repo": r, "untracked_files": "--ignored"}), "invalid_argument"),
    ];
    for (tool, args, code) in &refused {
        s.err(tool, args.clone(), code);
    }
    // Text parameters are text: a filter or a message that looks like an option is only text.
    let log = s.ok("log", json!({"repo": r, "author": out, "grep": "--exec=touch"}));
    assert_eq!(log["commits"], json!([]));
    // Paths that look like options or pathspec magic are literal names that match nothing.
    let add = s.ok("add", json!({"repo": r, "paths": ["--all", "-A", ":(top)*", "*"]}));
    assert_eq!(add["staged_count"], 0, "{add}");
    assert_eq!(add["unmatched"].as_array().map(Vec::len), Some(4), "{add}");
    write(f.repo.join("a.txt"), "one\ntwo\nthree\n");
    s.ok("add", json!({"repo": r, "paths": ["a.txt"]}));
    let before = git(&f.repo, &["rev-parse", "HEAD"]);
    let commit = s.ok("commit", json!({"repo": r, "message": "--amend"}));
    assert_eq!(commit["parents"], json!([before.trim()]), "a new commit, never an amend");
    assert_eq!(git(&f.repo, &["log", "-1", "--format=%s"]).trim(), "--amend");
    let stash_msg = s.err("stash_push", json!({"repo": r, "message": "--include-untracked"}), "nothing_to_commit");
    assert!(stash_msg.contains("no local changes"), "{stash_msg}");
    // A ref literally named like an option is reachable by its full name, as a name.
    let shown = s.ok("show", json!({"repo": r, "rev": "refs/heads/--format=x", "stat_only": true}));
    assert_eq!(shown["commit"]["parents"].as_array().unwrap().len(), 1);
    assert_eq!(shown["commit"]["hash"], json!(before.trim()));
    let branches = s.ok("branches", json!({"repo": r, "kind": "local"}));
    assert!(branches["branches"].as_array().unwrap().iter().any(|b| b["name"] == "--format=x"));
    assert!(branches["branches"].as_array().unwrap().iter().any(|b| b["name"] == "-p"));
    assert!(!pwned.exists(), "an option was executed");
    assert!(!f.repo.join("--format=x").exists() && !f.repo.join("x").exists());
}

#[test]
fn pathspecs_stay_in_the_work_tree() {
    let f = fixture();
    let mut s = common::start(&[&f.root], &f.home, &[]);
    let abs_secret = f.base.join("outside/private.txt").display().to_string();
    let abs_in_repo = f.repo.join("a.txt").display().to_string();
    let before = index_paths(&f.repo);
    let cases: Vec<(&str, &str)> = vec![
        ("../outside/private.txt", "path_outside_root"),
        ("../../outside/private.txt", "path_outside_root"),
        ("sub/../../x", "path_outside_root"),
        (&abs_secret, "path_outside_root"),
        ("/etc/passwd", "path_outside_root"),
        ("link/private.txt", "path_outside_root"),
        ("link", "path_outside_root"),
        ("out-link", "path_outside_root"),
        (".git/config", "denied_by_glob"),
        (".GIT/hooks/pre-commit", "denied_by_glob"),
        (".git/hooks", "denied_by_glob"),
        ("", "invalid_path"),
        ("a\u{0}b", "invalid_path"),
    ];
    let mut outputs = Vec::new();
    for (path, code) in &cases {
        for tool in ["add", "unstage", "restore"] {
            outputs.push(s.err(tool, json!({"repo": "repo", "paths": [path]}), code));
        }
        outputs.push(s.err("diff", json!({"repo": "repo", "paths": [path]}), code));
        outputs.push(s.err("log", json!({"repo": "repo", "paths": [path]}), code));
        outputs.push(s.err("status", json!({"repo": "repo", "paths": [path]}), code));
        if !path.is_empty() {
            outputs.push(s.err("blame", json!({"repo": "repo", "path": path}), code));
        }
    }
    outputs.push(s.err("show", json!({"repo": "repo", "rev": "HEAD:../outside/private.txt"}), "invalid_revision"));
    assert!(!outputs.iter().any(|o| o.contains("SECRET")), "{outputs:?}");
    assert_eq!(index_paths(&f.repo), before, "the index changed");
    assert_eq!(std::fs::read_to_string(f.base.join("outside/private.txt")).unwrap(), "SECRET\n");
    // An absolute path inside the work tree is fine.
    write(f.repo.join("a.txt"), "changed\n");
    let add = s.ok("add", json!({"repo": "repo", "paths": [abs_in_repo]}));
    assert_eq!(add["added"], json!(["a.txt"]));
    // Adding everything never stages the deny-listed, and a symlink is stored as a link.
    write(f.repo.join(".env"), "TOKEN=1\n");
    let all = s.ok("add", json!({"repo": "repo", "paths": ["."]}));
    assert_eq!(all["skipped_denied"], json!([".env"]), "{all}");
    let index = index_paths(&f.repo);
    assert!(!index.contains(".env") && !index.contains("private.txt"), "{index}");
    assert!(index.lines().any(|l| l.starts_with("120000") && l.ends_with("\tlink")), "{index}");
    // ...and a symlinked git metadata file cannot be shown either.
    s.err("show", json!({"repo": "repo", "rev": "HEAD:.git/config"}), "denied_by_glob");
}

#[test]
fn repositories_must_lie_inside_a_root() {
    let f = fixture();
    // A repository outside the root, reached by '..', absolute path and symlink.
    let other = f.base.join("other");
    init(&other);
    write(other.join("o.txt"), "o\n");
    git(&other, &["add", "o.txt"]);
    git(&other, &["commit", "-q", "-m", "o"]);
    symlink(&other, f.root.join("other-link")).unwrap();
    // A root that is not a repository, and a root inside a repository (the .git is above it).
    let plain = f.base.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let inner = f.repo.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    // Repositories inside the root whose metadata or work tree are outside it.
    let gitfile = f.root.join("gitfile");
    write(gitfile.join(".git"), format!("gitdir: {}\n", other.join(".git").display()));
    let worktree = f.root.join("worktree");
    init(&worktree);
    git(&worktree, &["config", "core.worktree", &other.display().to_string()]);
    let alternates = f.root.join("alternates");
    init(&alternates);
    write(alternates.join(".git/objects/info/alternates"), format!("{}\n", other.join(".git/objects").display()));

    let mut s = common::start(&[&f.root], &f.home, &[]);
    s.err("status", json!({"repo": "../other"}), "path_outside_root");
    s.err("log", json!({"repo": other.display().to_string()}), "path_outside_root");
    s.err("log", json!({"repo": "other-link"}), "path_outside_root");
    s.err("status", json!({"repo": "gitfile"}), "path_outside_root");
    s.err("status", json!({"repo": "worktree"}), "path_outside_root");
    s.err("log", json!({"repo": "alternates"}), "path_outside_root");
    let msg = s.err("status", json!({}), "not_a_repository");
    assert!(msg.contains("never creates"), "{msg}");
    s.err("status", json!({"repo": "repo/a.txt"}), "not_a_repository");
    s.err("status", json!({"repo": "missing"}), "not_found");
    // A directory inside a repository works like `git -C dir`.
    let st = s.ok("status", json!({"repo": "repo/inner"}));
    assert_eq!(st["repo"], "repo");
    drop(s);

    let mut plain_server = common::start(&[&plain], &f.home, &[]);
    plain_server.err("status", json!({}), "not_a_repository");
    drop(plain_server);
    let mut inner_server = common::start(&[&inner], &f.home, &[]);
    inner_server.err("log", json!({}), "not_a_repository");
    drop(inner_server);
    // A root inside the git directory: the work tree would be outside it.
    let mut git_dir_server = common::start(&[&f.repo.join(".git")], &f.home, &[]);
    git_dir_server.err("log", json!({}), "path_outside_root");
    assert!(!f.base.join("plain/.git").exists() && !inner.join(".git").exists(), "a repository was created");
}

#[test]
fn a_repository_kept_open_is_checked_again_on_every_call() {
    // Read tools keep a repository open between calls; whatever is changed between two calls must
    // be caught as if the repository were opened afresh.
    let f = fixture();
    let other = f.base.join("other");
    init(&other);
    write(other.join("o.txt"), "o\n");
    git(&other, &["add", "o.txt"]);
    git(&other, &["commit", "-q", "-m", "o"]);
    let lib = f.root.join("lib");
    init(&lib);
    let repo = json!({"repo": "repo"});
    let mut s = common::start(&[&f.root], &f.home, &[]);
    s.ok("log", repo.clone());
    s.ok("status", repo.clone());

    // What other programs change between two calls is seen: the index, new commits, a repack.
    write(f.repo.join("b.txt"), "b\n");
    git(&f.repo, &["add", "b.txt"]);
    let st = s.ok("status", repo.clone());
    assert_eq!(st["staged"][0]["path"], "b.txt", "{st}");
    git(&f.repo, &["commit", "-q", "-m", "third"]);
    git(&f.repo, &["gc", "-q", "--prune=now"]);
    let log = s.ok("log", repo.clone());
    assert_eq!(log["commits"][0]["subject"], "third");
    let st = s.ok("status", repo.clone());
    assert!(st["staged"].as_array().unwrap().is_empty(), "{st}");
    let shown = s.ok("show", json!({"repo": "repo", "rev": "HEAD~1:a.txt"}));
    assert_eq!(shown["content"], "one\ntwo\n");

    // core.worktree pointed outside the root.
    git(&f.repo, &["config", "core.worktree", &other.display().to_string()]);
    s.err("status", repo.clone(), "path_outside_root");
    s.err("log", repo.clone(), "path_outside_root");
    git(&f.repo, &["config", "--unset", "core.worktree"]);
    s.ok("status", repo.clone());

    // Object alternates outside the root.
    let alternates = f.repo.join(".git/objects/info/alternates");
    write(&alternates, format!("{}\n", other.join(".git/objects").display()));
    s.err("log", repo.clone(), "path_outside_root");
    std::fs::remove_file(&alternates).unwrap();
    s.ok("log", repo.clone());

    // Alternates through a link inside the root, re-pointed outside without touching the list.
    let link = f.root.join("objects-link");
    symlink(lib.join(".git/objects"), &link).unwrap();
    write(&alternates, format!("{}\n", link.display()));
    s.ok("log", repo.clone());
    std::fs::remove_file(&link).unwrap();
    symlink(other.join(".git/objects"), &link).unwrap();
    s.err("log", repo.clone(), "path_outside_root");
    std::fs::remove_file(&alternates).unwrap();
    s.ok("log", repo.clone());

    // .git replaced by a gitlink file to a repository outside the root.
    std::fs::rename(f.repo.join(".git"), f.root.join("saved-git")).unwrap();
    write(f.repo.join(".git"), format!("gitdir: {}\n", other.join(".git").display()));
    s.err("log", repo.clone(), "path_outside_root");
    std::fs::remove_file(f.repo.join(".git")).unwrap();
    std::fs::rename(f.root.join("saved-git"), f.repo.join(".git")).unwrap();
    let log = s.ok("log", repo.clone());
    assert_eq!(log["commits"][0]["subject"], "third");

    // The repository directory replaced by a link to one outside the root.
    std::fs::rename(&f.repo, f.root.join("saved-repo")).unwrap();
    symlink(&other, &f.repo).unwrap();
    s.err("log", repo.clone(), "path_outside_root");
    s.err("status", repo.clone(), "path_outside_root");
    std::fs::remove_file(&f.repo).unwrap();

    // Another repository moved in at the same place is read as itself, not the kept one.
    std::fs::rename(&lib, &f.repo).unwrap();
    write(f.repo.join("l.txt"), "l\n");
    git(&f.repo, &["add", "l.txt"]);
    git(&f.repo, &["commit", "-q", "-m", "lib commit"]);
    let log = s.ok("log", repo.clone());
    assert_eq!(log["commits"][0]["subject"], "lib commit");
    assert_eq!(log["commits"].as_array().unwrap().len(), 1);
}

#[test]
fn a_repository_owned_by_another_user_is_refused() {
    let f = fixture();
    if !rustix::process::geteuid().is_root() {
        // Only root can give a directory to another user; the check itself is libgit2's.
        eprintln!("skipped: not running as root, cannot chown the fixture");
        return;
    }
    let foreign = f.root.join("foreign");
    init(&foreign);
    write(foreign.join("f.txt"), "f\n");
    git(&foreign, &["add", "f.txt"]);
    git(&foreign, &["commit", "-q", "-m", "f"]);
    let status = std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(&foreign).status().unwrap();
    assert!(status.success());
    let mut s = common::start(&[&f.root], &f.home, &[]);
    for tool in ["status", "log", "diff", "branches"] {
        let msg = s.err(tool, json!({"repo": "foreign"}), "repository_not_owned");
        assert!(msg.contains("safe.directory"), "{msg}");
    }
    s.ok("status", json!({"repo": "repo"}));
}

#[test]
fn tiers_are_enforced() {
    let f = fixture();
    let mut read_only = common::builder(&[&f.root], &f.home).start();
    let listed = read_only.request("tools/list", json!({}));
    let names: Vec<&str> =
        listed["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 8, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| { ["status", "diff", "log", "show", "blame", "branches", "tags", "stash_list"].contains(n) })
    );
    for (tool, args) in [
        ("add", json!({"repo": "repo", "paths": ["a.txt"]})),
        ("commit", json!({"repo": "repo", "message": "x"})),
        ("reset", json!({"repo": "repo", "mode": "hard"})),
    ] {
        read_only.err(tool, args, "tier_not_allowed");
    }
}
