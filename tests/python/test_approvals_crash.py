"""Approval decisions against ``kill -9`` (issue 13, item 8): the hub (``bastion serve``) or a
server alone (``bastion fs``) is killed with SIGKILL while a call waits for approval, and right
after the person decided; then started again on the same state directory.

What must hold after every kill: a call that was pending is never run — not by the restarted
process, not by a decision sent to it for the old request id, not by retrying the same call in
return mode (approvals live in memory and die with the process: nothing is auto-approved) — and
a call approved just before the kill ran once or not at all: the file holds its old content or
the new one, never a torn or doubled edit. The restarted process lists no pending request.

``BASTION_CRASH_TRIALS`` sets the trials of each kind (default 3).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fsclient import bastion_binary, free_port
from test_approvals import cli, pending
from test_hub import INIT, Hub

TRIALS = int(os.environ.get("BASTION_CRASH_TRIALS", "3"))
TIMEOUT = 30.0
CALL_ID = 7


def wait_for(what: str, check: Any, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@contextmanager
def hub_process(base: Path, token: str | None, *args: str) -> Iterator[tuple[subprocess.Popen[str], Hub]]:
    """``bastion serve --allow-write`` on ``base/proj`` with state ``base/state``; the token is
    read from the first start's output, or given (a restart prints none)."""
    port = free_port()
    root, state = base / "proj", base / "state"
    root.mkdir(exist_ok=True)
    err = open(base / "hub.stderr", "a")
    proc = subprocess.Popen(
        [str(bastion_binary()), "serve", "--root", str(root), "--listen", f"127.0.0.1:{port}", "--state-dir", str(state),
         "--allow-write", *args],
        stdout=subprocess.PIPE, stderr=err, text=True, env={k: v for k, v in os.environ.items() if k != "RUST_LOG"},
    )
    try:
        assert proc.stdout is not None
        if token is None:
            deadline = time.monotonic() + TIMEOUT
            while token is None and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                if line.startswith("token: "):
                    token = line.split()[1]
        assert token, (base / "hub.stderr").read_text()
        h = Hub(port=port, state=state, root=root, token=token, stderr=base / "hub.stderr", pid=proc.pid)

        def ready() -> bool:
            try:
                return h.raw(path="/readyz", method="GET")[0] == 200
            except OSError:
                return False

        wait_for("the hub", ready)
        yield proc, h
    finally:
        proc.kill()
        proc.wait(timeout=10)
        err.close()


def call_in_thread(h: Hub, tool: str, arguments: dict[str, Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Sends one tools/call that the hub holds; its answer (or the error) lands in the dict."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["answer"] = h.raw({"jsonrpc": "2.0", "id": CALL_ID, "method": "tools/call",
                                   "params": {"name": tool, "arguments": arguments}}, token=h.token)
        except Exception as e:  # noqa: BLE001 - the connection dies with the hub
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def test_a_call_pending_when_the_hub_is_killed_never_runs(tmp_path: Path) -> None:
    token = None
    for trial in range(TRIALS):
        target = tmp_path / "proj" / ".mcp.json"
        with hub_process(tmp_path, token) as (proc, h):
            token = h.token
            assert not pending(h.state), "a restarted hub lists no pending request"
            thread, out = call_in_thread(h, "fs__write_file", {"path": ".mcp.json", "content": f'{{"trial": {trial}}}'})
            [p] = wait_for("the request", lambda: pending(h.state))
            old_id = p["id"]
            time.sleep(random.uniform(0, 0.05))
            kill9(proc)
            thread.join(TIMEOUT)
            assert "answer" not in out or out["answer"][0] != 200 or "isError" in out["answer"][2].decode(), out
        assert not target.exists(), f"trial {trial}: the pending write ran"
        with hub_process(tmp_path, token) as (_, h):
            assert not pending(h.state), "the request died with the hub"
            # A decision for the old request reaches nothing.
            r = cli(h.state, "approve", old_id, check=False)
            assert r.returncode != 0, r.stdout
            time.sleep(0.3)
            assert not target.exists(), f"trial {trial}: approving the dead request ran it"


def test_a_call_approved_just_before_the_kill_ran_once_or_not_at_all(tmp_path: Path) -> None:
    token = None
    envrc = tmp_path / "proj" / ".envrc"
    (tmp_path / "proj").mkdir()
    for trial in range(TRIALS):
        envrc.write_text("A\n")
        with hub_process(tmp_path, token) as (proc, h):
            token = h.token
            # A non-idempotent edit of an execute-on-open file: run twice it would read ABB.
            thread, out = call_in_thread(h, "fs__edit_file", {"path": ".envrc", "old_text": "A", "new_text": "AB"})
            [p] = wait_for("the request", lambda: pending(h.state))
            cli(h.state, "approve", p["id"])
            time.sleep(random.uniform(0, 0.02) if trial % 2 else 0)
            kill9(proc)
            thread.join(TIMEOUT)
        assert envrc.read_text() in ("A\n", "AB\n"), f"trial {trial}: {envrc.read_text()!r}"
        with hub_process(tmp_path, token) as (_, h):
            assert not pending(h.state)
            time.sleep(0.3)
            assert envrc.read_text() in ("A\n", "AB\n"), "the restarted hub replayed nothing"


def test_a_return_mode_approval_dies_with_the_hub(tmp_path: Path) -> None:
    """In return mode the approval is a single-use grant held in memory: after a kill the same
    call asks again instead of running on an approval given to the dead hub."""
    config = tmp_path / "hub.toml"
    config.write_text('[approval]\nmode = "return"\n')
    (tmp_path / "proj").mkdir()
    args = {"path": ".envrc", "content": "export A=1\n"}
    token = None
    for trial in range(TRIALS):
        with hub_process(tmp_path, token, "--config", str(config)) as (proc, h):
            token = h.token
            status, _, body = h.raw({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                     "params": {"name": "fs__write_file", "arguments": args}}, token=h.token)
            assert json.loads(body)["result"]["structuredContent"]["code"] == "approval_pending", body
            [p] = wait_for("the request", lambda: pending(h.state))
            cli(h.state, "approve", p["id"])
            kill9(proc)
        assert not (tmp_path / "proj" / ".envrc").exists()
        with hub_process(tmp_path, token, "--config", str(config)) as (_, h):
            status, _, body = h.raw({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                     "params": {"name": "fs__write_file", "arguments": args}}, token=h.token)
            assert json.loads(body)["result"]["structuredContent"]["code"] == "approval_pending", body
            assert not (tmp_path / "proj" / ".envrc").exists(), f"trial {trial}: auto-approved after the restart"
            for q in pending(h.state):
                cli(h.state, "deny", q["id"])


def rpc_line(proc: subprocess.Popen[bytes], msg: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write((json.dumps(msg) + "\n").encode())
    proc.stdin.flush()


def test_a_server_alone_killed_while_a_call_waits_never_runs_it(tmp_path: Path) -> None:
    root, state = tmp_path / "proj", tmp_path / "state"
    root.mkdir()
    target = root / ".mcp.json"
    for trial in range(TRIALS):
        proc = subprocess.Popen(
            [str(bastion_binary()), "fs", "--root", str(root), "--allow-write", "--state-dir", str(state)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        try:
            rpc_line(proc, INIT)
            assert proc.stdout is not None and b'"id":0' in proc.stdout.readline()
            rpc_line(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
            rpc_line(proc, {"jsonrpc": "2.0", "id": CALL_ID, "method": "tools/call",
                            "params": {"name": "write_file", "arguments": {"path": ".mcp.json", "content": "{}"}}})
            [p] = wait_for("the request", lambda: pending(state))
            if trial % 2:
                cli(state, "approve", p["id"])
            kill9(proc)  # type: ignore[arg-type]
        finally:
            proc.kill()
            proc.wait(timeout=10)
        written = target.exists()
        assert not written or target.read_text() == "{}", f"trial {trial}: torn write"
        if not trial % 2:
            assert not written, f"trial {trial}: the pending write ran"
        target.unlink(missing_ok=True)
        assert not pending(state), "nothing is pending once the server is gone"
