"""End-to-end tests of ``bastion-git`` through the official MCP Python SDK, on real repositories
built with the ``git`` program: history, branches, a tag, a rename, a binary file, a file name
that is not UTF-8, a merge conflict, and the whole write workflow.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitclient import (
    DESTRUCTIVE_TOOLS,
    READ_TOOLS,
    WRITE_TOOLS,
    err,
    git_session,
    init_repo,
    list_all_tools,
    ok,
    run_git,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

BINARY = bytes(range(256)) * 4


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def commit_all(repo: Path, message: str, date: str) -> str:
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", message, env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
    return run_git(repo, "rev-parse", "HEAD").strip()


def project(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """``root/proj``: five commits on main (one renames a file, one adds a binary and a file
    whose name is Latin-1), a ``feature`` branch, an annotated tag ``v1.0``."""
    root = tmp_path / "root"
    repo = init_repo(root / "proj")
    c: dict[str, str] = {}
    (repo / "README.md").write_text("# Project\n\nIntro.\n")
    (repo / "src").mkdir()
    (repo / "src" / "main.py").write_text("def main():\n    print('hello')\n")
    c["init"] = commit_all(repo, "Initial commit", "2024-01-10T10:00:00Z")
    (repo / "src" / "main.py").write_text("def main():\n    print('hello, world')\n\nmain()\n")
    c["greet"] = commit_all(repo, "Greet the world\n\nLonger body text.", "2024-02-10T10:00:00Z")
    run_git(repo, "mv", "src/main.py", "src/app.py")
    c["rename"] = commit_all(repo, "Rename main to app", "2024-03-10T10:00:00Z")
    (repo / "logo.bin").write_bytes(BINARY)
    (repo / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name\n")
    c["binary"] = commit_all(repo, "Add logo and cafe", "2024-04-10T10:00:00Z")
    run_git(repo, "tag", "-a", "v1.0", "-m", "First release")
    run_git(repo, "checkout", "-q", "-b", "feature")
    (repo / "README.md").write_text("# Project\n\nIntro from feature.\n")
    c["feature"] = commit_all(repo, "Feature intro", "2024-05-10T10:00:00Z")
    run_git(repo, "checkout", "-q", "main")
    (repo / "README.md").write_text("# Project\n\nIntro from main.\n")
    c["main"] = commit_all(repo, "Main intro", "2024-05-11T10:00:00Z")
    return root, repo, c


async def test_tools_are_offered_by_tier_with_all_annotations(tmp_path: Path) -> None:
    root, _, _ = project(tmp_path)
    for flags, expected in [
        ({}, READ_TOOLS),
        ({"write": True}, READ_TOOLS + WRITE_TOOLS),
        ({"destructive": True}, READ_TOOLS + WRITE_TOOLS + DESTRUCTIVE_TOOLS),
    ]:
        async with git_session(root, **flags) as session:
            tools = await list_all_tools(session)
            assert sorted(t.name for t in tools) == sorted(expected)
            for t in tools:
                a = t.annotations
                assert a is not None and t.title and t.description and len(t.description) > 40
                assert None not in (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint)
                assert a.read_only_hint == (t.name in READ_TOOLS)
                assert a.destructive_hint == (t.name in DESTRUCTIVE_TOOLS)
                assert a.open_world_hint is False
                assert t.output_schema is not None


async def test_history_log_show_blame(tmp_path: Path) -> None:
    root, repo, c = project(tmp_path)
    async with git_session(root) as s:
        log = await ok(s, "git_log", {"repo": "proj"})
        assert [x["hash"] for x in log["commits"]] == [c["main"], c["binary"], c["rename"], c["greet"], c["init"]]
        assert log["commits"][0]["subject"] == "Main intro" and log["commits"][0]["date"] == "2024-05-11T10:00:00+00:00"
        page1 = await ok(s, "git_log", {"repo": "proj", "max_count": 2})
        assert page1["truncated"] is True and page1["next_skip"] == 2
        page2 = await ok(s, "git_log", {"repo": "proj", "max_count": 2, "skip": page1["next_skip"]})
        assert [x["hash"] for x in page2["commits"]] == [c["rename"], c["greet"]]
        by_path = await ok(s, "git_log", {"repo": "proj", "paths": ["src/main.py"]})
        assert [x["hash"] for x in by_path["commits"]] == [c["rename"], c["greet"], c["init"]]
        dated = await ok(s, "git_log", {"repo": "proj", "since": "2024-02-01", "until": "2024-03-31"})
        assert [x["hash"] for x in dated["commits"]] == [c["rename"], c["greet"]]
        grep = await ok(s, "git_log", {"repo": "proj", "grep": "LONGER BODY"})
        assert [x["hash"] for x in grep["commits"]] == [c["greet"]]
        ranged = await ok(s, "git_log", {"repo": "proj", "rev": "main..feature"})
        assert [x["hash"] for x in ranged["commits"]] == [c["feature"]]
        none = await ok(s, "git_log", {"repo": "proj", "author": "nobody"})
        assert none["commits"] == [] and none["truncated"] is False

        show = await ok(s, "git_show", {"repo": "proj", "rev": c["rename"]})
        assert show["commit"]["message"] == "Rename main to app\n"
        assert show["files"] == [{"path": "src/app.py", "old_path": "src/main.py", "status": "renamed"}]
        assert "rename from src/main.py" in show["diff"] and "rename to src/app.py" in show["diff"]
        binary = await ok(s, "git_show", {"repo": "proj", "rev": c["binary"]})
        assert "Binary files /dev/null and b/logo.bin differ" in binary["diff"]
        assert any(f["path"] == "caf\ufffd.txt" for f in binary["files"]), binary["files"]
        stat = await ok(s, "git_show", {"repo": "proj", "rev": c["greet"], "stat_only": True})
        assert stat["files"] == [{"path": "src/main.py", "status": "modified", "additions": 3, "deletions": 1, "binary": False}]
        assert "diff" not in stat
        tag = await ok(s, "git_show", {"repo": "proj", "rev": "v1.0", "stat_only": True})
        assert tag["tag"]["name"] == "v1.0" and tag["tag"]["message"] == "First release\n"
        assert tag["commit"]["hash"] == c["binary"]
        old_file = await ok(s, "git_show", {"repo": "proj", "rev": f"{c['init']}:src/main.py"})
        assert old_file["kind"] == "file" and old_file["content"] == "def main():\n    print('hello')\n"
        blob = await ok(s, "git_show", {"repo": "proj", "rev": "HEAD:logo.bin"})
        assert blob["binary"] is True and blob["size"] == len(BINARY) and "content" not in blob
        tree = await ok(s, "git_show", {"repo": "proj", "rev": "HEAD:src"})
        assert tree["entries"] == [{"name": "app.py", "type": "file"}]

        blame = await ok(s, "git_blame", {"repo": "proj", "path": "src/app.py"})
        assert blame["total_lines"] == 4
        commits = [(h["start_line"], h["commit"]) for h in blame["hunks"]]
        assert commits == [(1, c["init"]), (2, c["greet"])], commits
        assert blame["hunks"][1]["text"] == "    print('hello, world')\n\nmain()"
        part = await ok(s, "git_blame", {"repo": "proj", "path": "src/app.py", "start_line": 4, "end_line": 4})
        assert [(h["start_line"], h["text"]) for h in part["hunks"]] == [(4, "main()")]
        await err(s, "git_blame", {"repo": "proj", "path": "logo.bin"}, "binary_file")
        await err(s, "git_blame", {"repo": "proj", "path": "src/nope.py"}, "not_found")
        await err(s, "git_show", {"repo": "proj", "rev": "no-such-branch"}, "invalid_revision")

        branches = await ok(s, "git_branches", {"repo": "proj"})
        names = {b["name"]: b for b in branches["branches"]}
        assert set(names) == {"main", "feature"} and names["main"]["current"] is True
        assert names["feature"]["commit"]["hash"] == c["feature"]
        tags = await ok(s, "git_tags", {"repo": "proj"})
        assert tags["tags"] == [
            {"name": "v1.0", "annotated": True, "message": "First release", "commit": tags["tags"][0]["commit"]}
        ]
        assert tags["tags"][0]["commit"]["hash"] == c["binary"]


async def test_status_and_diff_of_a_dirty_tree(tmp_path: Path) -> None:
    root, repo, c = project(tmp_path)
    (repo / "src" / "app.py").write_text("def main():\n    print('changed')\n\nmain()\n")
    run_git(repo, "mv", "README.md", "READ.md")
    (repo / "notes").mkdir()
    (repo / "notes" / "a.txt").write_text("a\n")
    (repo / os.fsdecode(b"na\xefve.txt")).write_bytes(b"x\n")
    async with git_session(root) as s:
        st = await ok(s, "git_status", {"repo": "proj"})
        assert st["branch"] == "main" and st["head"] == c["main"] and st["clean"] is False
        assert st["staged"] == [{"path": "READ.md", "status": "renamed", "old_path": "README.md"}]
        assert st["unstaged"] == [{"path": "src/app.py", "status": "modified"}]
        assert sorted(st["untracked"]) == ["na\ufffdve.txt", "notes/"]
        every = await ok(s, "git_status", {"repo": "proj", "untracked_files": "all"})
        assert "notes/a.txt" in every["untracked"]

        unstaged = await ok(s, "git_diff", {"repo": "proj"})
        assert unstaged["compared"] == "index..work tree"
        assert "-    print('hello, world')\n+    print('changed')\n" in unstaged["diff"]
        staged = await ok(s, "git_diff", {"repo": "proj", "staged": True})
        assert "rename from README.md" in staged["diff"]
        against = await ok(s, "git_diff", {"repo": "proj", "from": "HEAD~2", "paths": ["src"]})
        assert [f["path"] for f in against["files"]] == ["src/app.py"]
        between = await ok(s, "git_diff", {"repo": "proj", "from": "main", "to": "feature", "context_lines": 0})
        assert "-Intro from main.\n+Intro from feature.\n" in between["diff"]
        await err(s, "git_diff", {"repo": "proj", "to": "main"}, "invalid_argument")

        # Paging: small pages put back together equal the whole diff.
        whole = (await ok(s, "git_diff", {"repo": "proj", "from": c["init"], "to": "feature"}))["diff"]
        pieces, offset = [], 0
        while True:
            page = await ok(s, "git_diff", {"repo": "proj", "from": c["init"], "to": "feature", "max_chars": 70, "offset": offset})
            pieces.append(page["diff"])
            assert len(page["diff"]) <= 70
            if not page["truncated"]:
                break
            offset = page["next_offset"]
        assert "".join(pieces) == whole and len(pieces) > 3
        await err(s, "git_diff", {"repo": "proj", "from": c["init"], "to": "feature", "offset": 10**6}, "invalid_argument")


async def test_write_workflow(tmp_path: Path) -> None:
    root, repo, c = project(tmp_path)
    async with git_session(root, destructive=True) as s:
        await err(s, "git_commit", {"repo": "proj", "message": "nothing"}, "nothing_to_commit")
        (repo / "src" / "app.py").write_text("changed\n")
        (repo / "new.txt").write_text("new\n")
        (repo / "logo.bin").unlink()
        added = await ok(s, "git_add", {"repo": "proj", "paths": ["."]})
        assert sorted(added["added"]) == ["new.txt", "src/app.py"] and added["removed"] == ["logo.bin"]
        un = await ok(s, "git_unstage", {"repo": "proj", "paths": ["new.txt", "logo.bin"]})
        assert sorted(un["unstaged"]) == ["logo.bin", "new.txt"]
        assert "new.txt" in (await ok(s, "git_status", {"repo": "proj"}))["untracked"]
        await err(s, "git_commit", {"repo": "proj", "message": "  \n"}, "invalid_argument")
        done = await ok(s, "git_commit", {"repo": "proj", "message": "Change app\n\nBody."})
        assert done["parents"] == [c["main"]] and done["branch"] == "main"
        assert done["author"] == "Repo User <repo@example.com>" and done["files_changed"] == 1
        assert run_git(repo, "log", "-1", "--format=%an|%s|%b").strip() == "Repo User|Change app|Body."

        made = await ok(s, "git_create_branch", {"repo": "proj", "name": "topic", "from": "HEAD~1"})
        assert made["commit"] == c["main"]
        await err(s, "git_create_branch", {"repo": "proj", "name": "topic"}, "already_exists")
        # Switching would overwrite the local change to README.md (it differs on feature).
        (repo / "README.md").write_text("local edit\n")
        msg = await err(s, "git_switch", {"repo": "proj", "branch": "feature"}, "would_overwrite_changes")
        assert "README.md" in msg
        assert (repo / "README.md").read_text() == "local edit\n"
        assert run_git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
        stash = await ok(s, "git_stash_push", {"repo": "proj", "message": "readme edit"})
        assert (repo / "README.md").read_text() == "# Project\n\nIntro from main.\n"
        stashes = await ok(s, "git_stash_list", {"repo": "proj"})
        assert stashes["stashes"][0]["hash"] == stash["hash"] and "readme edit" in stashes["stashes"][0]["message"]
        sw = await ok(s, "git_switch", {"repo": "proj", "branch": "feature"})
        assert sw["previous"] == "main" and (repo / "README.md").read_text() == "# Project\n\nIntro from feature.\n"
        await ok(s, "git_switch", {"repo": "proj", "branch": "main"})
        await err(s, "git_switch", {"repo": "proj", "branch": "nope"}, "not_found")

        (repo / "src" / "app.py").write_text("scratch\n")
        restored = await ok(s, "git_restore", {"repo": "proj", "paths": ["src/app.py"]})
        assert restored["restored"] == ["src/app.py"] and (repo / "src" / "app.py").read_text() == "changed\n"
        head = run_git(repo, "rev-parse", "HEAD").strip()
        reset = await ok(s, "git_reset", {"repo": "proj", "rev": "HEAD~1", "mode": "mixed"})
        assert reset["previous"] == head and reset["head"] == c["main"]
        assert (repo / "src" / "app.py").read_text() == "changed\n"
        await ok(s, "git_reset", {"repo": "proj", "rev": head, "mode": "hard"})
        assert run_git(repo, "rev-parse", "HEAD").strip() == head

        await err(s, "git_delete_branch", {"repo": "proj", "name": "main"}, "invalid_argument")
        msg = await err(s, "git_delete_branch", {"repo": "proj", "name": "feature"}, "invalid_argument")
        assert "force" in msg
        deleted = await ok(s, "git_delete_branch", {"repo": "proj", "name": "feature", "force": True})
        assert deleted["commit"] == c["feature"]
        await ok(s, "git_delete_branch", {"repo": "proj", "name": "topic"})
        assert run_git(repo, "branch", "--format=%(refname:short)").split() == ["main"]


async def test_operator_identity_and_merge_conflicts(tmp_path: Path) -> None:
    root, repo, c = project(tmp_path)
    config = tmp_path / "bastion.toml"
    config.write_text('[git]\nauthor_name = "Operator Bot"\nauthor_email = "bot@example.org"\n')
    run_git(repo, "merge", "feature", check=False)
    async with git_session(root, write=True, config=config) as s:
        st = await ok(s, "git_status", {"repo": "proj"})
        assert st["in_progress"] == "merge" and st["conflicted"] == ["README.md"]
        msg = await err(s, "git_commit", {"repo": "proj", "message": "merge"}, "merge_conflict")
        assert "README.md" in msg
        await err(s, "git_switch", {"repo": "proj", "branch": "feature"}, "merge_conflict")
        (repo / "README.md").write_text("# Project\n\nIntro from both.\n")
        await ok(s, "git_add", {"repo": "proj", "paths": ["README.md"]})
        merged = await ok(s, "git_commit", {"repo": "proj", "message": "Merge feature"})
        assert merged["parents"] == [c["main"], c["feature"]]
        assert merged["author"] == "Operator Bot <bot@example.org>"
        after = await ok(s, "git_status", {"repo": "proj"})
        assert "in_progress" not in after and after["clean"] is True


async def test_unborn_repository_and_bare_errors(tmp_path: Path) -> None:
    root = tmp_path / "root"
    repo = init_repo(root / "empty")
    run_git(root, "init", "-q", "--bare", "bare.git")
    async with git_session(root, write=True) as s:
        st = await ok(s, "git_status", {"repo": "empty"})
        assert st["branch"] == "main" and "head" not in st and st["clean"] is True
        assert (await ok(s, "git_log", {"repo": "empty"}))["commits"] == []
        (repo / "first.txt").write_text("1\n")
        await ok(s, "git_add", {"repo": "empty", "paths": ["first.txt"]})
        first = await ok(s, "git_commit", {"repo": "empty", "message": "First"})
        assert first["parents"] == []
        await err(s, "git_status", {"repo": "bare.git"}, "not_a_repository")
        assert (await ok(s, "git_log", {"repo": "bare.git"}))["commits"] == []
