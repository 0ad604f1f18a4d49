//! Command-line arguments every server takes.

use std::path::PathBuf;

use bastion_policy::{PolicyConfig, Tier};

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
    /// Append a JSON-lines audit journal of every call to FILE (default: NAME-audit.jsonl in
    /// the state directory, e.g. ~/.local/state/bastion/fs-audit.jsonl).
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// No journal unless --audit-log or the config file names one: the hub passes this to its
    /// built-in children, since it journals every call at its own layer.
    #[arg(long, hide = true)]
    pub no_journal: bool,
    /// Allow a root that is or contains the home directory or a .ssh directory.
    #[arg(long)]
    pub allow_broad_roots: bool,
    /// Where the control socket for approvals, mode and pause is made (default: the hub's,
    /// $XDG_STATE_HOME/bastion or ~/.local/state/bastion).
    #[arg(long, value_name = "DIR", env = "BASTION_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// No approvals, mode or pause here: the hub passes this to its built-in children, since it
    /// decides at its own layer.
    #[arg(long)]
    pub no_approvals: bool,
    /// A path no tool may touch (repeatable): the hub passes its own state to its children.
    #[arg(long = "protect", value_name = "PATH", hide = true)]
    pub protect: Vec<PathBuf>,
    /// Serve each tool's output schema in tools/list (structured results are returned either way).
    #[arg(long)]
    pub output_schemas: bool,
}

impl CommonArgs {
    /// The config file (if any) with these flags on top.
    pub fn load(&self) -> bastion_policy::Result<PolicyConfig> {
        crate::compact::set_output_schemas(self.output_schemas);
        let mut config = match &self.config {
            Some(path) => PolicyConfig::load(path)?,
            None => PolicyConfig::default(),
        };
        config.roots.extend(self.roots.iter().cloned());
        if self.audit_log.is_some() {
            config.audit_log = self.audit_log.clone();
        }
        if config.audit_log.is_none() && !self.no_journal {
            config.audit_log = default_journal(self.state_dir.as_deref(), &crate::approvals::process_name());
        }
        config.allow_broad_roots |= self.allow_broad_roots;
        // Bastion's own state: what the hub passed, this server's config file and the default
        // state directory (the audit journal and the binary are added by `Policy::new`).
        config.protect.extend(self.protect.iter().cloned());
        config.protect.extend(self.config.iter().cloned());
        config.protect.extend(bastion_policy::state::default_state_dir());
        config.protect.extend(self.state_dir.iter().cloned());
        if !self.no_approvals {
            crate::approvals::start(&config, &crate::approvals::process_name(), self.state_dir.as_deref());
        }
        Ok(config)
    }
}

/// The journal a server keeps when nothing names one: `NAME-audit.jsonl` in `state_dir` (else
/// the default state directory), which is created private (0700) if missing. A state directory
/// that cannot be made, or that another user could write to, leaves the server without a
/// journal and says so on stderr: a journal is not worth refusing to serve, and a journal in a
/// directory others control is not one to trust.
fn default_journal(state_dir: Option<&std::path::Path>, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = state_dir.map(PathBuf::from).or_else(bastion_policy::state::default_state_dir)?;
    let made = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| e.to_string());
    match made.and_then(|()| bastion_policy::state::check_private(&dir).map_err(|e| e.message)) {
        Ok(()) => Some(dir.join(format!("{name}-audit.jsonl"))),
        Err(why) => {
            tracing::warn!(dir = %dir.display(), %why, "no audit journal: the state directory is not usable (pass --audit-log FILE)");
            None
        }
    }
}

/// `--allow-write` and `--allow-destructive`: the tier flags of the servers whose tools are
/// tiered read / write / destructive (fs, git), flattened into their arguments. A server
/// rewords the help to name its own tools with clap's `mut_arg`.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct TierArgs {
    /// Offer the write tools.
    #[arg(long)]
    pub allow_write: bool,
    /// Offer the destructive tools too (implies --allow-write).
    #[arg(long)]
    pub allow_destructive: bool,
}

impl TierArgs {
    /// Raises `config`'s tier cap to what the flags ask for, then caps it at
    /// [`Tier::Destructive`]: these servers run no programs, so `exec` means nothing to them.
    pub fn apply(&self, config: &mut PolicyConfig) {
        if self.allow_destructive {
            config.max_tier = config.max_tier.max(Tier::Destructive);
        } else if self.allow_write {
            config.max_tier = config.max_tier.max(Tier::Write);
        }
        config.max_tier = config.max_tier.min(Tier::Destructive);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_journal_is_private_in_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/state");
        assert_eq!(default_journal(Some(&state), "fs"), Some(state.join("fs-audit.jsonl")));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
        // A directory others may write to is not trusted with the journal.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(default_journal(Some(&open), "fs"), None);
        // Flags: --audit-log wins, --no-journal leaves none, nothing given picks the default.
        let args = |extra: CommonArgs| CommonArgs { state_dir: Some(state.clone()), no_approvals: true, ..extra };
        let none = args(CommonArgs { no_journal: true, ..Default::default() }).load().unwrap();
        assert_eq!(none.audit_log, None);
        let named = dir.path().join("x.jsonl");
        let given = args(CommonArgs { audit_log: Some(named.clone()), no_journal: true, ..Default::default() });
        assert_eq!(given.load().unwrap().audit_log, Some(named));
        let default = args(CommonArgs::default()).load().unwrap();
        assert!(default.audit_log.unwrap().starts_with(&state));
    }

    #[test]
    fn tier_flags_raise_the_cap_and_never_past_destructive() {
        // (allow_write, allow_destructive, max_tier in the config file, expected)
        let table = [
            (false, false, Tier::Read, Tier::Read),
            (true, false, Tier::Read, Tier::Write),
            (false, true, Tier::Read, Tier::Destructive),
            (true, true, Tier::Read, Tier::Destructive),
            (false, false, Tier::Write, Tier::Write),
            (true, false, Tier::Destructive, Tier::Destructive),
            (false, false, Tier::Exec, Tier::Destructive),
            (true, true, Tier::Exec, Tier::Destructive),
        ];
        for (allow_write, allow_destructive, configured, want) in table {
            let mut config = PolicyConfig { max_tier: configured, ..Default::default() };
            TierArgs { allow_write, allow_destructive }.apply(&mut config);
            assert_eq!(
                config.max_tier, want,
                "write={allow_write} destructive={allow_destructive} config={configured:?}"
            );
        }
    }
}
