//! The approval gate: where a call meets the person, at the outermost Bastion layer (a server
//! alone, in [`ToolTable::call`](crate::ToolTable::call); the hub, in its router).
//!
//! Order, for every call: the switches (`paused`, `observe`), then the approval rules
//! (`bastion_policy::approval`); an `ask` queues a request in the [`Engine`] with a rendering
//! for humans and waits (hold mode: progress notifications every few seconds, optionally an
//! elicitation the person answers in the client) or returns `approval_pending` (return mode). An
//! approved write runs only if its targets are unchanged since the request (else `stale`).

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bastion_control::{Decision, Engine, Outcome, Request, socket};
use bastion_policy::approval::{Action, ApprovalRules, CallFacts, Mode, args_hash, path_arguments};
use bastion_policy::audit::AuditLog;
use bastion_policy::{Error, ErrorCode, Policy, PolicyConfig, Tier};
use rmcp::RoleServer;
use rmcp::model::{
    ElicitRequestParams, ElicitationAction, ElicitationSchema, ProgressNotificationParam, ProgressToken,
};
use rmcp::service::Peer;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How often a held call tells a caller that asked for progress that it is still waiting:
/// well under the 30–60 s request timeouts of common clients.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

struct Started {
    engine: Arc<Engine>,
    // Behind a lock so that [`stop`] can drop it: a static is never dropped, and a socket file
    // left behind names a process that is gone.
    socket: Mutex<Option<socket::ControlSocket>>,
}

static STARTED: OnceLock<Started> = OnceLock::new();

/// Starts this process's approvals engine and its control socket in `state_dir` (once; later
/// calls change nothing). The command line of every server does this; a server built as a
/// library without it has no approvals (the hub decides for its built-in children).
pub fn start(config: &PolicyConfig, name: &str, state_dir: Option<&Path>) -> Arc<Engine> {
    STARTED
        .get_or_init(|| {
            let audit = match &config.audit_log {
                // With the configured rotation: this opens the journal first, and a journal open in
                // the process is shared with the rotation it was opened with.
                Some(p) => AuditLog::open_rotating(p, config.journal).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "approvals: cannot open the audit journal; approvals are not journaled");
                    AuditLog::disabled()
                }),
                None => AuditLog::disabled(),
            };
            let engine = Engine::new(name, Arc::new(audit));
            let socket = match state_dir.map(Path::to_path_buf).or_else(bastion_control::default_state_dir) {
                Some(dir) => match socket::listen(engine.clone(), &socket::socket_path(&dir, name)) {
                    Ok(s) => {
                        tracing::info!(socket = %s.path().display(), "control socket listening");
                        Some(s)
                    }
                    Err(e) => {
                        // Fail closed: calls that ask will time out, since nobody can approve.
                        tracing::warn!(error = %e, dir = %dir.display(), "approvals: no control socket; calls that need approval will time out");
                        None
                    }
                },
                None => None,
            };
            Started { engine, socket: Mutex::new(socket) }
        })
        .engine
        .clone()
}

/// Closes the control socket started by [`start`] and removes its file; the process is about
/// to exit (EOF on stdin or a signal). Nothing can approve afterwards; pending calls time out.
pub fn stop() {
    if let Some(started) = STARTED.get() {
        let socket = started.socket.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        drop(socket);
    }
}

/// The engine started by [`start`], if any.
pub fn engine() -> Option<&'static Arc<Engine>> {
    STARTED.get().map(|s| &s.engine)
}

/// Where a held call can reach its caller.
#[derive(Clone, Default)]
pub struct Waiting {
    /// The caller and its `progressToken`, when it asked for progress.
    pub progress: Option<(Peer<RoleServer>, ProgressToken)>,
    /// The caller, when elicitation is enabled and it declared the capability.
    pub elicit: Option<Peer<RoleServer>>,
}

impl Waiting {
    /// From a call's peer and progress token; elicitation only if `rules` enable it and the
    /// client declared it.
    pub fn of(peer: &Peer<RoleServer>, progress: Option<ProgressToken>, rules: &ApprovalRules) -> Waiting {
        let elicit = (rules.approve_via_elicitation && client_elicits(peer)).then(|| peer.clone());
        Waiting { progress: progress.map(|t| (peer.clone(), t)), elicit }
    }
}

/// Whether the client declared the elicitation capability when it initialised.
pub fn client_elicits(peer: &Peer<RoleServer>) -> bool {
    peer.peer_info().is_some_and(|i| i.capabilities.elicitation.is_some())
}

/// One call before the gate.
pub struct Gated<'a> {
    /// The engine.
    pub engine: &'a Arc<Engine>,
    /// The rules in force.
    pub rules: &'a ApprovalRules,
    /// What the rules look at (paths already resolved when the rules need them).
    pub facts: CallFacts<'a>,
    /// The tool as the caller named it (the hub's `fs__write_file`): what approvals bind to.
    pub shown_tool: &'a str,
    /// The exact arguments.
    pub args: &'a Value,
}

/// Decides one call: `Ok(())` runs it; `Err` is the tool error to return instead.
/// `fingerprint` is taken at request time and again right before running an approved call;
/// `rendering` is awaited only when the person is asked.
pub async fn gate(
    g: Gated<'_>,
    fingerprint: impl Fn() -> Option<String>,
    rendering: impl Future<Output = String>,
    waiting: Waiting,
) -> Result<(), Error> {
    let Gated { engine, rules, facts, shown_tool, args } = g;
    engine.admit(shown_tool, facts.tier)?;
    if !rules.may_act_on(facts.tier, facts.tool) {
        return Ok(());
    }
    let verdict = rules.decide(&facts);
    match verdict.action {
        Action::Allow => return Ok(()),
        Action::Deny => {
            return Err(Error::new(
                ErrorCode::ApprovalDenied,
                format!("the approval rule '{}' refuses {shown_tool}; do not retry it, tell the user", verdict.rule),
            ));
        }
        Action::Ask => {}
    }
    let hash = args_hash(args);
    let principal = facts.principal;
    let stale = |before: &Option<String>| {
        let now = fingerprint();
        (now != *before).then(|| {
            Error::new(
                ErrorCode::Stale,
                format!(
                    "a file {shown_tool} targets changed after the approval was requested; nothing was written. Read the file again and make a new call"
                ),
            )
        })
    };
    if verdict.mode == Mode::Return {
        if let Some(grant) = engine.take_grant(principal, shown_tool, &hash) {
            engine.admit(shown_tool, facts.tier)?;
            return match stale(&grant.fingerprint) {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
        let id = match engine.pending_for(principal, shown_tool, &hash) {
            Some(id) => id,
            None => {
                let req = request(&facts, shown_tool, &verdict, hash, fingerprint(), rendering.await);
                engine.submit(req).detach()
            }
        };
        return Err(Error::new(
            ErrorCode::ApprovalPending,
            format!(
                "{shown_tool} needs the user's approval (request {id}, rule '{}'). Ask the user to run `bastion approve {id}` (or deny it), then retry exactly the same call with the same arguments; it runs once",
                verdict.rule
            ),
        ));
    }
    let before = fingerprint();
    let req = request(&facts, shown_tool, &verdict, hash, before.clone(), rendering.await);
    let ticket = engine.submit(req);
    let id = ticket.id.clone();
    match hold(engine, ticket, &waiting, verdict.timeout).await {
        Outcome::Approved { .. } => {
            engine.admit(shown_tool, facts.tier)?;
            match stale(&before) {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        Outcome::Denied { reason } => Err(Error::new(
            ErrorCode::ApprovalDenied,
            match reason {
                Some(r) => format!("the user denied {shown_tool} (request {id}): {r}; do not retry it"),
                None => format!("the user denied {shown_tool} (request {id}); do not retry it"),
            },
        )),
        Outcome::TimedOut => Err(Error::new(
            ErrorCode::ApprovalTimeout,
            format!(
                "nobody approved {shown_tool} (request {id}) within {}; ask the user to watch `bastion approvals --watch` and retry",
                humantime::format_duration(verdict.timeout)
            ),
        )),
    }
}

fn request(
    facts: &CallFacts<'_>,
    shown_tool: &str,
    verdict: &bastion_policy::approval::Verdict,
    args_hash: String,
    fingerprint: Option<String>,
    rendering: String,
) -> Request {
    Request {
        server: facts.server.to_owned(),
        tool: shown_tool.to_owned(),
        tier: facts.tier,
        principal: facts.principal.to_owned(),
        client: facts.client.map(str::to_owned),
        rule: verdict.rule.clone(),
        mode: verdict.mode,
        timeout: verdict.timeout,
        rendering,
        args_hash,
        fingerprint,
    }
}

/// Waits for the decision on a held request, sending progress and (when enabled) asking the
/// person through elicitation meanwhile.
async fn hold(engine: &Arc<Engine>, ticket: bastion_control::Ticket, waiting: &Waiting, timeout: Duration) -> Outcome {
    let id = ticket.id.clone();
    let started = Instant::now();
    let wait = ticket.wait();
    tokio::pin!(wait);
    let elicit = async {
        if let Some(peer) = &waiting.elicit {
            let message = format!(
                "Bastion: approve request {id}? Run `bastion approvals` to see exactly what it does, or accept/decline here."
            );
            let params = ElicitRequestParams::FormElicitationParams {
                meta: None,
                message,
                requested_schema: ElicitationSchema::new(Default::default()),
            };
            let decision = match peer.create_elicitation_with_timeout(params, Some(timeout)).await {
                Ok(r) if r.action == ElicitationAction::Accept => {
                    Some(Decision { approved: true, reason: None, channel: "elicitation".into() })
                }
                Ok(r) => Some(Decision {
                    approved: false,
                    reason: Some(format!(
                        "{} in the client",
                        if r.action == ElicitationAction::Decline { "declined" } else { "cancelled" }
                    )),
                    channel: "elicitation".into(),
                }),
                Err(e) => {
                    tracing::debug!(error = %e, "elicitation failed; waiting for another channel");
                    None
                }
            };
            if let Some(d) = decision {
                // Already decided elsewhere (the CLI was faster): nothing to do.
                let _ = engine.decide(&id, d);
            }
        }
        std::future::pending::<()>().await
    };
    tokio::pin!(elicit);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            outcome = &mut wait => return outcome,
            _ = &mut elicit => {}
            _ = tick.tick() => {
                if let Some((peer, token)) = &waiting.progress {
                    let waited = started.elapsed().as_secs_f64();
                    let mut p = ProgressNotificationParam::new(token.clone(), waited);
                    p.total = Some(timeout.as_secs_f64());
                    p.message = Some(format!("waiting for the user's approval of request {id} (bastion approve {id})"));
                    let _ = peer.notify_progress(p).await;
                }
            }
        }
    }
}

/// The root-relative real paths a call of a server alone touches, for the rules: each path
/// argument resolved beneath the roots (through in-root symlinks: `notes -> .envrc` is
/// `.envrc`); a path that does not exist yet by its parent's real path; what cannot be resolved
/// by its lexical form (the tool refuses it anyway).
pub fn real_paths(policy: &Policy, args: &Value) -> Vec<String> {
    let roots = policy.roots();
    let root_arg = args.get("root").and_then(Value::as_str);
    let lexical: Vec<&Path> = roots.iter().map(|r| r.real_path()).collect();
    path_arguments(args)
        .into_iter()
        .map(|raw| {
            let Ok(t) = roots.target(&raw, root_arg) else {
                return bastion_policy::approval::relative_for_matching(&raw, &lexical);
            };
            let prefixed = |rel: &Path| match t.root.prefix() {
                Some(p) => p.join(rel),
                None => rel.to_path_buf(),
            };
            let rel: PathBuf = match roots.stat(&t, &policy.deny) {
                Ok((_, _, real)) => prefixed(real.as_path()),
                Err(_) => match roots.parent(&t, &policy.deny) {
                    Ok(parent) => prefixed(parent.child_rel().as_path()),
                    Err(_) => prefixed(t.rel.as_path()),
                },
            };
            rel.to_string_lossy().into_owned()
        })
        .collect()
}

/// A fingerprint of a call's targets in a server alone: for every path argument, the SHA-256 of
/// the file's content, a directory's identity and change time, or `absent`.
pub fn fingerprint(policy: &Policy, args: &Value) -> Option<String> {
    let roots = policy.roots();
    let root_arg = args.get("root").and_then(Value::as_str);
    let paths = path_arguments(args);
    if paths.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    for raw in paths {
        h.update(raw.as_bytes());
        h.update([0]);
        let Ok(t) = roots.target(&raw, root_arg) else {
            h.update(b"unresolvable");
            continue;
        };
        match roots.open_file(&t, &policy.deny) {
            Ok(mut f) => {
                let mut buf = Vec::new();
                match f.file.read_to_end(&mut buf) {
                    Ok(_) => h.update(Sha256::digest(&buf)),
                    Err(_) => h.update(b"unreadable"),
                }
            }
            Err(_) => match roots.stat(&t, &policy.deny) {
                Ok((st, _, _)) => h.update(
                    format!("node {} {} {}.{}", st.st_ino, st.st_size, st.st_ctime, st.st_ctime_nsec).as_bytes(),
                ),
                Err(e) => h.update(e.code.as_str().as_bytes()),
            },
        }
        h.update([1]);
    }
    Some(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The arguments of a call rendered for the person: a unified diff for file changes, the argv
/// and working directory for a command, the refs and paths for git, JSON otherwise. `current`
/// reads a file's current text (a server alone reads beneath its roots; `None` when it cannot).
pub fn render(tool: &str, args: &Value, current: &dyn Fn(&str) -> Option<String>) -> String {
    let s = |k: &str| args.get(k).and_then(Value::as_str);
    let base = tool.rsplit("__").next().unwrap_or(tool);
    match base {
        "write_file" => {
            let path = s("path").unwrap_or("?");
            let new = s("content").unwrap_or("");
            let old = current(path);
            let label = if old.is_some() { "replace" } else { "create" };
            format!("{label} {path}\n{}", unified(path, old.as_deref().unwrap_or(""), new))
        }
        "edit_file" => {
            let path = s("path").unwrap_or("?");
            let mut edits: Vec<(String, String)> = Vec::new();
            if let (Some(o), Some(n)) = (s("old_text"), s("new_text")) {
                edits.push((o.into(), n.into()));
            }
            if let Some(Value::Array(list)) = args.get("edits") {
                for e in list {
                    let get = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                    edits.push((get("old_text"), get("new_text")));
                }
            }
            match current(path) {
                Some(old) => {
                    let mut new = old.clone();
                    for (o, n) in &edits {
                        if !o.is_empty() {
                            new = new.replace(o.as_str(), n);
                        }
                    }
                    format!("edit {path}\n{}", unified(path, &old, &new))
                }
                None => {
                    let mut out = format!("edit {path}\n");
                    for (o, n) in &edits {
                        out.push_str(&unified(path, o, n));
                    }
                    out
                }
            }
        }
        "apply_patch" => format!("apply patch\n{}", s("patch").unwrap_or("")),
        "delete_path" => {
            let path = s("path").unwrap_or("?");
            let recursive = args.get("recursive").and_then(Value::as_bool).unwrap_or(false);
            match current(path) {
                Some(old) => format!("delete {path}\n{}", unified(path, &old, "")),
                None => {
                    format!("delete {path}{}", if recursive { " (recursively, with everything in it)" } else { "" })
                }
            }
        }
        "move_path" => {
            let (from, to) = (s("source").unwrap_or("?"), s("destination").unwrap_or("?"));
            let overwrite = args.get("overwrite").and_then(Value::as_bool).unwrap_or(false);
            let mut out = format!("move {from} -> {to}{}", if overwrite { " (replacing it)" } else { "" });
            if let Some(old) = current(from) {
                out.push('\n');
                out.push_str(&format!("--- a/{from}\n+++ b/{to}\n(rename, {} bytes unchanged)", old.len()));
            }
            out
        }
        "run_command" | "start_process" => {
            let mut argv = vec![s("program").unwrap_or("?").to_owned()];
            if let Some(Value::Array(a)) = args.get("args") {
                argv.extend(a.iter().map(|v| v.as_str().map(shell_quote).unwrap_or_else(|| v.to_string())));
            }
            format!("$ {}\n  cwd: {}", argv.join(" "), s("cwd").unwrap_or("(first root)"))
        }
        // The host server's operations: the exact command it runs (bastion-policy builds the
        // same argv, `OpsRules::service_argv` / `container_restart_argv`).
        "service_action" => {
            let unit = bastion_policy::commands::OpsRules::full_unit_name(s("unit").unwrap_or("?"));
            format!("$ systemctl --no-pager {} -- {}", s("action").unwrap_or("?"), shell_quote(&unit))
        }
        "container_action" => {
            format!("$ {} restart -- {}", s("runtime").unwrap_or("?"), shell_quote(s("container").unwrap_or("?")))
        }
        // bastion-git's tools that change something (`git__commit` through the hub).
        t @ ("add" | "unstage" | "commit" | "create_branch" | "switch" | "stash_push" | "restore" | "reset"
        | "delete_branch") => {
            let mut out = t.to_owned();
            if let Value::Object(m) = args {
                for (k, v) in m {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Array(items) => items
                            .iter()
                            .map(|i| i.as_str().map(str::to_owned).unwrap_or_else(|| i.to_string()))
                            .collect::<Vec<_>>()
                            .join(" "),
                        other => other.to_string(),
                    };
                    out.push_str(&format!("\n  {k}: {v}"));
                }
            }
            out
        }
        _ => serde_json::to_string_pretty(args).unwrap_or_default(),
    }
}

fn unified(path: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A server alone reads a file's current text for the rendering (beneath the roots, deny
/// globs applied; at most 1 MiB, text only).
pub fn current_text(policy: &Policy, args: &Value, path: &str) -> Option<String> {
    let roots = policy.roots();
    let t = roots.target(path, args.get("root").and_then(Value::as_str)).ok()?;
    let f = roots.open_file(&t, &policy.deny).ok()?;
    let mut buf = Vec::new();
    f.file.take(1 << 20).read_to_end(&mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// The gate of a server alone (called by [`ToolTable::call`](crate::ToolTable::call)): the
/// principal is `local` (stdio), the client its `clientInfo.name`; paths are resolved beneath
/// the roots. Without a started engine (a library user, or a child of the hub, which decides
/// itself) every call passes.
pub(crate) async fn check<D>(
    server: &'static str,
    tool: &str,
    tier: Tier,
    policy: &Policy,
    request: &rmcp::model::CallToolRequestParams,
    ctx: &rmcp::service::RequestContext<RoleServer>,
    dry_run: impl FnOnce() -> D,
) -> Result<(), Error>
where
    D: Future<Output = Option<String>>,
{
    let Some(engine) = engine() else { return Ok(()) };
    engine.admit(tool, tier)?;
    let rules = &policy.approval;
    if !rules.may_act_on(tier, tool) {
        return Ok(());
    }
    engine.set_server(server);
    let args = Value::Object(request.arguments.clone().unwrap_or_default());
    let paths = if rules.needs_paths(tier) { real_paths(policy, &args) } else { Vec::new() };
    let programs = bastion_policy::approval::program_arguments(&args);
    let client = ctx.peer.peer_info().map(|i| i.client_info.name.clone());
    let facts = CallFacts {
        server,
        tool,
        tier,
        paths: &paths,
        programs: &programs,
        principal: "local",
        client: client.as_deref(),
    };
    let waiting = Waiting::of(&ctx.peer, ctx.meta.get_progress_token(), rules);
    let targets_files = matches!(tier, Tier::Write | Tier::Destructive);
    gate(
        Gated { engine, rules, facts, shown_tool: tool, args: &args },
        || if targets_files { fingerprint(policy, &args) } else { None },
        async {
            // The tool's own dry run (edit_file) shows exactly what would be written.
            match dry_run().await {
                Some(diff) => {
                    format!("{} {}\n{diff}", tool.trim_end_matches("_file"), args["path"].as_str().unwrap_or("?"))
                }
                None => render(tool, &args, &|p| current_text(policy, &args, p)),
            }
        },
        waiting,
    )
    .await
}

/// The unified diff a tool with a `dry_run` parameter (fs `edit_file`) reports for this call,
/// run with `dry_run: true` (which writes nothing); `None` for other tools or on failure.
pub async fn dry_run_diff<S: Send + Sync + 'static>(
    server: &S,
    router: &rmcp::handler::server::router::tool::ToolRouter<S>,
    request: &rmcp::model::CallToolRequestParams,
    ctx: &rmcp::service::RequestContext<RoleServer>,
) -> Option<String> {
    let tool = router.get(&request.name)?;
    tool.input_schema.get("properties")?.get("dry_run")?;
    let mut dry = request.clone();
    let mut args = dry.arguments.take().unwrap_or_default();
    args.insert("dry_run".into(), Value::Bool(true));
    dry.arguments = Some(args);
    let context = rmcp::handler::server::tool::ToolCallContext::new(server, dry, ctx.clone());
    match router.call(context).await.ok()? {
        rmcp::model::CallToolResponse::Complete(r) if r.is_error != Some(true) => {
            r.structured_content?.get("diff")?.as_str().map(str::to_owned)
        }
        _ => None,
    }
}

/// The name of this server for its socket and journal: `fs` for `bastion-fs` and `bastion fs`.
pub fn process_name() -> String {
    let mut args = std::env::args();
    let exe = args.next().unwrap_or_default();
    let base = exe.rsplit('/').next().unwrap_or("").to_owned();
    match base.strip_prefix("bastion-") {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => args.next().filter(|a| a.chars().all(|c| c.is_ascii_lowercase())).unwrap_or_else(|| "server".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type Current<'a> = &'a dyn Fn(&str) -> Option<String>;

    #[test]
    fn renders_for_humans() {
        let none = |_: &str| None;
        let file = |_: &str| Some("a\nb\n".to_owned());
        let table: &[(&str, Value, Current<'_>, &[&str])] = &[
            (
                "write_file",
                json!({"path": "x.txt", "content": "a\nc\n"}),
                &file,
                &["replace x.txt", "-b", "+c", "--- a/x.txt"],
            ),
            ("write_file", json!({"path": "n.txt", "content": "hi\n"}), &none, &["create n.txt", "+hi"]),
            ("edit_file", json!({"path": "x.txt", "old_text": "b", "new_text": "B"}), &file, &["-b", "+B", " a"]),
            ("fs__delete_path", json!({"path": "x.txt"}), &file, &["delete x.txt", "-a", "-b"]),
            ("delete_path", json!({"path": "d", "recursive": true}), &none, &["delete d (recursively"]),
            ("move_path", json!({"source": "a", "destination": ".envrc"}), &none, &["move a -> .envrc"]),
            (
                "run_command",
                json!({"program": "rm", "args": ["-rf", "my dir"], "cwd": "src"}),
                &none,
                &["$ rm -rf 'my dir'", "cwd: src"],
            ),
            (
                "git__commit",
                json!({"message": "m", "paths": ["a", "b"]}),
                &none,
                &["commit", "message: m", "paths: a b"],
            ),
            ("reset", json!({"rev": "HEAD~1", "mode": "hard"}), &none, &["reset", "rev: HEAD~1", "mode: hard"]),
            ("other", json!({"k": 1}), &none, &["\"k\": 1"]),
            (
                "host__service_action",
                json!({"action": "reload", "unit": "nginx"}),
                &none,
                &["$ systemctl --no-pager reload -- nginx.service"],
            ),
            ("container_action", json!({"container": "web", "runtime": "podman"}), &none, &["$ podman restart -- web"]),
        ];
        for (tool, args, current, needles) in table {
            let r = render(tool, args, *current);
            for n in *needles {
                assert!(r.contains(n), "{tool}: {n:?} not in\n{r}");
            }
        }
    }
}
