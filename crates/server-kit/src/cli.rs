//! Command-line arguments every server takes.

use std::path::PathBuf;

use bastion_policy::PolicyConfig;

/// `--root`, `--config`, `--audit-log`, `--allow-broad-roots`: flattened into each server's
/// arguments (`#[command(flatten)]`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// A directory the server may touch (repeatable). Relative paths resolve against the first.
    #[arg(long = "root", value_name = "DIR")]
    pub roots: Vec<PathBuf>,
    /// A TOML policy file (roots, max_tier, deny globs, limits, audit_log, [git], [shell]).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Append a JSON-lines audit journal of every call to FILE.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Allow a root that is or contains the home directory or a .ssh directory.
    #[arg(long)]
    pub allow_broad_roots: bool,
    /// A path no tool may touch (repeatable): the hub passes its own state to its children.
    #[arg(long = "protect", value_name = "PATH", hide = true)]
    pub protect: Vec<PathBuf>,
}

impl CommonArgs {
    /// The config file (if any) with these flags on top.
    pub fn load(&self) -> bastion_policy::Result<PolicyConfig> {
        let mut config = match &self.config {
            Some(path) => PolicyConfig::load(path)?,
            None => PolicyConfig::default(),
        };
        config.roots.extend(self.roots.iter().cloned());
        if self.audit_log.is_some() {
            config.audit_log = self.audit_log.clone();
        }
        config.allow_broad_roots |= self.allow_broad_roots;
        // Bastion's own state: what the hub passed, this server's config file and the default
        // state directory (the audit journal and the binary are added by `Policy::new`).
        config.protect.extend(self.protect.iter().cloned());
        config.protect.extend(self.config.iter().cloned());
        config.protect.extend(bastion_policy::state::default_state_dir());
        Ok(config)
    }
}
