//! What the store keeps beside authentication so that several hub processes behave as one:
//! the server-wide switches (mode and pause), the approvals queue with its decisions, the
//! registration counters that rate-limit dynamic client registration, and the change feed
//! that tells every process of a change made by another.
//!
//! With the SQLite store these tables exist too (the suite runs against both backends), but a
//! hub on SQLite keeps its switches and queue in memory as before: only a store that
//! [`Store::is_shared`](super::Store::is_shared) is the hub's source of truth for them.

use serde_json::Value;

/// The channel of PostgreSQL's `LISTEN`/`NOTIFY` every change is announced on.
pub const CHANNEL: &str = "bastion_changes";

/// The server-wide switches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switches {
    /// Every call refused (`bastion pause`).
    pub paused: bool,
    /// Only reading calls run (`bastion mode observe`).
    pub observe: bool,
}

/// One switch set to a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// Pause (`true`) or resume.
    Paused(bool),
    /// Observe mode (`true`) or normal.
    Observe(bool),
}

/// How a request was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalDecision {
    /// Approved or denied.
    pub approved: bool,
    /// Why (denials).
    pub reason: Option<String>,
    /// The deciding channel: `cli`, `dashboard`, `elicitation`.
    pub channel: String,
}

/// A call waiting for a person, as the store keeps it. Times are milliseconds since the epoch
/// (a request may be held for less than a second in tests).
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalRecord {
    /// The id a person types (`bastion approve ID`).
    pub id: String,
    /// Who calls.
    pub principal: String,
    /// The tool as the caller named it.
    pub tool: String,
    /// SHA-256 of the exact arguments.
    pub args_hash: String,
    /// The targets' fingerprint at request time (`stale` check), if taken.
    pub fingerprint: Option<String>,
    /// Hold mode (the call waits on the process that queued it) rather than return mode.
    pub hold: bool,
    /// The request as listed (server, tool, tier, rendering, …), JSON.
    pub view: Value,
    /// When it was queued.
    pub created_ms: u64,
    /// When it stops being decidable.
    pub expires_ms: u64,
    /// The request's timeout: in return mode, how long an approval stays usable.
    pub timeout_ms: u64,
    /// The decision, once made.
    pub decision: Option<ApprovalDecision>,
    /// When it was decided.
    pub decided_ms: Option<u64>,
}

impl ApprovalRecord {
    /// The listed form: the stored view with the waiting and remaining times of `now_ms`.
    pub fn listed(&self, now_ms: u64) -> Value {
        let mut v = self.view.clone();
        if let Value::Object(o) = &mut v {
            o.insert("waiting_s".into(), now_ms.saturating_sub(self.created_ms).div_euclid(1000).into());
            o.insert("expires_in_s".into(), self.expires_ms.saturating_sub(now_ms).div_euclid(1000).into());
        }
        v
    }
}

/// A change announced on the feed: what another process should reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A static token (by id) was revoked.
    Token(String),
    /// An OAuth grant (by id) was revoked with its tokens (revocation, code replay, refresh reuse).
    Grant(String),
    /// Mode or pause changed.
    Switches,
    /// An approval request (by id) was decided or withdrawn.
    Approval(String),
    /// Anything may have changed: revoke-all, or a listener that reconnected and may have
    /// missed notifications.
    All,
}

impl Change {
    /// The notification's payload: the kind, a space, the id.
    pub fn payload(&self) -> String {
        match self {
            Change::Token(id) => format!("token {id}"),
            Change::Grant(id) => format!("grant {id}"),
            Change::Switches => "switches".into(),
            Change::Approval(id) => format!("approval {id}"),
            Change::All => "all".into(),
        }
    }

    /// Reads a payload; anything unknown (a newer Bastion's kind) is [`Change::All`], so a
    /// listener reloads rather than ignores it.
    pub fn parse(payload: &str) -> Change {
        let (kind, id) = payload.split_once(' ').unwrap_or((payload, ""));
        match (kind, id.to_owned()) {
            ("token", id) if !id.is_empty() => Change::Token(id),
            ("grant", id) if !id.is_empty() => Change::Grant(id),
            ("approval", id) if !id.is_empty() => Change::Approval(id),
            ("switches", _) => Change::Switches,
            _ => Change::All,
        }
    }
}

/// A running listener of the change feed; dropping it stops the listener within a second.
pub struct Subscription {
    pub(crate) stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}

/// What a listener is handed for every change.
pub type OnChange = Box<dyn Fn(Change) + Send + Sync>;

/// The SQLite step that adds the shared-state tables (additive; run at every open).
pub(crate) const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS switches(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    paused INTEGER NOT NULL,
    observe INTEGER NOT NULL,
    changed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals(
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    tool TEXT NOT NULL,
    args_hash TEXT NOT NULL,
    fingerprint TEXT,
    hold INTEGER NOT NULL,
    view TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    timeout_ms INTEGER NOT NULL,
    decision TEXT,
    reason TEXT,
    channel TEXT,
    decided_ms INTEGER
);
CREATE INDEX IF NOT EXISTS approvals_by_call ON approvals(principal, tool, args_hash);
CREATE TABLE IF NOT EXISTS registrations(
    key TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
);
";

/// The columns of an approval row, in the order [`record`] reads them.
pub(crate) const APPROVAL_COLUMNS: &str = "id, principal, tool, args_hash, fingerprint, hold, view, created_ms, \
     expires_ms, timeout_ms, decision, reason, channel, decided_ms";

/// The decision columns of a row: `approved`/`denied`, reason, channel.
pub(crate) fn decision_of(
    decision: Option<String>,
    reason: Option<String>,
    channel: Option<String>,
) -> Option<ApprovalDecision> {
    decision.map(|d| ApprovalDecision { approved: d == "approved", reason, channel: channel.unwrap_or_default() })
}

/// The stored word of a decision.
pub(crate) fn decision_word(d: &ApprovalDecision) -> &'static str {
    if d.approved { "approved" } else { "denied" }
}

/// The view column back as JSON (a row written by this module always parses).
pub(crate) fn view_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}
