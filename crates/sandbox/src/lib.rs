//! `bastion-sandbox`: the kernel sandbox every shell command (and every contained third-party
//! upstream of the hub) runs in.
//!
//! The server never forks into a sandbox from its own (multi-threaded) process: it re-executes
//! itself as `<exe> __sandbox-exec <spec>`, a single-threaded trampoline that applies, in order,
//! a new session, parent-death signal, namespaces (user, pid, mount, ipc, uts: the command
//! becomes pid 1 of its own pid namespace, so killing it kills every descendant, even those that
//! called `setsid`), rlimits, the capability bounding set, no-new-privileges, Landlock, seccomp,
//! close-on-exec of inherited descriptors, and then `execve`s the program with a rebuilt
//! environment. Everything that is applied is inherited by every descendant.
//!
//! A binary that uses the sandbox calls [`maybe_run_trampoline`] first thing in `main`, before
//! any thread exists, and starts sandboxed programs with [`trampoline`].
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod seccomp;
mod sys;
mod trampoline;

use std::path::PathBuf;

use bastion_policy::commands::RlimitConfig;
use serde::{Deserialize, Serialize};

pub use trampoline::{SANDBOX_ARG, maybe_run_trampoline};

/// Everything the trampoline needs, passed as JSON in its argv.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Spec {
    /// Absolute path of the program.
    pub program: PathBuf,
    /// `argv[0]` (the name the model used).
    pub argv0: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Working directory (real path inside a root).
    pub cwd: PathBuf,
    /// The whole environment of the program.
    pub env: Vec<(String, String)>,
    /// Readable and executable beneath these.
    pub read_paths: Vec<PathBuf>,
    /// Readable, writable and executable beneath these.
    pub write_paths: Vec<PathBuf>,
    /// Mounted read-only even inside a writable path (a root's `.git`).
    #[serde(default)]
    pub readonly_paths: Vec<PathBuf>,
    /// Bastion's own state beneath a granted path, covered before Landlock applies (Landlock
    /// cannot subtract a subdirectory from an allowed one): a directory by an empty read-only
    /// tmpfs, a file by `/dev/null`. The command cannot start when this cannot be done.
    #[serde(default)]
    pub hidden_paths: Vec<PathBuf>,
    /// TCP ports the program may connect to.
    pub tcp_connect: Vec<u16>,
    /// Any IPv4 or IPv6 traffic, TCP and UDP (a contained upstream that calls a web API or
    /// resolves names); `tcp_connect` is then moot. UNIX, netlink, packet and raw sockets stay
    /// denied (the SSH agent, a container daemon, the hub's control socket).
    #[serde(default)]
    pub network: bool,
    /// Apply Landlock.
    pub landlock: bool,
    /// Apply the seccomp filter.
    pub seccomp: bool,
    /// Use namespaces.
    pub namespaces: bool,
    /// Resource limits.
    pub rlimits: RlimitConfig,
    /// The server's pid: the trampoline exits if its parent is already gone.
    pub parent_pid: i32,
    /// Report what could be applied as JSON on stdout instead of running a program.
    pub probe: bool,
    /// Keep the host's pid namespace and `/proc` (the host server: `ps`, `ss -p` and
    /// `systemctl` read every process). The command still gets its own user, mount, ipc and uts
    /// namespaces and every other confinement; it is not pid 1 of a namespace, so its
    /// descendants are ended through its process group.
    #[serde(default)]
    pub host_proc: bool,
    /// Allow `AF_UNIX` and `AF_NETLINK` sockets, and no other family (the host server:
    /// systemctl and hostnamectl talk D-Bus, ss and ip read netlink). Without `tcp_connect`
    /// there is still no network. Landlock does not govern connecting to a UNIX socket, so
    /// the sockets the command must not reach are listed in `hidden_paths`.
    #[serde(default)]
    pub local_sockets: bool,
}

/// What the sandbox achieves on this machine, found by running the trampoline once.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Status {
    /// Landlock ABI of the kernel (0: none).
    pub landlock_abi: u32,
    /// `full` (every requested right enforced), `partial` or `none`.
    pub landlock: String,
    /// The seccomp filter was installed.
    pub seccomp: bool,
    /// User, pid and mount namespaces were created.
    pub userns: bool,
    /// A fresh `/proc` for the pid namespace was mounted.
    pub private_proc: bool,
    /// Every mount but the writable paths is read-only for the command (so no chmod, utimes or
    /// xattr change outside them, which Landlock does not cover), and `.git` stays read-only.
    pub readonly_mounts: bool,
    /// `PR_SET_NO_NEW_PRIVS` is set.
    pub no_new_privs: bool,
    /// Every capability was dropped from the bounding set.
    pub capabilities_dropped: bool,
    /// Landlock signal and abstract-socket scoping (ABI 6+).
    pub scoped: bool,
    /// Landlock TCP rules (ABI 4+).
    pub tcp_rules: bool,
    /// Problems met while applying (empty when everything worked).
    pub notes: Vec<String>,
}

impl Status {
    /// Landlock confines files (fully or partially).
    pub fn landlock_active(&self) -> bool {
        self.landlock != "none"
    }
}

/// The trampoline for `spec`: `<exe> __sandbox-exec <json>` with an empty environment (the
/// trampoline needs none, and the server's own, such as `LD_PRELOAD` or tokens, must not reach
/// even it; the program's environment travels in the spec).
pub fn trampoline(exe: &std::path::Path, spec: &Spec) -> Result<tokio::process::Command, serde_json::Error> {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.env_clear().arg(SANDBOX_ARG).arg(serde_json::to_string(spec)?).kill_on_drop(true);
    Ok(cmd)
}

/// Runs the trampoline in probe mode to find what the sandbox achieves here.
pub async fn probe(exe: &std::path::Path, namespaces: bool) -> Status {
    let spec = Spec {
        program: PathBuf::from("/bin/true"),
        argv0: "probe".into(),
        cwd: PathBuf::from("/"),
        read_paths: vec![PathBuf::from("/usr")],
        landlock: true,
        seccomp: true,
        namespaces,
        rlimits: RlimitConfig::default(),
        parent_pid: std::process::id() as i32,
        probe: true,
        ..Default::default()
    };
    let mut cmd = match trampoline(exe, &spec) {
        Ok(cmd) => cmd,
        Err(e) => return failed(format!("cannot encode the probe: {e}")),
    };
    let out = cmd.stdin(std::process::Stdio::null()).output().await;
    match out {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| failed(format!("the probe printed something unexpected: {e}"))),
        Ok(out) => failed(format!(
            "the sandbox probe failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => failed(format!("cannot start the sandbox probe: {e}")),
    }
}

fn failed(note: String) -> Status {
    Status { landlock: "none".into(), notes: vec![note], ..Default::default() }
}
