"""Hostile inputs through the real ``bastion-fs`` binary: traversal strings, prefix confusion,
symlinks and hardlinks leading out, special files, over-long and NUL paths, git metadata, and
moves/deletes aimed at the root itself.

Every case runs in its own tree under ``tmp_path`` with a fresh server (all tiers allowed, so the
tier cap never hides a confinement bug), and afterwards checks that

* the call returned the exact expected error code (or succeeded harmlessly, for paths that are
  merely odd names and must be treated literally inside the root),
* nothing outside the root changed: the sentinel files (content ``SENTINEL-<random>``) are intact
  and no file appeared, vanished or changed anywhere outside the root,
* no tool output contained the sentinel (or the hardlinked outside file's marker).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fsclient import call, error_code, fs_session

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --------------------------------------------------------------------------------------------
# The hostile tree
# --------------------------------------------------------------------------------------------


@dataclass
class Tree:
    base: Path
    root: Path
    outside: Path
    sentinel: str
    hard_marker: str
    outputs: list[str] = field(default_factory=list)
    before: dict[str, tuple] = field(default_factory=dict)

    def sub(self, value: Any) -> Any:
        """Replaces ``{base}``, ``{root}`` and ``{outside}`` in every string of ``value``."""
        if isinstance(value, str):
            return (
                value.replace("{base}", str(self.base)).replace("{root}", str(self.root)).replace("{outside}", str(self.outside))
            )
        if isinstance(value, list):
            return [self.sub(v) for v in value]
        if isinstance(value, dict):
            return {k: self.sub(v) for k, v in value.items()}
        return value


def outside_state(base: Path, root: Path) -> dict[str, tuple]:
    """Everything beneath ``base`` except the root: type, mode, content or link target."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        here = Path(dirpath)
        if here == root:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = here / name
            if p == root:
                continue
            st = os.lstat(p)
            rel = str(p.relative_to(base))
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                state[rel] = ("file", stat.S_IMODE(st.st_mode), p.read_bytes())
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                state[rel] = ("other", st.st_mode)
    return state


def build_tree(base: Path) -> Tree:
    sentinel = f"SENTINEL-{secrets.token_hex(12)}"
    hard_marker = f"HARDLINK-{secrets.token_hex(12)}"
    root = base / "proj"
    outside = base / "outside"
    for d in (root / "sub" / ".git", root / ".git" / "hooks", outside, base / "proj-evil", base / "cwd"):
        d.mkdir(parents=True, exist_ok=True)

    # Outside the root: sentinels everywhere a traversal might land.
    (outside / "sentinel.txt").write_text(sentinel + "\n")
    (base / "outfile.txt").write_text(sentinel + "\n")
    (base / "cwd" / "cwdfile.txt").write_text(sentinel + "\n")
    (base / "loot.txt").write_text(sentinel + "\n")
    (base / "proj-evil" / "data.txt").write_text(sentinel + "\n")
    (outside / "hard_target.txt").write_text(hard_marker + "\n")

    # Inside the root.
    (root / "README.md").write_text("# proj\nplain readme\n")
    (root / "sub" / "file.txt").write_text("inside sub\n")
    (root / "sub" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".git" / "config").write_text("[core]\n\tbare = false\n")
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".env").write_text("TOKEN=inside-root-env-secret\n")
    os.link(outside / "hard_target.txt", root / "hard.txt")

    links = {
        "abs_file_link": str(outside / "sentinel.txt"),
        "rel_file_link": "../outside/sentinel.txt",
        "abs_dir_link": str(outside),
        "rel_dir_link": "../outside",
        "evil_link": "../proj-evil",
        "dangling_abs": str(outside / "created_via_abs.txt"),
        "dangling_rel": "../outside/created_via_rel.txt",
        "dangling_dir": str(outside / "newdir"),
        "dangling_rel_dir": "../outside/newdir_rel",
        "proc_root": "/proc/self/root",
        "proc_cwd": "/proc/self/cwd",
        "notes_env": ".env",
        "git_link": ".git",
        "loop_a": "loop_b",
        "loop_b": "loop_a",
    }
    for name, target in links.items():
        os.symlink(target, root / name)

    (root / "holder").mkdir()
    os.symlink(str(outside), root / "holder" / "out")
    os.symlink("../../outside/sentinel.txt", root / "holder" / "sentinel_link")

    os.mkfifo(root / "pipe")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(root / "sock"))
    finally:
        sock.close()
    try:
        os.mknod(root / "devnull", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        pass

    tree = Tree(base=base, root=root, outside=outside, sentinel=sentinel, hard_marker=hard_marker)
    tree.before = outside_state(base, root)
    return tree


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return build_tree(tmp_path)


async def run(tree: Tree, session: Any, tool: str, args: dict[str, Any], *, timeout: float = 15.0) -> tuple[str | None, dict | None, str]:
    """One call; records its output for the leak check. Returns (code or None, structured, text)."""
    is_error, structured, text = await call(session, tool, args, timeout=timeout)
    tree.outputs.append(text)
    tree.outputs.append(json.dumps(structured))
    return error_code(is_error, structured, text), structured, text


def assert_outside_untouched(tree: Tree) -> None:
    after = outside_state(tree.base, tree.root)
    appeared = sorted(set(after) - set(tree.before))
    vanished = sorted(set(tree.before) - set(after))
    changed = sorted(k for k in after.keys() & tree.before.keys() if after[k] != tree.before[k])
    assert not appeared, f"new entries outside the root: {appeared}"
    assert not vanished, f"entries outside the root vanished: {vanished}"
    assert not changed, f"entries outside the root changed: {changed}"
    assert (tree.outside / "sentinel.txt").read_text() == tree.sentinel + "\n"
    assert (tree.outside / "hard_target.txt").read_text() == tree.hard_marker + "\n"
    assert tree.root.is_dir()
    for out in tree.outputs:
        assert tree.sentinel not in out, f"the sentinel leaked into a tool result: {out[:300]}"
        assert tree.hard_marker not in out, f"the hardlinked outside file leaked into a tool result: {out[:300]}"


# --------------------------------------------------------------------------------------------
# Case tables
# --------------------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    tool: str
    args: dict[str, Any]
    expect: str  # an error code, or "ok"
    check: Callable[[Tree], None] | None = None
    marks: tuple = ()

    def param(self) -> Any:
        return pytest.param(self, id=self.id, marks=self.marks)


def args_for(tool: str, path: str) -> dict[str, Any]:
    """Arguments aiming ``tool`` at ``path``."""
    return {
        "read_file": {"path": path},
        "file_info": {"path": path},
        "list_directory": {"path": path},
        "find_files": {"pattern": "*", "path": path, "include_hidden": True},
        "search_text": {"pattern": "SENTINEL", "path": path, "include_hidden": True, "respect_gitignore": False},
        "write_file": {"path": path, "content": "pwned\n"},
        "edit_file": {"path": path, "old_text": "SENTINEL", "new_text": "pwned"},
        "create_directory": {"path": path},
        "delete_path": {"path": path, "recursive": True},
        "move_path.src": {"source": path, "destination": "moved_here.txt"},
        "move_path.dst": {"source": "README.md", "destination": path, "overwrite": True},
        "apply_patch.create": {"patch": f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+pwned\n"},
        "apply_patch.modify": {"patch": f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-x\n+pwned\n"},
    }[tool]


ALL_TOOLS = [
    "read_file", "file_info", "list_directory", "find_files", "search_text", "write_file", "edit_file",
    "create_directory", "delete_path", "move_path.src", "move_path.dst", "apply_patch.create", "apply_patch.modify",
]

# Paths that lead outside the root, by any spelling: always path_outside_root, for every tool.
OUTSIDE_PATHS = {
    "dotdot": "../outfile.txt",
    "dotdot-deep": "../../../../../../../../etc/passwd",
    "sub-dotdot-dotdot": "sub/../../outfile.txt",
    "dot-dotdot": "./../outfile.txt",
    "sub-dot-dotdot": "sub/./../../outside/sentinel.txt",
    "abs-outside": "{outside}/sentinel.txt",
    "abs-etc-passwd": "/etc/passwd",
    "abs-slash": "/",
    "abs-double-slash": "//etc/passwd",
    "abs-root-dotdot": "{root}/../outfile.txt",
    "abs-root-sub-dotdot": "{root}/sub/../../outside/sentinel.txt",
    "abs-root-out-and-back": "{root}/../proj/README.md",
    "sibling-dotdot": "../proj-evil/data.txt",
    "sibling-prefix-abs": "{base}/proj-evil/data.txt",
    "sibling-prefix-concat": "{root}-evil/data.txt",
    "abs-base": "{base}",
    "abs-proc-self-root": "/proc/self/root{outside}/sentinel.txt",
    "abs-proc-self-cwd": "/proc/self/cwd/cwdfile.txt",
    "abs-proc-fd": "/proc/self/fd/0",
}

# Odd spellings that are NOT traversal on Linux: treated as literal names inside the root.
LITERAL_PATHS = {
    "urlenc-slash": "..%2f..%2floot.txt",
    "urlenc-dots": "%2e%2e/%2e%2e/loot.txt",
    "urlenc-all": "%2e%2e%2f%2e%2e%2floot.txt",
    "double-urlenc": "%252e%252e%252floot.txt",
    "dots4-slashes": "....//....//loot.txt",
    "dots3": ".../loot.txt",
    "backslashes": "..\\..\\loot.txt",
    "mixed-slashes": "..\\/..\\/loot.txt",
    "overlong-utf8-urlenc": "%c0%ae%c0%ae/%c0%ae%c0%ae/loot.txt",
    "overlong-utf8-chars": "\u00c0\u00ae\u00c0\u00ae/loot.txt",
    "fullwidth-dots": "\uff0e\uff0e/\uff0e\uff0e/loot.txt",
    "one-dot-leader": "\u2025/loot.txt",
    "tomcat-semicolon": "..;/loot.txt",
    "file-uri": "file:///etc/loot.txt",
    "trailing-space-dots": ".. /loot.txt",
}

# What each tool says about a literal name that does not exist yet.
LITERAL_EXPECT = {
    "read_file": "not_found",
    "file_info": "not_found",
    "list_directory": "not_found",
    "find_files": "not_found",
    "search_text": "not_found",
    "write_file": "ok",
    "edit_file": "not_found",
    "create_directory": "ok",
    "delete_path": "not_found",
    "move_path.src": "not_found",
    "move_path.dst": "ok",
    "apply_patch.create": "ok",
    "apply_patch.modify": "not_found",
}


def created_literally_inside(raw: str) -> Callable[[Tree], None]:
    def check(tree: Tree) -> None:
        p = tree.root / raw
        assert os.path.lexists(p), f"{raw!r} was not created as a literal name inside the root"
        real = os.path.realpath(p)
        assert real.startswith(str(tree.root.resolve()) + os.sep), real

    return check


def traversal_cases() -> list[Any]:
    cases = []
    for name, path in OUTSIDE_PATHS.items():
        for tool in ALL_TOOLS:
            cases.append(Case(f"{name}-{tool}", tool.split(".")[0], args_for(tool, path), "path_outside_root").param())
    for name, path in LITERAL_PATHS.items():
        for tool in ALL_TOOLS:
            expect = LITERAL_EXPECT[tool]
            if tool.startswith("apply_patch") and "\\" in path:
                expect = "patch_failed"  # diff headers cannot carry an unquoted backslash
            check = created_literally_inside(path) if expect == "ok" else None
            cases.append(Case(f"{name}-{tool}", tool.split(".")[0], args_for(tool, path), expect, check).param())
    return cases


def gone(rel: str) -> Callable[[Tree], None]:
    def check(tree: Tree) -> None:
        assert not os.path.lexists(tree.root / rel), f"{rel} still exists"

    return check


def is_link(rel: str) -> Callable[[Tree], None]:
    def check(tree: Tree) -> None:
        assert os.path.islink(tree.root / rel), f"{rel} is not a symlink"

    return check


def regular(rel: str, content: str) -> Callable[[Tree], None]:
    def check(tree: Tree) -> None:
        p = tree.root / rel
        assert not p.is_symlink() and p.read_text() == content

    return check


def nothing_created(*rels: str) -> Callable[[Tree], None]:
    def check(tree: Tree) -> None:
        for rel in rels:
            assert not os.path.lexists(tree.root / rel), f"{rel} was created"

    return check


SYMLINK_CASES = [
    # Reading through links that leave the root.
    Case("read-abs-file-link", "read_file", {"path": "abs_file_link"}, "path_outside_root"),
    Case("read-rel-file-link", "read_file", {"path": "rel_file_link"}, "path_outside_root"),
    Case("read-abs-dir-link", "read_file", {"path": "abs_dir_link/sentinel.txt"}, "path_outside_root"),
    Case("read-rel-dir-link", "read_file", {"path": "rel_dir_link/sentinel.txt"}, "path_outside_root"),
    Case("read-sibling-link", "read_file", {"path": "evil_link/data.txt"}, "path_outside_root"),
    Case("read-abs-via-link-prefix", "read_file", {"path": "{root}/abs_dir_link/sentinel.txt"}, "path_outside_root"),
    Case("info-abs-file-link", "file_info", {"path": "abs_file_link"}, "path_outside_root"),
    Case("info-rel-dir-link", "file_info", {"path": "rel_dir_link"}, "path_outside_root"),
    Case("list-abs-dir-link", "list_directory", {"path": "abs_dir_link"}, "path_outside_root"),
    Case("list-rel-dir-link", "list_directory", {"path": "rel_dir_link"}, "path_outside_root"),
    Case("find-rel-dir-link", "find_files", {"pattern": "*", "path": "rel_dir_link"}, "path_outside_root"),
    Case("search-abs-dir-link", "search_text", {"pattern": "SENTINEL", "path": "abs_dir_link"}, "path_outside_root"),
    Case("search-rel-file-link", "search_text", {"pattern": "SENTINEL", "path": "rel_file_link"}, "path_outside_root"),
    Case("read-loop", "read_file", {"path": "loop_a"}, "path_outside_root"),
    # /proc magic links.
    Case("read-proc-root-passwd", "read_file", {"path": "proc_root/etc/passwd"}, "path_outside_root"),
    Case("read-proc-root-sentinel", "read_file", {"path": "proc_root{outside}/sentinel.txt"}, "path_outside_root"),
    Case("read-proc-cwd", "read_file", {"path": "proc_cwd/cwdfile.txt"}, "path_outside_root"),
    Case("list-proc-root", "list_directory", {"path": "proc_root"}, "path_outside_root"),
    Case("write-proc-root", "write_file", {"path": "proc_root{outside}/pwned.txt", "content": "x"}, "path_outside_root"),
    # Writing through links: the link is never followed, whether it dangles or not.
    Case("write-abs-file-link", "write_file", {"path": "abs_file_link", "content": "pwned"}, "not_a_regular_file", is_link("abs_file_link")),
    Case("write-rel-file-link", "write_file", {"path": "rel_file_link", "content": "pwned"}, "not_a_regular_file", is_link("rel_file_link")),
    Case("write-dangling-abs", "write_file", {"path": "dangling_abs", "content": "pwned"}, "not_a_regular_file", is_link("dangling_abs")),
    Case("write-dangling-rel", "write_file", {"path": "dangling_rel", "content": "pwned"}, "not_a_regular_file", is_link("dangling_rel")),
    Case("write-dangling-abs-no-overwrite", "write_file", {"path": "dangling_abs", "content": "pwned", "overwrite": False}, "already_exists"),
    Case("write-into-dangling-dir", "write_file", {"path": "dangling_dir/x.txt", "content": "pwned"}, "path_outside_root"),
    Case("write-into-dangling-rel-dir", "write_file", {"path": "dangling_rel_dir/x.txt", "content": "pwned"}, "path_outside_root"),
    Case("write-into-abs-dir-link", "write_file", {"path": "abs_dir_link/new.txt", "content": "pwned"}, "path_outside_root"),
    Case("write-into-rel-dir-link", "write_file", {"path": "rel_dir_link/new.txt", "content": "pwned"}, "path_outside_root"),
    Case("write-over-abs-dir-link-file", "write_file", {"path": "abs_dir_link/sentinel.txt", "content": "pwned"}, "path_outside_root"),
    Case("edit-abs-file-link", "edit_file", {"path": "abs_file_link", "old_text": "SENTINEL", "new_text": "pwned"}, "not_a_regular_file"),
    Case("edit-through-dir-link", "edit_file", {"path": "rel_dir_link/sentinel.txt", "old_text": "SENTINEL", "new_text": "pwned"}, "path_outside_root"),
    Case("patch-through-dir-link", "apply_patch", {"patch": "--- a/abs_dir_link/sentinel.txt\n+++ b/abs_dir_link/sentinel.txt\n@@ -1 +1 @@\n-x\n+pwned\n"}, "path_outside_root"),
    Case("patch-create-dangling", "apply_patch", {"patch": "--- /dev/null\n+++ b/dangling_abs\n@@ -0,0 +1 @@\n+pwned\n"}, "already_exists"),
    Case("mkdir-dangling-dir", "create_directory", {"path": "dangling_dir"}, "path_outside_root"),
    Case("mkdir-dangling-rel-dir", "create_directory", {"path": "dangling_rel_dir/deeper"}, "path_outside_root"),
    Case("mkdir-in-abs-dir-link", "create_directory", {"path": "abs_dir_link/newdir"}, "path_outside_root"),
    Case("move-into-dir-link", "move_path", {"source": "README.md", "destination": "abs_dir_link/README.md"}, "path_outside_root", regular("README.md", "# proj\nplain readme\n")),
    Case("move-from-dir-link", "move_path", {"source": "rel_dir_link/sentinel.txt", "destination": "stolen.txt"}, "path_outside_root", nothing_created("stolen.txt")),
    Case("move-link-itself", "move_path", {"source": "abs_file_link", "destination": "renamed_link"}, "ok", is_link("renamed_link")),
    Case("move-over-link-no-overwrite", "move_path", {"source": "README.md", "destination": "abs_file_link"}, "already_exists", is_link("abs_file_link")),
    Case("move-over-link-replaces-link", "move_path", {"source": "README.md", "destination": "abs_file_link", "overwrite": True}, "ok", regular("abs_file_link", "# proj\nplain readme\n")),
    Case("delete-file-link", "delete_path", {"path": "abs_file_link"}, "ok", gone("abs_file_link")),
    Case("delete-dir-link-recursive", "delete_path", {"path": "abs_dir_link", "recursive": True}, "ok", gone("abs_dir_link")),
    Case("delete-dir-holding-links-out", "delete_path", {"path": "holder", "recursive": True}, "ok", gone("holder")),
    Case("move-dir-holding-links-out", "move_path", {"source": "holder", "destination": "holder2"}, "ok", is_link("holder2/out")),
    Case("read-through-nested-link", "read_file", {"path": "holder/out/sentinel.txt"}, "path_outside_root"),
    Case("read-nested-file-link", "read_file", {"path": "holder/sentinel_link"}, "path_outside_root"),
    Case("delete-through-dir-link", "delete_path", {"path": "rel_dir_link/sentinel.txt"}, "path_outside_root"),
    Case("delete-through-abs-dir-link", "delete_path", {"path": "abs_dir_link/sentinel.txt"}, "path_outside_root"),
    # In-root links to denied paths.
    Case("read-link-to-env", "read_file", {"path": "notes_env"}, "denied_by_glob"),
    Case("info-link-to-env", "file_info", {"path": "notes_env"}, "denied_by_glob"),
    Case("search-link-to-env", "search_text", {"pattern": "TOKEN", "path": "notes_env"}, "denied_by_glob"),
    Case("write-link-to-env", "write_file", {"path": "notes_env", "content": "TOKEN=x"}, "not_a_regular_file", is_link("notes_env")),
    Case("write-via-git-link", "write_file", {"path": "git_link/config", "content": "[core]\n\thooksPath = /tmp\n"}, "denied_by_glob"),
    Case("write-hook-via-git-link", "write_file", {"path": "git_link/hooks/pre-commit", "content": "#!/bin/sh\n"}, "denied_by_glob", nothing_created(".git/hooks/pre-commit")),
    Case("edit-via-git-link", "edit_file", {"path": "git_link/config", "old_text": "bare = false", "new_text": "bare = true"}, "denied_by_glob"),
    Case("patch-via-git-link", "apply_patch", {"patch": "--- a/git_link/config\n+++ b/git_link/config\n@@ -1,2 +1,2 @@\n [core]\n-\tbare = false\n+\tbare = true\n"}, "denied_by_glob"),
    Case("mkdir-via-git-link", "create_directory", {"path": "git_link/hooks/new"}, "denied_by_glob", nothing_created(".git/hooks/new")),
    Case("delete-via-git-link", "delete_path", {"path": "git_link/config"}, "denied_by_glob"),
    Case("move-into-git-link", "move_path", {"source": "README.md", "destination": "git_link/README.md"}, "denied_by_glob", nothing_created(".git/README.md")),
]

HARDLINK_CASES = [
    Case("write-hardlink", "write_file", {"path": "hard.txt", "content": "pwned\n"}, "hardlinked_file"),
    Case("edit-hardlink", "edit_file", {"path": "hard.txt", "old_text": "HARDLINK", "new_text": "pwned"}, "hardlinked_file"),
    Case("edit-hardlink-dry-run-shows-no-content", "edit_file", {"path": "hard.txt", "old_text": "nomatch-zzz", "new_text": "pwned"}, "edit_mismatch"),
    Case("delete-hardlink-name-only", "delete_path", {"path": "hard.txt"}, "ok", gone("hard.txt")),
    Case("write-hardlink-abs", "write_file", {"path": "{root}/hard.txt", "content": "pwned\n"}, "hardlinked_file"),
]

LONG_NAME = "n" * 300
MALFORMED_CASES = [
    Case(f"{label}-{tool}", tool.split(".")[0], args_for(tool, path), "invalid_path")
    for label, path in {
        "nul": "sub/a\x00b.txt",
        "nul-dotdot": "..\x00/outfile.txt",
        "long-path-5000": "a/" * 2500,
        "long-single-5000": "x" * 5000,
        "long-name-300": f"sub/{LONG_NAME}",
        "long-name-300-abs": "{root}/" + LONG_NAME,
    }.items()
    for tool in ["read_file", "file_info", "list_directory", "search_text", "write_file", "edit_file", "create_directory", "delete_path", "move_path.src", "move_path.dst"]
]

SPECIAL_CASES = [
    Case("read-fifo", "read_file", {"path": "pipe"}, "not_a_regular_file"),
    Case("write-fifo", "write_file", {"path": "pipe", "content": "x"}, "not_a_regular_file"),
    Case("edit-fifo", "edit_file", {"path": "pipe", "old_text": "x", "new_text": "y"}, "not_a_regular_file"),
    Case("read-socket", "read_file", {"path": "sock"}, "not_a_regular_file"),
    Case("write-socket", "write_file", {"path": "sock", "content": "x"}, "not_a_regular_file"),
    Case("read-chardev", "read_file", {"path": "devnull"}, "not_a_regular_file"),
    Case("write-chardev", "write_file", {"path": "devnull", "content": "x"}, "not_a_regular_file"),
    Case("edit-chardev", "edit_file", {"path": "devnull", "old_text": "x", "new_text": "y"}, "not_a_regular_file"),
    Case("read-dir", "read_file", {"path": "sub"}, "not_a_regular_file"),
    Case("search-fifo", "search_text", {"pattern": "x", "path": "pipe"}, "ok"),
    Case(
        "patch-fifo", "apply_patch", {"patch": "--- a/pipe\n+++ b/pipe\n@@ -1 +1 @@\n-x\n+y\n"}, "not_a_regular_file",
    ),
    Case(
        "patch-symlink", "apply_patch", {"patch": "--- a/notes_env\n+++ b/notes_env\n@@ -1 +1 @@\n-x\n+y\n"}, "not_a_regular_file",
    ),
]

GIT_CASES = [
    Case("write-git-config", "write_file", {"path": ".git/config", "content": "[core]\n\thooksPath = /tmp\n"}, "denied_by_glob"),
    Case("write-GIT-hooks", "write_file", {"path": ".GIT/hooks/x", "content": "#!/bin/sh\n"}, "denied_by_glob", nothing_created(".GIT")),
    Case("write-Git-config", "write_file", {"path": ".Git/config", "content": "x"}, "denied_by_glob", nothing_created(".Git")),
    Case("write-git-hook", "write_file", {"path": ".git/hooks/pre-commit", "content": "#!/bin/sh\n"}, "denied_by_glob", nothing_created(".git/hooks/pre-commit")),
    Case("write-sub-git-file", "write_file", {"path": "sub/.git", "content": "gitdir: /tmp\n"}, "denied_by_glob"),
    Case("write-sub-git-head", "write_file", {"path": "sub/.git/HEAD", "content": "x"}, "denied_by_glob"),
    Case("write-new-nested-git", "write_file", {"path": "vendor/lib/.git/config", "content": "x"}, "denied_by_glob", nothing_created("vendor/lib/.git")),
    Case("write-dot-git-itself", "write_file", {"path": ".git", "content": "x"}, "denied_by_glob"),
    Case("write-git-dot-segments", "write_file", {"path": "sub/./../.git/config", "content": "x"}, "denied_by_glob"),
    Case("write-git-abs", "write_file", {"path": "{root}/.git/config", "content": "x"}, "denied_by_glob"),
    Case("edit-git-config", "edit_file", {"path": ".git/config", "old_text": "bare = false", "new_text": "bare = true"}, "denied_by_glob"),
    Case("patch-create-git-hook", "apply_patch", {"patch": "--- /dev/null\n+++ b/.git/hooks/post-checkout\n@@ -0,0 +1 @@\n+#!/bin/sh\n"}, "denied_by_glob"),
    Case("mkdir-git-hooks-new", "create_directory", {"path": ".git/hooks/new"}, "denied_by_glob"),
    Case("mkdir-GIT", "create_directory", {"path": "sub2/.GIT"}, "denied_by_glob", nothing_created("sub2/.GIT")),
    Case("delete-git", "delete_path", {"path": ".git", "recursive": True}, "denied_by_glob"),
    Case("delete-git-config", "delete_path", {"path": ".git/config"}, "denied_by_glob"),
    Case("delete-dir-holding-git", "delete_path", {"path": "sub", "recursive": True}, "denied_by_glob"),
    Case("write-env", "write_file", {"path": ".env", "content": "TOKEN=x"}, "denied_by_glob"),
    Case("write-ssh-key-via-tilde", "write_file", {"path": "~/.ssh/id_rsa", "content": "x"}, "denied_by_glob"),
    Case("read-ssh-key-via-tilde", "read_file", {"path": "~/.ssh/id_rsa"}, "denied_by_glob"),
]

MOVE_CASES = [
    Case("move-into-git", "move_path", {"source": "README.md", "destination": ".git/README.md"}, "denied_by_glob", regular("README.md", "# proj\nplain readme\n")),
    Case("move-over-git-config", "move_path", {"source": "README.md", "destination": ".git/config", "overwrite": True}, "denied_by_glob"),
    Case("move-into-sub-git", "move_path", {"source": "README.md", "destination": "sub/.git/hooks/pre-commit"}, "denied_by_glob", nothing_created("sub/.git/hooks")),
    Case("move-git-away", "move_path", {"source": ".git", "destination": "notgit"}, "denied_by_glob", nothing_created("notgit")),
    Case("move-git-hook-out", "move_path", {"source": ".git/config", "destination": "config"}, "denied_by_glob"),
    Case("move-dir-holding-git", "move_path", {"source": "sub", "destination": "sub_moved"}, "denied_by_glob"),
    Case("move-env-away", "move_path", {"source": ".env", "destination": "env.txt"}, "denied_by_glob", nothing_created("env.txt")),
    Case("move-over-env", "move_path", {"source": "README.md", "destination": ".env", "overwrite": True}, "denied_by_glob"),
    Case("move-out-dotdot", "move_path", {"source": "README.md", "destination": "../moved.txt"}, "path_outside_root"),
    Case("move-out-abs", "move_path", {"source": "README.md", "destination": "{outside}/moved.txt"}, "path_outside_root"),
    Case("move-out-sibling", "move_path", {"source": "README.md", "destination": "{base}/proj-evil/moved.txt"}, "path_outside_root"),
    Case("move-in-from-outside", "move_path", {"source": "{outside}/sentinel.txt", "destination": "stolen.txt"}, "path_outside_root", nothing_created("stolen.txt")),
    Case("move-in-dotdot", "move_path", {"source": "../outfile.txt", "destination": "stolen.txt"}, "path_outside_root", nothing_created("stolen.txt")),
    Case("move-root", "move_path", {"source": ".", "destination": "elsewhere"}, "invalid_path"),
    Case("move-root-abs", "move_path", {"source": "{root}", "destination": "elsewhere"}, "invalid_path"),
    Case("move-onto-root", "move_path", {"source": "README.md", "destination": ".", "overwrite": True}, "invalid_path"),
    Case("move-dotdot-name", "move_path", {"source": "sub/..", "destination": "x"}, "invalid_path"),
]

DELETE_CASES = [
    Case("delete-dotdot", "delete_path", {"path": "..", "recursive": True}, "path_outside_root"),
    Case("delete-dotdot-slash", "delete_path", {"path": "../", "recursive": True}, "path_outside_root"),
    Case("delete-dot", "delete_path", {"path": ".", "recursive": True}, "invalid_path"),
    Case("delete-empty", "delete_path", {"path": "", "recursive": True}, "invalid_path"),
    Case("delete-root-abs", "delete_path", {"path": "{root}", "recursive": True}, "invalid_path"),
    Case("delete-root-abs-slash", "delete_path", {"path": "{root}/", "recursive": True}, "invalid_path"),
    Case("delete-root-abs-dot", "delete_path", {"path": "{root}/.", "recursive": True}, "invalid_path"),
    Case("delete-sub-dotdot", "delete_path", {"path": "sub/..", "recursive": True}, "invalid_path"),
    Case("delete-base", "delete_path", {"path": "{base}", "recursive": True}, "path_outside_root"),
    Case("delete-slash", "delete_path", {"path": "/", "recursive": True}, "path_outside_root"),
    Case("delete-outside-dir", "delete_path", {"path": "../outside", "recursive": True}, "path_outside_root"),
    Case("delete-env", "delete_path", {"path": ".env"}, "denied_by_glob"),
    Case("write-root", "write_file", {"path": ".", "content": "x"}, "invalid_path"),
    Case("write-empty", "write_file", {"path": "", "content": "x"}, "invalid_path"),
    Case("write-sub-dotdot", "write_file", {"path": "sub/..", "content": "x"}, "invalid_path"),
]


def all_cases() -> list[Any]:
    tables = SYMLINK_CASES + HARDLINK_CASES + MALFORMED_CASES + SPECIAL_CASES + GIT_CASES + MOVE_CASES + DELETE_CASES
    return traversal_cases() + [c.param() for c in tables]


@pytest.mark.parametrize("case", all_cases())
async def test_hostile(tree: Tree, case: Case) -> None:
    if case.id.endswith("chardev") and not (tree.root / "devnull").exists():
        pytest.skip("cannot create device nodes here")
    args = tree.sub(case.args)
    async with fs_session(tree.root, write=True, destructive=True, cwd=tree.base / "cwd") as s:
        started = time.monotonic()
        code, structured, text = await run(tree, s, case.tool, args)
        elapsed = time.monotonic() - started
        # The server must still be alive and well after the case.
        alive, _, _ = await run(tree, s, "read_file", {"path": "sub/file.txt"})
        assert alive is None, "the server stopped answering normally after the hostile call"
    got = code or "ok"
    assert got == case.expect, f"{case.tool}({json.dumps(args)[:300]}) -> {got}: {text[:300]}"
    assert elapsed < 10, f"took {elapsed:.1f}s"
    if case.check:
        case.check(tree)
    assert_outside_untouched(tree)


# --------------------------------------------------------------------------------------------
# Calls that return per-file results, and whole-tree walks
# --------------------------------------------------------------------------------------------


async def test_read_many_files_hostile(tree: Tree) -> None:
    paths = {
        "../outfile.txt": "path_outside_root",
        "{outside}/sentinel.txt": "path_outside_root",
        "{base}/proj-evil/data.txt": "path_outside_root",
        "abs_file_link": "path_outside_root",
        "rel_dir_link/sentinel.txt": "path_outside_root",
        "proc_root/etc/passwd": "path_outside_root",
        "notes_env": "denied_by_glob",
        ".env": "denied_by_glob",
        "pipe": "not_a_regular_file",
        "sock": "not_a_regular_file",
        "a\x00b": "invalid_path",
        "x" * 5000: "invalid_path",
        "..%2f..%2floot.txt": "not_found",
        "README.md": None,
    }
    async with fs_session(tree.root) as s:
        code, r, _ = await run(tree, s, "read_many_files", {"paths": tree.sub(list(paths))})
    assert code is None and r is not None
    got = {tuple(paths)[i]: f.get("error_code") for i, f in enumerate(r["files"])}
    assert got == paths
    assert r["files"][-1]["content"] == "# proj\nplain readme\n"
    assert_outside_untouched(tree)


async def test_walks_never_leave_the_root(tree: Tree) -> None:
    async with fs_session(tree.root) as s:
        code, r, _ = await run(tree, s, "list_directory", {"depth": 10, "include_hidden": True})
        assert code is None
        paths = [e["path"] for e in r["entries"]]
        kinds = {e["path"]: e["type"] for e in r["entries"]}
        assert kinds["abs_dir_link"] == "symlink" and kinds["pipe"] == "other"
        assert not [p for p in paths if "/" in p and p.split("/")[0].endswith("_link")], paths
        assert not [p for p in paths if p.startswith(("proc_root/", "proc_cwd/", "evil_link/", "holder/out/"))]
        assert ".env" not in paths and r["hidden_denied"] >= 1

        code, r, _ = await run(tree, s, "find_files", {"pattern": "*", "kind": "any", "include_hidden": True, "respect_gitignore": False, "max_results": 10_000})
        assert code is None
        assert not [p for p in r["matches"] if "sentinel" in p or "secret" in p or p.startswith(("abs_", "rel_", "proc_", "evil_"))], r["matches"]

        code, r, _ = await run(tree, s, "search_text", {"pattern": "SENTINEL|root:x:0:0", "include_hidden": True, "respect_gitignore": False, "max_results": 10_000})
        assert code is None and r["matches"] == []
    assert_outside_untouched(tree)


async def test_fifo_does_not_hang_any_reader(tree: Tree) -> None:
    async with fs_session(tree.root, write=True) as s:
        started = time.monotonic()
        code, _, _ = await run(tree, s, "read_file", {"path": "pipe"}, timeout=5)
        assert code == "not_a_regular_file"
        code, r, _ = await run(tree, s, "file_info", {"path": "pipe"}, timeout=5)
        assert code is None and r["type"] == "other" and "line_count" not in r
        code, r, _ = await run(tree, s, "read_many_files", {"paths": ["pipe", "README.md"]}, timeout=5)
        assert code is None and r["files"][0]["error_code"] == "not_a_regular_file"
        code, r, _ = await run(tree, s, "search_text", {"pattern": "x", "include_hidden": True, "respect_gitignore": False}, timeout=5)
        assert code is None
        code, _, _ = await run(tree, s, "edit_file", {"path": "pipe", "old_text": "a", "new_text": "b"}, timeout=5)
        assert code == "not_a_regular_file"
        assert time.monotonic() - started < 10
    assert stat.S_ISFIFO(os.lstat(tree.root / "pipe").st_mode)
    assert_outside_untouched(tree)


async def test_client_root_prefix_confusion(tree: Tree) -> None:
    """A client root at the sibling ``proj-evil`` (a string prefix match of ``proj``) adds nothing."""
    from fsclient import roots_callback

    async with fs_session(tree.root, write=True, list_roots_callback=roots_callback(tree.base / "proj-evil")) as s:
        code, _, _ = await run(tree, s, "read_file", {"path": str(tree.base / "proj-evil" / "data.txt")})
        assert code == "path_outside_root"
        code, _, _ = await run(tree, s, "write_file", {"path": str(tree.base / "proj-evil" / "new.txt"), "content": "x"})
        assert code == "path_outside_root"
    assert_outside_untouched(tree)


async def test_config_root_prefix_confusion(tmp_path: Path) -> None:
    """Root ``proj`` must not grant ``proj-evil``, whatever spelling reaches it."""
    tree = build_tree(tmp_path)
    async with fs_session(tree.root, write=True, destructive=True) as s:
        for path in [
            "{base}/proj-evil/data.txt",
            "{root}-evil/data.txt",
            "{root}/../proj-evil/data.txt",
            "evil_link/data.txt",
            "../proj-evil/data.txt",
        ]:
            for tool, args in [
                ("read_file", {"path": path}),
                ("write_file", {"path": path, "content": "pwned"}),
                ("delete_path", {"path": path}),
                ("list_directory", {"path": path.rsplit("/", 1)[0]}),
            ]:
                code, _, text = await run(tree, s, tool, tree.sub(args))
                assert code == "path_outside_root", f"{tool} {path}: {text}"
    assert_outside_untouched(tree)


def raw_roots_callback(*uris: str):
    """A ``list_roots_callback`` declaring raw ``file://`` URIs (no client-side normalisation)."""
    import mcp.types as types

    async def callback(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri=u) for u in uris])

    return callback


@pytest.mark.parametrize(
    "uri",
    [
        "file://{root}/abs_dir_link",
        "file://{root}/rel_dir_link",
        "file://{root}/..%2Foutside",
        "file://{root}/sub/..%2F..%2Foutside",
        "file://{root}%2F..%2Foutside",
        "file://{outside}",
        "file://{base}/proj-evil",
    ],
    ids=["link-abs", "link-rel", "pct-dotdot", "pct-dotdot-deep", "pct-slash-dotdot", "outside", "sibling-prefix"],
)
async def test_hostile_client_roots_never_widen(tree: Tree, uri: str) -> None:
    async with fs_session(tree.root, write=True, destructive=True, list_roots_callback=raw_roots_callback(tree.sub(uri))) as s:
        for tool, args in [
            ("read_file", {"path": "{outside}/sentinel.txt"}),
            ("read_file", {"path": "sentinel.txt"}),
            ("read_file", {"path": "{base}/proj-evil/data.txt"}),
            ("write_file", {"path": "{outside}/pwned.txt", "content": "x"}),
            ("write_file", {"path": "pwned.txt", "content": "x"}),
            ("delete_path", {"path": "{outside}/sentinel.txt"}),
            ("list_directory", {"path": "{outside}"}),
        ]:
            code, _, text = await run(tree, s, tool, tree.sub(args))
            assert code == "path_outside_root", f"client root {uri}: {tool} {args} -> {code}: {text[:200]}"
        code, r, _ = await run(tree, s, "list_roots", {})
        assert code is None
        assert all(x["path"] == str(tree.root.resolve()) or x["path"].startswith(str(tree.root.resolve()) + "/") for x in r["roots"]), r
    assert not (tree.root / "pwned.txt").exists()
    assert_outside_untouched(tree)


async def test_forged_cursors(tree: Tree) -> None:
    import base64

    def forge(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    async with fs_session(tree.root) as s:
        for cursor in [forge("0:../outfile.txt"), forge("0:/etc/passwd"), forge(f"0:{tree.outside}/sentinel.txt"), forge("99999999999:README.md")]:
            for tool, args in [
                ("search_text", {"pattern": "SENTINEL", "cursor": cursor, "include_hidden": True, "respect_gitignore": False}),
                ("find_files", {"pattern": "*", "cursor": cursor}),
            ]:
                code, r, _ = await run(tree, s, tool, args)
                # A forged cursor is either refused outright or taken as a position in the sorted
                # listing; it never names a file to open.
                assert code in (None, "invalid_argument")
                if code is not None:
                    continue
                if tool == "search_text":
                    assert r["matches"] == []
                else:
                    assert all(not m.startswith(("/", "..")) for m in r["matches"])
        for cursor in ["not base64 at all!", forge("no-colon"), forge("x:README.md")]:
            for tool in ("search_text", "find_files"):
                code, _, _ = await run(tree, s, tool, {"pattern": "x", "cursor": cursor})
                assert code == "invalid_argument", (tool, cursor)
        for cursor in ["-1", "abc", "99999999999999999999999999"]:
            code, _, _ = await run(tree, s, "list_directory", {"cursor": cursor})
            assert code == "invalid_argument", cursor
        code, r, _ = await run(tree, s, "list_directory", {"cursor": "1000000"})
        assert code is None and r["entries"] == []
    assert_outside_untouched(tree)


@pytest.mark.parametrize("tool", ["write_file", "edit_file"])
async def test_replacing_content_drops_setuid_and_setgid(tree: Tree, tool: str) -> None:
    prog = tree.root / "tool.sh"
    prog.write_text("#!/bin/sh\necho safe\n")
    os.chmod(prog, 0o6755)
    args = (
        {"path": "tool.sh", "content": "#!/bin/sh\necho replaced\n"}
        if tool == "write_file"
        else {"path": "tool.sh", "old_text": "echo safe", "new_text": "echo replaced"}
    )
    async with fs_session(tree.root, write=True) as s:
        code, _, _ = await run(tree, s, tool, args)
        assert code is None
    assert prog.read_text() == "#!/bin/sh\necho replaced\n"
    mode = stat.S_IMODE(prog.stat().st_mode)
    assert mode & (stat.S_ISUID | stat.S_ISGID) == 0, oct(mode)
    assert mode & 0o777 == 0o755
    assert_outside_untouched(tree)
