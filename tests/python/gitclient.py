"""Client helpers for driving ``bastion-git`` through the official MCP Python SDK (2.x), and for
building fixture repositories with the ``git`` program (fixtures only: the server never runs it).

The call helpers (``call``, ``ok``, ``err``, ``error_code``) are the same as for bastion-fs::

    from gitclient import git_session, ok, err, run_git

    async with git_session(tmp_path, write=True) as session:
        status = await ok(session, "status", {"repo": "proj"})

The binary comes from ``$BASTION_BIN_DIR`` (default ``<repo>/target/debug``).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters

from fsclient import bin_dir, stdio_session, call, call_raw, err, error_code, list_all_tools, ok, tool_names

__all__ = [
    "READ_TOOLS",
    "WRITE_TOOLS",
    "DESTRUCTIVE_TOOLS",
    "git_binary",
    "git_server_params",
    "git_session",
    "run_git",
    "init_repo",
    "call",
    "call_raw",
    "ok",
    "err",
    "error_code",
    "list_all_tools",
    "tool_names",
]

READ_TOOLS = [
    "status",
    "diff",
    "log",
    "show",
    "blame",
    "branches",
    "tags",
    "stash_list",
]
WRITE_TOOLS = ["add", "unstage", "commit", "create_branch", "switch", "stash_push"]
DESTRUCTIVE_TOOLS = ["restore", "reset", "delete_branch"]

#: Environment for fixture-building ``git``: no system or global config, fixed identity and dates.
GIT_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "Fixture Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Fixture Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_AUTHOR_DATE": "2024-05-01T12:00:00Z",
    "GIT_COMMITTER_DATE": "2024-05-01T12:00:00Z",
}


def git_binary() -> Path:
    """Path of ``bastion-git``; fails the test with a clear message when it is missing."""
    path = bin_dir() / "bastion-git"
    if not path.is_file():
        import pytest

        pytest.fail(
            f"{path} does not exist: build it with `cargo build --workspace --bins` "
            "or point BASTION_BIN_DIR at the directory holding it",
            pytrace=False,
        )
    return path


def run_git(repo: os.PathLike[str] | str, *args: str | bytes, check: bool = True, env: dict[str, str] | None = None) -> str:
    """Runs ``git`` in ``repo`` to build a fixture; returns stdout."""
    full_env = dict(GIT_ENV, HOME=os.fspath(repo))
    if env:
        full_env.update(env)
    done = subprocess.run(
        ["git", *args], cwd=os.fspath(repo), env=full_env, capture_output=True, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {args!r} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode(errors="replace")


def init_repo(path: Path) -> Path:
    """A new repository (branch ``main``) with an identity in its own config."""
    path.mkdir(parents=True, exist_ok=True)
    run_git(path, "init", "-q", "-b", "main")
    run_git(path, "config", "user.name", "Repo User")
    run_git(path, "config", "user.email", "repo@example.com")
    return path


def git_server_params(
    roots: os.PathLike[str] | str | Iterable[os.PathLike[str] | str],
    *,
    write: bool = False,
    destructive: bool = False,
    config: os.PathLike[str] | str | None = None,
    audit_log: os.PathLike[str] | str | None = None,
    home: os.PathLike[str] | str | None = None,
    extra_args: Sequence[str] = (),
) -> StdioServerParameters:
    """Launch parameters for ``bastion-git --root R... [flags]``. ``HOME`` is a scratch directory
    (``home``) so the machine's global git configuration plays no part."""
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
    if config is not None:
        args += ["--config", os.fspath(config)]
    if audit_log is not None:
        args += ["--audit-log", os.fspath(audit_log)]
    args += list(extra_args)
    env = {"RUST_BACKTRACE": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if home is not None:
        env["HOME"] = os.fspath(home)
    return StdioServerParameters(command=str(git_binary()), args=args, env=env)


@asynccontextmanager
async def git_session(
    roots: os.PathLike[str] | str | Iterable[os.PathLike[str] | str], **launch: Any
) -> AsyncIterator[ClientSession]:
    """Spawn ``bastion-git`` (``launch`` takes the keyword arguments of ``git_server_params``)
    and yield an initialized ``ClientSession``; the server's stderr is echoed on exit."""
    if "home" not in launch:
        launch["home"] = tempfile.mkdtemp(prefix="bastion-git-home-")
    params = git_server_params(roots, **launch)
    async with stdio_session(params, "bastion-git") as session:
        yield session
