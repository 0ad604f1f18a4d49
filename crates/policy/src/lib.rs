//! `bastion-policy` is the one policy engine every Bastion server and the hub share. It holds no
//! MCP types: it decides which paths exist for a tool, what may be read or written, how much a
//! result may say, and what gets journaled.
//!
//! The central promise: every path is resolved by the kernel *beneath* a root directory handle
//! (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`), so `..`, absolute paths, symlinks
//! leading out and check-then-use races are closed by construction, and the deny globs are matched
//! on the real path of what was opened.
//!
//! ```
//! use bastion_policy::{Policy, PolicyConfig};
//!
//! let project = tempfile::tempdir().expect("a temporary directory");
//! std::fs::create_dir(project.path().join("src")).expect("src/");
//! std::fs::write(project.path().join("src/main.rs"), "fn main() {}\n").expect("src/main.rs");
//! let config = PolicyConfig { roots: vec![project.path().into()], ..Default::default() };
//! let policy = Policy::new(config).expect("valid policy");
//! let roots = policy.roots();
//! let target = roots.target("src/main.rs", None).expect("inside the root");
//! let file = roots.open_file(&target, &policy.deny).expect("readable");
//! assert_eq!(file.stat.st_size, 13);
//! assert!(roots.target("../elsewhere", None).is_err());
//! ```
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod approval;
pub mod audit;
pub mod commands;
pub mod config;
pub mod deny;
pub mod error;
pub mod limits;
pub mod path;
pub mod protect;
pub mod ratelimit;
pub mod redact;
pub mod resolve;
pub mod roots;
pub mod state;
pub mod tier;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub use approval::{ApprovalConfig, ApprovalRules};
pub use audit::AuditLog;
pub use config::{DenyConfig, GitConfig, PolicyConfig};
pub use deny::{Access, DenyRules};
pub use error::{Error, ErrorCode, Result};
pub use limits::Limits;
pub use path::RelPath;
pub use protect::Protected;
pub use redact::{RedactConfig, Redactor};
pub use resolve::ResolveMode;
pub use roots::{CreateMode, EntryKind, OpenedDir, OpenedFile, ParentDir, Root, Roots, Target};
pub use tier::Tier;

/// A server's policy: roots, deny globs, tier cap, limits and audit journal.
#[derive(Debug)]
pub struct Policy {
    configured: Arc<Roots>,
    effective: RwLock<Arc<Roots>>,
    /// Deny globs.
    pub deny: DenyRules,
    /// Highest tier offered.
    pub max_tier: Tier,
    /// Limits.
    pub limits: Limits,
    /// The per-tool rate limits of `limits.tool`, with their buckets.
    pub rates: ratelimit::RateLimiter,
    /// The journal.
    pub audit: AuditLog,
    /// Secret redaction of tool output (`[redact]`).
    pub redactor: Redactor,
    /// Warnings produced while building (broad roots), for the binary to print.
    pub warnings: Vec<String>,
    /// Approval rules (which calls the person decides).
    pub approval: ApprovalRules,
    /// The `[approval]` section as configured, for the runtime that enforces it.
    pub approval_config: ApprovalConfig,
}

impl Policy {
    /// Validates the configuration and opens the roots.
    ///
    /// Bastion's own state is protected from the start: `config.protect`, the audit journal and
    /// the running binary.
    pub fn new(config: PolicyConfig) -> Result<Self> {
        let warnings = config.check_roots()?;
        Self::build(config, warnings)
    }

    /// A policy without roots, for a server that touches no project files (the host server):
    /// every path is refused, and the rest (tier cap, limits, journal, redaction, approvals,
    /// protected state) is as [`Policy::new`] builds it. Roots in `config` are an error.
    pub fn without_roots(config: PolicyConfig) -> Result<Self> {
        if !config.roots.is_empty() {
            return Err(Error::new(ErrorCode::InvalidConfig, "roots: this server takes no roots"));
        }
        Self::build(config, Vec::new())
    }

    fn build(config: PolicyConfig, warnings: Vec<String>) -> Result<Self> {
        let mut own: Vec<PathBuf> = config.protect.clone();
        own.extend(config.audit_log.iter().cloned());
        own.extend(protect::running_binary());
        // Compiled on the first path checked: most of start-up otherwise (see `new_lazy`).
        let deny = DenyRules::new_lazy(&config.deny.read_list(), &config.deny.write_list())?
            .with_protected(Protected::resolve(&own));
        let approval = ApprovalRules::new(&config.approval)?;
        let roots = Arc::new(Roots::open(&config.roots, config.resolve)?);
        let audit = match &config.audit_log {
            Some(path) => AuditLog::open_rotating(path, config.journal).map_err(|e| {
                Error::new(ErrorCode::InvalidConfig, format!("audit_log: cannot open {}: {e}", path.display()))
            })?,
            None => AuditLog::disabled(),
        };
        let redactor = Redactor::new(&config.redact)?;
        Ok(Policy {
            configured: roots.clone(),
            effective: RwLock::new(roots),
            deny,
            max_tier: config.max_tier,
            rates: ratelimit::RateLimiter::new(&config.limits.tool),
            limits: config.limits,
            audit,
            redactor,
            warnings,
            approval,
            approval_config: config.approval,
        })
    }

    /// Adds `paths` to Bastion's own state, refused to every tool (resolved to real paths now).
    pub fn protect<P: AsRef<Path>>(&mut self, paths: &[P]) {
        let mut set = self.deny.protected().clone();
        set.extend(paths);
        self.deny = self.deny.clone().with_protected(set);
    }

    /// Bastion's own state as this policy protects it.
    pub fn protected(&self) -> &Protected {
        self.deny.protected()
    }

    /// The roots in force now (configured, possibly narrowed by the client).
    pub fn roots(&self) -> Arc<Roots> {
        match self.effective.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Narrows the roots to those a client declared (MCP `roots/list`), never widening them.
    /// An empty declaration changes nothing. Returns notes for the log.
    pub fn narrow_to_client_roots(&self, client: &[(PathBuf, Option<String>)]) -> Vec<String> {
        if client.is_empty() {
            return Vec::new();
        }
        let (narrowed, notes) = self.configured.narrow(client);
        let narrowed = Arc::new(narrowed);
        match self.effective.write() {
            Ok(mut r) => *r = narrowed,
            Err(poisoned) => *poisoned.into_inner() = narrowed,
        }
        notes
    }

    /// Refuses new content larger than `limits.max_write_bytes` (`too_large`).
    pub fn check_write_size(&self, len: usize, shown: &str) -> Result<()> {
        let max = self.limits.max_write_bytes;
        if len as u64 > max {
            return Err(Error::new(
                ErrorCode::TooLarge,
                format!("the new content of '{shown}' is {len} bytes, above the {max}-byte write limit"),
            ));
        }
        Ok(())
    }

    /// Refuses a tool whose tier is above the cap.
    pub fn check_tier(&self, tool: &str, tier: Tier) -> Result<()> {
        if tier > self.max_tier {
            let flag = match tier {
                Tier::Write => "--allow-write",
                Tier::Destructive => "--allow-destructive",
                _ => "a higher max_tier",
            };
            return Err(Error::new(
                ErrorCode::TierNotAllowed,
                format!(
                    "{tool} is a {tier}-tier tool and this server is capped at {}; the operator must start it with {flag} to allow it",
                    self.max_tier
                ),
            ));
        }
        Ok(())
    }
}
