//! `bastion-fs` is Bastion's filesystem MCP server: read, list, find, search, write, edit and
//! patch files beneath configured roots, with every path resolved by `bastion-policy`.
//!
//! The library exposes [`FsServer`], a [`BastionServer`] (its tools, its policy, and the client
//! roots hooks); `bastion-server-kit` makes it an rmcp `ServerHandler`, and the `bastion-fs`
//! binary (and `bastion fs`) serve it over stdio.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use bastion_fs::FsServer;
//! use bastion_policy::{Policy, PolicyConfig};
//! use bastion_server_kit::BastionServer;
//! use rmcp::ServiceExt;
//!
//! let policy = Policy::new(PolicyConfig { roots: vec!["/srv/project".into()], ..Default::default() })?;
//! FsServer::new(Arc::new(policy)).into_handler().serve(rmcp::transport::stdio()).await?.waiting().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod text;
mod tools;

use std::path::PathBuf;
use std::sync::Arc;

use bastion_policy::{Policy, Tier};
use bastion_server_kit::{ToolSpec, ToolTable};
use rmcp::RoleServer;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::service::NotificationContext;

pub use bastion_server_kit::{BastionServer, Failure, error_result, init_logging};
pub use cli::{FsArgs, run_stdio};

/// Every tool this server offers, with its tier and title. The tier decides whether the tool is
/// offered, and its MCP annotations.
pub const TOOLS: ToolTable = ToolTable::new(
    "fs",
    &[
        ToolSpec::new("read_file", Tier::Read, "Read file"),
        ToolSpec::new("read_many_files", Tier::Read, "Read several files"),
        ToolSpec::new("list_directory", Tier::Read, "List directory"),
        ToolSpec::new("file_info", Tier::Read, "File information"),
        ToolSpec::new("list_roots", Tier::Read, "List allowed roots"),
        ToolSpec::new("find_files", Tier::Read, "Find files by name"),
        ToolSpec::new("search_text", Tier::Read, "Search file contents"),
        ToolSpec::new("write_file", Tier::Write, "Write file").idempotent(),
        ToolSpec::new("edit_file", Tier::Write, "Edit file"),
        ToolSpec::new("apply_patch", Tier::Write, "Apply unified diff"),
        ToolSpec::new("create_directory", Tier::Write, "Create directory").idempotent(),
        ToolSpec::new("move_path", Tier::Write, "Move or rename"),
        ToolSpec::new("delete_path", Tier::Destructive, "Delete file or directory").idempotent(),
    ],
);

/// The tier of a tool, `None` for an unknown name.
pub fn tier_of(tool: &str) -> Option<Tier> {
    TOOLS.tier_of(tool)
}

/// The filesystem MCP server.
#[derive(Clone)]
pub struct FsServer {
    policy: Arc<Policy>,
    tool_router: Arc<ToolRouter<FsServer>>,
    /// Held for writing while the client's roots are fetched, so no call runs on wider roots;
    /// calls hold it for reading and so run concurrently.
    roots_gate: Arc<tokio::sync::RwLock<()>>,
}

impl FsServer {
    /// A server enforcing `policy`.
    pub fn new(policy: Arc<Policy>) -> Self {
        // The routes move over as they are: `merge` would check each tool's name a second time
        // (rmcp builds a set of the allowed characters for every check), and none is disabled.
        let mut router = Self::read_router();
        router.map.extend(Self::search_router().map);
        // A tool above the tier cap is neither listed nor called (`ToolTable` refuses it before
        // the router is asked), and the cap is fixed for the policy's life: under a read-only
        // cap the write tools' routes (and the schemas built for them, a third of start-up
        // after the policy) would never be used.
        if policy.max_tier >= Tier::Write {
            router.map.extend(Self::write_router().map);
        }
        FsServer { policy, tool_router: Arc::new(router), roots_gate: Arc::new(tokio::sync::RwLock::new(())) }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    #[allow(deprecated)] // roots/list is deprecated (SEP-2577) but legacy clients still offer it.
    async fn refresh_client_roots(&self, peer: rmcp::Peer<RoleServer>) {
        let wants = peer.peer_info().is_some_and(|info| info.capabilities.roots.is_some());
        if !wants {
            return;
        }
        let listed = peer.list_roots().await;
        match listed {
            Ok(list) => {
                let client: Vec<(PathBuf, Option<String>)> =
                    list.roots.iter().filter_map(|r| file_uri_to_path(&r.uri).map(|p| (p, r.name.clone()))).collect();
                for note in self.policy.narrow_to_client_roots(&client) {
                    tracing::warn!("{note}");
                }
                let names: Vec<String> = self.policy.roots().iter().map(|r| r.name().to_string()).collect();
                tracing::info!(roots = ?names, "roots narrowed to the client's declared roots");
            }
            Err(e) => tracing::debug!(error = %e, "client did not answer roots/list; keeping configured roots"),
        }
    }
}

/// Parses a `file://` URI into a path (percent-decoded). Other schemes are ignored.
fn file_uri_to_path(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("file://")?;
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return None;
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    Some(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

impl BastionServer for FsServer {
    const NAME: &'static str = "bastion-fs";
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

    // Calls wait while the client's roots are being fetched, so none runs on wider roots.
    fn call_gate(&self) -> Option<&tokio::sync::RwLock<()>> {
        Some(&self.roots_gate)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let guard = self.roots_gate.clone().write_owned().await;
        let this = self.clone();
        tokio::spawn(async move {
            let _guard = guard;
            // A client that never answers must not hold every call hostage.
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(5), this.refresh_client_roots(context.peer)).await;
        });
    }

    async fn on_roots_list_changed(&self, context: NotificationContext<RoleServer>) {
        let this = self.clone();
        tokio::spawn(async move {
            let _guard = this.roots_gate.clone().write_owned().await;
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(5), this.refresh_client_roots(context.peer)).await;
        });
    }
}

const INSTRUCTIONS: &str = concat!(
    "Bastion filesystem server. Paths are relative to the first root (see list_roots) or absolute inside a root. \
Use find_files to locate files by name, search_text to search contents, read_file with offset/limit for large files. \
Every result says truncated=true when cut; pass the returned next_offset / cursor back to continue. \
Errors start with a stable code (path_outside_root, denied_by_glob, not_found, edit_mismatch, ...) followed by what to do instead. \
Secrets (.env, keys, credentials) and .git internals are protected by policy: do not try to work around denied_by_glob. ",
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
    fn file_uris() {
        assert_eq!(file_uri_to_path("file:///srv/my%20proj"), Some(PathBuf::from("/srv/my proj")));
        assert_eq!(file_uri_to_path("file://localhost/srv"), Some(PathBuf::from("/srv")));
        assert_eq!(file_uri_to_path("https://x/y"), None);
        assert_eq!(file_uri_to_path("file:///bad%zz"), None);
    }

    #[test]
    fn every_tool_has_a_tier_and_valid_name() {
        for spec in TOOLS.tools {
            let name = spec.name;
            assert!(name.len() <= 64 && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
    }
}
