"""Issue 13 item 4 end to end: per-tool rate limits (``[[limits.tool]]``) and the journal.

The checks live once: the buckets in bastion-policy (``ratelimit.rs``), asked by every server's
choke point (``ToolTable::call`` in server-kit: a tool error ``rate_limited``) and by the hub's
HTTP layer (``limits.rs``: 429 with ``Retry-After``). These tests only drive the binaries:

- a standalone server over stdio answers a call over its limit as a tool error with the stable
  code and ``retry_after_ms``, and journals it;
- the hub answers 429 on ``/mcp``, through ``call_tool`` (tool search) and on the OpenAPI
  facade, per token, and journals the call with the outcome ``rate_limited``;
- ``[journal] compress = true``: rotated journals become ``audit.jsonl.N.gz`` with every line;
- every standalone server (fs, shell, git, host) journals to the state directory by default.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from fsclient import bin_dir
from test_advisories import code_of, journal, post
from test_hub import TIMEOUT, Hub, running_hub


def stdio_calls(argv: list[str], calls: list[tuple[str, dict[str, Any]]], env: dict[str, str] | None = None,
                cwd: Path | None = None) -> list[dict[str, Any]]:
    """Starts a server over stdio, initializes it, makes ``calls`` one after another and returns
    each call's JSON-RPC ``result``; the server ends when its input closes."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=cwd)
    assert proc.stdin is not None and proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(l) for l in stdout], daemon=True).start()

    def send(message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()

    def answer(request_id: int) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                message = json.loads(lines.get(timeout=0.5))
            except queue.Empty:
                assert proc.poll() is None, f"{argv[0]} exited: {proc.stderr.read() if proc.stderr else ''}"
                continue
            if message.get("id") == request_id:
                assert "result" in message, message
                return message["result"]
        raise AssertionError(f"no answer to request {request_id}")

    try:
        send({"jsonrpc": "2.0", "id": 0, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "limits-test", "version": "0"}}})
        answer(0)
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        results = []
        for i, (name, arguments) in enumerate(calls, start=1):
            send({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
            results.append(answer(i))
        return results
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def calls_in(path: Path) -> list[dict[str, Any]]:
    """The call lines of a journal (events skipped)."""
    return [l for l in map(json.loads, path.read_text().splitlines()) if "principal" in l]


def test_stdio_rate_limited_is_a_tool_error_with_its_code(tmp_path: Path) -> None:
    """Over stdio a call over its tool's limit is a tool error (``isError``) with the stable code
    ``rate_limited`` and ``retry_after_ms``; other tools are not limited; the journal has it."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "a.txt").write_text("a\n")
    config = tmp_path / "fs.toml"
    config.write_text('[[limits.tool]]\ntool = "list_*"\nrequests_per_second = 0.2\nburst = 2\n')
    audit = tmp_path / "fs-audit.jsonl"
    listing = ("list_directory", {"path": "."})
    results = stdio_calls(
        [str(bin_dir() / "bastion-fs"), "--root", str(root), "--config", str(config), "--audit-log", str(audit)],
        [listing, listing, listing, ("read_file", {"path": "a.txt"})],
    )
    assert [bool(r.get("isError")) for r in results] == [False, False, True, False], results
    refused = results[2]
    assert refused["structuredContent"]["code"] == "rate_limited", refused
    assert 1000 <= refused["structuredContent"]["retry_after_ms"] <= 5000, refused
    assert refused["content"][0]["text"].startswith("rate_limited: 'list_directory' is rate limited"), refused
    assert [l["outcome"] for l in calls_in(audit)] == ["ok", "ok", "rate_limited", "ok"]


def tool_call(name: str, arguments: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments}}).encode()


def facade(hub: Hub, tool: str, arguments: dict[str, Any], token: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=TIMEOUT)
    try:
        conn.request("POST", f"/tools/{tool}", body=json.dumps(arguments).encode(),
                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_hub_per_tool_limits_answer_429_per_token_on_every_path(tmp_path: Path) -> None:
    """The hub's ``[[limits.tool]]``: a token over a tool's limit gets 429 with ``Retry-After``
    and ``rate_limited`` (and ``retry_after_ms``) on ``/mcp``; ``call_tool`` cannot get round
    it, nor can the OpenAPI facade; a rule by tier covers its tools; another token has its own
    bucket; each refusal is journaled as the call's outcome."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "a.txt").write_text("a\n")
    config = tmp_path / "hub.toml"
    config.write_text(
        'tool_search = "on"\n'
        "[[limits.tool]]\ntool = \"fs__read_file\"\nrequests_per_second = 0.2\nburst = 2\n"
        "[[limits.tool]]\ntool = \"git__*\"\ntier = \"read\"\nrequests_per_second = 0.2\nburst = 1\n"
    )
    with running_hub(tmp_path, "--config", str(config), root=root) as h:
        read = tool_call("fs__read_file", {"path": "a.txt"})
        statuses = [post(h, read, token=h.token) for _ in range(3)]
        assert [s for s, _, _ in statuses] == [200, 200, 429], [(s, b[:200]) for s, _, b in statuses]
        _, headers, body = statuses[2]
        assert int(headers["retry-after"]) >= 1, headers
        error = json.loads(body)["error"]
        assert code_of(body) == "rate_limited" and error["data"]["retry_after_ms"] >= 1000, body
        assert "fs__read_file" in error["message"], body
        # Wrapped in call_tool, the real tool is judged.
        wrapped = tool_call("call_tool", {"name": "fs__read_file", "arguments": {"path": "a.txt"}})
        status, _, body = post(h, wrapped, token=h.token)
        assert status == 429 and code_of(body) == "rate_limited", (status, body)
        # The OpenAPI facade too.
        status, headers, body = facade(h, "fs__read_file", {"path": "a.txt"}, h.token)
        assert status == 429 and json.loads(body)["code"] == "rate_limited" and headers["retry-after"], (status, body)
        # Other tools are not covered; another token has its own buckets.
        assert post(h, tool_call("fs__list_directory", {"path": "."}), token=h.token)[0] == 200
        other = h.create_token("other", "*:*")
        assert post(h, read, token=other)[0] == 200
        # A rule by glob and tier: one git read, then 429.
        status_calls = [post(h, tool_call("git__status", {}), token=h.token)[0] for _ in range(2)]
        assert status_calls == [200, 429], status_calls
        # A write tool the git rule's tier does not cover is not limited by it.
        outcomes = [(l.get("tool"), l.get("outcome")) for l in journal(h) if l.get("principal")]
        limited = [t for t, o in outcomes if o == "rate_limited"]
        assert limited == ["fs__read_file"] * 3 + ["git__status"], outcomes


def test_rotated_journals_are_compressed_with_every_line(tmp_path: Path) -> None:
    """``[journal] compress = true``: the hub's rotated journals become ``audit.jsonl.N.gz``
    (no ``.N`` left beside one), and every call is in exactly one file."""
    root = tmp_path / "proj"
    root.mkdir()
    config = tmp_path / "hub.toml"
    config.write_text("[journal]\nmax_bytes = 4096\nkeep = 50\ncompress = true\n")
    with running_hub(tmp_path, "--config", str(config), "--no-rate-limits", root=root) as h:
        n = 60
        for i in range(n):
            status, _, body = post(h, tool_call("fs__list_directory", {"path": ".", "i": i}), token=h.token)
            assert status == 200, body
        state = h.state
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            plain = sorted(p.name for p in state.glob("audit.jsonl.[0-9]*") if not p.name.endswith(".gz"))
            if not plain:
                break
            time.sleep(0.1)
        assert not plain, f"rotated files left uncompressed: {plain}"
        compressed = sorted(state.glob("audit.jsonl.*.gz"), key=lambda p: int(p.name.split(".")[2]))
        assert len(compressed) >= 2, list(state.iterdir())
        assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in compressed)
        assert not list(state.glob("*tmp*")), list(state.iterdir())
        lines = (state / "audit.jsonl").read_text().splitlines()
        for p in compressed:
            lines += gzip.decompress(p.read_bytes()).decode().splitlines()
        seen = [json.loads(l)["args"].get("i") for l in lines if '"fs__list_directory"' in l]
        assert sorted(seen) == list(range(n)), seen


def test_standalone_servers_journal_to_the_state_directory_by_default(tmp_path: Path) -> None:
    """Each standalone server (fs, shell, git, host) run over stdio without a flag journals its
    calls to ``NAME-audit.jsonl`` in the state directory ($XDG_STATE_HOME/bastion, else
    ~/.local/state/bastion), which it creates private."""
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    cases = [
        ("fs", ["--root", str(root)], ("list_directory", {"path": "."})),
        ("shell", ["--root", str(root)], ("read_process_output", {"process_id": "p-none"})),
        ("git", ["--root", str(root)], ("status", {})),
        ("host", [], ("check_port", {"port": 1})),
    ]
    for via_xdg in (True, False):
        home = tmp_path / f"home-{via_xdg}"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("XDG_STATE_HOME", "BASTION_STATE_DIR")}
        env["HOME"] = str(home)
        state = home / ".local/state/bastion"
        if via_xdg:
            env["XDG_STATE_HOME"] = str(home / "xdg")
            state = home / "xdg/bastion"
        for name, args, call in cases:
            results = stdio_calls([str(bin_dir() / f"bastion-{name}"), *args], [call], env=env, cwd=root)
            assert len(results) == 1
            journal_file = state / f"{name}-audit.jsonl"
            assert journal_file.is_file(), f"{name}: no journal in {state}: {list(state.iterdir()) if state.exists() else '-'}"
            lines = calls_in(journal_file)
            assert [(l["server"], l["tool"], l["principal"]) for l in lines] == [(name, call[0], "local")], lines
            assert oct(journal_file.stat().st_mode & 0o777) == "0o600"
        assert oct(state.stat().st_mode & 0o777) == "0o700"
