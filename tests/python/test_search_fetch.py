"""The hub's ``search`` and ``fetch`` (ChatGPT deep research's names and shapes), driven by the
official MCP Python SDK over streamable HTTP on a small corpus: known files are found by name and
by content, ignored and denied files never appear, a long file comes back in parts that join to
the whole, and ids that were not handed out are refused as the path requests they are.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test_hub import Hub, call, http_session, names, running_hub

pytestmark = pytest.mark.anyio

TERM = "zebraquokka"


def forge(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("sf")
    root = base / "proj"
    (root / "src").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "src" / f"{TERM}_loader.rs").write_text("fn load() {}\n")
    (root / "docs" / "guide.md").write_text(f"The {TERM} guide explains the loader.\n")
    (root / "docs" / "other.md").write_text("nothing to see here\n")
    # Ignored, denied by the default globs (by name, and by extension), hidden.
    (root / ".gitignore").write_text("build/\n")
    (root / "build").mkdir()
    (root / "build" / "out.txt").write_text(f"{TERM} in a build product\n")
    (root / f"{TERM}_secret.txt").write_text(f"{TERM} private\n")
    (root / "server.key").write_text(f"{TERM} key material\n")
    (root / ".env").write_text(f"TOKEN={TERM}\n")
    # Long enough to need several parts.
    (root / "long.txt").write_text("".join(f"{TERM} line {i:05d} " + "x" * 60 + "\n" for i in range(4000)))
    (base / "outside.txt").write_text(f"{TERM} outside the root\n")
    with running_hub(base, "--search-fetch", "true", root=root) as h:
        yield h


async def search(hub: Hub, query: str, token: str | None = None) -> list[dict[str, Any]]:
    async with http_session(hub, token or hub.token) as s:
        error, structured, text = await call(s, "search", {"query": query})
    assert not error, text
    assert json.loads(text) == structured, "the text is the structured result as JSON"
    return structured["results"]


async def fetch(hub: Hub, id: str) -> tuple[bool, Any]:
    async with http_session(hub, hub.token) as s:
        error, structured, text = await call(s, "fetch", {"id": id})
    if not error:
        assert json.loads(text) == structured
    return error, structured


async def test_the_tools_are_named_exactly_and_read_only(hub: Hub) -> None:
    async with http_session(hub, hub.token) as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
    for name in ("search", "fetch"):
        t = tools[name]
        assert t.annotations and t.annotations.read_only_hint is True and t.annotations.destructive_hint is False
        assert t.output_schema is not None
    assert tools["search"].input_schema["required"] == ["query"]
    assert tools["fetch"].input_schema["required"] == ["id"]


async def test_known_files_are_found_by_name_and_content_and_ranked(hub: Hub) -> None:
    results = await search(hub, f"where is the {TERM} loader?")
    titles = [r["title"] for r in results]
    assert titles[0] == f"src/{TERM}_loader.rs", titles
    assert "docs/guide.md" in titles and "long.txt" in titles
    assert "docs/other.md" not in titles
    for r in results:
        assert set(r) == {"id", "title", "url"}
        assert r["url"] == (hub.root / r["title"]).resolve().as_uri()
    # Ids are stable.
    assert [r["id"] for r in await search(hub, f"where is the {TERM} loader?")] == [r["id"] for r in results]


async def test_ignored_hidden_and_denied_files_never_appear(hub: Hub) -> None:
    titles = [r["title"] for r in await search(hub, TERM)]
    for hidden in ("build/out.txt", f"{TERM}_secret.txt", "server.key", ".env"):
        assert hidden not in titles, titles
    assert not any("outside" in t for t in titles)


async def test_fetch_returns_the_document_and_continues_a_long_one(hub: Hub) -> None:
    [first] = [r for r in await search(hub, "guide") if r["title"] == "docs/guide.md"]
    error, doc = await fetch(hub, first["id"])
    assert not error, doc
    assert set(doc) == {"id", "title", "text", "url", "metadata"}
    assert (doc["id"], doc["title"], doc["url"]) == (first["id"], "docs/guide.md", first["url"])
    assert doc["text"] == (hub.root / "docs" / "guide.md").read_text()
    assert doc["metadata"]["truncated"] is False and "next_id" not in doc["metadata"]

    [long] = [r for r in await search(hub, TERM) if r["title"] == "long.txt"]
    parts, id = [], long["id"]
    while True:
        error, doc = await fetch(hub, id)
        assert not error, doc
        parts.append(doc["text"])
        if not doc["metadata"]["truncated"]:
            break
        id = doc["metadata"]["next_id"]
        assert len(parts) < 50
    assert len(parts) > 1, "the budget cuts a 300 KB file"
    assert "".join(parts) == (hub.root / "long.txt").read_text()


@pytest.mark.parametrize(
    ("forged", "code"),
    [
        (forge("proj\n1\n0\n../outside.txt"), "path_outside_root"),
        (forge(f"proj\n1\n0\n{TERM}_secret.txt"), "denied_by_glob"),
        (forge("proj\n1\n0\n.env"), "denied_by_glob"),
        (forge("proj\n1\n0\n/etc/passwd"), "path_outside_root"),
        (forge("elsewhere\n1\n0\nlong.txt"), "invalid_argument"),
        ("not-an-id", "invalid_argument"),
    ],
)
async def test_a_forged_id_is_a_path_request_refused_like_any_other(hub: Hub, forged: str, code: str) -> None:
    error, result = await fetch(hub, forged)
    assert error, result
    assert result["code"] == code, result


async def test_scoped_and_journaled_under_their_names(hub: Hub) -> None:
    git_only = hub.create_token("git-only", "git:read")
    async with http_session(hub, git_only) as s:
        listed = await names(s)
    assert "search" not in listed and "fetch" not in listed
    status, headers, _ = hub.raw(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search", "arguments": {"query": "x"}}},
        token=git_only,
    )
    assert status == 403 and 'scope="fs:read"' in headers["www-authenticate"]
    fs_read = hub.create_token("reader", "fs:read")
    assert await search(hub, "guide", token=fs_read)
    lines = [json.loads(l) for l in (hub.state / "audit.jsonl").read_text().splitlines()]
    calls = [(l["tool"], l["principal"], l["outcome"]) for l in lines if l.get("tool") in ("search", "fetch")]
    assert ("search", "reader", "ok") in calls
    assert ("search", "git-only", "insufficient_scope") in calls
    assert ("fetch", "owner", "ok") in calls
