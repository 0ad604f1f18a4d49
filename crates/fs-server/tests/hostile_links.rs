//! Symlinks and hardlinks leading out of the root, through the real `bastion fs` binary, for
//! every tool. The tree and the checks after each case are in `common/hostile.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

mod common;
use common::hostile::*;

#[test]
fn symlinks() {
    run_table(symlink_cases());
}

#[test]
fn hardlinks() {
    run_table(hardlink_cases());
}

// The tables below are the Python suite's, case for case.

/// `SYMLINK_CASES` of the Python table.
fn symlink_cases() -> Vec<Case> {
    vec![
        case("read-abs-file-link", "read_file", json!({"path": "abs_file_link"}), "path_outside_root", Nothing),
        case("read-rel-file-link", "read_file", json!({"path": "rel_file_link"}), "path_outside_root", Nothing),
        case(
            "read-abs-dir-link",
            "read_file",
            json!({"path": "abs_dir_link/sentinel.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "read-rel-dir-link",
            "read_file",
            json!({"path": "rel_dir_link/sentinel.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case("read-sibling-link", "read_file", json!({"path": "evil_link/data.txt"}), "path_outside_root", Nothing),
        case(
            "read-abs-via-link-prefix",
            "read_file",
            json!({"path": "{root}/abs_dir_link/sentinel.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case("info-abs-file-link", "file_info", json!({"path": "abs_file_link"}), "path_outside_root", Nothing),
        case("info-rel-dir-link", "file_info", json!({"path": "rel_dir_link"}), "path_outside_root", Nothing),
        case("list-abs-dir-link", "list_directory", json!({"path": "abs_dir_link"}), "path_outside_root", Nothing),
        case("list-rel-dir-link", "list_directory", json!({"path": "rel_dir_link"}), "path_outside_root", Nothing),
        case(
            "find-rel-dir-link",
            "find_files",
            json!({"pattern": "*", "path": "rel_dir_link"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "search-abs-dir-link",
            "search_text",
            json!({"pattern": "SENTINEL", "path": "abs_dir_link"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "search-rel-file-link",
            "search_text",
            json!({"pattern": "SENTINEL", "path": "rel_file_link"}),
            "path_outside_root",
            Nothing,
        ),
        case("read-loop", "read_file", json!({"path": "loop_a"}), "path_outside_root", Nothing),
        case(
            "read-proc-root-passwd",
            "read_file",
            json!({"path": "proc_root/etc/passwd"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "read-proc-root-sentinel",
            "read_file",
            json!({"path": "proc_root{outside}/sentinel.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case("read-proc-cwd", "read_file", json!({"path": "proc_cwd/cwdfile.txt"}), "path_outside_root", Nothing),
        case("list-proc-root", "list_directory", json!({"path": "proc_root"}), "path_outside_root", Nothing),
        case(
            "write-proc-root",
            "write_file",
            json!({"path": "proc_root{outside}/pwned.txt", "content": "x"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "write-abs-file-link",
            "write_file",
            json!({"path": "abs_file_link", "content": "pwned"}),
            "not_a_regular_file",
            IsLink("abs_file_link"),
        ),
        case(
            "write-rel-file-link",
            "write_file",
            json!({"path": "rel_file_link", "content": "pwned"}),
            "not_a_regular_file",
            IsLink("rel_file_link"),
        ),
        case(
            "write-dangling-abs",
            "write_file",
            json!({"path": "dangling_abs", "content": "pwned"}),
            "not_a_regular_file",
            IsLink("dangling_abs"),
        ),
        case(
            "write-dangling-rel",
            "write_file",
            json!({"path": "dangling_rel", "content": "pwned"}),
            "not_a_regular_file",
            IsLink("dangling_rel"),
        ),
        case(
            "write-dangling-abs-no-overwrite",
            "write_file",
            json!({"path": "dangling_abs", "content": "pwned", "overwrite": false}),
            "already_exists",
            Nothing,
        ),
        case(
            "write-into-dangling-dir",
            "write_file",
            json!({"path": "dangling_dir/x.txt", "content": "pwned"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "write-into-dangling-rel-dir",
            "write_file",
            json!({"path": "dangling_rel_dir/x.txt", "content": "pwned"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "write-into-abs-dir-link",
            "write_file",
            json!({"path": "abs_dir_link/new.txt", "content": "pwned"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "write-into-rel-dir-link",
            "write_file",
            json!({"path": "rel_dir_link/new.txt", "content": "pwned"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "write-over-abs-dir-link-file",
            "write_file",
            json!({"path": "abs_dir_link/sentinel.txt", "content": "pwned"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "edit-abs-file-link",
            "edit_file",
            json!({"path": "abs_file_link", "old_text": "SENTINEL", "new_text": "pwned"}),
            "not_a_regular_file",
            Nothing,
        ),
        case(
            "edit-through-dir-link",
            "edit_file",
            json!({"path": "rel_dir_link/sentinel.txt", "old_text": "SENTINEL", "new_text": "pwned"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "patch-through-dir-link",
            "apply_patch",
            json!({"patch": "--- a/abs_dir_link/sentinel.txt\n+++ b/abs_dir_link/sentinel.txt\n@@ -1 +1 @@\n-x\n+pwned\n"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "patch-create-dangling",
            "apply_patch",
            json!({"patch": "--- /dev/null\n+++ b/dangling_abs\n@@ -0,0 +1 @@\n+pwned\n"}),
            "already_exists",
            Nothing,
        ),
        case("mkdir-dangling-dir", "create_directory", json!({"path": "dangling_dir"}), "path_outside_root", Nothing),
        case(
            "mkdir-dangling-rel-dir",
            "create_directory",
            json!({"path": "dangling_rel_dir/deeper"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "mkdir-in-abs-dir-link",
            "create_directory",
            json!({"path": "abs_dir_link/newdir"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "move-into-dir-link",
            "move_path",
            json!({"source": "README.md", "destination": "abs_dir_link/README.md"}),
            "path_outside_root",
            Regular("README.md", "# proj\nplain readme\n"),
        ),
        case(
            "move-from-dir-link",
            "move_path",
            json!({"source": "rel_dir_link/sentinel.txt", "destination": "stolen.txt"}),
            "path_outside_root",
            NothingCreated(&["stolen.txt"]),
        ),
        case(
            "move-link-itself",
            "move_path",
            json!({"source": "abs_file_link", "destination": "renamed_link"}),
            "ok",
            IsLink("renamed_link"),
        ),
        case(
            "move-over-link-no-overwrite",
            "move_path",
            json!({"source": "README.md", "destination": "abs_file_link"}),
            "already_exists",
            IsLink("abs_file_link"),
        ),
        case(
            "move-over-link-replaces-link",
            "move_path",
            json!({"source": "README.md", "destination": "abs_file_link", "overwrite": true}),
            "ok",
            Regular("abs_file_link", "# proj\nplain readme\n"),
        ),
        case("delete-file-link", "delete_path", json!({"path": "abs_file_link"}), "ok", Gone("abs_file_link")),
        case(
            "delete-dir-link-recursive",
            "delete_path",
            json!({"path": "abs_dir_link", "recursive": true}),
            "ok",
            Gone("abs_dir_link"),
        ),
        case(
            "delete-dir-holding-links-out",
            "delete_path",
            json!({"path": "holder", "recursive": true}),
            "ok",
            Gone("holder"),
        ),
        case(
            "move-dir-holding-links-out",
            "move_path",
            json!({"source": "holder", "destination": "holder2"}),
            "ok",
            IsLink("holder2/out"),
        ),
        case(
            "read-through-nested-link",
            "read_file",
            json!({"path": "holder/out/sentinel.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "read-nested-file-link",
            "read_file",
            json!({"path": "holder/sentinel_link"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "delete-through-dir-link",
            "delete_path",
            json!({"path": "rel_dir_link/sentinel.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case(
            "delete-through-abs-dir-link",
            "delete_path",
            json!({"path": "abs_dir_link/sentinel.txt"}),
            "path_outside_root",
            Nothing,
        ),
        case("read-link-to-env", "read_file", json!({"path": "notes_env"}), "denied_by_glob", Nothing),
        case("info-link-to-env", "file_info", json!({"path": "notes_env"}), "denied_by_glob", Nothing),
        case(
            "search-link-to-env",
            "search_text",
            json!({"pattern": "TOKEN", "path": "notes_env"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "write-link-to-env",
            "write_file",
            json!({"path": "notes_env", "content": "TOKEN=x"}),
            "not_a_regular_file",
            IsLink("notes_env"),
        ),
        case(
            "write-via-git-link",
            "write_file",
            json!({"path": "git_link/config", "content": "[core]\n\thooksPath = /tmp\n"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "write-hook-via-git-link",
            "write_file",
            json!({"path": "git_link/hooks/pre-commit", "content": "#!/bin/sh\n"}),
            "denied_by_glob",
            NothingCreated(&[".git/hooks/pre-commit"]),
        ),
        case(
            "edit-via-git-link",
            "edit_file",
            json!({"path": "git_link/config", "old_text": "bare = false", "new_text": "bare = true"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "patch-via-git-link",
            "apply_patch",
            json!({"patch": "--- a/git_link/config\n+++ b/git_link/config\n@@ -1,2 +1,2 @@\n [core]\n-\tbare = false\n+\tbare = true\n"}),
            "denied_by_glob",
            Nothing,
        ),
        case(
            "mkdir-via-git-link",
            "create_directory",
            json!({"path": "git_link/hooks/new"}),
            "denied_by_glob",
            NothingCreated(&[".git/hooks/new"]),
        ),
        case("delete-via-git-link", "delete_path", json!({"path": "git_link/config"}), "denied_by_glob", Nothing),
        case(
            "move-into-git-link",
            "move_path",
            json!({"source": "README.md", "destination": "git_link/README.md"}),
            "denied_by_glob",
            NothingCreated(&[".git/README.md"]),
        ),
    ]
}

/// `HARDLINK_CASES` of the Python table.
fn hardlink_cases() -> Vec<Case> {
    vec![
        case(
            "write-hardlink",
            "write_file",
            json!({"path": "hard.txt", "content": "pwned\n"}),
            "hardlinked_file",
            Nothing,
        ),
        case(
            "edit-hardlink",
            "edit_file",
            json!({"path": "hard.txt", "old_text": "HARDLINK", "new_text": "pwned"}),
            "hardlinked_file",
            Nothing,
        ),
        case(
            "edit-hardlink-dry-run-shows-no-content",
            "edit_file",
            json!({"path": "hard.txt", "old_text": "nomatch-zzz", "new_text": "pwned"}),
            "edit_mismatch",
            Nothing,
        ),
        case("delete-hardlink-name-only", "delete_path", json!({"path": "hard.txt"}), "ok", Gone("hard.txt")),
        case(
            "write-hardlink-abs",
            "write_file",
            json!({"path": "{root}/hard.txt", "content": "pwned\n"}),
            "hardlinked_file",
            Nothing,
        ),
    ]
}
