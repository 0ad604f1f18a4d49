//! Changing the repository without losing anything: add, unstage, commit,
//! create_branch, switch, stash_push.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use bastion_policy::error::truncate_for_message;
use bastion_policy::{Error, ErrorCode, Result};
use bastion_server_kit::Json;
use git2::build::CheckoutBuilder;
use git2::{
    BranchType, CheckoutNotificationType, IndexEntry, IndexTime, Oid, RepositoryState, Signature, StashFlags, Status,
    StatusOptions,
};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{lossy, lossy_path};
use crate::repo::{Pathspecs, Repo, check_branch_name};
use crate::{Failure, GitServer};

/// Most paths listed in a result; counts are always complete.
const MAX_LISTED: usize = 500;

/// Arguments of `add`, `unstage`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct PathsArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// Files or directories, relative to the repository's top level (literal names; "." for
    /// everything).
    pub paths: Vec<String>,
}

/// Result of `add`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AddOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// Paths whose new content was staged (at most 500 listed).
    pub added: Vec<String>,
    /// Deleted paths whose removal was staged (at most 500 listed).
    pub removed: Vec<String>,
    /// Number of paths staged in all.
    pub staged_count: usize,
    /// Paths left out because they are on the server's deny list (secrets).
    pub skipped_denied: Vec<String>,
    /// Given paths that matched no change (unchanged, ignored by .gitignore, or missing).
    pub unmatched: Vec<String>,
}

/// Result of `unstage`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UnstageOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// Paths whose staged changes were taken back out of the index (at most 500 listed); the
    /// work tree is unchanged.
    pub unstaged: Vec<String>,
    /// Number of paths unstaged.
    pub unstaged_count: usize,
}

/// Arguments of `commit`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct CommitArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// The commit message: a short subject line, optionally a blank line and a body.
    pub message: String,
}

/// Result of `commit`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CommitResultOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// The new commit.
    pub hash: String,
    /// The branch it was committed on (absent on a detached HEAD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Its parents.
    pub parents: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Author as `name <email>`.
    pub author: String,
    /// Files changed.
    pub files_changed: usize,
    /// Lines added.
    pub insertions: usize,
    /// Lines deleted.
    pub deletions: usize,
}

/// Arguments of `create_branch`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct CreateBranchArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// New branch name, e.g. feature/login.
    pub name: String,
    /// Where it starts (default HEAD): a branch (also origin/x), tag, hash or HEAD~n.
    #[serde(default)]
    pub from: Option<String>,
}

/// Result of `create_branch`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CreateBranchOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// The new branch.
    pub branch: String,
    /// The commit it points at.
    pub commit: String,
}

/// Arguments of `switch`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct SwitchArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// An existing local branch (see branches; create one with create_branch).
    pub branch: String,
}

/// Result of `switch`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SwitchOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// The branch now checked out.
    pub branch: String,
    /// Its commit.
    pub commit: String,
    /// The branch (or commit, when detached) checked out before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Local changes carried over to the new branch (they did not conflict).
    pub carried_changes: usize,
}

/// Arguments of `stash_push`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct StashPushArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// A message to recognise the stash by.
    #[serde(default)]
    pub message: Option<String>,
    /// Stash untracked files too (default false).
    #[serde(default)]
    pub include_untracked: Option<bool>,
}

/// Result of `stash_push`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StashPushOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// `stash@{0}`.
    pub stash: String,
    /// The stash commit.
    pub hash: String,
}

#[tool_router(router = write_router, vis = "pub(crate)")]
impl GitServer {
    /// Stage files for the next commit (new, changed, deleted). Literal paths or directories ("."
    /// for all); ignored and deny-listed files are never staged.
    #[tool(name = "add")]
    async fn git_add(&self, Parameters(a): Parameters<PathsArgs>) -> Result<Json<AddOut>, Failure> {
        self.on_pool(a, Self::add_impl).await
    }

    /// Take paths back out of the index (to HEAD's version); the work tree is untouched.
    #[tool(name = "unstage")]
    async fn git_unstage(&self, Parameters(a): Parameters<PathsArgs>) -> Result<Json<UnstageOut>, Failure> {
        self.on_pool(a, Self::unstage_impl).await
    }

    /// Record the staged changes as a new commit on the current branch (never amends), authored by
    /// the configured identity.
    #[tool(name = "commit")]
    async fn git_commit(&self, Parameters(a): Parameters<CommitArgs>) -> Result<Json<CommitResultOut>, Failure> {
        self.on_pool(a, Self::commit_impl).await
    }

    /// Create a branch at a revision (default HEAD) without switching to it.
    #[tool(name = "create_branch")]
    async fn git_create_branch(
        &self,
        Parameters(a): Parameters<CreateBranchArgs>,
    ) -> Result<Json<CreateBranchOut>, Failure> {
        self.on_pool(a, Self::create_branch_impl).await
    }

    /// Check out an existing local branch. Local changes carry over unless they conflict: then
    /// nothing changes and would_overwrite_changes lists them.
    #[tool(name = "switch")]
    async fn git_switch(&self, Parameters(a): Parameters<SwitchArgs>) -> Result<Json<SwitchOut>, Failure> {
        self.on_pool(a, Self::switch_impl).await
    }

    /// Stash local changes (staged, unstaged; untracked with include_untracked) and return the work
    /// tree to HEAD.
    #[tool(name = "stash_push")]
    async fn git_stash_push(&self, Parameters(a): Parameters<StashPushArgs>) -> Result<Json<StashPushOut>, Failure> {
        self.on_pool(a, Self::stash_push_impl).await
    }
}

/// Refuses an empty path list where paths are required.
pub(crate) fn require_paths(paths: &[String], tool: &str) -> Result<()> {
    if paths.is_empty() {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("{tool} needs at least one path (\".\" for the whole work tree)"),
        ));
    }
    Ok(())
}

fn cap(list: &mut Vec<String>) {
    list.truncate(MAX_LISTED);
}

impl GitServer {
    fn add_impl(&self, a: &PathsArgs) -> Result<AddOut> {
        require_paths(&a.paths, "add")?;
        let repo = self.open(a.repo.as_deref(), a.root.as_deref())?;
        repo.workdir()?;
        let specs = repo.pathspecs(self.policy(), &a.paths)?;
        let mut opts = StatusOptions::new();
        opts.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false).disable_pathspec_match(true);
        for p in &specs.paths {
            opts.pathspec(p);
        }
        let statuses = repo.git.statuses(Some(&mut opts)).map_err(|e| repo.err(e, "reading the status"))?;
        let mut index = repo.git.index().map_err(|e| repo.err(e, "opening the index"))?;
        let mut out = AddOut {
            repo: repo.shown(),
            added: Vec::new(),
            removed: Vec::new(),
            staged_count: 0,
            skipped_denied: Vec::new(),
            unmatched: Vec::new(),
        };
        let mut touched: Vec<std::path::PathBuf> = Vec::new();
        for entry in statuses.iter() {
            let s = entry.status();
            let path = Path::new(OsStr::from_bytes(entry.path_bytes()));
            let wt = entry.index_to_workdir();
            let wt_path = wt.as_ref().and_then(|d| d.new_file().path()).unwrap_or(path).to_path_buf();
            let wt_changes =
                Status::WT_NEW | Status::WT_MODIFIED | Status::WT_DELETED | Status::WT_TYPECHANGE | Status::WT_RENAMED;
            if !s.intersects(wt_changes | Status::CONFLICTED) {
                continue;
            }
            if repo.protected(self.policy(), &wt_path) {
                continue;
            }
            if repo.denied(self.policy(), &wt_path) {
                out.skipped_denied.push(lossy_path(&wt_path));
                continue;
            }
            let exists = repo.dir.join(&wt_path).symlink_metadata().is_ok();
            if exists {
                index.add_path(&wt_path).map_err(|e| repo.err(e, "staging"))?;
                out.added.push(lossy_path(&wt_path));
            } else {
                index.remove_path(&wt_path).map_err(|e| repo.err(e, "staging a deletion"))?;
                out.removed.push(lossy_path(&wt_path));
            }
            touched.push(wt_path);
        }
        index.write().map_err(|e| repo.err(e, "writing the index"))?;
        out.staged_count = out.added.len() + out.removed.len();
        out.unmatched = unmatched(&specs, &touched, &out.skipped_denied);
        cap(&mut out.added);
        cap(&mut out.removed);
        cap(&mut out.skipped_denied);
        Ok(out)
    }

    fn unstage_impl(&self, a: &PathsArgs) -> Result<UnstageOut> {
        require_paths(&a.paths, "unstage")?;
        let repo = self.open(a.repo.as_deref(), a.root.as_deref())?;
        repo.workdir()?;
        let specs = repo.pathspecs(self.policy(), &a.paths)?;
        let mut unstaged = unstage(&repo, &specs)?;
        let unstaged_count = unstaged.len();
        cap(&mut unstaged);
        Ok(UnstageOut { repo: repo.shown(), unstaged, unstaged_count })
    }

    /// The identity commits are made with: the operator's `[git]` settings first, then the
    /// repository's `user.name` / `user.email`. Never anything from the tool call.
    pub(crate) fn identity(&self, repo: &Repo) -> Result<Signature<'static>> {
        let configured = repo.git.signature().ok();
        let name = self
            .git
            .author_name
            .clone()
            .or_else(|| configured.as_ref().and_then(|s| s.name().ok().map(str::to_string)));
        let email = self
            .git
            .author_email
            .clone()
            .or_else(|| configured.as_ref().and_then(|s| s.email().ok().map(str::to_string)));
        match (name, email) {
            (Some(n), Some(e)) => Signature::now(&n, &e).map_err(|e| {
                Error::new(
                    ErrorCode::InvalidConfig,
                    format!("the configured author identity is not usable: {}", e.message()),
                )
            }),
            _ => Err(Error::new(
                ErrorCode::InvalidConfig,
                "no author identity: the operator must set user.name and user.email in the repository's git config, or author_name and author_email under [git] in the bastion config",
            )),
        }
    }

    fn commit_impl(&self, a: &CommitArgs) -> Result<CommitResultOut> {
        let message = git2::message_prettify(a.message.as_str(), None).unwrap_or_default();
        if message.trim().is_empty() {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "the commit message is empty; say what the change does",
            ));
        }
        let mut repo = self.open(a.repo.as_deref(), a.root.as_deref())?;
        repo.workdir()?;
        let state = repo.git.state();
        if !matches!(
            state,
            RepositoryState::Clean
                | RepositoryState::Merge
                | RepositoryState::CherryPick
                | RepositoryState::CherryPickSequence
                | RepositoryState::Revert
                | RepositoryState::RevertSequence
        ) {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "a rebase or patch application is in progress; it must be finished or aborted with git itself before committing here",
            ));
        }
        let mut index = repo.git.index().map_err(|e| repo.err(e, "opening the index"))?;
        if index.has_conflicts() {
            let paths = conflicted_paths(&index);
            return Err(Error::new(
                ErrorCode::MergeConflict,
                format!(
                    "unresolved conflicts in {}; edit the files to resolve them, then add them before committing",
                    paths.join(", ")
                ),
            ));
        }
        let tree_id = index.write_tree().map_err(|e| repo.err(e, "writing the tree"))?;
        let head = repo.head_commit()?.map(|c| (c.id(), c.tree_id()));
        let mut parents: Vec<Oid> = head.iter().map(|(id, _)| *id).collect();
        if state == RepositoryState::Merge {
            repo.git
                .mergehead_foreach(|oid| {
                    parents.push(*oid);
                    true
                })
                .map_err(|e| Error::new(ErrorCode::IoError, format!("reading MERGE_HEAD: {}", e.message())))?;
        }
        let unchanged = match head {
            Some((_, head_tree)) => head_tree == tree_id,
            None => index.is_empty(),
        };
        if unchanged && parents.len() < 2 {
            return Err(Error::new(
                ErrorCode::NothingToCommit,
                "nothing is staged: the index matches HEAD; stage changes with add first (status shows what changed)",
            ));
        }
        let sig = self.identity(&repo)?;
        let tree = repo.git.find_tree(tree_id).map_err(|e| repo.err(e, "reading the tree"))?;
        let parent_commits = parents
            .iter()
            .map(|p| repo.git.find_commit(*p))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| repo.err(e, "reading a parent"))?;
        let refs: Vec<&git2::Commit<'_>> = parent_commits.iter().collect();
        let oid =
            repo.git.commit(Some("HEAD"), &sig, &sig, &message, &tree, &refs).map_err(|e| repo.err(e, "committing"))?;
        let parent_tree =
            parent_commits.first().map(|c| c.tree()).transpose().map_err(|e| repo.err(e, "reading the parent"))?;
        let stats = repo
            .git
            .diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), None)
            .and_then(|d| d.stats())
            .map_err(|e| repo.err(e, "counting changes"))?;
        drop(tree);
        drop(parent_tree);
        drop(refs);
        drop(parent_commits);
        if state != RepositoryState::Clean {
            repo.git.cleanup_state().map_err(|e| repo.err(e, "clearing the merge state"))?;
        }
        let branch = repo.git.head().ok().filter(|h| h.is_branch()).map(|h| lossy(h.shorthand_bytes()));
        let subject = message.lines().next().unwrap_or_default().to_string();
        let author = format!("{} <{}>", lossy(sig.name_bytes()), lossy(sig.email_bytes()));
        Ok(CommitResultOut {
            repo: repo.shown(),
            hash: oid.to_string(),
            branch,
            parents: parents.iter().map(Oid::to_string).collect(),
            subject,
            author,
            files_changed: stats.files_changed(),
            insertions: stats.insertions(),
            deletions: stats.deletions(),
        })
    }

    fn create_branch_impl(&self, a: &CreateBranchArgs) -> Result<CreateBranchOut> {
        check_branch_name(&a.name)?;
        let repo = self.open(a.repo.as_deref(), a.root.as_deref())?;
        let commit = match &a.from {
            Some(from) => repo.commit(from, "from")?,
            None => repo.head_commit()?.ok_or_else(|| {
                Error::new(ErrorCode::InvalidRevision, "the repository has no commits yet; commit first, then branch")
            })?,
        };
        repo.git.branch(&a.name, &commit, false).map_err(|e| match e.code() {
            git2::ErrorCode::Exists => Error::new(
                ErrorCode::AlreadyExists,
                format!("branch '{}' already exists; switch to it with switch or pick another name", a.name),
            ),
            _ => repo.err(e, "creating the branch"),
        })?;
        Ok(CreateBranchOut { repo: repo.shown(), branch: a.name.clone(), commit: commit.id().to_string() })
    }

    fn switch_impl(&self, a: &SwitchArgs) -> Result<SwitchOut> {
        check_branch_name(&a.branch)?;
        let repo = self.open(a.repo.as_deref(), a.root.as_deref())?;
        repo.workdir()?;
        let branch = repo.git.find_branch(&a.branch, BranchType::Local).map_err(|_| {
            Error::new(
                ErrorCode::NotFound,
                format!(
                    "there is no local branch '{}'; see branches, or create it with create_branch (from=\"origin/{}\" for a remote one)",
                    truncate_for_message(&a.branch),
                    truncate_for_message(&a.branch)
                ),
            )
        })?;
        let refname = format!("refs/heads/{}", a.branch);
        let commit = branch.get().peel_to_commit().map_err(|e| repo.err(e, "reading the branch"))?;
        let previous = match repo.git.head() {
            Ok(h) if h.is_branch() => Some(lossy(h.shorthand_bytes())),
            Ok(h) => h.target().map(|o| o.to_string()),
            Err(_) => None,
        };
        let index = repo.git.index().map_err(|e| repo.err(e, "opening the index"))?;
        if index.has_conflicts() {
            return Err(Error::new(
                ErrorCode::MergeConflict,
                format!(
                    "unresolved conflicts in {}; resolve and commit them first",
                    conflicted_paths(&index).join(", ")
                ),
            ));
        }
        let mut blocked: Vec<String> = Vec::new();
        let mut carried = 0usize;
        let mut co = CheckoutBuilder::new();
        co.safe().notify_on(CheckoutNotificationType::CONFLICT | CheckoutNotificationType::DIRTY).notify(
            |kind, path, _, _, _| {
                if let Some(p) = path {
                    if kind.contains(CheckoutNotificationType::CONFLICT) {
                        blocked.push(lossy_path(p));
                    } else {
                        carried += 1;
                    }
                }
                true
            },
        );
        let checked_out = repo.git.checkout_tree(commit.as_object(), Some(&mut co));
        drop(co);
        if let Err(e) = checked_out {
            if e.code() == git2::ErrorCode::Conflict || !blocked.is_empty() {
                blocked.truncate(50);
                return Err(Error::new(
                    ErrorCode::WouldOverwriteChanges,
                    format!(
                        "switching to '{}' would overwrite local changes to {}; nothing was changed. Commit them, stash them with stash_push, or discard them with restore first",
                        a.branch,
                        blocked.join(", ")
                    ),
                ));
            }
            return Err(repo.err(e, "checking out the branch"));
        }
        repo.git.set_head(&refname).map_err(|e| repo.err(e, "moving HEAD"))?;
        Ok(SwitchOut {
            repo: repo.shown(),
            branch: a.branch.clone(),
            commit: commit.id().to_string(),
            previous,
            carried_changes: carried,
        })
    }

    fn stash_push_impl(&self, a: &StashPushArgs) -> Result<StashPushOut> {
        let mut repo = self.open(a.repo.as_deref(), a.root.as_deref())?;
        repo.workdir()?;
        let sig = self.identity(&repo)?;
        let flags =
            if a.include_untracked.unwrap_or(false) { StashFlags::INCLUDE_UNTRACKED } else { StashFlags::DEFAULT };
        let message = a.message.as_deref().filter(|m| !m.trim().is_empty());
        let oid = match repo.git.stash_save2(&sig, message, Some(flags)) {
            Ok(oid) => oid,
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                return Err(Error::new(
                    ErrorCode::NothingToCommit,
                    "there are no local changes to stash (untracked files are stashed only with include_untracked=true)",
                ));
            }
            Err(e) => return Err(repo.err(e, "stashing")),
        };
        Ok(StashPushOut { repo: repo.shown(), stash: "stash@{0}".into(), hash: oid.to_string() })
    }
}

/// Resets the index entries of `specs` to HEAD's version (removing entries HEAD does not have).
/// Returns the paths changed.
pub(crate) fn unstage(repo: &Repo, specs: &Pathspecs) -> Result<Vec<String>> {
    let head = repo.head_commit()?;
    let tree = head.as_ref().map(|c| c.tree()).transpose().map_err(|e| repo.err(e, "reading HEAD"))?;
    let mut index = repo.git.index().map_err(|e| repo.err(e, "opening the index"))?;
    let mut opts = super::diff::options(specs, Some(0));
    let diff = repo
        .git
        .diff_tree_to_index(tree.as_ref(), Some(&index), Some(&mut opts))
        .map_err(|e| repo.err(e, "comparing the index with HEAD"))?;
    let mut changed = Vec::new();
    for delta in diff.deltas() {
        let old = delta.old_file();
        let Some(path) = delta.new_file().path().or(old.path()).map(Path::to_path_buf) else {
            continue;
        };
        let in_head = tree.as_ref().and_then(|t| t.get_path(&path).ok());
        match in_head {
            Some(entry) => {
                let mut bytes = Vec::new();
                bytes.extend_from_slice(path.as_os_str().as_bytes());
                let e = IndexEntry {
                    ctime: IndexTime::new(0, 0),
                    mtime: IndexTime::new(0, 0),
                    dev: 0,
                    ino: 0,
                    mode: entry.filemode() as u32,
                    uid: 0,
                    gid: 0,
                    file_size: 0,
                    id: entry.id(),
                    flags: 0,
                    flags_extended: 0,
                    path: bytes,
                };
                index.add(&e).map_err(|e| repo.err(e, "unstaging"))?;
            }
            None => index.remove_path(&path).map_err(|e| repo.err(e, "unstaging"))?,
        }
        changed.push(lossy_path(&path));
    }
    index.write().map_err(|e| repo.err(e, "writing the index"))?;
    Ok(changed)
}

fn conflicted_paths(index: &git2::Index) -> Vec<String> {
    let mut paths: Vec<String> = index
        .conflicts()
        .map(|c| {
            c.filter_map(|c| c.ok())
                .filter_map(|c| c.our.or(c.their).or(c.ancestor).map(|e| lossy(&e.path)))
                .take(50)
                .collect()
        })
        .unwrap_or_default();
    paths.dedup();
    paths
}

/// The given paths that matched nothing staged or skipped.
fn unmatched(specs: &Pathspecs, touched: &[std::path::PathBuf], skipped: &[String]) -> Vec<String> {
    specs
        .paths
        .iter()
        .filter(|p| !touched.iter().any(|t| t.starts_with(p)) && !skipped.iter().any(|s| Path::new(s).starts_with(p)))
        .map(|p| lossy_path(p))
        .collect()
}
