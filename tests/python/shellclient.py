"""Client helpers for driving ``bastion-shell`` through the official MCP Python SDK (2.x).

The call helpers (``call``, ``ok``, ``err``, ``error_code``) are the same as for bastion-fs::

    from shellclient import shell_session, ok, err, run

    async with shell_session(tmp_path, profile="build-test") as session:
        out = await run(session, "ls", ["-la"])
        assert out["exit_code"] == 0
        await err(session, "run_command", {"program": "sh", "args": ["-c", "id"]}, "command_not_allowed")
        print(session.server_pid)   # the server process, for kill/environ probes

The binary comes from ``$BASTION_BIN_DIR`` (default ``<repo>/target/debug``).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters

from fsclient import (
    CALL_TIMEOUT,
    bin_dir,
    call,
    call_raw,
    err,
    error_code,
    list_all_tools,
    ok,
    result_text,
    stdio_session,
    tool_names,
)

__all__ = [
    "SHELL_TOOLS",
    "TOOL_TITLES",
    "shell_binary",
    "shell_server_params",
    "shell_session",
    "run",
    "run_raw",
    "pgrep",
    "wait_gone",
    "call",
    "call_raw",
    "ok",
    "err",
    "error_code",
    "list_all_tools",
    "result_text",
    "tool_names",
]

#: Every tool, in the server's table order, with its title.
TOOL_TITLES = {
    "run_command": "Run a command",
    "start_process": "Start a background process",
    "read_process_output": "Read process output",
    "write_process_input": "Write to process input",
    "list_processes": "List processes",
    "kill_process": "Kill a process",
    "list_allowed_commands": "List allowed commands",
    "sandbox_status": "Sandbox status",
}
SHELL_TOOLS = list(TOOL_TITLES)


def shell_binary(name: str = "bastion-shell") -> Path:
    """Path of ``bastion-shell`` (or ``bastion``); fails the test clearly when it is missing."""
    path = bin_dir() / name
    if not path.is_file():
        import pytest

        pytest.fail(
            f"{path} does not exist: build it with `cargo build -p bastion-shell -p bastion-hub --bins` "
            "or point BASTION_BIN_DIR at the directory holding it",
            pytrace=False,
        )
    return path


def shell_server_params(
    roots: os.PathLike[str] | str | Iterable[os.PathLike[str] | str],
    *,
    profile: str | None = "read-only",
    config: os.PathLike[str] | str | None = None,
    audit_log: os.PathLike[str] | str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    hub: bool = False,
) -> StdioServerParameters:
    """Launch parameters for ``bastion-shell --root R... [--profile P] [flags]`` (or, with
    ``hub``, ``bastion shell ...``). ``env`` is added to the server's environment (on top of the
    SDK's default inherited variables: HOME, PATH, USER, ...)."""
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    args: list[str] = ["shell"] if hub else []
    for root in roots:
        args += ["--root", os.fspath(root)]
    if profile is not None:
        args += ["--profile", profile]
    if config is not None:
        args += ["--config", os.fspath(config)]
    if audit_log is not None:
        args += ["--audit-log", os.fspath(audit_log)]
    args += list(extra_args)
    server_env = {"RUST_BACKTRACE": "1"}
    server_env.update(env or {})
    return StdioServerParameters(
        command=str(shell_binary("bastion" if hub else "bastion-shell")),
        args=args,
        env=server_env,
    )


@asynccontextmanager
async def shell_session(
    roots: os.PathLike[str] | str | Iterable[os.PathLike[str] | str],
    profile: str | None = "read-only",
    extra_args: Sequence[str] = (),
    **launch: Any,
) -> AsyncIterator[ClientSession]:
    """Spawn ``bastion-shell`` (``launch`` takes the keyword arguments of
    ``shell_server_params``) and yield an initialized ``ClientSession``. The session carries the
    server's process id as ``session.server_pid``.

    The server's stderr goes to a temporary file and is echoed to ``sys.stderr`` on exit, so a
    failing test shows it.
    """
    params = shell_server_params(roots, profile=profile, extra_args=extra_args, **launch)
    async with stdio_session(params, "bastion-shell", track_pid=True) as session:
        yield session


async def run_raw(
    session: ClientSession,
    program: str,
    args: Sequence[str] = (),
    *,
    timeout: float = CALL_TIMEOUT,
    **fields: Any,
) -> tuple[bool, dict[str, Any] | None, str]:
    """``run_command`` returning ``(is_error, structured_content, text)``; ``fields`` adds
    ``cwd``, ``timeout_ms``, ``stdin``."""
    return await call(session, "run_command", {"program": program, "args": list(args), **fields}, timeout=timeout)


async def run(session: ClientSession, program: str, args: Sequence[str] = (), **fields: Any) -> dict[str, Any]:
    """``run_command`` that must succeed (as a call: the program's exit code may be anything)."""
    return await ok(session, "run_command", {"program": program, "args": list(args), **fields})


def pgrep(marker: str, name: str | None = None) -> list[int]:
    """Pids of live processes whose command line contains ``marker`` (like ``pgrep -f``; this
    process and zombies excluded), only those whose command name is ``name`` when given."""
    found = []
    me = os.getpid()
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if needle in cmdline:
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    state = f.read()
                if state[state.rfind(b")") + 2 : state.rfind(b")") + 3] == b"Z":
                    continue  # a zombie waiting to be reaped is not running
                if name is not None and state[state.find(b"(") + 1 : state.rfind(b")")] != name.encode():
                    continue
            except OSError:
                continue
            found.append(int(entry))
    return found


def wait_gone(marker: str, within: float = 2.0) -> list[int]:
    """Polls until no process has ``marker`` in its command line, for at most ``within`` seconds;
    returns the survivors (empty when all are gone)."""
    deadline = time.monotonic() + within
    while True:
        left = pgrep(marker)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)
