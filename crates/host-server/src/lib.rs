//! `bastion-host` is Bastion's host MCP server: it answers "is nginx running, what holds port
//! 8080, what did the service log in the last hour" without giving the model a shell.
//!
//! Three layers, each narrower than the last:
//!
//! - **typed tools** that read the kernel's files themselves (`overview`, `check_port`,
//!   `changes`) or run one fixed command (`service_logs`);
//! - **`run_command`** for the inspection programs of bastion-policy's `host` profile (`ps`,
//!   `ss`, `systemctl status|show|…`, `journalctl`, `df`, `ip addr show`, …), each with a
//!   reading-only grammar, run in the kernel sandbox with the host's `/proc`, systemd, D-Bus and
//!   the journal visible, no writes and no network;
//! - the **operate tier** (`exec`, off unless `--allow-operate`): `service_action` (start, stop,
//!   restart or reload a unit matching `[ops] units`) and, when enabled, `container_action`;
//!   each asks the person through the approvals engine by default, showing the exact command.
//!
//! The server runs as whatever user starts it and sees what that user may see.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use bastion_host::HostServer;
//! use bastion_policy::{Policy, PolicyConfig};
//! use bastion_server_kit::BastionServer;
//! use rmcp::ServiceExt;
//!
//! let config = PolicyConfig::default();
//! let state = std::env::temp_dir().join("bastion-state");
//! let server = HostServer::new(Policy::without_roots(config.clone())?, &config.ops, &state).await?;
//! server.into_handler().serve(rmcp::transport::stdio()).await?.waiting().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod cli;
pub mod facts;
pub mod run;
pub mod snapshot;
mod tools;

use std::path::Path;
use std::sync::Arc;

use bastion_policy::commands::{OpsConfig, OpsRules};
use bastion_policy::{Policy, Tier};
use bastion_server_kit::{ToolSpec, ToolTable};
use rmcp::handler::server::router::tool::ToolRouter;

pub use bastion_server_kit::{BastionServer, Failure, init_logging};
pub use bastion_shell::maybe_run_trampoline;
pub use cli::{HostArgs, run_stdio};

macro_rules! host_tools {
    ($($extra:expr),*) => {
        ToolTable::new(
            "host",
            &[
                ToolSpec::new("overview", Tier::Read, "Host overview"),
                ToolSpec::new("check_port", Tier::Read, "Check a port"),
                ToolSpec::new("service_logs", Tier::Read, "Service logs"),
                ToolSpec::new("changes", Tier::Read, "Host changes since the last overview"),
                ToolSpec::new("run_command", Tier::Read, "Run an inspection command"),
                ToolSpec::new("list_allowed_commands", Tier::Read, "List inspection commands"),
                ToolSpec::new("service_action", Tier::Exec, "Start, stop, restart or reload a service"),
                $($extra),*
            ],
        )
    };
}

/// The tools (the operate tier's `service_action` is `exec`: offered only under
/// `--allow-operate`).
pub const TOOLS: ToolTable = host_tools!();
/// The tools with `[ops] container_restart` on.
pub const TOOLS_WITH_CONTAINERS: ToolTable =
    host_tools!(ToolSpec::new("container_action", Tier::Exec, "Restart a container"));

pub(crate) struct Inner {
    pub(crate) policy: Policy,
    pub(crate) runner: run::Runner,
    pub(crate) ops: OpsRules,
    pub(crate) store: snapshot::Store,
}

/// The host MCP server.
#[derive(Clone)]
pub struct HostServer {
    pub(crate) inner: Arc<Inner>,
    tool_router: Arc<ToolRouter<HostServer>>,
}

impl HostServer {
    /// A server enforcing `policy` with `[ops]` (`ops`), keeping its snapshots under
    /// `state_dir/host`. Probes the sandbox once.
    pub async fn new(policy: Policy, ops: &OpsConfig, state_dir: &Path) -> bastion_policy::Result<Self> {
        let rules = ops.command_rules()?;
        let compiled = ops.compile()?;
        let exe = std::path::PathBuf::from("/proc/self/exe");
        let status = bastion_shell::sandbox::probe(&exe, true).await;
        let status = if status.userns { status } else { bastion_shell::sandbox::probe(&exe, false).await };
        let runner = run::Runner::new(exe, rules, status, &policy, ops.containers);
        Ok(HostServer {
            inner: Arc::new(Inner { policy, runner, ops: compiled, store: snapshot::Store::new(state_dir) }),
            tool_router: Arc::new(Self::router()),
        })
    }

    /// What the sandbox enforces here.
    pub fn sandbox_status(&self) -> &bastion_shell::SandboxStatus {
        &self.inner.runner.status
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }
}

impl BastionServer for HostServer {
    const NAME: &'static str = "bastion-host";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const INSTRUCTIONS: &'static str = INSTRUCTIONS;

    fn table(&self) -> &'static ToolTable {
        if self.inner.ops.container_restart { &TOOLS_WITH_CONTAINERS } else { &TOOLS }
    }

    fn tool_router(&self) -> &ToolRouter<Self> {
        &self.tool_router
    }

    fn policy(&self) -> &Policy {
        &self.inner.policy
    }
}

const INSTRUCTIONS: &str = concat!(
    "Bastion host server: inspect this machine. Start with overview (OS, load, memory, disks, top processes, \
listening ports with their process and unit, failed units); check_port says whether a port is free or who holds it; \
service_logs reads a unit's journal; changes says what differs since the last overview. run_command runs the \
inspection programs listed by list_allowed_commands (ps, ss, systemctl status/show/list-units/..., journalctl, df, free, \
ip addr/route/link show, ...), reading only, in a sandbox with no writes and no network. service_action (start, stop, \
restart, reload) exists only when the operator enabled it, for the units they listed, and waits for the person's approval. ",
    bastion_server_kit::untrusted_content!()
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_say_tool_output_is_data() {
        assert!(INSTRUCTIONS.ends_with(bastion_server_kit::UNTRUSTED_CONTENT), "{INSTRUCTIONS}");
    }
}
