//! Behaviour of `bastion fs`'s `find_files` and `search_text`, paging included, through the real
//! binary over stdio (see `bastion-testkit`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bastion_testkit::{Server, write};
use serde_json::{Value, json};

mod common;
use common::project::*;

// ---------------------------------------------------------------------------------------------
// find_files
// ---------------------------------------------------------------------------------------------

#[test]
fn find_files() {
    let p = project();
    let mut s = fs(&p.root).start();
    let all_rs = ["src/lib.rs", "src/main.rs", "src/util/mod.rs", "src/util/strings.rs"];
    let r = s.ok("find_files", json!({"pattern": "*.rs"}));
    assert_eq!(strs(&r["matches"]), all_rs);
    assert!(r["total"] == 4 && r["truncated"] == false && r["complete"] == true);

    let r = s.ok("find_files", json!({"pattern": "util/*.rs", "path": "src"}));
    assert_eq!(strs(&r["matches"]), ["src/util/mod.rs", "src/util/strings.rs"]);
    let r = s.ok("find_files", json!({"pattern": "src/**/*.rs"}));
    assert_eq!(strs(&r["matches"]), all_rs);

    // .gitignore respected by default, not with respect_gitignore=false.
    let r = s.ok("find_files", json!({"pattern": "*.log"}));
    assert_eq!(r["matches"], json!([]));
    let r = s.ok("find_files", json!({"pattern": "*.log", "respect_gitignore": false}));
    assert_eq!(strs(&r["matches"]), ["app.log"]);
    let r = s.ok("find_files", json!({"pattern": "*.rs", "respect_gitignore": false}));
    assert!(strs(&r["matches"]).contains(&"target/debug/build.rs".into()));

    // Hidden excluded by default.
    let r = s.ok("find_files", json!({"pattern": "*.rs", "include_hidden": true}));
    assert!(strs(&r["matches"]).contains(&".hidden/config.rs".into()));
    let r = s.ok("find_files", json!({"pattern": "*", "include_hidden": true, "respect_gitignore": false}));
    let m = strs(&r["matches"]);
    assert!(m.contains(&".gitignore".into()) && !m.contains(&".env".into()));

    let r = s.ok("find_files", json!({"pattern": "util", "kind": "directory"}));
    assert_eq!(strs(&r["matches"]), ["src/util"]);
    s.err("find_files", json!({"pattern": "a[", "path": "src"}), "invalid_argument");
    s.err("find_files", json!({"pattern": "*", "kind": "socket"}), "invalid_argument");
}

/// Pages through `tool` with `args` (adding `cursor`), checking `truncated` against the cursor;
/// returns every page's result.
fn pages(s: &mut Server, tool: &str, args: Value, max_pages: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<Value> = None;
    loop {
        let mut a = args.clone();
        if let Some(c) = &cursor {
            a["cursor"] = c.clone();
        }
        let r = s.ok(tool, a);
        cursor = r.get("next_cursor").filter(|c| !c.is_null() && *c != "").cloned();
        assert_eq!(r["truncated"], cursor.is_some(), "{tool}: truncated disagrees with next_cursor");
        out.push(r);
        if cursor.is_none() {
            return out;
        }
        assert!(out.len() < max_pages, "{tool}: no end after {max_pages} pages");
    }
}

#[test]
fn find_files_paging_1200() {
    let p = project();
    let mut expected = Vec::new();
    for d in 0..6 {
        for i in 0..200 {
            let rel = format!("gen/d{d}/m{i:03}.dat");
            write(p.root.join(&rel), "x");
            expected.push(rel);
        }
    }
    expected.sort();
    let mut s = fs(&p.root).start();
    let all = pages(&mut s, "find_files", json!({"pattern": "*.dat", "max_results": 250}), 50);
    let mut seen = Vec::new();
    for r in &all {
        assert!(r["matches"].as_array().unwrap().len() <= 250);
        assert_eq!(r["total"], 1200);
        seen.extend(strs(&r["matches"]));
    }
    assert_eq!(all.len(), 5);
    assert_eq!(seen, expected);
}

// The walk sorts by path components ("a" < "a-b"), the cursor compares whole strings
// ("a-b/..." < "a/..." since '-' < '/'), so a page boundary inside "a/" restarts the listing.
#[test]
fn find_files_paging_names_sorting_differently_as_strings() {
    let p = project();
    let mut expected = Vec::new();
    for d in ["a", "a-b", "a.b", "a0"] {
        for i in 0..3 {
            let rel = format!("mix/{d}/f{i}.dat");
            write(p.root.join(&rel), "x");
            expected.push(rel);
        }
    }
    let mut s = fs(&p.root).start();
    let full = strs(&s.ok("find_files", json!({"pattern": "*.dat"}))["matches"]);
    let (mut a, mut b) = (full.clone(), expected.clone());
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let seen: Vec<String> = pages(&mut s, "find_files", json!({"pattern": "*.dat", "max_results": 2}), 20)
        .iter()
        .flat_map(|r| strs(&r["matches"]))
        .collect();
    assert_eq!(seen, full, "paged != one page");
}

// ---------------------------------------------------------------------------------------------
// search_text
// ---------------------------------------------------------------------------------------------

fn hits(r: &Value) -> Vec<(String, u64)> {
    r["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["path"].as_str().unwrap().to_string(), m["line"].as_u64().unwrap()))
        .collect()
}

fn hit_list(h: &[(&str, u64)]) -> Vec<(String, u64)> {
    h.iter().map(|(p, l)| (p.to_string(), *l)).collect()
}

fn hit_files(r: &Value) -> std::collections::BTreeSet<String> {
    hits(r).into_iter().map(|(p, _)| p).collect()
}

#[test]
fn search_text() {
    let p = project();
    write(p.root.join("src/regex.rs"), "let re = \"a.b*c(\";\nlet other = \"axbbc(\";\n");
    let mut s = fs(&p.root).start();
    let r = s.ok("search_text", json!({"pattern": r"fn \w+\("}));
    assert_eq!(
        hits(&r),
        hit_list(&[("src/lib.rs", 4), ("src/lib.rs", 8), ("src/main.rs", 3), ("src/util/strings.rs", 1)])
    );
    assert_eq!(r["matches"][0]["text"], "pub fn add(a: i32, b: i32) -> i32 {");
    assert!(r["truncated"] == false && r["complete"] == true);

    // Literal with regex metacharacters.
    let r = s.ok("search_text", json!({"pattern": "a.b*c(", "literal": true}));
    assert_eq!(hits(&r), hit_list(&[("src/regex.rs", 1)]));
    s.err("search_text", json!({"pattern": "a.b*c("}), "invalid_argument");

    // Case: smart (default) is insensitive for lowercase patterns, sensitive with uppercase.
    let r = s.ok("search_text", json!({"pattern": "hello", "globs": ["*.md"]}));
    assert_eq!(hits(&r), hit_list(&[("README.md", 5), ("README.md", 6), ("README.md", 7)]));
    let r = s.ok("search_text", json!({"pattern": "Hello", "globs": ["*.md"]}));
    assert_eq!(hits(&r), hit_list(&[("README.md", 5)]));
    let r = s.ok("search_text", json!({"pattern": "HELLO", "case": "insensitive", "globs": ["*.md"]}));
    assert_eq!(r["matches"].as_array().unwrap().len(), 3);
    let r = s.ok("search_text", json!({"pattern": "hello", "case": "sensitive", "globs": ["*.md"]}));
    assert_eq!(hits(&r), hit_list(&[("README.md", 7)]));

    // Globs include / exclude.
    let r = s.ok("search_text", json!({"pattern": "add"}));
    assert_eq!(hit_files(&r), ["src/lib.rs".to_string(), "docs/guide.md".into()].into());
    let r = s.ok("search_text", json!({"pattern": "add", "globs": ["*.rs"]}));
    assert_eq!(hit_files(&r), ["src/lib.rs".to_string()].into());
    let r = s.ok("search_text", json!({"pattern": "add", "globs": ["!*.rs"]}));
    assert_eq!(hit_files(&r), ["docs/guide.md".to_string()].into());

    // Gitignored and hidden files.
    let r = s.ok("search_text", json!({"pattern": "generated"}));
    assert_eq!(r["matches"], json!([]));
    let r = s.ok("search_text", json!({"pattern": "generated", "respect_gitignore": false}));
    assert_eq!(hits(&r), hit_list(&[("target/debug/build.rs", 1)]));
    let r = s.ok("search_text", json!({"pattern": "hidden config"}));
    assert_eq!(r["matches"], json!([]));
    let r = s.ok("search_text", json!({"pattern": "hidden config", "include_hidden": true}));
    assert_eq!(hits(&r), hit_list(&[(".hidden/config.rs", 1)]));

    // Context lines.
    let r = s.ok("search_text", json!({"pattern": "let total", "context_lines": 1}));
    let m = r["matches"].as_array().unwrap();
    assert_eq!(m.len(), 1);
    assert!(m[0]["path"] == "src/lib.rs" && m[0]["line"] == 9);
    assert_eq!(m[0]["before"], json!(["pub fn compute(a: i32, b: i32) -> i32 {"]));
    assert_eq!(m[0]["after"], json!(["    total * 2"]));

    // A search rooted at one file.
    let r = s.ok("search_text", json!({"pattern": "shout", "path": "src/main.rs"}));
    assert_eq!(hits(&r), hit_list(&[("src/main.rs", 1), ("src/main.rs", 4)]));

    // Invalid regex.
    let msg = s.err("search_text", json!({"pattern": "(unclosed"}), "invalid_argument");
    assert!(msg.contains("literal"));
    s.err("search_text", json!({"pattern": "x", "case": "shouting"}), "invalid_argument");
}

#[test]
fn search_text_never_shows_env() {
    let p = project();
    write(p.root.join("sub/.env"), format!("TOKEN={ENV_SECRET}\n"));
    write(p.root.join("sub/.env.local"), format!("TOKEN={ENV_SECRET}\n"));
    let mut s = fs(&p.root).start();
    for args in [
        json!({"pattern": ENV_SECRET}),
        json!({"pattern": ENV_SECRET, "include_hidden": true, "respect_gitignore": false}),
        json!({"pattern": "API_KEY", "include_hidden": true, "respect_gitignore": false, "literal": true}),
        json!({"pattern": ".", "include_hidden": true, "respect_gitignore": false, "max_results": 10_000}),
        json!({"pattern": ENV_SECRET, "path": "sub", "include_hidden": true}),
        json!({"pattern": ENV_SECRET, "include_hidden": true, "globs": [".env", "**/.env*"]}),
    ] {
        let r = s.call("search_text", args.clone());
        assert!(!r.text.contains(ENV_SECRET) && !r.structured.to_string().contains(ENV_SECRET));
        if !r.is_error {
            assert!(!hits(&r.structured).iter().any(|(p, _)| p.contains(".env")), "{args}");
        }
    }
    s.err("search_text", json!({"pattern": "API", "path": ".env"}), "denied_by_glob");
}

#[test]
fn search_text_paging() {
    let p = project();
    let mut expected = Vec::new();
    for f in ["p/a.txt", "p/b.txt", "p/c/d.txt"] {
        let mut lines = String::new();
        for i in 1..=150u64 {
            if i % 2 == 1 {
                lines += &format!("needle {f} {i}\n");
                expected.push((f.to_string(), i));
            } else {
                lines += "hay\n";
            }
        }
        write(p.root.join(f), lines);
    }
    expected.sort();
    let mut s = fs(&p.root).start();
    let all = pages(&mut s, "search_text", json!({"pattern": "needle", "max_results": 40}), 100);
    let mut seen = Vec::new();
    for r in &all {
        assert!(r["matches"].as_array().unwrap().len() <= 40);
        seen.extend(hits(r));
        for m in r["matches"].as_array().unwrap() {
            assert_eq!(m["text"], format!("needle {} {}", m["path"].as_str().unwrap(), m["line"]));
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert!(unique.len() == seen.len() && seen.len() == 225);
    assert_eq!(seen, expected);
    assert_eq!(all.len(), 6);
}

#[test]
fn search_text_paging_names_sorting_differently_as_strings() {
    let p = project();
    for d in ["a", "a-b", "a.b", "a0"] {
        write(p.root.join(format!("mix/{d}/f.txt")), "needle 1\nneedle 2\nneedle 3\n");
    }
    let mut s = fs(&p.root).start();
    let full = hits(&s.ok("search_text", json!({"pattern": "needle", "path": "mix"})));
    assert_eq!(full.len(), 12);
    let seen: Vec<(String, u64)> =
        pages(&mut s, "search_text", json!({"pattern": "needle", "path": "mix", "max_results": 2}), 20)
            .iter()
            .flat_map(hits)
            .collect();
    assert_eq!(seen, full, "paged != one page");
}
