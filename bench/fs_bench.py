#!/usr/bin/env python3
"""Filesystem MCP server benchmark: bastion-fs against its peers, in one run.

Started by ``cargo xtask bench fs`` (which installs the peers, builds bastion in release mode,
generates the tree and runs this file with the venv's Python). Every server is driven over stdio
by the official MCP Python SDK; for each one it measures, in this order:

* start-up: spawn to the ``initialize`` result, median of ``--spawns`` spawns;
* idle RSS: VmRSS of the server's process tree (the server and its children) after initialize;
* small calls (1 KiB read, directory listing, file info): per-call wall latency p50/p99 and the
  server tree's CPU per call (delta of utime+stime, plus cutime+cstime for reaped children, from
  ``/proc/<pid>/stat`` over all calls, divided by the number of calls);
* name search (a glob) and content search (a regex) over the whole tree: wall time (median of
  ``--search-runs``), server CPU per search and the number of results;

and times ``rg --files -g GLOB`` and ``rg REGEX`` on the same tree (with hyperfine when present)
as the floor. A server that is missing, fails to start or lacks a tool is reported as
``n/a (reason)``; the run itself does not fail for it.

Calls go through ``ClientSession.send_request`` rather than ``call_tool`` so that the SDK's
client-side output-schema validation (which only some servers trigger) is not timed.

Writes ``fs.md`` and ``fs.json`` (plus timestamped copies) into ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 60.0
CALL_TIMEOUT = 120.0
SEARCH_TIMEOUT = 600.0


class NotAvailable(Exception):
    """A server, tool or tool result that cannot be measured; reported as ``n/a (reason)``."""


# --------------------------------------------------------------------------------------------
# /proc helpers


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 is the state)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    children = _children_map()
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def direct_children(pid: int) -> set[int]:
    return set(_children_map().get(pid, []))


def tree_cpu_seconds(pid: int) -> float:
    """utime+stime of the tree plus cutime+cstime (children already reaped), in seconds.

    A descendant reaped between two readings moves from the live sum into its parent's cutime,
    so deltas stay consistent.
    """
    ticks = 0
    for p in process_tree(pid):
        fields = _stat_fields(p)
        if fields is None:
            continue
        # stat fields 14..17 (1-based): utime stime cutime cstime; index 0 here is field 3.
        ticks += sum(int(x) for x in fields[11:15])
    return ticks / CLK_TCK


def tree_rss_bytes(pid: int, key: str = "VmRSS") -> int:
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


# --------------------------------------------------------------------------------------------
# MCP helpers


@asynccontextmanager
async def connect(params: StdioServerParameters, errlog: Any):
    """Spawn, initialize, and yield (session, server pid, seconds from spawn to initialize)."""
    before = direct_children(os.getpid())
    t0 = time.perf_counter()
    async with stdio_client(params, errlog=errlog) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=SEARCH_TIMEOUT) as session:
            with anyio.fail_after(START_TIMEOUT):
                await session.initialize()
            startup = time.perf_counter() - t0
            new = direct_children(os.getpid()) - before
            if len(new) != 1:
                raise NotAvailable(f"cannot identify the server process among {sorted(new)}")
            yield session, new.pop(), startup


async def call(session: ClientSession, name: str, args: dict[str, Any]) -> types.CallToolResult:
    """tools/call without the SDK's client-side output-schema validation."""
    request = types.CallToolRequest(params=types.CallToolRequestParams(name=name, arguments=args))
    return await session.send_request(request, types.CallToolResult)


def result_text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def check(result: types.CallToolResult, what: str) -> types.CallToolResult:
    if result.is_error:
        raise NotAvailable(f"{what} returned an error: {result_text(result)[:160]!r}")
    return result


def count_results(result: types.CallToolResult) -> tuple[int, bool]:
    """Number of results in a search answer, and whether the server said it was truncated.

    Uses the longest list in structured content when there is one, else non-empty text lines.
    """
    sc = result.structured_content
    truncated = False
    if isinstance(sc, dict):
        truncated = bool(sc.get("truncated"))
        lists = [v for v in sc.values() if isinstance(v, list)]
        if lists:
            return max(len(v) for v in lists), truncated
    lines = [ln for ln in result_text(result).splitlines() if ln.strip()]
    return len(lines), truncated


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


# --------------------------------------------------------------------------------------------
# Servers


def server_path() -> str:
    """``$PATH`` without version-manager shim directories (pyenv & co.).

    desktop-commander runs ``python3 --version`` on every tool call (telemetry properties are
    built even with telemetry off); through a pyenv shell shim that costs ~100 ms per call, which
    would measure this machine's shims rather than the server. Every server gets the same PATH.
    """
    parts = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":")
    kept = [p for p in parts if p and "shims" not in p and "/.pyenv/" not in p]
    node = shutil.which("node")
    if node and os.path.dirname(node) not in kept:
        kept.append(os.path.dirname(node))
    return ":".join(dict.fromkeys(kept))


@dataclass
class Server:
    """How to launch one server and how to ask it for each measured operation."""

    name: str
    params: StdioServerParameters | None
    unavailable: str | None = None
    #: op name -> list of candidate argument builders; the first that works is used.
    ops: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    #: custom search drivers (desktop-commander's session-based search).
    search: dict[str, Callable[[ClientSession], Awaitable[tuple[int, bool]]]] = field(
        default_factory=dict
    )
    cleanup: Callable[[], None] | None = None


def bastion_server(binary: Path, tree: Path, m: dict[str, Any]) -> Server:
    if not binary.is_file():
        return Server("bastion-fs", None, f"not built: {binary}")
    one_kib = tree / m["one_kib_file"]
    list_dir = tree / m["list_dir"]
    # Absolute paths first; relative-to-root as the fallback.
    return Server(
        "bastion-fs",
        StdioServerParameters(
            command=str(binary), args=["--root", str(tree)], env={"PATH": server_path()}
        ),
        ops={
            "read": [
                ("read_file", {"path": str(one_kib)}),
                ("read_file", {"path": m["one_kib_file"]}),
            ],
            "list": [
                ("list_directory", {"path": str(list_dir)}),
                ("list_directory", {"path": m["list_dir"]}),
            ],
            "info": [
                ("file_info", {"path": str(one_kib)}),
                ("file_info", {"path": m["one_kib_file"]}),
            ],
            "name_search": [
                ("find_files", {"pattern": m["name_glob"], "max_results": 100000}),
                ("find_files", {"pattern": "**/" + m["name_glob"], "max_results": 100000}),
            ],
            "content_search": [
                ("search_text", {"pattern": m["content_regex"], "max_results": 100000}),
                ("search_text", {"pattern": m["content_regex"]}),
            ],
        },
    )


def server_filesystem(peers: Path, tree: Path, m: dict[str, Any]) -> Server:
    entry = peers / "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"
    node = shutil.which("node")
    if node is None:
        return Server("server-filesystem", None, "node not found")
    if not entry.is_file():
        return Server("server-filesystem", None, f"not installed: {entry}")
    one_kib = str(tree / m["one_kib_file"])
    return Server(
        "server-filesystem",
        StdioServerParameters(
            command=node, args=[str(entry), str(tree)], env={"PATH": server_path()}
        ),
        ops={
            "read": [("read_text_file", {"path": one_kib}), ("read_file", {"path": one_kib})],
            "list": [("list_directory", {"path": str(tree / m["list_dir"])})],
            "info": [("get_file_info", {"path": one_kib})],
            # minimatch against the path relative to `path`: needs `**/` to look in subdirectories.
            "name_search": [
                ("search_files", {"path": str(tree), "pattern": "**/" + m["name_glob"]}),
            ],
        },
    )


def desktop_commander(peers: Path, tree: Path, m: dict[str, Any]) -> Server:
    entry = peers / "node_modules/@wonderwhy-er/desktop-commander/dist/index.js"
    node = shutil.which("node")
    if node is None:
        return Server("desktop-commander", None, "node not found")
    if not entry.is_file():
        return Server("desktop-commander", None, f"not installed: {entry}")
    # Scratch HOME with telemetry off; the feature-flag URL points at a closed loopback port.
    home = Path(tempfile.mkdtemp(prefix="bench-dc-home-"))
    config_dir = home / ".claude-server-commander"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(
        json.dumps({"telemetryEnabled": False, "allowedDirectories": [str(tree)]})
    )
    one_kib = str(tree / m["one_kib_file"])

    async def dc_search(session: ClientSession, args: dict[str, Any]) -> tuple[int, bool]:
        started = check(
            await call(session, "start_search", {"path": str(tree), **args}), "start_search"
        )
        text = result_text(started)
        match = re.search(r"session:\s*(\S+)", text)
        if match is None:
            raise NotAvailable(f"no session id in start_search answer: {text[:120]!r}")
        session_id = match.group(1)
        offset, total = 0, 0
        while True:
            page = check(
                await call(
                    session,
                    "get_more_search_results",
                    {"sessionId": session_id, "offset": offset, "length": 1000},
                ),
                "get_more_search_results",
            )
            ptext = result_text(page)
            shown = re.search(r"Showing results (\d+)-(\d+)", ptext)
            if shown:
                offset = int(shown.group(2)) + 1
            found = re.search(r"Total results found:\s*(\d+)", ptext)
            if found:
                total = int(found.group(1))
            if "Status: COMPLETED" in ptext and offset >= total:
                return total, False
            if not shown:
                await anyio.sleep(0.005)

    return Server(
        "desktop-commander",
        StdioServerParameters(
            command=node,
            args=[str(entry)],
            env={
                "PATH": server_path(),
                "HOME": str(home),
                "DESKTOP_COMMANDER_DISABLE_TELEMETRY": "1",
                "DC_FLAG_URL": "http://127.0.0.1:9/flags.json",
            },
        ),
        ops={
            "read": [("read_file", {"path": one_kib})],
            "list": [("list_directory", {"path": str(tree / m["list_dir"]), "depth": 1})],
            "info": [("get_file_info", {"path": one_kib})],
        },
        search={
            "name_search": lambda s: dc_search(
                s, {"pattern": m["name_glob"], "searchType": "files", "ignoreCase": False}
            ),
            "content_search": lambda s: dc_search(
                s,
                {
                    "pattern": m["content_regex"],
                    "searchType": "content",
                    "ignoreCase": False,
                    "contextLines": 0,
                },
            ),
        },
        cleanup=lambda: shutil.rmtree(home, ignore_errors=True),
    )


# --------------------------------------------------------------------------------------------
# Measurements


@dataclass
class Settings:
    spawns: int
    calls: int
    min_seconds: float
    search_runs: int


async def pick_variant(
    session: ClientSession,
    tools: set[str],
    candidates: list[tuple[str, dict[str, Any]]],
    want_results: bool = False,
) -> tuple[str, dict[str, Any]]:
    """The first candidate (tool, arguments) the server answers without an error.

    With ``want_results`` (searches), a candidate that finds something is preferred over one
    that succeeds with no results (e.g. a glob dialect that needs ``**/``).
    """
    reasons, empty = [], None
    for name, args in candidates:
        if name not in tools:
            reasons.append(f"no tool {name}")
            continue
        try:
            with anyio.fail_after(SEARCH_TIMEOUT):
                result = check(await call(session, name, args), name)
        except NotAvailable as e:
            reasons.append(str(e))
            continue
        if not want_results or count_results(result)[0] > 0:
            return name, args
        empty = empty or (name, args)
    if empty is not None:
        return empty
    raise NotAvailable("; ".join(dict.fromkeys(reasons)))


async def measure_small(
    session: ClientSession, pid: int, name: str, args: dict[str, Any], s: Settings
) -> dict[str, Any]:
    for _ in range(20):  # warm-up
        check(await call(session, name, args), name)
    latencies: list[float] = []
    cpu0, client0, t_start = tree_cpu_seconds(pid), time.process_time(), time.perf_counter()
    with anyio.fail_after(max(CALL_TIMEOUT, s.min_seconds * 20)):
        while True:
            t0 = time.perf_counter_ns()
            result = await call(session, name, args)
            latencies.append((time.perf_counter_ns() - t0) / 1e6)
            if result.is_error:
                check(result, name)
            elapsed = time.perf_counter() - t_start
            if (len(latencies) >= s.calls and elapsed >= s.min_seconds) or len(
                latencies
            ) >= 200_000:
                break
    cpu = tree_cpu_seconds(pid) - cpu0
    n = len(latencies)
    return {
        "tool": name,
        "args": args,
        "calls": n,
        "p50_ms": statistics.median(latencies),
        "p99_ms": pct(latencies, 99),
        "mean_ms": statistics.fmean(latencies),
        "server_cpu_us_per_call": cpu / n * 1e6,
        "client_cpu_us_per_call": (time.process_time() - client0) / n * 1e6,
        "calls_per_s": n / elapsed,
    }


async def measure_search(
    session: ClientSession,
    pid: int,
    run_once: Callable[[], Awaitable[tuple[int, bool]]],
    s: Settings,
    label: str,
) -> dict[str, Any]:
    with anyio.fail_after(SEARCH_TIMEOUT):
        await run_once()  # warm-up (and validation)
    walls, cpus, count, truncated = [], [], 0, False
    for _ in range(s.search_runs):
        cpu0, t0 = tree_cpu_seconds(pid), time.perf_counter()
        with anyio.fail_after(SEARCH_TIMEOUT):
            count, truncated = await run_once()
        walls.append((time.perf_counter() - t0) * 1e3)
        cpus.append((tree_cpu_seconds(pid) - cpu0) * 1e3)
    return {
        "what": label,
        "runs": len(walls),
        "wall_ms_median": statistics.median(walls),
        "wall_ms_min": min(walls),
        "server_cpu_ms_median": statistics.median(cpus),
        "results": count,
        "truncated": truncated,
    }


async def bench_server(server: Server, s: Settings, log_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"name": server.name}
    if server.params is None:
        out["status"] = f"n/a ({server.unavailable})"
        return out
    out["command"] = [server.params.command, *server.params.args]
    errlog_path = log_dir / f"{server.name}.stderr.log"
    with open(errlog_path, "w") as errlog:
        try:
            # Start-up: median of N fresh spawns to the initialize result.
            startups, tools = [], set()
            for i in range(s.spawns):
                async with connect(server.params, errlog) as (session, _pid, startup):
                    startups.append(startup * 1e3)
                    if i == 0:
                        listing = await session.list_tools()
                        tools = {t.name for t in listing.tools}
                        out["server_info"] = str(session.server_info)
            out["startup_ms_median"] = statistics.median(startups)
            out["startup_ms_min"] = min(startups)

            async with connect(server.params, errlog) as (session, pid, _startup):
                await anyio.sleep(1.0)  # let lazy start-up work settle
                out["idle_rss_bytes"] = tree_rss_bytes(pid)
                out["processes_at_idle"] = len(process_tree(pid))
                out["ops"] = {}
                for op in ("read", "list", "info", "name_search", "content_search"):
                    try:
                        if op in server.search:
                            fn = server.search[op]
                            out["ops"][op] = await measure_search(
                                session, pid, lambda fn=fn: fn(session), s, op
                            )
                        elif op in server.ops:
                            is_search = op in ("name_search", "content_search")
                            name, args = await pick_variant(
                                session, tools, server.ops[op], want_results=is_search
                            )
                            if is_search:

                                async def once(name=name, args=args):
                                    return count_results(
                                        check(await call(session, name, args), name)
                                    )

                                out["ops"][op] = await measure_search(session, pid, once, s, op)
                                out["ops"][op]["tool"] = name
                                out["ops"][op]["args"] = args
                            else:
                                out["ops"][op] = await measure_small(session, pid, name, args, s)
                        else:
                            out["ops"][op] = {"status": "n/a (no equivalent tool)"}
                    except NotAvailable as e:
                        out["ops"][op] = {"status": f"n/a ({e})"}
                    except TimeoutError:
                        out["ops"][op] = {"status": "n/a (timed out)"}
                    print(f"  {server.name} {op}: {summarize_op(out['ops'][op])}", file=sys.stderr)
                out["rss_after_calls_bytes"] = tree_rss_bytes(pid)
                out["peak_rss_bytes"] = tree_rss_bytes(pid, "VmHWM")
            out["status"] = "ok"
        except NotAvailable as e:
            out["status"] = f"n/a ({e})"
        except Exception as e:  # noqa: BLE001 - any failure of a peer is a result, not a crash
            reason = f"{type(e).__name__}: {e}".strip()
            out["status"] = f"n/a ({reason[:200]})"
            out["traceback"] = traceback.format_exc()
        finally:
            if server.cleanup:
                server.cleanup()
    if out["status"] != "ok":
        tail = errlog_path.read_text(errors="replace")[-400:].strip()
        if tail:
            out["stderr_tail"] = tail
    return out


def summarize_op(op: dict[str, Any]) -> str:
    if "status" in op:
        return op["status"]
    if "p50_ms" in op:
        cpu = op["server_cpu_us_per_call"]
        return f"p50 {op['p50_ms']:.3f} ms, p99 {op['p99_ms']:.3f} ms, cpu {cpu:.0f} µs"
    return f"{op['wall_ms_median']:.1f} ms, {op['results']} results"


# --------------------------------------------------------------------------------------------
# rg floors


def time_command(argv: list[str], runs: int) -> dict[str, Any]:
    """Time ``argv`` with hyperfine if available, else with repeated subprocess runs."""
    # One plain run for the result count (and to warm the page cache).
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    count = sum(1 for line in done.stdout.splitlines() if line.strip())
    out: dict[str, Any] = {"command": argv, "results": count}
    hyperfine = shutil.which("hyperfine")
    if hyperfine:
        with tempfile.NamedTemporaryFile(suffix=".json") as export:
            cmd = [
                hyperfine,
                *("--warmup", "1", "--runs", str(runs), "--shell=none", "--style", "none"),
                *("--export-json", export.name),
                " ".join(shell_quote(a) for a in argv),
            ]
            timed = subprocess.run(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            if timed.returncode == 0:
                res = json.loads(Path(export.name).read_text())["results"][0]
                out.update(
                    timer="hyperfine",
                    wall_ms_median=res["median"] * 1e3,
                    wall_ms_min=res["min"] * 1e3,
                    cpu_ms_mean=(res["user"] + res["system"]) * 1e3,
                )
                return out
            out["hyperfine_error"] = timed.stderr.strip()[-200:]
    walls, cpus = [], []
    for _ in range(runs):
        before, t0 = os.times(), time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append((time.perf_counter() - t0) * 1e3)
        after = os.times()
        cpus.append(
            (
                after.children_user
                - before.children_user
                + after.children_system
                - before.children_system
            )
            * 1e3
        )
    out.update(
        timer="subprocess",
        wall_ms_median=statistics.median(walls),
        wall_ms_min=min(walls),
        cpu_ms_mean=statistics.fmean(cpus),
    )
    return out


def shell_quote(arg: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./=:-]+", arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


def rg_floors(tree: Path, m: dict[str, Any], runs: int) -> dict[str, Any]:
    rg = shutil.which("rg")
    if rg is None:
        return {op: {"status": "n/a (rg not found)"} for op in ("name_search", "content_search")}
    return {
        "name_search": time_command([rg, "--files", "-g", m["name_glob"], str(tree)], runs),
        "content_search": time_command([rg, m["content_regex"], str(tree)], runs),
    }


# --------------------------------------------------------------------------------------------
# Report


def fmt_ms(ms: float) -> str:
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def fmt_us(us: float) -> str:
    return fmt_ms(us / 1000) if us >= 1000 else f"{us:.0f} µs"


def render(report: dict[str, Any]) -> str:
    servers = report["servers"]
    floors = report["floors"]
    m = report["tree"]
    cols = [s["name"] for s in servers] + ["rg"]
    binaries = "; ".join(
        f"{s['name']} `{' '.join(s['command']).replace(str(m['root']), '$TREE')}`"
        for s in servers
        if s.get("command")
    )
    lines = [
        "# Filesystem servers: one run",
        "",
        f"{report['started']} · {report['machine']} · tree: {m['total_files']} files, "
        f"{m['total_bytes'] / 1e6:.0f} MB ({m['visible']['files']} not ignored) · "
        f"client: mcp {report['versions']['mcp']} (Python {report['versions']['python']})",
        "",
        f"Commands: {binaries}. "
        f"Load average at start / end: {report['loadavg_start']} / {report['loadavg_end']} "
        "(anything else running skews the figures: compare only within one run).",
        "",
        "| metric | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]

    shown_status: set[str] = set()

    def cell(server: dict[str, Any], fn: Callable[[dict[str, Any]], str]) -> str:
        if server.get("status") != "ok":
            # The reason once, in the first row; plain "n/a" below it.
            if server["name"] in shown_status:
                return "n/a"
            shown_status.add(server["name"])
            return server.get("status", "n/a")
        try:
            return fn(server)
        except (KeyError, TypeError):
            return "n/a"

    def op_cell(op: str, fn: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
        def inner(server: dict[str, Any]) -> str:
            data = server["ops"][op]
            return data["status"] if "status" in data else fn(data)

        return inner

    def row(label: str, fn: Callable[[dict[str, Any]], str], floor: str = "") -> None:
        cells = [cell(s, fn) for s in servers] + [floor or "—"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row(
        f"start-up to initialize (median of {report['settings']['spawns']})",
        lambda s: fmt_ms(s["startup_ms_median"]),
    )
    row("idle RSS (process tree)", lambda s: f"{s['idle_rss_bytes'] / 2**20:.1f} MiB")
    small = {"read": "read 1 KiB file", "list": "list directory (25 entries)", "info": "file info"}
    for op, label in small.items():
        row(
            f"{label}: p50 / p99",
            op_cell(op, lambda d: f"{fmt_ms(d['p50_ms'])} / {fmt_ms(d['p99_ms'])}"),
        )
        row(
            f"{label}: server CPU per call",
            op_cell(op, lambda d: fmt_us(d["server_cpu_us_per_call"])),
        )
    row(
        "read 1 KiB file: client (SDK) CPU per call",
        op_cell("read", lambda d: fmt_us(d["client_cpu_us_per_call"])),
    )

    def floor_cell(op: str) -> str:
        f = floors.get(op, {})
        if "status" in f:
            return f["status"]
        return f"{fmt_ms(f['wall_ms_median'])} ({f['results']})"

    searches = {
        "name_search": f"name search `{m['name_glob']}` (results)",
        "content_search": f"content search `{m['content_regex']}` (matches)",
    }
    for op, label in searches.items():
        row(
            label,
            op_cell(
                op,
                lambda d: (
                    f"{fmt_ms(d['wall_ms_median'])} "
                    f"({d['results']}{', truncated' if d.get('truncated') else ''})"
                ),
            ),
            floor_cell(op),
        )

        def ratio(d: dict[str, Any], op: str = op) -> str:
            f = floors.get(op, {})
            if "wall_ms_median" not in f:
                return "n/a"
            return f"{d['wall_ms_median'] / f['wall_ms_median']:.2f}×"

        row(f"{op.replace('_', ' ')}: × rg", op_cell(op, ratio), "1.00×")
        floor_cpu = floors.get(op, {}).get("cpu_ms_mean")
        row(
            f"{op.replace('_', ' ')}: server CPU",
            op_cell(op, lambda d: fmt_ms(d["server_cpu_ms_median"])),
            fmt_ms(floor_cpu) if floor_cpu is not None else "",
        )
    lines += [
        "",
        f"Expected: {m['visible']['widget_files']} `{m['name_glob']}` files and "
        f"{m['visible']['needle_files']} needle lines outside the ignored `generated/` "
        f"({m['ignored']['widget_files']} and {m['ignored']['needle_files']} inside it; "
        "servers that ignore .gitignore find those too).",
        f"Small calls: at least {report['settings']['calls']} calls and "
        f"{report['settings']['min_seconds']} s each after 20 warm-up calls; searches: median of "
        f"{report['settings']['search_runs']} after one warm-up. CPU is utime+stime of the server's "
        "process tree from /proc (10 ms ticks, so short totals are coarse). Servers run with "
        "`$PATH` minus version-manager shims: desktop-commander runs `python3 --version` on "
        "every call.",
    ]
    notes = [f"- {s['name']}: {s['stderr_tail'][-200:]!r}" for s in servers if s.get("stderr_tail")]
    if notes:
        lines += ["", "Server stderr (failed servers):", *notes]
    return "\n".join(lines) + "\n"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (done.stdout or done.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "n/a"


async def main_async(a: argparse.Namespace) -> int:
    tree = Path(a.tree).resolve()
    manifest = json.loads(Path(a.manifest).read_text())
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_dir = out_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    settings = Settings(a.spawns, a.calls, a.min_seconds, a.search_runs)
    peers = Path(a.peers_dir)

    candidates = [
        bastion_server(Path(a.bastion), tree, manifest),
        server_filesystem(peers, tree, manifest),
        desktop_commander(peers, tree, manifest),
    ]
    wanted = {s.strip() for s in a.servers.split(",")} if a.servers else None
    servers = [s for s in candidates if wanted is None or s.name in wanted]

    report: dict[str, Any] = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()}, {os.cpu_count()} cores, Linux {platform.release()}",
        "versions": {
            "python": platform.python_version(),
            "mcp": pkg_version("mcp"),
            "node": tool_version(["node", "--version"]),
            "rg": tool_version(["rg", "--version"]),
            "hyperfine": tool_version(["hyperfine", "--version"]),
        },
        "settings": vars(settings),
        "server_path": server_path(),
        "tree": manifest,
    }
    report["loadavg_start"] = loadavg()
    print("bench: timing rg on the tree (this also warms the page cache)", file=sys.stderr)
    report["floors"] = rg_floors(tree, manifest, a.search_runs)
    report["servers"] = []
    for server in servers:
        print(f"bench: {server.name}", file=sys.stderr)
        result = await bench_server(server, settings, log_dir)
        print(f"bench: {server.name}: {result['status']}", file=sys.stderr)
        report["servers"].append(result)

    report["loadavg_end"] = loadavg()
    markdown = render(report)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for name in ("fs", f"fs-{stamp}"):
        (out_dir / f"{name}.md").write_text(markdown)
        (out_dir / f"{name}.json").write_text(json.dumps(report, indent=2, default=str))
    print(markdown)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", required=True, help="root of the generated bench tree")
    p.add_argument("--manifest", required=True, help="JSON manifest written with the tree")
    p.add_argument("--peers-dir", required=True, help="npm prefix holding the peer servers")
    p.add_argument("--bastion", required=True, help="path of the bastion-fs binary")
    p.add_argument("--out", required=True, help="directory for fs.md / fs.json")
    p.add_argument("--spawns", type=int, default=10)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--min-seconds", type=float, default=2.0)
    p.add_argument("--search-runs", type=int, default=5)
    p.add_argument("--servers", default="", help="comma-separated subset of servers")
    return anyio.run(main_async, p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
