//! Command line of `bastion-git` (also `bastion git`).

use std::path::PathBuf;
use std::sync::Arc;

use bastion_policy::{GitConfig, Policy, PolicyConfig, Tier};
use rmcp::ServiceExt;

use crate::GitServer;

/// `bastion-git`: the git MCP server over stdio. Read-only unless told otherwise.
#[derive(Debug, Clone, clap::Args)]
pub struct GitArgs {
    /// A directory the server may touch (repeatable); repositories are found only beneath roots.
    #[arg(long = "root", value_name = "DIR")]
    pub roots: Vec<PathBuf>,
    /// Offer the write tools (git_add, git_unstage, git_commit, git_create_branch, git_switch,
    /// git_stash_push).
    #[arg(long)]
    pub allow_write: bool,
    /// Offer git_restore, git_reset and git_delete_branch too (implies --allow-write).
    #[arg(long)]
    pub allow_destructive: bool,
    /// A TOML policy file (roots, max_tier, deny globs, limits, audit_log, [git] author).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Append a JSON-lines audit journal of every call to FILE.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Allow a root that is or contains the home directory or a .ssh directory.
    #[arg(long)]
    pub allow_broad_roots: bool,
}

impl GitArgs {
    /// The configuration: the config file (if any), then the flags on top.
    pub fn config(&self) -> bastion_policy::Result<PolicyConfig> {
        let mut config = match &self.config {
            Some(path) => PolicyConfig::load(path)?,
            None => PolicyConfig::default(),
        };
        config.roots.extend(self.roots.iter().cloned());
        if self.allow_destructive {
            config.max_tier = config.max_tier.max(Tier::Destructive);
        } else if self.allow_write {
            config.max_tier = config.max_tier.max(Tier::Write);
        }
        // No git tool runs programs: exec is meaningless here and is capped away.
        config.max_tier = config.max_tier.min(Tier::Destructive);
        if self.audit_log.is_some() {
            config.audit_log = self.audit_log.clone();
        }
        config.allow_broad_roots |= self.allow_broad_roots;
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
