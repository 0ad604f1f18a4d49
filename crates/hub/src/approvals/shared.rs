//! The hub's approvals engine on a shared store: [`StoreState`] is bastion-control's
//! [`SharedState`] over bastion-auth's store, and [`share`] connects an engine to it and to the
//! store's change feed, so that mode, pause and the approvals queue are one for every hub
//! replica on the same PostgreSQL database.
//!
//! Token and grant revocations come on the same feed; the hub keeps no cache of token checks
//! (each request is one indexed query on the store), so nothing needs invalidating for them:
//! a revocation is in force on every replica from the next request.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bastion_auth::store::{ApprovalDecision, ApprovalRecord, Change, Store, Subscription, Switch};
use bastion_control::{Decision, Engine, Grant, SharedChange, SharedRequest, SharedState};
use serde_json::Value;

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The shared state in a store. The store's handle is not `Sync`: calls take turns on it (each
/// is one short statement on a pooled connection).
pub struct StoreState {
    store: Mutex<Box<dyn Store>>,
}

impl StoreState {
    /// The shared state in `store`.
    pub fn new(store: Box<dyn Store>) -> StoreState {
        StoreState { store: Mutex::new(store) }
    }

    fn with<T>(&self, f: impl FnOnce(&dyn Store) -> Result<T, bastion_auth::store::StoreError>) -> Result<T, String> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        f(&**store).map_err(|e| e.to_string())
    }
}

/// A decision as the engine knows it.
pub fn decision_of(d: ApprovalDecision) -> Decision {
    Decision { approved: d.approved, reason: d.reason, channel: d.channel }
}

/// The listed form of stored requests, at `now_ms`.
pub fn listed(records: &[ApprovalRecord], now_ms: u64) -> Vec<Value> {
    records.iter().map(|r| r.listed(now_ms)).collect()
}

impl SharedState for StoreState {
    fn switches(&self) -> Result<(bool, bool), String> {
        self.with(|s| s.switches()).map(|s| (s.paused, s.observe))
    }

    fn set_switches(&self, paused: Option<bool>, observe: Option<bool>) -> Result<(), String> {
        let now = bastion_auth::now();
        self.with(|s| {
            if let Some(p) = paused {
                s.set_switch(Switch::Paused(p), now)?;
            }
            if let Some(o) = observe {
                s.set_switch(Switch::Observe(o), now)?;
            }
            Ok(())
        })
    }

    fn insert(&self, r: &SharedRequest) -> Result<(), String> {
        let created_ms = now_ms();
        let timeout_ms = r.timeout.as_millis() as u64;
        let record = ApprovalRecord {
            id: r.id.clone(),
            principal: r.principal.clone(),
            tool: r.tool.clone(),
            args_hash: r.args_hash.clone(),
            fingerprint: r.fingerprint.clone(),
            hold: r.hold,
            view: r.view.clone(),
            created_ms,
            expires_ms: created_ms.saturating_add(timeout_ms),
            timeout_ms,
            decision: None,
            decided_ms: None,
        };
        self.with(|s| s.insert_approval(&record))
    }

    fn pending(&self) -> Result<Vec<Value>, String> {
        let now = now_ms();
        self.with(|s| s.pending_approvals(now)).map(|r| listed(&r, now))
    }

    fn pending_for(&self, principal: &str, tool: &str, args_hash: &str) -> Result<Option<String>, String> {
        let pending = self.with(|s| s.pending_approvals(now_ms()))?;
        Ok(pending
            .into_iter()
            .find(|r| !r.hold && r.principal == principal && r.tool == tool && r.args_hash == args_hash)
            .map(|r| r.id))
    }

    fn decide(&self, id: &str, d: &Decision) -> Result<bool, String> {
        let d = ApprovalDecision { approved: d.approved, reason: d.reason.clone(), channel: d.channel.clone() };
        self.with(|s| s.decide_approval(id, &d, now_ms())).map(|r| r.is_some())
    }

    fn decision(&self, id: &str) -> Result<Option<Decision>, String> {
        self.with(|s| s.approval(id)).map(|r| r.and_then(|r| r.decision).map(decision_of))
    }

    fn remove(&self, id: &str) -> Result<(), String> {
        self.with(|s| s.remove_approval(id)).map(|_| ())
    }

    fn take_grant(&self, principal: &str, tool: &str, args_hash: &str) -> Result<Option<Grant>, String> {
        let taken = self.with(|s| s.take_approval(principal, tool, args_hash, now_ms()))?;
        Ok(taken.map(|r| Grant { id: r.id, fingerprint: r.fingerprint }))
    }
}

/// The engine's view of a change on the store's feed (`None`: nothing of the engine's).
fn engine_change(c: &Change) -> Option<SharedChange> {
    match c {
        Change::Switches => Some(SharedChange::Switches),
        Change::Approval(id) => Some(SharedChange::Approval(id.clone())),
        Change::All => Some(SharedChange::All),
        // Nothing cached to drop: every request checks its token in the store.
        Change::Token(_) | Change::Grant(_) => None,
    }
}

/// Shares `engine`'s switches and queue through the store named by `store` when that store is
/// shared (PostgreSQL), and applies the store's change feed to it until the returned
/// subscription is dropped. `None` for the SQLite store: the engine stays in memory.
pub fn share(engine: &Arc<Engine>, store: Option<&str>, state_dir: &Path) -> anyhow::Result<Option<Subscription>> {
    if !store.is_some_and(bastion_auth::store::is_postgres) {
        return Ok(None);
    }
    let handle = bastion_auth::store::open(store, state_dir)?;
    if !handle.is_shared() {
        return Ok(None);
    }
    let feed = bastion_auth::store::open(store, state_dir)?;
    engine.share(Arc::new(StoreState::new(handle))).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let target = Arc::downgrade(engine);
    let subscription = feed.subscribe(Box::new(move |change| {
        if let (Some(engine), Some(c)) = (target.upgrade(), engine_change(&change)) {
            engine.apply(&c);
        }
    }))?;
    // The feed's thread holds its own connection; the handle that opened it can go.
    drop(feed);
    Ok(subscription)
}
