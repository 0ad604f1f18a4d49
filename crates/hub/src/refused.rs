//! Refused HTTP requests, on the record: every answer 400, 401, 403, 404, 405, 413, 415 or 429
//! from the hub's HTTP front becomes one `http_refused` event in the hub's journal (status, a
//! stable reason, method, path, client address, user agent), and a line on stderr at most once
//! per client address per minute (with the count of what was not printed), so a connector that
//! fails leaves a trace without a flood filling the log.
//!
//! Whoever refuses names the reason by putting a [`Reason`] in the response's extensions; an
//! answer without one (rmcp's own, the 404 fallback) gets the status's generic reason.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::router::Hub;

/// The stable reason of a refusal, carried in the response's extensions to the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason(pub &'static str);

/// Stable reasons (the journal's `detail.reason`; scripts match them).
pub mod reason {
    /// `Host` (or an absolute-form target) is not an allowed host.
    pub const HOST_NOT_ALLOWED: &str = "host_not_allowed";
    /// `Origin` is not an allowed origin.
    pub const ORIGIN_NOT_ALLOWED: &str = "origin_not_allowed";
    /// Two `Host`, `Origin` or `Authorization` headers.
    pub const DUPLICATE_HEADER: &str = "duplicate_header";
    /// No bearer token.
    pub const MISSING_TOKEN: &str = "missing_token";
    /// A bearer token that is unknown, expired, revoked or for another resource.
    pub const INVALID_TOKEN: &str = "invalid_token";
    /// The token could not be checked: the auth store is unreachable (503, `Retry-After`).
    pub const STORE_UNAVAILABLE: &str = "store_unavailable";
    /// A token without the called tool's scope.
    pub const INSUFFICIENT_SCOPE: &str = "insufficient_scope";
    /// A token or OAuth grant bound to profiles, used elsewhere than at their `/mcp/{profile}`.
    pub const PROFILE_NOT_ALLOWED: &str = "profile_not_allowed";
    /// A `Content-Type` other than JSON (or octet-stream with a token).
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// `application/octet-stream` without a verified bearer token.
    pub const OCTET_STREAM_WITHOUT_TOKEN: &str = "octet_stream_without_token";
    /// A body larger than the hub reads.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// No such route.
    pub const NOT_FOUND: &str = "not_found";
    /// The route does not take this method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// Any other 400.
    pub const BAD_REQUEST: &str = "bad_request";
    /// Any other 403.
    pub const FORBIDDEN: &str = "forbidden";
    /// Any other 401.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// Any other 429.
    pub const TOO_MANY_REQUESTS: &str = "too_many_requests";
    /// Any other 415.
    pub const MEDIA_TYPE: &str = "unsupported_media_type";
}

/// Whether an answer with this status is a refusal to journal.
pub fn is_refusal(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 401 | 403 | 404 | 405 | 413 | 415 | 429)
}

fn generic(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => reason::BAD_REQUEST,
        401 => reason::UNAUTHORIZED,
        403 => reason::FORBIDDEN,
        404 => reason::NOT_FOUND,
        405 => reason::METHOD_NOT_ALLOWED,
        413 => reason::PAYLOAD_TOO_LARGE,
        415 => reason::MEDIA_TYPE,
        _ => reason::TOO_MANY_REQUESTS,
    }
}

/// Attaches `reason` to a refusal.
pub fn with_reason(mut r: Response, reason: &'static str) -> Response {
    r.extensions_mut().insert(Reason(reason));
    r
}

/// A refusal as a JSON-RPC error with a null id (the request was never read as one): the
/// stable `reason` is the error data's `code`.
pub fn json_rpc(status: StatusCode, code: i64, reason: &'static str, message: &str) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": message, "data": {"code": reason}},
    });
    let r = (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string());
    with_reason(r.into_response(), reason)
}

/// How often one client's refusals reach stderr.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// Most client addresses remembered for the stderr summary.
const MAX_CLIENTS: usize = 4096;

/// The journal of refusals. Cheap to clone.
#[derive(Clone)]
pub struct Refusals {
    hub: Hub,
    recent: Arc<Mutex<HashMap<Option<IpAddr>, Recent>>>,
}

/// When a client's refusal was last printed, and how many since.
struct Recent {
    printed: Instant,
    unprinted: u64,
}

/// What is recorded of a refused request.
pub struct Seen<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request path (never the query: it may carry secrets).
    pub path: &'a str,
    /// The peer address, if the request came from a socket.
    pub client: Option<SocketAddr>,
    /// The request's `User-Agent`.
    pub user_agent: Option<&'a HeaderValue>,
}

impl Refusals {
    /// Refusals journaled in `hub`'s journal.
    pub fn new(hub: Hub) -> Refusals {
        Refusals { hub, recent: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// Records `response` if it is a refusal.
    pub fn observe(&self, seen: &Seen<'_>, response: &Response) {
        let status = response.status();
        if !is_refusal(status) {
            return;
        }
        let reason = response.extensions().get::<Reason>().map_or_else(|| generic(status), |r| r.0);
        self.record(seen, status, reason);
    }

    fn record(&self, seen: &Seen<'_>, status: StatusCode, reason: &str) {
        // A user agent is the client's to choose: bounded, and only as text.
        let user_agent =
            seen.user_agent.and_then(|v| v.to_str().ok()).map(|ua| ua.chars().take(256).collect::<String>());
        let client = seen.client.map(|a| a.to_string());
        self.hub.event(
            "http_refused",
            json!({
                "status": status.as_u16(),
                "reason": reason,
                "method": seen.method.as_str(),
                "path": seen.path.chars().take(512).collect::<String>(),
                "client": client,
                "user_agent": user_agent,
            }),
        );
        if let Some(unprinted) = self.due(seen.client.map(|a| a.ip()), Instant::now()) {
            let more = if unprinted > 0 {
                format!(" ({unprinted} more from this client in the last minute)")
            } else {
                String::new()
            };
            tracing::warn!(
                "refused {} {} from {}: {} {reason}{more}; user agent {:?}",
                seen.method,
                seen.path,
                client.as_deref().unwrap_or("an unknown address"),
                status.as_u16(),
                user_agent.as_deref().unwrap_or(""),
            );
        }
    }

    /// Whether a refusal from `ip` is printed now, with the count of those not printed since
    /// the last one.
    fn due(&self, ip: Option<IpAddr>, now: Instant) -> Option<u64> {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() >= MAX_CLIENTS && !recent.contains_key(&ip) {
            recent.retain(|_, r| now.saturating_duration_since(r.printed) < SUMMARY_EVERY);
        }
        match recent.get_mut(&ip) {
            Some(r) if now.saturating_duration_since(r.printed) < SUMMARY_EVERY => {
                r.unprinted += 1;
                None
            }
            Some(r) => {
                let n = r.unprinted;
                *r = Recent { printed: now, unprinted: 0 };
                Some(n)
            }
            None => {
                if recent.len() < MAX_CLIENTS {
                    recent.insert(ip, Recent { printed: now, unprinted: 0 });
                }
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_at_most_once_per_client_per_minute() {
        let r = Refusals::new(Hub::new(vec![], bastion_policy::audit::AuditLog::disabled(), false));
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        let t = Instant::now();
        assert_eq!(r.due(a, t), Some(0));
        assert_eq!(r.due(a, t + Duration::from_secs(1)), None);
        assert_eq!(r.due(a, t + Duration::from_secs(59)), None);
        assert_eq!(r.due(b, t + Duration::from_secs(2)), Some(0), "per client");
        assert_eq!(r.due(a, t + Duration::from_secs(61)), Some(2), "with the count not printed");
        assert_eq!(r.due(a, t + Duration::from_secs(62)), None);
    }

    #[test]
    fn reasons() {
        assert!(is_refusal(StatusCode::UNSUPPORTED_MEDIA_TYPE) && is_refusal(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_refusal(StatusCode::OK) && !is_refusal(StatusCode::INTERNAL_SERVER_ERROR));
        assert_eq!(generic(StatusCode::METHOD_NOT_ALLOWED), "method_not_allowed");
        let r = json_rpc(StatusCode::TOO_MANY_REQUESTS, -32000, "rate_limited", "slow down");
        assert_eq!(r.extensions().get::<Reason>(), Some(&Reason("rate_limited")));
    }
}
