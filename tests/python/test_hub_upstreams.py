"""The hub with a real third-party upstream, ``@modelcontextprotocol/server-everything`` (npm,
installed by ``cargo xtask interop``, path in ``BASTION_SERVER_EVERYTHING``), beside the three
built-in servers and a Python SDK server, driven by the official Python SDK over HTTP and stdio;
and the ways upstreams fail: a child killed with SIGKILL in the middle of a call, a call that
never answers, a child that never initialises; tool list changes passed on to HTTP sessions;
SIGTERM draining the calls in flight.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from prereq import missing

from test_hub import (
    LIST,
    NAME_RE,
    TIMEOUT,
    Hub,
    _init_repo,
    bastion,
    call,
    free_port,
    http_session,
    names,
    running_hub,
    wait_until_ready,
)

pytestmark = pytest.mark.anyio

FAKE = Path(__file__).with_name("hub_fake_upstream.py")


def everything() -> str:
    entry = os.environ.get("BASTION_SERVER_EVERYTHING", "")
    if not Path(entry).is_file():
        missing("BASTION_SERVER_EVERYTHING is not set to server-everything's dist/index.js (run through `cargo xtask interop`)")
    return entry


def config_text(*, fake_timeout: str = "3s", stuck: bool = False) -> str:
    """fs, git and shell built in, server-everything, the Python fake (short call timeout)."""
    text = (
        '[[upstream]]\nname = "fs"\nbuiltin = "fs"\n'
        '[[upstream]]\nname = "git"\nbuiltin = "git"\n'
        '[[upstream]]\nname = "shell"\nbuiltin = "shell"\nargs = ["--profile", "read-only"]\n'
        f'[[upstream]]\nname = "everything"\ncommand = "node"\nargs = [{json.dumps(everything())}, "stdio"]\n'
        f'[[upstream]]\nname = "fake"\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(FAKE))}]\n'
        f'call_timeout = "{fake_timeout}"\n'
    )
    if stuck:
        # Never answers initialize: not required, so the hub is ready without it.
        text += '[[upstream]]\nname = "stuck"\ncommand = "sleep"\nargs = ["600"]\nrequired = false\n'
    return text


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("mixed")
    root = base / "proj"
    root.mkdir()
    _init_repo(root)
    config = base / "bastion.toml"
    config.write_text(config_text(stuck=True))
    with running_hub(base, "--config", str(config), root=root) as h:
        yield h


def rpc(hub: Hub, name: str, arguments: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    status, _, body = hub.raw(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}},
        token=token or hub.token,
    )
    return status, json.loads(body)


def child_pid(hub_pid: int, marker: str) -> int:
    """The pid of the hub's child whose command line contains ``marker``."""
    for task in Path(f"/proc/{hub_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return int(pid)
    raise AssertionError(f"no child of {hub_pid} with {marker!r}")


def upstream_state(hub: Hub, name: str) -> dict[str, Any]:
    _, _, body = hub.raw(path="/readyz", method="GET", token=hub.token)
    return next(u for u in json.loads(body)["upstreams"] if u["name"] == name)


async def test_third_party_tools_are_offered_in_snake_case_with_their_annotations(mixed: Hub) -> None:
    async with http_session(mixed, mixed.token) as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
    assert all(NAME_RE.match(n) for n in tools), sorted(tools)
    # `get-sum`, `trigger-long-running-operation`: hyphens become underscores.
    for want in ["everything__echo", "everything__get_sum", "everything__trigger_long_running_operation",
                 "fs__read_file", "git__status", "shell__run_command", "fake__echo"]:
        assert want in tools, sorted(tools)
    get_sum = tools["everything__get_sum"]
    a = get_sum.annotations
    assert a and (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint) == (True, False, True, False)
    assert set(get_sum.input_schema["properties"]) == {"a", "b"}
    # A write tool of the third party keeps its hints (not read-only, not destructive).
    toggle = tools["everything__toggle_simulated_logging"].annotations
    assert toggle and (toggle.read_only_hint, toggle.destructive_hint) == (False, False)


async def test_calls_reach_every_upstream_over_http(mixed: Hub) -> None:
    async with http_session(mixed, mixed.token) as s:
        err, _, text = await call(s, "everything__get_sum", {"a": 2, "b": 40})
        assert not err and "42" in text, text
        err, _, text = await call(s, "everything__echo", {"message": "through the hub"})
        assert not err and "through the hub" in text, text
        err, _, text = await call(s, "fs__read_file", {"path": "hello.txt"})
        assert not err and "hello from the hub" in text, text
        err, _, text = await call(s, "git__status", {})
        assert not err, text
        err, _, text = await call(s, "shell__run_command", {"program": "ls", "args": []})
        assert not err and "hello.txt" in text, text
        # Scopes cover third-party tools by the same rule.
    reader = mixed.create_token("everythingreader", "everything:read")
    async with http_session(mixed, reader) as s:
        visible = await names(s)
    assert "everything__get_sum" in visible and "everything__toggle_simulated_logging" not in visible
    assert all(n.startswith("everything__") for n in visible)


async def test_progress_of_a_third_party_tool_reaches_the_caller(mixed: Hub) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with http_session(mixed, mixed.token) as s:
        with anyio.fail_after(TIMEOUT):
            r = await s.call_tool("everything__trigger_long_running_operation", {"duration": 1, "steps": 4},
                                  progress_callback=on_progress)
    assert not r.is_error, r
    assert len(seen) >= 3 and seen == sorted(seen), seen


async def test_stdio_mode_serves_the_third_party_upstream(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "hello.txt").write_text("hello over stdio\n")
    config = tmp_path / "bastion.toml"
    config.write_text(config_text())
    params = StdioServerParameters(
        command=str(bastion()), args=["serve", "--stdio", "--config", str(config), "--root", str(root)],
        env={"RUST_LOG": "warn", "BASTION_STATE_DIR": str(tmp_path / "state"), "PATH": os.environ["PATH"]},
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            with anyio.fail_after(TIMEOUT):
                await s.initialize()
            visible = await names(s)
            assert {"everything__get_sum", "fs__read_file", "fake__echo"} <= set(visible)
            err, _, text = await call(s, "everything__get_sum", {"a": 1, "b": 2})
            assert not err and "3" in text, text
            err, _, text = await call(s, "fs__read_file", {"path": "hello.txt"})
            assert not err and "hello over stdio" in text


def test_a_child_killed_mid_call_fails_the_call_within_a_second_and_comes_back(mixed: Hub) -> None:
    node = child_pid(mixed.pid, "server-everything")
    outcome: dict[str, Any] = {}

    def long_call() -> None:
        outcome["response"] = rpc(mixed, "everything__trigger_long_running_operation", {"duration": 20, "steps": 20})
        outcome["at"] = time.monotonic()

    caller = threading.Thread(target=long_call)
    caller.start()
    time.sleep(1.0)  # the call is running in the child
    assert "response" not in outcome
    killed_at = time.monotonic()
    os.kill(node, signal.SIGKILL)
    states = set()
    while caller.is_alive() and time.monotonic() - killed_at < TIMEOUT:
        states.add(upstream_state(mixed, "everything")["state"])
        time.sleep(0.01)
    caller.join(TIMEOUT)
    status, body = outcome["response"]
    result = body["result"]
    assert status == 200 and result["isError"] and result["structuredContent"]["code"] == "upstream_unavailable", body
    assert outcome["at"] - killed_at < 1.0, f"the call failed {outcome['at'] - killed_at:.2f} s after the kill"
    # /readyz shows the upstream down, then back with its tools listed again.
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        status, _, body = mixed.raw(path="/readyz", method="GET", token=mixed.token)
        states.add(upstream_state(mixed, "everything")["state"])
        if status == 200:
            break
        time.sleep(0.02)
    assert states & {"failed", "starting"}, states
    back = upstream_state(mixed, "everything")
    assert back["state"] == "ready" and back["tools"] > 5, back
    assert child_pid(mixed.pid, "server-everything") != node
    status, body = rpc(mixed, "everything__get_sum", {"a": 1, "b": 1})
    assert not body["result"].get("isError") and "2" in body["result"]["content"][0]["text"], body
    _, _, metrics = mixed.raw(path="/metrics", method="GET", token=mixed.token)
    assert 'bastion_hub_upstream_restarts_total{upstream="everything"} 1' in metrics.decode()


def test_a_hanging_call_times_out_and_spares_the_other_upstreams(mixed: Hub) -> None:
    outcome: dict[str, Any] = {}

    def hanging() -> None:
        started = time.monotonic()
        outcome["response"] = rpc(mixed, "fake__hang", {})
        outcome["took"] = time.monotonic() - started

    caller = threading.Thread(target=hanging)
    caller.start()
    time.sleep(0.3)
    # While it hangs, every other upstream (and the same one) answers.
    for name, args in [("fs__read_file", {"path": "hello.txt"}), ("everything__get_sum", {"a": 1, "b": 1}),
                       ("fake__echo", {"text": "still here"}), ("git__status", {})]:
        status, body = rpc(mixed, name, args)
        assert status == 200 and not body["result"].get("isError"), (name, body)
    assert caller.is_alive(), "the hanging call returned before the others were tried"
    caller.join(TIMEOUT)
    result = outcome["response"][1]["result"]
    assert result["isError"] and result["structuredContent"]["code"] == "timeout", result
    assert "3s" in result["structuredContent"]["message"]
    assert 2.5 < outcome["took"] < 10, outcome["took"]
    # The upstream was not restarted for it.
    assert upstream_state(mixed, "fake")["state"] == "ready"
    status, body = rpc(mixed, "fake__echo", {"text": "after"})
    assert "echo: after" in body["result"]["content"][0]["text"]


def test_an_upstream_that_never_initialises_blocks_nothing(mixed: Hub) -> None:
    stuck = upstream_state(mixed, "stuck")
    assert stuck["state"] == "starting", stuck
    # Not required: the hub is ready; its tools are unknown, so a call says it is starting.
    assert mixed.raw(path="/readyz", method="GET")[0] == 200
    status, body = rpc(mixed, "stuck__anything", {})
    assert body["result"]["structuredContent"]["code"] == "upstream_unavailable", body
    assert "starting" in body["result"]["structuredContent"]["message"]


async def test_a_tool_list_change_reaches_a_stateful_http_session(tmp_path: Path) -> None:
    config = tmp_path / "bastion.toml"
    config.write_text(f'[[upstream]]\nname = "fake"\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(FAKE))}]\n')
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        inner = getattr(message, "root", message)
        if getattr(inner, "method", "") == "notifications/tools/list_changed":
            changed.set()

    with running_hub(tmp_path, "--config", str(config), "--stateful") as h:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {h.token}"}, timeout=httpx2.Timeout(30.0, read=300.0))
        async with client, streamable_http_client(h.url, http_client=client) as (read, write):
            async with ClientSession(read, write, message_handler=on_message) as s:
                with anyio.fail_after(TIMEOUT):
                    init = await s.initialize()
                assert init.capabilities.tools and init.capabilities.tools.list_changed
                assert "fake__grown" not in await names(s)
                await anyio.sleep(0.5)  # the client's GET stream is open
                err, _, text = await call(s, "fake__grow", {})
                assert not err, text
                with anyio.fail_after(TIMEOUT):
                    await changed.wait()
                assert "fake__grown" in await names(s)


def test_stateless_hub_declares_no_list_changed(mixed: Hub) -> None:
    """Stateless (the default) has no stream to send list changes on, so it does not offer them."""
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
    status, headers, body = mixed.raw(init, token=mixed.token)
    caps = json.loads(body)["result"]["capabilities"]
    assert status == 200 and "mcp-session-id" not in headers
    assert not caps["tools"].get("listChanged"), caps


def test_sigterm_lets_calls_in_flight_finish_then_stops_within_the_drain_timeout(tmp_path: Path) -> None:
    # A link of its own, so this hub's child can be told from the other tests' children.
    entry = tmp_path / "drain-everything.js"
    entry.symlink_to(everything())
    config = tmp_path / "bastion.toml"
    config.write_text(f'[[upstream]]\nname = "everything"\ncommand = "node"\nargs = [{json.dumps(str(entry))}, "stdio"]\n')
    with running_hub(tmp_path, "--config", str(config), "--drain-timeout", "3s") as h:
        outcome: dict[str, Any] = {}

        def long_call(key: str, duration: float) -> None:
            try:
                outcome[key] = rpc(h, "everything__trigger_long_running_operation", {"duration": duration, "steps": 2})
            except (OSError, ValueError) as e:  # the connection is cut when the drain ends
                outcome[key] = e

        short = threading.Thread(target=long_call, args=("short", 1.5))
        endless = threading.Thread(target=long_call, args=("endless", 60))
        short.start()
        endless.start()
        time.sleep(0.5)
        signalled = time.monotonic()
        os.kill(h.pid, signal.SIGTERM)
        short.join(TIMEOUT)
        # The call that fits in the drain window completes normally.
        status, body = outcome["short"]
        assert status == 200 and not body["result"].get("isError"), body
        # The hub does not wait for the endless one beyond the drain timeout.
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and Path(f"/proc/{h.pid}").exists():
            if Path(f"/proc/{h.pid}/stat").read_text().split()[2] == "Z":
                break
            time.sleep(0.05)
        stopped = time.monotonic() - signalled
        assert 2.5 < stopped < 15, f"stopped {stopped:.1f} s after SIGTERM"
        endless.join(TIMEOUT)
        # Its child is gone too.
        assert not _running_with(str(entry)), "the upstream outlived the hub"


def _running_with(marker: str) -> list[int]:
    found = []
    for p in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in p.read_bytes():
                found.append(int(p.parent.name))
        except OSError:
            continue
    return found


def _serve_no_auth(tmp_path: Path, name: str, port: int, *args: str) -> subprocess.Popen[bytes]:
    err = open(tmp_path / f"{name}.stderr", "ab")
    return subprocess.Popen(
        [str(bastion()), "serve", "--no-auth", "--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp_path / name), *args],
        stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "RUST_LOG": "info,rmcp=warn"},
    )


@pytest.mark.parametrize("mode", ["stateless", "stateful"])
def test_a_remote_upstream_that_dies_and_restarts_is_reconnected(tmp_path: Path, mode: str) -> None:
    """Hub A fronts hub B. When B dies, A notices before any call (it lists B's tools every 0.5 s) and
    its calls fail cleanly; when B is back (a stateful B has lost A's session, answers 404 and A
    must initialise again), they work."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "hello.txt").write_text("from b\n")
    port_b, port_a = free_port(), free_port()
    config = tmp_path / "a.toml"
    config.write_text(
        f'[[upstream]]\nname = "b"\nurl = "http://127.0.0.1:{port_b}/mcp"\ncall_timeout = "5s"\nping_interval = "500ms"\n'
    )
    b_args = ["--root", str(root)] + (["--stateful"] if mode == "stateful" else [])
    b = _serve_no_auth(tmp_path, "b", port_b, *b_args)
    a = _serve_no_auth(tmp_path, "a", port_a, "--config", str(config))
    hub_a = Hub(port=port_a, state=tmp_path / "a", root=root, token="", stderr=tmp_path / "a.stderr", pid=a.pid)
    hub_b = Hub(port=port_b, state=tmp_path / "b", root=root, token="", stderr=tmp_path / "b.stderr", pid=b.pid)
    read = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "b__fs__read_file", "arguments": {"path": "hello.txt"}}}
    try:
        wait_until_ready(hub_b, "hub B")
        wait_until_ready(hub_a, "hub A")
        # A may have listed B before all of B's upstreams were up; its next poll catches up.
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            listed = [t["name"] for t in json.loads(hub_a.raw(LIST)[2])["result"]["tools"]]
            if "b__fs__read_file" in listed:
                break
            time.sleep(0.1)
        result = json.loads(hub_a.raw(read)[2])["result"]
        assert not result.get("isError") and "from b" in result["content"][0]["text"], result
        b.kill()
        b.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and hub_a.raw(path="/readyz", method="GET")[0] == 200:
            time.sleep(0.05)
        _, _, body = hub_a.raw(path="/readyz", method="GET")
        state = json.loads(body)["upstreams"][0]
        assert state["state"] in ("failed", "starting"), state
        started = time.monotonic()
        result = json.loads(hub_a.raw(read)[2])["result"]
        assert result.get("isError") and result["structuredContent"]["code"] in ("upstream_unavailable", "upstream_error"), result
        assert time.monotonic() - started < 6, "a call to a dead remote took too long"
        b = _serve_no_auth(tmp_path, "b", port_b, *b_args)
        wait_until_ready(hub_b, "hub B (restarted)")
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            result = json.loads(hub_a.raw(read)[2])["result"]
            if not result.get("isError"):
                break
            time.sleep(0.2)
        assert not result.get("isError") and "from b" in result["content"][0]["text"], (result, hub_a.stderr.read_text()[-3000:])
    finally:
        for p in (a, b):
            p.kill()
            p.wait(timeout=10)
