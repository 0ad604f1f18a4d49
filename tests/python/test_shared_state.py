"""Two hubs on one PostgreSQL store behave as one: what the operator does with
``bastion … --config FILE`` (acting on the database, not on a process) is in force on both
hubs within a second.

One PostgreSQL cluster (Debian's server binaries, a private data directory, a Unix socket only)
is started for the module; each test gets a database of its own and two ``bastion serve``
processes with separate state directories and the same configuration file naming it. Calls are
plain stateless ``tools/call`` requests, so a held call can wait in a thread.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fsclient import bastion_binary as bastion
from fsclient import free_port
from prereq import missing

TIMEOUT = 30.0
#: What the issue promises: a change through one process is in force in every other within this.
PROPAGATION = 1.0


# ---------------------------------------------------------------------------------------------
# PostgreSQL


@dataclass
class Cluster:
    socket: Path
    bin: Path
    owner: str | None
    databases: int = 0

    def run(self, program: str, *args: str) -> None:
        cmd = [str(self.bin / program), *args]
        if self.owner:
            cmd = ["runuser", "-u", self.owner, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=TIMEOUT)

    def database(self) -> str:
        """A new empty database; its connection string (no password: trust on a private socket)."""
        self.databases += 1
        name = f"shared{self.databases}"
        self.run("createdb", "-h", str(self.socket), "-U", "postgres", name)
        return f"host={self.socket} user=postgres dbname={name}"


def _bin_dir() -> Path | None:
    dirs = sorted(p / "bin" for p in Path("/usr/lib/postgresql").glob("*") if (p / "bin" / "initdb").exists())
    return dirs[-1] if dirs else None


@pytest.fixture(scope="module")
def postgres() -> Iterator[Cluster]:
    """One cluster for the module, stopped and removed at the end."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        missing("PostgreSQL's server (Debian package postgresql) is not installed")
    owner = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="bastion-pg-e2e-"))
    if owner:
        shutil.chown(base, owner, owner)
    cluster = Cluster(socket=base, bin=bin_dir, owner=owner)
    data = base / "data"
    cluster.run("initdb", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "-D", str(data))
    opts = f"-c listen_addresses='' -c unix_socket_directories='{base}' -c fsync=off"
    cluster.run("pg_ctl", "-w", "-s", "-D", str(data), "-l", str(base / "log"), "-o", opts, "start")
    try:
        yield cluster
    finally:
        try:
            cluster.run("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# hubs


@dataclass
class SharedHub:
    name: str
    port: int
    state: Path
    root: Path
    stderr: Path

    def call(self, token: str, tool: str, arguments: dict[str, Any]) -> tuple[int, str | None]:
        """A plain stateless ``tools/call``: the HTTP status and the result's error code (None:
        success)."""
        body = json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
        ).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            conn.request(
                "POST",
                "/mcp",
                body,
                {
                    "Content-Type": "application/json",
                    "Accept": "application/json, text/event-stream",
                    "Authorization": f"Bearer {token}",
                },
            )
            r = conn.getresponse()
            text = r.read().decode()
        finally:
            conn.close()
        if r.status != 200:
            return r.status, None
        if text.lstrip().startswith("{"):
            message = json.loads(text)
        else:
            data = [l[5:].strip() for l in text.splitlines() if l.startswith("data:") and l[5:].strip()]
            message = json.loads(data[-1])
        result = message.get("result", {})
        if not result.get("isError"):
            return 200, None
        return 200, (result.get("structuredContent") or {}).get("code")

    def ready(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/readyz", headers={"Host": f"127.0.0.1:{self.port}"})
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()


@contextmanager
def shared_hub(base: Path, name: str, config: Path, root: Path) -> Iterator[SharedHub]:
    """``bastion serve --config CONFIG`` with a state directory of its own, until the end."""
    state = base / f"state-{name}"
    stderr = base / f"{name}.stderr"
    port = free_port()
    with open(stderr, "w") as err:
        proc = subprocess.Popen(
            [str(bastion()), "serve", "--root", str(root), "--listen", f"127.0.0.1:{port}", "--state-dir", str(state),
             "--allow-write", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={k: v for k, v in os.environ.items() if k != "RUST_LOG"} | {"RUST_LOG": "info,rmcp=warn"},
        )
    try:
        hub = SharedHub(name=name, port=port, state=state, root=root, stderr=stderr)
        deadline = time.monotonic() + TIMEOUT
        while not hub.ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"hub {name} never ready: {stderr.read_text()[-3000:]}")
            time.sleep(0.05)
        yield hub
    finally:
        proc.kill()
        proc.wait(timeout=10)


def cli(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``bastion ARGS --config CONFIG``, from a directory with no state of its own (as from
    another machine)."""
    r = subprocess.run(
        [str(bastion()), *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={k: v for k, v in os.environ.items() if k != "BASTION_STATE_DIR"} | {"XDG_STATE_HOME": "/nonexistent"},
    )
    if check:
        assert r.returncode == 0, f"bastion {' '.join(args)}: {r.stdout}{r.stderr}"
    return r


@dataclass
class Pair:
    a: SharedHub
    b: SharedHub
    config: Path
    token: str


@pytest.fixture
def pair(postgres: Cluster, tmp_path: Path) -> Iterator[Pair]:
    config = tmp_path / "hub.toml"
    config.write_text(f'store = "{postgres.database()}"\n')
    root = tmp_path / "proj"
    root.mkdir()
    (root / "hello.txt").write_text("hello\n")
    with ExitStack() as stack:
        a = stack.enter_context(shared_hub(tmp_path, "a", config, root))
        b = stack.enter_context(shared_hub(tmp_path, "b", config, root))
        token = cli(config, "token", "create", "--name", "ops", "--scopes", "*:*").stdout.strip()
        assert token.startswith("bst_"), token
        yield Pair(a=a, b=b, config=config, token=token)


def within(seconds: float, check: Any, what: str) -> float:
    """Polls ``check()`` until true; fails after ``seconds``; returns how long it took."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > seconds:
            pytest.fail(f"not within {seconds}s: {what}")
        time.sleep(0.02)


LIST = ("fs__list_directory", {"path": "."})
WRITE = ("fs__write_file", {"path": "note.txt", "content": "n"})


# ---------------------------------------------------------------------------------------------
# tests


def test_a_token_revoked_with_config_is_refused_by_every_hub(pair: Pair) -> None:
    t = cli(pair.config, "token", "create", "--name", "doomed", "--scopes", "*:read").stdout.strip()
    for hub in (pair.a, pair.b):
        assert hub.call(t, *LIST) == (200, None)
    listed = cli(pair.config, "token", "list").stdout
    assert "doomed" in listed and "live" in listed, listed
    cli(pair.config, "token", "revoke", "doomed")
    for hub in (pair.a, pair.b):
        within(PROPAGATION, lambda: hub.call(t, *LIST)[0] == 401, f"hub {hub.name} refuses the revoked token")
    assert pair.b.call(pair.token, *LIST) == (200, None), "other tokens unaffected"


def test_pause_resume_and_mode_with_config_reach_every_hub(pair: Pair) -> None:
    cli(pair.config, "pause")
    for hub in (pair.a, pair.b):
        within(PROPAGATION, lambda: hub.call(pair.token, *LIST) == (200, "paused"), f"hub {hub.name} paused")
    cli(pair.config, "resume")
    for hub in (pair.a, pair.b):
        within(PROPAGATION, lambda: hub.call(pair.token, *LIST) == (200, None), f"hub {hub.name} resumed")
    cli(pair.config, "mode", "observe")
    for hub in (pair.a, pair.b):
        within(PROPAGATION, lambda: hub.call(pair.token, *WRITE) == (200, "mode_observe"), f"hub {hub.name} observes")
        assert hub.call(pair.token, *LIST) == (200, None), "reading still runs"
    cli(pair.config, "mode", "normal")
    for hub in (pair.a, pair.b):
        within(PROPAGATION, lambda: hub.call(pair.token, *WRITE) == (200, None), f"hub {hub.name} back to normal")
    # Each hub journals the switches as they reached it.
    for hub in (pair.a, pair.b):
        names = [json.loads(l).get("event") for l in (hub.state / "audit.jsonl").read_text().splitlines()]
        assert ["pause", "resume", "mode_change", "mode_change"] == [n for n in names if n in (
            "pause", "resume", "mode_change")], names


def test_a_call_held_on_one_hub_is_approved_from_anywhere(pair: Pair) -> None:
    result: queue.Queue[tuple[int, str | None]] = queue.Queue()
    # A watcher started before the request shows it when it comes (the store's feed wakes it).
    watcher = subprocess.Popen(
        [str(bastion()), "approvals", "--watch", "--config", str(pair.config)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    watched: queue.Queue[str] = queue.Queue()
    assert watcher.stdout is not None
    stdout = watcher.stdout
    threading.Thread(target=lambda: [watched.put(l) for l in stdout], daemon=True).start()
    assert watched.get(timeout=TIMEOUT).strip() == "no pending approvals"
    args = {"path": ".mcp.json", "content": "{}"}
    threading.Thread(target=lambda: result.put(pair.a.call(pair.token, "fs__write_file", args)), daemon=True).start()

    def listed() -> list[dict[str, Any]]:
        r = cli(pair.config, "approvals", "--json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else []

    deadline = time.monotonic() + TIMEOUT
    while not (pending := listed()):
        assert time.monotonic() < deadline, "no pending approval listed through the store"
        time.sleep(0.1)
    [p] = pending
    assert (p["tool"], p["principal"]) == ("fs__write_file", "ops"), p
    try:
        line = watched.get(timeout=PROPAGATION + 1)
        assert p["id"] in line and "fs__write_file" in line, line
    finally:
        watcher.kill()
        watcher.wait(timeout=10)
    assert not (pair.a.root / ".mcp.json").exists()
    cli(pair.config, "approve", p["id"])
    assert result.get(timeout=PROPAGATION + 5) == (200, None)
    assert (pair.a.root / ".mcp.json").read_text() == "{}"
    assert listed() == [], "the answered request is gone"
    again = cli(pair.config, "approve", p["id"], check=False)
    assert again.returncode != 0 and "no pending approval" in again.stderr, again.stderr
    # Denied from anywhere: the held call is refused and nothing changes.
    args = {"path": ".mcp.json", "content": "{\"x\": 1}"}
    threading.Thread(target=lambda: result.put(pair.a.call(pair.token, "fs__write_file", args)), daemon=True).start()
    deadline = time.monotonic() + TIMEOUT
    while not (pending := listed()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    cli(pair.config, "deny", pending[0]["id"], "--reason", "not now")
    assert result.get(timeout=PROPAGATION + 5) == (200, "approval_denied")
    assert (pair.a.root / ".mcp.json").read_text() == "{}"
    # Decided on the other hub (its control socket, as its dashboard decides): the call held on
    # this one runs.
    args = {"path": ".mcp.json", "content": "{\"y\": 2}"}
    threading.Thread(target=lambda: result.put(pair.a.call(pair.token, "fs__write_file", args)), daemon=True).start()
    deadline = time.monotonic() + TIMEOUT
    while not (pending := listed()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    via_b = subprocess.run(
        [str(bastion()), "approve", pending[0]["id"], "--state-dir", str(pair.b.state)],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert via_b.returncode == 0, via_b.stderr
    assert result.get(timeout=PROPAGATION + 5) == (200, None)
    assert (pair.a.root / ".mcp.json").read_text() == "{\"y\": 2}"
    decisions = [json.loads(l) for l in (pair.a.state / "audit.jsonl").read_text().splitlines()]
    assert [e["detail"]["decision"] for e in decisions if e.get("event") == "approval_decision"] == [
        "approved", "denied", "approved"]


def _get(port: int, path: str, cookie: str | None = None) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"} | ({"Cookie": cookie} if cookie else {}))
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        conn.close()


def test_the_dashboard_of_a_hub_on_postgres_shows_the_shared_tokens(pair: Pair) -> None:
    """The dashboard judges with the hub's store: tokens made with ``--config`` (in PostgreSQL)
    are the ones its Access page lists, and one revoked elsewhere is shown revoked."""
    cli(pair.config, "token", "create", "--name", "from-anywhere", "--scopes", "fs:read")
    link = subprocess.run([str(bastion()), "dashboard", "--state-dir", str(pair.a.state)], capture_output=True,
                          text=True, timeout=TIMEOUT, check=True).stdout.strip()
    path = link[link.index("/dashboard/login"):]
    status, headers, _ = _get(pair.a.port, path)
    assert status == 200 and "bastion_dashboard=" in headers.get("set-cookie", ""), (status, headers)
    session = headers["set-cookie"].split(";")[0]
    status, _, page = _get(pair.a.port, "/dashboard/access", session)
    assert status == 200, page
    assert "from-anywhere" in page and "ops" in page, page[-3000:]
    cli(pair.config, "token", "revoke", "from-anywhere")
    _, _, page = _get(pair.a.port, "/dashboard/access", session)
    row = next(l for l in page.split("<tr") if "from-anywhere" in l)
    assert "revoked" in row.lower(), row


def test_a_request_queued_on_one_hub_reaches_the_other_hubs_dashboard_live(pair: Pair) -> None:
    """A page open on hub B's dashboard hears of a request held on hub A (its live feed says
    `approval` within about a second) and lists it; the decision made elsewhere clears it."""
    link = subprocess.run([str(bastion()), "dashboard", "--state-dir", str(pair.b.state)], capture_output=True,
                          text=True, timeout=TIMEOUT, check=True).stdout.strip()
    _, headers, _ = _get(pair.b.port, link[link.index("/dashboard/login"):])
    session = headers["set-cookie"].split(";")[0]
    feed: queue.Queue[str] = queue.Queue()
    conn = http.client.HTTPConnection("127.0.0.1", pair.b.port, timeout=TIMEOUT)
    conn.request("GET", "/dashboard/events", headers={"Host": f"127.0.0.1:{pair.b.port}", "Cookie": session})
    events = conn.getresponse()
    assert events.status == 200

    def follow() -> None:
        try:
            for raw in events:
                feed.put(raw.decode().strip())
        except Exception:  # the connection closed under the reader at the end of the test
            pass

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.5)  # the feed's watcher has started and taken its first look
    result: queue.Queue[tuple[int, str | None]] = queue.Queue()
    args = {"path": ".mcp.json", "content": "{}"}
    threading.Thread(target=lambda: result.put(pair.a.call(pair.token, "fs__write_file", args)), daemon=True).start()
    try:
        deadline = time.monotonic() + PROPAGATION + 2
        while True:
            line = feed.get(timeout=max(0.1, deadline - time.monotonic()))
            if line == "data: approval":
                break
        _, _, page = _get(pair.b.port, "/dashboard/approvals", session)
        assert "fs__write_file" in page and ".mcp.json" in page, page[-3000:]
        [p] = json.loads(cli(pair.config, "approvals", "--json").stdout)
        cli(pair.config, "deny", p["id"])
        assert result.get(timeout=PROPAGATION + 5) == (200, "approval_denied")
    finally:
        conn.close()


def test_an_unreachable_store_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(f'store = "host={tmp_path} user=postgres dbname=none connect_timeout=2"\n')
    for args in (["pause"], ["approvals"], ["token", "list"], ["approve", "abc"]):
        r = cli(config, *args, check=False)
        assert r.returncode != 0
        assert "store_unreachable" in r.stderr, (args, r.stderr)
