//! Behaviour of `bastion fs`'s reading tools (and the tier caps on the tool list), through the
//! real binary over stdio (see `bastion-testkit`). The official-SDK view of the same server is
//! `tests/python/test_fs_sdk.py`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{PermissionsExt, symlink};

use base64::Engine as _;
use bastion_testkit::write;
use serde_json::{Value, json};

mod common;
use common::project::*;

// ---------------------------------------------------------------------------------------------
// tools/list
// ---------------------------------------------------------------------------------------------

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[test]
fn tools_list_per_tier() {
    let p = project();
    let read_write: Vec<&str> = READ_TOOLS.iter().chain(&WRITE_TOOLS).copied().collect();
    let all: Vec<&str> = read_write.iter().chain(&DESTRUCTIVE_TOOLS).copied().collect();
    let tiers: [(&str, &[&str], Vec<&str>); 4] = [
        ("read-only", &[], READ_TOOLS.to_vec()),
        ("allow-write", &["--allow-write"], read_write.clone()),
        ("allow-destructive", &["--allow-destructive"], all.clone()),
        ("both", &["--allow-write", "--allow-destructive"], all.clone()),
    ];
    for (id, flags, expected) in tiers {
        let mut s = fs(&p.root).args(flags).start();
        let tools = s.list_tools();
        drop(s);
        let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "[{id}] duplicate names");
        let mut want = expected.clone();
        want.sort_unstable();
        assert_eq!(names, want, "[{id}]");
        for t in &tools {
            let name = t["name"].as_str().unwrap();
            assert!(valid_name(name), "{name}");
            assert!(t["title"].as_str().is_some_and(|x| !x.is_empty()), "{name} has no title");
            assert!(t["description"].as_str().is_some_and(|x| !x.is_empty()), "{name} has no description");
            let a = &t["annotations"];
            assert!(a.is_object(), "{name} has no annotations");
            for hint in ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"] {
                assert!(a[hint].is_boolean(), "{name}: {hint} missing");
            }
            assert_eq!(t["inputSchema"]["type"], "object");
            if READ_TOOLS.contains(&name) {
                assert!(a["readOnlyHint"] == true && a["destructiveHint"] == false, "{name}");
            } else {
                assert_eq!(a["readOnlyHint"], false, "{name}");
            }
            if DESTRUCTIVE_TOOLS.contains(&name) {
                assert_eq!(a["destructiveHint"], true);
            }
            assert_eq!(a["openWorldHint"], false, "{name}");
        }
    }
}

/// Output schemas are served only with `--output-schemas`, for every tool with a structured
/// result (all but `read_file`, whose result may carry an image), describing its fields.
#[test]
fn output_schemas_only_when_asked() {
    let p = project();
    for (flags, served) in [(&["--allow-destructive"][..], false), (&["--allow-destructive", "--output-schemas"], true)]
    {
        let mut s = fs(&p.root).args(flags).start();
        let tools = s.list_tools();
        drop(s);
        assert_eq!(tools.len(), READ_TOOLS.len() + WRITE_TOOLS.len() + DESTRUCTIVE_TOOLS.len());
        for t in &tools {
            let name = t["name"].as_str().unwrap();
            let out = &t["outputSchema"];
            if served && name != "read_file" {
                assert!(
                    out["type"] == "object" && out["properties"].as_object().is_some_and(|p| !p.is_empty()),
                    "{name}: {out}"
                );
            } else {
                assert!(out.is_null(), "{name} {flags:?}: {out}");
            }
        }
    }
}

#[test]
fn tool_above_cap_is_refused() {
    let p = project();
    let mut s = fs(&p.root).start();
    for (tool, args) in [
        ("write_file", json!({"path": "x.txt", "content": "x"})),
        ("edit_file", json!({"path": "README.md", "old_text": "Proj", "new_text": "P"})),
        ("apply_patch", json!({"patch": "--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1 @@\n+n\n"})),
        ("create_directory", json!({"path": "newdir"})),
        ("move_path", json!({"source": "README.md", "destination": "R.md"})),
        ("delete_path", json!({"path": "README.md"})),
    ] {
        s.err(tool, args, "tier_not_allowed");
    }
    drop(s);
    assert!(!p.root.join("x.txt").exists() && !p.root.join("newdir").exists());
    assert!(!p.root.join("n.txt").exists() && read(p.root.join("README.md")) == README);
    let mut s = fs(&p.root).write().start();
    s.err("delete_path", json!({"path": "README.md"}), "tier_not_allowed");
    drop(s);
    assert!(p.root.join("README.md").exists());
}

// ---------------------------------------------------------------------------------------------
// read_file
// ---------------------------------------------------------------------------------------------

#[test]
fn read_file_whole() {
    let p = project();
    let mut s = fs(&p.root).start();
    let r = s.ok("read_file", json!({"path": "src/lib.rs"}));
    assert_eq!(r["content"], LIB_RS);
    assert_eq!(r["encoding"], "utf-8");
    let lines = LIB_RS.matches('\n').count();
    assert!(r["start_line"] == 1 && r["end_line"] == lines && r["total_lines"] == lines, "{r}");
    assert_eq!(r["size"], LIB_RS.len());
    assert_eq!(r["sha256"], sha256(LIB_RS));
    assert!(r["truncated"] == false && r.get("next_offset").is_none());
    // Absolute paths inside the root work too.
    let r2 = s.ok("read_file", json!({"path": p.root.join("src/lib.rs")}));
    assert_eq!(r2["content"], LIB_RS);
    s.err("read_file", json!({"path": "src/nope.rs"}), "not_found");
    s.err("read_file", json!({"path": "src"}), "not_a_regular_file");
}

#[test]
fn read_file_window_and_tail() {
    let p = project();
    let lines: Vec<String> = (1..=100).map(|i| format!("line {i}\n")).collect();
    write(p.root.join("hundred.txt"), lines.concat());
    let mut s = fs(&p.root).start();
    let r = s.ok("read_file", json!({"path": "hundred.txt", "offset": 10, "limit": 5}));
    assert_eq!(r["content"], lines[9..14].concat());
    assert_eq!((&r["start_line"], &r["end_line"], &r["total_lines"]), (&json!(10), &json!(14), &json!(100)));
    assert_eq!(r["next_offset"], 15);
    let r = s.ok("read_file", json!({"path": "hundred.txt", "offset": -3}));
    assert_eq!(r["content"], lines[97..].concat());
    assert_eq!((&r["start_line"], &r["end_line"]), (&json!(98), &json!(100)));
    assert!(r.get("next_offset").is_none());
    let r = s.ok("read_file", json!({"path": "hundred.txt", "offset": -5, "limit": 2}));
    assert_eq!(r["content"], lines[95..97].concat());
    assert_eq!(r["next_offset"], 98);
    // A window past the end is empty, not an error.
    let r = s.ok("read_file", json!({"path": "hundred.txt", "offset": 500}));
    assert!(r["content"] == "" && r["total_lines"] == 100);
}

#[test]
fn read_file_budget_continuation_reassembles_exactly() {
    let p = project();
    // Lines of varying length, some multi-byte, one longer than the page.
    let mut parts: Vec<String> =
        (0..400).map(|i| format!("{i:04} {}\n", (if i % 3 == 0 { "é" } else { "x" }).repeat((i * 37) % 120))).collect();
    parts.insert(200, format!("{}\n", "L".repeat(2500)));
    let text = parts.concat() + "no trailing newline";
    write(p.root.join("big.txt"), &text);
    let mut s = fs(&p.root).start();
    let mut got = String::new();
    let (mut offset, mut char_offset): (Option<Value>, Option<Value>) = (None, None);
    let mut pages = 0;
    loop {
        let mut args = json!({"path": "big.txt", "max_chars": 1000});
        if let Some(o) = &offset {
            args["offset"] = o.clone();
        }
        if let Some(c) = &char_offset {
            args["char_offset"] = c.clone();
        }
        let r = s.ok("read_file", args);
        pages += 1;
        let content = r["content"].as_str().unwrap();
        assert!(content.chars().count() <= 1000);
        got += content;
        if r.get("next_offset").is_none() {
            assert_eq!(r["truncated"], false);
            break;
        }
        assert_eq!(r["truncated"], true);
        offset = Some(r["next_offset"].clone());
        char_offset = r.get("next_char_offset").cloned();
        assert!(pages < 1000, "no progress");
    }
    assert_eq!(got, text);
    assert!(pages > 10);
}

#[test]
fn read_file_very_long_single_line() {
    let p = project();
    let line: String = (0..30_000).map(|i| format!("{}{i}", if i % 7 == 0 { "αβγ" } else { "abc" })).collect();
    let chars: Vec<char> = line.chars().collect();
    assert!(chars.len() > 100_000);
    write(p.root.join("minified.js"), &line);
    let mut s = fs(&p.root).start();
    // Default budget: the line is cut and continued with char_offset.
    let mut r = s.ok("read_file", json!({"path": "minified.js"}));
    assert_eq!(r["truncated"], true);
    assert_eq!(r["next_offset"], 1);
    assert_eq!(r["next_char_offset"], r["content"].as_str().unwrap().chars().count());
    let mut got = r["content"].as_str().unwrap().to_string();
    while r.get("next_offset").is_some() {
        r = s.ok(
            "read_file",
            json!({"path": "minified.js", "offset": r["next_offset"], "char_offset": r["next_char_offset"]}),
        );
        got += r["content"].as_str().unwrap();
    }
    assert_eq!(got, line);
    // A small explicit budget.
    let head: String = chars[..500].iter().collect();
    let next: String = chars[500..1000].iter().collect();
    let r = s.ok("read_file", json!({"path": "minified.js", "max_chars": 500}));
    assert!(r["content"] == head.as_str() && r["next_char_offset"] == 500);
    let r = s.ok("read_file", json!({"path": "minified.js", "offset": 1, "char_offset": 500, "max_chars": 500}));
    assert!(r["content"] == next.as_str() && r["next_char_offset"] == 1000);
}

#[test]
fn read_file_latin1_binary_and_image() {
    let p = project();
    let mut s = fs(&p.root).start();
    let r = s.ok("read_file", json!({"path": "data/latin1.txt"}));
    assert_eq!(r["encoding"], "latin-1");
    assert_eq!(r["content"], "café crème brûlée\n");
    assert_eq!(r["size"], LATIN1.len());

    let msg = s.err("read_file", json!({"path": "assets/blob.bin"}), "binary_file");
    assert!(msg.contains("blob.bin"));

    let result = s.call("read_file", json!({"path": "assets/logo.png"}));
    assert!(!result.is_error);
    let images: Vec<&Value> = result.content.iter().filter(|c| c["type"] == "image").collect();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["mimeType"], "image/png");
    let data = base64::engine::general_purpose::STANDARD.decode(images[0]["data"].as_str().unwrap()).unwrap();
    assert_eq!(data, std::fs::read(p.root.join("assets/logo.png")).unwrap());
    assert!(result.content.iter().any(|c| c["type"] == "text"));
    assert!(result.structured.is_object());
    assert_eq!(result.structured["mime_type"], "image/png");
    assert_eq!(result.structured["sha256"], sha256(tiny_png()));
}

// ---------------------------------------------------------------------------------------------
// read_many_files
// ---------------------------------------------------------------------------------------------

#[test]
fn read_many_files_with_one_missing() {
    let p = project();
    let mut s = fs(&p.root).start();
    let r = s.ok("read_many_files", json!({"paths": ["src/main.rs", "src/missing.rs", "src/lib.rs", ".env"]}));
    let files = r["files"].as_array().unwrap();
    assert_eq!(paths_of(&r["files"]), ["src/main.rs", "src/missing.rs", "src/lib.rs", ".env"]);
    assert!(files[0]["content"] == MAIN_RS && files[0].get("error_code").is_none());
    assert_eq!(files[0]["total_lines"], MAIN_RS.matches('\n').count());
    assert!(files[1]["error_code"] == "not_found" && files[1].get("content").is_none());
    assert!(files[1]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(files[2]["content"] == LIB_RS && files[2].get("error_code").is_none());
    assert_eq!(files[3]["error_code"], "denied_by_glob");
    assert!(!r.to_string().contains(ENV_SECRET));
    assert_eq!(r["truncated"], false);
}

// ---------------------------------------------------------------------------------------------
// list_directory
// ---------------------------------------------------------------------------------------------

#[test]
fn list_directory_order_depth_hidden_denied() {
    let p = project();
    let mut s = fs(&p.root).start();
    let r = s.ok("list_directory", json!({}));
    let paths = paths_of(&r["entries"]);
    assert_eq!(
        paths,
        [".hidden", "assets", "data", "docs", "src", "target", ".gitignore", "Cargo.toml", "README.md", "app.log"],
        "directories first, by name"
    );
    assert!(!paths.contains(&".env".to_string()) && r["hidden_denied"] == 1);
    let entry = |name: &str| r["entries"].as_array().unwrap().iter().find(|e| e["path"] == name).unwrap().clone();
    assert!(entry("src")["type"] == "directory" && entry("README.md")["type"] == "file");
    assert!(entry("README.md")["size"] == README.len() && entry("src").get("size").is_none_or(Value::is_null));
    assert!(r["entries"].as_array().unwrap().iter().all(|e| e["depth"] == 1));
    assert!(r["truncated"] == false && r.get("next_cursor").is_none());

    let r = s.ok("list_directory", json!({"include_hidden": false}));
    assert_eq!(
        paths_of(&r["entries"]),
        ["assets", "data", "docs", "src", "target", "Cargo.toml", "README.md", "app.log"]
    );

    let r = s.ok("list_directory", json!({"path": "src", "depth": 2}));
    let with_depth: Vec<(String, u64)> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_string(), e["depth"].as_u64().unwrap()))
        .collect();
    let want: Vec<(String, u64)> =
        [("src/util", 1), ("src/util/mod.rs", 2), ("src/util/strings.rs", 2), ("src/lib.rs", 1), ("src/main.rs", 1)]
            .iter()
            .map(|(p, d)| (p.to_string(), *d))
            .collect();
    assert_eq!(with_depth, want);
    let r = s.ok("list_directory", json!({"depth": 3}));
    let paths = paths_of(&r["entries"]);
    let at = |x: &str| paths.iter().position(|p| p == x).unwrap();
    assert!(paths.contains(&"target/debug/build.rs".into()) && paths.contains(&"src/util/strings.rs".into()));
    assert!(
        at("src") < at("src/util")
            && at("src/util") < at("src/util/mod.rs")
            && at("src/util/mod.rs") < at("src/lib.rs")
    );
    assert!(!paths.contains(&".env".into()));
    s.err("list_directory", json!({"path": "README.md"}), "not_a_directory");
    s.err("list_directory", json!({"path": "nope"}), "not_found");
}

#[test]
fn list_directory_pages_3000_files() {
    let p = project();
    std::fs::create_dir(p.root.join("big")).unwrap();
    let names: Vec<String> = (0..3000).map(|i| format!("big/file_{i:04}.txt")).collect();
    for n in &names {
        std::fs::write(p.root.join(n), "x").unwrap();
    }
    let mut s = fs(&p.root).start();
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<Value> = None;
    let mut pages = 0;
    loop {
        let mut args = json!({"path": "big"});
        if let Some(c) = &cursor {
            args["cursor"] = c.clone();
        }
        let r = s.ok("list_directory", args);
        pages += 1;
        seen.extend(paths_of(&r["entries"]));
        cursor = r.get("next_cursor").filter(|c| !c.is_null() && *c != "").cloned();
        assert_eq!(r["truncated"], cursor.is_some());
        if cursor.is_none() {
            break;
        }
        assert!(pages < 100);
    }
    assert!(pages >= 2, "3000 entries should not fit one page");
    let mut unique = seen.clone();
    unique.dedup();
    assert!(unique.len() == seen.len() && seen.len() == 3000);
    assert_eq!(seen, names, "every name once, in order");
}

// ---------------------------------------------------------------------------------------------
// file_info
// ---------------------------------------------------------------------------------------------

fn is_utc_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn file_info() {
    let p = project();
    std::fs::set_permissions(p.root.join("src/main.rs"), std::fs::Permissions::from_mode(0o640)).unwrap();
    symlink("src/lib.rs", p.root.join("lib_link.rs")).unwrap();
    let mut s = fs(&p.root).start();
    let r = s.ok("file_info", json!({"path": "src/main.rs"}));
    assert!(r["type"] == "file" && r["is_symlink"] == false);
    assert_eq!(r["size"], MAIN_RS.len());
    assert!(r["mode"] == "0640" && r["permissions"] == "rw-r-----");
    assert_eq!(r["line_count"], MAIN_RS.matches('\n').count());
    assert!(r["content_type"] == "text" && r["links"] == 1);
    assert!(is_utc_timestamp(r["modified"].as_str().unwrap()), "{}", r["modified"]);

    let r = s.ok("file_info", json!({"path": "src"}));
    assert!(r["type"] == "directory" && r.get("line_count").is_none());

    let r = s.ok("file_info", json!({"path": "lib_link.rs"}));
    assert!(r["is_symlink"] == true && r["type"] == "file");
    assert_eq!(r["real_path"], "src/lib.rs");
    assert_eq!(r["line_count"], LIB_RS.matches('\n').count());

    let r = s.ok("file_info", json!({"path": "assets/logo.png"}));
    assert_eq!(r["content_type"], "image/png");
    let r = s.ok("file_info", json!({"path": "assets/blob.bin"}));
    assert_eq!(r["content_type"], "binary");
    s.err("file_info", json!({"path": ".env"}), "denied_by_glob");
    s.err("file_info", json!({"path": "missing"}), "not_found");
}

/// Files above max_read_bytes are streamed: tail, windows, budget continuation and a single
/// over-long line all work, with total_lines and without sha256.
#[test]
fn read_file_above_the_read_limit_is_streamed() {
    let p = project();
    let root = p.base.join("big");
    let log: String = (1..=2000).map(|i| format!("line {i}\n")).collect();
    let long = format!("{}\nend\n", "x".repeat(5000));
    write(root.join("log.txt"), &log);
    write(root.join("long.txt"), &long);
    let config = p.base.join("limits.toml");
    write(&config, "[limits]\nmax_read_bytes = 1000\noutput_chars = 300\n");
    let mut s = fs(&root).arg("--config").arg(&config).start();
    let r = s.ok("read_file", json!({"path": "log.txt", "offset": -3}));
    assert_eq!(r["content"], "line 1998\nline 1999\nline 2000\n");
    assert_eq!((&r["start_line"], &r["end_line"], &r["total_lines"]), (&json!(1998), &json!(2000), &json!(2000)));
    assert!(r["encoding"] == "utf-8-lossy" && r.get("sha256").is_none());

    let r = s.ok("read_file", json!({"path": "log.txt", "offset": 1500, "limit": 2}));
    assert!(r["content"] == "line 1500\nline 1501\n" && r["next_offset"] == 1502);

    let (mut text, mut offset) = (String::new(), json!(1));
    for _ in 0..200 {
        let r = s.ok("read_file", json!({"path": "log.txt", "offset": offset}));
        text += r["content"].as_str().unwrap();
        match r.get("next_offset") {
            Some(n) => offset = n.clone(),
            None => break,
        }
    }
    assert_eq!(text, log);

    let (mut text, mut args) = (String::new(), json!({"path": "long.txt"}));
    for _ in 0..50 {
        let r = s.ok("read_file", args);
        text += r["content"].as_str().unwrap();
        let Some(n) = r.get("next_offset") else { break };
        args = json!({"path": "long.txt", "offset": n, "char_offset": r.get("next_char_offset").cloned().unwrap_or(json!(0))});
    }
    assert_eq!(text, long);
}
