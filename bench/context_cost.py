"""What each server's tool definitions cost a model: the bytes of its `tools/list` answer (the
`tools` array as the official MCP Python SDK receives it, serialised compactly) and about as many
tokens as a quarter of that, for bastion's built-in servers, the hub's surface in each mode, and
the reference servers beside them, in one run.

    python bench/context_cost.py --bastion target/debug/bastion \
        [--fs-node DIR/server-filesystem/dist/index.js] [--dc DIR/desktop-commander/dist/index.js] \
        [--peer-python VENV/bin/python]

Prints a Markdown table (BENCHMARKS.md, "Context cost"). A peer that is not given is n/a.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

FULL = """
[[upstream]]
name = "fs"
builtin = "fs"
args = ["--allow-write"]
[[upstream]]
name = "git"
builtin = "git"
args = ["--allow-write"]
[[upstream]]
name = "shell"
builtin = "shell"
args = ["--profile", "build-test", "--allow-degraded-sandbox"]
"""


async def measure(command: str, args: list[str], env: dict[str, str] | None = None) -> tuple[int, int]:
    params = StdioServerParameters(command=command, args=args, env=env)
    with open(os.devnull, "w") as devnull:
        async with stdio_client(params, errlog=devnull) as (read, write):
            async with ClientSession(read, write) as session:
                with anyio.fail_after(60):
                    await session.initialize()
                    tools = []
                    cursor = None
                    while True:
                        page = await session.list_tools(cursor=cursor) if cursor else await session.list_tools()
                        tools.extend(page.tools)
                        cursor = page.next_cursor
                        if not cursor:
                            break
    body = json.dumps(
        {"tools": [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools]}, separators=(",", ":")
    )
    return len(tools), len(body.encode())


def row(label: str, result: tuple[int, int] | None) -> str:
    if result is None:
        return f"| {label} | n/a | n/a | n/a | n/a |"
    n, size = result
    per = size / n if n else 0
    return f"| {label} | {n} | {size:,} | ~{size // 4:,} | {per / 1000:.2f} KB |"


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bastion", required=True)
    p.add_argument("--fs-node")
    p.add_argument("--dc")
    p.add_argument("--peer-python")
    a = p.parse_args()
    b = str(Path(a.bastion).resolve())
    work = Path(tempfile.mkdtemp(prefix="context-cost-"))
    root = work / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    rows: list[str] = []

    async def hub(label: str, config: str | None, *extra: str) -> None:
        state = Path(tempfile.mkdtemp(dir=work))
        args = ["serve", "--stdio", "--root", str(root), "--state-dir", str(state), *extra]
        if config is not None:
            (state / "hub.toml").write_text(config)
            args += ["--config", str(state / "hub.toml")]
        rows.append(row(label, await measure(b, args)))

    for label, args in [
        ("bastion fs (read-only)", ["fs", "--root", str(root)]),
        ("bastion fs --allow-write", ["fs", "--root", str(root), "--allow-write"]),
        ("bastion git (read-only)", ["git", "--root", str(root)]),
        ("bastion git --allow-write", ["git", "--root", str(root), "--allow-write"]),
        ("bastion shell (read-only profile)", ["shell", "--root", str(root)]),
        ("bastion fs, with --output-schemas", ["fs", "--root", str(root), "--output-schemas"]),
    ]:
        rows.append(row(label, await measure(b, args)))
    await hub("hub: read-only (default)", None)
    await hub("hub: full built-in (writes + build-test)", FULL)
    await hub("hub: full built-in, tool_search = \"on\"", 'tool_search = "on"\n' + FULL)
    await hub("hub: full built-in, tool_search = \"auto\" (30 KB)", 'tool_search = "auto"\n' + FULL)

    if a.fs_node:
        rows.append(row("@modelcontextprotocol/server-filesystem", await measure("node", [a.fs_node, str(root)])))
    else:
        rows.append(row("@modelcontextprotocol/server-filesystem", None))
    if a.peer_python:
        rows.append(row("mcp-server-git (PyPI)", await measure(a.peer_python, ["-m", "mcp_server_git", "--repository", str(root)])))
    else:
        rows.append(row("mcp-server-git (PyPI)", None))
    if a.dc:
        home = work / "dc-home"
        home.mkdir()
        env = dict(os.environ, HOME=str(home), DESKTOP_COMMANDER_DISABLE_TELEMETRY="1", DC_FLAG_URL="http://127.0.0.1:9/")
        rows.append(row("Desktop Commander (npm)", await measure("node", [a.dc], env)))
    else:
        rows.append(row("Desktop Commander (npm)", None))

    print("| server | tools | bytes | ~tokens (bytes/4) | per tool |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    anyio.run(main)
    sys.exit(0)
