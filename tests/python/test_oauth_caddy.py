"""The acceptance check of issue 6: ``bastion serve --public-url https://localhost:PORT`` behind
a local TLS-terminating reverse proxy (Caddy, Debian ``caddy``, with its internal CA) completes
the ChatGPT-like flow end to end over real HTTPS, and the official SDK's OAuth client does too.

Caddy runs with the admin API off, no trust-store installation, its storage and HOME in a
temporary directory, and listens on loopback only; the tests trust its local root CA
(``<storage>/pki/authorities/local/root.crt``) and nothing else. In CI (``CI=true``) a missing
``caddy`` fails the tests; locally they skip.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from test_oauth_browser import approve_in_browser, chromium, spki_pin
from fsclient import stop_process
from prereq import require_program
from oauth_client import (
    TIMEOUT,
    OAuthHub,
    chatgpt_flow,
    challenge_params,
    free_port,
    mcp,
    INIT,
    running_hub,
    sdk_oauth_tools,
)

pytestmark = pytest.mark.anyio


def caddyfile(storage: Path, port: int, http_port: int, upstream: int) -> str:
    # Caddy 2.6 syntax. `auto_https disable_redirects` keeps it off port 80; `bind` keeps the
    # site on loopback.
    return f"""{{
	admin off
	skip_install_trust
	auto_https disable_redirects
	http_port {http_port}
	https_port {port}
	storage file_system {storage}
	log {{
		level WARN
	}}
}}

https://localhost:{port} {{
	bind 127.0.0.1
	tls internal
	reverse_proxy 127.0.0.1:{upstream}
}}
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthHub]:
    caddy = require_program("caddy")
    base = tmp_path_factory.mktemp("caddy")
    port, http_port, hub_port = free_port(), free_port(), free_port()
    with running_hub(base / "hub", public_url=f"https://localhost:{port}", port=hub_port) as hub:
        storage = base / "storage"
        config = base / "Caddyfile"
        config.write_text(caddyfile(storage, port, http_port, hub_port))
        env = {**os.environ, "HOME": str(base), "XDG_DATA_HOME": str(base / "data"),
               "XDG_CONFIG_HOME": str(base / "config")}
        log = base / "caddy.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([caddy, "run", "--config", str(config), "--adapter", "caddyfile"],
                                    stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            ca = storage / "pki" / "authorities" / "local" / "root.crt"
            deadline = time.monotonic() + TIMEOUT
            last: object = None
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    pytest.fail(f"caddy exited with {proc.returncode}:\n{log.read_text()}", pytrace=False)
                if ca.is_file():
                    try:
                        ctx = ssl.create_default_context(cafile=str(ca))
                        r = httpx2.get(f"https://localhost:{port}/healthz", verify=ctx, timeout=5)
                        if r.status_code == 200:
                            break
                        last = r.status_code
                    except (OSError, httpx2.HTTPError, ssl.SSLError) as e:
                        last = e
                time.sleep(0.1)
            else:
                pytest.fail(f"caddy never served https://localhost:{port}/healthz ({last!r}):\n{log.read_text()}",
                            pytrace=False)
            hub.ca = ca
            yield hub
        finally:
            stop_process(proc, 10)


def test_the_front_is_real_tls(hub: OAuthHub) -> None:
    """Only Caddy's CA verifies the front, and the challenge names the public https URL."""
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{hub.issuer}/healthz", verify=ssl.create_default_context(cafile=None), timeout=5)
    with hub.client() as http:
        r = mcp(http, hub, INIT)
    assert r.status_code == 401, r.text
    assert challenge_params(r.headers["www-authenticate"]).get("resource_metadata") == \
        f"{hub.issuer}/.well-known/oauth-protected-resource/mcp", r.headers["www-authenticate"]


async def test_chatgpt_like_flow_behind_caddy(hub: OAuthHub) -> None:
    """Issue 6 acceptance; CG-04, CG-06, AS-08 over HTTPS through a reverse proxy."""
    with hub.client() as http:
        await chatgpt_flow(hub, http)


async def test_official_sdk_oauth_client_behind_caddy(hub: OAuthHub) -> None:
    """The official SDK's ``OAuthClientProvider`` over real HTTPS."""
    names, text, storage, opened = await sdk_oauth_tools(hub)
    assert "fs__read_file" in names and "hello through oauth" in text, (names, text)
    assert opened and opened[0].startswith(f"{hub.issuer}/authorize?"), opened


def test_chromium_consent_over_https_behind_caddy(hub: OAuthHub, tmp_path: Path) -> None:
    """The consent page at its public HTTPS origin in headless Chromium, which trusts exactly
    Caddy's certificate for localhost (by its public key): render, type the owner secret,
    Approve, and the loopback callback gets code, state and iss."""
    assert hub.ca is not None
    leaf = hub.ca.parents[3] / "certificates" / "local" / "localhost" / "localhost.crt"
    with chromium(tmp_path, f"--ignore-certificate-errors-spki-list={spki_pin(leaf)}") as page:
        approve_in_browser(hub, page, hub.issuer)
