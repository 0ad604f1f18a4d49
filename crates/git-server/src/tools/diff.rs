//! Turning a libgit2 diff into what the model reads: a list of changed files and unified text in
//! git's format, cut to the output budget with a continuation offset. Files on the policy's deny
//! list are listed, but their content is not shown.

use std::path::Path;

use bastion_policy::{Error, ErrorCode, Policy, Result};
use git2::{Delta, Diff, DiffFindOptions, DiffFormat, DiffOptions};
use schemars::JsonSchema;
use serde::Serialize;

use super::lossy_path;
use crate::repo::{Pathspecs, Repo};
use crate::text::Paged;

/// Most files listed in one result; `files_total` says how many changed.
const MAX_FILES: usize = 1000;

/// Most context lines around a change.
const MAX_CONTEXT: u32 = 10_000;

/// One changed file.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FileOut {
    /// Path (the new path for renames).
    pub path: String,
    /// The path before a rename or copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// `added`, `deleted`, `modified`, `renamed`, `copied`, `typechange` or `conflicted`.
    pub status: String,
    /// Lines added (with stat_only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additions: Option<usize>,
    /// Lines deleted (with stat_only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletions: Option<usize>,
    /// True for binary files (with stat_only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary: Option<bool>,
}

/// A rendered diff.
pub(crate) struct Rendered {
    pub(crate) files: Vec<FileOut>,
    pub(crate) files_total: usize,
    pub(crate) text: Option<String>,
    pub(crate) additions: Option<usize>,
    pub(crate) deletions: Option<usize>,
    pub(crate) next_offset: Option<usize>,
}

/// Diff options shared by every diff: literal pathspecs, the context, no external anything.
pub(crate) fn options(paths: &Pathspecs, context_lines: Option<u32>) -> DiffOptions {
    let mut o = DiffOptions::new();
    for p in &paths.paths {
        o.pathspec(p);
    }
    o.disable_pathspec_match(true).context_lines(context_lines.unwrap_or(3).min(MAX_CONTEXT));
    o
}

/// Detects renames the way `git diff` does by default.
pub(crate) fn find_renames(repo: &Repo, diff: &mut Diff<'_>) -> Result<()> {
    let mut find = DiffFindOptions::new();
    find.renames(true);
    diff.find_similar(Some(&mut find)).map_err(|e| repo.err(e, "detecting renames"))
}

pub(crate) fn status_name(d: Delta) -> &'static str {
    match d {
        Delta::Added | Delta::Untracked => "added",
        Delta::Deleted => "deleted",
        Delta::Renamed => "renamed",
        Delta::Copied => "copied",
        Delta::Typechange => "typechange",
        Delta::Conflicted => "conflicted",
        Delta::Unreadable => "unreadable",
        _ => "modified",
    }
}

/// The path of a delta's file for display (new side, falling back to the old one).
fn delta_paths<'a>(delta: &git2::DiffDelta<'a>) -> (Option<&'a Path>, Option<&'a Path>) {
    (delta.new_file().path(), delta.old_file().path())
}

/// Renders `diff`: the file list, then either per-file line counts (`stat_only`) or the unified
/// text from character `offset` on, at most `budget` characters.
pub(crate) fn render(
    repo: &Repo,
    policy: &Policy,
    diff: &Diff<'_>,
    stat_only: bool,
    offset: usize,
    budget: usize,
) -> Result<Rendered> {
    let files_total = diff.deltas().len();
    let mut files = Vec::with_capacity(files_total.min(MAX_FILES));
    for delta in diff.deltas().take(MAX_FILES) {
        let (new, old) = delta_paths(&delta);
        let path = new.or(old).map(lossy_path).unwrap_or_default();
        let old_path = matches!(delta.status(), Delta::Renamed | Delta::Copied).then(|| old.map(lossy_path)).flatten();
        files.push(FileOut {
            path,
            old_path,
            status: status_name(delta.status()).into(),
            additions: None,
            deletions: None,
            binary: None,
        });
    }
    if stat_only {
        let (mut adds, mut dels) = (0, 0);
        for (i, file) in files.iter_mut().enumerate() {
            let patch = git2::Patch::from_diff(diff, i).map_err(|e| repo.err(e, "computing line counts"))?;
            let binary = diff.get_delta(i).is_some_and(|d| d.flags().is_binary());
            let (a, d) = match patch {
                Some(p) => p.line_stats().map(|(_, a, d)| (a, d)).map_err(|e| repo.err(e, "computing line counts"))?,
                None => (0, 0),
            };
            adds += a;
            dels += d;
            file.additions = Some(a);
            file.deletions = Some(d);
            file.binary = Some(binary);
        }
        return Ok(Rendered {
            files,
            files_total,
            text: None,
            additions: Some(adds),
            deletions: Some(dels),
            next_offset: None,
        });
    }
    let mut paged = Paged::new(offset, budget);
    let mut hide = false;
    let mut line_buf = String::new();
    let printed = diff.print(DiffFormat::Patch, |delta, _hunk, line| {
        let origin = line.origin();
        if origin == 'F' {
            let (new, old) = delta_paths(&delta);
            hide = new.is_some_and(|p| repo.denied(policy, p)) || old.is_some_and(|p| repo.denied(policy, p));
            let header = String::from_utf8_lossy(line.content());
            if hide {
                let first = header.lines().next().unwrap_or_default();
                line_buf.clear();
                line_buf.push_str(first);
                line_buf.push_str("\n(content not shown: the path is on the server's deny list)\n");
                return paged.push(&line_buf);
            }
            return paged.push(&header);
        }
        if hide {
            return true;
        }
        let content = String::from_utf8_lossy(line.content());
        match origin {
            '+' | '-' | ' ' => {
                line_buf.clear();
                line_buf.push(origin);
                line_buf.push_str(&content);
                paged.push(&line_buf)
            }
            _ => paged.push(&content),
        }
    });
    if let Err(e) = printed
        && !paged.full()
    {
        return Err(repo.err(e, "printing the diff"));
    }
    if offset > 0 && offset > paged.position() {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!(
                "offset {offset} is past the end of the diff ({} characters); start again from 0",
                paged.position()
            ),
        ));
    }
    Ok(Rendered {
        files,
        files_total,
        text: Some(paged.text),
        additions: None,
        deletions: None,
        next_offset: paged.next_offset,
    })
}
