"""Helpers for the OAuth end-to-end tests: a hub in OAuth mode (``bastion serve --public-url``),
an HTTP client that reaches it under its public URL, and the client side of the authorization
code flow (PKCE, registration, the consent form, the token endpoint).

The hub listens on plain HTTP on loopback; its public URL is ``https://hub.example`` (or the
Caddy front's ``https://localhost:PORT``). :class:`ToHub` is an ``httpx2`` transport that sends
requests for the public origin to the hub's port with the public ``Host`` header, so a test
client follows the URLs the hub advertises (``authorization_endpoint`` and so on) exactly as
ChatGPT or Claude would, without DNS or TLS.

Nothing here follows redirects: a test looks at every ``Location`` itself.
"""

from __future__ import annotations

import base64
import hashlib
import html.parser
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import anyio
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from fsclient import bastion_binary as bastion
from fsclient import free_port

TIMEOUT = 30.0
PUBLIC_URL = "https://hub.example"

CHATGPT_REDIRECT = "https://chatgpt.com/connector_platform_oauth_redirect"
CLAUDE_REDIRECTS = ["https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback"]
CURSOR_REDIRECTS = [
    "cursor://anysphere.cursor-mcp/oauth/callback",
    "https://www.cursor.com/agents/mcp/oauth/callback",
    "http://localhost:8787/callback",
]

INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "oauth-e2e", "version": "0"}},
}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}




# --- Reaching the hub under its public URL ---------------------------------------------------


def _rewrite(request: httpx2.Request, origin: httpx2.URL, port: int) -> httpx2.Request:
    url = request.url
    if (url.scheme, url.host, url.port) != (origin.scheme, origin.host, origin.port):
        raise AssertionError(f"the client was sent to {url}, outside the hub's public origin {origin}")
    # A new request: the client keeps the original (public URL) for cookies and `response.request`.
    # The Host header was computed from the public URL and is kept.
    target = url.copy_with(scheme="http", host="127.0.0.1", port=port)
    return httpx2.Request(request.method, target, headers=request.headers, stream=request.stream,
                          extensions=request.extensions)


class ToHub(httpx2.BaseTransport):
    """Sends requests for ``origin`` (``https://hub.example``) to ``http://127.0.0.1:port``."""

    def __init__(self, origin: str, port: int) -> None:
        self.origin, self.port, self.inner = httpx2.URL(origin), port, httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self.inner.handle_request(_rewrite(request, self.origin, self.port))

    def close(self) -> None:
        self.inner.close()


class AsyncToHub(httpx2.AsyncBaseTransport):
    """The async twin of :class:`ToHub`, for the MCP SDK's client."""

    def __init__(self, origin: str, port: int) -> None:
        self.origin, self.port, self.inner = httpx2.URL(origin), port, httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self.inner.handle_async_request(_rewrite(request, self.origin, self.port))

    async def aclose(self) -> None:
        await self.inner.aclose()


# --- The hub -----------------------------------------------------------------------------------


@dataclass
class OAuthHub:
    """A running ``bastion serve --public-url`` (or without it, for static-token mode)."""

    port: int
    state: Path
    root: Path
    public_url: str | None
    owner_secret: str
    stderr: Path
    argv: list[str]
    proc: subprocess.Popen[str] | None = None
    #: When the hub sits behind a TLS front (Caddy): the CA bundle that verifies it. Clients then
    #: go through the front for real instead of through :class:`ToHub`.
    ca: Path | None = None

    @property
    def issuer(self) -> str:
        assert self.public_url is not None
        return self.public_url

    @property
    def resource(self) -> str:
        return f"{self.issuer}/mcp"

    def client(self, **kw: Any) -> httpx2.Client:
        """A client for the public origin; never follows redirects."""
        if self.ca is not None:
            return httpx2.Client(verify=ssl.create_default_context(cafile=str(self.ca)), follow_redirects=False,
                                 timeout=TIMEOUT, **kw)
        if self.public_url is None:
            return httpx2.Client(base_url=f"http://127.0.0.1:{self.port}", follow_redirects=False, timeout=TIMEOUT, **kw)
        return httpx2.Client(transport=ToHub(self.issuer, self.port), follow_redirects=False, timeout=TIMEOUT, **kw)

    def async_client(self, token: str) -> httpx2.AsyncClient:
        if self.ca is not None:
            return httpx2.AsyncClient(verify=ssl.create_default_context(cafile=str(self.ca)),
                                      headers={"Authorization": f"Bearer {token}"},
                                      timeout=httpx2.Timeout(TIMEOUT, read=300.0))
        return httpx2.AsyncClient(
            transport=AsyncToHub(self.issuer, self.port),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx2.Timeout(TIMEOUT, read=300.0),
        )

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([str(bastion()), *args, "--state-dir", str(self.state)],
                           capture_output=True, text=True, timeout=TIMEOUT)
        if check and r.returncode != 0:
            pytest.fail(f"`bastion {' '.join(args)}` exited {r.returncode}: {r.stderr}", pytrace=False)
        return r

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")[-4000:]

    def start(self) -> None:
        with open(self.stderr, "a") as err:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=err, text=True,
                                         env={**os.environ, "RUST_LOG": "info,rmcp=warn"})
        # Drain stdout (the first start prints the owner token and, without `bastion owner-secret`,
        # the owner secret), so the hub never blocks on a full pipe.
        stdout = self.proc.stdout
        assert stdout is not None
        threading.Thread(target=lambda: [None for _ in stdout], daemon=True).start()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the hub exited with {self.proc.returncode}: {' '.join(self.argv)}\n{self.log()}",
                            pytrace=False)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                status = httpx2.get(f"http://127.0.0.1:{self.port}/readyz", timeout=5).status_code
                if status == 200:
                    return
            except (OSError, httpx2.HTTPError):
                pass
            time.sleep(0.05)
        pytest.fail(f"the hub never became ready on port {self.port}\n{self.log()}", pytrace=False)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


def init_repo(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "hello.txt").write_text("hello through oauth\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    for cmd in (["git", "init", "-q"], ["git", "add", "hello.txt"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)


def owner_secret(state: Path) -> str:
    r = subprocess.run([str(bastion()), "owner-secret", "--state-dir", str(state)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    if r.returncode != 0:
        pytest.fail(f"`bastion owner-secret` exited {r.returncode}: {r.stderr}", pytrace=False)
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and len(lines[0].strip()) >= 16, f"owner-secret must print one line, got {r.stdout!r}"
    return lines[0].strip()


@contextmanager
def running_hub(base: Path, *, public_url: str | None = PUBLIC_URL, config: str | None = None,
                port: int | None = None, allow_write: bool = True, env: dict[str, str] | None = None
                ) -> Iterator[OAuthHub]:
    """Starts a hub with a fresh state directory under ``base`` and a small git repository as root."""
    base.mkdir(parents=True, exist_ok=True)
    root, state = base / "proj", base / "state"
    if not root.exists():
        init_repo(root)
    port = port or free_port()
    secret = owner_secret(state) if public_url is not None else ""
    argv = [str(bastion()), "serve", "--listen", f"127.0.0.1:{port}", "--state-dir", str(state), "--root", str(root)]
    if public_url is not None:
        argv += ["--public-url", public_url]
    if config is not None:
        (base / "bastion.toml").write_text(config)
        argv += ["--config", str(base / "bastion.toml")]
    if allow_write:
        argv.append("--allow-write")
    hub = OAuthHub(port=port, state=state, root=root, public_url=public_url, owner_secret=secret,
                   stderr=base / "hub.stderr", argv=argv)
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()


# --- OAuth client side ---------------------------------------------------------------------------


def pkce() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def challenge_params(header: str) -> dict[str, str]:
    """The parameters of a ``Bearer k="v", …`` challenge (RFC 6750 §3)."""
    assert header.startswith("Bearer"), header
    return {k: v for k, v in re.findall(r'([A-Za-z_]+)="([^"]*)"', header)}


def query(location: str) -> dict[str, str]:
    """The query parameters of a redirect ``Location``; each must appear once."""
    params = parse_qs(urlsplit(location).query, keep_blank_values=True)
    repeated = [k for k, v in params.items() if len(v) != 1]
    assert not repeated, f"repeated parameters {repeated} in {location}"
    return {k: v[0] for k, v in params.items()}


def redirect_base(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


@dataclass
class Form:
    """The consent form as a browser would see it."""

    action: str
    method: str
    hidden: dict[str, str]
    inputs: list[dict[str, str | None]]
    buttons: list[dict[str, str | None]]

    def scopes(self) -> list[tuple[str, bool]]:
        return [(i.get("value") or "", "checked" in i) for i in self.inputs
                if i.get("type") == "checkbox" and i.get("name") == "scope"]


class _FormParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(action=a.get("action") or "", method=(a.get("method") or "get").lower(),
                                   hidden={}, inputs=[], buttons=[]))
        elif not self.forms:
            return
        elif tag == "input":
            kind = (a.get("type") or "text").lower()
            a["type"] = kind
            if kind == "hidden" and a.get("name"):
                self.forms[-1].hidden[a["name"] or ""] = a.get("value") or ""
            elif kind == "submit":
                self.forms[-1].buttons.append(a)
            else:
                self.forms[-1].inputs.append(a)
        elif tag == "button":
            self.forms[-1].buttons.append(a)


def form_data(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Form fields in order, repeated names (``scope``) as lists, as httpx2 wants them."""
    out: dict[str, list[str]] = {}
    for k, v in pairs:
        out.setdefault(k, []).append(v)
    return out


def consent_form(page: str) -> Form:
    parser = _FormParser()
    parser.feed(page)
    posts = [f for f in parser.forms if f.method == "post"]
    assert len(posts) == 1, f"expected one POST form on the consent page, found {len(parser.forms)} forms:\n{page[:3000]}"
    return posts[0]


@dataclass
class Flow:
    """One client's state through the authorization code flow."""

    hub: OAuthHub
    http: httpx2.Client
    client_id: str
    redirect_uri: str
    verifier: str = ""
    challenge: str = ""
    state: str = ""
    resource: str = ""

    def authorize_params(self, scope: str | None, **extra: str) -> dict[str, str]:
        self.verifier, self.challenge = pkce()
        self.state = secrets.token_urlsafe(16)
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "code_challenge": self.challenge, "code_challenge_method": "S256", "state": self.state,
                  "resource": self.resource or self.hub.resource}
        if scope is not None:
            params["scope"] = scope
        params.update(extra)
        return {k: v for k, v in params.items() if v is not None}

    def get_authorize(self, scope: str | None, **extra: str) -> httpx2.Response:
        return self.http.get(f"{self.hub.issuer}/authorize", params=self.authorize_params(scope, **extra))

    def submit(self, page: httpx2.Response, *, secret: str | None = None, scopes: list[str] | None = None,
               decision: str = "approve") -> httpx2.Response:
        """Submits the consent form of `page` as a browser would: its hidden fields, the owner
        secret, the ticked scopes (all pre-ticked ones unless `scopes` is given), and a button."""
        form = consent_form(page.text)
        data: list[tuple[str, str]] = list(form.hidden.items())
        data.append(("owner_secret", self.hub.owner_secret if secret is None else secret))
        ticked = [v for v, checked in form.scopes() if checked] if scopes is None else scopes
        data += [("scope", s) for s in ticked]
        data.append(("decision", decision))
        action = urljoin(str(page.request.url), form.action)
        return self.http.post(action, data=form_data(data))

    def approve(self, scope: str | None, *, scopes: list[str] | None = None) -> str:
        """GET /authorize, approve, and return the code after checking state and iss."""
        page = self.get_authorize(scope)
        assert page.status_code == 200, f"/authorize: {page.status_code} {page.headers.get('location')} {page.text[:500]}"
        r = self.submit(page, scopes=scopes)
        assert r.status_code in (302, 303), f"consent POST: {r.status_code} {r.text[:500]}"
        location = r.headers["location"]
        got = query(location)
        assert redirect_base(location) == self.redirect_uri, location
        assert got.get("state") == self.state and got.get("iss") == self.hub.issuer, location
        assert "code" in got and "error" not in got, location
        return got["code"]

    def exchange(self, code: str, **override: str | None) -> httpx2.Response:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "client_id": self.client_id, "code_verifier": self.verifier, "resource": self.resource or self.hub.resource}
        data.update(override)
        return self.http.post(f"{self.hub.issuer}/token", data={k: v for k, v in data.items() if v is not None})

    def refresh(self, refresh_token: str) -> httpx2.Response:
        return self.http.post(f"{self.hub.issuer}/token", data={
            "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self.client_id,
            "resource": self.resource or self.hub.resource})

    def tokens(self, scope: str | None = "fs:read", *, scopes: list[str] | None = None) -> dict[str, Any]:
        code = self.approve(scope, scopes=scopes)
        r = self.exchange(code)
        assert r.status_code == 200, f"/token: {r.status_code} {r.text}"
        return r.json()


def register(hub: OAuthHub, http: httpx2.Client, redirect_uris: list[str], name: str = "e2e client",
             **extra: Any) -> httpx2.Response:
    body = {"client_name": name, "redirect_uris": redirect_uris, "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"], "token_endpoint_auth_method": "none", **extra}
    return http.post(f"{hub.issuer}/register", json=body)


def new_flow(hub: OAuthHub, http: httpx2.Client, redirect_uris: list[str] | None = None,
             name: str = "e2e client") -> Flow:
    uris = redirect_uris or ["http://127.0.0.1:9/cb"]
    r = register(hub, http, uris, name)
    assert r.status_code == 201, f"/register: {r.status_code} {r.text}"
    return Flow(hub=hub, http=http, client_id=r.json()["client_id"], redirect_uri=uris[0])


def mcp(http: httpx2.Client, hub: OAuthHub, body: Any, token: str | None = None, **headers: str) -> httpx2.Response:
    h = dict(MCP_HEADERS)
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers)
    return http.post(f"{hub.issuer}/mcp", json=body, headers=h)


def tool_call(name: str, args: dict[str, Any], id: int = 7) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": args}}


def listed_tools(r: httpx2.Response) -> list[str]:
    assert r.status_code == 200, f"tools/list: {r.status_code} {r.headers.get('www-authenticate')} {r.text[:300]}"
    return [t["name"] for t in r.json()["result"]["tools"]]


def tool_scopes(root: Path) -> dict[str, str]:
    """Tool name → the scope it needs, as `bastion tools --json --allow-write` reports it."""
    import json

    r = subprocess.run([str(bastion()), "tools", "--json", "--allow-write", "--root", str(root)],
                       capture_output=True, text=True, timeout=TIMEOUT * 2)
    assert r.returncode == 0, r.stderr
    return {t["tool"]["name"]: t["scope"] for t in json.loads(r.stdout)["tools"]}


# --- Shared flows -------------------------------------------------------------------------------------


@asynccontextmanager
async def mcp_session(hub: OAuthHub, token: str) -> AsyncIterator[ClientSession]:
    """The official SDK's streamable HTTP client with an ``Authorization: Bearer`` header."""
    async with hub.async_client(token) as client:
        async with streamable_http_client(f"{hub.issuer}/mcp", http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                with anyio.fail_after(TIMEOUT):
                    await session.initialize()
                yield session


async def list_and_read(hub: OAuthHub, token: str) -> list[str]:
    """tools/list and a successful ``fs__read_file`` through the SDK; returns the tool names."""
    async with mcp_session(hub, token) as s:
        with anyio.fail_after(TIMEOUT):
            names = [t.name for t in (await s.list_tools()).tools]
            assert "fs__read_file" in names, names
            r = await s.call_tool("fs__read_file", {"path": "hello.txt"})
        text = "".join(getattr(c, "text", "") for c in r.content)
        assert not r.is_error and "hello through oauth" in text, text
    return names


def assert_token_response(r: httpx2.Response) -> dict[str, Any]:
    """AS-07: 200 JSON with the five fields and ``Cache-Control: no-store``."""
    assert r.status_code == 200, f"/token: {r.status_code} {r.text}"
    assert "no-store" in r.headers.get("cache-control", ""), dict(r.headers)
    body = r.json()
    assert body.get("token_type", "").lower() == "bearer" and body["token_type"] == "Bearer", body
    assert isinstance(body.get("expires_in"), int) and body["expires_in"] > 0, body
    assert body.get("access_token") and body.get("refresh_token") and isinstance(body.get("scope"), str), body
    return body


def assert_oauth_error(r: httpx2.Response, status: int, *errors: str) -> None:
    assert r.status_code == status, f"expected {status} {errors}, got {r.status_code} {r.text[:500]}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers.get("content-type")
    assert r.json().get("error") in errors, f"expected error {' or '.join(errors)}, got {r.status_code} {r.text}"



async def chatgpt_flow(hub: OAuthHub, http: httpx2.Client) -> None:
    """What ChatGPT does when a connector is created (CG-04, CG-06); see the test of that name."""
    # 1. Probe /mcp without a token.
    r = mcp(http, hub, INIT)
    assert r.status_code == 401, r.text
    params = challenge_params(r.headers["www-authenticate"])
    prm_url = params.get("resource_metadata")
    assert prm_url == f"{hub.issuer}/.well-known/oauth-protected-resource/mcp", r.headers["www-authenticate"]
    assert params.get("scope"), f"RS-03: the challenge has no scope: {r.headers['www-authenticate']}"
    # 2. Protected resource metadata, from the header and at the root (ChatGPT strips /mcp): the
    # root's document is the same but for `resource`, the root URL it describes (RFC 9728 §3.3),
    # a prefix of /mcp, which MCP clients accept for /mcp too.
    prm = http.get(prm_url)
    assert prm.status_code == 200 and prm.headers["content-type"].startswith("application/json"), prm.text
    root_prm = http.get(f"{hub.issuer}/.well-known/oauth-protected-resource")
    assert root_prm.status_code == 200, root_prm.text
    assert root_prm.json() == {**prm.json(), "resource": f"{hub.issuer}/"}, root_prm.text
    meta_rs = prm.json()
    assert meta_rs["resource"] == hub.resource and meta_rs["authorization_servers"] == [hub.issuer], meta_rs
    # 3. Authorization server metadata, both names.
    as_url = f"{meta_rs['authorization_servers'][0]}/.well-known/oauth-authorization-server"
    as_meta = http.get(as_url)
    assert as_meta.status_code == 200 and as_meta.headers["content-type"].startswith("application/json"), as_meta.text
    meta = as_meta.json()
    oidc = http.get(f"{hub.issuer}/.well-known/openid-configuration")
    assert oidc.status_code == 200 and oidc.json()["issuer"] == meta["issuer"] == hub.issuer, oidc.text
    assert "S256" in meta["code_challenge_methods_supported"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    # 4. Dynamic client registration with ChatGPT's stable callback.
    reg = http.post(meta["registration_endpoint"], json={
        "client_name": "ChatGPT", "redirect_uris": [CHATGPT_REDIRECT], "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"], "token_endpoint_auth_method": "none", "scope": params["scope"]})
    assert reg.status_code == 201, reg.text
    client = reg.json()
    assert client["redirect_uris"] == [CHATGPT_REDIRECT] and client["token_endpoint_auth_method"] == "none", client
    assert "client_secret" not in client, client
    # 5. Authorize with PKCE and the PRM resource verbatim; scopes from the challenge.
    flow = Flow(hub=hub, http=http, client_id=client["client_id"], redirect_uri=CHATGPT_REDIRECT,
                resource=meta_rs["resource"])
    page = http.get(meta["authorization_endpoint"], params=flow.authorize_params(params["scope"]))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), page.text[:500]
    assert "ChatGPT" in page.text and "chatgpt.com" in page.text, "the consent page names the client and redirect host"
    # 6. Submit the consent form as the owner.
    r = flow.submit(page)
    assert r.status_code == 303, f"consent POST: {r.status_code} {r.text[:300]}"
    location = r.headers["location"]
    got = query(location)
    assert redirect_base(location) == CHATGPT_REDIRECT, location
    assert got.get("state") == flow.state, location
    assert got.get("iss") == meta["issuer"], f"AS-08: iss must equal the metadata issuer exactly: {location}"
    assert "%3A%2F%2F" in location.split("iss=", 1)[1], f"AS-08: iss is URL-encoded in the query: {location}"
    # 7. Token exchange at the advertised endpoint.
    tokens = assert_token_response(http.post(meta["token_endpoint"], data={
        "grant_type": "authorization_code", "code": got["code"], "redirect_uri": CHATGPT_REDIRECT,
        "client_id": client["client_id"], "code_verifier": flow.verifier, "resource": meta_rs["resource"]}))
    # 8. The official SDK lists tools and reads a file with the token.
    await list_and_read(hub, tokens["access_token"])


# --- The official SDK's OAuth client ----------------------------------------------------------------


class MemoryStorage:
    """An in-memory ``mcp.client.auth.TokenStorage``."""

    def __init__(self) -> None:
        self.tokens: Any = None
        self.client_info: Any = None

    async def get_tokens(self) -> Any:
        return self.tokens

    async def set_tokens(self, tokens: Any) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> Any:
        return self.client_info

    async def set_client_info(self, client_info: Any) -> None:
        self.client_info = client_info


async def sdk_oauth_tools(hub: OAuthHub, *, redirect_uri: str = "http://127.0.0.1:53682/callback"
                          ) -> tuple[list[str], str, MemoryStorage, list[str]]:
    """Connects to ``{issuer}/mcp`` with ``mcp.client.auth.OAuthClientProvider``: the SDK
    discovers, registers and builds the authorization URL itself; its redirect handler plays the
    owner (GET the page, submit the consent form with the owner secret, keep the Location) and its
    callback handler hands back code, state and iss. Returns the tool names, the text of
    ``fs__read_file hello.txt``, the storage, and the authorization URLs the SDK opened."""
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

    opened: list[str] = []
    locations: list[str] = []

    def consent(url: str) -> str:
        with hub.client() as http:
            page = http.get(url)
            assert page.status_code == 200, f"SDK authorization URL {url}: {page.status_code} {page.text[:300]}"
            form = consent_form(page.text)
            data = [*form.hidden.items(), ("owner_secret", hub.owner_secret),
                    *[("scope", s) for s, checked in form.scopes() if checked], ("decision", "approve")]
            r = http.post(urljoin(url, form.action), data=form_data(data))
            assert r.status_code in (302, 303), f"consent POST: {r.status_code} {r.text[:300]}"
            return r.headers["location"]

    async def redirect_handler(url: str) -> None:
        opened.append(url)
        locations.append(await anyio.to_thread.run_sync(consent, url))

    async def callback_handler() -> AuthorizationCodeResult:
        got = query(locations[-1])
        assert redirect_base(locations[-1]) == redirect_uri, locations[-1]
        return AuthorizationCodeResult(code=got["code"], state=got.get("state"), iss=got.get("iss"))

    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=f"{hub.issuer}/mcp",
        client_metadata=OAuthClientMetadata(
            client_name="mcp-python-sdk-e2e", redirect_uris=[redirect_uri],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"], response_types=["code"],
            token_endpoint_auth_method="none"),
        storage=storage, redirect_handler=redirect_handler, callback_handler=callback_handler,
    )
    if hub.ca is not None:
        client = httpx2.AsyncClient(auth=provider, verify=ssl.create_default_context(cafile=str(hub.ca)),
                                    timeout=httpx2.Timeout(TIMEOUT, read=300.0))
    else:
        client = httpx2.AsyncClient(auth=provider, transport=AsyncToHub(hub.issuer, hub.port),
                                    timeout=httpx2.Timeout(TIMEOUT, read=300.0))
    async with client:
        async with streamable_http_client(f"{hub.issuer}/mcp", http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                with anyio.fail_after(TIMEOUT * 2):
                    await session.initialize()
                    names = [t.name for t in (await session.list_tools()).tools]
                    r = await session.call_tool("fs__read_file", {"path": "hello.txt"})
    text = "".join(getattr(c, "text", "") for c in r.content)
    assert not r.is_error, text
    return names, text, storage, opened


# --- A client ID metadata document server (HTTPS with a throwaway CA) ----------------------------------


@contextmanager
def metadata_document_server(tmp: Path, documents: dict[str, Any]) -> Iterator[tuple[int, Path, list[str]]]:
    """An HTTPS server on 127.0.0.1 serving ``documents`` (path → JSON, or ``("redirect", url)``)
    with a certificate for 127.0.0.1 from a CA made here. Yields the port, the CA's PEM file (for
    the hub's ``cimd_extra_ca``) and the list of paths requested."""
    import datetime
    import http.server
    import ipaddress
    import json

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bastion e2e CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_pem, cert_pem, key_pem = tmp / "cimd-ca.pem", tmp / "cimd-cert.pem", tmp / "cimd-key.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            requested.append(self.path)
            doc = documents.get(self.path)
            if isinstance(doc, tuple) and doc[0] == "redirect":
                self.send_response(302)
                self.send_header("Location", doc[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps(doc).encode()
            self.send_response(200 if doc is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_pem, key_pem)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], ca_pem, requested
    finally:
        server.shutdown()
        server.server_close()
