"""Shared fixtures for the end-to-end tests that drive Bastion's binaries with the official
MCP Python SDK (``mcp`` 2.x).

Run them with ``cargo xtask interop`` (it builds the binaries, prepares ``.cache/venv`` and sets
``BASTION_BIN_DIR``). Async tests use the anyio pytest plugin that ships with anyio (an ``mcp``
dependency) on the asyncio backend::

    import pytest
    from conftest import open_session

    pytestmark = pytest.mark.anyio

    async def test_lists_tools(fs_server, tmp_path):
        async with open_session(fs_server(tmp_path)) as session:
            tools = await session.list_tools()
            assert "read_file" in {t.name for t in tools.tools}

``open_session`` is also available as the ``session_opener`` fixture, for tests that prefer not
to import from ``conftest``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Seconds ``open_session`` waits for the ``initialize`` handshake before failing the test.
INITIALIZE_TIMEOUT = 20.0


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio (the SDK's primary backend)."""
    return "asyncio"


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    """Directory holding the Bastion binaries: ``$BASTION_BIN_DIR`` or ``<repo>/target/debug``."""
    env = os.environ.get("BASTION_BIN_DIR")
    return Path(env).resolve() if env else REPO_ROOT / "target" / "debug"


def _binary(bin_dir: Path, name: str) -> Path:
    path = bin_dir / name
    if not path.is_file():
        pytest.fail(
            f"{path} does not exist: build it with `cargo build --workspace --bins` "
            "(`cargo xtask interop` does) or point BASTION_BIN_DIR at the right directory",
            pytrace=False,
        )
    return path


PathLike = str | os.PathLike[str]


@pytest.fixture
def fs_server(bin_dir: Path) -> Callable[..., StdioServerParameters]:
    """Factory for the launch parameters of ``bastion-fs``.

    ``fs_server(roots, *flags, env=None, cwd=None)`` returns ``StdioServerParameters`` for
    ``<bin_dir>/bastion-fs --root R1 --root R2 ... FLAGS...``. ``roots`` is one path or an
    iterable of paths; ``flags`` are extra CLI arguments (strings or paths); ``env`` adds
    environment variables to the SDK's default, minimal environment.
    """
    binary = _binary(bin_dir, "bastion-fs")

    def make(
        roots: PathLike | Iterable[PathLike],
        *flags: PathLike,
        env: Mapping[str, str] | None = None,
        cwd: PathLike | None = None,
    ) -> StdioServerParameters:
        if isinstance(roots, (str, os.PathLike)):
            roots = [roots]
        args: list[str] = []
        for root in roots:
            args += ["--root", os.fspath(root)]
        args += [os.fspath(flag) for flag in flags]
        return StdioServerParameters(
            command=str(binary),
            args=args,
            env={"RUST_BACKTRACE": "1", **(env or {})},
            cwd=os.fspath(cwd) if cwd is not None else None,
        )

    return make


@asynccontextmanager
async def open_session(
    params: StdioServerParameters,
    *,
    initialize_timeout: float = INITIALIZE_TIMEOUT,
    **session_kwargs: Any,
) -> AsyncIterator[ClientSession]:
    """Spawn the server described by ``params`` and yield an initialized ``ClientSession``.

    The server's stderr goes to a temporary file (pytest's captured ``sys.stderr`` may have no
    file descriptor) and is copied to ``sys.stderr`` when the session closes, so it shows up in
    pytest's report of a failing test. Extra keyword arguments go to ``ClientSession``.
    """
    with tempfile.TemporaryFile(mode="w+", prefix="bastion-stderr-") as errlog:
        try:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write, **session_kwargs) as session:
                    with anyio.fail_after(initialize_timeout):
                        await session.initialize()
                    yield session
        finally:
            errlog.flush()
            errlog.seek(0)
            captured = errlog.read()
            if captured:
                sys.stderr.write(f"--- stderr of {params.command} ---\n{captured}")


@pytest.fixture
def session_opener() -> Callable[..., Any]:
    """``open_session`` as a fixture: ``async with session_opener(params) as session: ...``."""
    return open_session
