//! Behaviour of `bastion fs`, tool by tool, through the real binary over stdio: every test builds
//! its own realistic project tree in a fresh temporary directory, starts the server and talks to
//! it only through MCP (see `bastion-testkit`). The official-SDK view of the same server is
//! `tests/python/test_fs_sdk.py`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bastion_testkit::{Kind, Server, ServerBuilder, temp_dir, write};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const ENV_SECRET: &str = "ENVVALUE-s3cr3t-7f3a9c";

const READ_TOOLS: [&str; 7] =
    ["read_file", "read_many_files", "list_directory", "file_info", "list_roots", "find_files", "search_text"];
const WRITE_TOOLS: [&str; 5] = ["write_file", "edit_file", "apply_patch", "create_directory", "move_path"];
const DESTRUCTIVE_TOOLS: [&str; 1] = ["delete_path"];

// ---------------------------------------------------------------------------------------------
// The project tree
// ---------------------------------------------------------------------------------------------

/// A valid 1x1 RGBA PNG (the bytes Python's zlib writes for the same image).
fn tiny_png() -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
        out
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    // zlib.compress(b"\x00\xff\x00\x00\xff"): one filter byte and one RGBA pixel.
    let idat = [0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff];
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &idat));
    png.extend(chunk(b"IEND", b""));
    png
}

const MAIN_RS: &str = "use proj::util::strings::shout;\n\nfn main() {\n    let greeting = shout(\"hello\");\n    println!(\"{greeting}\");\n}\n";

const LIB_RS: &str = "pub mod util;\n\n/// Adds two numbers.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\npub fn compute(a: i32, b: i32) -> i32 {\n    let total = add(a, b);\n    total * 2\n}\n";

const STRINGS_RS: &str = "pub fn shout(s: &str) -> String {\n    s.to_uppercase()\n}\n";

const README: &str = "# Proj\n\nA small example project.\n\nHello world.\nHELLO again.\nhello there.\n";

const LATIN1: &[u8] = b"caf\xe9 cr\xe8me br\xfbl\xe9e\n";

/// A small but realistic project: sources, docs, ignored build output, a secret, assets.
fn make_project(base: &Path, name: &str) -> PathBuf {
    let root = base.join(name);
    std::fs::create_dir_all(&root).unwrap();
    write(root.join("README.md"), README);
    write(root.join("Cargo.toml"), "[package]\nname = \"proj\"\nversion = \"0.1.0\"\nedition = \"2021\"\n");
    write(root.join(".gitignore"), "target/\n*.log\n");
    write(root.join(".env"), format!("API_KEY={ENV_SECRET}\nDATABASE_URL=postgres://u:{ENV_SECRET}@db/x\n"));
    write(root.join(".hidden/config.rs"), "// hidden config\nfn hidden() {}\n");
    write(root.join("app.log"), "log line hello\n");
    write(root.join("src/main.rs"), MAIN_RS);
    write(root.join("src/lib.rs"), LIB_RS);
    write(root.join("src/util/mod.rs"), "pub mod strings;\n");
    write(root.join("src/util/strings.rs"), STRINGS_RS);
    write(root.join("docs/guide.md"), "# Guide\n\nCall `add(a, b)` to add.\nfn is not code here.\n");
    write(root.join("target/debug/build.rs"), "fn generated() {}\n");
    write(root.join("assets/logo.png"), tiny_png());
    let mut blob = b"\x7fELF\x02\x01\x01\x00".to_vec();
    for _ in 0..4 {
        blob.extend(0u8..=255);
    }
    write(root.join("assets/blob.bin"), blob);
    write(root.join("data/latin1.txt"), LATIN1);
    root
}

/// A fresh base directory holding `proj`.
struct Project {
    _dir: TempDir,
    base: PathBuf,
    root: PathBuf,
}

fn project() -> Project {
    let dir = temp_dir();
    let base = dir.path().canonicalize().unwrap();
    let root = make_project(&base, "proj");
    Project { _dir: dir, base, root }
}

fn sha256(data: impl AsRef<[u8]>) -> String {
    Sha256::digest(data.as_ref()).iter().map(|b| format!("{b:02x}")).collect()
}

fn fs(root: &Path) -> ServerBuilder {
    ServerBuilder::new(Kind::Fs).root(root)
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p).unwrap()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

fn paths_of(entries: &Value) -> Vec<String> {
    entries.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap().to_string()).collect()
}

/// Every path under `root` (files, directories, links), relative, sorted.
fn all_paths(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(&p, root, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Content of every regular file under `root` (links not followed).
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    all_paths(root)
        .into_iter()
        .filter(|rel| std::fs::symlink_metadata(root.join(rel)).is_ok_and(|m| m.file_type().is_file()))
        .map(|rel| {
            let data = std::fs::read(root.join(&rel)).unwrap();
            (rel, data)
        })
        .collect()
}

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

// ---------------------------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------------------------

fn audit_calls(log: &Path) -> Vec<Value> {
    read(log)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|rec| rec.get("tool").is_some())
        .collect()
}

#[test]
fn audit_log() {
    let p = project();
    let log = p.base.join("audit.jsonl");
    let secret_content = "TOP-SECRET-FILE-CONTENT-91c2e";
    let token = "ghp_0123456789abcdefghij";
    let mut s = fs(&p.root).write().arg("--audit-log").arg(&log).start();
    s.ok("read_file", json!({"path": "README.md"}));
    s.ok("write_file", json!({"path": "out.txt", "content": secret_content}));
    s.err("read_file", json!({"path": token}), "not_found");
    s.err("read_file", json!({"path": "../outside"}), "path_outside_root");
    s.err("delete_path", json!({"path": "out.txt"}), "tier_not_allowed");
    s.ok("search_text", json!({"pattern": "x", "globs": [token]}));
    drop(s);
    let raw = read(&log);
    assert!(!raw.contains(secret_content));
    assert!(!raw.contains(token));
    assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o7777, 0o600);
    let calls = audit_calls(&log);
    let field = |f: &str| calls.iter().map(|c| c[f].as_str().unwrap_or_default().to_string()).collect::<Vec<_>>();
    assert_eq!(field("tool"), ["read_file", "write_file", "read_file", "read_file", "delete_path", "search_text"]);
    assert_eq!(field("outcome"), ["ok", "ok", "not_found", "path_outside_root", "tier_not_allowed", "ok"]);
    for c in &calls {
        assert!(c["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{c}");
        assert!(c["result_bytes"].as_u64().is_some_and(|b| b > 0), "{c}");
        assert!(c["server"] == "fs" && c["time"].as_str().is_some_and(|t| !t.is_empty()), "{c}");
    }
    assert_eq!(calls[0]["args"]["path"], "README.md");
    assert_eq!(calls[1]["args"]["content"], format!("[{} bytes]", secret_content.len()));
    assert_eq!(calls[1]["args"]["path"], "out.txt");
    assert_eq!(calls[2]["args"]["path"], "[redacted]");
    assert_eq!(calls[5]["args"]["globs"], json!(["[redacted]"]));
    // The read result (the README) is recorded by size only.
    assert!(!raw.contains("A small example project"));
}

#[test]
fn audit_log_records_unknown_tool_calls() {
    let p = project();
    let log = p.base.join("audit.jsonl");
    let mut s = fs(&p.root).arg("--audit-log").arg(&log).start();
    assert!(s.try_call("no_such_tool", json!({"path": "x"})).is_err(), "an unknown tool is a protocol error");
    s.ok("list_roots", json!({}));
    drop(s);
    let calls = audit_calls(&log);
    let tools: Vec<&str> = calls.iter().map(|c| c["tool"].as_str().unwrap()).collect();
    assert_eq!(tools, ["no_such_tool", "list_roots"]);
    assert!(calls[0]["outcome"].as_str().unwrap().starts_with("protocol_error"));
}

#[test]
fn bad_argument_types_are_invalid_argument() {
    let p = project();
    let mut s = fs(&p.root).write().start();
    s.err("read_file", json!({"path": 5}), "invalid_argument");
    s.err("read_file", json!({"path": "README.md", "offset": "ten"}), "invalid_argument");
    s.err("read_file", json!({}), "invalid_argument");
    s.err("read_many_files", json!({"paths": "README.md"}), "invalid_argument");
    s.err("read_many_files", json!({"paths": vec!["README.md"; 101]}), "invalid_argument");
    s.err("write_file", json!({"path": "x.txt"}), "invalid_argument");
    s.err("list_directory", json!({"cursor": "not-a-cursor"}), "invalid_argument");
    drop(s);
    assert!(!p.root.join("x.txt").exists());
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
