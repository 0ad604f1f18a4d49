//! The hub's configuration file (`bastion serve --config bastion.toml`): where to listen, how to
//! authenticate, and which upstreams to run. Flags given on the command line override it.
//!
//! ```toml
//! listen = "127.0.0.1:8765"
//! public_url = "https://hub.example.com/mcp"
//! auth = "tokens"            # or "none" (loopback listeners only)
//! roots = ["/home/me/proj"]  # for the built-in upstreams
//!
//! [[upstream]]               # none listed: fs, git and shell, read-only
//! name = "fs"
//! builtin = "fs"             # fs | git | shell: `bastion fs --root ROOT... ARGS...`
//! args = ["--allow-write"]
//!
//! [[upstream]]
//! name = "docs"              # [a-z][a-z0-9]{0,15}
//! command = "docs-mcp"       # any stdio MCP server
//! args = ["--stdio"]
//! env = { DOCS_DIR = "/srv/docs" }
//! ```

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::scope::valid_upstream_name;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// Public URL (tunnel or proxy).
    pub public_url: Option<String>,
    /// `tokens` (default) or `none`.
    #[serde(default)]
    pub auth: AuthMode,
    /// Roots of the built-in upstreams.
    #[serde(default)]
    pub roots: Vec<PathBuf>,
    /// Upstreams; empty means the default built-ins.
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
}

/// How HTTP requests are authenticated.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Bearer tokens.
    #[default]
    Tokens,
    /// None (loopback only).
    None,
}

/// One `[[upstream]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Namespace prefix.
    pub name: String,
    /// A built-in server: `fs`, `git` or `shell`.
    pub builtin: Option<String>,
    /// Any stdio MCP server.
    pub command: Option<String>,
    /// Arguments (after `--root ...` for built-ins).
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment for a command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl HubConfig {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> anyhow::Result<HubConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        HubConfig::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<HubConfig, String> {
        let config: HubConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut names = HashSet::new();
        for u in &config.upstreams {
            if !valid_upstream_name(&u.name) {
                return Err(format!("upstream name '{}' must match [a-z][a-z0-9]{{0,15}}", u.name));
            }
            if !names.insert(u.name.as_str()) {
                return Err(format!("upstream '{}' is defined twice", u.name));
            }
            match (&u.builtin, &u.command) {
                (Some(b), None) if ["fs", "git", "shell"].contains(&b.as_str()) => {
                    if !u.env.is_empty() {
                        return Err(format!("upstream '{}': env is only for command upstreams", u.name));
                    }
                }
                (Some(b), None) => {
                    return Err(format!("upstream '{}': unknown builtin '{b}' (fs, git, shell)", u.name));
                }
                (None, Some(c)) if !c.is_empty() => {}
                _ => return Err(format!("upstream '{}': set exactly one of builtin or command", u.name)),
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let c = HubConfig::parse(
            r#"
            listen = "127.0.0.1:9000"
            public_url = "https://hub.example.com/mcp"
            auth = "none"
            roots = ["/srv/p"]
            [[upstream]]
            name = "fs"
            builtin = "fs"
            args = ["--allow-write"]
            [[upstream]]
            name = "docs"
            command = "docs-mcp"
            env = { A = "1" }
            "#,
        )
        .unwrap();
        assert_eq!(c.listen, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(c.auth, AuthMode::None);
        assert_eq!(c.upstreams.len(), 2);
        assert_eq!(c.upstreams[1].env["A"], "1");
        let empty = HubConfig::parse("").unwrap();
        assert_eq!(empty.auth, AuthMode::Tokens);
        assert!(empty.upstreams.is_empty());
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, want) in [
            ("[[upstream]]\nname = \"My_fs\"\nbuiltin = \"fs\"", "must match"),
            ("[[upstream]]\nname = \"abcdefghijklmnopq\"\nbuiltin = \"fs\"", "must match"),
            ("[[upstream]]\nname = \"a\"\nbuiltin = \"fs\"\n[[upstream]]\nname = \"a\"\nbuiltin = \"git\"", "twice"),
            ("[[upstream]]\nname = \"a\"\nbuiltin = \"ftp\"", "unknown builtin"),
            ("[[upstream]]\nname = \"a\"", "exactly one"),
            ("[[upstream]]\nname = \"a\"\nbuiltin = \"fs\"\ncommand = \"x\"", "exactly one"),
            ("[[upstream]]\nname = \"a\"\ncommand = \"\"", "exactly one"),
            ("[[upstream]]\nname = \"a\"\nbuiltin = \"fs\"\nenv = { A = \"1\" }", "only for command"),
            ("auth = \"oauth\"", "unknown variant"),
            ("listen = \"nowhere\"", "invalid"),
            ("bogus = 1", "unknown field"),
            ("[[upstream]]\nname = \"a\"\ncommand = \"x\"\nurl = \"http://x\"", "unknown field"),
        ] {
            let e = HubConfig::parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
