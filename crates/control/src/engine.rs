//! The approvals queue and the server-wide switches (mode, pause), with their journal.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use bastion_policy::approval::Mode;
use bastion_policy::audit::{AuditLog, millis};
use bastion_policy::{Error, ErrorCode, Tier};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::shared::{SharedChange, SharedRequest, SharedState};

/// The server-wide mode cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Tiers and rules as configured.
    Normal,
    /// Only read calls run; writes, deletions and commands get `mode_observe`.
    Observe,
}

impl RunMode {
    /// `normal` or `observe`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Normal => "normal",
            RunMode::Observe => "observe",
        }
    }

    /// Parses `normal` or `observe`.
    pub fn parse(s: &str) -> Option<RunMode> {
        match s {
            "normal" => Some(RunMode::Normal),
            "observe" => Some(RunMode::Observe),
            _ => None,
        }
    }
}

/// What a call asks the person to approve.
#[derive(Clone, Debug)]
pub struct Request {
    /// Server (or hub upstream) name.
    pub server: String,
    /// The tool as the caller named it.
    pub tool: String,
    /// Its tier.
    pub tier: Tier,
    /// Who calls.
    pub principal: String,
    /// The client's name, if it said.
    pub client: Option<String>,
    /// The rule that asked.
    pub rule: String,
    /// Hold or return.
    pub mode: Mode,
    /// How long the request (and, in return mode, the approval) stays valid.
    pub timeout: Duration,
    /// The arguments rendered for a human (a diff, an argv and cwd, refs and paths, JSON).
    pub rendering: String,
    /// [`bastion_policy::approval::args_hash`] of the exact arguments.
    pub args_hash: String,
    /// A fingerprint of the targets at request time (compared before running: `stale`).
    pub fingerprint: Option<String>,
}

/// A decision on a pending request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Approved or denied.
    pub approved: bool,
    /// Why (denials).
    pub reason: Option<String>,
    /// How it was decided: `cli`, `elicitation`, `dashboard`.
    pub channel: String,
}

/// How a held call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Approved: run it.
    Approved {
        /// The deciding channel.
        channel: String,
    },
    /// Denied (`approval_denied`).
    Denied {
        /// The person's reason, if given.
        reason: Option<String>,
    },
    /// Nobody decided in time (`approval_timeout`).
    TimedOut,
}

/// An approval usable once by the same principal for the same tool and arguments (return mode).
#[derive(Clone, Debug)]
pub struct Grant {
    /// The request's id.
    pub id: String,
    /// The target fingerprint taken at request time.
    pub fingerprint: Option<String>,
}

struct Pending {
    req: Request,
    id: String,
    requested: SystemTime,
    started: Instant,
    expires: Instant,
    waiter: Option<oneshot::Sender<Decision>>,
}

struct StoredGrant {
    id: String,
    principal: String,
    tool: String,
    args_hash: String,
    fingerprint: Option<String>,
    expires: Instant,
}

#[derive(Default)]
struct State {
    pending: BTreeMap<String, Pending>,
    grants: Vec<StoredGrant>,
}

/// The approvals engine of one server or hub. Shared (`Arc`) between the call path and the
/// control socket.
pub struct Engine {
    server: Mutex<String>,
    state: Mutex<State>,
    // Atomics, so an allowed call checks the switches without taking a lock.
    paused: AtomicBool,
    observe: AtomicBool,
    audit: Arc<AuditLog>,
    watchers: Mutex<Vec<mpsc::Sender<Value>>>,
    /// `notify-send`, looked up on the first request that asks (a PATH walk is a dozen stats,
    /// paid by every server's start otherwise, and most sessions never ask).
    notify_send: std::sync::OnceLock<Option<std::path::PathBuf>>,
    /// Where the switches and the queue live when several processes share them.
    shared: std::sync::OnceLock<Arc<dyn SharedState>>,
    /// Bumped by every queue change another process announced ([`Engine::shared_changes`]).
    shared_changes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("paused", &self.paused).field("observe", &self.observe).finish_non_exhaustive()
    }
}

/// A held request: dropping it before a decision withdraws the request (the caller went away).
#[derive(Debug)]
pub struct Ticket {
    /// The request's id.
    pub id: String,
    engine: Arc<Engine>,
    rx: Option<oneshot::Receiver<Decision>>,
    timeout: Duration,
    done: bool,
}

impl Ticket {
    /// Waits for a decision until the request's timeout.
    pub async fn wait(mut self) -> Outcome {
        let Some(rx) = self.rx.take() else { return Outcome::TimedOut };
        let outcome = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(d)) if d.approved => Outcome::Approved { channel: d.channel },
            Ok(Ok(d)) => Outcome::Denied { reason: d.reason },
            // The sender went away without deciding: only an expiry sweep does that.
            Ok(Err(_)) | Err(_) => {
                self.engine.expire(&self.id);
                Outcome::TimedOut
            }
        };
        self.done = true;
        outcome
    }
}

impl Ticket {
    /// Leaves the request queued without waiting (return mode: the call answers at once with
    /// `approval_pending` and this id).
    pub fn detach(mut self) -> String {
        self.done = true;
        std::mem::take(&mut self.id)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            self.engine.withdraw(&self.id);
        }
    }
}

impl Engine {
    /// An engine journaling to `audit` under the name `server`.
    pub fn new(server: &str, audit: Arc<AuditLog>) -> Arc<Engine> {
        Arc::new(Engine {
            server: Mutex::new(server.to_owned()),
            state: Mutex::default(),
            paused: AtomicBool::new(false),
            observe: AtomicBool::new(false),
            audit,
            watchers: Mutex::default(),
            notify_send: std::sync::OnceLock::new(),
            shared: std::sync::OnceLock::new(),
            shared_changes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Shares the switches and the queue with other processes through `state` (once; the
    /// switches are read from it now). The caller feeds the store's changes to [`Engine::apply`].
    pub fn share(&self, state: Arc<dyn SharedState>) -> Result<(), Error> {
        let (paused, observe) = state.switches().map_err(unreachable)?;
        self.paused.store(paused, Ordering::Release);
        self.observe.store(observe, Ordering::Release);
        self.shared.set(state).map_err(|_| Error::new(ErrorCode::InvalidConfig, "the engine's state is shared already"))
    }

    /// How many queue changes announced through the shared state this engine has applied: a
    /// page showing the queue compares it to know that a request queued or decided on another
    /// process changed what it shows (nothing of that reaches this process's journal).
    pub fn shared_changes(&self) -> u64 {
        self.shared_changes.load(Ordering::Acquire)
    }

    /// Whether the switches and the queue are shared with other processes.
    pub fn is_shared(&self) -> bool {
        self.shared.get().is_some()
    }

    /// Applies a change another process (or this one) made to the shared state: the switches
    /// are read again, a held call whose request was decided elsewhere is woken, a request
    /// queued elsewhere is shown to the watchers. Runs on the feed's thread; without shared
    /// state it does nothing.
    pub fn apply(&self, change: &SharedChange) {
        let Some(shared) = self.shared.get() else { return };
        if matches!(change, SharedChange::Switches | SharedChange::All) {
            match shared.switches() {
                Ok((paused, observe)) => {
                    let was_paused = self.paused.swap(paused, Ordering::AcqRel);
                    let was_observe = self.observe.swap(observe, Ordering::AcqRel);
                    // Journaled where it takes effect, so each replica's journal tells when
                    // its calls started being refused.
                    if was_paused != paused {
                        self.event(if paused { "pause" } else { "resume" }, json!({"channel": "shared"}));
                    }
                    if was_observe != observe {
                        let mode = if observe { RunMode::Observe } else { RunMode::Normal };
                        let detail = json!({"mode": mode.as_str(), "previous": if was_observe {"observe"} else {"normal"}, "channel": "shared"});
                        self.event("mode_change", detail);
                    }
                }
                Err(e) => tracing::warn!("shared state: reading the switches: {e}"),
            }
        }
        if !matches!(change, SharedChange::Switches) {
            self.shared_changes.fetch_add(1, Ordering::AcqRel);
        }
        let ids: Vec<String> = match change {
            SharedChange::Approval(id) => vec![id.clone()],
            SharedChange::All => lock(&self.state).pending.keys().cloned().collect(),
            SharedChange::Switches => vec![],
        };
        for id in ids {
            let local = lock(&self.state).pending.contains_key(&id);
            if !local {
                // Queued by another process: the watchers (dashboards) hear of it here.
                if let SharedChange::Approval(_) = change
                    && let Ok(list) = shared.pending()
                    && let Some(view) = list.into_iter().find(|v| v["id"] == id.as_str())
                {
                    self.broadcast(json!({"event": "request", "request": view}));
                }
                continue;
            }
            match shared.decision(&id) {
                Ok(Some(d)) => self.resolve(&id, d),
                Ok(None) => {}
                Err(e) => tracing::warn!("shared state: reading approval {id}: {e}"),
            }
        }
    }

    /// The name journaled and shown (`fs`, `hub`, …).
    pub fn server(&self) -> String {
        lock(&self.server).clone()
    }

    /// Renames the engine (a standalone server learns its name at its first call).
    pub fn set_server(&self, name: &str) {
        let mut s = lock(&self.server);
        if *s != name {
            *s = name.to_owned();
        }
    }

    /// The switches, checked before anything else on every call: `paused` refuses everything,
    /// `observe` refuses every tier above read.
    pub fn admit(&self, tool: &str, tier: Tier) -> Result<(), Error> {
        if self.paused.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorCode::Paused,
                "the operator paused this server; every call is refused until they run `bastion resume`; tell the user",
            ));
        }
        if tier > Tier::Read && self.observe.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorCode::ModeObserve,
                format!(
                    "{tool} is a {tier}-tier tool and the server is in observe mode (reading only); the user can lift it with `bastion mode normal`"
                ),
            ));
        }
        Ok(())
    }

    /// The current mode.
    pub fn mode(&self) -> RunMode {
        if self.observe.load(Ordering::Acquire) { RunMode::Observe } else { RunMode::Normal }
    }

    /// Whether paused.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Sets the mode (in the shared state too, for every process); journaled with the channel.
    pub fn set_mode(&self, mode: RunMode, channel: &str) -> Result<(), Error> {
        let observe = mode == RunMode::Observe;
        // Switched here before the store announces it, so this process's own notification
        // finds nothing to apply (and journals nothing twice).
        let before = self.observe.swap(observe, Ordering::AcqRel);
        if let Some(shared) = self.shared.get()
            && let Err(e) = shared.set_switches(None, Some(observe))
        {
            self.observe.store(before, Ordering::Release);
            return Err(unreachable(e));
        }
        let detail =
            json!({"mode": mode.as_str(), "previous": if before {"observe"} else {"normal"}, "channel": channel});
        self.event("mode_change", detail);
        Ok(())
    }

    /// Pauses (`true`) or resumes (in the shared state too, for every process); journaled with
    /// the channel. Calls in flight finish.
    pub fn set_paused(&self, paused: bool, channel: &str) -> Result<(), Error> {
        let before = self.paused.swap(paused, Ordering::AcqRel);
        if let Some(shared) = self.shared.get()
            && let Err(e) = shared.set_switches(Some(paused), None)
        {
            self.paused.store(before, Ordering::Release);
            return Err(unreachable(e));
        }
        self.event(if paused { "pause" } else { "resume" }, json!({"channel": channel}));
        Ok(())
    }

    /// Uses an approved grant for exactly this principal, tool and argument hash (return mode),
    /// once. Expired grants are dropped on the way.
    pub fn take_grant(&self, principal: &str, tool: &str, args_hash: &str) -> Option<Grant> {
        if let Some(shared) = self.shared.get() {
            let grant = shared.take_grant(principal, tool, args_hash).unwrap_or_else(|e| {
                tracing::warn!("shared state: looking for an approval: {e}");
                None
            })?;
            self.event("approval_used", json!({"id": grant.id, "principal": principal, "tool": tool}));
            return Some(grant);
        }
        let now = Instant::now();
        let grant = {
            let mut st = lock(&self.state);
            st.grants.retain(|g| g.expires > now);
            let i = st
                .grants
                .iter()
                .position(|g| g.principal == principal && g.tool == tool && g.args_hash == args_hash)?;
            st.grants.swap_remove(i)
        };
        self.event("approval_used", json!({"id": grant.id, "principal": principal, "tool": tool}));
        Some(Grant { id: grant.id, fingerprint: grant.fingerprint })
    }

    /// The id of a request still pending for exactly this principal, tool and argument hash (a
    /// return-mode retry before the decision gets the same id, not a second request).
    pub fn pending_for(&self, principal: &str, tool: &str, args_hash: &str) -> Option<String> {
        self.sweep();
        if let Some(shared) = self.shared.get() {
            match shared.pending_for(principal, tool, args_hash) {
                Ok(found) => return found,
                Err(e) => tracing::warn!("shared state: looking for a pending request: {e}"),
            }
        }
        let st = lock(&self.state);
        st.pending
            .values()
            .find(|p| p.req.principal == principal && p.req.tool == tool && p.req.args_hash == args_hash)
            .map(|p| p.id.clone())
    }

    /// Queues a request; journaled, watchers told, a desktop notification sent when possible.
    pub fn submit(self: &Arc<Self>, req: Request) -> Ticket {
        self.sweep();
        let id = new_id();
        let (tx, rx) = oneshot::channel();
        let timeout = req.timeout;
        let now = Instant::now();
        let pending = Pending {
            id: id.clone(),
            requested: SystemTime::now(),
            started: now,
            expires: now + timeout,
            waiter: (req.mode == Mode::Hold).then_some(tx),
            req,
        };
        let view = view(&pending);
        let journal = json!({
            "id": id, "principal": pending.req.principal, "client": pending.req.client, "tool": pending.req.tool,
            "tier": pending.req.tier, "rule": pending.req.rule, "mode": pending.req.mode.as_str(),
            "args_sha256": pending.req.args_hash, "expires_in_s": timeout.as_secs(),
        });
        let summary = format!("{} {} by {}", id, pending.req.tool, pending.req.principal);
        if let Some(shared) = self.shared.get() {
            let r = SharedRequest {
                id: id.clone(),
                principal: pending.req.principal.clone(),
                tool: pending.req.tool.clone(),
                args_hash: pending.req.args_hash.clone(),
                fingerprint: pending.req.fingerprint.clone(),
                hold: pending.req.mode == Mode::Hold,
                view: view.clone(),
                timeout,
            };
            // Still decidable here (CLI over the socket, this dashboard) if the store failed.
            if let Err(e) = shared.insert(&r) {
                tracing::warn!("shared state: queueing approval {id}: {e}; only this process can decide it");
            }
        }
        lock(&self.state).pending.insert(id.clone(), pending);
        self.audit.event(&self.server(), "approval_request", journal);
        self.broadcast(json!({"event": "request", "request": view}));
        self.desktop_notification(&summary);
        Ticket { id, engine: self.clone(), rx: (timeout > Duration::ZERO).then_some(rx), timeout, done: false }
    }

    /// Decides a pending request. A hold-mode call is woken; a return-mode approval becomes a
    /// single-use grant valid for the request's timeout.
    pub fn decide(&self, id: &str, decision: Decision) -> Result<(), Error> {
        self.sweep();
        let not_found = || {
            Error::new(
                ErrorCode::NotFound,
                format!("no pending approval has the id '{id}' (decided, expired or withdrawn)"),
            )
        };
        if let Some(shared) = self.shared.get() {
            let local = lock(&self.state).pending.contains_key(id);
            match shared.decide(id, &decision) {
                // Held here: woken now; elsewhere: the process holding it is told by the feed.
                Ok(true) => {
                    if local {
                        self.resolve(id, decision);
                    } else {
                        self.audit.event(
                            &self.server(),
                            "approval_decision",
                            json!({"id": id, "decision": if decision.approved {"approved"} else {"denied"},
                                "channel": decision.channel, "reason": decision.reason}),
                        );
                    }
                    return Ok(());
                }
                // Queued here while the store failed: decided here alone.
                Ok(false) if local => {}
                Ok(false) => return Err(not_found()),
                Err(e) if local => tracing::warn!("shared state: deciding approval {id}: {e}; deciding it here"),
                Err(e) => return Err(unreachable(e)),
            }
        }
        self.resolve_local(id, decision).ok_or_else(not_found)
    }

    /// Applies a decision made through the shared state to the request held here, if it still
    /// is (the feed and this process's own decision may both bring it).
    fn resolve(&self, id: &str, decision: Decision) {
        let hold = lock(&self.state).pending.get(id).map(|p| p.waiter.is_some());
        if self.resolve_local(id, decision).is_some()
            && hold == Some(true)
            && let Some(shared) = self.shared.get()
            && let Err(e) = shared.remove(id)
        {
            tracing::warn!("shared state: forgetting approval {id}: {e}");
        }
    }

    /// Decides a request held in this process: journaled, watchers told, a held call woken, a
    /// return-mode approval kept (in memory unless shared: the store keeps it then).
    fn resolve_local(&self, id: &str, decision: Decision) -> Option<()> {
        let pending = lock(&self.state).pending.remove(id)?;
        let waited = pending.started.elapsed();
        self.audit.event(
            &self.server(),
            "approval_decision",
            json!({
                "id": id, "decision": if decision.approved {"approved"} else {"denied"},
                "channel": decision.channel, "reason": decision.reason, "tool": pending.req.tool,
                "principal": pending.req.principal, "wait_ms": millis(waited),
            }),
        );
        self.broadcast(json!({
            "event": "decision", "id": id, "decision": if decision.approved {"approved"} else {"denied"},
            "channel": decision.channel, "reason": decision.reason,
        }));
        match pending.waiter {
            Some(tx) => {
                let _ = tx.send(decision);
            }
            None if decision.approved && self.shared.get().is_none() => {
                lock(&self.state).grants.push(StoredGrant {
                    id: pending.id,
                    principal: pending.req.principal,
                    tool: pending.req.tool,
                    args_hash: pending.req.args_hash,
                    fingerprint: pending.req.fingerprint,
                    expires: Instant::now() + pending.req.timeout,
                });
            }
            None => {}
        }
        Some(())
    }

    /// The fingerprint taken when request `id` was made (for the `stale` check of a held call).
    pub fn fingerprint_of(&self, id: &str) -> Option<String> {
        lock(&self.state).pending.get(id).and_then(|p| p.req.fingerprint.clone())
    }

    /// Pending requests, oldest first, as JSON for the CLI and the dashboard.
    pub fn list(&self) -> Vec<Value> {
        self.sweep();
        if let Some(shared) = self.shared.get() {
            match shared.pending() {
                Ok(list) => return list,
                Err(e) => tracing::warn!("shared state: listing approvals: {e}; listing this process's own"),
            }
        }
        let st = lock(&self.state);
        let mut v: Vec<&Pending> = st.pending.values().collect();
        v.sort_by_key(|p| p.started);
        v.into_iter().map(view).collect()
    }

    /// Mode, pause and counts.
    pub fn status(&self) -> Value {
        let pending = self.list().len();
        let st = lock(&self.state);
        json!({
            "server": self.server(), "pid": std::process::id(), "mode": self.mode().as_str(),
            "paused": self.paused(), "pending": pending, "grants": st.grants.len(),
            "shared": self.is_shared(),
        })
    }

    /// A stream of events (`request`, `decision`, `expired`, `withdrawn`, `mode`, `pause`,
    /// `resume`) as JSON values.
    pub fn subscribe(&self) -> mpsc::Receiver<Value> {
        let (tx, rx) = mpsc::channel();
        lock(&self.watchers).push(tx);
        rx
    }

    fn expire(&self, id: &str) {
        if let Some(p) = lock(&self.state).pending.remove(id) {
            self.forget_shared(id);
            self.expired(&p);
        }
    }

    /// Removes a request of this process from the shared queue (it ended here).
    fn forget_shared(&self, id: &str) {
        if let Some(shared) = self.shared.get()
            && let Err(e) = shared.remove(id)
        {
            tracing::warn!("shared state: forgetting approval {id}: {e}");
        }
    }

    fn withdraw(&self, id: &str) {
        if let Some(p) = lock(&self.state).pending.remove(id) {
            self.forget_shared(id);
            self.audit.event(
                &self.server(),
                "approval_withdrawn",
                json!({"id": id, "tool": p.req.tool, "wait_ms": millis(p.started.elapsed())}),
            );
            self.broadcast(json!({"event": "withdrawn", "id": id}));
        }
    }

    fn expired(&self, p: &Pending) {
        self.audit.event(
            &self.server(),
            "approval_expired",
            json!({"id": p.id, "tool": p.req.tool, "principal": p.req.principal, "wait_ms": millis(p.started.elapsed())}),
        );
        self.broadcast(json!({"event": "expired", "id": p.id}));
    }

    /// Drops return-mode requests past their expiry (held ones expire in their own wait).
    fn sweep(&self) {
        let now = Instant::now();
        let gone: Vec<Pending> = {
            let mut st = lock(&self.state);
            let ids: Vec<String> =
                st.pending.values().filter(|p| p.waiter.is_none() && p.expires <= now).map(|p| p.id.clone()).collect();
            ids.iter().filter_map(|id| st.pending.remove(id)).collect()
        };
        for p in &gone {
            self.forget_shared(&p.id);
            self.expired(p);
        }
    }

    fn event(&self, name: &str, detail: Value) {
        self.audit.event(&self.server(), name, detail.clone());
        let mut ev = json!({"event": name});
        if let (Value::Object(e), Value::Object(d)) = (&mut ev, detail) {
            e.extend(d);
        }
        self.broadcast(ev);
    }

    fn broadcast(&self, ev: Value) {
        let mut watchers = lock(&self.watchers);
        watchers.retain(|w| w.send(ev.clone()).is_ok());
    }

    fn desktop_notification(&self, summary: &str) {
        let Some(program) = self.notify_send.get_or_init(|| find_program("notify-send")) else { return };
        let child = std::process::Command::new(program)
            .args([
                "--app-name=Bastion",
                "Bastion: approval needed",
                &format!("{summary}\nbastion approve ID / deny ID"),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        // Reaped off the call path so no zombie is left behind.
        if let Ok(mut child) = child {
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
    }
}

fn view(p: &Pending) -> Value {
    let now = Instant::now();
    json!({
        "id": p.id,
        "server": p.req.server,
        "tool": p.req.tool,
        "tier": p.req.tier,
        "principal": p.req.principal,
        "client": p.req.client,
        "rule": p.req.rule,
        "mode": p.req.mode.as_str(),
        "requested": humantime::format_rfc3339_seconds(p.requested).to_string(),
        "waiting_s": now.saturating_duration_since(p.started).as_secs(),
        "expires_in_s": p.expires.saturating_duration_since(now).as_secs(),
        "args_sha256": p.req.args_hash,
        "rendering": p.req.rendering,
    })
}

/// The engine's error when the shared state cannot be reached (a stable code and the store's
/// message).
fn unreachable(message: String) -> Error {
    Error::new(ErrorCode::IoError, format!("the shared state store is unreachable: {message}"))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A short random id a person can type: 8 characters of a lower-case alphabet without look-alikes.
fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut buf = [0u8; 8];
    if getrandom::fill(&mut buf).is_err() {
        // No randomness: fall back to the clock, still unique within the process.
        let n = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        buf = (n as u64).to_le_bytes();
    }
    buf.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

fn find_program(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(mode: Mode, timeout: Duration) -> Request {
        Request {
            server: "fs".into(),
            tool: "delete_path".into(),
            tier: Tier::Destructive,
            principal: "alice".into(),
            client: Some("cli".into()),
            rule: "default: destructive".into(),
            mode,
            timeout,
            rendering: "delete a.txt".into(),
            args_hash: "h1".into(),
            fingerprint: Some("fp".into()),
        }
    }

    fn approve() -> Decision {
        Decision { approved: true, reason: None, channel: "cli".into() }
    }

    #[tokio::test]
    async fn hold_waits_for_the_decision() {
        let e = Engine::new("fs", Arc::new(AuditLog::disabled()));
        let t = e.submit(request(Mode::Hold, Duration::from_secs(5)));
        assert_eq!(e.list().len(), 1);
        assert_eq!(e.fingerprint_of(&t.id).as_deref(), Some("fp"));
        e.decide(&t.id.clone(), approve()).unwrap();
        assert_eq!(t.wait().await, Outcome::Approved { channel: "cli".into() });
        assert!(e.list().is_empty());

        let t = e.submit(request(Mode::Hold, Duration::from_secs(5)));
        let deny = Decision { approved: false, reason: Some("no".into()), channel: "cli".into() };
        e.decide(&t.id.clone(), deny).unwrap();
        assert_eq!(t.wait().await, Outcome::Denied { reason: Some("no".into()) });
        // A decided id cannot be decided again.
        let t = e.submit(request(Mode::Hold, Duration::from_secs(5)));
        let id = t.id.clone();
        e.decide(&id, approve()).unwrap();
        assert_eq!(e.decide(&id, approve()).unwrap_err().code, ErrorCode::NotFound);
        drop(t);
    }

    #[tokio::test]
    async fn hold_times_out_and_a_dropped_ticket_withdraws() {
        let e = Engine::new("fs", Arc::new(AuditLog::disabled()));
        let t = e.submit(request(Mode::Hold, Duration::from_millis(50)));
        let id = t.id.clone();
        assert_eq!(t.wait().await, Outcome::TimedOut);
        assert_eq!(e.decide(&id, approve()).unwrap_err().code, ErrorCode::NotFound);
        let t = e.submit(request(Mode::Hold, Duration::from_secs(5)));
        assert_eq!(e.list().len(), 1);
        drop(t);
        assert!(e.list().is_empty());
    }

    #[tokio::test]
    async fn return_mode_binds_principal_tool_and_arguments_once() {
        let e = Engine::new("fs", Arc::new(AuditLog::disabled()));
        let t = e.submit(request(Mode::Return, Duration::from_secs(5)));
        let id = t.detach();
        assert_eq!(e.pending_for("alice", "delete_path", "h1").as_deref(), Some(id.as_str()));
        assert!(e.take_grant("alice", "delete_path", "h1").is_none(), "not approved yet");
        e.decide(&id, approve()).unwrap();
        // Not for another principal, another tool, other arguments.
        assert!(e.take_grant("bob", "delete_path", "h1").is_none());
        assert!(e.take_grant("alice", "write_file", "h1").is_none());
        assert!(e.take_grant("alice", "delete_path", "h2").is_none());
        let g = e.take_grant("alice", "delete_path", "h1").unwrap();
        assert_eq!((g.id.as_str(), g.fingerprint.as_deref()), (id.as_str(), Some("fp")));
        // Single use: the second identical call, and a replay of the id, get nothing.
        assert!(e.take_grant("alice", "delete_path", "h1").is_none());
        assert_eq!(e.decide(&id, approve()).unwrap_err().code, ErrorCode::NotFound);
    }

    #[tokio::test]
    async fn return_mode_requests_and_grants_expire() {
        let e = Engine::new("fs", Arc::new(AuditLog::disabled()));
        let t = e.submit(request(Mode::Return, Duration::from_millis(30)));
        let id = t.detach();
        std::thread::sleep(Duration::from_millis(60));
        assert!(e.list().is_empty());
        assert_eq!(e.decide(&id, approve()).unwrap_err().code, ErrorCode::NotFound);
        let t = e.submit(request(Mode::Return, Duration::from_millis(200)));
        let id = t.detach();
        e.decide(&id, approve()).unwrap();
        std::thread::sleep(Duration::from_millis(250));
        assert!(e.take_grant("alice", "delete_path", "h1").is_none(), "the approval expired");
    }

    #[test]
    fn observe_and_pause() {
        let e = Engine::new("fs", Arc::new(AuditLog::disabled()));
        assert!(e.admit("delete_path", Tier::Destructive).is_ok());
        e.set_mode(RunMode::Observe, "cli").unwrap();
        assert!(e.admit("read_file", Tier::Read).is_ok());
        for tier in [Tier::Write, Tier::Destructive, Tier::Exec] {
            assert_eq!(e.admit("t", tier).unwrap_err().code, ErrorCode::ModeObserve);
        }
        e.set_mode(RunMode::Normal, "cli").unwrap();
        e.set_paused(true, "cli").unwrap();
        assert_eq!(e.admit("read_file", Tier::Read).unwrap_err().code, ErrorCode::Paused);
        e.set_paused(false, "cli").unwrap();
        assert!(e.admit("write_file", Tier::Write).is_ok());
    }

    #[test]
    fn everything_is_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let e = Engine::new("fs", Arc::new(AuditLog::open(&path).unwrap()));
        let watch = e.subscribe();
        e.set_mode(RunMode::Observe, "cli").unwrap();
        e.set_paused(true, "cli").unwrap();
        e.set_paused(false, "cli").unwrap();
        let t = e.submit(request(Mode::Return, Duration::from_secs(5)));
        let id = t.detach();
        e.decide(&id, approve()).unwrap();
        e.take_grant("alice", "delete_path", "h1").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let events: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            events,
            ["mode_change", "pause", "resume", "approval_request", "approval_decision", "approval_used"]
        );
        assert!(text.contains("\"channel\":\"cli\"") && text.contains("wait_ms"));
        let seen: Vec<String> = watch.try_iter().map(|v| v["event"].as_str().unwrap().to_owned()).collect();
        assert_eq!(seen, ["mode_change", "pause", "resume", "request", "decision", "approval_used"]);
    }

    /// One queue and one pair of switches for every engine given it, as the store is for hub
    /// replicas; changes are delivered by calling `apply`, as the store's feed does.
    #[derive(Default)]
    struct FakeStore {
        switches: Mutex<(bool, bool)>,
        rows: Mutex<Vec<(SharedRequest, Option<Decision>, Instant)>>,
        /// The database is unreachable: every write fails.
        down: AtomicBool,
    }

    impl SharedState for FakeStore {
        fn switches(&self) -> Result<(bool, bool), String> {
            Ok(*lock(&self.switches))
        }
        fn set_switches(&self, paused: Option<bool>, observe: Option<bool>) -> Result<(), String> {
            if self.down.load(Ordering::Acquire) {
                return Err("connection refused".into());
            }
            let mut s = lock(&self.switches);
            *s = (paused.unwrap_or(s.0), observe.unwrap_or(s.1));
            Ok(())
        }
        fn insert(&self, r: &SharedRequest) -> Result<(), String> {
            lock(&self.rows).push((r.clone(), None, Instant::now()));
            Ok(())
        }
        fn pending(&self) -> Result<Vec<Value>, String> {
            Ok(lock(&self.rows).iter().filter(|r| r.1.is_none()).map(|r| r.0.view.clone()).collect())
        }
        fn pending_for(&self, principal: &str, tool: &str, args_hash: &str) -> Result<Option<String>, String> {
            Ok(lock(&self.rows)
                .iter()
                .find(|(r, d, _)| {
                    d.is_none()
                        && (r.principal.as_str(), r.tool.as_str(), r.args_hash.as_str()) == (principal, tool, args_hash)
                })
                .map(|r| r.0.id.clone()))
        }
        fn decide(&self, id: &str, d: &Decision) -> Result<bool, String> {
            let mut rows = lock(&self.rows);
            match rows.iter_mut().find(|r| r.0.id == id && r.1.is_none()) {
                Some(r) => {
                    r.1 = Some(d.clone());
                    Ok(true)
                }
                None => Ok(false),
            }
        }
        fn decision(&self, id: &str) -> Result<Option<Decision>, String> {
            Ok(lock(&self.rows).iter().find(|r| r.0.id == id).and_then(|r| r.1.clone()))
        }
        fn remove(&self, id: &str) -> Result<(), String> {
            lock(&self.rows).retain(|r| r.0.id != id);
            Ok(())
        }
        fn take_grant(&self, principal: &str, tool: &str, args_hash: &str) -> Result<Option<Grant>, String> {
            let mut rows = lock(&self.rows);
            let i = rows.iter().position(|(r, d, _)| {
                !r.hold
                    && d.as_ref().is_some_and(|d| d.approved)
                    && (r.principal.as_str(), r.tool.as_str(), r.args_hash.as_str()) == (principal, tool, args_hash)
            });
            Ok(i.map(|i| rows.remove(i)).map(|(r, _, _)| Grant { id: r.id, fingerprint: r.fingerprint }))
        }
    }

    fn replicas() -> (Arc<FakeStore>, Arc<Engine>, Arc<Engine>) {
        let store = Arc::new(FakeStore::default());
        let (a, b) =
            (Engine::new("hub", Arc::new(AuditLog::disabled())), Engine::new("hub", Arc::new(AuditLog::disabled())));
        a.share(store.clone()).unwrap();
        b.share(store.clone()).unwrap();
        (store, a, b)
    }

    #[tokio::test]
    async fn a_call_held_on_one_replica_is_decided_on_another() {
        let (_store, a, b) = replicas();
        let t = a.submit(request(Mode::Hold, Duration::from_secs(5)));
        let id = t.id.clone();
        let listed: Vec<Value> = b.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["id"], id.as_str());
        b.decide(&id, approve()).unwrap();
        assert_eq!(b.decide(&id, approve()).unwrap_err().code, ErrorCode::NotFound, "decided once");
        // The feed brings the decision to the replica holding the call.
        a.apply(&SharedChange::Approval(id.clone()));
        assert_eq!(t.wait().await, Outcome::Approved { channel: "cli".into() });
        assert!(a.list().is_empty() && b.list().is_empty(), "the held call's request is forgotten");
        // A replica that missed notifications catches up on "everything changed".
        let t = a.submit(request(Mode::Hold, Duration::from_secs(5)));
        let deny = Decision { approved: false, reason: Some("no".into()), channel: "dashboard".into() };
        b.decide(&t.id.clone(), deny).unwrap();
        a.apply(&SharedChange::All);
        assert_eq!(t.wait().await, Outcome::Denied { reason: Some("no".into()) });
        // Withdrawn or timed out on its replica: gone for every other.
        let t = a.submit(request(Mode::Hold, Duration::from_secs(5)));
        drop(t);
        assert!(b.list().is_empty());
        let t = a.submit(request(Mode::Hold, Duration::from_millis(30)));
        assert_eq!(t.wait().await, Outcome::TimedOut);
        assert!(b.list().is_empty());
    }

    #[tokio::test]
    async fn return_mode_approvals_are_used_once_on_any_replica() {
        let (_store, a, b) = replicas();
        let id = a.submit(request(Mode::Return, Duration::from_secs(5))).detach();
        assert_eq!(b.pending_for("alice", "delete_path", "h1").as_deref(), Some(id.as_str()));
        b.decide(&id, approve()).unwrap();
        a.apply(&SharedChange::Approval(id.clone()));
        assert!(a.list().is_empty());
        let g = b.take_grant("alice", "delete_path", "h1").unwrap();
        assert_eq!((g.id.as_str(), g.fingerprint.as_deref()), (id.as_str(), Some("fp")));
        assert!(a.take_grant("alice", "delete_path", "h1").is_none(), "used once");
    }

    #[test]
    fn switches_reach_every_replica_through_the_feed() {
        let (store, a, b) = replicas();
        a.set_paused(true, "cli").unwrap();
        assert_eq!(*lock(&store.switches), (true, false));
        assert!(b.admit("read_file", Tier::Read).is_ok(), "not until the feed says so");
        b.apply(&SharedChange::Switches);
        assert_eq!(b.admit("read_file", Tier::Read).unwrap_err().code, ErrorCode::Paused);
        store.set_switches(Some(false), Some(true)).unwrap();
        a.apply(&SharedChange::All);
        assert!(a.admit("read_file", Tier::Read).is_ok());
        assert_eq!(a.admit("t", Tier::Write).unwrap_err().code, ErrorCode::ModeObserve);
        // The store unreachable: refused with a stable code, and nothing switched here either.
        store.down.store(true, Ordering::Release);
        let e = a.set_paused(true, "cli").unwrap_err();
        assert_eq!((e.code, e.message.contains("connection refused")), (ErrorCode::IoError, true));
        assert!(!a.paused());
        assert_eq!(a.set_mode(RunMode::Normal, "cli").unwrap_err().code, ErrorCode::IoError);
        assert_eq!(a.mode(), RunMode::Observe);
        store.down.store(false, Ordering::Release);
        // A replica started later reads the switches as they are.
        let c = Engine::new("hub", Arc::new(AuditLog::disabled()));
        c.share(store.clone()).unwrap();
        assert_eq!(c.mode(), RunMode::Observe);
    }
}
