"""A fleet of hosts behind one hub: two Bastion hosts, each ``bastion serve`` with its own roots
and its own state directory, aggregated by a third hub that reaches them with OAuth client
credentials (``bastion client create --machine`` on each host), driven by the official MCP
Python SDK.

Each host runs in its own network namespace (``ip netns``, a veth pair to the test's namespace).
Inside its namespace the host listens on a loopback address of its own (127.0.0.2, 127.0.0.3)
and its public URL is that address; two small TCP forwarders, one in the host's namespace and one
in the test's, carry that address across the veth, so the hub, the host's ``Host`` check and the
token's audience all see the same URL while every byte crosses the namespaces' link. Where
namespaces cannot be made (not root, no ``ip``), the hosts listen on 127.0.0.2 and 127.0.0.3 in
the test's namespace instead, and the test says so in its output.

A third test puts a host behind nginx requiring a client certificate (mutual TLS) and checks
that the hub reaches it with its certificate and not without.

Run by ``cargo xtask ci``'s ``fleet`` step (``xtask/src/fleet.rs``), which sets
``BASTION_FLEET=1``; the normal interop step skips it.

Run alone: ``BASTION_FLEET=1 cargo xtask interop --no-build tests/python/test_fleet.py``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 30.0

pytestmark = pytest.mark.skipif(
    os.environ.get("BASTION_FLEET") != "1",
    reason="the fleet test runs in `cargo xtask ci`'s fleet step (BASTION_FLEET=1)",
)


# ---------------------------------------------------------------------------------------------
# The forwarder: `python3 test_fleet.py forward LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT`.
# ---------------------------------------------------------------------------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _forward(listen: tuple[str, int], target: tuple[str, int]) -> None:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            tr, tw = await asyncio.open_connection(*target)
        except OSError:
            w.close()  # the host is down: the connection is closed, as a refused one would be
            return
        await asyncio.gather(_pipe(r, tw), _pipe(tr, w))

    server = await asyncio.start_server(handle, *listen)
    print("forwarding", flush=True)
    async with server:
        await server.serve_forever()


# ---------------------------------------------------------------------------------------------
# The fleet.
# ---------------------------------------------------------------------------------------------


def bastion() -> Path:
    from fsclient import bastion_binary

    return bastion_binary()


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=TIMEOUT, check=check)


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def netns_available() -> tuple[bool, str]:
    """Whether this machine lets the test make network namespaces and veth pairs
    (``BASTION_FLEET_NETNS=0`` forces the loopback fallback)."""
    if os.environ.get("BASTION_FLEET_NETNS") == "0":
        return False, "BASTION_FLEET_NETNS=0"
    if os.geteuid() != 0:
        return False, "not root"
    if shutil.which("ip") is None:
        return False, "no `ip` program (iproute2)"
    probe = f"bfp{os.getpid() % 100000}"
    r = _run("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return False, f"`ip netns add` failed: {r.stderr.strip()}"
    try:
        r = _run("ip", "link", "add", f"{probe}a", "type", "veth", "peer", "name", f"{probe}b", check=False)
        if r.returncode != 0:
            return False, f"`ip link add … type veth` failed: {r.stderr.strip()}"
        _run("ip", "link", "del", f"{probe}a", check=False)
        return True, "network namespaces"
    finally:
        _run("ip", "netns", "del", probe, check=False)


@dataclass
class Host:
    name: str
    index: int
    base: Path
    netns: str | None
    address: str  # 127.0.0.2, 127.0.0.3
    port: int
    state: Path = field(init=False)
    root: Path = field(init=False)
    proc: subprocess.Popen[str] | None = None
    forwarders: list[subprocess.Popen[str]] = field(default_factory=list)
    client_id: str = ""
    client_secret: str = ""

    def __post_init__(self) -> None:
        self.state = self.base / f"{self.name}-state"
        self.root = self.base / f"{self.name}-root"
        self.root.mkdir(parents=True)
        (self.root / f"hello-{self.name}.txt").write_text(f"hello from {self.name}\n")

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/mcp"

    @property
    def veth_host(self) -> str:
        return f"10.231.{self.index}.2"

    def in_ns(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *cmd] if self.netns else list(cmd)

    def create_machine_client(self, scopes: str) -> None:
        r = _run(str(bastion()), "client", "create", "--machine", "--name", "fleet-hub", "--scope", scopes,
                 "--state-dir", str(self.state))
        secret = r.stdout.strip()
        assert secret.startswith("bcs_") and "\n" not in secret, r
        ids = [l.split()[1] for l in r.stderr.splitlines() if l.startswith("client_id: ")]
        assert ids and ids[0].startswith("bmc_"), r.stderr
        self.client_id, self.client_secret = ids[0], secret
        listed = _run(str(bastion()), "client", "list", "--state-dir", str(self.state)).stdout
        assert self.client_id in listed and "live" in listed, listed
        assert secret not in (self.state / "auth.sqlite3").read_bytes().decode("latin-1"), "the secret is kept hashed"

    def start(self) -> None:
        log = open(self.base / f"{self.name}.stderr", "a")
        self.proc = subprocess.Popen(
            self.in_ns(str(bastion()), "serve", "--root", str(self.root), "--allow-write",
                       "--listen", f"{self.address}:{self.port}", "--public-url", f"http://{self.address}:{self.port}",
                       "--state-dir", str(self.state)),
            stdout=subprocess.DEVNULL, stderr=log, text=True,
            env={**os.environ, "RUST_LOG": "info,rmcp=warn"},
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def ready(self) -> str:
        """``""`` when ready, else what answered."""
        try:
            status, _, body = raw(self.address, self.port, "GET", "/readyz")
            return "" if status == 200 else f"{status} {body!r}"
        except OSError as e:
            return repr(e)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        why = ""
        while time.monotonic() < deadline:
            why = self.ready()
            if not why:
                return
            assert self.proc is not None and self.proc.poll() is None, self.stderr()
            time.sleep(0.1)
        pytest.fail(f"{self.name} never ready ({why}): {self.stderr()}")

    def stderr(self) -> str:
        return (self.base / f"{self.name}.stderr").read_text()[-3000:]


def raw(host: str, port: int, method: str, path: str, body: Any = None, token: str | None = None
        ) -> tuple[int, dict[str, str], bytes]:
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _forwarder(cmd_prefix: list[str], listen: tuple[str, int], target: tuple[str, int]) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [*cmd_prefix, sys.executable, str(Path(__file__).resolve()), "forward", listen[0], str(listen[1]),
         target[0], str(target[1])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.strip() == "forwarding", (line, p.stderr.read() if p.poll() is not None and p.stderr else "")
    return p


@contextmanager
def fleet(base: Path) -> Iterator[tuple[list[Host], str]]:
    use_netns, how = netns_available()
    tag = f"bf{os.getpid() % 100000}"
    hosts: list[Host] = []
    made: list[str] = []
    try:
        for i, name in enumerate(["build01", "build02"], start=1):
            address = f"127.0.0.{i + 1}"
            ns = f"{tag}{name}" if use_netns else None
            h = Host(name=name, index=i, base=base, netns=ns, address=address, port=_free_port(address))
            if ns:
                veth = f"{tag}v{i}"
                _run("ip", "netns", "add", ns)
                made.append(ns)
                _run("ip", "link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
                _run("ip", "link", "set", f"{veth}p", "netns", ns)
                _run("ip", "addr", "add", f"10.231.{i}.1/24", "dev", veth)
                _run("ip", "link", "set", veth, "up")
                _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{h.veth_host}/24", "dev", f"{veth}p")
                _run("ip", "netns", "exec", ns, "ip", "link", "set", f"{veth}p", "up")
                _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
                # The host's address across the link, in both namespaces.
                h.forwarders.append(_forwarder(["ip", "netns", "exec", ns], (h.veth_host, h.port), (address, h.port)))
                h.forwarders.append(_forwarder([], (address, h.port), (h.veth_host, h.port)))
            h.create_machine_client("*:read,fs:write")
            h.start()
            hosts.append(h)
        for h in hosts:
            h.wait_ready()
        yield hosts, how
    finally:
        for h in hosts:
            if h.proc and h.proc.poll() is None:
                h.kill()
            for f in h.forwarders:
                f.kill()
                f.wait(timeout=10)
        for i, ns in enumerate(made, start=1):
            _run("ip", "link", "del", f"{tag}v{i}", check=False)
            _run("ip", "netns", "del", ns, check=False)


@dataclass
class Aggregator:
    port: int
    state: Path
    stderr: Path
    proc: subprocess.Popen[str]

    def readyz(self, token: str) -> tuple[int, dict[str, Any]]:
        status, _, body = raw("127.0.0.1", self.port, "GET", "/readyz", token=token)
        return status, json.loads(body)

    def upstream(self, token: str, name: str) -> dict[str, Any]:
        ups = self.readyz(token)[1].get("upstreams", [])
        return next((u for u in ups if u["name"] == name), {"state": "absent"})

    def upstream_state(self, token: str, name: str) -> str:
        return str(self.upstream(token, name)["state"])

    def wait_tools(self, token: str, name: str, count: int) -> None:
        """Waits for ``name`` to be ready with ``count`` tools: a host that has just come back may
        answer before all its own upstreams have (its hub is stateless, so the hub sees the rest
        at its next poll)."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            u = self.upstream(token, name)
            if u["state"] == "ready" and u.get("tools") == count:
                return
            time.sleep(0.2)
        pytest.fail(f"{name} never offered its {count} tools again: {self.readyz(token)}")

    def wait_state(self, token: str, name: str, want: set[str], within: float = TIMEOUT) -> str:
        deadline = time.monotonic() + within
        st = ""
        while time.monotonic() < deadline:
            st = self.upstream_state(token, name)
            if st in want:
                return st
            time.sleep(0.2)
        pytest.fail(f"{name} stayed {st!r}, not {want}: {self.readyz(token)}; {self.stderr.read_text()[-3000:]}")


@contextmanager
def aggregator(base: Path, hosts: list[Host]) -> Iterator[Aggregator]:
    config = base / "hub.toml"
    env = dict(os.environ)
    entries = []
    for h in hosts:
        var = f"FLEET_{h.name.upper()}_SECRET"
        env[var] = h.client_secret
        entries.append(
            f'[[upstream]]\nname = "{h.name}"\nurl = "{h.url}"\nclient_id = "{h.client_id}"\n'
            f'client_secret = "env:{var}"\nping_interval = "1s"\n'
        )
    config.write_text("\n".join(entries))
    check = subprocess.run([str(bastion()), "check-config", "--config", str(config)], capture_output=True, text=True,
                           env=env, timeout=TIMEOUT)
    assert check.returncode == 0, check
    # A secret in clear is refused when the file is read, with a clear error.
    clear = base / "clear.toml"
    clear.write_text(entries[0].replace(f"env:FLEET_{hosts[0].name.upper()}_SECRET", hosts[0].client_secret))
    refused = subprocess.run([str(bastion()), "check-config", "--config", str(clear)], capture_output=True, text=True,
                             timeout=TIMEOUT)
    assert refused.returncode != 0 and "never written in the configuration in clear" in refused.stderr, refused
    assert hosts[0].client_secret not in refused.stderr, "the refusal does not echo the secret"

    state = base / "hub-state"
    stderr = base / "hub.stderr"
    port = _free_port("127.0.0.1")
    env["RUST_LOG"] = "info,rmcp=warn"
    proc = subprocess.Popen(
        [str(bastion()), "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--state-dir", str(state)],
        stdout=subprocess.DEVNULL, stderr=open(stderr, "w"), text=True, env=env,
    )
    try:
        yield Aggregator(port=port, state=state, stderr=stderr, proc=proc)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def create_token(agg: Aggregator, name: str, scopes: str) -> str:
    r = _run(str(bastion()), "token", "create", "--name", name, "--scopes", scopes, "--state-dir", str(agg.state))
    return r.stdout.strip()


@asynccontextmanager
async def session(agg: Aggregator, token: str) -> AsyncIterator[Any]:
    import anyio
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0))
    async with client:
        async with streamable_http_client(f"http://127.0.0.1:{agg.port}/mcp", http_client=client) as (read, write):
            async with ClientSession(read, write) as s:
                with anyio.fail_after(TIMEOUT):
                    await s.initialize()
                yield s


async def call(s: Any, name: str, args: dict[str, Any]) -> tuple[bool, dict[str, Any], str]:
    import anyio

    with anyio.fail_after(TIMEOUT):
        r = await s.call_tool(name, args)
    text = "".join(getattr(c, "text", "") for c in r.content)
    return bool(r.is_error), dict(r.structured_content or {}), text


async def names(s: Any) -> set[str]:
    return {t.name for t in (await s.list_tools()).tools}


@pytest.mark.anyio
async def test_a_fleet_of_two_hosts(tmp_path: Path) -> None:
    with fleet(tmp_path) as (hosts, how):
        print(f"fleet: hosts isolated by {how}" if how == "network namespaces"
              else f"fleet: no network namespaces ({how}); hosts on 127.0.0.2 and 127.0.0.3 instead")
        b1, b2 = hosts
        with aggregator(tmp_path, hosts) as agg:
            # The hub's own token (created by this test, not the one printed at first start).
            deadline = time.monotonic() + TIMEOUT
            while not (agg.state / "auth.sqlite3").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            admin = create_token(agg, "admin", "*:*")
            for h in hosts:
                agg.wait_state(admin, h.name, {"ready"})
            status, body = agg.readyz(admin)
            assert status == 200 and body["ready"], body
            b2_tools = agg.upstream(admin, "build02")["tools"]
            assert b2_tools > 0, body

            # Per-host scopes: reads everywhere, writes to build01's fs only.
            ops = create_token(agg, "ops", "*:read,build01:fs:write")
            async with session(agg, ops) as s:
                tools = await names(s)
                for h in hosts:
                    assert f"{h.name}__fs__read_file" in tools, sorted(tools)
                assert "build01__fs__write_file" in tools, sorted(tools)
                assert "build02__fs__write_file" not in tools, "a tool out of the token's scopes is not listed"
                for h in hosts:
                    err, out, text = await call(s, f"{h.name}__fs__read_file", {"path": f"hello-{h.name}.txt"})
                    assert not err and f"hello from {h.name}" in (out.get("content") or text), (out, text)
                err, out, text = await call(s, "build01__fs__write_file", {"path": "from-hub.txt", "content": "x\n"})
                assert not err, text
                assert (b1.root / "from-hub.txt").read_text() == "x\n"

            # The other host's write tool: 403 insufficient_scope before anything reaches it.
            call_b2 = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                       "params": {"name": "build02__fs__write_file", "arguments": {"path": "no.txt", "content": "x"}}}
            status, headers, body = raw("127.0.0.1", agg.port, "POST", "/mcp", call_b2, token=ops)
            assert status == 403, (status, body)
            assert 'error="insufficient_scope"' in headers.get("www-authenticate", ""), headers
            assert not (b2.root / "no.txt").exists()

            # The host saw a machine principal: its journal names the machine client's grant.
            journal = (b1.state / "audit.jsonl").read_text().splitlines()
            calls = [json.loads(l) for l in journal if '"principal"' in l]
            assert any(c["principal"].startswith("oauth:fleet-hub/") for c in calls), calls[-3:]

            # build02 goes away: marked down, its calls fail with a stable code, build01 works.
            b2.kill()
            agg.wait_state(admin, "build02", {"failed", "starting"})
            status, body = agg.readyz(admin)
            assert status == 503 and not body["ready"], body
            async with session(agg, ops) as s:
                err, out, text = await call(s, "build02__fs__read_file", {"path": "hello-build02.txt"})
                assert err and out.get("code") == "upstream_unavailable", (out, text)
                err, out, text = await call(s, "build01__fs__read_file", {"path": "hello-build01.txt"})
                assert not err and "hello from build01" in (out.get("content") or text), text

            # build02 comes back: ready again without a hub restart.
            b2.start()
            b2.wait_ready()
            agg.wait_tools(admin, "build02", b2_tools)
            assert agg.proc.poll() is None, "the hub was not restarted"
            async with session(agg, ops) as s:
                err, out, text = await call(s, "build02__fs__read_file", {"path": "hello-build02.txt"})
                assert not err and "hello from build02" in (out.get("content") or text), text

            # Revoking the machine client on a host ends the hub's access there (401, a new token
            # is asked for once and refused): the host is marked down, the other stays up.
            _run(str(bastion()), "client", "revoke", "fleet-hub", "--state-dir", str(b1.state))
            agg.wait_state(admin, "build01", {"failed", "starting"})
            assert agg.upstream_state(admin, "build02") == "ready"
            log = agg.stderr.read_text()
            assert "invalid_client" in log, log[-3000:]
            assert b1.client_secret not in log and b2.client_secret not in log, "secrets never logged"


def _pki(base: Path, server_ip: str) -> dict[str, Path]:
    """A CA, a server certificate for ``server_ip`` and a client certificate, all signed by it."""
    f = {n: base / n for n in ["ca.key", "ca.pem", "server.key", "server.pem", "client.key", "client.pem"]}

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=TIMEOUT)

    ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=fleet test CA", "-keyout", str(f["ca.key"]), "-out", str(f["ca.pem"]))
    for who, ext in [("server", f"subjectAltName=IP:{server_ip}\nextendedKeyUsage=serverAuth"),
                     ("client", "extendedKeyUsage=clientAuth")]:
        csr = base / f"{who}.csr"
        (base / f"{who}.ext").write_text(ext + "\n")
        ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN=fleet {who}",
            "-keyout", str(f[f"{who}.key"]), "-out", str(csr))
        ssl("x509", "-req", "-in", str(csr), "-CA", str(f["ca.pem"]), "-CAkey", str(f["ca.key"]), "-CAcreateserial",
            "-days", "2", "-extfile", str(base / f"{who}.ext"), "-out", str(f[f"{who}.pem"]))
    return f


@pytest.mark.anyio
async def test_a_host_behind_mutual_tls(tmp_path: Path) -> None:
    """Mutual TLS to a host: nginx in front of it requires a client certificate signed by the
    fleet's CA (``ssl_verify_client on``); the hub trusts only that CA for the host
    (``tls_ca``), presents its certificate (``tls_client_cert``, ``tls_client_key =
    "file:…"``) and authenticates with client credentials on top. Without the certificate the
    host stays down."""
    nginx = shutil.which("nginx")
    if nginx is None or shutil.which("openssl") is None:
        pytest.fail("nginx and openssl are needed (cargo xtask provision installs them)")
    address = "127.0.0.4"
    pki = _pki(tmp_path, address)
    front = _free_port(address)
    host = Host(name="build03", index=3, base=tmp_path, netns=None, address="127.0.0.1", port=_free_port("127.0.0.1"))
    host.create_machine_client("*:read")
    log = open(tmp_path / "build03.stderr", "a")
    host.proc = subprocess.Popen(
        [str(bastion()), "serve", "--root", str(host.root), "--listen", f"127.0.0.1:{host.port}",
         "--public-url", f"https://{address}:{front}", "--state-dir", str(host.state)],
        stdout=subprocess.DEVNULL, stderr=log, text=True,
    )
    host.wait_ready()
    for d in ["body", "proxy", "fastcgi", "uwsgi", "scgi"]:
        (tmp_path / d).mkdir()
    (tmp_path / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {tmp_path}/access.log;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    server {{
        listen {address}:{front} ssl;
        ssl_certificate {pki["server.pem"]};
        ssl_certificate_key {pki["server.key"]};
        ssl_client_certificate {pki["ca.pem"]};
        ssl_verify_client on;
        location / {{
            proxy_pass http://127.0.0.1:{host.port};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
""")
    proxy = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    hubs: list[subprocess.Popen[str]] = []
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (tmp_path / "nginx.pid").exists():
            assert proxy.poll() is None and time.monotonic() < deadline, (tmp_path / "error.log").read_text()
            time.sleep(0.1)

        def start_hub(name: str, with_cert: bool) -> tuple[Aggregator, str]:
            entry = (f'[[upstream]]\nname = "build03"\nurl = "https://{address}:{front}/mcp"\n'
                     f'client_id = "{host.client_id}"\nclient_secret = "env:FLEET_BUILD03_SECRET"\n'
                     f'ping_interval = "1s"\ntls_ca = "{pki["ca.pem"]}"\n')
            if with_cert:
                entry += f'tls_client_cert = "{pki["client.pem"]}"\ntls_client_key = "file:{pki["client.key"]}"\n'
            base = tmp_path / name
            base.mkdir()
            (base / "hub.toml").write_text(entry)
            port = _free_port("127.0.0.1")
            proc = subprocess.Popen(
                [str(bastion()), "serve", "--config", str(base / "hub.toml"), "--listen", f"127.0.0.1:{port}",
                 "--state-dir", str(base / "state")],
                stdout=subprocess.DEVNULL, stderr=open(base / "hub.stderr", "w"), text=True,
                env={**os.environ, "FLEET_BUILD03_SECRET": host.client_secret, "RUST_LOG": "info,rmcp=warn"},
            )
            hubs.append(proc)
            agg = Aggregator(port=port, state=base / "state", stderr=base / "hub.stderr", proc=proc)
            deadline = time.monotonic() + TIMEOUT
            while not (agg.state / "auth.sqlite3").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            return agg, create_token(agg, "admin", "*:*")

        agg, admin = start_hub("with-cert", True)
        agg.wait_state(admin, "build03", {"ready"})
        async with session(agg, admin) as s:
            err, out, text = await call(s, "build03__fs__read_file", {"path": "hello-build03.txt"})
            assert not err and "hello from build03" in (out.get("content") or text), text
        access = (tmp_path / "access.log").read_text()
        assert "POST /token" in access and "POST /mcp" in access, access[-2000:]

        # A hub without the client certificate: nginx refuses its requests (400), the host stays
        # down for it.
        bare, admin2 = start_hub("without-cert", False)
        time.sleep(3)
        st = bare.upstream_state(admin2, "build03")
        assert st in {"failed", "starting"}, bare.readyz(admin2)
    finally:
        for p in hubs:
            p.kill()
            p.wait(timeout=10)
        proxy.terminate()
        proxy.wait(timeout=10)
        host.kill()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "forward":
        asyncio.run(_forward((sys.argv[2], int(sys.argv[3])), (sys.argv[4], int(sys.argv[5]))))
    else:
        sys.exit("usage: test_fleet.py forward LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT")
