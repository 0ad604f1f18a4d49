"""Shared pytest configuration for the end-to-end tests that drive Bastion's binaries with the
official MCP Python SDK (``mcp`` 2.x).

Run them with ``cargo xtask interop`` (it builds the binaries, prepares ``.cache/venv`` and sets
``BASTION_BIN_DIR``). The client helpers (spawning a server, calling tools, checking the error
convention) live in ``fsclient.py``; async tests use the anyio pytest plugin that ships with
anyio (an ``mcp`` dependency), on the asyncio backend.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio (the SDK's primary backend)."""
    return "asyncio"
