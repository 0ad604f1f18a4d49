//! `POST /register`: dynamic client registration (RFC 7591).

use super::*;

/// `POST /register` (AS-04).
pub(super) async fn register(State(o): State<OAuth>, body: Bytes) -> Response {
    let t = o.now();
    let too_many = || {
        let mut r = oauth_error(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "too many registrations; try again in a minute",
        );
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        r
    };
    {
        let mut recent = lock(&o.inner.registrations);
        recent.retain(|x| x + 60 > t);
        if recent.len() >= REGISTRATIONS_PER_MINUTE {
            return too_many();
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
        .db(move |s| -> Result<Option<bool>, StoreError> {
            // Replicas sharing a store share the limit too: counted there, per minute, in one
            // atomic statement (this process's own window below still applies).
            if s.is_shared() && !s.count_registration("register", t - t % 60, REGISTRATIONS_PER_MINUTE as u64)? {
                return Ok(None);
            }
            s.prune_clients(t.saturating_sub(UNUSED_CLIENT_TTL))?;
            if s.client_count()? >= MAX_CLIENTS {
                return Ok(Some(false));
            }
            s.insert_client(&stored, t)?;
            Ok(Some(true))
        })
        .await;
    match result {
        Ok(Ok(Some(true))) => {}
        Ok(Ok(None)) => return too_many(),
        Ok(Ok(Some(false))) => {
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
