//! `POST /revoke` (RFC 7009).

use super::*;

/// `POST /revoke` (RFC 7009): 200 whether or not the token was known.
pub(super) async fn revoke(State(o): State<OAuth>, body: Bytes) -> Response {
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
