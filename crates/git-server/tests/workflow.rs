//! Behaviour of `bastion-git` on real repositories built with the `git` program: history,
//! branches, a tag, a rename, a binary file, a file name that is not UTF-8, a merge conflict, and
//! the whole write workflow. (The official-SDK view of the same server is
//! `tests/python/test_git_sdk.py`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use common::{git, git_command, init, write};
use serde_json::{Value, json};

const READ_TOOLS: [&str; 8] = ["status", "diff", "log", "show", "blame", "branches", "tags", "stash_list"];
const WRITE_TOOLS: [&str; 6] = ["add", "unstage", "commit", "create_branch", "switch", "stash_push"];
const DESTRUCTIVE_TOOLS: [&str; 3] = ["restore", "reset", "delete_branch"];

fn binary() -> Vec<u8> {
    (0..4).flat_map(|_| 0u8..=255).collect()
}

fn commit_all(repo: &Path, message: &str, date: &str) -> String {
    git(repo, &["add", "-A"]);
    let out = git_command(repo)
        .args(["commit", "-q", "-m", message])
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    git(repo, &["rev-parse", "HEAD"]).trim().to_string()
}

struct Project {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    repo: PathBuf,
    home: PathBuf,
    c: BTreeMap<&'static str, String>,
}

/// `root/proj`: five commits on main (one renames a file, one adds a binary and a file whose
/// name is Latin-1), a `feature` branch, an annotated tag `v1.0`.
fn project() -> Project {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("root");
    let repo = root.join("proj");
    init(&repo);
    let mut c = BTreeMap::new();
    write(repo.join("README.md"), "# Project\n\nIntro.\n");
    write(repo.join("src/main.py"), "def main():\n    print('hello')\n");
    c.insert("init", commit_all(&repo, "Initial commit", "2024-01-10T10:00:00Z"));
    write(repo.join("src/main.py"), "def main():\n    print('hello, world')\n\nmain()\n");
    c.insert("greet", commit_all(&repo, "Greet the world\n\nLonger body text.", "2024-02-10T10:00:00Z"));
    git(&repo, &["mv", "src/main.py", "src/app.py"]);
    c.insert("rename", commit_all(&repo, "Rename main to app", "2024-03-10T10:00:00Z"));
    write(repo.join("logo.bin"), binary());
    write(repo.join(OsStr::from_bytes(b"caf\xe9.txt")), "latin-1 name\n");
    c.insert("binary", commit_all(&repo, "Add logo and cafe", "2024-04-10T10:00:00Z"));
    git(&repo, &["tag", "-a", "v1.0", "-m", "First release"]);
    git(&repo, &["checkout", "-q", "-b", "feature"]);
    write(repo.join("README.md"), "# Project\n\nIntro from feature.\n");
    c.insert("feature", commit_all(&repo, "Feature intro", "2024-05-10T10:00:00Z"));
    git(&repo, &["checkout", "-q", "main"]);
    write(repo.join("README.md"), "# Project\n\nIntro from main.\n");
    c.insert("main", commit_all(&repo, "Main intro", "2024-05-11T10:00:00Z"));
    let home = base.join("home");
    std::fs::create_dir_all(&home).unwrap();
    Project { _dir: dir, base, root, repo, home, c }
}

fn hashes(v: &Value) -> Vec<String> {
    v["commits"].as_array().unwrap().iter().map(|x| x["hash"].as_str().unwrap().to_string()).collect()
}

/// The commit ids of the fixture's named commits, in order.
fn ids(c: &BTreeMap<&'static str, String>, names: &[&str]) -> Vec<String> {
    names.iter().map(|n| c[n].clone()).collect()
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn tools_are_offered_by_tier_with_all_annotations() {
    let p = project();
    let rw: Vec<&str> = READ_TOOLS.iter().chain(&WRITE_TOOLS).copied().collect();
    let all: Vec<&str> = rw.iter().chain(&DESTRUCTIVE_TOOLS).copied().collect();
    for (flags, expected) in [
        (&[][..], READ_TOOLS.to_vec()),
        (&["--allow-write"][..], rw),
        (&["--allow-destructive", "--output-schemas"][..], all),
    ] {
        let mut s = common::builder(&[&p.root], &p.home).args(flags).start();
        let tools = s.list_tools();
        let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        names.sort_unstable();
        let mut want = expected.clone();
        want.sort_unstable();
        assert_eq!(names, want, "{flags:?}");
        for t in &tools {
            let name = t["name"].as_str().unwrap();
            let a = &t["annotations"];
            assert!(
                a.is_object()
                    && t["title"].as_str().is_some_and(|x| !x.is_empty())
                    && t["description"].as_str().is_some_and(|d| d.len() > 40),
                "{name}"
            );
            for hint in ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"] {
                assert!(a[hint].is_boolean(), "{name}: {hint}");
            }
            assert_eq!(a["readOnlyHint"], READ_TOOLS.contains(&name), "{name}");
            assert_eq!(a["destructiveHint"], DESTRUCTIVE_TOOLS.contains(&name), "{name}");
            assert_eq!(a["openWorldHint"], false, "{name}");
            // Output schemas only when asked for, and then compact like the input schemas.
            let schemas = flags.contains(&"--output-schemas");
            assert_eq!(t["outputSchema"].is_object(), schemas, "{name}");
            let text = t.to_string();
            assert!(!text.contains("\"null\"") && !text.contains("$defs") && !text.contains("\"format\":"), "{text}");
        }
    }
}

#[test]
fn history_log_show_blame() {
    let p = project();
    let c = &p.c;
    let mut s = common::builder(&[&p.root], &p.home).start();
    let log = s.ok("log", json!({"repo": "proj"}));
    assert_eq!(hashes(&log), ids(c, &["main", "binary", "rename", "greet", "init"]));
    assert!(log["commits"][0]["subject"] == "Main intro" && log["commits"][0]["date"] == "2024-05-11T10:00:00+00:00");
    let page1 = s.ok("log", json!({"repo": "proj", "max_count": 2}));
    assert!(page1["truncated"] == true && page1["next_skip"] == 2);
    let page2 = s.ok("log", json!({"repo": "proj", "max_count": 2, "skip": page1["next_skip"]}));
    assert_eq!(hashes(&page2), ids(c, &["rename", "greet"]));
    let by_path = s.ok("log", json!({"repo": "proj", "paths": ["src/main.py"]}));
    assert_eq!(hashes(&by_path), ids(c, &["rename", "greet", "init"]));
    let dated = s.ok("log", json!({"repo": "proj", "since": "2024-02-01", "until": "2024-03-31"}));
    assert_eq!(hashes(&dated), ids(c, &["rename", "greet"]));
    let grep = s.ok("log", json!({"repo": "proj", "grep": "LONGER BODY"}));
    assert_eq!(hashes(&grep), ids(c, &["greet"]));
    let ranged = s.ok("log", json!({"repo": "proj", "rev": "main..feature"}));
    assert_eq!(hashes(&ranged), ids(c, &["feature"]));
    let none = s.ok("log", json!({"repo": "proj", "author": "nobody"}));
    assert!(none["commits"] == json!([]) && none["truncated"] == false);

    let show = s.ok("show", json!({"repo": "proj", "rev": c["rename"]}));
    assert_eq!(show["commit"]["message"], "Rename main to app\n");
    assert_eq!(show["files"], json!([{"path": "src/app.py", "old_path": "src/main.py", "status": "renamed"}]));
    let diff = show["diff"].as_str().unwrap();
    assert!(diff.contains("rename from src/main.py") && diff.contains("rename to src/app.py"));
    let bin = s.ok("show", json!({"repo": "proj", "rev": c["binary"]}));
    assert!(bin["diff"].as_str().unwrap().contains("Binary files /dev/null and b/logo.bin differ"));
    assert!(bin["files"].as_array().unwrap().iter().any(|f| f["path"] == "caf\u{fffd}.txt"), "{}", bin["files"]);
    let stat = s.ok("show", json!({"repo": "proj", "rev": c["greet"], "stat_only": true}));
    assert_eq!(
        stat["files"],
        json!([{"path": "src/main.py", "status": "modified", "additions": 3, "deletions": 1, "binary": false}])
    );
    assert!(stat.get("diff").is_none());
    let tag = s.ok("show", json!({"repo": "proj", "rev": "v1.0", "stat_only": true}));
    assert!(tag["tag"]["name"] == "v1.0" && tag["tag"]["message"] == "First release\n");
    assert_eq!(tag["commit"]["hash"], json!(c["binary"]));
    let old_file = s.ok("show", json!({"repo": "proj", "rev": format!("{}:src/main.py", c["init"])}));
    assert!(old_file["kind"] == "file" && old_file["content"] == "def main():\n    print('hello')\n");
    let blob = s.ok("show", json!({"repo": "proj", "rev": "HEAD:logo.bin"}));
    assert!(blob["binary"] == true && blob["size"] == binary().len() && blob.get("content").is_none());
    let tree = s.ok("show", json!({"repo": "proj", "rev": "HEAD:src"}));
    assert_eq!(tree["entries"], json!([{"name": "app.py", "type": "file"}]));

    let blame = s.ok("blame", json!({"repo": "proj", "path": "src/app.py"}));
    assert_eq!(blame["total_lines"], 4);
    let commits: Vec<(u64, String)> = blame["hunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["start_line"].as_u64().unwrap(), h["commit"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(commits, [(1, c["init"].clone()), (2, c["greet"].clone())]);
    assert_eq!(blame["hunks"][1]["text"], "    print('hello, world')\n\nmain()");
    let part = s.ok("blame", json!({"repo": "proj", "path": "src/app.py", "start_line": 4, "end_line": 4}));
    let hunks: Vec<(u64, &str)> = part["hunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["start_line"].as_u64().unwrap(), h["text"].as_str().unwrap()))
        .collect();
    assert_eq!(hunks, [(4, "main()")]);
    s.err("blame", json!({"repo": "proj", "path": "logo.bin"}), "binary_file");
    s.err("blame", json!({"repo": "proj", "path": "src/nope.py"}), "not_found");
    s.err("show", json!({"repo": "proj", "rev": "no-such-branch"}), "invalid_revision");

    let branches = s.ok("branches", json!({"repo": "proj"}));
    let names: BTreeMap<String, Value> = branches["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["name"].as_str().unwrap().to_string(), b.clone()))
        .collect();
    assert_eq!(names.keys().collect::<Vec<_>>(), ["feature", "main"]);
    assert_eq!(names["main"]["current"], true);
    assert_eq!(names["feature"]["commit"]["hash"], json!(c["feature"]));
    let tags = s.ok("tags", json!({"repo": "proj"}));
    assert_eq!(
        tags["tags"],
        json!([{"name": "v1.0", "annotated": true, "message": "First release", "commit": tags["tags"][0]["commit"]}])
    );
    assert_eq!(tags["tags"][0]["commit"]["hash"], json!(c["binary"]));
}

#[test]
fn status_and_diff_of_a_dirty_tree() {
    let p = project();
    let c = &p.c;
    write(p.repo.join("src/app.py"), "def main():\n    print('changed')\n\nmain()\n");
    git(&p.repo, &["mv", "README.md", "READ.md"]);
    write(p.repo.join("notes/a.txt"), "a\n");
    write(p.repo.join(OsStr::from_bytes(b"na\xefve.txt")), "x\n");
    let mut s = common::builder(&[&p.root], &p.home).start();
    let st = s.ok("status", json!({"repo": "proj"}));
    assert!(st["branch"] == "main" && st["head"] == json!(c["main"]) && st["clean"] == false);
    assert_eq!(st["staged"], json!([{"path": "READ.md", "status": "renamed", "old_path": "README.md"}]));
    assert_eq!(st["unstaged"], json!([{"path": "src/app.py", "status": "modified"}]));
    let mut untracked: Vec<&str> = st["untracked"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    untracked.sort_unstable();
    assert_eq!(untracked, ["na\u{fffd}ve.txt", "notes/"]);
    let every = s.ok("status", json!({"repo": "proj", "untracked_files": "all"}));
    assert!(every["untracked"].as_array().unwrap().contains(&json!("notes/a.txt")));

    let unstaged = s.ok("diff", json!({"repo": "proj"}));
    assert_eq!(unstaged["compared"], "index..work tree");
    assert!(unstaged["diff"].as_str().unwrap().contains("-    print('hello, world')\n+    print('changed')\n"));
    let staged = s.ok("diff", json!({"repo": "proj", "staged": true}));
    assert!(staged["diff"].as_str().unwrap().contains("rename from README.md"));
    let against = s.ok("diff", json!({"repo": "proj", "from": "HEAD~2", "paths": ["src"]}));
    let files: Vec<&str> = against["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(files, ["src/app.py"]);
    let between = s.ok("diff", json!({"repo": "proj", "from": "main", "to": "feature", "context_lines": 0}));
    assert!(between["diff"].as_str().unwrap().contains("-Intro from main.\n+Intro from feature.\n"));
    s.err("diff", json!({"repo": "proj", "to": "main"}), "invalid_argument");

    // Paging: small pages put back together equal the whole diff.
    let whole = s.ok("diff", json!({"repo": "proj", "from": c["init"], "to": "feature"}))["diff"].clone();
    let (mut pieces, mut offset) = (Vec::new(), json!(0));
    loop {
        let page = s
            .ok("diff", json!({"repo": "proj", "from": c["init"], "to": "feature", "max_chars": 70, "offset": offset}));
        let d = page["diff"].as_str().unwrap().to_string();
        assert!(d.chars().count() <= 70);
        pieces.push(d);
        if page["truncated"] != true {
            break;
        }
        offset = page["next_offset"].clone();
    }
    assert!(pieces.concat() == whole.as_str().unwrap() && pieces.len() > 3);
    s.err("diff", json!({"repo": "proj", "from": c["init"], "to": "feature", "offset": 1_000_000}), "invalid_argument");
}

#[test]
fn write_workflow() {
    let p = project();
    let (c, repo) = (&p.c, &p.repo);
    let mut s = common::start(&[&p.root], &p.home, &[]);
    s.err("commit", json!({"repo": "proj", "message": "nothing"}), "nothing_to_commit");
    write(repo.join("src/app.py"), "changed\n");
    write(repo.join("new.txt"), "new\n");
    std::fs::remove_file(repo.join("logo.bin")).unwrap();
    let added = s.ok("add", json!({"repo": "proj", "paths": ["."]}));
    let mut a: Vec<&str> = added["added"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    a.sort_unstable();
    assert!(a == ["new.txt", "src/app.py"] && added["removed"] == json!(["logo.bin"]), "{added}");
    let un = s.ok("unstage", json!({"repo": "proj", "paths": ["new.txt", "logo.bin"]}));
    let mut u: Vec<&str> = un["unstaged"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    u.sort_unstable();
    assert_eq!(u, ["logo.bin", "new.txt"]);
    assert!(s.ok("status", json!({"repo": "proj"}))["untracked"].as_array().unwrap().contains(&json!("new.txt")));
    s.err("commit", json!({"repo": "proj", "message": "  \n"}), "invalid_argument");
    let done = s.ok("commit", json!({"repo": "proj", "message": "Change app\n\nBody."}));
    assert!(done["parents"] == json!([c["main"]]) && done["branch"] == "main");
    assert!(done["author"] == "Repo User <repo@example.com>" && done["files_changed"] == 1);
    assert_eq!(git(repo, &["log", "-1", "--format=%an|%s|%b"]).trim(), "Repo User|Change app|Body.");

    let made = s.ok("create_branch", json!({"repo": "proj", "name": "topic", "from": "HEAD~1"}));
    assert_eq!(made["commit"], json!(c["main"]));
    s.err("create_branch", json!({"repo": "proj", "name": "topic"}), "already_exists");
    // Switching would overwrite the local change to README.md (it differs on feature).
    write(repo.join("README.md"), "local edit\n");
    let msg = s.err("switch", json!({"repo": "proj", "branch": "feature"}), "would_overwrite_changes");
    assert!(msg.contains("README.md"));
    assert_eq!(read(repo.join("README.md")), "local edit\n");
    assert_eq!(git(repo, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(), "main");
    let stash = s.ok("stash_push", json!({"repo": "proj", "message": "readme edit"}));
    assert_eq!(read(repo.join("README.md")), "# Project\n\nIntro from main.\n");
    let stashes = s.ok("stash_list", json!({"repo": "proj"}));
    assert!(
        stashes["stashes"][0]["hash"] == stash["hash"]
            && stashes["stashes"][0]["message"].as_str().unwrap().contains("readme edit")
    );
    let sw = s.ok("switch", json!({"repo": "proj", "branch": "feature"}));
    assert!(sw["previous"] == "main" && read(repo.join("README.md")) == "# Project\n\nIntro from feature.\n");
    s.ok("switch", json!({"repo": "proj", "branch": "main"}));
    s.err("switch", json!({"repo": "proj", "branch": "nope"}), "not_found");

    write(repo.join("src/app.py"), "scratch\n");
    let restored = s.ok("restore", json!({"repo": "proj", "paths": ["src/app.py"]}));
    assert!(restored["restored"] == json!(["src/app.py"]) && read(repo.join("src/app.py")) == "changed\n");
    let head = git(repo, &["rev-parse", "HEAD"]).trim().to_string();
    let reset = s.ok("reset", json!({"repo": "proj", "rev": "HEAD~1", "mode": "mixed"}));
    assert!(reset["previous"] == json!(head) && reset["head"] == json!(c["main"]));
    assert_eq!(read(repo.join("src/app.py")), "changed\n");
    s.ok("reset", json!({"repo": "proj", "rev": head, "mode": "hard"}));
    assert_eq!(git(repo, &["rev-parse", "HEAD"]).trim(), head);

    s.err("delete_branch", json!({"repo": "proj", "name": "main"}), "invalid_argument");
    let msg = s.err("delete_branch", json!({"repo": "proj", "name": "feature"}), "invalid_argument");
    assert!(msg.contains("force"));
    let deleted = s.ok("delete_branch", json!({"repo": "proj", "name": "feature", "force": true}));
    assert_eq!(deleted["commit"], json!(c["feature"]));
    s.ok("delete_branch", json!({"repo": "proj", "name": "topic"}));
    assert_eq!(git(repo, &["branch", "--format=%(refname:short)"]).split_whitespace().collect::<Vec<_>>(), ["main"]);
}

#[test]
fn operator_identity_and_merge_conflicts() {
    let p = project();
    let (c, repo) = (&p.c, &p.repo);
    let config = p.base.join("bastion.toml");
    write(&config, "[git]\nauthor_name = \"Operator Bot\"\nauthor_email = \"bot@example.org\"\n");
    // The merge stops on a conflict: that is the fixture.
    let _ = git_command(repo).args(["merge", "feature"]).output().unwrap();
    let mut s = common::builder(&[&p.root], &p.home).arg("--allow-write").arg("--config").arg(&config).start();
    let st = s.ok("status", json!({"repo": "proj"}));
    assert!(st["in_progress"] == "merge" && st["conflicted"] == json!(["README.md"]), "{st}");
    let msg = s.err("commit", json!({"repo": "proj", "message": "merge"}), "merge_conflict");
    assert!(msg.contains("README.md"));
    s.err("switch", json!({"repo": "proj", "branch": "feature"}), "merge_conflict");
    write(repo.join("README.md"), "# Project\n\nIntro from both.\n");
    s.ok("add", json!({"repo": "proj", "paths": ["README.md"]}));
    let merged = s.ok("commit", json!({"repo": "proj", "message": "Merge feature"}));
    assert_eq!(merged["parents"], json!([c["main"], c["feature"]]));
    assert_eq!(merged["author"], "Operator Bot <bot@example.org>");
    let after = s.ok("status", json!({"repo": "proj"}));
    assert!(after.get("in_progress").is_none() && after["clean"] == true);
}

#[test]
fn unborn_repository_and_bare_errors() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("root");
    let repo = root.join("empty");
    init(&repo);
    git(&root, &["init", "-q", "--bare", "bare.git"]);
    let home = base.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut s = common::builder(&[&root], &home).arg("--allow-write").start();
    let st = s.ok("status", json!({"repo": "empty"}));
    assert!(st["branch"] == "main" && st.get("head").is_none() && st["clean"] == true);
    assert_eq!(s.ok("log", json!({"repo": "empty"}))["commits"], json!([]));
    write(repo.join("first.txt"), "1\n");
    s.ok("add", json!({"repo": "empty", "paths": ["first.txt"]}));
    let first = s.ok("commit", json!({"repo": "empty", "message": "First"}));
    assert_eq!(first["parents"], json!([]));
    s.err("status", json!({"repo": "bare.git"}), "not_a_repository");
    assert_eq!(s.ok("log", json!({"repo": "bare.git"}))["commits"], json!([]));
}
