//! Sealed MCP sessions: with `--stateful` and a `sealing_key`, a session's `Mcp-Session-Id` is the
//! session itself — who opened it, until when it lasts, and the client's `initialize` parameters —
//! sealed with authenticated encryption under a key every replica shares. A hub that receives a
//! session it did not create (its creator was killed, or the load balancer chose another replica)
//! opens the id, checks that it is the caller's and has not expired, and re-creates the session in
//! memory by replaying the `initialize` handshake (rmcp's session restore), without a shared
//! session table.
//!
//! The seal is ChaCha20-Poly1305 (`ring`, already in the tree through rustls) with a random 96-bit
//! nonce per session; the key is SHA-256 of a domain label and the configured secret, so any
//! secret of 32 characters or more (e.g. `openssl rand -hex 32`) is a key. An id that was altered,
//! sealed under another key, expired, or presented with another principal's token is no session:
//! 404, and the client initialises again.
//!
//! What a sealed id cannot do: be revoked before it expires (a `DELETE` ends the session on the
//! replica that receives it; the id still opens elsewhere until [`MAX_AGE`], for the same
//! principal only, whose token is checked on every request as ever); carry state that changes
//! after `initialize` (the hub keeps none per session besides its stream).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::Stream;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use rmcp::model::{ClientJsonRpcMessage, InitializeRequestParams, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, LocalSessionManagerError};
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, ServerSseMessage, SessionId, SessionManager, SessionState, SessionStore, SessionStoreError,
};
use sha2::{Digest, Sha256};

/// How long a sealed session can be used after it was opened (the replica that holds it in
/// memory also drops it after its idle time). A client then initialises again.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Prefix of a sealed session id (a version: another sealing would get another prefix).
const PREFIX: &str = "bs1.";

/// Bound into every seal, so a sealed session id is never mistaken for another sealed value.
const AAD: &[u8] = b"bastion mcp session v1";

/// Largest sealed payload: a header stays far below proxies' limits (8 KiB in nginx's default).
const MAX_SEALED: usize = 4096;

/// Shortest secret accepted as a sealing key (characters).
pub const MIN_SECRET: usize = 32;

/// The key sessions are sealed with, shared by every replica.
pub struct SealingKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

/// Why a `sealing_key` value cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not `env:NAME` or `file:/path` (a key written in the configuration file is refused).
    #[error(
        "sealing_key = \"{0}\": expected env:NAME or file:/path (the key itself is never written in the configuration file)"
    )]
    NotAReference(String),
    /// The variable is unset or the file unreadable.
    #[error("sealing_key {0}: {1}")]
    Unreadable(String, String),
    /// Fewer than [`MIN_SECRET`] characters.
    #[error("sealing_key {0}: the key is shorter than {MIN_SECRET} characters (e.g. `openssl rand -hex 32`)")]
    TooShort(String),
}

/// Checks that `spec` is a reference (`env:NAME` or `file:/path`), without reading it.
pub fn check_spec(spec: &str) -> Result<(), KeyError> {
    let spec = spec.trim();
    match (spec.strip_prefix("env:"), spec.strip_prefix("file:")) {
        (Some(name), _) if !name.is_empty() => Ok(()),
        (_, Some(path)) if path.starts_with('/') => Ok(()),
        // Never echo what might be the key itself.
        _ => Err(KeyError::NotAReference(if spec.len() > 8 { format!("{}…", &spec[..4]) } else { spec.to_owned() })),
    }
}

impl SealingKey {
    /// Reads the key that `spec` (`env:NAME` or `file:/path`, first line) refers to.
    pub fn resolve(spec: &str) -> Result<SealingKey, KeyError> {
        check_spec(spec)?;
        let spec = spec.trim();
        let secret = if let Some(name) = spec.strip_prefix("env:") {
            std::env::var(name).map_err(|e| KeyError::Unreadable(spec.to_owned(), e.to_string()))?
        } else {
            let path = spec.strip_prefix("file:").unwrap_or(spec);
            let text =
                std::fs::read_to_string(path).map_err(|e| KeyError::Unreadable(spec.to_owned(), e.to_string()))?;
            text.lines().next().unwrap_or("").to_owned()
        };
        SealingKey::from_secret(secret.trim()).map_err(|_| KeyError::TooShort(spec.to_owned()))
    }

    /// The key derived from `secret` (at least [`MIN_SECRET`] characters).
    pub fn from_secret(secret: &str) -> Result<SealingKey, KeyError> {
        if secret.chars().count() < MIN_SECRET {
            return Err(KeyError::TooShort(String::new()));
        }
        let mut h = Sha256::new();
        h.update(b"bastion session sealing key v1\0");
        h.update(secret.as_bytes());
        let digest = h.finalize();
        let key = UnboundKey::new(&CHACHA20_POLY1305, &digest).map_err(|_| KeyError::TooShort(String::new()))?;
        Ok(SealingKey { key: LessSafeKey::new(key), rng: SystemRandom::new() })
    }

    /// Seals `session` into a session id; `None` if it would be too long for a header or the
    /// system's random source failed.
    pub fn seal(&self, session: &Sealed) -> Option<String> {
        let mut data = serde_json::to_vec(session).ok()?;
        if data.len() > MAX_SEALED {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        self.key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut data).ok()?;
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&data);
        Some(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
    }

    /// Opens a sealed session id: `None` unless it was sealed under this key, unaltered, and has
    /// not expired at `now` (seconds since the epoch).
    pub fn open(&self, id: &str, now: u64) -> Option<Sealed> {
        let raw = URL_SAFE_NO_PAD.decode(id.strip_prefix(PREFIX)?).ok()?;
        if raw.len() < NONCE_LEN || raw.len() > MAX_SEALED * 2 {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(AAD), &mut sealed).ok()?;
        let session: Sealed = serde_json::from_slice(plain).ok()?;
        (session.expires > now).then_some(session)
    }
}

/// What a sealed session id holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sealed {
    /// The principal that opened it (the token's name, `oauth:CLIENT/GRANT` for a grant).
    #[serde(rename = "p")]
    pub principal: String,
    /// Seconds since the epoch after which it is no session.
    #[serde(rename = "e")]
    pub expires: u64,
    /// The client's `initialize` parameters, replayed where the session is re-created.
    #[serde(rename = "i")]
    pub init: InitializeRequestParams,
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The `initialize` a request carries, put in its extensions by the `/mcp` handler (which has
/// parsed the body) for [`SealedSessions::create_session`].
#[derive(Debug, Clone)]
pub struct Opening {
    /// Who opens the session.
    pub principal: String,
    /// The client's parameters.
    pub init: InitializeRequestParams,
}

tokio::task_local! {
    /// The session being opened by the request this task serves: rmcp's service calls
    /// `create_session` from inside `handle`, with no access to the request.
    static OPENING: Opening;
}

/// Runs `f` (rmcp handling an `initialize`) with `opening` visible to `create_session`.
pub async fn opening<F: Future>(opening: Opening, f: F) -> F::Output {
    OPENING.scope(opening, f).await
}

/// rmcp's in-memory session manager, whose new sessions get sealed ids when there is a key.
pub struct SealedSessions {
    inner: LocalSessionManager,
    key: Option<Arc<SealingKey>>,
}

impl SealedSessions {
    /// Sessions in memory as `inner` keeps them; sealed under `key` when there is one.
    pub fn new(inner: LocalSessionManager, key: Option<Arc<SealingKey>>) -> SealedSessions {
        SealedSessions { inner, key }
    }

    /// How many sessions this replica holds in memory (the session cap counts these).
    pub async fn open_count(&self) -> usize {
        self.inner.sessions.read().await.len()
    }

    /// The store rmcp restores sessions from: the sealed id itself.
    pub fn store(&self) -> Option<Arc<dyn SessionStore>> {
        self.key.clone().map(|key| Arc::new(SealedStore { key }) as Arc<dyn SessionStore>)
    }

    /// Whether `id` may be used by `principal`: a sealed id only by its principal and until it
    /// expires; any other id is rmcp's to look up in memory (without a key, or a session whose
    /// parameters were too large to seal: it lives on the hub that opened it).
    pub fn admits(&self, id: &str, principal: &str) -> bool {
        match &self.key {
            Some(key) if id.starts_with(PREFIX) => key.open(id, now()).is_some_and(|s| s.principal == principal),
            _ => true,
        }
    }
}

impl SessionManager for SealedSessions {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let sealed = self.key.as_ref().and_then(|key| {
            let opening = OPENING.try_with(Opening::clone).ok()?;
            let expires = now() + MAX_AGE.as_secs();
            key.seal(&Sealed { principal: opening.principal, expires, init: opening.init })
        });
        let Some(id) = sealed else {
            if self.key.is_some() {
                tracing::warn!(
                    "a session could not be sealed (initialize parameters over 4 KiB?): it lives on this hub only"
                );
            }
            return self.inner.create_session().await;
        };
        let id: SessionId = id.into();
        match self.inner.restore_session(id.clone()).await? {
            RestoreOutcome::Restored(transport) => Ok((id, transport)),
            // A fresh random nonce cannot already be in memory; should it be, a local id will do.
            _ => self.inner.create_session().await,
        }
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }

    async fn restore_session(&self, id: SessionId) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        self.inner.restore_session(id).await
    }
}

/// rmcp's session store, read from the sealed id: nothing is written anywhere.
struct SealedStore {
    key: Arc<SealingKey>,
}

#[async_trait::async_trait]
impl SessionStore for SealedStore {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        Ok(self.key.open(session_id, now()).map(|s| SessionState::new(s.init)))
    }

    async fn store(&self, _: &str, _: &SessionState) -> Result<(), SessionStoreError> {
        Ok(())
    }

    async fn delete(&self, _: &str) -> Result<(), SessionStoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() -> InitializeRequestParams {
        serde_json::from_value(serde_json::json!({
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}
        }))
        .unwrap()
    }

    fn key(secret: &str) -> SealingKey {
        SealingKey::from_secret(secret).unwrap()
    }

    #[test]
    fn a_sealed_session_opens_under_its_key_until_it_expires() {
        let k = key(&"k".repeat(32));
        let id = k.seal(&Sealed { principal: "owner".into(), expires: 100, init: init() }).unwrap();
        assert!(id.starts_with(PREFIX) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{id}");
        let opened = k.open(&id, 99).unwrap();
        assert_eq!((opened.principal.as_str(), opened.expires), ("owner", 100));
        assert_eq!(opened.init.client_info.name, "t");
        assert!(k.open(&id, 100).is_none(), "expired");
        // Another key (another deployment, or the same secret mistyped) opens nothing.
        assert!(key(&"j".repeat(32)).open(&id, 0).is_none());
        // Two seals of the same session differ (a fresh nonce each).
        assert_ne!(id, k.seal(&Sealed { principal: "owner".into(), expires: 100, init: init() }).unwrap());
    }

    #[test]
    fn an_altered_or_foreign_id_is_no_session() {
        let k = key(&"k".repeat(40));
        let id = k.seal(&Sealed { principal: "owner".into(), expires: u64::MAX, init: init() }).unwrap();
        for i in PREFIX.len()..id.len() {
            let mut bytes = id.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            assert!(altered == id || k.open(&altered, 0).is_none(), "byte {i}");
        }
        for bad in ["", "bs1.", "bs1.AAAA", "0b3e2c6e-uuid", &id[PREFIX.len()..], &format!("{id}x")] {
            assert!(k.open(bad, 0).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_sealed_id_admits_its_principal_only() {
        let k = Arc::new(key(&"k".repeat(32)));
        let id = k.seal(&Sealed { principal: "oauth:ChatGPT/g1".into(), expires: now() + 60, init: init() }).unwrap();
        let old = k.seal(&Sealed { principal: "oauth:ChatGPT/g1".into(), expires: now() - 1, init: init() }).unwrap();
        let sealed = SealedSessions::new(LocalSessionManager::default(), Some(k));
        assert!(sealed.admits(&id, "oauth:ChatGPT/g1"));
        assert!(!sealed.admits(&id, "oauth:ChatGPT/g2"));
        assert!(!sealed.admits(&old, "oauth:ChatGPT/g1"), "expired");
        // An id this hub did not seal is rmcp's to look up (and unknown there: 404).
        assert!(sealed.admits("0b3e2c6e-8a57-4d1b-9a33-3f1f0a7d2c11", "owner"));
        let unsealed = SealedSessions::new(LocalSessionManager::default(), None);
        assert!(unsealed.admits(&id, "anyone") && unsealed.store().is_none());
    }

    #[test]
    fn the_key_is_a_reference_to_a_long_enough_secret() {
        let codes = |spec: &str| SealingKey::resolve(spec).map(|_| ()).map_err(|e| e.to_string());
        assert!(codes("0123456789abcdef0123456789abcdef").unwrap_err().contains("env:NAME or file:/path"));
        assert!(!codes("0123456789abcdef0123456789abcdef").unwrap_err().contains("cdef"), "the key is not echoed");
        assert!(codes("file:relative").is_err());
        assert!(codes("env:BASTION_TEST_NO_SUCH_VARIABLE").unwrap_err().contains("BASTION_TEST_NO_SUCH_VARIABLE"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "short\n").unwrap();
        assert!(codes(&format!("file:{}", file.display())).unwrap_err().contains("shorter than 32"));
        std::fs::write(&file, format!("{}\nsecond line ignored\n", "a".repeat(64))).unwrap();
        assert!(codes(&format!("file:{}", file.display())).is_ok());
    }
}
