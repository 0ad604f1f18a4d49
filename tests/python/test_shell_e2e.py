"""End-to-end tests of ``bastion-shell`` through the official MCP Python SDK.

Every test builds its own small project under ``tmp_path``, spawns the real binary over stdio
and talks to it only through MCP (see ``shellclient.py``). The ``build-test`` cases use ``make``
with a Makefile written into the root: make runs project code by design, so it is the natural
way to get a long-running or output-producing command.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest

from shellclient import (
    SHELL_TOOLS,
    TOOL_TITLES,
    call,
    call_raw,
    err,
    error_code,
    list_all_tools,
    ok,
    pgrep,
    result_text,
    run,
    run_raw,
    shell_session,
    wait_gone,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


READ_ONLY_PROGRAMS = {
    "basename", "cat", "cmp", "cut", "date", "df", "diff", "dirname", "du", "echo", "file", "find", "grep", "head",
    "jq", "ls", "md5sum", "pwd", "realpath", "rg", "sha256sum", "sort", "stat", "tail", "tr", "tree", "uniq", "wc",
    "which",
}  # fmt: skip
BUILD_TEST_EXTRA = {"cargo", "go", "make", "node", "npm", "npx", "pytest", "python"}

DEFAULT_RLIMITS = {"address_space_mib": 8192, "cpu_seconds": 900, "file_size_mib": 2048, "open_files": 4096}


# --------------------------------------------------------------------------------------------
# The project
# --------------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "README.md").write_text("# demo\nA small project.\n")
    (root / "src" / "main.rs").write_text('fn main() {\n    println!("hi");\n}\n')
    (root / "src" / "lib.rs").write_text("pub fn add(a: i32, b: i32) -> i32 {\n    // TODO: overflow\n    a + b\n}\n")
    (root / "data" / "numbers.txt").write_text("10\n2\n33\n4\n")
    (root / "data" / "words.txt").write_text("pear\napple\nfig\napple\n")
    (root / "data" / "items.json").write_text(json.dumps({"items": [{"name": "alpha", "n": 1}, {"name": "beta", "n": 2}]}))
    (root / "docs" / "deep" / "notes.md").write_text("deep notes\nTODO: write more\n")
    return root


def makefile(root: Path, recipes: dict[str, str | list[str]]) -> None:
    """Writes ``root/Makefile`` with one target per entry (each line of a list is one recipe
    line; ``$`` must be written ``$$`` for the shell)."""
    text = ".PHONY: " + " ".join(recipes) + "\n"
    for target, lines in recipes.items():
        if isinstance(lines, str):
            lines = [lines]
        text += f"{target}:\n" + "".join(f"\t{line}\n" for line in lines)
    (root / "Makefile").write_text(text)


def unique_sleep() -> str:
    """A `sleep` duration that doubles as a unique marker in the process list."""
    return f"{300 + secrets.randbelow(600)}.{secrets.randbelow(10**8):08d}"


# --------------------------------------------------------------------------------------------
# Tools and annotations
# --------------------------------------------------------------------------------------------


def annotations(tool: types.Tool) -> tuple[Any, ...]:
    a = tool.annotations
    assert a is not None, tool.name
    return (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint)


async def test_tools_read_only_profile(project: Path) -> None:
    async with shell_session(project) as s:
        tools = await list_all_tools(s)
    assert [t.name for t in tools] == SHELL_TOOLS
    for t in tools:
        assert t.title == TOOL_TITLES[t.name]
        assert t.annotations is not None and t.annotations.title == TOOL_TITLES[t.name]
        # Running a command is a read in this profile: every tool is read-only and idempotent.
        assert annotations(t) == (True, False, True, False), t.name
        assert t.description, t.name
        assert t.input_schema.get("type") == "object"


async def test_tools_build_test_profile(project: Path) -> None:
    async with shell_session(project, profile="build-test") as s:
        tools = {t.name: t for t in await list_all_tools(s)}
    assert list(tools) == SHELL_TOOLS
    want = {
        "run_command": (False, True, False, False),
        "start_process": (False, True, False, False),
        "write_process_input": (False, True, False, False),
        "kill_process": (False, True, True, False),
        "read_process_output": (True, False, True, False),
        "list_processes": (True, False, True, False),
        "list_allowed_commands": (True, False, True, False),
        "sandbox_status": (True, False, True, False),
    }
    for name, hints in want.items():
        assert annotations(tools[name]) == hints, name
        assert tools[name].title == TOOL_TITLES[name]


async def test_run_command_schema_names_the_fields(project: Path) -> None:
    async with shell_session(project) as s:
        tools = {t.name: t for t in await list_all_tools(s)}
    props = tools["run_command"].input_schema["properties"]
    assert set(props) == {"program", "args", "cwd", "timeout_ms", "stdin"}
    assert tools["run_command"].input_schema.get("required") == ["program"]
    # run_command returns a plain result (a timeout adds the output to the error), the others
    # declare their output.
    for name, field in [("start_process", "id"), ("read_process_output", "next_offset"), ("sandbox_status", "landlock")]:
        assert field in (tools[name].output_schema or {}).get("properties", {}), name


# --------------------------------------------------------------------------------------------
# run_command
# --------------------------------------------------------------------------------------------


async def test_everyday_programs(project: Path) -> None:
    async with shell_session(project) as s:
        out = await run(s, "echo", ["hello", "world"])
        assert out["stdout"] == "hello world\n" and out["stderr"] == "" and out["exit_code"] == 0
        assert out["signal"] is None and out["program"] == "echo" and out["cwd"] == "."
        assert out["stdout_bytes"] == 12 and out["stderr_bytes"] == 0
        assert not out["stdout_truncated"] and not out["stderr_truncated"]
        assert isinstance(out["duration_ms"], int) and out["duration_ms"] < 10_000

        out = await run(s, "ls")
        assert out["stdout"] == "README.md\ndata\ndocs\nsrc\n"
        out = await run(s, "ls", ["-1", "data"])
        assert out["stdout"] == "items.json\nnumbers.txt\nwords.txt\n"
        assert out["args"] == ["-1", "--", "data"]

        out = await run(s, "cat", ["data/numbers.txt"])
        assert out["stdout"] == "10\n2\n33\n4\n"
        out = await run(s, "cat", ["-n", "README.md"])
        assert out["stdout"] == "     1\t# demo\n     2\tA small project.\n"

        out = await run(s, "rg", ["-n", "--sort=path", "TODO"])
        assert out["stdout"] == "docs/deep/notes.md:2:TODO: write more\nsrc/lib.rs:2:    // TODO: overflow\n"
        # rg never reads a config file: --no-config is always first.
        # What ran: --no-config, the deny globs as exclusions (so a recursive search skips
        # secrets), then the call's own arguments.
        assert out["args"][0] == "--no-config" and out["args"][-4:] == ["-n", "--sort=path", "--", "TODO"]
        assert "--iglob=!.env" in out["args"]

        out = await run(s, "grep", ["-n", "apple", "data/words.txt"])
        assert out["stdout"] == "2:apple\n4:apple\n"
        out = await run(s, "grep", ["-rl", "TODO", "src", "docs"])
        assert sorted(out["stdout"].splitlines()) == ["docs/deep/notes.md", "src/lib.rs"]

        out = await run(s, "find", [".", "-name", "*.rs", "-type", "f"])
        assert sorted(out["stdout"].splitlines()) == ["./src/lib.rs", "./src/main.rs"]
        out = await run(s, "find", ["docs", "-mindepth", "1", "-type", "d"])
        assert out["stdout"] == "docs/deep\n"

        out = await run(s, "sort", ["-n", "data/numbers.txt"])
        assert out["stdout"] == "2\n4\n10\n33\n"
        out = await run(s, "sort", ["-u", "data/words.txt"])
        assert out["stdout"] == "apple\nfig\npear\n"

        out = await run(s, "head", ["-n", "2", "data/words.txt"])
        assert out["stdout"] == "pear\napple\n"
        out = await run(s, "head", ["-1", "data/words.txt"])
        assert out["stdout"] == "pear\n"
        out = await run(s, "tail", ["-n", "1", "data/words.txt"])
        assert out["stdout"] == "apple\n"

        out = await run(s, "wc", ["-l", "data/words.txt"])
        assert out["stdout"] == "4 data/words.txt\n"
        out = await run(s, "wc", ["-c"], stdin="12345")
        assert out["stdout"] == "5\n"

        out = await run(s, "pwd")
        assert out["stdout"] == f"{project.resolve()}\n"
        out = await run(s, "sha256sum", ["data/numbers.txt"])
        digest = hashlib.sha256((project / "data" / "numbers.txt").read_bytes()).hexdigest()
        assert out["stdout"] == f"{digest}  data/numbers.txt\n"


async def test_jq(project: Path) -> None:
    # jq 1.6 (Debian 12's) refuses `--` before its filter: the rules insert none for jq and refuse
    # operands that start with '-' instead.
    async with shell_session(project) as s:
        out = await run(s, "jq", ["-r", ".items[].name", "data/items.json"])
        assert out["stdout"] == "alpha\nbeta\n", out
        out = await run(s, "jq", ["-c", "[.items[].n] | add", "data/items.json"])
        assert out["stdout"] == "3\n"
        out = await run(s, "jq", ["-c", ".a"], stdin='{"a": [1, 2]}')
        assert out["stdout"] == "[1,2]\n"
        out = await run(s, "jq", ["--arg", "who", "x", "-n", "-c", "{who: $who}"])
        assert out["stdout"] == '{"who":"x"}\n'
        # The read-only profile's commands see only the five fixed variables.
        out = await run(s, "jq", ["-n", "-c", "env | keys"])
        assert out["stdout"] == '["HOME","LANG","PATH","TERM","TMPDIR"]\n'
        (project / "-x.json").write_text("{}")
        await err(s, "run_command", {"program": "jq", "args": [".", "--", "-x.json"]}, "argument_not_allowed")


async def test_abbreviations_are_written_in_full(project: Path) -> None:
    async with shell_session(project) as s:
        out = await run(s, "sort", ["--rev", "-n", "data/numbers.txt"])
        assert out["args"] == ["--reverse", "-n", "--", "data/numbers.txt"]
        assert out["stdout"] == "33\n10\n4\n2\n"
        # An operand that starts with '-' after `--` stays an operand.
        (project / "-n").write_text("dash file\n")
        out = await run(s, "cat", ["--", "-n"])
        assert out["stdout"] == "dash file\n"


async def test_cwd_in_a_subdirectory(project: Path) -> None:
    async with shell_session(project) as s:
        out = await run(s, "ls", cwd="data")
        assert out["stdout"] == "items.json\nnumbers.txt\nwords.txt\n" and out["cwd"] == "data"
        out = await run(s, "cat", ["numbers.txt"], cwd="data")
        assert out["stdout"] == "10\n2\n33\n4\n"
        out = await run(s, "pwd", cwd="docs/deep")
        assert out["stdout"] == f"{(project / 'docs' / 'deep').resolve()}\n" and out["cwd"] == "docs/deep"
        # An absolute cwd inside the root works and is shown root-relative.
        out = await run(s, "ls", cwd=str(project / "src"))
        assert out["stdout"] == "lib.rs\nmain.rs\n" and out["cwd"] == "src"
        # Relative paths resolve against cwd; `..` back into the root is fine.
        out = await run(s, "cat", ["../README.md"], cwd="src")
        assert out["stdout"].startswith("# demo")
        await err(s, "run_command", {"program": "ls", "cwd": "missing"}, "not_found")
        await err(s, "run_command", {"program": "ls", "cwd": "README.md"}, "not_a_directory")


async def test_stdin_is_passed_to_the_program(project: Path) -> None:
    async with shell_session(project) as s:
        out = await run(s, "sort", stdin="pear\napple\nfig\n")
        assert out["stdout"] == "apple\nfig\npear\n"
        out = await run(s, "sort", ["-rn"], stdin="1\n30\n200\n")
        assert out["stdout"] == "200\n30\n1\n"
        # Without stdin the program reads an empty input, it does not hang.
        out = await run(s, "sort", timeout_ms=5000)
        assert out["stdout"] == "" and out["exit_code"] == 0
        big = "".join(f"{i:06d}\n" for i in range(50_000, 0, -1))
        out = await run(s, "wc", ["-l"], stdin=big)
        assert out["stdout"] == "50000\n"


async def test_nonzero_exit_is_a_result(project: Path) -> None:
    async with shell_session(project) as s:
        is_error, out, _ = await run_raw(s, "ls", ["missing.txt"])
        assert not is_error and out is not None
        assert out["exit_code"] == 2 and "No such file" in out["stderr"] and out["stdout"] == ""
        out = await run(s, "grep", ["nomatch", "data/words.txt"])
        assert out["exit_code"] == 1 and out["stdout"] == ""
        out = await run(s, "cmp", ["data/words.txt", "data/numbers.txt"])
        assert out["exit_code"] == 1 and "differ" in out["stdout"]
        out = await run(s, "jq", [".", "README.md"])
        assert out["exit_code"] != 0 and out["stderr"]


async def test_output_is_cut_with_flags(project: Path) -> None:
    lines = [f"line-{i:07d}-" + "x" * 40 for i in range(60_000)]
    body = "\n".join(lines) + "\n"
    (project / "big.txt").write_text(body)
    async with shell_session(project) as s:
        out = await run(s, "cat", ["big.txt"])
        assert out["exit_code"] == 0
        assert out["stdout_truncated"] is True and out["stderr_truncated"] is False
        assert out["stdout_bytes"] == len(body)
        assert len(out["stdout"]) < 200_000
        assert out["stdout"].startswith(lines[0] + "\n")
        assert out["stdout"].endswith(lines[-1] + "\n")
        assert "bytes omitted" in out["stdout"]
        # stderr is cut on its own budget.
        names = [f"missing-{i:05d}-{'z' * 30}" for i in range(2500)]
        out = await run(s, "cat", names)
        assert out["exit_code"] == 1 and out["stderr_truncated"] is True and out["stdout_truncated"] is False
        assert out["stderr_bytes"] > len(out["stderr"]) and out["stderr"].startswith("cat: missing-00000")
        assert out["stderr"].rstrip().endswith("No such file or directory")
        # Small output is never marked.
        out = await run(s, "head", ["-c", "100", "big.txt"])
        assert not out["stdout_truncated"] and out["stdout"] == body[:100]


async def test_timeout_returns_partial_output_quickly(project: Path) -> None:
    marker = unique_sleep()
    makefile(project, {"slow": ["@echo partial-output-before-sleep", f"@sleep {marker}"]})
    async with shell_session(project, profile="build-test") as s:
        t0 = time.monotonic()
        result = await call_raw(s, "run_command", {"program": "make", "args": ["slow"], "timeout_ms": 500})
        elapsed = time.monotonic() - t0
        assert result.is_error
        sc = result.structured_content
        assert isinstance(sc, dict) and sc["code"] == "timeout", sc
        assert "500 ms" in sc["message"]
        assert sc["stdout"] == "partial-output-before-sleep\n"
        assert sc["exit_code"] is None and sc["program"] == "make"
        assert 400 <= sc["duration_ms"] < 5000
        assert elapsed < 5, f"the timeout took {elapsed:.1f} s"
        # The text content carries the code and the output too.
        text = result_text(result)
        assert "timeout" in text and "partial-output-before-sleep" in text
        assert wait_gone(marker) == []
        # The server goes on answering.
        assert (await run(s, "echo", ["still", "here"]))["stdout"] == "still here\n"


async def test_progress_notifications_during_a_long_command(project: Path) -> None:
    makefile(project, {"slow": ["@echo begin", "@sleep 3.2", "@echo end"]})
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with shell_session(project, profile="build-test") as s:
        with anyio.fail_after(30):
            result = await s.call_tool(
                "run_command",
                {"program": "make", "args": ["slow"], "timeout_ms": 20_000},
                progress_callback=on_progress,
            )
        assert not result.is_error, result_text(result)
        assert result.structured_content["stdout"] == "begin\nend\n"
        # Without a callback (no progress token) a command runs the same.
        out = await run(s, "make", ["slow"])
        assert out["stdout"] == "begin\nend\n"
    assert len(seen) >= 2, seen
    progress = [p for p, _, _ in seen]
    assert progress == sorted(progress) and progress[0] > 0
    assert all(total == 20.0 for _, total, _ in seen), seen
    assert all(msg and "make running for" in msg for _, _, msg in seen), seen


async def test_cancellation_kills_the_process_tree(project: Path) -> None:
    marker = unique_sleep()
    makefile(project, {"hang": [f"@sleep {marker} & sleep {marker}"]})
    async with shell_session(project, profile="build-test") as s:
        started = anyio.Event()
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:

                async def the_call(scope: anyio.CancelScope) -> None:
                    with scope:
                        await s.call_tool("run_command", {"program": "make", "args": ["hang"], "timeout_ms": 60_000})
                    started.set()

                scope = anyio.CancelScope()
                tg.start_soon(the_call, scope)
                deadline = time.monotonic() + 10
                while len(pgrep(marker, "sleep")) < 2 and time.monotonic() < deadline:
                    await anyio.sleep(0.05)
                assert len(pgrep(marker, "sleep")) == 2, "the command never started"
                scope.cancel()
        # The client abandoned the request (notifications/cancelled): the whole tree is gone.
        assert wait_gone(marker, 2.0) == []
        assert (await run(s, "echo", ["alive"]))["stdout"] == "alive\n"


# --------------------------------------------------------------------------------------------
# Background processes
# --------------------------------------------------------------------------------------------


async def read_until_exit(s: Any, pid: int, offset: int = 0) -> tuple[str, dict[str, Any]]:
    """Reads a process's output from ``offset`` until it has ended and nothing is left."""
    text = ""
    deadline = time.monotonic() + 20
    while True:
        out = await ok(s, "read_process_output", {"id": pid, "offset": offset, "wait_ms": 500})
        assert out["offset"] == offset
        text += out["output"]
        offset = out["next_offset"]
        if not out["running"] and not out["truncated"]:
            return text, out
        assert time.monotonic() < deadline, "the process never ended"


async def test_read_process_output_offsets(project: Path) -> None:
    body = "".join(f"{i:06d} {'y' * 50}\n" for i in range(4000))  # 232 000 bytes: > one read
    (project / "big.txt").write_text(body)
    async with shell_session(project) as s:
        p = await ok(s, "start_process", {"program": "cat", "args": ["big.txt"]})
        assert isinstance(p["id"], int) and p["program"] == "cat" and p["args"] == ["--", "big.txt"]
        # Wait for the end, then read from 0: the first page is cut and says so.
        deadline = time.monotonic() + 10
        while True:
            first = await ok(s, "read_process_output", {"id": p["id"], "offset": 0, "wait_ms": 200})
            if not first["running"]:
                break
            assert time.monotonic() < deadline
        assert first["exit_code"] == 0 and first["signal"] is None
        assert first["offset"] == 0 and first["truncated"] is True
        assert 0 < first["next_offset"] < len(body) and body.startswith(first["output"])
        # Continuing from next_offset yields the rest, byte for byte.
        rest, last = await read_until_exit(s, p["id"], first["next_offset"])
        assert first["output"] + rest == body
        assert last["next_offset"] == len(body)
        # A negative offset is a tail.
        tail = await ok(s, "read_process_output", {"id": p["id"], "offset": -20})
        assert tail["output"] == body[-20:] and tail["offset"] == len(body) - 20 and tail["next_offset"] == len(body)
        # Past the end: nothing, not an error.
        past = await ok(s, "read_process_output", {"id": p["id"], "offset": len(body) + 100})
        assert past["output"] == "" and past["next_offset"] == len(body) and past["truncated"] is False


async def test_process_input_wait_and_exit(project: Path) -> None:
    async with shell_session(project) as s:
        p = await ok(s, "start_process", {"program": "cat", "args": []})
        # Nothing written yet: wait_ms waits, then returns an empty page of a running process.
        t0 = time.monotonic()
        out = await ok(s, "read_process_output", {"id": p["id"], "offset": 0, "wait_ms": 400})
        assert time.monotonic() - t0 >= 0.35
        assert out["output"] == "" and out["running"] is True and out["exit_code"] is None
        w = await ok(s, "write_process_input", {"id": p["id"], "data": "first line\n"})
        assert w == {"id": p["id"], "bytes": 11, "closed": False}
        # wait_ms returns as soon as output arrives.
        t0 = time.monotonic()
        out = await ok(s, "read_process_output", {"id": p["id"], "offset": 0, "wait_ms": 10_000})
        assert time.monotonic() - t0 < 5
        assert out["output"] == "first line\n" and out["running"] is True
        w = await ok(s, "write_process_input", {"id": p["id"], "data": "last line\n", "close": True})
        assert w["closed"] is True
        rest, last = await read_until_exit(s, p["id"], out["next_offset"])
        assert rest == "last line\n" and last["exit_code"] == 0 and last["running"] is False
        # Output stays readable after the end.
        again = await ok(s, "read_process_output", {"id": p["id"], "offset": 0})
        assert again["output"] == "first line\nlast line\n" and again["exit_code"] == 0
        # Writing to an ended process is process_not_found.
        await err(s, "write_process_input", {"id": p["id"], "data": "late\n"}, "process_not_found")

        sorter = await ok(s, "start_process", {"program": "sort", "args": ["-r"]})
        await ok(s, "write_process_input", {"id": sorter["id"], "data": "b\nc\n"})
        await ok(s, "write_process_input", {"id": sorter["id"], "data": "a\n", "close": True})
        text, last = await read_until_exit(s, sorter["id"])
        assert text == "c\nb\na\n" and last["exit_code"] == 0


async def test_list_and_kill_processes(project: Path) -> None:
    async with shell_session(project) as s:
        assert await ok(s, "list_processes", {}) == {"processes": []}
        done = await ok(s, "start_process", {"program": "echo", "args": ["quick"]})
        await read_until_exit(s, done["id"])
        waiting = await ok(s, "start_process", {"program": "cat", "args": [], "cwd": "data"})
        listed = {p["id"]: p for p in (await ok(s, "list_processes", {}))["processes"]}
        assert set(listed) == {done["id"], waiting["id"]}
        d, w = listed[done["id"]], listed[waiting["id"]]
        assert d["program"] == "echo" and d["args"] == ["quick"] and d["running"] is False and d["exit_code"] == 0
        assert d["output_bytes"] == 6 and d["cwd"] == "."
        assert w["program"] == "cat" and w["running"] is True and w["exit_code"] is None and w["cwd"] == "data"
        assert w["started_at"].endswith("Z") and w["elapsed_seconds"] >= 0

        killed = await ok(s, "kill_process", {"id": waiting["id"]})
        assert killed["killed"] is True and killed["signal"] == signal.SIGKILL and killed["exit_code"] is None
        out = await ok(s, "read_process_output", {"id": waiting["id"]})
        assert out["running"] is False and out["signal"] == signal.SIGKILL
        # Killing again is harmless and says it had already ended.
        again = await ok(s, "kill_process", {"id": waiting["id"]})
        assert again["killed"] is False and again["signal"] == signal.SIGKILL
        finished = await ok(s, "kill_process", {"id": done["id"]})
        assert finished == {"id": done["id"], "killed": False, "exit_code": 0, "signal": None}
        listed = {p["id"]: p for p in (await ok(s, "list_processes", {}))["processes"]}
        assert listed[waiting["id"]]["running"] is False

        for tool, args in [
            ("read_process_output", {"id": 424242}),
            ("write_process_input", {"id": 424242, "data": "x"}),
            ("kill_process", {"id": 424242}),
        ]:
            msg = await err(s, tool, args, "process_not_found")
            assert "424242" in msg
        await err(s, "read_process_output", {"id": -1}, "invalid_argument")
        await err(s, "start_process", {"program": "sh", "args": ["-c", "id"]}, "command_not_allowed")
        await err(s, "start_process", {"program": "cat", "args": ["/etc/passwd"]}, "path_outside_root")
        await err(s, "start_process", {"program": "tail", "args": ["-f", "README.md"]}, "argument_not_allowed")


async def test_running_processes_are_capped(project: Path) -> None:
    async with shell_session(project) as s:
        ids = [(await ok(s, "start_process", {"program": "cat", "args": []}))["id"] for _ in range(8)]
        await err(s, "start_process", {"program": "cat", "args": []}, "busy")
        await ok(s, "kill_process", {"id": ids[0]})
        extra = await ok(s, "start_process", {"program": "cat", "args": []})
        for pid in ids[1:] + [extra["id"]]:
            await ok(s, "kill_process", {"id": pid})


async def test_kill_process_kills_the_whole_tree(project: Path) -> None:
    marker = unique_sleep()
    makefile(project, {"tree": [f"@sleep {marker} & setsid sleep {marker} & sleep {marker}"]})
    async with shell_session(project, profile="build-test") as s:
        p = await ok(s, "start_process", {"program": "make", "args": ["tree"]})
        deadline = time.monotonic() + 10
        while len(pgrep(marker, "sleep")) < 3 and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        assert len(pgrep(marker, "sleep")) == 3
        killed = await ok(s, "kill_process", {"id": p["id"]})
        assert killed["killed"] is True
        assert wait_gone(marker, 2.0) == []


async def test_processes_die_with_the_server(project: Path) -> None:
    marker = unique_sleep()
    makefile(project, {"hang": [f"@setsid sleep {marker} & sleep {marker}"]})
    async with shell_session(project, profile="build-test") as s:
        await ok(s, "start_process", {"program": "make", "args": ["hang"]})
        deadline = time.monotonic() + 10
        while len(pgrep(marker, "sleep")) < 2 and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        assert len(pgrep(marker, "sleep")) == 2
        server_pid = s.server_pid
    # The session closed its end: the server exits and takes every process along.
    assert wait_gone(marker, 2.0) == []
    assert server_pid is None or not Path(f"/proc/{server_pid}").exists() or _is_zombie(server_pid)


def _is_zombie(pid: int) -> bool:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] == b"Z"


async def test_processes_die_when_the_server_is_killed(project: Path) -> None:
    marker = unique_sleep()
    makefile(project, {"hang": [f"@setsid sleep {marker} & sleep {marker}"]})
    server_pid = 0
    scratch = ""
    try:
        async with shell_session(project, profile="build-test") as s:
            assert s.server_pid, "cannot identify the server process"
            scratch = (await ok(s, "sandbox_status", {}))["scratch_dir"]
            await ok(s, "start_process", {"program": "make", "args": ["hang"]})
            deadline = time.monotonic() + 10
            while len(pgrep(marker, "sleep")) < 2 and time.monotonic() < deadline:
                await anyio.sleep(0.05)
            assert len(pgrep(marker, "sleep")) == 2
            # No clean shutdown: SIGKILL the server (parent-death signal and the pid namespace
            # must take the commands along).
            server_pid = s.server_pid
            os.kill(server_pid, signal.SIGKILL)
            assert wait_gone(marker, 2.0) == []
    except AssertionError:
        raise
    except Exception:  # the SDK may complain about the dead server on the way out
        pass
    assert wait_gone(marker, 0.1) == []
    # A killed server cannot remove its scratch directory; do not leave it in /tmp.
    assert scratch.startswith(tempfile.gettempdir()) and Path(scratch).is_dir()
    shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# list_allowed_commands, sandbox_status
# --------------------------------------------------------------------------------------------


async def test_list_allowed_commands_read_only(project: Path) -> None:
    async with shell_session(project) as s:
        allowed = await ok(s, "list_allowed_commands", {})
    assert allowed["profile"] == "read-only" and allowed["description"]
    commands = {c["program"]: c for c in allowed["commands"]}
    assert set(commands) == READ_ONLY_PROGRAMS
    for name in ["cat", "echo", "find", "grep", "head", "jq", "ls", "rg", "sort", "wc"]:
        assert commands[name]["available"] is True, name
    never = set(allowed["never_allowed"])
    assert {"sh", "bash", "env", "xargs", "timeout", "nice", "sudo", "eval", "command", "git", "perl", "awk",
            "sed", "busybox", "ssh", "nohup", "setsid", "unshare"} <= never  # fmt: skip
    assert not never & set(commands)
    rg = commands["rg"]
    assert "-e VALUE" in rg["flags"] and "-f PATH" in rg["flags"] and "--no-config" in rg["flags"]
    assert any(d.startswith("--pre: ") for d in rg["denied"]) and any(d.startswith("-z: ") for d in rg["denied"])
    assert "first operand is the pattern" in rg["usage"]
    sort = commands["sort"]
    assert not any(f.startswith("-o") for f in sort["flags"])
    assert {d.split(":")[0] for d in sort["denied"]} >= {"-o", "--output", "--compress-program", "-T"}
    find = commands["find"]
    assert {d.split(":")[0] for d in find["denied"]} >= {"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint"}
    assert "find expression" in find["usage"]
    assert "literal" in commands["echo"]["usage"]
    assert commands["uniq"]["usage"].endswith("at most 1 operand(s)")


async def test_list_allowed_commands_build_test(project: Path) -> None:
    async with shell_session(project, profile="build-test") as s:
        allowed = await ok(s, "list_allowed_commands", {})
    assert allowed["profile"] == "build-test"
    commands = {c["program"]: c for c in allowed["commands"]}
    assert set(commands) == READ_ONLY_PROGRAMS | BUILD_TEST_EXTRA
    assert commands["make"]["available"] is True
    assert {d.split(":")[0] for d in commands["make"]["denied"]} == {"--eval", "-E"}
    assert "runs project code inside the sandbox" in commands["make"]["usage"]
    assert "must start with: -m pytest" in commands["python"]["usage"]
    assert "subcommands: build" in commands["cargo"]["usage"]
    assert {d.split(":")[0] for d in commands["cargo"]["denied"]} >= {"--config", "-Z"}


async def test_sandbox_status(project: Path) -> None:
    for profile in ("read-only", "build-test"):
        async with shell_session(project, profile=profile) as s:
            st = await ok(s, "sandbox_status", {})
        assert st["profile"] == profile
        # The facts of this machine (and of CI): Landlock ABI 7, user namespaces, seccomp.
        assert st["landlock_abi"] >= 6
        assert st["landlock"] == "full"
        for key in ("seccomp", "userns", "private_proc", "no_new_privs", "capabilities_dropped", "scoped", "tcp_rules"):
            assert st[key] is True, (key, st)
        assert st["notes"] == []
        assert st["profile_refused"] is False
        assert st["tcp_connect"] == []
        assert st["rlimits"] == DEFAULT_RLIMITS


async def test_sandbox_status_reflects_the_config(project: Path, tmp_path: Path) -> None:
    config = tmp_path / "bastion.toml"
    config.write_text(
        '[shell]\nprofile = "build-test"\ntcp_connect = [5432]\n'
        "[shell.rlimits]\nfile_size_mib = 1\nopen_files = 256\ncpu_seconds = 30\naddress_space_mib = 0\n"
    )
    async with shell_session(project, profile=None, config=config) as s:
        st = await ok(s, "sandbox_status", {})
    assert st["profile"] == "build-test" and st["tcp_connect"] == [5432]
    assert st["rlimits"] == {"address_space_mib": 0, "cpu_seconds": 30, "file_size_mib": 1, "open_files": 256}


# --------------------------------------------------------------------------------------------
# The `bastion shell` entry point, the audit journal, argument errors
# --------------------------------------------------------------------------------------------


async def test_bastion_shell_subcommand(project: Path) -> None:
    async with shell_session(project, hub=True) as s:
        assert [t.name for t in await list_all_tools(s)] == SHELL_TOOLS
        out = await run(s, "sort", ["data/words.txt"])
        assert out["stdout"] == "apple\napple\nfig\npear\n"
        st = await ok(s, "sandbox_status", {})
        assert st["profile"] == "read-only" and st["landlock"] == "full"
        await err(s, "run_command", {"program": "bash", "args": ["-c", "id"]}, "command_not_allowed")


async def test_audit_log(project: Path, tmp_path: Path) -> None:
    log = tmp_path / "audit" / "shell.jsonl"
    log.parent.mkdir()
    async with shell_session(project, audit_log=log) as s:
        await run(s, "sort", stdin="secret-stdin-text\n")
        await call(s, "run_command", {"program": "sh", "args": ["-c", "id"]})
        await call(s, "run_command", {"program": "cat", "args": ["/etc/passwd"]})
        await ok(s, "sandbox_status", {})
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    start = [e for e in lines if e.get("event") == "start"]
    assert len(start) == 1 and start[0]["server"] == "shell"
    detail = start[0]["detail"]
    assert detail["profile"] == "read-only" and detail["roots"] == [str(project.resolve())]
    assert detail["sandbox"]["landlock"] == "full" and detail["sandbox"]["seccomp"] is True
    calls = [e for e in lines if "tool" in e]
    assert [(e["tool"], e["outcome"]) for e in calls] == [
        ("run_command", "ok"),
        ("run_command", "command_not_allowed"),
        ("run_command", "path_outside_root"),
        ("sandbox_status", "ok"),
    ]
    for e in calls:
        assert e["server"] == "shell" and e["time"].endswith("Z")
        assert isinstance(e["duration_ms"], (int, float)) and isinstance(e["result_bytes"], int)
    assert calls[0]["args"]["program"] == "sort"
    assert calls[0]["args"]["stdin"] == "[18 bytes]"
    assert calls[1]["args"]["args"] == ["-c", "id"]
    assert "secret-stdin-text" not in log.read_text()


async def test_argument_errors(project: Path) -> None:
    async with shell_session(project) as s:
        await err(s, "run_command", {"args": ["x"]}, "invalid_argument")
        await err(s, "run_command", {"program": "ls", "args": "-la"}, "invalid_argument")
        await err(s, "run_command", {"program": "ls", "timeout_ms": -5}, "invalid_argument")
        await err(s, "read_process_output", {}, "invalid_argument")
        await err(s, "run_command", {"program": "touch", "args": ["x"]}, "command_not_allowed")
        await err(s, "run_command", {"program": "make", "args": []}, "command_not_allowed")
        msg = await err(s, "run_command", {"program": "sort", "args": ["-o", "x"]}, "argument_not_allowed")
        assert "-o" in msg and "list_allowed_commands" in msg
        # An unknown tool is a protocol error, not a result.
        with pytest.raises(Exception):
            with anyio.fail_after(10):
                await s.call_tool("no_such_tool", {})
        assert error_code(*await call(s, "sandbox_status", {})) is None


async def test_command_output_is_redacted(project: Path, tmp_path: Path) -> None:
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    (project / "deploy.txt").write_text(f"user=ci\nGITHUB_TOKEN={token}\nDB_PASSWORD=hunter22\n")
    shown = "user=ci\nGITHUB_TOKEN=[REDACTED:github_token]\nDB_PASSWORD=[REDACTED:secret_assignment]\n"
    log = tmp_path / "shell.jsonl"
    async with shell_session(project, audit_log=log) as s:
        out = await run(s, "cat", ["deploy.txt"])
        assert out["stdout"] == shown
        # The byte counts are those of what the program wrote.
        assert out["stdout_bytes"] == len((project / "deploy.txt").read_bytes())
        out = await run(s, "cat", ["deploy.txt", "missing-file"])
        assert out["stdout"] == shown and "missing-file" in out["stderr"]
        p = await ok(s, "start_process", {"program": "cat", "args": ["deploy.txt"]})
        rest, last = await read_until_exit(s, p["id"], 0)
        assert rest == shown
        await run(s, "echo", ["nothing to hide"])
    raw = log.read_text()
    assert token not in raw and "hunter22" not in raw
    calls = [json.loads(line) for line in raw.splitlines() if '"tool"' in line]
    runs = [c for c in calls if c["tool"] == "run_command"]
    assert [c.get("redactions") for c in runs] == [2, 2, None]
    reads = [c for c in calls if c["tool"] == "read_process_output" and c.get("redactions")]
    assert sum(c["redactions"] for c in reads) == 2
