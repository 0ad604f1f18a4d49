//! Serving the hub over MCP streamable HTTP. The route table ([`app`]):
//!
//! | route | handler |
//! |---|---|
//! | `POST /mcp`, `POST /mcp/`, `POST /` | `post_mcp`: scope check, a plain stateless `tools/call` answered by [`direct`], the rest to rmcp |
//! | other methods on `/mcp`, `/mcp/`, `/` | rmcp's `StreamableHttpService` |
//! | `/mcp/{profile}` | the same two, over the profile's surface ([`crate::profile`]); a principal bound to profiles reaches only theirs (403 `profile_not_allowed` elsewhere) |
//! | the OAuth paths | [`bastion_auth::OAuth::router`] (OAuth mode only) |
//! | `/healthz`, `/readyz`, `/metrics` | probes and Prometheus text |
//! | `/dashboard…` | the dashboard ([`crate::dashboard`]): its own cookie session, no bearer token |
//! | `GET /openapi.json`, `POST /tools/{name}`, `GET /fetch/{id}` | the OpenAPI facade ([`crate::openapi`]), through the same [`Hub::call`] |
//!
//! `/` is the same endpoint as `/mcp` (ChatGPT's connector has been seen posting to `/`, and
//! tunnels such as Tailscale Funnel strip a path prefix): the same handler, layers and checks;
//! only the protected-resource metadata named in its challenges is the root's
//! ([`bastion_auth::Endpoint`]), so a client finds its own URL as the `resource`.
//!
//! All of it behind the front layer (the per-address rate limit before anything else, 429; every
//! refusal journaled as `http_refused`, [`crate::refused`]) and one guard layer. Order of
//! checks on every request: Host and Origin (403), then
//! the bearer token (401 with `WWW-Authenticate: Bearer`; 503 `store_unavailable` when the
//! store cannot be read to check it) on every path but `/healthz`,
//! `/readyz` and the OAuth paths (the guard), then on `POST /mcp` (and `/`) the media type (415: JSON, or
//! octet-stream with a token; [`crate::strict::media_type`]), then the principal's rate limit
//! and calls in flight (429, [`crate::limits`]), then on `POST /mcp` one reading of the body
//! ([`crate::strict`]: duplicate or look-alike keys, SEP-2243 headers that contradict it: 400),
//! in stateful mode the session cap (429) and, with a `sealing_key`, a session id that is not the
//! caller's sealed session (404, [`crate::session`]), and for a `tools/call` by a token without the tool's
//! scope, 403 with `error="insufficient_scope"` (the scope challenge of the MCP authorization
//! spec), then the `Accept` normalisation, then rmcp (which repeats the Host/Origin check with
//! the same lists).
//!
//! In OAuth mode (a public URL and authentication on) the authorization server's routes
//! ([`bastion_auth::PUBLIC_PATHS`]) are served without a token, every 401 and 403 names the
//! protected-resource metadata (RS-03, RS-04), and a bearer token is either a static `bst_`
//! token or an OAuth access token. Without OAuth the same paths pass the token check too and
//! answer 404, so that no client believes the hub speaks OAuth (RS-06). Tokens are only ever read
//! from the `Authorization` header, never from the query string. What a token is, and the
//! challenges of the 401 and 403, belong to `bastion-auth`: the guard hands it the header.

use std::sync::Arc;

use crate::session::SealedSessions;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::limits::{InFlight, Limited, Limiter, LimitsConfig};
use crate::refused::{Refusals, Seen, reason, with_reason};
use crate::router::Hub;
use crate::scope::Scope;
use crate::strict::{self, MediaType};
use crate::upstream::Status;
use bastion_auth::{Challenge, Principal};
use bastion_policy::ErrorCode;

/// Which hosts and browser origins may reach the hub.
#[derive(Clone, Debug)]
pub struct Allowed {
    /// Host names without port (`localhost`, `127.0.0.1`, `::1`, the public host).
    pub hosts: Vec<String>,
    /// Origins as `scheme://host[:port]`; a loopback origin may use any port.
    pub origins: Vec<String>,
}

impl Allowed {
    /// Loopback only: `localhost`, `127.0.0.1` and `::1`, origins on any port.
    pub fn loopback() -> Allowed {
        Allowed {
            hosts: ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec(),
            origins: ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"].map(String::from).to_vec(),
        }
    }

    /// Loopback, plus the host of `public_url` if given (`https://hub.example.com/mcp`) and its
    /// origin as a browser sends it (`https://hub.example.com`: lower case, no default port).
    pub fn new(public_url: Option<&str>) -> Result<Allowed, String> {
        let mut allowed = Allowed::loopback();
        let Some(raw) = public_url else { return Ok(allowed) };
        let url = url::Url::parse(raw).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => format!("--public-url '{raw}' has no scheme"),
            e => format!("--public-url '{raw}': {e}"),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("--public-url '{raw}' must be http or https"));
        }
        // The url crate reads `https:///mcp` and `https:mcp` as a URL whose host is `mcp`
        // (WHATWG's forgiving parse); a public URL must name its host after `//` itself.
        let names_host = raw.split_once("://").is_some_and(|(_, rest)| !rest.starts_with(['/', '\\']));
        let host = match url.host() {
            Some(_) if !names_host || !url.username().is_empty() || url.password().is_some() => None,
            Some(url::Host::Domain(d)) => Some(d.to_owned()),
            Some(url::Host::Ipv4(a)) => Some(a.to_string()),
            Some(url::Host::Ipv6(a)) => Some(a.to_string()),
            None => None,
        };
        let host = host.ok_or_else(|| format!("--public-url '{raw}' has no host"))?;
        allowed.hosts.push(host);
        allowed.origins.push(url.origin().ascii_serialization());
        Ok(allowed)
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
///
/// Written out rather than taken from the url crate: it runs on every request's `Host` (and
/// absolute-form target), where the url crate would allocate a URL per request and normalise
/// what it is given (`127.1`, percent-escapes, IDNA), accepting hosts this exact comparison
/// refuses. A `Host` must spell an allowed host exactly, in any case.
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

/// How requests to `/mcp` are authenticated: static tokens, OAuth, or none (`--no-auth`).
pub type Auth = bastion_auth::Authenticator;

#[derive(Clone)]
struct Guard {
    allowed: Arc<Allowed>,
    auth: Auth,
    limiter: Limiter,
}

/// The largest request body the hub reads (rmcp's own limit): larger ones get 413.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

fn plain(status: StatusCode, text: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{text}\n")).into_response()
}

/// A refusal sent before the request body was read: hyper then closes the connection, and a
/// client that reused it for its next request would see it drop (an OAuth client retries with a
/// token right after the 401). `Connection: close` says so up front.
fn closing(mut r: Response) -> Response {
    r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// A 401 with the challenge `bastion-auth` chose (RS-03 in OAuth mode).
fn unauthorized(challenge: &Challenge) -> Response {
    let mut r = plain(StatusCode::UNAUTHORIZED, "Unauthorized: a valid bearer token is required");
    if let Ok(v) = HeaderValue::from_str(&challenge.www_authenticate) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

impl Guard {
    /// The caller behind a request to `path`, or the challenge of the 401.
    async fn authenticate(&self, path: &str, headers: &HeaderMap) -> Result<Principal, Challenge> {
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        self.auth.authenticate_at(self.auth.endpoint_of(path), authorization).await
    }
}

/// Whether `path` is an MCP endpoint: `/mcp`, `/mcp/`, the same served at `/`, or a
/// profile's `/mcp/{profile}`.
fn is_mcp_path(path: &str) -> bool {
    matches!(path, "/mcp" | "/mcp/" | "/") || crate::profile::of_path(path).is_some()
}

/// CORS for browser clients on an allowed origin (a page on localhost, or on the public URL's
/// origin) calling `/mcp` directly: the preflight is answered without a token (browsers send
/// none), and every answer from `/mcp` names that origin, so the page can read it, including a
/// 401's `WWW-Authenticate`. Tokens are never ambient (no cookies), so this grants a page nothing
/// it does not hold; foreign origins are refused before any of this.
async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let cors_origin = cors_origin(&g, &req);
    if let Some(origin) = &cors_origin
        && req.method() == axum::http::Method::OPTIONS
    {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(
                "authorization, content-type, accept, mcp-protocol-version, mcp-session-id, last-event-id, mcp-method, mcp-name",
            ),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        return r;
    }
    let mut r = checked(g, req, next).await;
    if let Some(origin) = cors_origin {
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("mcp-session-id, mcp-protocol-version, www-authenticate"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    r
}

/// The `Origin` of a request to `/mcp` that may be answered with CORS headers: exactly one
/// allowed `Origin`, and a Host the guard would accept.
fn cors_origin(g: &Guard, req: &Request) -> Option<HeaderValue> {
    let path = req.uri().path();
    // Browser clients of the OpenAPI facade too (Open WebUI calls tool servers from the page).
    let served = is_mcp_path(path) || path == "/openapi.json" || path.starts_with("/tools/");
    if !served || req.uri().authority().is_some() {
        return None;
    }
    let headers = req.headers();
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let (origin, None) = (origins.next()?, origins.next()) else { return None };
    let mut hosts = headers.get_all(header::HOST).iter();
    let (host, None) = (hosts.next()?, hosts.next()) else { return None };
    let allowed =
        origin.to_str().is_ok_and(|o| g.allowed.origin_ok(o)) && host.to_str().is_ok_and(|h| g.allowed.host_ok(h));
    allowed.then(|| origin.clone())
}

async fn checked(g: Guard, req: Request, next: Next) -> Response {
    let headers = req.headers();
    // RFC 9112 §3.2: more than one Host is a bad request; a second Origin could hide behind an
    // allowed first one.
    if headers.get_all(header::HOST).iter().count() > 1 {
        return closing(refusal(
            StatusCode::BAD_REQUEST,
            reason::DUPLICATE_HEADER,
            "Bad Request: more than one Host header",
        ));
    }
    if headers.get_all(header::ORIGIN).iter().count() > 1 {
        return closing(refusal(
            StatusCode::FORBIDDEN,
            reason::DUPLICATE_HEADER,
            "Forbidden: more than one Origin header",
        ));
    }
    // HTTP/1.1 requires Host; a request without one cannot be checked and is refused. An
    // absolute-form target (`POST http://host/mcp`) names the host that counts (RFC 9112
    // §3.2.2), so its authority is checked as well.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let target_ok = req.uri().authority().is_none_or(|a| g.allowed.host_ok(a.as_str()));
    if !g.allowed.host_ok(host) || !target_ok {
        return closing(refusal(
            StatusCode::FORBIDDEN,
            reason::HOST_NOT_ALLOWED,
            "Forbidden: Host header is not allowed",
        ));
    }
    let origin = headers.get(header::ORIGIN);
    // The consent page is served with `Referrer-Policy: no-referrer`, so browsers post its form
    // with `Origin: null`. That post needs the page's single-use CSRF token and the owner
    // secret, so `null` is accepted there, and only there, in OAuth mode.
    let consent_post = g.auth.oauth().is_some()
        && req.method() == axum::http::Method::POST
        && req.uri().path() == "/authorize"
        && origin.is_some_and(|o| o == "null");
    if !consent_post && origin.is_some_and(|o| !o.to_str().is_ok_and(|o| g.allowed.origin_ok(o))) {
        return closing(refusal(StatusCode::FORBIDDEN, reason::ORIGIN_NOT_ALLOWED, "Forbidden: Origin is not allowed"));
    }
    let path = req.uri().path();
    let mcp_post = req.method() == axum::http::Method::POST && is_mcp_path(path);
    // The OAuth paths are public (RS-02); without OAuth they fall through to the 404 (RS-06).
    // The dashboard is opened by its own cookie session, never by a bearer token.
    if path == "/healthz" || bastion_auth::is_public_path(path) || crate::dashboard::is_dashboard_path(path) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    // One credential per request (RFC 6750 §3.1): two Authorization headers are not resolved
    // by picking one.
    if parts.headers.get_all(header::AUTHORIZATION).iter().count() > 1 {
        let mut r = refusal(
            StatusCode::BAD_REQUEST,
            reason::DUPLICATE_HEADER,
            "Bad Request: more than one Authorization header",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer error=\"invalid_request\", error_description=\"more than one Authorization header\"",
            ),
        );
        return closing(r);
    }
    let principal = match g.authenticate(parts.uri.path(), &parts.headers).await {
        Ok(p) => p,
        // The readiness probe answers anyone, with details only for a valid token.
        Err(_) if parts.uri.path() == "/readyz" => return next.run(Request::from_parts(parts, body)).await,
        Err(challenge) if challenge.refusal == Some(bastion_auth::Refusal::Unavailable) => {
            let message = "Service Unavailable: the token store is unreachable; retry shortly";
            let mut r =
                crate::refused::json_rpc(StatusCode::SERVICE_UNAVAILABLE, -32000, reason::STORE_UNAVAILABLE, message);
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1u32));
            return closing(r);
        }
        Err(challenge) => {
            let why = if parts.headers.contains_key(header::AUTHORIZATION) {
                reason::INVALID_TOKEN
            } else {
                reason::MISSING_TOKEN
            };
            return closing(with_reason(unauthorized(&challenge), why));
        }
    };
    // A token or grant bound to profiles reaches their `/mcp/{profile}` and nothing else (not
    // the hub's own surface, another profile's, the OpenAPI facade or the metrics).
    let profile = crate::profile::of_path(parts.uri.path());
    if !principal.profiles.is_empty()
        && parts.uri.path() != "/readyz"
        && !(profile.is_some() && principal.reaches(profile))
    {
        let bound = principal.profiles.join(", ");
        let text = match profile {
            Some(p) => {
                format!("Forbidden: profile_not_allowed: this token is bound to the profile(s) {bound}, not '{p}'")
            }
            None => format!(
                "Forbidden: profile_not_allowed: this token is bound to the profile(s) {bound}; use /mcp/<profile>"
            ),
        };
        return closing(refusal(StatusCode::FORBIDDEN, reason::PROFILE_NOT_ALLOWED, &text));
    }
    // A web page may post text/plain, forms and multipart cross-site without a preflight
    // (CORS-safelisted): with --no-auth that is a tool call from any site
    // (GHSA-89xv-2j6f-qhc8). Only JSON, and octet-stream with a token, reach the hub. This
    // comes after the token check, so that a client without one (or with a stale one) always
    // gets the 401 challenge that starts OAuth, whatever it labels its body; nothing runs either
    // way.
    let media = if mcp_post { strict::media_type(&parts.headers) } else { MediaType::Json };
    if media == MediaType::Refused {
        let r = crate::refused::json_rpc(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            -32600,
            reason::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type: POST /mcp takes application/json",
        );
        return closing(r);
    }
    if media == MediaType::OctetStream {
        // ChatGPT's connector labels its JSON-RPC so (Sigil MCP ADR-009). It is not a
        // CORS-safelisted type, and a verified bearer token is never ambient; without a token
        // (--no-auth) the browser's preflight would be the only barrier, so there it is refused
        // like text/plain (accept it only after authentication, as the field advises).
        if g.auth.is_open() {
            let r = crate::refused::json_rpc(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                -32600,
                reason::OCTET_STREAM_WITHOUT_TOKEN,
                "Unsupported Media Type: application/octet-stream needs a bearer token; send application/json",
            );
            return closing(r);
        }
        parts.headers.insert(header::CONTENT_TYPE, strict::JSON);
    }
    // Calls in flight are only POSTs to /mcp: a GET holds an SSE stream open for as long as the
    // client listens.
    let permit = match g.limiter.principal(&principal.name) {
        Ok(permit) if mcp_post => permit,
        Ok(_) => None,
        Err(limited) => return closing(too_many(limited)),
    };
    parts.extensions.insert(principal);
    let response = next.run(Request::from_parts(parts, body)).await;
    match permit {
        Some(permit) => hold_until_sent(response, permit),
        None => response,
    }
}

/// A refusal in plain text, with its stable reason for the journal.
fn refusal(status: StatusCode, why: &'static str, text: &str) -> Response {
    with_reason(plain(status, text), why)
}

/// 429 with `Retry-After` and the JSON-RPC error whose data code says which limit.
fn too_many(limited: Limited) -> Response {
    let message = match limited {
        Limited::Rate(_) => "Too Many Requests: rate limit reached",
        Limited::InFlight => "Too Many Requests: too many requests of this client in flight",
        Limited::Sessions => "Too Many Requests: too many sessions open",
    };
    let mut r = crate::refused::json_rpc(StatusCode::TOO_MANY_REQUESTS, -32000, limited.code(), message);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(limited.retry_after()));
    r
}

/// A response body that holds the request's place among the principal's calls in flight until
/// the last byte is sent (or the client goes away): an SSE answer streams the call's result
/// after the handler has returned.
fn hold_until_sent(response: Response, permit: InFlight) -> Response {
    struct Held {
        body: axum::body::Body,
        _permit: InFlight,
    }
    impl http_body::Body for Held {
        type Data = axum::body::Bytes;
        type Error = axum::Error;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
        }
        fn is_end_stream(&self) -> bool {
            self.body.is_end_stream()
        }
        fn size_hint(&self) -> http_body::SizeHint {
            self.body.size_hint()
        }
    }
    response.map(|body| axum::body::Body::new(Held { body, _permit: permit }))
}

/// The front layer: the per-address rate limit before anything else reads the request, and
/// the journal of every refusal, whoever answered it (the guard, the handlers, rmcp).
#[derive(Clone)]
struct Front {
    limiter: Limiter,
    refusals: Refusals,
}

async fn front(State(f): State<Front>, req: Request, next: Next) -> Response {
    let client = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0);
    // Kept for the journal, should the request be refused: reference-counted copies, no
    // allocation on the per-call path.
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let user_agent = req.headers().get(header::USER_AGENT).cloned();
    let response = match f.limiter.address(client.map(|a| a.ip())) {
        Ok(()) => next.run(req).await,
        Err(limited) => closing(too_many(limited)),
    };
    let seen = Seen { method: &method, path: uri.path(), client, user_agent: user_agent.as_ref() };
    f.refusals.observe(&seen, &response);
    response
}

/// What `/mcp` needs besides the request: the hub for direct calls and scope checks, rmcp's
/// service for everything else. Shared behind one `Arc`: axum clones a handler's state for
/// every request, and cloning rmcp's service would copy its configuration (host and origin
/// lists) each time.
type McpEndpoint = Arc<McpState>;

/// See [`McpEndpoint`].
struct McpState {
    hub: Hub,
    rmcp: Rmcp,
    /// Stateless mode: plain `tools/call` requests are answered by [`direct`].
    direct: bool,
    /// In OAuth mode, the authorization server: the scope challenge names the metadata of the
    /// endpoint (`/mcp` or `/`) the request came to.
    oauth: Option<bastion_auth::OAuth>,
    /// The limits (the session cap is checked here, where an `initialize` is seen).
    limiter: Limiter,
}

/// rmcp's streamable HTTP service, with or without sessions.
enum Rmcp {
    Stateless(StreamableHttpService<Hub, NeverSessionManager>),
    Stateful(StreamableHttpService<Hub, SealedSessions>, Arc<SealedSessions>),
}

/// `POST /mcp` (and `/mcp/`), after the guard (Host, Origin, bearer token; the caller's
/// [`Principal`] is in the request's extensions). A token without `*:*` has its `tools/call`
/// checked against the tool's scope first (403 with the scope challenge); then a plain
/// stateless `tools/call` is answered by [`direct`], and everything else goes to rmcp with the
/// same bytes. The body is read and parsed once, and only when one of those needs it.
async fn post_mcp(State(mcp): State<McpEndpoint>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let Some(principal) = parts.extensions.get::<Principal>() else {
        // Only the guard's own refusals skip the principal; rmcp then serves nobody.
        return to_rmcp(State(mcp), Request::from_parts(parts, body)).await;
    };
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return refusal(StatusCode::PAYLOAD_TOO_LARGE, reason::PAYLOAD_TOO_LARGE, "Payload too large"),
    };
    if let Err(a) = strict::check_body(&bytes).and_then(|()| strict::check_headers(&parts.headers, &bytes)) {
        // -32020 is the 2026-07-28 protocol's header mismatch; the rest is an invalid request.
        let code = if a.code == "header_mismatch" { -32020 } else { -32600 };
        return crate::refused::json_rpc(StatusCode::BAD_REQUEST, code, a.code, &a.message);
    }
    let mut opening = None;
    // A profile whose upstreams start on first use: before the scope check reads its tools.
    mcp.hub.ensure_started().await;
    if let Rmcp::Stateful(_, sessions) = &mcp.rmcp
        && !parts.headers.contains_key("mcp-session-id")
    {
        if let Err(limited) = mcp.limiter.session(sessions.open_count().await) {
            return too_many(limited);
        }
        // An `initialize`: what its session id will seal (see `crate::session`).
        opening =
            initialize_params(&bytes).map(|init| crate::session::Opening { principal: principal.name.clone(), init });
    }
    let direct = mcp.direct && direct::headers_qualify(&parts.method, &parts.headers);
    let restricted = !principal.scopes.contains(&Scope::all());
    let parsed = if direct { direct::parse(&bytes) } else { direct::Parsed::Other };
    if let direct::Parsed::NotJson(e) = &parsed {
        return parse_error(e);
    }
    if restricted {
        let tool = match &parsed {
            direct::Parsed::Call(call) => Some(std::borrow::Cow::Borrowed(call.tool())),
            _ => called_tool(&bytes),
        };
        // Through tool search's `call_tool`, the tool that counts is the one it names: the
        // same challenge as a direct call to it.
        let tool = match tool {
            Some(t) if t == crate::toolsearch::CALL_TOOL && mcp.hub.tool_search_enabled() => {
                called_through_search(&bytes).map(std::borrow::Cow::Owned).or(Some(t))
            }
            t => t,
        };
        let path = parts.uri.path();
        let metadata = || mcp.oauth.as_ref().map(|o| o.resource_metadata_url_at(o.endpoint_of(path)));
        if let Some(denied) = tool.and_then(|t| scope_challenge(&mcp.hub, principal, &t, metadata)) {
            return denied;
        }
    }
    if mcp.limiter.has_tool_limits() {
        let checked = match &parsed {
            direct::Parsed::Call(call) => {
                crate::limits::check_tool(&mcp.limiter, &mcp.hub, principal, call.tool(), call.arguments())
            }
            _ => match crate::limits::called(&bytes) {
                Some((tool, args)) => {
                    crate::limits::check_tool(&mcp.limiter, &mcp.hub, principal, &tool, args.as_ref())
                }
                None => Ok(()),
            },
        };
        if let Err(limited) = checked {
            return crate::limits::tool_refusal(&limited);
        }
    }
    if let direct::Parsed::Call(call) = parsed
        && let Some(principal) = parts.extensions.remove::<Principal>()
    {
        return direct::answer(&mcp.hub, principal, call).await;
    }
    if let Some(opening) = opening {
        parts.extensions.insert(opening);
    }
    to_rmcp(State(mcp), Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// Every other request to `/mcp` (and the `POST`s [`post_mcp`] does not answer): rmcp's
/// streamable HTTP service, after the `Accept` normalisation.
async fn to_rmcp(State(mcp): State<McpEndpoint>, mut req: Request) -> Response {
    normalise_accept(req.headers_mut());
    let response = match &mcp.rmcp {
        Rmcp::Stateless(service) => service.handle(req).await,
        Rmcp::Stateful(service, sessions) => {
            // A sealed session is its opener's: another token presenting the id, or an id that
            // does not open (altered, expired, another key), finds no session.
            let principal = req.extensions().get::<Principal>().map(|p| p.name.as_str());
            let id = req.headers().get("mcp-session-id").and_then(|v| v.to_str().ok());
            if let (Some(id), Some(principal)) = (id, principal)
                && !sessions.admits(id, principal)
            {
                return refusal(StatusCode::NOT_FOUND, reason::NOT_FOUND, "Not Found: no such session");
            }
            match req.extensions_mut().remove::<crate::session::Opening>() {
                Some(opening) => crate::session::opening(opening, service.handle(req)).await,
                None => service.handle(req).await,
            }
        }
    };
    response.map(axum::body::Body::new)
}

/// The parameters of an `initialize` request body, if it is one.
fn initialize_params(body: &[u8]) -> Option<rmcp::model::InitializeRequestParams> {
    #[derive(serde::Deserialize)]
    struct Init {
        method: String,
        params: rmcp::model::InitializeRequestParams,
    }
    serde_json::from_slice::<Init>(body).ok().filter(|i| i.method == "initialize").map(|i| i.params)
}

/// The tool a `tools/call` body calls, if it is one.
fn called_tool(body: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
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
    call.params?.name
}

/// The tool a `tools/call` of `call_tool` names in its arguments (`{"name": …}`), if it is one.
fn called_through_search(body: &[u8]) -> Option<String> {
    let call: serde_json::Value = serde_json::from_slice(body).ok()?;
    call.pointer("/params/arguments/name")?.as_str().map(str::to_owned)
}

/// 403 with the scope challenge when `principal` may not call the offered tool `name`. Anything
/// else (unknown tools) goes on, and is answered as the protocol says. In OAuth mode the
/// challenge names the protected-resource metadata too (RS-04).
fn scope_challenge(
    hub: &Hub,
    principal: &Principal,
    name: &str,
    resource_metadata: impl FnOnce() -> Option<String>,
) -> Option<Response> {
    let needed = hub.required_scope(principal, name)?;
    hub.refused(principal, name, ErrorCode::InsufficientScope.as_str());
    let description = format!("this token may not call '{name}': it needs the scope {needed}");
    let challenge = bastion_auth::challenge::insufficient_scope(&needed, resource_metadata().as_deref(), &description);
    let mut r = refusal(StatusCode::FORBIDDEN, reason::INSUFFICIENT_SCOPE, &format!("Forbidden: {description}"));
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    Some(r)
}

/// The direct path for the commonest request, served by `post_mcp`: a stateless,
/// legacy-protocol `tools/call` with no `_meta` (so no progress, no per-request 2026 protocol
/// metadata). rmcp's stateless service builds a service, a transport and a task for every
/// request (about 60 µs of the hub's ~160 µs per call); this answers the same JSON-RPC message,
/// serialised from the same rmcp types, from the hub directly, through the same
/// [`Hub::call`]. Everything else — other methods, `_meta`, progress, 2026-07-28 requests,
/// unknown protocol versions, bodies that are not exactly a JSON-RPC request — goes to rmcp.
/// `crates/hub/tests/direct_path.rs` checks that both paths give the same bytes.
pub mod direct {
    use axum::http::{HeaderMap, Method, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use rmcp::model::{
        CallToolRequestParams, CallToolResponse, ClientCapabilities, ErrorData, JsonObject, RequestId,
        ServerJsonRpcMessage, ServerResult,
    };
    use tokio_util::sync::CancellationToken;

    use crate::router::{CallSite, Hub};
    use bastion_auth::Principal;

    /// Protocol versions served on this path (those negotiated through `initialize`; a missing
    /// header means 2025-03-26, as the specification says).
    pub const LEGACY_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];

    /// Whether the request line and headers allow the direct path.
    pub fn headers_qualify(method: &Method, headers: &HeaderMap) -> bool {
        let json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
        });
        let version_ok = match headers.get("mcp-protocol-version") {
            None => true,
            Some(v) => v.to_str().is_ok_and(|v| LEGACY_VERSIONS.contains(&v)),
        };
        // 2026-07-28 requests name their method in a header; they are rmcp's.
        *method == Method::POST && json && version_ok && !headers.contains_key("mcp-method")
    }

    /// A `tools/call` request this path serves.
    pub struct Call {
        id: RequestId,
        params: CallToolRequestParams,
    }

    impl Call {
        /// The tool called.
        pub fn tool(&self) -> &str {
            &self.params.name
        }

        /// Its arguments.
        pub fn arguments(&self) -> Option<&JsonObject> {
            self.params.arguments.as_ref()
        }
    }

    /// What a body is to this path.
    pub enum Parsed {
        /// Exactly `{"jsonrpc":"2.0","id":…,"method":"tools/call","params":{"name":…,
        /// "arguments":{…}}}`, in any key order: served here.
        Call(Call),
        /// Not JSON at all: a JSON-RPC parse error.
        NotJson(serde_json::Error),
        /// JSON of another shape: rmcp's.
        Other,
    }

    /// Parses `body` once, for both the direct path and the parse-error answer.
    pub fn parse(body: &[u8]) -> Parsed {
        // Borrowed where serde_json can (no escapes): no allocation for the fixed strings.
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Request<'a> {
            #[serde(borrow)]
            jsonrpc: std::borrow::Cow<'a, str>,
            id: RequestId,
            #[serde(borrow)]
            method: std::borrow::Cow<'a, str>,
            params: Params,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Params {
            name: String,
            #[serde(default)]
            arguments: Option<JsonObject>,
        }
        let r: Request = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) if e.is_syntax() || e.is_eof() => return Parsed::NotJson(e),
            Err(_) => return Parsed::Other,
        };
        if r.jsonrpc != "2.0" || r.method != "tools/call" {
            return Parsed::Other;
        }
        let mut params = CallToolRequestParams::new(r.params.name);
        params.arguments = r.params.arguments;
        Parsed::Call(Call { id: r.id, params })
    }

    /// Runs the call and answers it as rmcp's stateless JSON mode would.
    pub async fn answer(hub: &Hub, principal: Principal, call: Call) -> Response {
        let cancelled = CancellationToken::new();
        // The call runs in its own task, which outlives this future if the client goes away:
        // then the guard fires and the hub cancels the call upstream, as rmcp does (#857).
        let mut on_disconnect = Some(cancelled.clone().drop_guard());
        let site = CallSite { cancelled, progress: None, peer: None };
        let hub = hub.clone();
        let params = call.params;
        let outcome = tokio::spawn(async move { hub.call(&principal, params, &site).await }).await;
        if let Some(guard) = on_disconnect.take() {
            guard.disarm();
        }
        let message = match outcome {
            // A task result needs the tasks capability, which a stateless legacy client has
            // not declared (rmcp answers the same).
            Ok(Ok(CallToolResponse::Task(_))) => ServerJsonRpcMessage::error(
                ErrorData::missing_required_client_capability(ClientCapabilities::builder().enable_tasks().build()),
                Some(call.id),
            ),
            Ok(Ok(response)) => ServerJsonRpcMessage::response(ServerResult::from(response), call.id),
            Ok(Err(error)) => ServerJsonRpcMessage::error(error, Some(call.id)),
            Err(panic) => ServerJsonRpcMessage::error(
                ErrorData::internal_error(format!("the call failed: {panic}"), None),
                Some(call.id),
            ),
        };
        match serde_json::to_vec(&message) {
            Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("serialising the response: {e}\n")).into_response(),
        }
    }
}

/// JSON-RPC 2.0 §5.1: a body that is not JSON gets error -32700 with a null id (HTTP 400, as
/// the streamable HTTP transport allows), rather than rmcp's plain-text 415.
fn parse_error(e: &serde_json::Error) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": format!("Parse error: {e}")}});
    (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
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
    // The profiles' upstreams too, once a first use has started them.
    let upstreams: Vec<_> = hub
        .all_upstreams()
        .into_iter()
        .map(|(profile, u)| {
            let mut v = match u.status() {
                Status::Ready { tools, .. } => json!({"name": u.spec.name, "state": "ready", "tools": tools.len()}),
                Status::Starting => json!({"name": u.spec.name, "state": "starting"}),
                Status::Failed(why) => json!({"name": u.spec.name, "state": "failed", "error": why}),
            };
            if let Some(p) = profile {
                v["profile"] = json!(&*p);
            }
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

/// Whether the hub serves MCP sessions, and the key that seals them into their ids.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    /// `--stateful`.
    pub stateful: bool,
    /// `sealing_key`: sessions any replica can continue (see [`crate::session`]).
    pub sealing: Option<Arc<crate::session::SealingKey>>,
}

/// The whole HTTP application. Stateless with JSON responses unless `stateful`: no sessions to
/// expire or lose (connectors that drop `Mcp-Session-Id` keep working); a call that sends
/// progress falls back to SSE.
pub fn app(hub: Hub, allowed: Allowed, auth: Auth, stateful: bool, shutdown: CancellationToken) -> Router {
    app_limited(hub, allowed, auth, stateful, shutdown, LimitsConfig::default())
}

/// [`app`] with these limits (the `[limits]` table and its flags).
pub fn app_limited(
    hub: Hub,
    allowed: Allowed,
    auth: Auth,
    stateful: bool,
    shutdown: CancellationToken,
    limits: LimitsConfig,
) -> Router {
    app_with(hub, allowed, auth, Sessions { stateful, sealing: None }, shutdown, limits, Router::new())
}

/// [`app_limited`] with more routes behind the same layers (the dashboard's, which the guard
/// lets through without a bearer token).
pub fn app_with(
    hub: Hub,
    allowed: Allowed,
    auth: Auth,
    sessions: Sessions,
    shutdown: CancellationToken,
    limits: LimitsConfig,
    extra: Router,
) -> Router {
    app_with_profiles(hub, vec![], allowed, auth, sessions, shutdown, limits, extra)
}

/// The MCP endpoint of one surface: its hub and rmcp's service over it.
fn mcp_endpoint(
    hub: &Hub,
    allowed: &Allowed,
    sessions: &Sessions,
    shutdown: &CancellationToken,
    oauth: Option<bastion_auth::OAuth>,
    limiter: &Limiter,
) -> McpEndpoint {
    let Sessions { stateful, sealing } = sessions.clone();
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(stateful)
        .with_json_response(!stateful)
        .with_allowed_hosts(allowed.hosts.clone())
        .with_allowed_origins(allowed.origins.clone())
        .with_cancellation_token(shutdown.child_token());
    let factory_hub = hub.clone();
    let factory = move || Ok(factory_hub.clone());
    let rmcp = if stateful {
        let mut local = LocalSessionManager::default();
        local.session_config.keep_alive = Some(SESSION_IDLE);
        let sessions = Arc::new(SealedSessions::new(local, sealing));
        config.session_store = sessions.store();
        Rmcp::Stateful(StreamableHttpService::new(factory, sessions.clone(), config), sessions)
    } else {
        Rmcp::Stateless(StreamableHttpService::new(factory, Arc::new(NeverSessionManager::default()), config))
    };
    Arc::new(McpState { hub: hub.clone(), rmcp, direct: !stateful, oauth, limiter: limiter.clone() })
}

/// [`app_with`] with the surfaces of profiles, each `(name, hub)` served at `/mcp/{name}`
/// behind the same layers.
#[allow(clippy::too_many_arguments)] // app_with's, plus the profiles
pub fn app_with_profiles(
    hub: Hub,
    profiles: Vec<(String, Hub)>,
    allowed: Allowed,
    auth: Auth,
    sessions: Sessions,
    shutdown: CancellationToken,
    limits: LimitsConfig,
    extra: Router,
) -> Router {
    let limiter = Limiter::new(limits);
    let oauth = auth.oauth().cloned();
    let endpoint = mcp_endpoint(&hub, &allowed, &sessions, &shutdown, oauth.clone(), &limiter);
    let mut surfaces = Router::new();
    for (name, profile_hub) in &profiles {
        let endpoint = mcp_endpoint(profile_hub, &allowed, &sessions, &shutdown, oauth.clone(), &limiter);
        let mcp = post(post_mcp).fallback(to_rmcp).with_state(endpoint);
        surfaces = surfaces.route(&format!("/mcp/{name}"), mcp.clone()).route(&format!("/mcp/{name}/"), mcp);
    }
    let oauth_routes = auth.oauth().map_or_else(Router::new, bastion_auth::OAuth::router);
    let g = Guard { allowed: Arc::new(allowed), auth, limiter: limiter.clone() };
    let f = Front { limiter: limiter.clone(), refusals: Refusals::new(hub.clone()) };
    let mcp = post(post_mcp).fallback(to_rmcp).with_state(endpoint);
    // One method router at three paths: `/` is `/mcp` (see the module comment).
    Router::new()
        .route("/mcp", mcp.clone())
        .route("/mcp/", mcp.clone())
        .route("/", mcp)
        .merge(surfaces)
        .merge(oauth_routes)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(hub.clone()))
        .route("/metrics", get(metrics).with_state(hub.clone()))
        .merge(crate::openapi::routes(hub, &g.auth, g.limiter.clone()))
        .merge(extra)
        .fallback(|| async { refusal(StatusCode::NOT_FOUND, reason::NOT_FOUND, "Not found") })
        .layer(middleware::from_fn_with_state(g, guard))
        .layer(middleware::from_fn_with_state(f, front))
}

#[cfg(test)]
#[cfg(test)]
mod tests;
