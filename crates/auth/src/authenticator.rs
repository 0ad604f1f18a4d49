//! The one question the hub asks for every request: who is behind this `Authorization` header?
//! [`Authenticator::authenticate`] answers with a [`Principal`] or the [`Challenge`] of a 401;
//! the hub knows nothing else about tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::challenge::{self, Challenge, Refusal};
use crate::principal::Principal;
use crate::server::{Clock, Endpoint, OAuth, now};
use crate::store::{ACCESS_PREFIX, Access, Store, TOKEN_PREFIX};

/// A store shared by the hub's request path and its commands.
pub type SharedStore = Arc<Mutex<Box<dyn Store>>>;

/// How requests are authenticated.
#[derive(Clone)]
enum Mode {
    /// No authentication (`--no-auth` on loopback, stdio): everyone may do everything.
    Open,
    /// Static `bst_` tokens.
    Tokens,
    /// Static tokens and the embedded OAuth server's access tokens.
    OAuth(OAuth),
}

/// How long a static token verified against a shared (PostgreSQL) store is taken on trust:
/// well inside the second in which a revocation made anywhere must hold on every hub. Each hub
/// then asks the database about a busy token twice a second, not on every request (a round trip
/// per request, under the store's one lock, was a hub's whole throughput on PostgreSQL).
pub const VERIFIED_FOR: Duration = Duration::from_millis(500);

/// Most tokens kept verified at once; past it the cache starts again empty.
const VERIFIED_MAX: usize = 4096;

/// Static tokens recently verified against a shared store, by their secret.
#[derive(Default)]
struct Verified(Mutex<HashMap<String, (Principal, Instant)>>);

impl Verified {
    fn get(&self, token: &str) -> Option<Principal> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(token).filter(|(_, at)| at.elapsed() < VERIFIED_FOR).map(|(p, _)| p.clone())
    }

    fn put(&self, token: &str, principal: &Principal) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= VERIFIED_MAX {
            map.clear();
        }
        map.insert(token.to_owned(), (principal.clone(), Instant::now()));
    }

    fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Authenticates requests. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    mode: Mode,
    store: Option<SharedStore>,
    clock: Clock,
    /// With a shared store only: a local store is asked every time (a local lookup is cheap,
    /// and a command on this machine expects its change at the next request).
    verified: Option<Arc<Verified>>,
}

fn lock(store: &SharedStore) -> std::sync::MutexGuard<'_, Box<dyn Store>> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

/// The token of an `Authorization: Bearer …` value (scheme case-insensitive), if it is one.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

impl Authenticator {
    /// No authentication: every request is `anonymous` with every scope.
    pub fn open() -> Authenticator {
        Authenticator { mode: Mode::Open, store: None, clock: Arc::new(now), verified: None }
    }

    /// Static bearer tokens from `store`.
    pub fn tokens(store: Box<dyn Store>) -> Authenticator {
        let verified = store.is_shared().then(Arc::default);
        Authenticator { mode: Mode::Tokens, store: Some(Arc::new(Mutex::new(store))), clock: Arc::new(now), verified }
    }

    /// The same, with a given clock (tests: elevations lapse, tokens expire).
    pub fn with_clock(mut self, clock: Clock) -> Authenticator {
        self.clock = clock;
        self
    }

    /// OAuth mode: the authorization server's access tokens besides static tokens (Cursor,
    /// Claude Code and scripts keep using a header). Without a token store (open mode) OAuth
    /// does not apply and this is `self` unchanged.
    pub fn with_oauth(self, oauth: OAuth) -> Authenticator {
        match self.mode {
            Mode::Open => self,
            _ => Authenticator { mode: Mode::OAuth(oauth), ..self },
        }
    }

    /// Whether requests need no token.
    pub fn is_open(&self) -> bool {
        matches!(self.mode, Mode::Open)
    }

    /// The OAuth server, in OAuth mode.
    pub fn oauth(&self) -> Option<&OAuth> {
        match &self.mode {
            Mode::OAuth(o) => Some(o),
            _ => None,
        }
    }

    /// Runs `f` on the token store (listing, creating the first token); `None` in open mode.
    /// What `f` changes holds from the next request: the verified tokens are forgotten.
    pub fn with_store<T>(&self, f: impl FnOnce(&mut dyn Store) -> T) -> Option<T> {
        let r = self.store.as_ref().map(|s| f(&mut **lock(s)));
        if let Some(v) = &self.verified {
            v.clear();
        }
        r
    }

    /// A static token's principal: from the verified tokens while fresh, else from the store.
    fn static_token(&self, store: &SharedStore, token: &str) -> Result<Principal, Refusal> {
        if let Some(p) = self.verified.as_ref().and_then(|v| v.get(token)) {
            return Ok(p);
        }
        let result = lock(store).authenticate_token(token, (self.clock)());
        if let (Ok(p), Some(v)) = (&result, &self.verified) {
            v.put(token, p);
        }
        result
    }

    /// The principal behind an `Authorization` header value (`None`: no header, or not text),
    /// or the challenge of the 401.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, Challenge> {
        self.authenticate_at(Endpoint::Mcp, authorization).await
    }

    /// [`Authenticator::authenticate`] for a request to `endpoint`: in OAuth mode the 401 names
    /// that endpoint's protected-resource metadata.
    pub async fn authenticate_at(
        &self,
        endpoint: Endpoint,
        authorization: Option<&str>,
    ) -> Result<Principal, Challenge> {
        let store = match (&self.mode, &self.store) {
            (Mode::Open, _) | (_, None) => return Ok(Principal::unrestricted("anonymous")),
            (_, Some(store)) => store,
        };
        let Some(token) = authorization.and_then(bearer) else {
            return Err(self.challenge_at(endpoint, None));
        };
        let result = match &self.mode {
            Mode::OAuth(oauth) if token.starts_with(ACCESS_PREFIX) => {
                oauth.verify(token).await.map(Access::into_principal)
            }
            Mode::OAuth(_) if !token.starts_with(TOKEN_PREFIX) => Err(Refusal::Unknown),
            _ => self.static_token(store, token),
        };
        result.map_err(|r| self.challenge_at(endpoint, Some(r)))
    }

    /// The endpoint a request path is served as (a profile's, in OAuth mode, for the
    /// challenges that name its protected-resource metadata).
    pub fn endpoint_of(&self, path: &str) -> Endpoint {
        match self.oauth() {
            Some(o) => o.endpoint_of(path),
            None => Endpoint::of_path(path),
        }
    }

    /// The 401 challenge of this mode for a missing (`None`) or refused token.
    pub fn challenge(&self, refusal: Option<Refusal>) -> Challenge {
        self.challenge_at(Endpoint::Mcp, refusal)
    }

    /// [`Authenticator::challenge`] for a request to `endpoint`.
    pub fn challenge_at(&self, endpoint: Endpoint, refusal: Option<Refusal>) -> Challenge {
        match &self.mode {
            Mode::OAuth(o) => challenge::oauth(&o.resource_metadata_url_at(endpoint), &o.scopes_supported(), refusal),
            _ => challenge::bearer(refusal),
        }
    }

    /// The `WWW-Authenticate` value of a 403 for a call that needs the scope `needed`.
    pub fn insufficient_scope(&self, needed: &str, description: &str) -> String {
        let metadata = self.oauth().map(OAuth::resource_metadata_url);
        challenge::insufficient_scope(needed, metadata.as_deref(), description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[tokio::test]
    async fn principals_and_challenges() {
        let open = Authenticator::open();
        assert!(open.is_open());
        assert_eq!(open.authenticate(None).await.unwrap(), Principal::unrestricted("anonymous"));

        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path()).unwrap();
        let (_, secret) = store.create_token("ci", &crate::scope::parse_list("fs:read").unwrap(), None, 100).unwrap();
        let clock = Arc::new(AtomicU64::new(100));
        let c = clock.clone();
        let auth = Authenticator::tokens(Box::new(store)).with_clock(Arc::new(move || c.load(Ordering::SeqCst)));
        assert!(!auth.is_open() && auth.oauth().is_none());
        let p = auth.authenticate(Some(&format!("Bearer {secret}"))).await.unwrap();
        assert_eq!(p.name, "ci");
        assert_eq!(crate::scope::join(&p.scopes), "fs:read");
        let missing = auth.authenticate(None).await.unwrap_err();
        assert_eq!((missing.refusal, missing.www_authenticate.as_str()), (None, "Bearer"));
        let bad = auth.authenticate(Some("Bearer bst_nope")).await.unwrap_err();
        assert_eq!(bad.refusal, Some(Refusal::Unknown));
        assert!(auth.authenticate(Some(&format!("Basic {secret}"))).await.is_err());

        // Elevation through the shared store: seen on the next request, gone when it lapses.
        let until = 100 + 1800;
        let elevated = auth
            .with_store(|s| s.elevate("ci", &crate::scope::parse_list("fs:write").unwrap(), until, 100))
            .unwrap()
            .unwrap();
        assert_eq!(elevated, ["ci"]);
        let p = auth.authenticate(Some(&format!("Bearer {secret}"))).await.unwrap();
        assert_eq!(crate::scope::join(&p.scopes), "fs:read fs:write");
        clock.store(until, Ordering::SeqCst);
        let p = auth.authenticate(Some(&format!("Bearer {secret}"))).await.unwrap();
        assert_eq!(crate::scope::join(&p.scopes), "fs:read");
        let scope = auth.insufficient_scope("fs:write", "needs fs:write");
        assert_eq!(
            scope,
            "Bearer error=\"insufficient_scope\", scope=\"fs:write\", error_description=\"needs fs:write\""
        );
    }
}
