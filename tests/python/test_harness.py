"""Self-test of the interop harness: the venv that `cargo xtask interop` built has the pinned
MCP SDK, so an interop run always collects at least this test."""

from importlib.metadata import version


def test_mcp_sdk_is_pinned_version() -> None:
    import mcp
    from mcp import ClientSession, StdioServerParameters  # noqa: F401
    from mcp.client.stdio import stdio_client  # noqa: F401

    assert version("mcp") == "2.3.0", mcp.__file__
