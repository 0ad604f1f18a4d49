//! The store of everything authentication keeps: static bearer tokens, their elevations, the
//! owner secret, OAuth clients, codes, grants and tokens. One small trait, [`Store`], with the
//! SQLite implementation ([`SqliteStore`], `auth.sqlite3` in the state directory) as the
//! default, and [`PostgresStore`] (`store = "postgres://…"`) for several hub replicas sharing
//! one database. [`open`] picks one from the configuration's `store` value. Beside
//! authentication the store keeps what hub replicas must share ([`shared`]: mode and pause, the
//! approvals queue, registration counters) and, on PostgreSQL, announces every change on a feed
//! ([`Store::subscribe`]).
//!
//! Nothing secret is stored: codes, access, refresh and static tokens are kept as SHA-256
//! hashes, the owner secret as a salted SHA-256 hash. A grant is one approval on the consent
//! page; its tokens form a family that is revoked together (a replayed code, a reused refresh
//! token, `bastion token revoke`, `/revoke` with a refresh token).
//!
//! Every method is blocking: the OAuth server calls them on tokio's blocking pool; the static
//! token check is one indexed query, made inline. Every method that depends on the time takes
//! `now` (seconds since the epoch), so tests inject their clock.

mod postgres;
pub mod shared;
mod sqlite;
#[cfg(test)]
mod suite;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::challenge::Refusal;
use crate::client::Client;
use crate::principal::Principal;
use crate::scope::Scope;

pub use postgres::{PostgresStore, check_spec, is_postgres, resolve_url};
pub use shared::{ApprovalDecision, ApprovalRecord, Change, OnChange, Subscription, Switch, Switches};
pub use sqlite::{LEGACY_FILE, LEGACY_TOKENS_FILE, SqliteStore};

/// Opens the store a configuration names: `None` (or empty) is the SQLite file of `state_dir`;
/// a PostgreSQL URL, or an `env:NAME`/`file:/path` reference to one, is that database.
pub fn open(store: Option<&str>, state_dir: &std::path::Path) -> Result<Box<dyn Store>, StoreError> {
    match store.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(Box::new(SqliteStore::open(state_dir)?)),
        Some(spec) if is_postgres(spec) => Ok(Box::new(PostgresStore::connect(&resolve_url(spec)?)?)),
        Some(spec) => Err(StoreError(format!(
            "store = \"{spec}\": expected a postgres:// URL, env:NAME or file:/path (the default is the SQLite file)"
        ))),
    }
}

/// The SQLite store's file name in the state directory.
pub const FILE: &str = sqlite::FILE;
/// Prefix of access tokens.
pub const ACCESS_PREFIX: &str = "bat_";
/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "brt_";
/// Prefix of authorization codes.
pub const CODE_PREFIX: &str = "bac_";
/// Prefix of the owner secret.
pub const OWNER_PREFIX: &str = "bos_";
/// Prefix of static bearer tokens, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "bst_";
/// Prefix of the dashboard's one-time sign-in links (`bastion dashboard`).
pub const LOGIN_LINK_PREFIX: &str = "bdl_";
/// Prefix of machine client ids (`bastion client create --machine`).
pub const MACHINE_CLIENT_PREFIX: &str = "bmc_";
/// Prefix of machine client secrets.
pub const MACHINE_SECRET_PREFIX: &str = "bcs_";
/// Longest life of an access token issued by the client credentials grant, whatever
/// `oauth.access_token_ttl` says: a machine asks again whenever it likes, so its tokens need
/// not outlive a short window in which a leaked one is useful.
pub const MACHINE_ACCESS_MAX: Duration = Duration::from_secs(600);

/// A store failure (I/O, SQLite or PostgreSQL).
#[derive(Debug, thiserror::Error)]
#[error("auth store: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError(e.to_string())
    }
}

impl From<crate::scope::ScopeError> for StoreError {
    fn from(e: crate::scope::ScopeError) -> StoreError {
        StoreError(e.to_string())
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> StoreError {
        StoreError(e.to_string())
    }
}

/// Why a token request is refused: the RFC 6749 §5.2 error and its description.
#[derive(Debug, PartialEq, Eq)]
pub enum GrantError {
    /// `invalid_request`.
    InvalidRequest(String),
    /// `invalid_grant`.
    InvalidGrant(String),
    /// `invalid_target` (RFC 8707).
    InvalidTarget(String),
    /// `invalid_scope`.
    InvalidScope(String),
    /// `invalid_client` (RFC 6749 §5.2): client authentication failed (unknown or revoked
    /// machine client, wrong secret).
    InvalidClient(String),
    /// `server_error`.
    Internal(String),
}

impl From<rusqlite::Error> for GrantError {
    fn from(e: rusqlite::Error) -> GrantError {
        GrantError::Internal(e.to_string())
    }
}

/// Lifetimes of what the server issues.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    /// Access tokens.
    pub access: Duration,
    /// Refresh tokens (each rotation starts a new period).
    pub refresh: Duration,
    /// Authorization codes.
    pub code: Duration,
}

impl Default for Lifetimes {
    fn default() -> Lifetimes {
        Lifetimes {
            access: Duration::from_secs(3600),
            refresh: Duration::from_secs(30 * 24 * 3600),
            code: Duration::from_secs(600),
        }
    }
}

/// What an approved authorization binds into its code.
#[derive(Clone, Debug)]
pub struct CodeGrant {
    /// The client.
    pub client_id: String,
    /// Its display name (kept with the grant for listings and audit lines).
    pub client_name: String,
    /// The redirect URI used.
    pub redirect_uri: String,
    /// The S256 challenge.
    pub challenge: String,
    /// The resource (audience).
    pub resource: String,
    /// The scopes the owner approved.
    pub scopes: Vec<Scope>,
}

/// A `grant_type=authorization_code` request.
#[derive(Clone, Debug, Default)]
pub struct CodeExchange {
    /// `code`.
    pub code: String,
    /// `client_id`.
    pub client_id: String,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `code_verifier`.
    pub verifier: Option<String>,
    /// `resource`.
    pub resource: Option<String>,
}

/// A `grant_type=refresh_token` request.
#[derive(Clone, Debug, Default)]
pub struct RefreshRequest {
    /// `refresh_token`.
    pub token: String,
    /// `client_id`.
    pub client_id: String,
    /// `scope`, if narrowing.
    pub scopes: Option<Vec<Scope>>,
    /// `resource`.
    pub resource: Option<String>,
    /// The hub's canonical resource now; a grant for another one (the public URL changed) is
    /// not refreshed, so the client authorizes again instead of looping on 401s. Empty: not
    /// checked.
    pub audience: String,
}

/// Tokens issued by the token endpoint.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The access token.
    pub access_token: String,
    /// The refresh token; empty for the client credentials grant, which has none (RFC 6749
    /// §4.4.3).
    pub refresh_token: String,
    /// The access token's scopes.
    pub scopes: Vec<Scope>,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The grant they belong to.
    pub grant_id: String,
}

/// What a valid access token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// The grant's id.
    pub grant_id: String,
    /// The client's name.
    pub client_name: String,
    /// The token's scopes and the grant's elevations that have not lapsed.
    pub scopes: Vec<Scope>,
    /// The hub profile the grant's resource names (`{resource}/{profile}`), if any: the
    /// grant is bound to it.
    pub profile: Option<String>,
}

impl Access {
    /// The principal of an OAuth access token: `oauth:<client name>/<grant id>` in the audit
    /// journal, the token's scopes.
    pub fn into_principal(self) -> Principal {
        Principal {
            name: format!("oauth:{}/{}", self.client_name, self.grant_id),
            scopes: self.scopes,
            profiles: self.profile.into_iter().collect(),
        }
    }
}

/// A confidential machine client (`bastion client create --machine`): it authenticates with
/// its id and secret at `/token` (`grant_type=client_credentials`) and gets short-lived access
/// tokens with at most its scopes. Its secret is kept only as a SHA-256 hash. Each machine client
/// has one grant, created with it: its tokens belong to that grant, so `bastion token list`
/// shows it and `bastion token revoke` / `revoke-all` end it like any other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineClient {
    /// `bmc_…`.
    pub client_id: String,
    /// Human name; the principal of its calls is `oauth:NAME/GRANT`.
    pub name: String,
    /// The most its tokens may carry.
    pub scopes: Vec<Scope>,
    /// Its grant's id.
    pub grant_id: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// When its grant was last used, if ever (to the minute).
    pub last_used: Option<u64>,
    /// When it was revoked (itself or its grant), if it was.
    pub revoked: Option<u64>,
}

/// A `grant_type=client_credentials` request, its client authenticated by the store.
#[derive(Clone, Debug, Default)]
pub struct ClientCredentials {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub secret: String,
    /// `scope`, if narrowing; each must be covered by one of the client's scopes.
    pub scopes: Option<Vec<Scope>>,
    /// The audience the token is for (the hub's canonical resource).
    pub resource: String,
}

/// Checks a machine client's name and scopes, in every store.
pub(crate) fn check_machine_client(name: &str, scopes: &[Scope]) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control() || c == '/') {
        return Err(StoreError("a machine client's name is 1 to 64 printable characters, no '/'".into()));
    }
    if scopes.is_empty() {
        return Err(StoreError("a machine client needs at least one scope (for example --scope '*:read')".into()));
    }
    Ok(())
}

/// The scopes of a client credentials token: those asked (each covered by one of the
/// client's), or all of the client's.
pub(crate) fn machine_token_scopes(granted: &[Scope], asked: Option<&[Scope]>) -> Result<Vec<Scope>, GrantError> {
    match asked {
        Some(asked) if !asked.is_empty() => {
            if let Some(extra) = asked.iter().find(|a| !granted.iter().any(|g| g.covers(a))) {
                return Err(GrantError::InvalidScope(format!("scope '{extra}' is beyond this client's scopes")));
            }
            Ok(asked.to_vec())
        }
        _ => Ok(granted.to_vec()),
    }
}

/// The access lifetime of a client credentials token: the configured one, at most
/// [`MACHINE_ACCESS_MAX`].
pub(crate) fn machine_access_life(life: &Lifetimes) -> u64 {
    life.access.min(MACHINE_ACCESS_MAX).as_secs()
}

/// A grant as listed by `bastion token list`.
#[derive(Clone, Debug)]
pub struct GrantInfo {
    /// Id (also accepted by `bastion token revoke`).
    pub id: String,
    /// The client's id.
    pub client_id: String,
    /// The client's name.
    pub client_name: String,
    /// Approved scopes.
    pub scopes: Vec<Scope>,
    /// Elevations that have not lapsed.
    pub elevations: Vec<Elevation>,
    /// Seconds since the epoch.
    pub created: u64,
    /// Last authenticated request (to the minute), if any.
    pub last_used: Option<u64>,
    /// `live`, `revoked`, or `expired` (no usable refresh or access token left).
    pub state: &'static str,
}

/// The hub profile a granted resource names under the hub's canonical `resource`: `web` of
/// `{resource}/web` (RFC 8707: a connector given `https://hub/mcp/web` asks for that resource).
pub fn profile_of_resource<'a>(granted: &'a str, resource: &str) -> Option<&'a str> {
    let rest = granted.trim_end_matches('/').strip_prefix(resource.trim_end_matches('/'))?.strip_prefix('/')?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// Whether a grant for `granted` may be used at the hub whose canonical resource is `resource`:
/// the same resource, or one of its profiles.
pub fn within_resource(granted: &str, resource: &str) -> bool {
    same_resource(granted, resource) || profile_of_resource(granted, resource).is_some()
}

/// Whether two resource identifiers are the same, a trailing slash aside.
pub fn same_resource(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// A static bearer token as stored: never the secret itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenRecord {
    /// Short random id (also accepted by `revoke` and `elevate`).
    pub id: String,
    /// Human name; written to the audit lines of every call made with the token.
    pub name: String,
    /// Lower-case hex SHA-256 of the secret.
    pub sha256: String,
    /// What it may call.
    pub scopes: Vec<Scope>,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Expiry, seconds since the Unix epoch; `None` never expires.
    pub expires: Option<u64>,
    /// Revocation time, if revoked.
    pub revoked: Option<u64>,
    /// Elevations that have not lapsed (listing only; never in the legacy file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elevations: Vec<Elevation>,
    /// The hub profiles it is bound to, sorted (empty: every surface; never in the legacy file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
}

impl TokenRecord {
    /// Whether the token is usable at `at`.
    pub fn check(&self, at: u64) -> Result<(), Refusal> {
        if self.revoked.is_some() {
            return Err(Refusal::Revoked);
        }
        if self.expires.is_some_and(|e| at >= e) {
            return Err(Refusal::Expired);
        }
        Ok(())
    }
}

/// Scopes added to a token or grant for a while (`bastion token elevate`); they lapse by
/// themselves at `until`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Elevation {
    /// The added scopes.
    pub scopes: Vec<Scope>,
    /// When they lapse, seconds since the epoch.
    pub until: u64,
}

/// What `revoke_all` revoked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RevokedAll {
    /// Static tokens.
    pub tokens: usize,
    /// OAuth grants (with every token issued for them).
    pub grants: usize,
}

/// The store: static tokens and everything of the OAuth server. Object safe, so the hub holds a
/// `Box<dyn Store>` whatever the backend.
pub trait Store: Send {
    /// Where the store is (a file, a database URL without credentials), for messages.
    fn location(&self) -> String;

    /// Whether an owner secret is set.
    fn owner_secret_exists(&self) -> Result<bool, StoreError>;
    /// Creates or replaces the owner secret; returns it (shown once, stored hashed).
    fn set_owner_secret(&self, now: u64) -> Result<String, StoreError>;
    /// Whether `given` is the owner secret; `None` if there is none.
    fn check_owner_secret(&self, given: &str) -> Result<Option<bool>, StoreError>;

    /// Stores a dynamically registered client.
    fn insert_client(&self, c: &Client, now: u64) -> Result<(), StoreError>;
    /// A dynamically registered client.
    fn client(&self, id: &str) -> Result<Option<Client>, StoreError>;
    /// Notes that a client started an authorization (used clients are never pruned).
    fn touch_client(&self, id: &str, now: u64) -> Result<(), StoreError>;
    /// How many dynamically registered clients are stored.
    fn client_count(&self) -> Result<u64, StoreError>;
    /// Deletes registered clients never used for an authorization and created before `before`.
    fn prune_clients(&self, before: u64) -> Result<usize, StoreError>;

    /// Stores an authorization code (hashed) valid until `expires`.
    fn insert_code(&self, code: &str, g: &CodeGrant, expires: u64) -> Result<(), StoreError>;
    /// Redeems an authorization code (AS-07); a replayed code revokes what it issued.
    fn exchange_code(&mut self, req: &CodeExchange, now: u64, life: &Lifetimes) -> Result<Issued, GrantError>;
    /// Rotates a refresh token (AS-09); reuse of a rotated one revokes the family.
    fn refresh(&mut self, req: &RefreshRequest, now: u64, life: &Lifetimes) -> Result<Issued, GrantError>;
    /// Revokes a token (RFC 7009): an access token alone, a refresh token with its family.
    fn revoke_token(&mut self, token: &str, now: u64) -> Result<(), StoreError>;
    /// Checks an access token presented to `/mcp` (RS-05); its scopes include the grant's
    /// elevations that have not lapsed.
    fn verify_access(&self, token: &str, resource: &str, now: u64) -> Result<Access, Refusal>;
    /// Every grant, newest first.
    fn grants(&self, now: u64) -> Result<Vec<GrantInfo>, StoreError>;
    /// Revokes the live grants with this id, principal name (`oauth:NAME/ID`) or client name,
    /// and all their tokens; returns how many grants.
    fn revoke_grants(&mut self, id_or_name: &str, now: u64) -> Result<usize, StoreError>;
    /// Forgets what can no longer be used.
    fn prune(&self, now: u64) -> Result<(), StoreError>;

    /// Creates a static token (the name must not be that of a live token); returns its record
    /// and its secret (shown once, never stored).
    fn create_token(
        &mut self,
        name: &str,
        scopes: &[Scope],
        expires_in: Option<Duration>,
        now: u64,
    ) -> Result<(TokenRecord, String), StoreError>;
    /// [`Store::create_token`] bound to hub profiles: the token reaches only their surfaces
    /// (`/mcp/{profile}`); none given, every surface. One transaction: a token never exists
    /// unbound for a moment.
    fn create_token_for(
        &mut self,
        name: &str,
        scopes: &[Scope],
        expires_in: Option<Duration>,
        profiles: &[String],
        now: u64,
    ) -> Result<(TokenRecord, String), StoreError> {
        if profiles.is_empty() {
            return self.create_token(name, scopes, expires_in, now);
        }
        Err(StoreError(format!("{} cannot bind tokens to profiles", self.location())))
    }
    /// Imports records as they are (ids, hashes, times): the migration of a `tokens.json`.
    /// Records whose id is already stored are skipped; returns how many were added.
    fn import_tokens(&mut self, records: &[TokenRecord]) -> Result<usize, StoreError>;
    /// Every static token, oldest first, with the elevations that have not lapsed at `now`.
    fn tokens(&self, now: u64) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes the live static tokens with this name or id; returns how many.
    fn revoke_tokens(&mut self, name_or_id: &str, now: u64) -> Result<usize, StoreError>;
    /// Checks a presented static token: the principal with its scopes and unexpired elevations.
    fn authenticate_token(&self, secret: &str, now: u64) -> Result<Principal, Refusal>;

    /// Adds `scopes` until `until` to the live static tokens and OAuth grants with this name or
    /// id; returns the names of what was elevated (empty: nothing matched).
    fn elevate(&mut self, name_or_id: &str, scopes: &[Scope], until: u64, now: u64) -> Result<Vec<String>, StoreError>;
    /// Revokes every static token and every OAuth grant (with its tokens and pending codes).
    fn revoke_all(&mut self, now: u64) -> Result<RevokedAll, StoreError>;

    /// Whether several processes share this store as their source of truth for mode, pause and
    /// approvals (PostgreSQL), rather than each keeping its own in memory (SQLite).
    fn is_shared(&self) -> bool {
        false
    }
    /// Listens to the change feed on a connection of its own, calling `on_change` for every
    /// change another process (or this one) commits; on (re)connecting it calls it with
    /// [`Change::All`]. `None`: this store has no feed (SQLite).
    fn subscribe(&self, _on_change: OnChange) -> Result<Option<Subscription>, StoreError> {
        Ok(None)
    }

    /// The server-wide switches (both off when never set).
    fn switches(&self) -> Result<Switches, StoreError>;
    /// Sets one switch, announcing it; returns the switches as they were before.
    fn set_switch(&self, switch: Switch, now: u64) -> Result<Switches, StoreError>;

    /// Queues an approval request (its id is new), announcing it. Requests long past their
    /// expiry are forgotten here.
    fn insert_approval(&self, r: &ApprovalRecord) -> Result<(), StoreError>;
    /// The requests still waiting for a decision at `now_ms`, oldest first.
    fn pending_approvals(&self, now_ms: u64) -> Result<Vec<ApprovalRecord>, StoreError>;
    /// One request, decided or not, while it is stored.
    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError>;
    /// Decides a waiting request, once, announcing it; the request as decided, or `None` if no
    /// request with this id is waiting (decided, expired or withdrawn).
    fn decide_approval(
        &self,
        id: &str,
        d: &ApprovalDecision,
        now_ms: u64,
    ) -> Result<Option<ApprovalRecord>, StoreError>;
    /// Forgets a request (withdrawn, expired, or its held call answered); whether it was there.
    fn remove_approval(&self, id: &str) -> Result<bool, StoreError>;
    /// Uses, once, a return-mode approval for exactly this principal, tool and argument hash
    /// that is still valid at `now_ms` (its request's timeout counted from the decision).
    fn take_approval(
        &self,
        principal: &str,
        tool: &str,
        args_hash: &str,
        now_ms: u64,
    ) -> Result<Option<ApprovalRecord>, StoreError>;

    /// Counts one registration under `key` in the window starting at `window_start`; whether
    /// it is within `limit` (the count including this one is at most `limit`). Atomic across
    /// processes sharing the store; windows before this one are forgotten.
    fn count_registration(&self, key: &str, window_start: u64, limit: u64) -> Result<bool, StoreError>;

    /// Creates a machine client (the name must not be that of a live one) with its grant;
    /// returns it and its secret (shown once, stored as SHA-256).
    fn create_machine_client(
        &mut self,
        name: &str,
        scopes: &[Scope],
        now: u64,
    ) -> Result<(MachineClient, String), StoreError>;
    /// Every machine client, oldest first.
    fn machine_clients(&self) -> Result<Vec<MachineClient>, StoreError>;
    /// Revokes the live machine clients with this id or name, with their grants and tokens;
    /// returns how many.
    fn revoke_machine_clients(&mut self, id_or_name: &str, now: u64) -> Result<usize, StoreError>;
    /// The client credentials grant: authenticates the client by its secret and issues an
    /// access token (no refresh token) for its grant, with at most its scopes.
    fn client_credentials(&mut self, req: &ClientCredentials, now: u64, life: &Lifetimes)
    -> Result<Issued, GrantError>;

    /// Creates a one-time dashboard sign-in secret valid until `expires` (`bastion dashboard`);
    /// returns it (shown once, stored as SHA-256). Links past their expiry are forgotten here.
    fn create_login_link(&self, _expires: u64, _now: u64) -> Result<String, StoreError> {
        Err(StoreError(format!("{} keeps no dashboard sign-in links", self.location())))
    }
    /// Uses a sign-in secret: `true` exactly once for a secret created and not expired at `now`,
    /// `false` for anything else (unknown, used, expired).
    fn redeem_login_link(&self, _secret: &str, _now: u64) -> Result<bool, StoreError> {
        Ok(false)
    }
}

/// The one judgement of a static token's row, whichever store read it: revoked, then expired
/// (`expires`, seconds), else its own scopes plus the elevations still running.
pub(crate) fn judge_token(
    name: String,
    mut scopes: Vec<Scope>,
    expires: Option<u64>,
    revoked: bool,
    elevations: Vec<Elevation>,
    now: u64,
) -> Result<Principal, Refusal> {
    if revoked {
        return Err(Refusal::Revoked);
    }
    if expires.is_some_and(|e| now >= e) {
        return Err(Refusal::Expired);
    }
    scopes.extend(elevations.into_iter().flat_map(|e| e.scopes));
    Ok(Principal { name, scopes, profiles: vec![] })
}

/// The profiles of a token as the stores read them (one comma-separated column).
pub(crate) fn profile_list(joined: Option<String>) -> Vec<String> {
    joined.map(|j| j.split(',').filter(|p| !p.is_empty()).map(str::to_owned).collect()).unwrap_or_default()
}

/// Refuses an elevation with no scope or no duration, in every store.
pub(crate) fn check_elevation(scopes: &[Scope], until: u64, now: u64) -> Result<(), StoreError> {
    if scopes.is_empty() {
        return Err(StoreError("an elevation needs at least one scope".into()));
    }
    if until <= now {
        return Err(StoreError("an elevation must last at least a second".into()));
    }
    Ok(())
}
