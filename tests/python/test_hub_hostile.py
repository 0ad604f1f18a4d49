"""Hostile input against the hub's HTTP front (``bastion serve``): auth bypass by path, token
tricks, Host/Origin (DNS rebinding), scope-check dodges, body framing and size, methods, and what
the probes and responses expose.

The guard in ``crates/hub/src/http.rs`` checks, in order: Host and Origin (403), the bearer token
(401), the insufficient-scope peek at a ``tools/call`` body (403), then hands the request to rmcp.
Each table row here is one hostile request and the exact answer expected; where a request could
run a tool, the test also checks that the file it would write does not exist and that the audit
journal shows no ``ok`` for it.

Requests are written to a socket byte for byte (``http.client`` would fix up duplicated headers,
request targets and framing), always with ``Connection: close``; the reply is read to EOF. Every
reply is checked for an echo of any token secret.

One hub per module (``--allow-write``, so write tools exist), with the owner token it prints
(``*:*``) and a ``*:read`` token named ``ro``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from test_hub import Hub, running_hub

Headers = Sequence[tuple[str, str]]

JSON_HEADERS: Headers = (("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream"))
LIST = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
#: Every secret a reply must never contain (filled by the fixture).
SECRETS: list[str] = []


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.headers}, {self.body[:300]!r})"


@dataclass
class Env:
    hub: Hub
    ro: str  # a `*:read` token named `ro`

    @property
    def owner(self) -> str:
        return self.hub.token

    @property
    def port(self) -> int:
        return self.hub.port

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def written(self, name: str) -> bool:
        return (self.hub.root / name).exists()

    def journal(self) -> list[dict[str, Any]]:
        """The call records (events such as ``http_refused`` share the file)."""
        path = self.hub.state / "audit.jsonl"
        lines = [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []
        return [e for e in lines if "tool" in e]


def write_call(name: str, **extra: Any) -> bytes:
    """A tools/call of ``fs__write_file`` creating ``name`` in the root."""
    call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "fs__write_file", "arguments": {"path": name, "content": "pwned"}}}
    call.update(extra)
    return json.dumps(call).encode()


def build(
    method: str,
    target: str,
    body: bytes | None = b"",
    headers: Headers = (),
    *,
    host: str | None,
    version: str = "HTTP/1.1",
    content_length: bool = True,
    close: bool = True,
) -> bytes:
    """The bytes of one request. ``host=None`` sends no Host header (give one in ``headers`` to
    send several)."""
    lines = [f"{method} {target} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers]
    if content_length and body is not None:
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def parse(data: bytes) -> list[Reply]:
    """The responses in ``data`` (several if requests were pipelined)."""
    replies = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"truncated response head: {data[:300]!r}"
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers = [(k.strip().lower(), v.strip()) for k, v in (l.split(":", 1) for l in header_lines)]
        lengths = [int(v) for k, v in headers if k == "content-length"]
        n = lengths[0] if lengths else len(rest)
        replies.append(Reply(status, headers, rest[:n]))
        data = rest[n:]
    return replies


def exchange(env: Env, data: bytes, *, timeout: float = 10.0) -> list[Reply]:
    """Writes ``data`` to a fresh connection and reads every response until the hub closes it.
    A hub that refuses before reading the body may close while we still write: that is fine,
    the response is already in our receive buffer."""
    with socket.create_connection(("127.0.0.1", env.port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    for secret in SECRETS:
        assert secret.encode() not in out, f"a token secret is echoed in the response: {out[:500]!r}"
    return parse(out)


#: The hub's own ``127.0.0.1:PORT`` as Host.
OWN_HOST = "\x00own"


def send(env: Env, method: str, target: str, body: bytes | None = b"", headers: Headers = (), *,
         token: str | None = None, host: str | None = OWN_HOST, **kw: Any) -> Reply:
    """One request, one reply."""
    hs = list(headers)
    if token is not None:
        hs.append(("Authorization", f"Bearer {token}"))
    replies = exchange(env, build(method, target, body, hs, host=env.host if host == OWN_HOST else host, **kw))
    assert len(replies) == 1, replies
    return replies[0]


def post(env: Env, body: bytes, headers: Headers = JSON_HEADERS, **kw: Any) -> Reply:
    return send(env, "POST", "/mcp", body, headers, **kw)


def assert_401(r: Reply, *, invalid: bool) -> None:
    """401 with a Bearer challenge; ``invalid``: a token was presented and refused (RFC 6750)."""
    challenge = r.header("www-authenticate") or ""
    assert r.status == 401, r
    assert r.header("connection") == "close", r
    if invalid:
        assert challenge.startswith('Bearer error="invalid_token"'), r
    else:
        assert challenge == "Bearer", r


def tool_names(r: Reply) -> list[str]:
    assert r.status == 200, r
    return [t["name"] for t in r.json()["result"]["tools"]]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("hostile")
    with running_hub(base, "--allow-write") as hub:
        e = Env(hub=hub, ro=hub.create_token("ro", "*:read"))
        SECRETS[:] = [hub.token, e.ro]
        # The write tool runs for a token that may call it, so "file absent" below means refused.
        r = post(e, write_call("control.txt"), token=hub.token)
        assert r.status == 200 and not r.json()["result"].get("isError"), r
        assert e.written("control.txt")
        wrote = [x for x in e.journal() if x["tool"] == "fs__write_file" and x["outcome"] == "ok"]
        assert [x["principal"] for x in wrote] == ["owner"], wrote
        yield e
        SECRETS.clear()


# --- Auth bypass by path ---------------------------------------------------------------------

# (request target, status with the `ro` token). Without a token every one of them is 401.
PATHS = [
    ("/mcp/../metrics", 404),
    ("//mcp", 404),
    ("/MCP", 404),
    ("/mcp;x", 404),
    ("/mcp%2F", 404),
    ("/%6Dcp", 404),
    ("/mcp/x", 404),
    ("/mcp/.", 404),
    ("/./mcp", 404),
    ("/mcp/%2e%2e/metrics", 404),
    ("/mcp%00", 404),
    ("/mcp\\..\\metrics", 404),
    ("mcp", 403),
    ("*", 404),
    ("/readyz/../mcp", 404),
    ("/healthz/../mcp", 404),
    ("/.well-known/../mcp", 404),
    ("/.well-known/oauth-protected-resource/../../mcp", 404),
    ("/token/../mcp", 404),
    ("/mcp?x=1", 200),
    ("/mcp#x", 200),
    ("/mcp/", 200),
    ("http://127.0.0.1:{port}/mcp", 200),
    ("http://evil.example/mcp", 403),  # see test_absolute_form_target_is_host_checked
]
# Targets whose authority is not an allowed host: 403 before authentication.
HOST_REFUSED = {"mcp", "http://evil.example/mcp"}


@pytest.mark.parametrize("target,with_token", PATHS, ids=[p for p, _ in PATHS])
def test_no_path_reaches_a_tool_without_a_token(env: Env, target: str, with_token: int | None) -> None:
    target = target.format(port=env.port)
    name = f"path-{hashlib.sha256(target.encode()).hexdigest()[:12]}.txt"
    r = send(env, "POST", target, write_call(name), JSON_HEADERS)
    if target in HOST_REFUSED:
        # The target names a host (absolute or authority form): the Host check refuses it first.
        assert r.status == 403 and b"Host" in r.body, (target, r)
    else:
        assert_401(r, invalid=False)
    assert not env.written(name), f"POST {target} without a token wrote {name}"
    # With a token, what reaches the MCP service carries that token's principal: the read-only
    # view, and the write is refused.
    r = send(env, "POST", target, LIST, JSON_HEADERS, token=env.ro)
    if with_token is not None:
        assert r.status == with_token, (target, r)
    if r.status == 200:
        names = tool_names(r)
        assert "fs__read_file" in names and "fs__write_file" not in names, (target, names)
    r = send(env, "POST", target, write_call(name), JSON_HEADERS, token=env.ro)
    assert r.status in (403, 404), (target, r)
    assert not env.written(name), f"POST {target} with a read-only token wrote {name}"


def test_absolute_form_target_is_host_checked(env: Env) -> None:
    """RFC 9112 §3.2.2: an origin server that receives an absolute-form target MUST ignore Host
    and use the target's authority, so the guard checks that authority too: a request for
    ``http://evil.example/mcp`` with an allowed Host is refused."""
    for target in ["http://evil.example/mcp", f"http://localhost.evil.example:{env.port}/mcp"]:
        r = send(env, "POST", target, LIST, JSON_HEADERS, token=env.owner)
        assert r.status == 403, (
            f"POST {target} (Host: {env.host}) answered {r.status}, not 403: the Host/Origin guard "
            "checked the Host header and ignored the authority of the absolute-form request target, "
            "which RFC 9112 §3.2.2 says replaces it"
        )


# --- Tokens ----------------------------------------------------------------------------------

# (Authorization value with {owner}/{sha} placeholders or None, status, refused as invalid_token)
AUTHORIZATIONS = [
    (None, 401, False),
    ("Bearer ", 401, False),
    ("Bearer", 401, False),
    ("Basic {owner}", 401, False),
    ("Basic {basic}", 401, False),
    ("Token {owner}", 401, False),
    ("{owner}", 401, False),
    ("Bearer\t{owner}", 401, False),
    ("Bearer {owner}x", 401, True),
    ("Bearer {owner} x", 401, True),
    ("Bearer {owner},Bearer x", 401, True),
    ("Bearer {prefix}", 401, True),
    ("Bearer {short}", 401, True),
    ("Bearer bst_", 401, True),
    ("Bearer {sha}", 401, True),
    ('Bearer "{owner}"', 401, True),
    ("Bearer {owner}\x00", 400, False),  # hyper refuses the header value
    # RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token, and the scheme is case-insensitive.
    ("Bearer  {owner}", 200, False),
    ("bearer {owner}", 200, False),
    ("BEARER {owner}", 200, False),
]


@pytest.mark.parametrize("value,status,invalid", AUTHORIZATIONS, ids=[repr(a) for a, _, _ in AUTHORIZATIONS])
def test_authorization_header_variants(env: Env, value: str | None, status: int, invalid: bool) -> None:
    hs = list(JSON_HEADERS)
    if value is not None:
        owner = env.owner
        hs.append(("Authorization", value.format(
            owner=owner, sha=hashlib.sha256(owner.encode()).hexdigest(), prefix=owner[:-1], short=owner[:12],
            basic=base64.b64encode(f"owner:{owner}".encode()).decode())))
    r = post(env, LIST, hs)
    if status == 401:
        assert_401(r, invalid=invalid)
    else:
        assert r.status == status, r
    if status == 200:
        assert "fs__write_file" in tool_names(r)


def test_tokens_outside_the_authorization_header_are_ignored(env: Env) -> None:
    o = env.owner
    cases: list[tuple[str, str, bytes, Headers]] = [
        ("query", f"/mcp?access_token={o}", LIST, JSON_HEADERS),
        ("query bearer", f"/mcp?bearer={o}&token={o}", LIST, JSON_HEADERS),
        ("form body", "/mcp", f"access_token={o}".encode(), (("Content-Type", "application/x-www-form-urlencoded"),)),
        ("cookie", "/mcp", LIST, (*JSON_HEADERS, ("Cookie", f"access_token={o}; token={o}; bastion={o}"))),
        ("proxy-authorization", "/mcp", LIST, (*JSON_HEADERS, ("Proxy-Authorization", f"Bearer {o}"))),
        ("x-api-key", "/mcp", LIST, (*JSON_HEADERS, ("X-Api-Key", o), ("X-Auth-Token", o))),
    ]
    for what, target, body, hs in cases:
        # The token in the request line is not echoed either (checked in `exchange`).
        assert_401(send(env, "POST", target, body, hs), invalid=False)


def test_two_authorization_headers(env: Env) -> None:
    """RFC 6750 §3.1: one credential per request. Two Authorization headers, in any order and
    whatever they hold, get 400 `invalid_request`: the hub never picks one of them."""
    def two(a: str, b: str, body: bytes = LIST) -> Reply:
        return post(env, body, (*JSON_HEADERS, ("Authorization", a), ("Authorization", b)))

    for a, b in [
        ("Bearer garbage", f"Bearer {env.owner}"),
        (f"Bearer {env.owner}", "Bearer garbage"),
        ("Basic x", f"Bearer {env.owner}"),
        (f"Bearer {env.ro}", f"Bearer {env.owner}"),
        (f"Bearer {env.owner}", f"Bearer {env.owner}"),
    ]:
        r = two(a, b)
        assert r.status == 400 and 'error="invalid_request"' in (r.header("www-authenticate") or ""), (a[:12], b[:12], r)
    r = two(f"Bearer {env.ro}", f"Bearer {env.owner}", write_call("two-auth.txt"))
    assert r.status == 400, r
    assert not env.written("two-auth.txt")


def test_revoked_and_expired_tokens_open_nothing(env: Env) -> None:
    revoked = env.hub.create_token("to-revoke", "*:*")
    expiring = env.hub.create_token("expiring", "*:*", "--expires", "1s")
    SECRETS.extend([revoked, expiring])
    assert post(env, LIST, token=revoked).status == 200
    env.hub.token_cmd("revoke", "to-revoke")
    time.sleep(1.1)  # expiry is in whole seconds: `now >= created + 1`
    for secret, why in [(revoked, "token revoked"), (expiring, "token expired")]:
        r = post(env, write_call("late.txt"), token=secret)
        assert_401(r, invalid=True)
        assert why in (r.header("www-authenticate") or ""), r
        assert_401(send(env, "GET", "/metrics", None, token=secret), invalid=True)
        r = send(env, "GET", "/readyz", None, token=secret)
        assert r.status == 200 and r.json() == {"ready": True}, r
    assert not env.written("late.txt")


# --- Host and Origin (DNS rebinding) ---------------------------------------------------------

BAD_HOSTS = [
    "evil.example",
    "localhost.evil.example",
    "127.0.0.1.nip.io",
    "localhost:80@evil",
    "[::1].evil.example",
    "[::1]@evil",
    "[::1]x",
    "[::ffff:127.0.0.1]",
    "::1",
    "localhost.",
    "127.1",
    "2130706433",
    "0.0.0.0",
    "localhost evil",
    "localhost,evil.example",
    "",
]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_foreign_host_is_refused_before_auth(env: Env, host: str) -> None:
    for token in (env.owner, None):
        r = post(env, write_call("host.txt"), token=token, host=host)
        assert r.status == 403 and r.body.startswith(b"Forbidden: Host"), (host, token is not None, r)
    assert not env.written("host.txt")


@pytest.mark.parametrize("host", ["[::1]", "[::1]:{port}", "LOCALHOST", "localhost:{port}"])
def test_loopback_host_forms_are_served(env: Env, host: str) -> None:
    assert post(env, LIST, token=env.owner, host=host.format(port=env.port)).status == 200


def test_missing_host_is_refused(env: Env) -> None:
    for version in ("HTTP/1.1", "HTTP/1.0"):
        r = post(env, LIST, token=env.owner, host=None, version=version)
        assert r.status in (400, 403), (version, r)


def test_duplicated_host_or_origin_is_refused(env: Env) -> None:
    """RFC 9112 §3.2: a request with more than one Host field line MUST get 400; two Origin
    headers are refused too, so an allowed first value cannot hide a foreign second one."""
    good, evil = env.host, "evil.example"
    failures = []
    for order in ([good, evil], [evil, good]):
        r = post(env, LIST, (*JSON_HEADERS, *(("Host", h) for h in order)), token=env.owner, host=None)
        if r.status not in (400, 403):
            failures.append(f"Host: {order[0]} + Host: {order[1]} answered {r.status}")
    for order in (["http://localhost:3000", "https://evil.example"], ["https://evil.example", "http://localhost:3000"]):
        r = post(env, LIST, (*JSON_HEADERS, *(("Origin", o) for o in order)), token=env.owner)
        if r.status != 403:
            failures.append(f"Origin: {order[0]} + Origin: {order[1]} answered {r.status}")
    assert not failures, "; ".join(failures) + " (only the first header of each name is checked)"


BAD_ORIGINS = [
    "null",
    "http://localhost.evil.example",
    "https://evil.example",
    "http://localhost:3000.evil.example",
    "http://localhost:3000/",
    "http://127.0.0.1:1@evil.example",
    "https://localhost:3000",
    "http://localhost:",
]


@pytest.mark.parametrize("origin", BAD_ORIGINS)
def test_foreign_origin_is_refused_before_auth(env: Env, origin: str) -> None:
    for token in (env.owner, None):
        r = post(env, write_call("origin.txt"), (*JSON_HEADERS, ("Origin", origin)), token=token)
        assert r.status == 403 and r.body.startswith(b"Forbidden: Origin"), (origin, r)
    assert not env.written("origin.txt")
    for path in ("/readyz", "/healthz", "/metrics"):
        r = send(env, "GET", path, None, (("Origin", origin),))
        assert r.status == 403, (path, origin, r)
    preflight = (("Origin", origin), ("Access-Control-Request-Method", "POST"),
                 ("Access-Control-Request-Headers", "authorization, content-type"))
    r = send(env, "OPTIONS", "/mcp", None, preflight)
    assert r.status == 403 and r.header("access-control-allow-origin") is None, r


def test_allowed_origin_gets_no_wildcard_cors(env: Env) -> None:
    for origin in (None, "http://localhost:3000"):
        hs = (*JSON_HEADERS, ("Origin", origin)) if origin else JSON_HEADERS
        for token in (env.owner, None):
            r = post(env, LIST, hs, token=token)
            assert r.status == (200 if token else 401), r
            assert r.header("access-control-allow-origin") in (None, origin), r
            assert r.header("access-control-allow-credentials") is None or origin, r


# --- Scope check dodges ------------------------------------------------------------------------

ARGS = '{"path":"%s","content":"pwned"}'
# (case id, body template with %s for the arguments, extra headers)
DODGES: list[tuple[str, str, Headers]] = [
    ("key-order", '{"params":{"arguments":%s,"name":"fs__write_file"},"id":9,"method":"tools/call","jsonrpc":"2.0"}', ()),
    ("duplicate-method-list-first", '{"jsonrpc":"2.0","id":9,"method":"tools/list","method":"tools/call","params":{"name":"fs__write_file","arguments":%s}}', ()),
    ("duplicate-method-list-last", '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__write_file","arguments":%s},"method":"tools/list"}', ()),
    ("duplicate-method-same", '{"jsonrpc":"2.0","id":9,"method":"tools/call","method":"tools/call","params":{"name":"fs__write_file","arguments":%s}}', ()),
    ("unicode-escapes", '{"jsonrpc":"2.0","id":9,"method":"tools\\u002fcall","params":{"name":"fs\\u005f_write_file","arguments":%s}}', ()),
    ("whitespace-first", ' \r\n\t {"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__write_file","arguments":%s}}', ()),
    ("bom-first", '\ufeff{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__write_file","arguments":%s}}', ()),
    ("batch", '[{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__write_file","arguments":%s}}]', ()),
    ("duplicate-name", '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__read_file","name":"fs__write_file","arguments":%s}}', ()),
    ("duplicate-params", '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__read_file"},"params":{"name":"fs__write_file","arguments":%s}}', ()),
    ("name-upper-case", '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"FS__WRITE_FILE","arguments":%s}}', ()),
    ("name-trailing-space", '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__write_file ","arguments":%s}}', ()),
    ("name-trailing-nul", '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__write_file\\u0000","arguments":%s}}', ()),
    ("name-at-top-level-too", '{"jsonrpc":"2.0","id":9,"method":"tools/call","name":"fs__read_file","params":{"name":"fs__write_file","arguments":%s}}', ()),
    ("two-documents", '{"jsonrpc":"2.0","id":8,"method":"tools/list"}{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__write_file","arguments":%s}}', ()),
    ("charset-utf-8", '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__write_file","arguments":%s}}',
     (("Content-Type", "application/json; charset=utf-8"),)),
    ("gzip-claimed", '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fs__write_file","arguments":%s}}',
     (("Content-Encoding", "gzip"),)),
]


def assert_write_did_not_run(env: Env, r: Reply, name: str, case: str) -> None:
    assert not env.written(name), f"{case}: the read-only token wrote {name}; reply {r}"
    if r.status == 200:
        reply = r.json()
        assert "error" in reply or reply.get("result", {}).get("isError"), f"{case}: {r}"
    ran = [e for e in env.journal()
           if e["principal"] == "ro" and e["tool"].lower().strip().startswith("fs__write_file") and e["outcome"] == "ok"]
    assert not ran, f"{case}: the audit journal shows the write as ok: {ran}"


@pytest.mark.parametrize("case,template,extra", DODGES, ids=[d[0] for d in DODGES])
def test_read_only_token_cannot_dodge_the_scope_check(env: Env, case: str, template: str, extra: Headers) -> None:
    name = f"dodge-{case}.txt"
    hs = dict(JSON_HEADERS) | dict(extra)
    r = post(env, (template % (ARGS % name)).encode(), tuple(hs.items()), token=env.ro)
    assert_write_did_not_run(env, r, name, case)
    if r.status == 403:  # the refusal itself is journaled
        assert any(e["principal"] == "ro" and e["tool"] == "fs__write_file" and e["outcome"] == "insufficient_scope"
                   for e in env.journal()), case


def test_read_only_token_cannot_dodge_the_scope_check_by_framing(env: Env) -> None:
    """The same write, framed differently: really gzipped, chunked, UTF-16, HTTP/1.0, lower-case
    method, PUT."""
    ro = ("Authorization", f"Bearer {env.ro}")
    b = write_call("frame-chunked.txt")
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(b[i:i + 7]), b[i:i + 7]) for i in range(0, len(b), 7)) + b"0\r\n\r\n"
    framings: list[tuple[str, str, bytes]] = [
        ("frame-gzip.txt", "gzip", build("POST", "/mcp", gzip.compress(write_call("frame-gzip.txt")),
                                         (*JSON_HEADERS, ro, ("Content-Encoding", "gzip")), host=env.host)),
        ("frame-chunked.txt", "chunked", build("POST", "/mcp", None, (*JSON_HEADERS, ro, ("Transfer-Encoding", "chunked")),
                                               host=env.host) + chunked),
        ("frame-utf16.txt", "utf-16", build("POST", "/mcp", write_call("frame-utf16.txt").decode().encode("utf-16"),
                                            (("Content-Type", "application/json; charset=utf-16"), ro), host=env.host)),
        ("frame-http10.txt", "HTTP/1.0", build("POST", "/mcp", write_call("frame-http10.txt"), (*JSON_HEADERS, ro),
                                               host=env.host, version="HTTP/1.0")),
        ("frame-lower.txt", "lower-case post", build("post", "/mcp", write_call("frame-lower.txt"), (*JSON_HEADERS, ro), host=env.host)),
        ("frame-put.txt", "PUT", build("PUT", "/mcp", write_call("frame-put.txt"), (*JSON_HEADERS, ro), host=env.host)),
    ]
    for name, case, data in framings:
        replies = exchange(env, data)
        assert len(replies) == 1, (case, replies)
        assert_write_did_not_run(env, replies[0], name, case)
        assert replies[0].status in (400, 403, 405, 415), (case, replies[0])


# --- Body size and framing ---------------------------------------------------------------------

def test_a_5_mib_body(env: Env) -> None:
    """Auth comes first (the body of an unauthenticated request is never read); with a token,
    413 from the hub's own read (restricted token) or from rmcp (``*:*``)."""
    pad = b"a" * (5 * 1024 * 1024)
    big = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":"' + pad + b'"}}'
    assert_401(post(env, big), invalid=False)
    for token in (env.ro, env.owner):
        r = post(env, big, token=token)
        assert r.status == 413, r
    r = post(env, big.replace(b"tools/list", b"tools/call").replace(b'{"x"', b'{"name":"fs__write_file","x"'), token=env.ro)
    assert r.status == 413, r


def test_content_length_longer_than_the_body_waits(env: Env) -> None:
    """A complete JSON document with a Content-Length 10 bytes longer: the hub waits for the
    rest, and the write never runs when the client gives up."""
    body = write_call("short-body.txt")
    data = build("POST", "/mcp", body, (*JSON_HEADERS, ("Authorization", f"Bearer {env.owner}"),
                                        ("Content-Length", str(len(body) + 10))), host=env.host, content_length=False)
    with socket.create_connection(("127.0.0.1", env.port), timeout=10) as s:
        s.sendall(data)
        s.settimeout(1.0)
        with pytest.raises(TimeoutError):
            got = s.recv(65536)
            pytest.fail(f"answered before the body was complete: {got[:300]!r}")
    time.sleep(0.2)
    assert not env.written("short-body.txt")
    assert send(env, "GET", "/healthz", None).status == 200


def test_a_request_smuggled_after_a_short_content_length_is_authenticated_on_its_own(env: Env) -> None:
    """The bytes after a first, authenticated request's Content-Length are a second request,
    which has no token."""
    smuggled = build("POST", "/mcp", write_call("smuggled-cl.txt"), JSON_HEADERS, host=env.host)
    first = build("POST", "/mcp", LIST, (*JSON_HEADERS, ("Authorization", f"Bearer {env.owner}")),
                  host=env.host, close=False)
    replies = exchange(env, first + smuggled)
    assert [r.status for r in replies] == [200, 401], replies
    assert not env.written("smuggled-cl.txt")


def test_content_length_and_transfer_encoding_together(env: Env) -> None:
    """CL.TE: chunked wins (RFC 9112 §6.3), so the smuggled request is body, not a request, and
    the connection ends after the response."""
    smuggled = build("POST", "/mcp", write_call("smuggled-te.txt"), JSON_HEADERS, host=env.host)
    body = b"0\r\n\r\n" + smuggled
    replies = exchange(env, build("POST", "/mcp", body, (*JSON_HEADERS, ("Authorization", f"Bearer {env.owner}"),
                                                          ("Transfer-Encoding", "chunked")), host=env.host, close=False))
    assert len(replies) == 1 and replies[0].status != 200, replies
    assert not env.written("smuggled-te.txt")
    for te in ("chunked, identity", "xchunked", "identity"):
        data = build("POST", "/mcp", b"5\r\n{\"a\":\r\n0\r\n\r\n",
                     (*JSON_HEADERS, ("Authorization", f"Bearer {env.ro}"), ("Transfer-Encoding", te)), host=env.host)
        replies = exchange(env, data)
        assert [r.status for r in replies] == [400], (te, replies)


def test_malformed_json_never_gets_a_5xx(env: Env) -> None:
    for body in [b'{"jsonrpc":"2.0",', b"\xff\xfe", b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000, b"null", b"{}", b""]:
        for token in (env.ro, env.owner):
            r = post(env, body, token=token)
            assert 400 <= r.status < 500 or r.status in (200, 202), (body[:20], r)
    assert send(env, "GET", "/healthz", None).status == 200


def test_invalid_json_gets_a_json_rpc_parse_error(env: Env) -> None:
    """JSON-RPC 2.0 §5.1: invalid JSON is answered with error -32700 (Parse error), id null; the
    MCP transport allows an HTTP 4xx with that body."""
    r = post(env, b'{"jsonrpc":"2.0","id":1,"method":', token=env.owner)
    try:
        error = r.json().get("error", {})
    except ValueError:
        error = {}
    assert r.status in (200, 400) and error.get("code") == -32700, (
        f"invalid JSON was answered {r.status} {r.header('content-type')} {r.body[:120]!r}, "
        "not a JSON-RPC parse error (-32700)"
    )


# --- Methods -----------------------------------------------------------------------------------

def test_methods_other_than_post(env: Env) -> None:
    # Auth before the method: no token, 401 whatever the method.
    for method in ("GET", "DELETE", "PUT", "PATCH"):
        assert_401(send(env, method, "/mcp", None, (("Accept", "text/event-stream"),)), invalid=False)
    for method in ("GET", "DELETE", "PUT", "PATCH", "OPTIONS"):
        r = send(env, method, "/mcp", LIST, (*JSON_HEADERS, ("Mcp-Session-Id", "x")), token=env.owner)
        assert r.status == 405 and r.header("allow") == "POST", (method, r)


# --- Probes and metrics ------------------------------------------------------------------------

def test_readyz_tells_strangers_only_the_verdict(env: Env) -> None:
    for target, hs in [
        ("/readyz", ()),
        ("/readyz?verbose=1&details=true", ()),
        ("/readyz", (("Authorization", "Bearer bst_wrong"),)),
        ("/readyz", (("Authorization", f"Basic {env.owner}"),)),
        ("/readyz", (("Authorization", f"Bearer {env.owner[:-1]}"),)),
    ]:
        r = send(env, "GET", target, None, hs)
        assert r.status == 200 and r.json() == {"ready": True}, (target, r)
    for target in ("/readyz/", "/readyz/x", "/Readyz"):
        assert_401(send(env, "GET", target, None), invalid=False)
    r = send(env, "GET", "/readyz", None, token=env.ro)
    assert r.status == 200 and [u["name"] for u in r.json()["upstreams"]] == ["fs", "git", "shell"], r


def test_metrics_need_a_token(env: Env) -> None:
    for target in ("/metrics", "/metrics/", "/metrics?x=1", "/Metrics", "//metrics", "/healthz/../metrics"):
        assert_401(send(env, "GET", target, None), invalid=False)
    assert_401(send(env, "GET", "/metrics", None, token="bst_wrong"), invalid=True)
    r = send(env, "GET", "/metrics", None, token=env.ro)
    assert r.status == 200 and b"bastion_hub_calls_total" in r.body, r
