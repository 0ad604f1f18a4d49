"""Headless Chromium (Debian ``chromium``) driven over the DevTools protocol with
``websocket-client``: one synchronous connection to the page target, no driver binary. Shared by
the consent-page tests (``test_oauth_browser.py``, the Caddy and nginx fronts) and the
dashboard's (``test_dashboard.py``). In CI (``CI=true``) a missing ``chromium`` fails the test;
locally it skips.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import websocket

from fsclient import stop_process
from prereq import require_program

TIMEOUT = 30.0
# What Chromium answers an evaluation whose page went away under it.
NAVIGATED = ("Inspected target navigated or closed", "Cannot find context with specified id",
             "Execution context was destroyed")


class DevTools:
    """A minimal Chrome DevTools Protocol session on one page target."""

    def __init__(self, ws_url: str) -> None:
        # No Origin header: Chromium refuses DevTools connections from unlisted origins.
        self.ws = websocket.create_connection(ws_url, timeout=TIMEOUT, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method: str, timeout: float = TIMEOUT, since: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events[since:]:
                if e["method"] == method:
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(f"no {method} within {timeout}s; events: {[e['method'] for e in self.events][-20:]}")
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if "method" in msg:
                self.events.append(msg)

    def eval(self, expression: str) -> Any:
        # An evaluation that meets a navigation (a form submitting itself, a redirect, a reload)
        # loses its page: ask the page that replaced it.
        for attempt in range(50):
            try:
                r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
                break
            except AssertionError as e:
                if attempt == 49 or not any(m in str(e) for m in NAVIGATED):
                    raise
                time.sleep(0.1)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click at the centre of the element (it must be visible and on top)."""
        box = self.eval(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e) return null; e.scrollIntoView(); const r = e.getBoundingClientRect();
            return {{x: r.x + r.width / 2, y: r.y + r.height / 2, w: r.width, h: r.height}}; }})()""")
        assert box and box["w"] > 0 and box["h"] > 0, f"{selector} is missing or not visible: {box}"
        top = self.eval(f"document.elementFromPoint({box['x']}, {box['y']})?.closest({json.dumps(selector)}) !== null")
        assert top, f"{selector} is covered by another element"
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1)

    def close(self) -> None:
        self.ws.close()


@contextmanager
def chromium(tmp: Path, *extra: str) -> Iterator[DevTools]:
    """Headless Chromium (``--no-sandbox``: CI runs as root) with a fresh profile, and a DevTools
    session on its page."""
    exe = require_program("chromium")
    profile = tmp / "chromium-profile"
    log = tmp / "chromium.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--metrics-recording-only", "--password-store=basic", "--use-mock-keychain",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
             *extra, "about:blank"],
            stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "HOME": str(tmp)},
        )
    tools = None
    try:
        # Chromium writes the port it picked to DevToolsActivePort in the profile.
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT
        while not (port_file.is_file() and port_file.read_text().strip()) and time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"chromium exited with {proc.returncode}: {log.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.05)
        assert port_file.is_file(), "chromium never opened its DevTools port"
        port = int(port_file.read_text().split()[0])
        targets: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            targets = [t for t in httpx2.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
                       if t.get("type") == "page"]
            if targets:
                break
            time.sleep(0.05)
        assert targets, "chromium has no page target"
        tools = DevTools(targets[0]["webSocketDebuggerUrl"])
        yield tools
    finally:
        if tools is not None:
            tools.close()
        stop_process(proc, 10)


def screenshot(page: DevTools, path: Path) -> None:
    """Saves the page as a PNG (the whole scrollable page)."""
    shot = page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
