"""Shared pytest configuration for the end-to-end tests that drive Bastion's binaries with the
official MCP Python SDK (``mcp`` 2.x).

Run them with ``cargo xtask interop`` (it builds the binaries, prepares ``.cache/venv`` and sets
``BASTION_BIN_DIR``). The client helpers (spawning a server, calling tools, checking the error
convention) live in ``fsclient.py``, the prerequisites (a missing program skips locally, fails
under CI) in ``prereq.py``; async tests use the anyio pytest plugin that ships with
anyio (an ``mcp`` dependency), on the asyncio backend.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """The ``slow`` marker: load and soak tests, run by ``cargo xtask ci`` in its own ``slow`` step
    (``-m slow``) after the ``interop`` step (``-m "not slow and not replicas"``); the ``replicas``
    marker: the multi-replica suite (``test_replicas.py``), its own ``replicas`` step."""
    config.addinivalue_line("markers", "slow: a load or soak test, run in the `slow` step of `cargo xtask ci`")
    config.addinivalue_line(
        "markers", "replicas: several hubs on one PostgreSQL behind a load balancer, the `replicas` step of `cargo xtask ci`"
    )


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio (the SDK's primary backend)."""
    return "asyncio"
