//! Changes that discard work: restore, reset, delete_branch.

use bastion_policy::error::truncate_for_message;
use bastion_policy::{Error, ErrorCode, Result};
use bastion_server_kit::Json;
use git2::build::CheckoutBuilder;
use git2::{BranchType, CheckoutNotificationType, ResetType};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::write::{require_paths, unstage};
use super::{lossy, lossy_path};
use crate::repo::check_branch_name;
use crate::{Failure, GitServer};

/// Arguments of `restore`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RestoreArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// Files or directories to restore, relative to the repository's top level (literal names;
    /// "." for everything).
    pub paths: Vec<String>,
    /// Also discard staged changes: restore both index and work tree from HEAD (default false:
    /// the work tree is restored from the index, staged changes stay).
    #[serde(default)]
    pub staged: Option<bool>,
}

/// Result of `restore`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RestoreOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// Work-tree files overwritten with the committed or staged version (at most 500 listed).
    pub restored: Vec<String>,
    /// Paths whose staged changes were discarded (with staged=true).
    pub unstaged: Vec<String>,
}

/// Arguments of `reset`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ResetArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Commit to move the current branch to (default HEAD), e.g. HEAD~1, a hash, origin/main.
    #[serde(default)]
    pub rev: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// `soft` (move the branch only; changes stay staged), `mixed` (default: also reset the
    /// index; changes stay in the work tree) or `hard` (also overwrite the work tree: local
    /// changes to tracked files are lost).
    #[serde(default)]
    pub mode: Option<ResetMode>,
}

/// How far a reset goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResetMode {
    /// Move the branch only.
    Soft,
    /// Move the branch and reset the index.
    #[default]
    Mixed,
    /// Move the branch, reset the index and the work tree.
    Hard,
}

/// Result of `reset`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ResetOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// The commit HEAD points at now.
    pub head: String,
    /// The commit HEAD pointed at before (reset to it to undo).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The mode used.
    pub mode: String,
}

/// Arguments of `delete_branch`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct DeleteBranchArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// The local branch to delete (not the current one).
    pub name: String,
    /// Delete even if its commits are not merged into HEAD or its upstream (default false).
    #[serde(default)]
    pub force: Option<bool>,
}

/// Result of `delete_branch`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeleteBranchOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// The deleted branch.
    pub deleted: String,
    /// The commit it pointed at (create_branch from it to undo).
    pub commit: String,
}

#[tool_router(router = destructive_router, vis = "pub(crate)")]
impl GitServer {
    /// Discard uncommitted changes to files, restoring them from the index (staged=true: from HEAD,
    /// dropping staged changes too). Untracked files stay; the edits are lost.
    #[tool(name = "restore")]
    async fn git_restore(&self, Parameters(a): Parameters<RestoreArgs>) -> Result<Json<RestoreOut>, Failure> {
        self.on_pool(a, Self::restore_impl).await
    }

    /// Move the current branch to another commit (soft, mixed or hard) to undo commits; hard also
    /// discards local changes. Returns the previous commit, to undo it.
    #[tool(name = "reset")]
    async fn git_reset(&self, Parameters(a): Parameters<ResetArgs>) -> Result<Json<ResetOut>, Failure> {
        self.on_pool(a, Self::reset_impl).await
    }

    /// Delete a local branch; refused for the current branch, and for unmerged commits unless
    /// force=true. Returns its last commit.
    #[tool(name = "delete_branch")]
    async fn git_delete_branch(
        &self,
        Parameters(a): Parameters<DeleteBranchArgs>,
    ) -> Result<Json<DeleteBranchOut>, Failure> {
        self.on_pool(a, Self::delete_branch_impl).await
    }
}

impl GitServer {
    fn restore_impl(&self, a: &RestoreArgs) -> Result<RestoreOut> {
        require_paths(&a.paths, "restore")?;
        let repo = self.open(a.repo.as_deref(), a.root.as_deref())?;
        repo.workdir()?;
        let specs = repo.pathspecs(self.policy(), &a.paths)?;
        let staged = a.staged.unwrap_or(false);
        let mut unstaged = Vec::new();
        if staged {
            unstaged = unstage(&repo, &specs)?;
        }
        let mut restored = Vec::new();
        {
            let mut co = CheckoutBuilder::new();
            co.force().disable_pathspec_match(true).notify_on(CheckoutNotificationType::UPDATED).notify(
                |_, path, _, _, _| {
                    if let Some(p) = path {
                        restored.push(lossy_path(p));
                    }
                    true
                },
            );
            for p in &specs.paths {
                co.path(p);
            }
            let mut index = repo.git.index().map_err(|e| repo.err(e, "opening the index"))?;
            repo.git.checkout_index(Some(&mut index), Some(&mut co)).map_err(|e| repo.err(e, "restoring"))?;
        }
        restored.truncate(500);
        unstaged.truncate(500);
        Ok(RestoreOut { repo: repo.shown(), restored, unstaged })
    }

    fn reset_impl(&self, a: &ResetArgs) -> Result<ResetOut> {
        let repo = self.open(a.repo.as_deref(), a.root.as_deref())?;
        let mode = a.mode.unwrap_or_default();
        if mode != ResetMode::Soft {
            repo.workdir()?;
        }
        let target = repo.commit(a.rev.as_deref().unwrap_or("HEAD"), "rev")?;
        let previous = repo.head_commit()?.map(|c| c.id().to_string());
        let kind = match mode {
            ResetMode::Soft => ResetType::Soft,
            ResetMode::Mixed => ResetType::Mixed,
            ResetMode::Hard => ResetType::Hard,
        };
        let mut co = CheckoutBuilder::new();
        co.force();
        repo.git.reset(target.as_object(), kind, Some(&mut co)).map_err(|e| repo.err(e, "resetting"))?;
        Ok(ResetOut {
            repo: repo.shown(),
            head: target.id().to_string(),
            previous,
            mode: format!("{mode:?}").to_lowercase(),
        })
    }

    fn delete_branch_impl(&self, a: &DeleteBranchArgs) -> Result<DeleteBranchOut> {
        check_branch_name(&a.name)?;
        let repo = self.open(a.repo.as_deref(), a.root.as_deref())?;
        let mut branch = repo.git.find_branch(&a.name, BranchType::Local).map_err(|_| {
            Error::new(
                ErrorCode::NotFound,
                format!("there is no local branch '{}'; see branches", truncate_for_message(&a.name)),
            )
        })?;
        if branch.is_head() {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("'{}' is the current branch; switch to another branch first", a.name),
            ));
        }
        let tip = branch.get().target().ok_or_else(|| {
            Error::new(ErrorCode::InvalidReferenceName, format!("'{}' is a symbolic reference, not a branch", a.name))
        })?;
        if !a.force.unwrap_or(false) {
            let merged_into = |other: Option<git2::Oid>| {
                other.is_some_and(|o| o == tip || repo.git.graph_descendant_of(o, tip).unwrap_or(false))
            };
            let head = repo.head_commit()?.map(|c| c.id());
            let upstream = branch.upstream().ok().and_then(|u| u.get().target());
            if !merged_into(head) && !merged_into(upstream) {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "branch '{}' has commits not merged into HEAD or its upstream (tip {tip}); pass force=true to delete it anyway",
                        a.name
                    ),
                ));
            }
        }
        let name = lossy(branch.name_bytes().map_err(|e| repo.err(e, "reading the branch"))?);
        branch.delete().map_err(|e| repo.err(e, "deleting the branch"))?;
        Ok(DeleteBranchOut { repo: repo.shown(), deleted: name, commit: tip.to_string() })
    }
}
