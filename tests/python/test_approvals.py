"""Approvals, modes and pause, end to end with the official MCP Python SDK.

Over stdio a server alone (``bastion fs --allow-destructive``) decides in its own call path;
over HTTP the hub (``bastion serve --allow-write``) decides in its router. The person's side is
the real CLI (``bastion approvals --json``, ``approve``, ``deny``, ``mode``, ``pause``,
``resume``) against the control socket in a per-test state directory. Every test checks the
disk (nothing changed when refused) and the journal.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import threading
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp.types as types
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from fsclient import bastion_binary, call, error_code, stdio_session
from test_hub import Hub, running_hub

pytestmark = pytest.mark.anyio

TIMEOUT = 30.0
EXECUTE_ON_OPEN = [
    ".mcp.json",
    ".cursor/mcp.json",
    ".vscode/settings.json",
    ".vscode/tasks.json",
    ".vscode/launch.json",
    ".claude/settings.json",
    ".envrc",
    ".github/workflows/ci.yml",
    ".gitlab-ci.yml",
    ".pre-commit-config.yaml",
    ".devcontainer/devcontainer.json",
]


# ---------------------------------------------------------------------------------------------
# helpers


def cli(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs ``bastion ARGS --state-dir STATE``."""
    r = subprocess.run(
        [str(bastion_binary()), *args, "--state-dir", str(state)], capture_output=True, text=True, timeout=TIMEOUT
    )
    if check:
        assert r.returncode == 0, f"bastion {' '.join(args)}: {r.stdout}{r.stderr}"
    return r


def pending(state: Path) -> list[dict[str, Any]]:
    r = cli(state, "approvals", "--json", check=False)
    if r.returncode != 0:
        return []
    return json.loads(r.stdout)


async def wait_pending(state: Path, count: int = 1) -> list[dict[str, Any]]:
    """Polls ``bastion approvals --json`` until ``count`` requests are pending."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        got = await anyio.to_thread.run_sync(pending, state)
        if len(got) >= count:
            return got
        await anyio.sleep(0.1)
    pytest.fail(f"no pending approval appeared in {state}")


def journal(path: Path) -> list[dict[str, Any]]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []


def events(path: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in journal(path) if e.get("event") == name]


def fs_params(root: Path, state: Path, audit: Path, *, config: Path | None = None) -> StdioServerParameters:
    args = ["fs", "--root", str(root), "--allow-destructive", "--state-dir", str(state), "--audit-log", str(audit)]
    if config is not None:
        args += ["--config", str(config)]
    return StdioServerParameters(command=str(bastion_binary()), args=args, env={"RUST_BACKTRACE": "1"})


@asynccontextmanager
async def fs(tmp: Path, config: str | None = None, **session: Any) -> AsyncIterator[tuple[ClientSession, Path, Path, Path]]:
    """A standalone fs server on ``tmp/proj``; yields (session, root, state dir, journal)."""
    root, state, audit = tmp / "proj", tmp / "state", tmp / "audit.jsonl"
    root.mkdir(exist_ok=True)
    cfg = None
    if config is not None:
        cfg = tmp / "policy.toml"
        cfg.write_text(config)
    async with stdio_session(fs_params(root, state, audit, config=cfg), "bastion-fs", **session) as s:
        yield s, root, state, audit


async def code_of(session: ClientSession, tool: str, args: dict[str, Any]) -> tuple[str | None, str]:
    is_error, structured, text = await call(session, tool, args, timeout=TIMEOUT)
    return error_code(is_error, structured, text), text


# ---------------------------------------------------------------------------------------------
# stdio: a server alone


async def test_a_destructive_call_asks_and_runs_once_approved(tmp_path: Path) -> None:
    async with fs(tmp_path) as (s, root, state, audit):
        (root / "old.txt").write_text("first line\nsecond line\n")
        (root / "keep.txt").write_text("x")
        # Reads and ordinary writes are not asked about.
        assert (await code_of(s, "read_file", {"path": "keep.txt"}))[0] is None
        assert (await code_of(s, "write_file", {"path": "new.txt", "content": "n"}))[0] is None
        async with anyio.create_task_group() as tg:
            result: dict[str, Any] = {}

            async def delete() -> None:
                result["r"] = await code_of(s, "delete_path", {"path": "old.txt"})

            tg.start_soon(delete)
            [p] = await wait_pending(state)
            assert (p["server"], p["tool"], p["tier"], p["principal"]) == ("fs", "delete_path", "destructive", "local")
            assert p["rule"] == "default: destructive" and p["mode"] == "hold"
            assert "delete old.txt" in p["rendering"] and "-second line" in p["rendering"], p["rendering"]
            assert (root / "old.txt").exists(), "nothing runs before the decision"
            human = cli(state, "approvals").stdout
            assert p["id"] in human and "-second line" in human and f"bastion approve {p['id']}" in human
            assert "approved" in cli(state, "approve", p["id"]).stdout
        assert result["r"][0] is None, result
        assert not (root / "old.txt").exists()
        # The id is spent: a replay is refused.
        again = cli(state, "approve", p["id"], check=False)
        assert again.returncode != 0 and "no pending approval" in again.stderr
    [req] = events(audit, "approval_request")
    [dec] = events(audit, "approval_decision")
    assert req["detail"]["tool"] == "delete_path" and req["detail"]["args_sha256"]
    assert dec["detail"]["decision"] == "approved" and dec["detail"]["channel"] == "cli"
    assert dec["detail"]["wait_ms"] > 0
    assert [e["outcome"] for e in journal(audit) if e.get("tool") == "delete_path"] == ["ok"]


async def test_deny_refuses_and_changes_nothing(tmp_path: Path) -> None:
    async with fs(tmp_path) as (s, root, state, audit):
        (root / "old.txt").write_text("keep me\n")
        async with anyio.create_task_group() as tg:
            result: dict[str, Any] = {}

            async def delete() -> None:
                result["r"] = await code_of(s, "delete_path", {"path": "old.txt"})

            tg.start_soon(delete)
            [p] = await wait_pending(state)
            cli(state, "deny", p["id"], "--reason", "not today")
        code, text = result["r"]
        assert code == "approval_denied" and "not today" in text
        assert (root / "old.txt").read_text() == "keep me\n"
    [dec] = events(audit, "approval_decision")
    assert (dec["detail"]["decision"], dec["detail"]["reason"]) == ("denied", "not today")


async def test_nobody_deciding_times_out(tmp_path: Path) -> None:
    async with fs(tmp_path, '[approval]\napproval_timeout = "1s"\n') as (s, root, state, audit):
        (root / "old.txt").write_text("x")
        code, text = await code_of(s, "delete_path", {"path": "old.txt"})
        assert code == "approval_timeout", text
        assert (root / "old.txt").exists()
        assert pending(state) == []
    assert len(events(audit, "approval_expired")) == 1


async def test_return_mode_binds_the_approval_to_the_exact_call_once(tmp_path: Path) -> None:
    async with fs(tmp_path, '[approval]\nmode = "return"\n') as (s, root, state, audit):
        for name in ["a.txt", "b.txt"]:
            (root / name).write_text(name)
        code, text = await code_of(s, "delete_path", {"path": "a.txt"})
        assert code == "approval_pending", text
        [p] = pending(state)
        assert p["id"] in text and "retry exactly the same call" in text
        # Retrying before the decision gets the same request, not a second one.
        code, text = await code_of(s, "delete_path", {"path": "a.txt"})
        assert code == "approval_pending" and p["id"] in text
        assert len(pending(state)) == 1
        cli(state, "approve", p["id"])
        # The approval does not cover other arguments.
        code, text = await code_of(s, "delete_path", {"path": "b.txt"})
        assert code == "approval_pending" and p["id"] not in text
        assert (root / "b.txt").exists()
        # The same call runs, once.
        assert (await code_of(s, "delete_path", {"path": "a.txt"}))[0] is None
        assert not (root / "a.txt").exists()
        (root / "a.txt").write_text("again")
        code, text = await code_of(s, "delete_path", {"path": "a.txt"})
        assert code == "approval_pending" and p["id"] not in text, "a second call needs a second approval"
        assert (root / "a.txt").exists()
        # The spent id cannot be replayed.
        assert cli(state, "approve", p["id"], check=False).returncode != 0
    assert len(events(audit, "approval_used")) == 1


async def test_return_mode_approvals_expire(tmp_path: Path) -> None:
    async with fs(tmp_path, '[approval]\nmode = "return"\napproval_timeout = "1s"\n') as (s, root, state, audit):
        (root / "a.txt").write_text("a")
        code, _ = await code_of(s, "delete_path", {"path": "a.txt"})
        [p] = pending(state)
        cli(state, "approve", p["id"])
        await anyio.sleep(1.5)
        code, _ = await code_of(s, "delete_path", {"path": "a.txt"})
        assert code == "approval_pending"
        assert (root / "a.txt").exists()


async def test_a_file_changed_after_the_request_is_stale(tmp_path: Path) -> None:
    async with fs(tmp_path) as (s, root, state, audit):
        (root / ".envrc").write_text("export A=1\n")
        async with anyio.create_task_group() as tg:
            result: dict[str, Any] = {}

            async def write() -> None:
                result["r"] = await code_of(s, "write_file", {"path": ".envrc", "content": "export A=2\n"})

            tg.start_soon(write)
            [p] = await wait_pending(state)
            assert p["rule"] == "default: execute-on-open"
            assert "-export A=1" in p["rendering"] and "+export A=2" in p["rendering"]
            (root / ".envrc").write_text("export A=3\n")
            cli(state, "approve", p["id"])
        code, text = result["r"]
        assert code == "stale", text
        assert (root / ".envrc").read_text() == "export A=3\n", "nothing was written"


async def test_a_held_call_sends_progress_while_it_waits(tmp_path: Path) -> None:
    async with fs(tmp_path) as (s, root, state, audit):
        (root / "old.txt").write_text("x")
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        async with anyio.create_task_group() as tg:
            result: dict[str, Any] = {}

            async def delete() -> None:
                with anyio.fail_after(TIMEOUT):
                    result["r"] = await s.call_tool("delete_path", {"path": "old.txt"}, progress_callback=on_progress)

            tg.start_soon(delete)
            [p] = await wait_pending(state)
            # Progress comes every 5 seconds.
            deadline = time.monotonic() + 12
            while not seen and time.monotonic() < deadline:
                await anyio.sleep(0.2)
            cli(state, "approve", p["id"])
        assert not result["r"].is_error
        assert seen, "no progress notification while waiting"
        assert p["id"] in (seen[0][2] or "") and seen[0][1] == 300.0


async def test_an_edit_is_shown_as_the_tools_own_dry_run_diff(tmp_path: Path) -> None:
    async with fs(tmp_path, '[approval]\nmode = "return"\n') as (s, root, state, audit):
        (root / ".vscode").mkdir()
        (root / ".vscode" / "settings.json").write_text('{\r\n  "a": 1,\r\n  "b": 2\r\n}\r\n')
        args = {"path": ".vscode/settings.json", "old_text": '"b": 2', "new_text": '"b": 3'}
        code, _ = await code_of(s, "edit_file", args)
        assert code == "approval_pending"
        [p] = pending(state)
        r = p["rendering"]
        assert r.startswith("edit .vscode/settings.json") and '-  "b": 2' in r and '+  "b": 3' in r, r
        assert '"b": 2' in (root / ".vscode" / "settings.json").read_text(), "the dry run wrote nothing"


@pytest.mark.parametrize("path", EXECUTE_ON_OPEN)
async def test_writes_to_execute_on_open_files_ask(tmp_path: Path, path: str) -> None:
    async with fs(tmp_path, '[approval]\nmode = "return"\n') as (s, root, state, audit):
        args = {"path": path, "content": "{}\n", "create_parents": True}
        code, text = await code_of(s, "write_file", args)
        assert code == "approval_pending", text
        assert not (root / path).exists()
        [p] = pending(state)
        assert p["rule"] == "default: execute-on-open" and p["tool"] == "write_file"
        cli(state, "approve", p["id"])
        assert (await code_of(s, "write_file", args))[0] is None
        assert (root / path).read_text() == "{}\n"
        # Moving one away, or onto one, asks too.
        code, _ = await code_of(s, "move_path", {"source": path, "destination": "moved.json"})
        assert code == "approval_pending"
        (root / "plain.json").write_text("{}")
        code, _ = await code_of(s, "move_path", {"source": "plain.json", "destination": path, "overwrite": True})
        assert code == "approval_pending"


async def test_a_link_to_an_execute_on_open_file_asks(tmp_path: Path) -> None:
    async with fs(tmp_path, '[approval]\nmode = "return"\n') as (s, root, state, audit):
        (root / ".vscode").mkdir()
        (root / ".vscode" / "tasks.json").write_text("{}")
        os.symlink(".vscode", root / "editor")
        code, text = await code_of(s, "edit_file", {"path": "editor/tasks.json", "old_text": "{}", "new_text": "[]"})
        assert code == "approval_pending", text
        assert pending(state)[0]["rule"] == "default: execute-on-open"


async def test_observe_and_pause_take_effect_on_the_next_call(tmp_path: Path) -> None:
    async with fs(tmp_path) as (s, root, state, audit):
        (root / "f.txt").write_text("f")
        assert "mode observe" in cli(state, "mode", "observe").stdout
        code, _ = await code_of(s, "write_file", {"path": "g.txt", "content": "g"})
        assert code == "mode_observe" and not (root / "g.txt").exists()
        assert (await code_of(s, "read_file", {"path": "f.txt"}))[0] is None
        cli(state, "mode", "normal")
        assert (await code_of(s, "write_file", {"path": "g.txt", "content": "g"}))[0] is None
        assert "paused" in cli(state, "pause").stdout
        assert (await code_of(s, "read_file", {"path": "f.txt"}))[0] == "paused"
        cli(state, "resume")
        assert (await code_of(s, "read_file", {"path": "f.txt"}))[0] is None
    names = [e["event"] for e in journal(audit) if "event" in e and e["event"] != "start"]
    assert names == ["mode_change", "mode_change", "pause", "resume"], names
    assert all(e["detail"]["channel"] == "cli" for e in journal(audit) if e.get("event") in ("pause", "resume"))


async def test_no_tool_reaches_the_control_socket(tmp_path: Path) -> None:
    async with fs(tmp_path) as (s, root, state, audit):
        tools = [t.name for t in (await s.list_tools()).tools]
        assert not [t for t in tools if "approv" in t or "mode" in t or "pause" in t]
        [sock] = list((state / "control").glob("*.sock"))
        assert oct(sock.stat().st_mode & 0o777) == "0o600"
        assert oct((state / "control").stat().st_mode & 0o777) == "0o700"
        for path in [str(sock), str(state), "../state/control"]:
            code, _ = await code_of(s, "read_file", {"path": path})
            assert code == "path_outside_root", path


async def test_elicitation_approves_and_declines_in_the_client(tmp_path: Path) -> None:
    answers = ["accept", "decline"]
    asked: list[str] = []

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action=answers[len(asked) - 1], content={} if len(asked) == 1 else None)

    config = "[approval]\napprove_via_elicitation = true\n"
    async with fs(tmp_path, config, elicitation_callback=on_elicit) as (s, root, state, audit):
        (root / "a.txt").write_text("a")
        (root / "b.txt").write_text("b")
        assert (await code_of(s, "delete_path", {"path": "a.txt"}))[0] is None
        assert not (root / "a.txt").exists()
        code, _ = await code_of(s, "delete_path", {"path": "b.txt"})
        assert code == "approval_denied"
        assert (root / "b.txt").exists()
    assert len(asked) == 2 and "bastion approvals" in asked[0]
    decisions = [(e["detail"]["decision"], e["detail"]["channel"]) for e in events(audit, "approval_decision")]
    assert decisions == [("approved", "elicitation"), ("denied", "elicitation")]


async def test_no_elicitation_for_a_client_that_did_not_declare_it(tmp_path: Path) -> None:
    config = "[approval]\napprove_via_elicitation = true\n"
    async with fs(tmp_path, config) as (s, root, state, audit):
        (root / "a.txt").write_text("a")
        async with anyio.create_task_group() as tg:
            result: dict[str, Any] = {}

            async def delete() -> None:
                result["r"] = await code_of(s, "delete_path", {"path": "a.txt"})

            tg.start_soon(delete)
            [p] = await wait_pending(state)
            cli(state, "approve", p["id"])
        assert result["r"][0] is None
    assert [e["detail"]["channel"] for e in events(audit, "approval_decision")] == ["cli"]


# ---------------------------------------------------------------------------------------------
# HTTP: the hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    config = tmp_path / "hub.toml"
    config.write_text('[approval]\nmode = "return"\n')
    with running_hub(tmp_path, "--allow-write", "--config", str(config)) as h:
        yield h


@pytest.fixture
def holding_hub(tmp_path: Path) -> Iterator[Hub]:
    with running_hub(tmp_path, "--allow-write") as h:
        yield h


@asynccontextmanager
async def http_session(hub: Hub, token: str) -> AsyncIterator[ClientSession]:
    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0, read=300.0))
    async with client:
        async with streamable_http_client(f"http://127.0.0.1:{hub.port}/mcp", http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                with anyio.fail_after(TIMEOUT):
                    await session.initialize()
                yield session


async def test_hub_holds_an_execute_on_open_write_until_approved(holding_hub: Hub) -> None:
    h = holding_hub
    async with http_session(h, h.token) as s:
        async with anyio.create_task_group() as tg:
            result: dict[str, Any] = {}

            async def write() -> None:
                result["r"] = await code_of(s, "fs__write_file", {"path": ".mcp.json", "content": "{}"})

            tg.start_soon(write)
            [p] = await wait_pending(h.state)
            assert (p["server"], p["tool"], p["principal"]) == ("fs", "fs__write_file", "owner")
            assert "+{}" in p["rendering"]
            assert not (h.root / ".mcp.json").exists()
            cli(h.state, "approve", p["id"])
        assert result["r"][0] is None, result
        assert (h.root / ".mcp.json").read_text() == "{}"
        # Denied: nothing changes.
        async with anyio.create_task_group() as tg:

            async def write2() -> None:
                result["r"] = await code_of(s, "fs__write_file", {"path": ".mcp.json", "content": "{\"x\": 1}"})

            tg.start_soon(write2)
            [p] = await wait_pending(h.state)
            cli(h.state, "deny", p["id"])
        assert result["r"][0] == "approval_denied"
        assert (h.root / ".mcp.json").read_text() == "{}"
    audit = h.state / "audit.jsonl"
    assert [e["detail"]["decision"] for e in events(audit, "approval_decision")] == ["approved", "denied"]


async def test_hub_return_mode_binds_the_principal(hub: Hub) -> None:
    other = hub.create_token("other", "*:*")
    args = {"path": ".envrc", "content": "export A=1\n"}
    async with http_session(hub, hub.token) as owner, http_session(hub, other) as someone:
        code, text = await code_of(owner, "fs__write_file", args)
        assert code == "approval_pending", text
        [p] = pending(hub.state)
        assert p["principal"] == "owner"
        cli(hub.state, "approve", p["id"])
        # Another principal's identical call is not covered.
        code, _ = await code_of(someone, "fs__write_file", args)
        assert code == "approval_pending"
        assert not (hub.root / ".envrc").exists()
        assert (await code_of(owner, "fs__write_file", args))[0] is None
        assert (hub.root / ".envrc").exists()
        code, _ = await code_of(owner, "fs__write_file", args)
        assert code == "approval_pending", "single use"


async def test_hub_observe_and_pause(hub: Hub) -> None:
    async with http_session(hub, hub.token) as s:
        cli(hub.state, "mode", "observe")
        assert (await code_of(s, "fs__write_file", {"path": "n.txt", "content": "n"}))[0] == "mode_observe"
        assert (await code_of(s, "fs__list_directory", {"path": "."}))[0] is None
        cli(hub.state, "mode", "normal")
        cli(hub.state, "pause")
        assert (await code_of(s, "fs__list_directory", {"path": "."}))[0] == "paused"
        cli(hub.state, "resume")
        assert (await code_of(s, "fs__write_file", {"path": "n.txt", "content": "n"}))[0] is None
    names = [e["event"] for e in journal(hub.state / "audit.jsonl") if e.get("event")]
    assert names[-4:] == ["mode_change", "mode_change", "pause", "resume"], names


async def test_no_bearer_token_reaches_the_control_api(hub: Hub) -> None:
    async with http_session(hub, hub.token) as s:
        code, text = await code_of(s, "fs__write_file", {"path": ".envrc", "content": "x"})
        assert code == "approval_pending"
        tools = [t.name for t in (await s.list_tools()).tools]
        assert not [t for t in tools if "approv" in t or "pause" in t]
    [p] = pending(hub.state)
    for method, path, body in [
        ("POST", f"/approvals/{p['id']}/approve", b""),
        ("POST", "/control", json.dumps({"op": "approve", "id": p["id"]}).encode()),
        ("GET", "/approvals", b""),
        ("POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 1, "method": "approve", "params": {"id": p["id"]}}).encode()),
    ]:
        conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=TIMEOUT)
        headers = {"Authorization": f"Bearer {hub.token}", "Content-Type": "application/json",
                   "Accept": "application/json, text/event-stream"}
        conn.request(method, path, body=body, headers=headers)
        conn.getresponse().read()
        conn.close()
    [still] = pending(hub.state)
    assert still["id"] == p["id"], "still pending: nothing over HTTP decided it"


async def test_hub_stateful_sessions_are_asked_through_elicitation(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text("[approval]\napprove_via_elicitation = true\n")
    asked: list[str] = []

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={})

    with running_hub(tmp_path, "--allow-write", "--stateful", "--config", str(config)) as h:
        client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {h.token}"}, timeout=httpx2.Timeout(30.0, read=300.0))
        async with client:
            async with streamable_http_client(f"http://127.0.0.1:{h.port}/mcp", http_client=client) as (read, write):
                async with ClientSession(read, write, elicitation_callback=on_elicit) as s:
                    with anyio.fail_after(TIMEOUT):
                        await s.initialize()
                    code, text = await code_of(s, "fs__write_file", {"path": ".envrc", "content": "x\n"})
                    assert code is None, text
        assert (h.root / ".envrc").read_text() == "x\n"
        assert len(asked) == 1
        [dec] = events(h.state / "audit.jsonl", "approval_decision")
        assert (dec["detail"]["channel"], dec["detail"]["principal"]) == ("elicitation", "owner")


async def test_shell_program_rules(tmp_path: Path) -> None:
    root, state, audit = tmp_path / "proj", tmp_path / "state", tmp_path / "audit.jsonl"
    root.mkdir()
    (root / "a.txt").write_text("a")
    cfg = tmp_path / "shell.toml"
    cfg.write_text(
        '[[approval.rule]]\nname = "no cat"\nprograms = "cat"\naction = "deny"\n'
        '[[approval.rule]]\nname = "ask for ls"\nserver = "shell"\nprograms = ["ls"]\naction = "ask"\nmode = "return"\n'
    )
    args = ["shell", "--root", str(root), "--profile", "read-only", "--config", str(cfg), "--state-dir", str(state),
            "--audit-log", str(audit)]
    params = StdioServerParameters(command=str(bastion_binary()), args=args, env={"RUST_BACKTRACE": "1"})
    async with stdio_session(params, "bastion-shell") as s:
        code, text = await code_of(s, "run_command", {"program": "cat", "args": ["a.txt"]})
        assert code == "approval_denied" and "no cat" in text, text
        code, text = await code_of(s, "run_command", {"program": "ls", "args": ["-a"], "cwd": "."})
        assert code == "approval_pending", text
        [p] = pending(state)
        assert (p["server"], p["rule"]) == ("shell", "ask for ls")
        assert "$ ls -a" in p["rendering"] and "cwd: ." in p["rendering"], p["rendering"]
        cli(state, "approve", p["id"])
        code, text = await code_of(s, "run_command", {"program": "ls", "args": ["-a"], "cwd": "."})
        assert code is None and "a.txt" in text, text


async def test_hub_an_approved_write_to_a_changed_file_is_stale(hub: Hub) -> None:
    (hub.root / ".envrc").write_text("export A=1\n")
    args = {"path": ".envrc", "content": "export A=2\n"}
    async with http_session(hub, hub.token) as s:
        code, _ = await code_of(s, "fs__write_file", args)
        assert code == "approval_pending"
        [p] = pending(hub.state)
        assert "-export A=1" in p["rendering"] and "+export A=2" in p["rendering"], p["rendering"]
        cli(hub.state, "approve", p["id"])
        (hub.root / ".envrc").write_text("export A=3\n")
        code, text = await code_of(s, "fs__write_file", args)
        assert code == "stale", text
    assert (hub.root / ".envrc").read_text() == "export A=3\n"


def test_elevations_and_revocations_are_journaled(tmp_path: Path) -> None:
    """``bastion token elevate`` and ``revoke --all`` append to the journal the hub writes by
    default (``audit.jsonl`` in the state directory), beside the calls they affect."""
    state = tmp_path / "state"
    audit = state / "audit.jsonl"
    for name in ("ci", "laptop"):
        cli(state, "token", "create", "--name", name, "--scopes", "fs:read")
    cli(state, "token", "elevate", "ci", "--scopes", "fs:write,git:*", "--for", "30m")
    [e] = events(audit, "elevation")
    assert e["server"] == "hub"
    d = e["detail"]
    assert (d["name"], d["elevated"], d["scopes"], d["seconds"], d["channel"]) == (
        "ci", ["ci"], ["fs:write", "git:*"], 1800, "cli")
    assert d["until"].endswith("Z"), d
    cli(state, "token", "revoke", "--all")
    [a] = events(audit, "revoke_all")
    assert (a["detail"]["tokens"], a["detail"]["grants"], a["detail"]["channel"]) == (2, 0, "cli")
    # A refused elevation changes nothing and journals nothing.
    assert cli(state, "token", "elevate", "nobody", "--scopes", "fs:write", "--for", "1m", check=False).returncode != 0
    assert len(events(audit, "elevation")) == 1
    assert oct(audit.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("how", ["eof", "sigterm", "sigint"])
def test_a_standalone_server_removes_its_control_socket_when_it_exits(tmp_path: Path, how: str) -> None:
    """``<state>/control/fs-PID.sock`` lives as long as the server: a clean exit (EOF on stdin,
    SIGTERM, SIGINT) removes it, so ``bastion approvals`` never meets a socket of a dead process."""
    root, state = tmp_path / "proj", tmp_path / "state"
    root.mkdir()
    proc = subprocess.Popen([str(bastion_binary()), "fs", "--root", str(root), "--state-dir", str(state)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    sock = state / "control" / f"fs-{proc.pid}.sock"
    try:
        deadline = time.monotonic() + TIMEOUT
        while not sock.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, "the server exited early"
            time.sleep(0.05)
        assert sock.is_socket(), f"no control socket at {sock}"
        assert proc.stdin is not None and proc.stdout is not None
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
        proc.stdin.write(json.dumps(init).encode() + b"\n")
        proc.stdin.flush()
        assert b'"id":1' in proc.stdout.readline()
        if how == "eof":
            proc.stdin.close()
        else:
            proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not sock.exists(), "the control socket outlived its server"
    assert pending(state) == []


async def test_hub_matches_real_paths_through_the_roots(hub: Hub) -> None:
    """The hub resolves an fs call's paths as its fs child does (``bastion_policy::Roots``): a
    link inside the root to ``.vscode/tasks.json`` is that file, so writing through it asks; the
    person sees the target's current text; a link to a denied file shows nothing of it."""
    (hub.root / ".vscode").mkdir()
    (hub.root / ".vscode" / "tasks.json").write_text('{"tasks": []}\n')
    (hub.root / "notes.json").symlink_to(".vscode/tasks.json")
    (hub.root / ".env").write_text("SECRET=hunter2\n")
    (hub.root / "env.txt").symlink_to(".env")
    async with http_session(hub, hub.token) as s:
        code, text = await code_of(s, "fs__write_file", {"path": "notes.json", "content": "{}\n"})
        assert code == "approval_pending", text
        [p] = pending(hub.state)
        assert p["tool"] == "fs__write_file"
        assert '-{"tasks": []}' in p["rendering"] and "+{}" in p["rendering"], p["rendering"]
        cli(hub.state, "deny", p["id"])
        # A plain file elsewhere is allowed without asking.
        assert (await code_of(s, "fs__write_file", {"path": "plain.txt", "content": "x"}))[0] is None
        # Through a link to a denied file: the child refuses it; nothing of it reaches a rendering.
        code, _ = await code_of(s, "fs__write_file", {"path": "env.txt", "content": "x"})
        assert code is not None
        assert all("hunter2" not in q["rendering"] for q in pending(hub.state))
    assert (hub.root / ".vscode" / "tasks.json").read_text() == '{"tasks": []}\n'
    assert (hub.root / ".env").read_text() == "SECRET=hunter2\n"


async def test_hub_sends_progress_while_it_holds_a_call(tmp_path: Path) -> None:
    """Over ``--stateful`` HTTP the hub's gate tells a caller that asked for progress that it is
    still waiting (every 5 s) before the approval arrives, naming the request."""
    with running_hub(tmp_path, "--allow-write", "--stateful") as h:
        seen: list[tuple[float, float | None, str | None]] = []
        approved_at: list[int] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        async with http_session(h, h.token) as s:
            async with anyio.create_task_group() as tg:
                result: dict[str, Any] = {}

                async def write() -> None:
                    with anyio.fail_after(TIMEOUT):
                        result["r"] = await s.call_tool(
                            "fs__write_file", {"path": ".mcp.json", "content": "{}"}, progress_callback=on_progress
                        )

                tg.start_soon(write)
                [p] = await wait_pending(h.state)
                deadline = time.monotonic() + 12
                while not seen and time.monotonic() < deadline:
                    await anyio.sleep(0.2)
                approved_at.append(len(seen))
                cli(h.state, "approve", p["id"])
        assert not result["r"].is_error, result["r"]
        assert approved_at[0] >= 1, "no progress notification before the approval"
        assert p["id"] in (seen[0][2] or "") and seen[0][1] == 300.0, seen
        assert (h.root / ".mcp.json").read_text() == "{}"


@pytest.mark.parametrize("present", [True, False])
async def test_a_pending_request_notifies_the_desktop(tmp_path: Path, present: bool) -> None:
    """A request pending approval runs ``notify-send`` (found on ``PATH``) naming its id; with no
    such program on ``PATH`` nothing is run and the request is still queued."""
    bin_dir, record = tmp_path / "bin", tmp_path / "notify.args"
    bin_dir.mkdir()
    if present:
        script = bin_dir / "notify-send"
        script.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > {record}\n')
        script.chmod(0o755)
    root, state, audit = tmp_path / "proj", tmp_path / "state", tmp_path / "audit.jsonl"
    root.mkdir()
    (root / "old.txt").write_text("x")
    cfg = tmp_path / "policy.toml"
    cfg.write_text('[approval]\nmode = "return"\n')
    params = fs_params(root, state, audit, config=cfg)
    # Only the fake's directory (and /bin for its shell) on PATH: a real notify-send is never run.
    params.env = {"RUST_BACKTRACE": "1", "PATH": f"{bin_dir}:/usr/bin:/bin" if present else str(bin_dir)}
    async with stdio_session(params, "bastion-fs") as s:
        code, text = await code_of(s, "delete_path", {"path": "old.txt"})
        assert code == "approval_pending", text
        [p] = pending(state)
        if present:
            deadline = time.monotonic() + TIMEOUT
            while not (record.exists() and record.read_text().strip()) and time.monotonic() < deadline:
                await anyio.sleep(0.1)
            lines = record.read_text().splitlines()
            assert lines[0] == "--app-name=Bastion", lines
            assert any(p["id"] in l and "delete_path" in l for l in lines), lines
        else:
            assert not record.exists()
    assert (root / "old.txt").exists()


class Watch:
    """``bastion approvals --watch`` running in the background; lines read on a thread."""

    def __init__(self, state: Path) -> None:
        self.proc = subprocess.Popen(
            [str(bastion_binary()), "approvals", "--watch", "--state-dir", str(state)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        out = self.proc.stdout
        assert out is not None
        threading.Thread(target=lambda: [self.lines.put(l.rstrip("\n")) for l in out], daemon=True).start()

    async def until(self, pred: Any) -> str:
        """Waits for a line matching ``pred``; every line read is kept in ``seen``."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                await anyio.sleep(0.05)
                continue
            self.seen.append(line)
            if pred(line):
                return line
        pytest.fail(f"bastion approvals --watch never printed the line; it printed: {self.seen}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=TIMEOUT)


async def test_watch_shows_the_queues_of_a_hub_and_a_server_alone(tmp_path: Path) -> None:
    """Two processes share a state directory: ``bastion approvals --watch`` follows both queues,
    in the format README's transcript shows."""
    config = tmp_path / "hub.toml"
    config.write_text('[approval]\nmode = "return"\n')
    with running_hub(tmp_path, "--allow-write", "--config", str(config)) as h:
        async with fs(tmp_path, '[approval]\nmode = "return"\n') as (s, root, state, audit), \
                http_session(h, h.token) as remote:
            assert state == h.state
            (root / "notes.txt").write_text("build/\n*.log\n")
            watch = Watch(state)
            try:
                assert await watch.until(lambda l: l.startswith("watching")) == "watching 2 server(s); Ctrl-C to stop"
                assert (await code_of(s, "delete_path", {"path": "notes.txt"}))[0] == "approval_pending"
                head = await watch.until(lambda l: l.startswith("── approval"))
                local_id = head.split()[2]
                assert head == f"── approval {local_id} ─ fs delete_path (destructive)", head
                by = await watch.until(lambda l: l.startswith("   by "))
                assert by.startswith("   by local via ") and "· rule: default: destructive · return mode · waiting " in by, by
                assert await watch.until(lambda l: l.startswith("   │ delete")) == "   │ delete notes.txt"
                await watch.until(lambda l: l == "   │ -*.log")
                assert await watch.until(lambda l: l.startswith("   →")) == (
                    f"   → bastion approve {local_id}    or    bastion deny {local_id} --reason TEXT")
                code, _ = await code_of(remote, "fs__write_file", {"path": ".mcp.json", "content": "{}"})
                assert code == "approval_pending"
                head = await watch.until(lambda l: l.startswith("── approval"))
                hub_id = head.split()[2]
                assert head == f"── approval {hub_id} ─ fs fs__write_file (write)", head
                by = await watch.until(lambda l: l.startswith("   by "))
                # Stateless HTTP keeps no clientInfo: the principal alone.
                assert by.startswith("   by owner · rule: default: execute-on-open · return mode · waiting "), by
                cli(state, "approve", local_id)
                assert await watch.until(lambda l: local_id in l and "approved" in l) == f"   {local_id} approved by cli"
                cli(state, "deny", hub_id, "--reason", "never touch .mcp.json")
                assert await watch.until(lambda l: hub_id in l and "denied" in l) == (
                    f"   {hub_id} denied by cli: never touch .mcp.json")
                assert len(pending(state)) == 0
            finally:
                watch.stop()
