"""Load test of the hub: 32 concurrent clients × 1 000 ``fs__read_file`` calls each through
``bastion serve`` (the default built-in fs, git and shell children on a small temporary root),
every response checked, and the memory of the hub and its children sampled after a warm-up
and at the end.

The clients are raw JSON-RPC over HTTP/1.1 on one keep-alive socket each (threads, not the SDK:
the SDK's ~0.4 ms of client CPU per call would make this a test of the client). With a debug
build the hub spends ~1.2 ms of CPU per call and the fs child ~0.4 ms, so the test takes about
half a minute on two idle cores (28 s measured; 48–76 s while other builds loaded the machine).
Calls per second are printed for information only; nothing here asserts on time.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_hub import Hub, running_hub

# The slow tier: `cargo xtask ci` runs it in its own `slow` step after `interop`.
pytestmark = pytest.mark.slow

CLIENTS = 32
CALLS = 1000
WARMUP = 64  # per client: ~2 000 calls before the first memory sample
TIMEOUT = 30.0
CONTENT = "hello from the load test\n"  # small: the test is of the hub, not of reading files

# Growth of VmRSS (hub + children) allowed between the sample after the warm-up and the end.
# Measured with the debug build on the project's 2-core machine, four runs (three while other
# builds loaded it, one on the idle machine): 368 to 1 168 KiB, nearly all of it in the hub; a
# release hub driven the same way stays within ±0.1 MiB from 32 000 to 320 000 calls, so this is
# the allocator settling, not a leak. 4 MiB is over 3× the worst seen and still fails on a leak
# of 132 bytes per call (4 MiB / 32 000 calls); a leaked request, response or map entry is
# several hundred.
RSS_GROWTH_LIMIT_KIB = 4 * 1024


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    root = tmp_path / "root"
    root.mkdir()
    (root / "small.txt").write_text(CONTENT)
    # Warnings only: at `info` the hub would log every call to stderr.
    with running_hub(tmp_path, "--no-rate-limits", root=root, rust_log=None) as h:
        yield h


class Client:
    """One keep-alive HTTP/1.1 connection speaking raw JSON-RPC to ``/mcp``."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.sock = socket.create_connection(("127.0.0.1", hub.port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.head = (
            f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nAuthorization: Bearer {hub.token}\r\n"
        ).encode()

    def _response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "the hub closed the connection"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        # The hub answers JSON with a length (stateless, JSON responses): no chunked bodies here.
        assert "content-length" in headers, headers
        length = int(headers["content-length"])
        while len(self.buf) < length:
            chunk = self.sock.recv(65536)
            assert chunk, "the hub closed the connection mid-body"
            self.buf += chunk
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.hub.port}\r\n\r\n".encode())
        return self._response()

    def call(self, request_id: int) -> None:
        """One ``fs__read_file``; fails unless it is a successful result with the file's text."""
        body = (
            '{"jsonrpc":"2.0","id":%d,"method":"tools/call",'
            '"params":{"name":"fs__read_file","arguments":{"path":"small.txt"}}}' % request_id
        ).encode()
        self.sock.sendall(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        status, _, raw = self._response()
        assert status == 200, (status, raw[:300])
        msg = json.loads(raw)
        assert msg.get("id") == request_id and "result" in msg, raw[:300]
        result = msg["result"]
        assert result.get("isError") is False, raw[:300]
        assert result["structuredContent"]["content"] == CONTENT, raw[:300]

    def close(self) -> None:
        self.sock.close()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out = [pid]
    for p in out:
        out.extend(c for c, pp in parent.items() if pp == p)
    return out


def memory(pid: int) -> dict[str, int]:
    """VmRSS in KiB of the hub and of each child, by command line."""
    sizes = {}
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            name = "hub" if p == pid else " ".join(a.decode(errors="replace").rsplit("/", 1)[-1] for a in cmd[:2])
            sizes[f"{name} ({p})"] = rss_kib(p)
        except OSError:
            continue
    return sizes


def run_clients(hub: Hub, calls: int) -> tuple[int, list[str]]:
    """``CLIENTS`` threads, each on its own connection, ``calls`` calls each; returns the number
    of successful calls and the failures."""
    errors: list[str] = []
    done = [0] * CLIENTS
    start = threading.Barrier(CLIENTS)

    def worker(n: int) -> None:
        try:
            client = Client(hub)
        except OSError as e:
            errors.append(f"client {n}: connect: {e!r}")
            start.wait()
            return
        start.wait()
        try:
            for i in range(calls):
                client.call(n * 1_000_000 + i)
                done[n] += 1
        except Exception as e:  # noqa: BLE001 — every failure is collected and reported
            errors.append(f"client {n}, call {done[n]}: {e!r}")
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    # Below pytest's 300 s timeout, so a hung client is reported here with the others' errors.
    deadline = time.monotonic() + 240
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"a client hung; errors so far: {errors[:5]}"
    return sum(done), errors


def test_32_clients_1000_calls_each_no_errors_flat_memory(hub: Hub) -> None:
    ok, errors = run_clients(hub, WARMUP)
    assert not errors, errors[:5]
    assert ok == CLIENTS * WARMUP
    before = memory(hub.pid)
    assert len(before) == 4, f"expected the hub and 3 children: {before}"

    started = time.monotonic()
    ok, errors = run_clients(hub, CALLS)
    seconds = time.monotonic() - started
    after = memory(hub.pid)

    assert not errors, f"{len(errors)} client(s) failed; first: {errors[:5]}; stderr: {hub.stderr.read_text()[-2000:]}"
    assert ok == CLIENTS * CALLS
    assert before.keys() == after.keys(), f"a child was restarted during the run: {before} → {after}"
    growth = sum(after.values()) - sum(before.values())
    # For information (pytest -s): the rate is a debug build sharing two cores with the clients.
    print(
        f"\n{ok} calls by {CLIENTS} clients in {seconds:.1f} s: {ok / seconds:.0f} calls/s; "
        f"VmRSS KiB after warm-up {before}, at the end {after}, growth {growth} KiB"
    )
    assert growth < RSS_GROWTH_LIMIT_KIB, (
        f"hub + children grew by {growth} KiB over {ok} calls (limit {RSS_GROWTH_LIMIT_KIB} KiB): "
        f"after warm-up {before}, at the end {after}"
    )
