#!/usr/bin/env python3
"""Start-up of one MCP server over stdio, measured independently of the machine's load.

Runs ``COMMAND...`` (optionally under a wrapper such as ``valgrind --tool=callgrind`` or
``strace -c -f``), sends ``initialize``, waits for its answer, sends
``notifications/initialized`` and ``tools/list`` (unless ``--no-list``), waits for that answer,
then (with ``--rss``) sleeps a second and prints the server's memory split from
``/proc/PID/smaps_rollup`` and ``/proc/PID/status``, and closes stdin so the server exits. The
environment is ``PATH`` only, as ``bench/fs_bench.py`` gives it (add ``--home DIR`` to set
``HOME``, which gives a server its control socket).

    python3 bench/startup_probe.py -- valgrind --tool=callgrind target/release/bastion-fs --root /tmp/r
    python3 bench/startup_probe.py --rss -- target/release/bastion-fs --root /tmp/r
"""

import argparse
import json
import os
import subprocess
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-list", action="store_true", help="stop after the initialize answer")
    p.add_argument("--rss", action="store_true", help="print the server's memory split after the answers")
    p.add_argument("--home", help="HOME for the server")
    p.add_argument("command", nargs="+")
    a = p.parse_args()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if a.home:
        env["HOME"] = a.home
    server = subprocess.Popen(a.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def ask(message: dict, answer: bool) -> bytes:
        assert server.stdin is not None and server.stdout is not None
        server.stdin.write((json.dumps(message) + "\n").encode())
        server.stdin.flush()
        return server.stdout.readline() if answer else b""

    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}}
    first = ask({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}, True)
    ask({"jsonrpc": "2.0", "method": "notifications/initialized"}, False)
    listed = b"" if a.no_list else ask({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, True)
    if a.rss:
        time.sleep(1.0)
        roll = {}
        with open(f"/proc/{server.pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if rest.strip().endswith("kB"):
                    roll[key] = rest.split()[0]
        with open(f"/proc/{server.pid}/status") as f:
            status = {k: v.strip() for k, _, v in (line.partition(":") for line in f)}
        print(
            f"VmRSS {status['VmRSS']} (anon {status['RssAnon']}, file {status['RssFile']}); "
            f"Pss {roll.get('Pss')} kB; threads {status['Threads']}"
        )
    assert server.stdin is not None
    server.stdin.close()
    code = server.wait()
    print(f"exit {code}; initialize answer {len(first)} B, tools/list answer {len(listed)} B", file=sys.stderr)
    return 0 if first and (a.no_list or listed) else 1


if __name__ == "__main__":
    sys.exit(main())
