//! `bastion-control` is the runtime of Bastion's control plane: the person in the loop. It holds
//! no MCP types; the call paths (server-kit's `ToolTable::call`, the hub's router) ask it, and
//! the CLI and dashboard talk to it over the control socket.
//!
//! - [`Engine`]: the pending queue of calls an approval rule (`bastion_policy::approval`) asked
//!   about, their decisions, *hold* mode (a [`Ticket`] resolves on the decision or the timeout)
//!   and *return* mode (a single-use, expiring [`Grant`] bound to principal, tool and argument
//!   hash), the `observe` mode cap and pause/resume, all journaled through
//!   `bastion_policy::audit`.
//! - [`shared`]: the same, shared by several processes (hub replicas): with a [`SharedState`]
//!   (the hub's PostgreSQL store) the switches and the queue live there, and the store's change
//!   feed is applied through [`Engine::apply`].
//! - [`socket`]: the local control socket (0600, peer uid checked with `SO_PEERCRED`) and a
//!   small blocking client for the CLI.
//!
//! ```no_run
//! use std::sync::Arc;
//! use bastion_control::{Engine, socket};
//! use bastion_policy::audit::AuditLog;
//!
//! let engine = Engine::new("fs", Arc::new(AuditLog::disabled()));
//! let state = std::path::Path::new("/home/me/.local/state/bastion");
//! let _listening = socket::listen(engine.clone(), &socket::socket_path(state, "fs")).expect("bind");
//! for path in socket::sockets(state) {
//!     let answer = socket::request(&path, &serde_json::json!({"op": "list"})).expect("answer");
//!     println!("{answer}");
//! }
//! ```
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod engine;
pub mod shared;
pub mod socket;

pub use engine::{Decision, Engine, Grant, Outcome, Request, RunMode, Ticket};
pub use shared::{SharedChange, SharedRequest, SharedState};

/// The default state directory, the same as the hub's: `$XDG_STATE_HOME/bastion`, else
/// `~/.local/state/bastion`. `None` when neither variable is set.
pub fn default_state_dir() -> Option<std::path::PathBuf> {
    if let Some(d) = std::env::var_os("BASTION_STATE_DIR").filter(|d| !d.is_empty()) {
        return Some(d.into());
    }
    bastion_policy::state::default_state_dir()
}
