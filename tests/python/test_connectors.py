"""How connectors reach the hub, tried with raw HTTP as they send it.

- ``/`` is ``/mcp``: ChatGPT's connector has been seen posting to ``/``, and tunnels and proxies
  (Tailscale Funnel among them) strip a path prefix. Every request, answered or refused, gets the
  same status, the same body and the same challenge at both paths; in OAuth mode each path's
  challenge names its own protected-resource metadata, whose ``resource`` is that URL (RFC 9728),
  and a token asked for either URL works at both.
- Start-up: ``bastion serve`` checks the built-in servers' roots before it listens: a home
  directory as root is refused with one line and exit code 2 (no backtrace), unless
  ``--allow-broad-roots``; a hub of third-party upstreams only does not refuse a state
  directory under its working directory (there is no built-in root for it to sit in).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fsclient import bastion_binary as bastion
from fsclient import free_port
from oauth_client import challenge_params, mcp, new_flow
from oauth_client import running_hub as oauth_hub
from test_hub import INIT, LIST, Hub, running_hub

CALL = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "fs__read_file", "arguments": {"path": "hello.txt"}}}
DISCOVER_2026 = {"jsonrpc": "2.0", "id": 4, "method": "server/discover", "params": {"_meta": {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {}}}}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("connectors")
    root = base / "proj"
    root.mkdir()
    (root / "hello.txt").write_text("hello through the root path\n")
    with running_hub(base, root=root) as h:
        yield h


def answer(hub: Hub, path: str, body: Any = None, **kw: Any) -> tuple[int, dict[str, str], Any]:
    status, headers, raw = hub.raw(body, path=path, **kw)
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        parsed = raw
    keep = {k: headers[k] for k in ("content-type", "www-authenticate", "mcp-session-id") if k in headers}
    return status, keep, parsed


@pytest.mark.parametrize("case", [
    "initialize", "tools/list", "tools/call", "2026 discover", "no token", "bad token", "foreign origin",
    "GET without token", "GET with token", "not JSON",
])
def test_root_answers_exactly_as_mcp(hub: Hub, case: str) -> None:
    """Raw HTTP, as a connector sends it: the same status, headers that matter and body."""
    token = hub.token
    request: dict[str, Any] = {
        "initialize": {"body": INIT, "token": token},
        "tools/list": {"body": LIST, "token": token},
        "tools/call": {"body": CALL, "token": token},
        "2026 discover": {"body": DISCOVER_2026, "token": token, "Mcp_Protocol_Version": "2026-07-28",
                          "Mcp_Method": "server/discover"},
        "no token": {"body": INIT},
        "bad token": {"body": INIT, "token": "bst_not_a_token"},
        "foreign origin": {"body": INIT, "token": token, "Origin": "https://evil.example"},
        "GET without token": {"method": "GET"},
        "GET with token": {"method": "GET", "token": token},
        "not JSON": {"body": None, "token": token},
    }[case]
    if case == "not JSON":
        at_root = hub.raw(path="/", token=token, method="POST")
        at_mcp = hub.raw(path="/mcp", token=token, method="POST")
        assert at_root[0] == at_mcp[0] and at_root[2] == at_mcp[2], (at_root, at_mcp)
        return
    at_root, at_mcp = answer(hub, "/", **request), answer(hub, "/mcp", **request)
    assert at_root == at_mcp, f"{case}:\n/    {at_root}\n/mcp {at_mcp}"
    if case == "tools/call":
        assert at_root[0] == 200 and "hello through the root path" in json.dumps(at_root[2]), at_root
    if case == "tools/list":
        names = [t["name"] for t in at_root[2]["result"]["tools"]]
        assert "fs__read_file" in names, names
    if case in ("no token", "bad token"):
        assert at_root[0] == 401 and at_root[1]["www-authenticate"].startswith("Bearer"), at_root


def test_capabilities_are_what_the_hub_serves(hub: Hub) -> None:
    """Tools (and logging/setLevel on the initialize protocols); prompts, resources and completions
    are neither declared nor answered, at either path."""
    for path in ("/", "/mcp"):
        status, _, init = answer(hub, path, INIT, token=hub.token)
        caps = init["result"]["capabilities"]
        assert status == 200 and "tools" in caps and "logging" in caps, caps
        assert not {"prompts", "resources", "completions"} & set(caps), caps
        set_level = {"jsonrpc": "2.0", "id": 5, "method": "logging/setLevel", "params": {"level": "info"}}
        assert answer(hub, path, set_level, token=hub.token)[2].get("result") == {}, path
        for method in ("prompts/list", "resources/list", "resources/templates/list"):
            _, _, r = answer(hub, path, {"jsonrpc": "2.0", "id": 6, "method": method}, token=hub.token)
            assert r.get("error", {}).get("code") == -32601, (method, r)
    _, _, discovered = answer(hub, "/", DISCOVER_2026, token=hub.token, Mcp_Protocol_Version="2026-07-28",
                              Mcp_Method="server/discover")
    caps = discovered["result"]["capabilities"]
    assert set(caps) == {"tools"} and not caps["tools"].get("listChanged"), caps


def test_oauth_root_and_mcp_each_name_their_own_metadata(tmp_path: Path) -> None:
    """RFC 9728: a client given the root URL is sent to the root's metadata, whose resource is the
    root URL; one given /mcp to /mcp's. A token asked for the root works at both paths."""
    with oauth_hub(tmp_path) as hub, hub.client() as http:
        for path, metadata, resource in [
            ("/", "/.well-known/oauth-protected-resource", f"{hub.issuer}/"),
            ("/mcp", "/.well-known/oauth-protected-resource/mcp", f"{hub.issuer}/mcp"),
        ]:
            r = http.post(f"{hub.issuer}{path}", json=INIT, headers={"Accept": "application/json, text/event-stream"})
            assert r.status_code == 401, (path, r.status_code)
            url = challenge_params(r.headers["www-authenticate"]).get("resource_metadata")
            assert url == f"{hub.issuer}{metadata}", (path, r.headers["www-authenticate"])
            prm = http.get(url).json()
            assert prm["resource"] == resource and prm["authorization_servers"] == [hub.issuer], prm
        flow = new_flow(hub, http)
        flow.resource = f"{hub.issuer}/"
        token = flow.tokens("fs:read")["access_token"]
        for path in ("/", "/mcp"):
            r = http.post(f"{hub.issuer}{path}", json=LIST, headers={
                "Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"})
            assert r.status_code == 200 and "fs__read_file" in r.text, (path, r.status_code, r.text[:300])
        assert mcp(http, hub, LIST, token).status_code == 200


def serve(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``bastion serve ARGS`` on a free loopback port, stopped after a few seconds if it starts."""
    argv = [str(bastion()), "serve", "--no-auth", "--listen", f"127.0.0.1:{free_port()}", *args]
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=5,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        return subprocess.CompletedProcess(argv, -1, out, err)


def test_a_home_root_is_refused_before_listening_with_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "RUST_BACKTRACE": "1"}
    r = serve("--root", str(home), "--state-dir", str(tmp_path / "state"), cwd=tmp_path, env=env)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("bastion: upstream 'fs' (fs) would refuse to start: "), lines
    assert "home directory" in lines[0] and "--allow-broad-roots" in lines[0], lines
    assert "backtrace" not in r.stderr and "panicked" not in r.stderr, r.stderr
    assert "http://" not in r.stdout, "it must not have listened"
    # With --allow-broad-roots the built-ins get it too, and the hub starts.
    r = serve("--root", str(home), "--allow-broad-roots", "--state-dir", str(tmp_path / "state"), cwd=tmp_path, env=env)
    assert r.returncode == -1 and "/mcp" in r.stdout, (r.returncode, r.stdout, r.stderr)


def test_third_party_only_hub_accepts_a_state_dir_under_its_cwd(tmp_path: Path) -> None:
    (tmp_path / "hub.toml").write_text('[[upstream]]\nname = "cat"\ncommand = "/bin/cat"\nrequired = false\n')
    r = serve("--config", "hub.toml", "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert r.returncode == -1 and "/mcp" in r.stdout, (r.returncode, r.stdout, r.stderr)
    assert "lies inside the root" not in r.stderr, r.stderr
    # With a built-in, the same state directory is inside its root (the working directory).
    (tmp_path / "hub.toml").write_text('[[upstream]]\nname = "fs"\nbuiltin = "fs"\n')
    r = serve("--config", "hub.toml", "--state-dir", str(tmp_path / "state2"), cwd=tmp_path)
    assert r.returncode == 2 and "lies inside the root" in r.stderr, (r.returncode, r.stderr)
