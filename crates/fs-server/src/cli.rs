//! Command line of `bastion-fs` (also `bastion fs`).

use std::sync::Arc;

use bastion_policy::Policy;
use bastion_server_kit::{CommonArgs, TierArgs};

use crate::FsServer;

/// `bastion-fs`: the filesystem MCP server over stdio. Read-only unless told otherwise.
#[derive(Debug, Clone, clap::Args)]
#[command(
    mut_arg("allow_write", |a| a.help("Offer the write tools (write_file, edit_file, apply_patch, create_directory, move_path)")),
    mut_arg("allow_destructive", |a| a.help("Offer delete_path too (implies --allow-write)")),
)]
pub struct FsArgs {
    /// Roots, config file, audit journal.
    #[command(flatten)]
    pub common: CommonArgs,
    /// `--allow-write`, `--allow-destructive`.
    #[command(flatten)]
    pub tiers: TierArgs,
}

impl FsArgs {
    /// Builds the policy: the config file (if any), then the flags on top.
    pub fn policy(&self) -> bastion_policy::Result<Policy> {
        let mut config = self.common.load()?;
        self.tiers.apply(&mut config);
        Policy::new(config)
    }
}

/// Runs the server on stdin/stdout until the client disconnects. Logs go to stderr.
pub async fn run_stdio(args: FsArgs) -> anyhow::Result<()> {
    let policy = match args.policy() {
        Ok(p) => p,
        Err(e) => anyhow::bail!("{}", e.message),
    };
    bastion_server_kit::print_warnings("bastion-fs", &policy);
    let roots = bastion_server_kit::root_paths(&policy);
    let openat2 = bastion_policy::resolve::openat2_available();
    tracing::info!(?roots, max_tier = %policy.max_tier, openat2, "bastion-fs starting");
    policy.audit.event(
        "fs",
        "start",
        serde_json::json!({"roots": roots, "max_tier": policy.max_tier, "openat2": openat2}),
    );
    bastion_server_kit::run_stdio(FsServer::new(Arc::new(policy))).await
}

#[cfg(test)]
mod tests {
    use clap::Args;

    use super::*;

    #[test]
    fn tier_flags_name_this_servers_tools() {
        let command = FsArgs::augment_args(clap::Command::new("t"));
        let help = |id: &str| {
            command.get_arguments().find(|a| a.get_id() == id).and_then(|a| a.get_help()).map(|h| h.to_string())
        };
        assert!(help("allow_write").is_some_and(|h| h.contains("write_file")), "{:?}", help("allow_write"));
        assert!(help("allow_destructive").is_some_and(|h| h.contains("implies --allow-write")));
    }
}
