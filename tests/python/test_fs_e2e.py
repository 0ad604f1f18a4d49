"""End-to-end tests of ``bastion-fs`` through the official MCP Python SDK.

Every test builds its own realistic project tree under ``tmp_path``, spawns the real binary over
stdio and talks to it only through MCP. See ``fsclient.py`` for the helpers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import struct
import zlib
from pathlib import Path

import mcp.types as types
import pytest

from fsclient import (
    DESTRUCTIVE_TOOLS,
    READ_TOOLS,
    WRITE_TOOLS,
    call,
    call_raw,
    err,
    fs_session,
    list_all_tools,
    ok,
    roots_callback,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

ENV_SECRET = "ENVVALUE-s3cr3t-7f3a9c"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --------------------------------------------------------------------------------------------
# The project tree
# --------------------------------------------------------------------------------------------


def tiny_png() -> bytes:
    """A valid 1x1 RGBA PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    idat = zlib.compress(b"\x00\xff\x00\x00\xff")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


MAIN_RS = """\
use proj::util::strings::shout;

fn main() {
    let greeting = shout("hello");
    println!("{greeting}");
}
"""

LIB_RS = """\
pub mod util;

/// Adds two numbers.
pub fn add(a: i32, b: i32) -> i32 {
    a + b
}

pub fn compute(a: i32, b: i32) -> i32 {
    let total = add(a, b);
    total * 2
}
"""

STRINGS_RS = """\
pub fn shout(s: &str) -> String {
    s.to_uppercase()
}
"""

README = """\
# Proj

A small example project.

Hello world.
HELLO again.
hello there.
"""


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_bytes(data.encode("utf-8"))
    return path


def make_project(base: Path, name: str = "proj") -> Path:
    """A small but realistic project: sources, docs, ignored build output, a secret, assets."""
    root = base / name
    root.mkdir(parents=True)
    write(root / "README.md", README)
    write(root / "Cargo.toml", '[package]\nname = "proj"\nversion = "0.1.0"\nedition = "2021"\n')
    write(root / ".gitignore", "target/\n*.log\n")
    write(root / ".env", f"API_KEY={ENV_SECRET}\nDATABASE_URL=postgres://u:{ENV_SECRET}@db/x\n")
    write(root / ".hidden" / "config.rs", "// hidden config\nfn hidden() {}\n")
    write(root / "app.log", "log line hello\n")
    write(root / "src" / "main.rs", MAIN_RS)
    write(root / "src" / "lib.rs", LIB_RS)
    write(root / "src" / "util" / "mod.rs", "pub mod strings;\n")
    write(root / "src" / "util" / "strings.rs", STRINGS_RS)
    write(root / "docs" / "guide.md", "# Guide\n\nCall `add(a, b)` to add.\nfn is not code here.\n")
    write(root / "target" / "debug" / "build.rs", "fn generated() {}\n")
    write(root / "assets" / "logo.png", tiny_png())
    write(root / "assets" / "blob.bin", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    write(root / "data" / "latin1.txt", b"caf\xe9 cr\xe8me br\xfbl\xe9e\n")
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# tools/list
# --------------------------------------------------------------------------------------------

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({}, READ_TOOLS),
        ({"write": True}, READ_TOOLS + WRITE_TOOLS),
        ({"destructive": True}, READ_TOOLS + WRITE_TOOLS + DESTRUCTIVE_TOOLS),
        ({"write": True, "destructive": True}, READ_TOOLS + WRITE_TOOLS + DESTRUCTIVE_TOOLS),
    ],
    ids=["read-only", "allow-write", "allow-destructive", "both"],
)
async def test_tools_list_per_tier(project: Path, flags: dict, expected: list[str]) -> None:
    async with fs_session(project, **flags) as s:
        tools = await list_all_tools(s)
    names = [t.name for t in tools]
    assert len(names) == len(set(names)), names
    assert sorted(names) == sorted(expected)
    for t in tools:
        assert NAME_RE.match(t.name), t.name
        assert t.title, f"{t.name} has no title"
        assert t.description, f"{t.name} has no description"
        a = t.annotations
        assert a is not None, f"{t.name} has no annotations"
        for hint in ("read_only_hint", "destructive_hint", "idempotent_hint", "open_world_hint"):
            assert isinstance(getattr(a, hint), bool), f"{t.name}: {hint} missing"
        assert t.input_schema.get("type") == "object"
        if t.name in READ_TOOLS:
            assert a.read_only_hint is True and a.destructive_hint is False, t.name
        else:
            assert a.read_only_hint is False, t.name
        if t.name in DESTRUCTIVE_TOOLS:
            assert a.destructive_hint is True
        assert a.open_world_hint is False, t.name


async def test_tool_above_cap_is_refused(project: Path) -> None:
    async with fs_session(project) as s:
        for tool, args in [
            ("write_file", {"path": "x.txt", "content": "x"}),
            ("edit_file", {"path": "README.md", "old_text": "Proj", "new_text": "P"}),
            ("apply_patch", {"patch": "--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1 @@\n+n\n"}),
            ("create_directory", {"path": "newdir"}),
            ("move_path", {"source": "README.md", "destination": "R.md"}),
            ("delete_path", {"path": "README.md"}),
        ]:
            await err(s, tool, args, "tier_not_allowed")
    assert not (project / "x.txt").exists() and not (project / "newdir").exists()
    assert not (project / "n.txt").exists() and (project / "README.md").read_text() == README
    async with fs_session(project, write=True) as s:
        await err(s, "delete_path", {"path": "README.md"}, "tier_not_allowed")
    assert (project / "README.md").exists()


# --------------------------------------------------------------------------------------------
# read_file
# --------------------------------------------------------------------------------------------


async def test_read_file_whole(project: Path) -> None:
    async with fs_session(project) as s:
        r = await ok(s, "read_file", {"path": "src/lib.rs"})
        assert r["content"] == LIB_RS
        assert r["encoding"] == "utf-8"
        assert r["start_line"] == 1 and r["end_line"] == LIB_RS.count("\n") == r["total_lines"]
        assert r["size"] == len(LIB_RS.encode())
        assert r["sha256"] == sha256(LIB_RS.encode())
        assert r["truncated"] is False and "next_offset" not in r
        # Absolute paths inside the root work too.
        r2 = await ok(s, "read_file", {"path": str(project / "src" / "lib.rs")})
        assert r2["content"] == LIB_RS
        await err(s, "read_file", {"path": "src/nope.rs"}, "not_found")
        await err(s, "read_file", {"path": "src"}, "not_a_regular_file")


async def test_read_file_window_and_tail(project: Path) -> None:
    lines = [f"line {i}\n" for i in range(1, 101)]
    write(project / "hundred.txt", "".join(lines))
    async with fs_session(project) as s:
        r = await ok(s, "read_file", {"path": "hundred.txt", "offset": 10, "limit": 5})
        assert r["content"] == "".join(lines[9:14])
        assert (r["start_line"], r["end_line"], r["total_lines"]) == (10, 14, 100)
        assert r["next_offset"] == 15
        r = await ok(s, "read_file", {"path": "hundred.txt", "offset": -3})
        assert r["content"] == "".join(lines[-3:])
        assert (r["start_line"], r["end_line"]) == (98, 100)
        assert "next_offset" not in r
        r = await ok(s, "read_file", {"path": "hundred.txt", "offset": -5, "limit": 2})
        assert r["content"] == "".join(lines[95:97])
        assert r["next_offset"] == 98
        # A window past the end is empty, not an error.
        r = await ok(s, "read_file", {"path": "hundred.txt", "offset": 500})
        assert r["content"] == "" and r["total_lines"] == 100


async def test_read_file_budget_continuation_reassembles_exactly(project: Path) -> None:
    # Lines of varying length, some multi-byte, one longer than the page.
    parts = []
    for i in range(400):
        width = (i * 37) % 120
        parts.append(f"{i:04d} " + ("é" if i % 3 == 0 else "x") * width + "\n")
    parts.insert(200, "L" * 2500 + "\n")
    text = "".join(parts) + "no trailing newline"
    write(project / "big.txt", text)
    async with fs_session(project) as s:
        got = ""
        offset: int | None = None
        char_offset: int | None = None
        pages = 0
        while True:
            args: dict = {"path": "big.txt", "max_chars": 1000}
            if offset is not None:
                args["offset"] = offset
            if char_offset is not None:
                args["char_offset"] = char_offset
            r = await ok(s, "read_file", args)
            pages += 1
            assert len(r["content"]) <= 1000
            got += r["content"]
            if "next_offset" not in r:
                assert r["truncated"] is False
                break
            assert r["truncated"] is True
            offset, char_offset = r["next_offset"], r.get("next_char_offset")
            assert pages < 1000, "no progress"
        assert got == text
        assert pages > 10


async def test_read_file_very_long_single_line(project: Path) -> None:
    line = "".join(("αβγ" if i % 7 == 0 else "abc") + str(i) for i in range(30_000))  # > 100k chars
    assert len(line) > 100_000
    write(project / "minified.js", line)
    async with fs_session(project) as s:
        # Default budget: the line is cut and continued with char_offset.
        r = await ok(s, "read_file", {"path": "minified.js"})
        assert r["truncated"] is True
        assert r["next_offset"] == 1 and r["next_char_offset"] == len(r["content"])
        got = r["content"]
        while "next_offset" in r:
            r = await ok(s, "read_file", {"path": "minified.js", "offset": r["next_offset"], "char_offset": r["next_char_offset"]})
            got += r["content"]
        assert got == line
        # A small explicit budget.
        r = await ok(s, "read_file", {"path": "minified.js", "max_chars": 500})
        assert r["content"] == line[:500] and r["next_char_offset"] == 500
        r = await ok(s, "read_file", {"path": "minified.js", "offset": 1, "char_offset": 500, "max_chars": 500})
        assert r["content"] == line[500:1000] and r["next_char_offset"] == 1000


async def test_read_file_latin1_binary_and_image(project: Path) -> None:
    async with fs_session(project) as s:
        r = await ok(s, "read_file", {"path": "data/latin1.txt"})
        assert r["encoding"] == "latin-1"
        assert r["content"] == "café crème brûlée\n"
        assert r["size"] == len(b"caf\xe9 cr\xe8me br\xfbl\xe9e\n")

        msg = await err(s, "read_file", {"path": "assets/blob.bin"}, "binary_file")
        assert "blob.bin" in msg

        result = await call_raw(s, "read_file", {"path": "assets/logo.png"})
        assert not result.is_error
        images = [c for c in result.content if isinstance(c, types.ImageContent)]
        assert len(images) == 1
        assert images[0].mime_type == "image/png"
        assert base64.b64decode(images[0].data) == (project / "assets" / "logo.png").read_bytes()
        assert any(isinstance(c, types.TextContent) for c in result.content)
        assert result.structured_content is not None
        assert result.structured_content["mime_type"] == "image/png"
        assert result.structured_content["sha256"] == sha256(tiny_png())


# --------------------------------------------------------------------------------------------
# read_many_files
# --------------------------------------------------------------------------------------------


async def test_read_many_files_with_one_missing(project: Path) -> None:
    async with fs_session(project) as s:
        r = await ok(s, "read_many_files", {"paths": ["src/main.rs", "src/missing.rs", "src/lib.rs", ".env"]})
    files = r["files"]
    assert [f["path"] for f in files] == ["src/main.rs", "src/missing.rs", "src/lib.rs", ".env"]
    assert files[0]["content"] == MAIN_RS and "error_code" not in files[0]
    assert files[0]["total_lines"] == MAIN_RS.count("\n")
    assert files[1]["error_code"] == "not_found" and "content" not in files[1] and files[1]["error"]
    assert files[2]["content"] == LIB_RS and "error_code" not in files[2]
    assert files[3]["error_code"] == "denied_by_glob"
    assert ENV_SECRET not in json.dumps(r)
    assert r["truncated"] is False


# --------------------------------------------------------------------------------------------
# list_directory
# --------------------------------------------------------------------------------------------


async def test_list_directory_order_depth_hidden_denied(project: Path) -> None:
    async with fs_session(project) as s:
        r = await ok(s, "list_directory", {})
        paths = [e["path"] for e in r["entries"]]
        assert paths == [
            ".hidden", "assets", "data", "docs", "src", "target",  # directories first, by name
            ".gitignore", "Cargo.toml", "README.md", "app.log",
        ]
        assert ".env" not in paths and r["hidden_denied"] == 1
        kinds = {e["path"]: e["type"] for e in r["entries"]}
        assert kinds["src"] == "directory" and kinds["README.md"] == "file"
        sizes = {e["path"]: e.get("size") for e in r["entries"]}
        assert sizes["README.md"] == len(README) and sizes["src"] is None
        assert all(e["depth"] == 1 for e in r["entries"])
        assert r["truncated"] is False and "next_cursor" not in r

        r = await ok(s, "list_directory", {"include_hidden": False})
        assert [e["path"] for e in r["entries"]] == ["assets", "data", "docs", "src", "target", "Cargo.toml", "README.md", "app.log"]

        r = await ok(s, "list_directory", {"path": "src", "depth": 2})
        assert [(e["path"], e["depth"]) for e in r["entries"]] == [
            ("src/util", 1), ("src/util/mod.rs", 2), ("src/util/strings.rs", 2), ("src/lib.rs", 1), ("src/main.rs", 1),
        ]
        r = await ok(s, "list_directory", {"depth": 3})
        paths = [e["path"] for e in r["entries"]]
        assert "target/debug/build.rs" in paths and "src/util/strings.rs" in paths
        assert paths.index("src") < paths.index("src/util") < paths.index("src/util/mod.rs") < paths.index("src/lib.rs")
        assert ".env" not in paths
        await err(s, "list_directory", {"path": "README.md"}, "not_a_directory")
        await err(s, "list_directory", {"path": "nope"}, "not_found")


async def test_list_directory_pages_3000_files(project: Path) -> None:
    big = project / "big"
    big.mkdir()
    names = {f"big/file_{i:04d}.txt" for i in range(3000)}
    for n in names:
        (project / n).write_bytes(b"x")
    async with fs_session(project) as s:
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            args: dict = {"path": "big"}
            if cursor:
                args["cursor"] = cursor
            r = await ok(s, "list_directory", args)
            pages += 1
            seen += [e["path"] for e in r["entries"]]
            cursor = r.get("next_cursor")
            assert r["truncated"] is bool(cursor)
            if not cursor:
                break
            assert pages < 100
    assert pages >= 2, "3000 entries should not fit one page"
    assert len(seen) == len(set(seen)) == 3000
    assert set(seen) == names
    assert seen == sorted(seen)


# --------------------------------------------------------------------------------------------
# file_info
# --------------------------------------------------------------------------------------------


async def test_file_info(project: Path) -> None:
    os.chmod(project / "src" / "main.rs", 0o640)
    os.symlink("src/lib.rs", project / "lib_link.rs")
    async with fs_session(project) as s:
        r = await ok(s, "file_info", {"path": "src/main.rs"})
        assert r["type"] == "file" and r["is_symlink"] is False
        assert r["size"] == len(MAIN_RS.encode())
        assert r["mode"] == "0640" and r["permissions"] == "rw-r-----"
        assert r["line_count"] == MAIN_RS.count("\n")
        assert r["content_type"] == "text" and r["links"] == 1
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", r["modified"]), r["modified"]

        r = await ok(s, "file_info", {"path": "src"})
        assert r["type"] == "directory" and "line_count" not in r

        r = await ok(s, "file_info", {"path": "lib_link.rs"})
        assert r["is_symlink"] is True and r["type"] == "file"
        assert r["real_path"] == "src/lib.rs"
        assert r["line_count"] == LIB_RS.count("\n")

        r = await ok(s, "file_info", {"path": "assets/logo.png"})
        assert r["content_type"] == "image/png"
        r = await ok(s, "file_info", {"path": "assets/blob.bin"})
        assert r["content_type"] == "binary"
        await err(s, "file_info", {"path": ".env"}, "denied_by_glob")
        await err(s, "file_info", {"path": "missing"}, "not_found")


# --------------------------------------------------------------------------------------------
# list_roots
# --------------------------------------------------------------------------------------------


async def test_list_roots_two_roots(tmp_path: Path) -> None:
    first = make_project(tmp_path, "alpha")
    second = tmp_path / "beta"
    write(second / "notes.txt", "second root notes\n")
    write(first / "notes.txt", "first root notes\n")
    async with fs_session([first, second], write=True) as s:
        r = await ok(s, "list_roots", {})
        assert [x["name"] for x in r["roots"]] == ["alpha", "beta"]
        assert [x["path"] for x in r["roots"]] == [str(first.resolve()), str(second.resolve())]
        assert r["max_tier"] == "write"
        assert ".env" in r["deny_read"] and ".git/**" in r["deny_write"]
        assert r["output_chars"] > 0

        r = await ok(s, "read_file", {"path": "notes.txt"})
        assert r["content"] == "first root notes\n"
        r = await ok(s, "read_file", {"path": "notes.txt", "root": "beta"})
        assert r["content"] == "second root notes\n"
        assert r["path"] == "beta:notes.txt"
        r = await ok(s, "read_file", {"path": str(second / "notes.txt")})
        assert r["content"] == "second root notes\n"
        await err(s, "read_file", {"path": "notes.txt", "root": "gamma"}, "invalid_argument")

        await ok(s, "write_file", {"path": "new.txt", "content": "in beta\n", "root": "beta"})
        assert (second / "new.txt").read_text() == "in beta\n"
        assert not (first / "new.txt").exists()
        r = await ok(s, "list_directory", {"root": "beta"})
        assert [e["path"].rsplit(":", 1)[-1] for e in r["entries"]] == ["new.txt", "notes.txt"]
        r = await ok(s, "find_files", {"pattern": "*.txt", "root": "beta"})
        assert r["matches"] == ["beta:new.txt", "beta:notes.txt"]
        # Moving across roots is refused.
        await err(s, "move_path", {"source": str(first / "notes.txt"), "destination": str(second / "x.txt")}, "invalid_argument")


async def test_paths_reported_with_several_roots_can_be_passed_back(tmp_path: Path) -> None:
    first = make_project(tmp_path, "alpha")
    second = tmp_path / "beta"
    write(first / "notes.txt", "first root notes\n")
    write(second / "notes.txt", "second root notes\n")
    async with fs_session([first, second]) as s:
        reported = {
            "find_files": (await ok(s, "find_files", {"pattern": "notes.txt", "root": "beta"}))["matches"][0],
            "search_text": (await ok(s, "search_text", {"pattern": "second root", "root": "beta"}))["matches"][0]["path"],
            "list_directory": (await ok(s, "list_directory", {"root": "beta"}))["entries"][0]["path"],
            "read_file": (await ok(s, "read_file", {"path": "notes.txt", "root": "beta"}))["path"],
        }
        for tool, path in reported.items():
            is_error, structured, text = await call(s, "read_file", {"path": path})
            assert not is_error and structured["content"] == "second root notes\n", (
                f"{tool} reported {path!r}; read_file({path!r}) -> {text[:200]}"
            )


# --------------------------------------------------------------------------------------------
# find_files
# --------------------------------------------------------------------------------------------


async def test_find_files(project: Path) -> None:
    async with fs_session(project) as s:
        r = await ok(s, "find_files", {"pattern": "*.rs"})
        assert r["matches"] == ["src/lib.rs", "src/main.rs", "src/util/mod.rs", "src/util/strings.rs"]
        assert r["total"] == 4 and r["truncated"] is False and r["complete"] is True

        r = await ok(s, "find_files", {"pattern": "util/*.rs", "path": "src"})
        assert r["matches"] == ["src/util/mod.rs", "src/util/strings.rs"]
        r = await ok(s, "find_files", {"pattern": "src/**/*.rs"})
        assert r["matches"] == ["src/lib.rs", "src/main.rs", "src/util/mod.rs", "src/util/strings.rs"]

        # .gitignore respected by default, not with respect_gitignore=false.
        r = await ok(s, "find_files", {"pattern": "*.log"})
        assert r["matches"] == []
        r = await ok(s, "find_files", {"pattern": "*.log", "respect_gitignore": False})
        assert r["matches"] == ["app.log"]
        r = await ok(s, "find_files", {"pattern": "*.rs", "respect_gitignore": False})
        assert "target/debug/build.rs" in r["matches"]

        # Hidden excluded by default.
        r = await ok(s, "find_files", {"pattern": "*.rs", "include_hidden": True})
        assert ".hidden/config.rs" in r["matches"]
        r = await ok(s, "find_files", {"pattern": "*", "include_hidden": True, "respect_gitignore": False})
        assert ".gitignore" in r["matches"] and ".env" not in r["matches"]

        r = await ok(s, "find_files", {"pattern": "util", "kind": "directory"})
        assert r["matches"] == ["src/util"]
        await err(s, "find_files", {"pattern": "a[", "path": "src"}, "invalid_argument")
        await err(s, "find_files", {"pattern": "*", "kind": "socket"}, "invalid_argument")


async def test_find_files_paging_1200(project: Path) -> None:
    expected = []
    for d in range(6):
        for i in range(200):
            rel = f"gen/d{d}/m{i:03d}.dat"
            write(project / rel, "x")
            expected.append(rel)
    expected.sort()
    async with fs_session(project) as s:
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            args: dict = {"pattern": "*.dat", "max_results": 250}
            if cursor:
                args["cursor"] = cursor
            r = await ok(s, "find_files", args)
            pages += 1
            assert len(r["matches"]) <= 250
            assert r["total"] == 1200
            seen += r["matches"]
            cursor = r.get("next_cursor")
            assert r["truncated"] is bool(cursor)
            if not cursor:
                break
            assert pages < 50
    assert pages == 5
    assert seen == expected


# The walk sorts by path components ("a" < "a-b"), the cursor compares whole strings
# ("a-b/..." < "a/..." since '-' < '/'), so a page boundary inside "a/" restarts the listing.
async def test_find_files_paging_names_sorting_differently_as_strings(project: Path) -> None:
    expected = []
    for d in ("a", "a-b", "a.b", "a0"):
        for i in range(3):
            rel = f"mix/{d}/f{i}.dat"
            write(project / rel, "x")
            expected.append(rel)
    async with fs_session(project) as s:
        full = (await ok(s, "find_files", {"pattern": "*.dat"}))["matches"]
        assert sorted(full) == sorted(expected)
        seen: list[str] = []
        cursor = None
        for _ in range(20):
            args: dict = {"pattern": "*.dat", "max_results": 2}
            if cursor:
                args["cursor"] = cursor
            r = await ok(s, "find_files", args)
            seen += r["matches"]
            cursor = r.get("next_cursor")
            if not cursor:
                break
        assert seen == full, f"paged {seen} != one page {full}"


# --------------------------------------------------------------------------------------------
# search_text
# --------------------------------------------------------------------------------------------


def hits(r: dict) -> list[tuple[str, int]]:
    return [(m["path"], m["line"]) for m in r["matches"]]


async def test_search_text(project: Path) -> None:
    write(project / "src" / "regex.rs", "let re = \"a.b*c(\";\nlet other = \"axbbc(\";\n")
    async with fs_session(project) as s:
        r = await ok(s, "search_text", {"pattern": r"fn \w+\("})
        assert hits(r) == [
            ("src/lib.rs", 4),
            ("src/lib.rs", 8),
            ("src/main.rs", 3),
            ("src/util/strings.rs", 1),
        ]
        assert r["matches"][0]["text"] == "pub fn add(a: i32, b: i32) -> i32 {"
        assert r["truncated"] is False and r["complete"] is True

        # Literal with regex metacharacters.
        r = await ok(s, "search_text", {"pattern": "a.b*c(", "literal": True})
        assert hits(r) == [("src/regex.rs", 1)]
        await err(s, "search_text", {"pattern": "a.b*c("}, "invalid_argument")

        # Case: smart (default) is insensitive for lowercase patterns, sensitive with uppercase.
        r = await ok(s, "search_text", {"pattern": "hello", "globs": ["*.md"]})
        assert hits(r) == [("README.md", 5), ("README.md", 6), ("README.md", 7)]
        r = await ok(s, "search_text", {"pattern": "Hello", "globs": ["*.md"]})
        assert hits(r) == [("README.md", 5)]
        r = await ok(s, "search_text", {"pattern": "HELLO", "case": "insensitive", "globs": ["*.md"]})
        assert len(r["matches"]) == 3
        r = await ok(s, "search_text", {"pattern": "hello", "case": "sensitive", "globs": ["*.md"]})
        assert hits(r) == [("README.md", 7)]

        # Globs include / exclude.
        r = await ok(s, "search_text", {"pattern": "add"})
        assert {p for p, _ in hits(r)} == {"src/lib.rs", "docs/guide.md"}
        r = await ok(s, "search_text", {"pattern": "add", "globs": ["*.rs"]})
        assert {p for p, _ in hits(r)} == {"src/lib.rs"}
        r = await ok(s, "search_text", {"pattern": "add", "globs": ["!*.rs"]})
        assert {p for p, _ in hits(r)} == {"docs/guide.md"}

        # Gitignored and hidden files.
        r = await ok(s, "search_text", {"pattern": "generated"})
        assert r["matches"] == []
        r = await ok(s, "search_text", {"pattern": "generated", "respect_gitignore": False})
        assert hits(r) == [("target/debug/build.rs", 1)]
        r = await ok(s, "search_text", {"pattern": "hidden config"})
        assert r["matches"] == []
        r = await ok(s, "search_text", {"pattern": "hidden config", "include_hidden": True})
        assert hits(r) == [(".hidden/config.rs", 1)]

        # Context lines.
        r = await ok(s, "search_text", {"pattern": "let total", "context_lines": 1})
        (m,) = r["matches"]
        assert (m["path"], m["line"]) == ("src/lib.rs", 9)
        assert m["before"] == ["pub fn compute(a: i32, b: i32) -> i32 {"]
        assert m["after"] == ["    total * 2"]

        # A search rooted at one file.
        r = await ok(s, "search_text", {"pattern": "shout", "path": "src/main.rs"})
        assert hits(r) == [("src/main.rs", 1), ("src/main.rs", 4)]

        # Invalid regex.
        msg = await err(s, "search_text", {"pattern": "(unclosed"}, "invalid_argument")
        assert "literal" in msg
        await err(s, "search_text", {"pattern": "x", "case": "shouting"}, "invalid_argument")


async def test_search_text_never_shows_env(project: Path) -> None:
    write(project / "sub" / ".env", f"TOKEN={ENV_SECRET}\n")
    write(project / "sub" / ".env.local", f"TOKEN={ENV_SECRET}\n")
    async with fs_session(project) as s:
        for args in [
            {"pattern": ENV_SECRET},
            {"pattern": ENV_SECRET, "include_hidden": True, "respect_gitignore": False},
            {"pattern": "API_KEY", "include_hidden": True, "respect_gitignore": False, "literal": True},
            {"pattern": ".", "include_hidden": True, "respect_gitignore": False, "max_results": 10_000},
            {"pattern": ENV_SECRET, "path": "sub", "include_hidden": True},
            {"pattern": ENV_SECRET, "include_hidden": True, "globs": [".env", "**/.env*"]},
        ]:
            is_error, structured, text = await call(s, "search_text", args)
            assert ENV_SECRET not in text and ENV_SECRET not in json.dumps(structured)
            if not is_error:
                assert not any(".env" in p for p, _ in hits(structured)), args
        await err(s, "search_text", {"pattern": "API", "path": ".env"}, "denied_by_glob")


async def test_search_text_paging(project: Path) -> None:
    expected = []
    for f in ("p/a.txt", "p/b.txt", "p/c/d.txt"):
        lines = []
        for i in range(1, 151):
            if i % 2:
                lines.append(f"needle {f} {i}\n")
                expected.append((f, i))
            else:
                lines.append("hay\n")
        write(project / f, "".join(lines))
    expected.sort()
    async with fs_session(project) as s:
        seen: list[tuple[str, int]] = []
        cursor = None
        pages = 0
        while True:
            args: dict = {"pattern": "needle", "max_results": 40}
            if cursor:
                args["cursor"] = cursor
            r = await ok(s, "search_text", args)
            pages += 1
            assert len(r["matches"]) <= 40
            seen += hits(r)
            for m in r["matches"]:
                assert m["text"] == f"needle {m['path']} {m['line']}"
            cursor = r.get("next_cursor")
            assert r["truncated"] is bool(cursor)
            if not cursor:
                break
            assert pages < 100
    assert len(seen) == len(set(seen)) == 225
    assert seen == expected
    assert pages == 6


async def test_search_text_paging_names_sorting_differently_as_strings(project: Path) -> None:
    for d in ("a", "a-b", "a.b", "a0"):
        write(project / "mix" / d / "f.txt", "needle 1\nneedle 2\nneedle 3\n")
    async with fs_session(project) as s:
        full = hits(await ok(s, "search_text", {"pattern": "needle", "path": "mix"}))
        assert len(full) == 12
        seen: list[tuple[str, int]] = []
        cursor = None
        for _ in range(20):
            args: dict = {"pattern": "needle", "path": "mix", "max_results": 2}
            if cursor:
                args["cursor"] = cursor
            r = await ok(s, "search_text", args)
            seen += hits(r)
            cursor = r.get("next_cursor")
            if not cursor:
                break
        assert seen == full, f"paged {seen} != one page {full}"


# --------------------------------------------------------------------------------------------
# write_file
# --------------------------------------------------------------------------------------------


async def test_write_file(project: Path) -> None:
    crlf = project / "win.txt"
    crlf.write_bytes(b"one\r\ntwo\r\n")
    os.chmod(crlf, 0o600)
    async with fs_session(project, write=True) as s:
        r = await ok(s, "write_file", {"path": "notes/new.txt", "content": "fresh\n"})
        assert r["created"] is True and r["bytes"] == 6 and r["line_endings"] == "lf"
        assert r["sha256"] == sha256(b"fresh\n") and r["mode"] == "0644"
        assert (project / "notes" / "new.txt").read_bytes() == b"fresh\n"

        r = await ok(s, "write_file", {"path": "win.txt", "content": "uno\ndos\ntres\n"})
        assert r["created"] is False and r["line_endings"] == "crlf" and r["mode"] == "0600"
        assert crlf.read_bytes() == b"uno\r\ndos\r\ntres\r\n"
        assert stat.S_IMODE(crlf.stat().st_mode) == 0o600

        before = (project / "README.md").read_bytes()
        await err(s, "write_file", {"path": "README.md", "content": "x", "overwrite": False}, "already_exists")
        assert (project / "README.md").read_bytes() == before

        await err(s, "write_file", {"path": "README.md", "content": "x", "expected_sha256": "0" * 64}, "precondition_failed")
        assert (project / "README.md").read_bytes() == before
        r = await ok(s, "write_file", {"path": "README.md", "content": "replaced\n", "expected_sha256": sha256(before)})
        assert (project / "README.md").read_bytes() == b"replaced\n"

        await err(s, "write_file", {"path": "x/y/z.txt", "content": "z", "create_parents": False}, "not_found")
        assert not (project / "x").exists()
        r = await ok(s, "write_file", {"path": "x/y/z.txt", "content": "z"})
        assert (project / "x" / "y" / "z.txt").read_text() == "z"

        await err(s, "write_file", {"path": "src", "content": "x"}, "not_a_regular_file")
        await err(s, "write_file", {"path": ".env", "content": "x"}, "denied_by_glob")
    # No temporary files left behind.
    assert not [p for p in project.rglob(".bastion-tmp-*")]


# --------------------------------------------------------------------------------------------
# edit_file
# --------------------------------------------------------------------------------------------


async def test_edit_file(project: Path) -> None:
    lib = project / "src" / "lib.rs"
    async with fs_session(project, write=True) as s:
        r = await ok(s, "edit_file", {"path": "src/lib.rs", "old_text": "total * 2", "new_text": "total * 3"})
        assert r["replacements"] == 1 and r["dry_run"] is False
        assert lib.read_text() == LIB_RS.replace("total * 2", "total * 3")
        assert r["sha256"] == sha256(lib.read_bytes())

        before = lib.read_bytes()
        r = await ok(s, "edit_file", {"path": "src/lib.rs", "old_text": "a + b", "new_text": "b + a", "dry_run": True})
        assert r["dry_run"] is True
        diff = r["diff"]
        assert "--- a/src/lib.rs" in diff and "+++ b/src/lib.rs" in diff
        assert "@@" in diff and "-    a + b\n" in diff and "+    b + a\n" in diff
        assert lib.read_bytes() == before

        write(project / "dup.txt", "x = 1\nx = 1\nx = 1\n")
        msg = await err(s, "edit_file", {"path": "dup.txt", "old_text": "x = 1", "new_text": "x = 2"}, "edit_mismatch")
        assert "3 times" in msg
        r = await ok(s, "edit_file", {"path": "dup.txt", "old_text": "x = 1", "new_text": "x = 2", "expected_replacements": 3})
        assert (project / "dup.txt").read_text() == "x = 2\nx = 2\nx = 2\n"

        msg = await err(s, "edit_file", {"path": "src/lib.rs", "old_text": "let totl = add(a, b);", "new_text": "y"}, "edit_mismatch")
        assert "let total = add(a, b);" in msg, msg
        assert lib.read_bytes() == before

        # Whitespace-only difference: the message quotes the exact text.
        msg = await err(s, "edit_file", {"path": "src/lib.rs", "old_text": "let   total = add(a, b);", "new_text": "y"}, "edit_mismatch")
        assert "    let total = add(a, b);" in msg

        await err(s, "edit_file", {"path": "nope.rs", "old_text": "a", "new_text": "b"}, "not_found")
        await err(s, "edit_file", {"path": "src/lib.rs", "old_text": "", "new_text": "b"}, "invalid_argument")
        await err(s, "edit_file", {"path": "src/lib.rs"}, "invalid_argument")
        await err(s, "edit_file", {"path": "assets/blob.bin", "old_text": "ELF", "new_text": "ELV"}, "binary_file")


async def test_edit_file_crlf_and_latin1(project: Path) -> None:
    win = project / "win.cfg"
    win.write_bytes(b"[a]\r\nkey = 1\r\nother = 2\r\n")
    async with fs_session(project, write=True) as s:
        r = await ok(s, "edit_file", {"path": "win.cfg", "old_text": "key = 1\nother = 2\n", "new_text": "key = 10\nother = 20\nnew = 3\n"})
        assert r["replacements"] == 1
        assert win.read_bytes() == b"[a]\r\nkey = 10\r\nother = 20\r\nnew = 3\r\n"

        r = await ok(s, "edit_file", {"path": "data/latin1.txt", "old_text": "crème", "new_text": "crème fraîche"})
        assert (project / "data" / "latin1.txt").read_bytes() == b"caf\xe9 cr\xe8me fra\xeeche br\xfbl\xe9e\n"
        before = (project / "data" / "latin1.txt").read_bytes()
        await err(s, "edit_file", {"path": "data/latin1.txt", "old_text": "café", "new_text": "€uro"}, "invalid_argument")
        assert (project / "data" / "latin1.txt").read_bytes() == before


async def test_edit_file_multi_edit_all_or_nothing(project: Path) -> None:
    lib = project / "src" / "lib.rs"
    async with fs_session(project, write=True) as s:
        msg = await err(
            s,
            "edit_file",
            {"path": "src/lib.rs", "edits": [
                {"old_text": "pub fn add", "new_text": "pub fn plus"},
                {"old_text": "this text is not in the file at all", "new_text": "x"},
            ]},
            "edit_mismatch",
        )
        assert "edit 2" in msg
        assert lib.read_text() == LIB_RS
        r = await ok(
            s,
            "edit_file",
            {"path": "src/lib.rs", "edits": [
                {"old_text": "pub fn add", "new_text": "pub fn plus"},
                {"old_text": "let total = add(a, b);", "new_text": "let total = plus(a, b);"},
            ]},
        )
        assert r["replacements"] == 2
        assert lib.read_text() == LIB_RS.replace("pub fn add", "pub fn plus").replace("= add(", "= plus(")


# --------------------------------------------------------------------------------------------
# apply_patch
# --------------------------------------------------------------------------------------------

PATCH_TWO_FILES = """\
--- a/src/main.rs
+++ b/src/main.rs
@@ -3,4 +3,4 @@
 fn main() {
-    let greeting = shout("hello");
+    let greeting = shout("goodbye");
     println!("{greeting}");
 }
--- a/src/util/strings.rs
+++ b/src/util/strings.rs
@@ -1,3 +1,3 @@
 pub fn shout(s: &str) -> String {
-    s.to_uppercase()
+    s.to_uppercase() + "!"
 }
"""

# The same first file, then a hunk whose context does not match.
PATCH_SECOND_FAILS = PATCH_TWO_FILES.split("--- a/src/util/strings.rs")[0] + """\
--- a/src/util/strings.rs
+++ b/src/util/strings.rs
@@ -1,3 +1,3 @@
 pub fn whisper(s: &str) -> String {
-    s.to_lowercase()
+    s.to_lowercase() + "..."
 }
"""


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


async def test_apply_patch(project: Path) -> None:
    async with fs_session(project, write=True) as s:
        before = snapshot(project)
        r = await ok(s, "apply_patch", {"patch": PATCH_TWO_FILES, "dry_run": True})
        assert r["dry_run"] is True
        assert r["files"] == [{"path": "src/main.rs", "operation": "modify"}, {"path": "src/util/strings.rs", "operation": "modify"}]
        assert snapshot(project) == before

        msg = await err(s, "apply_patch", {"patch": PATCH_SECOND_FAILS}, "patch_failed")
        assert "strings.rs" in msg
        assert snapshot(project) == before, "a failed patch must change no file"

        r = await ok(s, "apply_patch", {"patch": PATCH_TWO_FILES})
        assert r["dry_run"] is False and len(r["files"]) == 2
        assert (project / "src" / "main.rs").read_text() == MAIN_RS.replace('"hello"', '"goodbye"')
        assert (project / "src" / "util" / "strings.rs").read_text() == STRINGS_RS.replace("s.to_uppercase()", 's.to_uppercase() + "!"')

        create = "--- /dev/null\n+++ b/docs/new/changelog.md\n@@ -0,0 +1,2 @@\n+# Changelog\n+- first\n"
        r = await ok(s, "apply_patch", {"patch": create})
        assert r["files"] == [{"path": "docs/new/changelog.md", "operation": "create"}]
        assert (project / "docs" / "new" / "changelog.md").read_text() == "# Changelog\n- first\n"
        await err(s, "apply_patch", {"patch": create}, "already_exists")

        delete = "--- a/docs/guide.md\n+++ /dev/null\n@@ -1,4 +0,0 @@\n-# Guide\n-\n-Call `add(a, b)` to add.\n-fn is not code here.\n"
        await err(s, "apply_patch", {"patch": delete}, "tier_not_allowed")
        assert (project / "docs" / "guide.md").exists()

        await err(s, "apply_patch", {"patch": "this is not a diff"}, "patch_failed")
        await err(s, "apply_patch", {"patch": "--- a/.env\n+++ b/.env\n@@ -1 +1 @@\n-a\n+b\n"}, "denied_by_glob")

    async with fs_session(project, destructive=True) as s:
        r = await ok(s, "apply_patch", {"patch": delete})
        assert r["files"] == [{"path": "docs/guide.md", "operation": "delete"}]
        assert not (project / "docs" / "guide.md").exists()


async def test_apply_patch_crlf_file_with_lf_diff(project: Path) -> None:
    (project / "win.txt").write_bytes(b"a\r\nb\r\nc\r\n")
    async with fs_session(project, write=True) as s:
        await ok(s, "apply_patch", {"patch": "--- a/win.txt\n+++ b/win.txt\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"})
    assert (project / "win.txt").read_bytes() == b"a\r\nB\r\nc\r\n"


async def test_apply_patch_dry_run_creates_no_directory(project: Path) -> None:
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    async with fs_session(project, write=True) as s:
        r = await ok(s, "apply_patch", {"patch": "--- /dev/null\n+++ b/brand/new/dir/x.txt\n@@ -0,0 +1 @@\n+x\n", "dry_run": True})
        assert r["dry_run"] is True
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == before



FAILED_CALLS_THAT_MUST_NOT_CREATE_DIRS = [
    pytest.param(
        "apply_patch",
        {"patch": "--- /dev/null\n+++ b/newdir/a/x.txt\n@@ -0,0 +1 @@\n+x\n--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-no such line\n+y\n"},
        "patch_failed",
        id="apply_patch-second-file-fails",
    ),
    pytest.param("move_path", {"source": "does-not-exist.txt", "destination": "newdir/a/x.txt"}, "not_found", id="move_path-missing-source"),
    pytest.param("write_file", {"path": "newdir/a/x.txt", "content": "x", "expected_sha256": "0" * 64}, "precondition_failed", id="write_file-precondition"),
    pytest.param("write_file", {"path": "newdir/.git/x", "content": "x"}, "denied_by_glob", id="write_file-denied"),
    pytest.param("create_directory", {"path": "newdir/.git/hooks"}, "denied_by_glob", id="create_directory-denied"),
    pytest.param("write_file", {"path": "README.md/x.txt", "content": "x"}, "not_a_directory", id="write_file-parent-is-file"),
    pytest.param("write_file", {"path": "x.txt", "content": "x", "root": "nope"}, "invalid_argument", id="write_file-bad-root"),
]


@pytest.mark.parametrize(("tool", "args", "code"), FAILED_CALLS_THAT_MUST_NOT_CREATE_DIRS)
async def test_failed_call_leaves_tree_unchanged(project: Path, tool: str, args: dict, code: str) -> None:
    before = snapshot(project), sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    async with fs_session(project, write=True) as s:
        await err(s, tool, args, code)
    after = snapshot(project), sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    assert after == before, f"new entries: {sorted(set(after[1]) - set(before[1]))}"


# --------------------------------------------------------------------------------------------
# create_directory, move_path, delete_path
# --------------------------------------------------------------------------------------------


async def test_create_directory(project: Path) -> None:
    async with fs_session(project, write=True) as s:
        r = await ok(s, "create_directory", {"path": "a/b/c"})
        assert r == {"path": "a/b/c", "created": True}
        assert (project / "a" / "b" / "c").is_dir()
        r = await ok(s, "create_directory", {"path": "a/b/c"})
        assert r["created"] is False
        await err(s, "create_directory", {"path": "README.md/sub"}, "not_a_directory")
        await err(s, "create_directory", {"path": ".git/hooks"}, "denied_by_glob")
        assert not (project / ".git").exists()


async def test_move_path(project: Path) -> None:
    async with fs_session(project, write=True) as s:
        r = await ok(s, "move_path", {"source": "docs/guide.md", "destination": "docs/manual/guide.md"})
        assert r == {"source": "docs/guide.md", "destination": "docs/manual/guide.md", "type": "file"}
        assert (project / "docs" / "manual" / "guide.md").exists() and not (project / "docs" / "guide.md").exists()

        r = await ok(s, "move_path", {"source": "src/util", "destination": "src/helpers"})
        assert r["type"] == "directory"
        assert (project / "src" / "helpers" / "strings.rs").read_text() == STRINGS_RS

        main_before = (project / "src" / "main.rs").read_bytes()
        await err(s, "move_path", {"source": "src/lib.rs", "destination": "src/main.rs"}, "already_exists")
        assert (project / "src" / "main.rs").read_bytes() == main_before and (project / "src" / "lib.rs").exists()
        await ok(s, "move_path", {"source": "src/lib.rs", "destination": "src/main.rs", "overwrite": True})
        assert (project / "src" / "main.rs").read_text() == LIB_RS and not (project / "src" / "lib.rs").exists()
        await err(s, "move_path", {"source": "README.md", "destination": "docs", "overwrite": True}, "already_exists")
        await err(s, "move_path", {"source": "nope", "destination": "nope2"}, "not_found")


async def test_delete_path(project: Path) -> None:
    async with fs_session(project, destructive=True) as s:
        r = await ok(s, "delete_path", {"path": "app.log"})
        assert r == {"path": "app.log", "type": "file"}
        assert not (project / "app.log").exists()
        await err(s, "delete_path", {"path": "src"}, "directory_not_empty")
        assert (project / "src" / "lib.rs").exists()
        r = await ok(s, "delete_path", {"path": "src", "recursive": True})
        assert r["type"] == "directory" and not (project / "src").exists()
        await err(s, "delete_path", {"path": "src"}, "not_found")
        (project / "empty").mkdir()
        await ok(s, "delete_path", {"path": "empty"})
        assert not (project / "empty").exists()
        # A directory holding a secret is not deleted wholesale.
        write(project / "cfg" / ".env", "X=1\n")
        await err(s, "delete_path", {"path": "cfg", "recursive": True}, "denied_by_glob")
        assert (project / "cfg" / ".env").exists()


# --------------------------------------------------------------------------------------------
# Audit log
# --------------------------------------------------------------------------------------------


async def test_audit_log(project: Path, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    secret_content = "TOP-SECRET-FILE-CONTENT-91c2e"
    token = "ghp_0123456789abcdefghij"
    async with fs_session(project, write=True, audit_log=log) as s:
        await ok(s, "read_file", {"path": "README.md"})
        await ok(s, "write_file", {"path": "out.txt", "content": secret_content})
        await err(s, "read_file", {"path": token}, "not_found")
        await err(s, "read_file", {"path": "../outside"}, "path_outside_root")
        await err(s, "delete_path", {"path": "out.txt"}, "tier_not_allowed")
        await ok(s, "search_text", {"pattern": "x", "globs": [token]})
    raw = log.read_text()
    assert secret_content not in raw
    assert token not in raw
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    calls = [rec for rec in lines if "tool" in rec]
    assert [c["tool"] for c in calls] == ["read_file", "write_file", "read_file", "read_file", "delete_path", "search_text"]
    assert [c["outcome"] for c in calls] == ["ok", "ok", "not_found", "path_outside_root", "tier_not_allowed", "ok"]
    for c in calls:
        assert isinstance(c["duration_ms"], (int, float)) and c["duration_ms"] >= 0
        assert isinstance(c["result_bytes"], int) and c["result_bytes"] > 0
        assert c["server"] == "fs" and c["time"]
    assert calls[0]["args"]["path"] == "README.md"
    assert calls[1]["args"]["content"] == f"[{len(secret_content)} bytes]"
    assert calls[1]["args"]["path"] == "out.txt"
    assert calls[2]["args"]["path"] == "[redacted]"
    assert calls[5]["args"]["globs"] == ["[redacted]"]
    # The read result (the README) is recorded by size only.
    assert "A small example project" not in raw


async def test_audit_log_records_unknown_tool_calls(project: Path, tmp_path: Path) -> None:
    from mcp import MCPError

    log = tmp_path / "audit.jsonl"
    async with fs_session(project, audit_log=log) as s:
        with pytest.raises(MCPError):
            await call(s, "no_such_tool", {"path": "x"})
        await ok(s, "list_roots", {})
    calls = [json.loads(line) for line in log.read_text().splitlines() if '"tool"' in line]
    assert [c["tool"] for c in calls] == ["no_such_tool", "list_roots"]
    assert calls[0]["outcome"].startswith("protocol_error")


async def test_bad_argument_types_are_invalid_argument(project: Path) -> None:
    async with fs_session(project, write=True) as s:
        await err(s, "read_file", {"path": 5}, "invalid_argument")
        await err(s, "read_file", {"path": "README.md", "offset": "ten"}, "invalid_argument")
        await err(s, "read_file", {}, "invalid_argument")
        await err(s, "read_many_files", {"paths": "README.md"}, "invalid_argument")
        await err(s, "read_many_files", {"paths": ["README.md"] * 101}, "invalid_argument")
        await err(s, "write_file", {"path": "x.txt"}, "invalid_argument")
        await err(s, "list_directory", {"cursor": "not-a-cursor"}, "invalid_argument")
    assert not (project / "x.txt").exists()


# --------------------------------------------------------------------------------------------
# Client roots
# --------------------------------------------------------------------------------------------


async def test_client_roots_narrow_to_subdirectory(project: Path) -> None:
    src = project / "src"
    async with fs_session(project, write=True, list_roots_callback=roots_callback(src)) as s:
        r = await ok(s, "list_roots", {})
        assert [x["path"] for x in r["roots"]] == [str(src.resolve())]
        r = await ok(s, "read_file", {"path": str(src / "main.rs")})
        assert r["content"] == MAIN_RS
        r = await ok(s, "read_file", {"path": "lib.rs"})  # relative to the narrowed root
        assert r["content"] == LIB_RS
        await err(s, "read_file", {"path": str(project / "README.md")}, "path_outside_root")
        await err(s, "read_file", {"path": "../README.md"}, "path_outside_root")
        await err(s, "write_file", {"path": str(project / "evil.txt"), "content": "x"}, "path_outside_root")
        await err(s, "list_directory", {"path": str(project)}, "path_outside_root")
        r = await ok(s, "find_files", {"pattern": "*.md"})
        assert r["matches"] == []
    assert not (project / "evil.txt").exists()


async def test_client_roots_cannot_widen(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    write(outside / "secret.txt", "outside secret\n")
    # A client root outside the configured root: ignored, nothing outside becomes reachable.
    async with fs_session(project, write=True, list_roots_callback=roots_callback(outside)) as s:
        await err(s, "read_file", {"path": str(outside / "secret.txt")}, "path_outside_root")
        await err(s, "write_file", {"path": str(outside / "new.txt"), "content": "x"}, "path_outside_root")
        is_error, structured, text = await call(s, "list_roots", {})
        assert str(outside) not in text
    # A client root that contains the configured root keeps the configured root only.
    async with fs_session(project, write=True, list_roots_callback=roots_callback(tmp_path)) as s:
        r = await ok(s, "list_roots", {})
        assert [x["path"] for x in r["roots"]] == [str(project.resolve())]
        await err(s, "read_file", {"path": str(outside / "secret.txt")}, "path_outside_root")
        await err(s, "read_file", {"path": "../elsewhere/secret.txt"}, "path_outside_root")
        r = await ok(s, "read_file", {"path": "README.md"})
        assert r["content"] == README
    # Declared together with a real subdirectory: only the subdirectory is in force.
    async with fs_session(project, list_roots_callback=roots_callback(outside, project / "docs")) as s:
        r = await ok(s, "list_roots", {})
        assert [x["path"] for x in r["roots"]] == [str((project / "docs").resolve())]
        await err(s, "read_file", {"path": str(outside / "secret.txt")}, "path_outside_root")
        await err(s, "read_file", {"path": str(project / "README.md")}, "path_outside_root")
    assert not (outside / "new.txt").exists()


async def test_client_roots_applied_before_first_call(project: Path) -> None:
    """The narrowing must be in force for the very first call after initialize (no race)."""
    for _ in range(10):
        async with fs_session(project, list_roots_callback=roots_callback(project / "src")) as s:
            await err(s, "read_file", {"path": str(project / "README.md")}, "path_outside_root")


async def test_read_file_above_the_read_limit_is_streamed(tmp_path: Path) -> None:
    """Files above max_read_bytes are streamed: tail, windows, budget continuation and a single
    over-long line all work, with total_lines and without sha256."""
    root = tmp_path / "big"
    root.mkdir()
    (root / "log.txt").write_text("".join(f"line {i}\n" for i in range(1, 2001)))
    (root / "long.txt").write_text("x" * 5000 + "\nend\n")
    config = tmp_path / "limits.toml"
    config.write_text("[limits]\nmax_read_bytes = 1000\noutput_chars = 300\n")
    async with fs_session(root, config=config) as s:
        r = await ok(s, "read_file", {"path": "log.txt", "offset": -3})
        assert r["content"] == "line 1998\nline 1999\nline 2000\n"
        assert (r["start_line"], r["end_line"], r["total_lines"]) == (1998, 2000, 2000)
        assert r["encoding"] == "utf-8-lossy" and "sha256" not in r

        r = await ok(s, "read_file", {"path": "log.txt", "offset": 1500, "limit": 2})
        assert r["content"] == "line 1500\nline 1501\n" and r["next_offset"] == 1502

        text, offset = "", 1
        for _ in range(200):
            r = await ok(s, "read_file", {"path": "log.txt", "offset": offset})
            text += r["content"]
            if "next_offset" not in r:
                break
            offset = r["next_offset"]
        assert text == (root / "log.txt").read_text()

        text, args = "", {"path": "long.txt"}
        for _ in range(50):
            r = await ok(s, "read_file", args)
            text += r["content"]
            if "next_offset" not in r:
                break
            args = {"path": "long.txt", "offset": r["next_offset"], "char_offset": r.get("next_char_offset", 0)}
        assert text == (root / "long.txt").read_text()


# --------------------------------------------------------------------------------------------
# Secrets in output: redacted in reads and search lines, never written back over
# --------------------------------------------------------------------------------------------

# Built from pieces, so this file does not itself look like a leaked credential.
GH_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
DB_PASSWORD = "s3cr3t-Value-81f"
KEY_BLOCK = (
    "-----BEGIN RSA " + "PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MaDzJk6K\n"
    "R3fsmN1tVHpUMmgN0IqYN8F1aKlOgOA8ll8oJHwRTZdC3Q==\n"
    "-----END RSA " + "PRIVATE KEY-----\n"
)
SETTINGS = (
    "database:\n"
    "  host: db.internal\n"
    f"  password: {DB_PASSWORD}\n"
    "  port: 5432\n"
    f"github_token: {GH_TOKEN}\n"
    "tls:\n"
    f"{KEY_BLOCK}"
    "done: true\n"
)
SETTINGS_SHOWN = (
    "database:\n"
    "  host: db.internal\n"
    "  password: [REDACTED:secret_assignment]\n"
    "  port: 5432\n"
    "github_token: [REDACTED:github_token]\n"
    "tls:\n"
    "[REDACTED:private_key]\n\n\n\n"
    "done: true\n"
)


async def test_secrets_are_redacted_in_reads_and_search(project: Path, tmp_path: Path) -> None:
    write(project / "config" / "settings.yaml", SETTINGS)
    log = tmp_path / "audit.jsonl"
    async with fs_session(project, audit_log=log) as s:
        r = await ok(s, "read_file", {"path": "config/settings.yaml"})
        assert r["content"] == SETTINGS_SHOWN
        # Line numbers stay the file's: the key block keeps its four lines.
        assert r["total_lines"] == SETTINGS.count("\n") and r["sha256"] == sha256(SETTINGS.encode())
        tail = await ok(s, "read_file", {"path": "config/settings.yaml", "offset": -1})
        assert tail["content"] == "done: true\n" and tail["start_line"] == SETTINGS.count("\n")

        many = await ok(s, "read_many_files", {"paths": ["config/settings.yaml", "README.md"]})
        assert many["files"][0]["content"] == SETTINGS_SHOWN

        found = await ok(s, "search_text", {"pattern": "password|github_token", "context_lines": 1})
        texts = {(m["path"], m["line"]): m for m in found["matches"]}
        m = texts[("config/settings.yaml", 3)]
        assert m["text"] == "  password: [REDACTED:secret_assignment]"
        assert texts[("config/settings.yaml", 5)]["text"] == "github_token: [REDACTED:github_token]"
        # Searching for the secret's own text finds the line, still redacted.
        found = await ok(s, "search_text", {"pattern": GH_TOKEN[:12], "literal": True})
        assert [m["text"] for m in found["matches"]] == ["github_token: [REDACTED:github_token]"]

        await ok(s, "read_file", {"path": "README.md"})
    raw = log.read_text()
    for secret in (DB_PASSWORD, GH_TOKEN, "MIIEowIBAAKCAQEA"):
        assert secret not in raw
    calls = [json.loads(line) for line in raw.splitlines() if '"tool"' in line]
    assert [c["tool"] for c in calls] == ["read_file", "read_file", "read_many_files", "search_text", "search_text", "read_file"]
    # The journal counts what each call redacted, and says nothing when it redacted nothing.
    assert [c.get("redactions") for c in calls] == [3, None, 3, 2, 1, None]
    assert list(calls[0])[-1] == "redactions"


async def test_redaction_can_be_turned_off(project: Path, tmp_path: Path) -> None:
    write(project / "config" / "settings.yaml", SETTINGS)
    config = tmp_path / "fs.toml"
    config.write_text('[redact]\nenabled = false\n')
    async with fs_session(project, config=config) as s:
        r = await ok(s, "read_file", {"path": "config/settings.yaml"})
        assert r["content"] == SETTINGS
    config.write_text('[redact]\ndisabled = ["secret_assignment"]\n')
    async with fs_session(project, config=config) as s:
        r = await ok(s, "read_file", {"path": "config/settings.yaml"})
        assert r["content"] == SETTINGS_SHOWN.replace("[REDACTED:secret_assignment]", DB_PASSWORD)


async def test_writing_back_a_redacted_read_is_refused(project: Path) -> None:
    settings = project / "config" / "settings.yaml"
    write(settings, SETTINGS)
    async with fs_session(project, write=True) as s:
        shown = (await ok(s, "read_file", {"path": "config/settings.yaml"}))["content"]
        # The whole redacted text written back.
        msg = await err(s, "write_file", {"path": "config/settings.yaml", "content": shown.replace("5432", "5433")}, "redacted_content")
        assert "[REDACTED:" in msg and "edit around it" in msg.lower()
        # An edit whose old_text spans a redacted line.
        old = "  password: [REDACTED:secret_assignment]\n  port: 5432\n"
        await err(s, "edit_file", {"path": "config/settings.yaml", "old_text": old, "new_text": old.replace("5432", "5433")}, "redacted_content")
        # An edit that would write a marker in place of a secret, though its old_text is clean.
        await err(
            s,
            "edit_file",
            {"path": "config/settings.yaml", "old_text": "  host: db.internal\n", "new_text": "  host: db.internal\n  password: [REDACTED:secret_assignment]\n"},
            "redacted_content",
        )
        # A patch whose context holds the marker.
        patch = (
            "--- a/config/settings.yaml\n+++ b/config/settings.yaml\n@@ -3,2 +3,2 @@\n"
            "   password: [REDACTED:secret_assignment]\n-  port: 5432\n+  port: 5433\n"
        )
        await err(s, "apply_patch", {"patch": patch}, "redacted_content")
        assert settings.read_text() == SETTINGS
        # Editing around the secret works and keeps it.
        await ok(s, "edit_file", {"path": "config/settings.yaml", "old_text": "  port: 5432\n", "new_text": "  port: 5433\n"})
        assert settings.read_text() == SETTINGS.replace("5432", "5433")
        # A file without secrets may hold a marker (documentation).
        await ok(s, "write_file", {"path": "docs/redaction.md", "content": "Secrets show as [REDACTED:github_token].\n"})
