"""Small client helpers for driving ``bastion-fs`` through the official MCP Python SDK (2.x).

Self-contained on purpose (the end-to-end and hostile suites do not depend on conftest
fixtures)::

    from fsclient import fs_session, call, ok, err

    async with fs_session(tmp_path, write=True) as session:
        data = await ok(session, "read_file", {"path": "README.md"})
        msg = await err(session, "read_file", {"path": "../x"}, "path_outside_root")

The binary comes from ``$BASTION_BIN_DIR`` (default ``<repo>/target/debug``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Seconds allowed for the initialize handshake.
INITIALIZE_TIMEOUT = 20.0
#: Seconds allowed for one tool call (a hang is a failure, not a stuck suite).
CALL_TIMEOUT = 30.0

READ_TOOLS = [
    "read_file",
    "read_many_files",
    "list_directory",
    "file_info",
    "list_roots",
    "find_files",
    "search_text",
]
WRITE_TOOLS = ["write_file", "edit_file", "apply_patch", "create_directory", "move_path"]
DESTRUCTIVE_TOOLS = ["delete_path"]


def bin_dir() -> Path:
    """Directory holding the Bastion binaries."""
    env = os.environ.get("BASTION_BIN_DIR")
    return Path(env).resolve() if env else REPO_ROOT / "target" / "debug"


def bastion_binary() -> Path:
    """Path of the ``bastion`` binary (hub and built-in servers); fails the test when missing."""
    path = bin_dir() / "bastion"
    if not path.is_file():
        import pytest

        pytest.fail(f"{path} does not exist: run `cargo build -p bastion-hub --bins`", pytrace=False)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: "subprocess.Popen[Any]", grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited after ``grace`` seconds; reaps it."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


def fs_binary() -> Path:
    """Path of ``bastion-fs``; fails the test with a clear message when it is missing."""
    path = bin_dir() / "bastion-fs"
    if not path.is_file():
        import pytest

        pytest.fail(
            f"{path} does not exist: build it with `cargo build --workspace --bins` "
            "or point BASTION_BIN_DIR at the directory holding it",
            pytrace=False,
        )
    return path


def server_params(
    roots: os.PathLike[str] | str | Iterable[os.PathLike[str] | str],
    *,
    write: bool = False,
    destructive: bool = False,
    audit_log: os.PathLike[str] | str | None = None,
    config: os.PathLike[str] | str | None = None,
    extra_args: Sequence[str] = (),
    cwd: os.PathLike[str] | str | None = None,
) -> StdioServerParameters:
    """Launch parameters for ``bastion-fs --root R... [flags]``."""
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    args: list[str] = []
    for root in roots:
        args += ["--root", os.fspath(root)]
    if write:
        args.append("--allow-write")
    if destructive:
        args.append("--allow-destructive")
        # Approvals (a destructive call asks the person by default) are tested in
        # test_approvals.py; the tool suites run the tools directly.
        args.append("--no-approvals")
    if audit_log is not None:
        args += ["--audit-log", os.fspath(audit_log)]
    if config is not None:
        args += ["--config", os.fspath(config)]
    args += list(extra_args)
    return StdioServerParameters(
        command=str(fs_binary()),
        args=args,
        env={"RUST_BACKTRACE": "1"},
        cwd=os.fspath(cwd) if cwd is not None else None,
    )


def roots_callback(*dirs: os.PathLike[str] | str):
    """A ``list_roots_callback`` declaring ``dirs`` as the client's roots (``file://`` URIs)."""

    async def callback(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(
            roots=[types.Root(uri=Path(os.fspath(d)).resolve().as_uri(), name=Path(os.fspath(d)).name) for d in dirs]
        )

    return callback


@asynccontextmanager
async def fs_session(
    roots: os.PathLike[str] | str | Iterable[os.PathLike[str] | str],
    *,
    list_roots_callback: Any = None,
    **launch: Any,
) -> AsyncIterator[ClientSession]:
    """Spawn ``bastion-fs`` (``launch`` takes the keyword arguments of ``server_params``) and
    yield an initialized ``ClientSession``.

    The server's stderr goes to a temporary file and is echoed to ``sys.stderr`` on exit, so a
    failing test shows it.
    """
    params = server_params(roots, **launch)
    kwargs: dict[str, Any] = {}
    if list_roots_callback is not None:
        kwargs["list_roots_callback"] = list_roots_callback
    async with stdio_session(params, "bastion-fs", **kwargs) as session:
        yield session


def _children(pid: int) -> set[int]:
    """Direct children of ``pid``, from ``/proc``."""
    kids: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        if int(raw[raw.rindex(")") + 2 :].split()[1]) == pid:
            kids.add(int(entry))
    return kids


@asynccontextmanager
async def stdio_session(
    params: StdioServerParameters, name: str, *, track_pid: bool = False, **session_kwargs: Any
) -> AsyncIterator[ClientSession]:
    """Spawn the server ``params`` describe and yield an initialized ``ClientSession``; with
    ``track_pid`` the session carries the server's process id as ``session.server_pid``.

    The server's stderr goes to a temporary file and is echoed to ``sys.stderr`` on exit, so a
    failing test shows it.
    """
    with tempfile.TemporaryFile(mode="w+", prefix=f"{name}-stderr-") as errlog:
        try:
            before = _children(os.getpid()) if track_pid else set()
            async with stdio_client(params, errlog=errlog) as (read, write_stream):
                async with ClientSession(read, write_stream, **session_kwargs) as session:
                    with anyio.fail_after(INITIALIZE_TIMEOUT):
                        await session.initialize()
                    if track_pid:
                        new = _children(os.getpid()) - before
                        session.server_pid = new.pop() if len(new) == 1 else None  # type: ignore[attr-defined]
                    yield session
        except BaseExceptionGroup as group:
            # The SDK's task groups wrap a failing assertion in nested groups; show it plainly.
            inner: BaseException = group
            while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
                inner = inner.exceptions[0]
            if inner is group:
                raise
            raise inner
        finally:
            errlog.flush()
            errlog.seek(0)
            captured = errlog.read()
            if captured:
                sys.stderr.write(f"--- stderr of {name} ---\n{captured}")


def result_text(result: types.CallToolResult) -> str:
    """All text content blocks of a result, joined by newlines."""
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def call_raw(
    session: ClientSession, tool: str, args: dict[str, Any] | None = None, *, timeout: float = CALL_TIMEOUT
) -> types.CallToolResult:
    """``tools/call`` with a hard timeout; returns the SDK's ``CallToolResult``."""
    with anyio.fail_after(timeout):
        return await session.call_tool(tool, args or {})


async def call(
    session: ClientSession, tool: str, args: dict[str, Any] | None = None, *, timeout: float = CALL_TIMEOUT
) -> tuple[bool, dict[str, Any] | None, str]:
    """``(is_error, structured_content, text)`` of one call."""
    result = await call_raw(session, tool, args, timeout=timeout)
    return bool(result.is_error), result.structured_content, result_text(result)


async def ok(session: ClientSession, tool: str, args: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """Calls a tool that must succeed and returns its structured content."""
    is_error, structured, text = await call(session, tool, args, **kw)
    assert not is_error, f"{tool}({args!r}) failed: {text}"
    assert isinstance(structured, dict), f"{tool}({args!r}) returned no structured content: {text}"
    assert text, f"{tool}({args!r}) returned no text content"
    return structured


def error_code(is_error: bool, structured: dict[str, Any] | None, text: str) -> str | None:
    """The stable error code of a result (checking text and structured agree), or None on success."""
    if not is_error:
        return None
    assert isinstance(structured, dict), f"error without structured content: {text}"
    code = structured.get("code")
    assert isinstance(code, str), f"error without a code: {structured}"
    assert text.startswith(f"{code}: "), f"error text does not start with its code {code!r}: {text!r}"
    assert structured.get("message"), f"error without a message: {structured}"
    return code


async def err(
    session: ClientSession, tool: str, args: dict[str, Any] | None, code: str, **kw: Any
) -> str:
    """Calls a tool that must fail with ``code``; returns the message."""
    is_error, structured, text = await call(session, tool, args, **kw)
    got = error_code(is_error, structured, text)
    assert got == code, f"{tool}({_short(args)}) -> expected {code}, got {got}: {text[:500]}"
    assert structured is not None
    return str(structured["message"])


async def tool_names(session: ClientSession) -> list[str]:
    """Names offered by ``tools/list`` (following pagination)."""
    return [t.name for t in await list_all_tools(session)]


async def list_all_tools(session: ClientSession) -> list[types.Tool]:
    """Every tool offered by ``tools/list``, following cursors."""
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        with anyio.fail_after(CALL_TIMEOUT):
            page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


def _short(args: Any) -> str:
    s = repr(args)
    return s if len(s) <= 200 else s[:200] + "…"
