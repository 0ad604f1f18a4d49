"""Third-party stdio upstreams contained (issue 13, item 3): a hostile Python upstream
(``hub_hostile_upstream.py``) started by the hub tries every way out we know of — the hub's
environment and its secrets, the parent's ``/proc/PID/environ``, the state directory (tokens,
journal, control socket), the configuration file, the user's SSH keys, writes outside its
scratch directory, symlinks out of it, the network — and each must fail, while what it was
granted keeps working. ``server-everything`` (npm) runs contained too, and works.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test_hub import Hub, running_hub
from test_hub_upstreams import child_pid, everything, rpc

HOSTILE = Path(__file__).with_name("hub_hostile_upstream.py")
SECRETS = {
    "GITHUB_TOKEN": "ghp_containmentsecret0000000000000000000",
    "AWS_SECRET_ACCESS_KEY": "containment/secret/aws/key0000000000000",
    "BASTION_OWNER_SECRET": "containment-owner-secret",
    "SSH_AUTH_SOCK": "/tmp/containment-agent.sock",
    "OTHER_UPSTREAM_TOKEN": "containment-other-token",
    "PASSED_TOKEN": "containment-passed-on-purpose",
}


@pytest.fixture(scope="module")
def contained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Path]]:
    """A hub with three hostile upstreams: `open` (defaults: contained, network on), `closed`
    (`network = false`, a read grant and a write grant) and `loose` (`sandbox = false`), under a
    home directory with an SSH key and the hub's secrets in its environment."""
    base = tmp_path_factory.mktemp("contained")
    home = base / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\ncontainment\n")
    granted = base / "granted"
    granted.mkdir()
    (granted / "data.txt").write_text("granted data")
    out = base / "out"
    out.mkdir()
    py, script = json.dumps(sys.executable), json.dumps(str(HOSTILE))
    config = base / "bastion.toml"
    config.write_text(
        f'[[upstream]]\nname = "open"\ncommand = {py}\nargs = [{script}]\npass_env = ["PASSED_TOKEN"]\n'
        f'[[upstream]]\nname = "closed"\ncommand = {py}\nargs = [{script}]\n'
        f'sandbox = {{ read = [{json.dumps(str(granted))}], write = [{json.dumps(str(out))}], network = false }}\n'
        f'[[upstream]]\nname = "loose"\ncommand = {py}\nargs = [{script}]\nsandbox = false\n'
        '[[upstream]]\nname = "fs"\nbuiltin = "fs"\n'
    )
    saved = dict(os.environ)
    os.environ.update(SECRETS | {"HOME": str(home)})
    try:
        with running_hub(base, "--config", str(config), rust_log="warn") as h:
            yield h, base
    finally:
        os.environ.clear()
        os.environ.update(saved)


def probe(hub: Hub, upstream: str, action: str, target: str = "", arg: str = "") -> dict[str, Any]:
    status, body = rpc(hub, f"{upstream}__probe", {"action": action, "target": target, "arg": arg})
    assert status == 200 and "result" in body, body
    text = "".join(c.get("text", "") for c in body["result"]["content"])
    assert not body["result"].get("isError"), text
    return json.loads(text)


def denied(hub: Hub, upstream: str, action: str, target: str = "", arg: str = "") -> str:
    r = probe(hub, upstream, action, target, arg)
    assert not r["ok"], f"{upstream} {action} {target}: {r}"
    return r["error"]


def test_the_environment_holds_no_secret_of_the_hub(contained: tuple[Hub, Path]) -> None:
    hub, base = contained
    for upstream in ["open", "closed", "loose"]:
        env = json.loads(probe(hub, upstream, "environ")["value"])
        leaked = {k for k, v in env.items() if k.startswith("BASTION") or v in SECRETS.values() and k != "PASSED_TOKEN"}
        assert not leaked, f"{upstream}: {leaked}"
        assert "PATH" in env
    # What the configuration passes on purpose arrives, and only there.
    assert json.loads(probe(hub, "open", "environ")["value"])["PASSED_TOKEN"] == SECRETS["PASSED_TOKEN"]
    assert "PASSED_TOKEN" not in json.loads(probe(hub, "closed", "environ")["value"])
    # Contained, its home is its scratch directory beneath the state directory.
    env = json.loads(probe(hub, "open", "environ")["value"])
    assert env["HOME"] == str(hub.state / "upstreams" / "open"), env["HOME"]


@pytest.mark.parametrize("upstream", ["open", "closed"])
def test_the_parent_and_other_processes_are_out_of_sight(contained: tuple[Hub, Path], upstream: str) -> None:
    hub, _ = contained
    for path in [f"/proc/{hub.pid}/environ", f"/proc/{hub.pid}/cmdline", f"/proc/{hub.pid}/mem"]:
        denied(hub, upstream, "read", path)
    # Its own pid namespace: the hub is not even listed.
    listed = probe(hub, upstream, "list", "/proc")
    if listed["ok"]:
        assert str(hub.pid) not in json.loads(listed["value"])


@pytest.mark.parametrize("upstream", ["open", "closed"])
def test_the_hub_state_config_and_keys_are_unreadable(contained: tuple[Hub, Path], upstream: str) -> None:
    hub, base = contained
    state = hub.state
    for target in [state, state / "auth.sqlite3", state / "audit.jsonl", base / "bastion.toml",
                   base / "home" / ".ssh" / "id_ed25519", base / "home" / ".ssh", hub.root, base / "hub.stderr",
                   state / "upstreams" / ("closed" if upstream == "open" else "open")]:
        action = "list" if target.is_dir() else "read"
        denied(hub, upstream, action, str(target))
    # A symlink made in its own scratch directory does not lead out of it.
    scratch = state / "upstreams" / upstream
    link = scratch / "to-state"
    probe(hub, upstream, "symlink", str(state / "auth.sqlite3"), str(link))
    denied(hub, upstream, "read", str(link))
    denied(hub, upstream, "read", "/etc/shadow")


@pytest.mark.parametrize("upstream", ["open", "closed"])
def test_writes_outside_its_scratch_directory_fail(contained: tuple[Hub, Path], upstream: str) -> None:
    hub, base = contained
    state = hub.state
    for target in [base / "bastion.toml", state / "tokens.json", state / "audit.jsonl", hub.root / "planted.txt",
                   base / "home" / ".ssh" / "authorized_keys", base / "home" / ".bashrc", Path("/tmp") / "contained-x",
                   state / "upstreams" / ("closed" if upstream == "open" else "open") / "planted"]:
        denied(hub, upstream, "write", str(target))
        assert not target.exists() or target.name in ("bastion.toml", "audit.jsonl"), target
    assert "[[upstream]]" in (base / "bastion.toml").read_text()
    # Its scratch directory (and its TMPDIR inside it) is writable.
    mine = state / "upstreams" / upstream / "note.txt"
    assert probe(hub, upstream, "write", str(mine), "mine")["ok"]
    assert mine.read_text() == "mine"
    tmp = probe(hub, upstream, "environ")
    assert probe(hub, upstream, "write", json.loads(tmp["value"])["TMPDIR"] + "/t", "x")["ok"]


def test_grants_from_the_configuration_work(contained: tuple[Hub, Path]) -> None:
    hub, base = contained
    assert probe(hub, "closed", "read", str(base / "granted" / "data.txt"))["value"] == "granted data"
    assert probe(hub, "closed", "write", str(base / "out" / "result.txt"), "out")["ok"]
    assert (base / "out" / "result.txt").read_text() == "out"
    denied(hub, "closed", "write", str(base / "granted" / "new.txt"))
    denied(hub, "open", "read", str(base / "granted" / "data.txt"))


def test_the_network_is_per_upstream_and_unix_sockets_are_never_reachable(contained: tuple[Hub, Path]) -> None:
    hub, _ = contained
    assert probe(hub, "open", "connect", f"127.0.0.1:{hub.port}")["ok"]
    denied(hub, "closed", "connect", f"127.0.0.1:{hub.port}")
    sockets = sorted(hub.state.rglob("*.sock"))
    for upstream in ["open", "closed"]:
        for sock in sockets or [hub.state / "control" / "hub.sock"]:
            denied(hub, upstream, "unix", str(sock))
        denied(hub, upstream, "unix", "/var/run/docker.sock")


def test_sandbox_false_runs_uncontained_with_a_warning(contained: tuple[Hub, Path]) -> None:
    hub, base = contained
    # The opt-out is real (it reads what the contained ones cannot) and said at start.
    assert probe(hub, "loose", "read", str(base / "home" / ".ssh" / "id_ed25519"))["ok"]
    log = (base / "hub.stderr").read_text()
    assert "uncontained" in log and "loose" in log, log[-2000:]


def test_each_upstream_runs_in_the_trampoline(contained: tuple[Hub, Path]) -> None:
    hub, _ = contained
    children = []
    for task in Path(f"/proc/{hub.pid}/task").iterdir():
        children += (task / "children").read_text().split()
    cmdlines = [Path(f"/proc/{c}/cmdline").read_bytes().split(b"\0") for c in children]
    hostile = [c for c in cmdlines if str(HOSTILE).encode() in b" ".join(c)]
    assert len(hostile) == 3, hostile
    assert sum(1 for c in hostile if len(c) > 1 and c[1] == b"__sandbox-exec") == 2, hostile


def test_server_everything_runs_contained(tmp_path: Path) -> None:
    entry = everything()
    config = tmp_path / "bastion.toml"
    config.write_text(f'[[upstream]]\nname = "everything"\ncommand = "node"\nargs = [{json.dumps(entry)}, "stdio"]\n')
    with running_hub(tmp_path, "--config", str(config), rust_log="warn") as h:
        status, body = rpc(h, "everything__echo", {"message": "contained"})
        assert status == 200 and "contained" in json.dumps(body["result"]), body
        node = child_pid(h.pid, "server-everything")
        argv = Path(f"/proc/{node}/cmdline").read_bytes().split(b"\0")
        assert argv[1] == b"__sandbox-exec", argv[:2]
        # npm's cache and anything else it writes land in its scratch directory.
        assert (h.state / "upstreams" / "everything").is_dir()
