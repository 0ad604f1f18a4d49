//! Command line of `bastion-git` (also `bastion git`).

use std::sync::Arc;

use bastion_policy::{GitConfig, Policy, PolicyConfig, Tier};
use rmcp::ServiceExt;

use crate::GitServer;

/// `bastion-git`: the git MCP server over stdio. Read-only unless told otherwise.
#[derive(Debug, Clone, clap::Args)]
pub struct GitArgs {
    /// Roots (repositories are found only beneath them), config file, audit journal.
    #[command(flatten)]
    pub common: bastion_server_kit::CommonArgs,
    /// Offer the write tools (git_add, git_unstage, git_commit, git_create_branch, git_switch,
    /// git_stash_push).
    #[arg(long)]
    pub allow_write: bool,
    /// Offer git_restore, git_reset and git_delete_branch too (implies --allow-write).
    #[arg(long)]
    pub allow_destructive: bool,
}

impl GitArgs {
    /// The configuration: the config file (if any), then the flags on top.
    pub fn config(&self) -> bastion_policy::Result<PolicyConfig> {
        let mut config = self.common.load()?;
        if self.allow_destructive {
            config.max_tier = config.max_tier.max(Tier::Destructive);
        } else if self.allow_write {
            config.max_tier = config.max_tier.max(Tier::Write);
        }
        // No git tool runs programs: exec is meaningless here and is capped away.
        config.max_tier = config.max_tier.min(Tier::Destructive);
        Ok(config)
    }

    /// Builds the policy and the git settings.
    pub fn policy(&self) -> bastion_policy::Result<(Policy, GitConfig)> {
        let config = self.config()?;
        let git = config.git.clone();
        Ok((Policy::new(config)?, git))
    }
}

/// Runs the server on stdin/stdout until the client disconnects. Logs go to stderr.
pub async fn run_stdio(args: GitArgs) -> anyhow::Result<()> {
    crate::harden_libgit2();
    let (policy, git) = match args.policy() {
        Ok(p) => p,
        Err(e) => anyhow::bail!("{}", e.message),
    };
    for w in &policy.warnings {
        eprintln!("bastion-git: {w}");
    }
    let roots: Vec<String> = policy.roots().iter().map(|r| r.real_path().display().to_string()).collect();
    tracing::info!(?roots, max_tier = %policy.max_tier, "bastion-git starting");
    policy.audit.event("git", "start", serde_json::json!({"roots": roots, "max_tier": policy.max_tier}));
    let server = GitServer::new(Arc::new(policy), git);
    let running = server.serve(bastion_server_kit::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
