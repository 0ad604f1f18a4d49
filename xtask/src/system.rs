//! `cargo xtask system`: the hardened system unit under a real systemd.
//!
//! A Debian bookworm root made once by `mmdebstrap --variant=minbase
//! --include=systemd,systemd-sysv,dbus,curl,ca-certificates,libpam-systemd` (cached as
//! `.cache/nspawn-bookworm-login.tar`) is unpacked
//! afresh, the built `bastion` binary and `packaging/systemd/bastion@.service` are copied in with
//! a test configuration and a token, and the root is booted with `systemd-nspawn -b`. Inside,
//! `systemctl start bastion@ci` must bring the hub up; then plain HTTP JSON-RPC (curl, inside the
//! container) initialises, lists the tools, asks `shell__sandbox_status` (Landlock, seccomp and
//! the namespaces must all be on under the unit's restrictions) and runs `ls` through
//! `shell__run_command`. `systemd-analyze security` on the live unit must stay at 2.0 or lower.
//!
//! Then the user unit, `packaging/systemd/bastion.service`, under a real user manager: the
//! container's systemd starts `user@1500.service` for a user `alice` (`loginctl enable-linger`,
//! as the unit's header tells users), and `systemctl --user start bastion` must bring up a hub serving
//! `~/project`, bound in by a drop-in as the unit's comment tells users to, with the same
//! sandbox checks; the hub's view of home (`/proc/PID/root/home/alice`) must hold only the
//! configuration, the state and that root; and `systemd-analyze --user security` on the
//! running unit must stay within its limit in `dist::UNITS`.
//!
//! nspawn gets the Landlock system calls added to its seccomp allow list (systemd 252 lacks
//! them). It runs without registering with machined (the host need not run systemd) and shares
//! the host's network, so the hub listens on a port chosen free on the host.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::dist::tempdir;
use crate::interop::target_dir;
use crate::util::{apt_install, cache_dir, cargo, have, output_of, repo_root, run};

/// A fresh copy of the cached Debian bookworm root that boots (made with mmdebstrap on first
/// use).
pub fn fresh_root(what: &str) -> Result<PathBuf> {
    // libpam-systemd: logind's PAM module, which gives a user manager its XDG_RUNTIME_DIR.
    debian_root(
        what,
        "bookworm",
        "systemd,systemd-sysv,dbus,curl,ca-certificates,libpam-systemd",
        "nspawn-bookworm-login.tar",
    )
}

/// A fresh copy of a minimal Debian `suite` root with the packages `include` (comma-separated),
/// made once by `mmdebstrap --variant=minbase` and cached as `.cache/CACHED`.
pub fn debian_root(what: &str, suite: &str, include: &str, cached: &str) -> Result<PathBuf> {
    let tarball = cache_dir().join(cached);
    if !tarball.is_file() {
        if !have("mmdebstrap") {
            apt_install(&["mmdebstrap"])?;
        }
        std::fs::create_dir_all(cache_dir())?;
        let partial = tarball.with_extension("partial.tar");
        run(Command::new("mmdebstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={include}"))
            .arg(suite)
            .arg(&partial))?;
        std::fs::rename(&partial, &tarball)?;
    }
    let root = tempdir(what)?;
    run(Command::new("tar").arg("-C").arg(&root).arg("-xf").arg(&tarball))?;
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
    let user_port = free_port()?;
    install_into(root, binary, port)?;
    install_user_unit(root, user_port)?;
    let token = create_token(root)?;
    let user_token = create_user_token(root)?;
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
        let journal = || output_of(&mut inside(&["journalctl", "-u", "bastion@ci", "--no-pager", "-n", "40"]));
        check_hub(&inside, port, &token, journal)?;
        eprintln!("xtask: shell__run_command ran `ls` sandboxed under bastion@ci.service");
        let security = output_of(&mut inside(&["systemd-analyze", "security", "--no-pager", "bastion@ci.service"]))
            .context("systemd-analyze security inside the container")?;
        let exposure = exposure_of(&security)?;
        eprintln!("xtask: live system unit: exposure {exposure}");
        ensure!(exposure <= 2.0, "the running unit is rated {exposure}:\n{security}");
        run(&mut inside(&["systemctl", "stop", "bastion@ci.service"]))?;
        user_unit(&inside, user_port, &user_token)
    })();
    container.stop();
    result
}

/// The user unit under alice's own user manager (`user@UID.service`, which logind starts for a
/// lingering user): it must start, serve the root bound in by its drop-in with the sandbox
/// whole, hide the rest of home and the user's runtime directory (session bus, the user
/// manager's own socket), and be rated at most the limit `dist::UNITS` gives it.
fn user_unit(inside: &dyn Fn(&[&str]) -> Command, port: u16, token: &str) -> Result<()> {
    // nspawn covers /proc/kmsg with a deleted fifo; a user manager keeps the container's /proc
    // (it may not mount its own), and ProtectKernelLogs= then fails to bind over that entry
    // (226/NAMESPACE). On a host /proc/kmsg is the kernel's file: make the container match.
    run(&mut inside(&["umount", "/proc/kmsg"]))?;
    // As the unit's header says: a lingering user's manager runs without a login session.
    run(&mut inside(&["loginctl", "enable-linger", USER]))?;
    let manager = format!("user@{USER_UID}.service");
    wait_until(Duration::from_secs(20), || {
        output_of(&mut inside(&["systemctl", "is-active", &manager])).is_some_and(|s| s == "active")
    })
    .with_context(|| format!("{manager} never became active"))?;
    let uid = USER_UID.to_string();
    let runtime = format!("XDG_RUNTIME_DIR=/run/user/{USER_UID}");
    let as_user = |args: &[&str]| {
        let mut cmd = inside(&["setpriv", "--reuid", &uid, "--regid", &uid, "--init-groups", "env", &runtime]);
        cmd.args(args);
        cmd
    };
    run(&mut as_user(&["systemctl", "--user", "start", "bastion.service"]))?;
    let journal = || output_of(&mut as_user(&["journalctl", "--user", "-u", "bastion", "--no-pager", "-n", "40"]));
    check_hub(inside, port, token, journal)?;
    eprintln!("xtask: the user unit serves its bound root with the sandbox on, under systemd --user");
    let main_pid = output_of(&mut as_user(&["systemctl", "--user", "show", "-p", "MainPID", "--value", "bastion"]))
        .context("the user unit's main pid")?;
    let home = output_of(&mut inside(&["ls", "-A", &format!("/proc/{main_pid}/root/home/{USER}")]))
        .context("listing home as the hub sees it")?;
    let seen: BTreeSet<&str> = home.split_whitespace().collect();
    ensure!(
        seen == BTreeSet::from([".config", ".local", "project"]),
        "the hub sees {seen:?} in home, not only its configuration, state and bound root"
    );
    let runtime_dirs = output_of(&mut inside(&["ls", "-A", &format!("/proc/{main_pid}/root/run/user")]))
        .context("listing /run/user as the hub sees it")?;
    ensure!(runtime_dirs.is_empty(), "the hub sees the runtime directories {runtime_dirs:?}");
    let security = output_of(&mut as_user(&["systemd-analyze", "--user", "security", "--no-pager", "bastion.service"]))
        .context("systemd-analyze --user security inside the container")?;
    let exposure = exposure_of(&security)?;
    let limit = crate::dist::unit_limit("bastion.service");
    eprintln!("xtask: live user unit: exposure {exposure} (at most {limit})");
    ensure!(exposure <= limit, "the running user unit is rated {exposure}:\n{security}");
    run(&mut as_user(&["systemctl", "--user", "stop", "bastion.service"]))
}

/// Waits for the hub on `port`, then over plain HTTP JSON-RPC (curl, inside the container)
/// initialises, lists the tools, checks that `shell__sandbox_status` has Landlock, seccomp and
/// the namespaces on, and runs `ls -a` in the root, which holds `hello.txt`.
fn check_hub(
    inside: &dyn Fn(&[&str]) -> Command,
    port: u16,
    token: &str,
    journal: impl Fn() -> Option<String>,
) -> Result<()> {
    wait_until(Duration::from_secs(20), || {
        output_of(&mut inside(&["curl", "-fsS", &format!("http://127.0.0.1:{port}/readyz")])).is_some()
    })
    .map_err(|e| anyhow::anyhow!("{e}: the hub never became ready; its journal:\n{}", journal().unwrap_or_default()))?;
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
    Ok(())
}

/// The overall exposure `systemd-analyze security` printed.
fn exposure_of(report: &str) -> Result<f64> {
    report
        .lines()
        .find_map(|l| l.split("Overall exposure level for ").nth(1))
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no exposure level in:\n{report}"))
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

/// The user whose user manager runs the user unit, and its uid.
const USER: &str = "alice";
const USER_UID: u32 = 1500;

/// The user unit where the .deb puts it, and alice: a configuration serving `~/project`, the
/// drop-in that binds that root into the unit's otherwise hidden home, and a file beside it
/// the hub must not see.
fn install_user_unit(root: &Path, port: u16) -> Result<()> {
    let unit = root.join("usr/lib/systemd/user/bastion.service");
    std::fs::create_dir_all(unit.parent().context("unit path")?)?;
    std::fs::copy(repo_root().join("packaging/systemd/bastion.service"), &unit)?;
    run(Command::new("chroot").arg(root).args(["useradd", "-m", "-u", &USER_UID.to_string(), "-s", "/bin/sh", USER]))?;
    let home = root.join("home").join(USER);
    let write = |rel: &str, text: &str| -> Result<()> {
        let path = home.join(rel);
        std::fs::create_dir_all(path.parent().context("path")?)?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("project/hello.txt", "hello from alice's project\n")?;
    write("secret.txt", "not for the hub\n")?;
    write(
        ".config/bastion/hub.toml",
        &format!("listen = \"127.0.0.1:{port}\"\nauth = \"tokens\"\nroots = [\"/home/{USER}/project\"]\n"),
    )?;
    write(".config/systemd/user/bastion.service.d/roots.conf", "[Service]\nBindReadOnlyPaths=%h/project\n")?;
    run(Command::new("chroot").arg(root).args(["chown", "-R", &format!("{USER}:{USER}"), &format!("/home/{USER}")]))
}

/// A `*:*` token in alice's default state directory, created as alice.
fn create_user_token(root: &Path) -> Result<String> {
    let uid = USER_UID.to_string();
    let out = Command::new("chroot")
        .arg(root)
        .args(["setpriv", "--reuid", &uid, "--regid", &uid, "--init-groups", "env", &format!("HOME=/home/{USER}")])
        .args(["bastion", "token", "create", "--scopes", "*:*", "--name", "ci"])
        .stderr(Stdio::inherit())
        .output()
        .context("bastion token create as the user")?;
    ensure!(out.status.success(), "bastion token create as {USER} failed");
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
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
