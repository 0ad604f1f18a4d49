//! [`HubSettings`]: what the hub was asked to do, built once from the flags and the
//! configuration file. The flags win over the file, field by field, here and nowhere else;
//! everything after start-up reads these settings, never the flags or the file.
//!
//! Every problem is a [`SettingsError`] with a fixed wording; all of them are gathered (not just
//! the first) into [`Problems`], which `bastion serve`, `bastion tools` and `bastion check-config`
//! print the same way.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{ServeArgs, UpstreamArgs};
use crate::config::{AuthMode, HubConfig};
use crate::http::Allowed;
use crate::router::DEFAULT_CALL_TIMEOUT;
use crate::upstream::{Builtin, DEFAULT_PING_INTERVAL, Remote, Source, ToolFilter, UpstreamSpec};

/// Where the hub listens unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8765);

/// Everything `bastion serve` runs from.
pub struct HubSettings {
    /// The upstreams, in order, resolved (roots canonical, tokens read from the environment).
    pub upstreams: Vec<UpstreamSpec>,
    /// How clients reach the hub.
    pub transport: Transport,
    /// Where the auth store (tokens, OAuth), the control socket and (by default) the audit
    /// journal are kept.
    pub state_dir: PathBuf,
    /// The file's `store` value (`None`: the SQLite file in the state directory), checked.
    pub store: Option<String>,
    /// The audit journal (`--audit-log`, else `audit.jsonl` in the state directory).
    pub audit_log: PathBuf,
    /// The roots of the built-in servers as given (flags, else the file's, else the current
    /// directory): the state directory must lie outside them, and approval rules match paths
    /// relative to them.
    pub roots: Vec<PathBuf>,
    /// Whether the state directory may lie inside a root (`--allow-state-in-root`; it stays
    /// unreachable to every tool all the same).
    pub allow_state_in_root: bool,
    /// The approval gate: the `[approval]` rules and where its control socket is.
    pub approvals: ApprovalSettings,
    /// Longest a tool call may take unless its upstream says otherwise.
    pub call_timeout: Duration,
    /// On a signal, how long calls in flight may take to finish.
    pub drain_timeout: Duration,
    /// When the audit journal rotates (`[journal]`).
    pub journal: bastion_policy::audit::Rotation,
    /// The hub's own `search` and `fetch` (`--search-fetch`, `search_fetch`; by default in
    /// OAuth mode), or `None`.
    pub search_fetch: Option<crate::search_fetch::SearchFetch>,
    /// How offered tools are named (`max_tool_name`, `[[alias]]`).
    pub naming: crate::scope::Naming,
    /// Tool search (`tool_search`, `tool_search_budget`, `pinned_tools`).
    pub tool_search: crate::toolsearch::ToolSearch,
    /// The `[profile.NAME]` surfaces served at `/mcp/NAME` besides this one.
    pub profiles: Vec<crate::profile::ProfileSettings>,
    /// With `--stdio --profile NAME`: the profile this surface is (its upstreams, roots,
    /// naming and tool search are then the profile's) and the names it offers.
    pub profile: Option<(String, crate::upstream::ToolFilter)>,
}

/// Whether `search` and `fetch` are offered, and the public URL their results point to.
pub struct SearchFetchOffer {
    /// Offered.
    pub on: bool,
    /// The hub's public URL, if any.
    pub public_url: Option<String>,
}

/// The hub's approval gate (its built-in children run with `--no-approvals`).
pub struct ApprovalSettings {
    /// The `[approval]` table of the configuration file (rules, mode, timeout,
    /// `approve_via_elicitation`); checked when the file was parsed.
    pub config: bastion_policy::ApprovalConfig,
    /// The control socket `bastion approvals|approve|deny|mode|pause|resume` talk to, in the
    /// state directory.
    pub control_socket: PathBuf,
}

/// How clients reach the hub.
// Built once at start and read by reference: its size costs nothing, and boxing the HTTP
// settings would only add indirection at every use.
#[allow(clippy::large_enum_variant)]
pub enum Transport {
    /// MCP on stdin/stdout; the parent process is trusted with every tool.
    Stdio,
    /// MCP streamable HTTP.
    Http(HttpSettings),
}

/// The HTTP listener and its guard.
pub struct HttpSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The URL clients use when the hub sits behind a tunnel or proxy.
    pub public_url: Option<String>,
    /// The hosts and origins allowed in `Host` and `Origin`.
    pub allowed: Allowed,
    /// How requests are authenticated.
    pub auth: AuthSettings,
    /// MCP sessions (`Mcp-Session-Id`) instead of stateless requests.
    pub stateful: bool,
    /// Rate limits and caps (`[limits]` under the flags).
    pub limits: crate::limits::LimitsConfig,
    /// The file's `sealing_key` reference (checked, not yet read): sessions sealed into their ids.
    pub sealing_key: Option<String>,
}

/// How HTTP requests are authenticated.
pub enum AuthSettings {
    /// Nobody is asked for a token (a loopback listener only).
    None,
    /// Static bearer tokens from the auth store (`bastion_auth::SqliteStore`) in the state
    /// directory.
    Tokens,
    /// Static bearer tokens, and the hub's own OAuth authorization server (a public URL is set).
    OAuth(Box<bastion_auth::Settings>),
}

/// One problem in the flags or the configuration file. The wording is stable: tests and
/// people's scripts match it.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file cannot be read or parsed (the message names the file).
    #[error("{0}")]
    File(String),
    /// Authentication off on a listener other people can reach.
    #[error("authentication can only be off (--no-auth, auth = \"none\") on a loopback listen address (got {0})")]
    NoAuthNeedsLoopback(SocketAddr),
    /// A public URL that is not an http(s) URL with a host.
    #[error("{0}")]
    PublicUrl(String),
    /// A `[limits]` value (or its flag) out of range.
    #[error("{0}")]
    Limits(String),
    /// The `[oauth]` table does not fit the public URL.
    #[error("{0}")]
    OAuth(String),
    /// An extra CA file for client metadata documents cannot be read.
    #[error("oauth.cimd_extra_ca {}: {error}", path.display())]
    ExtraCa {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A root that is not an existing directory.
    #[error("root {}: {why}", path.display())]
    Root {
        /// The root as given.
        path: PathBuf,
        /// Why it cannot be used.
        why: String,
    },
    /// A remote upstream's token variable is not set.
    #[error("upstream '{upstream}': environment variable {var} (bearer_token_env) is not set")]
    TokenVariableUnset {
        /// The upstream.
        upstream: String,
        /// The variable.
        var: String,
    },
    /// A built-in upstream would refuse its roots or flags at start (`check-config`; `serve`
    /// stops before listening with the same line, see [`crate::startup`]).
    #[error("{0}")]
    BuiltinRefused(String),
    /// A command upstream's program is not on `$PATH` (checked by `check-config` only: `serve`
    /// starts anyway and reports the upstream failed, retrying).
    #[error("upstream '{upstream}': command '{program}' not found")]
    ProgramNotFound {
        /// The upstream.
        upstream: String,
        /// The program.
        program: String,
    },
    /// The `store` value is not a store, or holds a password in clear.
    #[error("{0}")]
    Store(String),
    /// The `sealing_key` value is not a reference (`env:NAME`, `file:/path`).
    #[error("{0}")]
    SealingKey(String),
    /// No state directory was given and none can be derived.
    #[error("state directory: {0}")]
    StateDir(String),
    /// The built-ins run this binary again, which must be found.
    #[error("this program's own path: {0}")]
    OwnPath(std::io::Error),
    /// The default root is the current directory, which must exist.
    #[error("the current directory: {0}")]
    CurrentDir(std::io::Error),
    /// `--profile NAME` names no `[profile.NAME]` of the file.
    #[error("--profile {0}: the configuration has no [profile.{0}]")]
    UnknownProfile(String),
}

impl SettingsError {
    /// A stable snake_case code for the kind of problem.
    pub fn code(&self) -> &'static str {
        match self {
            SettingsError::File(_) => "config_file",
            SettingsError::NoAuthNeedsLoopback(_) => "no_auth_needs_loopback",
            SettingsError::PublicUrl(_) => "public_url",
            SettingsError::Limits(_) => "limits",
            SettingsError::OAuth(_) => "oauth_settings",
            SettingsError::ExtraCa { .. } => "oauth_extra_ca",
            SettingsError::Root { .. } => "root",
            SettingsError::TokenVariableUnset { .. } => "token_variable_unset",
            SettingsError::ProgramNotFound { .. } => "program_not_found",
            SettingsError::BuiltinRefused(_) => "builtin_refused",
            SettingsError::Store(_) => "store",
            SettingsError::SealingKey(_) => "sealing_key",
            SettingsError::StateDir(_) => "state_dir",
            SettingsError::OwnPath(_) => "own_path",
            SettingsError::CurrentDir(_) => "current_dir",
            SettingsError::UnknownProfile(_) => "unknown_profile",
        }
    }
}

/// Every problem found, and where the settings came from.
#[derive(Debug)]
pub struct Problems {
    /// The configuration file, if one was read.
    pub file: Option<PathBuf>,
    /// Whether flags were merged over it (`serve`, `tools`) rather than the file alone
    /// (`check-config`).
    pub flags: bool,
    /// The problems, in the order they were found.
    pub errors: Vec<SettingsError>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        match (&self.file, self.flags) {
            (Some(file), false) => write!(f, "{n} problem(s) in {}:", file.display())?,
            (Some(file), true) => write!(f, "{n} problem(s) in the flags and {}:", file.display())?,
            (None, _) => write!(f, "{n} problem(s) in the flags:")?,
        }
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// How thoroughly to check: `serve` and `tools` check what they need to start; `check-config`
/// also looks for what would only fail later (programs on `$PATH`, CA files).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Depth {
    Start,
    Check,
}

/// Collects problems instead of stopping at the first.
struct Found {
    file: Option<PathBuf>,
    flags: bool,
    errors: Vec<SettingsError>,
}

impl Found {
    fn new(file: Option<&Path>, flags: bool) -> Found {
        Found { file: file.map(Path::to_path_buf), flags, errors: vec![] }
    }

    fn ok<T>(&mut self, r: Result<T, SettingsError>) -> Option<T> {
        r.map_err(|e| self.errors.push(e)).ok()
    }

    fn finish<T>(self, value: T) -> Result<T, Problems> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(Problems { file: self.file, flags: self.flags, errors: self.errors })
        }
    }

    fn fail(mut self, e: SettingsError) -> Problems {
        self.errors.push(e);
        Problems { file: self.file, flags: self.flags, errors: self.errors }
    }
}

fn load(file: Option<&Path>) -> Result<HubConfig, SettingsError> {
    match file {
        Some(p) => HubConfig::load(p).map_err(SettingsError::File),
        None => Ok(HubConfig::default()),
    }
}

impl HubSettings {
    /// The settings of `bastion serve`: its flags over its `--config` file.
    pub fn from_serve_args(args: &ServeArgs) -> Result<HubSettings, Problems> {
        let file = args.upstreams.config.as_deref();
        let config = load(file).map_err(|e| Found::new(file, true).fail(e))?;
        let mut found = Found::new(file, true);
        let asked = Asked {
            listen: args.listen.or(config.listen).unwrap_or(DEFAULT_LISTEN),
            public_url: args.public_url.clone().or(config.public_url.clone()),
            no_auth: args.no_auth || config.auth == AuthMode::None,
            stateful: args.stateful || config.stateful,
        };
        let state_dir = match &args.state_dir {
            Some(d) => Some(d.clone()),
            None => found.ok(bastion_auth::state::default_dir().map_err(|e| SettingsError::StateDir(e.to_string()))),
        };
        let state_dir = state_dir.unwrap_or_default();
        let audit_log = args.audit_log.clone().unwrap_or_else(|| state_dir.join("audit.jsonl"));
        let store = config.store.clone().filter(|s| !s.trim().is_empty());
        if let Some(s) = &store {
            found.ok(bastion_auth::store::check_spec(s).map_err(SettingsError::Store));
        }
        // Bastion's own files, which no tool may touch: absolute, so a child started elsewhere
        // resolves them to the same files.
        let protect: Vec<PathBuf> = [Some(state_dir.clone()), file.map(Path::to_path_buf), Some(audit_log.clone())]
            .into_iter()
            .flatten()
            .map(|p| std::path::absolute(&p).unwrap_or(p))
            .collect();
        let public_url = asked.public_url.clone();
        let transport = if args.stdio {
            // No listener and no tokens; a bad public URL is still an error rather than ignored.
            found.ok(Allowed::new(asked.public_url.as_deref()).map_err(SettingsError::PublicUrl));
            Transport::Stdio
        } else {
            let mut http = http_settings(&mut found, &config, asked, Some(&state_dir), Depth::Start);
            let limits = &mut http.limits;
            if let Some(rps) = args.rate_limit {
                limits.requests_per_second = rps;
                // A burst of ten seconds' worth, and at least one request.
                limits.burst = (rps * 10.0).ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
            }
            if args.no_rate_limits {
                limits.requests_per_second = 0.0;
                limits.address_requests_per_second = 0.0;
                limits.tool.clear();
            }
            limits.concurrent = args.max_in_flight.unwrap_or(limits.concurrent);
            limits.max_sessions = args.max_sessions.unwrap_or(limits.max_sessions);
            found.ok(limits.check().map_err(SettingsError::Limits));
            Transport::Http(http)
        };
        let roots = roots(&mut found, &args.upstreams, &config);
        // Each profile is a configuration of its own, its built-ins separate processes on its
        // roots (the hub's roots, flags included, unless it names its own).
        let mut profiles = vec![];
        for (name, p) in &config.profiles {
            let Some(derived) = found.ok(p.derive(name, &config).map_err(SettingsError::File)) else { continue };
            let roots = if p.roots.is_empty() { roots.clone() } else { p.roots.clone() };
            let upstreams =
                upstreams(&mut found, &args.upstreams, &derived, &roots, &protect, &state_dir, Depth::Start);
            profiles.push(crate::profile::ProfileSettings {
                name: name.clone(),
                upstreams,
                roots,
                naming: derived.naming(),
                tool_search: derived.tool_search(),
                filter: p.filter(),
            });
        }
        let selected = match &args.profile {
            None => None,
            Some(name) => match profiles.iter().position(|p| &p.name == name) {
                Some(i) => Some(profiles.swap_remove(i)),
                None => {
                    found.errors.push(SettingsError::UnknownProfile(name.clone()));
                    None
                }
            },
        };
        let upstreams = match &selected {
            // Over stdio with --profile only that profile is served: the hub's own upstreams
            // are not started.
            Some(_) => vec![],
            None => upstreams(&mut found, &args.upstreams, &config, &roots, &protect, &state_dir, Depth::Start),
        };
        let oauth = matches!(&transport, Transport::Http(h) if matches!(h.auth, AuthSettings::OAuth(_)));
        let search_fetch = args
            .upstreams
            .search_fetch
            .or(config.search_fetch)
            .unwrap_or(oauth)
            .then(|| crate::search_fetch::SearchFetch::new(public_url.as_deref()));
        let (mut naming, mut tool_search, mut roots, mut upstreams) =
            (config.naming(), config.tool_search(), roots, upstreams);
        let profile = selected.map(|p| {
            (naming, tool_search, roots, upstreams) = (p.naming, p.tool_search, p.roots, p.upstreams);
            (p.name, p.filter)
        });
        if profile.is_some() {
            profiles.clear();
        }
        let approvals = ApprovalSettings {
            control_socket: bastion_control::socket::socket_path(&state_dir, "hub"),
            config: config.approval,
        };
        found.finish(HubSettings {
            upstreams,
            transport,
            audit_log,
            roots,
            allow_state_in_root: args.allow_state_in_root,
            approvals,
            state_dir,
            store,
            call_timeout: args.call_timeout.or(config.call_timeout).unwrap_or(DEFAULT_CALL_TIMEOUT),
            drain_timeout: args.drain_timeout,
            journal: config.journal,
            search_fetch,
            naming,
            tool_search,
            profiles,
            profile,
        })
    }

    /// Whether `bastion tools` and `bastion openapi` show `search` and `fetch`: as `serve` would
    /// with these flags and file (by default in OAuth mode: a public URL, authentication on).
    pub fn search_fetch_of(args: &UpstreamArgs) -> Result<SearchFetchOffer, Problems> {
        let file = args.config.as_deref();
        let config = load(file).map_err(|e| Found::new(file, true).fail(e))?;
        let oauth = config.public_url.is_some() && config.auth != AuthMode::None;
        Ok(SearchFetchOffer {
            on: args.search_fetch.or(config.search_fetch).unwrap_or(oauth),
            public_url: config.public_url,
        })
    }

    /// The naming of `bastion tools`: its `--config` file's `max_tool_name` and `[[alias]]`.
    pub fn naming_of(args: &UpstreamArgs) -> Result<crate::scope::Naming, Problems> {
        let file = args.config.as_deref();
        let config = load(file).map_err(|e| Found::new(file, true).fail(e))?;
        Ok(config.naming())
    }

    /// The upstreams of `bastion tools`: its flags over its `--config` file.
    pub fn upstreams_of(args: &UpstreamArgs) -> Result<Vec<UpstreamSpec>, Problems> {
        let file = args.config.as_deref();
        let config = load(file).map_err(|e| Found::new(file, true).fail(e))?;
        let mut found = Found::new(file, true);
        let roots = roots(&mut found, args, &config);
        // `tools` starts the upstreams once to list them: contained ones get their scratch
        // directories where `serve` would give them.
        let state_dir = bastion_auth::state::default_dir().unwrap_or_else(|_| std::env::temp_dir().join("bastion"));
        let protect: Vec<PathBuf> = [Some(state_dir.clone()), file.map(Path::to_path_buf)]
            .into_iter()
            .flatten()
            .map(|p| std::path::absolute(&p).unwrap_or(p))
            .collect();
        let specs = upstreams(&mut found, args, &config, &roots, &protect, &state_dir, Depth::Start);
        found.finish(specs)
    }

    /// `bastion check-config`: the settings a `bastion serve --config FILE` without other flags
    /// would run from, checked further (programs on `$PATH`, CA files, roots are directories),
    /// and a summary of what it would do. The OAuth settings are checked against a placeholder
    /// state directory: nothing is opened.
    pub fn check_file(file: &Path) -> Result<String, Problems> {
        let config = load(Some(file)).map_err(|e| Found::new(Some(file), false).fail(e))?;
        let mut found = Found::new(Some(file), false);
        let asked = Asked {
            listen: config.listen.unwrap_or(DEFAULT_LISTEN),
            public_url: config.public_url.clone(),
            no_auth: config.auth == AuthMode::None,
            stateful: config.stateful,
        };
        let http = http_settings(&mut found, &config, asked, Some(Path::new("/")), Depth::Check);
        found.ok(http.limits.check().map_err(SettingsError::Limits));
        let roots = roots(&mut found, &UpstreamArgs::default(), &config);
        let specs = upstreams(&mut found, &UpstreamArgs::default(), &config, &roots, &[], Path::new("/"), Depth::Check);
        let warnings: String = config
            .upstreams
            .iter()
            .filter_map(|u| Some((u, u.command.as_deref()?)))
            .flat_map(|(u, c)| crate::contain::warnings(&u.name, c, &u.args, u.sandbox.grants().is_some()))
            .map(|w| format!("\nwarning: {w}"))
            .collect();
        // A root already reported missing would be reported again by the built-ins' check.
        if !found.errors.iter().any(|e| matches!(e, SettingsError::Root { .. }))
            && let Err(why) = crate::startup::check_builtins(&specs)
        {
            found.errors.push(SettingsError::BuiltinRefused(why));
        }
        let oauth = match &http.auth {
            AuthSettings::OAuth(s) => format!(
                "oauth: on (issuer {}, resource {}/mcp, access tokens {}, refresh tokens {}, {} static client(s))",
                s.issuer,
                s.issuer,
                humantime::format_duration(s.lifetimes.access),
                humantime::format_duration(s.lifetimes.refresh),
                s.clients.len()
            ),
            _ if config.oauth.is_set() => {
                "oauth: off (no public_url, or auth = \"none\"); the [oauth] table applies with --public-url".to_owned()
            }
            _ => "oauth: off (no public_url)".to_owned(),
        };
        let names = specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
        let default = if config.upstreams.is_empty() { " (default)" } else { "" };
        // Each profile's roots and built-ins are checked as the hub's are.
        let mut profiles = String::new();
        for (name, p) in &config.profiles {
            let Some(derived) = found.ok(p.derive(name, &config).map_err(SettingsError::File)) else { continue };
            let roots = if p.roots.is_empty() { roots.clone() } else { p.roots.clone() };
            let specs =
                upstreams(&mut found, &UpstreamArgs::default(), &derived, &roots, &[], Path::new("/"), Depth::Check);
            if !found.errors.iter().any(|e| matches!(e, SettingsError::Root { .. }))
                && let Err(why) = crate::startup::check_builtins(&specs)
            {
                found.errors.push(SettingsError::BuiltinRefused(format!("[profile.{name}]: {why}")));
            }
            let names = specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
            profiles.push_str(&format!("\nprofile {name}: /mcp/{name}; upstreams: {names}"));
        }
        found.finish(format!("{}: ok; upstreams: {names}{default}{profiles}\n{oauth}{warnings}", file.display()))
    }
}

/// The HTTP choices once flags and file are merged.
struct Asked {
    listen: SocketAddr,
    public_url: Option<String>,
    no_auth: bool,
    stateful: bool,
}

/// The listener, the allowed hosts and the authentication mode. In OAuth mode the `[oauth]`
/// table is checked against the public URL before anything starts.
fn http_settings(
    found: &mut Found,
    config: &HubConfig,
    asked: Asked,
    state_dir: Option<&Path>,
    depth: Depth,
) -> HttpSettings {
    let Asked { listen, public_url, no_auth, stateful } = asked;
    let allowed = found
        .ok(Allowed::new(public_url.as_deref()).map_err(SettingsError::PublicUrl))
        .unwrap_or_else(Allowed::loopback);
    let auth = if no_auth {
        if !listen.ip().is_loopback() {
            found.errors.push(SettingsError::NoAuthNeedsLoopback(listen));
        }
        AuthSettings::None
    } else {
        match (&public_url, state_dir) {
            (Some(url), Some(dir)) => match found.ok(config.oauth.settings(url, dir).map_err(SettingsError::OAuth)) {
                Some(s) => {
                    if depth == Depth::Check {
                        for ca in &s.cimd_extra_ca {
                            if let Err(error) = std::fs::read(ca) {
                                found.errors.push(SettingsError::ExtraCa { path: ca.clone(), error });
                            }
                        }
                    }
                    AuthSettings::OAuth(Box::new(s))
                }
                None => AuthSettings::Tokens,
            },
            _ => AuthSettings::Tokens,
        }
    };
    let sealing_key = config.sealing_key.clone().filter(|s| !s.trim().is_empty());
    if let Some(spec) = &sealing_key {
        // `check-config` reads the key too (a variable unset, a file unreadable, a key too short);
        // `serve` reads it once it starts.
        let checked = match depth {
            Depth::Check => crate::session::SealingKey::resolve(spec).map(drop),
            Depth::Start => crate::session::check_spec(spec),
        };
        found.ok(checked.map_err(|e| SettingsError::SealingKey(e.to_string())));
    }
    HttpSettings { listen, public_url, allowed, auth, stateful, limits: config.limits.clone(), sealing_key }
}

/// The roots of the built-in servers: the flags', else the file's, else the current directory.
fn roots(found: &mut Found, args: &UpstreamArgs, config: &HubConfig) -> Vec<PathBuf> {
    match (&args.roots, &config.roots) {
        (flags, _) if !flags.is_empty() => flags.clone(),
        (_, file) if !file.is_empty() => file.clone(),
        _ => match std::env::current_dir() {
            Ok(d) => vec![d],
            Err(e) => {
                found.errors.push(SettingsError::CurrentDir(e));
                vec![]
            }
        },
    }
}

/// The upstreams: those of the configuration file, or the three built-in servers (shell with
/// its `read-only` profile). Built-ins get the roots, `--protect` for each of `protect` (the
/// hub's own files), `--no-approvals` (the hub decides approvals, mode and pause at its own
/// layer) and, with `--allow-write`, fs and git their write tools. `host` (only when an
/// `[[upstream]]` names it) gets no roots, and the hub's state directory for its snapshots.
fn upstreams(
    found: &mut Found,
    args: &UpstreamArgs,
    config: &HubConfig,
    roots: &[PathBuf],
    protect: &[PathBuf],
    state_dir: &Path,
    depth: Depth,
) -> Vec<UpstreamSpec> {
    let mut root_args = vec![];
    for r in roots {
        let canonical = r.canonicalize().map_err(|e| e.to_string()).and_then(|c| {
            // `serve` leaves a root that is a file to the built-in servers, which refuse it.
            if depth == Depth::Check && !c.is_dir() { Err("not a directory".to_owned()) } else { Ok(c) }
        });
        match canonical {
            Ok(c) => root_args.extend(["--root".to_owned(), c.to_string_lossy().into_owned()]),
            Err(why) => found.errors.push(SettingsError::Root { path: r.clone(), why }),
        }
    }
    let mut common_args = vec![];
    for p in protect {
        common_args.extend(["--protect".to_owned(), p.to_string_lossy().into_owned()]);
    }
    common_args.push("--no-approvals".to_owned());
    // The hub journals every call itself; its children keep none of their own.
    common_args.push("--no-journal".to_owned());
    root_args.extend(common_args.iter().cloned());
    if args.allow_broad_roots {
        root_args.push("--allow-broad-roots".to_owned());
    }
    let own = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            found.errors.push(SettingsError::OwnPath(e));
            PathBuf::new()
        }
    };
    let mut host_args = common_args;
    host_args.extend(["--state-dir".to_owned(), state_dir.to_string_lossy().into_owned()]);
    let builtin = |server: Builtin, extra: &[String]| {
        let mut a = if server.takes_roots() { root_args.clone() } else { host_args.clone() };
        if args.allow_write && matches!(server, Builtin::Fs | Builtin::Git) {
            a.push("--allow-write".into());
        }
        a.extend_from_slice(extra);
        Source::Builtin { server, program: own.clone(), args: a }
    };
    if config.upstreams.is_empty() {
        let read_only = ["--profile".to_owned(), "read-only".to_owned()];
        return Builtin::ALL
            .into_iter()
            .map(|server| UpstreamSpec {
                name: server.name().to_owned(),
                source: builtin(server, if server == Builtin::Shell { &read_only } else { &[] }),
                filter: ToolFilter::default(),
                required: true,
                call_timeout: None,
            })
            .collect();
    }
    let mut specs = vec![];
    for u in &config.upstreams {
        // The file was validated when it was parsed: exactly one of builtin, command, url.
        let source = match (&u.builtin, &u.command, &u.url) {
            (Some(b), _, _) => match Builtin::from_name(b) {
                Some(server) => builtin(server, &u.args),
                None => continue,
            },
            (None, Some(command), _) => {
                if depth == Depth::Check && find_program(command).is_none() {
                    found
                        .errors
                        .push(SettingsError::ProgramNotFound { upstream: u.name.clone(), program: command.clone() });
                }
                let sandbox = u.sandbox.grants().map(|grants| crate::contain::Containment {
                    trampoline: own.clone(),
                    scratch: std::path::absolute(state_dir.join("upstreams").join(&u.name))
                        .unwrap_or_else(|_| state_dir.join("upstreams").join(&u.name)),
                    grants,
                    protect: protect.to_vec(),
                });
                let scratch = sandbox.as_ref().map(|c| c.scratch.as_path());
                Source::Command {
                    program: command.into(),
                    args: u.args.clone(),
                    env: crate::contain::environment(std::env::vars_os(), &u.pass_env, &u.env, scratch),
                    sandbox,
                }
            }
            (None, None, Some(url)) => {
                let bearer = match &u.bearer_token_env {
                    Some(var) => match std::env::var(var) {
                        Ok(t) => Some(t),
                        Err(_) => {
                            found
                                .errors
                                .push(SettingsError::TokenVariableUnset { upstream: u.name.clone(), var: var.clone() });
                            None
                        }
                    },
                    None => None,
                };
                let credentials = crate::remote_auth::credentials_of(u, url).unwrap_or_else(|e| {
                    found.errors.push(SettingsError::File(e));
                    None
                });
                let tls = crate::remote_auth::tls_of(u).unwrap_or_else(|e| {
                    found.errors.push(SettingsError::File(e));
                    None
                });
                Source::Remote(Remote {
                    url: url.clone(),
                    bearer,
                    credentials,
                    tls,
                    ping_interval: u.ping_interval.unwrap_or(DEFAULT_PING_INTERVAL),
                })
            }
            (None, None, None) => continue,
        };
        // Checked when the file was parsed; an error here would be a bug, reported all the same.
        let filter = match ToolFilter::new(&u.allow_tools, &u.deny_tools) {
            Ok(f) => f,
            Err(e) => {
                found.errors.push(SettingsError::File(format!("upstream '{}': {e}", u.name)));
                ToolFilter::default()
            }
        };
        specs.push(UpstreamSpec {
            name: u.name.clone(),
            source,
            filter,
            required: u.required,
            call_timeout: u.call_timeout,
        });
    }
    specs
}

/// `program` as the child would run it: a path if it has a `/`, else the first match on `$PATH`.
fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(program)).find(|p| executable(p))
}

#[cfg(test)]
mod tests;
