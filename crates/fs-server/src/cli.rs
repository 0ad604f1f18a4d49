//! Command line of `bastion-fs` (also `bastion fs`).

use std::path::PathBuf;
use std::sync::Arc;

use bastion_policy::{Policy, PolicyConfig, Tier};
use rmcp::ServiceExt;

use crate::FsServer;

/// `bastion-fs`: the filesystem MCP server over stdio. Read-only unless told otherwise.
#[derive(Debug, Clone, clap::Args)]
pub struct FsArgs {
    /// A directory the server may touch (repeatable). Relative paths resolve against the first.
    #[arg(long = "root", value_name = "DIR")]
    pub roots: Vec<PathBuf>,
    /// Offer the write tools (write_file, edit_file, apply_patch, create_directory, move_path).
    #[arg(long)]
    pub allow_write: bool,
    /// Offer delete_path too (implies --allow-write).
    #[arg(long)]
    pub allow_destructive: bool,
    /// A TOML policy file (roots, max_tier, deny globs, limits, audit_log).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Append a JSON-lines audit journal of every call to FILE.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Allow a root that is or contains the home directory or a .ssh directory.
    #[arg(long)]
    pub allow_broad_roots: bool,
}

impl FsArgs {
    /// Builds the policy: the config file (if any), then the flags on top.
    pub fn policy(&self) -> bastion_policy::Result<Policy> {
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
        config.max_tier = config.max_tier.min(Tier::Destructive);
        if self.audit_log.is_some() {
            config.audit_log = self.audit_log.clone();
        }
        config.allow_broad_roots |= self.allow_broad_roots;
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
