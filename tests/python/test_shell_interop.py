"""bastion-shell through the official MCP Python SDK: the tools end to end, the Desktop
Commander bypasses as argv, and project code (the build-test profile's `make`) trying to leave
the sandbox. Every case checks that no marker file appeared and no process survived."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from fsclient import bin_dir

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

SECRET_ENV = {
    "GITHUB_TOKEN": "ghp_SENTINELTOKEN123",
    "MY_SECRET": "SENTINEL-SECRET-VALUE",
    "SSH_AUTH_SOCK": "/tmp/SENTINEL-agent.sock",
    "LD_PRELOAD": "/nonexistent/SENTINEL.so",
    "NODE_OPTIONS": "--require /SENTINEL.js",
    "RIPGREP_CONFIG_PATH": "/SENTINEL-rgrc",
    "PYTEST_ADDOPTS": "-p SENTINEL",
    "GIT_DIR": "/SENTINEL-git",
    "LESSOPEN": "|/SENTINEL %s",
}


@asynccontextmanager
async def shell(root: Path, *args: str, binary: str = "bastion-shell"):
    exe = bin_dir() / binary
    if not exe.is_file():
        pytest.fail(f"{exe} is missing; run cargo build --workspace --bins")
    argv = ([] if binary == "bastion-shell" else ["shell"]) + ["--root", str(root), *args]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"), **SECRET_ENV}
    params = StdioServerParameters(command=str(exe), args=argv, env=env)
    async with stdio_client(params) as (r, w):
        async with ClientSession(r, w) as session:
            with anyio.fail_after(20):
                await session.initialize()
            yield session


async def call(session: ClientSession, name: str, args: dict[str, Any]):
    with anyio.fail_after(60):
        return await session.call_tool(name, args)


async def ok(session, name, args) -> dict[str, Any]:
    r = await call(session, name, args)
    assert not r.is_error, r.content
    return r.structured_content


async def err(session, name, args, *codes: str) -> dict[str, Any]:
    r = await call(session, name, args)
    assert r.is_error, r.structured_content
    assert r.structured_content["code"] in codes, r.structured_content
    text = r.content[0].text
    assert text.startswith(r.structured_content["code"]) or text.startswith("{"), text
    return r.structured_content


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "src").mkdir(parents=True)
    outside.mkdir()
    (root / "a.txt").write_text("banana\napple\ncherry\n")
    (root / "src" / "main.rs").write_text("fn main() { println!(\"hi\"); } // TODO\n")
    (root / ".env").write_text("API_KEY=SENTINEL-DOTENV\n")
    (outside / "secret.txt").write_text("SENTINEL-OUTSIDE\n")
    (root / "out-link").symlink_to(outside)
    return {"root": root, "outside": outside, "tmp": tmp_path}


def markers(t: dict[str, Path], name: str) -> list[Path]:
    return [p for p in t["tmp"].rglob(f"*{name}*")]


def alive(tag: str) -> bool:
    return subprocess.run(["pgrep", "-f", tag], capture_output=True).returncode == 0


async def test_tools_and_annotations(tree):
    async with shell(tree["root"]) as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert set(tools) == {
            "run_command", "start_process", "read_process_output", "write_process_input",
            "list_processes", "kill_process", "list_allowed_commands", "sandbox_status",
        }
        for t in tools.values():
            a = t.annotations
            assert t.title and None not in (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint)
        assert tools["run_command"].annotations.read_only_hint is True
    async with shell(tree["root"], "--profile", "build-test") as s:
        run = {t.name: t for t in (await s.list_tools()).tools}["run_command"]
        assert run.annotations.read_only_hint is False and run.annotations.destructive_hint is True


async def test_run_command_basics(tree):
    async with shell(tree["root"]) as s:
        out = await ok(s, "run_command", {"program": "sort", "args": ["a.txt"]})
        assert out["stdout"] == "apple\nbanana\ncherry\n" and out["exit_code"] == 0
        out = await ok(s, "run_command", {"program": "sort", "args": ["-r"], "stdin": "a\nc\nb\n"})
        assert out["stdout"] == "c\nb\na\n"
        out = await ok(s, "run_command", {"program": "rg", "args": ["-n", "TODO"], "cwd": "src"})
        assert "main.rs:1:" in out["stdout"] or out["stdout"].startswith("1:"), out
        out = await ok(s, "run_command", {"program": "ls", "args": ["missing"]})
        assert out["exit_code"] != 0 and "missing" in out["stderr"]
        out = await ok(s, "run_command", {"program": "sort", "args": ["--rev", "a.txt"]})
        assert out["args"] == ["--reverse", "--", "a.txt"]
        status = await ok(s, "sandbox_status", {})
        assert status["landlock"] == "full" and status["seccomp"] and status["userns"], status
        allowed = await ok(s, "list_allowed_commands", {})
        names = {c["program"] for c in allowed["commands"]}
        assert {"ls", "rg", "find", "jq"} <= names and "sh" not in names


async def test_big_output_is_budgeted(tree):
    (tree["root"] / "big.txt").write_text("x" * 99 + "\n" + ("y" * 99 + "\n") * 20000)
    async with shell(tree["root"]) as s:
        out = await ok(s, "run_command", {"program": "cat", "args": ["big.txt"]})
        assert out["stdout_truncated"] and out["stdout_bytes"] == 2_000_100
        assert out["stdout"].startswith("x" * 99) and "bytes omitted" in out["stdout"]


DC_BYPASSES: list[tuple[str, list[str]]] = [
    ("sh", ["-c", "touch {m}"]),
    ("bash", ["-c", "touch {m}"]),
    ("env", ["touch", "{m}"]),
    ("xargs", ["touch", "{m}"]),
    ("eval", ["touch {m}"]),
    ("command", ["touch", "{m}"]),
    ("\\touch", ["{m}"]),
    ("'touch'", ["{m}"]),
    ('"touch"', ["{m}"]),
    ("ls\ntouch", ["{m}"]),
    ("ls;touch", ["{m}"]),
    ("{", ["touch", "{m};", "}}"]),
    ("$(echo touch)", ["{m}"]),
    ("python3", ["-c", "open('{m}','w')"]),
    ("perl", ["-e", "open(F,'>{m}')"]),
    ("awk", ["BEGIN{{system(\"touch {m}\")}}"]),
    ("sed", ["-n", "1e touch {m}", "a.txt"]),
    ("git", ["-c", "core.pager=touch {m}", "log"]),
    ("sudo", ["touch", "{m}"]),
    ("timeout", ["5", "touch", "{m}"]),
    ("nice", ["touch", "{m}"]),
    ("/bin/ls", []),
    ("touch", ["{m}"]),
    ("find", [".", "-exec", "touch", "{m}", ";"]),
    ("find", [".", "-fprint", "{m}"]),
    ("sort", ["-o", "{m}", "a.txt"]),
    ("sort", ["--compress-prog=touch", "a.txt"]),
    ("sort", ["a.txt", "--out={m}"]),
    ("rg", ["x", "a.txt", "--pre", "touch"]),
    ("tree", ["-o", "{m}"]),
    ("file", ["-C", "-m", "{m}"]),
    ("uniq", ["a.txt", "{m}"]),
    ("jq", ["--rawfile", "x", "../outside/secret.txt", "."]),
    ("wc", ["--files0-from=../outside/secret.txt"]),
]


@pytest.mark.parametrize("program,args", DC_BYPASSES, ids=lambda v: repr(v)[:40])
async def test_bypasses_are_refused(tree, program, args):
    m = f"MARKER-{secrets.token_hex(4)}"
    async with shell(tree["root"]) as s:
        r = await call(s, "run_command", {"program": program, "args": [a.format(m=m) for a in args]})
        assert r.is_error, r.structured_content
        assert r.structured_content["code"] in {"command_not_allowed", "argument_not_allowed", "path_outside_root"}
        assert "SENTINEL" not in json.dumps(r.structured_content)
    assert markers(tree, m) == []


@pytest.mark.parametrize("arg", ["; touch {m}", "&& touch {m}", "| touch {m}", "$(touch {m})", "`touch {m}`",
                                 "\ntouch {m}", "> {m}", "${{IFS}}touch${{IFS}}{m}", "';touch {m};'", "%0atouch {m}"])
async def test_metacharacters_are_literal(tree, arg):
    m = f"MARKER-{secrets.token_hex(4)}"
    payload = arg.format(m=m)
    async with shell(tree["root"]) as s:
        out = await ok(s, "run_command", {"program": "echo", "args": [payload]})
        assert out["stdout"] == payload + "\n"
        out = await ok(s, "run_command", {"program": "ls", "args": [payload]})
        assert out["exit_code"] != 0
        await err(s, "run_command", {"program": "ls", "cwd": payload}, "not_found", "path_outside_root", "invalid_path")
    assert markers(tree, m) == []


@pytest.mark.parametrize(
    "program,args,cwd",
    [
        ("cat", ["/etc/passwd"], None),
        ("cat", ["../outside/secret.txt"], None),
        ("cat", ["out-link/secret.txt"], None),
        ("cat", ["out-link/../outside/secret.txt"], None),
        ("cat", ["/proc/self/environ"], None),
        ("cat", [".env"], None),
        ("grep", ["-r", "SENTINEL", "/tmp"], None),
        ("ls", [], "/etc"),
        ("ls", [], "../outside"),
        ("ls", [], "out-link"),
    ],
)
async def test_paths_outside_are_refused(tree, program, args, cwd):
    async with shell(tree["root"]) as s:
        req: dict[str, Any] = {"program": program, "args": args}
        if cwd:
            req["cwd"] = cwd
        r = await call(s, "run_command", req)
        assert r.is_error and r.structured_content["code"] in {"path_outside_root", "denied_by_glob"}, r.structured_content
        assert "SENTINEL" not in json.dumps(r.structured_content)


def makefile(root: Path, recipes: dict[str, str]) -> None:
    text = "".join(f"{target}:\n\t{line}\n" for target, line in recipes.items())
    (root / "Makefile").write_text(text)


async def test_build_test_code_is_contained(tree):
    m = f"MARKER-{secrets.token_hex(4)}"
    out_dir, outside = tree["root"], tree["outside"]
    listener = __import__("socket").socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    recipes = {
        "readout": f"-cat {outside}/secret.txt; -cat /etc/shadow; -ls /root",
        "writeout": f"-touch {outside}/{m}; -touch /tmp/{m}",
        "net": f"-python3 -c \"import socket; s=socket.socket(); s.connect(('127.0.0.1', {port})); print('CONNECTED')\"",
        "udp": "-python3 -c \"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9)); print('SENT')\"",
        "env": "env",
        "caps": "grep -E 'CapEff|NoNewPrivs' /proc/self/status",
        "procs": "ps -e",
        "server": "-kill -0 $(SERVER_PID) && echo SIGNALLED; -cat /proc/$(SERVER_PID)/environ",
        "inside": f"echo built > {out_dir}/built.txt",
    }
    makefile(tree["root"], recipes)
    async with shell(tree["root"], "--profile", "build-test") as s:
        out = await ok(s, "run_command", {"program": "make", "args": ["-s", "readout"]})
        assert "SENTINEL" not in out["stdout"] + out["stderr"]
        await ok(s, "run_command", {"program": "make", "args": ["-s", "writeout"]})
        assert markers(tree, m) == [] and not Path(f"/tmp/{m}").exists()
        out = await ok(s, "run_command", {"program": "make", "args": ["-s", "net"]})
        assert "CONNECTED" not in out["stdout"]
        with pytest.raises(BlockingIOError):
            listener.accept()
        out = await ok(s, "run_command", {"program": "make", "args": ["-s", "udp"]})
        assert "SENT" not in out["stdout"]
        out = await ok(s, "run_command", {"program": "make", "args": ["-s", "env"]})
        assert "SENTINEL" not in out["stdout"]
        for name in SECRET_ENV:
            assert f"\n{name}=" not in "\n" + out["stdout"], name
        out = await ok(s, "run_command", {"program": "make", "args": ["-s", "caps"]})
        assert "CapEff:\t0000000000000000" in out["stdout"] and "NoNewPrivs:\t1" in out["stdout"]
        out = await ok(s, "run_command", {"program": "make", "args": ["-s", "procs"]})
        assert len(out["stdout"].strip().splitlines()) <= 5, out["stdout"]
        server_pid = max(int(p) for p in subprocess.run(["pgrep", "-f", "bastion-shell --root " + str(tree["root"])],
                                                          capture_output=True, text=True).stdout.split())
        out = await ok(s, "run_command", {"program": "make", "args": ["-s", "server", f"SERVER_PID={server_pid}"]})
        assert "SIGNALLED" not in out["stdout"] and "SENTINEL" not in out["stdout"]
        out = await ok(s, "run_command", {"program": "make", "args": ["-s", "inside"]})
        assert (tree["root"] / "built.txt").read_text() == "built\n"
    listener.close()


async def test_timeout_kills_detached_descendants(tree):
    # The tag appears only in the detached sleep's own command line (built at run time).
    digits = secrets.randbelow(10**8)
    tag = f"sleep 300.{digits}"
    makefile(tree["root"], {"hang": f"N={digits}; setsid sleep 300.$$N & echo started; sleep 301"})
    async with shell(tree["root"], "--profile", "build-test") as s:
        t0 = time.monotonic()
        e = await err(s, "run_command", {"program": "make", "args": ["-s", "hang"], "timeout_ms": 1000}, "timeout")
        assert time.monotonic() - t0 < 5
        assert "started" in e["stdout"]
    deadline = time.monotonic() + 3
    while alive(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(tag)


async def test_background_processes(tree):
    digits = secrets.randbelow(10**8)
    tag = f"sleep 302.{digits}"
    makefile(tree["root"], {"count": "for i in 1 2 3; do echo line$$i; done", "wait": f"N={digits}; sleep 302.$$N"})
    async with shell(tree["root"], "--profile", "build-test") as s:
        p = await ok(s, "start_process", {"program": "make", "args": ["-s", "count"]})
        out = await ok(s, "read_process_output", {"id": p["id"], "offset": 0, "wait_ms": 5000})
        while out["running"]:
            out = await ok(s, "read_process_output", {"id": p["id"], "offset": 0, "wait_ms": 200})
        assert out["output"] == "line1\nline2\nline3\n" and out["exit_code"] == 0
        tail = await ok(s, "read_process_output", {"id": p["id"], "offset": -6})
        assert tail["output"] == "line3\n" and tail["next_offset"] == out["next_offset"]
        sorter = await ok(s, "start_process", {"program": "sort", "args": []})
        await ok(s, "write_process_input", {"id": sorter["id"], "data": "b\na\n", "close": True})
        out = await ok(s, "read_process_output", {"id": sorter["id"], "offset": 0, "wait_ms": 5000})
        while out["running"]:
            out = await ok(s, "read_process_output", {"id": sorter["id"], "offset": 0, "wait_ms": 200})
        assert out["output"] == "a\nb\n"
        waiter = await ok(s, "start_process", {"program": "make", "args": ["-s", "wait"]})
        listed = await ok(s, "list_processes", {})
        assert waiter["id"] in [p["id"] for p in listed["processes"] if p["running"]]
        killed = await ok(s, "kill_process", {"id": waiter["id"]})
        assert killed["killed"]
        await err(s, "read_process_output", {"id": 9999}, "process_not_found")
        await ok(s, "start_process", {"program": "make", "args": ["-s", "wait"]})
        deadline = time.monotonic() + 5
        while not alive(tag) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive(tag)
    # The session is closed: the server and every process it started are gone.
    deadline = time.monotonic() + 3
    while alive(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(tag)


async def test_progress_and_the_bastion_binary(tree):
    makefile(tree["root"], {"slow": "sleep 2.5; echo done"})
    progress: list[float] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append(p)

    async with shell(tree["root"], "--profile", "build-test", binary="bastion") as s:
        with anyio.fail_after(30):
            r = await s.call_tool("run_command", {"program": "make", "args": ["-s", "slow"]}, progress_callback=on_progress)
        assert not r.is_error and r.structured_content["stdout"] == "done\n"
    assert len(progress) >= 2


async def test_audit_journal(tree):
    log = tree["tmp"] / "audit.jsonl"
    async with shell(tree["root"], "--audit-log", str(log)) as s:
        await ok(s, "run_command", {"program": "echo", "args": ["hi"]})
        await call(s, "run_command", {"program": "sh", "args": ["-c", "id"]})
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    events = [line for line in lines if line.get("tool") == "run_command"]
    assert [e["outcome"] for e in events] == ["ok", "command_not_allowed"]
    assert any(line.get("event") == "start" and line["detail"]["sandbox"]["landlock"] == "full" for line in lines)
