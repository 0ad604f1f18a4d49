//! The HTTP endpoints of the authorization server and the state they share.

use bastion_policy::scope::Scope;
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

use crate::client::{self, Client, Source, StaticClient};
use crate::html;
use crate::net::{self, FetchPolicy, Fetched};
use crate::redirect;
use crate::secret;
use crate::store::{
    Access, CodeExchange, CodeGrant, GrantError, Lifetimes, RefreshRequest, Refusal, Store, StoreError,
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
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
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
    Ok(match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// What the authorization server is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The issuer (see [`issuer_of`]).
    pub issuer: String,
    /// Where `oauth.sqlite3` lives.
    pub state_dir: PathBuf,
    /// Token and code lifetimes.
    pub lifetimes: Lifetimes,
    /// Hosts whose metadata documents may be on private addresses.
    pub cimd_allow_private: Vec<String>,
    /// Extra CA certificates (PEM files) trusted when fetching metadata documents.
    pub cimd_extra_ca: Vec<PathBuf>,
    /// Clients from the configuration.
    pub clients: Vec<StaticClient>,
}

impl Settings {
    /// Defaults for a public URL and state directory.
    pub fn new(public_url: &str, state_dir: &Path) -> Result<Settings, String> {
        Ok(Settings {
            issuer: issuer_of(public_url)?,
            state_dir: state_dir.to_owned(),
            lifetimes: Lifetimes::default(),
            cimd_allow_private: vec![],
            cimd_extra_ca: vec![],
            clients: vec![],
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
    lifetimes: Lifetimes,
    policy: FetchPolicy,
    statics: Vec<Client>,
    scopes: ScopesFn,
    store: Arc<Mutex<Store>>,
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
        let store = Store::open(&settings.state_dir).map_err(|e| e.to_string())?;
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

    /// Where the protected-resource metadata is (for `WWW-Authenticate`).
    pub fn resource_metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource/mcp", self.inner.issuer)
    }

    /// The scopes the hub offers now (never `offline_access`).
    pub fn scopes_supported(&self) -> Vec<String> {
        let mut s = (self.inner.scopes)();
        s.retain(|x| x != "offline_access" && valid_scope_token(x));
        s.dedup();
        s
    }

    /// The `WWW-Authenticate` value of a 401 from `/mcp` (RS-03): `resource_metadata` and
    /// `scope`, plus `error="invalid_token"` and a description when a token was refused.
    pub fn challenge(&self, refused: Option<&str>) -> String {
        let mut c = format!(
            "Bearer resource_metadata=\"{}\", scope=\"{}\"",
            self.resource_metadata_url(),
            self.scopes_supported().join(" ")
        );
        if let Some(d) = refused {
            c.push_str(&format!(", error=\"invalid_token\", error_description=\"{}\"", d.replace(['"', '\\'], "'")));
        }
        c
    }

    fn now(&self) -> u64 {
        (self.inner.clock)()
    }

    async fn db<T: Send + 'static>(&self, f: impl FnOnce(&mut Store) -> T + Send + 'static) -> Result<T, String> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&store))).await.map_err(|e| format!("store task: {e}"))
    }

    /// Checks an access token presented to `/mcp` (RS-05).
    pub async fn verify(&self, token: &str) -> Result<Access, Refusal> {
        if !token.starts_with(crate::store::ACCESS_PREFIX) {
            return Err(Refusal::Unknown);
        }
        let (token, resource, t) = (token.to_owned(), self.inner.resource.clone(), self.now());
        self.db(move |s| s.verify_access(&token, &resource, t)).await.unwrap_or(Err(Refusal::Unknown))
    }

    /// The routes of [`PUBLIC_PATHS`].
    pub fn router(&self) -> Router {
        // The JSON endpoints answer cross-origin requests (browser-based clients such as the MCP
        // Inspector, from the origins the hub's Origin check admits); the consent page does not.
        let json_endpoints = Router::new()
            .route("/.well-known/oauth-protected-resource", get(protected_resource).options(preflight))
            .route("/.well-known/oauth-protected-resource/mcp", get(protected_resource).options(preflight))
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
    let whose = if u == "*" { "every upstream".to_owned() } else { format!("the {u} upstream") };
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

async fn protected_resource(State(o): State<OAuth>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "resource": o.resource(),
            "authorization_servers": [o.issuer()],
            "scopes_supported": o.scopes_supported(),
            "bearer_methods_supported": ["header"],
            "resource_name": "Bastion",
        }),
    )
}

async fn server_metadata(State(o): State<OAuth>) -> Response {
    let i = o.issuer();
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "registration_endpoint": format!("{i}/register"),
            "revocation_endpoint": format!("{i}/revoke"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": o.scopes_supported(),
            "client_id_metadata_document_supported": true,
            "authorization_response_iss_parameter_supported": true,
        }),
    )
}

/// `POST /register` (AS-04).
async fn register(State(o): State<OAuth>, body: Bytes) -> Response {
    let t = o.now();
    {
        let mut recent = lock(&o.inner.registrations);
        recent.retain(|x| x + 60 > t);
        if recent.len() >= REGISTRATIONS_PER_MINUTE {
            let mut r = oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "too many registrations; try again in a minute",
            );
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            return r;
        }
    }
    let (name, redirect_uris) = match client::registration(&body) {
        Ok(x) => x,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, e.error, &e.description),
    };
    let id = match secret::random_id::<16>() {
        Ok(x) => format!("bcl_{x}"),
        Err(e) => return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e),
    };
    let c = Client { id, name, redirect_uris, source: Source::Dynamic };
    let stored = c.clone();
    let result = o
        .db(move |s| -> Result<bool, StoreError> {
            s.prune_clients(t.saturating_sub(UNUSED_CLIENT_TTL))?;
            if s.client_count()? >= MAX_CLIENTS {
                return Ok(false);
            }
            s.insert_client(&stored, t)?;
            Ok(true)
        })
        .await;
    match result {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "too many registered clients; the operator can revoke unused ones",
            );
        }
        Ok(Err(e)) => return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e.to_string()),
        Err(e) => return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e),
    }
    lock(&o.inner.registrations).push_back(t);
    tracing::info!(client_id = %c.id, client_name = %c.name, "client registered");
    json_response(
        StatusCode::CREATED,
        &json!({
            "client_id": c.id,
            "client_id_issued_at": t,
            "client_name": c.name,
            "redirect_uris": c.redirect_uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }),
    )
}

/// `GET /authorize` (AS-02, AS-03, AS-06): the client and redirect URI are checked before the
/// browser is sent anywhere; then every other error goes back to the client with `state` and
/// `iss`; a valid request gets the consent page.
async fn authorize(State(o): State<OAuth>, RawQuery(query): RawQuery) -> Response {
    let bad = |m: &str| error_page(StatusCode::BAD_REQUEST, "Authorization request refused", m);
    let p = match single_params(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return bad(&e),
    };
    let Some(client_id) = p.get("client_id").filter(|c| !c.is_empty()) else {
        return bad("The request has no client_id.");
    };
    let client = match o.client(client_id).await {
        Ok(c) => c,
        Err(e) => return bad(&format!("The app could not be identified: {e}")),
    };
    let redirect_uri = match p.get("redirect_uri") {
        Some(r) if client.redirect_uris.iter().any(|x| x == r) => r.clone(),
        Some(r) => {
            return bad(&format!("The redirect URI '{r}' is not registered for this app; nothing was sent to it."));
        }
        // Required even when only one is registered: every MCP client sends it, and the token
        // request must repeat it.
        None => return bad("The request has no redirect_uri."),
    };
    // A registered URI passed this check when it was registered; a metadata document's URIs
    // were filtered by it. Checked again all the same: nothing unchecked goes into a Location.
    if let Err(e) = redirect::check(&redirect_uri) {
        return bad(&e);
    }
    if p.get("state").is_some_and(|st| st.len() > MAX_STATE) {
        return bad(&format!("state is longer than {MAX_STATE} characters."));
    }
    let state = p.get("state").cloned();
    let fail = |error: &str, description: &str| {
        o.back(
            StatusCode::FOUND,
            &redirect_uri,
            state.as_deref(),
            &[("error", error), ("error_description", description)],
        )
    };
    if p.get("response_type").map(String::as_str) != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let challenge = match (p.get("code_challenge"), p.get("code_challenge_method").map(String::as_str)) {
        (Some(c), Some("S256")) if secret::valid_challenge(c) => c.clone(),
        (Some(_), Some("S256")) => return fail("invalid_request", "code_challenge is not a base64url SHA-256 value"),
        (None, _) => return fail("invalid_request", "code_challenge is required (PKCE S256)"),
        (Some(_), _) => return fail("invalid_request", "code_challenge_method must be S256"),
    };
    let resource = match p.get("resource") {
        None => o.resource().to_owned(),
        Some(r) if crate::store::same_resource(r, o.resource()) => o.resource().to_owned(),
        Some(_) => return fail("invalid_target", &format!("this server's resource is {}", o.resource())),
    };
    let scopes = requested_scopes(p.get("scope").map(String::as_str), &o.scopes_supported());
    if scopes.is_empty() {
        return fail("invalid_scope", "the hub offers no tools yet; try again when its upstreams are ready");
    }
    let (id, csrf) = match (secret::random_secret(""), secret::random_secret("")) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Server error", "No randomness available."),
    };
    let t = o.now();
    let pending = Pending {
        csrf,
        client,
        redirect_uri,
        state,
        challenge,
        resource,
        scopes,
        created: t,
        failures: 0,
        locked_until: 0,
    };
    {
        let mut all = lock(&o.inner.pending);
        all.retain(|_, p| p.created + PENDING_TTL > t);
        if all.len() >= MAX_PENDING {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "Too many authorizations are waiting; try later.",
            );
        }
        all.insert(id.clone(), pending.clone());
    }
    if pending.client.source == Source::Dynamic {
        let cid = pending.client.id.clone();
        let _ = o.db(move |s| s.touch_client(&cid, t)).await;
    }
    consent_page(&o, &id, &pending, StatusCode::OK, None, None)
}

fn consent_page(
    o: &OAuth,
    id: &str,
    p: &Pending,
    status: StatusCode,
    message: Option<&str>,
    retry_after: Option<u64>,
) -> Response {
    let scopes: Vec<(String, String)> = p.scopes.iter().map(|s| (s.clone(), describe_scope(s))).collect();
    let body = html::consent(&html::Consent {
        request: id,
        csrf: &p.csrf,
        client_name: &p.client.name,
        client_id: &p.client.id,
        source: p.client.source.describe(),
        redirect_target: &redirect::display_target(&p.redirect_uri),
        loopback: redirect::check(&p.redirect_uri) == Ok(redirect::Kind::Loopback),
        scopes: &scopes,
        message,
        issuer: o.issuer(),
    });
    let mut r = html_response(status, body, redirect::csp_source(&p.redirect_uri).as_deref());
    if let Some(s) = retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// `POST /authorize`: the owner's decision on the consent page.
async fn decide(State(o): State<OAuth>, body: Bytes) -> Response {
    let bad = |m: &str| error_page(StatusCode::BAD_REQUEST, "Authorization refused", m);
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut checked: Vec<String> = vec![];
    for (k, v) in url::form_urlencoded::parse(&body) {
        if k == "scope" {
            checked.push(v.into_owned());
        } else {
            fields.insert(k.into_owned(), v.into_owned());
        }
    }
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let id = get("request").to_owned();
    let t = o.now();
    let pending = lock(&o.inner.pending).get(&id).filter(|p| p.created + PENDING_TTL > t).cloned();
    let Some(p) = pending else {
        return bad("This authorization request has expired or was already decided. Start again from the app.");
    };
    if !secret::ct_eq(get("csrf").as_bytes(), p.csrf.as_bytes()) {
        return bad("The form does not belong to this authorization request. Start again from the app.");
    }
    let deny = |o: &OAuth| {
        if lock(&o.inner.pending).remove(&id).is_none() {
            return bad("This authorization request was already decided.");
        }
        o.back(StatusCode::SEE_OTHER, &p.redirect_uri, p.state.as_deref(), &[("error", "access_denied")])
    };
    match get("decision") {
        "deny" => return deny(&o),
        "approve" => {}
        _ => return consent_page(&o, &id, &p, StatusCode::BAD_REQUEST, Some("Choose Approve or Deny."), None),
    }
    let locked_message = |wait: u64| {
        format!(
            "Too many wrong owner secrets: approvals are locked for {} more. Nothing was approved.",
            humantime::format_duration(Duration::from_secs(wait))
        )
    };
    if p.locked_until > t {
        let wait = p.locked_until - t;
        return consent_page(&o, &id, &p, StatusCode::TOO_MANY_REQUESTS, Some(&locked_message(wait)), Some(wait));
    }
    // The lockout is checked, the secret compared and a failure counted under one lock, so
    // parallel attempts cannot get more than five guesses past it.
    let given = get("owner_secret").to_owned();
    let inner = o.inner.clone();
    let verdict = tokio::task::spawn_blocking(move || {
        let mut lockout = lock(&inner.lockout);
        if let Some(wait) = lockout.retry_after(t) {
            return Verdict::Locked(wait);
        }
        match lock(&inner.store).check_owner_secret(&given) {
            Ok(Some(true)) => Verdict::Right,
            Ok(Some(false)) => Verdict::Wrong(lockout.fail(t)),
            Ok(None) => Verdict::NoSecret,
            Err(e) => Verdict::Failed(e.to_string()),
        }
    })
    .await
    .unwrap_or_else(|e| Verdict::Failed(e.to_string()));
    match verdict {
        Verdict::Right => {}
        Verdict::Locked(wait) => {
            return consent_page(&o, &id, &p, StatusCode::TOO_MANY_REQUESTS, Some(&locked_message(wait)), Some(wait));
        }
        Verdict::Wrong(left_hub) => {
            let left_request = {
                let mut all = lock(&o.inner.pending);
                match all.get_mut(&id) {
                    Some(q) => {
                        q.failures += 1;
                        if q.failures >= LOCK_AFTER {
                            q.locked_until = t + LOCK_WINDOW;
                        }
                        LOCK_AFTER.saturating_sub(q.failures)
                    }
                    None => 0,
                }
            };
            let left = left_hub.min(left_request);
            tracing::warn!(client = %p.client.name, "wrong owner secret on the consent page");
            if left == 0 {
                let m = "Wrong owner secret. Too many wrong attempts: approvals are locked for 15 minutes.";
                return consent_page(&o, &id, &p, StatusCode::TOO_MANY_REQUESTS, Some(m), Some(LOCK_WINDOW));
            }
            let m = format!("Wrong owner secret. {left} attempt(s) left before approvals are locked for 15 minutes.");
            return consent_page(&o, &id, &p, StatusCode::UNAUTHORIZED, Some(&m), None);
        }
        Verdict::NoSecret => {
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "No owner secret",
                "This hub has no owner secret. Run `bastion owner-secret` on the hub's machine.",
            );
        }
        Verdict::Failed(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Server error", &e),
    }
    let granted: Vec<String> = p.scopes.iter().filter(|s| checked.contains(s)).cloned().collect();
    if granted.is_empty() {
        return deny(&o);
    }
    if lock(&o.inner.pending).remove(&id).is_none() {
        return bad("This authorization request was already decided.");
    }
    let code = match secret::random_secret(crate::store::CODE_PREFIX) {
        Ok(c) => c,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Server error", &e),
    };
    let grant = CodeGrant {
        client_id: p.client.id.clone(),
        client_name: p.client.name.clone(),
        redirect_uri: p.redirect_uri.clone(),
        challenge: p.challenge.clone(),
        resource: p.resource.clone(),
        scopes: granted,
    };
    let expires = t + o.inner.lifetimes.code.as_secs();
    let stored = code.clone();
    match o.db(move |s| s.insert_code(&stored, &grant, expires)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Server error", &e.to_string()),
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Server error", &e),
    }
    tracing::info!(client = %p.client.name, "authorization approved");
    o.back(StatusCode::SEE_OTHER, &p.redirect_uri, p.state.as_deref(), &[("code", &code)])
}

/// `client_id` from the form, or from HTTP Basic credentials (some clients send it there even
/// as public clients).
fn client_id(p: &HashMap<String, String>, headers: &HeaderMap) -> Option<String> {
    if let Some(c) = p.get("client_id").filter(|c| !c.is_empty()) {
        return Some(c.clone());
    }
    use base64::Engine;
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let id = text.split(':').next()?;
    let id: String = url::form_urlencoded::parse(format!("x={id}").as_bytes()).next()?.1.into_owned();
    (!id.is_empty()).then_some(id)
}

fn grant_error(e: GrantError) -> Response {
    let (error, d) = match e {
        GrantError::InvalidRequest(d) => ("invalid_request", d),
        GrantError::InvalidGrant(d) => ("invalid_grant", d),
        GrantError::InvalidTarget(d) => ("invalid_target", d),
        GrantError::InvalidScope(d) => ("invalid_scope", d),
        GrantError::Internal(d) => {
            tracing::error!("token endpoint: {d}");
            return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error");
        }
    };
    oauth_error(StatusCode::BAD_REQUEST, error, &d)
}

/// `POST /token` (AS-07, AS-09).
async fn token(State(o): State<OAuth>, headers: HeaderMap, body: Bytes) -> Response {
    let p = match single_params(&body) {
        Ok(p) => p,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    let Some(client_id) = client_id(&p, &headers) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "client_id is required");
    };
    let grant_type = p.get("grant_type").map(String::as_str).unwrap_or("");
    if !matches!(grant_type, "authorization_code" | "refresh_token") {
        let (e, d) = if grant_type.is_empty() {
            ("invalid_request", "grant_type is required".to_owned())
        } else {
            ("unsupported_grant_type", format!("grant_type '{grant_type}' is not supported"))
        };
        return oauth_error(StatusCode::BAD_REQUEST, e, &d);
    }
    if !o.known(&client_id).await {
        // 401 invalid_client makes Claude register again (CL-01).
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client; register again");
    }
    let t = o.now();
    let life = o.inner.lifetimes;
    let result = if grant_type == "authorization_code" {
        let Some(code) = p.get("code").filter(|c| !c.is_empty()) else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "code is required");
        };
        let req = CodeExchange {
            code: code.clone(),
            client_id,
            redirect_uri: p.get("redirect_uri").cloned(),
            verifier: p.get("code_verifier").cloned(),
            resource: p.get("resource").cloned(),
        };
        o.db(move |s| s.exchange_code(&req, t, &life)).await
    } else {
        let Some(token) = p.get("refresh_token").filter(|c| !c.is_empty()) else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "refresh_token is required");
        };
        let req = RefreshRequest {
            token: token.clone(),
            client_id,
            scopes: p
                .get("scope")
                .map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .filter(|v| !v.is_empty()),
            resource: p.get("resource").cloned(),
            audience: o.resource().to_owned(),
        };
        o.db(move |s| s.refresh(&req, t, &life)).await
    };
    if result.as_ref().is_ok_and(|r| r.is_ok()) {
        o.prune_hourly(t).await;
    }
    match result {
        Ok(Ok(i)) => json_response(
            StatusCode::OK,
            &json!({
                "access_token": i.access_token,
                "token_type": "Bearer",
                "expires_in": i.expires_in,
                "refresh_token": i.refresh_token,
                "scope": i.scopes.join(" "),
            }),
        ),
        Ok(Err(e)) => grant_error(e),
        Err(e) => grant_error(GrantError::Internal(e)),
    }
}

/// `POST /revoke` (RFC 7009): 200 whether or not the token was known.
async fn revoke(State(o): State<OAuth>, body: Bytes) -> Response {
    let p = match single_params(&body) {
        Ok(p) => p,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    let Some(token) = p.get("token").filter(|t| !t.is_empty()).cloned() else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token is required");
    };
    let t = o.now();
    match o.db(move |s| s.revoke_token(&token, t)).await {
        Ok(Ok(())) => no_store(StatusCode::OK.into_response()),
        Ok(Err(e)) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e.to_string()),
        Err(e) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e),
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
