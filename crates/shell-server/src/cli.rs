//! Command line of `bastion-shell` (also `bastion shell`).

use bastion_policy::{Policy, PolicyConfig};

use crate::ShellServer;

/// `bastion-shell`: allowlisted commands in a kernel sandbox, over stdio.
#[derive(Debug, Clone, clap::Args)]
pub struct ShellArgs {
    /// Roots (where commands may work), config file (with a [shell] table), audit journal.
    #[command(flatten)]
    pub common: bastion_server_kit::CommonArgs,
    /// Command profile: read-only (default) or build-test (runs project code; needs Landlock).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Run exec-tier profiles even when Landlock is unavailable (a weaker sandbox).
    #[arg(long)]
    pub allow_degraded_sandbox: bool,
}

impl ShellArgs {
    /// The policy configuration: the config file (if any), then the flags on top.
    pub fn config(&self) -> bastion_policy::Result<PolicyConfig> {
        let mut config = self.common.load()?;
        if let Some(profile) = &self.profile {
            config.shell.profile = profile.clone();
        }
        config.shell.allow_degraded |= self.allow_degraded_sandbox;
        Ok(config)
    }
}

/// Runs the server on stdin/stdout until the client disconnects. Logs go to stderr.
pub async fn run_stdio(args: ShellArgs) -> anyhow::Result<()> {
    let config = args.config().map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let shell = config.shell.clone();
    let policy = Policy::new(config).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    // Before the sandbox probe, so they are printed even when the profile is refused.
    bastion_server_kit::print_warnings("bastion-shell", &policy);
    let server = ShellServer::new(policy, shell).await.map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let status = server.sandbox_status().clone();
    let roots = bastion_server_kit::root_paths(server.policy());
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
    bastion_server_kit::run_stdio(server).await
}
