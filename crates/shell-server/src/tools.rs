//! The tools: run_command, the background-process family, list_allowed_commands,
//! sandbox_status.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bastion_policy::audit::now_rfc3339;
use bastion_policy::{Error, ErrorCode};
use bastion_server_kit::Json;
use bastion_server_kit::{Failure, error_result};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ProgressNotificationParam, RequestMetaObject};
use rmcp::{Peer, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::ShellServer;
use crate::exec::{Capture, Exit, kill_tree, pump};
use crate::processes::{Managed, OutputLog};
use crate::sandbox::Status;

/// Arguments of `run_command`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RunArgs {
    /// Program name as listed by list_allowed_commands (e.g. "ls", "rg", "cargo"). No path and no
    /// shell syntax: put every argument in args.
    pub program: String,
    /// Arguments, one element per argument. Nothing is expanded: quotes, $VAR, globs, pipes and
    /// ';' reach the program as literal text.
    #[serde(default)]
    pub args: Vec<String>,
    /// Working directory, relative to the first root or absolute inside a root. Default: the
    /// first root.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Timeout in milliseconds (default 30000; the server caps it). On timeout the whole process
    /// tree is killed and the output so far is returned with the error `timeout`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Text given to the program on standard input. Default: none (stdin is /dev/null).
    #[serde(default)]
    pub stdin: Option<String>,
}

/// Result of `run_command`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunOut {
    /// Program run.
    pub program: String,
    /// Arguments as run (abbreviated flags written in full, `--` before operands).
    pub args: Vec<String>,
    /// Working directory (root-relative).
    pub cwd: String,
    /// Exit code; absent when the program was killed by a signal.
    pub exit_code: Option<i32>,
    /// Signal that ended the program, if any.
    pub signal: Option<i32>,
    /// Standard output (head and tail kept when over budget).
    pub stdout: String,
    /// Standard error (head and tail kept when over budget).
    pub stderr: String,
    /// Whether stdout was cut.
    pub stdout_truncated: bool,
    /// Whether stderr was cut.
    pub stderr_truncated: bool,
    /// Bytes the program wrote to stdout.
    pub stdout_bytes: u64,
    /// Bytes the program wrote to stderr.
    pub stderr_bytes: u64,
    /// Wall-clock time.
    pub duration_ms: u64,
}

/// Arguments of `start_process`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct StartArgs {
    /// Program name as listed by list_allowed_commands.
    pub program: String,
    /// Arguments, one element per argument (nothing is expanded).
    #[serde(default)]
    pub args: Vec<String>,
    /// Working directory inside a root. Default: the first root.
    #[serde(default)]
    pub cwd: Option<String>,
}

/// Result of `start_process`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StartOut {
    /// Id for read_process_output, write_process_input and kill_process.
    pub id: u64,
    /// Program run.
    pub program: String,
    /// Arguments as run.
    pub args: Vec<String>,
}

/// Arguments of `read_process_output`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadOutputArgs {
    /// Process id from start_process.
    pub id: u64,
    /// Byte offset to read from: 0 = from the start, the previous next_offset to continue,
    /// negative = that many bytes from the end (tail).
    #[serde(default)]
    pub offset: i64,
    /// Wait up to this many milliseconds for new output or exit when there is none yet
    /// (default 0, at most 30000).
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// Result of `read_process_output`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadOutputOut {
    /// Process id.
    pub id: u64,
    /// Output (stdout and stderr interleaved as they arrived).
    pub output: String,
    /// Offset of the first byte returned (later than asked if older output was dropped).
    pub offset: u64,
    /// Pass this as offset to continue.
    pub next_offset: u64,
    /// More output is available now beyond next_offset.
    pub truncated: bool,
    /// Still running.
    pub running: bool,
    /// Exit code once ended.
    pub exit_code: Option<i32>,
    /// Signal that ended it.
    pub signal: Option<i32>,
}

/// Arguments of `write_process_input`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct WriteInputArgs {
    /// Process id from start_process.
    pub id: u64,
    /// Text written to the process's standard input (add "\n" to end a line).
    pub data: String,
    /// Close standard input after writing (end of input).
    #[serde(default)]
    pub close: bool,
}

/// Result of `write_process_input`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WriteInputOut {
    /// Process id.
    pub id: u64,
    /// Bytes written.
    pub bytes: usize,
    /// Standard input is now closed.
    pub closed: bool,
}

/// Arguments naming a process.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct IdArgs {
    /// Process id from start_process.
    pub id: u64,
}

/// No arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoArgs {}

/// One process in `list_processes`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProcessInfo {
    /// Id.
    pub id: u64,
    /// Program.
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// Seconds since start.
    pub elapsed_seconds: f64,
    /// Still running.
    pub running: bool,
    /// Exit code once ended.
    pub exit_code: Option<i32>,
    /// Signal that ended it.
    pub signal: Option<i32>,
    /// Bytes of output so far.
    pub output_bytes: u64,
}

/// Result of `list_processes`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProcessList {
    /// The processes started in this session (finished ones are kept for a while).
    pub processes: Vec<ProcessInfo>,
}

/// Result of `kill_process`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct KillOut {
    /// Process id.
    pub id: u64,
    /// It was running and has been killed (false: it had already ended).
    pub killed: bool,
    /// Exit code, if it ended by itself.
    pub exit_code: Option<i32>,
    /// Signal that ended it.
    pub signal: Option<i32>,
}

/// One program in `list_allowed_commands`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AllowedCommand {
    /// Name to pass as program.
    pub program: String,
    /// Installed on this host.
    pub available: bool,
    /// Allowed flags (`VALUE`/`PATH` mark flags that take a value).
    pub flags: Vec<String>,
    /// Refused flags with the reason.
    pub denied: Vec<String>,
    /// Operands and grammar.
    pub usage: String,
}

/// Result of `list_allowed_commands`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AllowedCommands {
    /// Active profile.
    pub profile: String,
    /// What the profile is for.
    pub description: String,
    /// The programs.
    pub commands: Vec<AllowedCommand>,
    /// Never allowed, in any profile.
    pub never_allowed: Vec<String>,
}

/// Result of `sandbox_status`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SandboxOut {
    /// Active profile.
    pub profile: String,
    /// What the kernel sandbox enforces.
    #[serde(flatten)]
    pub status: Status,
    /// The profile is refused here because Landlock is missing (and degraded mode is off).
    pub profile_refused: bool,
    /// TCP ports commands may connect to (none: no network).
    pub tcp_connect: Vec<u16>,
    /// Resource limits per command.
    pub rlimits: Value,
    /// Where per-command scratch directories (HOME and TMPDIR of commands) are created.
    pub scratch_dir: String,
}

fn failure(code: ErrorCode, message: impl Into<String>) -> Failure {
    Failure(Error::new(code, message))
}

fn structured(value: &impl Serialize) -> Result<CallToolResult, Failure> {
    let v = serde_json::to_value(value)
        .map_err(|e| failure(ErrorCode::IoError, format!("internal: cannot serialise result: {e}")))?;
    Ok(CallToolResult::structured(v))
}

#[tool_router(router = router, vis = "pub(crate)")]
impl ShellServer {
    /// Run an allowlisted program to completion in the sandbox; returns exit code, stdout and
    /// stderr. For servers, watchers and long builds use start_process.
    #[tool(name = "run_command")]
    async fn run_command(
        &self,
        Parameters(a): Parameters<RunArgs>,
        meta: RequestMetaObject,
        ct: CancellationToken,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, Failure> {
        let inner = &self.inner;
        let config = &inner.launcher.config;
        let timeout = Duration::from_millis(a.timeout_ms.unwrap_or(config.timeout_ms).min(config.max_timeout_ms));
        let prepared = inner.launcher.prepare(&inner.policy, &inner.status, &a.program, &a.args, a.cwd.as_deref())?;
        if a.stdin.is_some() && prepared.stdin_interpreter {
            let _ = std::fs::remove_dir_all(&prepared.scratch);
            return Err(failure(
                ErrorCode::ArgumentNotAllowed,
                format!("{} reads code from standard input; pass a file instead of stdin", a.program),
            ));
        }
        let started = Instant::now();
        let result = self.run_to_end(&prepared, a.stdin, timeout, meta, ct, peer).await;
        let _ = std::fs::remove_dir_all(&prepared.scratch);
        let (outcome, out, err) = result?;
        // What the program printed is redacted after the head/tail cut, as the model sees it.
        let (mut stdout, mut stderr) = (out.text(), err.text());
        let redactor = &inner.policy.redactor;
        bastion_server_kit::count_redactions(redactor.redact_string(&mut stdout) + redactor.redact_string(&mut stderr));
        let run = RunOut {
            program: a.program.clone(),
            args: prepared.spec.args.clone(),
            cwd: prepared.cwd_shown.clone(),
            exit_code: outcome.and_then(|e| e.code),
            signal: outcome.and_then(|e| e.signal),
            stdout,
            stderr,
            stdout_truncated: out.truncated(),
            stderr_truncated: err.truncated(),
            stdout_bytes: out.total(),
            stderr_bytes: err.total(),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        journal_exit(outcome);
        if outcome.is_none() {
            let mut r = error_result(&Error::new(
                ErrorCode::Timeout,
                format!(
                    "{} did not finish within {} ms and was killed with all its processes; output so far is included. Raise timeout_ms or use start_process",
                    a.program,
                    timeout.as_millis()
                ),
            ));
            if let (Some(Value::Object(fields)), Ok(Value::Object(extra))) =
                (r.structured_content.as_mut(), serde_json::to_value(&run))
            {
                fields.extend(extra);
            }
            if let Some(Value::Object(fields)) = &r.structured_content {
                r.content = vec![rmcp::model::ContentBlock::text(Value::Object(fields.clone()).to_string())];
            }
            return Ok(r);
        }
        structured(&run)
    }

    /// Start an allowlisted program in the background (sandboxed); returns its id at once. Read its
    /// output with read_process_output.
    #[tool(name = "start_process")]
    async fn start_process(&self, Parameters(a): Parameters<StartArgs>) -> Result<Json<StartOut>, Failure> {
        let inner = &self.inner;
        {
            let table = inner.processes.lock().map_err(|_| failure(ErrorCode::IoError, "internal: process table"))?;
            if table.running() >= inner.launcher.config.max_processes {
                return Err(failure(
                    ErrorCode::Busy,
                    format!(
                        "{} processes are already running (the limit); kill_process one you no longer need",
                        table.running()
                    ),
                ));
            }
        }
        let prepared = inner.launcher.prepare(&inner.policy, &inner.status, &a.program, &a.args, a.cwd.as_deref())?;
        let stdin_allowed = !prepared.stdin_interpreter;
        let mut child = match inner.launcher.spawn(&prepared, stdin_allowed) {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&prepared.scratch);
                return Err(Failure(e));
            }
        };
        let pid = child.id().unwrap_or(0);
        let output = Arc::new(Mutex::new(OutputLog::new(inner.launcher.config.max_output_bytes)));
        let (exit_tx, exit_rx) = tokio::sync::watch::channel(None);
        let id = inner.processes.lock().map_err(|_| failure(ErrorCode::IoError, "internal: process table"))?.next_id();
        let managed = Arc::new(Managed {
            id,
            program: a.program.clone(),
            args: prepared.spec.args.clone(),
            cwd: prepared.cwd_shown.clone(),
            pid,
            started: Instant::now(),
            started_at: now_rfc3339(),
            stdin: tokio::sync::Mutex::new(child.stdin.take()),
            output: output.clone(),
            exit: exit_rx,
            stdin_interpreter: prepared.stdin_interpreter,
        });
        inner.processes.lock().map_err(|_| failure(ErrorCode::IoError, "internal: process table"))?.insert(managed);
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let scratch = prepared.scratch.clone();
        // Weak: a process that outlives the server must not keep it (and its kill-on-drop) alive.
        let server = Arc::downgrade(&self.inner);
        let (program, started) = (a.program.clone(), Instant::now());
        tokio::spawn(async move {
            let sink = |log: Arc<Mutex<OutputLog>>| {
                move |b: &[u8]| {
                    if let Ok(mut l) = log.lock() {
                        l.push(b);
                    }
                }
            };
            let out_task = stdout.map(|s| tokio::spawn(pump(s, sink(output.clone()))));
            let err_task = stderr.map(|s| tokio::spawn(pump(s, sink(output.clone()))));
            let status = child.wait().await;
            // Descendants may still hold the pipes (without a pid namespace); do not wait on them
            // for long once the main process is gone.
            for task in [out_task, err_task].into_iter().flatten() {
                let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
            }
            let exit = match status {
                Ok(s) => Exit::from_status(s),
                Err(_) => Exit { code: None, signal: None },
            };
            if let Some(inner) = server.upgrade() {
                // The call that started it was journaled long ago: its end is an event.
                inner.policy.audit.event(
                    "shell",
                    "process_exit",
                    serde_json::json!({
                        "id": id,
                        "program": program,
                        "exit_code": exit.code,
                        "signal": exit.signal,
                        "duration_ms": started.elapsed().as_millis() as u64,
                    }),
                );
            }
            let _ = exit_tx.send(Some(exit));
            let _ = std::fs::remove_dir_all(scratch);
        });
        Ok(Json(StartOut { id, program: a.program, args: prepared.spec.args }))
    }

    /// Output of a background process from a byte offset (negative: the tail), also after it ended;
    /// pass next_offset back to continue.
    #[tool(name = "read_process_output")]
    async fn read_process_output(
        &self,
        Parameters(a): Parameters<ReadOutputArgs>,
    ) -> Result<Json<ReadOutputOut>, Failure> {
        let p = self.managed(a.id)?;
        let wait = Duration::from_millis(a.wait_ms.unwrap_or(0).min(30_000));
        if !wait.is_zero() {
            let deadline = Instant::now() + wait;
            let mut exit = p.exit.clone();
            while Instant::now() < deadline && exit.borrow().is_none() {
                let end = p.output.lock().map(|l| l.end()).unwrap_or(0);
                let wanted = if a.offset < 0 { 0 } else { a.offset as u64 };
                if end > wanted {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), exit.changed()).await;
            }
        }
        let budget = self.inner.policy.limits.output_chars;
        let (offset, bytes, end) = {
            let log = p.output.lock().map_err(|_| failure(ErrorCode::IoError, "internal: output log"))?;
            let (offset, bytes) = log.read(a.offset, budget);
            (offset, bytes, log.end())
        };
        let next_offset = offset + bytes.len() as u64;
        let exit = p.exit();
        // Offsets stay those of the raw output; only the text shown is redacted.
        let mut output = String::from_utf8_lossy(&bytes).into_owned();
        bastion_server_kit::count_redactions(self.inner.policy.redactor.redact_string(&mut output));
        Ok(Json(ReadOutputOut {
            id: a.id,
            output,
            offset,
            next_offset,
            truncated: next_offset < end,
            running: exit.is_none(),
            exit_code: exit.and_then(|e| e.code),
            signal: exit.and_then(|e| e.signal),
        }))
    }

    /// Write text to the standard input of a background process.
    #[tool(name = "write_process_input")]
    async fn write_process_input(
        &self,
        Parameters(a): Parameters<WriteInputArgs>,
    ) -> Result<Json<WriteInputOut>, Failure> {
        let p = self.managed(a.id)?;
        if p.stdin_interpreter {
            return Err(failure(
                ErrorCode::ArgumentNotAllowed,
                format!("{} reads code from standard input, so input cannot be written to it", p.program),
            ));
        }
        if p.exit().is_some() {
            return Err(failure(ErrorCode::ProcessNotFound, format!("process {} has already ended", a.id)));
        }
        let mut stdin = p.stdin.lock().await;
        let Some(pipe) = stdin.as_mut() else {
            return Err(failure(ErrorCode::InvalidArgument, format!("standard input of process {} is closed", a.id)));
        };
        let write = tokio::time::timeout(Duration::from_secs(5), pipe.write_all(a.data.as_bytes())).await;
        match write {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(failure(ErrorCode::IoError, format!("cannot write to process {}: {e}", a.id))),
            Err(_) => {
                return Err(failure(
                    ErrorCode::Timeout,
                    format!("process {} is not reading its input (pipe full for 5 s)", a.id),
                ));
            }
        }
        let _ = pipe.flush().await;
        if a.close {
            *stdin = None;
        }
        Ok(Json(WriteInputOut { id: a.id, bytes: a.data.len(), closed: a.close }))
    }

    /// List this session's background processes, running or ended.
    #[tool(name = "list_processes")]
    async fn list_processes(&self, Parameters(_a): Parameters<NoArgs>) -> Result<Json<ProcessList>, Failure> {
        let all = self.inner.processes.lock().map_err(|_| failure(ErrorCode::IoError, "internal"))?.all();
        let processes = all
            .iter()
            .map(|p| {
                let exit = p.exit();
                ProcessInfo {
                    id: p.id,
                    program: p.program.clone(),
                    args: p.args.clone(),
                    cwd: p.cwd.clone(),
                    started_at: p.started_at.clone(),
                    elapsed_seconds: p.started.elapsed().as_secs_f64(),
                    running: exit.is_none(),
                    exit_code: exit.and_then(|e| e.code),
                    signal: exit.and_then(|e| e.signal),
                    output_bytes: p.output.lock().map(|l| l.end()).unwrap_or(0),
                }
            })
            .collect();
        Ok(Json(ProcessList { processes }))
    }

    /// Kill a background process and everything it started.
    #[tool(name = "kill_process")]
    async fn kill_process(&self, Parameters(a): Parameters<IdArgs>) -> Result<Json<KillOut>, Failure> {
        let p = self.managed(a.id)?;
        let was_running = p.exit().is_none();
        if was_running {
            kill_tree(p.pid);
            let mut exit = p.exit.clone();
            let _ = tokio::time::timeout(Duration::from_secs(2), exit.wait_for(|e| e.is_some())).await;
        }
        let exit = p.exit();
        Ok(Json(KillOut {
            id: a.id,
            killed: was_running,
            exit_code: exit.and_then(|e| e.code),
            signal: exit.and_then(|e| e.signal),
        }))
    }

    /// The programs this server may run, with their allowed and refused flags and operand rules.
    /// Check here before run_command instead of guessing.
    #[tool(name = "list_allowed_commands")]
    async fn list_allowed_commands(
        &self,
        Parameters(_a): Parameters<NoArgs>,
    ) -> Result<Json<AllowedCommands>, Failure> {
        let rules = &self.inner.launcher.rules;
        let commands = rules
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
            profile: rules.profile.clone(),
            description: rules.description.clone(),
            commands,
            never_allowed: bastion_policy::commands::NEVER_ALLOWED.iter().map(|s| s.to_string()).collect(),
        }))
    }

    /// What the kernel sandbox enforces on this host (Landlock, seccomp, namespaces) and the limits
    /// every command runs under.
    #[tool(name = "sandbox_status")]
    async fn sandbox_status_tool(&self, Parameters(_a): Parameters<NoArgs>) -> Result<Json<SandboxOut>, Failure> {
        let l = &self.inner.launcher;
        Ok(Json(SandboxOut {
            profile: l.rules.profile.clone(),
            status: self.inner.status.clone(),
            profile_refused: l
                .rules
                .check_sandbox(self.inner.status.landlock_active(), l.config.allow_degraded, "")
                .is_err(),
            tcp_connect: l.rules.tcp_connect.clone(),
            rlimits: serde_json::to_value(&l.config.rlimits).unwrap_or_default(),
            scratch_dir: l.scratch.display().to_string(),
        }))
    }
}

impl ShellServer {
    fn managed(&self, id: u64) -> Result<Arc<Managed>, Failure> {
        self.inner
            .processes
            .lock()
            .map_err(|_| failure(ErrorCode::IoError, "internal: process table"))?
            .get(id)
            .ok_or_else(|| {
                failure(ErrorCode::ProcessNotFound, format!("no process has id {id}; list_processes shows the ids"))
            })
    }

    /// Runs to the end, the timeout, or cancellation. `None` outcome: killed on timeout.
    async fn run_to_end(
        &self,
        prepared: &crate::exec::Prepared,
        stdin: Option<String>,
        timeout: Duration,
        meta: RequestMetaObject,
        ct: CancellationToken,
        peer: Peer<RoleServer>,
    ) -> Result<(Option<Exit>, Capture, Capture), Failure> {
        let budget =
            self.inner.launcher.config.max_output_bytes.min(self.inner.policy.limits.output_chars / 2).max(1024);
        let mut child = self.inner.launcher.spawn(prepared, stdin.is_some())?;
        let pid = child.id().unwrap_or(0);
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            tokio::spawn(async move {
                let _ = pipe.write_all(data.as_bytes()).await;
            });
        }
        let out = Arc::new(Mutex::new(Capture::new(budget)));
        let err = Arc::new(Mutex::new(Capture::new(budget)));
        let sink = |c: Arc<Mutex<Capture>>| {
            move |b: &[u8]| {
                if let Ok(mut c) = c.lock() {
                    c.push(b);
                }
            }
        };
        let out_task = child.stdout.take().map(|s| tokio::spawn(pump(s, sink(out.clone()))));
        let err_task = child.stderr.take().map(|s| tokio::spawn(pump(s, sink(err.clone()))));
        let token = meta.get_progress_token();
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let outcome = loop {
            tokio::select! {
                status = child.wait() => {
                    break status.ok().map(Exit::from_status).or(Some(Exit { code: None, signal: None }));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    kill_tree(pid);
                    let _ = child.wait().await;
                    break None;
                }
                _ = ct.cancelled() => {
                    kill_tree(pid);
                    let _ = child.wait().await;
                    return Err(failure(ErrorCode::Timeout, "cancelled by the client; the process tree was killed"));
                }
                _ = tick.tick() => {
                    if let Some(t) = token.clone() {
                        let bytes = out.lock().map(|c| c.total()).unwrap_or(0) + err.lock().map(|c| c.total()).unwrap_or(0);
                        let secs = started.elapsed().as_secs_f64();
                        let _ = peer
                            .notify_progress(
                                ProgressNotificationParam::new(t, secs)
                                    .with_total(timeout.as_secs_f64())
                                    .with_message(format!("{} running for {secs:.0} s, {bytes} bytes of output", prepared.spec.argv0)),
                            )
                            .await;
                    }
                }
            }
        };
        // Without a pid namespace a detached descendant could hold the pipes open: bound the wait.
        for task in [out_task, err_task].into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
        }
        let take = |c: Arc<Mutex<Capture>>| match Arc::try_unwrap(c) {
            Ok(m) => m.into_inner().unwrap_or_default(),
            Err(shared) => shared.lock().map(|mut c| std::mem::take(&mut *c)).unwrap_or_default(),
        };
        Ok((outcome, take(out), take(err)))
    }
}

/// Puts a finished command's exit code or signal on its call's audit line (`timed_out` when
/// it was killed at its time limit).
fn journal_exit(outcome: Option<Exit>) {
    match outcome {
        Some(e) => {
            bastion_server_kit::journal_note("exit_code", serde_json::json!(e.code));
            bastion_server_kit::journal_note("signal", serde_json::json!(e.signal));
        }
        None => bastion_server_kit::journal_note("timed_out", Value::Bool(true)),
    }
}
