"""Several hubs on one PostgreSQL behind a round-robin load balancer (issue 18, replicas).

The fixture starts a real PostgreSQL (Debian's server binaries, a cluster in a temporary
directory on a private port, run as the ``postgres`` user when the tests run as root), three
``bastion serve`` hubs on that database (``store = "env:BASTION_STORE_URL"``) with the same
sealing key file (``sealing_key = "file:…"``) and the same root (the third hub with
``--threads 2``, so both runtimes serve the suite), and nginx as a round-robin load
balancer in front of them. nginx names the replica that answered each request in a response header
(``X-Bastion-Replica``, its ``$upstream_addr``), so a test can show which hub served what; a test
that must put a step on a given hub addresses that hub's port directly.

The hubs' public URL is ``https://hub.example``: clients reach the load balancer (or one hub)
through :class:`oauth_client.ToHub`, with that ``Host``, as in the other OAuth tests.

``cargo xtask ci`` runs this file in its own ``replicas`` step (pytest marker ``replicas``);
``cargo xtask interop -m replicas tests/python/test_replicas.py`` runs it alone. In CI a missing
PostgreSQL or nginx fails the tests; locally they skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fsclient import bastion_binary as bastion
from fsclient import free_port, stop_process
from oauth_client import (
    CHATGPT_REDIRECT,
    INIT,
    LIST,
    MCP_HEADERS,
    PUBLIC_URL,
    TIMEOUT,
    AsyncToHub,
    Flow,
    OAuthHub,
    assert_oauth_error,
    assert_token_response,
    challenge_params,
    init_repo,
    list_and_read,
    mcp,
    query,
    redirect_base,
    tool_call,
)
from prereq import missing, require_program

pytestmark = [pytest.mark.replicas, pytest.mark.anyio]

REPLICAS = 3
#: nginx's response header naming the hub that answered.
REPLICA_HEADER = "x-bastion-replica"


# --- PostgreSQL ------------------------------------------------------------------------------------


def postgres_bin() -> Path:
    """Debian's server binaries, newest major version first (``/usr/lib/postgresql/N/bin``)."""
    found = sorted(p / "bin" for p in Path("/usr/lib/postgresql").glob("*") if (p / "bin" / "pg_ctl").exists())
    if not found:
        missing("PostgreSQL is not installed (Debian package `postgresql`)")
    return found[-1]


class Postgres:
    """A private cluster: its own data directory and port, trust authentication on loopback."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        # Not under pytest's tmp_path: that is private to root, and the server runs as `postgres`.
        self.base = Path(tempfile.mkdtemp(prefix="bastion-replicas-pg-"))
        self.data = self.base / "data"
        self.owner = "postgres" if os.geteuid() == 0 else None
        if self.owner:
            shutil.chown(self.base, self.owner, self.owner)
        self._run("initdb", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "-D", str(self.data))
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "bastion")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/bastion"

    def _run(self, program: str, *args: str) -> str:
        argv = [str(self.bin / program), *args]
        if self.owner:
            argv = ["runuser", "-u", self.owner, "--", *argv]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            log = (self.base / "log").read_text(errors="replace")[-2000:] if (self.base / "log").exists() else ""
            pytest.fail(f"{' '.join(argv)} exited {r.returncode}: {r.stdout}{r.stderr}\n{log}", pytrace=False)
        return r.stdout

    def start(self) -> None:
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='{self.base}' "
                "-c fsync=off -c max_connections=200")
        self._run("pg_ctl", "-w", "-s", "-D", str(self.data), "-l", str(self.base / "log"), "-o", opts, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-w", "-s", "-D", str(self.data), "-m", mode, "stop")

    def sql(self, statement: str) -> str:
        """One statement through psql; its rows, unaligned, one a line."""
        return self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "bastion",
                         "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement).strip()

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except BaseException:  # noqa: BLE001 (already stopped: the directory goes anyway)
            pass
        shutil.rmtree(self.base, ignore_errors=True)


# --- The hubs and the load balancer ------------------------------------------------------------------


@dataclass
class Replica(OAuthHub):
    """One ``bastion serve`` of the cluster; keeps what it printed on stdout (the first start
    prints the owner token and the owner secret)."""

    env: dict[str, str] = field(default_factory=dict)
    printed: list[str] = field(default_factory=list)

    def start(self) -> None:
        with open(self.stderr, "a") as err:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=err, text=True,
                                         env={**os.environ, "RUST_LOG": "warn", **self.env})
        stdout = self.proc.stdout
        assert stdout is not None
        threading.Thread(target=lambda: [self.printed.append(line.rstrip("\n")) for line in stdout],
                         daemon=True).start()
        deadline = time.monotonic() + TIMEOUT * 2
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"hub exited with {self.proc.returncode}: {' '.join(self.argv)}\n{self.log()}",
                            pytrace=False)
            try:
                if httpx2.get(f"http://127.0.0.1:{self.port}/readyz", timeout=5).status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
        pytest.fail(f"the hub never became ready on port {self.port}\n{self.log()}", pytrace=False)

    def kill(self) -> None:
        """``kill -9``: no drain, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def printed_value(self, prefix: str) -> str:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for line in self.printed:
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
            time.sleep(0.05)
        pytest.fail(f"the hub never printed `{prefix}`: {self.printed}", pytrace=False)


def nginx_conf(base: Path, port: int, hubs: list[int]) -> str:
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in hubs)
    return f"""
daemon off;
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {base}/body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    upstream hubs {{
        # Round robin (nginx's default). A hub that refuses a connection is skipped for 2 s; a
        # request it had already received is not sent again (POST is not idempotent).
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://hubs;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_connect_timeout 2s;
            proxy_read_timeout 300s;
            proxy_next_upstream error timeout;
            add_header X-Bastion-Replica $upstream_addr always;
        }}
    }}
}}
"""


@dataclass
class Cluster:
    pg: Postgres
    hubs: list[Replica]
    #: The load balancer, as an :class:`OAuthHub` whose port is nginx's.
    lb: OAuthHub
    owner_token: str
    sealing_key: Path

    def replica_of(self, r: httpx2.Response) -> int:
        """The index of the hub that answered ``r`` through the load balancer."""
        addr = r.headers.get(REPLICA_HEADER, "")
        ports = [h.port for h in self.hubs]
        # After a retry nginx lists every address it tried; the last one answered.
        last = addr.split(",")[-1].strip()
        port = int(last.rsplit(":", 1)[-1]) if ":" in last else -1
        assert port in ports, f"no replica named in {REPLICA_HEADER}: {dict(r.headers)}"
        return ports.index(port)


def start_nginx(base: Path, port: int, hubs: list[int]) -> subprocess.Popen[bytes]:
    nginx = require_program("nginx")
    for d in ["body", "proxy", "fastcgi", "uwsgi", "scgi"]:
        (base / d).mkdir(exist_ok=True)
    (base / "nginx.conf").write_text(nginx_conf(base, port, hubs))
    proc = subprocess.Popen([nginx, "-p", str(base), "-c", str(base / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"nginx exited with {proc.returncode}:\n{(base / 'error.log').read_text()}", pytrace=False)
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx2.HTTPError:
            time.sleep(0.1)
    stop_process(proc, 5)
    pytest.fail("nginx never answered", pytrace=False)


def replica(base: Path, i: int, root: Path, config: Path, env: dict[str, str]) -> Replica:
    state = base / f"hub{i}" / "state"
    state.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [str(bastion()), "serve", "--listen", f"127.0.0.1:{port}", "--state-dir", str(state), "--root", str(root),
            "--public-url", PUBLIC_URL, "--config", str(config), "--allow-write", "--no-rate-limits"]
    # The last hub on a multi-threaded runtime, so both runtimes serve the suite.
    if i == REPLICAS - 1:
        argv += ["--threads", "2"]
    return Replica(port=port, state=state, root=root, public_url=PUBLIC_URL, owner_secret="",
                   stderr=base / f"hub{i}.stderr", argv=argv, env=env)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_program("nginx")
    postgres_bin()
    base = tmp_path_factory.mktemp("replicas")
    root = base / "proj"
    init_repo(root)
    key = base / "sealing.key"
    key.write_text(os.urandom(32).hex() + "\n")
    key.chmod(0o600)
    config = base / "bastion.toml"
    config.write_text(f'store = "env:BASTION_STORE_URL"\nsealing_key = "file:{key}"\n')
    pg = Postgres()
    hubs: list[Replica] = []
    proc = None
    try:
        env = {"BASTION_STORE_URL": pg.url}
        hubs = [replica(base, i, root, config, env) for i in range(REPLICAS)]
        # The first hub migrates the database and creates the owner token and owner secret; the
        # others find them there.
        hubs[0].start()
        owner_token = hubs[0].printed_value("token:")
        secret = hubs[0].printed_value("owner secret:")
        for h in hubs[1:]:
            h.start()
        for h in hubs:
            h.owner_secret = secret
            assert not any(line.startswith("owner secret:") for line in h.printed[1:] if h is not hubs[0])
        lb_port = free_port()
        (base / "nginx").mkdir()
        proc = start_nginx(base / "nginx", lb_port, [h.port for h in hubs])
        lb = OAuthHub(port=lb_port, state=base, root=root, public_url=PUBLIC_URL, owner_secret=secret,
                      stderr=base / "nginx" / "error.log", argv=[])
        yield Cluster(pg=pg, hubs=hubs, lb=lb, owner_token=owner_token, sealing_key=key)
    finally:
        if proc is not None:
            stop_process(proc, 5)
        for h in hubs:
            h.stop()
        pg.remove()


def running(cluster: Cluster, stateful: bool) -> Cluster:
    """The cluster with every hub running (a test before may have killed one), stateless or
    ``--stateful``."""
    for h in cluster.hubs:
        if ("--stateful" in h.argv) != stateful:
            h.stop()
            h.argv = [a for a in h.argv if a != "--stateful"] + (["--stateful"] if stateful else [])
        if h.proc is None or h.proc.poll() is not None:
            h.proc = None
            h.start()
    # nginx skips a hub that refused a connection for a while: wait until all three answer.
    deadline = time.monotonic() + 15
    seen: set[int] = set()
    with cluster.lb.client() as http:
        while len(seen) < REPLICAS and time.monotonic() < deadline:
            seen.add(cluster.replica_of(http.get(f"{PUBLIC_URL}/healthz")))
    assert len(seen) == REPLICAS, f"the load balancer reaches replicas {seen} only"
    return cluster


@pytest.fixture
def live(cluster: Cluster) -> Cluster:
    """Three stateless hubs (the default), all running."""
    return running(cluster, stateful=False)


@pytest.fixture
def sessions(cluster: Cluster) -> Cluster:
    """Three ``--stateful`` hubs, all running."""
    return running(cluster, stateful=True)


# --- Helpers -----------------------------------------------------------------------------------------


def register_chatgpt(http: httpx2.Client, scope: str) -> dict[str, Any]:
    reg = http.post(f"{PUBLIC_URL}/register", json={
        "client_name": "ChatGPT", "redirect_uris": [CHATGPT_REDIRECT], "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"], "token_endpoint_auth_method": "none", "scope": scope})
    assert reg.status_code == 201, reg.text
    return reg.json()


def grant(c: Cluster, client_id: str, on: int, scope: str = "fs:read") -> tuple[Flow, dict[str, Any]]:
    """One authorization (consent page and form on hub ``on``; the pending request is that hub's)
    and its code exchanged on the next hub."""
    with c.hubs[on].client() as http:
        flow = Flow(hub=c.hubs[on], http=http, client_id=client_id, redirect_uri=CHATGPT_REDIRECT)
        code = flow.approve(scope)
    with c.hubs[(on + 1) % REPLICAS].client() as http:
        flow.hub, flow.http = c.hubs[(on + 1) % REPLICAS], http
        tokens = assert_token_response(flow.exchange(code))
    return flow, tokens


def refresh_on(hub: OAuthHub, client_id: str, refresh_token: str) -> httpx2.Response:
    with hub.client() as http:
        return http.post(f"{PUBLIC_URL}/token", data={
            "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id,
            "resource": f"{PUBLIC_URL}/mcp"})


def call_status(hub: OAuthHub, token: str) -> int:
    with hub.client() as http:
        return mcp(http, hub, tool_call("fs__read_file", {"path": "hello.txt"}), token).status_code


# --- The ChatGPT-like flow across replicas ----------------------------------------------------------


async def test_chatgpt_like_flow_lands_on_every_replica(live: Cluster) -> None:
    """Discovery and registration through the load balancer (round robin: the answers come from
    different hubs), the consent on hub 1, the code exchanged on hub 2, the SDK's tools/list and
    read on hub 0 and through the load balancer, the refresh on hub 0 and its new token used on
    hub 1: one authorization server, whichever replica answers."""
    c = live
    answered: list[int] = []
    with c.lb.client() as http:
        r = mcp(http, c.lb, INIT)
        assert r.status_code == 401, r.text
        answered.append(c.replica_of(r))
        params = challenge_params(r.headers["www-authenticate"])
        prm = http.get(params["resource_metadata"])
        assert prm.status_code == 200 and prm.json()["authorization_servers"] == [PUBLIC_URL], prm.text
        answered.append(c.replica_of(prm))
        meta = http.get(f"{PUBLIC_URL}/.well-known/oauth-authorization-server")
        assert meta.status_code == 200 and meta.json()["issuer"] == PUBLIC_URL, meta.text
        answered.append(c.replica_of(meta))
        client = register_chatgpt(http, params["scope"])
    assert sorted(answered) == [0, 1, 2], f"round robin put the discovery on replicas {answered}"

    # The consent page and its form on hub 1 (a pending request is held by the hub that showed it).
    with c.hubs[1].client() as http:
        flow = Flow(hub=c.hubs[1], http=http, client_id=client["client_id"], redirect_uri=CHATGPT_REDIRECT)
        page = http.get(f"{PUBLIC_URL}/authorize", params=flow.authorize_params(params["scope"]))
        assert page.status_code == 200 and "ChatGPT" in page.text, page.text[:300]
        r = flow.submit(page)
        assert r.status_code == 303, r.text[:300]
        got = query(r.headers["location"])
        assert redirect_base(r.headers["location"]) == CHATGPT_REDIRECT and got["iss"] == PUBLIC_URL, r.headers
    # The code, issued by hub 1, redeemed on hub 2; a second redemption on hub 0 is refused.
    with c.hubs[2].client() as http:
        flow.http, flow.hub = http, c.hubs[2]
        tokens = assert_token_response(flow.exchange(got["code"]))
    with c.hubs[0].client() as http:
        flow.http, flow.hub = http, c.hubs[0]
        assert_oauth_error(flow.exchange(got["code"]), 400, "invalid_grant")
    # The replay revoked what the code issued (RFC 6749 §4.1.2): start again, on hub 2 this time.
    flow, tokens = grant(c, client["client_id"], on=2, scope=params["scope"])

    # The official SDK on hub 0, then through the load balancer.
    await list_and_read(c.hubs[0], tokens["access_token"])
    await list_and_read(c.lb, tokens["access_token"])
    # Refresh on hub 0; the new access token on hub 1; the old refresh token is spent everywhere.
    fresh = assert_token_response(refresh_on(c.hubs[0], client["client_id"], tokens["refresh_token"]))
    assert call_status(c.hubs[1], fresh["access_token"]) == 200
    with c.lb.client() as http:
        seen = set()
        for _ in range(REPLICAS):
            r = mcp(http, c.lb, LIST, fresh["access_token"])
            assert r.status_code == 200 and "fs__read_file" in r.text, r.text[:300]
            seen.add(c.replica_of(r))
    assert seen == {0, 1, 2}, seen


async def test_refresh_token_reuse_on_one_replica_revokes_the_grant_on_all(live: Cluster) -> None:
    c = live
    with c.lb.client() as http:
        client = register_chatgpt(http, "fs:read")
    _, tokens = grant(c, client["client_id"], on=0)
    rotated = assert_token_response(refresh_on(c.hubs[1], client["client_id"], tokens["refresh_token"]))
    for h in c.hubs:
        assert call_status(h, rotated["access_token"]) == 200
    # The spent refresh token again, on another hub: reuse, so the whole grant goes.
    assert_oauth_error(refresh_on(c.hubs[2], client["client_id"], tokens["refresh_token"]), 400, "invalid_grant")
    for i, h in enumerate(c.hubs):
        assert call_status(h, rotated["access_token"]) == 401, f"replica {i} still honours a revoked grant"
        assert_oauth_error(refresh_on(h, client["client_id"], rotated["refresh_token"]), 400, "invalid_grant")


# --- Failures under load -----------------------------------------------------------------------------


@dataclass
class Outcome:
    started: float
    ended: float
    status: int  # 0: no HTTP response at all
    body: str = ""
    #: nginx's ``X-Bastion-Replica``: the hub (or hubs, after a retry) the call went to.
    replica: str = ""


async def hammer(c: Cluster, tokens: list[str], clients: int, seconds: float,
                 event: tuple[float, Any] | None = None, settle: float = 0.1) -> tuple[list[list[Outcome]], float, float]:
    """``clients`` concurrent clients calling ``fs__read_file`` through the load balancer, client
    ``i`` with ``tokens[i % len(tokens)]``; ``event`` = (after, action) runs ``action`` in a thread
    ``after`` seconds in. Each client goes on for ``seconds`` and until it has made three calls
    that started ``settle`` seconds after the action returned (a loaded machine is slow), within
    two minutes. Returns each client's outcomes, when the action started and when it returned."""
    body = json.dumps(tool_call("fs__read_file", {"path": "hello.txt"}))
    t0 = time.monotonic()
    stop, hard_stop = t0 + seconds, t0 + 120
    fired, done = [0.0], [0.0]
    results: list[list[Outcome]] = [[] for _ in range(clients)]

    def finished(i: int) -> bool:
        now = time.monotonic()
        if now >= hard_stop:
            return True
        if now < stop:
            return False
        if event is None:
            return True
        return done[0] > 0 and sum(o.started > done[0] + settle for o in results[i]) >= 3

    async def client(i: int) -> None:
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {tokens[i % len(tokens)]}",
                   "Mcp-Protocol-Version": "2025-06-18"}
        async with httpx2.AsyncClient(transport=AsyncToHub(PUBLIC_URL, c.lb.port),
                                      timeout=httpx2.Timeout(20.0)) as http:
            while not finished(i):
                started = time.monotonic()
                try:
                    r = await http.post(f"{PUBLIC_URL}/mcp", content=body, headers=headers)
                    results[i].append(Outcome(started, time.monotonic(), r.status_code, r.text[:300],
                                              r.headers.get(REPLICA_HEADER, "")))
                except httpx2.HTTPError as e:
                    results[i].append(Outcome(started, time.monotonic(), 0, repr(e)))
                    await asyncio.sleep(0.05)

    async def trigger() -> None:
        if event is None:
            return
        await asyncio.sleep(event[0])
        fired[0] = time.monotonic()
        await asyncio.to_thread(event[1])
        done[0] = time.monotonic()

    await asyncio.gather(trigger(), *(client(i) for i in range(clients)))
    return results, fired[0], done[0]


def ok(o: Outcome) -> bool:
    return o.status == 200 and '"result"' in o.body and "isError\":true" not in o.body


def grants_table(pg: Postgres) -> list[str]:
    return pg.sql("SELECT id || ' ' || coalesce(revoked::text, '-') FROM grants ORDER BY id").splitlines()


async def slow_call(c: Cluster, hub: int, fifo: Path) -> Outcome:
    """``shell__run_command cat FIFO`` on hub ``hub``: in flight until the FIFO is written (or
    the hub dies)."""
    call = tool_call("shell__run_command", {"program": "cat", "args": [fifo.name]})
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {c.owner_token}", "Mcp-Protocol-Version": "2025-06-18"}
    transport = AsyncToHub(PUBLIC_URL, c.hubs[hub].port)
    async with httpx2.AsyncClient(transport=transport, timeout=httpx2.Timeout(60.0)) as http:
        started = time.monotonic()
        try:
            r = await http.post(f"{PUBLIC_URL}/mcp", json=call, headers=headers)
            return Outcome(started, time.monotonic(), r.status_code, r.text[:300], str(hub))
        except httpx2.HTTPError as e:
            return Outcome(started, time.monotonic(), 0, repr(e), str(hub))


def readers_of(fifo: Path) -> int:
    """How many ``cat FIFO`` processes are running."""
    count = 0
    for d in Path("/proc").iterdir():
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0") if d.name.isdigit() else []
        except OSError:
            continue
        count += bool(argv) and argv[0] == b"cat" and fifo.name.encode() in argv
    return count


def release(fifo: Path) -> None:
    """Ends every ``cat`` still reading ``fifo`` (a writer that opens and closes it)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # no reader left
        return
    os.write(fd, b"released\n")
    os.close(fd)


async def test_kill_9_of_a_replica_under_32_clients(live: Cluster) -> None:
    """32 clients through the load balancer, and six calls sent to the hubs directly that stay in
    flight (a shell command reading a FIFO), two on each; hub 1 is killed with SIGKILL a second
    in. Only calls in flight on it fail: through nginx a 502 naming it, directly a lost
    connection; the slow calls on the other hubs finish once the FIFO is written; every client
    goes on through the other two; the grants in the database are the same rows before and
    after, none revoked, each still refreshes once."""
    c = live
    with c.lb.client() as http:
        client = register_chatgpt(http, "fs:read")
    flows = [grant(c, client["client_id"], on=i % REPLICAS) for i in range(8)]
    tokens = [t["access_token"] for _, t in flows]
    before = grants_table(c.pg)
    fifo = c.hubs[0].root / "slow.fifo"
    os.mkfifo(fifo)
    try:
        slow = [asyncio.create_task(slow_call(c, i % REPLICAS, fifo)) for i in range(2 * REPLICAS)]
        deadline = time.monotonic() + 30
        while readers_of(fifo) < 2 * REPLICAS and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert readers_of(fifo) == 2 * REPLICAS, "the slow calls never all started"
        results, killed_at, _ = await hammer(c, tokens, 32, 4.0, (1.0, c.hubs[1].kill))
        released_at = time.monotonic()
        await asyncio.to_thread(release, fifo)
        slow_done = await asyncio.gather(*slow)
    finally:
        release(fifo)
        fifo.unlink()
    for o in slow_done:
        if o.replica == "1":
            assert o.status == 0, o
        else:
            # In flight through the kill, answered once the FIFO was written (one `cat` reads
            # the line, the others the end of file).
            assert ok(o) and o.started < killed_at < released_at < o.ended, o
    outcomes = [o for per in results for o in per]
    failed = [o for o in outcomes if not ok(o)]
    print(f"{len(outcomes)} calls, {len(failed)} failed, kill at +{killed_at - min(o.started for o in outcomes):.2f}s")
    assert killed_at > 0
    # A failed call was in flight when the hub died: sent before the kill, answered after it.
    for o in failed:
        assert o.started <= killed_at + 0.05 <= o.ended + 0.05, (o, killed_at)
        assert o.status == 502 and o.replica.endswith(f":{c.hubs[1].port}"), o
    assert len(failed) <= 32, len(failed)
    for i, per in enumerate(results):
        after = [o for o in per if o.started > killed_at + 0.1]
        assert after and all(ok(o) for o in after), f"client {i} after the kill: {after[:3]}"
    assert grants_table(c.pg) == before
    for flow, t in flows:
        fresh = assert_token_response(refresh_on(c.lb, flow.client_id, t["refresh_token"]))
        assert call_status(c.lb, fresh["access_token"]) == 200
    assert len(grants_table(c.pg)) == len(before)


async def test_postgres_restart_mid_load(live: Cluster) -> None:
    """PostgreSQL stopped (fast shutdown) a second into the load and started again seven seconds
    later, longer than the store's wait for a connection (5 s): a call meanwhile waits for the
    database and then gets 503 ``store_unavailable`` (not a 401, which would make a client drop a
    good token), never a dropped connection or a hang; once the database is back every call
    succeeds."""
    c = live
    with c.lb.client() as http:
        client = register_chatgpt(http, "fs:read")
    tokens = [grant(c, client["client_id"], on=i)[1]["access_token"] for i in range(REPLICAS)]
    down: list[float] = []

    def restart() -> None:
        c.pg.stop("fast")
        down.append(time.monotonic())
        time.sleep(7.0)
        c.pg.start()
        down.append(time.monotonic())

    results, _, _ = await hammer(c, tokens, 8, 10.0, (1.0, restart), settle=1.0)
    outcomes = sorted((o for per in results for o in per), key=lambda o: o.started)
    failed = [o for o in outcomes if not ok(o)]
    answers = {(o.status, stable_error(o.body)) for o in failed}
    print(f"{len(outcomes)} calls, {len(failed)} failed while PostgreSQL was down: {answers}")
    assert len(down) == 2
    assert failed, "no call failed while the database was down for longer than the store waits"
    assert answers == {(503, "store_unavailable")}, answers
    # A hub queues its OAuth store calls (one at a time), so a call may wait for several 5 s
    # connection timeouts; never for the client's 20 s (that would be a status 0 above).
    for o in failed:
        assert down[0] - 0.5 <= o.ended <= down[1] + 20 and o.ended - o.started < 20, (o, down)
    after = [o for o in outcomes if o.started > down[1] + 1]
    assert after and all(ok(o) for o in after), [o for o in after if not ok(o)][:3]


def stable_error(body: str) -> str:
    """The error a refusal names: a JSON-RPC error's code or an OAuth/HTTP error's name."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:80]
    err = doc.get("error")
    if isinstance(err, dict):
        data = err.get("data")
        return str(data.get("code") if isinstance(data, dict) and data.get("code") else err.get("code"))
    return str(err)


# --- Sealed sessions ---------------------------------------------------------------------------------


def open_session(hub: OAuthHub, token: str) -> str:
    with hub.client() as http:
        r = mcp(http, hub, INIT, token)
        assert r.status_code == 200, r.text[:300]
        sid = r.headers.get("mcp-session-id")
        assert sid, dict(r.headers)
        done = http.post(f"{PUBLIC_URL}/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                         headers={**MCP_HEADERS, "Authorization": f"Bearer {token}", "Mcp-Session-Id": sid,
                                  "Mcp-Protocol-Version": "2025-06-18"})
        assert done.status_code == 202, done.text
    return sid


def in_session(hub: OAuthHub, token: str, sid: str, body: dict[str, Any]) -> httpx2.Response:
    with hub.client() as http:
        return mcp(http, hub, body, token, **{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-06-18"})


def sse_result(r: httpx2.Response) -> dict[str, Any]:
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"
    for line in r.text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            doc = json.loads(line[5:])
            if "result" in doc or "error" in doc:
                return doc
    raise AssertionError(f"no JSON-RPC answer in {r.text[:300]}")


async def test_stateful_session_survives_the_replica_that_created_it(sessions: Cluster) -> None:
    c = sessions
    sid = open_session(c.hubs[0], c.owner_token)
    assert len(sid) > 60 and re.fullmatch(r"[A-Za-z0-9_.-]+", sid), sid
    first = sse_result(in_session(c.hubs[0], c.owner_token, sid, tool_call("fs__read_file", {"path": "hello.txt"})))
    assert "hello through oauth" in json.dumps(first), first
    c.hubs[0].kill()
    # Another hub, which never saw this session, continues it; so does the load balancer.
    for hub in (c.hubs[1], c.hubs[2], c.lb, c.lb):
        doc = sse_result(in_session(hub, c.owner_token, sid, tool_call("fs__read_file", {"path": "hello.txt"})))
        assert "hello through oauth" in json.dumps(doc), doc
        listed = sse_result(in_session(hub, c.owner_token, sid, LIST))
        assert "fs__read_file" in json.dumps(listed), listed


def test_a_sealed_session_is_bound_to_its_principal_and_its_bytes(sessions: Cluster) -> None:
    """Another token cannot use the session id; a changed byte makes it no session at all."""
    c = sessions
    sid = open_session(c.hubs[1], c.owner_token)
    with c.lb.client() as http:
        client = register_chatgpt(http, "fs:read")
    _, tokens = grant(c, client["client_id"], on=2)
    r = in_session(c.hubs[2], tokens["access_token"], sid, LIST)
    assert r.status_code == 404, f"{r.status_code} {r.text[:300]}"
    flipped = sid[:-3] + ("A" if sid[-3] != "A" else "B") + sid[-2:]
    for hub in c.hubs:
        r = in_session(hub, c.owner_token, flipped, LIST)
        assert r.status_code == 404, f"{r.status_code} {r.text[:300]}"
