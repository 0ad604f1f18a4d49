//! The state of a repository: status, diff, branches, tags, stash_list.

use bastion_policy::{Error, ErrorCode, Result};
use bastion_server_kit::Json;
use git2::{BranchType, Status, StatusOptions, StatusShow};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::diff::{FileOut, find_renames, options, render};
use super::{CommitOut, lossy, lossy_path};
use crate::repo::Repo;
use crate::{Failure, GitServer};

/// Arguments of `status`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct StatusArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// Only these paths (files or directories, relative to the repository's top level).
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// `normal` (default: untracked directories shown once, as `dir/`), `all` (every untracked
    /// file) or `no` (untracked files not shown).
    #[serde(default)]
    pub untracked_files: Option<UntrackedMode>,
}

/// How untracked files are reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UntrackedMode {
    /// Untracked directories are shown once, as `dir/`.
    #[default]
    Normal,
    /// Every untracked file.
    All,
    /// None.
    No,
}

/// A changed path.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChangeOut {
    /// Path relative to the repository's top level (the new path for renames).
    pub path: String,
    /// `added`, `modified`, `deleted`, `renamed` or `typechange`.
    pub status: String,
    /// The path before a rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
}

/// Result of `status`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// Current branch; absent when HEAD is detached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Commit HEAD points at; absent before the first commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// True when HEAD is not on a branch.
    pub detached: bool,
    /// The branch's upstream, e.g. `origin/main`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Commits on the branch not on its upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ahead: Option<usize>,
    /// Commits on the upstream not on the branch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behind: Option<usize>,
    /// An operation in progress (`merge`, `rebase`, `cherry_pick`, `revert`, `bisect`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<String>,
    /// Changes in the index (what `commit` would record).
    pub staged: Vec<ChangeOut>,
    /// Changes in the work tree not staged.
    pub unstaged: Vec<ChangeOut>,
    /// Files git does not track (directories end in `/`).
    pub untracked: Vec<String>,
    /// Paths with unresolved merge conflicts.
    pub conflicted: Vec<String>,
    /// True when nothing is staged, changed, untracked or conflicted.
    pub clean: bool,
    /// True when the lists were cut to the output budget (narrow with paths).
    pub truncated: bool,
}

/// Arguments of `diff`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct DiffArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// Compare with the index (staged changes) instead of the work tree: alone, the changes
    /// `commit` would record; with from, from..index.
    #[serde(default)]
    pub staged: Option<bool>,
    /// Revision to compare from (e.g. HEAD, main, HEAD~3, a hash). Alone: from..work tree.
    #[serde(default)]
    pub from: Option<String>,
    /// Revision to compare to (needs from): from..to between two commits.
    #[serde(default)]
    pub to: Option<String>,
    /// Only these files or directories (relative to the repository's top level; literal names).
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// Lines of context around each change (default 3).
    #[serde(default)]
    pub context_lines: Option<u32>,
    /// Only the changed files with added/deleted line counts, no diff text.
    #[serde(default)]
    pub stat_only: Option<bool>,
    /// Character offset into the diff text (pass back next_offset to continue).
    #[serde(default)]
    pub offset: Option<u64>,
    /// Most characters of diff text to return (capped by the server's budget).
    #[serde(default)]
    pub max_chars: Option<u64>,
}

/// Result of `diff`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DiffOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// What was compared, e.g. `index..work tree` or `HEAD~3..HEAD`.
    pub compared: String,
    /// Changed files (at most 1000; see files_total).
    pub files: Vec<FileOut>,
    /// Number of changed files.
    pub files_total: usize,
    /// Unified diff text in git's format (absent with stat_only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Lines added in all files (with stat_only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additions: Option<usize>,
    /// Lines deleted in all files (with stat_only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletions: Option<usize>,
    /// True when the diff text was cut; continue with offset = next_offset.
    pub truncated: bool,
    /// Offset to pass back for the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
}

/// Arguments of `branches`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct BranchesArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// `local`, `remote` or `all` (default).
    #[serde(default)]
    pub kind: Option<BranchKind>,
}

/// Which branches to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BranchKind {
    /// Local branches.
    Local,
    /// Remote-tracking branches.
    Remote,
    /// Both.
    #[default]
    All,
}

/// One branch.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BranchOut {
    /// Short name (`main`, `origin/main`).
    pub name: String,
    /// True for remote-tracking branches.
    pub remote: bool,
    /// True for the branch HEAD is on.
    pub current: bool,
    /// The upstream of a local branch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Commits not on the upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ahead: Option<usize>,
    /// Upstream commits not on the branch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behind: Option<usize>,
    /// The branch's last commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitOut>,
}

/// Result of `branches`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BranchesOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// Branches, local first, by name.
    pub branches: Vec<BranchOut>,
    /// True when the list was cut to the output budget.
    pub truncated: bool,
}

/// Arguments of `tags` and `stash_list`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RepoArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
}

/// One tag.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TagOut {
    /// Tag name.
    pub name: String,
    /// True for annotated tags.
    pub annotated: bool,
    /// First line of an annotated tag's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The tagged commit (absent when the tag names another kind of object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitOut>,
}

/// Result of `tags`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TagsOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// Tags by name.
    pub tags: Vec<TagOut>,
    /// True when the list was cut to the output budget.
    pub truncated: bool,
}

/// One stash entry.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StashOut {
    /// Position, 0 = newest.
    pub index: usize,
    /// `stash@{n}`.
    pub name: String,
    /// The stash message.
    pub message: String,
    /// The stash commit.
    pub hash: String,
}

/// Result of `stash_list`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StashListOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// Stashes, newest first.
    pub stashes: Vec<StashOut>,
}

#[tool_router(router = read_router, vis = "pub(crate)")]
impl GitServer {
    /// Where the repository stands: branch, upstream ahead/behind, staged, unstaged, untracked and
    /// conflicted files. Start here before diff, add or commit.
    #[tool(name = "status")]
    async fn git_status(&self, Parameters(a): Parameters<StatusArgs>) -> Result<Json<StatusOut>, Failure> {
        self.on_pool(a, Self::status_impl).await
    }

    /// Unified diff: work tree vs index by default (unstaged changes); staged=true: what would be
    /// committed; from/to: between revisions. stat_only first on big changes; paged with offset.
    #[tool(name = "diff")]
    async fn git_diff(&self, Parameters(a): Parameters<DiffArgs>) -> Result<Json<DiffOut>, Failure> {
        self.on_pool(a, Self::diff_impl).await
    }

    /// Local and remote-tracking branches: the current one marked, upstream ahead/behind, last
    /// commit.
    #[tool(name = "branches")]
    async fn git_branches(&self, Parameters(a): Parameters<BranchesArgs>) -> Result<Json<BranchesOut>, Failure> {
        self.on_pool(a, Self::branches_impl).await
    }

    /// Tags with their commit and, if annotated, the message's first line.
    #[tool(name = "tags")]
    async fn git_tags(&self, Parameters(a): Parameters<RepoArgs>) -> Result<Json<TagsOut>, Failure> {
        self.on_pool(a, Self::tags_impl).await
    }

    /// List the stashes, newest first (stash@{0}); show rev="stash@{0}" shows one.
    #[tool(name = "stash_list")]
    async fn git_stash_list(&self, Parameters(a): Parameters<RepoArgs>) -> Result<Json<StashListOut>, Failure> {
        self.on_pool(a, Self::stash_list_impl).await
    }
}

impl GitServer {
    fn status_impl(&self, a: &StatusArgs) -> Result<StatusOut> {
        let repo = self.open_read(a.repo.as_deref(), a.root.as_deref())?;
        repo.workdir()?;
        let specs = repo.pathspecs(self.policy(), a.paths.as_deref().unwrap_or_default())?;
        let mode = a.untracked_files.unwrap_or_default();
        let mut opts = StatusOptions::new();
        opts.show(StatusShow::IndexAndWorkdir)
            .include_untracked(mode != UntrackedMode::No)
            .recurse_untracked_dirs(mode == UntrackedMode::All)
            .include_ignored(false)
            .renames_head_to_index(true)
            .disable_pathspec_match(true);
        for p in &specs.paths {
            opts.pathspec(p);
        }
        let statuses = repo.git.statuses(Some(&mut opts)).map_err(|e| repo.err(e, "reading the status"))?;
        let mut out = head_state(&repo)?;
        let budget = self.budget(None);
        let mut used = 0usize;
        for entry in statuses.iter() {
            let s = entry.status();
            let path = lossy(entry.path_bytes());
            if repo.protected(self.policy(), std::path::Path::new(path.trim_end_matches('/'))) {
                continue;
            }
            used += path.len() + 40;
            if used > budget {
                out.truncated = true;
                break;
            }
            if s.contains(Status::CONFLICTED) {
                out.conflicted.push(path);
                continue;
            }
            if s.contains(Status::WT_NEW) {
                out.untracked.push(path.clone());
            }
            if let Some(change) = index_change(s, &entry) {
                out.staged.push(change);
            }
            if let Some(change) = workdir_change(s, &entry) {
                out.unstaged.push(change);
            }
        }
        out.clean = out.staged.is_empty()
            && out.unstaged.is_empty()
            && out.untracked.is_empty()
            && out.conflicted.is_empty()
            && !out.truncated;
        Ok(out)
    }

    fn diff_impl(&self, a: &DiffArgs) -> Result<DiffOut> {
        let repo = self.open_read(a.repo.as_deref(), a.root.as_deref())?;
        let specs = repo.pathspecs(self.policy(), a.paths.as_deref().unwrap_or_default())?;
        let mut opts = options(&specs, a.context_lines);
        let staged = a.staged.unwrap_or(false);
        let git = &repo.git;
        let (mut diff, compared) = match (&a.from, &a.to) {
            (None, Some(_)) => {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    "to needs from: pass both to compare two revisions",
                ));
            }
            (Some(_), Some(_)) if staged => {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    "staged compares with the index, to with a revision: pass one of them",
                ));
            }
            (Some(from), Some(to)) => {
                let old = repo.commit(from, "from")?.tree().map_err(|e| repo.err(e, "reading from"))?;
                let new = repo.commit(to, "to")?.tree().map_err(|e| repo.err(e, "reading to"))?;
                let d = git
                    .diff_tree_to_tree(Some(&old), Some(&new), Some(&mut opts))
                    .map_err(|e| repo.err(e, "diffing"))?;
                (d, format!("{from}..{to}"))
            }
            (Some(from), None) => {
                let old = repo.commit(from, "from")?.tree().map_err(|e| repo.err(e, "reading from"))?;
                if staged {
                    repo.workdir()?;
                    let d = git
                        .diff_tree_to_index(Some(&old), None, Some(&mut opts))
                        .map_err(|e| repo.err(e, "diffing"))?;
                    (d, format!("{from}..index"))
                } else {
                    repo.workdir()?;
                    let d = git
                        .diff_tree_to_workdir_with_index(Some(&old), Some(&mut opts))
                        .map_err(|e| repo.err(e, "diffing"))?;
                    (d, format!("{from}..work tree"))
                }
            }
            (None, None) => {
                repo.workdir()?;
                if staged {
                    let head = repo.head_commit()?;
                    let tree = head.map(|c| c.tree()).transpose().map_err(|e| repo.err(e, "reading HEAD"))?;
                    let d = git
                        .diff_tree_to_index(tree.as_ref(), None, Some(&mut opts))
                        .map_err(|e| repo.err(e, "diffing"))?;
                    (d, "HEAD..index".to_string())
                } else {
                    let d = git.diff_index_to_workdir(None, Some(&mut opts)).map_err(|e| repo.err(e, "diffing"))?;
                    (d, "index..work tree".to_string())
                }
            }
        };
        find_renames(&repo, &mut diff)?;
        let offset = a.offset.unwrap_or(0) as usize;
        let r = render(&repo, self.policy(), &diff, a.stat_only.unwrap_or(false), offset, self.budget(a.max_chars))?;
        Ok(DiffOut {
            repo: repo.shown(),
            compared,
            files: r.files,
            files_total: r.files_total,
            diff: r.text,
            additions: r.additions,
            deletions: r.deletions,
            truncated: r.next_offset.is_some(),
            next_offset: r.next_offset.map(|n| n as u64),
        })
    }

    fn branches_impl(&self, a: &BranchesArgs) -> Result<BranchesOut> {
        let repo = self.open_read(a.repo.as_deref(), a.root.as_deref())?;
        let filter = match a.kind.unwrap_or_default() {
            BranchKind::Local => Some(BranchType::Local),
            BranchKind::Remote => Some(BranchType::Remote),
            BranchKind::All => None,
        };
        let mut branches = Vec::new();
        let iter = repo.git.branches(filter).map_err(|e| repo.err(e, "listing branches"))?;
        for item in iter {
            let (branch, kind) = item.map_err(|e| repo.err(e, "listing branches"))?;
            let name = lossy(branch.name_bytes().map_err(|e| repo.err(e, "reading a branch name"))?);
            if kind == BranchType::Remote && name.ends_with("/HEAD") {
                continue;
            }
            let commit = branch.get().peel_to_commit().ok();
            let mut out = BranchOut {
                name,
                remote: kind == BranchType::Remote,
                current: branch.is_head(),
                upstream: None,
                ahead: None,
                behind: None,
                commit: commit.as_ref().map(CommitOut::of),
            };
            if kind == BranchType::Local
                && let Ok(up) = branch.upstream()
            {
                out.upstream = up.name_bytes().ok().map(lossy);
                if let (Some(local), Some(remote)) = (commit.as_ref().map(|c| c.id()), up.get().target())
                    && let Ok((ahead, behind)) = repo.git.graph_ahead_behind(local, remote)
                {
                    out.ahead = Some(ahead);
                    out.behind = Some(behind);
                }
            }
            branches.push(out);
        }
        branches.sort_by(|x, y| (x.remote, &x.name).cmp(&(y.remote, &y.name)));
        let truncated = cut_to_budget(&mut branches, self.budget(None), |b| {
            b.name.len()
                + b.upstream.as_ref().map_or(0, String::len)
                + b.commit.as_ref().map_or(0, CommitOut::weight)
                + 60
        });
        Ok(BranchesOut { repo: repo.shown(), branches, truncated })
    }

    fn tags_impl(&self, a: &RepoArgs) -> Result<TagsOut> {
        let repo = self.open_read(a.repo.as_deref(), a.root.as_deref())?;
        let refs = repo.git.references_glob("refs/tags/*").map_err(|e| repo.err(e, "listing tags"))?;
        let mut tags = Vec::new();
        for r in refs {
            let r = r.map_err(|e| repo.err(e, "listing tags"))?;
            let name = lossy(r.shorthand_bytes());
            let tag = r.peel_to_tag().ok();
            tags.push(TagOut {
                name,
                annotated: tag.is_some(),
                message: tag
                    .as_ref()
                    .and_then(|t| t.message_bytes())
                    .map(|m| lossy(m).lines().next().unwrap_or_default().to_string()),
                commit: r.peel_to_commit().ok().as_ref().map(CommitOut::of),
            });
        }
        tags.sort_by(|x, y| x.name.cmp(&y.name));
        let truncated = cut_to_budget(&mut tags, self.budget(None), |t| {
            t.name.len()
                + t.message.as_ref().map_or(0, String::len)
                + t.commit.as_ref().map_or(0, CommitOut::weight)
                + 40
        });
        Ok(TagsOut { repo: repo.shown(), tags, truncated })
    }

    fn stash_list_impl(&self, a: &RepoArgs) -> Result<StashListOut> {
        let mut repo = self.open_read(a.repo.as_deref(), a.root.as_deref())?;
        let mut stashes = Vec::new();
        repo.git
            .stash_foreach(|index, message, oid| {
                stashes.push(StashOut {
                    index,
                    name: format!("stash@{{{index}}}"),
                    message: message.to_string(),
                    hash: oid.to_string(),
                });
                true
            })
            .map_err(|e| repo.err(e, "listing stashes"))?;
        Ok(StashListOut { repo: repo.shown(), stashes })
    }
}

/// Branch, HEAD, upstream and operation in progress, with empty change lists.
fn head_state(repo: &Repo) -> Result<StatusOut> {
    let git = &repo.git;
    let detached = git.head_detached().unwrap_or(false);
    let (branch, head, upstream, ahead, behind) = match git.head() {
        Ok(h) => {
            let branch = (!detached).then(|| lossy(h.shorthand_bytes()));
            let head = h.target().map(|o| o.to_string());
            let (mut upstream, mut ahead, mut behind) = (None, None, None);
            if !detached && let Ok(up) = git2::Branch::wrap(h).upstream() {
                upstream = up.name_bytes().ok().map(lossy);
                if let (Some(local), Some(remote)) =
                    (head.as_deref().and_then(|h| git2::Oid::from_str(h).ok()), up.get().target())
                    && let Ok((a, b)) = git.graph_ahead_behind(local, remote)
                {
                    ahead = Some(a);
                    behind = Some(b);
                }
            }
            (branch, head, upstream, ahead, behind)
        }
        Err(_) => {
            // Unborn branch: HEAD names a branch that has no commit yet.
            let name = git.find_reference("HEAD").ok().and_then(|r| r.symbolic_target_bytes().map(lossy));
            (name.map(|n| n.trim_start_matches("refs/heads/").to_string()), None, None, None, None)
        }
    };
    let in_progress = match git.state() {
        git2::RepositoryState::Clean => None,
        git2::RepositoryState::Merge => Some("merge"),
        git2::RepositoryState::Revert | git2::RepositoryState::RevertSequence => Some("revert"),
        git2::RepositoryState::CherryPick | git2::RepositoryState::CherryPickSequence => Some("cherry_pick"),
        git2::RepositoryState::Bisect => Some("bisect"),
        git2::RepositoryState::Rebase
        | git2::RepositoryState::RebaseInteractive
        | git2::RepositoryState::RebaseMerge => Some("rebase"),
        git2::RepositoryState::ApplyMailbox | git2::RepositoryState::ApplyMailboxOrRebase => Some("am"),
    };
    Ok(StatusOut {
        repo: repo.shown(),
        branch,
        head,
        detached,
        upstream,
        ahead,
        behind,
        in_progress: in_progress.map(str::to_string),
        staged: Vec::new(),
        unstaged: Vec::new(),
        untracked: Vec::new(),
        conflicted: Vec::new(),
        clean: true,
        truncated: false,
    })
}

/// Index-side (HEAD to index) and work-tree-side (index to work tree) status flags, in the
/// order they are reported.
const INDEX_STATUSES: &[(Status, &str)] = &[
    (Status::INDEX_NEW, "added"),
    (Status::INDEX_MODIFIED, "modified"),
    (Status::INDEX_DELETED, "deleted"),
    (Status::INDEX_RENAMED, "renamed"),
    (Status::INDEX_TYPECHANGE, "typechange"),
];
const WORKDIR_STATUSES: &[(Status, &str)] = &[
    (Status::WT_MODIFIED, "modified"),
    (Status::WT_DELETED, "deleted"),
    (Status::WT_TYPECHANGE, "typechange"),
    (Status::WT_RENAMED, "renamed"),
];

fn index_change(s: Status, entry: &git2::StatusEntry<'_>) -> Option<ChangeOut> {
    change(s, INDEX_STATUSES, entry, entry.head_to_index())
}

fn workdir_change(s: Status, entry: &git2::StatusEntry<'_>) -> Option<ChangeOut> {
    change(s, WORKDIR_STATUSES, entry, entry.index_to_workdir())
}

/// The change one side of a status entry describes, if that side changed.
fn change(
    s: Status,
    table: &[(Status, &str)],
    entry: &git2::StatusEntry<'_>,
    delta: Option<git2::DiffDelta<'_>>,
) -> Option<ChangeOut> {
    let status = table.iter().find(|(flag, _)| s.contains(*flag)).map(|(_, name)| *name)?;
    let new = delta.as_ref().and_then(|d| d.new_file().path()).map(lossy_path);
    let old = delta.as_ref().and_then(|d| d.old_file().path()).map(lossy_path);
    let path = new.clone().or_else(|| old.clone()).unwrap_or_else(|| lossy(entry.path_bytes()));
    let old_path = (status == "renamed").then_some(old).flatten();
    Some(ChangeOut { path, status: status.into(), old_path })
}

/// Keeps the items that fit `budget` (by their weight); true when some were dropped.
pub(crate) fn cut_to_budget<T>(items: &mut Vec<T>, budget: usize, weight: impl Fn(&T) -> usize) -> bool {
    let mut used = 0;
    let keep = items
        .iter()
        .position(|item| {
            used += weight(item);
            used > budget
        })
        .unwrap_or(items.len());
    let cut = keep < items.len();
    items.truncate(keep);
    cut
}
