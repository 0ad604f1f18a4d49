//! The hub's configuration file (`bastion serve --config bastion.toml`): where to listen, how to
//! authenticate, and which upstreams to run. Flags given on the command line override it.
//!
//! ```toml
//! listen = "127.0.0.1:8765"
//! public_url = "https://hub.example.com/mcp"   # with auth on: OAuth mode (see [oauth])
//! auth = "tokens"            # or "none" (loopback listeners only)
//! roots = ["/home/me/proj"]  # for the built-in upstreams
//!
//! [[upstream]]               # none listed: fs, git and shell, read-only
//! name = "fs"
//! builtin = "fs"             # fs | git | shell: `bastion fs --root ROOT... ARGS...`
//! args = ["--allow-write"]
//! deny_tools = ["move_*"]    # globs on the upstream's own tool names; also allow_tools
//!
//! [[upstream]]               # the machine itself: never started unless listed
//! name = "host"
//! builtin = "host"           # `bastion host ARGS...` (no roots; [ops] in its --config)
//! args = ["--allow-operate", "--config", "/etc/bastion/host.toml"]
//!
//! [[upstream]]
//! name = "other"
//! required = false           # /readyz does not wait for it
//! call_timeout = "30s"
//! url = "https://other.example/mcp"   # a remote MCP server over streamable HTTP
//! bearer_token_env = "OTHER_TOKEN"    # the token is read from this variable
//! ping_interval = "15s"               # how often its tools are listed again
//!
//! [oauth]                    # only with public_url (OAuth mode); every key optional
//! access_token_ttl = "1h"
//! refresh_token_ttl = "30d"
//! code_ttl = "10m"           # at most 10m
//! cimd_allow_private = []    # hosts whose client metadata documents may be on private addresses
//! cimd_extra_ca = []         # PEM files trusted (besides the system's) when fetching them
//!
//! [[oauth.client]]           # a client with a fixed client_id (no registration needed)
//! client_id = "my-app"
//! client_name = "My app"
//! redirect_uris = ["https://my-app.example/callback"]
//!
//! [approval]                 # who decides what: see bastion_policy::approval
//! approval_timeout = "5m"    # defaults: ask for destructive calls and execute-on-open files
//! mode = "hold"              # or "return": approval_pending, then the same call retried
//!
//! [[approval.rule]]          # ordered; the first match decides
//! server = "shell"
//! programs = ["cargo"]
//! action = "allow"           # allow | ask | deny
//!
//! max_tool_name = 48        # longest tool name offered (at most 64); longer ones are reported
//! tool_search = "auto"       # off (default) | on | auto: find_tools + call_tool instead of the list
//! tool_search_budget = 30000 # auto: on when a caller's tools/list would pass this many bytes
//! pinned_tools = ["fs__read_file"]   # listed beside the search tools
//!
//! [[alias]]                  # offer an upstream's tool under another name
//! upstream = "docs"
//! tool = "searchTheWholeDocumentationSite"   # the upstream's own name for it
//! name = "docs__search"      # any valid tool name, with or without a prefix
//!
//! [profile.web]              # also served at /mcp/web: see crate::profile
//! roots = ["/home/me/web"]
//! upstreams = ["fs", "git"]
//!
//! [[upstream]]
//! name = "docs"              # [a-z][a-z0-9]{0,15}
//! command = "docs-mcp"       # any stdio MCP server
//! args = ["--stdio"]
//! env = { DOCS_DIR = "/srv/docs" }
//! pass_env = ["DOCS_TOKEN"]  # from the hub's environment (which is otherwise not passed)
//! sandbox = { read = ["/srv/docs"], write = [], network = false }   # or `false`: uncontained
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
    /// Public URL (tunnel or proxy); with authentication on, OAuth mode.
    pub public_url: Option<String>,
    /// `tokens` (default) or `none`.
    #[serde(default)]
    pub auth: AuthMode,
    /// Roots of the built-in upstreams.
    #[serde(default)]
    pub roots: Vec<PathBuf>,
    /// Where tokens and OAuth state are kept: unset, the SQLite file in the state directory;
    /// `postgres://…` (without a password), `env:NAME` or `file:/path`, a PostgreSQL database
    /// that several hubs share.
    pub store: Option<String>,
    /// The key `--stateful` session ids are sealed with, shared by every replica: `env:NAME` or
    /// `file:/path` (never the key itself), see [`crate::session`].
    pub sealing_key: Option<String>,
    /// Serve MCP sessions (stateful streamable HTTP) instead of stateless requests.
    #[serde(default)]
    pub stateful: bool,
    /// Longest a tool call may take (humantime: `90s`, `15m`).
    #[serde(default, with = "humantime_serde")]
    pub call_timeout: Option<std::time::Duration>,
    /// Upstreams; empty means the default built-ins.
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
    /// OAuth settings (used in OAuth mode, that is with a public URL).
    #[serde(default)]
    pub oauth: OAuthConfig,
    /// Approval rules (`[approval]`, `[[approval.rule]]`; see `bastion_policy::approval`),
    /// enforced by the hub for every upstream.
    #[serde(default)]
    pub approval: bastion_policy::ApprovalConfig,
    /// Rate limits and caps of the HTTP front (`[limits]`; see [`crate::limits`]).
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
    /// When the audit journal rotates (`[journal]`: `max_bytes`, `keep`).
    #[serde(default)]
    pub journal: bastion_policy::audit::Rotation,
    /// Offer the hub's own `search` and `fetch` (ChatGPT deep research); default: on in OAuth
    /// mode (a public URL with authentication on).
    pub search_fetch: Option<bool>,
    /// Longest tool name offered (default 48, at most 64).
    #[serde(default)]
    pub max_tool_name: Option<usize>,
    /// `[[alias]]`: tools offered under a name of the operator's choosing.
    #[serde(default, rename = "alias")]
    pub aliases: Vec<AliasConfig>,
    /// `off` (default), `on` or `auto`: `find_tools` and `call_tool` instead of every tool.
    #[serde(default)]
    pub tool_search: crate::toolsearch::Mode,
    /// Bytes of `tools/list` above which `auto` turns search on (default 30 000).
    #[serde(default)]
    pub tool_search_budget: Option<usize>,
    /// Tools listed beside the search tools (their offered names).
    #[serde(default)]
    pub pinned_tools: Vec<String>,
    /// `[profile.NAME]`: named tool surfaces served at `/mcp/NAME` (see [`crate::profile`]).
    #[serde(default, rename = "profile")]
    pub profiles: BTreeMap<String, crate::profile::ProfileConfig>,
}

/// One `[[alias]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasConfig {
    /// The upstream whose tool is renamed.
    pub upstream: String,
    /// The tool's own name on that upstream.
    pub tool: String,
    /// The name to offer it under.
    pub name: String,
}

impl HubConfig {
    /// The tool search settings.
    pub fn tool_search(&self) -> crate::toolsearch::ToolSearch {
        crate::toolsearch::ToolSearch {
            mode: self.tool_search,
            budget: self.tool_search_budget.unwrap_or(crate::toolsearch::DEFAULT_BUDGET),
            pinned: self.pinned_tools.clone(),
        }
    }

    /// The naming of offered tools: `max_tool_name` and the aliases (checked by [`HubConfig::parse`]).
    pub fn naming(&self) -> crate::scope::Naming {
        crate::scope::Naming {
            max_len: self.max_tool_name.unwrap_or(crate::scope::DEFAULT_MAX_TOOL_NAME),
            aliases: self
                .aliases
                .iter()
                .map(|a| crate::scope::Alias {
                    upstream: a.upstream.clone(),
                    tool: a.tool.clone(),
                    name: a.name.clone(),
                })
                .collect(),
        }
    }
}

/// The `[oauth]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// Access token lifetime (default 1h).
    #[serde(default, with = "humantime_serde")]
    pub access_token_ttl: Option<std::time::Duration>,
    /// Refresh token lifetime (default 30d; each rotation starts a new period).
    #[serde(default, with = "humantime_serde")]
    pub refresh_token_ttl: Option<std::time::Duration>,
    /// Authorization code lifetime (default and maximum 10m).
    #[serde(default, with = "humantime_serde")]
    pub code_ttl: Option<std::time::Duration>,
    /// Hosts whose client metadata documents may be on private addresses.
    #[serde(default)]
    pub cimd_allow_private: Vec<String>,
    /// Extra CA certificates (PEM files) for fetching client metadata documents.
    #[serde(default)]
    pub cimd_extra_ca: Vec<PathBuf>,
    /// Clients with a fixed `client_id`.
    #[serde(default, rename = "client")]
    pub clients: Vec<bastion_auth::StaticClient>,
}

impl OAuthConfig {
    /// The authorization server's settings for this public URL and state directory.
    pub fn settings(&self, public_url: &str, state_dir: &Path) -> Result<bastion_auth::Settings, String> {
        let mut s = bastion_auth::Settings::new(public_url, state_dir)?;
        if let Some(d) = self.access_token_ttl {
            s.lifetimes.access = d;
        }
        if let Some(d) = self.refresh_token_ttl {
            s.lifetimes.refresh = d;
        }
        if let Some(d) = self.code_ttl {
            s.lifetimes.code = d;
        }
        s.cimd_allow_private = self.cimd_allow_private.clone();
        s.cimd_extra_ca = self.cimd_extra_ca.clone();
        s.clients = self.clients.clone();
        s.validate()?;
        Ok(s)
    }

    /// Whether anything was set (a table without `public_url` is then worth a warning).
    pub fn is_set(&self) -> bool {
        self.access_token_ttl.is_some()
            || self.refresh_token_ttl.is_some()
            || self.code_ttl.is_some()
            || !self.cimd_allow_private.is_empty()
            || !self.cimd_extra_ca.is_empty()
            || !self.clients.is_empty()
    }
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
    /// A built-in server: `fs`, `git`, `shell` or `host`.
    pub builtin: Option<String>,
    /// Any stdio MCP server.
    pub command: Option<String>,
    /// A remote MCP server over streamable HTTP (`https://host/mcp`).
    pub url: Option<String>,
    /// Name of an environment variable holding the bearer token for `url` (kept out of the file).
    pub bearer_token_env: Option<String>,
    /// A remote Bastion host reached with OAuth client credentials: the machine client's id
    /// there (`bastion client create --machine` on that host).
    pub client_id: Option<String>,
    /// Its secret: `env:NAME` or `file:/path`, never in clear (refused at load).
    pub client_secret: Option<String>,
    /// Scopes to ask the host for (space-separated; default: all of the client's).
    pub client_scope: Option<String>,
    /// Mutual TLS to a `url` upstream: the CA certificates (PEM file) its server certificate
    /// must chain to (instead of the system's roots).
    pub tls_ca: Option<PathBuf>,
    /// Mutual TLS: the hub's client certificate chain (PEM file) presented to the upstream.
    pub tls_client_cert: Option<PathBuf>,
    /// Mutual TLS: its private key, `file:/path` or `env:NAME` (never in clear).
    pub tls_client_key: Option<String>,
    /// Arguments (after `--root ...` for built-ins).
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment for a command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Variables of the hub's environment a command also gets, besides the allowlist of
    /// [`crate::contain::ENV_ALLOWLIST`] (never `BASTION_*`).
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// Containment of a command (see [`crate::contain`]): `true` (the default), `false`, or
    /// `{ read = [...], write = [...], network = true|false }`.
    #[serde(default)]
    pub sandbox: crate::contain::SandboxSetting,
    /// Globs on the upstream's tool names: only these are offered (default: all).
    #[serde(default)]
    pub allow_tools: Vec<String>,
    /// Globs on the upstream's tool names: these are never offered.
    #[serde(default)]
    pub deny_tools: Vec<String>,
    /// Whether `/readyz` waits for this upstream (default: yes).
    #[serde(default = "yes")]
    pub required: bool,
    /// Longest a call to this upstream may take (default: the hub's `call_timeout`).
    #[serde(default, with = "humantime_serde")]
    pub call_timeout: Option<std::time::Duration>,
    /// How often a `url` upstream's tools are listed again (default 15 s).
    #[serde(default, with = "humantime_serde")]
    pub ping_interval: Option<std::time::Duration>,
}

fn yes() -> bool {
    true
}

impl HubConfig {
    /// Reads and validates a file: TOML, or (`*.json`) a client's `mcpServers` file.
    pub fn load(path: &Path) -> Result<HubConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            HubConfig::from_mcp_servers(&text)
        } else {
            HubConfig::parse(&text)
        };
        parsed.map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Imports the `mcpServers` object of a Claude Desktop / Cursor style JSON file: every
    /// stdio entry (`command`, `args`, `env`) becomes a command upstream, every remote entry
    /// (`url`, streamable HTTP) a remote one. Names are made valid by lower-casing and dropping
    /// other characters (`GitHub-MCP` → `githubmcp`), cut to 16; a name that is still invalid
    /// or collides is an error. Upstreams come in the byte order of the original names. An
    /// entry's `headers` are not imported: a remote upstream's token comes from an environment
    /// variable named in a TOML file (`bearer_token_env`), never from the file itself.
    pub fn from_mcp_servers(text: &str) -> Result<HubConfig, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(rename = "mcpServers")]
            mcp_servers: BTreeMap<String, Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            command: Option<String>,
            #[serde(default)]
            args: Vec<String>,
            #[serde(default)]
            env: BTreeMap<String, String>,
            url: Option<String>,
        }
        let file: File = serde_json::from_str(text).map_err(|e| format!("not an mcpServers file: {e}"))?;
        let mut config = HubConfig::default();
        for (original, entry) in file.mcp_servers {
            let name: String = original
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase())
                .take(crate::scope::MAX_UPSTREAM_LEN)
                .collect();
            if entry.command.is_none() && entry.url.is_none() {
                return Err(format!("server '{original}' has neither command nor url"));
            }
            if !valid_upstream_name(&name) {
                return Err(format!("server '{original}' gives no valid upstream name (got '{name}')"));
            }
            if config.upstreams.iter().any(|u| u.name == name) {
                return Err(format!("server '{original}' collides with another as upstream '{name}'"));
            }
            config.upstreams.push(UpstreamConfig {
                name,
                builtin: None,
                command: entry.command,
                url: entry.url,
                bearer_token_env: None,
                client_id: None,
                client_secret: None,
                client_scope: None,
                tls_ca: None,
                tls_client_cert: None,
                tls_client_key: None,
                args: entry.args,
                env: entry.env,
                pass_env: vec![],
                sandbox: Default::default(),
                allow_tools: vec![],
                deny_tools: vec![],
                required: true,
                call_timeout: None,
                ping_interval: None,
            });
        }
        // The same checks as a TOML file.
        let text = toml::to_string(&ForCheck(&config.upstreams)).map_err(|e| e.to_string())?;
        HubConfig::parse(&text)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<HubConfig, String> {
        let config: HubConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        // Approval rules compile here, so `check-config` catches a bad glob before `serve`.
        bastion_policy::ApprovalRules::new(&config.approval).map_err(|e| e.message)?;
        config.check_surface()?;
        crate::profile::check(&config)?;
        Ok(config)
    }

    /// Checks the tool surface's part of a file (`max_tool_name`, aliases, upstreams): the
    /// hub's own, and each profile's as derived ([`crate::profile`]).
    pub fn check_surface(&self) -> Result<(), String> {
        let config = self;
        if let Some(n) = config.max_tool_name
            && !(8..=crate::scope::MAX_TOOL_LEN).contains(&n)
        {
            return Err(format!("max_tool_name must be between 8 and {} (got {n})", crate::scope::MAX_TOOL_LEN));
        }
        let max = config.max_tool_name.unwrap_or(crate::scope::DEFAULT_MAX_TOOL_NAME);
        let (mut alias_names, mut aliased) = (HashSet::new(), HashSet::new());
        for a in &config.aliases {
            if !crate::scope::valid_tool_name(&a.name) || a.name.len() > max {
                return Err(format!(
                    "[[alias]] name '{}' must match ^[a-z][a-z0-9_]*$ and have at most {max} characters",
                    a.name
                ));
            }
            if !alias_names.insert(a.name.as_str()) {
                return Err(format!("[[alias]] name '{}' is given twice", a.name));
            }
            let known = if config.upstreams.is_empty() {
                ["fs", "git", "shell"].contains(&a.upstream.as_str())
            } else {
                config.upstreams.iter().any(|u| u.name == a.upstream)
            };
            if !known {
                return Err(format!("[[alias]] '{}': there is no upstream '{}'", a.name, a.upstream));
            }
            if !aliased.insert((a.upstream.as_str(), a.tool.as_str())) {
                return Err(format!("[[alias]] for upstream '{}' tool '{}' is given twice", a.upstream, a.tool));
            }
        }
        let mut names = HashSet::new();
        for u in &config.upstreams {
            if !valid_upstream_name(&u.name) {
                return Err(format!("upstream name '{}' must match [a-z][a-z0-9]{{0,15}}", u.name));
            }
            if !names.insert(u.name.as_str()) {
                return Err(format!("upstream '{}' is defined twice", u.name));
            }
            crate::upstream::ToolFilter::new(&u.allow_tools, &u.deny_tools)
                .map_err(|e| format!("upstream '{}': {e}", u.name))?;
            if u.ping_interval.is_some() && u.url.is_none() {
                return Err(format!("upstream '{}': ping_interval is only for url upstreams", u.name));
            }
            if u.ping_interval.is_some_and(|d| d < std::time::Duration::from_millis(100)) {
                return Err(format!("upstream '{}': ping_interval must be at least 100ms", u.name));
            }
            if u.bearer_token_env.is_some() && u.url.is_none() {
                return Err(format!("upstream '{}': bearer_token_env is only for url upstreams", u.name));
            }
            crate::remote_auth::check_upstream(u)?;
            if u.url.is_some() && !(u.args.is_empty() && u.env.is_empty()) {
                return Err(format!("upstream '{}': args and env are not for url upstreams", u.name));
            }
            if u.command.is_none() && !(u.pass_env.is_empty() && u.sandbox == Default::default()) {
                return Err(format!("upstream '{}': pass_env and sandbox are only for command upstreams", u.name));
            }
            for var in &u.pass_env {
                if let Some(why) = crate::contain::refused_pass_env(var) {
                    return Err(format!("upstream '{}': pass_env '{var}': {why}", u.name));
                }
            }
            if let crate::contain::SandboxSetting::Grants(g) = &u.sandbox
                && let Some(p) = g.read.iter().chain(&g.write).find(|p| !p.is_absolute())
            {
                return Err(format!("upstream '{}': sandbox path '{}' must be absolute", u.name, p.display()));
            }
            match (&u.builtin, &u.command, &u.url) {
                (Some(b), None, None) if ["fs", "git", "shell", "host"].contains(&b.as_str()) => {
                    if !u.env.is_empty() {
                        return Err(format!("upstream '{}': env is only for command upstreams", u.name));
                    }
                }
                (Some(b), None, None) => {
                    return Err(format!("upstream '{}': unknown builtin '{b}' (fs, git, shell, host)", u.name));
                }
                (None, Some(c), None) if !c.is_empty() => {}
                (None, None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {}
                (None, None, Some(url)) => {
                    return Err(format!("upstream '{}': url '{url}' must be http:// or https://", u.name));
                }
                _ => return Err(format!("upstream '{}': set exactly one of builtin, command or url", u.name)),
            }
        }
        Ok(())
    }
}

/// Serialises upstreams back to TOML so imported ones go through [`HubConfig::parse`].
struct ForCheck<'a>(&'a [UpstreamConfig]);

impl serde::Serialize for ForCheck<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        #[derive(serde::Serialize)]
        struct U<'a> {
            name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            command: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            url: Option<&'a str>,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            args: &'a [String],
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            env: &'a BTreeMap<String, String>,
        }
        let list: Vec<_> = self
            .0
            .iter()
            .map(|u| U {
                name: &u.name,
                command: u.command.as_deref(),
                url: u.url.as_deref(),
                args: &u.args,
                env: &u.env,
            })
            .collect();
        let mut st = s.serialize_struct("HubConfig", 1)?;
        st.serialize_field("upstream", &list)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_the_name_length_are_checked_when_read() {
        let c = HubConfig::parse(
            "max_tool_name = 40\n[[alias]]\nupstream = \"git\"\ntool = \"status\"\nname = \"repo_status\"\n",
        )
        .unwrap();
        let naming = c.naming();
        assert_eq!(naming.max_len, 40);
        assert_eq!(naming.name_for("git", "status").as_deref(), Ok("repo_status"));
        assert_eq!(HubConfig::parse("").unwrap().naming().max_len, 48);
        let alias = |upstream: &str, tool: &str, name: &str| {
            format!("[[alias]]\nupstream = \"{upstream}\"\ntool = \"{tool}\"\nname = \"{name}\"\n")
        };
        // (file, expected words of the error)
        let table = [
            ("max_tool_name = 65".to_owned(), "between 8 and 64"),
            ("max_tool_name = 4".to_owned(), "between 8 and 64"),
            (alias("fs", "read_file", "Read"), "must match"),
            (alias("fs", "read_file", &"r".repeat(49)), "at most 48"),
            (alias("nope", "read_file", "r"), "no upstream 'nope'"),
            (alias("fs", "read_file", "r") + &alias("git", "log", "r"), "'r' is given twice"),
            (alias("fs", "read_file", "r") + &alias("fs", "read_file", "q"), "tool 'read_file' is given twice"),
        ];
        for (text, want) in table {
            let e = HubConfig::parse(&text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

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
        assert_eq!(c.upstreams[1].sandbox.grants(), Some(Default::default()));
        let contained = HubConfig::parse(
            "[[upstream]]\nname = \"a\"\ncommand = \"x\"\npass_env = [\"T\"]\n\
             sandbox = { read = [\"/r\"], network = false }\n[[upstream]]\nname = \"b\"\ncommand = \"y\"\nsandbox = false\n",
        )
        .unwrap();
        let g = contained.upstreams[0].sandbox.grants().unwrap();
        assert!(g.read == [PathBuf::from("/r")] && g.write.is_empty() && !g.network);
        assert_eq!(contained.upstreams[0].pass_env, ["T"]);
        assert_eq!(contained.upstreams[1].sandbox.grants(), None);
        assert!(!c.oauth.is_set());
        let empty = HubConfig::parse("").unwrap();
        assert_eq!(empty.auth, AuthMode::Tokens);
        assert!(empty.upstreams.is_empty());
    }

    #[test]
    fn the_oauth_table_parses() {
        let c = HubConfig::parse(
            r#"
            public_url = "https://hub.example.com"
            [oauth]
            access_token_ttl = "2s"
            refresh_token_ttl = "7d"
            cimd_allow_private = ["127.0.0.1"]
            [[oauth.client]]
            client_id = "mine"
            client_name = "Mine"
            redirect_uris = ["https://mine.example/cb"]
            "#,
        )
        .unwrap();
        assert!(c.oauth.is_set());
        let s = c.oauth.settings("https://hub.example.com", Path::new("/tmp/x")).unwrap();
        assert_eq!(s.lifetimes.access.as_secs(), 2);
        assert_eq!(s.lifetimes.refresh.as_secs(), 7 * 24 * 3600);
        assert_eq!(s.lifetimes.code.as_secs(), 600);
        assert_eq!(s.clients[0].client_id, "mine");
        assert_eq!(s.issuer, "https://hub.example.com");
        let long = HubConfig::parse("[oauth]\ncode_ttl = \"1h\"").unwrap();
        assert!(long.oauth.settings("https://h.example", Path::new("/tmp/x")).unwrap_err().contains("code_ttl"));
        for (text, want) in [
            ("[oauth]\naccess_token_ttl = \"soon\"", "soon"),
            ("[oauth]\nbogus = 1", "unknown field"),
            ("[[oauth.client]]\nclient_id = \"a\"", "missing field"),
        ] {
            let e = HubConfig::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, want) in [
            ("[[upstream]]\nname = \"My_fs\"\nbuiltin = \"fs\"", "must match"),
            ("[[upstream]]\nname = \"abcdefghijklmnopq\"\nbuiltin = \"fs\"", "must match"),
            ("[[upstream]]\nname = \"a\"\nbuiltin = \"fs\"\n[[upstream]]\nname = \"a\"\nbuiltin = \"git\"", "twice"),
            ("[[upstream]]\nname = \"a\"\nbuiltin = \"ftp\"", "unknown builtin"),
            ("[[approval.rule]]\nname = \"r\"\ntool = \"a[\"\naction = \"ask\"", "approval rule 'r'"),
            ("[[approval.rule]]\naction = \"maybe\"", "maybe"),
            ("[[upstream]]\nname = \"a\"", "exactly one"),
            ("[[upstream]]\nname = \"a\"\nbuiltin = \"fs\"\ncommand = \"x\"", "exactly one"),
            ("[[upstream]]\nname = \"a\"\ncommand = \"x\"\nurl = \"http://x\"", "exactly one"),
            ("[[upstream]]\nname = \"a\"\nurl = \"ftp://x\"", "must be http"),
            ("[[upstream]]\nname = \"a\"\nurl = \"http://x\"\nargs = [\"y\"]", "not for url"),
            ("[[upstream]]\nname = \"a\"\ncommand = \"x\"\nbearer_token_env = \"T\"", "only for url"),
            ("[[upstream]]\nname = \"a\"\ncommand = \"\"", "exactly one"),
            ("[[upstream]]\nname = \"a\"\nbuiltin = \"fs\"\nenv = { A = \"1\" }", "only for command"),
            ("auth = \"oauth\"", "unknown variant"),
            ("listen = \"nowhere\"", "invalid"),
            ("bogus = 1", "unknown field"),
            ("[[upstream]]\nname = \"a\"\ncommand = \"x\"\ndeny_tools = [\"[\"]", "tool pattern"),
            ("[[upstream]]\nname = \"a\"\ncommand = \"x\"\npass_env = [\"BASTION_STATE_DIR\"]", "never passed"),
            ("[[upstream]]\nname = \"a\"\nbuiltin = \"fs\"\nsandbox = false", "only for command"),
            ("[[upstream]]\nname = \"a\"\nurl = \"http://x\"\npass_env = [\"T\"]", "only for command"),
            ("[[upstream]]\nname = \"a\"\ncommand = \"x\"\nsandbox = { read = [\"rel\"] }", "absolute"),
            ("[[upstream]]\nname = \"a\"\ncommand = \"x\"\nsandbox = { reed = [] }", "sandbox"),
        ] {
            let e = HubConfig::parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}

#[cfg(test)]
mod import_tests {
    use super::*;

    #[test]
    fn mcp_servers_files_are_imported() {
        let c = HubConfig::from_mcp_servers(
            r#"{"mcpServers": {
                "GitHub-MCP": {"command": "gh-mcp", "args": ["--stdio"], "env": {"T": "x"}},
                "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/p"]}
            }}"#,
        )
        .unwrap();
        let got: Vec<_> = c.upstreams.iter().map(|u| (u.name.as_str(), u.command.as_deref())).collect();
        // In the order of the original names (byte order: upper case first).
        assert_eq!(got, [("githubmcp", Some("gh-mcp")), ("filesystem", Some("npx"))]);
        assert_eq!(c.upstreams[0].env["T"], "x");
        assert_eq!(c.upstreams[1].args.len(), 3);
        let remote = HubConfig::from_mcp_servers(r#"{"mcpServers": {"r": {"url": "https://x/mcp"}}}"#).unwrap();
        assert_eq!(remote.upstreams[0].url.as_deref(), Some("https://x/mcp"));
    }

    #[test]
    fn unusable_entries_are_refused() {
        for (text, want) in [
            (r#"{"mcpServers": {"r": {}}}"#, "neither command nor url"),
            (r#"{"mcpServers": {"r": {"url": "ftp://x"}}}"#, "must be http"),
            (r#"{"mcpServers": {"123": {"command": "x"}}}"#, "no valid upstream name"),
            (r#"{"mcpServers": {"a-b": {"command": "x"}, "ab": {"command": "y"}}}"#, "collides"),
            (r#"{"servers": {}}"#, "not an mcpServers file"),
            (r#"{"mcpServers": {"a": {"command": ""}}}"#, "exactly one"),
        ] {
            let e = HubConfig::from_mcp_servers(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
