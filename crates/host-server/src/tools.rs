//! The tools: overview, check_port, service_logs, changes, run_command, list_allowed_commands,
//! and the operate tier's service_action and container_action.

use std::collections::BTreeMap;
use std::time::Duration;

use bastion_policy::audit::now_rfc3339;
use bastion_policy::commands::{NEVER_ALLOWED, ServiceAction, check_unit_name};
use bastion_policy::{Error, ErrorCode};
use bastion_server_kit::{Failure, Json};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::HostServer;
use crate::facts::{self, Disk, Listener, Memory, Os, Process};
use crate::run::Ran;
use crate::snapshot::{Diff, Snapshot};

/// How long an inspection command may run by default, and at most.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_TIMEOUT: Duration = Duration::from_secs(120);
/// A start or restart waits for the unit's job to finish (systemd's default start timeout is
/// 90 s).
const ACTION_TIMEOUT: Duration = Duration::from_secs(120);

fn failure(code: ErrorCode, message: impl Into<String>) -> Failure {
    Failure(Error::new(code, message))
}

/// No arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoArgs {}

/// Arguments of `run_command`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RunArgs {
    /// Program as listed by list_allowed_commands (ps, ss, systemctl, journalctl, df, free, uptime,
    /// vmstat, lsblk, findmnt, ip, uname, hostnamectl). No path, no shell syntax.
    pub program: String,
    /// Arguments, one element each; nothing is expanded. Only reading subcommands and flags exist
    /// (e.g. ["status", "nginx"], ["-ltnp"], ["-u", "nginx", "--since", "1 hour ago"]).
    #[serde(default)]
    pub args: Vec<String>,
    /// Timeout in milliseconds (default 30000, at most 120000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Result of `run_command`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunOut {
    /// Program run.
    pub program: String,
    /// Arguments as run (abbreviations written in full, `--no-pager` added where it applies).
    pub args: Vec<String>,
    /// Exit code; absent when killed.
    pub exit_code: Option<i32>,
    /// Signal that ended it.
    pub signal: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Output was cut at the budget.
    pub truncated: bool,
}

/// Result of `overview`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Overview {
    /// OS, kernel, host name, uptime, load, CPUs, whether systemd runs.
    pub os: Os,
    /// Memory and swap.
    pub memory: Memory,
    /// Mounted file systems holding data.
    pub disks: Vec<Disk>,
    /// The processes that used the most CPU time.
    pub top_cpu: Vec<Process>,
    /// The processes with the most resident memory.
    pub top_memory: Vec<Process>,
    /// Listening TCP and bound UDP sockets with their processes and units.
    pub listening: Vec<Listener>,
    /// Units in the failed state (absent without systemd).
    pub failed_units: Option<Vec<String>>,
    /// What could not be read.
    pub notes: Vec<String>,
}

/// Arguments of `check_port`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PortArgs {
    /// Port number (1-65535).
    pub port: u16,
}

/// Result of `check_port`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PortOut {
    /// The port asked about.
    pub port: u16,
    /// Nothing listens on it (TCP) or is bound to it (UDP).
    pub free: bool,
    /// The sockets on it, with their processes and units.
    pub held_by: Vec<Listener>,
    /// The nearest port nothing listens on (the port itself when it is free).
    pub nearest_free: Option<u16>,
    /// Why an owner may be missing.
    pub note: Option<String>,
}

/// Arguments of `service_logs`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct LogsArgs {
    /// The unit (e.g. "nginx" or "nginx.service").
    pub unit: String,
    /// Start time in journalctl's syntax ("1 hour ago", "today", "2026-01-31 10:00"). Default: no
    /// limit (the last `lines` entries).
    #[serde(default)]
    pub since: Option<String>,
    /// End time, same syntax. Default: now.
    #[serde(default)]
    pub until: Option<String>,
    /// Most entries, newest last (default 100, at most 2000).
    #[serde(default)]
    pub lines: Option<u32>,
    /// Lowest priority shown: emerg, alert, crit, err, warning, notice, info or debug.
    #[serde(default)]
    pub priority: Option<String>,
}

/// Result of `service_logs`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LogsOut {
    /// The unit.
    pub unit: String,
    /// The journalctl arguments run.
    pub args: Vec<String>,
    /// Journal lines (short-iso format), oldest first.
    pub lines: Vec<String>,
    /// Output was cut at the budget.
    pub truncated: bool,
    /// journalctl's own messages (no entries, no permission to read the journal, …).
    pub note: Option<String>,
}

/// Result of `changes`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChangesOut {
    /// When the snapshot compared against was taken (absent: there was none).
    pub since: Option<String>,
    /// Now.
    pub now: String,
    /// There was no snapshot: this call recorded the first one, and the next call compares to it.
    pub baseline_recorded: bool,
    /// What changed.
    pub diff: Diff,
    /// Nothing changed.
    pub unchanged: bool,
}

/// The operate tier's service actions.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    /// systemctl start.
    Start,
    /// systemctl stop.
    Stop,
    /// systemctl restart.
    Restart,
    /// systemctl reload.
    Reload,
}

impl From<ActionName> for ServiceAction {
    fn from(a: ActionName) -> Self {
        match a {
            ActionName::Start => ServiceAction::Start,
            ActionName::Stop => ServiceAction::Stop,
            ActionName::Restart => ServiceAction::Restart,
            ActionName::Reload => ServiceAction::Reload,
        }
    }
}

/// Arguments of `service_action`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ActionArgs {
    /// start, stop, restart or reload.
    pub action: ActionName,
    /// The unit; it must match the operator's [ops] units globs.
    pub unit: String,
}

/// Result of `service_action` and `container_action`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ActionOut {
    /// The command that ran, exactly as the person approved it.
    pub command: String,
    /// It exited with status 0.
    pub succeeded: bool,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The unit's state afterwards (`systemctl show`): ActiveState, SubState,
    /// ExecMainStartTimestamp, MainPID.
    pub state: BTreeMap<String, String>,
}

/// Arguments of `container_action`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ContainerArgs {
    /// Container name or id to restart.
    pub container: String,
    /// The container runtime this host uses (`docker` or `podman`, as list_allowed_commands
    /// shows): named in the call so the approval shows the exact command.
    pub runtime: String,
}

/// One program in `list_allowed_commands`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AllowedCommand {
    /// Name to pass as program.
    pub program: String,
    /// Installed on this host.
    pub available: bool,
    /// Allowed flags (`VALUE` marks flags that take a value).
    pub flags: Vec<String>,
    /// Refused flags with the reason.
    pub denied: Vec<String>,
    /// Subcommands, operands, allowed values.
    pub usage: String,
}

/// Result of `list_allowed_commands`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AllowedCommands {
    /// The programs.
    pub commands: Vec<AllowedCommand>,
    /// Never allowed.
    pub never_allowed: Vec<String>,
    /// Units service_action may act on (globs; empty: none).
    pub operate_units: Vec<String>,
    /// The container runtime container_action uses, when container restarts are enabled.
    pub container_runtime: Option<String>,
}

impl HostServer {
    fn redact(&self, s: &mut String) -> usize {
        self.inner.policy.redactor.redact_string(s)
    }

    /// Runs a checked inspection command with the default timeout.
    async fn inspect(&self, program: &str, args: &[&str]) -> Result<Ran, Error> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        self.inner.runner.run_checked(program, &args, DEFAULT_TIMEOUT).await
    }

    /// `systemctl list-units` → unit → `active/sub` (empty without systemd).
    async fn units(&self, state: Option<&str>) -> Result<BTreeMap<String, String>, String> {
        let mut args = vec!["list-units", "--all", "--plain", "--no-legend", "--full"];
        let filter;
        if let Some(s) = state {
            filter = format!("--state={s}");
            args.push(&filter);
        }
        let ran = self.inspect("systemctl", &args).await.map_err(|e| e.message)?;
        if !ran.success() {
            return Err(format!("systemctl list-units failed: {}", ran.stderr.trim()));
        }
        let mut out = BTreeMap::new();
        for line in ran.stdout.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let [unit, _load, active, sub, ..] = f.as_slice() {
                out.insert(unit.trim_start_matches('●').to_string(), format!("{active}/{sub}"));
            }
        }
        Ok(out)
    }

    async fn snapshot(&self, os: &Os, listeners: &[Listener], disks: &[Disk], notes: &mut Vec<String>) -> Snapshot {
        let units = if os.systemd {
            self.units(None).await.unwrap_or_else(|e| {
                notes.push(e);
                BTreeMap::new()
            })
        } else {
            BTreeMap::new()
        };
        let ports = listeners
            .iter()
            .map(|l| {
                let who: Vec<&str> = l.owners.iter().map(|o| o.command.as_str()).collect();
                let who = if who.is_empty() { "?".to_string() } else { who.join(",") };
                (format!("{} {}:{}", l.proto, l.address, l.port), who)
            })
            .collect();
        let disks =
            disks.iter().map(|d| (d.mount.clone(), format!("{} {} {} MiB", d.fstype, d.source, d.size_mib))).collect();
        Snapshot { taken_at: now_rfc3339(), packages: facts::packages(), units, ports, disks }
    }

    async fn unit_state(&self, unit: &str) -> BTreeMap<String, String> {
        let args = ["show", "-p", "ActiveState,SubState,ExecMainStartTimestamp,MainPID", unit];
        let Ok(ran) = self.inspect("systemctl", &args).await else { return BTreeMap::new() };
        ran.stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
}

fn top(mut procs: Vec<Process>, key: impl Fn(&Process) -> f64, n: usize) -> Vec<Process> {
    procs.sort_by(|a, b| key(b).total_cmp(&key(a)));
    procs.truncate(n);
    procs
}

/// The port closest to `port` that no socket listens on or is bound to (above 1023 for
/// unprivileged ports).
fn nearest_free(port: u16, held: &[Listener]) -> Option<u16> {
    let taken = |p: u16| held.iter().any(|l| l.port == p);
    let low: u32 = if port >= 1024 { 1024 } else { 1 };
    for d in 0u32..=65535 {
        for candidate in [u32::from(port) + d, u32::from(port).wrapping_sub(d)] {
            if candidate >= low && candidate <= 65535 {
                let c = candidate as u16;
                if !taken(c) {
                    return Some(c);
                }
            }
        }
    }
    None
}

#[tool_router(router = router, vis = "pub(crate)")]
impl HostServer {
    /// The machine at a glance: OS, kernel, uptime, load, CPUs, memory, disks, the top processes
    /// by CPU time and memory, listening ports with their process and systemd unit, failed
    /// units. Also records the snapshot that `changes` compares against. Start here.
    #[tool(name = "overview")]
    async fn overview(&self, Parameters(_a): Parameters<NoArgs>) -> Result<Json<Overview>, Failure> {
        let mut notes = Vec::new();
        let os = facts::os();
        let listening = facts::listeners();
        let disks = facts::disks();
        let procs = facts::processes();
        let failed_units = if os.systemd {
            match self.units(Some("failed")).await {
                Ok(units) => Some(units.into_keys().collect()),
                Err(e) => {
                    notes.push(e);
                    None
                }
            }
        } else {
            notes.push("systemd is not running on this host: no units".into());
            None
        };
        if listening.iter().any(|l| l.owners.is_empty()) {
            notes.push(
                "some sockets have no owner shown: they belong to processes of other users, which this server's user may not inspect"
                    .into(),
            );
        }
        let snapshot = self.snapshot(&os, &listening, &disks, &mut notes).await;
        if let Err(e) = self.inner.store.save(&snapshot) {
            notes.push(format!("could not keep the snapshot for changes: {e}"));
        }
        Ok(Json(Overview {
            os,
            memory: facts::memory(),
            disks,
            top_cpu: top(procs.clone(), |p| p.cpu_seconds, 5),
            top_memory: top(procs, |p| p.rss_mib, 5),
            listening,
            failed_units,
            notes,
        }))
    }

    /// Whether a TCP/UDP port is free or held, by which process and unit, and the nearest free
    /// port. Use before starting a server or to find what occupies a port.
    #[tool(name = "check_port")]
    async fn check_port(&self, Parameters(a): Parameters<PortArgs>) -> Result<Json<PortOut>, Failure> {
        if a.port == 0 {
            return Err(failure(ErrorCode::InvalidArgument, "port must be between 1 and 65535"));
        }
        let all = facts::listeners();
        let held_by: Vec<Listener> = all.iter().filter(|l| l.port == a.port).cloned().collect();
        let note = held_by.iter().any(|l| l.owners.is_empty()).then(|| {
            "the owner is not shown: the socket belongs to a process of another user, which this server's user may not inspect".to_string()
        });
        Ok(Json(PortOut {
            port: a.port,
            free: held_by.is_empty(),
            held_by,
            nearest_free: nearest_free(a.port, &all),
            note,
        }))
    }

    /// A systemd unit's journal: the last `lines` entries (default 100), optionally since/until a
    /// time and at or above a priority. Runs `journalctl --no-pager -u UNIT ...` in the sandbox.
    #[tool(name = "service_logs")]
    async fn service_logs(&self, Parameters(a): Parameters<LogsArgs>) -> Result<Json<LogsOut>, Failure> {
        check_unit_name(&a.unit)?;
        let lines = a.lines.unwrap_or(100).clamp(1, 2000).to_string();
        let mut args: Vec<String> =
            vec!["-u".into(), a.unit.clone(), "-n".into(), lines, "-o".into(), "short-iso".into(), "-q".into()];
        for (flag, v) in [("--since", &a.since), ("--until", &a.until), ("--priority", &a.priority)] {
            if let Some(v) = v {
                args.push(format!("{flag}={v}"));
            }
        }
        let ran = self.inner.runner.run_checked("journalctl", &args, DEFAULT_TIMEOUT).await?;
        if ran.timed_out {
            return Err(failure(ErrorCode::Timeout, "journalctl did not finish in time; narrow since/until or lines"));
        }
        let (mut stdout, mut stderr) = (ran.stdout, ran.stderr);
        bastion_server_kit::count_redactions(self.redact(&mut stdout) + self.redact(&mut stderr));
        let stderr = stderr.trim();
        Ok(Json(LogsOut {
            unit: a.unit,
            args: ran.argv,
            lines: stdout.lines().map(str::to_string).collect(),
            truncated: ran.truncated,
            note: (!stderr.is_empty()).then(|| stderr.to_string()),
        }))
    }

    /// What changed on the host since the last snapshot (taken by overview or by this tool):
    /// packages installed, removed or upgraded; units that appeared, went or changed state;
    /// ports opened, closed or taken by another program; file systems mounted, unmounted or
    /// resized. Records the current state as the new snapshot.
    #[tool(name = "changes")]
    async fn changes(&self, Parameters(_a): Parameters<NoArgs>) -> Result<Json<ChangesOut>, Failure> {
        let mut notes = Vec::new();
        let os = facts::os();
        let now = self.snapshot(&os, &facts::listeners(), &facts::disks(), &mut notes).await;
        let before = self.inner.store.load();
        self.inner
            .store
            .save(&now)
            .map_err(|e| failure(ErrorCode::IoError, format!("cannot keep the snapshot: {e}")))?;
        let out = match before {
            Some(before) => {
                let diff = Diff::between(&before, &now);
                ChangesOut {
                    since: Some(before.taken_at),
                    now: now.taken_at,
                    baseline_recorded: false,
                    unchanged: diff.is_empty(),
                    diff,
                }
            }
            None => ChangesOut {
                since: None,
                now: now.taken_at,
                baseline_recorded: true,
                diff: Diff::default(),
                unchanged: true,
            },
        };
        Ok(Json(out))
    }

    /// Runs one of the inspection programs (see list_allowed_commands) with reading-only
    /// arguments, in a sandbox that sees the host's processes, systemd and the journal but can
    /// write nothing and reach no network. Mutating forms (systemctl restart, journalctl
    /// --vacuum-*, ip addr add, ...) are refused before anything runs.
    #[tool(name = "run_command")]
    async fn run_command(&self, Parameters(a): Parameters<RunArgs>) -> Result<Json<RunOut>, Failure> {
        let timeout = a.timeout_ms.map(Duration::from_millis).unwrap_or(DEFAULT_TIMEOUT).min(MAX_TIMEOUT);
        let ran = self.inner.runner.run_checked(&a.program, &a.args, timeout).await?;
        if ran.timed_out {
            return Err(failure(
                ErrorCode::Timeout,
                format!("{} did not finish within {} ms and was killed", a.program, timeout.as_millis()),
            ));
        }
        let (mut stdout, mut stderr) = (ran.stdout, ran.stderr);
        bastion_server_kit::count_redactions(self.redact(&mut stdout) + self.redact(&mut stderr));
        Ok(Json(RunOut {
            program: a.program,
            args: ran.argv,
            exit_code: ran.exit_code,
            signal: ran.signal,
            stdout,
            stderr,
            truncated: ran.truncated,
        }))
    }

    /// The inspection programs run_command accepts, with their subcommands, flags and allowed
    /// values, and the units service_action may act on.
    #[tool(name = "list_allowed_commands")]
    async fn list_allowed_commands(
        &self,
        Parameters(_a): Parameters<NoArgs>,
    ) -> Result<Json<AllowedCommands>, Failure> {
        let commands = self
            .inner
            .runner
            .rules
            .programs()
            .map(|p| AllowedCommand {
                program: p.name.clone(),
                available: p.exe.is_some(),
                flags: p.allowed_flags(),
                denied: p.denied_flags().iter().map(|(f, why)| format!("{f}: {why}")).collect(),
                usage: p.operand_summary(),
            })
            .collect();
        Ok(Json(AllowedCommands {
            commands,
            never_allowed: NEVER_ALLOWED.iter().map(|s| s.to_string()).collect(),
            operate_units: self.inner.ops.unit_globs().to_vec(),
            container_runtime: self.inner.ops.container_restart.then(|| self.inner.ops.container_runtime.clone()),
        }))
    }

    /// Starts, stops, restarts or reloads a systemd unit the operator allowed ([ops] units).
    /// The person approves the exact command first (unless a rule says otherwise). Returns the
    /// unit's state afterwards, with its start time.
    #[tool(name = "service_action")]
    async fn service_action(&self, Parameters(a): Parameters<ActionArgs>) -> Result<Json<ActionOut>, Failure> {
        let argv = self.inner.ops.service_argv(a.action.into(), &a.unit)?;
        let unit = argv.last().cloned().unwrap_or_default();
        let command = format!("systemctl {}", argv.join(" "));
        let ran = self.inner.runner.run_built("systemctl", argv, ACTION_TIMEOUT).await?;
        if ran.timed_out {
            return Err(failure(ErrorCode::Timeout, format!("{command} did not finish in time")));
        }
        let state = self.unit_state(&unit).await;
        let (mut stdout, mut stderr) = (ran.stdout.clone(), ran.stderr.clone());
        bastion_server_kit::count_redactions(self.redact(&mut stdout) + self.redact(&mut stderr));
        Ok(Json(ActionOut { command, succeeded: ran.success(), exit_code: ran.exit_code, stdout, stderr, state }))
    }

    /// Restarts a container (docker or podman, as the operator configured), when the operator
    /// enabled it ([ops] container_restart). The person approves the exact command first.
    #[tool(name = "container_action")]
    async fn container_action(&self, Parameters(a): Parameters<ContainerArgs>) -> Result<Json<ActionOut>, Failure> {
        let argv = self.inner.ops.container_restart_argv(&a.container)?;
        let runtime = self.inner.ops.container_runtime.clone();
        if a.runtime != runtime {
            return Err(failure(
                ErrorCode::InvalidArgument,
                format!("this host's container runtime is {runtime}; call again with runtime = \"{runtime}\""),
            ));
        }
        let command = format!("{runtime} {}", argv.join(" "));
        let ran = self.inner.runner.run_built(&runtime, argv, ACTION_TIMEOUT).await?;
        if ran.timed_out {
            return Err(failure(ErrorCode::Timeout, format!("{command} did not finish in time")));
        }
        let (mut stdout, mut stderr) = (ran.stdout.clone(), ran.stderr.clone());
        bastion_server_kit::count_redactions(self.redact(&mut stdout) + self.redact(&mut stderr));
        Ok(Json(ActionOut {
            command,
            succeeded: ran.success(),
            exit_code: ran.exit_code,
            stdout,
            stderr,
            state: BTreeMap::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(ports: &[u16]) -> Vec<Listener> {
        ports.iter().map(|p| facts::listener("tcp", "0.0.0.0", *p)).collect()
    }

    #[test]
    fn the_nearest_free_port_is_found_on_either_side() {
        assert_eq!(nearest_free(8080, &[]), Some(8080));
        assert_eq!(nearest_free(8080, &held(&[8080])), Some(8081));
        assert_eq!(nearest_free(8080, &held(&[8080, 8081])), Some(8079));
        assert_eq!(nearest_free(1024, &held(&[1024])), Some(1025));
        assert_eq!(nearest_free(65535, &held(&[65535])), Some(65534));
    }
}
