//! `bastion-git` is Bastion's git MCP server: status, diff, log, show, blame, branches, tags and
//! stashes to read; staging, commits, branches and stashes to write; restore, reset and branch
//! deletion as destructive tools. It works through libgit2 only — no `git` program is ever run,
//! so no hook, filter driver, external diff, pager, fsmonitor, alias or credential helper a
//! repository configures can execute, and no argument can be read as an option.
//!
//! Repositories are found only beneath the roots of `bastion-policy`: the `repo` argument is
//! resolved beneath a root like any path (no `..`, absolute path or symlink leads out), the
//! repository's git directory, common directory, work tree and object alternates must all lie
//! beneath that root, and libgit2's ownership check stays on. Every pathspec is resolved beneath
//! the work tree and matched literally; every revision goes through libgit2's revparse.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use bastion_git::GitServer;
//! use bastion_policy::{GitConfig, Policy, PolicyConfig};
//! use bastion_server_kit::BastionServer;
//! use rmcp::ServiceExt;
//!
//! bastion_git::harden_libgit2();
//! let policy = Policy::new(PolicyConfig { roots: vec!["/srv/project".into()], ..Default::default() })?;
//! let server = GitServer::new(Arc::new(policy), GitConfig::default());
//! server.into_handler().serve(rmcp::transport::stdio()).await?.waiting().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod repo;
mod text;
mod tools;

use std::sync::{Arc, Once};

use bastion_policy::{GitConfig, Policy, Tier};
use bastion_server_kit::{ToolSpec, ToolTable};
use rmcp::handler::server::router::tool::ToolRouter;

pub use bastion_server_kit::{BastionServer, Failure, error_result, init_logging};
pub use cli::{GitArgs, run_stdio};

/// Every tool this server offers, with its tier and title. The tier decides whether the tool is
/// offered, and its MCP annotations.
pub const TOOLS: ToolTable = ToolTable::new(
    "git",
    &[
        ToolSpec::new("status", Tier::Read, "Git status"),
        ToolSpec::new("diff", Tier::Read, "Git diff"),
        ToolSpec::new("log", Tier::Read, "Git log"),
        ToolSpec::new("show", Tier::Read, "Show commit"),
        ToolSpec::new("blame", Tier::Read, "Git blame"),
        ToolSpec::new("branches", Tier::Read, "List branches"),
        ToolSpec::new("tags", Tier::Read, "List tags"),
        ToolSpec::new("stash_list", Tier::Read, "List stashes"),
        ToolSpec::new("add", Tier::Write, "Stage changes").idempotent(),
        ToolSpec::new("unstage", Tier::Write, "Unstage changes").idempotent(),
        ToolSpec::new("commit", Tier::Write, "Commit staged changes"),
        ToolSpec::new("create_branch", Tier::Write, "Create branch"),
        ToolSpec::new("switch", Tier::Write, "Switch branch").idempotent(),
        ToolSpec::new("stash_push", Tier::Write, "Stash changes"),
        ToolSpec::new("restore", Tier::Destructive, "Discard changes").idempotent(),
        ToolSpec::new("reset", Tier::Destructive, "Reset branch"),
        ToolSpec::new("delete_branch", Tier::Destructive, "Delete branch").idempotent(),
    ],
);

/// The tier of a tool, `None` for an unknown name.
pub fn tier_of(tool: &str) -> Option<Tier> {
    TOOLS.tier_of(tool)
}

/// Sets libgit2's process-wide options the server relies on: the repository ownership check on
/// (it is libgit2's default; set explicitly so no embedding can have turned it off), and no
/// re-hashing of every object read (libgit2's default, unlike `git`, which checks hashes only in
/// `fsck`; a hash check guards against disk corruption, not against a hostile repository, whose
/// author can write any object with a correct hash), and libgit2's object cache capped at
/// [`OBJECT_CACHE_BYTES`]. Idempotent; [`GitServer::new`] calls it too.
#[allow(unsafe_code)]
pub fn harden_libgit2() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: libgit2 options are process-global and must not change while another thread
        // is inside libgit2. This runs once, before this crate opens any repository, and the
        // `Once` makes every other caller wait until it has finished.
        let set = unsafe { git2::opts::set_verify_owner_validation(true) };
        if let Err(e) = set {
            tracing::error!(error = %e, "could not enable libgit2's ownership check");
        }
        git2::opts::strict_hash_verification(false);
        // SAFETY: as above.
        if let Err(e) = unsafe { git2::opts::set_cache_max_size(OBJECT_CACHE_BYTES) } {
            tracing::warn!(error = %e, "could not cap libgit2's object cache");
        }
    });
}

/// The most memory libgit2's object cache (parsed commits and trees, shared by every open
/// repository) may hold. libgit2's default is 256 MiB; read tools now keep repositories open
/// between calls, so what the cache holds stays for the life of the server. The cache counts each
/// object at its raw size (a few hundred bytes for a commit), so 64 MiB still holds the commits of
/// a history of about 100 000, while bounding what a long log or a wide diff of a large repository
/// leaves resident.
pub const OBJECT_CACHE_BYTES: isize = 64 << 20;

/// The git MCP server.
#[derive(Clone)]
pub struct GitServer {
    policy: Arc<Policy>,
    git: Arc<GitConfig>,
    tool_router: Arc<ToolRouter<GitServer>>,
    repos: Arc<repo::RepoCache>,
}

impl GitServer {
    /// A server enforcing `policy`, committing with the identity in `git` when it is set.
    pub fn new(policy: Arc<Policy>, git: GitConfig) -> Self {
        harden_libgit2();
        let mut router = Self::read_router();
        router.merge(Self::history_router());
        router.merge(Self::write_router());
        router.merge(Self::destructive_router());
        GitServer { policy, git: Arc::new(git), tool_router: Arc::new(router), repos: Arc::default() }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl BastionServer for GitServer {
    const NAME: &'static str = "bastion-git";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const INSTRUCTIONS: &'static str = INSTRUCTIONS;

    fn table(&self) -> &'static ToolTable {
        &TOOLS
    }

    fn tool_router(&self) -> &ToolRouter<Self> {
        &self.tool_router
    }

    fn policy(&self) -> &Policy {
        &self.policy
    }
}

const INSTRUCTIONS: &str = concat!(
    "Bastion git server (libgit2; no git program, hooks or filters ever run). \
Every tool takes an optional repo (a directory relative to the first root, default the root itself) and root (a root name when several are configured). \
Paths are relative to the repository's top-level directory and are matched literally (no globs). \
Revisions are anything git understands (HEAD~2, main, v1.0, a hash, A..B for log) but never start with '-'. \
Start with status; use diff for changes, log/show for history, blame for who changed a line. \
Long results say truncated=true; pass the returned next_offset / next_skip back to continue. \
Errors start with a stable code (not_a_repository, invalid_revision, path_outside_root, would_overwrite_changes, nothing_to_commit, ...) followed by what to do instead. ",
    bastion_server_kit::untrusted_content!()
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_say_tool_output_is_data() {
        assert!(INSTRUCTIONS.ends_with(bastion_server_kit::UNTRUSTED_CONTENT), "{INSTRUCTIONS}");
    }

    #[test]
    fn every_tool_has_a_valid_name_and_a_route() {
        let server = GitServer::new(
            Arc::new(
                Policy::new(bastion_policy::PolicyConfig {
                    roots: vec![std::env::temp_dir()],
                    max_tier: Tier::Destructive,
                    ..Default::default()
                })
                .unwrap(),
            ),
            GitConfig::default(),
        );
        let offered = server.offered_tools();
        assert_eq!(offered.len(), TOOLS.tools.len());
        for spec in TOOLS.tools {
            let name = spec.name;
            assert!(name.len() <= 64 && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            let tool = offered.iter().find(|t| t.name == name).unwrap();
            let annotations = tool.annotations.as_ref().unwrap();
            assert!(annotations.read_only_hint.is_some() && annotations.destructive_hint.is_some());
            assert!(annotations.idempotent_hint.is_some() && annotations.open_world_hint.is_some());
            assert!(tool.description.as_ref().is_some_and(|d| d.len() > 40), "{name} needs a description");
        }
    }
}
