"""Crash safety of the hub's OAuth state against the real ``bastion serve --public-url``: clients
refresh tokens and register in a loop, the hub is killed with SIGKILL at a random moment and
started again on the same state directory. After every kill the store passes
``PRAGMA integrity_check``, no grant has two live refresh tokens or a half-written issue, the
refresh token the client holds either works once or its grant is revoked, the last access token
received works on ``/mcp``, and every registration acknowledged to a client exists.

``BASTION_CRASH_TRIALS`` sets the trials of each kind (default 5: each restart waits for the
hub's upstreams). The same checks run 100 times in process in ``crates/auth/tests/crash_safety.rs``.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import threading
import time
from pathlib import Path

import httpx2

from oauth_client import Flow, OAuthHub, mcp, new_flow, register, running_hub

TRIALS = int(os.environ.get("BASTION_CRASH_TRIALS", "5"))
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


def kill9(hub: OAuthHub) -> None:
    assert hub.proc is not None
    hub.proc.kill()
    hub.proc.wait(timeout=10)
    hub.proc = None


def check_store(state: Path) -> sqlite3.Connection:
    """Opens the store as a restarted hub would (a hot journal is rolled back) and checks what
    must hold after any crash."""
    db = sqlite3.connect(state / "auth.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = db.execute(
        """SELECT g.id, g.revoked IS NOT NULL,
                  COALESCE(SUM(t.kind = 'refresh' AND t.revoked IS NULL AND t.rotated IS NULL), 0),
                  COALESCE(SUM(t.kind = 'refresh'), 0), COALESCE(SUM(t.kind = 'access'), 0),
                  COALESCE(SUM(t.kind = 'refresh' AND t.rotated IS NOT NULL), 0)
           FROM grants g LEFT JOIN tokens t ON t.grant_id = g.id GROUP BY g.id""").fetchall()
    for gid, revoked, live, refresh, access, rotated in rows:
        assert revoked or live <= 1, f"grant {gid}: {live} live refresh tokens"
        assert refresh >= 1 and refresh == access, f"grant {gid}: {refresh} refresh, {access} access tokens"
        assert rotated + 1 == refresh, f"grant {gid}: {rotated} rotated of {refresh}"
    return db


def token_state(db: sqlite3.Connection, token: str) -> tuple[bool, bool]:
    row = db.execute(
        """SELECT t.revoked IS NOT NULL OR g.revoked IS NOT NULL, t.rotated IS NOT NULL
           FROM tokens t JOIN grants g ON g.id = t.grant_id WHERE t.hash = ?""",
        (hashlib.sha256(token.encode()).hexdigest(),)).fetchone()
    assert row is not None, "the token the client holds is not in the store"
    return bool(row[0]), bool(row[1])


def test_sigkill_during_refresh_loses_nothing(tmp_path: Path) -> None:
    with running_hub(tmp_path / "h") as hub, hub.client() as http:
        flow = new_flow(hub, http, name="crash refresh")
        worked = revoked = 0
        for trial in range(TRIALS):
            tokens = flow.tokens("fs:read")
            held: dict[str, str] = {"refresh": tokens["refresh_token"], "access": tokens["access_token"]}
            done = threading.Event()

            def loop(f: Flow = flow, held: dict[str, str] = held) -> None:
                with hub.client() as c:
                    f2 = Flow(hub=hub, http=c, client_id=f.client_id, redirect_uri=f.redirect_uri)
                    while True:
                        try:
                            r = f2.refresh(held["refresh"])
                        except httpx2.HTTPError:
                            break
                        assert r.status_code == 200, f"a live hub refused a fresh refresh token: {r.text}"
                        held["refresh"], held["access"] = r.json()["refresh_token"], r.json()["access_token"]
                done.set()

            t = threading.Thread(target=loop)
            t.start()
            time.sleep(random.uniform(0, 0.15))
            kill9(hub)
            t.join(timeout=30)
            assert done.is_set()
            db = check_store(hub.state)
            assert not token_state(db, held["access"])[0], f"trial {trial}: the last access token is revoked"
            dead, rotated = token_state(db, held["refresh"])
            assert not dead, f"trial {trial}: the held refresh token is revoked before any reuse"
            db.close()
            hub.start()
            assert mcp(http, hub, LIST, held["access"]).status_code == 200, f"trial {trial}: access token refused"
            r = flow.refresh(held["refresh"])
            if r.status_code == 200:
                assert not rotated
                worked += 1
                again = flow.refresh(held["refresh"])
                assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text
            else:
                assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
                assert rotated, f"trial {trial}: a token never rotated was refused"
                revoked += 1
            db = check_store(hub.state)
            assert token_state(db, held["refresh"])[0], f"trial {trial}: the reused token's grant is live"
            db.close()
        print(f"{TRIALS} kills during refresh: held token worked {worked}, grant revoked {revoked}")


def test_sigkill_during_registration_loses_nothing(tmp_path: Path) -> None:
    with running_hub(tmp_path / "h") as hub, hub.client() as http:
        acked: list[tuple[str, str, str]] = []
        for trial in range(TRIALS):
            def loop(trial: int = trial) -> None:
                with hub.client() as c:
                    for k in range(8):
                        name, uri = f"client {trial}.{k}", f"http://127.0.0.1:9/cb/{trial}/{k}"
                        try:
                            r = register(hub, c, [uri], name)
                        except httpx2.HTTPError:
                            return
                        assert r.status_code == 201, r.text
                        acked.append((r.json()["client_id"], name, uri))

            t = threading.Thread(target=loop)
            t.start()
            time.sleep(random.uniform(0, 0.2))
            kill9(hub)
            t.join(timeout=30)
            db = check_store(hub.state)
            for cid, name, uri in acked:
                row = db.execute("SELECT client_name, redirect_uris FROM clients WHERE client_id = ?", (cid,)).fetchone()
                assert row is not None, f"trial {trial}: acknowledged client {cid} is missing"
                assert row[0] == name and row[1] == f'["{uri}"]', row
            db.close()
            hub.start()
            if acked:
                cid, _, uri = acked[-1]
                page = Flow(hub=hub, http=http, client_id=cid, redirect_uri=uri).get_authorize("fs:read")
                assert page.status_code == 200, page.text[:300]
        print(f"{TRIALS} kills during registration: {len(acked)} registrations acknowledged, all present")
