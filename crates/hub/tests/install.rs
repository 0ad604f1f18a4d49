//! The installed binary's own helpers, through the real `bastion` binary: `setup` on fixture
//! configurations of each client (with `HOME` pointed at a temporary directory), `completions`
//! loaded into a real bash, `man`, and `doctor` (with Landlock pretended away).

// Helpers outside #[test] functions panic on broken fixtures, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_bastion");

fn bastion(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_STATE_HOME")
        .env_remove("BASTION_STATE_DIR")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn backups(path: &Path) -> Vec<PathBuf> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut found: Vec<PathBuf> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{name}.bastion-backup-")))
        .collect();
    found.sort();
    found
}

/// (client, path under HOME, fixture with another server and an unknown field)
const FIXTURES: &[(&str, &str, &str)] = &[
    (
        "claude-desktop",
        ".config/Claude/claude_desktop_config.json",
        r#"{"globalShortcut": "Ctrl+Space", "mcpServers": {"memory": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"]}}}"#,
    ),
    (
        "claude-code",
        ".claude.json",
        r#"{"numStartups": 42, "projects": {"/p": {"mcpServers": {}}}, "mcpServers": {"memory": {"type": "stdio", "command": "npx", "args": []}}}"#,
    ),
    ("cursor", ".cursor/mcp.json", r#"{"mcpServers": {"memory": {"command": "npx", "args": []}}, "zzz": [1, 2.5]}"#),
    (
        "vscode",
        ".config/Code/User/mcp.json",
        r#"{"inputs": [{"id": "k", "type": "promptString"}], "servers": {"memory": {"type": "stdio", "command": "npx"}}}"#,
    ),
    (
        "codex",
        ".codex/config.toml",
        "# Codex settings\nmodel = \"o3\"  # keep me\n\n[mcp_servers.memory]\ncommand = \"npx\"\nargs = [\"-y\", \"m\"]\n",
    ),
];

#[test]
fn setup_merges_keeps_others_backs_up_and_is_idempotent() {
    for (client, rel, fixture) in FIXTURES {
        let home = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(project.path()).unwrap();
        let root = root.to_str().unwrap();
        let path = home.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, fixture).unwrap();

        // --dry-run: a diff, and nothing written.
        let out = bastion(home.path(), &["setup", client, "--root", root, "--dry-run"]);
        assert!(out.status.success(), "{client}: {}", text(&out));
        let said = text(&out);
        assert!(said.contains("+") && said.contains(root) && said.contains("dry run"), "{client}: {said}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), *fixture, "{client}: dry run wrote");
        assert!(backups(&path).is_empty(), "{client}: dry run made a backup");

        // The real run: merged, the other server and unknown fields kept, a backup written.
        let out = bastion(home.path(), &["setup", client, "--root", root]);
        assert!(out.status.success(), "{client}: {}", text(&out));
        let merged = std::fs::read_to_string(&path).unwrap();
        assert!(merged.contains("memory") && merged.contains("npx"), "{client}: other entry lost:\n{merged}");
        assert!(merged.contains(root) && merged.contains("bastion"), "{client}: no bastion entry:\n{merged}");
        let backup = backups(&path);
        assert_eq!(backup.len(), 1, "{client}: {backup:?}");
        assert_eq!(std::fs::read_to_string(&backup[0]).unwrap(), *fixture, "{client}: backup differs");
        let entry = if *client == "codex" {
            let doc: toml::Table = merged.parse().unwrap();
            assert_eq!(doc["model"].as_str(), Some("o3"));
            assert!(merged.contains("# Codex settings") && merged.contains("# keep me"), "{merged}");
            serde_json::to_value(&doc["mcp_servers"]["bastion"]).unwrap()
        } else {
            let doc: serde_json::Value = serde_json::from_str(&merged).unwrap();
            let original: serde_json::Value = serde_json::from_str(fixture).unwrap();
            for (key, value) in original.as_object().unwrap() {
                if key != "mcpServers" && key != "servers" {
                    assert_eq!(&doc[key], value, "{client}: field {key} changed");
                }
            }
            let section = if *client == "vscode" { "servers" } else { "mcpServers" };
            assert_eq!(doc[section]["memory"], original[section]["memory"], "{client}: other server changed");
            doc[section]["bastion"].clone()
        };
        let command = entry["command"].as_str().unwrap();
        assert_eq!(Path::new(command), std::fs::canonicalize(BIN).unwrap(), "{client}");
        let args: Vec<&str> = entry["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(args, ["serve", "--stdio", "--root", root], "{client}");

        // Idempotent: nothing to change, nothing written, no second backup.
        let out = bastion(home.path(), &["setup", client, "--root", root]);
        assert!(out.status.success() && text(&out).contains("already up to date"), "{client}: {}", text(&out));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), merged, "{client}: second run changed the file");
        assert_eq!(backups(&path).len(), 1, "{client}: second run made a backup");
    }
}

#[test]
fn setup_creates_missing_files_and_points_at_a_hub() {
    let home = tempfile::tempdir().unwrap();
    let out = bastion(home.path(), &["setup", "cursor", "--hub", "https://hub.example/mcp"]);
    assert!(out.status.success(), "{}", text(&out));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.path().join(".cursor/mcp.json")).unwrap()).unwrap();
    assert_eq!(doc["mcpServers"]["bastion"]["url"], "https://hub.example/mcp");
    assert_eq!(doc["mcpServers"]["bastion"]["headers"]["Authorization"], "Bearer ${env:BASTION_TOKEN}");
    assert!(backups(&home.path().join(".cursor/mcp.json")).is_empty(), "a new file needs no backup");

    // Claude Desktop's file lists local servers only: refused, with the way to do it instead.
    let out = bastion(home.path(), &["setup", "claude-desktop", "--hub", "https://hub.example/mcp"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("Connectors"), "{}", text(&out));
    assert!(!home.path().join(".config/Claude/claude_desktop_config.json").exists());

    // A file that is not plain JSON is left alone.
    let vscode = home.path().join(".config/Code/User/mcp.json");
    std::fs::create_dir_all(vscode.parent().unwrap()).unwrap();
    std::fs::write(&vscode, "{ // a comment\n \"servers\": {} }").unwrap();
    let out = bastion(home.path(), &["setup", "vscode", "--root", home.path().to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&vscode).unwrap(), "{ // a comment\n \"servers\": {} }");
}

#[test]
fn bash_loads_the_completion_and_man_pages_render() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source <('{BIN}' completions bash) && complete -p bastion"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("-F _bastion bastion"), "{}", text(&out));
    for shell in ["zsh", "fish"] {
        let out = bastion(home.path(), &["completions", shell]);
        assert!(out.status.success() && out.stdout.len() > 1000, "{shell}");
    }
    let dir = home.path().join("man");
    let out = bastion(home.path(), &["man", "--out-dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    for page in ["bastion.1", "bastion-serve.1", "bastion-setup.1", "bastion-doctor.1", "bastion-token-create.1"] {
        let roff = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(roff.starts_with(".ie") || roff.contains(".TH"), "{page}: {roff}");
    }
    assert!(!dir.join("bastion-bundle-serve.1").exists(), "hidden commands get no page");
}

fn doctor(home: &Path, extra_env: &[(&str, &str)]) -> (bool, serde_json::Value) {
    let state = home.join("state");
    let mut cmd = Command::new(BIN);
    cmd.args(["doctor", "--json", "--time-url", "http://127.0.0.1:9/", "--state-dir"])
        .arg(&state)
        .env("HOME", home)
        .env_remove("BASTION_DOCTOR_ASSUME_NO_LANDLOCK");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.success(), report)
}

#[test]
fn doctor_reports_every_check_and_fails_without_landlock() {
    let home = tempfile::tempdir().unwrap();
    let names = [
        "openat2",
        "landlock",
        "seccomp",
        "userns",
        "sandbox",
        "state_dir",
        "config",
        "public_url",
        "clock",
        "tokens",
        "disk",
    ];
    let (passed, report) = doctor(home.path(), &[]);
    let checks = report["checks"].as_array().unwrap();
    let got: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(got, names);
    assert_eq!(report["ok"], passed);
    for c in checks {
        let status = c["status"].as_str().unwrap();
        assert!(["ok", "warn", "fail", "skip"].contains(&status), "{c}");
        // Every problem comes with its fix.
        if status == "warn" || status == "fail" {
            assert!(c["fix"].as_str().is_some_and(|f| !f.is_empty()), "{c}");
        }
    }
    // No network needed: the clock check skips with its reason.
    let clock = checks.iter().find(|c| c["name"] == "clock").unwrap();
    assert_eq!(clock["status"], "skip", "{clock}");

    let (passed, report) = doctor(home.path(), &[("BASTION_DOCTOR_ASSUME_NO_LANDLOCK", "1")]);
    assert!(!passed, "{report}");
    assert_eq!(report["ok"], false);
    let landlock = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "landlock").unwrap();
    assert_eq!(landlock["status"], "fail");
    assert!(landlock["fix"].as_str().unwrap().contains("CONFIG_SECURITY_LANDLOCK"), "{landlock}");
}
