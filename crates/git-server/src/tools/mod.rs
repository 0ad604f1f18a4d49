//! The tools, one module per family, and what they share: running libgit2 off the async
//! runtime, the output budget, and how a commit is summarised.

mod destructive;
mod diff;
mod history;
mod read;
mod write;

use bastion_policy::Result;
use schemars::JsonSchema;
use serde::Serialize;

use crate::GitServer;
use crate::repo::{self, Opened};
use crate::text::{hex, iso_time};

use bastion_server_kit::blocking;

impl GitServer {
    /// Runs a tool's libgit2 work for its arguments on the blocking pool and wraps the answer:
    /// every tool is `self.on_pool(args, Self::x_impl).await`.
    pub(crate) async fn on_pool<A: Send + 'static, T: Send + 'static>(
        &self,
        args: A,
        work: fn(&GitServer, &A) -> Result<T>,
    ) -> std::result::Result<bastion_server_kit::Json<T>, crate::Failure> {
        let this = self.clone();
        Ok(bastion_server_kit::Json(blocking(move || work(&this, &args)).await?))
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
