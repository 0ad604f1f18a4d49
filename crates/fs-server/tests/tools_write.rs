//! Behaviour of `bastion fs`'s writing tools (`write_file`, `edit_file`, `apply_patch`,
//! `create_directory`, `move_path`, `delete_path`), through the real binary over stdio.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use bastion_testkit::write;
use serde_json::json;

mod common;
use common::project::*;

// ---------------------------------------------------------------------------------------------
// write_file
// ---------------------------------------------------------------------------------------------

/// Every `.bastion-tmp-*` left under `root`.
fn temp_leftovers(root: &Path) -> Vec<String> {
    all_paths(root).into_iter().filter(|p| p.rsplit('/').next().unwrap_or(p).starts_with(".bastion-tmp-")).collect()
}

#[test]
fn write_file() {
    let p = project();
    let crlf = p.root.join("win.txt");
    write(&crlf, b"one\r\ntwo\r\n");
    std::fs::set_permissions(&crlf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut s = fs(&p.root).write().start();
    let r = s.ok("write_file", json!({"path": "notes/new.txt", "content": "fresh\n"}));
    assert!(r["created"] == true && r["bytes"] == 6 && r["line_endings"] == "lf");
    assert!(r["sha256"] == sha256("fresh\n") && r["mode"] == "0644");
    assert_eq!(std::fs::read(p.root.join("notes/new.txt")).unwrap(), b"fresh\n");

    let r = s.ok("write_file", json!({"path": "win.txt", "content": "uno\ndos\ntres\n"}));
    assert!(r["created"] == false && r["line_endings"] == "crlf" && r["mode"] == "0600");
    assert_eq!(std::fs::read(&crlf).unwrap(), b"uno\r\ndos\r\ntres\r\n");
    assert_eq!(std::fs::metadata(&crlf).unwrap().permissions().mode() & 0o7777, 0o600);

    let before = std::fs::read(p.root.join("README.md")).unwrap();
    s.err("write_file", json!({"path": "README.md", "content": "x", "overwrite": false}), "already_exists");
    assert_eq!(std::fs::read(p.root.join("README.md")).unwrap(), before);

    s.err(
        "write_file",
        json!({"path": "README.md", "content": "x", "expected_sha256": "0".repeat(64)}),
        "precondition_failed",
    );
    assert_eq!(std::fs::read(p.root.join("README.md")).unwrap(), before);
    s.ok("write_file", json!({"path": "README.md", "content": "replaced\n", "expected_sha256": sha256(&before)}));
    assert_eq!(std::fs::read(p.root.join("README.md")).unwrap(), b"replaced\n");

    s.err("write_file", json!({"path": "x/y/z.txt", "content": "z", "create_parents": false}), "not_found");
    assert!(!p.root.join("x").exists());
    s.ok("write_file", json!({"path": "x/y/z.txt", "content": "z"}));
    assert_eq!(read(p.root.join("x/y/z.txt")), "z");

    s.err("write_file", json!({"path": "src", "content": "x"}), "not_a_regular_file");
    s.err("write_file", json!({"path": ".env", "content": "x"}), "denied_by_glob");
    drop(s);
    // No temporary files left behind.
    assert_eq!(temp_leftovers(&p.root), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// edit_file
// ---------------------------------------------------------------------------------------------

#[test]
fn edit_file() {
    let p = project();
    let lib = p.root.join("src/lib.rs");
    let mut s = fs(&p.root).write().start();
    let r = s.ok("edit_file", json!({"path": "src/lib.rs", "old_text": "total * 2", "new_text": "total * 3"}));
    assert!(r["replacements"] == 1 && r["dry_run"] == false);
    assert_eq!(read(&lib), LIB_RS.replace("total * 2", "total * 3"));
    assert_eq!(r["sha256"], sha256(std::fs::read(&lib).unwrap()));

    let before = std::fs::read(&lib).unwrap();
    let r = s.ok("edit_file", json!({"path": "src/lib.rs", "old_text": "a + b", "new_text": "b + a", "dry_run": true}));
    assert_eq!(r["dry_run"], true);
    let diff = r["diff"].as_str().unwrap();
    assert!(diff.contains("--- a/src/lib.rs") && diff.contains("+++ b/src/lib.rs"));
    assert!(diff.contains("@@") && diff.contains("-    a + b\n") && diff.contains("+    b + a\n"));
    assert_eq!(std::fs::read(&lib).unwrap(), before);

    write(p.root.join("dup.txt"), "x = 1\nx = 1\nx = 1\n");
    let msg = s.err("edit_file", json!({"path": "dup.txt", "old_text": "x = 1", "new_text": "x = 2"}), "edit_mismatch");
    assert!(msg.contains("3 times"));
    s.ok("edit_file", json!({"path": "dup.txt", "old_text": "x = 1", "new_text": "x = 2", "expected_replacements": 3}));
    assert_eq!(read(p.root.join("dup.txt")), "x = 2\nx = 2\nx = 2\n");

    let msg = s.err(
        "edit_file",
        json!({"path": "src/lib.rs", "old_text": "let totl = add(a, b);", "new_text": "y"}),
        "edit_mismatch",
    );
    assert!(msg.contains("let total = add(a, b);"), "{msg}");
    assert_eq!(std::fs::read(&lib).unwrap(), before);

    // Whitespace-only difference: the message quotes the exact text.
    let msg = s.err(
        "edit_file",
        json!({"path": "src/lib.rs", "old_text": "let   total = add(a, b);", "new_text": "y"}),
        "edit_mismatch",
    );
    assert!(msg.contains("    let total = add(a, b);"));

    s.err("edit_file", json!({"path": "nope.rs", "old_text": "a", "new_text": "b"}), "not_found");
    s.err("edit_file", json!({"path": "src/lib.rs", "old_text": "", "new_text": "b"}), "invalid_argument");
    s.err("edit_file", json!({"path": "src/lib.rs"}), "invalid_argument");
    s.err("edit_file", json!({"path": "assets/blob.bin", "old_text": "ELF", "new_text": "ELV"}), "binary_file");
}

#[test]
fn edit_file_crlf_and_latin1() {
    let p = project();
    let win = p.root.join("win.cfg");
    write(&win, b"[a]\r\nkey = 1\r\nother = 2\r\n");
    let mut s = fs(&p.root).write().start();
    let r = s.ok(
        "edit_file",
        json!({"path": "win.cfg", "old_text": "key = 1\nother = 2\n", "new_text": "key = 10\nother = 20\nnew = 3\n"}),
    );
    assert_eq!(r["replacements"], 1);
    assert_eq!(std::fs::read(&win).unwrap(), b"[a]\r\nkey = 10\r\nother = 20\r\nnew = 3\r\n");

    s.ok("edit_file", json!({"path": "data/latin1.txt", "old_text": "crème", "new_text": "crème fraîche"}));
    let latin1 = p.root.join("data/latin1.txt");
    assert_eq!(std::fs::read(&latin1).unwrap(), b"caf\xe9 cr\xe8me fra\xeeche br\xfbl\xe9e\n");
    let before = std::fs::read(&latin1).unwrap();
    s.err("edit_file", json!({"path": "data/latin1.txt", "old_text": "café", "new_text": "€uro"}), "invalid_argument");
    assert_eq!(std::fs::read(&latin1).unwrap(), before);
}

#[test]
fn edit_file_multi_edit_all_or_nothing() {
    let p = project();
    let lib = p.root.join("src/lib.rs");
    let mut s = fs(&p.root).write().start();
    let msg = s.err(
        "edit_file",
        json!({"path": "src/lib.rs", "edits": [
            {"old_text": "pub fn add", "new_text": "pub fn plus"},
            {"old_text": "this text is not in the file at all", "new_text": "x"},
        ]}),
        "edit_mismatch",
    );
    assert!(msg.contains("edit 2"));
    assert_eq!(read(&lib), LIB_RS);
    let r = s.ok(
        "edit_file",
        json!({"path": "src/lib.rs", "edits": [
            {"old_text": "pub fn add", "new_text": "pub fn plus"},
            {"old_text": "let total = add(a, b);", "new_text": "let total = plus(a, b);"},
        ]}),
    );
    assert_eq!(r["replacements"], 2);
    assert_eq!(read(&lib), LIB_RS.replace("pub fn add", "pub fn plus").replace("= add(", "= plus("));
}

// ---------------------------------------------------------------------------------------------
// apply_patch
// ---------------------------------------------------------------------------------------------

const PATCH_TWO_FILES: &str = "--- a/src/main.rs
+++ b/src/main.rs
@@ -3,4 +3,4 @@
 fn main() {
-    let greeting = shout(\"hello\");
+    let greeting = shout(\"goodbye\");
     println!(\"{greeting}\");
 }
--- a/src/util/strings.rs
+++ b/src/util/strings.rs
@@ -1,3 +1,3 @@
 pub fn shout(s: &str) -> String {
-    s.to_uppercase()
+    s.to_uppercase() + \"!\"
 }
";

/// The same first file, then a hunk whose context does not match.
fn patch_second_fails() -> String {
    let first = PATCH_TWO_FILES.split("--- a/src/util/strings.rs").next().unwrap();
    format!(
        "{first}--- a/src/util/strings.rs\n+++ b/src/util/strings.rs\n@@ -1,3 +1,3 @@\n pub fn whisper(s: &str) -> String {{\n-    s.to_lowercase()\n+    s.to_lowercase() + \"...\"\n }}\n"
    )
}

#[test]
fn apply_patch() {
    let p = project();
    let mut s = fs(&p.root).write().start();
    let before = snapshot(&p.root);
    let r = s.ok("apply_patch", json!({"patch": PATCH_TWO_FILES, "dry_run": true}));
    assert_eq!(r["dry_run"], true);
    assert_eq!(
        r["files"],
        json!([{"path": "src/main.rs", "operation": "modify"}, {"path": "src/util/strings.rs", "operation": "modify"}])
    );
    assert_eq!(snapshot(&p.root), before);

    let msg = s.err("apply_patch", json!({"patch": patch_second_fails()}), "patch_failed");
    assert!(msg.contains("strings.rs"));
    assert_eq!(snapshot(&p.root), before, "a failed patch must change no file");

    let r = s.ok("apply_patch", json!({"patch": PATCH_TWO_FILES}));
    assert!(r["dry_run"] == false && r["files"].as_array().unwrap().len() == 2);
    assert_eq!(read(p.root.join("src/main.rs")), MAIN_RS.replace("\"hello\"", "\"goodbye\""));
    assert_eq!(
        read(p.root.join("src/util/strings.rs")),
        STRINGS_RS.replace("s.to_uppercase()", "s.to_uppercase() + \"!\"")
    );

    let create = "--- /dev/null\n+++ b/docs/new/changelog.md\n@@ -0,0 +1,2 @@\n+# Changelog\n+- first\n";
    let r = s.ok("apply_patch", json!({"patch": create}));
    assert_eq!(r["files"], json!([{"path": "docs/new/changelog.md", "operation": "create"}]));
    assert_eq!(read(p.root.join("docs/new/changelog.md")), "# Changelog\n- first\n");
    s.err("apply_patch", json!({"patch": create}), "already_exists");

    let delete = "--- a/docs/guide.md\n+++ /dev/null\n@@ -1,4 +0,0 @@\n-# Guide\n-\n-Call `add(a, b)` to add.\n-fn is not code here.\n";
    s.err("apply_patch", json!({"patch": delete}), "tier_not_allowed");
    assert!(p.root.join("docs/guide.md").exists());

    s.err("apply_patch", json!({"patch": "this is not a diff"}), "patch_failed");
    s.err("apply_patch", json!({"patch": "--- a/.env\n+++ b/.env\n@@ -1 +1 @@\n-a\n+b\n"}), "denied_by_glob");
    drop(s);

    let mut s = fs(&p.root).destructive().start();
    let r = s.ok("apply_patch", json!({"patch": delete}));
    assert_eq!(r["files"], json!([{"path": "docs/guide.md", "operation": "delete"}]));
    assert!(!p.root.join("docs/guide.md").exists());
}

#[test]
fn apply_patch_crlf_file_with_lf_diff() {
    let p = project();
    write(p.root.join("win.txt"), b"a\r\nb\r\nc\r\n");
    let mut s = fs(&p.root).write().start();
    s.ok("apply_patch", json!({"patch": "--- a/win.txt\n+++ b/win.txt\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"}));
    drop(s);
    assert_eq!(std::fs::read(p.root.join("win.txt")).unwrap(), b"a\r\nB\r\nc\r\n");
}

#[test]
fn apply_patch_dry_run_creates_no_directory() {
    let p = project();
    let before = all_paths(&p.root);
    let mut s = fs(&p.root).write().start();
    let r = s.ok(
        "apply_patch",
        json!({"patch": "--- /dev/null\n+++ b/brand/new/dir/x.txt\n@@ -0,0 +1 @@\n+x\n", "dry_run": true}),
    );
    assert_eq!(r["dry_run"], true);
    drop(s);
    assert_eq!(all_paths(&p.root), before);
}

#[test]
fn failed_call_leaves_tree_unchanged() {
    let cases = [
        (
            "apply_patch-second-file-fails",
            "apply_patch",
            json!({"patch": "--- /dev/null\n+++ b/newdir/a/x.txt\n@@ -0,0 +1 @@\n+x\n--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-no such line\n+y\n"}),
            "patch_failed",
        ),
        (
            "move_path-missing-source",
            "move_path",
            json!({"source": "does-not-exist.txt", "destination": "newdir/a/x.txt"}),
            "not_found",
        ),
        (
            "write_file-precondition",
            "write_file",
            json!({"path": "newdir/a/x.txt", "content": "x", "expected_sha256": "0".repeat(64)}),
            "precondition_failed",
        ),
        ("write_file-denied", "write_file", json!({"path": "newdir/.git/x", "content": "x"}), "denied_by_glob"),
        ("create_directory-denied", "create_directory", json!({"path": "newdir/.git/hooks"}), "denied_by_glob"),
        (
            "write_file-parent-is-file",
            "write_file",
            json!({"path": "README.md/x.txt", "content": "x"}),
            "not_a_directory",
        ),
        (
            "write_file-bad-root",
            "write_file",
            json!({"path": "x.txt", "content": "x", "root": "nope"}),
            "invalid_argument",
        ),
    ];
    for (id, tool, args, code) in cases {
        let p = project();
        let before = (snapshot(&p.root), all_paths(&p.root));
        let mut s = fs(&p.root).write().start();
        let r = s.call(tool, args.clone());
        assert_eq!(r.error_code().as_deref(), Some(code), "[{id}] {tool}({args}): {}", r.text);
        drop(s);
        let after = (snapshot(&p.root), all_paths(&p.root));
        let new: Vec<&String> = after.1.iter().filter(|x| !before.1.contains(x)).collect();
        assert!(after == before, "[{id}] new entries: {new:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// create_directory, move_path, delete_path
// ---------------------------------------------------------------------------------------------

#[test]
fn create_directory() {
    let p = project();
    let mut s = fs(&p.root).write().start();
    let r = s.ok("create_directory", json!({"path": "a/b/c"}));
    assert_eq!(r, json!({"path": "a/b/c", "created": true}));
    assert!(p.root.join("a/b/c").is_dir());
    let r = s.ok("create_directory", json!({"path": "a/b/c"}));
    assert_eq!(r["created"], false);
    s.err("create_directory", json!({"path": "README.md/sub"}), "not_a_directory");
    s.err("create_directory", json!({"path": ".git/hooks"}), "denied_by_glob");
    assert!(!p.root.join(".git").exists());
}

#[test]
fn move_path() {
    let p = project();
    let mut s = fs(&p.root).write().start();
    let r = s.ok("move_path", json!({"source": "docs/guide.md", "destination": "docs/manual/guide.md"}));
    assert_eq!(r, json!({"source": "docs/guide.md", "destination": "docs/manual/guide.md", "type": "file"}));
    assert!(p.root.join("docs/manual/guide.md").exists() && !p.root.join("docs/guide.md").exists());

    let r = s.ok("move_path", json!({"source": "src/util", "destination": "src/helpers"}));
    assert_eq!(r["type"], "directory");
    assert_eq!(read(p.root.join("src/helpers/strings.rs")), STRINGS_RS);

    let main_before = std::fs::read(p.root.join("src/main.rs")).unwrap();
    s.err("move_path", json!({"source": "src/lib.rs", "destination": "src/main.rs"}), "already_exists");
    assert!(std::fs::read(p.root.join("src/main.rs")).unwrap() == main_before && p.root.join("src/lib.rs").exists());
    s.ok("move_path", json!({"source": "src/lib.rs", "destination": "src/main.rs", "overwrite": true}));
    assert!(read(p.root.join("src/main.rs")) == LIB_RS && !p.root.join("src/lib.rs").exists());
    s.err("move_path", json!({"source": "README.md", "destination": "docs", "overwrite": true}), "already_exists");
    s.err("move_path", json!({"source": "nope", "destination": "nope2"}), "not_found");
}

#[test]
fn delete_path() {
    let p = project();
    let mut s = fs(&p.root).destructive().start();
    let r = s.ok("delete_path", json!({"path": "app.log"}));
    assert_eq!(r, json!({"path": "app.log", "type": "file"}));
    assert!(!p.root.join("app.log").exists());
    s.err("delete_path", json!({"path": "src"}), "directory_not_empty");
    assert!(p.root.join("src/lib.rs").exists());
    let r = s.ok("delete_path", json!({"path": "src", "recursive": true}));
    assert!(r["type"] == "directory" && !p.root.join("src").exists());
    s.err("delete_path", json!({"path": "src"}), "not_found");
    std::fs::create_dir(p.root.join("empty")).unwrap();
    s.ok("delete_path", json!({"path": "empty"}));
    assert!(!p.root.join("empty").exists());
    // A directory holding a secret is not deleted wholesale.
    write(p.root.join("cfg/.env"), "X=1\n");
    s.err("delete_path", json!({"path": "cfg", "recursive": true}), "denied_by_glob");
    assert!(p.root.join("cfg/.env").exists());
}
