"""A third-party stdio MCP server for the hub tests, written with the official Python SDK: one
well-annotated tool, one without annotations, one whose name the hub cannot offer, and one that
adds a tool at run time and announces it with notifications/tools/list_changed."""

from mcp.server.mcpserver import Context, MCPServer
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


@app.tool(name="Bad(Name)")
def bad_name() -> str:
    """A name with a character the hub cannot put in snake case."""
    return "unreachable"


def grown() -> str:
    """Added at run time by `grow`."""
    return "grown tool answered"


@app.tool()
async def grow(ctx: Context) -> str:
    """Adds the tool `grown` and sends notifications/tools/list_changed."""
    app.add_tool(grown)
    await ctx.session.send_tool_list_changed()
    return "grew"


@app.tool()
async def hang() -> str:
    """Never answers (the hub's call timeout must)."""
    import anyio

    await anyio.sleep_forever()
    return "unreachable"


if __name__ == "__main__":
    app.run("stdio")
