//! Command line of `bastion-host` (also `bastion host`).

use std::path::PathBuf;

use bastion_policy::{Policy, PolicyConfig, Tier};

use crate::HostServer;

/// `bastion-host`: host inspection, and allowlisted service actions, over stdio.
#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    /// Config file (with an [ops] table), audit journal, state directory. The host server takes
    /// no roots: it reads the machine, not a project.
    #[command(flatten)]
    pub common: bastion_server_kit::CommonArgs,
    /// Offer the operate tier: service_action (start, stop, restart, reload) for the units of
    /// [ops] units, and container_action when [ops] container_restart is on. Each call asks the
    /// person first unless an approval rule says otherwise.
    #[arg(long)]
    pub allow_operate: bool,
}

impl HostArgs {
    /// The policy configuration: the config file (if any), then the flags on top.
    pub fn config(&self) -> bastion_policy::Result<PolicyConfig> {
        let mut config = self.common.load()?;
        if self.allow_operate {
            config.max_tier = config.max_tier.max(Tier::Exec);
        } else {
            config.max_tier = Tier::Read;
        }
        Ok(config)
    }

    /// Where the overview snapshots are kept: `--state-dir`, else the default state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.common
            .state_dir
            .clone()
            .or_else(bastion_policy::state::default_state_dir)
            .unwrap_or_else(|| std::env::temp_dir().join("bastion-state"))
    }
}

/// Runs the server on stdin/stdout until the client disconnects. Logs go to stderr.
pub async fn run_stdio(args: HostArgs) -> anyhow::Result<()> {
    let config = args.config().map_err(|e| anyhow::anyhow!("{}", e.message))?;
    if !config.roots.is_empty() {
        anyhow::bail!("bastion-host takes no --root: it inspects the machine, not a project");
    }
    let ops = config.ops.clone();
    let policy = Policy::without_roots(config).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    bastion_server_kit::print_warnings("bastion-host", &policy);
    let server =
        HostServer::new(policy, &ops, &args.state_dir()).await.map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let status = server.sandbox_status().clone();
    tracing::info!(
        landlock = %status.landlock,
        seccomp = status.seccomp,
        userns = status.userns,
        operate = server.policy().max_tier == Tier::Exec,
        units = ?ops.units,
        "bastion-host starting"
    );
    if !status.landlock_active() || !status.seccomp {
        eprintln!(
            "bastion-host: warning: the sandbox is incomplete here (landlock: {}, seccomp: {}): {}",
            status.landlock,
            status.seccomp,
            status.notes.join("; ")
        );
    }
    server.policy().audit.event(
        "host",
        "start",
        serde_json::json!({"sandbox": status, "operate": server.policy().max_tier == Tier::Exec, "units": ops.units,
            "containers": ops.containers}),
    );
    bastion_server_kit::run_stdio(server).await
}
