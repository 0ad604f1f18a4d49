//! The engine's state when several processes share it (hub replicas on one PostgreSQL store):
//! the switches and the approvals queue live in a [`SharedState`], the engine keeps in memory
//! only what is its own (the held calls waiting on this process) and mirrors the switches in
//! its atomics, updated by [`crate::Engine::apply`] when the store announces a change.
//!
//! bastion-control knows nothing of the store: the hub implements this trait over
//! bastion-auth's store, so servers alone keep depending on bastion-policy only.

use std::time::Duration;

use serde_json::Value;

use crate::engine::{Decision, Grant};

/// A request as the shared queue keeps it.
#[derive(Clone, Debug)]
pub struct SharedRequest {
    /// The id.
    pub id: String,
    /// Who calls.
    pub principal: String,
    /// The tool as the caller named it.
    pub tool: String,
    /// SHA-256 of the exact arguments.
    pub args_hash: String,
    /// The targets' fingerprint at request time.
    pub fingerprint: Option<String>,
    /// Hold mode (this process waits for the decision) rather than return mode.
    pub hold: bool,
    /// The listed form (`view` of the engine), without the times that change.
    pub view: Value,
    /// How long the request, and in return mode its approval, stays valid.
    pub timeout: Duration,
}

/// What changed in the shared state, as the store's feed tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedChange {
    /// Mode or pause.
    Switches,
    /// One request: queued, decided or withdrawn.
    Approval(String),
    /// Anything (the feed reconnected and may have missed changes).
    All,
}

/// Where mode, pause and approvals live when shared. Errors are messages for a person (the
/// store is unreachable, …).
pub trait SharedState: Send + Sync {
    /// `(paused, observe)`.
    fn switches(&self) -> Result<(bool, bool), String>;
    /// Sets pause (`Some`) and/or observe (`Some`), announcing it to every process.
    fn set_switches(&self, paused: Option<bool>, observe: Option<bool>) -> Result<(), String>;
    /// Queues a request.
    fn insert(&self, r: &SharedRequest) -> Result<(), String>;
    /// The waiting requests, oldest first, as listed (with `waiting_s` and `expires_in_s`).
    fn pending(&self) -> Result<Vec<Value>, String>;
    /// The id of a waiting request for exactly this principal, tool and argument hash.
    fn pending_for(&self, principal: &str, tool: &str, args_hash: &str) -> Result<Option<String>, String>;
    /// Decides a waiting request once, announcing it; `false` if none with this id waits.
    fn decide(&self, id: &str, d: &Decision) -> Result<bool, String>;
    /// The decision stored for a request, if it was decided.
    fn decision(&self, id: &str) -> Result<Option<Decision>, String>;
    /// Forgets a request (withdrawn, expired, or its held call answered).
    fn remove(&self, id: &str) -> Result<(), String>;
    /// Uses a return-mode approval once.
    fn take_grant(&self, principal: &str, tool: &str, args_hash: &str) -> Result<Option<Grant>, String>;
}
