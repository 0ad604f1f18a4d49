"""The host server as the hub's built-in upstream ``host``, with the official MCP Python SDK over
HTTP: its tools are offered only when an ``[[upstream]]`` names it, ``check_port`` names the owner
of a listener this test opens, a mutating form is refused, and ``host__service_action`` is held
by the hub's approval gate with the exact command shown until the person approves it with the
real CLI.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import anyio
import pytest

from fsclient import call, error_code, ok
from test_approvals import cli, events, http_session, wait_pending
from test_hub import running_hub

pytestmark = pytest.mark.anyio


def host_hub_config(tmp_path: Path) -> Path:
    host = tmp_path / "host.toml"
    host.write_text('[ops]\nunits = ["bastion-test-*.service"]\n')
    config = tmp_path / "hub.toml"
    config.write_text(
        '[[upstream]]\nname = "fs"\nbuiltin = "fs"\n\n'
        f'[[upstream]]\nname = "host"\nbuiltin = "host"\nargs = ["--allow-operate", "--config", "{host}"]\n'
    )
    return config


async def test_the_hub_serves_the_host_and_holds_its_actions_for_approval(tmp_path: Path) -> None:
    with running_hub(tmp_path, "--config", str(host_hub_config(tmp_path))) as h:
        async with http_session(h, h.token) as s:
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert {"host__overview", "host__check_port", "host__service_logs", "host__changes",
                    "host__run_command", "host__service_action"} <= set(tools)
            action = tools["host__service_action"].annotations
            assert action is not None and action.read_only_hint is False and action.destructive_hint is True

            with socket.socket() as listener:
                listener.bind(("127.0.0.1", 0))
                listener.listen()
                port = listener.getsockname()[1]
                held = await ok(s, "host__check_port", {"port": port})
                assert held["free"] is False, held
                owners = held["held_by"][0]["owners"]
                assert any(o["pid"] == os.getpid() for o in owners), held

            is_error, structured, text = await call(s, "host__run_command",
                                                    {"program": "systemctl", "args": ["kill", "ssh"]})
            assert error_code(is_error, structured, text) == "argument_not_allowed", text

            async with anyio.create_task_group() as tg:
                result: dict[str, Any] = {}

                async def restart() -> None:
                    result["r"] = await call(s, "host__service_action",
                                             {"action": "restart", "unit": "bastion-test-web"}, timeout=60)

                tg.start_soon(restart)
                [p] = await wait_pending(h.state)
                assert (p["server"], p["tool"], p["rule"]) == ("host", "host__service_action",
                                                              "default: host operation"), p
                assert p["rendering"] == "$ systemctl --no-pager restart -- bastion-test-web.service", p
                assert "bastion approve" in cli(h.state, "approvals").stdout
                cli(h.state, "approve", p["id"])
            is_error, structured, text = result["r"]
            assert error_code(is_error, structured, text) is None, text
            assert structured is not None
            assert structured["command"] == "systemctl --no-pager restart -- bastion-test-web.service"
    decisions = events(h.state / "audit.jsonl", "approval_decision")
    assert [d["detail"]["decision"] for d in decisions] == ["approved"]


async def test_the_host_is_not_started_unless_listed(tmp_path: Path) -> None:
    with running_hub(tmp_path) as h:
        async with http_session(h, h.token) as s:
            names = [t.name for t in (await s.list_tools()).tools]
            assert not [n for n in names if n.startswith("host__")], names
