"""The dashboard (``/dashboard``) in a real browser: headless Chromium over the DevTools protocol
(``browser.py``), against the hub (``bastion serve``) and against a server alone (``bastion fs``
over stdio watched by ``bastion dashboard --journal FILE --control SOCKET``).

Tool calls come from the official MCP Python SDK; the person's side is the browser: it signs in
with the one-time link ``bastion dashboard`` prints, watches calls arrive on Now, approves a held
deletion, revokes a token and pauses the hub with real mouse clicks. The security checks are made
the way an attacker would try them: a form on another origin, a post without the CSRF token, the
page in a frame, tool arguments carrying HTML and script. axe-core (npm, pinned by ``cargo xtask
interop``, path in ``BASTION_AXE_CORE``) checks every page; a screenshot of each page, at desktop
and phone widths, is saved under ``target/test-artifacts/dashboard/`` (or ``$BASTION_ARTIFACTS``).
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import ClientSession

from browser import DevTools, chromium, screenshot
from fsclient import REPO_ROOT, bastion_binary, call, free_port, stdio_session, stop_process
from test_approvals import cli, code_of, events, fs_params, http_session, journal, wait_pending
from test_hub import Hub, running_hub

pytestmark = pytest.mark.anyio

TIMEOUT = 30.0
PAGES = ["now", "approvals", "upstreams", "access", "journal", "health"]
# The rows of Now's "Recent calls" table, as text (In flight lists a call until it answers).
RECENT = "[...document.querySelectorAll('#live [aria-label=\"Recent calls\"] tbody tr')].map(r => r.innerText)"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def artifacts() -> Path:
    d = Path(os.environ.get("BASTION_ARTIFACTS", REPO_ROOT / "target" / "test-artifacts")) / "dashboard"
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---------------------------------------------------------------------------------------------
# helpers


@contextmanager
def dashboard_hub(tmp: Path) -> Iterator[Hub]:
    """A hub whose fs upstream offers writes and deletions (deletions ask: the default rule)."""
    config = tmp / "hub.toml"
    config.write_text('[[upstream]]\nname = "fs"\nbuiltin = "fs"\nargs = ["--allow-write", "--allow-destructive"]\n')
    with running_hub(tmp, "--config", str(config)) as h:
        yield h


def link(state: Path, *extra: str) -> str:
    """A fresh one-time sign-in link from ``bastion dashboard``."""
    r = subprocess.run([str(bastion_binary()), "dashboard", "--state-dir", str(state), *extra],
                       capture_output=True, text=True, timeout=TIMEOUT, check=True)
    out = r.stdout.strip()
    assert "/dashboard/login?t=bdl_" in out and "\n" not in out, (r.stdout, r.stderr)
    return out


def wait_js(page: DevTools, expression: str, timeout: float = TIMEOUT) -> Any:
    """Polls a JavaScript expression until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.eval(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{expression} stayed falsy for {timeout}s on {page.eval('location.href')}: "
                                 f"{page.eval('document.body && document.body.innerText')!r:.600}")
        time.sleep(0.02)


def go(page: DevTools, url: str) -> None:
    """Navigates and waits until the document is loaded and the live feed connected."""
    mark = len(page.events)
    page.send("Page.navigate", url=url)
    page.wait_for("Page.loadEventFired", since=mark)


def sign_in(page: DevTools, url: str) -> None:
    for domain in ("Page", "Runtime", "Log", "Network"):
        page.send(f"{domain}.enable")
    go(page, url)
    # The landing page moves on to Now by a same-origin navigation.
    wait_js(page, "location.pathname === '/dashboard/now' && document.readyState === 'complete'")
    wait_js(page, "document.documentElement.dataset.live === 'connected'")


def live_text(page: DevTools) -> str:
    return page.eval("document.getElementById('live').innerText")


def problems(page: DevTools) -> list[dict[str, Any]]:
    """Console errors, exceptions, CSP violations and failed loads seen so far."""
    return [e for e in page.events if e["method"] == "Runtime.exceptionThrown"
            or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
            or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
                and "favicon.ico" not in e["params"]["entry"].get("url", ""))]


def cookie(page: DevTools) -> str:
    cookies = page.send("Network.getCookies")["cookies"]
    [c] = [c for c in cookies if c["name"] == "bastion_dashboard"]
    assert c["httpOnly"] and c["sameSite"] == "Strict", c
    return c["value"]


@contextmanager
def other_origin(html: str) -> Iterator[str]:
    """A page on another origin (``localhost``, not ``127.0.0.1``: another site to the browser)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = html.encode()
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
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def paused_events(audit: Path) -> list[dict[str, Any]]:
    return events(audit, "pause")


# ---------------------------------------------------------------------------------------------
# the hub


def test_a_one_time_link_signs_in_once(tmp_path: Path) -> None:
    with dashboard_hub(tmp_path) as hub, chromium(tmp_path) as page:
        url = link(hub.state)
        assert url.startswith(f"http://127.0.0.1:{hub.port}/dashboard/login?t=bdl_"), url
        sign_in(page, url)
        assert page.eval("document.title") == "Now · Bastion"
        assert "bastion_dashboard" not in page.eval("document.cookie"), "the session cookie is HttpOnly"
        cookie(page)
        # Used: the same link again, from a fresh browser, opens nothing.
        r = httpx2.get(url, timeout=TIMEOUT)
        assert r.status_code == 401 and "set-cookie" not in r.headers, r.text
        assert "already used or has expired" in r.text
        # A bearer token opens nothing either.
        r = httpx2.get(f"http://127.0.0.1:{hub.port}/dashboard/now", headers={"Authorization": f"Bearer {hub.token}"},
                       timeout=TIMEOUT, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
        # The owner secret signs in too.
        secret = subprocess.run([str(bastion_binary()), "owner-secret", "--state-dir", str(hub.state)],
                                capture_output=True, text=True, timeout=TIMEOUT, check=True).stdout.strip()
        (tmp_path / "second").mkdir()
        with chromium(tmp_path / "second") as other:
            for domain in ("Page", "Runtime", "Network"):
                other.send(f"{domain}.enable")
            go(other, f"http://127.0.0.1:{hub.port}/dashboard/login")
            other.eval("document.getElementById('owner_secret').focus()")
            other.send("Input.insertText", text=secret)
            other.click("button[type=submit]")
            wait_js(other, "location.pathname === '/dashboard/now' && document.readyState === 'complete'")
        assert problems(page) == [], problems(page)


async def test_an_sdk_call_appears_on_now_within_a_second(tmp_path: Path) -> None:
    with dashboard_hub(tmp_path) as hub, chromium(tmp_path) as page:
        (hub.root / "notes.txt").write_text("hello\n")
        await anyio.to_thread.run_sync(sign_in, page, link(hub.state))
        async with http_session(hub, hub.token) as s:
            assert (await code_of(s, "fs__read_file", {"path": "notes.txt"}))[0] is None
            answered = time.monotonic()

            def shown() -> float:
                wait_js(page, f"{RECENT}.some(t => t.includes('fs__read_file'))", timeout=5)
                return time.monotonic() - answered

            took = await anyio.to_thread.run_sync(shown)
        assert took < 1.0, f"the call appeared after {took:.2f}s"
        row = page.eval(f"{RECENT}.find(t => t.includes('fs__read_file'))")
        assert "owner" in row and "notes.txt" in row and "ok" in row, row


async def test_a_held_deletion_approved_from_approvals_completes(tmp_path: Path) -> None:
    with dashboard_hub(tmp_path) as hub, chromium(tmp_path) as page:
        (hub.root / "old.txt").write_text("first line\nsecond line\n")
        await anyio.to_thread.run_sync(sign_in, page, link(hub.state))
        await anyio.to_thread.run_sync(go, page, f"http://127.0.0.1:{hub.port}/dashboard/approvals")
        result: dict[str, Any] = {}
        async with http_session(hub, hub.token) as s:
            async with anyio.create_task_group() as tg:

                async def delete() -> None:
                    result["r"] = await code_of(s, "fs__delete_path", {"path": "old.txt"})

                tg.start_soon(delete)

                def approve() -> str:
                    # The request appears without a reload, with what the deletion removes.
                    wait_js(page, "document.querySelector('#live article.request') !== null")
                    rendering = page.eval("document.querySelector('#live pre.rendering').innerText")
                    assert (hub.root / "old.txt").exists(), "nothing runs before the decision"
                    mark = len(page.events)
                    page.click("#live button[value=approve]")
                    page.wait_for("Page.loadEventFired", since=mark)
                    return rendering

                rendering = await anyio.to_thread.run_sync(approve)
        assert "delete old.txt" in rendering and "-second line" in rendering, rendering
        assert result["r"][0] is None, result
        assert not (hub.root / "old.txt").exists()
        [d] = events(hub.state / "audit.jsonl", "approval_decision")
        assert (d["detail"]["decision"], d["detail"]["channel"]) == ("approved", "dashboard")
        assert "Approved" in page.eval("document.querySelector('.flash').innerText")
        wait_js(page, "document.getElementById('live').innerText.includes('approved')")


def revoke_in_browser(page: DevTools, port: int, name: str) -> None:
    go(page, f"http://127.0.0.1:{port}/dashboard/access")
    buttons = "document.querySelectorAll('#live form[action=\"/dashboard/access/revoke\"] button')"
    labels = page.eval(f"[...{buttons}].map(b => b.innerText)")
    page.eval(f"{buttons}[{labels.index(f'Revoke {name}')}].id = 'target'")
    mark = len(page.events)
    page.click("#target")
    page.wait_for("Page.loadEventFired", since=mark)


async def test_a_token_revoked_on_access_is_refused_at_its_next_call(tmp_path: Path) -> None:
    with dashboard_hub(tmp_path) as hub, chromium(tmp_path) as page:
        doomed = hub.create_token("doomed", "fs:read")
        await anyio.to_thread.run_sync(sign_in, page, link(hub.state))
        async with http_session(hub, doomed) as s:
            assert (await code_of(s, "fs__list_directory", {"path": "."}))[0] is None
        await anyio.to_thread.run_sync(revoke_in_browser, page, hub.port, "doomed")
        assert "Revoked" in page.eval("document.querySelector('.flash').innerText")
        rows = page.eval("[...document.querySelectorAll('#live tbody tr')].map(r => r.innerText)")
        assert any(r.startswith("doomed") and "revoked" in r for r in rows), rows
        status, headers, _ = hub.raw({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, token=doomed)
        assert status == 401, status
        # The owner's token still works.
        assert hub.raw({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, token=hub.token)[0] == 200


async def test_a_refused_request_shows_on_now(tmp_path: Path) -> None:
    with dashboard_hub(tmp_path) as hub, chromium(tmp_path) as page:
        doomed = hub.create_token("doomed", "fs:read")
        await anyio.to_thread.run_sync(sign_in, page, link(hub.state))
        hub.token_cmd("revoke", "doomed")
        assert hub.raw({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, token=doomed)[0] == 401

        def shown() -> str:
            return wait_js(page, "(() => { const t = document.getElementById('live').innerText;"
                                 " return t.includes('401') && t.includes('/mcp') ? t : ''; })()", timeout=5)

        text = await anyio.to_thread.run_sync(shown)
        assert "127.0.0.1" in text, text


async def test_pause_from_the_header_stops_calls(tmp_path: Path) -> None:
    with dashboard_hub(tmp_path) as hub, chromium(tmp_path) as page:
        await anyio.to_thread.run_sync(sign_in, page, link(hub.state))

        def click(selector: str) -> None:
            mark = len(page.events)
            page.click(selector)
            page.wait_for("Page.loadEventFired", since=mark)

        async with http_session(hub, hub.token) as s:
            await anyio.to_thread.run_sync(click, "header form[action='/dashboard/pause'] button")
            assert "Paused" in page.eval("document.querySelector('header').innerText")
            assert (await code_of(s, "fs__list_directory", {"path": "."}))[0] == "paused"
            await anyio.to_thread.run_sync(click, "header form[action='/dashboard/resume'] button")
            # The resume is done when the reloaded page says so (a load event can also come from
            # the page before it, under load).
            await anyio.to_thread.run_sync(
                lambda: wait_js(page, "!document.querySelector('header').innerText.includes('Paused')", timeout=5))
            assert (await code_of(s, "fs__list_directory", {"path": "."}))[0] is None
        names = [e["event"] for e in journal(hub.state / "audit.jsonl") if e.get("event") in ("pause", "resume")]
        assert names == ["pause", "resume"]
        assert [e["detail"]["channel"] for e in events(hub.state / "audit.jsonl", "pause")] == ["dashboard"]


async def test_an_upstream_restarted_from_upstreams_comes_back(tmp_path: Path) -> None:
    with dashboard_hub(tmp_path) as hub, chromium(tmp_path) as page:
        await anyio.to_thread.run_sync(sign_in, page, link(hub.state))

        def restart() -> str:
            go(page, f"http://127.0.0.1:{hub.port}/dashboard/upstreams")
            assert page.eval("document.querySelector('#live tbody tr').innerText").split("\t")[2] == "ready"
            mark = len(page.events)
            page.click("#live form[action='/dashboard/upstreams/fs/restart'] button")
            page.wait_for("Page.loadEventFired", since=mark)
            # Back to ready, with one restart and the reason, without reloading the page.
            return wait_js(page, "(() => { const c = document.querySelector('#live tbody tr').innerText.split('\\t');"
                                 " return c[2] === 'ready' && c[4] === '1' ? c.join('|') : ''; })()")

        row = await anyio.to_thread.run_sync(restart)
        assert "restarted by the operator" in row, row
        async with http_session(hub, hub.token) as s:
            assert (await code_of(s, "fs__list_directory", {"path": "."}))[0] is None
        [e] = events(hub.state / "audit.jsonl", "upstream_restart")
        assert e["detail"] == {"upstream": "fs", "channel": "dashboard"}


async def test_tool_arguments_render_inert(tmp_path: Path) -> None:
    with dashboard_hub(tmp_path) as hub, chromium(tmp_path) as page:
        await anyio.to_thread.run_sync(sign_in, page, link(hub.state))
        async with http_session(hub, hub.token) as s:
            code, _ = await code_of(s, "fs__read_file", {"path": XSS})
            assert code is not None
        await anyio.to_thread.run_sync(wait_js, page, "document.getElementById('live').innerText.includes('onerror')")
        # Shown as text, run never: no element was made from it, no script ran.
        assert json.dumps({"path": XSS}, separators=(",", ":")) in live_text(page), live_text(page)
        assert page.eval("window.__xss === undefined")
        assert page.eval("document.querySelectorAll('#live img, #live script').length") == 0
        # The journal page and a full reload render it the same way.
        for url in (f"http://127.0.0.1:{hub.port}/dashboard/journal?text=onerror", f"http://127.0.0.1:{hub.port}/dashboard/now"):
            await anyio.to_thread.run_sync(go, page, url)
            assert "onerror" in live_text(page)
            assert page.eval("window.__xss === undefined && document.querySelectorAll('#live img, #live script').length === 0")


def test_cross_site_posts_and_posts_without_the_csrf_token_change_nothing(tmp_path: Path) -> None:
    with dashboard_hub(tmp_path) as hub, chromium(tmp_path) as page:
        sign_in(page, link(hub.state))
        session = cookie(page)
        csrf = page.eval("document.querySelector('meta[name=csrf-token]').content")
        base = f"http://127.0.0.1:{hub.port}"
        audit = hub.state / "audit.jsonl"
        # A page on another site posts a form to the dashboard (it may even know a token).
        forged = (f'<!doctype html><title>x</title><form id="f" method="post" action="{base}/dashboard/pause">'
                  f'<input name="csrf" value="{csrf}"></form><script>document.getElementById("f").submit()</script>')
        with other_origin(forged) as attacker:
            mark = len(page.events)
            page.send("Page.navigate", url=attacker)
            page.wait_for("Page.loadEventFired", since=mark)
            wait_js(page, "location.href.startsWith('http://127.0.0.1')", timeout=10)
            assert page.eval("document.body.innerText").strip().startswith(("Forbidden", "sign in")), \
                page.eval("document.body.innerText")
        # Without the CSRF token, with a wrong one, or from another origin, with the session.
        for data, origin in [({}, base), ({"csrf": "bcf_guess"}, base), ({"csrf": csrf}, "http://localhost:1"),
                             ({"csrf": csrf}, "null")]:
            r = httpx2.post(f"{base}/dashboard/pause", data=data, timeout=TIMEOUT, follow_redirects=False,
                            headers={"Origin": origin, "Cookie": f"bastion_dashboard={session}",
                                     "Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 403, (data, origin, r.status_code, r.text)
        # A bearer token instead of the session.
        r = httpx2.post(f"{base}/dashboard/pause", data={"csrf": csrf}, timeout=TIMEOUT,
                        headers={"Origin": base, "Authorization": f"Bearer {hub.token}"})
        assert r.status_code == 401, r.text
        assert paused_events(audit) == [], "nothing was paused"
        status, _, body = hub.raw({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                   "params": {"name": "fs__list_directory", "arguments": {"path": "."}}},
                                  token=hub.token)
        assert status == 200 and b"paused" not in body, body
        # The same post with the session, this origin and the token works: the checks are the reason.
        r = httpx2.post(f"{base}/dashboard/pause", data={"csrf": csrf}, timeout=TIMEOUT, follow_redirects=False,
                        headers={"Origin": base, "Cookie": f"bastion_dashboard={session}"})
        assert r.status_code == 303, r.text
        assert len(paused_events(audit)) == 1


def test_the_dashboard_in_a_frame_is_refused(tmp_path: Path) -> None:
    with dashboard_hub(tmp_path) as hub, chromium(tmp_path) as page:
        base = f"http://127.0.0.1:{hub.port}"
        sign_in(page, link(hub.state))
        r = httpx2.get(f"{base}/dashboard/login", timeout=TIMEOUT)
        assert r.headers["x-frame-options"] == "DENY"
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        framing = f'<!doctype html><title>frame</title><iframe id="f" src="{base}/dashboard/now" width="800" height="600"></iframe>'
        with other_origin(framing) as attacker:
            mark = len(page.events)
            go(page, attacker)
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                seen = page.events[mark:]
                failed = [e for e in seen if e["method"] == "Network.loadingFailed"
                          and e["params"].get("type") == "Document"]
                said = [e for e in seen if e["method"] == "Log.entryAdded"
                        and "frame-ancestors" in e["params"]["entry"]["text"]]
                if failed and said:
                    break
                page.eval("1")  # lets events arrive
                time.sleep(0.05)
            # The frame's document was refused by the response's policy, and the browser says so.
            assert [e["params"]["errorText"] for e in failed] == ["net::ERR_BLOCKED_BY_RESPONSE"], failed
            assert "violates" in said[0]["params"]["entry"]["text"], said
            # The refused frame runs nothing of the dashboard: no live feed was opened from it.
            opened = [e for e in seen if e["method"] == "Network.requestWillBeSent"
                      and e["params"]["request"]["url"].endswith("/dashboard/events")]
            assert opened == [], opened


def axe(page: DevTools) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the current page."""
    source = os.environ.get("BASTION_AXE_CORE")
    if not source:
        from prereq import missing
        missing("axe-core is not installed (cargo xtask interop installs it and sets BASTION_AXE_CORE)")
    page.eval(Path(source).read_text() + "\n;true")
    result = page.eval("axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => "
                       "({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.html).slice(0, 3)})))")
    return [v for v in result if v["impact"] in ("serious", "critical")]


async def test_every_page_passes_axe_and_is_captured(tmp_path: Path) -> None:
    with dashboard_hub(tmp_path) as hub, chromium(tmp_path) as page:
        (hub.root / "old.txt").write_text("a\nb\n")
        hub.create_token("ci", "fs:read", "--expires", "30d")
        await anyio.to_thread.run_sync(sign_in, page, link(hub.state))
        out = artifacts()
        async with http_session(hub, hub.token) as s:
            for path in ("old.txt", "missing.txt"):
                await code_of(s, "fs__read_file", {"path": path})
            async with anyio.create_task_group() as tg:

                async def delete() -> None:
                    await call(s, "fs__delete_path", {"path": "old.txt"}, timeout=300)

                tg.start_soon(delete)
                await wait_pending(hub.state)

                def check_pages() -> dict[str, list[dict[str, Any]]]:
                    found: dict[str, list[dict[str, Any]]] = {}

                    def each_page(width: int, suffix: str) -> None:
                        page.send("Emulation.setDeviceMetricsOverride", width=width, height=900,
                                  deviceScaleFactor=1, mobile=bool(suffix))
                        for slug in PAGES:
                            go(page, f"http://127.0.0.1:{hub.port}/dashboard/{slug}")
                            found[f"{slug}{suffix}"] = axe(page)
                            screenshot(page, out / f"{slug}{suffix}.png")
                            if suffix:
                                # Nothing wider than the phone's screen: tables scroll in their box.
                                wide = page.eval("document.documentElement.scrollWidth")
                                assert wide <= width + 1, f"{slug} is {wide}px wide on a {width}px screen"

                    # With a request pending, so Approvals shows its form and rendering.
                    each_page(1280, "")
                    go(page, f"http://127.0.0.1:{hub.port}/dashboard/approvals")
                    mark = len(page.events)
                    page.click("#live button[value=deny]")
                    page.wait_for("Page.loadEventFired", since=mark)
                    each_page(390, "-phone")
                    page.send("Emulation.clearDeviceMetricsOverride")
                    return found

                found = await anyio.to_thread.run_sync(check_pages)
        bad = {k: v for k, v in found.items() if v}
        assert bad == {}, json.dumps(bad, indent=1)
        assert problems(page) == [], json.dumps(problems(page), indent=1)[:3000]
        for slug in PAGES:
            assert (out / f"{slug}.png").stat().st_size > 1000


# ---------------------------------------------------------------------------------------------
# a server alone


@asynccontextmanager
async def standalone(tmp: Path) -> AsyncIterator[tuple[ClientSession, Path, str, DevTools]]:
    """``bastion fs`` over stdio, ``bastion dashboard --journal --control`` watching it, and a
    signed-in browser; yields (session, root, dashboard base URL, page)."""
    root, state, audit = tmp / "proj", tmp / "state", tmp / "audit.jsonl"
    root.mkdir(exist_ok=True)
    async with stdio_session(fs_params(root, state, audit), "bastion-fs") as s:
        # The server opens its control socket at start: the dashboard is pointed at it.
        await code_of(s, "list_roots", {})
        [sock] = list((state / "control").glob("*.sock"))
        port = free_port()
        err = open(tmp / "dashboard.stderr", "w")
        proc = subprocess.Popen([str(bastion_binary()), "dashboard", "--journal", str(audit), "--control", str(sock),
                                 "--state-dir", str(state), "--listen", f"127.0.0.1:{port}"],
                                stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(2)]
            url = lines[1].split()[-1]
            assert url.startswith(f"http://127.0.0.1:{port}/dashboard/login?t=bdl_"), lines
            with chromium(tmp) as page:
                await anyio.to_thread.run_sync(sign_in, page, url)
                yield s, root, f"http://127.0.0.1:{port}", page
        finally:
            stop_process(proc, 10)
            err.close()


async def test_a_server_alone_is_watched_and_approved_from_its_journal_and_socket(tmp_path: Path) -> None:
    async with standalone(tmp_path) as (s, root, base, page):
        (root / "old.txt").write_text("x\n")
        assert (await code_of(s, "read_file", {"path": "old.txt"}))[0] is None
        answered = time.monotonic()

        def shown() -> float:
            wait_js(page, "document.getElementById('live').innerText.includes('read_file')", timeout=5)
            return time.monotonic() - answered

        took = await anyio.to_thread.run_sync(shown)
        assert took < 1.0, f"the call appeared after {took:.2f}s"
        await anyio.to_thread.run_sync(go, page, f"{base}/dashboard/approvals")
        result: dict[str, Any] = {}
        async with anyio.create_task_group() as tg:

            async def delete() -> None:
                result["r"] = await code_of(s, "delete_path", {"path": "old.txt"})

            tg.start_soon(delete)

            def approve() -> None:
                wait_js(page, "document.querySelector('#live article.request') !== null")
                mark = len(page.events)
                page.click("#live button[value=approve]")
                page.wait_for("Page.loadEventFired", since=mark)

            await anyio.to_thread.run_sync(approve)
        assert result["r"][0] is None, result
        assert not (root / "old.txt").exists()
        for slug in ("upstreams", "access", "journal", "health"):
            await anyio.to_thread.run_sync(go, page, f"{base}/dashboard/{slug}")
            assert page.eval("document.querySelector('h1').innerText")
        assert problems(page) == [], problems(page)
