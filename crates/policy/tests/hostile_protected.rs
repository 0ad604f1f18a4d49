//! Bastion's own state out of reach (issue 13, item 1), as data: every operation × every way of
//! naming a protected path → `protected_path`. The fixture is a project root that holds a state
//! directory (`.bst`, as `bastion serve --state-dir PROJECT/.bst --allow-state-in-root` makes),
//! a config file and a copy standing for the binary, with links, `..`-paths and case variants
//! naming each; a second state directory lies outside the root, reached by a link and a hard
//! link. Then the path-class advisories of 2026 replayed on the same fixture, each named by its
//! id: CVE-2026-25871 (`..`, `.`, `/`, globs as command operands), Desktop Commander #420 (a
//! write through a symlinked parent to a new file) and Desktop Commander #374 (nothing a tool
//! sends changes policy, config or the upstream list).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use bastion_policy::commands::{CommandRules, check_path_argument};
use bastion_policy::{Access, CreateMode, DenyRules, ErrorCode, PolicyConfig, Protected, Roots};
use common::{MODES, report, show};
use tempfile::TempDir;

const TOKENS: &[u8] = b"[{\"name\":\"owner\",\"scopes\":[\"*:*\"]}]";
const CONFIG: &[u8] = b"[[upstream]]\nname = \"fs\"\nbuiltin = \"fs\"\n";

struct Fx {
    _tmp: TempDir,
    root: PathBuf,
    /// The state directory outside the root.
    state_out: PathBuf,
    protected: Vec<PathBuf>,
}

fn fixture() -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(tmp.path()).unwrap();
    let root = base.join("project");
    let state_out = base.join("state");
    for d in [root.join(".bst"), root.join("bin"), root.join("src"), root.join("deep/inner/state"), state_out.clone()] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(root.join(".bst/tokens.json"), TOKENS).unwrap();
    fs::write(root.join(".bst/audit.jsonl"), b"{}\n").unwrap();
    fs::write(root.join("bastion.toml"), CONFIG).unwrap();
    fs::write(root.join("bin/bastion"), b"\x7fELF").unwrap();
    fs::write(root.join("bin/helper.sh"), b"#!/bin/sh\n").unwrap();
    fs::write(root.join("src/main.rs"), b"fn main() {}\n").unwrap();
    fs::write(root.join("deep/inner/state/owner-secret"), b"x").unwrap();
    fs::write(state_out.join("tokens.json"), TOKENS).unwrap();
    symlink(".bst", root.join("link_state")).unwrap();
    symlink(".bst/tokens.json", root.join("link_tokens")).unwrap();
    symlink("bastion.toml", root.join("link_config")).unwrap();
    symlink("bin/bastion", root.join("link_bin")).unwrap();
    symlink("src/../.bst", root.join("src_link_state")).unwrap();
    symlink("../state", root.join("link_out_state")).unwrap();
    fs::hard_link(state_out.join("tokens.json"), root.join("hardlinked.json")).unwrap();
    let protected = vec![
        root.join(".bst"),
        root.join("bastion.toml"),
        root.join("bin/bastion"),
        root.join("deep/inner/state"),
        state_out.clone(),
    ];
    Fx { _tmp: tmp, root, state_out, protected }
}

fn deny(fx: &Fx) -> DenyRules {
    DenyRules::defaults().with_protected(Protected::resolve(&fx.protected))
}

/// Every way of naming a protected path that exists (or would be created) inside the root.
fn names(fx: &Fx) -> Vec<String> {
    let mut v: Vec<String> = [
        // the state directory and files in it
        ".bst",
        ".bst/",
        ".bst/tokens.json",
        ".bst/audit.jsonl",
        ".bst/not-yet.sqlite3",
        ".bst/new/dir",
        // the config and the binary
        "bastion.toml",
        "bin/bastion",
        // a state directory deeper down
        "deep/inner/state",
        "deep/inner/state/owner-secret",
        // through links inside the root
        "link_state/tokens.json",
        "link_state/new.json",
        "src_link_state/tokens.json",
        // `..`-paths and `.`-paths
        "src/../.bst/tokens.json",
        "./.bst/./tokens.json",
        "bin/../bastion.toml",
        "deep/inner/../inner/state",
        // case variants (a case-folding filesystem opens them as the real names)
        ".BST",
        ".Bst/Tokens.json",
        "BASTION.TOML",
        "Bin/Bastion",
        "DEEP/inner/STATE/owner-secret",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // absolute forms
    v.push(fx.root.join(".bst/tokens.json").display().to_string());
    v.push(fx.root.join("bastion.toml").display().to_string());
    v
}

/// Links inside the root whose *target* is protected: reading through them is refused; acting
/// on them (delete, rename, replace) acts on the link, never the target.
const LINKS: &[&str] = &["link_state", "link_tokens", "link_config", "link_bin", "src_link_state"];

fn code<T>(r: Result<T, ErrorCode>) -> Result<(), ErrorCode> {
    r.map(|_| ())
}

fn stat(roots: &Roots, deny: &DenyRules, p: &str) -> Result<(), ErrorCode> {
    let t = roots.target(p, None).map_err(|e| e.code)?;
    roots.stat(&t, deny).map(|_| ()).map_err(|e| e.code)
}

fn list(roots: &Roots, deny: &DenyRules, p: &str) -> Result<(), ErrorCode> {
    let t = roots.target(p, None).map_err(|e| e.code)?;
    roots.open_dir(&t, deny).map(|_| ()).map_err(|e| e.code)
}

fn walked(roots: &Roots, deny: &DenyRules, p: &str) -> Result<(), ErrorCode> {
    let t = roots.target(p, None).map_err(|e| e.code)?;
    roots.open_walked_file(&t.root, &t.rel, deny).map(|_| ()).map_err(|e| e.code)
}

/// Nothing protected changed.
fn assert_state_intact(fx: &Fx, ctx: &str) {
    assert_eq!(fs::read(fx.root.join(".bst/tokens.json")).unwrap(), TOKENS, "{ctx}: tokens changed");
    assert_eq!(fs::read(fx.root.join("bastion.toml")).unwrap(), CONFIG, "{ctx}: config changed");
    assert_eq!(fs::read(fx.state_out.join("tokens.json")).unwrap(), TOKENS, "{ctx}: outside tokens changed");
    assert!(fx.root.join("bin/bastion").is_file(), "{ctx}: binary gone");
    assert!(fx.root.join("deep/inner/state/owner-secret").is_file(), "{ctx}: deep state gone");
    let mut names: Vec<_> = fs::read_dir(fx.root.join(".bst")).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["audit.jsonl", "tokens.json"], "{ctx}: entries appeared in the state directory");
}

#[test]
fn every_operation_on_every_name_of_protected_state_is_refused() {
    for mode in MODES {
        let fx = fixture();
        let roots = Roots::open(std::slice::from_ref(&fx.root), mode).unwrap();
        let deny = deny(&fx);
        let mut failures = Vec::new();
        let mut expect = |op: &str, p: &str, got: Result<(), ErrorCode>| {
            if got != Err(ErrorCode::ProtectedPath) {
                failures.push(format!("{mode:?} {op} {}: got {got:?}, want protected_path", show(p)));
            }
        };
        for p in names(&fx) {
            let p = p.as_str();
            expect("read", p, code(common::read(&roots, &deny, p)));
            expect("list", p, list(&roots, &deny, p));
            expect("stat", p, stat(&roots, &deny, p));
            expect("walked", p, walked(&roots, &deny, p));
            for create in [CreateMode::CreateNew, CreateMode::ReplaceExisting, CreateMode::CreateOrReplace] {
                expect("write", p, code(common::write(&roots, &deny, p, b"forged", create)));
            }
            expect("mkdir", p, code(common::mkdirs(&roots, &deny, p)));
            expect("delete", p, code(common::remove(&roots, &deny, p, false)));
            expect("delete -r", p, code(common::remove(&roots, &deny, p, true)));
            expect("move from", p, code(common::rename(&roots, &deny, p, "src/moved", false)));
            expect("move onto", p, code(common::rename(&roots, &deny, "src/main.rs", p, true)));
        }
        for p in LINKS {
            expect("read via link", p, code(common::read(&roots, &deny, p)));
            expect("stat via link", p, stat(&roots, &deny, p));
        }
        for p in ["link_state", "src_link_state"] {
            expect("list via link", p, list(&roots, &deny, p));
        }
        // A hard link inside the root to a protected file elsewhere is the same file.
        expect("read hard link", "hardlinked.json", code(common::read(&roots, &deny, "hardlinked.json")));
        expect("walked hard link", "hardlinked.json", walked(&roots, &deny, "hardlinked.json"));
        // A directory that holds protected state is never moved or deleted wholesale.
        for p in ["bin", "deep", "deep/inner", "src/../bin"] {
            expect("delete -r parent", p, code(common::remove(&roots, &deny, p, true)));
            expect("move parent", p, code(common::rename(&roots, &deny, p, "src/parent-moved", false)));
        }
        report(&format!("{mode:?}"), failures);
        assert_state_intact(&fx, &format!("{mode:?}"));
        assert!(!fx.root.join("src/moved").exists() && !fx.root.join("src/parent-moved").exists());
        assert_eq!(fs::read(fx.root.join("src/main.rs")).unwrap(), b"fn main() {}\n");
    }
}

#[test]
fn links_to_protected_state_are_acted_on_as_links() {
    let fx = fixture();
    let roots = Roots::open(std::slice::from_ref(&fx.root), bastion_policy::ResolveMode::Auto).unwrap();
    let deny = deny(&fx);
    // Replacing a link is refused (writes never follow links), deleting it removes the link.
    for p in LINKS {
        let got = common::write(&roots, &deny, p, b"forged", CreateMode::CreateOrReplace).map(|_| ());
        assert_eq!(got, Err(ErrorCode::NotARegularFile), "write {p}");
    }
    for p in LINKS {
        common::remove(&roots, &deny, p, true).unwrap();
        assert!(fs::symlink_metadata(fx.root.join(p)).is_err(), "{p} still there");
    }
    assert_state_intact(&fx, "after deleting the links");
}

#[test]
fn a_link_out_of_the_root_to_protected_state_stays_out() {
    let fx = fixture();
    let roots = Roots::open(std::slice::from_ref(&fx.root), bastion_policy::ResolveMode::Auto).unwrap();
    let deny = deny(&fx);
    for p in ["link_out_state/tokens.json", "link_out_state", "../state/tokens.json"] {
        let got = code(common::read(&roots, &deny, p));
        assert!(matches!(got, Err(ErrorCode::PathOutsideRoot) | Err(ErrorCode::ProtectedPath)), "read {p}: {got:?}");
        let got = code(common::write(&roots, &deny, &format!("{p}/x"), b"forged", CreateMode::CreateNew));
        assert!(matches!(got, Err(ErrorCode::PathOutsideRoot) | Err(ErrorCode::ProtectedPath)), "write {p}: {got:?}");
    }
    assert_state_intact(&fx, "link out");
}

#[test]
fn walks_and_listings_skip_protected_state_silently() {
    let fx = fixture();
    let roots = Roots::open(std::slice::from_ref(&fx.root), bastion_policy::ResolveMode::Auto).unwrap();
    let root = roots.iter().next().unwrap().clone();
    let deny = deny(&fx);
    // What a walker (find_files, search_text, list_directory, git status) keeps: every entry
    // beneath the root, without following links, that the deny rules let through for reading.
    fn walk(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            out.push(path.strip_prefix(base).unwrap().to_path_buf());
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                walk(&path, base, out);
            }
        }
    }
    let mut all = Vec::new();
    walk(&fx.root, &fx.root, &mut all);
    let kept: Vec<_> = all.iter().filter(|rel| !deny.is_denied_in(&root, rel, Access::Read)).collect();
    for rel in &kept {
        let s = rel.to_string_lossy();
        assert!(
            !(s.starts_with(".bst") || s == "bastion.toml" || s == "bin/bastion" || s.starts_with("deep/inner/state")),
            "a walk would show {s}"
        );
    }
    for visible in ["src/main.rs", "bin/helper.sh", "bin", "deep/inner", "link_state"] {
        assert!(kept.iter().any(|r| r.as_path() == Path::new(visible)), "{visible} should stay visible");
    }
    // The root, and the parents of protected paths, can still be listed.
    for p in [".", "bin", "deep/inner"] {
        assert_eq!(list(&roots, &deny, p), Ok(()), "list {p}");
    }
}

#[test]
fn the_message_says_what_it_is_and_not_to_retry_without_leaking_paths() {
    let fx = fixture();
    let roots = Roots::open(std::slice::from_ref(&fx.root), bastion_policy::ResolveMode::Auto).unwrap();
    let deny = deny(&fx);
    let t = roots.target("link_tokens", None).unwrap();
    let err = roots.open_file(&t, &deny).unwrap_err();
    assert_eq!(err.code, ErrorCode::ProtectedPath);
    assert_eq!(err.code.as_str(), "protected_path");
    assert!(err.message.contains("Bastion's own state"), "{}", err.message);
    assert!(err.message.contains("do not retry"), "{}", err.message);
    let host = fx.root.parent().unwrap().display().to_string();
    assert!(!err.message.contains(&host), "the message names a host path: {}", err.message);
    let t = roots.target("deep", None).unwrap();
    let p = roots.parent(&t, &deny).unwrap();
    let err = roots.remove(&p, true, &deny).unwrap_err();
    assert_eq!(err.code, ErrorCode::ProtectedPath);
    assert!(!err.message.contains("owner-secret"), "{}", err.message);
}

#[test]
fn the_running_binary_audit_journal_and_config_are_protected_by_policy_new() {
    let fx = fixture();
    let audit = fx.root.join("journal/audit.jsonl");
    fs::create_dir(fx.root.join("journal")).unwrap();
    let config = PolicyConfig {
        roots: vec![fx.root.clone()],
        audit_log: Some(audit.clone()),
        protect: vec![fx.root.join("bastion.toml")],
        ..Default::default()
    };
    let policy = bastion_policy::Policy::new(config).unwrap();
    let exe = fs::canonicalize("/proc/self/exe").unwrap();
    assert!(policy.protected().covers(&exe), "the running binary is not protected");
    assert!(policy.protected().covers(&audit));
    assert!(policy.protected().covers(&fx.root.join("bastion.toml")));
    let roots = policy.roots();
    for p in ["journal/audit.jsonl", "bastion.toml"] {
        assert_eq!(code(common::read(&roots, &policy.deny, p)), Err(ErrorCode::ProtectedPath), "{p}");
    }
}

// ---------------------------------------------------------------------------------------------
// Shell operands
// ---------------------------------------------------------------------------------------------

/// Runs a command line through the `read-only` profile's rules and checks its path operands
/// from `cwd`, as `run_command` does. `ok` or the error code.
fn command(fx: &Fx, cwd: &str, program: &str, args: &[&str]) -> String {
    let rules = CommandRules::shipped("read-only").unwrap();
    let roots = Roots::open(std::slice::from_ref(&fx.root), bastion_policy::ResolveMode::Auto).unwrap();
    let deny = deny(fx);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let checked = match rules.check(program, &args) {
        Ok(c) => c,
        Err(e) => return e.code.as_str().to_string(),
    };
    let cwd = roots.target(cwd, None).unwrap();
    for p in &checked.paths {
        if let Err(e) = check_path_argument(&roots, &deny, &cwd, p, Access::Read) {
            return e.code.as_str().to_string();
        }
    }
    "ok".into()
}

#[test]
fn shell_operands_naming_protected_state_are_refused() {
    let fx = fixture();
    let abs = fx.root.join(".bst/tokens.json").display().to_string();
    let cases: &[(&str, &str, &[&str], &str)] = &[
        ("", "cat", &[".bst/tokens.json"], "protected_path"),
        ("", "cat", &["link_tokens"], "protected_path"),
        ("", "cat", &["link_state/tokens.json"], "protected_path"),
        ("", "cat", &[".BST/tokens.json"], "protected_path"),
        ("", "cat", &["bastion.toml"], "protected_path"),
        ("", "cat", &["link_config"], "protected_path"),
        ("", "head", &["-c", "4", "bin/bastion"], "protected_path"),
        ("src", "cat", &["../.bst/tokens.json"], "protected_path"),
        ("src", "cat", &["../bastion.toml"], "protected_path"),
        ("", "cat", &[&abs], "protected_path"),
        ("", "grep", &["-r", "owner", ".bst"], "protected_path"),
        ("", "ls", &["-la", ".bst"], "protected_path"),
        ("", "wc", &["-c", "src/main.rs", ".bst/audit.jsonl"], "protected_path"),
        ("", "cat", &["src/main.rs"], "ok"),
    ];
    let mut failures = Vec::new();
    for (cwd, program, args, want) in cases {
        let got = command(&fx, cwd, program, args);
        if got != *want {
            failures.push(format!("{program} {args:?} in '{cwd}': got {got}, want {want}"));
        }
    }
    report("shell operands", failures);
}

/// CVE-2026-25871: a bare `..`, `.`, `/` or a glob as a `run_command` operand. No shell expands
/// anything, `..` and `/` never leave the roots, and `.` is the root itself, whose protected
/// entries the sandbox covers (`crates/shell-server/tests/sandbox_protected.rs`).
#[test]
fn cve_2026_25871_bare_dots_slash_and_globs_as_run_command_operands() {
    let fx = fixture();
    let cases: &[(&str, &str, &[&str], &str)] = &[
        ("", "ls", &[".."], "path_outside_root"),
        ("", "cat", &["../state/tokens.json"], "path_outside_root"),
        ("", "grep", &["-r", "owner", ".."], "path_outside_root"),
        ("", "ls", &["/"], "path_outside_root"),
        ("", "grep", &["-r", "owner", "/"], "path_outside_root"),
        ("", "find", &["/", "-name", "tokens.json"], "path_outside_root"),
        ("", "ls", &["//"], "path_outside_root"),
        ("", "ls", &["/.."], "path_outside_root"),
        ("src", "ls", &["../.."], "path_outside_root"),
        // Globs are literal names: there is no shell to expand them.
        ("", "cat", &["*"], "ok"),
        ("", "cat", &[".bst/*"], "protected_path"),
        ("", "cat", &[".b*/tokens.json"], "ok"),
        ("", "ls", &[".*"], "ok"),
        ("", "ls", &["."], "ok"),
        ("src", "ls", &[".."], "ok"),
        ("", "ls", &["./."], "ok"),
    ];
    let mut failures = Vec::new();
    for (cwd, program, args, want) in cases {
        let got = command(&fx, cwd, program, args);
        if got != *want {
            failures.push(format!("{program} {args:?} in '{cwd}': got {got}, want {want}"));
        }
    }
    report("CVE-2026-25871", failures);
    assert_state_intact(&fx, "CVE-2026-25871");
}

/// Desktop Commander #420: a write through a symlinked parent directory to a file that does
/// not exist yet. The parent is resolved beneath the root (a link out is refused) and the real
/// path of parent + new name is checked (a link to Bastion's state is refused).
#[test]
fn desktop_commander_420_write_through_a_symlinked_parent_to_a_new_file() {
    for mode in MODES {
        let fx = fixture();
        let roots = Roots::open(std::slice::from_ref(&fx.root), mode).unwrap();
        let deny = deny(&fx);
        let cases: &[(&str, Result<(), ErrorCode>)] = &[
            ("link_out_state/new.json", Err(ErrorCode::PathOutsideRoot)),
            ("link_state/new.json", Err(ErrorCode::ProtectedPath)),
            ("src_link_state/new.json", Err(ErrorCode::ProtectedPath)),
            ("link_state/sub/new.json", Err(ErrorCode::ProtectedPath)),
        ];
        for (p, want) in cases {
            let got = code(common::write(&roots, &deny, p, b"forged", CreateMode::CreateNew));
            assert_eq!(&got, want, "{mode:?} write {p}");
            let got = code(common::mkdirs(&roots, &deny, p));
            assert_eq!(&got, want, "{mode:?} mkdir {p}");
        }
        assert!(!fx.state_out.join("new.json").exists());
        assert_state_intact(&fx, &format!("{mode:?} DC#420"));
    }
}

/// Desktop Commander #374 and the 2026 "STDIO command" class: no tool, argument or upstream can
/// change the policy, the configuration or the upstream list. The configuration files and the
/// state directory are protected paths; the protected set itself is not a configuration key, so
/// a config a tool could write cannot shrink it; and nothing else in a `PolicyConfig` is read
/// after start.
#[test]
fn desktop_commander_374_no_tool_changes_policy_config_or_upstreams() {
    let fx = fixture();
    let roots = Roots::open(std::slice::from_ref(&fx.root), bastion_policy::ResolveMode::Auto).unwrap();
    let deny = deny(&fx);
    for create in [CreateMode::CreateOrReplace, CreateMode::ReplaceExisting] {
        assert_eq!(
            code(common::write(&roots, &deny, "bastion.toml", b"[[upstream]]\ncommand = \"sh\"\n", create)),
            Err(ErrorCode::ProtectedPath)
        );
    }
    assert_eq!(code(common::rename(&roots, &deny, "src/main.rs", "bastion.toml", true)), Err(ErrorCode::ProtectedPath));
    assert_eq!(code(common::remove(&roots, &deny, "bastion.toml", false)), Err(ErrorCode::ProtectedPath));
    assert_eq!(
        code(common::rename(&roots, &deny, "bastion.toml", "src/old.toml", false)),
        Err(ErrorCode::ProtectedPath)
    );
    // The shell cannot name it either.
    assert_eq!(command(&fx, "", "cat", &["bastion.toml"]), "protected_path");
    // The protected set is not a key a configuration file can hold (it comes from the command
    // line and the process); a file that tries is refused as a whole.
    let err = PolicyConfig::from_toml("roots = [\"/srv\"]\nprotect = []\n", "bastion.toml").unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidConfig);
    assert!(err.message.contains("protect"), "{}", err.message);
    assert_state_intact(&fx, "DC#374");
}
