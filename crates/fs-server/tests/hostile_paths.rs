//! Hostile paths through the real `bastion fs` binary: traversal strings in every spelling, odd
//! names that must stay literal, malformed (NUL, over-long) paths, and prefix confusion between a
//! root and its siblings, whether the root comes from the flags or the client.
//! The tree and the checks after each case are in `common/hostile.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

mod common;
use common::hostile::*;

const ALL_TOOLS: [&str; 13] = [
    "read_file",
    "file_info",
    "list_directory",
    "find_files",
    "search_text",
    "write_file",
    "edit_file",
    "create_directory",
    "delete_path",
    "move_path.src",
    "move_path.dst",
    "apply_patch.create",
    "apply_patch.modify",
];

/// Paths that lead outside the root, by any spelling: always path_outside_root, for every tool.
const OUTSIDE_PATHS: [(&str, &str); 19] = [
    ("dotdot", "../outfile.txt"),
    ("dotdot-deep", "../../../../../../../../etc/passwd"),
    ("sub-dotdot-dotdot", "sub/../../outfile.txt"),
    ("dot-dotdot", "./../outfile.txt"),
    ("sub-dot-dotdot", "sub/./../../outside/sentinel.txt"),
    ("abs-outside", "{outside}/sentinel.txt"),
    ("abs-etc-passwd", "/etc/passwd"),
    ("abs-slash", "/"),
    ("abs-double-slash", "//etc/passwd"),
    ("abs-root-dotdot", "{root}/../outfile.txt"),
    ("abs-root-sub-dotdot", "{root}/sub/../../outside/sentinel.txt"),
    ("abs-root-out-and-back", "{root}/../proj/README.md"),
    ("sibling-dotdot", "../proj-evil/data.txt"),
    ("sibling-prefix-abs", "{base}/proj-evil/data.txt"),
    ("sibling-prefix-concat", "{root}-evil/data.txt"),
    ("abs-base", "{base}"),
    ("abs-proc-self-root", "/proc/self/root{outside}/sentinel.txt"),
    ("abs-proc-self-cwd", "/proc/self/cwd/cwdfile.txt"),
    ("abs-proc-fd", "/proc/self/fd/0"),
];

/// Odd spellings that are NOT traversal on Linux: treated as literal names inside the root.
const LITERAL_PATHS: [(&str, &str); 15] = [
    ("urlenc-slash", "..%2f..%2floot.txt"),
    ("urlenc-dots", "%2e%2e/%2e%2e/loot.txt"),
    ("urlenc-all", "%2e%2e%2f%2e%2e%2floot.txt"),
    ("double-urlenc", "%252e%252e%252floot.txt"),
    ("dots4-slashes", "....//....//loot.txt"),
    ("dots3", ".../loot.txt"),
    ("backslashes", "..\\..\\loot.txt"),
    ("mixed-slashes", "..\\/..\\/loot.txt"),
    ("overlong-utf8-urlenc", "%c0%ae%c0%ae/%c0%ae%c0%ae/loot.txt"),
    ("overlong-utf8-chars", "\u{c0}\u{ae}\u{c0}\u{ae}/loot.txt"),
    ("fullwidth-dots", "\u{ff0e}\u{ff0e}/\u{ff0e}\u{ff0e}/loot.txt"),
    ("one-dot-leader", "\u{2025}/loot.txt"),
    ("tomcat-semicolon", "..;/loot.txt"),
    ("file-uri", "file:///etc/loot.txt"),
    ("trailing-space-dots", ".. /loot.txt"),
];

/// What each tool says about a literal name that does not exist yet.
fn literal_expect(tool: &str) -> &'static str {
    match tool {
        "write_file" | "create_directory" | "move_path.dst" | "apply_patch.create" => "ok",
        _ => "not_found",
    }
}

fn outside_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, path) in OUTSIDE_PATHS {
        for tool in ALL_TOOLS {
            cases.push(case(
                &format!("{name}-{tool}"),
                tool_of(tool),
                args_for(tool, path),
                "path_outside_root",
                Nothing,
            ));
        }
    }
    cases
}

fn literal_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, path) in LITERAL_PATHS {
        for tool in ALL_TOOLS {
            let mut expect = literal_expect(tool);
            if tool.starts_with("apply_patch") && path.contains('\\') {
                expect = "patch_failed"; // diff headers cannot carry an unquoted backslash
            }
            let check = if expect == "ok" { CreatedLiterallyInside(path) } else { Nothing };
            cases.push(case(&format!("{name}-{tool}"), tool_of(tool), args_for(tool, path), expect, check));
        }
    }
    cases
}

fn malformed_cases() -> Vec<Case> {
    let long_name = "n".repeat(300);
    let paths = [
        ("nul", "sub/a\x00b.txt".to_string()),
        ("nul-dotdot", "..\x00/outfile.txt".to_string()),
        ("long-path-5000", "a/".repeat(2500)),
        ("long-single-5000", "x".repeat(5000)),
        ("long-name-300", format!("sub/{long_name}")),
        ("long-name-300-abs", format!("{{root}}/{long_name}")),
    ];
    let tools = [
        "read_file",
        "file_info",
        "list_directory",
        "search_text",
        "write_file",
        "edit_file",
        "create_directory",
        "delete_path",
        "move_path.src",
        "move_path.dst",
    ];
    let mut cases = Vec::new();
    for (label, path) in &paths {
        for tool in tools {
            cases.push(case(&format!("{label}-{tool}"), tool_of(tool), args_for(tool, path), "invalid_path", Nothing));
        }
    }
    cases
}

#[test]
fn paths_leading_outside_are_refused_by_every_tool() {
    run_table(outside_cases());
}

#[test]
fn odd_spellings_are_literal_names_inside_the_root() {
    run_table(literal_cases());
}

#[test]
fn malformed_paths() {
    run_table(malformed_cases());
}

/// A client root at the sibling `proj-evil` (a string prefix match of `proj`) adds nothing.
#[test]
fn client_root_prefix_confusion() {
    let mut tree = build_tree();
    let evil = tree.base.join("proj-evil");
    let mut s = fs(&tree.root).write().client_roots([&evil]).start();
    let (code, _, _) = tree.run(&mut s, "read_file", json!({"path": evil.join("data.txt")}));
    assert_eq!(code.as_deref(), Some("path_outside_root"));
    let (code, _, _) = tree.run(&mut s, "write_file", json!({"path": evil.join("new.txt"), "content": "x"}));
    assert_eq!(code.as_deref(), Some("path_outside_root"));
    drop(s);
    tree.assert_outside_untouched();
}

/// Root `proj` must not grant `proj-evil`, whatever spelling reaches it.
#[test]
fn config_root_prefix_confusion() {
    let mut tree = build_tree();
    let mut s = fs(&tree.root).write().destructive().start();
    for path in [
        "{base}/proj-evil/data.txt",
        "{root}-evil/data.txt",
        "{root}/../proj-evil/data.txt",
        "evil_link/data.txt",
        "../proj-evil/data.txt",
    ] {
        let parent = path.rsplit_once('/').map_or(path, |(p, _)| p);
        for (tool, args) in [
            ("read_file", json!({"path": path})),
            ("write_file", json!({"path": path, "content": "pwned"})),
            ("delete_path", json!({"path": path})),
            ("list_directory", json!({"path": parent})),
        ] {
            let args = tree.sub(args);
            let (code, _, text) = tree.run(&mut s, tool, args);
            assert_eq!(code.as_deref(), Some("path_outside_root"), "{tool} {path}: {text}");
        }
    }
    drop(s);
    tree.assert_outside_untouched();
}

#[test]
fn hostile_client_roots_never_widen() {
    let uris = [
        ("link-abs", "file://{root}/abs_dir_link"),
        ("link-rel", "file://{root}/rel_dir_link"),
        ("pct-dotdot", "file://{root}/..%2Foutside"),
        ("pct-dotdot-deep", "file://{root}/sub/..%2F..%2Foutside"),
        ("pct-slash-dotdot", "file://{root}%2F..%2Foutside"),
        ("outside", "file://{outside}"),
        ("sibling-prefix", "file://{base}/proj-evil"),
    ];
    for (id, uri) in uris {
        let mut tree = build_tree();
        let uri = tree.sub(json!(uri)).as_str().unwrap().to_string();
        let mut s = fs(&tree.root).write().destructive().client_root_uris([uri.clone()]).start();
        for (tool, args) in [
            ("read_file", json!({"path": "{outside}/sentinel.txt"})),
            ("read_file", json!({"path": "sentinel.txt"})),
            ("read_file", json!({"path": "{base}/proj-evil/data.txt"})),
            ("write_file", json!({"path": "{outside}/pwned.txt", "content": "x"})),
            ("write_file", json!({"path": "pwned.txt", "content": "x"})),
            ("delete_path", json!({"path": "{outside}/sentinel.txt"})),
            ("list_directory", json!({"path": "{outside}"})),
        ] {
            let args = tree.sub(args);
            let (code, _, text) = tree.run(&mut s, tool, args.clone());
            assert_eq!(
                code.as_deref(),
                Some("path_outside_root"),
                "[{id}] client root {uri}: {tool} {args} -> {}",
                cut(&text)
            );
        }
        let (code, r, _) = tree.run(&mut s, "list_roots", json!({}));
        assert!(code.is_none());
        let root = tree.root.display().to_string();
        assert!(
            r["roots"].as_array().unwrap().iter().all(|x| {
                let p = x["path"].as_str().unwrap();
                p == root || p.starts_with(&format!("{root}/"))
            }),
            "[{id}] {r}"
        );
        drop(s);
        assert!(!tree.root.join("pwned.txt").exists(), "[{id}]");
        tree.assert_outside_untouched();
    }
}
