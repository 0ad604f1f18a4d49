"""A third-party stdio MCP server for the hub tests, written with the official Python SDK: one
well-annotated tool, one without annotations, and one whose name the hub cannot offer."""

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

app = MCPServer("fake-upstream")


@app.tool(title="Echo", annotations=ToolAnnotations(title="Echo", read_only_hint=True, destructive_hint=False, open_world_hint=False))
def echo(text: str) -> str:
    """Returns its input."""
    return f"echo: {text}"


@app.tool()
def no_hints(n: int) -> str:
    """A tool that declares no annotations."""
    return f"n={n}"


@app.tool(name="Bad-Name")
def bad_name() -> str:
    """A name outside ^[a-z][a-z0-9_]{0,63}$ once prefixed."""
    return "unreachable"


if __name__ == "__main__":
    app.run("stdio")
