//! Serving the hub over MCP streamable HTTP: the axum router (`/mcp`, `/mcp/`, `/healthz`,
//! `/readyz`, `/metrics`), the Host/Origin guard and the bearer-token layer in front of rmcp's service.
//!
//! Order of checks on every request: Host and Origin (403), then the bearer token (401 with
//! `WWW-Authenticate: Bearer`) on every path but `/healthz` and `/readyz`, then, for a
//! `tools/call` by a token without the tool's scope, 403 with `error="insufficient_scope"` (the
//! scope challenge of the MCP authorization spec), then the `Accept` normalisation, then rmcp
//! (which repeats the Host/Origin check with the same lists).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::router::Hub;
use crate::scope::Scope;
use crate::tokens::{Principal, Refusal, TokenStore};
use crate::upstream::Status;

/// Which hosts and browser origins may reach the hub.
#[derive(Clone, Debug)]
pub struct Allowed {
    /// Host names without port (`localhost`, `127.0.0.1`, `::1`, the public host).
    pub hosts: Vec<String>,
    /// Origins as `scheme://host[:port]`; a loopback origin may use any port.
    pub origins: Vec<String>,
}

impl Allowed {
    /// Loopback, plus the host of `public_url` if given (`https://hub.example.com/mcp`).
    pub fn new(public_url: Option<&str>) -> Result<Allowed, String> {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        let mut origins: Vec<String> =
            ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"].map(String::from).to_vec();
        if let Some(url) = public_url {
            let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("--public-url '{url}' has no scheme"))?;
            if scheme != "http" && scheme != "https" {
                return Err(format!("--public-url '{url}' must be http or https"));
            }
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = host_of(authority).ok_or_else(|| format!("--public-url '{url}' has no host"))?;
            hosts.push(host.to_ascii_lowercase());
            origins.push(format!("{scheme}://{}", authority.to_ascii_lowercase()));
        }
        Ok(Allowed { hosts, origins })
    }

    /// Whether a `Host` header value is allowed (port ignored).
    pub fn host_ok(&self, host: &str) -> bool {
        host_of(host).is_some_and(|h| self.hosts.iter().any(|a| a.eq_ignore_ascii_case(h)))
    }

    /// Whether an `Origin` header value is allowed.
    pub fn origin_ok(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.origins.iter().any(|a| match a.strip_suffix(":*") {
            Some(base) => {
                origin == base
                    || origin.strip_prefix(base).and_then(|p| p.strip_prefix(':')).is_some_and(|port| {
                        !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
                    })
            }
            None => origin == *a,
        })
    }
}

/// The host part of an authority (`[::1]:8080` → `::1`, `a.b:1` → `a.b`); `None` if malformed.
fn host_of(authority: &str) -> Option<&str> {
    if authority.contains('@') {
        return None;
    }
    let host = if let Some(rest) = authority.strip_prefix('[') {
        let (h, tail) = rest.split_once(']')?;
        if !(tail.is_empty() || tail.strip_prefix(':').is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))) {
            return None;
        }
        h
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            Some(_) => return None,
            None => authority,
        }
    };
    (!host.is_empty()).then_some(host)
}

/// How requests to `/mcp` are authenticated.
#[derive(Clone)]
pub enum Auth {
    /// Bearer tokens from this store.
    Tokens(Arc<TokenStore>),
    /// No authentication (`--no-auth`, loopback only): every caller may do everything.
    None,
}

#[derive(Clone)]
struct Guard {
    allowed: Arc<Allowed>,
    auth: Auth,
    hub: Hub,
}

/// The largest request body the hub reads (rmcp's own limit): larger ones get 413.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

fn plain(status: StatusCode, text: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{text}\n")).into_response()
}

fn unauthorized(error: Option<&str>) -> Response {
    let challenge = match error {
        Some(e) => format!("Bearer error=\"invalid_token\", error_description=\"{e}\""),
        None => "Bearer".to_owned(),
    };
    let mut r = plain(StatusCode::UNAUTHORIZED, "Unauthorized: a valid bearer token is required");
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

impl Guard {
    /// The caller behind a request, or why there is none (`None`: no token at all; else the
    /// `error_description` of an `invalid_token` challenge).
    fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Option<&'static str>> {
        match &self.auth {
            Auth::None => Ok(Principal::unrestricted("anonymous")),
            Auth::Tokens(store) => match bearer(headers) {
                None => Err(None),
                Some(secret) => store.authenticate(secret).map_err(|refusal| {
                    Some(match refusal {
                        Refusal::Unknown => "unknown token",
                        Refusal::Revoked => "token revoked",
                        Refusal::Expired => "token expired",
                    })
                }),
            },
        }
    }
}

async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    // HTTP/1.1 requires Host; a request without one cannot be checked and is refused.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !g.allowed.host_ok(host) {
        return plain(StatusCode::FORBIDDEN, "Forbidden: Host header is not allowed");
    }
    let origin = headers.get(header::ORIGIN);
    if origin.is_some_and(|o| !o.to_str().is_ok_and(|o| g.allowed.origin_ok(o))) {
        return plain(StatusCode::FORBIDDEN, "Forbidden: Origin is not allowed");
    }
    let path = req.uri().path();
    if path == "/healthz" {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let principal = match g.authenticate(&parts.headers) {
        Ok(p) => p,
        // The readiness probe answers anyone, with details only for a valid token.
        Err(_) if parts.uri.path() == "/readyz" => return next.run(Request::from_parts(parts, body)).await,
        Err(why) => return unauthorized(why),
    };
    let mut body = body;
    if parts.method == axum::http::Method::POST && !principal.scopes.contains(&Scope::all()) {
        // Read the body once to find a tools/call the token may not make; rmcp gets the same bytes.
        let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large"),
        };
        if let Some(denied) = scope_challenge(&g.hub, &principal, &bytes) {
            return denied;
        }
        body = axum::body::Body::from(bytes);
    }
    parts.extensions.insert(principal);
    normalise_accept(&mut parts.headers);
    next.run(Request::from_parts(parts, body)).await
}

/// 403 with the scope challenge when `body` is a `tools/call` of an offered tool that
/// `principal` may not call. Anything else (other methods, unknown tools, bodies that are not
/// JSON) goes on to rmcp, which answers it as the protocol says.
fn scope_challenge(hub: &Hub, principal: &Principal, body: &[u8]) -> Option<Response> {
    #[derive(serde::Deserialize)]
    struct Call<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
        params: Option<CallParams<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct CallParams<'a> {
        #[serde(borrow)]
        name: Option<std::borrow::Cow<'a, str>>,
    }
    let call: Call = serde_json::from_slice(body).ok()?;
    if call.method.as_deref() != Some("tools/call") {
        return None;
    }
    let name = call.params?.name?;
    let needed = hub.required_scope(principal, &name)?;
    hub.refused(principal, &name, "insufficient_scope");
    let description = format!("this token may not call '{name}': it needs the scope {needed}");
    let challenge =
        format!("Bearer error=\"insufficient_scope\", scope=\"{needed}\", error_description=\"{description}\"");
    let mut r = plain(StatusCode::FORBIDDEN, &format!("Forbidden: {description}"));
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    Some(r)
}

/// rmcp answers 406 unless `Accept` names both JSON and SSE; many real clients send `*/*`, only
/// one of them, or nothing. The hub answers JSON whenever it can either way.
fn normalise_accept(headers: &mut HeaderMap) {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
    }
}

async fn metrics(State(hub): State<Hub>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], hub.metrics_text())
        .into_response()
}

async fn healthz() -> Response {
    plain(StatusCode::OK, "ok")
}

async fn readyz(State(hub): State<Hub>, caller: Option<axum::Extension<Principal>>) -> Response {
    let mut ready = true;
    let upstreams: Vec<_> = hub
        .upstreams()
        .iter()
        .map(|u| {
            let v = match u.status() {
                Status::Ready { tools, .. } => json!({"name": u.spec.name, "state": "ready", "tools": tools.len()}),
                Status::Starting => json!({"name": u.spec.name, "state": "starting"}),
                Status::Failed(why) => json!({"name": u.spec.name, "state": "failed", "error": why}),
            };
            ready &= !u.spec.required || v["state"] == "ready";
            v
        })
        .collect();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    // Upstream names, errors and tool problems are for authenticated callers only.
    if caller.is_none() {
        let body = json!({"ready": ready});
        return (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    }
    let problems = hub.catalogue().problems.clone();
    let body = json!({"ready": ready, "upstreams": upstreams, "problems": problems});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// How long an idle MCP session lives in stateful mode before it must initialise again.
const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// The whole HTTP application. Stateless with JSON responses unless `stateful`: no sessions to
/// expire or lose (connectors that drop `Mcp-Session-Id` keep working); a call that sends
/// progress falls back to SSE.
pub fn app(hub: Hub, allowed: Allowed, auth: Auth, stateful: bool, shutdown: CancellationToken) -> Router {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(stateful)
        .with_json_response(!stateful)
        .with_allowed_hosts(allowed.hosts.clone())
        .with_allowed_origins(allowed.origins.clone())
        .with_cancellation_token(shutdown);
    let factory_hub = hub.clone();
    let factory = move || Ok(factory_hub.clone());
    let mcp = if stateful {
        let mut sessions = LocalSessionManager::default();
        sessions.session_config.keep_alive = Some(SESSION_IDLE);
        let service = StreamableHttpService::new(factory, Arc::new(sessions), config);
        Router::new().route_service("/mcp", service.clone()).route_service("/mcp/", service)
    } else {
        let service = StreamableHttpService::new(factory, Arc::new(NeverSessionManager::default()), config);
        Router::new().route_service("/mcp", service.clone()).route_service("/mcp/", service)
    };
    let g = Guard { allowed: Arc::new(allowed), auth, hub: hub.clone() };
    mcp.route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(hub.clone()))
        .route("/metrics", get(metrics).with_state(hub))
        .fallback(|| async { plain(StatusCode::NOT_FOUND, "Not found") })
        .layer(middleware::from_fn_with_state(g, guard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let a = Allowed::new(Some("https://Hub.Example.com/mcp")).unwrap();
        for (h, ok) in [
            ("localhost", true),
            ("localhost:8765", true),
            ("127.0.0.1:1", true),
            ("[::1]:8765", true),
            ("[::1]", true),
            ("hub.example.com", true),
            ("HUB.example.com:443", true),
            ("evil.example", false),
            ("localhost.evil.example", false),
            ("127.0.0.1.nip.io", false),
            ("user@localhost", false),
            ("localhost:abc", false),
            ("[::1]x", false),
            ("", false),
            ("::1", false),
        ] {
            assert_eq!(a.host_ok(h), ok, "{h}");
        }
        let lo = Allowed::new(None).unwrap();
        assert!(!lo.host_ok("hub.example.com"));
    }

    #[test]
    fn origins() {
        let a = Allowed::new(Some("https://hub.example.com/mcp")).unwrap();
        for (o, ok) in [
            ("http://localhost:3000", true),
            ("http://localhost", true),
            ("http://127.0.0.1:8765", true),
            ("http://[::1]:1", true),
            ("https://hub.example.com", true),
            ("http://hub.example.com", false),
            ("https://hub.example.com:8443", false),
            ("https://evil.example", false),
            ("http://localhost.evil.example", false),
            ("http://localhost:3000.evil", false),
            ("http://localhost:", false),
            ("null", false),
            ("https://localhost:3000", false),
        ] {
            assert_eq!(a.origin_ok(o), ok, "{o}");
        }
    }

    #[test]
    fn public_url_errors() {
        assert!(Allowed::new(Some("hub.example.com")).is_err());
        assert!(Allowed::new(Some("ftp://hub.example.com")).is_err());
        assert!(Allowed::new(Some("https:///mcp")).is_err());
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn accept_is_normalised() {
        for given in [None, Some("*/*"), Some("application/json"), Some("text/event-stream")] {
            let mut h = HeaderMap::new();
            if let Some(g) = given {
                h.insert(header::ACCEPT, HeaderValue::from_static(g));
            }
            normalise_accept(&mut h);
            assert_eq!(h[header::ACCEPT], "application/json, text/event-stream");
        }
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("text/event-stream, application/json;q=0.9"));
        normalise_accept(&mut h);
        assert_eq!(h[header::ACCEPT], "text/event-stream, application/json;q=0.9");
    }
}
