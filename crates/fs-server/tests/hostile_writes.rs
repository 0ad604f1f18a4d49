//! Moves, deletes and writes aimed at the root itself or out of it, through the real
//! `bastion fs` binary. The tree and the checks after each case are in `common/hostile.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;

use bastion_testkit::write;
use serde_json::json;

mod common;
use common::hostile::*;

#[test]
fn moves() {
    run_table(move_cases());
}

#[test]
fn deletes_and_writes_aimed_at_the_root() {
    run_table(delete_cases());
}

/// `MOVE_CASES` of the Python table.
fn move_cases() -> Vec<Case> {
    vec![
        case(
            "move-into-git",
            "move_path",
            json!({"source": "README.md", "destination": ".git/README.md"}),
            "denied_by_glob",
            Regular("README.md", "# proj\nplain readme\n"),
        ),
        case(
            "move-over-git-config",
            "move_path",
            json!({"source": "README.md", "destination": ".git/config", "overwrite": true}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "move-into-sub-git",
            "move_path",
            json!({"source": "README.md", "destination": "sub/.git/hooks/pre-commit"}),
            "denied_by_glob",
            NothingCreated(&["sub/.git/hooks"]),
        ),
        case(
            "move-git-away",
            "move_path",
            json!({"source": ".git", "destination": "notgit"}),
            "denied_by_glob",
            NothingCreated(&["notgit"]),
        ),
        case(
            "move-git-hook-out",
            "move_path",
            json!({"source": ".git/config", "destination": "config"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "move-dir-holding-git",
            "move_path",
            json!({"source": "sub", "destination": "sub_moved"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "move-env-away",
            "move_path",
            json!({"source": ".env", "destination": "env.txt"}),
            "denied_by_glob",
            NothingCreated(&["env.txt"]),
        ),
        case(
            "move-over-env",
            "move_path",
            json!({"source": "README.md", "destination": ".env", "overwrite": true}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "move-out-dotdot",
            "move_path",
            json!({"source": "README.md", "destination": "../moved.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "move-out-abs",
            "move_path",
            json!({"source": "README.md", "destination": "{outside}/moved.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "move-out-sibling",
            "move_path",
            json!({"source": "README.md", "destination": "{base}/proj-evil/moved.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "move-in-from-outside",
            "move_path",
            json!({"source": "{outside}/sentinel.txt", "destination": "stolen.txt"}),
            "path_outside_root",
            NothingCreated(&["stolen.txt"]),
        ),
        case(
            "move-in-dotdot",
            "move_path",
            json!({"source": "../outfile.txt", "destination": "stolen.txt"}),
            "path_outside_root",
            NothingCreated(&["stolen.txt"]),
        ),
        case("move-root", "move_path", json!({"source": ".", "destination": "elsewhere"}), "invalid_path", Nothing),
        case(
            "move-root-abs",
            "move_path",
            json!({"source": "{root}", "destination": "elsewhere"}),
            "invalid_path",
            Nothing,
        ),
        case(
            "move-onto-root",
            "move_path",
            json!({"source": "README.md", "destination": ".", "overwrite": true}),
            "invalid_path",
            Nothing,
        ),
        case("move-dotdot-name", "move_path", json!({"source": "sub/..", "destination": "x"}), "invalid_path", Nothing),
    ]
}

/// `DELETE_CASES` of the Python table.
fn delete_cases() -> Vec<Case> {
    vec![
        case("delete-dotdot", "delete_path", json!({"path": "..", "recursive": true}), "path_outside_root", Nothing),
        case(
            "delete-dotdot-slash",
            "delete_path",
            json!({"path": "../", "recursive": true}),
            "path_outside_root",
            Nothing,
        ),
        case("delete-dot", "delete_path", json!({"path": ".", "recursive": true}), "invalid_path", Nothing),
        case("delete-empty", "delete_path", json!({"path": "", "recursive": true}), "invalid_path", Nothing),
        case("delete-root-abs", "delete_path", json!({"path": "{root}", "recursive": true}), "invalid_path", Nothing),
        case(
            "delete-root-abs-slash",
            "delete_path",
            json!({"path": "{root}/", "recursive": true}),
            "invalid_path",
            Nothing,
        ),
        case(
            "delete-root-abs-dot",
            "delete_path",
            json!({"path": "{root}/.", "recursive": true}),
            "invalid_path",
            Nothing,
        ),
        case("delete-sub-dotdot", "delete_path", json!({"path": "sub/..", "recursive": true}), "invalid_path", Nothing),
        case("delete-base", "delete_path", json!({"path": "{base}", "recursive": true}), "path_outside_root", Nothing),
        case("delete-slash", "delete_path", json!({"path": "/", "recursive": true}), "path_outside_root", Nothing),
        case(
            "delete-outside-dir",
            "delete_path",
            json!({"path": "../outside", "recursive": true}),
            "path_outside_root",
            Nothing,
        ),
        case("delete-env", "delete_path", json!({"path": ".env"}), "denied_by_glob", Nothing),
        case("write-root", "write_file", json!({"path": ".", "content": "x"}), "invalid_path", Nothing),
        case("write-empty", "write_file", json!({"path": "", "content": "x"}), "invalid_path", Nothing),
        case("write-sub-dotdot", "write_file", json!({"path": "sub/..", "content": "x"}), "invalid_path", Nothing),
    ]
}

#[test]
fn replacing_content_drops_setuid_and_setgid() {
    for tool in ["write_file", "edit_file"] {
        let mut tree = build_tree();
        let prog = tree.root.join("tool.sh");
        write(&prog, "#!/bin/sh\necho safe\n");
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o6755)).unwrap();
        let args = if tool == "write_file" {
            json!({"path": "tool.sh", "content": "#!/bin/sh\necho replaced\n"})
        } else {
            json!({"path": "tool.sh", "old_text": "echo safe", "new_text": "echo replaced"})
        };
        let mut s = fs(&tree.root).write().start();
        let (code, _, _) = tree.run(&mut s, tool, args);
        assert!(code.is_none(), "{tool}: {code:?}");
        drop(s);
        assert_eq!(std::fs::read_to_string(&prog).unwrap(), "#!/bin/sh\necho replaced\n");
        let mode = std::fs::metadata(&prog).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode & 0o6000, 0, "{tool}: {mode:o}");
        assert_eq!(mode & 0o777, 0o755, "{tool}");
        tree.assert_outside_untouched();
    }
}
