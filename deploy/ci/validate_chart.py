"""Renders deploy/helm/bastion with Helm's engine and checks what comes out.

Run by `cargo xtask ci`'s deploy step (xtask/src/deploy.rs) from .cache/deploy/venv:

1. `helm lint --strict` (Helm 4's linter, through helm-python-sdk's bundled Helm SDK);
2. `helm template` with each value set below (the defaults, and everything switched on);
3. every rendered object against the strict Kubernetes JSON schemas of the oldest and the newest
   Kubernetes the chart claims (kubernetes-validate's pinned copies: unknown fields are errors);
4. Bastion's own invariants, which a schema cannot see: the probes and the Host header they send,
   the Secret references, the security context, and the hub configuration parsed as TOML with the
   keys the chart promises (and deploy/hub.toml and deploy/compose-hub.toml likewise).

Exit status 0 when all hold; otherwise every failure is printed and the status is 1.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

DEPLOY = Path(__file__).resolve().parent.parent
CHART = DEPLOY / "helm" / "bastion"
# The chart's kubeVersion floor (Chart.yaml) and the newest schemas the pinned validator ships.
KUBE_VERSIONS = ["1.30.0", "1.37.0"]

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything": {
        "publicUrl": "https://bastion.example.com",
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "host": "bastion.example.com",
            "tls": [{"secretName": "bastion-tls", "hosts": ["bastion.example.com"]}],
        },
        "autoscaling": {"customMetric": {"enabled": True}},
        "createSecrets": {
            "enabled": True,
            "storeUrl": "postgres://bastion:secret@db.internal/bastion",
            "sealingKey": "00" * 32,
        },
        "hostUsers": False,
        "securityContext": {"procMount": "Unmasked"},
        "extraEnv": [{"name": "BUILDBOX_TOKEN", "valueFrom": {"secretKeyRef": {"name": "buildbox", "key": "token"}}}],
        "workspace": {"persistentVolumeClaim": {"claimName": "projects", "readOnly": True}},
    },
    "fixed-replicas": {"autoscaling": {"enabled": False}, "replicaCount": 3, "podDisruptionBudget": {"enabled": False}},
}


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.items.append(what)


def brief(e: Exception) -> str:
    """A schema error in one line: where in the object, and what (not the whole schema)."""
    caught = getattr(e, "caught", e)
    path = "/".join(str(x) for x in getattr(caught, "absolute_path", []))
    return f"{path or '(top)'}: {getattr(caught, 'message', str(caught))}"


def documents(rendered: dict[str, str]) -> list[dict[str, Any]]:
    docs = []
    for name, text in sorted(rendered.items()):
        if name.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def hub_config(text: str, where: str, p: Problems) -> dict[str, Any]:
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        p.check(False, f"{where}: not TOML: {e}")
        return {}
    p.check(config.get("auth", "tokens") == "tokens", f"{where}: auth must stay on (the hub listens on every interface)")
    p.check(config.get("listen") == "0.0.0.0:8080", f"{where}: listen must be 0.0.0.0:8080")
    return config


def check_invariants(set_name: str, values: dict[str, Any], docs: list[dict[str, Any]], p: Problems) -> None:
    where = f"values '{set_name}'"
    deployments = by_kind(docs, "Deployment")
    p.check(len(deployments) == 1, f"{where}: {len(deployments)} Deployments, want 1")
    if not deployments:
        return
    pod = deployments[0]["spec"]["template"]["spec"]
    (hub,) = pod["containers"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = hub.get(probe, {}).get("httpGet", {})
        p.check(get.get("path") == path, f"{where}: {probe} must GET {path}")
        headers = {h["name"]: h["value"] for h in get.get("httpHeaders", [])}
        p.check(headers.get("Host") == "localhost", f"{where}: {probe} must send Host: localhost (the hub refuses pod IPs)")
    env = {e["name"]: e for e in hub.get("env", [])}
    for name in ("BASTION_STORE", "BASTION_SEALING_KEY"):
        ref = env.get(name, {}).get("valueFrom", {}).get("secretKeyRef")
        p.check(ref is not None, f"{where}: {name} must come from a Secret")
    state = env.get("BASTION_STATE_DIR", {}).get("value", "")
    mounts = {m["mountPath"] for m in hub.get("volumeMounts", [])}
    p.check(
        state.startswith("/var/lib/bastion/") and "/var/lib/bastion" in mounts,
        f"{where}: the state directory must lie beneath the volume, for the hub to create (and own) it",
    )
    sc = hub.get("securityContext", {})
    p.check(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation must be false")
    p.check(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem must be true")
    p.check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: every capability must be dropped")
    p.check(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{where}: runAsNonRoot must be true")
    p.check(pod.get("automountServiceAccountToken") is False, f"{where}: no service account token in the pod")

    (cm,) = by_kind(docs, "ConfigMap")
    config = hub_config(cm["data"]["hub.toml"], f"{where}: ConfigMap hub.toml", p)
    p.check(config.get("store") == "env:BASTION_STORE", f"{where}: hub.toml store must be env:BASTION_STORE")
    p.check(
        config.get("sealing_key") == "env:BASTION_SEALING_KEY",
        f"{where}: hub.toml sealing_key must be env:BASTION_SEALING_KEY",
    )
    p.check(config.get("public_url") == values.get("publicUrl"), f"{where}: hub.toml public_url must follow publicUrl")

    autoscaling = values.get("autoscaling", {}).get("enabled", True)
    p.check(len(by_kind(docs, "HorizontalPodAutoscaler")) == (1 if autoscaling else 0), f"{where}: HPA presence")
    p.check(("replicas" in deployments[0]["spec"]) != autoscaling, f"{where}: replicas set exactly when the HPA is off")
    for hpa in by_kind(docs, "HorizontalPodAutoscaler"):
        kinds = [m["type"] for m in hpa["spec"]["metrics"]]
        p.check(kinds[0] == "Resource", f"{where}: the HPA scales on CPU first")
    ingress = values.get("ingress", {}).get("enabled", False)
    p.check(len(by_kind(docs, "Ingress")) == (1 if ingress else 0), f"{where}: Ingress presence")
    pdb = values.get("podDisruptionBudget", {}).get("enabled", True)
    p.check(len(by_kind(docs, "PodDisruptionBudget")) == (1 if pdb else 0), f"{where}: PodDisruptionBudget presence")
    p.check(len(by_kind(docs, "Service")) == 1, f"{where}: one Service")


def main() -> int:
    p = Problems()
    print(f"validate_chart: Helm SDK {helm.helm_sdk_version()}, kubernetes-validate {kubernetes_validate.__version__}")

    lint = helm.lint(str(CHART), strict=True, kube_version=f"v{KUBE_VERSIONS[0]}")
    for m in lint.get("messages", []):
        # 1 = info ("icon is recommended"): not a finding.
        if m.get("severity", 0) >= 2:
            p.check(False, f"helm lint: {m.get('path')}: {m.get('error')}")
    for e in lint.get("errors", []):
        p.check(False, f"helm lint: {e}")

    chart = helm.Chart.load(str(CHART))
    checked = 0
    for set_name, values in VALUE_SETS.items():
        rendered = chart.render(values, name="bastion", namespace="bastion", is_install=True)
        docs = documents(rendered)
        kinds = sorted({d["kind"] for d in docs})
        print(f"validate_chart: values '{set_name}': {len(docs)} objects ({', '.join(kinds)})")
        for doc in docs:
            for version in KUBE_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                    checked += 1
                except Exception as e:  # the validator's errors have no common base besides Exception
                    p.check(False, f"values '{set_name}': {doc['kind']}/{doc['metadata']['name']} against {version}: {brief(e)}")
        check_invariants(set_name, values, docs, p)

    # Without publicUrl an Ingress would send a Host the hubs refuse: the chart must say so.
    try:
        chart.render({"ingress": {"enabled": True}}, name="bastion", namespace="bastion", is_install=True)
        p.check(False, "an Ingress without publicUrl must fail to render")
    except helm.HelmError as e:
        p.check("publicUrl" in str(e), f"an Ingress without publicUrl fails, but not for that reason: {e}")

    for name in ("hub.toml", "compose-hub.toml"):
        config = hub_config((DEPLOY / name).read_text(), f"deploy/{name}", p)
        p.check(config.get("roots") == ["/srv/workspace"], f"deploy/{name}: roots must be the image's /srv/workspace")
    compose = tomllib.loads((DEPLOY / "compose-hub.toml").read_text())
    p.check(compose.get("store") == "env:BASTION_STORE", "deploy/compose-hub.toml: store must be env:BASTION_STORE")
    p.check(compose.get("sealing_key") == "env:BASTION_SEALING_KEY", "deploy/compose-hub.toml: sealing_key must be env:")

    for item in p.items:
        print(f"validate_chart: FAIL {item}", file=sys.stderr)
    print(f"validate_chart: {checked} object validations against the strict schemas, {len(p.items)} problem(s)")
    return 1 if p.items else 0


if __name__ == "__main__":
    sys.exit(main())
