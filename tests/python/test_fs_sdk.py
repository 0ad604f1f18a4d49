"""``bastion fs`` through the official MCP Python SDK over stdio: the one end-to-end check with an
independent client. The behaviour of every tool and the hostile-input tables are tested in Rust
(``crates/fs-server/tests/tools_*.rs`` and ``hostile_*.rs``) through the same binary.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fsclient import READ_TOOLS, WRITE_TOOLS, call, err, fs_session, list_all_tools, ok, roots_callback

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_sdk_session_lists_reads_and_reports_errors(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src" / "lib.rs").write_text("pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n")
    (root / ".env").write_text("TOKEN=sdk-smoke-secret\n")
    async with fs_session(root, write=True) as s:
        # initialize happened in fs_session; tools/list through the SDK's models.
        tools = await list_all_tools(s)
        assert sorted(t.name for t in tools) == sorted(READ_TOOLS + WRITE_TOOLS)
        for t in tools:
            assert t.annotations is not None and t.title and t.description, t.name
            assert t.input_schema.get("type") == "object"
        # A read call: structured content and a text block.
        r = await ok(s, "read_file", {"path": "src/lib.rs"})
        assert r["content"].startswith("pub fn add") and r["total_lines"] == 3
        # Tool errors: isError, the code in structured content and at the start of the text.
        await err(s, "read_file", {"path": "../outside"}, "path_outside_root")
        await err(s, "read_file", {"path": ".env"}, "denied_by_glob")
        is_error, structured, text = await call(s, "read_file", {"path": "nope.rs"})
        assert is_error and structured["code"] == "not_found" and text.startswith("not_found: ")


async def test_sdk_roots_callback_narrows_the_root(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.rs").write_text("fn main() {}\n")
    (root / "README.md").write_text("# proj\n")
    async with fs_session(root, list_roots_callback=roots_callback(root / "src")) as s:
        r = await ok(s, "list_roots", {})
        assert [x["path"] for x in r["roots"]] == [str((root / "src").resolve())]
        await err(s, "read_file", {"path": str(root / "README.md")}, "path_outside_root")
