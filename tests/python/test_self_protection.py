"""Bastion's own state out of reach of its tools (issue 13, item 1), end to end.

The attack of the issue, replayed: ``bastion serve --root PROJECT --allow-write --state-dir
PROJECT/.bst --allow-state-in-root``, a token of only ``fs:read,fs:write``, and that token trying
to read the token records and the journal, overwrite the token file with a ``*:*`` record for a
secret it knows, find the state by searching the root, or reach it through the shell. Every
attempt is refused with ``protected_path`` (or finds nothing), the token file is unchanged, and
the token still cannot call ``shell__run_command``. Also: a state directory inside a root is
refused at start without ``--allow-state-in-root`` (exit 2, one line), and a state directory
other users can write is not trusted. Desktop Commander #374 ("no tool, argument or upstream
can change policy, config or the upstream list") is replayed on the hub's own config file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fsclient import bastion_binary as bastion
from fsclient import err as fs_err
from fsclient import free_port, fs_binary, fs_session, server_params, stdio_session
from test_hub import TIMEOUT, Hub, call, http_session, refused_for_scope, running_hub

pytestmark = pytest.mark.anyio

FORGED_SECRET = "bst_" + "f" * 43


def error_code(err: bool, data: object, text: str) -> str | None:
    if not err:
        return None
    assert isinstance(data, dict), text
    return str(data.get("code"))


@contextmanager
def hub_with_state_in_root(base: Path) -> Iterator[Hub]:
    project = base / "project"
    project.mkdir()
    (project / "hello.txt").write_text("hello\n")
    (project / "bastion.toml").write_text("# the hub's own configuration\n")
    with running_hub(base, "--allow-write", "--allow-state-in-root", "--config", str(project / "bastion.toml"),
                     root=project, state=project / ".bst", rust_log=None) as h:
        yield h


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with hub_with_state_in_root(tmp_path_factory.mktemp("selfprot")) as h:
        yield h


async def test_an_fs_token_cannot_reach_the_state_in_its_root(hub: Hub) -> None:
    fs_token = hub.create_token("fs-only", "fs:read,fs:write")
    tokens_file = hub.state / "auth.sqlite3"
    assert tokens_file.exists()

    def token_list() -> str:
        return subprocess.run([bastion(), "token", "list", "--state-dir", str(hub.state)], check=True,
                              capture_output=True, text=True).stdout

    before = token_list()
    assert "fs-only" in before
    forged = json.dumps([{"name": "forged", "hash": hashlib.sha256(FORGED_SECRET.encode()).hexdigest(),
                          "scopes": ["*:*"]}])
    async with http_session(hub, fs_token) as s:
        for path in [".bst/auth.sqlite3", ".bst/tokens.json", ".bst/audit.jsonl", ".bst", ".BST/tokens.json", "./.bst/../.bst/tokens.json",
                     str(tokens_file), "bastion.toml"]:
            for tool, args in [
                ("fs__read_file", {"path": path}),
                ("fs__file_info", {"path": path}),
                ("fs__list_directory", {"path": path}),
                ("fs__write_file", {"path": path, "content": forged, "overwrite": True}),
                ("fs__edit_file", {"path": path, "old_text": "fs-only", "new_text": "forged"}),
                ("fs__move_path", {"source": path, "destination": "moved"}),
                ("fs__create_directory", {"path": f"{path}/sub"}),
                ("fs__search_text", {"pattern": "fs-only", "path": path}),
                ("fs__find_files", {"pattern": "*", "path": path}),
            ]:
                err, data, text = await call(s, tool, args)
                assert error_code(err, data, text) == "protected_path", (tool, path, text)
                assert "Bastion's own state" in text and str(hub.root.parent) not in text, text
        # A new file in the state directory, through a link to it, is refused too.
        err, data, text = await call(s, "fs__write_file", {"path": ".bst/tokens.json.new", "content": forged})
        assert error_code(err, data, text) == "protected_path", text
        # Walks and listings do not see it.
        for args in [{"pattern": "fs-only"}, {"pattern": "fs-only", "include_hidden": True},
                     {"pattern": "fs-only", "path": "."}]:
            err, data, text = await call(s, "fs__search_text", args)
            assert not err and ".bst" not in text and "fs-only" not in text, (args, text)
        err, data, text = await call(s, "fs__find_files", {"pattern": "*.json*"})
        assert not err and ".bst" not in text, text
        err, data, text = await call(s, "fs__list_directory", {"depth": 3})
        assert not err and ".bst" not in text and "bastion.toml" not in text and "hello.txt" in text, text
        err, data, text = await call(s, "fs__read_many_files", {"paths": [".bst/tokens.json", "hello.txt"]})
        assert "fs-only" not in text and "hello" in text, text
    assert token_list() == before
    assert not (hub.state / "tokens.json.new").exists()
    # The token did not give itself any shell scope (the default shell profile is read-only, so
    # run_command needs shell:read here; shell:exec with an exec profile), and the forged secret
    # is no token.
    refused_for_scope(hub, fs_token, "shell__run_command", {"program": "cat", "args": [".bst/tokens.json"]},
                      "shell:read")
    status, _, _ = hub.raw({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, token=FORGED_SECRET)
    assert status == 401


async def test_the_shell_cannot_reach_the_state_in_its_root(hub: Hub) -> None:
    async with http_session(hub, hub.token) as s:
        for args in [["cat", ".bst/tokens.json"], ["cat", ".bst/auth.sqlite3"], ["cat", "bastion.toml"], ["ls", "-la", ".bst"],
                     ["head", "-c", "100", ".bst/audit.jsonl"]]:
            err, data, text = await call(s, "shell__run_command", {"program": args[0], "args": args[1:]})
            assert error_code(err, data, text) == "protected_path", (args, text)
        for cwd in [".bst", ".BST", "./.bst/"]:
            err, data, text = await call(s, "shell__run_command", {"program": "ls", "args": [], "cwd": cwd})
            assert error_code(err, data, text) == "protected_path", (cwd, text)
        err, data, text = await call(s, "git__status", {"repo": ".bst"})
        assert error_code(err, data, text) == "protected_path", text
        # A recursive search over the root runs, and the sandbox shows it nothing of the state.
        err, data, text = await call(s, "shell__run_command", {"program": "grep", "args": ["-r", "scopes", "."]})
        assert "owner" not in text and "fs-only" not in text and ".bst/tokens.json" not in text, text
        err, data, text = await call(s, "shell__run_command", {"program": "ls", "args": ["-la", "."]})
        assert not err and "hello.txt" in text, text
        err, data, text = await call(s, "shell__run_command", {"program": "find", "args": [".", "-name", "*.json"]})
        assert "tokens.json" not in text, text


async def test_git_cannot_reach_the_state_in_its_root(hub: Hub) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    for cmd in (["git", "init", "-q"], ["git", "add", "hello.txt"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=hub.root, env=env, check=True, capture_output=True)
    async with http_session(hub, hub.token) as s:
        err, data, text = await call(s, "git__add", {"paths": [".bst/tokens.json"]})
        assert error_code(err, data, text) == "protected_path", text
        err, data, text = await call(s, "git__status", {})
        assert not err and ".bst" not in text, text


async def test_desktop_commander_374_no_tool_changes_config_or_upstreams(hub: Hub) -> None:
    """Desktop Commander #374 and the 2026 "STDIO command" class: the hub's config file (which
    lists the upstreams and their commands) cannot be written, moved or replaced by any tool, and
    no tool offered changes policy, configuration or upstreams."""
    config = hub.root / "bastion.toml"
    before = config.read_bytes()
    evil = '[[upstream]]\nname = "evil"\ncommand = "sh"\nargs = ["-c", "touch /tmp/pwned"]\n'
    async with http_session(hub, hub.token) as s:
        for tool, args in [
            ("fs__write_file", {"path": "bastion.toml", "content": evil, "overwrite": True}),
            ("fs__move_path", {"source": "hello.txt", "destination": "bastion.toml", "overwrite": True}),
            ("fs__apply_patch", {"patch": "--- a/bastion.toml\n+++ b/bastion.toml\n@@ -1 +1 @@\n-# the hub's own configuration\n+x\n"}),
        ]:
            err, data, text = await call(s, tool, args)
            assert error_code(err, data, text) == "protected_path", (tool, text)
        tools = [t.name for t in (await s.list_tools()).tools]
    assert not [t for t in tools if any(w in t for w in ("config", "policy", "upstream", "scope", "setting", "permission"))], tools
    assert config.read_bytes() == before


def test_a_state_dir_inside_a_root_is_refused_at_start(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    r = subprocess.run(
        [str(bastion()), "serve", "--root", str(project), "--state-dir", str(project / ".bst"),
         "--listen", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--allow-state-in-root" in lines[0] and "state directory" in lines[0], r.stderr
    assert not (project / ".bst").exists()


def test_a_state_dir_others_can_write_is_not_trusted(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    (state / "tokens.json").write_text("[]")
    os.chmod(state, 0o700)
    os.chmod(state / "tokens.json", 0o666)
    cmd = [str(bastion()), "serve", "--root", str(project), "--state-dir", str(state),
           "--listen", f"127.0.0.1:{free_port()}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 2 and "chmod 600" in r.stderr and "tokens.json" in r.stderr, r.stderr
    os.chmod(state / "tokens.json", 0o600)
    os.chmod(state, 0o777)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 2 and "chmod 700" in r.stderr, r.stderr


async def test_a_standalone_server_protects_its_config_journal_and_binary(tmp_path: Path) -> None:
    """``bastion-fs`` alone: its own ``--config``, ``--audit-log`` and binary are protected, even
    inside its root, and a ``--protect`` path (what the hub passes) is refused too."""
    root = tmp_path / "project"
    (root / "logs").mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "state").mkdir()
    (root / "hello.txt").write_text("hello\n")
    (root / "fs.toml").write_text("max_tier = \"write\"\n")
    (root / "state" / "owner-secret").write_text("s3cret\n")
    binary = root / "bin" / "bastion-fs"
    binary.write_bytes(fs_binary().read_bytes())
    binary.chmod(0o755)
    journal = root / "logs" / "audit.jsonl"
    async with fs_session(root, config=root / "fs.toml", audit_log=journal,
                          extra_args=["--protect", str(root / "state")]) as s:
        for path in ["fs.toml", "logs/audit.jsonl", "state/owner-secret", "STATE"]:
            await fs_err(s, "read_file", {"path": path}, "protected_path")
            await fs_err(s, "write_file", {"path": path, "content": "max_tier = \"destructive\"\n", "overwrite": True},
                         "protected_path")
        listing = await s.call_tool("list_directory", {"depth": 3})
        text = "".join(getattr(c, "text", "") for c in listing.content)
        assert "hello.txt" in text and "fs.toml" not in text and "audit.jsonl" not in text, text
    assert (root / "fs.toml").read_text() == "max_tier = \"write\"\n"
    # The binary the server runs as is protected where it lies: a copy started from inside the
    # root cannot read or replace itself.
    launch = server_params(root, write=True)
    launch.command = str(binary)
    async with stdio_session(launch, "bastion-fs") as s:
        await fs_err(s, "read_file", {"path": "bin/bastion-fs"}, "protected_path")
        await fs_err(s, "write_file", {"path": "bin/bastion-fs", "content": "#!/bin/sh\n", "overwrite": True},
                     "protected_path")
        await fs_err(s, "move_path", {"source": "bin", "destination": "bin2"}, "protected_path")
        ok_text = (await s.call_tool("read_file", {"path": "hello.txt"})).content[0]
        assert "hello" in getattr(ok_text, "text", "")
    assert binary.read_bytes()[:4] == b"\x7fELF"
