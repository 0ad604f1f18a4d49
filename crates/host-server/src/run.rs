//! Running a host program: the rules' verdict, then the sandbox trampoline with the host's view
//! (its `/proc`, systemd, D-Bus and the journal, read-only), no writes, no network.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bastion_policy::commands::{CommandRules, RlimitConfig, find_executable};
use bastion_policy::{Error, ErrorCode, Policy, Result};
use bastion_shell::sandbox::{Spec, Status};
use tokio::io::{AsyncRead, AsyncReadExt};

/// What the host programs read besides the system directories the trampoline always grants
/// (`/usr`, `/proc`, the harmless part of `/etc`, …): systemd's runtime directory (its private
/// socket and unit state), the system D-Bus socket, the journal, unit files, block devices.
const HOST_READABLE: &[&str] = &[
    "/run/systemd",
    "/run/dbus",
    "/var/run/dbus",
    "/var/log/journal",
    "/run/log/journal",
    "/etc/machine-id",
    "/etc/machine-info",
    "/etc/hostname",
    "/etc/systemd",
    "/etc/fstab",
    "/etc/mtab",
    "/sys",
    "/run/udev",
    "/run/mount",
];

/// Container sockets: reaching one is root on the host. Landlock does not govern connecting to
/// a UNIX socket, so unless container reads are enabled they are covered in the command's mount
/// namespace.
const CONTAINER_SOCKETS: &[&str] = &[
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
    "/run/crio/crio.sock",
];

/// The environment of every host program: no pager, no colour, a fixed locale.
const BASE_ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    ("LANG", "C.UTF-8"),
    ("TERM", "dumb"),
    ("SYSTEMD_PAGER", ""),
    ("SYSTEMD_COLORS", "0"),
    ("SYSTEMD_LESS", ""),
    ("PAGER", "cat"),
    ("HOME", "/nonexistent"),
];

/// Starts host programs in the sandbox.
#[derive(Debug)]
pub struct Runner {
    /// The binary re-run as the trampoline.
    pub exe: PathBuf,
    /// The host profile's rules (container reads removed unless enabled).
    pub rules: CommandRules,
    /// What the sandbox achieves here.
    pub status: Status,
    /// Covered in the command's mount namespace (container sockets, Bastion's own state).
    pub hidden: Vec<PathBuf>,
    /// Bytes kept of each of stdout and stderr.
    pub max_output: usize,
    /// Resource limits of every program.
    pub rlimits: RlimitConfig,
}

/// What a program did.
#[derive(Debug, Clone, Default)]
pub struct Ran {
    /// The arguments as run.
    pub argv: Vec<String>,
    /// Exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Killed by a signal, or after the timeout.
    pub signal: Option<i32>,
    /// Standard output (cut at the budget).
    pub stdout: String,
    /// Standard error (cut at the budget).
    pub stderr: String,
    /// Either stream was cut.
    pub truncated: bool,
    /// Did not finish within the timeout (and was killed).
    pub timed_out: bool,
}

impl Ran {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

impl Runner {
    /// A runner for `rules`; `containers` leaves the container sockets visible.
    pub fn new(exe: PathBuf, rules: CommandRules, status: Status, policy: &Policy, containers: bool) -> Self {
        let mut hidden: Vec<PathBuf> = Vec::new();
        if !containers {
            hidden.extend(CONTAINER_SOCKETS.iter().map(PathBuf::from).filter(|p| p.exists()));
        }
        let protected = policy.protected();
        for dir in HOST_READABLE {
            hidden.extend(protected.beneath(Path::new(dir)));
        }
        // A symlink (`/var/run` → `/run`) names the same socket twice: cover it once.
        let mut real: Vec<PathBuf> = hidden.iter().map(|p| p.canonicalize().unwrap_or_else(|_| p.clone())).collect();
        real.sort();
        real.dedup();
        // Without a mount namespace nothing can be covered; the grammar still keeps every
        // program away from the container sockets (none of them speaks to one unless enabled).
        if !status.userns {
            real.clear();
        }
        Runner { exe, rules, status, hidden: real, max_output: 1 << 20, rlimits: RlimitConfig::default() }
    }

    /// Checks `program args` against the host profile and runs it.
    pub async fn run_checked(&self, program: &str, args: &[String], timeout: Duration) -> Result<Ran> {
        let rule = self.rules.program(program)?;
        let checked = rule.check(args)?;
        let Some(exe) = rule.exe.clone() else {
            return Err(Error::new(
                ErrorCode::CommandNotAllowed,
                format!("'{program}' is allowed but not installed on this host"),
            ));
        };
        self.run_argv(&exe, program, checked.argv, timeout).await
    }

    /// Runs `program` (looked up in the system directories) with an argv built by
    /// bastion-policy (`OpsRules::service_argv`): the operate tier's commands.
    pub async fn run_built(&self, program: &str, argv: Vec<String>, timeout: Duration) -> Result<Ran> {
        let Some(exe) = find_executable(program) else {
            return Err(Error::new(ErrorCode::NotEnabled, format!("'{program}' is not installed on this host")));
        };
        self.run_argv(&exe, program, argv, timeout).await
    }

    /// The trampoline's specification for `exe argv`.
    pub fn spec(&self, exe: &Path, argv0: &str, argv: Vec<String>) -> Spec {
        Spec {
            program: exe.to_path_buf(),
            argv0: argv0.to_string(),
            args: argv,
            cwd: PathBuf::from("/"),
            env: BASE_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            read_paths: HOST_READABLE.iter().map(PathBuf::from).collect(),
            write_paths: Vec::new(),
            readonly_paths: Vec::new(),
            hidden_paths: self.hidden.clone(),
            tcp_connect: Vec::new(),
            // No network: `local_sockets` allows UNIX and netlink sockets only.
            network: false,
            landlock: true,
            seccomp: true,
            namespaces: self.status.userns,
            rlimits: self.rlimits.clone(),
            parent_pid: std::process::id() as i32,
            probe: false,
            host_proc: true,
            local_sockets: true,
        }
    }

    async fn run_argv(&self, exe: &Path, argv0: &str, argv: Vec<String>, timeout: Duration) -> Result<Ran> {
        let spec = self.spec(exe, argv0, argv.clone());
        let mut child = bastion_shell::sandbox::trampoline(&self.exe, &spec)
            .map_err(|e| Error::new(ErrorCode::IoError, format!("cannot encode the command: {e}")))?
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::new(ErrorCode::IoError, format!("cannot start the sandbox: {e}")))?;
        let pid = child.id();
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(Error::new(ErrorCode::IoError, "the sandbox's output pipes are missing"));
        };
        let budget = self.max_output;
        let work = async {
            let (o, e, status) = tokio::join!(read_capped(out, budget), read_capped(err, budget), child.wait());
            (o, e, status)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(((stdout, cut_out), (stderr, cut_err), status)) => {
                let status = status.map_err(|e| Error::new(ErrorCode::IoError, format!("waiting for {argv0}: {e}")))?;
                use std::os::unix::process::ExitStatusExt;
                let (exit_code, signal) = match (status.code(), status.signal()) {
                    (Some(c), _) if c > 128 && c < 128 + 65 => (None, Some(c - 128)),
                    (code, signal) => (code, signal),
                };
                Ok(Ran { argv, exit_code, signal, stdout, stderr, truncated: cut_out || cut_err, timed_out: false })
            }
            Err(_) => {
                if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
                Ok(Ran { argv, signal: Some(9), timed_out: true, ..Default::default() })
            }
        }
    }
}

/// Reads `r` to the end, keeping at most `budget` bytes; says whether it cut.
async fn read_capped<R: AsyncRead + Unpin>(mut r: R, budget: usize) -> (String, bool) {
    let mut kept = Vec::new();
    let mut cut = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = budget.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                cut |= n > room;
            }
        }
    }
    (String::from_utf8_lossy(&kept).into_owned(), cut)
}
