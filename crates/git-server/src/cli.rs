//! Command line of `bastion-git` (also `bastion git`).

use std::sync::Arc;

use bastion_policy::{GitConfig, Policy, PolicyConfig};
use bastion_server_kit::{CommonArgs, TierArgs};

use crate::GitServer;

/// `bastion-git`: the git MCP server over stdio. Read-only unless told otherwise.
#[derive(Debug, Clone, clap::Args)]
#[command(
    mut_arg("allow_write", |a| a.help(
        "Offer the write tools (add, unstage, commit, create_branch, switch, stash_push)"
    )),
    mut_arg("allow_destructive", |a| a.help(
        "Offer restore, reset and delete_branch too (implies --allow-write)"
    )),
)]
pub struct GitArgs {
    /// Roots (repositories are found only beneath them), config file, audit journal.
    #[command(flatten)]
    pub common: CommonArgs,
    /// `--allow-write`, `--allow-destructive` (no git tool runs programs: `exec` is capped away).
    #[command(flatten)]
    pub tiers: TierArgs,
}

impl GitArgs {
    /// The configuration: the config file (if any), then the flags on top.
    pub fn config(&self) -> bastion_policy::Result<PolicyConfig> {
        let mut config = self.common.load()?;
        self.tiers.apply(&mut config);
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
    bastion_server_kit::print_warnings("bastion-git", &policy);
    let roots = bastion_server_kit::root_paths(&policy);
    tracing::info!(?roots, max_tier = %policy.max_tier, "bastion-git starting");
    policy.audit.event("git", "start", serde_json::json!({"roots": roots, "max_tier": policy.max_tier}));
    bastion_server_kit::run_stdio(GitServer::new(Arc::new(policy), git)).await
}

#[cfg(test)]
mod tests {
    use clap::Args;

    use super::*;

    #[test]
    fn tier_flags_name_this_servers_tools() {
        let command = GitArgs::augment_args(clap::Command::new("t"));
        let help = |id: &str| {
            command.get_arguments().find(|a| a.get_id() == id).and_then(|a| a.get_help()).map(|h| h.to_string())
        };
        assert!(help("allow_write").is_some_and(|h| h.contains("create_branch")), "{:?}", help("allow_write"));
        assert!(help("allow_destructive").is_some_and(|h| h.contains("implies --allow-write")));
    }
}
