//! Command line of `bastion-shell` (also `bastion shell`).

use std::path::PathBuf;

use bastion_policy::{Policy, PolicyConfig};
use rmcp::ServiceExt;

use crate::ShellServer;

/// `bastion-shell`: allowlisted commands in a kernel sandbox, over stdio.
#[derive(Debug, Clone, clap::Args)]
pub struct ShellArgs {
    /// A directory commands may work in (repeatable). Relative paths resolve against the first.
    #[arg(long = "root", value_name = "DIR")]
    pub roots: Vec<PathBuf>,
    /// Command profile: read-only (default) or build-test (runs project code; needs Landlock).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// A TOML policy file (roots, deny globs, limits, audit_log, and a [shell] table).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Append a JSON-lines audit journal of every call to FILE.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Run exec-tier profiles even when Landlock is unavailable (a weaker sandbox).
    #[arg(long)]
    pub allow_degraded_sandbox: bool,
    /// Allow a root that is or contains the home directory or a .ssh directory.
    #[arg(long)]
    pub allow_broad_roots: bool,
}

impl ShellArgs {
    /// The policy configuration: the config file (if any), then the flags on top.
    pub fn config(&self) -> bastion_policy::Result<PolicyConfig> {
        let mut config = match &self.config {
            Some(path) => PolicyConfig::load(path)?,
            None => PolicyConfig::default(),
        };
        config.roots.extend(self.roots.iter().cloned());
        if let Some(profile) = &self.profile {
            config.shell.profile = profile.clone();
        }
        if self.audit_log.is_some() {
            config.audit_log = self.audit_log.clone();
        }
        config.shell.allow_degraded |= self.allow_degraded_sandbox;
        config.allow_broad_roots |= self.allow_broad_roots;
        Ok(config)
    }
}

/// Runs the server on stdin/stdout until the client disconnects. Logs go to stderr.
pub async fn run_stdio(args: ShellArgs) -> anyhow::Result<()> {
    let config = args.config().map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let shell = config.shell.clone();
    let policy = Policy::new(config).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    for w in &policy.warnings {
        eprintln!("bastion-shell: {w}");
    }
    let server = ShellServer::new(policy, shell).await.map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let status = server.sandbox_status().clone();
    let roots: Vec<String> = server.policy().roots().iter().map(|r| r.real_path().display().to_string()).collect();
    tracing::info!(
        ?roots,
        profile = server.profile(),
        landlock_abi = status.landlock_abi,
        landlock = %status.landlock,
        seccomp = status.seccomp,
        userns = status.userns,
        "bastion-shell starting"
    );
    if !status.landlock_active() || !status.seccomp {
        eprintln!(
            "bastion-shell: warning: the sandbox is incomplete here (landlock: {}, seccomp: {}): {}",
            status.landlock,
            status.seccomp,
            status.notes.join("; ")
        );
    }
    server.policy().audit.event(
        "shell",
        "start",
        serde_json::json!({"roots": roots, "profile": server.profile(), "sandbox": status}),
    );
    let running = server.serve(bastion_server_kit::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
