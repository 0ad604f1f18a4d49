"""Tool search through the official SDK over HTTP: with ``tool_search = "on"`` the hub lists
``find_tools`` and ``call_tool``; ``find_tools`` finds the intended tool of each task among the
built-ins and ``server-everything``; ``call_tool`` is refused for a tool the token has no scope
for exactly like a direct call (HTTP 403 with the scope challenge), and the journal names the
real tool.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_hub import Hub, _init_repo, call, http_session, names, refused_for_scope, running_hub
from test_hub_upstreams import everything

pytestmark = pytest.mark.anyio

# (task, the tool meant): the Rust selection eval's tasks (crates/hub/tests/context.rs) and a few
# of server-everything's.
TASKS = [
    ("read the contents of src/main.rs", "fs__read_file"),
    ("list what is in the src directory", "fs__list_directory"),
    ("find files by name matching *.toml", "fs__find_files"),
    ("search file contents for TODO with a regex", "fs__search_text"),
    ("create a new file with this content", "fs__write_file"),
    ("replace exact text in config.py", "fs__edit_file"),
    ("rename old.txt to new.txt", "fs__move_path"),
    ("which branch am I on and what is staged or untracked", "git__status"),
    ("show the diff of my unstaged changes", "git__diff"),
    ("show the commit history of the repository", "git__log"),
    ("who last changed each line of this file", "git__blame"),
    ("run cargo test and give me the exit code", "shell__run_command"),
    ("which programs am I allowed to run", "shell__list_allowed_commands"),
    ("add two numbers", "everything__get_sum"),
    ("echo a message back", "everything__echo"),
]


@pytest.fixture(scope="module")
def searching(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("toolsearch")
    root = base / "proj"
    root.mkdir()
    _init_repo(root)
    config = base / "bastion.toml"
    config.write_text(
        'tool_search = "on"\npinned_tools = ["fs__read_file"]\n'
        '[[upstream]]\nname = "fs"\nbuiltin = "fs"\nargs = ["--allow-write"]\n'
        '[[upstream]]\nname = "git"\nbuiltin = "git"\n'
        '[[upstream]]\nname = "shell"\nbuiltin = "shell"\nargs = ["--profile", "read-only"]\n'
        f'[[upstream]]\nname = "everything"\ncommand = "node"\nargs = [{json.dumps(everything())}, "stdio"]\n'
    )
    with running_hub(base, "--config", str(config), root=root) as h:
        yield h


async def test_search_lists_two_tools_and_finds_each_task(searching: Hub) -> None:
    async with http_session(searching, searching.token) as s:
        assert await names(s) == ["find_tools", "call_tool", "fs__read_file"]
        misses = []
        for task, want in TASKS:
            err, found, text = await call(s, "find_tools", {"query": task, "limit": 3})
            assert not err, text
            top = [t["name"] for t in found["tools"]]
            if want not in top:
                misses.append(f"{task!r}: {want} not in {top}")
        assert not misses, "\n".join(misses)
        err, _, text = await call(s, "call_tool", {"name": "fs__read_file", "arguments": {"path": "hello.txt"}})
        assert not err and "hello from the hub" in text, text


async def test_call_tool_enforces_scopes_like_a_direct_call(searching: Hub) -> None:
    reader = searching.create_token("searcher", "fs:read")
    # A direct call is refused with the scope challenge before any upstream.
    refused_for_scope(searching, reader, "fs__write_file", {"path": "x.txt", "content": "x"}, "fs:write")
    async with http_session(searching, reader) as s:
        # find_tools only finds what the token may call.
        _, found, _ = await call(s, "find_tools", {"query": "create a new file with this content"})
        assert all(t["name"].startswith("fs__") for t in found["tools"]), found
        assert "fs__write_file" not in [t["name"] for t in found["tools"]]
    # Through call_tool: the same 403 scope challenge, naming the scope of the tool it calls.
    refused_for_scope(
        searching, reader, "call_tool", {"name": "fs__write_file", "arguments": {"path": "x.txt", "content": "x"}}, "fs:write"
    )
    assert not (searching.root / "x.txt").exists()
    journal = [json.loads(l) for l in (searching.state / "audit.jsonl").read_text().splitlines()]
    mine = [r for r in journal if r.get("principal") == "searcher"]
    assert [r["tool"] for r in mine if r["outcome"] == "insufficient_scope"] == ["fs__write_file", "fs__write_file"], mine
    assert not any(r.get("tool") == "call_tool" for r in journal)
