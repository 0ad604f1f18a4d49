//! Command line of `bastion-fs` (also `bastion fs`).

use std::sync::Arc;

use bastion_policy::{Policy, Tier};
use rmcp::ServiceExt;

use crate::FsServer;

/// `bastion-fs`: the filesystem MCP server over stdio. Read-only unless told otherwise.
#[derive(Debug, Clone, clap::Args)]
pub struct FsArgs {
    /// Roots, config file, audit journal.
    #[command(flatten)]
    pub common: bastion_server_kit::CommonArgs,
    /// Offer the write tools (write_file, edit_file, apply_patch, create_directory, move_path).
    #[arg(long)]
    pub allow_write: bool,
    /// Offer delete_path too (implies --allow-write).
    #[arg(long)]
    pub allow_destructive: bool,
}

impl FsArgs {
    /// Builds the policy: the config file (if any), then the flags on top.
    pub fn policy(&self) -> bastion_policy::Result<Policy> {
        let mut config = self.common.load()?;
        if self.allow_destructive {
            config.max_tier = config.max_tier.max(Tier::Destructive);
        } else if self.allow_write {
            config.max_tier = config.max_tier.max(Tier::Write);
        }
        config.max_tier = config.max_tier.min(Tier::Destructive);
        Policy::new(config)
    }
}

/// Runs the server on stdin/stdout until the client disconnects. Logs go to stderr.
pub async fn run_stdio(args: FsArgs) -> anyhow::Result<()> {
    let policy = match args.policy() {
        Ok(p) => p,
        Err(e) => anyhow::bail!("{}", e.message),
    };
    for w in &policy.warnings {
        eprintln!("bastion-fs: {w}");
    }
    let roots: Vec<String> = policy.roots().iter().map(|r| r.real_path().display().to_string()).collect();
    let openat2 = bastion_policy::resolve::openat2_available();
    tracing::info!(?roots, max_tier = %policy.max_tier, openat2, "bastion-fs starting");
    policy.audit.event(
        "fs",
        "start",
        serde_json::json!({"roots": roots, "max_tier": policy.max_tier, "openat2": openat2}),
    );
    let server = FsServer::new(Arc::new(policy));
    let running = server.serve(bastion_server_kit::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
