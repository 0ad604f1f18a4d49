//! History: log, show, blame.

use std::collections::{BinaryHeap, HashSet};
use std::path::{Path, PathBuf};

use bastion_policy::{Error, ErrorCode, Result};
use bastion_server_kit::Json;
use git2::{BlameOptions, Commit, ObjectType, Oid, RevparseMode, Sort};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::diff::{FileOut, find_renames, options, render};
use super::{CommitOut, lossy};
use crate::repo::{Pathspecs, Repo, bad_revision, check_revision};
use crate::text::{Paged, iso_time, parse_when};
use crate::{Failure, GitServer};

/// Commits returned by log when max_count is not given.
const DEFAULT_LOG: usize = 50;
/// Most commits log returns in one call.
const MAX_LOG: usize = 10_000;

/// Arguments of `log`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct LogArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// Where to start (default HEAD): a branch, tag, hash, HEAD~n, or a range A..B (commits in B
    /// not in A) or A...B (in either, not both).
    #[serde(default)]
    pub rev: Option<String>,
    /// Only commits that changed these files or directories (relative to the repository's top
    /// level; literal names).
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// Only commits whose author name or email contains this text (case-insensitive).
    #[serde(default)]
    pub author: Option<String>,
    /// Only commits whose message contains this text (case-insensitive, plain text, not a regex).
    #[serde(default)]
    pub grep: Option<String>,
    /// Only commits made at or after this time: 2024-05-01, 2024-05-01T12:00:00Z, or '2 weeks ago'.
    #[serde(default)]
    pub since: Option<String>,
    /// Only commits made at or before this time (same forms as since).
    #[serde(default)]
    pub until: Option<String>,
    /// Most commits to return (default 50, at most 10000).
    #[serde(default)]
    pub max_count: Option<u64>,
    /// Matching commits to skip first (pass back next_skip to page).
    #[serde(default)]
    pub skip: Option<u64>,
}

/// Result of `log`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LogOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// Commits, newest first.
    pub commits: Vec<CommitOut>,
    /// True when more matching commits follow; continue with skip = next_skip.
    pub truncated: bool,
    /// skip for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_skip: Option<u64>,
}

/// Arguments of `show`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ShowArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// What to show (default HEAD): a commit (branch, tag, hash, HEAD~n, stash@{0}), or a file or
    /// directory at a revision as REV:path (e.g. HEAD~2:src/main.rs).
    #[serde(default)]
    pub rev: Option<String>,
    /// Only the diff of these files or directories (literal names).
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// Lines of context around each change (default 3).
    #[serde(default)]
    pub context_lines: Option<u32>,
    /// Only the changed files with line counts, no diff text.
    #[serde(default)]
    pub stat_only: Option<bool>,
    /// Character offset into the diff or file text (pass back next_offset to continue).
    #[serde(default)]
    pub offset: Option<u64>,
    /// Most characters of text to return (capped by the server's budget).
    #[serde(default)]
    pub max_chars: Option<u64>,
}

/// A commit in full.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CommitDetail {
    /// Full hash.
    pub hash: String,
    /// Parent hashes (two or more for a merge).
    pub parents: Vec<String>,
    /// Author name.
    pub author: String,
    /// Author email.
    pub email: String,
    /// Author date, RFC 3339.
    pub date: String,
    /// Committer name.
    pub committer: String,
    /// Committer email.
    pub committer_email: String,
    /// Commit date, RFC 3339.
    pub committer_date: String,
    /// The whole message.
    pub message: String,
}

/// An annotated tag.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TagDetail {
    /// Tag name.
    pub name: String,
    /// Who tagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tagger: Option<String>,
    /// When, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// The tag message.
    pub message: String,
}

/// An entry of a directory shown with REV:path.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TreeEntryOut {
    /// Name.
    pub name: String,
    /// `file`, `directory`, `symlink`, `submodule`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Result of `show`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ShowOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// `commit`, `file` or `directory`.
    pub kind: String,
    /// The commit (for commits and tags).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitDetail>,
    /// The annotated tag that was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<TagDetail>,
    /// What the diff compares against: the first parent, or nothing for a root commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_against: Option<String>,
    /// Changed files (at most 1000; see files_total).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileOut>>,
    /// Number of changed files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_total: Option<usize>,
    /// Unified diff of the commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Lines added (with stat_only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additions: Option<usize>,
    /// Lines deleted (with stat_only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletions: Option<usize>,
    /// A file's text at that revision (REV:path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// True when the file is binary (no content shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary: Option<bool>,
    /// File size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// A directory's entries at that revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<TreeEntryOut>>,
    /// True when the text was cut; continue with offset = next_offset.
    pub truncated: bool,
    /// Offset to pass back for the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
}

/// Arguments of `blame`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct BlameArgs {
    /// Repository directory below the root (default: the root).
    #[serde(default)]
    pub repo: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// The file, relative to the repository's top level.
    pub path: String,
    /// First line (1-based, default 1).
    #[serde(default)]
    pub start_line: Option<u32>,
    /// Last line, inclusive (default the end of the file).
    #[serde(default)]
    pub end_line: Option<u32>,
    /// The revision whose lines are explained (default HEAD; uncommitted edits are not blamed).
    #[serde(default)]
    pub rev: Option<String>,
}

/// Consecutive lines last changed by one commit.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BlameHunkOut {
    /// The commit that last changed these lines.
    pub commit: String,
    /// Its author.
    pub author: String,
    /// Its author date, RFC 3339.
    pub date: String,
    /// Its subject.
    pub summary: String,
    /// First line number of the hunk.
    pub start_line: usize,
    /// The lines, joined by newlines.
    pub text: String,
}

/// Result of `blame`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BlameOut {
    /// The repository, relative to the root.
    pub repo: String,
    /// The file.
    pub path: String,
    /// The commit blamed from.
    pub rev: String,
    /// Lines in the file at that commit.
    pub total_lines: usize,
    /// Hunks in line order.
    pub hunks: Vec<BlameHunkOut>,
    /// True when the output budget cut the lines; continue with start_line = next_start_line.
    pub truncated: bool,
    /// Line to continue from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_start_line: Option<usize>,
}

#[tool_router(router = history_router, vis = "pub(crate)")]
impl GitServer {
    /// The commit history of a repository, newest first (hash, author, date, subject). Filter by
    /// paths, author, grep, dates; page with skip; rev: a branch, tag, hash or range like
    /// main..feature.
    #[tool(name = "log")]
    async fn git_log(&self, Parameters(a): Parameters<LogArgs>) -> Result<Json<LogOut>, Failure> {
        self.on_pool(a, Self::log_impl).await
    }

    /// One commit in full (message, author, parents, diff against the first parent), or a file or
    /// directory at a revision with rev="REV:path". Paged with offset.
    #[tool(name = "show")]
    async fn git_show(&self, Parameters(a): Parameters<ShowArgs>) -> Result<Json<ShowOut>, Failure> {
        self.on_pool(a, Self::show_impl).await
    }

    /// Who last changed each line of a committed file, and in which commit (hunks).
    /// start_line/end_line narrow it; rev blames an older version.
    #[tool(name = "blame")]
    async fn git_blame(&self, Parameters(a): Parameters<BlameArgs>) -> Result<Json<BlameOut>, Failure> {
        self.on_pool(a, Self::blame_impl).await
    }
}

/// The log's filters, parsed once.
struct Filters {
    author: Option<String>,
    grep: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
}

impl Filters {
    fn matches(&self, c: &Commit<'_>) -> bool {
        let t = c.time().seconds();
        if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t > u) {
            return false;
        }
        if let Some(needle) = &self.author {
            let a = c.author();
            let hay = format!("{} <{}>", lossy(a.name_bytes()), lossy(a.email_bytes())).to_lowercase();
            if !hay.contains(needle) {
                return false;
            }
        }
        if let Some(needle) = &self.grep
            && !lossy(c.message_bytes()).to_lowercase().contains(needle)
        {
            return false;
        }
        true
    }
}

impl GitServer {
    fn log_impl(&self, a: &LogArgs) -> Result<LogOut> {
        let repo = self.open_read(a.repo.as_deref(), a.root.as_deref())?;
        let specs = repo.pathspecs(self.policy(), a.paths.as_deref().unwrap_or_default())?;
        let lower = |s: &Option<String>| s.as_ref().filter(|s| !s.is_empty()).map(|s| s.to_lowercase());
        let filters = Filters {
            author: lower(&a.author),
            grep: lower(&a.grep),
            since: a.since.as_deref().map(|s| parse_when(s, "since")).transpose()?,
            until: a.until.as_deref().map(|s| parse_when(s, "until")).transpose()?,
        };
        let max = a.max_count.map_or(DEFAULT_LOG, |n| (n as usize).clamp(1, MAX_LOG));
        let skip = a.skip.unwrap_or(0) as usize;
        let mut out = LogOut { repo: repo.shown(), commits: Vec::new(), truncated: false, next_skip: None };
        let Some(mut walk) = walker(&repo, a.rev.as_deref())? else {
            return Ok(out);
        };
        let walk = std::iter::from_fn(|| walk.next_commit());
        let budget = self.budget(None);
        let (mut used, mut matched, mut older_in_a_row) = (0usize, 0usize, 0u32);
        for commit in walk {
            let commit = commit?;
            // Commits come newest first (by commit time); once a run of them is older than
            // `since`, nothing newer can follow except across clock skew, as git assumes too.
            if filters.since.is_some_and(|s| commit.time().seconds() < s) {
                older_in_a_row += 1;
                if older_in_a_row > 100 {
                    break;
                }
                continue;
            }
            older_in_a_row = 0;
            if !filters.matches(&commit) || (!specs.is_all() && !touches(&repo, &commit, &specs)?) {
                continue;
            }
            matched += 1;
            if matched <= skip {
                continue;
            }
            if out.commits.len() == max {
                out.truncated = true;
                break;
            }
            let entry = CommitOut::of(&commit);
            used += entry.weight();
            if used > budget && !out.commits.is_empty() {
                out.truncated = true;
                break;
            }
            out.commits.push(entry);
        }
        if out.truncated {
            out.next_skip = Some((skip + out.commits.len()) as u64);
        }
        Ok(out)
    }

    fn show_impl(&self, a: &ShowArgs) -> Result<ShowOut> {
        let repo = self.open_read(a.repo.as_deref(), a.root.as_deref())?;
        let spec = a.rev.as_deref().unwrap_or("HEAD");
        self.check_shown_path(&repo, spec)?;
        let object = repo.object(spec, "rev")?;
        let offset = a.offset.unwrap_or(0) as usize;
        let budget = self.budget(a.max_chars);
        let mut out = ShowOut {
            repo: repo.shown(),
            kind: "commit".into(),
            commit: None,
            tag: None,
            diff_against: None,
            files: None,
            files_total: None,
            diff: None,
            additions: None,
            deletions: None,
            content: None,
            binary: None,
            size: None,
            entries: None,
            truncated: false,
            next_offset: None,
        };
        match object.kind() {
            Some(ObjectType::Blob) => {
                let blob = object.peel_to_blob().map_err(|e| repo.err(e, "reading the file"))?;
                out.kind = "file".into();
                out.size = Some(blob.size() as u64);
                let bytes = blob.content();
                if blob.is_binary() {
                    out.binary = Some(true);
                } else {
                    let mut paged = Paged::new(offset, budget);
                    for line in String::from_utf8_lossy(bytes).split_inclusive('\n') {
                        if !paged.push(line) {
                            break;
                        }
                    }
                    out.next_offset = paged.next_offset.map(|n| n as u64);
                    out.truncated = out.next_offset.is_some();
                    out.content = Some(paged.text);
                }
                return Ok(out);
            }
            Some(ObjectType::Tree) => {
                let tree = object.peel_to_tree().map_err(|e| repo.err(e, "reading the directory"))?;
                out.kind = "directory".into();
                let mut entries: Vec<TreeEntryOut> = tree
                    .iter()
                    .map(|e| TreeEntryOut {
                        name: lossy(e.name_bytes()),
                        kind: match (e.kind(), e.filemode()) {
                            (Some(ObjectType::Tree), _) => "directory",
                            (Some(ObjectType::Commit), _) => "submodule",
                            (_, 0o120000) => "symlink",
                            _ => "file",
                        }
                        .into(),
                    })
                    .collect();
                out.truncated = super::read::cut_to_budget(&mut entries, budget, |e| e.name.len() + 30);
                out.entries = Some(entries);
                return Ok(out);
            }
            Some(ObjectType::Tag) => {
                if let Some(tag) = object.as_tag() {
                    let tagger = tag.tagger();
                    out.tag = Some(TagDetail {
                        name: lossy(tag.name_bytes()),
                        tagger: tagger
                            .as_ref()
                            .map(|t| format!("{} <{}>", lossy(t.name_bytes()), lossy(t.email_bytes()))),
                        date: tagger.as_ref().map(|t| iso_time(t.when())),
                        message: tag.message_bytes().map(lossy).unwrap_or_default(),
                    });
                }
            }
            _ => {}
        }
        let commit = repo.commit(spec, "rev")?;
        let specs = repo.pathspecs(self.policy(), a.paths.as_deref().unwrap_or_default())?;
        let tree = commit.tree().map_err(|e| repo.err(e, "reading the commit"))?;
        let parent = commit.parent(0).ok();
        let parent_tree =
            parent.as_ref().map(Commit::tree).transpose().map_err(|e| repo.err(e, "reading the parent"))?;
        out.diff_against = Some(match &parent {
            Some(p) if commit.parent_count() > 1 => format!("first parent {} (this is a merge)", p.id()),
            Some(p) => format!("parent {}", p.id()),
            None => "nothing (root commit)".to_string(),
        });
        let mut opts = options(&specs, a.context_lines);
        let mut diff = repo
            .git
            .diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), Some(&mut opts))
            .map_err(|e| repo.err(e, "diffing the commit"))?;
        find_renames(&repo, &mut diff)?;
        let r = render(&repo, self.policy(), &diff, a.stat_only.unwrap_or(false), offset, budget)?;
        out.commit = Some(detail(&commit));
        out.files = Some(r.files);
        out.files_total = Some(r.files_total);
        out.diff = r.text;
        out.additions = r.additions;
        out.deletions = r.deletions;
        out.truncated = r.next_offset.is_some();
        out.next_offset = r.next_offset.map(|n| n as u64);
        Ok(out)
    }

    /// For `REV:path`, applies the path checks (deny list, `.git`) to the path part.
    fn check_shown_path(&self, repo: &Repo, spec: &str) -> Result<()> {
        let Some((_, path)) = spec.split_once(':') else {
            return Ok(());
        };
        // `:N:path` names a stage of the index.
        let path = match path.split_once(':') {
            Some((stage, rest)) if spec.starts_with(':') && stage.len() == 1 => rest,
            _ => path,
        };
        if path.is_empty() {
            return Ok(());
        }
        if repo.protected(self.policy(), Path::new(path)) {
            return Err(bastion_policy::protect::protected_error(&bastion_policy::error::truncate_for_message(path)));
        }
        if path.split('/').any(|c| c.eq_ignore_ascii_case(".git")) || repo.denied(self.policy(), Path::new(path)) {
            return Err(Error::new(
                ErrorCode::DeniedByGlob,
                format!(
                    "'{}' is on the server's deny list (secrets or git metadata); it cannot be shown",
                    bastion_policy::error::truncate_for_message(path)
                ),
            ));
        }
        Ok(())
    }

    fn blame_impl(&self, a: &BlameArgs) -> Result<BlameOut> {
        let repo = self.open_read(a.repo.as_deref(), a.root.as_deref())?;
        let path: PathBuf = repo.path(self.policy(), &a.path)?;
        if path.as_os_str().is_empty() {
            return Err(Error::new(ErrorCode::InvalidPath, "blame needs a file path, not the whole work tree"));
        }
        let commit = match &a.rev {
            Some(rev) => repo.commit(rev, "rev")?,
            None => repo.head_commit()?.ok_or_else(|| {
                Error::new(ErrorCode::NotFound, "the repository has no commits yet; there is nothing to blame")
            })?,
        };
        let shown_path = path.to_string_lossy().into_owned();
        let entry = commit.tree().and_then(|t| t.get_path(&path)).map_err(|_| {
            Error::new(
                ErrorCode::NotFound,
                format!(
                    "'{shown_path}' is not in commit {}; blame explains committed files (check the name with show rev=\"{}:\")",
                    commit.id(),
                    commit.id()
                ),
            )
        })?;
        let blob = entry.to_object(&repo.git).and_then(|o| o.peel_to_blob()).map_err(|_| {
            Error::new(ErrorCode::NotARegularFile, format!("'{shown_path}' is a directory, not a file"))
        })?;
        if blob.is_binary() {
            return Err(Error::new(
                ErrorCode::BinaryFile,
                format!("'{shown_path}' is binary; there are no lines to blame"),
            ));
        }
        let text = String::from_utf8_lossy(blob.content());
        let lines: Vec<&str> = text.lines().collect();
        let total = lines.len();
        let mut out = BlameOut {
            repo: repo.shown(),
            path: shown_path,
            rev: commit.id().to_string(),
            total_lines: total,
            hunks: Vec::new(),
            truncated: false,
            next_start_line: None,
        };
        if total == 0 {
            return Ok(out);
        }
        let start = a.start_line.map_or(1, |s| s.max(1) as usize);
        let end = a.end_line.map_or(total, |e| (e as usize).min(total));
        if start > total || end < start {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("lines {start}..{end} are not in the file, which has {total} lines"),
            ));
        }
        let mut opts = BlameOptions::new();
        opts.newest_commit(commit.id()).min_line(start).max_line(end);
        let blame = repo.git.blame_file(&path, Some(&mut opts)).map_err(|e| repo.err(e, "blaming"))?;
        let budget = self.budget(None);
        let mut used = 0usize;
        let mut summaries: std::collections::HashMap<Oid, (String, String, String)> = Default::default();
        'hunks: for hunk in blame.iter() {
            let id = hunk.final_commit_id();
            let (author, date, summary) = summaries
                .entry(id)
                .or_insert_with(|| match repo.git.find_commit(id) {
                    Ok(c) => (
                        lossy(c.author().name_bytes()),
                        iso_time(c.author().when()),
                        c.summary_bytes().map(lossy).unwrap_or_default(),
                    ),
                    Err(_) => Default::default(),
                })
                .clone();
            let first = hunk.final_start_line().max(start);
            let last = (hunk.final_start_line() + hunk.lines_in_hunk()).saturating_sub(1).min(end);
            let mut text = String::new();
            used += author.len() + summary.len() + 120;
            for n in first..=last {
                let line = lines.get(n - 1).copied().unwrap_or_default();
                used += line.len() + 1;
                if used > budget && !(out.hunks.is_empty() && text.is_empty()) {
                    if !text.is_empty() {
                        out.hunks.push(BlameHunkOut {
                            commit: id.to_string(),
                            author,
                            date,
                            summary,
                            start_line: first,
                            text,
                        });
                    }
                    out.truncated = true;
                    out.next_start_line = Some(n);
                    break 'hunks;
                }
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(line);
            }
            if first <= last {
                out.hunks.push(BlameHunkOut { commit: id.to_string(), author, date, summary, start_line: first, text });
            }
        }
        Ok(out)
    }
}

/// Commits newest first, the way `git log` orders them by default: a queue by commit time,
/// fed lazily with parents. Reading only as many commits as are shown keeps a 10-commit log of a
/// long history cheap (libgit2's time-sorted revwalk reads the whole history before the first
/// commit). Ranges need libgit2's limited walk, which reads everything anyway.
enum Walk<'r> {
    Lazy { repo: &'r Repo, queue: BinaryHeap<Queued<'r>>, seen: HashSet<Oid> },
    Limited { repo: &'r Repo, walk: git2::Revwalk<'r> },
}

/// A commit waiting in the lazy walk's queue, newest (by commit time, then id) first. It is kept
/// loaded: it was read to learn its time, and is read again to be listed.
struct Queued<'r> {
    time: i64,
    id: Oid,
    commit: Commit<'r>,
}

impl Queued<'_> {
    fn key(&self) -> (i64, Oid) {
        (self.time, self.id)
    }
}

impl PartialEq for Queued<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Queued<'_> {}

impl PartialOrd for Queued<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl<'r> Queued<'r> {
    fn new(commit: Commit<'r>) -> Self {
        Queued { time: commit.time().seconds(), id: commit.id(), commit }
    }
}

impl<'r> Walk<'r> {
    fn next_commit(&mut self) -> Option<Result<Commit<'r>>> {
        match self {
            Walk::Lazy { repo, queue, seen } => {
                let Queued { commit, .. } = queue.pop()?;
                for id in commit.parent_ids() {
                    // A parent that cannot be read (a shallow clone's boundary) ends that line
                    // of history, as in git.
                    if seen.insert(id)
                        && let Ok(parent) = repo.git.find_commit(id)
                    {
                        queue.push(Queued::new(parent));
                    }
                }
                Some(Ok(commit))
            }
            Walk::Limited { repo, walk } => {
                let oid = match walk.next()? {
                    Ok(oid) => oid,
                    Err(e) => return Some(Err(repo.err(e, "walking the history"))),
                };
                Some(repo.git.find_commit(oid).map_err(|e| repo.err(e, "reading a commit")))
            }
        }
    }
}

/// A walk from `rev` (default HEAD), newest first; `None` on an unborn branch.
fn walker<'r>(repo: &'r Repo, rev: Option<&str>) -> Result<Option<Walk<'r>>> {
    let start = match rev {
        None => match repo.head_commit()? {
            Some(c) => c,
            None => return Ok(None),
        },
        Some(spec) if spec.contains("..") => return limited(repo, spec).map(Some),
        Some(spec) => repo.commit(spec, "rev")?,
    };
    let seen = HashSet::from([start.id()]);
    let queue = BinaryHeap::from([Queued::new(start)]);
    Ok(Some(Walk::Lazy { repo, queue, seen }))
}

/// The walk of a range `A..B` (in B, not in A) or `A...B` (in either, not in both).
fn limited<'r>(repo: &'r Repo, spec: &str) -> Result<Walk<'r>> {
    let git_err = |e: git2::Error| repo.err(e, "walking the history");
    let mut walk = repo.git.revwalk().map_err(git_err)?;
    walk.set_sorting(Sort::TIME).map_err(git_err)?;
    check_revision(spec, "rev")?;
    let range = repo.git.revparse(spec).map_err(|e| bad_revision(spec, "rev", &e))?;
    let peel = |o: Option<&git2::Object<'_>>| -> Result<Oid> {
        o.and_then(|o| o.peel_to_commit().ok()).map(|c| c.id()).ok_or_else(|| {
            Error::new(ErrorCode::InvalidRevision, format!("both sides of the range '{spec}' must name commits"))
        })
    };
    let (from, to) = (peel(range.from())?, peel(range.to())?);
    walk.push(to).map_err(git_err)?;
    if range.mode().contains(RevparseMode::MERGE_BASE) {
        walk.push(from).map_err(git_err)?;
        if let Ok(base) = repo.git.merge_base(from, to) {
            walk.hide(base).map_err(git_err)?;
        }
    } else {
        walk.hide(from).map_err(git_err)?;
    }
    Ok(Walk::Limited { repo, walk })
}

/// Whether a commit changed any of `specs` relative to its parents. A merge counts only when it
/// differs from every parent (git log's default history simplification).
fn touches(repo: &Repo, commit: &Commit<'_>, specs: &Pathspecs) -> Result<bool> {
    let tree = commit.tree().map_err(|e| repo.err(e, "reading a commit"))?;
    let ids = |t: &git2::Tree<'_>| -> Vec<Option<(Oid, i32)>> {
        specs.paths.iter().map(|p| t.get_path(p).ok().map(|e| (e.id(), e.filemode()))).collect()
    };
    let mine = ids(&tree);
    if commit.parent_count() == 0 {
        return Ok(mine.iter().any(Option::is_some));
    }
    for parent in commit.parents() {
        let ptree = parent.tree().map_err(|e| repo.err(e, "reading a commit"))?;
        if ids(&ptree) == mine {
            return Ok(false);
        }
    }
    Ok(true)
}

fn detail(c: &Commit<'_>) -> CommitDetail {
    let (a, m) = (c.author(), c.committer());
    CommitDetail {
        hash: c.id().to_string(),
        parents: c.parent_ids().map(|p| p.to_string()).collect(),
        author: lossy(a.name_bytes()),
        email: lossy(a.email_bytes()),
        date: iso_time(a.when()),
        committer: lossy(m.name_bytes()),
        committer_email: lossy(m.email_bytes()),
        committer_date: iso_time(m.when()),
        message: lossy(c.message_bytes()),
    }
}
