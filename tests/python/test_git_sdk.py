"""``bastion-git`` through the official MCP Python SDK over stdio: the one end-to-end check with an
independent client. The behaviour of every tool (``crates/git-server/tests/workflow.rs``) and the
hostile inputs (``hostile.rs``, ``booby_trap.rs``) are tested in Rust through the same binary.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gitclient import READ_TOOLS, WRITE_TOOLS, call, err, git_session, init_repo, list_all_tools, ok, run_git

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


async def test_sdk_session_lists_reads_and_reports_errors(tmp_path: Path) -> None:
    root = tmp_path / "root"
    repo = init_repo(root / "proj")
    (repo / "README.md").write_text("# Project\n")
    run_git(repo, "add", "README.md")
    run_git(repo, "commit", "-q", "-m", "Initial commit")
    head = run_git(repo, "rev-parse", "HEAD").strip()
    async with git_session(root, write=True) as s:
        tools = await list_all_tools(s)
        assert sorted(t.name for t in tools) == sorted(READ_TOOLS + WRITE_TOOLS)
        for t in tools:
            assert t.annotations is not None and t.title and t.description and t.output_schema is None, t.name
        log = await ok(s, "log", {"repo": "proj"})
        assert [c["hash"] for c in log["commits"]] == [head] and log["commits"][0]["subject"] == "Initial commit"
        await err(s, "show", {"repo": "proj", "rev": "no-such-branch"}, "invalid_revision")
        await err(s, "status", {"repo": "../elsewhere"}, "path_outside_root")
        is_error, structured, text = await call(s, "commit", {"repo": "proj", "message": "nothing"})
        assert is_error and structured["code"] == "nothing_to_commit" and text.startswith("nothing_to_commit: ")
