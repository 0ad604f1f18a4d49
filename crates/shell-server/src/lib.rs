//! `bastion-shell` is Bastion's command MCP server: it runs allowlisted programs as argv (never
//! through a shell) inside a kernel sandbox.
//!
//! Every request is checked by `bastion-policy`'s command rules (program allowlist, each
//! program's flags parsed with its own option grammar, path arguments resolved beneath the
//! roots), then run by a single-threaded trampoline (the server re-executes itself) that applies
//! namespaces, rlimits, no-new-privileges, Landlock and seccomp before `execve` (see
//! [`sandbox`]).
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use bastion_policy::{Policy, PolicyConfig};
//! use bastion_server_kit::BastionServer;
//! use bastion_shell::ShellServer;
//! use rmcp::ServiceExt;
//!
//! let config = PolicyConfig { roots: vec!["/srv/project".into()], ..Default::default() };
//! let server = ShellServer::new(Policy::new(config.clone())?, config.shell.clone()).await?;
//! server.into_handler().serve(rmcp::transport::stdio()).await?.waiting().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod exec;
mod processes;
mod tools;

use std::sync::{Arc, Mutex};

use bastion_policy::commands::ShellConfig;
use bastion_policy::{Policy, Tier};
use bastion_server_kit::{ToolSpec, ToolTable};
use rmcp::handler::server::router::tool::ToolRouter;

/// The kernel sandbox (the `bastion-sandbox` crate), re-exported under its former path.
pub use bastion_sandbox as sandbox;
pub use bastion_server_kit::{BastionServer, Failure, init_logging};
pub use cli::{ShellArgs, run_stdio};
pub use sandbox::{Status as SandboxStatus, maybe_run_trampoline};

macro_rules! shell_tools {
    ($server:literal, $run:expr) => {
        ToolTable::new(
            $server,
            &[
                ToolSpec::new("run_command", $run, "Run a command"),
                ToolSpec::new("start_process", $run, "Start a background process"),
                ToolSpec::new("read_process_output", Tier::Read, "Read process output"),
                ToolSpec::new("write_process_input", $run, "Write to process input"),
                ToolSpec::new("list_processes", Tier::Read, "List processes"),
                ToolSpec::new("kill_process", $run, "Kill a process").idempotent(),
                ToolSpec::new("list_allowed_commands", Tier::Read, "List allowed commands"),
                ToolSpec::new("sandbox_status", Tier::Read, "Sandbox status"),
            ],
        )
    };
}

/// The tools when the profile only reads (`read-only`): running a command is a read.
pub const READ_ONLY_TOOLS: ToolTable = shell_tools!("shell", Tier::Read);
/// The tools when the profile runs project code (`build-test`): running is `exec`.
pub const EXEC_TOOLS: ToolTable = shell_tools!("shell", Tier::Exec);

pub(crate) struct Inner {
    pub(crate) policy: Policy,
    pub(crate) launcher: exec::Launcher,
    pub(crate) status: SandboxStatus,
    pub(crate) processes: Mutex<processes::ProcessTable>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(table) = self.processes.lock() {
            for p in table.all() {
                if p.exit().is_none() {
                    exec::kill_tree(p.pid);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.launcher.scratch);
    }
}

/// The shell MCP server.
#[derive(Clone)]
pub struct ShellServer {
    pub(crate) inner: Arc<Inner>,
    tool_router: Arc<ToolRouter<ShellServer>>,
}

impl ShellServer {
    /// A server enforcing `policy` with the command rules of `shell`. Probes the sandbox once
    /// (a few milliseconds) so every call knows what is enforced.
    pub async fn new(mut policy: Policy, shell: ShellConfig) -> bastion_policy::Result<Self> {
        let rules = shell.rules()?;
        policy.max_tier = rules.tier;
        let launcher = exec::Launcher::new(rules, shell).map_err(|e| {
            bastion_policy::Error::new(
                bastion_policy::ErrorCode::IoError,
                format!("cannot create the scratch directory: {e}"),
            )
        })?;
        let status = sandbox::probe(&launcher.exe, true).await;
        let status = if status.userns { status } else { sandbox::probe(&launcher.exe, false).await };
        Ok(ShellServer {
            inner: Arc::new(Inner { policy, launcher, status, processes: Mutex::new(Default::default()) }),
            tool_router: Arc::new(Self::router()),
        })
    }

    /// What the sandbox enforces here.
    pub fn sandbox_status(&self) -> &SandboxStatus {
        &self.inner.status
    }

    /// The active profile's name.
    pub fn profile(&self) -> &str {
        &self.inner.launcher.rules.profile
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }
}

impl BastionServer for ShellServer {
    const NAME: &'static str = "bastion-shell";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const INSTRUCTIONS: &'static str = INSTRUCTIONS;

    // Whether running a command is a read or `exec` depends on the profile.
    fn table(&self) -> &'static ToolTable {
        if self.inner.launcher.rules.tier == Tier::Exec { &EXEC_TOOLS } else { &READ_ONLY_TOOLS }
    }

    fn tool_router(&self) -> &ToolRouter<Self> {
        &self.tool_router
    }

    fn policy(&self) -> &Policy {
        &self.inner.policy
    }
}

const INSTRUCTIONS: &str = concat!(
    "Bastion shell server. Commands run as a program plus an argument list, never through a shell: \
pipes, redirections, $(...), globs and ';' are literal text. Call list_allowed_commands first to see the programs and \
flags this profile allows; anything else is refused with command_not_allowed or argument_not_allowed. \
Paths in arguments and cwd must be inside the roots. Every command runs in a kernel sandbox (see sandbox_status) \
with no network. Use run_command for short commands (output is cut to a budget with stdout_truncated/stderr_truncated), \
start_process + read_process_output for long ones. ",
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
