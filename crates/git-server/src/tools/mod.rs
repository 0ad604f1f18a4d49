//! The tools, one module per family, and what they share: running libgit2 off the async
//! runtime, the output budget, and how a commit is summarised.

mod destructive;
mod diff;
mod history;
mod read;
mod write;

use bastion_policy::Result;
use bastion_policy::redact::Redactor;
use schemars::JsonSchema;
use serde::Serialize;

use crate::GitServer;
use crate::repo::{self, Opened};
use crate::text::{hex, iso_time};

use bastion_server_kit::blocking;

impl GitServer {
    /// Runs a tool's libgit2 work for its arguments on the blocking pool and wraps the answer:
    /// every tool is `self.on_pool(args, Self::x_impl).await`.
    /// Repository text in the answer (diffs, messages, file contents, blamed lines) is
    /// redacted there, like fs reads and shell output: every answer type says what it holds
    /// ([`Redact`]), so a new tool cannot forget.
    pub(crate) async fn on_pool<A: Send + 'static, T: Redact + Send + 'static>(
        &self,
        args: A,
        work: fn(&GitServer, &A) -> Result<T>,
    ) -> std::result::Result<bastion_server_kit::Json<T>, crate::Failure> {
        let this = self.clone();
        let (out, redactions) = blocking(move || {
            let mut out = work(&this, &args)?;
            let n = out.redact(&this.policy().redactor);
            Ok((out, n))
        })
        .await?;
        bastion_server_kit::count_redactions(redactions);
        Ok(bastion_server_kit::Json(out))
    }

    /// The output budget for one result: the caller's request, capped by the policy.
    pub(crate) fn budget(&self, requested: Option<u64>) -> usize {
        self.policy().limits.budget(requested)
    }

    /// Opens the repository a write tool names, afresh (never kept for another call).
    pub(crate) fn open(&self, repo: Option<&str>, root: Option<&str>) -> Result<Opened<'_>> {
        repo::open(self.policy(), repo, root, None)
    }

    /// Opens the repository a read-only tool names, using the handle kept from an earlier call
    /// when it is still valid; the handle is kept again afterwards.
    pub(crate) fn open_read(&self, repo: Option<&str>, root: Option<&str>) -> Result<Opened<'_>> {
        repo::open(self.policy(), repo, root, Some(&self.repos))
    }
}

/// An answer that may carry text from the repository: secrets in it are replaced by markers
/// (`bastion_policy::redact`) before the model sees it.
pub(crate) trait Redact {
    /// Redacts every field holding repository text; returns how many secrets were replaced.
    fn redact(&mut self, r: &Redactor) -> usize;
}

/// Answers that hold only names, hashes, paths and counts.
macro_rules! nothing_to_redact {
    ($($t:ty),* $(,)?) => {
        $(impl Redact for $t {
            fn redact(&mut self, _: &Redactor) -> usize {
                0
            }
        })*
    };
}

nothing_to_redact!(
    read::StatusOut,
    write::AddOut,
    write::UnstageOut,
    write::CreateBranchOut,
    write::SwitchOut,
    write::StashPushOut,
    destructive::RestoreOut,
    destructive::ResetOut,
    destructive::DeleteBranchOut,
);

fn redact_opt(s: &mut Option<String>, r: &Redactor) -> usize {
    s.as_mut().map_or(0, |s| r.redact_string(s))
}

impl Redact for CommitOut {
    fn redact(&mut self, r: &Redactor) -> usize {
        r.redact_string(&mut self.subject)
    }
}

impl Redact for read::DiffOut {
    fn redact(&mut self, r: &Redactor) -> usize {
        redact_opt(&mut self.diff, r)
    }
}

impl Redact for read::BranchesOut {
    fn redact(&mut self, r: &Redactor) -> usize {
        self.branches.iter_mut().map(|b| b.commit.as_mut().map_or(0, |c| c.redact(r))).sum()
    }
}

impl Redact for read::TagsOut {
    fn redact(&mut self, r: &Redactor) -> usize {
        self.tags.iter_mut().map(|t| redact_opt(&mut t.message, r) + t.commit.as_mut().map_or(0, |c| c.redact(r))).sum()
    }
}

impl Redact for read::StashListOut {
    fn redact(&mut self, r: &Redactor) -> usize {
        self.stashes.iter_mut().map(|s| r.redact_string(&mut s.message)).sum()
    }
}

impl Redact for write::CommitResultOut {
    fn redact(&mut self, r: &Redactor) -> usize {
        r.redact_string(&mut self.subject)
    }
}

impl Redact for history::LogOut {
    fn redact(&mut self, r: &Redactor) -> usize {
        self.commits.iter_mut().map(|c| c.redact(r)).sum()
    }
}

impl Redact for history::ShowOut {
    fn redact(&mut self, r: &Redactor) -> usize {
        self.commit.as_mut().map_or(0, |c| r.redact_string(&mut c.message))
            + self.tag.as_mut().map_or(0, |t| r.redact_string(&mut t.message))
            + redact_opt(&mut self.diff, r)
            + redact_opt(&mut self.content, r)
    }
}

impl Redact for history::BlameOut {
    fn redact(&mut self, r: &Redactor) -> usize {
        // Hunks are redacted one by one: a secret spanning two hunks (a key block changed in
        // two commits) is caught by the line-level patterns only.
        self.hunks.iter_mut().map(|h| r.redact_string(&mut h.text) + r.redact_string(&mut h.summary)).sum()
    }
}

/// A commit in a list.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CommitOut {
    /// Full hash.
    pub hash: String,
    /// Author name.
    pub author: String,
    /// Author email.
    pub email: String,
    /// Author date, RFC 3339 in the author's time zone.
    pub date: String,
    /// First line of the message.
    pub subject: String,
}

impl CommitOut {
    pub(crate) fn of(c: &git2::Commit<'_>) -> Self {
        let author = c.author();
        CommitOut {
            hash: hex(c.id()),
            author: lossy(author.name_bytes()),
            email: lossy(author.email_bytes()),
            date: iso_time(author.when()),
            subject: c.summary_bytes().map(lossy).unwrap_or_default(),
        }
    }

    /// Characters this entry takes in the JSON result, roughly (for the output budget).
    pub(crate) fn weight(&self) -> usize {
        self.hash.len() + self.author.len() + self.email.len() + self.date.len() + self.subject.len() + 60
    }
}

/// Bytes as text, invalid UTF-8 replaced.
pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A path as text, invalid UTF-8 replaced.
pub(crate) fn lossy_path(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}
