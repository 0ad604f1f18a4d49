//! The authorization server: its settings, the state its endpoints share, and the router. One
//! module per endpoint: [`discovery`], [`register`], [`authorize`] (with the consent page),
//! [`token`], [`revoke`], and [`verify`] (the resource-server check of `/mcp`).

mod authorize;
mod discovery;
mod register;
mod revoke;
mod token;
mod verify;

use authorize::{authorize, decide};
use discovery::{profile_protected_resource, protected_resource, root_protected_resource, server_metadata};
use register::register;
use revoke::revoke;
use token::token;

use crate::scope::Scope;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use url::Url;

use crate::challenge::Refusal;
use crate::client::{self, Client, Source, StaticClient};
use crate::html;
use crate::net::{self, FetchPolicy, Fetched};
use crate::redirect;
use crate::secret;
use crate::store::{
    Access, ClientCredentials, CodeExchange, CodeGrant, GrantError, Lifetimes, RefreshRequest, Store, StoreError,
};

/// The scopes the hub's current tools need (`fs:read`, `shell:exec`, ...), asked on each use.
pub type ScopesFn = Arc<dyn Fn() -> Vec<String> + Send + Sync>;
/// Seconds since the epoch (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;
/// Fetches a client ID metadata document (replaceable in tests).
pub type Fetcher =
    Arc<dyn Fn(Url, FetchPolicy) -> Pin<Box<dyn Future<Output = Result<Fetched, String>> + Send>> + Send + Sync>;

/// Paths the authorization server answers, all without authentication (RS-02). The hub lets
/// them through its token check even without OAuth, so that they answer 404 then (RS-06).
pub const PUBLIC_PATHS: &[&str] = &[
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/authorize",
    "/token",
    "/register",
    "/revoke",
];

/// Whether the authorization server answers `path` without authentication: one of
/// [`PUBLIC_PATHS`], or a profile's protected-resource metadata
/// (`/.well-known/oauth-protected-resource/mcp/{profile}`).
pub fn is_public_path(path: &str) -> bool {
    PUBLIC_PATHS.contains(&path)
        || path
            .strip_prefix("/.well-known/oauth-protected-resource/mcp/")
            .is_some_and(|p| !p.is_empty() && !p.contains('/'))
}

/// How long a consent page stays valid.
const PENDING_TTL: u64 = 600;
/// Most consent pages open at once.
const MAX_PENDING: usize = 1000;
/// Wrong owner secrets allowed within [`LOCK_WINDOW`] before the lockout.
const LOCK_AFTER: usize = 5;
/// The window in which wrong secrets are counted, and how long the lockout lasts.
const LOCK_WINDOW: u64 = 15 * 60;
/// Registrations accepted per minute (hub-wide; refused requests do not count, they store
/// nothing).
const REGISTRATIONS_PER_MINUTE: usize = 60;
/// Most registered clients kept.
const MAX_CLIENTS: u64 = 1000;
/// A registered client never used for an authorization is forgotten after this.
const UNUSED_CLIENT_TTL: u64 = 24 * 3600;
/// Longest `state` accepted (it comes back in a header).
const MAX_STATE: usize = 1024;
/// Metadata documents fetched per minute (hub-wide): `/authorize` is public, and each new
/// `client_id` URL makes the hub fetch something.
const FETCHES_PER_MINUTE: usize = 30;
/// Most metadata documents cached.
const MAX_CACHED_DOCUMENTS: usize = 256;

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The issuer of a public URL: `scheme://host[:port]`, no trailing slash. The hub serves OAuth
/// at the origin root, so the URL's path may be empty, `/` or `/mcp` (the MCP endpoint) and
/// nothing else. `http` is accepted for loopback hosts only (local testing).
pub fn issuer_of(public_url: &str) -> Result<String, String> {
    let url = Url::parse(public_url).map_err(|e| format!("public URL '{public_url}': {e}"))?;
    let host = url.host_str().ok_or_else(|| format!("public URL '{public_url}' has no host"))?;
    // All of 127.0.0.0/8 is loopback: hosts of a fleet tested on one machine (or in network
    // namespaces behind loopback forwarders) are 127.0.0.2, 127.0.0.3, ...
    let loopback =
        matches!(host, "localhost" | "[::1]") || host.parse::<std::net::Ipv4Addr>().is_ok_and(|a| a.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(format!("public URL '{public_url}': OAuth needs https (plain http only on loopback)")),
        s => return Err(format!("public URL '{public_url}': scheme '{s}' is neither https nor http")),
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("public URL '{public_url}' must have no user, query or fragment"));
    }
    if !matches!(url.path(), "/" | "" | "/mcp" | "/mcp/") {
        return Err(format!(
            "public URL '{public_url}': the hub serves OAuth and /mcp at the origin root, so the URL may end in \
             /mcp but have no other path (got '{}')",
            url.path()
        ));
    }
    // `scheme://host[:port]`, the default port left out, as `url` serialises an origin.
    Ok(url.origin().ascii_serialization())
}

/// Which of the hub's two URLs for one MCP endpoint a request came to: `{issuer}/mcp`, or the
/// origin root `/` (for connectors that post to `/`, and tunnels and proxies that strip the
/// `/mcp` prefix). Both are the same protected resource; each has its own protected-resource
/// metadata (RFC 9728 §3: `/.well-known/oauth-protected-resource` plus the resource's path),
/// whose `resource` is the URL the client was given, and tokens for either work at both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Endpoint {
    /// `{issuer}/mcp`, the canonical resource.
    #[default]
    Mcp,
    /// `{issuer}/`.
    Root,
    /// `{issuer}/mcp/{profile}`, the profile at this index of [`Settings::profiles`]: a
    /// resource of its own, whose grants are bound to the profile.
    Profile(usize),
}

impl Endpoint {
    /// The endpoint a request path is served as: `/` is [`Endpoint::Root`], anything else
    /// (`/mcp`, `/mcp/`) [`Endpoint::Mcp`].
    pub fn of_path(path: &str) -> Endpoint {
        if path == "/" { Endpoint::Root } else { Endpoint::Mcp }
    }
}

/// What the authorization server is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The issuer (see [`issuer_of`]).
    pub issuer: String,
    /// Where the store (`auth.sqlite3`) lives.
    pub state_dir: PathBuf,
    /// The configuration's `store` value: `None` is the SQLite file in `state_dir`, else a
    /// PostgreSQL database (see [`crate::store::open`]).
    pub store: Option<String>,
    /// Token and code lifetimes.
    pub lifetimes: Lifetimes,
    /// Hosts whose metadata documents may be on private addresses.
    pub cimd_allow_private: Vec<String>,
    /// Extra CA certificates (PEM files) trusted when fetching metadata documents.
    pub cimd_extra_ca: Vec<PathBuf>,
    /// Clients from the configuration.
    pub clients: Vec<StaticClient>,
    /// The hub's profiles: each `{issuer}/mcp/{profile}` is a resource of its own (RFC 8707),
    /// with its protected-resource metadata, and a grant for it is bound to the profile.
    pub profiles: Vec<String>,
}

impl Settings {
    /// Defaults for a public URL and state directory.
    pub fn new(public_url: &str, state_dir: &Path) -> Result<Settings, String> {
        Ok(Settings {
            issuer: issuer_of(public_url)?,
            state_dir: state_dir.to_owned(),
            store: None,
            lifetimes: Lifetimes::default(),
            cimd_allow_private: vec![],
            cimd_extra_ca: vec![],
            clients: vec![],
            profiles: vec![],
        })
    }

    /// Checks lifetimes and static clients.
    pub fn validate(&self) -> Result<(), String> {
        let l = &self.lifetimes;
        let within = |d: Duration, max: u64, what: &str| {
            if d.as_secs() < 1 || d.as_secs() > max {
                Err(format!(
                    "oauth.{what} must be between 1s and {}",
                    humantime::format_duration(Duration::from_secs(max))
                ))
            } else {
                Ok(())
            }
        };
        within(l.access, 24 * 3600, "access_token_ttl")?;
        within(l.refresh, 365 * 24 * 3600, "refresh_token_ttl")?;
        within(l.code, 600, "code_ttl")?;
        let mut ids = std::collections::HashSet::new();
        for c in &self.clients {
            c.validate()?;
            if !ids.insert(&c.client_id) {
                return Err(format!("oauth.client '{}' is defined twice", c.client_id));
            }
        }
        for h in &self.cimd_allow_private {
            if h.is_empty() || h.contains(['/', ' ', ':']) && !h.starts_with('[') {
                return Err(format!("oauth.cimd_allow_private: '{h}' is not a host name or address"));
            }
        }
        Ok(())
    }
}

/// A consent page waiting for the owner's decision.
#[derive(Clone)]
struct Pending {
    csrf: String,
    client: Client,
    redirect_uri: String,
    state: Option<String>,
    challenge: String,
    resource: String,
    scopes: Vec<String>,
    created: u64,
    failures: usize,
    locked_until: u64,
}

/// The outcome of an owner-secret check.
enum Verdict {
    /// Approvals are locked for this many seconds; the secret was not looked at.
    Locked(u64),
    /// The right secret.
    Right,
    /// A wrong secret; this many attempts are left hub-wide (0: locked now).
    Wrong(usize),
    /// No owner secret is set.
    NoSecret,
    /// The store failed.
    Failed(String),
}

/// Wrong owner secrets, hub-wide.
#[derive(Default)]
struct Lockout {
    failures: VecDeque<u64>,
    until: u64,
}

impl Lockout {
    fn retry_after(&self, now: u64) -> Option<u64> {
        (self.until > now).then(|| self.until - now)
    }

    /// Records a wrong secret; returns attempts left (0: locked now).
    fn fail(&mut self, now: u64) -> usize {
        self.failures.retain(|t| t + LOCK_WINDOW > now);
        self.failures.push_back(now);
        if self.failures.len() >= LOCK_AFTER {
            self.until = now + LOCK_WINDOW;
            self.failures.clear();
            return 0;
        }
        LOCK_AFTER - self.failures.len()
    }
}

struct Inner {
    issuer: String,
    resource: String,
    /// `{resource}/{profile}` for each profile, in [`Settings::profiles`] order.
    profile_resources: Vec<String>,
    lifetimes: Lifetimes,
    policy: FetchPolicy,
    statics: Vec<Client>,
    scopes: ScopesFn,
    store: Arc<Mutex<Box<dyn Store>>>,
    pending: Mutex<HashMap<String, Pending>>,
    lockout: Mutex<Lockout>,
    registrations: Mutex<VecDeque<u64>>,
    documents: Mutex<HashMap<String, (Client, u64)>>,
    /// When expired codes and tokens were last deleted.
    pruned: Mutex<u64>,
    /// When recent metadata documents were fetched.
    fetches: Mutex<VecDeque<u64>>,
    fetcher: Fetcher,
    clock: Clock,
}

/// The authorization server. Cheap to clone.
#[derive(Clone)]
pub struct OAuth {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The real fetcher.
fn network_fetcher() -> Fetcher {
    Arc::new(|url, policy| Box::pin(async move { net::fetch(&url, &policy).await }))
}

impl OAuth {
    /// Opens the store and, if the state directory has no owner secret yet, creates one: it is
    /// returned (to be printed once) and stored hashed.
    pub fn open(settings: Settings, scopes: ScopesFn) -> Result<(OAuth, Option<String>), String> {
        OAuth::build(settings, scopes, Arc::new(now), network_fetcher())
    }

    /// [`OAuth::open`] with a given clock and metadata fetcher (tests).
    pub fn build(
        settings: Settings,
        scopes: ScopesFn,
        clock: Clock,
        fetcher: Fetcher,
    ) -> Result<(OAuth, Option<String>), String> {
        settings.validate()?;
        let store = crate::store::open(settings.store.as_deref(), &settings.state_dir).map_err(|e| e.to_string())?;
        let t = clock();
        let created = if store.owner_secret_exists().map_err(|e| e.to_string())? {
            None
        } else {
            Some(store.set_owner_secret(t).map_err(|e| e.to_string())?)
        };
        if let Err(e) = store.prune(t) {
            tracing::warn!("{e}");
        }
        let mut extra_roots = vec![];
        for p in &settings.cimd_extra_ca {
            extra_roots.push(std::fs::read(p).map_err(|e| format!("oauth.cimd_extra_ca {}: {e}", p.display()))?);
        }
        let inner = Inner {
            resource: format!("{}/mcp", settings.issuer),
            profile_resources: settings.profiles.iter().map(|p| format!("{}/mcp/{p}", settings.issuer)).collect(),
            issuer: settings.issuer,
            lifetimes: settings.lifetimes,
            policy: FetchPolicy { allow_private: settings.cimd_allow_private, extra_roots },
            statics: settings.clients.iter().map(StaticClient::client).collect(),
            scopes,
            store: Arc::new(Mutex::new(store)),
            pending: Mutex::new(HashMap::new()),
            lockout: Mutex::new(Lockout::default()),
            registrations: Mutex::new(VecDeque::new()),
            documents: Mutex::new(HashMap::new()),
            pruned: Mutex::new(t),
            fetches: Mutex::new(VecDeque::new()),
            fetcher,
            clock,
        };
        Ok((OAuth { inner: Arc::new(inner) }, created))
    }

    /// The issuer, `https://host` with no trailing slash.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The canonical resource, `{issuer}/mcp`.
    pub fn resource(&self) -> &str {
        &self.inner.resource
    }

    /// The resource identifier of an endpoint: `{issuer}/mcp`, or `{issuer}/` for the root.
    pub fn resource_at(&self, endpoint: Endpoint) -> String {
        match endpoint {
            Endpoint::Mcp => self.inner.resource.clone(),
            Endpoint::Root => format!("{}/", self.inner.issuer),
            Endpoint::Profile(i) => {
                self.inner.profile_resources.get(i).cloned().unwrap_or_else(|| self.inner.resource.clone())
            }
        }
    }

    /// The endpoint a request path is served as: a profile's `/mcp/{profile}`, else as
    /// [`Endpoint::of_path`].
    pub fn endpoint_of(&self, path: &str) -> Endpoint {
        let profile = path.strip_prefix("/mcp/").map(|p| p.strip_suffix('/').unwrap_or(p));
        let profile = profile.filter(|p| !p.is_empty() && !p.contains('/'));
        match profile.and_then(|p| self.profile_index(p)) {
            Some(i) => Endpoint::Profile(i),
            None => Endpoint::of_path(path),
        }
    }

    fn profile_index(&self, profile: &str) -> Option<usize> {
        let wanted = format!("{}/{profile}", self.inner.resource);
        self.inner.profile_resources.iter().position(|r| *r == wanted)
    }

    /// The canonical resource when `requested` (an RFC 8707 `resource` parameter) names either
    /// endpoint of this hub, trailing slash or not; `None` for anything else. Grants and tokens
    /// always carry the canonical resource, so a token asked for at the root works at `/mcp`
    /// and the other way round: one resource, two URLs.
    ///
    /// A profile's resource, `{issuer}/mcp/{profile}`, is its own: returned as it is, so the
    /// grant is bound to that profile.
    pub fn canonical_resource(&self, requested: &str) -> Option<&str> {
        let root = crate::store::same_resource(requested, &self.inner.issuer);
        if root || crate::store::same_resource(requested, &self.inner.resource) {
            return Some(self.inner.resource.as_str());
        }
        self.inner.profile_resources.iter().find(|r| crate::store::same_resource(requested, r)).map(String::as_str)
    }

    /// Where the protected-resource metadata of `/mcp` is (for `WWW-Authenticate`).
    pub fn resource_metadata_url(&self) -> String {
        self.resource_metadata_url_at(Endpoint::Mcp)
    }

    /// Where an endpoint's protected-resource metadata is (RFC 9728 §3.1: the well-known
    /// prefix inserted before the resource's path).
    pub fn resource_metadata_url_at(&self, endpoint: Endpoint) -> String {
        match endpoint {
            Endpoint::Mcp => format!("{}/.well-known/oauth-protected-resource/mcp", self.inner.issuer),
            Endpoint::Root => format!("{}/.well-known/oauth-protected-resource", self.inner.issuer),
            Endpoint::Profile(i) => match self.inner.profile_resources.get(i) {
                Some(r) => format!(
                    "{}/.well-known/oauth-protected-resource{}",
                    self.inner.issuer,
                    &r[self.inner.issuer.len()..]
                ),
                None => self.resource_metadata_url_at(Endpoint::Mcp),
            },
        }
    }

    /// The scopes the hub offers now (never `offline_access`).
    pub fn scopes_supported(&self) -> Vec<String> {
        let mut s = (self.inner.scopes)();
        s.retain(|x| x != "offline_access" && valid_scope_token(x));
        s.dedup();
        s
    }

    fn now(&self) -> u64 {
        (self.inner.clock)()
    }

    async fn db<T: Send + 'static>(&self, f: impl FnOnce(&mut dyn Store) -> T + Send + 'static) -> Result<T, String> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || f(&mut **lock(&store))).await.map_err(|e| format!("store task: {e}"))
    }

    /// The routes of [`PUBLIC_PATHS`].
    pub fn router(&self) -> Router {
        // The JSON endpoints answer cross-origin requests (browser-based clients such as the MCP
        // Inspector, from the origins the hub's Origin check admits); the consent page does not.
        let json_endpoints = Router::new()
            .route("/.well-known/oauth-protected-resource", get(root_protected_resource).options(preflight))
            .route("/.well-known/oauth-protected-resource/mcp", get(protected_resource).options(preflight))
            .route(
                "/.well-known/oauth-protected-resource/mcp/{profile}",
                get(profile_protected_resource).options(preflight),
            )
            .route("/.well-known/oauth-authorization-server", get(server_metadata).options(preflight))
            .route("/.well-known/openid-configuration", get(server_metadata).options(preflight))
            .route("/register", post(register).options(preflight))
            .route("/token", post(token).options(preflight))
            .route("/revoke", post(revoke).options(preflight))
            .layer(axum::middleware::map_response(allow_any_origin));
        Router::new()
            .merge(json_endpoints)
            .route("/authorize", get(authorize).post(decide))
            .layer(DefaultBodyLimit::max(64 * 1024))
            .with_state(self.clone())
    }

    /// Deletes dead codes and tokens, at most once an hour.
    async fn prune_hourly(&self, t: u64) {
        {
            let mut last = lock(&self.inner.pruned);
            if *last + 3600 > t {
                return;
            }
            *last = t;
        }
        if let Ok(Err(e)) = self.db(move |s| s.prune(t)).await {
            tracing::warn!("{e}");
        }
    }

    /// The client with this id: from the configuration, a metadata document, or registration.
    async fn client(&self, id: &str) -> Result<Client, String> {
        if let Some(c) = self.inner.statics.iter().find(|c| c.id == id) {
            return Ok(c.clone());
        }
        if id.starts_with("https://") {
            return self.document(id).await;
        }
        let owned = id.to_owned();
        match self.db(move |s| s.client(&owned)).await? {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(format!("unknown client '{id}'; register again")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Whether `/token` should treat `id` as a known client (unknown: 401 `invalid_client`).
    async fn known(&self, id: &str) -> bool {
        if self.inner.statics.iter().any(|c| c.id == id) || net::is_metadata_url(id) {
            return true;
        }
        let owned = id.to_owned();
        matches!(self.db(move |s| s.client(&owned)).await, Ok(Ok(Some(_))))
    }

    /// A metadata document's client: cached, or fetched and checked (AS-05). Errors are never
    /// cached.
    async fn document(&self, id: &str) -> Result<Client, String> {
        let t = self.now();
        if let Some((c, until)) = lock(&self.inner.documents).get(id)
            && *until > t
        {
            return Ok(c.clone());
        }
        let url = net::metadata_url(id)?;
        {
            let mut recent = lock(&self.inner.fetches);
            recent.retain(|x| x + 60 > t);
            if recent.len() >= FETCHES_PER_MINUTE {
                return Err("too many client metadata documents fetched this minute; try again shortly".into());
            }
            recent.push_back(t);
        }
        let fetched = (self.inner.fetcher)(url, self.inner.policy.clone()).await?;
        let c = client::metadata_document(id, &fetched.body)?;
        if fetched.cache_for > 0 {
            let mut docs = lock(&self.inner.documents);
            docs.retain(|_, (_, until)| *until > t);
            if docs.len() >= MAX_CACHED_DOCUMENTS {
                docs.clear();
            }
            docs.insert(id.to_owned(), (c.clone(), t + fetched.cache_for));
        }
        Ok(c)
    }
}

fn valid_scope_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// Whether a requested scope pattern (`fs:*`, `*:read`, `*:*`) covers a concrete scope.
fn covers(pattern: &str, concrete: &str) -> bool {
    match (Scope::parse(pattern), Scope::parse(concrete)) {
        (Ok(p), Ok(c)) => p.covers(&c),
        _ => false,
    }
}

/// The scopes to put on the consent page for a requested `scope` parameter: the requested
/// ones the hub knows (a `*` form if it covers one of the hub's scopes), in request order;
/// unknown ones (`openid`, `offline_access`, ...) dropped. Nothing requested, or nothing known
/// requested: every scope the hub offers (the owner narrows with the checkboxes).
pub(crate) fn requested_scopes(raw: Option<&str>, supported: &[String]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for s in raw.unwrap_or("").split_whitespace() {
        let known = supported.iter().any(|x| x == s) || (s.contains('*') && supported.iter().any(|x| covers(s, x)));
        if known && !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    if out.is_empty() { supported.to_vec() } else { out }
}

/// A line for the consent page about what a scope allows.
fn describe_scope(scope: &str) -> String {
    let (u, t) = scope.split_once(':').unwrap_or((scope, "*"));
    // A host-qualified scope (`build01:fs:write`): the host's own upstream is the middle part.
    let (u, inner, t) = match t.split_once(':') {
        Some((inner, t)) => (u, Some(inner), t),
        None => (u, None, t),
    };
    let whose = match (u, inner) {
        ("*", None) => "every upstream".to_owned(),
        (u, None) => format!("the {u} upstream"),
        ("*", Some(i)) => format!("every host's {i} upstream"),
        (u, Some(i)) => format!("{u}'s {i} upstream"),
    };
    match t {
        "read" => format!("use the read-only tools of {whose}"),
        "write" => format!("use the tools of {whose} that change things (without deleting)"),
        "destructive" => format!("use the tools of {whose} that can delete or overwrite"),
        "exec" => format!("run the allowed programs of {whose}"),
        _ => format!("use every tool of {whose}, including those that write, delete or run programs"),
    }
}

/// The query or form pairs; a repeated parameter is an error (RFC 6749 §3.1).
fn single_params(raw: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("parameter '{k}' is repeated"));
        }
    }
    Ok(out)
}

/// `Access-Control-Allow-Origin: *` on the JSON endpoints: they carry no cookies and grant
/// nothing by themselves (codes need the PKCE verifier, tokens the client's own request).
async fn allow_any_origin(mut r: Response) -> Response {
    r.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    r
}

/// A CORS preflight for the JSON endpoints.
async fn preflight() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, mcp-protocol-version"),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    r
}

fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    no_store((status, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response())
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(status, &json!({"error": error, "error_description": description}))
}

const CSP_BASE: &str = "default-src 'none'; style-src 'unsafe-inline'";

/// An HTML page with the headers every page of the server carries.
fn html_response(status: StatusCode, body: String, form_action: Option<&str>) -> Response {
    let csp = match form_action {
        Some(extra) => format!("{CSP_BASE}; form-action 'self' {extra}; frame-ancestors 'none'"),
        None => format!("{CSP_BASE}; form-action 'self'; frame-ancestors 'none'"),
    };
    let mut r = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    let h = r.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    html_response(status, html::error_page(title, message), None)
}

fn redirect_to(status: StatusCode, location: &str) -> Response {
    let mut r = status.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

impl OAuth {
    /// Sends the browser back to the client with an authorization response (RFC 9207: `iss`
    /// always, `state` when the client sent one).
    fn back(&self, status: StatusCode, redirect_uri: &str, state: Option<&str>, params: &[(&str, &str)]) -> Response {
        let mut all: Vec<(&str, &str)> = params.to_vec();
        if let Some(s) = state {
            all.push(("state", s));
        }
        all.push(("iss", self.issuer()));
        match redirect::with_params(redirect_uri, &all) {
            Some(location) => redirect_to(status, &location),
            None => error_page(StatusCode::BAD_REQUEST, "Invalid redirect", "The app's redirect URI cannot be used."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers() {
        for (url, want) in [
            ("https://hub.example.com", Ok("https://hub.example.com")),
            ("https://Hub.Example.com/", Ok("https://hub.example.com")),
            ("https://hub.example.com/mcp", Ok("https://hub.example.com")),
            ("https://hub.example.com:8443/mcp/", Ok("https://hub.example.com:8443")),
            ("https://hub.example.com:443", Ok("https://hub.example.com")),
            ("http://127.0.0.1:8765", Ok("http://127.0.0.1:8765")),
            ("http://127.0.0.2:8765/mcp", Ok("http://127.0.0.2:8765")),
            ("http://128.0.0.1:8765", Err("https")),
            ("http://localhost:1/mcp", Ok("http://localhost:1")),
            ("http://[::1]:1", Ok("http://[::1]:1")),
            ("http://hub.example.com", Err("https")),
            ("https://hub.example.com/bastion/mcp", Err("origin root")),
            ("https://hub.example.com/?x=1", Err("no user, query")),
            ("ftp://hub.example.com", Err("neither")),
            ("hub.example.com", Err("public URL")),
        ] {
            match (issuer_of(url), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{url}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{url}: {e}"),
                (got, _) => panic!("{url}: {got:?}"),
            }
        }
    }

    #[test]
    fn scope_requests() {
        let sup: Vec<String> = ["fs:read", "fs:write", "git:read", "shell:exec"].map(String::from).to_vec();
        assert_eq!(requested_scopes(None, &sup), sup);
        assert_eq!(requested_scopes(Some("fs:read"), &sup), ["fs:read"]);
        assert_eq!(requested_scopes(Some("fs:read openid offline_access fs:read"), &sup), ["fs:read"]);
        assert_eq!(requested_scopes(Some("fs:* *:read"), &sup), ["fs:*", "*:read"]);
        assert_eq!(requested_scopes(Some("git:write"), &sup), sup, "nothing known asked: everything offered");
        assert_eq!(requested_scopes(Some("nope:*"), &sup), sup);
        assert!(covers("*:*", "fs:read") && covers("fs:*", "fs:write") && !covers("git:*", "fs:read"));
        assert!(describe_scope("shell:exec").contains("run"));
        assert_eq!(
            describe_scope("build01:fs:write"),
            "use the tools of build01's fs upstream that change things (without deleting)"
        );
    }

    #[test]
    fn lockout_counts_within_the_window() {
        let mut l = Lockout::default();
        assert_eq!(l.fail(0), 4);
        assert_eq!(l.fail(LOCK_WINDOW + 1), 4, "an old failure no longer counts");
        for left in [3, 2, 1] {
            assert_eq!(l.fail(LOCK_WINDOW + 2), left);
        }
        assert_eq!(l.fail(LOCK_WINDOW + 3), 0);
        assert_eq!(l.retry_after(LOCK_WINDOW + 3), Some(LOCK_WINDOW));
        assert_eq!(l.retry_after(2 * LOCK_WINDOW + 3), None);
    }

    #[test]
    fn settings_are_checked() {
        let dir = Path::new("/tmp");
        let mut s = Settings::new("https://hub.example.com", dir).unwrap();
        assert!(s.validate().is_ok());
        s.lifetimes.code = Duration::from_secs(601);
        assert!(s.validate().unwrap_err().contains("code_ttl"));
        s.lifetimes.code = Duration::from_secs(60);
        s.clients.push(StaticClient {
            client_id: "mine".into(),
            client_name: "Mine".into(),
            redirect_uris: vec!["http://evil.example/cb".into()],
        });
        assert!(s.validate().unwrap_err().contains("loopback"));
        s.clients[0].redirect_uris = vec!["https://ok.example/cb".into()];
        assert!(s.validate().is_ok());
        s.clients.push(s.clients[0].clone());
        assert!(s.validate().unwrap_err().contains("twice"));
    }
}
