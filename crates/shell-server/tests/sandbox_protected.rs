//! Bastion's own state beneath a granted root is invisible to commands: the trampoline covers it
//! in the command's mount namespace before Landlock applies (Landlock cannot subtract a
//! subdirectory from an allowed one), and refuses to run when it cannot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bastion_shell::sandbox::{SANDBOX_ARG, Spec};

const TOKEN: &str = "SENTINEL-TOKEN-RECORD";
const CONFIG: &str = "SENTINEL-CONFIG";

fn spec(root: &Path, script: &str, hidden: Vec<PathBuf>) -> Spec {
    Spec {
        program: PathBuf::from("/bin/sh"),
        argv0: "sh".into(),
        args: vec!["-c".into(), script.into()],
        cwd: root.to_path_buf(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        write_paths: vec![root.to_path_buf()],
        hidden_paths: hidden,
        landlock: true,
        seccomp: true,
        namespaces: true,
        parent_pid: std::process::id() as i32,
        ..Default::default()
    }
}

fn run(spec: &Spec) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bastion-shell"))
        .arg(SANDBOX_ARG)
        .arg(serde_json::to_string(spec).unwrap())
        .output()
        .unwrap()
}

/// A root holding a state directory (`.bst`, with a token file) and a config file.
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(tmp.path()).unwrap().join("project");
    std::fs::create_dir_all(root.join(".bst")).unwrap();
    std::fs::write(root.join(".bst/tokens.json"), TOKEN).unwrap();
    std::fs::write(root.join("bastion.toml"), CONFIG).unwrap();
    std::fs::write(root.join("notes.txt"), "ordinary notes").unwrap();
    (tmp, root)
}

#[test]
fn protected_state_beneath_a_writable_root_is_covered() {
    let (_tmp, root) = fixture();
    let hidden = vec![root.join(".bst"), root.join("bastion.toml")];
    let script = "cat .bst/tokens.json; cat bastion.toml; grep -r SENTINEL . ; ls -a .bst; \
                  echo forged > .bst/tokens.json; echo forged > .bst/new; echo forged > bastion.toml; \
                  umount .bst; rm -rf .bst; mv bastion.toml moved.toml; cat notes.txt";
    let out = run(&spec(&root, script, hidden));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("ordinary notes"), "the command did not run: {stdout} {stderr}");
    assert!(!stdout.contains("SENTINEL"), "{stdout}");
    // The host's files are untouched.
    assert_eq!(std::fs::read_to_string(root.join(".bst/tokens.json")).unwrap(), TOKEN);
    assert_eq!(std::fs::read_to_string(root.join("bastion.toml")).unwrap(), CONFIG);
    assert!(!root.join(".bst/new").exists());
    assert!(!root.join("moved.toml").exists());
}

#[test]
fn protected_state_beneath_a_read_only_root_is_covered() {
    let (_tmp, root) = fixture();
    let mut s = spec(
        &root,
        "cat .bst/tokens.json bastion.toml; grep -r SENTINEL .; cat notes.txt",
        vec![root.join(".bst"), root.join("bastion.toml")],
    );
    s.read_paths = vec![root.clone()];
    s.write_paths = vec![];
    let out = run(&s);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ordinary notes"), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.contains("SENTINEL"), "{stdout}");
}

#[test]
fn without_a_mount_namespace_the_command_never_runs() {
    let (_tmp, root) = fixture();
    let mut s = spec(&root, "cat .bst/tokens.json; echo RAN", vec![root.join(".bst")]);
    s.namespaces = false;
    let out = run(&s);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("RAN") && !stdout.contains("SENTINEL"), "{stdout}");
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Bastion's own state"));
}
