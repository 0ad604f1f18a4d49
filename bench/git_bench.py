#!/usr/bin/env python3
"""Git MCP server benchmark: bastion-git against mcp-server-git and the git program, in one run.

Started by ``cargo xtask bench git`` (which installs the peer into ``.cache/peers-venv``, builds
bastion in release mode and generates the repository). Each server is driven over stdio by the
official MCP Python SDK; for every operation it makes three warm-up calls and then ``--runs``
timed calls, reporting the median wall time per call (spawn to ``initialize`` is reported
separately). The ``git`` program runs the equivalent command on the same repository, timed by
hyperfine when present (no shell, warm-up runs) or by a loop of subprocess runs.

For each server it also reports the CPU the server spent per call (its process tree, from
``/proc``: the nanosecond run time of every live thread in ``/proc/<pid>/task/*/schedstat`` plus
the ``cutime+cstime`` of children already reaped, such as the ``git`` processes mcp-server-git
starts) and the CPU the client (this Python process: the SDK reading, parsing and validating the
answer) spent per call, over the timed calls. Wall time per call is roughly server CPU plus client
CPU plus the hand-offs between them; the client part grows with the size of the answer and is the
same for any server returning that many bytes.

Operations: status; log of 10 and of 2 000 commits; diff of the work tree; diff against
HEAD~100; show HEAD. Calls go through ``ClientSession.send_request`` so the SDK's client-side
output-schema validation (which only bastion's structured results would trigger) is not timed.

Writes ``git.md`` and ``git.json`` (plus timestamped copies) into ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

CALL_TIMEOUT = 300.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

# (operation, bastion-git call, mcp-server-git call, git argv)
OPERATIONS: list[tuple[str, tuple[str, dict[str, Any]], tuple[str, dict[str, Any]], list[str]]] = [
    ("status", ("status", {}), ("git_status", {}), ["status"]),
    ("log of 10", ("log", {"max_count": 10}), ("git_log", {"max_count": 10}), ["log", "-n", "10"]),
    ("log of 2 000", ("log", {"max_count": 2000}), ("git_log", {"max_count": 2000}), ["log", "-n", "2000"]),
    ("diff of the work tree", ("diff", {}), ("git_diff_unstaged", {}), ["diff"]),
    ("diff against HEAD~100", ("diff", {"from": "HEAD~100"}), ("git_diff", {"target": "HEAD~100"}), ["diff", "HEAD~100"]),
    ("show HEAD", ("show", {}), ("git_show", {"revision": "HEAD"}), ["show", "HEAD"]),
]


async def call(session: ClientSession, name: str, args: dict[str, Any]) -> types.CallToolResult:
    request = types.CallToolRequest(params=types.CallToolRequestParams(name=name, arguments=args))
    return await session.send_request(request, types.CallToolResult)


def result_chars(r: types.CallToolResult) -> int:
    return sum(len(c.text) for c in r.content if isinstance(c, types.TextContent))


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    raw = f.read()
            except OSError:
                continue
            children.setdefault(int(raw[raw.rindex(")") + 2 :].split()[1]), []).append(int(entry))
    return children


def server_cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and its live descendants (every thread, nanosecond resolution) plus the
    children they already reaped (``cutime+cstime``, clock ticks)."""
    children, todo, total = _children_map(), [pid], 0.0
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0]) / 1e9
            with open(f"/proc/{p}/stat") as f:
                raw = f.read()
            total += sum(int(x) for x in raw[raw.rindex(")") + 2 :].split()[13:15]) / CLK_TCK
        except OSError:
            continue
    return total


@asynccontextmanager
async def connect(params: StdioServerParameters, errlog: Any):
    """Spawn, initialize, and yield (session, server pid or None, seconds to initialize)."""
    before = set(_children_map().get(os.getpid(), []))
    t0 = time.perf_counter()
    async with stdio_client(params, errlog=errlog) as (read, write):
        async with ClientSession(read, write) as session:
            with anyio.fail_after(60):
                await session.initialize()
            startup = time.perf_counter() - t0
            new = set(_children_map().get(os.getpid(), [])) - before
            yield session, (new.pop() if len(new) == 1 else None), startup


async def bench_server(name: str, params: StdioServerParameters, which: int, extra: dict[str, Any], runs: int, log: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"server": name, "ops": {}}
    with open(log, "w") as errlog:
        try:
            async with connect(params, errlog) as (session, pid, startup):
                out["startup_ms"] = startup * 1e3
                for op in OPERATIONS:
                    tool, args = op[which]
                    args = {**extra, **args}
                    try:
                        with anyio.fail_after(CALL_TIMEOUT):
                            first = await call(session, tool, args)
                            if first.is_error:
                                raise RuntimeError(f"{tool} failed: {first.content[0].text[:200] if first.content else ''}")
                            for _ in range(2):
                                await call(session, tool, args)
                            times = []
                            cpu0 = server_cpu_seconds(pid) if pid else None
                            client0 = time.process_time()
                            for _ in range(runs):
                                t0 = time.perf_counter()
                                await call(session, tool, args)
                                times.append((time.perf_counter() - t0) * 1e3)
                            client = (time.process_time() - client0) / runs * 1e3
                            server = (server_cpu_seconds(pid) - cpu0) / runs * 1e3 if cpu0 is not None else None
                        structured = first.structured_content or {}
                        out["ops"][op[0]] = {
                            "median_ms": statistics.median(times),
                            "min_ms": min(times),
                            "server_cpu_ms": server,
                            "client_cpu_ms": client,
                            "chars": result_chars(first),
                            "truncated": bool(structured.get("truncated")),
                        }
                    except Exception as e:  # noqa: BLE001 - reported, not fatal
                        out["ops"][op[0]] = {"status": f"n/a ({e})"}
        except Exception as e:  # noqa: BLE001
            out["status"] = f"n/a ({e})"
    return out


def time_git(repo: Path, argv: list[str], runs: int) -> dict[str, Any]:
    git = shutil.which("git") or "git"
    cmd = [git, "-C", str(repo), *argv]
    env = {**os.environ, "GIT_PAGER": "cat", "PAGER": "cat"}
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out: dict[str, Any] = {"command": "git " + " ".join(argv), "chars": len(done.stdout.decode(errors="replace"))}
    hyperfine = shutil.which("hyperfine")
    if hyperfine:
        with tempfile.NamedTemporaryFile(suffix=".json") as export:
            timed = subprocess.run(
                [hyperfine, "--warmup", "3", "--runs", str(max(runs, 10)), "--shell=none", "--style", "none",
                 "--export-json", export.name, " ".join(cmd)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
            )  # fmt: skip
            if timed.returncode == 0:
                res = json.loads(Path(export.name).read_text())["results"][0]
                out.update(
                    timer="hyperfine",
                    median_ms=res["median"] * 1e3,
                    min_ms=res["min"] * 1e3,
                    cpu_ms=(res["user"] + res["system"]) * 1e3,
                )
                return out
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        walls.append((time.perf_counter() - t0) * 1e3)
    out.update(timer="subprocess", median_ms=statistics.median(walls), min_ms=min(walls))
    return out


def fmt(ms: float | None) -> str:
    if ms is None:
        return "n/a"
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def render(report: dict[str, Any]) -> str:
    b, p, g = report["bastion"], report["peer"], report["git"]
    lines = [
        "# bastion-git against mcp-server-git and the git program",
        "",
        f"Run {report['time']} on {report['host']}; load average {report['load_start']} → {report['load_end']}.",
        f"Repository: {report['commits']} commits, {report['files']} files, a dirty work tree. "
        f"Median of {report['runs']} calls per operation after 3 warm-up calls; git timed by {report['git_timer']}.",
        f"Peers: mcp-server-git {report['peer_version']} (Python {report['peer_python']}); git {report['git_version']}; "
        f"client: mcp {report['mcp_version']}.",
        "",
        "| operation | bastion-git | mcp-server-git | git CLI | peer ÷ bastion (target ≥ 5×) | bastion ÷ git (target ≤ 1.5×) |",
        "|---|---|---|---|---|---|",
    ]
    for op, *_ in OPERATIONS:
        bo, po, go = b["ops"].get(op, {}), p.get("ops", {}).get(op, {}), g.get(op, {})
        bm, pm, gm = bo.get("median_ms"), po.get("median_ms"), go.get("median_ms")
        speedup = f"{pm / bm:.1f}×" if bm and pm else "n/a"
        vs_git = f"{bm / gm:.2f}×" if bm and gm else "n/a"
        ok_peer = " ✓" if bm and pm and pm / bm >= 5 else (" ✗" if bm and pm else "")
        ok_git = " ✓" if bm and gm and bm / gm <= 1.5 else (" ✗" if bm and gm else "")
        lines.append(
            f"| {op} | {fmt(bm) if bm else bo.get('status', 'n/a')} | {fmt(pm) if pm else po.get('status', p.get('status', 'n/a'))} "
            f"| {fmt(gm)} | {speedup}{ok_peer} | {vs_git}{ok_git} |"
        )
    lines += [
        "",
        "CPU per call (ms): server (its process tree) / client (the Python SDK, this process); git: user+system.",
        "",
        "| operation | bastion-git server | bastion-git client | mcp-server-git server | mcp-server-git client | git CLI |",
        "|---|---|---|---|---|---|",
    ]
    for op, *_ in OPERATIONS:
        bo, po, go = b["ops"].get(op, {}), p.get("ops", {}).get(op, {}), g.get(op, {})
        cell = lambda v: f"{v:.2f}" if isinstance(v, (int, float)) else "n/a"  # noqa: E731
        lines.append(
            f"| {op} | {cell(bo.get('server_cpu_ms'))} | {cell(bo.get('client_cpu_ms'))} "
            f"| {cell(po.get('server_cpu_ms'))} | {cell(po.get('client_cpu_ms'))} | {cell(go.get('cpu_ms'))} |"
        )
    lines += [
        "",
        f"Start-up to initialize: bastion-git {fmt(b.get('startup_ms'))}, mcp-server-git {fmt(p.get('startup_ms'))}.",
        "",
        "Output size (characters of text content): "
        + "; ".join(
            f"{op}: bastion {b['ops'].get(op, {}).get('chars', 'n/a')}, peer {p.get('ops', {}).get(op, {}).get('chars', 'n/a')}, git {g.get(op, {}).get('chars', 'n/a')}"
            for op, *_ in OPERATIONS
        ),
        "",
    ]
    return "\n".join(lines)


async def main_async(a: argparse.Namespace) -> int:
    repo = Path(a.repo).resolve()
    out_dir = Path(a.out)
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    load_start = open("/proc/loadavg").read().split()[0]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    bastion_params = StdioServerParameters(
        command=a.bastion, args=["--root", str(repo), "--config", a.bastion_config], env=env
    )
    bastion = await bench_server("bastion-git", bastion_params, 1, {}, a.runs, logs / "bastion-git.stderr")
    if a.peer_python:
        peer_params = StdioServerParameters(
            command=a.peer_python, args=["-m", "mcp_server_git", "--repository", str(repo)], env=env
        )
        peer = await bench_server("mcp-server-git", peer_params, 2, {"repo_path": str(repo)}, a.runs, logs / "mcp-server-git.stderr")
        peer_version = subprocess.run([a.peer_python, "-c", "import importlib.metadata as m; print(m.version('mcp-server-git'))"], capture_output=True, text=True).stdout.strip()
        peer_py = subprocess.run([a.peer_python, "--version"], capture_output=True, text=True).stdout.split()[-1]
    else:
        peer, peer_version, peer_py = {"status": "n/a (not installed)", "ops": {}}, "n/a", "n/a"
    git = {op: time_git(repo, argv, a.runs) for op, _, _, argv in OPERATIONS}
    commits = subprocess.run(["git", "-C", str(repo), "rev-list", "--count", "HEAD"], capture_output=True, text=True).stdout.strip()
    files = len(subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True, text=True).stdout.splitlines())
    report = {
        "time": dt.datetime.now().isoformat(timespec="seconds"),
        "host": f"{platform.node()} ({os.cpu_count()} CPUs, {platform.release()})",
        "load_start": load_start,
        "load_end": open("/proc/loadavg").read().split()[0],
        "commits": commits,
        "files": files,
        "runs": a.runs,
        "git_timer": next(iter(git.values()))["timer"],
        "peer_version": peer_version,
        "peer_python": peer_py,
        "git_version": subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.split()[-1],
        "mcp_version": pkg_version("mcp"),
        "bastion": bastion,
        "peer": peer,
        "git": git,
    }
    md = render(report)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for name in ["git.md", f"git-{stamp}.md"]:
        (out_dir / name).write_text(md)
    for name in ["git.json", f"git-{stamp}.json"]:
        (out_dir / name).write_text(json.dumps(report, indent=2))
    print(md)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--bastion", required=True)
    ap.add_argument("--bastion-config", required=True)
    ap.add_argument("--peer-python")
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, default=30)
    return anyio.run(main_async, ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
