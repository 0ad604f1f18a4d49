//! How the hub authenticates to a remote Bastion host: OAuth client credentials against the
//! host's own authorization server (`bastion client create --machine` on that host). The hub
//! asks `/token` for a short-lived access token, presents it on every request to the host's
//! `/mcp`, asks again before it expires, and once more when the host answers 401 (the token was
//! revoked, or the host's store was reset): the host sees a machine principal, never a caller's
//! token.
//!
//! The secret comes from the environment or a file (`client_secret = "env:NAME"` or
//! `"file:/path"`); a configuration that holds one in clear is refused where it is read
//! ([`SecretRef::parse`]).
//!
//! Mutual TLS ([`RemoteTls`]): the hub can also present a client certificate to a host (or to the
//! TLS proxy in front of it) and trust only a given CA for it, with or without client
//! credentials on top.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue};
use futures_util::stream::BoxStream;
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::Sse;

/// Where a secret is: `env:NAME` or `file:/absolute/path`. Never the secret itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable of the hub.
    Env(String),
    /// A file (its content, surrounding whitespace trimmed).
    File(std::path::PathBuf),
}

impl SecretRef {
    /// Parses `env:NAME` or `file:/path`; anything else is refused, with the reason (a secret
    /// written in clear in the configuration is the case this exists for).
    pub fn parse(s: &str) -> Result<SecretRef, String> {
        if let Some(var) = s.strip_prefix("env:") {
            let ok = !var.is_empty() && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            return if ok {
                Ok(SecretRef::Env(var.to_owned()))
            } else {
                Err(format!("'env:{var}' is not a variable name"))
            };
        }
        if let Some(path) = s.strip_prefix("file:") {
            let p = std::path::PathBuf::from(path);
            return if p.is_absolute() {
                Ok(SecretRef::File(p))
            } else {
                Err(format!("'file:{path}' must be an absolute path"))
            };
        }
        Err("must be \"env:NAME\" or \"file:/path\"; a secret is never written in the configuration in clear".into())
    }

    /// The secret now.
    pub fn resolve(&self) -> Result<String, String> {
        let value = match self {
            SecretRef::Env(var) => std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?,
            SecretRef::File(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        };
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(format!("{self} is empty"));
        }
        Ok(value)
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env:{v}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// Checks an `[[upstream]]`'s client credentials when the file is read: `client_id` and
/// `client_secret` together, on a `url` upstream only, without `bearer_token_env`, the secret
/// a reference and never in clear, the scopes scopes.
pub fn check_upstream(u: &crate::config::UpstreamConfig) -> Result<(), String> {
    let name = &u.name;
    check_tls(u)?;
    match (&u.client_id, &u.client_secret) {
        (None, None) if u.client_scope.is_none() => return Ok(()),
        (None, None) => return Err(format!("upstream '{name}': client_scope needs client_id and client_secret")),
        (Some(_), None) | (None, Some(_)) => {
            return Err(format!("upstream '{name}': client_id and client_secret go together"));
        }
        (Some(_), Some(_)) => {}
    }
    if u.url.is_none() {
        return Err(format!("upstream '{name}': client_id and client_secret are only for url upstreams"));
    }
    if u.bearer_token_env.is_some() {
        return Err(format!("upstream '{name}': use either bearer_token_env or client_id/client_secret, not both"));
    }
    if let Some(secret) = &u.client_secret {
        SecretRef::parse(secret).map_err(|e| format!("upstream '{name}': client_secret {e}"))?;
    }
    if let Some(s) = &u.client_scope {
        bastion_auth::scope::parse_list(s).map_err(|e| format!("upstream '{name}': client_scope: {e}"))?;
    }
    Ok(())
}

/// The mutual TLS keys of an `[[upstream]]`: on a `url` upstream only, certificate and key
/// together, the key a reference and never in clear.
fn check_tls(u: &crate::config::UpstreamConfig) -> Result<(), String> {
    let name = &u.name;
    let any = u.tls_ca.is_some() || u.tls_client_cert.is_some() || u.tls_client_key.is_some();
    if any && u.url.is_none() {
        return Err(format!(
            "upstream '{name}': tls_ca, tls_client_cert and tls_client_key are only for url upstreams"
        ));
    }
    if u.tls_client_cert.is_some() != u.tls_client_key.is_some() {
        return Err(format!("upstream '{name}': tls_client_cert and tls_client_key go together"));
    }
    if let Some(key) = &u.tls_client_key {
        SecretRef::parse(key).map_err(|e| format!("upstream '{name}': tls_client_key {e}"))?;
    }
    Ok(())
}

/// How the hub's HTTP client talks TLS to one remote host: the CA its certificate must chain
/// to (PEM), and the client certificate and key it presents (PEM), read when the settings
/// are built.
#[derive(Clone, Default)]
pub struct RemoteTls {
    /// CA certificates; `None`: the system's roots.
    pub ca: Option<Vec<u8>>,
    /// Client certificate chain followed by its private key, PEM; `None`: no client certificate.
    pub identity: Option<Vec<u8>>,
}

impl std::fmt::Debug for RemoteTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTls")
            .field("ca", &self.ca.as_ref().map(|_| "<pem>"))
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The TLS settings of an `[[upstream]]` (checked by [`check_upstream`]), files read now;
/// `None` when it has none.
pub fn tls_of(u: &crate::config::UpstreamConfig) -> Result<Option<RemoteTls>, String> {
    if u.tls_ca.is_none() && u.tls_client_cert.is_none() {
        return Ok(None);
    }
    let name = &u.name;
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read(p).map_err(|e| format!("upstream '{name}': {what} {}: {e}", p.display()))
    };
    let ca = u.tls_ca.as_deref().map(|p| read(p, "tls_ca")).transpose()?;
    let identity = match (&u.tls_client_cert, &u.tls_client_key) {
        (Some(cert), Some(key)) => {
            let mut pem = read(cert, "tls_client_cert")?;
            let key = SecretRef::parse(key)
                .and_then(|r| r.resolve())
                .map_err(|e| format!("upstream '{name}': tls_client_key: {e}"))?;
            pem.push(b'\n');
            pem.extend_from_slice(key.as_bytes());
            pem.push(b'\n');
            Some(pem)
        }
        _ => None,
    };
    let tls = RemoteTls { ca, identity };
    // Built once here so that a bad certificate or key is an error at load, not at connect.
    http_client(Some(&tls)).map_err(|e| format!("upstream '{name}': {e}"))?;
    Ok(Some(tls))
}

/// The hub's HTTP client towards a remote host: no redirects (a token is never sent
/// elsewhere), and the host's TLS settings if it has any.
pub fn http_client(tls: Option<&RemoteTls>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(t) = tls {
        if let Some(ca) = &t.ca {
            let certs = reqwest::Certificate::from_pem_bundle(ca).map_err(|e| format!("tls_ca: {e}"))?;
            if certs.is_empty() {
                return Err("tls_ca: no certificate in the file".into());
            }
            b = b.tls_certs_only(certs);
        }
        if let Some(pem) = &t.identity {
            b = b.identity(
                reqwest::Identity::from_pem(pem).map_err(|e| format!("tls_client_cert/tls_client_key: {e}"))?,
            );
        }
    }
    b.build().map_err(|e| format!("HTTP client: {e}"))
}

/// The client credentials of an `[[upstream]]` (checked by [`check_upstream`]), the secret
/// resolved now; `None` when it has none.
pub fn credentials_of(u: &crate::config::UpstreamConfig, url: &str) -> Result<Option<MachineCredentials>, String> {
    let (Some(client_id), Some(secret)) = (&u.client_id, &u.client_secret) else { return Ok(None) };
    let reference = SecretRef::parse(secret).map_err(|e| format!("upstream '{}': client_secret {e}", u.name))?;
    let client_secret = reference.resolve().map_err(|e| format!("upstream '{}': client_secret: {e}", u.name))?;
    Ok(Some(MachineCredentials {
        token_url: token_url_of(url)?,
        resource: url.to_owned(),
        client_id: client_id.clone(),
        client_secret,
        scope: u.client_scope.clone(),
    }))
}

/// A machine client's credentials at a remote host.
#[derive(Clone)]
pub struct MachineCredentials {
    /// The host's token endpoint (`{origin}/token`).
    pub token_url: String,
    /// The audience asked for: the host's MCP endpoint.
    pub resource: String,
    /// `bmc_…`.
    pub client_id: String,
    /// The secret, resolved from its reference when the settings were built.
    pub client_secret: String,
    /// Scopes to ask for (space-separated); `None`: all of the client's.
    pub scope: Option<String>,
}

impl std::fmt::Debug for MachineCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scope", &self.scope)
            .finish()
    }
}

/// `{origin}/token` of an MCP endpoint URL: Bastion serves OAuth at its origin root.
pub fn token_url_of(mcp_url: &str) -> Result<String, String> {
    let u = url::Url::parse(mcp_url).map_err(|e| format!("url '{mcp_url}': {e}"))?;
    Ok(format!("{}/token", u.origin().ascii_serialization()))
}

/// A token is renewed when less than this share of its life is left (and at least
/// [`RENEW_MARGIN_MIN`] before it expires), so a call never starts with a token about to lapse.
const RENEW_FRACTION: u32 = 5;
/// The least time before expiry at which a token is renewed.
const RENEW_MARGIN_MIN: Duration = Duration::from_secs(10);
/// How long a token request may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

struct Cached {
    token: String,
    renew_at: Instant,
}

/// Access tokens for one remote host, obtained and renewed by client credentials.
pub struct TokenSource {
    creds: MachineCredentials,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<Cached>>,
    /// Tokens obtained so far (tests and the log).
    issued: std::sync::atomic::AtomicU64,
}

impl TokenSource {
    /// A source with no token yet, asking with `http` (see [`http_client`]).
    pub fn new(creds: MachineCredentials, http: reqwest::Client) -> Arc<TokenSource> {
        Arc::new(TokenSource {
            creds,
            http,
            cached: tokio::sync::Mutex::new(None),
            issued: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many tokens were obtained.
    pub fn issued(&self) -> u64 {
        self.issued.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A token that is not about to expire: the cached one, or a new one. One request at a
    /// time: concurrent callers wait for the same renewal.
    pub async fn token(&self) -> Result<String, String> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        let (token, life) = self.request().await?;
        let margin = (life / RENEW_FRACTION).max(RENEW_MARGIN_MIN).min(life);
        *cached = Some(Cached { token: token.clone(), renew_at: Instant::now() + (life - margin) });
        self.issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(token)
    }

    /// Forgets `stale` (the host refused it), so the next [`TokenSource::token`] asks again.
    pub async fn invalidate(&self, stale: &str) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| c.token == stale) {
            *cached = None;
        }
    }

    async fn request(&self) -> Result<(String, Duration), String> {
        let c = &self.creds;
        let mut form = vec![("grant_type", "client_credentials"), ("resource", c.resource.as_str())];
        if let Some(s) = &c.scope {
            form.push(("scope", s.as_str()));
        }
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&form).finish();
        // client_secret_basic: both halves form-urlencoded first (RFC 6749 §2.3.1).
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let response = self
            .http
            .post(&c.token_url)
            .basic_auth(enc(&c.client_id), Some(enc(&c.client_secret)))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .timeout(TOKEN_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("token endpoint {}: {e}", c.token_url))?;
        let status = response.status();
        let v: serde_json::Value = response
            .json()
            .await
            .map_err(|e| format!("token endpoint {}: HTTP {status}, not JSON: {e}", c.token_url))?;
        if !status.is_success() {
            let err = v["error"].as_str().unwrap_or("?");
            let d = v["error_description"].as_str().unwrap_or("");
            return Err(format!("token endpoint {}: HTTP {status} {err}: {d}", c.token_url));
        }
        let token = v["access_token"].as_str().filter(|t| !t.is_empty()).ok_or("token endpoint: no access_token")?;
        let life = Duration::from_secs(v["expires_in"].as_u64().unwrap_or(60).max(1));
        tracing::debug!(token_url = %c.token_url, expires_in = life.as_secs(), "machine token obtained");
        Ok((token.to_owned(), life))
    }
}

/// Whether a Bastion host is ready: its `/readyz` answers 200 once
/// its own required upstreams are up. A host that has just come back answers `/mcp` before
/// that, and the hub would otherwise offer part of its tools until its next poll. A host
/// without the endpoint (404) counts as ready.
pub async fn host_ready(http: &reqwest::Client, mcp_url: &str) -> Result<(), String> {
    let u = url::Url::parse(mcp_url).map_err(|e| format!("url '{mcp_url}': {e}"))?;
    let readyz = format!("{}/readyz", u.origin().ascii_serialization());
    let r = http.get(&readyz).timeout(TOKEN_TIMEOUT).send().await.map_err(|e| format!("{readyz}: {e}"))?;
    match r.status().as_u16() {
        200 | 404 => Ok(()),
        s => Err(format!("host not ready yet ({readyz} answered {s})")),
    }
}

/// The streamable HTTP client of a remote host reached with client credentials: every request
/// carries the current machine token; a 401 makes it get a new one and send the request once
/// more (a 401 is answered before the host does anything with the request, so sending it
/// again cannot do a call twice).
#[derive(Clone)]
pub struct AuthedClient {
    inner: reqwest::Client,
    source: Arc<TokenSource>,
}

impl AuthedClient {
    /// A client presenting `source`'s tokens, over `http` (see [`http_client`]).
    pub fn new(source: Arc<TokenSource>, http: reqwest::Client) -> AuthedClient {
        AuthedClient { inner: http, source }
    }

    async fn token(&self) -> Result<String, StreamableHttpError<reqwest::Error>> {
        self.source.token().await.map_err(|e| StreamableHttpError::UnexpectedServerResponse(e.into()))
    }

    /// Sends with the current token; on a 401 (the host revoked or forgot it), once more with a
    /// new one.
    async fn with_token<T, Fut>(&self, uri: &str, send: impl Fn(String) -> Fut) -> HttpResult<T>
    where
        Fut: std::future::Future<Output = HttpResult<T>>,
    {
        let token = self.token().await?;
        let first = send(token.clone()).await;
        if !unauthorized(&first) {
            return first;
        }
        tracing::info!(uri = %uri, "remote refused the machine token; asking for a new one");
        self.source.invalidate(&token).await;
        send(self.token().await?).await
    }
}

type HttpResult<T> = Result<T, StreamableHttpError<reqwest::Error>>;

fn unauthorized<T>(r: &HttpResult<T>) -> bool {
    match r {
        Err(StreamableHttpError::AuthRequired(_)) => true,
        Err(StreamableHttpError::HttpStatus(s)) => s.status == 401,
        _ => false,
    }
}

impl StreamableHttpClient for AuthedClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<StreamableHttpPostResponse> {
        self.post_message_with_max_sse_event_size(uri, message, session_id, None, custom_headers, usize::MAX).await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> HttpResult<StreamableHttpPostResponse> {
        self.with_token(&uri.clone(), |token| {
            self.inner.post_message_with_max_sse_event_size(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                Some(token),
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<()> {
        let token = self.token().await?;
        self.inner.delete_session(uri, session_id, Some(token), custom_headers).await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<BoxStream<'static, Result<Sse, SseError>>> {
        self.get_stream_with_max_sse_event_size(uri, session_id, last_event_id, None, custom_headers, usize::MAX).await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> HttpResult<BoxStream<'static, Result<Sse, SseError>>> {
        self.with_token(&uri.clone(), |token| {
            self.inner.get_stream_with_max_sse_event_size(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                Some(token),
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_references() {
        assert_eq!(SecretRef::parse("env:HUB_SECRET"), Ok(SecretRef::Env("HUB_SECRET".into())));
        assert_eq!(SecretRef::parse("file:/run/secrets/b1"), Ok(SecretRef::File("/run/secrets/b1".into())));
        for (bad, why) in [
            ("bcs_abc", "never written in the configuration in clear"),
            ("", "env:NAME"),
            ("env:", "not a variable name"),
            ("env:A B", "not a variable name"),
            ("file:relative", "absolute"),
        ] {
            assert!(SecretRef::parse(bad).unwrap_err().contains(why), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "bcs_x\n").unwrap();
        assert_eq!(SecretRef::File(f.clone()).resolve().unwrap(), "bcs_x");
        std::fs::write(&f, " \n").unwrap();
        assert!(SecretRef::File(f).resolve().unwrap_err().contains("empty"));
        assert!(SecretRef::Env("BASTION_TEST_SURELY_UNSET_VAR".into()).resolve().unwrap_err().contains("not set"));
    }

    #[test]
    fn upstream_entries_are_checked_at_load() {
        let entry =
            |extra: &str| crate::config::HubConfig::parse(&format!("[[upstream]]\nname = \"build01\"\n{extra}"));
        let url = "url = \"http://127.0.0.2:8765/mcp\"\n";
        assert!(entry(&format!("{url}client_id = \"bmc_1\"\nclient_secret = \"env:B1\"")).is_ok());
        assert!(
            entry(&format!(
                "{url}tls_ca = \"/ca.pem\"\ntls_client_cert = \"/c.pem\"\ntls_client_key = \"file:/k.pem\""
            ))
            .is_ok()
        );
        assert!(
            entry(&format!(
                "{url}client_id = \"bmc_1\"\nclient_secret = \"file:/run/b1\"\nclient_scope = \"fs:read git:read\""
            ))
            .is_ok()
        );
        for (extra, why) in [
            (
                format!("{url}client_id = \"bmc_1\"\nclient_secret = \"bcs_inclear\""),
                "never written in the configuration in clear",
            ),
            (format!("{url}client_id = \"bmc_1\""), "go together"),
            (format!("{url}client_secret = \"env:B1\""), "go together"),
            (format!("{url}client_scope = \"fs:read\""), "needs client_id"),
            (format!("{url}client_id = \"b\"\nclient_secret = \"env:B1\"\nbearer_token_env = \"T\""), "not both"),
            (
                format!("{url}client_id = \"b\"\nclient_secret = \"env:B1\"\nclient_scope = \"fs:admin\""),
                "client_scope",
            ),
            ("builtin = \"fs\"\nclient_id = \"b\"\nclient_secret = \"env:B1\"".to_owned(), "only for url upstreams"),
            (format!("{url}tls_client_cert = \"/c.pem\""), "go together"),
            (
                format!("{url}tls_client_cert = \"/c.pem\"\ntls_client_key = \"-----BEGIN PRIVATE KEY-----\""),
                "never written",
            ),
            ("builtin = \"fs\"\ntls_ca = \"/ca.pem\"".to_owned(), "only for url upstreams"),
        ] {
            let e = entry(&extra).unwrap_err();
            assert!(e.contains(why), "{extra}: {e}");
        }
    }

    #[test]
    fn credentials_resolve_their_secret() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "bcs_from_file\n").unwrap();
        let text = format!(
            "[[upstream]]\nname = \"build01\"\nurl = \"http://127.0.0.2:8765/mcp\"\nclient_id = \"bmc_1\"\nclient_secret = \"file:{}\"",
            f.display()
        );
        let c = crate::config::HubConfig::parse(&text).unwrap();
        let creds = credentials_of(&c.upstreams[0], "http://127.0.0.2:8765/mcp").unwrap().unwrap();
        assert_eq!(creds.token_url, "http://127.0.0.2:8765/token");
        assert_eq!((creds.client_id.as_str(), creds.client_secret.as_str()), ("bmc_1", "bcs_from_file"));
        assert!(!format!("{creds:?}").contains("bcs_from_file"), "the secret is never printed");
        std::fs::remove_file(&f).unwrap();
        let e = credentials_of(&c.upstreams[0], "http://127.0.0.2:8765/mcp").unwrap_err();
        assert!(e.contains("build01") && e.contains("client_secret"), "{e}");
    }

    /// A host's `/token` and `/mcp`: tokens `bat_1`, `bat_2`, … living `life` seconds; `/mcp`
    /// refuses `bat_1` with a 401 (as a host does a revoked token) and answers any other.
    async fn fake_host(life: u64) -> (String, Arc<std::sync::atomic::AtomicU64>) {
        use axum::http::{HeaderMap, StatusCode, header};
        use std::sync::atomic::{AtomicU64, Ordering};
        // `main` installs the TLS provider reqwest is built without (see Cargo.toml).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let issued = Arc::new(AtomicU64::new(0));
        let count = issued.clone();
        let app = axum::Router::new()
            .route(
                "/token",
                axum::routing::post(move |headers: HeaderMap, body: String| {
                    let count = count.clone();
                    async move {
                        use base64::Engine;
                        let basic = base64::engine::general_purpose::STANDARD.encode("bmc_1:bcs_s%2Bx");
                        let authed =
                            headers.get(header::AUTHORIZATION).is_some_and(|v| *v == *format!("Basic {basic}"));
                        if !authed || !body.contains("grant_type=client_credentials") {
                            return (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#.to_owned());
                        }
                        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                        (
                            StatusCode::OK,
                            format!(r#"{{"access_token":"bat_{n}","token_type":"Bearer","expires_in":{life}}}"#),
                        )
                    }
                }),
            )
            .route(
                "/mcp",
                axum::routing::post(|headers: HeaderMap| async move {
                    if headers.get(header::AUTHORIZATION).is_some_and(|v| v == "Bearer bat_1") {
                        return (
                            StatusCode::UNAUTHORIZED,
                            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
                            String::new(),
                        )
                            .into_response();
                    }
                    ([(header::CONTENT_TYPE, "application/json")], r#"{"jsonrpc":"2.0","id":1,"result":{}}"#)
                        .into_response()
                }),
            );
        use axum::response::IntoResponse;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), issued)
    }

    fn creds(base: &str, secret: &str) -> MachineCredentials {
        MachineCredentials {
            token_url: format!("{base}/token"),
            resource: format!("{base}/mcp"),
            client_id: "bmc_1".into(),
            client_secret: secret.into(),
            scope: None,
        }
    }

    #[tokio::test]
    async fn tokens_are_cached_renewed_and_refused() {
        use std::sync::atomic::Ordering;
        let (base, issued) = fake_host(600).await;
        let src = TokenSource::new(creds(&base, "bcs_s+x"), http_client(None).unwrap());
        assert_eq!(src.token().await.unwrap(), "bat_1");
        assert_eq!(src.token().await.unwrap(), "bat_1", "a token with life left is used again");
        src.invalidate("bat_other").await;
        assert_eq!(src.token().await.unwrap(), "bat_1");
        src.invalidate("bat_1").await;
        assert_eq!(src.token().await.unwrap(), "bat_2", "a refused token is replaced");
        assert_eq!((issued.load(Ordering::SeqCst), src.issued()), (2, 2));

        // A token about to expire is renewed before it is used.
        let (base, issued) = fake_host(1).await;
        let src = TokenSource::new(creds(&base, "bcs_s+x"), http_client(None).unwrap());
        src.token().await.unwrap();
        src.token().await.unwrap();
        assert_eq!(issued.load(Ordering::SeqCst), 2);

        let wrong = TokenSource::new(creds(&base, "bcs_wrong"), http_client(None).unwrap());
        let e = wrong.token().await.unwrap_err();
        assert!(e.contains("401") && e.contains("invalid_client") && !e.contains("bcs_wrong"), "{e}");
    }

    #[tokio::test]
    async fn a_401_gets_a_new_token_and_one_more_try() {
        use rmcp::model::{ClientRequest, NumberOrString, PingRequest};
        let (base, issued) = fake_host(600).await;
        let client = AuthedClient::new(
            TokenSource::new(creds(&base, "bcs_s+x"), http_client(None).unwrap()),
            http_client(None).unwrap(),
        );
        let ping = ClientJsonRpcMessage::request(
            ClientRequest::PingRequest(PingRequest::default()),
            NumberOrString::Number(1),
        );
        let r = client.post_message(format!("{base}/mcp").into(), ping, None, None, HashMap::new()).await;
        assert!(matches!(r, Ok(StreamableHttpPostResponse::Json(..))), "{r:?}");
        assert_eq!(issued.load(std::sync::atomic::Ordering::SeqCst), 2, "bat_1 refused, bat_2 used");
    }

    #[test]
    fn bad_tls_files_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let text =
            format!("[[upstream]]\nname = \"b1\"\nurl = \"https://b1.example/mcp\"\ntls_ca = \"{}\"", junk.display());
        let c = crate::config::HubConfig::parse(&text).unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let e = tls_of(&c.upstreams[0]).unwrap_err();
        assert!(e.contains("b1") && e.contains("tls_ca"), "{e}");
        let text = format!(
            "[[upstream]]\nname = \"b1\"\nurl = \"https://b1.example/mcp\"\ntls_ca = \"{}/none.pem\"",
            dir.path().display()
        );
        let e = tls_of(&crate::config::HubConfig::parse(&text).unwrap().upstreams[0]).unwrap_err();
        assert!(e.contains("none.pem"), "{e}");
    }

    #[test]
    fn token_urls() {
        assert_eq!(token_url_of("https://b1.example:8443/mcp").unwrap(), "https://b1.example:8443/token");
        assert_eq!(token_url_of("http://10.0.0.2:8765/").unwrap(), "http://10.0.0.2:8765/token");
        assert!(token_url_of("nope").is_err());
    }
}
