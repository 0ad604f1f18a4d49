"""Secrets in output, end to end through the official MCP Python SDK: ``bastion-fs`` redacts
well-known secret formats in reads and search lines, counts them in the journal, and refuses
to write a redaction marker back over the secret it hides. The engine's own table is
``crates/policy/tests/redact_table.rs``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import time
from typing import Any

from fsclient import err, fs_session, ok
from shellclient import ok as shell_ok
from shellclient import run, shell_session

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    write(root / "README.md", "# Project\n\nHello world.\n")
    write(root / "src" / "main.rs", "fn main() {}\n")
    return root


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# Secrets in output: redacted in reads and search lines, never written back over
# --------------------------------------------------------------------------------------------

# Built from pieces, so this file does not itself look like a leaked credential.
GH_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
DB_PASSWORD = "s3cr3t-Value-81f"
KEY_BLOCK = (
    "-----BEGIN RSA " + "PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MaDzJk6K\n"
    "R3fsmN1tVHpUMmgN0IqYN8F1aKlOgOA8ll8oJHwRTZdC3Q==\n"
    "-----END RSA " + "PRIVATE KEY-----\n"
)
SETTINGS = (
    "database:\n"
    "  host: db.internal\n"
    f"  password: {DB_PASSWORD}\n"
    "  port: 5432\n"
    f"github_token: {GH_TOKEN}\n"
    "tls:\n"
    f"{KEY_BLOCK}"
    "done: true\n"
)
SETTINGS_SHOWN = (
    "database:\n"
    "  host: db.internal\n"
    "  password: [REDACTED:secret_assignment]\n"
    "  port: 5432\n"
    "github_token: [REDACTED:github_token]\n"
    "tls:\n"
    "[REDACTED:private_key]\n\n\n\n"
    "done: true\n"
)


async def test_secrets_are_redacted_in_reads_and_search(project: Path, tmp_path: Path) -> None:
    write(project / "config" / "settings.yaml", SETTINGS)
    log = tmp_path / "audit.jsonl"
    async with fs_session(project, audit_log=log) as s:
        r = await ok(s, "read_file", {"path": "config/settings.yaml"})
        assert r["content"] == SETTINGS_SHOWN
        # Line numbers stay the file's: the key block keeps its four lines.
        assert r["total_lines"] == SETTINGS.count("\n") and r["sha256"] == sha256(SETTINGS.encode())
        tail = await ok(s, "read_file", {"path": "config/settings.yaml", "offset": -1})
        assert tail["content"] == "done: true\n" and tail["start_line"] == SETTINGS.count("\n")

        many = await ok(s, "read_many_files", {"paths": ["config/settings.yaml", "README.md"]})
        assert many["files"][0]["content"] == SETTINGS_SHOWN

        found = await ok(s, "search_text", {"pattern": "password|github_token", "context_lines": 1})
        texts = {(m["path"], m["line"]): m for m in found["matches"]}
        m = texts[("config/settings.yaml", 3)]
        assert m["text"] == "  password: [REDACTED:secret_assignment]"
        assert texts[("config/settings.yaml", 5)]["text"] == "github_token: [REDACTED:github_token]"
        # Searching for the secret's own text finds the line, still redacted.
        found = await ok(s, "search_text", {"pattern": GH_TOKEN[:12], "literal": True})
        assert [m["text"] for m in found["matches"]] == ["github_token: [REDACTED:github_token]"]

        await ok(s, "read_file", {"path": "README.md"})
    raw = log.read_text()
    for secret in (DB_PASSWORD, GH_TOKEN, "MIIEowIBAAKCAQEA"):
        assert secret not in raw
    calls = [json.loads(line) for line in raw.splitlines() if '"tool"' in line]
    assert [c["tool"] for c in calls] == ["read_file", "read_file", "read_many_files", "search_text", "search_text", "read_file"]
    # The journal counts what each call redacted, and says nothing when it redacted nothing.
    assert [c.get("redactions") for c in calls] == [3, None, 3, 2, 1, None]
    assert list(calls[0])[-1] == "redactions"


async def test_redaction_can_be_turned_off(project: Path, tmp_path: Path) -> None:
    write(project / "config" / "settings.yaml", SETTINGS)
    config = tmp_path / "fs.toml"
    config.write_text('[redact]\nenabled = false\n')
    async with fs_session(project, config=config) as s:
        r = await ok(s, "read_file", {"path": "config/settings.yaml"})
        assert r["content"] == SETTINGS
    config.write_text('[redact]\ndisabled = ["secret_assignment"]\n')
    async with fs_session(project, config=config) as s:
        r = await ok(s, "read_file", {"path": "config/settings.yaml"})
        assert r["content"] == SETTINGS_SHOWN.replace("[REDACTED:secret_assignment]", DB_PASSWORD)


async def test_writing_back_a_redacted_read_is_refused(project: Path) -> None:
    settings = project / "config" / "settings.yaml"
    write(settings, SETTINGS)
    async with fs_session(project, write=True) as s:
        shown = (await ok(s, "read_file", {"path": "config/settings.yaml"}))["content"]
        # The whole redacted text written back.
        msg = await err(s, "write_file", {"path": "config/settings.yaml", "content": shown.replace("5432", "5433")}, "redacted_content")
        assert "[REDACTED:" in msg and "edit around it" in msg.lower()
        # An edit whose old_text spans a redacted line.
        old = "  password: [REDACTED:secret_assignment]\n  port: 5432\n"
        await err(s, "edit_file", {"path": "config/settings.yaml", "old_text": old, "new_text": old.replace("5432", "5433")}, "redacted_content")
        # An edit that would write a marker in place of a secret, though its old_text is clean.
        await err(
            s,
            "edit_file",
            {"path": "config/settings.yaml", "old_text": "  host: db.internal\n", "new_text": "  host: db.internal\n  password: [REDACTED:secret_assignment]\n"},
            "redacted_content",
        )
        # A patch whose context holds the marker.
        patch = (
            "--- a/config/settings.yaml\n+++ b/config/settings.yaml\n@@ -3,2 +3,2 @@\n"
            "   password: [REDACTED:secret_assignment]\n-  port: 5432\n+  port: 5433\n"
        )
        await err(s, "apply_patch", {"patch": patch}, "redacted_content")
        assert settings.read_text() == SETTINGS
        # Editing around the secret works and keeps it.
        await ok(s, "edit_file", {"path": "config/settings.yaml", "old_text": "  port: 5432\n", "new_text": "  port: 5433\n"})
        assert settings.read_text() == SETTINGS.replace("5432", "5433")
        # A file without secrets may hold a marker (documentation).
        await ok(s, "write_file", {"path": "docs/redaction.md", "content": "Secrets show as [REDACTED:github_token].\n"})


# --------------------------------------------------------------------------------------------
# Command and process output of bastion-shell
# --------------------------------------------------------------------------------------------


async def read_until_exit(s: Any, pid: int, offset: int = 0) -> tuple[str, dict[str, Any]]:
    """Reads a process's output from ``offset`` until it has ended and nothing is left."""
    text = ""
    deadline = time.monotonic() + 20
    while True:
        out = await shell_ok(s, "read_process_output", {"id": pid, "offset": offset, "wait_ms": 500})
        assert out["offset"] == offset
        text += out["output"]
        offset = out["next_offset"]
        if not out["running"] and not out["truncated"]:
            return text, out
        assert time.monotonic() < deadline, "the process never ended"


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
        p = await shell_ok(s, "start_process", {"program": "cat", "args": ["deploy.txt"]})
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
