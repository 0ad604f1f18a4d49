"""Profiles (``[profile.NAME]``) through the official SDK: each profile is a tool surface of its
own at ``/mcp/NAME`` (and ``serve --stdio --profile NAME``), with its own roots, upstreams, tool
globs and tool search; a token bound to a profile reaches only it (403 ``profile_not_allowed``
elsewhere); ``call_tool`` gets the same 403 scope challenge as a direct call; an upstream whose
tools change tells the clients of its own surface, in each tool search mode, in stateful mode.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from fsclient import bastion_binary as bastion
from test_hub import LIST, TIMEOUT, Hub, _init_repo, call, http_session, names, running_hub

pytestmark = pytest.mark.anyio

FAKE = Path(__file__).with_name("hub_fake_upstream.py")


def _config(base: Path) -> Path:
    for name in ("web", "api"):
        (base / name).mkdir()
        (base / name / f"only-{name}.txt").write_text(f"the {name} project\n")
    config = base / "bastion.toml"
    config.write_text(
        '[[upstream]]\nname = "fs"\nbuiltin = "fs"\nargs = ["--allow-write"]\n'
        '[[upstream]]\nname = "git"\nbuiltin = "git"\n'
        f'[[upstream]]\nname = "fake"\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(FAKE))}]\n'
        f'[profile.web]\nroots = [{json.dumps(str(base / "web"))}]\nupstreams = ["fs", "git"]\n'
        'deny_tools = ["fs__write_file", "fs__edit_file"]\n'
        f'[profile.api]\nroots = [{json.dumps(str(base / "api"))}]\nupstreams = ["fs", "fake"]\n'
        'tool_search = "on"\n'
    )
    return config


@pytest.fixture(scope="module")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("profiles")
    root = base / "proj"
    root.mkdir()
    _init_repo(root)
    with running_hub(base, "--config", str(_config(base)), root=root) as h:
        yield h


async def _listed(hub: Hub, token: str, path: str, want: str) -> list[str]:
    """The tools of a surface once `want` is among them (its upstreams start with the hub's,
    and /readyz waits for the hub's own)."""
    async with http_session(hub, token, path) as s:
        with anyio.fail_after(TIMEOUT):
            while want not in (listed := await names(s)):
                await anyio.sleep(0.1)
        return listed


def _journal(hub: Hub) -> list[dict[str, Any]]:
    return [json.loads(l) for l in (hub.state / "audit.jsonl").read_text().splitlines()]


async def test_profiles_isolate_roots_and_tools(profiled: Hub) -> None:
    web = await _listed(profiled, profiled.token, "/mcp/web", "git__status")
    assert "fs__read_file" in web and "fs__write_file" not in web and "fs__edit_file" not in web, web
    assert not any(n.startswith("fake__") for n in web), web
    api = await _listed(profiled, profiled.token, "/mcp/api", "find_tools")
    assert api == ["find_tools", "call_tool"], api
    everything = await _listed(profiled, profiled.token, "/mcp", "fake__echo")
    assert {"fs__write_file", "git__status", "fake__echo"} <= set(everything)
    async with http_session(profiled, profiled.token, "/mcp/web") as s:
        err, _, text = await call(s, "fs__read_file", {"path": "only-web.txt"})
        assert not err and "the web project" in text, text
        # The other project's files are outside this profile's roots, whatever the token.
        for path in ("../api/only-api.txt", str(profiled.root.parent / "api" / "only-api.txt"), "hello.txt"):
            err, structured, text = await call(s, "fs__read_file", {"path": path})
            assert err, (path, text)
        # A tool the profile does not offer is unknown there.
        with pytest.raises(Exception, match="unknown tool"):
            await s.call_tool("fs__write_file", {"path": "x.txt", "content": "x"})
    async with http_session(profiled, profiled.token, "/mcp/api") as s:
        _, found, _ = await call(s, "find_tools", {"query": "read the contents of a file", "limit": 3})
        assert "fs__read_file" in [t["name"] for t in found["tools"]], found
        err, _, text = await call(s, "call_tool", {"name": "fs__read_file", "arguments": {"path": "only-api.txt"}})
        assert not err and "the api project" in text, text
        err, _, text = await call(s, "call_tool", {"name": "fs__read_file", "arguments": {"path": "../web/only-web.txt"}})
        assert err, text
        with pytest.raises(Exception, match="unknown tool"):
            await s.call_tool("call_tool", {"name": "git__status", "arguments": {}})
    assert not (profiled.root.parent / "web" / "x.txt").exists()
    # The journal names the profile and the real tool; metrics name the profile too.
    lines = [r for r in _journal(profiled) if "principal" in r and r.get("tool") == "fs__read_file"]
    assert {r.get("profile") for r in lines} >= {"web", "api"}, lines
    assert not any(r.get("tool") == "call_tool" for r in _journal(profiled))
    status, _, body = profiled.raw(path="/metrics", method="GET", token=profiled.token)
    assert status == 200 and 'tool="web/fs__read_file"' in body.decode() and 'upstream="api/fs"' in body.decode()


async def test_a_token_bound_to_a_profile_reaches_only_it(profiled: Hub) -> None:
    token = profiled.create_token("webonly", "*:*", "--profile", "web")
    listed = await _listed(profiled, token, "/mcp/web", "fs__read_file")
    assert "git__status" in listed
    for path in ("/mcp/api", "/mcp", "/", "/metrics", "/openapi.json"):
        method = "GET" if path in ("/metrics", "/openapi.json") else "POST"
        status, _, body = profiled.raw(LIST if method == "POST" else None, path=path, method=method, token=token)
        assert status == 403 and b"profile_not_allowed" in body, (path, status, body)
    # B's tools are not B's for it: the same request with the owner token works.
    status, _, _ = profiled.raw(LIST, path="/mcp/api", token=profiled.token)
    assert status == 200
    refusals = [r for r in _journal(profiled) if r.get("event") == "http_refused" and r["detail"]["reason"] == "profile_not_allowed"]
    assert len(refusals) >= 5, refusals
    # Bound to two profiles: both, and still not the hub's own surface.
    both = profiled.create_token("webapi", "fs:read", "--profile", "web", "--profile", "api")
    for path, want in (("/mcp/web", 200), ("/mcp/api", 200), ("/mcp", 403)):
        assert profiled.raw(LIST, path=path, token=both)[0] == want, path
    # A bad profile name is refused when the token is created.
    bad = subprocess.run([str(bastion()), "token", "create", "--name", "x", "--scopes", "fs:read", "--profile", "Web",
                          "--state-dir", str(profiled.state)], capture_output=True, text=True, timeout=TIMEOUT)
    assert bad.returncode != 0 and "not a profile name" in bad.stderr, bad.stderr


def test_call_tool_gets_the_scope_challenge_of_a_direct_call(profiled: Hub) -> None:
    reader = profiled.create_token("apireader", "fs:read,fake:read", "--profile", "api")
    args = {"path": "x.txt", "content": "x"}
    # The write tool exists in the api profile (fs runs --allow-write) but the token lacks fs:write
    # (test_hub_toolsearch checks the same at /mcp).
    call_ = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
             "params": {"name": "call_tool", "arguments": {"name": "fs__write_file", "arguments": args}}}
    status, headers, _ = profiled.raw(call_, path="/mcp/api", token=reader)
    challenge = headers.get("www-authenticate", "")
    assert status == 403 and 'error="insufficient_scope"' in challenge and 'scope="fs:write"' in challenge, challenge
    assert not (profiled.root.parent / "api" / "x.txt").exists()
    refused = [r for r in _journal(profiled) if r.get("principal") == "apireader"]
    assert [r["tool"] for r in refused] == ["fs__write_file"], refused
    assert refused[0]["outcome"] == "insufficient_scope" and refused[0].get("profile") in (None, "api")


async def test_serve_stdio_profile(profiled: Hub, tmp_path: Path) -> None:
    config = profiled.root.parent / "bastion.toml"
    params = StdioServerParameters(
        command=str(bastion()), args=["serve", "--stdio", "--config", str(config), "--profile", "web"],
        env={"RUST_LOG": "warn", "BASTION_STATE_DIR": str(tmp_path / "state")},
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            with anyio.fail_after(TIMEOUT):
                await s.initialize()
                while "git__status" not in (listed := await names(s)):
                    await anyio.sleep(0.1)
            assert "fs__write_file" not in listed and not any(n.startswith("fake__") for n in listed), listed
            err, _, text = await call(s, "fs__read_file", {"path": "only-web.txt"})
            assert not err and "the web project" in text, text
            err, _, _ = await call(s, "fs__read_file", {"path": "../api/only-api.txt"})
            assert err
    journal = [json.loads(l) for l in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    calls = [r for r in journal if r.get("tool") == "fs__read_file"]
    assert calls and all(r.get("profile") == "web" for r in calls), calls
    # An unknown profile stops the hub with one line.
    r = subprocess.run([str(bastion()), "serve", "--stdio", "--config", str(config), "--profile", "nope"],
                       capture_output=True, text=True, timeout=TIMEOUT,
                       env={"BASTION_STATE_DIR": str(tmp_path / "state2"), "PATH": "/usr/bin:/bin"})
    assert r.returncode != 0 and "--profile nope" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def stateful(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("profiles-stateful")
    fake = f'[[upstream]]\nname = "fake"\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(FAKE))}]\n'
    config = base / "bastion.toml"
    config.write_text(
        fake + '[profile.off]\ntool_search = "off"\n[profile.on]\ntool_search = "on"\n'
        '[profile.auto]\ntool_search = "auto"\n'
    )
    with running_hub(base, "--config", str(config), "--stateful") as h:
        yield h


async def test_list_changed_reaches_the_clients_of_its_surface_in_each_mode(stateful: Hub) -> None:
    surfaces = ["/mcp", "/mcp/off", "/mcp/on", "/mcp/auto"]
    seen: dict[str, list[str]] = {p: [] for p in surfaces}

    def handler(path: str):
        async def on_message(message: Any) -> None:
            inner = getattr(message, "root", message)
            seen[path].append(str(getattr(inner, "method", type(inner).__name__)))
        return on_message

    for p in surfaces:
        await _listed(stateful, stateful.token, p, "find_tools" if p == "/mcp/on" else "fake__grow")
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {stateful.token}"},
                                  timeout=httpx2.Timeout(30.0, read=300.0)) as client:
        sessions: dict[str, ClientSession] = {}
        async with (
            streamable_http_client(f"http://127.0.0.1:{stateful.port}/mcp", http_client=client) as (r0, w0),
            streamable_http_client(f"http://127.0.0.1:{stateful.port}/mcp/off", http_client=client) as (r1, w1),
            streamable_http_client(f"http://127.0.0.1:{stateful.port}/mcp/on", http_client=client) as (r2, w2),
            streamable_http_client(f"http://127.0.0.1:{stateful.port}/mcp/auto", http_client=client) as (r3, w3),
            ClientSession(r0, w0, message_handler=handler("/mcp")) as s0,
            ClientSession(r1, w1, message_handler=handler("/mcp/off")) as s1,
            ClientSession(r2, w2, message_handler=handler("/mcp/on")) as s2,
            ClientSession(r3, w3, message_handler=handler("/mcp/auto")) as s3,
        ):
            sessions = {"/mcp": s0, "/mcp/off": s1, "/mcp/on": s2, "/mcp/auto": s3}
            for s in sessions.values():
                with anyio.fail_after(TIMEOUT):
                    init = await s.initialize()
                assert init.capabilities.tools and init.capabilities.tools.list_changed
            for n, path in enumerate(surfaces, start=1):
                s = sessions[path]
                if path == "/mcp/on":
                    err, _, text = await call(s, "call_tool", {"name": "fake__grow", "arguments": {}})
                else:
                    err, _, text = await call(s, "fake__grow", {})
                assert not err and "grew" in text, (path, text)
                with anyio.fail_after(TIMEOUT):
                    while "notifications/tools/list_changed" not in seen[path]:
                        await anyio.sleep(0.05)
                if path == "/mcp/on":
                    assert await names(s) == ["find_tools", "call_tool"]
                    _, found, _ = await call(s, "find_tools", {"query": "grown", "limit": 3})
                    assert "fake__grown" in [t["name"] for t in found["tools"]], found
                    err, _, text = await call(s, "call_tool", {"name": "fake__grown", "arguments": {}})
                else:
                    assert "fake__grown" in await names(s), path
                    err, _, text = await call(s, "fake__grown", {})
                assert not err and "grown tool answered" in text, (path, text)
                # The surfaces not yet grown have heard nothing: each profile's upstream is its own.
                for other in surfaces[n:]:
                    assert "notifications/tools/list_changed" not in seen[other], (path, other, seen)
                    assert "fake__grown" not in await names(sessions[other]) or other == "/mcp/on", other
            await anyio.sleep(0.5)
    for path in surfaces:
        assert seen[path].count("notifications/tools/list_changed") == 1, (path, seen)


def test_an_oauth_grant_for_a_profile_resource_is_bound_to_it(tmp_path: Path) -> None:
    from oauth_client import MCP_HEADERS, challenge_params, listed_tools, mcp, new_flow
    from oauth_client import running_hub as oauth_hub

    with oauth_hub(tmp_path, config='[profile.web]\nupstreams = ["fs"]\n') as hub, hub.client() as http:
        web = f"{hub.issuer}/mcp/web"
        # RFC 9728: the profile's own protected-resource metadata, named by its 401.
        r = http.get(f"{hub.issuer}/.well-known/oauth-protected-resource/mcp/web")
        assert r.status_code == 200 and r.json()["resource"] == web, r.text
        assert http.get(f"{hub.issuer}/.well-known/oauth-protected-resource/mcp/nope").status_code == 404
        r = http.post(web, json=LIST, headers=MCP_HEADERS)
        assert r.status_code == 401, r.text
        metadata = challenge_params(r.headers["www-authenticate"]).get("resource_metadata")
        assert metadata == f"{hub.issuer}/.well-known/oauth-protected-resource/mcp/web", r.headers["www-authenticate"]
        # RFC 8707: a grant asked for the profile's resource is bound to the profile.
        flow = new_flow(hub, http, name="web connector")
        flow.resource = web
        tokens = flow.tokens("fs:read")

        def at(url: str, token: str) -> httpx2.Response:
            return http.post(url, json=LIST, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"})

        assert "fs__read_file" in listed_tools(at(web, tokens["access_token"]))
        r = mcp(http, hub, LIST, tokens["access_token"])
        assert r.status_code == 403 and "profile_not_allowed" in r.text, (r.status_code, r.text)
        # Refreshed, it stays bound.
        r = flow.refresh(tokens["refresh_token"])
        assert r.status_code == 200, r.text
        again = r.json()["access_token"]
        assert at(web, again).status_code == 200 and mcp(http, hub, LIST, again).status_code == 403
        # A grant for the hub's own resource reaches every surface; an unknown profile is no resource.
        plain = new_flow(hub, http).tokens("fs:read")["access_token"]
        assert at(web, plain).status_code == 200 and mcp(http, hub, LIST, plain).status_code == 200
        other = new_flow(hub, http)
        other.resource = f"{hub.issuer}/mcp/nope"
        r = other.get_authorize("fs:read")
        assert "invalid_target" in r.headers.get("location", "") + r.text, (r.status_code, r.text[:300])


def test_tools_list_cache_hints_are_private_and_stale_on_every_surface(profiled: Hub) -> None:
    """Protocol 2026-07-28's cache hints: a surface's list depends on the token, the profile and
    upstreams that may change at any moment, so every surface, in every tool search mode, says
    ``ttlMs: 0`` and ``cacheScope: "private"`` (a client lists again rather than reuse another
    principal's or a stale list)."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
    for path, first in (("/mcp", "fs__"), ("/mcp/web", "fs__"), ("/mcp/api", "find_tools")):
        status, _, raw = profiled.raw(body, path=path, token=profiled.token, Mcp_Method="tools/list",
                                      MCP_Protocol_Version="2026-07-28")
        assert status == 200, (path, raw)
        result = json.loads(raw)["result"]
        assert result["tools"] and result["tools"][0]["name"].startswith(first), (path, result["tools"][:1])
        assert result.get("ttlMs") == 0 and result.get("cacheScope") == "private", (path, {k: v for k, v in result.items() if k != "tools"})
