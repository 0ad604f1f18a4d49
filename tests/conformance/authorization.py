"""The conformance suite's ``authorization`` command against the hub's own OAuth server, with the
authorization code grant completed here as the owner would complete it in a browser.

Run by ``cargo xtask conformance`` (the CI step of that name) with the venv's Python:

    authorization.py NODE SUITE_CLI OUTPUT_DIR

It starts ``bastion serve --public-url http://127.0.0.1:PORT`` (OAuth mode on loopback: the
suite reaches the issuer without DNS or TLS) from ``$BASTION_BIN_DIR``, registers a public
client whose redirect URI is the suite's callback server, runs the suite, and when the suite
prints the authorization URL, opens it, submits the consent form with the owner secret (every
offered scope ticked) and follows the redirect to the suite's callback. The suite then redeems
the code at ``/token`` and checks the answer. It runs twice, with ``resource`` the hub's ``/mcp``
URL and its root URL (the same endpoint). The exit status is the suite's.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urljoin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import httpx2  # noqa: E402
from fsclient import free_port  # noqa: E402
from oauth_client import OAuthHub, consent_form, form_data, register, running_hub  # noqa: E402

TIMEOUT = 120.0


def approve(http: httpx2.Client, hub: OAuthHub, url: str) -> None:
    """Opens the consent page at ``url``, approves it, and delivers the code to the callback."""
    page = http.get(url)
    if page.status_code != 200:
        raise SystemExit(f"the authorization URL answered {page.status_code}: {page.text[:2000]}")
    form = consent_form(page.text)
    data = list(form.hidden.items()) + [("owner_secret", hub.owner_secret)]
    data += [("scope", v) for v, checked in form.scopes() if checked]
    data.append(("decision", "approve"))
    r = http.post(urljoin(str(page.request.url), form.action), data=form_data(data))
    location = r.headers.get("location", "")
    if r.status_code not in (302, 303) or "code=" not in location:
        raise SystemExit(f"the consent form answered {r.status_code} to {location!r}: {r.text[:2000]}")
    # The suite's callback server (plain http on 127.0.0.1).
    httpx2.get(location, timeout=TIMEOUT)


def run_suite(node: str, cli: str, out: str, hub: OAuthHub, http: httpx2.Client, client_id: str,
              callback_port: int, resource: str) -> int:
    """One run of the suite's ``authorization`` command for ``resource``, approving its request."""
    issuer = hub.issuer
    argv = [node, cli, "authorization", "--url", issuer, "--client-id", client_id,
            "--resource", resource, "--port", str(callback_port), "--output-dir", out]
    print("conformance: $", " ".join(argv), flush=True)
    suite = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert suite.stdout is not None
    approvals: list[threading.Thread] = []
    errors: list[BaseException] = []

    def run_approval(url: str) -> None:
        try:
            approve(http, hub, url)
        except BaseException as e:  # reported after the suite ends
            errors.append(e)

    timer = threading.Timer(TIMEOUT, suite.kill)
    timer.start()
    try:
        for line in suite.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.startswith(f"{issuer}/authorize?"):
                t = threading.Thread(target=run_approval, args=(line.strip(),), daemon=True)
                t.start()
                approvals.append(t)
        status = suite.wait()
    finally:
        timer.cancel()
    for t in approvals:
        t.join(timeout=TIMEOUT)
    if errors:
        print(f"conformance: completing the code grant failed: {errors[0]}", file=sys.stderr)
        return 1
    if not approvals:
        print("conformance: the suite never printed an authorization URL", file=sys.stderr)
        return 1
    if status != 0:
        print(f"conformance: the authorization suite exited with {status}\n{hub.log()}", file=sys.stderr)
    return status


def main() -> int:
    node, cli, out = sys.argv[1:4]
    with tempfile.TemporaryDirectory(prefix="bastion-conformance-") as tmp:
        port, callback_port = free_port(), free_port()
        issuer = f"http://127.0.0.1:{port}"
        with running_hub(Path(tmp), public_url=issuer, port=port, allow_write=False) as hub:
            http = hub.client()
            reg = register(hub, http, [f"http://127.0.0.1:{callback_port}/callback"], name="MCP conformance suite")
            if reg.status_code != 201:
                raise SystemExit(f"registration answered {reg.status_code}: {reg.text}")
            client_id = reg.json()["client_id"]
            # Both URLs of the one endpoint: /mcp, and the root (whose metadata names it).
            for name, resource in [("mcp", f"{issuer}/mcp"), ("root", f"{issuer}/")]:
                status = run_suite(node, cli, f"{out}/{name}", hub, http, client_id, callback_port, resource)
                if status != 0:
                    return status
            return 0


if __name__ == "__main__":
    sys.exit(main())
