"""Hostile inputs through the real ``bastion-shell`` binary. The tables of a.-c.
and the injection corpus of d. run in Rust (``crates/shell-server/tests/hostile.rs``, through the
same binary); this file keeps what drives project code inside the sandbox (e.) and the cases
around it.

* a. the Desktop Commander bypasses as argv (shells, wrappers, interpreters, quoted and
  path-qualified program names, shell metacharacters in arguments);
* b. per-program flag tricks (security-notes §4.4): exec, write and read-elsewhere flags in every
  spelling (abbreviated, bundled, attached, after operands);
* c. paths outside the roots, through `..`, absolute paths, symlinks and /proc, and deny globs;
* d. a corpus of command-injection payloads as an argument to ``echo`` (must come back literally)
  and ``ls`` (never executed), as ``cwd`` and as the program name;
* e. project code run by ``make`` in the build-test profile trying to leave the kernel sandbox:
  files, network, UNIX sockets, signals, /proc, namespaces, capabilities, process escapes,
  rlimits, environment;
* the read-only profile cannot write even inside the root.

Every case runs in its own tree under ``tmp_path`` and afterwards checks that no marker file
appeared (in the tree, ``/tmp``, ``$HOME`` or the test's working directory), that nothing outside
the root changed (content, mode, mtime, xattrs) and that no output contained the outside sentinel.

Tests marked "SECURITY GAP (reported)" fail against the current server on purpose: each states
the gap, the input and what should hold.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from prereq import missing
from shellclient import call, error_code, pgrep, shell_session, wait_gone

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --------------------------------------------------------------------------------------------
# The hostile tree
# --------------------------------------------------------------------------------------------

PROBE_PY = r'''
import ctypes, errno, os, socket, sys

def main(op, *a):
    print("PROBE-RAN", op, flush=True)
    try:
        if op == "read":
            print("READ:" + open(a[0], errors="replace").read())
        elif op == "write":
            with open(a[0], "w") as f:
                f.write("x")
            print("WROTE")
        elif op == "listdir":
            print("LISTED:", os.listdir(a[0]))
        elif op == "tcp":
            s = socket.create_connection((a[0], int(a[1])), timeout=2)
            s.sendall(b"hello")
            print("CONNECTED")
        elif op == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"hello", (a[0], int(a[1])))
            print("SENT")
        elif op == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(a[0])
            print("CONNECTED")
        elif op == "abstract":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect("\0" + a[0])
            print("CONNECTED")
        elif op == "socketpair":
            x, y = socket.socketpair()
            x.send(b"pair-ok")
            print(y.recv(7).decode())
        elif op == "unshare":
            libc = ctypes.CDLL(None, use_errno=True)
            flags = {"user": 0x10000000, "net": 0x40000000, "mount": 0x00020000, "pid": 0x20000000}[a[0]]
            if libc.unshare(flags) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            print("UNSHARED")
        elif op == "kill":
            os.kill(int(a[0]), int(a[1]))
            print("SIGNALLED")
        elif op == "bigwrite":
            with open(a[0], "wb") as f:
                for _ in range(int(a[1]) // 65536):
                    f.write(b"z" * 65536)
            print("BIGWROTE")
        elif op == "env":
            for k, v in sorted(os.environ.items()):
                print(f"{k}={v}")
        elif op == "fds":
            print("FDS:", sorted(int(n) for n in os.listdir("/proc/self/fd")))
        else:
            print("unknown op", op)
    except OSError as e:
        print("DENIED", op, errno.errorcode.get(e.errno, e.errno), e, flush=True)

main(*sys.argv[1:])
'''

#: `make sh CMD='...'` runs one shell snippet in the sandbox; `make py ARGS='...'` runs probe.py.
MAKEFILE = """\
.PHONY: sh py
sh:
\t@$(CMD)
py:
\t@python3 probe.py $(ARGS)
"""


@dataclass
class Box:
    base: Path
    root: Path
    outside: Path
    cfg: Path
    sentinel: str
    marker: str
    outputs: list[str] = field(default_factory=list)
    before_outside: dict[str, tuple] = field(default_factory=dict)
    before_root: dict[str, tuple] = field(default_factory=dict)

    def sub(self, value: Any) -> Any:
        """Replaces ``{m}``, ``{root}``, ``{outside}``, ``{base}`` in every string of ``value``."""
        if isinstance(value, str):
            return (
                value.replace("{m}", self.marker)
                .replace("{root}", str(self.root))
                .replace("{outside}", str(self.outside))
                .replace("{base}", str(self.base))
            )
        if isinstance(value, list):
            return [self.sub(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.sub(v) for v in value)
        if isinstance(value, dict):
            return {k: self.sub(v) for k, v in value.items()}
        return value

    def markers(self) -> list[str]:
        """Every file named after the marker (or containing it) where a command could leave one."""
        found = [str(p) for p in self.base.rglob(f"*{self.marker}*")]
        for d in (Path("/tmp"), Path.home(), Path.cwd(), Path("/")):
            try:
                found += [str(p) for p in d.iterdir() if self.marker in p.name]
            except OSError:
                pass
        return found


def _xattrs(p: Path) -> tuple[str, ...]:
    try:
        return tuple(sorted(os.listxattr(p, follow_symlinks=False)))
    except OSError:
        return ()


def state(top: Path, *skip: Path) -> dict[str, tuple]:
    """Type, mode, times, xattrs and content of everything beneath ``top`` (except ``skip``)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        here = Path(dirpath)
        if here in skip:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = here / name
            if p in skip:
                continue
            st = os.lstat(p)
            rel = str(p.relative_to(top))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, _xattrs(p), p.read_bytes())
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), _xattrs(p))
            else:
                out[rel] = ("other", st.st_mode)
    return out


def build_box(base: Path) -> Box:
    sentinel = f"SENTINEL-{secrets.token_hex(10)}"
    marker = f"MARKER{secrets.token_hex(6)}"
    root = base / "proj"
    outside = base / "outside"
    cfg = base / "cfg"  # the test's own files (configs, listening sockets): not checked
    for d in (root / "sub" / "deeper", root / "bin", outside, base / "proj-evil", cfg):
        d.mkdir(parents=True, exist_ok=True)
    (outside / "sentinel.txt").write_text(sentinel + "\n")
    (outside / "Makefile").write_text(f"all:\n\t@echo {sentinel}\n")
    (base / "proj-evil" / "data.txt").write_text(sentinel + "\n")
    (base / "loot.txt").write_text(sentinel + "\n")

    (root / "in.txt").write_text("hello\nworld\n")
    (root / "a.txt").write_text("banana\napple\ncherry\n")
    (root / "data.json").write_text('{"a": 1}\n')
    (root / "sub" / "deeper" / "x.txt").write_text("deep\n")
    (root / ".env").write_text("TOKEN=inside-root-dotenv-secret\n")
    (root / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\ninside-root-key-secret\n")
    # Programs a hostile flag would run: if they ever run they print the marker.
    for name in ("pre.sh", "x", "touch"):
        script = root / name
        script.write_text(f"#!/bin/sh\necho RAN-{marker}\ntouch {outside}/{marker}\ncat\n")
        script.chmod(0o755)
    (root / "names.lst").write_text(f"{outside}/sentinel.txt\n")
    (root / "names0.lst").write_bytes(f"{outside}/sentinel.txt\0".encode())
    (root / "prog.jq").write_text(".\n")
    (root / "sums.txt").write_text(f"0000  {outside}/sentinel.txt\n")
    os.symlink(outside, root / "link_out")
    os.symlink(outside / "sentinel.txt", root / "link_sentinel")
    os.symlink("../outside/sentinel.txt", root / "rel_link_sentinel")
    os.symlink("/proc/self/environ", root / "link_environ")
    os.symlink(".env", root / "link_env")
    os.symlink("/", root / "link_slash")
    os.mkfifo(root / "fifo")
    (root / "Makefile").write_text(MAKEFILE)
    (root / "probe.py").write_text(PROBE_PY)
    box = Box(base=base, root=root, outside=outside, cfg=cfg, sentinel=sentinel, marker=marker)
    box.before_outside = state(base, root, cfg)
    box.before_root = state(root)
    return box


@pytest.fixture
def box(tmp_path: Path) -> Box:
    b = build_box(tmp_path)
    yield b
    assert_contained(b)


def assert_contained(box: Box, *, root_unchanged: bool = False) -> None:
    assert box.markers() == [], f"a marker file appeared: {box.markers()}"
    after = state(box.base, box.root, box.cfg)
    appeared = sorted(set(after) - set(box.before_outside))
    changed = sorted(k for k in after.keys() & box.before_outside.keys() if after[k] != box.before_outside[k])
    vanished = sorted(set(box.before_outside) - set(after))
    assert not appeared and not changed and not vanished, (appeared, changed, vanished)
    for out in box.outputs:
        assert box.sentinel not in out, f"the outside sentinel leaked into a result: {out[:400]}"
        assert f"RAN-{box.marker}" not in out, f"a planted program ran: {out[:400]}"
    if root_unchanged:
        assert state(box.root) == box.before_root, "the root changed"


async def call_rec(box: Box, s: Any, tool: str, args: dict[str, Any], timeout: float = 15.0):
    """One call; records its output for the leak checks. Returns (code or None, structured)."""
    is_error, structured, text = await call(s, tool, args, timeout=timeout)
    box.outputs += [text, json.dumps(structured)]
    if is_error and isinstance(structured, dict) and structured.get("code") == "timeout" and text.startswith("{"):
        # A timeout's text is the JSON of the whole result (code, message and the output so far).
        assert json.loads(text)["code"] == "timeout"
        return "timeout", structured
    return error_code(is_error, structured, text), structured


async def run_rec(box: Box, s: Any, program: str, args: list[str], **fields: Any):
    return await call_rec(box, s, "run_command", {"program": program, "args": args, **fields})


# --------------------------------------------------------------------------------------------
# a.-c. Program bypasses, shell syntax in arguments, per-program flag tricks, build-tool flags and
# paths outside the root: the tables run in Rust, crates/shell-server/tests/hostile.rs.
# --------------------------------------------------------------------------------------------

async def test_literal_tilde_and_variables_stay_inside(box: Box) -> None:
    async with shell_session(box.root) as s:
        for arg in ["~/.bashrc", "~root/.bashrc", "$HOME/.bashrc", "${HOME}/.profile", "*", "*.txt", "{a,b}.txt"]:
            code, out = await run_rec(box, s, "cat", [arg])
            assert code is None and out["exit_code"] == 1 and "No such file" in out["stderr"], (arg, out)
            assert out["stdout"] == ""


async def test_fifo_cannot_hang_the_server(box: Box) -> None:
    async with shell_session(box.root) as s:
        t0 = time.monotonic()
        code, out = await run_rec(box, s, "cat", ["fifo"], timeout_ms=800)
        assert code == "timeout" and time.monotonic() - t0 < 5
        code, out = await run_rec(box, s, "echo", ["still", "here"])
        assert code is None and out["stdout"] == "still here\n"


# --------------------------------------------------------------------------------------------
# Recursive readers and the deny globs, system secrets (security gaps: these fail today)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "program,args",
    [
        ("grep", ["-r", "secret", "."]),
        ("grep", ["-R", "secret"]),
        ("rg", ["secret"]),
        ("rg", ["--hidden", "secret"]),
        ("rg", ["-uuu", "secret"]),
        ("diff", ["-r", "sub", "."]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
async def test_recursive_readers_do_not_reveal_denied_files(box: Box, program: str, args: list[str]) -> None:
    # SECURITY GAP (reported): the deny globs (.env, id_rsa, ...) are checked on operands only.
    # A recursive reader given the root (or any directory above a denied file) prints the
    # denied file's content: `grep -r secret .` shows `./.env:TOKEN=inside-root-dotenv-secret`.
    (box.root / "sub" / ".env").write_text("NESTED=inside-root-dotenv-secret\n")
    async with shell_session(box.root) as s:
        code, out = await run_rec(box, s, program, args)
        assert code in (None, "denied_by_glob", "argument_not_allowed"), (code, out)
        text = json.dumps(out)
        assert "inside-root-dotenv-secret" not in text, out
        assert "inside-root-key-secret" not in text, out


def _readable_private_key() -> Path | None:
    d = Path("/etc/ssl/private")
    try:
        keys = [p for p in d.iterdir() if p.is_file()]
    except OSError:
        return None
    for k in keys:
        try:
            k.read_bytes()
            return k
        except OSError:
            continue
    return None


async def test_system_private_keys_stay_unreadable(box: Box) -> None:
    # SECURITY GAP (reported): Landlock grants the whole of /etc/ssl (meant for the CA roots),
    # which includes /etc/ssl/private. As root (or a member of ssl-cert) the commands read the
    # host's TLS private keys: project code directly, read-only programs through a symlink in the
    # root that a recursive reader follows.
    key = _readable_private_key()
    if key is None:
        missing("no readable key in /etc/ssl/private on this host (Debian package `ssl-cert`, read as root)")
    first_line = key.read_text(errors="replace").splitlines()[1][:20]
    os.symlink(key.parent, box.root / "sub" / "certs")
    async with shell_session(box.root, profile="build-test") as s:
        code, out = await run_rec(box, s, "make", ["-s", "sh", f"CMD=cat {key} || true"])
        assert code is None
        assert first_line not in out["stdout"], "project code read a TLS private key of the host"
        code, out = await run_rec(box, s, "make", ["-s", "sh", "CMD=cat /etc/ssl/certs/ca-certificates.crt | head -c 30"])
        assert code is None and "BEGIN CERTIFICATE" in out["stdout"], out  # the CA roots stay readable
    async with shell_session(box.root) as s:
        code, out = await run_rec(box, s, "grep", ["-R", "-h", "", "sub"])
        assert first_line not in json.dumps(out), "grep -R followed a symlink to a TLS private key"


# --------------------------------------------------------------------------------------------
# d. The command-injection corpus runs in Rust, crates/shell-server/tests/hostile.rs.
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# e. Project code in the build-test profile against the sandbox
# --------------------------------------------------------------------------------------------


async def sandboxed(box: Box, s: Any, snippet: str, timeout_ms: int = 20_000) -> dict[str, Any]:
    """Runs a shell snippet as a make recipe inside the sandbox; returns the run_command result."""
    cmd = box.sub(snippet).replace("$", "$$")
    code, out = await run_rec(box, s, "make", ["-s", "sh", f"CMD={cmd}"], timeout_ms=timeout_ms)
    assert code is None, (code, out)
    return out


async def probe(box: Box, s: Any, *args: str) -> str:
    """Runs probe.py inside the sandbox; returns stdout + stderr."""
    joined = " ".join(box.sub(a) for a in args)
    code, out = await run_rec(box, s, "make", ["-s", "py", f"ARGS={joined}"], timeout_ms=20_000)
    assert code is None, (code, out)
    text = out["stdout"] + out["stderr"]
    assert f"PROBE-RAN {args[0]}" in text, f"the probe did not run: {text}"
    return text


async def test_sandbox_files_outside_cannot_be_read(box: Box) -> None:
    async with shell_session(box.root, profile="build-test") as s:
        for path in ["{outside}/sentinel.txt", "{base}/proj-evil/data.txt", "{base}/loot.txt", "/etc/shadow", "/root/.bashrc",
                     "/root/.profile", "/proc/self/root{outside}/sentinel.txt", "link_sentinel", "link_out/sentinel.txt"]:  # fmt: skip
            text = await probe(box, s, "read", path)
            assert "DENIED read" in text and "READ:" not in text, (path, text)
        for d in ["/root", "/home", "/tmp", "{outside}", "{base}", "/var", "/etc", "link_slash/tmp"]:
            text = await probe(box, s, "listdir", d)
            assert "DENIED listdir" in text, (d, text)
        out = await sandboxed(box, s, "cat {outside}/sentinel.txt; ls /root; head -c 100 /root/.bashrc; echo done")
        assert ("Permission denied" in out["stderr"] or "Read-only file system" in out["stderr"]) and out["stdout"] == "done\n"
        # A symlink made inside the root does not help, nor does a hardlink.
        out = await sandboxed(box, s, "ln -s {outside}/sentinel.txt l1 && cat l1; ln {outside}/sentinel.txt l2; cat l2; echo done")
        assert out["stdout"] == "done\n" and not (box.root / "l2").exists()
        # Inside the root: readable (the probe's positive control).
        text = await probe(box, s, "read", "in.txt")
        assert "READ:hello" in text


async def test_sandbox_writes_outside_are_denied(box: Box) -> None:
    async with shell_session(box.root, profile="build-test") as s:
        for path in ["{outside}/{m}", "{base}/{m}", "/tmp/{m}", "/root/{m}", "/{m}", "/dev/shm/{m}", "/var/tmp/{m}",
                     "link_out/{m}", "link_slash/tmp/{m}"]:  # fmt: skip
            text = await probe(box, s, "write", path)
            assert "DENIED write" in text and "WROTE" not in text, (path, text)
        await sandboxed(
            box, s,
            "touch {outside}/{m}; mkdir {outside}/{m}d; cp in.txt /tmp/{m}; mv a.txt {outside}/{m}; "
            "ln -s / {outside}/{m}l; echo x > {base}/{m}; echo x >> {outside}/sentinel.txt; "
            "rm -f {outside}/sentinel.txt; true",
        )  # fmt: skip
        assert (box.root / "a.txt").exists(), "a root file was moved out"
        # Inside the root: writable (the positive control).
        text = await probe(box, s, "write", "made-inside.txt")
        assert "WROTE" in text and (box.root / "made-inside.txt").read_text() == "x"
        (box.root / "made-inside.txt").unlink()


async def test_sandbox_metadata_outside_cannot_change(box: Box) -> None:
    # SECURITY GAP (reported): Landlock does not govern chmod, utimes or setxattr, and the command
    # runs as the server's uid (root here): project code changes the mode, times and extended
    # attributes of any file outside the roots owned by that uid. As root that is every system
    # file (`chmod 4755 /usr/bin/python3.11` or `chmod 666 /etc/passwd` from a Makefile would
    # hand root to every local user); as a normal user, their own ~/.ssh, ~/.bashrc, ...
    secret = box.outside / "sentinel.txt"
    before_file, before_dir = os.stat(secret), os.stat(box.outside)
    try:
        async with shell_session(box.root, profile="build-test") as s:
            await sandboxed(
                box, s,
                "chmod 4777 {outside}/sentinel.txt; chmod 777 {outside}; touch -d 2001-01-01 {outside}/sentinel.txt; "
                "python3 -c 'import os; os.setxattr(\"{outside}/sentinel.txt\", \"user.bastion\", b\"1\")'; true",
            )  # fmt: skip
        after_file, after_dir = os.stat(secret), os.stat(box.outside)
        assert stat.S_IMODE(after_file.st_mode) == stat.S_IMODE(before_file.st_mode), "chmod of a file outside the root worked"
        assert stat.S_IMODE(after_dir.st_mode) == stat.S_IMODE(before_dir.st_mode), "chmod of a directory outside the root worked"
        assert after_file.st_mtime_ns == before_file.st_mtime_ns, "utimes of a file outside the root worked"
        assert os.listxattr(secret) == [], "setxattr on a file outside the root worked"
    finally:
        os.chmod(secret, stat.S_IMODE(before_file.st_mode))
        os.chmod(box.outside, stat.S_IMODE(before_dir.st_mode))
        os.utime(secret, ns=(before_file.st_atime_ns, before_file.st_mtime_ns))
        for name in os.listxattr(secret):
            os.removexattr(secret, name)


async def test_sandbox_git_metadata_stays_read_only(box: Box) -> None:
    # SECURITY GAP (reported): the policy never writes .git/** (DEFAULT_DENY_WRITE: "hooks and
    # config are code execution for the next git run"), but the build-test sandbox makes the
    # roots writable as a whole: project code plants .git/hooks/pre-commit or core.fsmonitor in
    # .git/config, which the user's own git then runs outside the sandbox (and, unlike a change to
    # a tracked file, `git status` does not show it).
    git = box.root / ".git"
    (git / "hooks").mkdir(parents=True)
    (git / "config").write_text("[core]\n\tbare = false\n")
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    before = state(git)
    async with shell_session(box.root, profile="build-test") as s:
        await sandboxed(
            box, s,
            "printf '%s\\n' '#!/bin/sh' 'touch /tmp/{m}' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit; "
            "printf '\\tfsmonitor = touch /tmp/{m}\\n' >> .git/config; echo x > .git/HEAD; rm -rf .git/hooks; true",
        )  # fmt: skip
        await sandboxed(box, s, "mv .git .git-old && mkdir -p .git/hooks && echo evil > .git/hooks/post-checkout; true")
    after = state(git) if git.is_dir() else {}
    assert after == before, f"project code changed .git: {sorted(set(after) ^ set(before))} {after.get('config')}"
    assert not (box.root / ".git-old").exists()


async def test_node_never_reads_code_from_stdin(box: Box) -> None:
    async with shell_session(box.root, profile="build-test") as s:
        code, _ = await run_rec(box, s, "node", [], stdin="require('fs').writeFileSync('{m}', '')")
        assert code == "argument_not_allowed"
        code, p = await call_rec(box, s, "start_process", {"program": "node", "args": ["-e", "setTimeout(() => {}, 5000)"]})
        assert code is None
        code, _ = await call_rec(box, s, "write_process_input", {"id": p["id"], "data": "process.exit(3)\n"})
        assert code == "argument_not_allowed"
        await call_rec(box, s, "kill_process", {"id": p["id"]})


async def test_sandbox_network_is_closed(box: Box) -> None:
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.setblocking(False)
    tcp_port = tcp.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    udp_port = udp.getsockname()[1]
    unix_path = box.cfg / "agent.sock"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(unix_path))
    unix.listen(8)
    unix.setblocking(False)
    inside_path = box.root / "inside.sock"
    inside = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    inside.bind(str(inside_path))
    inside.listen(8)
    inside.setblocking(False)
    abstract_name = f"bastion-test-{secrets.token_hex(6)}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind("\0" + abstract_name)
    abstract.listen(8)
    abstract.setblocking(False)
    box.before_root = state(box.root)
    try:
        async with shell_session(box.root, profile="build-test") as s:
            text = await probe(box, s, "tcp", "127.0.0.1", str(tcp_port))
            assert "DENIED tcp" in text and "CONNECTED" not in text, text
            text = await probe(box, s, "tcp", "localhost", str(tcp_port))
            assert "CONNECTED" not in text, text
            text = await probe(box, s, "udp", "127.0.0.1", str(udp_port))
            assert "DENIED udp" in text and "SENT" not in text, text
            text = await probe(box, s, "unix", str(unix_path))
            assert "DENIED unix" in text and "CONNECTED" not in text, text
            text = await probe(box, s, "unix", str(inside_path))
            assert "DENIED unix" in text and "CONNECTED" not in text, text
            text = await probe(box, s, "abstract", abstract_name)
            assert "DENIED abstract" in text and "CONNECTED" not in text, text
            # Pipes between processes still work (make -j, test runners).
            text = await probe(box, s, "socketpair")
            assert "pair-ok" in text, text
        for listener in (tcp, unix, inside, abstract):
            with pytest.raises(BlockingIOError):
                listener.accept()
        with pytest.raises(BlockingIOError):
            udp.recvfrom(100)
    finally:
        for sock in (tcp, udp, unix, inside, abstract):
            sock.close()


async def test_sandbox_tcp_only_to_the_configured_port(box: Box, tmp_path: Path) -> None:
    allowed = socket.socket()
    allowed.bind(("127.0.0.1", 0))
    allowed.listen(8)
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(8)
    other.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    config = box.cfg / "tcp.toml"
    config.write_text(f'[shell]\nprofile = "build-test"\ntcp_connect = [{allowed.getsockname()[1]}]\n')
    try:
        async with shell_session(box.root, profile=None, config=config) as s:
            text = await probe(box, s, "tcp", "127.0.0.1", str(allowed.getsockname()[1]))
            assert "CONNECTED" in text, text
            text = await probe(box, s, "tcp", "127.0.0.1", str(other.getsockname()[1]))
            assert "DENIED tcp" in text and "CONNECTED" not in text, text
            text = await probe(box, s, "udp", "127.0.0.1", str(udp.getsockname()[1]))
            assert "SENT" not in text, text
            text = await probe(box, s, "abstract", "bastion-none")
            assert "DENIED abstract" in text, text
        with pytest.raises(BlockingIOError):
            other.accept()
        with pytest.raises(BlockingIOError):
            udp.recvfrom(100)
    finally:
        for sock in (allowed, other, udp):
            sock.close()


async def test_sandbox_cannot_signal_or_inspect_the_server(box: Box) -> None:
    secret = f"SERVER-ENV-SECRET-{secrets.token_hex(8)}"
    helper = subprocess.Popen(["sleep", f"{secrets.randbelow(1000) + 500}.{secrets.randbelow(10**6)}"])
    try:
        async with shell_session(box.root, profile="build-test", env={"BASTION_TEST_SECRET": secret, "MY_SECRET": secret}) as s:
            server = s.server_pid
            assert server, "cannot identify the server process"
            for pid in (server, helper.pid, 1):
                text = await probe(box, s, "kill", str(pid), "0")
                assert "SIGNALLED" not in text or pid == 1, (pid, text)
            out = await sandboxed(box, s, f"kill -0 {server} && echo SIGNALLED; kill -9 {server}; kill -9 {helper.pid}; "
                                            f"kill -STOP {server}; echo done")  # fmt: skip
            assert "SIGNALLED" not in out["stdout"] and "done" in out["stdout"]
            for path in (f"/proc/{server}/environ", f"/proc/{server}/cmdline", f"/proc/{helper.pid}/environ", "/proc/1/environ"):
                text = await probe(box, s, "read", path)
                assert secret not in text
            out = await sandboxed(box, s, "cat /proc/*/environ | tr '\\0' '\\n'; ls /proc; ps -e 2>&1 || true")
            assert secret not in json.dumps(out)
            assert str(server) not in out["stdout"].split()
            # Only the command's own processes are visible (its pid namespace).
            out = await sandboxed(box, s, "ls -d /proc/[0-9]* | wc -l")
            assert int(out["stdout"].strip()) <= 6, out
            # kill -9 -1 kills everything the command may signal: only its own namespace.
            code, out = await run_rec(box, s, "make", ["-s", "sh", "CMD=kill -9 -1; sleep 1"], timeout_ms=10_000)
            assert code is None
            assert (await run_rec(box, s, "echo", ["alive"]))[1]["stdout"] == "alive\n"
            assert helper.poll() is None, "a process outside the sandbox was killed"
            assert os.path.exists(f"/proc/{server}")
    finally:
        helper.kill()
        helper.wait()


async def test_sandbox_namespaces_and_privileges(box: Box) -> None:
    async with shell_session(box.root, profile="build-test") as s:
        for kind in ("user", "net", "mount", "pid"):
            text = await probe(box, s, "unshare", kind)
            assert "DENIED unshare" in text and "UNSHARED" not in text, text
        out = await sandboxed(box, s, "unshare -r id && echo ESCAPED; unshare -rm sh -c 'mount -t tmpfs none sub && echo MOUNTED'; "
                                      "mount -t tmpfs none sub && echo MOUNTED; chroot / true && echo CHROOTED; echo done")  # fmt: skip
        for word in ("ESCAPED", "MOUNTED", "CHROOTED"):
            assert word not in out["stdout"], out
        assert out["stdout"].endswith("done\n")
        out = await sandboxed(box, s, "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status")
        fields = dict(line.split(":\t") for line in out["stdout"].splitlines())
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert fields[cap] == "0000000000000000", fields
        assert fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2", fields
        # A setuid-root copy of id gains nothing (no-new-privileges, no capabilities).
        out = await sandboxed(box, s, "cp /usr/bin/id ./suid-id && chmod u+s ./suid-id && ./suid-id -u; "
                                      "grep CapEff /proc/self/status; rm -f suid-id")  # fmt: skip
        assert "CapEff:\t0000000000000000" in out["stdout"]
        # Descriptors of the server do not reach the command (only 0, 1, 2 and the probe's own).
        text = await probe(box, s, "fds")
        fds = json.loads(text.split("FDS: ")[1].splitlines()[0])
        assert fds[:3] == [0, 1, 2] and len(fds) <= 4, fds


async def test_sandbox_timeout_escapes_are_killed(box: Box) -> None:
    marker = f"{secrets.randbelow(500) + 400}.{secrets.randbelow(10**8):08d}"
    async with shell_session(box.root, profile="build-test") as s:
        t0 = time.monotonic()
        code, out = await run_rec(
            box, s, "make",
            ["-s", "sh", f"CMD=setsid sleep {marker} & nohup sleep {marker} >/dev/null 2>&1 & "
                         f"(trap '' HUP TERM; sleep {marker}) & echo started; sleep {marker}"],
            timeout_ms=1000,
        )  # fmt: skip
        assert code == "timeout" and out["stdout"] == "started\n", out
        assert time.monotonic() - t0 < 5
        assert wait_gone(marker, 2.0) == [], "a detached process survived the timeout"
        # Same with start_process + kill_process.
        code, p = await call_rec(box, s, "start_process", {"program": "make", "args": ["-s", "sh", f"CMD=setsid sleep {marker} & sleep {marker}"]})
        assert code is None
        deadline = time.monotonic() + 10
        while len(pgrep(marker, "sleep")) < 2 and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        assert len(pgrep(marker, "sleep")) == 2
        await call_rec(box, s, "kill_process", {"id": p["id"]})
        assert wait_gone(marker, 2.0) == []


async def test_sandbox_rlimits(box: Box, tmp_path: Path) -> None:
    async with shell_session(box.root, profile="build-test") as s:
        out = await sandboxed(box, s, "cat /proc/self/limits")
    limits = {}
    for line in out["stdout"].splitlines()[1:]:
        name, soft, hard = line[:26].strip(), line[26:47].strip(), line[47:68].strip()
        limits[name] = (soft, hard)
    assert limits["Max open files"] == ("4096", "4096")
    assert limits["Max core file size"] == ("0", "0")
    assert limits["Max cpu time"] == ("900", "900")
    assert limits["Max file size"] == (str(2048 << 20), str(2048 << 20))
    assert limits["Max address space"] == (str(8192 << 20), str(8192 << 20))

    config = box.cfg / "limits.toml"
    config.write_text('[shell]\nprofile = "build-test"\n[shell.rlimits]\nfile_size_mib = 1\ncpu_seconds = 1\nopen_files = 64\n')
    async with shell_session(box.root, profile=None, config=config) as s:
        out = await sandboxed(box, s, "head -c 3000000 /dev/zero > big.bin; echo exit=$?")
        assert (box.root / "big.bin").stat().st_size <= 1 << 20
        assert "exit=0" not in out["stdout"]
        text = await probe(box, s, "bigwrite", "big2.bin", str(3 << 20))
        assert "BIGWROTE" not in text and (box.root / "big2.bin").stat().st_size <= 1 << 20
        t0 = time.monotonic()
        out = await sandboxed(box, s, "python3 -c 'while True: pass'; echo exit=$?", timeout_ms=15_000)
        assert time.monotonic() - t0 < 8 and "exit=0" not in out["stdout"]
        out = await sandboxed(box, s, "python3 -c 'import os; [os.open(\"/dev/null\", 0) for _ in range(100)]' 2>&1 | tail -1")
        assert "Too many open files" in out["stdout"], out
    (box.root / "big.bin").unlink()
    (box.root / "big2.bin").unlink()


SECRET_ENV = {
    "GITHUB_TOKEN": "ghp_SECRETVALUE-github",
    "MY_SECRET": "SECRETVALUE-my",
    "AWS_SECRET_ACCESS_KEY": "SECRETVALUE-aws",
    "OPENAI_API_KEY": "SECRETVALUE-openai",
    "SSH_AUTH_SOCK": "/tmp/SECRETVALUE-agent.sock",
    "LD_PRELOAD": "/nonexistent/SECRETVALUE.so",
    "LD_LIBRARY_PATH": "/nonexistent/SECRETVALUE",
    "NODE_OPTIONS": "--require /nonexistent/SECRETVALUE.js",
    "RIPGREP_CONFIG_PATH": "{root}/rgrc",
    "PYTEST_ADDOPTS": "-p SECRETVALUE",
    "PYTHONPATH": "{root}/evilpy",
    "PYTHONSTARTUP": "{root}/evilpy/sitecustomize.py",
    "GIT_DIR": "/nonexistent/SECRETVALUE-git",
    "LESSOPEN": "|/nonexistent/SECRETVALUE %s",
    "BASH_ENV": "{root}/pre.sh",
    "ENV": "{root}/pre.sh",
    "MAKEFLAGS": "--eval=$(info SECRETVALUE-makeflags)",
    "PAGER": "/nonexistent/SECRETVALUE-pager",
    "DBUS_SESSION_BUS_ADDRESS": "unix:path=/tmp/SECRETVALUE-bus",
}

#: What a command may see: the fixed variables, the profile's set_env and pass_env, and what
#: make and the shell add themselves.
ALLOWED_ENV = {
    "PATH", "HOME", "TMPDIR", "LANG", "TERM",
    "CARGO_NET_OFFLINE", "CARGO_TERM_COLOR", "NO_COLOR", "GOFLAGS", "GOPROXY", "npm_config_offline",
    "npm_config_update_notifier", "PYTHONDONTWRITEBYTECODE",
    "CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "GOROOT", "GOPATH", "GOCACHE", "GOMODCACHE", "PYENV_ROOT",
    "PYENV_VERSION", "VIRTUAL_ENV", "JAVA_HOME",
    "MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKE_TERMOUT", "MAKE_TERMERR", "MAKEOVERRIDES", "CMD", "ARGS",
    "PWD", "OLDPWD", "SHLVL", "_",
}  # fmt: skip


async def test_sandbox_environment_is_allowlisted(box: Box) -> None:
    (box.root / "rgrc").write_text("--pre=./pre.sh\n")
    (box.root / "evilpy").mkdir()
    (box.root / "evilpy" / "sitecustomize.py").write_text(f"print('RAN-{box.marker}')\n")
    box.before_root = state(box.root)
    env = {k: box.sub(v) for k, v in SECRET_ENV.items()}
    async with shell_session(box.root, profile="build-test", env=env) as s:
        out = await sandboxed(box, s, "env")
        names = {line.split("=", 1)[0] for line in out["stdout"].splitlines() if "=" in line}
        assert names <= ALLOWED_ENV, f"unexpected variables: {sorted(names - ALLOWED_ENV)}"
        assert {"PATH", "HOME", "TMPDIR", "LANG", "TERM"} <= names
        assert "SECRETVALUE" not in json.dumps(out)
        env_lines = dict(line.split("=", 1) for line in out["stdout"].splitlines() if "=" in line)
        # make puts its own flags and command-line variables there (`s -- CMD=env`), nothing else.
        assert env_lines["MAKEFLAGS"] == "s -- CMD=env", env_lines["MAKEFLAGS"]
        assert env_lines["LANG"] == "C.UTF-8" and env_lines["TERM"] == "dumb"
        assert not env_lines["HOME"].startswith("/root") and env_lines["HOME"] == env_lines["TMPDIR"]
        assert all(p in ("/usr/local/bin", "/usr/bin", "/bin") or not p.startswith(str(box.base)) for p in env_lines["PATH"].split(":"))
        text = await probe(box, s, "env")
        assert "SECRETVALUE" not in text and f"RAN-{box.marker}" not in text
        code, out = await run_rec(box, s, "rg", ["hello", "in.txt"])
        assert code is None and out["stdout"] == "hello\n"
    async with shell_session(box.root, env=env) as s:
        code, out = await run_rec(box, s, "rg", ["hello"])
        assert code is None and f"RAN-{box.marker}" not in out["stdout"]
        code, out = await run_rec(box, s, "echo", ["$GITHUB_TOKEN", "${MY_SECRET}"])
        assert out["stdout"] == "$GITHUB_TOKEN ${MY_SECRET}\n"


async def test_sandbox_scratch_home_is_private_and_removed(box: Box) -> None:
    async with shell_session(box.root, profile="build-test") as s:
        out = await sandboxed(box, s, "echo x > $HOME/f && echo HOME=$HOME && ls $TMPDIR/.. ; echo rc=$?")
        home = next(line[5:] for line in out["stdout"].splitlines() if line.startswith("HOME="))
        assert "rc=0" not in out["stdout"], "a command can list the other commands' scratch directories"
        assert not Path(home).exists(), "the scratch directory outlived its command"
        scratch_parent = Path(home).parent
        assert scratch_parent.is_dir() and stat.S_IMODE(scratch_parent.stat().st_mode) == 0o700
    assert not scratch_parent.exists(), "the server's scratch directory outlived the server"


async def test_sandbox_program_on_a_root_in_path_is_refused(box: Box) -> None:
    # A root on the server's PATH must never provide a "trusted" program.
    for name in ("go", "pytest"):
        fake = box.root / "bin" / name
        fake.write_text(f"#!/bin/sh\necho RAN-{box.marker}\n")
        fake.chmod(0o755)
    box.before_root = state(box.root)
    env = {"PATH": f"{box.root / 'bin'}:/usr/local/bin:/usr/bin:/bin"}
    async with shell_session(box.root, profile="build-test", env=env) as s:
        for program, args in (("go", ["version"]), ("pytest", ["-q"])):
            code, out = await run_rec(box, s, program, args)
            assert code == "command_not_allowed", (program, code, out)


# --------------------------------------------------------------------------------------------
# The read-only profile cannot write, even inside the root
# --------------------------------------------------------------------------------------------


async def test_read_only_profile_cannot_write(box: Box, tmp_path: Path) -> None:
    async with shell_session(box.root) as s:
        code, out = await run_rec(box, s, "cat", ["in.txt"])
        assert code is None and out["stdout"] == "hello\nworld\n"
        for args in (["-o", "out.txt", "a.txt"], ["--output=out.txt", "a.txt"], ["-ro", "a.txt", "a.txt"]):
            assert (await run_rec(box, s, "sort", args))[0] == "argument_not_allowed"
        assert (await run_rec(box, s, "make", ["sh", "CMD=touch x"]))[0] == "command_not_allowed"
        assert (await run_rec(box, s, "cargo", ["build"]))[0] == "command_not_allowed"
    # Even a writing program added by the operator's config cannot write: the roots are
    # read-only in the read-only profile's sandbox.
    config = box.cfg / "ro.toml"
    config.write_text(
        '[shell]\nprofile = "read-only"\n[shell.programs.touch]\noperands = "paths"\n'
        '[shell.programs.cp]\noperands = "paths"\n'
    )
    async with shell_session(box.root, profile=None, config=config) as s:
        code, out = await run_rec(box, s, "touch", ["new.txt"])
        assert code is None and out["exit_code"] != 0 and ("Permission denied" in out["stderr"] or "Read-only file system" in out["stderr"]), out
        code, out = await run_rec(box, s, "cp", ["in.txt", "copy.txt"])
        assert code is None and out["exit_code"] != 0 and ("Permission denied" in out["stderr"] or "Read-only file system" in out["stderr"]), out
        code, out = await run_rec(box, s, "cp", ["in.txt", "{outside}/x".replace("{outside}", str(box.outside))])
        assert code == "path_outside_root"
    assert_contained(box, root_unchanged=True)
