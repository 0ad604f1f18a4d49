"""The 2026 advisories of MCP hosts and gateways, replayed against the hub (``bastion serve``),
one test per advisory id (the id is in the test's name). The checks themselves live once, in the
hub's HTTP front (``crates/hub/src/strict.rs``, ``limits.rs``, ``refused.rs``) and in
bastion-auth (``net.rs``: the CIMD fetch); these tests only send the attacks and look at what
happened: the status and stable code, a marker file that must not exist, the journal.

The self-protection advisories (CVE-2026-25871, Desktop Commander #420 and #374) are in
``test_self_protection.py`` and ``crates/policy/tests/hostile_protected.rs``; the SSRF address
table of CVE-2026-44430 in ``crates/auth/src/net.rs`` (its end-to-end refusal is here).
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import pytest

from fsclient import bastion_binary as bastion
from fsclient import free_port
from test_hub import INIT, LIST, TIMEOUT, Hub, http_session, running_hub, wait_until_ready

JSON = "application/json"


def post(hub: Hub, body: bytes, content_type: str | None = JSON, token: str | None = None,
         path: str = "/mcp", **headers: str) -> tuple[int, dict[str, str], bytes]:
    """One POST of exactly ``body``; ``headers`` use ``_`` for ``-``."""
    h = {"Host": f"127.0.0.1:{hub.port}", "Accept": "application/json, text/event-stream",
         "User-Agent": "advisory-replay/1"}
    if content_type is not None:
        h["Content-Type"] = content_type
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=TIMEOUT)
    try:
        conn.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def write_call(name: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "fs__write_file", "arguments": {"path": name, "content": "pwned"}}}


def journal(hub: Hub) -> list[dict[str, Any]]:
    path = hub.state / "audit.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


def refusals(hub: Hub, status: int, reason: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in journal(hub)
            if e.get("event") == "http_refused" and e["detail"]["status"] == status and e["detail"]["reason"] == reason]


def code_of(body: bytes) -> str:
    return json.loads(body)["error"]["data"]["code"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("advisories")
    with running_hub(base, "--allow-write") as h:
        yield h


@pytest.fixture(scope="module")
def open_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """``--no-auth`` on loopback: only the Origin check and the media type stand between a web
    page and the tools."""
    base = tmp_path_factory.mktemp("advisories-open")
    root = base / "proj"
    root.mkdir()
    port = free_port()
    state = base / "state"
    stderr = base / "hub.stderr"
    with open(stderr, "w") as err:
        proc = subprocess.Popen(
            [str(bastion()), "serve", "--no-auth", "--allow-write", "--root", str(root),
             "--listen", f"127.0.0.1:{port}", "--state-dir", str(state)],
            stdout=subprocess.DEVNULL, stderr=err)
    try:
        h = Hub(port=port, state=state, root=root, token="", stderr=stderr, pid=proc.pid)
        wait_until_ready(h, "the --no-auth hub")
        yield h
    finally:
        proc.kill()
        proc.wait(timeout=10)


# --- Parser differentials ----------------------------------------------------------------------

def test_cve_2026_27896_ghsa_4gph_2hhr_5mwg_duplicate_and_look_alike_keys_are_refused(hub: Hub) -> None:
    """go-sdk CVE-2026-27896, Envoy AI Gateway GHSA-4gph-2hhr-5mwg: a gateway authorised one
    reading of a body while the server ran another. The hub refuses every body that parsers
    could read two ways (400, a stable code) before any tool runs, whatever the token's scopes."""
    ro = hub.create_token("ro-differential", "fs:read")
    args = '{"path":"%s","content":"pwned"}'
    cases = [
        ("dup-name", '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__read_file","name":"fs__write_file","arguments":%s}}', "duplicate_json_key"),
        ("dup-method", '{"jsonrpc":"2.0","id":9,"method":"tools/list","method":"tools/call","params":{"name":"fs__write_file","arguments":%s}}', "duplicate_json_key"),
        ("dup-argument", '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__write_file","arguments":{"path":"harmless.txt","path":"%s","content":"pwned"}}}', "duplicate_json_key"),
        ("escaped-dup", '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__read_file","n\\u0061me":"fs__write_file","arguments":%s}}', "duplicate_json_key"),
        ("case-Method", '{"jsonrpc":"2.0","id":9,"method":"tools/list","Method":"tools/call","params":{"name":"fs__write_file","arguments":%s}}', "ambiguous_json_key"),
        ("case-METHOD", '{"jsonrpc":"2.0","id":9,"METHOD":"tools/call","params":{"name":"fs__write_file","arguments":%s}}', "ambiguous_json_key"),
        ("case-Name", '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"Name":"fs__write_file","arguments":%s}}', "ambiguous_json_key"),
        ("fold-long-s", '{"jsonrpc":"2.0","id":9,"method":"tools/call","paramſ":{"name":"fs__write_file","arguments":%s}}', "ambiguous_json_key"),
        ("fold-kelvin", '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__write_file","arguments":{"path":"%s","content":"x","\\u212aey":1,"key":2}}}', "ambiguous_json_key"),
    ]
    for case, template, code in cases:
        name = f"differential-{case}.txt"
        body = (template % (args % name if "%s" in template and "arguments\":%s" in template else name)).encode()
        for token in (ro, hub.token):
            status, _, reply = post(hub, body, token=token)
            assert status == 400 and code_of(reply) == code, (case, status, reply)
            assert json.loads(reply)["error"]["code"] == -32600, reply
            assert not (hub.root / name).exists(), f"{case}: the write ran"
        assert refusals(hub, 400, code), case
    # Escapes are no ambiguity: every parser decodes them alike, and the hub serves the call.
    ok = b'{"jsonrpc":"2.0","id":1,"method":"tools\\u002flist"}'
    status, _, reply = post(hub, ok, token=hub.token)
    assert status == 200 and "fs__read_file" in reply.decode(), reply


def test_sep_2243_zentinel_443_mcp_name_header_that_contradicts_the_body(hub: Hub) -> None:
    """SEP-2243 / zentinel#443: an ``Mcp-Name`` header naming a harmless tool while the body
    calls another. A proxy in front of the hub may route or authorise on the header, so the hub
    refuses any ``Mcp-Method``/``Mcp-Name`` that does not say what the body says (400, -32020),
    on every protocol version."""
    for i, headers in enumerate([
        {"Mcp_Method": "tools/call", "Mcp_Name": "fs__read_file"},
        {"Mcp_Name": "fs__read_file"},
        {"Mcp_Name": "=?base64?ZnNfX3JlYWRfZmlsZQ==?="},
        {"Mcp_Method": "tools/list"},
        {"Mcp_Method": "tools/call", "Mcp_Name": "fs__read_file", "MCP_Protocol_Version": "2025-06-18"},
    ]):
        name = f"sep2243-{i}.txt"
        status, _, reply = post(hub, json.dumps(write_call(name)).encode(), token=hub.token, **headers)
        assert status == 400, (headers, status, reply)
        err = json.loads(reply)["error"]
        assert err["code"] == -32020 and err["data"]["code"] == "header_mismatch", reply
        assert not (hub.root / name).exists(), headers
    assert refusals(hub, 400, "header_mismatch")
    # Headers that agree with the body are served.
    status, _, reply = post(hub, json.dumps(write_call("sep2243-agrees.txt")).encode(), token=hub.token,
                            Mcp_Method="tools/call", Mcp_Name="fs__write_file")
    assert status == 200 and (hub.root / "sep2243-agrees.txt").read_text() == "pwned", reply


# --- Cross-site requests -----------------------------------------------------------------------

MULTIPART = (b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\n%s\r\n--XyZ--\r\n')


@pytest.mark.parametrize("mode", ["tokens", "no-auth"])
def test_ghsa_89xv_2j6f_qhc8_cross_site_simple_posts_are_refused_415(
        hub: Hub, open_hub: Hub, mode: str) -> None:
    """go-sdk GHSA-89xv-2j6f-qhc8: a web page can POST ``text/plain``, a form or
    ``multipart/form-data`` to a local server without a CORS preflight; a server that read JSON
    from those ran tools for any site. The hub answers 415 before anything runs, with a token,
    without one, and with ``--no-auth``; a marker file proves the write never ran, and each
    refusal is journaled as ``http_refused``."""
    h = hub if mode == "tokens" else open_hub
    tokens: list[str | None] = [None, h.token] if mode == "tokens" else [None]
    for i, (ctype, wrap) in enumerate([
        ("text/plain", lambda b: b),
        ("text/plain; charset=utf-8", lambda b: b),
        ("application/x-www-form-urlencoded", lambda b: b),
        ("multipart/form-data; boundary=XyZ", lambda b: MULTIPART % b),
    ]):
        for j, token in enumerate(tokens):
            for origin in (None, "http://localhost:3000"):
                marker = f"csrf-{mode}-{i}-{j}-{origin is not None}.txt"
                extra = {"Origin": origin} if origin else {}
                status, headers, reply = post(h, wrap(json.dumps(write_call(marker)).encode()), ctype, token, **extra)
                if mode == "tokens" and token is None:
                    # The challenge comes first, so an OAuth client always learns where to sign in.
                    assert status == 401, (ctype, origin, status, reply)
                else:
                    assert status == 415, (ctype, token is not None, origin, status, reply)
                    assert code_of(reply) == "unsupported_media_type", reply
                assert not (h.root / marker).exists(), f"{ctype}: the write ran"
    seen = refusals(h, 415, "unsupported_media_type")
    assert seen, journal(h)[-3:]
    d = seen[-1]
    assert d["method"] == "POST" and d["path"] == "/mcp" and d["user_agent"] == "advisory-replay/1", d
    assert d["client"].startswith("127.0.0.1:"), d


def test_octet_stream_needs_a_token(hub: Hub, open_hub: Hub) -> None:
    """Issue 15: ChatGPT's connector posts JSON-RPC as ``application/octet-stream``. Served with
    a verified bearer token; without one (or with ``--no-auth``, where nothing but the Origin
    check would stand in the way) it is refused like ``text/plain``."""
    status, _, reply = post(hub, json.dumps(write_call("octet-token.txt")).encode(), "application/octet-stream", hub.token)
    assert status == 200 and (hub.root / "octet-token.txt").exists(), reply
    status, _, reply = post(hub, json.dumps(LIST).encode(), "application/octet-stream")
    assert status == 401, reply
    status, _, reply = post(open_hub, json.dumps(write_call("octet-open.txt")).encode(), "application/octet-stream")
    assert status == 415 and code_of(reply) == "octet_stream_without_token", reply
    assert not (open_hub.root / "octet-open.txt").exists()
    assert refusals(open_hub, 415, "octet_stream_without_token")


def test_refused_requests_are_journaled_and_summarised_once_a_minute(hub: Hub) -> None:
    """Issue 15: every refused request (401, 403, 404, 405, 415, 429) is in the journal with
    status, reason, method, path, client and user agent; stderr says so at most once per client
    per minute."""
    before = hub.stderr.read_text().count("refused ")
    for _ in range(3):
        post(hub, json.dumps(LIST).encode(), token="bst_not_a_token")
        post(hub, json.dumps(LIST).encode(), path="/nowhere", token=hub.token)
        post(hub, json.dumps(LIST).encode(), Host="evil.example")
    for status, reason in [(401, "invalid_token"), (404, "not_found"), (403, "host_not_allowed")]:
        assert refusals(hub, status, reason), (status, reason)
    time.sleep(0.2)
    printed = hub.stderr.read_text().count("refused ") - before
    assert printed <= 1, hub.stderr.read_text()[-2000:]


# --- SSRF through client metadata documents ----------------------------------------------------

def test_cve_2026_44430_client_metadata_urls_on_internal_addresses_are_refused(tmp_path: Path) -> None:
    """MCP Registry CVE-2026-44430: an SSRF filter that missed 6to4, NAT64, site-local and
    IPv4-mapped forms of internal addresses. A client ID metadata URL on any of them (and on a
    name that resolves to loopback: the name is resolved once, checked, and the connection goes
    to the checked address) is refused at ``/authorize`` without a connection."""
    port = free_port()
    state, root = tmp_path / "state", tmp_path / "proj"
    root.mkdir()
    with open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen(
            [str(bastion()), "serve", "--root", str(root), "--listen", f"127.0.0.1:{port}",
             "--public-url", f"http://127.0.0.1:{port}/mcp", "--state-dir", str(state)],
            stdout=subprocess.DEVNULL, stderr=err)
    try:
        h = Hub(port=port, state=state, root=root, token="", stderr=tmp_path / "stderr", pid=proc.pid)
        wait_until_ready(h, "the OAuth hub")
        for host in ["[2002:7f00:1::1]", "[64:ff9b::7f00:1]", "[64:ff9b:1::a00:1]", "[fec0::1]",
                     # ::ffff:127.0.0.1 in the normal form the URL must be in
                     "[::ffff:7f00:1]", "169.254.169.254", "localhost", "127.0.0.1.nip.io"]:
            client_id = f"https://{host}/client.json"
            q = urlencode({"client_id": client_id, "redirect_uri": "https://a.example/cb", "response_type": "code",
                           "code_challenge": "abc", "code_challenge_method": "S256"})
            status, _, body = h.raw(path=f"/authorize?{q}", method="GET")
            text = body.decode(errors="replace")
            assert status == 400, (host, status, text[:500])
            assert "public" in text or "resolve" in text, (host, text[:800])
    finally:
        proc.kill()
        proc.wait(timeout=10)


# --- Credentials on redirects ------------------------------------------------------------------

class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]]
    location: str | None

    def _any(self) -> None:
        self.seen.append({k.lower(): v for k, v in self.headers.items()})
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        if self.location:
            self.send_response(307)
            self.send_header("Location", self.location)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_DELETE = _any

    def log_message(self, *args: Any) -> None:
        pass


def _server(location: str | None) -> tuple[http.server.ThreadingHTTPServer, list[dict[str, str]]]:
    seen: list[dict[str, str]] = []
    handler = type("H", (_Recorder,), {"seen": seen, "location": location})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, seen


def test_ghsa_9g45_5xwm_f3wc_a_redirect_to_another_origin_gets_no_credential(tmp_path: Path) -> None:
    """rmcp GHSA-9g45-5xwm-f3wc: a remote upstream that answers 307 to another origin received
    the client's headers there. The hub's remote upstream presents its token to the configured
    origin only: the other origin is never sent it."""
    other, other_seen = _server(None)
    first, first_seen = _server(f"http://127.0.0.1:{other.server_address[1]}/mcp")
    secret = "remote-secret-9g45"
    config = tmp_path / "hub.toml"
    config.write_text(f'[[upstream]]\nname = "remote"\nurl = "http://127.0.0.1:{first.server_address[1]}/mcp"\n'
                      'bearer_token_env = "REMOTE_TOKEN"\n')
    port = free_port()
    with open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen(
            [str(bastion()), "serve", "--no-auth", "--config", str(config), "--listen", f"127.0.0.1:{port}",
             "--state-dir", str(tmp_path / "state")],
            stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "REMOTE_TOKEN": secret})
    try:
        deadline = time.monotonic() + TIMEOUT
        while not first_seen and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # any redirect would be followed by now
        assert first_seen, "the hub never tried the upstream"
        assert any(secret in h.get("authorization", "") for h in first_seen), "the configured origin gets the token"
        leaked = [h for h in other_seen if secret in json.dumps(h)]
        assert not leaked, leaked
    finally:
        proc.kill()
        proc.wait(timeout=10)
        first.shutdown()
        other.shutdown()


# --- Session-table growth ----------------------------------------------------------------------

def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_ghsa_9pj6_vhgr_3mwh_sessions_are_bounded(tmp_path: Path) -> None:
    """rmcp GHSA-9pj6-vhgr-3mwh: unauthenticated ``initialize`` requests grew the session table
    without bound. With ``--stateful``, 10 000 of them without a token create no session (401
    before rmcp sees them) and leave the hub's memory where it was; with a token, sessions stop
    at ``--max-sessions`` with 429 ``too_many_sessions`` and ``Retry-After``, and a closed
    session frees its place."""
    with running_hub(tmp_path, "--stateful", "--max-sessions", "5", rust_log="warn") as h:
        init = json.dumps(INIT).encode()
        post(h, init)  # warm up
        rss0 = _rss_kib(h.pid)
        statuses: dict[int, int] = {}
        lock = threading.Lock()

        def flood(n: int) -> None:
            for _ in range(n):
                s, _, _ = post(h, init)
                with lock:
                    statuses[s] = statuses.get(s, 0) + 1

        threads = [threading.Thread(target=flood, args=(2500,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(statuses.values()) == 10_000 and set(statuses) <= {401, 429}, statuses
        grown = _rss_kib(h.pid) - rss0
        assert grown < 8 * 1024, f"the hub grew {grown} KiB over 10 000 refused initialize requests"
        sessions = []
        for _ in range(5):
            s, headers, body = post(h, init, token=h.token)
            assert s == 200 and headers.get("mcp-session-id"), (s, body)
            sessions.append(headers["mcp-session-id"])
        s, headers, body = post(h, init, token=h.token)
        assert s == 429 and code_of(body) == "too_many_sessions" and headers.get("retry-after"), (s, headers, body)
        assert refusals(h, 429, "too_many_sessions")
        # Requests within an open session still work.
        s, _, _ = post(h, json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode(),
                       token=h.token, Mcp_Session_Id=sessions[0], MCP_Protocol_Version="2025-06-18")
        assert s in (200, 202), s
        # Closing one frees its place.
        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=TIMEOUT)
        conn.request("DELETE", "/mcp", headers={"Authorization": f"Bearer {h.token}", "Mcp-Session-Id": sessions[0],
                                                "Host": f"127.0.0.1:{h.port}"})
        assert conn.getresponse().status in (200, 202, 204)
        conn.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            s, headers, _ = post(h, init, token=h.token)
            if s == 200:
                break
            time.sleep(0.1)
        assert s == 200 and headers.get("mcp-session-id"), s


def test_rate_limits_answer_429_with_retry_after(tmp_path: Path) -> None:
    """Issue 13 item 4: a token over its rate gets 429 with ``Retry-After`` and the JSON-RPC
    error data code ``rate_limited``; another token is not affected; the refusal is journaled."""
    with running_hub(tmp_path, "--rate-limit", "2") as h:
        other = h.create_token("other", "*:*")
        # 2 a second after a burst of 20.
        statuses = [post(h, json.dumps(LIST).encode(), token=h.token) for _ in range(30)]
        limited = [r for r in statuses if r[0] == 429]
        assert limited and statuses[0][0] == 200, [r[0] for r in statuses]
        s, headers, body = limited[0]
        assert code_of(body) == "rate_limited" and int(headers["retry-after"]) >= 1, (headers, body)
        assert post(h, json.dumps(LIST).encode(), token=other)[0] == 200
        assert refusals(h, 429, "rate_limited")
        time.sleep(1.1)
        assert post(h, json.dumps(LIST).encode(), token=h.token)[0] == 200, "the bucket refills"


# --- Progress isolation ------------------------------------------------------------------------

@pytest.mark.anyio
@pytest.mark.parametrize("stateful", [False, True], ids=["stateless", "stateful"])
async def test_ghsa_345p_7cg4_v4c7_each_client_sees_only_its_own_progress(tmp_path: Path, stateful: bool) -> None:
    """TS SDK GHSA-345p-7cg4-v4c7: responses and progress of one client reached another client
    of the same server instance. Two clients of one hub each run a long call with progress at
    the same time, with the same request id and progress token; each sees only its own
    progress (the message names its own program) and its own result."""
    with running_hub(tmp_path, *(["--stateful"] if stateful else [])) as h:
        other = h.create_token("client-b", "*:*")
        for name in ("a.fifo", "b.fifo"):
            os.mkfifo(h.root / name)
        got: dict[str, list[str]] = {"a": [], "b": []}
        results: dict[str, str] = {}

        async def client(who: str, token: str, program: str, args: list[str]) -> None:
            async def on_progress(p: float, total: float | None, message: str | None) -> None:
                got[who].append(message or "")
            async with http_session(h, token) as s:
                with anyio.fail_after(TIMEOUT):
                    r = await s.call_tool("shell__run_command", {"program": program, "args": args},
                                          progress_callback=on_progress)
                results[who] = r.structured_content["stdout"] if r.structured_content else str(r)

        def feed() -> None:
            time.sleep(3.5)
            with open(h.root / "b.fifo", "w") as f:
                f.write("from b\n")
            time.sleep(1.0)
            with open(h.root / "a.fifo", "w") as f:
                f.write("from a\n")

        threading.Thread(target=feed, daemon=True).start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(client, "a", h.token, "cat", ["a.fifo"])
            tg.start_soon(client, "b", other, "head", ["-n", "1", "b.fifo"])
        assert results == {"a": "from a\n", "b": "from b\n"}, results
        assert got["a"] and got["b"], got
        assert all(m.startswith("cat ") for m in got["a"]), got
        assert all(m.startswith("head ") for m in got["b"]), got
