"""`cargo xtask bench shell`: bastion-shell against Desktop Commander, and the sandbox's own cost.

Measured in one run on one machine:

* latency of one `run_command` (bastion-shell, read-only profile, every command in the full
  sandbox) vs Desktop Commander's `start_process` for the same command (`echo`, `ls -la`), over
  stdio through the official MCP Python SDK;
* CPU per call: the server's own (utime+stime of the server process) and the whole tree's
  (including the reaped sandbox trampolines and the commands);
* the sandbox's own cost: spawning `/bin/echo` directly vs through the trampoline with nothing
  applied, with Landlock + seccomp + rlimits, and with the namespaces as well (what
  run_command uses).

Results go to `<out>/shell.md` and `<out>/shell.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fs_bench import connect, server_path, tree_cpu_seconds, CLK_TCK, _stat_fields  # noqa: E402
from mcp import StdioServerParameters  # noqa: E402


def own_cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def call(session, name: str, args: dict[str, Any]) -> types.CallToolResult:
    request = types.CallToolRequest(params=types.CallToolRequestParams(name=name, arguments=args))
    return await session.send_request(request, types.CallToolResult)


async def measure(params: StdioServerParameters, name: str, args: dict[str, Any], calls: int, expect: str) -> dict[str, Any]:
    errlog = open(os.devnull, "w")
    async with connect(params, errlog) as (session, pid, _startup):
        for _ in range(10):
            r = await call(session, name, args)
        text = "".join(c.text for c in r.content if getattr(c, "text", None))
        if r.is_error or expect not in text:
            raise RuntimeError(f"{name} {args} did not work: {text[:300]}")
        cpu0, own0 = tree_cpu_seconds(pid), own_cpu_seconds(pid)
        lat = []
        t0 = time.perf_counter()
        for _ in range(calls):
            t = time.perf_counter()
            await call(session, name, args)
            lat.append((time.perf_counter() - t) * 1000)
        wall = time.perf_counter() - t0
        cpu1, own1 = tree_cpu_seconds(pid), own_cpu_seconds(pid)
    return {
        "median_ms": statistics.median(lat),
        "p90_ms": sorted(lat)[int(0.9 * (len(lat) - 1))],
        "mean_ms": wall * 1000 / calls,
        "server_cpu_ms": (own1 - own0) * 1000 / calls,
        "tree_cpu_ms": (cpu1 - cpu0) * 1000 / calls,
    }


def spawn_cost(bastion: Path, work: Path, runs: int) -> dict[str, float]:
    """Median wall time of one spawn-to-exit of /bin/echo, direct and through the trampoline."""
    base = {
        "program": "/bin/echo",
        "argv0": "echo",
        "args": ["hello"],
        "cwd": str(work),
        "env": [["PATH", "/usr/bin:/bin"]],
        "read_paths": [str(work)],
        "write_paths": [],
        "tcp_connect": [],
        "rlimits": {"cpu_seconds": 60, "address_space_mib": 8192, "file_size_mib": 2048, "open_files": 4096},
        "probe": False,
    }
    configs = {
        "direct (no trampoline)": None,
        "trampoline, nothing applied": dict(landlock=False, seccomp=False, namespaces=False),
        "+ rlimits, Landlock, seccomp": dict(landlock=True, seccomp=True, namespaces=False),
        "+ user/pid/mount namespaces (run_command)": dict(landlock=True, seccomp=True, namespaces=True),
    }
    out = {}
    for label, extra in configs.items():
        if extra is None:
            argv = ["/bin/echo", "hello"]
        else:
            spec = dict(base, **extra, parent_pid=os.getpid())
            argv = [str(bastion), "__sandbox-exec", json.dumps(spec)]
        for _ in range(20):
            subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
            times.append((time.perf_counter() - t) * 1000)
        out[label] = statistics.median(times)
    return out


def dc_params(peers: Path, work: Path, path: str) -> tuple[StdioServerParameters | None, str, Path | None]:
    entry = peers / "node_modules/@wonderwhy-er/desktop-commander/dist/index.js"
    node = shutil.which("node")
    if node is None or not entry.is_file():
        return None, f"not installed: {entry}", None
    home = Path(tempfile.mkdtemp(prefix="bench-dc-home-"))
    cfg = home / ".claude-server-commander"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({"telemetryEnabled": False, "allowedDirectories": [str(work)]}))
    version = json.loads((entry.parent.parent / "package.json").read_text()).get("version", "?")
    params = StdioServerParameters(
        command=node,
        args=[str(entry)],
        env={
            "PATH": path,
            "HOME": str(home),
            "DESKTOP_COMMANDER_DISABLE_TELEMETRY": "1",
            "DC_FLAG_URL": "http://127.0.0.1:9/flags.json",
        },
        cwd=str(work),
    )
    return params, f"@wonderwhy-er/desktop-commander {version}", home


async def main_async(a: argparse.Namespace) -> int:
    work = Path(a.work).resolve()
    (work / "files").mkdir(parents=True, exist_ok=True)
    for i in range(20):
        (work / "files" / f"f{i:02}.txt").write_text("x" * 100)
    results: dict[str, Any] = {"calls": a.calls, "load_before": os.getloadavg()[0]}
    bastion = StdioServerParameters(
        command=str(a.bastion), args=["--root", str(work), "--profile", "read-only"], env={"PATH": "/usr/bin:/bin"}
    )
    ops = {
        "echo": ({"program": "echo", "args": ["hello"]}, "echo hello"),
        "ls": ({"program": "ls", "args": ["-la", "files"]}, "ls -la files"),
    }
    results["bastion-shell"] = {}
    for op, (args, _) in ops.items():
        results["bastion-shell"][op] = await measure(bastion, "run_command", args, a.calls, "hello" if op == "echo" else "f00")
    # Desktop Commander runs `python3 --version` on every call; with this machine's PATH that is
    # a pyenv shim (~30 ms). The fair row strips the shims; the second row is the default PATH.
    variants = [("desktop-commander", server_path()), ("desktop-commander (default PATH)", os.environ.get("PATH", ""))]
    for label, path in variants:
        dc, dc_name, home = dc_params(Path(a.peers_dir), work, path)
        results["desktop_commander_version"] = dc_name
        if dc is None:
            continue
        results[label] = {}
        for op, (_, command) in ops.items():
            try:
                results[label][op] = await measure(
                    dc, "start_process", {"command": command, "timeout_ms": 10000}, max(20, a.calls // 4),
                    "hello" if op == "echo" else "f00",
                )
            except Exception as e:  # reported, not fatal
                results[label][op] = {"error": str(e)[:200]}
        shutil.rmtree(home, ignore_errors=True)
    results["spawn_ms"] = spawn_cost(Path(a.bastion), work, a.spawns)
    results["load_after"] = os.getloadavg()[0]
    out = Path(a.out)
    (out / "shell.json").write_text(json.dumps(results, indent=2))
    (out / "shell.md").write_text(render(results))
    print(render(results))
    return 0


def render(r: dict[str, Any]) -> str:
    lines = [
        f"Load average {r['load_before']:.2f} before, {r['load_after']:.2f} after; {r['calls']} timed calls per bastion-shell op.",
        "",
        "| command | server | median latency | p90 | server CPU / call | whole tree CPU / call |",
        "|---|---|---|---|---|---|",
    ]
    for op in ("echo", "ls"):
        for server in ("bastion-shell", "desktop-commander", "desktop-commander (default PATH)"):
            m = r.get(server, {}).get(op)
            if not m:
                continue
            if "error" in m:
                lines.append(f"| {op} | {server} | n/a ({m['error']}) | | | |")
                continue
            lines.append(
                f"| {op} | {server} | {m['median_ms']:.2f} ms | {m['p90_ms']:.2f} ms | {m['server_cpu_ms']:.2f} ms | {m['tree_cpu_ms']:.2f} ms |"
            )
        b = r.get("bastion-shell", {}).get(op)
        for peer in ("desktop-commander", "desktop-commander (default PATH)"):
            d = r.get(peer, {}).get(op)
            if b and d and "median_ms" in d:
                lines.append(f"| {op} | ratio vs {peer} | **{d['median_ms'] / b['median_ms']:.1f}×** | | | |")
    lines += ["", "Sandbox cost (median wall time of one spawn of `/bin/echo hello` to exit):", ""]
    lines += ["| how | median |", "|---|---|"]
    spawn = r["spawn_ms"]
    for label, ms in spawn.items():
        lines.append(f"| {label} | {ms:.2f} ms |")
    direct = spawn["direct (no trampoline)"]
    full = spawn["+ user/pid/mount namespaces (run_command)"]
    bare = spawn["trampoline, nothing applied"]
    lines += [
        "",
        f"Sandbox overhead over a direct spawn: {full - direct:.2f} ms (of which the re-exec trampoline itself {bare - direct:.2f} ms).",
        "",
        f"Peer: {r.get('desktop_commander_version')}",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bastion", required=True)
    p.add_argument("--peers-dir", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--spawns", type=int, default=300)
    return anyio.run(main_async, p.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
