"""The hub's OpenAPI facade (``GET /openapi.json``, ``POST /tools/{name}``) and ``bastion openapi``.

The document is checked with the reference validator (``openapi-spec-validator``); a client that
knows nothing but the document (its server URL, paths by ``operationId``, request and response
schemas checked with ``jsonschema``) calls three tools; scopes, approvals and the journal are
those of ``/mcp``; tool errors come back as HTTP errors with Bastion's stable code.
"""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from openapi_spec_validator import validate

from fsclient import bastion_binary as bastion
from test_approvals import cli, pending
from test_hub import TIMEOUT, Hub, running_hub


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("openapi")
    root = base / "proj"
    root.mkdir()
    (root / "hello.txt").write_text("hello from the facade\n")
    (root / ".env").write_text("TOKEN=x\n")
    config = base / "hub.toml"
    # Return mode: a call that needs the person is refused at once (approval_pending) and runs
    # when repeated after `bastion approve`.
    config.write_text('[approval]\nmode = "return"\n')
    with running_hub(base, "--allow-write", "--config", str(config), "--search-fetch", "true", root=root) as h:
        yield h


def request(
    hub: Hub, method: str, path: str, body: bytes | None = None, token: str | None = None, content_type: str = "application/json"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=TIMEOUT)
    try:
        headers = {"Content-Type": content_type} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def document(hub: Hub, token: str) -> dict[str, Any]:
    status, headers, body = request(hub, "GET", "/openapi.json", token=token)
    assert status == 200 and headers["content-type"] == "application/json", (status, body)
    return json.loads(body)


class Client:
    """A client built from the document alone: operations by ``operationId``."""

    def __init__(self, doc: dict[str, Any], token: str) -> None:
        self.doc, self.token = doc, token
        server = urlsplit(doc["servers"][0]["url"])
        self.host, self.port = server.hostname or "", server.port or 80
        self.ops = {
            op["operationId"]: (path, method.upper(), op)
            for path, item in doc["paths"].items()
            for method, op in item.items()
        }

    def _schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        # `$ref`s point into the document's components: carry them along.
        return {**schema, "components": self.doc["components"]}

    def call(self, operation_id: str, **args: Any) -> tuple[int, Any]:
        path, method, op = self.ops[operation_id]
        request_schema = op["requestBody"]["content"]["application/json"]["schema"]
        jsonschema.validate(args, self._schema(request_schema))
        conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        try:
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
            conn.request(method, path, body=json.dumps(args), headers=headers)
            r = conn.getresponse()
            status, content_type, body = r.status, r.getheader("content-type", ""), r.read()
        finally:
            conn.close()
        response = op["responses"].get(str(status)) or op["responses"]["default"]
        media = content_type.split(";")[0]
        assert media in response["content"], (operation_id, status, media, list(response["content"]))
        value = json.loads(body) if media == "application/json" else body.decode()
        jsonschema.validate(value, self._schema(response["content"][media]["schema"]))
        return status, value


def test_the_document_validates_and_lists_what_the_token_may_call(hub: Hub) -> None:
    doc = document(hub, hub.token)
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": f"http://127.0.0.1:{hub.port}"}]
    ops = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    for name in ("fs__read_file", "fs__write_file", "shell__run_command", "search", "fetch"):
        assert name in ops
    for path, item in doc["paths"].items():
        assert path == f"/tools/{item['post']['operationId']}"
        assert len(item["post"].get("description", "")) <= 300
    reader = hub.create_token("doc-reader", "fs:read")
    narrow = document(hub, reader)
    validate(narrow)
    ops = {op["operationId"] for item in narrow["paths"].values() for op in item.values()}
    assert "fs__read_file" in ops and "search" in ops
    assert not any(o.startswith(("shell__", "git__")) or o == "fs__write_file" for o in ops), ops


def test_a_client_driven_by_the_document_calls_three_tools(hub: Hub) -> None:
    c = Client(document(hub, hub.token), hub.token)
    status, read = c.call("fs__read_file", path="hello.txt")
    assert status == 200 and read["content"] == "hello from the facade\n"
    status, found = c.call("fs__find_files", pattern="*.txt")
    assert status == 200 and found["matches"] == ["hello.txt"]
    status, commands = c.call("shell__list_allowed_commands")
    assert status == 200 and commands
    status, results = c.call("search", query="facade")
    assert status == 200 and [r["title"] for r in results["results"]] == ["hello.txt"]


def test_scopes_hold(hub: Hub) -> None:
    reader = hub.create_token("reader", "fs:read")
    status, headers, body = request(hub, "POST", "/tools/fs__write_file", json.dumps({"path": "w.txt", "content": "w"}).encode(), reader)
    assert status == 403, body
    assert json.loads(body)["code"] == "insufficient_scope"
    challenge = headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="fs:write"' in challenge, challenge
    assert not (hub.root / "w.txt").exists()
    status, _, body = request(hub, "POST", "/tools/shell__run_command", json.dumps({"program": "ls"}).encode(), reader)
    assert (status, json.loads(body)["code"]) == (403, "insufficient_scope")
    assert request(hub, "POST", "/tools/fs__read_file", json.dumps({"path": "hello.txt"}).encode(), reader)[0] == 200
    # No token, a bad token: the guard's 401, as on /mcp.
    for token in (None, "bst_not_a_token"):
        status, headers, _ = request(hub, "POST", "/tools/fs__read_file", b"{}", token)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        assert request(hub, "GET", "/openapi.json", token=token)[0] == 401


def test_approvals_hold(hub: Hub) -> None:
    args = json.dumps({"path": ".envrc", "content": "export A=1\n"}).encode()
    status, _, body = request(hub, "POST", "/tools/fs__write_file", args, hub.token)
    assert (status, json.loads(body)["code"]) == (409, "approval_pending"), body
    assert not (hub.root / ".envrc").exists()
    [p] = pending(hub.state)
    assert (p["tool"], p["principal"]) == ("fs__write_file", "owner")
    cli(hub.state, "approve", p["id"])
    status, _, body = request(hub, "POST", "/tools/fs__write_file", args, hub.token)
    assert status == 200, body
    assert (hub.root / ".envrc").read_text() == "export A=1\n"


@pytest.mark.parametrize(
    ("tool", "body", "content_type", "status", "code"),
    [
        ("fs__read_file", {"path": "missing.txt"}, "application/json", 404, "not_found"),
        ("fs__read_file", {"path": ".env"}, "application/json", 403, "denied_by_glob"),
        ("fs__read_file", {"path": "../outside"}, "application/json", 403, "path_outside_root"),
        ("fs__read_file", {}, "application/json", 400, "invalid_argument"),
        ("no_such_tool", {}, "application/json", 404, "not_found"),
        ("fs__read_file", [1, 2], "application/json", 400, "invalid_argument"),
        ("fs__read_file", {"path": "hello.txt"}, "text/plain", 415, "invalid_argument"),
    ],
)
def test_error_codes_map_to_statuses(hub: Hub, tool: str, body: Any, content_type: str, status: int, code: str) -> None:
    got, headers, raw = request(hub, "POST", f"/tools/{tool}", json.dumps(body).encode(), hub.token, content_type)
    assert (got, headers["content-type"]) == (status, "application/json"), raw
    answer = json.loads(raw)
    assert answer["code"] == code and answer["message"], answer


def test_calls_are_journaled_like_mcp_calls(hub: Hub) -> None:
    journaled = hub.create_token("journaled", "fs:read")
    assert request(hub, "POST", "/tools/fs__read_file", json.dumps({"path": "hello.txt"}).encode(), journaled)[0] == 200
    lines = [json.loads(l) for l in (hub.state / "audit.jsonl").read_text().splitlines()]
    assert any(l.get("tool") == "fs__read_file" and l.get("principal") == "journaled" and l.get("outcome") == "ok" for l in lines)


def test_the_fetch_read_route_serves_the_text(hub: Hub) -> None:
    c = Client(document(hub, hub.token), hub.token)
    _, results = c.call("search", query="facade")
    status, headers, body = request(hub, "GET", f"/fetch/{results['results'][0]['id']}", token=hub.token)
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert body.decode() == "hello from the facade\n"


def test_bastion_openapi_prints_the_document(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    out = subprocess.run(
        [str(bastion()), "openapi", "--root", str(tmp_path), "--server-url", "https://hub.example.com/", "--search-fetch", "true"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 2,
        check=True,
    ).stdout
    doc = json.loads(out)
    validate(doc)
    assert doc["servers"] == [{"url": "https://hub.example.com"}]
    ops = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    assert {"fs__read_file", "search", "fetch"} <= ops


def test_browser_clients_on_an_allowed_origin_get_cors(hub: Hub) -> None:
    """Open WebUI calls a user's tool servers from the page: the facade answers the preflight
    and names an allowed origin, never a foreign one."""
    for path in ("/openapi.json", "/tools/fs__read_file"):
        conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=TIMEOUT)
        headers = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
        conn.request("OPTIONS", path, headers=headers)
        r = conn.getresponse()
        r.read()
        conn.close()
        assert r.status == 204 and r.getheader("access-control-allow-origin") == "http://localhost:3000", path
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=TIMEOUT)
    conn.request("OPTIONS", "/tools/fs__read_file", headers={"Origin": "https://evil.example"})
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 403 and r.getheader("access-control-allow-origin") is None
