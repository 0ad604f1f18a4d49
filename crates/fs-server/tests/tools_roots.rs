//! Roots of `bastion fs`: several roots, and the client's roots narrowing (never widening) them,
//! through the real binary over stdio.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bastion_testkit::write;
use serde_json::{Value, json};

mod common;
use common::project::*;

// ---------------------------------------------------------------------------------------------
// list_roots
// ---------------------------------------------------------------------------------------------

#[test]
fn list_roots_two_roots() {
    let p = project();
    let first = make_project(&p.base, "alpha");
    let second = p.base.join("beta");
    write(second.join("notes.txt"), "second root notes\n");
    write(first.join("notes.txt"), "first root notes\n");
    let mut s = fs(&first).root(&second).write().start();
    let r = s.ok("list_roots", json!({}));
    let roots = r["roots"].as_array().unwrap();
    assert_eq!(roots.iter().map(|x| x["name"].clone()).collect::<Vec<_>>(), [json!("alpha"), json!("beta")]);
    assert_eq!(
        roots.iter().map(|x| x["path"].clone()).collect::<Vec<_>>(),
        [json!(first.display().to_string()), json!(second.display().to_string())]
    );
    assert_eq!(r["max_tier"], "write");
    assert!(strs(&r["deny_read"]).contains(&".env".into()) && strs(&r["deny_write"]).contains(&".git/**".into()));
    assert!(r["output_chars"].as_u64().unwrap() > 0);

    let r = s.ok("read_file", json!({"path": "notes.txt"}));
    assert_eq!(r["content"], "first root notes\n");
    let r = s.ok("read_file", json!({"path": "notes.txt", "root": "beta"}));
    assert_eq!(r["content"], "second root notes\n");
    assert_eq!(r["path"], "beta:notes.txt");
    let r = s.ok("read_file", json!({"path": second.join("notes.txt")}));
    assert_eq!(r["content"], "second root notes\n");
    s.err("read_file", json!({"path": "notes.txt", "root": "gamma"}), "invalid_argument");

    s.ok("write_file", json!({"path": "new.txt", "content": "in beta\n", "root": "beta"}));
    assert_eq!(read(second.join("new.txt")), "in beta\n");
    assert!(!first.join("new.txt").exists());
    let r = s.ok("list_directory", json!({"root": "beta"}));
    let names: Vec<String> =
        paths_of(&r["entries"]).iter().map(|p| p.rsplit(':').next().unwrap().to_string()).collect();
    assert_eq!(names, ["new.txt", "notes.txt"]);
    let r = s.ok("find_files", json!({"pattern": "*.txt", "root": "beta"}));
    assert_eq!(strs(&r["matches"]), ["beta:new.txt", "beta:notes.txt"]);
    // Moving across roots is refused.
    s.err(
        "move_path",
        json!({"source": first.join("notes.txt"), "destination": second.join("x.txt")}),
        "invalid_argument",
    );
}

#[test]
fn paths_reported_with_several_roots_can_be_passed_back() {
    let p = project();
    let first = make_project(&p.base, "alpha");
    let second = p.base.join("beta");
    write(first.join("notes.txt"), "first root notes\n");
    write(second.join("notes.txt"), "second root notes\n");
    let mut s = fs(&first).root(&second).start();
    let reported = [
        ("find_files", s.ok("find_files", json!({"pattern": "notes.txt", "root": "beta"}))["matches"][0].clone()),
        (
            "search_text",
            s.ok("search_text", json!({"pattern": "second root", "root": "beta"}))["matches"][0]["path"].clone(),
        ),
        ("list_directory", s.ok("list_directory", json!({"root": "beta"}))["entries"][0]["path"].clone()),
        ("read_file", s.ok("read_file", json!({"path": "notes.txt", "root": "beta"}))["path"].clone()),
    ];
    for (tool, path) in reported {
        let r = s.call("read_file", json!({"path": path}));
        assert!(
            !r.is_error && r.structured["content"] == "second root notes\n",
            "{tool} reported {path}; read_file({path}) -> {}",
            r.text
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Client roots
// ---------------------------------------------------------------------------------------------

fn root_paths(r: &Value) -> Vec<String> {
    r["roots"].as_array().unwrap().iter().map(|x| x["path"].as_str().unwrap().to_string()).collect()
}

#[test]
fn client_roots_narrow_to_subdirectory() {
    let p = project();
    let src = p.root.join("src");
    let mut s = fs(&p.root).write().client_roots([&src]).start();
    let r = s.ok("list_roots", json!({}));
    assert_eq!(root_paths(&r), [src.display().to_string()]);
    let r = s.ok("read_file", json!({"path": src.join("main.rs")}));
    assert_eq!(r["content"], MAIN_RS);
    let r = s.ok("read_file", json!({"path": "lib.rs"})); // relative to the narrowed root
    assert_eq!(r["content"], LIB_RS);
    s.err("read_file", json!({"path": p.root.join("README.md")}), "path_outside_root");
    s.err("read_file", json!({"path": "../README.md"}), "path_outside_root");
    s.err("write_file", json!({"path": p.root.join("evil.txt"), "content": "x"}), "path_outside_root");
    s.err("list_directory", json!({"path": p.root}), "path_outside_root");
    let r = s.ok("find_files", json!({"pattern": "*.md"}));
    assert_eq!(r["matches"], json!([]));
    drop(s);
    assert!(!p.root.join("evil.txt").exists());
}

#[test]
fn client_roots_cannot_widen() {
    let p = project();
    let outside = p.base.join("elsewhere");
    write(outside.join("secret.txt"), "outside secret\n");
    // A client root outside the configured root: ignored, nothing outside becomes reachable.
    let mut s = fs(&p.root).write().client_roots([&outside]).start();
    s.err("read_file", json!({"path": outside.join("secret.txt")}), "path_outside_root");
    s.err("write_file", json!({"path": outside.join("new.txt"), "content": "x"}), "path_outside_root");
    let r = s.call("list_roots", json!({}));
    assert!(!r.text.contains(&outside.display().to_string()));
    drop(s);
    // A client root that contains the configured root keeps the configured root only.
    let mut s = fs(&p.root).write().client_roots([&p.base]).start();
    let r = s.ok("list_roots", json!({}));
    assert_eq!(root_paths(&r), [p.root.display().to_string()]);
    s.err("read_file", json!({"path": outside.join("secret.txt")}), "path_outside_root");
    s.err("read_file", json!({"path": "../elsewhere/secret.txt"}), "path_outside_root");
    let r = s.ok("read_file", json!({"path": "README.md"}));
    assert_eq!(r["content"], README);
    drop(s);
    // Declared together with a real subdirectory: only the subdirectory is in force.
    let docs = p.root.join("docs");
    let mut s = fs(&p.root).client_roots([&outside, &docs]).start();
    let r = s.ok("list_roots", json!({}));
    assert_eq!(root_paths(&r), [docs.display().to_string()]);
    s.err("read_file", json!({"path": outside.join("secret.txt")}), "path_outside_root");
    s.err("read_file", json!({"path": p.root.join("README.md")}), "path_outside_root");
    drop(s);
    assert!(!outside.join("new.txt").exists());
}

/// The narrowing must be in force for the very first call after initialize (no race).
#[test]
fn client_roots_applied_before_first_call() {
    let p = project();
    for _ in 0..10 {
        let mut s = fs(&p.root).client_roots([p.root.join("src")]).start();
        s.err("read_file", json!({"path": p.root.join("README.md")}), "path_outside_root");
    }
}
