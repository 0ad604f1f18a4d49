//! `POST /token`: the authorization code and refresh token grants (public clients), and the
//! client credentials grant (confidential machine clients, `client_secret_basic` or
//! `client_secret_post`).

use super::*;

/// `client_id` from the form, or from HTTP Basic credentials (some clients send it there even
/// as public clients).
fn client_id(p: &HashMap<String, String>, headers: &HeaderMap) -> Option<String> {
    if let Some(c) = p.get("client_id").filter(|c| !c.is_empty()) {
        return Some(c.clone());
    }
    use base64::Engine;
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let id = text.split(':').next()?;
    let id: String = url::form_urlencoded::parse(format!("x={id}").as_bytes()).next()?.1.into_owned();
    (!id.is_empty()).then_some(id)
}

/// The credentials of a confidential client: `client_secret_basic` (RFC 6749 §2.3.1: both
/// halves form-urlencoded, then Base64) or `client_secret_post`; using both at once is an
/// error (§2.3: one method per request).
fn client_secret(p: &HashMap<String, String>, headers: &HeaderMap) -> Result<(String, String), &'static str> {
    use base64::Engine;
    let basic = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, b64) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("basic").then(|| b64.trim().to_owned())
    });
    let posted = p.get("client_secret").filter(|s| !s.is_empty());
    match (basic, posted) {
        (Some(_), Some(_)) => Err("use one client authentication method, not both"),
        (Some(b64), None) => {
            let raw =
                base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| "malformed Basic credentials")?;
            let text = String::from_utf8(raw).map_err(|_| "malformed Basic credentials")?;
            let (id, secret) = text.split_once(':').ok_or("malformed Basic credentials")?;
            let decode = |s: &str| -> String {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .map(|(_, v)| v.into_owned())
                    .next()
                    .unwrap_or_default()
            };
            let (id, secret) = (decode(id), decode(secret));
            if p.get("client_id").is_some_and(|c| *c != id) {
                return Err("client_id differs from the Basic credentials");
            }
            Ok((id, secret))
        }
        (None, Some(secret)) => {
            let id = p.get("client_id").filter(|c| !c.is_empty()).ok_or("client_id is required")?;
            Ok((id.clone(), secret.clone()))
        }
        (None, None) => Err("client authentication is required (client_secret_basic or client_secret_post)"),
    }
}

/// `grant_type=client_credentials` (RFC 6749 §4.4): a machine client's short-lived access
/// token, for this hub's resource, with at most the client's scopes; no refresh token.
async fn client_credentials(o: &OAuth, p: &HashMap<String, String>, headers: &HeaderMap) -> Response {
    let (client_id, secret) = match client_secret(p, headers) {
        Ok(x) => x,
        Err(d) => {
            let mut r = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", d);
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"bastion\""));
            return r;
        }
    };
    let scopes = match p.get("scope").map(|s| crate::scope::parse_list(s)) {
        Some(Ok(v)) => Some(v).filter(|v| !v.is_empty()),
        Some(Err(e)) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &format!("scope '{}' is not a scope", e.0));
        }
        None => None,
    };
    let resource = match p.get("resource") {
        Some(r) => match o.canonical_resource(r) {
            Some(c) => c.to_owned(),
            None => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_target",
                    &format!("resource must be {}", o.resource()),
                );
            }
        },
        None => o.resource().to_owned(),
    };
    let req = ClientCredentials { client_id, secret, scopes, resource };
    let t = o.now();
    let life = o.inner.lifetimes;
    match o.db(move |s| s.client_credentials(&req, t, &life)).await {
        Ok(Ok(i)) => {
            tracing::info!(grant = %i.grant_id, "client credentials token issued");
            json_response(
                StatusCode::OK,
                &json!({
                    "access_token": i.access_token,
                    "token_type": "Bearer",
                    "expires_in": i.expires_in,
                    "scope": crate::scope::join(&i.scopes),
                }),
            )
        }
        Ok(Err(e)) => grant_error(e),
        Err(e) => grant_error(GrantError::Internal(e)),
    }
}

fn grant_error(e: GrantError) -> Response {
    let (error, d) = match e {
        GrantError::InvalidClient(d) => {
            let mut r = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &d);
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"bastion\""));
            return r;
        }
        GrantError::InvalidRequest(d) => ("invalid_request", d),
        GrantError::InvalidGrant(d) => ("invalid_grant", d),
        GrantError::InvalidTarget(d) => ("invalid_target", d),
        GrantError::InvalidScope(d) => ("invalid_scope", d),
        GrantError::Internal(d) => {
            tracing::error!("token endpoint: {d}");
            return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error");
        }
    };
    oauth_error(StatusCode::BAD_REQUEST, error, &d)
}

/// `POST /token` (AS-07, AS-09).
pub(super) async fn token(State(o): State<OAuth>, headers: HeaderMap, body: Bytes) -> Response {
    let p = match single_params(&body) {
        Ok(p) => p,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    if p.get("grant_type").is_some_and(|g| g == "client_credentials") {
        return client_credentials(&o, &p, &headers).await;
    }
    let Some(client_id) = client_id(&p, &headers) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "client_id is required");
    };
    let grant_type = p.get("grant_type").map(String::as_str).unwrap_or("");
    if !matches!(grant_type, "authorization_code" | "refresh_token") {
        let (e, d) = if grant_type.is_empty() {
            ("invalid_request", "grant_type is required".to_owned())
        } else {
            ("unsupported_grant_type", format!("grant_type '{grant_type}' is not supported"))
        };
        return oauth_error(StatusCode::BAD_REQUEST, e, &d);
    }
    if !o.known(&client_id).await {
        // 401 invalid_client makes Claude register again (CL-01).
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client; register again");
    }
    let t = o.now();
    let life = o.inner.lifetimes;
    let result = if grant_type == "authorization_code" {
        let Some(code) = p.get("code").filter(|c| !c.is_empty()) else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "code is required");
        };
        let req = CodeExchange {
            code: code.clone(),
            client_id,
            redirect_uri: p.get("redirect_uri").cloned(),
            verifier: p.get("code_verifier").cloned(),
            resource: requested_resource(&o, &p),
        };
        o.db(move |s| s.exchange_code(&req, t, &life)).await
    } else {
        let Some(token) = p.get("refresh_token").filter(|c| !c.is_empty()) else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "refresh_token is required");
        };
        // A narrowing `scope` is parsed here; one that is not a scope of this hub was never
        // granted.
        let scopes = match p.get("scope").map(|s| crate::scope::parse_list(s)) {
            Some(Ok(v)) => Some(v).filter(|v| !v.is_empty()),
            Some(Err(e)) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    &format!("scope '{}' was not granted", e.0),
                );
            }
            None => None,
        };
        let req = RefreshRequest {
            token: token.clone(),
            client_id,
            scopes,
            resource: requested_resource(&o, &p),
            audience: o.resource().to_owned(),
        };
        o.db(move |s| s.refresh(&req, t, &life)).await
    };
    if result.as_ref().is_ok_and(|r| r.is_ok()) {
        o.prune_hourly(t).await;
    }
    match result {
        Ok(Ok(i)) => json_response(
            StatusCode::OK,
            &json!({
                "access_token": i.access_token,
                "token_type": "Bearer",
                "expires_in": i.expires_in,
                "refresh_token": i.refresh_token,
                "scope": crate::scope::join(&i.scopes),
            }),
        ),
        Ok(Err(e)) => grant_error(e),
        Err(e) => grant_error(GrantError::Internal(e)),
    }
}

/// The `resource` parameter, with either of the hub's endpoints read as the canonical resource
/// (see [`OAuth::canonical_resource`]); anything else as sent, for the store to refuse.
fn requested_resource(o: &OAuth, p: &HashMap<String, String>) -> Option<String> {
    p.get("resource").map(|r| o.canonical_resource(r).unwrap_or(r).to_owned())
}
