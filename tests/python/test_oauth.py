"""End-to-end tests of the hub's OAuth mode (``bastion serve --public-url https://hub.example``):
the hub as protected resource (RS-*) and as its own authorization server (AS-*), driven by
scripted clients that behave like ChatGPT (CG-04, CG-06), Claude (CL-01) and Cursor (CU-01),
and by the negative cases of the checklist in ``protocol-and-connectors.md`` §6–§8 and §11.

One hub serves the module; tests that need their own (short token lifetimes, the lockout, the
registration limit, a restart, static-token mode, a trusted metadata-document server) start one
on a fresh state directory. Requests go to the public
URL through :class:`oauth_client.ToHub` (plain HTTP to the hub's loopback port, public ``Host``).
"""

from __future__ import annotations

import json
import re
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from oauth_client import (
    CHATGPT_REDIRECT,
    CLAUDE_REDIRECTS,
    CURSOR_REDIRECTS,
    INIT,
    LIST,
    MCP_HEADERS,
    Flow,
    OAuthHub,
    assert_oauth_error,
    assert_token_response,
    challenge_params,
    chatgpt_flow,
    consent_form,
    list_and_read,
    listed_tools,
    mcp,
    metadata_document_server,
    new_flow,
    query,
    redirect_base,
    register,
    running_hub,
    sdk_oauth_tools,
    tool_call,
    tool_scopes,
)

pytestmark = pytest.mark.anyio

STATIC_CLIENT = {"client_id": "static-e2e", "client_name": "Static E2E", "redirect_uris": ["https://static.example/cb"]}
CONFIG = (
    "[[oauth.client]]\n"
    f'client_id = "{STATIC_CLIENT["client_id"]}"\n'
    f'client_name = "{STATIC_CLIENT["client_name"]}"\n'
    f'redirect_uris = {json.dumps(STATIC_CLIENT["redirect_uris"])}\n'
)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthHub]:
    with running_hub(tmp_path_factory.mktemp("oauth"), config=CONFIG) as h:
        yield h


@pytest.fixture
def http(hub: OAuthHub) -> Iterator[httpx2.Client]:
    with hub.client() as c:
        yield c


def assert_401_invalid_token(http: httpx2.Client, hub: OAuthHub, token: str, why: str) -> None:
    r = mcp(http, hub, LIST, token)
    assert r.status_code == 401, f"{why}: the token still works ({r.status_code} {r.text[:200]})"
    params = challenge_params(r.headers.get("www-authenticate", ""))
    assert params.get("error") == "invalid_token", f"{why}: {r.headers.get('www-authenticate')}"
    assert params.get("resource_metadata") == f"{hub.issuer}/.well-known/oauth-protected-resource/mcp"


def assert_no_redirect_error_page(r: httpx2.Response, why: str) -> None:
    """AS-03/AS-06: a bad client or redirect URI gets an error page, never a redirect."""
    assert r.status_code == 400, f"{why}: {r.status_code} location={r.headers.get('location')} {r.text[:300]}"
    assert "location" not in r.headers, f"{why}: redirected to {r.headers['location']}"
    assert r.headers.get("content-type", "").startswith("text/html"), f"{why}: {r.headers.get('content-type')}"


# --- Whole flows: ChatGPT, Claude, Cursor ----------------------------------------------------------


async def test_chatgpt_like_client_end_to_end(hub: OAuthHub, http: httpx2.Client) -> None:
    """CG-04, CG-06, RS-01..03, AS-01, AS-04, AS-06..08: discovery from a 401, PRM at the
    path-inserted and root locations, AS metadata and the OpenID alias, DCR with ChatGPT's
    stable redirect, PKCE S256, `resource` = PRM `resource` verbatim on authorize and token,
    the consent form submitted with the owner secret, `iss` checked, then tools/list and a call
    through the official MCP SDK."""
    await chatgpt_flow(hub, http)


async def test_claude_like_client_end_to_end(hub: OAuthHub, http: httpx2.Client) -> None:
    """CL-01, AS-03, AS-10: DCR with both Claude callbacks; the second one is used (exact match
    against any registered URI); Claude requests the AS `scopes_supported` in order."""
    meta = http.get(f"{hub.issuer}/.well-known/oauth-authorization-server").json()
    reg = register(hub, http, CLAUDE_REDIRECTS, "Claude")
    assert reg.status_code == 201, reg.text
    assert reg.json()["redirect_uris"] == CLAUDE_REDIRECTS
    flow = Flow(hub=hub, http=http, client_id=reg.json()["client_id"], redirect_uri=CLAUDE_REDIRECTS[1])
    page = flow.get_authorize(" ".join(meta["scopes_supported"]))
    assert page.status_code == 200, page.text[:500]
    assert "Claude" in page.text and "claude.com" in page.text
    r = flow.submit(page)
    assert r.status_code == 303 and redirect_base(r.headers["location"]) == CLAUDE_REDIRECTS[1], r.headers
    got = query(r.headers["location"])
    assert got["state"] == flow.state and got["iss"] == hub.issuer
    tokens = assert_token_response(flow.exchange(got["code"]))
    names = await list_and_read(hub, tokens["access_token"])
    assert {"git__status", "shell__run_command", "fs__write_file"} <= set(names), names


def test_cursor_like_client_registers_three_uris(hub: OAuthHub, http: httpx2.Client) -> None:
    """CU-01, AS-03: Cursor's three redirect URIs in one DCR request → 201 (G17); the loopback
    one completes the flow; tools/list over raw JSON-RPC."""
    reg = register(hub, http, CURSOR_REDIRECTS, "Cursor")
    assert reg.status_code == 201, f"AS-03: one unsupported URI must not break Cursor's registration: {reg.text}"
    kept = reg.json()["redirect_uris"]
    assert "http://localhost:8787/callback" in kept and set(kept) <= set(CURSOR_REDIRECTS), kept
    flow = Flow(hub=hub, http=http, client_id=reg.json()["client_id"], redirect_uri="http://localhost:8787/callback")
    tokens = assert_token_response(flow.exchange(flow.approve("fs:read git:read")))
    names = listed_tools(mcp(http, hub, LIST, tokens["access_token"]))
    assert "fs__read_file" in names and "git__status" in names, names
    assert not any(n.startswith("shell__") for n in names), names


# --- Discovery and the resource server -------------------------------------------------------------


def test_discovery_documents(hub: OAuthHub, http: httpx2.Client) -> None:
    """RS-01, RS-02, AS-01, AS-09, AS-10: public metadata with the exact fields, one issuer."""
    prm = http.get(f"{hub.issuer}/.well-known/oauth-protected-resource/mcp").json()
    assert prm["resource"] == hub.resource
    assert prm["authorization_servers"] == [hub.issuer]
    assert prm["bearer_methods_supported"] == ["header"]
    meta = http.get(f"{hub.issuer}/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == hub.issuer and not meta["issuer"].endswith("/")
    for key, path in [("authorization_endpoint", "/authorize"), ("token_endpoint", "/token"),
                      ("registration_endpoint", "/register"), ("revocation_endpoint", "/revoke")]:
        assert meta.get(key) == hub.issuer + path, (key, meta.get(key))
    assert meta["code_challenge_methods_supported"] == ["S256"], meta
    assert "none" in meta["token_endpoint_auth_methods_supported"], meta
    assert meta["client_id_metadata_document_supported"] is True
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert "code" in meta.get("response_types_supported", []), meta
    assert {"authorization_code", "refresh_token"} <= set(meta.get("grant_types_supported", [])), meta
    for doc in (prm, meta):
        scopes = set(doc["scopes_supported"])
        assert {"fs:read", "git:read"} <= scopes and "offline_access" not in scopes, doc["scopes_supported"]
    assert set(prm["scopes_supported"]) == set(meta["scopes_supported"]), "AS-10: the same scopes in PRM and AS"
    # Every scope a tool needs can be requested.
    needed = set(tool_scopes(hub.root).values())
    assert needed <= set(meta["scopes_supported"]), needed - set(meta["scopes_supported"])
    oidc = http.get(f"{hub.issuer}/.well-known/openid-configuration").json()
    assert oidc["issuer"] == hub.issuer and oidc["authorization_endpoint"] == meta["authorization_endpoint"]


def test_challenge_on_mcp_without_or_with_a_bad_token(hub: OAuthHub, http: httpx2.Client) -> None:
    """RS-03, T-06: 401 with resource_metadata and scope; invalid_token for bad tokens; 401 even
    with a wrong Content-Type."""
    prm_url = f"{hub.issuer}/.well-known/oauth-protected-resource/mcp"
    for headers in ({}, {"Content-Type": "text/plain"}, {"Content-Type": "application/octet-stream"}):
        r = mcp(http, hub, INIT, **headers)
        assert r.status_code == 401, (headers, r.status_code, r.text[:200])
        params = challenge_params(r.headers["www-authenticate"])
        assert params.get("resource_metadata") == prm_url and params.get("scope"), r.headers["www-authenticate"]
        assert "offline_access" not in params["scope"].split()
        assert "error" not in params, "no error code when no token was sent (RFC 6750 §3.1)"
    for bad in ["garbage", "bst_" + "0" * 40, "x" * 200]:
        assert_401_invalid_token(http, hub, bad, f"token {bad[:12]}…")


def test_bearer_token_in_the_query_string_is_refused(hub: OAuthHub, http: httpx2.Client) -> None:
    """RS-05: never accept a token from the query string."""
    token = new_flow(hub, http).tokens("fs:read")["access_token"]
    r = http.post(f"{hub.issuer}/mcp", params={"access_token": token}, json=LIST, headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
    assert r.status_code == 401, f"?access_token= was accepted: {r.status_code} {r.text[:200]}"
    assert listed_tools(mcp(http, hub, LIST, token))  # the same token in the header works


def test_static_tokens_keep_working_in_oauth_mode(hub: OAuthHub, http: httpx2.Client) -> None:
    static = hub.cli("token", "create", "--name", "static-in-oauth", "--scopes", "fs:read").stdout.strip()
    assert static.startswith("bst_"), static
    names = listed_tools(mcp(http, hub, LIST, static))
    assert "fs__read_file" in names and "fs__write_file" not in names, names


def test_static_token_mode_has_no_oauth_discovery(tmp_path: Path) -> None:
    """RS-06: without --public-url, every OAuth document is 404 and the challenge names no metadata."""
    with running_hub(tmp_path, public_url=None) as hub, hub.client() as http:
        for path in ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
                     "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]:
            r = http.get(path)
            assert r.status_code == 404, f"RS-06: {path} answered {r.status_code} in static-token mode"
        r = http.post("/mcp", json=INIT, headers={"Accept": "application/json, text/event-stream"})
        assert r.status_code == 401 and "resource_metadata" not in r.headers["www-authenticate"], r.headers


# --- Registration ------------------------------------------------------------------------------------


@pytest.mark.parametrize("uris", [
    ["http://evil.example/cb"],
    ["javascript:alert(1)"],
    ["https://evil.example/cb#fragment"],
    ["https://chatgpt.com/connector_platform_oauth_redirect", "http://evil.example/cb"],
    [],
])
def test_registration_refuses_bad_redirect_uris(hub: OAuthHub, http: httpx2.Client, uris: list[str]) -> None:
    """AS-03, AS-04: only HTTPS, loopback or private-use schemes; JSON errors, never HTML."""
    r = register(hub, http, uris)
    assert_oauth_error(r, 400, "invalid_redirect_uri", "invalid_client_metadata")


def test_registration_accepts_loopback_on_any_port(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-03 (RFC 8252 §7.3)."""
    for uri in ["http://127.0.0.1:53124/cb", "http://localhost:1/callback", "http://[::1]:8080/cb"]:
        r = register(hub, http, [uri])
        assert r.status_code == 201 and r.json()["redirect_uris"] == [uri], (uri, r.text)


def test_registration_is_rate_limited(tmp_path: Path) -> None:
    """AS-04: the public registration endpoint is rate-limited (429 with Retry-After, a JSON
    error), so an anonymous caller cannot fill the store."""
    with running_hub(tmp_path) as hub, hub.client() as http:
        statuses = []
        for i in range(200):
            r = register(hub, http, [f"http://127.0.0.1:{1000 + i}/cb"], f"flood {i}")
            statuses.append(r.status_code)
            if r.status_code != 201:
                break
        assert statuses[-1] == 429, f"200 registrations in a row were accepted: {statuses[-3:]}"
        assert len(statuses) > 10, f"the limit is too tight for real clients: {statuses}"
        assert int(r.headers.get("retry-after", "0")) > 0 and r.json().get("error"), (dict(r.headers), r.text)


# --- /authorize ----------------------------------------------------------------------------------------


def test_consent_page_is_self_contained_and_unframeable(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-06: a plain HTML page with no external assets, anti-framing headers, the form of the
    contract, and one pre-ticked checkbox per requested scope."""
    flow = new_flow(hub, http, [CHATGPT_REDIRECT], "Form Checker")
    page = flow.get_authorize("fs:read git:read")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), page.text[:300]
    xfo = page.headers.get("x-frame-options", "").upper()
    csp = page.headers.get("content-security-policy", "")
    assert xfo == "DENY" or "frame-ancestors 'none'" in csp, dict(page.headers)
    external = re.findall(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//[^"'\s>]*""", page.text, re.I)
    assert not external, f"external assets on the consent page: {external}"
    assert "@import" not in page.text and "url(http" not in page.text.replace(" ", "")
    form = consent_form(page.text)
    assert form.action == "/authorize", form.action
    assert {"request", "csrf"} <= set(form.hidden), form.hidden
    assert any(i.get("type") == "password" and i.get("name") == "owner_secret" for i in form.inputs), form.inputs
    assert form.scopes() == [("fs:read", True), ("git:read", True)], form.scopes()
    buttons = {(b.get("name"), b.get("value"), b.get("id")) for b in form.buttons}
    assert {("decision", "approve", "approve"), ("decision", "deny", "deny")} <= buttons, buttons
    assert "Form Checker" in page.text and "chatgpt.com" in page.text
    assert "fs:read" in page.text and "git:read" in page.text


def test_client_name_is_html_escaped(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-05 (consent shows client_name): a hostile name is shown as text, never as markup."""
    flow = new_flow(hub, http, ["https://xss.example/cb"], "<script>alert(1)</script>")
    page = flow.get_authorize("fs:read")
    assert page.status_code == 200, page.text[:300]
    assert "<script>alert(1)" not in page.text, "the client name was inserted unescaped"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, "the client name should appear, escaped"


def test_deny_redirects_with_access_denied(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-06, AS-08: denial → error=access_denied with state and iss, no code."""
    flow = new_flow(hub, http, [CHATGPT_REDIRECT])
    page = flow.get_authorize("fs:read")
    r = flow.submit(page, decision="deny")
    assert r.status_code == 303, r.text[:300]
    got = query(r.headers["location"])
    assert redirect_base(r.headers["location"]) == CHATGPT_REDIRECT
    assert got.get("error") == "access_denied" and got.get("state") == flow.state and got.get("iss") == hub.issuer, got
    assert "code" not in got


@pytest.mark.parametrize("extra", [{"code_challenge_method": "plain"}, {"code_challenge": None},
                                   {"code_challenge_method": None}])
def test_pkce_s256_is_required_at_authorize(hub: OAuthHub, http: httpx2.Client, extra: dict[str, Any]) -> None:
    """AS-02, AS-08: `plain`, or no challenge → redirect with error=invalid_request, state and iss."""
    flow = new_flow(hub, http, [CHATGPT_REDIRECT])
    params = flow.authorize_params("fs:read")
    for k, v in extra.items():
        if v is None:
            params.pop(k)
        else:
            params[k] = v
    r = http.get(f"{hub.issuer}/authorize", params=params)
    assert r.status_code in (302, 303), f"AS-02 {extra}: expected an error redirect, got {r.status_code} {r.text[:200]}"
    got = query(r.headers["location"])
    assert redirect_base(r.headers["location"]) == CHATGPT_REDIRECT
    assert got.get("error") == "invalid_request" and got.get("state") == flow.state and got.get("iss") == hub.issuer, got


def test_consent_post_needs_its_csrf_token_and_is_single_use(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-06: CSRF protection on the consent form; a submitted consent cannot be replayed into a
    second code."""
    flow = new_flow(hub, http, [CHATGPT_REDIRECT])
    page = flow.get_authorize("fs:read")
    form = consent_form(page.text)
    forged = {**form.hidden, "csrf": "forged", "owner_secret": hub.owner_secret, "scope": "fs:read",
              "decision": "approve"}
    r = http.post(f"{hub.issuer}/authorize", data=forged)
    assert r.status_code in (400, 403) and "location" not in r.headers, (r.status_code, r.headers.get("location"))
    no_request = {k: v for k, v in forged.items() if k != "request"} | {"csrf": form.hidden["csrf"]}
    r = http.post(f"{hub.issuer}/authorize", data=no_request)
    assert r.status_code in (400, 403) and "location" not in r.headers, (r.status_code, r.headers.get("location"))
    first = flow.submit(page)
    assert first.status_code == 303 and "code=" in first.headers["location"], first.text[:300]
    again = flow.submit(page)
    assert "code=" not in again.headers.get("location", ""), f"a replayed consent minted a second code: {again.headers}"


def test_only_the_code_response_type(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-01, AS-06: `response_type=token` (implicit, removed in OAuth 2.1) is refused with a
    redirect carrying error, state and iss."""
    flow = new_flow(hub, http, [CHATGPT_REDIRECT])
    r = flow.get_authorize("fs:read", response_type="token")
    assert r.status_code in (302, 303), (r.status_code, r.text[:200])
    got = query(r.headers["location"])
    assert got.get("error") == "unsupported_response_type" and got.get("state") == flow.state, got
    assert got.get("iss") == hub.issuer and "access_token" not in r.headers["location"], got


def test_bearer_scheme_is_case_insensitive(hub: OAuthHub, http: httpx2.Client) -> None:
    """RFC 7235 §2.1: the auth scheme is case-insensitive (some clients send `bearer`)."""
    token = new_flow(hub, http).tokens("fs:read")["access_token"]
    for scheme in ("bearer", "BEARER"):
        r = http.post(f"{hub.issuer}/mcp", json=LIST, headers={**MCP_HEADERS, "Authorization": f"{scheme} {token}"})
        assert r.status_code == 200, (scheme, r.status_code, r.headers.get("www-authenticate"))


def test_unknown_client_or_unregistered_redirect_never_redirects(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-03, AS-06: validate the client and redirect before redirecting anywhere."""
    flow = new_flow(hub, http, ["https://good.example/cb"])
    for why, override in [
        ("unregistered redirect_uri", {"redirect_uri": "https://evil.example/cb"}),
        ("prefix of the registered URI", {"redirect_uri": "https://good.example/cb/extra"}),
        ("different query", {"redirect_uri": "https://good.example/cb?x=1"}),
        ("unknown client", {"client_id": "no-such-client"}),
        ("missing redirect_uri", {"redirect_uri": None}),
    ]:
        params = flow.authorize_params("fs:read")
        for k, v in override.items():
            if v is None:
                params.pop(k)
            else:
                params[k] = v
        # Even a valid PKCE request must not turn into a redirect to an unverified place.
        assert_no_redirect_error_page(http.get(f"{hub.issuer}/authorize", params=params), why)


def test_static_client_from_config(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-04 alternative: a client registered in the config file, no DCR."""
    flow = Flow(hub=hub, http=http, client_id=STATIC_CLIENT["client_id"], redirect_uri=STATIC_CLIENT["redirect_uris"][0])
    page = flow.get_authorize("fs:read")
    assert page.status_code == 200 and STATIC_CLIENT["client_name"] in page.text, page.text[:300]
    tokens = assert_token_response(flow.exchange(flow.approve("fs:read")))
    assert "fs__read_file" in listed_tools(mcp(http, hub, LIST, tokens["access_token"]))


# --- /token ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("verifier", ["wrong", "missing"])
def test_wrong_or_missing_pkce_verifier(hub: OAuthHub, http: httpx2.Client, verifier: str) -> None:
    """AS-02: BASE64URL(SHA256(code_verifier)) must equal the challenge."""
    flow = new_flow(hub, http)
    code = flow.approve("fs:read")
    bad = {"wrong": "A" * 64, "missing": None}[verifier]
    assert_oauth_error(flow.exchange(code, code_verifier=bad), 400, "invalid_grant")


def test_replayed_code_is_refused_and_its_tokens_revoked(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-06, AS-07 (§11 O6): a code is single-use; a replay revokes what it issued."""
    flow = new_flow(hub, http)
    code = flow.approve("fs:read")
    first = assert_token_response(flow.exchange(code))
    assert listed_tools(mcp(http, hub, LIST, first["access_token"]))
    assert_oauth_error(flow.exchange(code), 400, "invalid_grant")
    assert_401_invalid_token(http, hub, first["access_token"], "the access token from a replayed code")
    assert_oauth_error(flow.refresh(first["refresh_token"]), 400, "invalid_grant")


def test_redirect_uri_mismatch_at_token(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-07: the token request's redirect_uri must equal the one of the authorization request,
    even when both are registered."""
    flow = new_flow(hub, http, CLAUDE_REDIRECTS)
    code = flow.approve("fs:read")
    assert_oauth_error(flow.exchange(code, redirect_uri=CLAUDE_REDIRECTS[1]), 400, "invalid_grant")


def test_token_endpoint_errors(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-07: RFC 6749 §5.2 errors: unknown client → 401 invalid_client; unknown grant type;
    a code for another client."""
    flow = new_flow(hub, http)
    code = flow.approve("fs:read")
    assert_oauth_error(flow.exchange(code, client_id="no-such-client"), 401, "invalid_client")
    other = new_flow(hub, http)
    assert_oauth_error(flow.exchange(code, client_id=other.client_id), 400, "invalid_grant")
    r = http.post(f"{hub.issuer}/token", data={"grant_type": "password", "username": "a", "password": "b",
                                              "client_id": flow.client_id})
    assert_oauth_error(r, 400, "unsupported_grant_type")
    r = http.post(f"{hub.issuer}/token", data={"grant_type": "client_credentials", "client_id": flow.client_id})
    assert r.status_code in (400, 401) and "access_token" not in r.text, "AS-12: no client_credentials"


def test_token_for_another_resource_is_refused(hub: OAuthHub, http: httpx2.Client) -> None:
    """RS-05, AS-06 (RFC 8707): a grant for https://other.example/mcp never yields a token this
    hub accepts; a code for this hub cannot be exchanged for another resource."""
    other = "https://other.example/mcp"
    flow = new_flow(hub, http, [CHATGPT_REDIRECT])
    flow.resource = other
    page = flow.get_authorize("fs:read")
    if page.status_code in (302, 303):
        got = query(page.headers["location"])
        assert got.get("error") == "invalid_target" and got.get("state") == flow.state and got.get("iss") == hub.issuer, got
    else:
        assert page.status_code == 200, (
            f"authorize for another resource: expected a redirect with error=invalid_target (RFC 8707 §2) or "
            f"consent with the token refused later, got {page.status_code} {page.text[:200]}")
        r = flow.submit(page)
        got = query(r.headers["location"])
        if "code" in got:
            t = flow.exchange(got["code"])
            if t.status_code == 200:
                assert_401_invalid_token(http, hub, t.json()["access_token"], "a token minted for another resource")
            else:
                assert_oauth_error(t, 400, "invalid_target", "invalid_grant")
        else:
            assert got.get("error") == "invalid_target", got
    # A code bound to this hub, exchanged for another resource.
    flow = new_flow(hub, http)
    code = flow.approve("fs:read")
    assert_oauth_error(flow.exchange(code, resource=other), 400, "invalid_target", "invalid_grant")


def test_refresh_rotates_and_reuse_revokes_the_family(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-07, AS-09 (§11 O7): each refresh returns a new pair; presenting an old refresh token
    again is refused and revokes the family, the newest access token included."""
    flow = new_flow(hub, http)
    first = flow.tokens("fs:read")
    second = assert_token_response(flow.refresh(first["refresh_token"]))
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    third = assert_token_response(flow.refresh(second["refresh_token"]))
    assert listed_tools(mcp(http, hub, LIST, third["access_token"]))
    assert_oauth_error(flow.refresh(first["refresh_token"]), 400, "invalid_grant")
    assert_401_invalid_token(http, hub, third["access_token"], "the newest access token after refresh reuse")
    assert_oauth_error(flow.refresh(third["refresh_token"]), 400, "invalid_grant")
    # Another grant of the same client is not part of the family.
    unrelated = flow.tokens("fs:read")
    assert listed_tools(mcp(http, hub, LIST, unrelated["access_token"]))


def test_refresh_can_narrow_but_not_widen_the_scope(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-07: a refresh may ask for fewer scopes than the grant, never more."""
    flow = new_flow(hub, http)
    tokens = flow.tokens("fs:read git:read")
    assert sorted(tokens["scope"].split()) == ["fs:read", "git:read"], tokens["scope"]
    wider = http.post(f"{hub.issuer}/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                                  "client_id": flow.client_id, "scope": "fs:read fs:write"})
    assert_oauth_error(wider, 400, "invalid_scope")
    narrow = assert_token_response(http.post(f"{hub.issuer}/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": flow.client_id,
        "scope": "fs:read"}))
    assert narrow["scope"].split() == ["fs:read"], narrow["scope"]
    names = listed_tools(mcp(http, hub, LIST, narrow["access_token"]))
    assert "fs__read_file" in names and not any(n.startswith("git__") for n in names), names


def test_resource_with_a_trailing_slash_or_none(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-06, RS-05: `resource` is accepted with or without a trailing slash, and defaults to
    the hub's resource when a client leaves it out."""
    for resource in (hub.resource + "/", None):
        flow = new_flow(hub, http)
        params = flow.authorize_params("fs:read")
        if resource is None:
            params.pop("resource")
        else:
            params["resource"] = resource
        page = http.get(f"{hub.issuer}/authorize", params=params)
        assert page.status_code == 200, f"resource={resource!r}: {page.status_code} {page.headers.get('location')}"
        r = flow.submit(page)
        code = query(r.headers["location"]).get("code")
        assert code, r.headers["location"]
        tokens = assert_token_response(flow.exchange(code, resource=resource))
        assert listed_tools(mcp(http, hub, LIST, tokens["access_token"])), resource


def test_revocation_endpoint(hub: OAuthHub, http: httpx2.Client) -> None:
    """RFC 7009 /revoke: the access token stops working; a revoked refresh token cannot refresh."""
    flow = new_flow(hub, http)
    tokens = flow.tokens("fs:read")
    assert listed_tools(mcp(http, hub, LIST, tokens["access_token"]))
    r = http.post(f"{hub.issuer}/revoke", data={"token": tokens["access_token"], "client_id": flow.client_id})
    assert r.status_code == 200, r.text
    assert_401_invalid_token(http, hub, tokens["access_token"], "a revoked access token")
    r = http.post(f"{hub.issuer}/revoke", data={"token": tokens["refresh_token"], "client_id": flow.client_id})
    assert r.status_code == 200, r.text
    assert_oauth_error(flow.refresh(tokens["refresh_token"]), 400, "invalid_grant")
    # Unknown tokens are not an error (RFC 7009 §2.2).
    r = http.post(f"{hub.issuer}/revoke", data={"token": "no-such-token", "client_id": flow.client_id})
    assert r.status_code == 200, r.text


# --- Scopes ----------------------------------------------------------------------------------------------


async def test_scope_narrowing_on_the_consent_page(hub: OAuthHub, http: httpx2.Client) -> None:
    """RS-04, AS-10: all scopes requested, only fs:read ticked → the grant is fs:read; the model
    sees only fs read tools; a shell call gets 403 insufficient_scope naming the needed scope."""
    needed = tool_scopes(hub.root)
    meta = http.get(f"{hub.issuer}/.well-known/oauth-authorization-server").json()
    flow = new_flow(hub, http, [CHATGPT_REDIRECT])
    page = flow.get_authorize(" ".join(meta["scopes_supported"]))
    assert page.status_code == 200
    assert {s for s, checked in consent_form(page.text).scopes() if checked} == set(meta["scopes_supported"])
    r = flow.submit(page, scopes=["fs:read"])
    assert r.status_code == 303, r.text[:300]
    tokens = assert_token_response(flow.exchange(query(r.headers["location"])["code"]))
    assert tokens["scope"].split() == ["fs:read"], f"unticked scopes were granted: {tokens['scope']}"
    names = listed_tools(mcp(http, hub, LIST, tokens["access_token"]))
    # OAuth mode offers the hub's own `search` and `fetch` (read tier, fs:read) beside fs's tools.
    assert {"search", "fetch"} <= set(names), names
    fs_names = [n for n in names if n not in ("search", "fetch")]
    assert fs_names and all(n.startswith("fs__") and needed[n] == "fs:read" for n in fs_names), names
    assert "fs__write_file" not in names
    r = mcp(http, hub, tool_call("shell__run_command", {"program": "ls", "args": []}), tokens["access_token"])
    assert r.status_code == 403, f"RS-04: expected 403 insufficient_scope, got {r.status_code} {r.text[:300]}"
    params = challenge_params(r.headers.get("www-authenticate", ""))
    assert params.get("error") == "insufficient_scope", r.headers.get("www-authenticate")
    assert params.get("scope", "").split() == [needed["shell__run_command"]], r.headers["www-authenticate"]
    assert params.get("resource_metadata") == f"{hub.issuer}/.well-known/oauth-protected-resource/mcp"
    r = mcp(http, hub, tool_call("fs__write_file", {"path": "x.txt", "content": "x"}), tokens["access_token"])
    assert r.status_code == 403, f"RS-04: a write with an fs:read grant got {r.status_code} {r.text[:200]}"
    assert challenge_params(r.headers["www-authenticate"]).get("scope") == needed["fs__write_file"]
    assert not (hub.root / "x.txt").exists()
    await list_and_read(hub, tokens["access_token"])


# --- Owner secret -----------------------------------------------------------------------------------------


def test_wrong_owner_secret_then_lockout(tmp_path: Path) -> None:
    """AS-06: the owner secret is required, wrong ones are throttled: 401, then 429 with
    Retry-After after 5 failures, and during the lockout even the right secret is refused."""
    with running_hub(tmp_path) as hub, hub.client() as http:
        flow = new_flow(hub, http, [CHATGPT_REDIRECT])
        spare = flow.get_authorize("fs:read")  # a valid form for after the lockout
        assert spare.status_code == 200
        statuses = []
        for attempt in range(5):
            page = flow.get_authorize("fs:read")
            assert page.status_code == 200, f"attempt {attempt}: {page.status_code}"
            r = flow.submit(page, secret=f"wrong-{attempt}")
            statuses.append(r.status_code)
            assert "location" not in r.headers, f"a wrong secret redirected: {r.headers['location']}"
            if attempt < 4:
                assert r.status_code == 401 and r.headers["content-type"].startswith("text/html"), (attempt, r.status_code)
        assert statuses[4] in (401, 429), statuses
        r = flow.submit(spare)  # the right secret, during the lockout
        assert r.status_code == 429, f"the right secret was not refused during the lockout: {r.status_code} {r.headers}"
        assert "location" not in r.headers
        assert int(r.headers.get("retry-after", "0")) > 0, dict(r.headers)


def test_parallel_wrong_secrets_cannot_outrun_the_lockout(tmp_path: Path) -> None:
    """AS-06: twelve wrong secrets submitted at once get at most five checks; then the right
    secret is refused too."""
    with running_hub(tmp_path) as hub, hub.client() as http:
        flow = new_flow(hub, http, [CHATGPT_REDIRECT])
        pages = [flow.get_authorize("fs:read") for _ in range(13)]
        assert all(p.status_code == 200 for p in pages)
        statuses: list[int] = []
        threads = [threading.Thread(target=lambda p=p, i=i: statuses.append(flow.submit(p, secret=f"wrong-{i}").status_code))
                   for i, p in enumerate(pages[:12])]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(statuses) == 12 and set(statuses) <= {401, 429}, statuses
        assert statuses.count(401) <= 5, f"more than five wrong secrets were checked: {sorted(statuses)}"
        assert flow.submit(pages[12]).status_code == 429, "the right secret was accepted during the lockout"


# --- CIMD ---------------------------------------------------------------------------------------------------


def test_cimd_client_id_at_a_private_address_is_refused(hub: OAuthHub, http: httpx2.Client) -> None:
    """AS-05: SSRF protection: a client ID metadata URL on loopback, private or link-local
    addresses (or a name resolving to one) is refused with an error page and no redirect,
    without the hub connecting there."""
    connections: list[str] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                connections.append("connected")
                conn.close()

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        try:
            for client_id in [f"https://127.0.0.1:{port}/client.json", "https://127.0.0.1:1/client.json",
                              f"https://localhost:{port}/x.json", "https://localhost/x.json",
                              "https://[::1]/client.json", "https://10.0.0.1/client.json",
                              "https://192.168.1.1/client.json", "https://169.254.169.254/latest/meta-data/client.json"]:
                params = {"response_type": "code", "client_id": client_id, "redirect_uri": CHATGPT_REDIRECT,
                          "code_challenge": "x" * 43, "code_challenge_method": "S256", "state": "s", "scope": "fs:read",
                          "resource": hub.resource}
                started = time.monotonic()
                r = http.get(f"{hub.issuer}/authorize", params=params)
                assert_no_redirect_error_page(r, f"CIMD client_id {client_id}")
                assert time.monotonic() - started < 10, f"{client_id}: the refusal took too long"
        finally:
            stop.set()
            t.join(timeout=2)
    assert not connections, "the hub connected to a loopback CIMD URL"


def test_cimd_client_end_to_end(tmp_path: Path) -> None:
    """AS-05, CG-04: a client ID metadata document on an HTTPS server the hub is told to trust
    (a test CA via `cimd_extra_ca`, its loopback address via `cimd_allow_private`): the
    document's client completes the flow without registering; ChatGPT's document shape (plural
    `token_endpoint_auth_methods_supported` with `none`, legacy singular `private_key_jwt`) is
    accepted; a document whose client_id differs from its URL, a redirected fetch and a
    redirect_uri missing from the document are refused without a redirect."""
    docs: dict[str, Any] = {}
    with metadata_document_server(tmp_path, docs) as (port, ca, requested):
        base = f"https://127.0.0.1:{port}"
        common = {"redirect_uris": [CHATGPT_REDIRECT], "grant_types": ["authorization_code", "refresh_token"],
                  "response_types": ["code"]}
        docs["/client.json"] = {"client_id": f"{base}/client.json", "client_name": "CIMD Client",
                                "token_endpoint_auth_method": "none", **common}
        docs["/oauth/client.json"] = {"client_id": f"{base}/oauth/client.json", "client_name": "ChatGPT",
                                      "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
                                      "token_endpoint_auth_method": "private_key_jwt",
                                      "jwks_uri": "https://chatgpt.com/oauth/jwks.json", **common}
        docs["/mismatch.json"] = {**docs["/client.json"], "client_id": f"{base}/other.json"}
        docs["/moved.json"] = ("redirect", f"{base}/client.json")
        config = f'[oauth]\ncimd_allow_private = ["127.0.0.1"]\ncimd_extra_ca = [{json.dumps(str(ca))}]\n'
        with running_hub(tmp_path / "hub", config=config) as hub, hub.client() as http:
            for path, name in [("/client.json", "CIMD Client"), ("/oauth/client.json", "ChatGPT")]:
                flow = Flow(hub=hub, http=http, client_id=f"{base}{path}", redirect_uri=CHATGPT_REDIRECT)
                page = flow.get_authorize("fs:read")
                assert page.status_code == 200, f"AS-05 {path}: {page.status_code} {page.text[:300]}"
                assert name in page.text and "chatgpt.com" in page.text
                tokens = assert_token_response(flow.exchange(flow.approve("fs:read")))
                assert "fs__read_file" in listed_tools(mcp(http, hub, LIST, tokens["access_token"]))
            assert "/client.json" in requested and "/oauth/client.json" in requested, requested
            for why, client_id, redirect in [
                ("client_id in the document differs from its URL", f"{base}/mismatch.json", CHATGPT_REDIRECT),
                ("the document URL redirects", f"{base}/moved.json", CHATGPT_REDIRECT),
                ("no document there", f"{base}/missing.json", CHATGPT_REDIRECT),
                ("redirect_uri not in the document", f"{base}/client.json", "https://evil.example/cb"),
            ]:
                flow = Flow(hub=hub, http=http, client_id=client_id, redirect_uri=redirect)
                assert_no_redirect_error_page(flow.get_authorize("fs:read"), f"AS-05: {why}")


# --- CLI, persistence, storage ---------------------------------------------------------------------------------


def test_bastion_token_list_and_revoke_cover_oauth_grants(hub: OAuthHub, http: httpx2.Client) -> None:
    """`bastion token list` shows OAuth grants (never their tokens); `bastion token revoke`
    revokes one by its grant id, or a client's grants by the client's name; others stay live."""
    by_id, by_name = new_flow(hub, http, name="grant-by-id"), new_flow(hub, http, name="grant-by-name")
    keep = new_flow(hub, http, name="grant-to-keep").tokens("fs:read")
    flows = {"id": (by_id, by_id.tokens("fs:read")), "name": (by_name, by_name.tokens("fs:read git:read"))}
    listing = hub.cli("token", "list").stdout
    lines = {k: next((l for l in listing.splitlines() if f"grant-by-{k}" in l), "") for k in flows}
    assert all(lines.values()), f"the OAuth grants are not in `bastion token list`:\n{listing}"
    assert "fs:read" in lines["id"] and "git:read" in lines["name"], listing
    for _, t in flows.values():
        assert t["access_token"] not in listing and t["refresh_token"] not in listing
    grant_id = lines["id"].split()[0]
    hub.cli("token", "revoke", grant_id)
    hub.cli("token", "revoke", "grant-by-name")
    for how, (flow, tokens) in flows.items():
        assert_401_invalid_token(http, hub, tokens["access_token"], f"an access token of a grant revoked by {how}")
        assert_oauth_error(flow.refresh(tokens["refresh_token"]), 400, "invalid_grant")
    listing = hub.cli("token", "list").stdout
    assert all("revoked" in l for l in listing.splitlines() if "grant-by-" in l), listing
    assert listed_tools(mcp(http, hub, LIST, keep["access_token"])), "revoking one grant revoked another"


def test_store_is_private_and_holds_no_token_in_clear(hub: OAuthHub, http: httpx2.Client) -> None:
    """State in DIR/auth.sqlite3, mode 0600, secrets hashed."""
    tokens = new_flow(hub, http).tokens("fs:read")
    store = hub.state / "auth.sqlite3"
    assert store.is_file(), sorted(p.name for p in hub.state.iterdir())
    for path in [store, *hub.state.glob("auth.sqlite3-*")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path.name} is {oct(stat.S_IMODE(path.stat().st_mode))}"
        data = path.read_bytes()
        for secret in (tokens["access_token"], tokens["refresh_token"], hub.owner_secret):
            assert secret.encode() not in data, f"{path.name} holds a secret in clear"


async def test_tokens_survive_a_restart(tmp_path: Path) -> None:
    """Persistence: after a restart on the same state directory the access token and the
    refresh token still work (ChatGPT need not reconnect)."""
    with running_hub(tmp_path) as hub:
        with hub.client() as http:
            flow = new_flow(hub, http)
            tokens = flow.tokens("fs:read")
            assert listed_tools(mcp(http, hub, LIST, tokens["access_token"]))
        hub.stop()
        hub.start()
        with hub.client() as http:
            flow.http = http
            assert listed_tools(mcp(http, hub, LIST, tokens["access_token"])), "the access token died with the restart"
            fresh = assert_token_response(flow.refresh(tokens["refresh_token"]))
        await list_and_read(hub, fresh["access_token"])


async def test_expired_access_token_then_refresh(tmp_path: Path) -> None:
    """AS-09, RS-03: with access_token_ttl = 2s the token expires (401 invalid_token) and the
    refresh token gets a working pair; with refresh_token_ttl = 4s the refresh token expires too,
    and with code_ttl = 1s an unused code."""
    config = '[oauth]\naccess_token_ttl = "2s"\nrefresh_token_ttl = "4s"\ncode_ttl = "1s"\n'
    with running_hub(tmp_path, config=config) as hub, hub.client() as http:
        flow = new_flow(hub, http)
        stale = flow.approve("fs:read")
        stale_verifier = flow.verifier
        tokens = flow.tokens("fs:read")
        assert tokens["expires_in"] <= 2, tokens
        assert listed_tools(mcp(http, hub, LIST, tokens["access_token"]))
        time.sleep(2.5)
        assert_401_invalid_token(http, hub, tokens["access_token"], "an expired access token")
        # AS-06: a code older than code_ttl is refused.
        assert_oauth_error(flow.exchange(stale, code_verifier=stale_verifier), 400, "invalid_grant")
        fresh = assert_token_response(flow.refresh(tokens["refresh_token"]))
        refreshed_at = time.monotonic()
        await list_and_read(hub, fresh["access_token"])
        time.sleep(max(0.0, 4.5 - (time.monotonic() - refreshed_at)))
        assert_oauth_error(flow.refresh(fresh["refresh_token"]), 400, "invalid_grant")


def test_a_foreign_host_is_refused(hub: OAuthHub) -> None:
    """The Host check covers the OAuth routes too (DNS rebinding): only loopback and the public host."""
    for path in ["/.well-known/oauth-authorization-server", "/authorize", "/register"]:
        r = httpx2.get(f"http://127.0.0.1:{hub.port}{path}", headers={"Host": "evil.example"}, timeout=10)
        assert r.status_code == 403, (path, r.status_code)


async def test_official_sdk_oauth_client(hub: OAuthHub) -> None:
    """The official Python SDK's ``OAuthClientProvider`` completes discovery, DCR, PKCE,
    `resource` and `iss` validation (AS-08) against the hub, then lists tools and calls one."""
    names, text, storage, opened = await sdk_oauth_tools(hub)
    assert len(opened) == 1, opened
    sent = query(opened[0])
    assert sent["resource"] == hub.resource and sent["code_challenge_method"] == "S256", sent
    assert "fs__read_file" in names and "hello through oauth" in text, (names, text)
    assert storage.tokens is not None and storage.tokens.refresh_token, storage.tokens
