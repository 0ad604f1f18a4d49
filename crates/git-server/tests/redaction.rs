//! Secrets in what the git tools show are redacted like fs reads and shell output: a token
//! committed in a file, a private key block, a secret in a commit message, a tag message and a
//! stash message come back as `[REDACTED:kind]` in diff, show (diff, message, file
//! content), log, blame, tags, branches and stash_list; the journal counts
//! them; `[redact] enabled = false` turns it off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{builder, git, init, start, write};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";
const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACDgcontainmentkeymaterialxxxxxxxxxxxxxxxxxxxxxxxxx\n-----END OPENSSH PRIVATE KEY-----\n";

fn assert_clean(what: &str, v: &Value) {
    let text = v.to_string();
    assert!(!text.contains(TOKEN), "{what} shows the token: {text}");
    assert!(!text.contains("b3BlbnNzaC1rZXktdjEAAAAABG5vbmU"), "{what} shows the key: {text}");
    assert!(!text.contains("containmentkeymaterial"), "{what} shows the key: {text}");
}

fn fixture() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let root = base.join("root");
    let repo = root.join("repo");
    let home = base.join("home");
    std::fs::create_dir_all(&home).unwrap();
    init(&repo);
    write(repo.join("config.env"), format!("GITHUB_TOKEN={TOKEN}\nplain=1\n"));
    write(repo.join("notes/deploy-key.txt"), KEY);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", &format!("add credentials\n\ntoken is {TOKEN}")]);
    git(&repo, &["tag", "-a", "v1", "-m", &format!("release with {TOKEN}")]);
    write(repo.join("config.env"), format!("GITHUB_TOKEN={TOKEN}\nplain=2\nNEW={TOKEN}\n"));
    (dir, root, home)
}

#[test]
fn git_outputs_are_redacted() {
    let (_dir, root, home) = fixture();
    let repo = root.join("repo");
    let mut s = start(&[&root], &home, &["--allow-write"]);
    let diff = s.ok("diff", json!({"repo": "repo"}));
    assert_clean("diff", &diff);
    let d = diff["diff"].as_str().unwrap();
    assert!(d.contains("+NEW=[REDACTED:") && d.contains("plain=2"), "{d}");
    let show = s.ok("show", json!({"repo": "repo", "rev": "HEAD"}));
    assert_clean("show", &show);
    assert!(show["commit"]["message"].as_str().unwrap().contains("[REDACTED:github_token]"), "{show}");
    assert!(show["diff"].as_str().unwrap().contains("[REDACTED:private_key]"), "{show}");
    let blob = s.ok("show", json!({"repo": "repo", "rev": "HEAD:notes/deploy-key.txt"}));
    assert_clean("show of a file", &blob);
    assert!(blob["content"].as_str().unwrap().contains("[REDACTED:private_key]"), "{blob}");
    let tag = s.ok("show", json!({"repo": "repo", "rev": "v1"}));
    assert_clean("show of a tag", &tag);
    // A subject holding the secret.
    git(&repo, &["commit", "-q", "-a", "-m", &format!("rotate {TOKEN}")]);
    let log = s.ok("log", json!({"repo": "repo"}));
    assert_clean("log", &log);
    assert!(log["commits"][0]["subject"].as_str().unwrap().contains("[REDACTED:github_token]"), "{log}");
    let blame = s.ok("blame", json!({"repo": "repo", "path": "config.env"}));
    assert_clean("blame", &blame);
    assert!(blame.to_string().contains("[REDACTED:"), "{blame}");
    assert_clean("tags", &s.ok("tags", json!({"repo": "repo"})));
    assert_clean("branches", &s.ok("branches", json!({"repo": "repo"})));
    write(repo.join("config.env"), "changed\n");
    git(&repo, &["stash", "push", "-q", "-m", &format!("wip {TOKEN}")]);
    assert_clean("stash_list", &s.ok("stash_list", json!({"repo": "repo"})));
}

#[test]
fn the_journal_counts_git_redactions_and_the_switch_turns_them_off() {
    let (dir, root, home) = fixture();
    let log = dir.path().join("audit.jsonl");
    let mut s = builder(&[&root], &home).arg("--audit-log").arg(&log).start();
    s.ok("diff", json!({"repo": "repo"}));
    drop(s);
    let text = std::fs::read_to_string(&log).unwrap();
    let call: Value =
        text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|v| v["tool"] == "diff").unwrap();
    assert!(call["redactions"].as_u64().is_some_and(|n| n >= 1), "{call}");
    assert!(!text.contains(TOKEN));
    let config = dir.path().join("policy.toml");
    write(&config, "[redact]\nenabled = false\n");
    let mut s = builder(&[&root], &home).arg("--config").arg(&config).start();
    let diff = s.ok("diff", json!({"repo": "repo"}));
    assert!(diff.to_string().contains(TOKEN), "redaction is off: {diff}");
}
