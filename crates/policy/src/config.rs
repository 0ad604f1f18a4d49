//! The policy configuration: TOML, validated into a [`Policy`](crate::Policy).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::deny::{DEFAULT_DENY, DEFAULT_DENY_WRITE};
use crate::error::{Error, ErrorCode, Result};
use crate::limits::Limits;
use crate::resolve::ResolveMode;
use crate::tier::Tier;

/// What a server may touch and do. Every field has a safe default: no roots, read-only.
///
/// ```toml
/// roots = ["/home/me/project"]
/// max_tier = "write"            # read | write | destructive
/// audit_log = "/home/me/.local/state/bastion/fs-audit.jsonl"
///
/// [deny]
/// extra_read = ["*.sqlite"]     # added to the built-in secret list
///
/// [limits]
/// output_chars = 50000
///
/// [[limits.tool]]             # see bastion_policy::ratelimit
/// tool = "run_*"
/// requests_per_second = 2
/// burst = 10
///
/// [journal]                   # see bastion_policy::audit::Rotation
/// compress = true
///
/// [approval]                  # see bastion_policy::approval
/// approval_timeout = "5m"
///
/// [[approval.rule]]
/// tool = "delete_*"
/// action = "ask"
/// [redact]
/// disabled = ["jwt"]            # secrets in output are redacted by default; see bastion_policy::redact
///
/// [git]
/// author_name = "Build Bot"     # commits made by bastion-git use this identity
/// author_email = "bot@example.com"
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Directories the server may touch.
    pub roots: Vec<PathBuf>,
    /// Highest tier of tool offered.
    pub max_tier: Tier,
    /// Allow roots that are very broad (the home directory, a directory holding `.ssh`). `/` is
    /// never allowed.
    pub allow_broad_roots: bool,
    /// Where the audit journal is appended (JSON lines). None: no journal (a server's command
    /// line makes it `STATE_DIR/NAME-audit.jsonl` unless told otherwise).
    pub audit_log: Option<PathBuf>,
    /// When the journal rotates and whether rotated files are compressed (`[journal]`).
    pub journal: crate::audit::Rotation,
    /// Path resolution strategy (`auto` uses `openat2`; `walk` forces the portable fallback).
    pub resolve: ResolveMode,
    /// Deny globs.
    pub deny: DenyConfig,
    /// Output and size limits.
    pub limits: Limits,
    /// Settings of the git server.
    pub git: GitConfig,
    /// Settings of the shell server: profile, extra programs, sandbox and limits.
    pub shell: crate::commands::ShellConfig,
    /// Approval rules (`[approval]`, `[[approval.rule]]`): which calls the person decides.
    pub approval: crate::approval::ApprovalConfig,
    /// Settings of the host server (`[ops]`): the units it may act on, container access.
    pub ops: crate::commands::OpsConfig,
    /// Bastion's own state, refused to every tool: filled at start from the command line (the
    /// state directory, the configuration files loaded), never read from a file a tool could
    /// write.
    #[serde(skip)]
    pub protect: Vec<PathBuf>,
    /// Redaction of secrets in tool output.
    pub redact: crate::redact::RedactConfig,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            roots: Vec::new(),
            max_tier: Tier::Read,
            allow_broad_roots: false,
            audit_log: None,
            journal: crate::audit::Rotation::default(),
            resolve: ResolveMode::Auto,
            deny: DenyConfig::default(),
            limits: Limits::default(),
            git: GitConfig::default(),
            shell: crate::commands::ShellConfig::default(),
            approval: crate::approval::ApprovalConfig::default(),
            ops: crate::commands::OpsConfig::default(),
            protect: Vec::new(),
            redact: crate::redact::RedactConfig::default(),
        }
    }
}

/// Settings of the git server (`[git]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitConfig {
    /// Author and committer name of commits, instead of the repository's `user.name`.
    pub author_name: Option<String>,
    /// Author and committer email of commits, instead of the repository's `user.email`.
    pub author_email: Option<String>,
}

/// Deny-glob configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenyConfig {
    /// Replaces the built-in read+write deny list when set.
    pub read: Option<Vec<String>>,
    /// Added to the read+write deny list.
    pub extra_read: Vec<String>,
    /// Replaces the built-in write-only deny list (`.git/**`) when set.
    pub write: Option<Vec<String>>,
    /// Added to the write-only deny list.
    pub extra_write: Vec<String>,
}

impl DenyConfig {
    /// The effective read+write list.
    pub fn read_list(&self) -> Vec<String> {
        let mut v: Vec<String> = match &self.read {
            Some(list) => list.clone(),
            None => DEFAULT_DENY.iter().map(|s| s.to_string()).collect(),
        };
        v.extend(self.extra_read.iter().cloned());
        v
    }

    /// The effective write-only list.
    pub fn write_list(&self) -> Vec<String> {
        let mut v: Vec<String> = match &self.write {
            Some(list) => list.clone(),
            None => DEFAULT_DENY_WRITE.iter().map(|s| s.to_string()).collect(),
        };
        v.extend(self.extra_write.iter().cloned());
        v
    }
}

impl PolicyConfig {
    /// Parses TOML. Errors name the offending key and line.
    pub fn from_toml(text: &str, source: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::new(ErrorCode::InvalidConfig, format!("{source}: {e}")))
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::new(ErrorCode::InvalidConfig, format!("cannot read config file {shown}: {e}")))?;
        Self::from_toml(&text, &shown)
    }

    /// Checks the roots: they must exist and be directories; `/` is refused; the home directory,
    /// anything containing it, and directories holding `.ssh` are refused unless
    /// `allow_broad_roots`, and then returned as warnings to print loudly.
    pub fn check_roots(&self) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        if self.roots.is_empty() {
            return Err(Error::new(
                ErrorCode::InvalidConfig,
                "roots: at least one root is required (--root DIR or roots = [\"DIR\"])",
            ));
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).and_then(|h| std::fs::canonicalize(h).ok());
        for (i, root) in self.roots.iter().enumerate() {
            let key = format!("roots[{i}] ({})", root.display());
            let real = std::fs::canonicalize(root)
                .map_err(|e| Error::new(ErrorCode::InvalidConfig, format!("{key}: cannot open: {e}")))?;
            if !real.is_dir() {
                return Err(Error::new(ErrorCode::InvalidConfig, format!("{key}: not a directory")));
            }
            if real == Path::new("/") {
                return Err(Error::new(
                    ErrorCode::InvalidConfig,
                    format!("{key}: the filesystem root '/' can never be a root; name the project directory instead"),
                ));
            }
            let mut broad = Vec::new();
            if let Some(h) = &home
                && h.starts_with(&real)
            {
                broad.push("is or contains the home directory");
            }
            if real.join(".ssh").exists() {
                broad.push("contains a .ssh directory");
            }
            if !broad.is_empty() {
                let why = broad.join(" and ");
                if !self.allow_broad_roots {
                    return Err(Error::new(
                        ErrorCode::InvalidConfig,
                        format!(
                            "{key}: {why}; name a project directory instead, or set allow_broad_roots = true (--allow-broad-roots) if you really mean it"
                        ),
                    ));
                }
                warnings.push(format!(
                    "WARNING: {key} {why}; the deny list is all that stands between the model and your keys"
                ));
            }
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let err = PolicyConfig::from_toml("roots = [\"/tmp\"]\nmax_teir = \"write\"\n", "bastion.toml").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidConfig);
        assert!(err.message.contains("max_teir"), "{}", err.message);
        let err = PolicyConfig::from_toml("[limits]\noutput_char = 5\n", "bastion.toml").unwrap_err();
        assert!(err.message.contains("output_char"), "{}", err.message);
        let err = PolicyConfig::from_toml("[git]\nauthor = \"x\"\n", "bastion.toml").unwrap_err();
        assert!(err.message.contains("author"), "{}", err.message);
        let err = PolicyConfig::from_toml("max_tier = \"root\"\n", "bastion.toml").unwrap_err();
        assert!(err.message.contains("max_tier"), "{}", err.message);
    }

    #[test]
    fn parses_a_full_config() {
        let c = PolicyConfig::from_toml(
            "roots = [\"/srv/p\"]\nmax_tier = \"destructive\"\n[deny]\nextra_read = [\"*.db\"]\n[limits]\noutput_chars = 10\n[git]\nauthor_name = \"Bot\"\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.max_tier, Tier::Destructive);
        assert_eq!(c.limits.output_chars, 10);
        assert_eq!(c.git.author_name.as_deref(), Some("Bot"));
        assert_eq!(c.git.author_email, None);
        assert!(c.deny.read_list().contains(&"*.db".to_string()));
        assert!(c.deny.read_list().contains(&".env".to_string()));
    }

    #[test]
    fn parses_the_approval_section() {
        let c = PolicyConfig::from_toml(
            "[approval]\nmode = \"return\"\napproval_timeout = \"90s\"\n[[approval.rule]]\ntool = \"delete_*\"\naction = \"deny\"\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.approval.mode, crate::approval::Mode::Return);
        assert_eq!(c.approval.approval_timeout, std::time::Duration::from_secs(90));
        assert_eq!(c.approval.rules.len(), 1);
        let err = PolicyConfig::from_toml("[[approval.rule]]\naction = \"perhaps\"\n", "bastion.toml").unwrap_err();
        assert!(err.message.contains("perhaps"), "{}", err.message);
        assert!(PolicyConfig::default().approval.defaults);
    }

    #[test]
    fn refuses_slash_and_home() {
        let c = PolicyConfig { roots: vec![PathBuf::from("/")], ..Default::default() };
        assert_eq!(c.check_roots().unwrap_err().code, ErrorCode::InvalidConfig);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".ssh")).unwrap();
        let mut c = PolicyConfig { roots: vec![dir.path().to_path_buf()], ..Default::default() };
        assert!(c.check_roots().unwrap_err().message.contains(".ssh"));
        c.allow_broad_roots = true;
        assert_eq!(c.check_roots().unwrap().len(), 1);
    }
}
