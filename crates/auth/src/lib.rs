//! Authentication for the Bastion hub, in one place: who a request is ([`Principal`]), what it
//! may call ([`Scope`], parsed once), the static bearer tokens and the hub's embedded OAuth 2.1
//! authorization server that vouch for it, the [`Store`] they share, the 401/403 challenges
//! ([`challenge`]) and the state directory ([`state`]). No MCP types.
//!
//! The hub's HTTP guard makes one call per request, [`Authenticator::authenticate`], with the
//! `Authorization` header, and gets a [`Principal`] or the [`Challenge`] to send back:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bastion_auth::{Authenticator, Scope, SqliteStore, Store};
//! let dir = tempfile::tempdir()?; // the hub's state directory
//! let mut store = SqliteStore::open(dir.path())?;
//! let (_, secret) = store.create_token("ci", &[Scope::parse("fs:read")?], None, bastion_auth::now())?;
//! let auth = Authenticator::tokens(Box::new(store));
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! runtime.block_on(async {
//!     let who = auth.authenticate(Some(&format!("Bearer {secret}"))).await.expect("a live token");
//!     println!("{} may use {:?}", who.name, who.scopes);
//!     match auth.authenticate(Some("Bearer bst_unknown")).await {
//!         Ok(who) => panic!("{} got in with an unknown token", who.name),
//!         Err(c) => println!("401, WWW-Authenticate: {}", c.www_authenticate),
//!     }
//! });
//! # Ok(()) }
//! ```
//!
//! **Static tokens** (`bst_…`) are created by `bastion token create`, shown once and kept as
//! SHA-256 hashes in the store; every request looks its hash up (one indexed query), so a
//! revocation by another process applies to the next request. `bastion token elevate` adds
//! scopes that lapse by themselves, to a token or an OAuth grant; `bastion token revoke --all`
//! revokes every token and grant at once.
//!
//! **OAuth.** //! With a public URL configured (`bastion serve --public-url https://hub.example.com`) the hub is
//! both the protected resource (`https://hub.example.com/mcp`) and its own authorization server
//! (issuer `https://hub.example.com`, no trailing slash, the same string in every document and
//! response). This crate holds everything OAuth:
//!
//! * discovery: protected-resource metadata (RFC 9728) and authorization-server metadata
//!   (RFC 8414, also served as `/.well-known/openid-configuration`);
//! * clients: dynamic registration (RFC 7591), client ID metadata documents fetched with SSRF
//!   protection ([`net`]), and static clients from the hub's configuration;
//! * the authorization code flow with PKCE S256 only, RFC 8707 `resource` bound into codes and
//!   tokens, RFC 9207 `iss` in every authorization response, and a consent page that needs the
//!   **owner secret** (rate limited, with a lockout);
//! * opaque, hashed, audience-bound access tokens and rotating refresh tokens whose reuse revokes
//!   the family; revocation (RFC 7009);
//! * [`OAuth::verify`], which the hub's HTTP guard calls for every `bat_` bearer token.
//!
//! The owner secret lives (hashed) in the state directory, outside every root the tools can
//! reach, and is never shown to a model: the browser of the person approving is the only place
//! it is typed.
//!
//! State lives in `auth.sqlite3` in the state directory ([`store`]), mode 0600.
//!
//! Decisions worth knowing:
//!
//! * The hub serves OAuth at the origin root: a public URL may end in `/mcp` but have no other
//!   path ([`issuer_of`]); `http` only on loopback.
//! * Every client is public (`token_endpoint_auth_method: "none"`, PKCE protects the code); a
//!   registration asking for a secret-based method gets `none` back. A registration with any
//!   unacceptable redirect URI is refused whole (`invalid_redirect_uri`); private-use schemes
//!   such as Cursor's `cursor://` are accepted (RFC 8252).
//! * A metadata document is fetched without following redirects (a 3xx is an error), from an
//!   address checked and pinned before connecting ([`net`]).
//! * `redirect_uri` is required at `/authorize`, even for a client with a single one.
//! * A `scope` naming nothing the hub offers is treated as no `scope`: the consent page offers
//!   every scope and the owner unticks what the client should not get.
//! * Reuse of a rotated refresh token revokes the grant at once; there is no grace period.
//! * The consent page's CSP `form-action` lists `'self'` and the redirect URI's origin (or
//!   scheme): Chromium applies `form-action` to the redirect that follows the form's POST. The
//!   page is sent with `Referrer-Policy: no-referrer`, so browsers post the form with
//!   `Origin: null`; the hub's Origin check admits that for `POST /authorize` only.
//! * Wrong owner secrets lock approvals hub-wide for 15 minutes after 5 in 15 minutes (kept in
//!   memory: a restart of the hub lifts a lockout).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let state = tempfile::tempdir()?; // the hub's state directory
//! let settings = bastion_auth::Settings::new("https://hub.example.com", state.path())?;
//! let (oauth, new_secret) = bastion_auth::OAuth::open(settings, Arc::new(|| vec!["fs:read".to_owned()]))?;
//! if let Some(s) = new_secret {
//!     println!("owner secret: {s}");
//! }
//! let app: axum::Router = oauth.router(); // merge with the /mcp routes, behind the Host check
//! # let _ = app; Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod authenticator;
pub mod challenge;
pub mod client;
pub mod html;
pub mod net;
pub mod principal;
pub mod redirect;
pub mod scope;
pub mod secret;
mod server;
pub mod state;
pub mod store;

pub use authenticator::{Authenticator, SharedStore, bearer};
pub use challenge::{Challenge, Refusal};
pub use client::{Client, Source, StaticClient};
pub use principal::Principal;
pub use scope::{MAX_UPSTREAM_LEN, Scope, ScopeError, allowed, allowed_tool, valid_upstream_name};
pub use server::{Clock, Endpoint, Fetcher, OAuth, PUBLIC_PATHS, ScopesFn, Settings, is_public_path, issuer_of, now};
pub use store::{
    Access, ClientCredentials, Elevation, GrantInfo, Lifetimes, MachineClient, RevokedAll, SqliteStore, Store,
    StoreError, TOKEN_PREFIX, TokenRecord,
};
