"""The nginx recipe (``packaging/proxy/nginx.conf``) in front of ``bastion serve --public-url
https://localhost:PORT``: the same checks Caddy passes in ``test_oauth_caddy.py`` — real TLS,
the ChatGPT-like flow, the official SDK's OAuth client, the consent page in Chromium — with the
recipe's own ``location`` block (buffering off, long timeouts, Host passed through), plus a
streamed SSE response that must arrive event by event.

nginx (Debian ``nginx``) runs as a foreground process with its prefix, logs and temporary files
in a temporary directory, on loopback, with a self-signed certificate for localhost made by
``openssl``; the tests trust that certificate and nothing else. In CI (``CI=true``) a missing
``nginx`` fails the tests; locally they skip.
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2
import pytest

from test_oauth_browser import approve_in_browser, chromium, spki_pin
from fsclient import stop_process
from prereq import require_program
from oauth_client import (
    TIMEOUT,
    OAuthHub,
    free_port,
    running_hub,
)

pytestmark = pytest.mark.anyio

RECIPE = Path(__file__).resolve().parents[2] / "packaging" / "proxy" / "nginx.conf"


def recipe_location(upstream: int) -> str:
    """The recipe's ``location / { ... }`` block, pointed at the hub's port."""
    text = RECIPE.read_text()
    match = re.search(r"^    location / \{\n.*?^    \}\n", text, re.S | re.M)
    assert match, "no `location /` block in the recipe"
    return match.group(0).replace("127.0.0.1:8765", f"127.0.0.1:{upstream}")


def nginx_conf(base: Path, port: int, location: str, cert: Path, key: Path) -> str:
    return f"""
daemon off;
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {base}/access.log;
    client_body_temp_path {base}/body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        client_max_body_size 16m;
{location}
    }}
}}
"""


def self_signed(base: Path) -> tuple[Path, Path]:
    cert, key = base / "localhost.crt", base / "localhost.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def start_nginx(base: Path, conf: str, port: int, cert: Path) -> subprocess.Popen[bytes]:
    nginx = require_program("nginx")
    for d in ["body", "proxy", "fastcgi", "uwsgi", "scgi"]:
        (base / d).mkdir(exist_ok=True)
    (base / "nginx.conf").write_text(conf)
    proc = subprocess.Popen([nginx, "-p", str(base), "-c", str(base / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    ctx = ssl.create_default_context(cafile=str(cert))
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"nginx exited with {proc.returncode}:\n{(base / 'error.log').read_text()}", pytrace=False)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost"):
                    return proc
        except OSError:
            time.sleep(0.1)
    stop_process(proc, 5)
    pytest.fail("nginx never accepted TLS connections", pytrace=False)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthHub]:
    require_program("nginx")
    base = tmp_path_factory.mktemp("nginx")
    port, hub_port = free_port(), free_port()
    cert, key = self_signed(base)
    with running_hub(base / "hub", public_url=f"https://localhost:{port}", port=hub_port) as hub:
        proc = start_nginx(base, nginx_conf(base, port, recipe_location(hub_port), cert, key), port, cert)
        try:
            ctx = ssl.create_default_context(cafile=str(cert))
            r = httpx2.get(f"https://localhost:{port}/healthz", verify=ctx, timeout=5)
            assert r.status_code == 200, r.text
            hub.ca = cert
            yield hub
        finally:
            stop_process(proc, 10)


# The checks Caddy's front passes, run against this module's nginx `hub` fixture (pytest
# resolves a test's fixtures in the module that collects it).
from test_oauth_caddy import test_chatgpt_like_flow_behind_caddy as test_chatgpt_like_flow_behind_nginx  # noqa: E402
from test_oauth_caddy import test_official_sdk_oauth_client_behind_caddy as test_official_sdk_oauth_client_behind_nginx  # noqa: E402,E501
from test_oauth_caddy import test_the_front_is_real_tls  # noqa: E402

__all__ = [
    "test_chatgpt_like_flow_behind_nginx",
    "test_official_sdk_oauth_client_behind_nginx",
    "test_the_front_is_real_tls",
]


def test_chromium_consent_over_https_behind_nginx(hub: OAuthHub, tmp_path: Path) -> None:
    assert hub.ca is not None
    with chromium(tmp_path, f"--ignore-certificate-errors-spki-list={spki_pin(hub.ca)}") as page:
        approve_in_browser(hub, page, hub.issuer)


class _Slow(BaseHTTPRequestHandler):
    """An SSE stream of three events a second apart, standing in for a hub streaming progress."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for i in range(3):
            self.wfile.write(f"event: message\ndata: {i}\n\n".encode())
            self.wfile.flush()
            time.sleep(1.0)

    def log_message(self, *args: object) -> None:
        pass


def test_recipe_streams_event_by_event(tmp_path: Path) -> None:
    """Through the recipe's location block, the first event of a slow stream arrives long
    before the stream ends (a buffering proxy would hold it until the end)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    cert, key = self_signed(tmp_path)
    location = recipe_location(server.server_address[1])
    proc = start_nginx(tmp_path, nginx_conf(tmp_path, port, location, cert, key), port, cert)
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        started = time.monotonic()
        arrivals = []
        with httpx2.stream("GET", f"https://localhost:{port}/mcp", verify=ctx, timeout=10) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data:"):
                    arrivals.append(time.monotonic() - started)
        assert len(arrivals) == 3, arrivals
        assert arrivals[0] < 0.8 and arrivals[2] - arrivals[0] > 1.5, arrivals
    finally:
        stop_process(proc, 5)
        server.shutdown()
