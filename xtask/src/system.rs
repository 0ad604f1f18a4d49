//! `cargo xtask system`: the hardened system unit under a real systemd.
//!
//! A Debian bookworm root made once by `mmdebstrap --variant=minbase
//! --include=systemd,systemd-sysv,dbus,curl` (cached as `.cache/nspawn-bookworm.tar`) is unpacked
//! afresh, the built `bastion` binary and `packaging/systemd/bastion@.service` are copied in with
//! a test configuration and a token, and the root is booted with `systemd-nspawn -b`. Inside,
//! `systemctl start bastion@ci` must bring the hub up; then plain HTTP JSON-RPC (curl, inside the
//! container) initialises, lists the tools, asks `shell__sandbox_status` (Landlock, seccomp and
//! the namespaces must all be on under the unit's restrictions) and runs `ls` through
//! `shell__run_command`. `systemd-analyze security` on the live unit must stay at 2.0 or lower.
//!
//! nspawn gets the Landlock system calls added to its seccomp allow list (systemd 252 lacks
//! them). It runs without registering with machined (the host need not run systemd) and shares
//! the host's network, so the hub listens on a port chosen free on the host.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::dist::tempdir;
use crate::interop::target_dir;
use crate::util::{apt_install, cache_dir, cargo, have, output_of, repo_root, run};

/// The cached root file system.
fn tarball() -> PathBuf {
    cache_dir().join("nspawn-bookworm.tar")
}

/// A fresh copy of the cached Debian root (made with mmdebstrap on first use).
pub fn fresh_root(what: &str) -> Result<PathBuf> {
    if !tarball().is_file() {
        if !have("mmdebstrap") {
            apt_install(&["mmdebstrap"])?;
        }
        let partial = tarball().with_extension("partial.tar");
        run(Command::new("mmdebstrap")
            .args(["--variant=minbase", "--include=systemd,systemd-sysv,dbus,curl,ca-certificates", "bookworm"])
            .arg(&partial))?;
        std::fs::rename(&partial, tarball())?;
    }
    let root = tempdir(what)?;
    run(Command::new("tar").arg("-C").arg(&root).arg("-xf").arg(tarball()))?;
    Ok(root)
}

/// Runs the whole test; `release` picks the release binary (as the .deb ships) over the debug one.
pub fn run_system(release: bool) -> Result<()> {
    if !have("systemd-nspawn") {
        apt_install(&["systemd-container"])?;
    }
    let binary = if release {
        crate::dist::release_binary()?
    } else {
        run(cargo().args(["build", "--locked", "-p", "bastion-hub", "--bin", "bastion"]))?;
        target_dir().join("debug/bastion")
    };
    let root = fresh_root("system")?;
    let result = boot_and_test(&root, &binary);
    std::fs::remove_dir_all(&root).ok();
    result
}

fn boot_and_test(root: &Path, binary: &Path) -> Result<()> {
    let port = free_port()?;
    install_into(root, binary, port)?;
    let token = create_token(root)?;
    let mut nspawn = Command::new("systemd-nspawn");
    nspawn
        .arg("-D")
        .arg(root)
        .args(["-b", "--register=no", "--keep-unit", "--console=pipe", "-M", "bastion-ci"])
        // nspawn's own seccomp allow list (systemd 252, bookworm) lacks the Landlock calls, so
        // every service in the container would see ENOSYS and run without Landlock: allow
        // them, as a container meant to run Bastion must.
        .arg("--system-call-filter=landlock_create_ruleset landlock_add_rule landlock_restrict_self")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    eprintln!("xtask: booting {} with systemd-nspawn", root.display());
    let started = Instant::now();
    let child = nspawn.spawn().context("starting systemd-nspawn")?;
    let mut container = Container { child, leader: None };
    let result = (|| {
        let leader = container.wait_for_boot()?;
        eprintln!("xtask: the container's systemd is running after {:.1} s", started.elapsed().as_secs_f64());
        let inside = |args: &[&str]| {
            let mut cmd = Command::new("nsenter");
            cmd.args(["-t", &leader.to_string(), "-a"]).args(args);
            cmd
        };
        run(&mut inside(&["systemctl", "start", "bastion@ci.service"]))?;
        wait_until(Duration::from_secs(20), || {
            output_of(&mut inside(&["curl", "-fsS", &format!("http://127.0.0.1:{port}/readyz")])).is_some()
        })
        .map_err(|e| {
            let journal = output_of(&mut inside(&["journalctl", "-u", "bastion@ci", "--no-pager", "-n", "40"]));
            anyhow::anyhow!("{e}: the hub never became ready; its journal:\n{}", journal.unwrap_or_default())
        })?;
        let rpc = |body: &str| -> Result<serde_json::Value> {
            let out = output_of(&mut inside(&[
                "curl",
                "-fsS",
                "-H",
                &format!("Authorization: Bearer {token}"),
                "-H",
                "Content-Type: application/json",
                "-H",
                "Accept: application/json, text/event-stream",
                "-H",
                "MCP-Protocol-Version: 2025-06-18",
                "--data-binary",
                body,
                &format!("http://127.0.0.1:{port}/mcp"),
            ]))
            .with_context(|| format!("POST /mcp {body}"))?;
            serde_json::from_str(&out).with_context(|| format!("not JSON: {out}"))
        };
        let init = rpc(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"xtask-system","version":"1"}}}"#,
        )?;
        ensure!(init["result"]["serverInfo"].is_object(), "initialize: {init}");
        let tools = rpc(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#)?;
        let names: Vec<&str> =
            tools["result"]["tools"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
        ensure!(names.contains(&"shell__run_command") && names.contains(&"fs__read_file"), "tools/list: {names:?}");
        let status = rpc(
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"shell__sandbox_status","arguments":{}}}"#,
        )?;
        let st = &status["result"]["structuredContent"];
        eprintln!("xtask: sandbox under the unit: {st}");
        for (field, want) in [("seccomp", true), ("userns", true), ("no_new_privs", true)] {
            ensure!(st[field].as_bool() == Some(want), "sandbox_status.{field} is not {want}: {status}");
        }
        ensure!(st["landlock"].as_str().is_some_and(|l| l != "none"), "Landlock is off under the unit: {status}");
        let ls = rpc(
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"shell__run_command","arguments":{"program":"ls","args":["-a"]}}}"#,
        )?;
        let text = ls["result"]["content"][0]["text"].as_str().unwrap_or_default();
        ensure!(ls["result"]["isError"] != true && text.contains("hello.txt"), "run_command ls: {ls}");
        eprintln!("xtask: shell__run_command ran `ls` sandboxed under bastion@ci.service");
        let security = output_of(&mut inside(&["systemd-analyze", "security", "--no-pager", "bastion@ci.service"]))
            .context("systemd-analyze security inside the container")?;
        let overall = security.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_default().to_owned();
        eprintln!("xtask: live unit: {overall}");
        let exposure: f64 = overall
            .split(": ")
            .nth(1)
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .context("no exposure level")?;
        ensure!(exposure <= 2.0, "the running unit is rated {exposure}:\n{security}");
        run(&mut inside(&["systemctl", "stop", "bastion@ci.service"]))?;
        Ok(())
    })();
    container.stop();
    result
}

/// A booting or booted `systemd-nspawn -b` container.
pub(crate) struct Container {
    pub(crate) child: Child,
    pub(crate) leader: Option<u32>,
}

impl Container {
    /// The container's pid 1 (seen from the host), once `systemctl is-system-running` says the
    /// boot finished.
    pub(crate) fn wait_for_boot(&mut self) -> Result<u32> {
        let nspawn = self.child.id();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("systemd-nspawn exited early ({status})");
            }
            if self.leader.is_none() {
                self.leader = children(nspawn).into_iter().next();
            }
            if let Some(leader) = self.leader {
                // Exits non-zero while starting and when degraded, so read stdout regardless.
                let state = Command::new("nsenter")
                    .args(["-t", &leader.to_string(), "-a", "systemctl", "is-system-running"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                    .unwrap_or_default();
                // `degraded` (an unrelated unit failed in the minimal root) is booted too.
                if state == "running" || state == "degraded" {
                    return Ok(leader);
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        bail!("the container did not finish booting within 60 s")
    }

    pub(crate) fn stop(&mut self) {
        // SIGTERM asks nspawn to shut the container down cleanly; give it a few seconds.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn children(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(path).unwrap_or_default().split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("timed out after {} s", limit.as_secs())
}

pub(crate) fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The binary, the unit, a configuration serving one root with a file in it, and the user.
fn install_into(root: &Path, binary: &Path, port: u16) -> Result<()> {
    let copy = |from: &Path, to: &str| -> Result<()> {
        let dest = root.join(to);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, &dest).with_context(|| format!("copying {} to {}", from.display(), dest.display()))?;
        Ok(())
    };
    copy(binary, "usr/bin/bastion")?;
    copy(&repo_root().join("packaging/systemd/bastion@.service"), "etc/systemd/system/bastion@.service")?;
    copy(&repo_root().join("packaging/deb/sysusers.conf"), "usr/lib/sysusers.d/bastion.conf")?;
    std::fs::create_dir_all(root.join("srv/bastion/ci"))?;
    std::fs::write(root.join("srv/bastion/ci/hello.txt"), "hello from the container\n")?;
    std::fs::create_dir_all(root.join("etc/bastion"))?;
    std::fs::write(
        root.join("etc/bastion/ci.toml"),
        format!("listen = \"127.0.0.1:{port}\"\nauth = \"tokens\"\nroots = [\"/srv/bastion/ci\"]\n"),
    )?;
    run(Command::new("chroot").arg(root).args(["systemd-sysusers", "/usr/lib/sysusers.d/bastion.conf"]))?;
    Ok(())
}

/// A `*:*` token in the instance's state directory, owned by the service user.
fn create_token(root: &Path) -> Result<String> {
    let out = Command::new("chroot")
        .arg(root)
        .args([
            "env",
            "BASTION_STATE_DIR=/var/lib/bastion/ci",
            "bastion",
            "token",
            "create",
            "--scopes",
            "*:*",
            "--name",
            "ci",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("bastion token create")?;
    ensure!(out.status.success(), "bastion token create failed");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    run(Command::new("chroot").arg(root).args(["chown", "-R", "bastion:bastion", "/var/lib/bastion"]))?;
    Ok(token)
}
