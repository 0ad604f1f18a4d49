"""The consent page in a real browser: headless Chromium (Debian ``chromium``) opens the
``/authorize`` URL, renders the page, the owner secret is typed into ``owner_secret`` and
``#approve`` is clicked with mouse events; a loopback callback listener (the registered
``http://127.0.0.1:PORT/cb``, RFC 8252 §7.3) receives ``code``, ``state`` and ``iss``, and the code
is exchanged for a working token.

Chromium is driven over the DevTools protocol (``browser.py``). In CI (``CI=true``) a missing
``chromium`` fails the test; locally it skips.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from browser import DevTools, chromium
from prereq import require_program
from oauth_client import LIST, TIMEOUT, Flow, OAuthHub, listed_tools, mcp, register, running_hub


def submitted(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The POST requests the page made (URL, the headers as sent, the response status)."""
    posts = {e["params"]["requestId"]: {"url": e["params"]["request"]["url"]} for e in events
             if e["method"] == "Network.requestWillBeSent" and e["params"]["request"]["method"] == "POST"}
    for e in events:
        rid = e.get("params", {}).get("requestId")
        if rid in posts and e["method"] == "Network.requestWillBeSentExtraInfo":
            posts[rid]["origin"] = {k.lower(): v for k, v in e["params"]["headers"].items()}.get("origin")
        if rid in posts and e["method"] == "Network.responseReceived":
            posts[rid]["status"] = e["params"]["response"]["status"]
            posts[rid]["referrer-policy"] = {k.lower(): v for k, v in e["params"]["response"]["headers"].items()
                                             }.get("referrer-policy")
    return list(posts.values())


def consent_referrer_policy(events: list[dict[str, Any]]) -> str | None:
    for e in events:
        if e["method"] == "Network.responseReceived" and e["params"]["response"]["url"].split("?")[0].endswith("/authorize") \
                and e["params"]["type"] == "Document":
            return {k.lower(): v for k, v in e["params"]["response"]["headers"].items()}.get("referrer-policy")
    return None


@contextmanager
def callback_listener() -> Iterator[tuple[str, list[dict[str, list[str]]], threading.Event]]:
    """A loopback HTTP server standing in for the client's redirect endpoint."""
    received: list[dict[str, list[str]]] = []
    got = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if urlsplit(self.path).path == "/cb":
                received.append(parse_qs(urlsplit(self.path).query))
                got.set()
            body = b"<!doctype html><title>done</title><p>You can close this window.</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cb", received, got
    finally:
        server.shutdown()
        server.server_close()


def test_chromium_renders_and_submits_the_consent_page(tmp_path: Path) -> None:
    """AS-06 in a browser: the page renders with no console errors or failed loads, the owner
    types the secret and clicks Approve, the loopback redirect carries code, state and iss
    (AS-08), and the code is exchanged for a token that lists tools. The browser reaches the hub
    on its loopback address (the Host guard allows loopback); `test_oauth_caddy.py` does the same
    over HTTPS at the public URL."""
    require_program("chromium")
    with running_hub(tmp_path / "hub") as hub, chromium(tmp_path) as page:
        approve_in_browser(hub, page, f"http://127.0.0.1:{hub.port}")


def spki_pin(pem: Path) -> str:
    """Chromium's `--ignore-certificate-errors-spki-list` value for the certificate in `pem`:
    base64 of the SHA-256 of its public key, so the browser trusts exactly that key."""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def approve_in_browser(hub: OAuthHub, page: DevTools, origin: str) -> None:
    """Registers a client with a loopback callback, opens `origin`/authorize in the browser,
    approves as the owner and checks what reaches the callback."""
    with hub.client() as http, callback_listener() as (cb, received, got):
        reg = register(hub, http, [cb], "Browser Test")
        assert reg.status_code == 201, reg.text
        flow = Flow(hub=hub, http=http, client_id=reg.json()["client_id"], redirect_uri=cb)
        url = f"{origin}/authorize?{urlencode(flow.authorize_params('fs:read git:read'))}"
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        mark = len(page.events)
        page.send("Page.navigate", url=url)
        page.wait_for("Page.loadEventFired", since=mark)
        assert page.eval("document.contentType") == "text/html"
        assert page.eval("document.title"), "the consent page has no title"
        text = page.eval("document.body.innerText")
        assert "Browser Test" in text and "127.0.0.1" in text, text
        assert "fs:read" in text and "git:read" in text, text
        assert page.eval("document.querySelectorAll('input[name=scope]:checked').length") == 2
        # Every control has an accessible name (a label, aria-label or text).
        unnamed = page.eval("""[...document.querySelectorAll('input:not([type=hidden]), button')]
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()
                         && !e.value).map(e => e.outerHTML)""")
        assert unnamed == [], f"controls without an accessible name: {unnamed}"
        # Type the owner secret and click Approve.
        page.eval("document.querySelector('input[name=owner_secret]').focus()")
        page.send("Input.insertText", text=hub.owner_secret)
        assert page.eval("document.querySelector('input[name=owner_secret]').value") == hub.owner_secret
        after = len(page.events)
        page.click("#approve")
        if not got.wait(TIMEOUT):
            raise AssertionError(
                f"the callback never arrived; the page is now {page.eval('location.href')}: "
                f"{page.eval('document.body.innerText')[:300]!r}; the consent POST as the browser sent it: "
                f"{submitted(page.events)}; the consent page's Referrer-Policy: {consent_referrer_policy(page.events)!r} "
                f"(with no-referrer, browsers send `Origin: null` on a form POST: Fetch, 'append a request Origin header')")
        params = {k: v[0] for k, v in received[0].items()}
        assert params.get("state") == flow.state and params.get("iss") == hub.issuer, params
        assert params.get("code") and "error" not in params, params
        page.wait_for("Page.loadEventFired", since=after)
        # No console errors, exceptions or failed loads (the browser's own /favicon.ico aside).
        problems = [e for e in page.events if e["method"] in ("Runtime.exceptionThrown",)
                    or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
                    or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
                        and "favicon.ico" not in e["params"]["entry"].get("url", ""))
                    or (e["method"] == "Network.loadingFailed" and not e["params"].get("canceled"))]
        assert problems == [], json.dumps(problems, indent=1)[:3000]
        r = flow.exchange(params["code"])
        assert r.status_code == 200, r.text
        assert "fs__read_file" in listed_tools(mcp(http, hub, LIST, r.json()["access_token"]))
