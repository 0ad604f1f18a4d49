//! `GET /authorize` and the consent page, `POST /authorize` (the owner's decision).

use super::*;

/// `GET /authorize` (AS-02, AS-03, AS-06): the client and redirect URI are checked before the
/// browser is sent anywhere; then every other error goes back to the client with `state` and
/// `iss`; a valid request gets the consent page.
pub(super) async fn authorize(State(o): State<OAuth>, RawQuery(query): RawQuery) -> Response {
    let bad = |m: &str| error_page(StatusCode::BAD_REQUEST, "Authorization request refused", m);
    let p = match single_params(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return bad(&e),
    };
    let Some(client_id) = p.get("client_id").filter(|c| !c.is_empty()) else {
        return bad("The request has no client_id.");
    };
    let client = match o.client(client_id).await {
        Ok(c) => c,
        Err(e) => return bad(&format!("The app could not be identified: {e}")),
    };
    let redirect_uri = match p.get("redirect_uri") {
        Some(r) if client.redirect_uris.iter().any(|x| x == r) => r.clone(),
        Some(r) => {
            return bad(&format!("The redirect URI '{r}' is not registered for this app; nothing was sent to it."));
        }
        // Required even when only one is registered: every MCP client sends it, and the token
        // request must repeat it.
        None => return bad("The request has no redirect_uri."),
    };
    // A registered URI passed this check when it was registered; a metadata document's URIs
    // were filtered by it. Checked again all the same: nothing unchecked goes into a Location.
    if let Err(e) = redirect::check(&redirect_uri) {
        return bad(&e);
    }
    if p.get("state").is_some_and(|st| st.len() > MAX_STATE) {
        return bad(&format!("state is longer than {MAX_STATE} characters."));
    }
    let state = p.get("state").cloned();
    let fail = |error: &str, description: &str| {
        o.back(
            StatusCode::FOUND,
            &redirect_uri,
            state.as_deref(),
            &[("error", error), ("error_description", description)],
        )
    };
    if p.get("response_type").map(String::as_str) != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let challenge = match (p.get("code_challenge"), p.get("code_challenge_method").map(String::as_str)) {
        (Some(c), Some("S256")) if secret::valid_challenge(c) => c.clone(),
        (Some(_), Some("S256")) => return fail("invalid_request", "code_challenge is not a base64url SHA-256 value"),
        (None, _) => return fail("invalid_request", "code_challenge is required (PKCE S256)"),
        (Some(_), _) => return fail("invalid_request", "code_challenge_method must be S256"),
    };
    let resource = match p.get("resource").map(|r| o.canonical_resource(r)) {
        None => o.resource().to_owned(),
        Some(Some(canonical)) => canonical.to_owned(),
        Some(None) => return fail("invalid_target", &format!("this server's resource is {}", o.resource())),
    };
    let scopes = requested_scopes(p.get("scope").map(String::as_str), &o.scopes_supported());
    if scopes.is_empty() {
        return fail("invalid_scope", "the hub offers no tools yet; try again when its upstreams are ready");
    }
    let (id, csrf) = match (secret::random_secret(""), secret::random_secret("")) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Server error", "No randomness available."),
    };
    let t = o.now();
    let pending = Pending {
        csrf,
        client,
        redirect_uri,
        state,
        challenge,
        resource,
        scopes,
        created: t,
        failures: 0,
        locked_until: 0,
    };
    {
        let mut all = lock(&o.inner.pending);
        all.retain(|_, p| p.created + PENDING_TTL > t);
        if all.len() >= MAX_PENDING {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "Too many authorizations are waiting; try later.",
            );
        }
        all.insert(id.clone(), pending.clone());
    }
    if pending.client.source == Source::Dynamic {
        let cid = pending.client.id.clone();
        let _ = o.db(move |s| s.touch_client(&cid, t)).await;
    }
    consent_page(&o, &id, &pending, StatusCode::OK, None, None)
}

fn consent_page(
    o: &OAuth,
    id: &str,
    p: &Pending,
    status: StatusCode,
    message: Option<&str>,
    retry_after: Option<u64>,
) -> Response {
    let scopes: Vec<(String, String)> = p.scopes.iter().map(|s| (s.clone(), describe_scope(s))).collect();
    let body = html::consent(&html::Consent {
        request: id,
        csrf: &p.csrf,
        client_name: &p.client.name,
        client_id: &p.client.id,
        source: p.client.source.describe(),
        redirect_target: &redirect::display_target(&p.redirect_uri),
        loopback: redirect::check(&p.redirect_uri) == Ok(redirect::Kind::Loopback),
        scopes: &scopes,
        message,
        issuer: o.issuer(),
    });
    let mut r = html_response(status, body, redirect::csp_source(&p.redirect_uri).as_deref());
    if let Some(s) = retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// `POST /authorize`: the owner's decision on the consent page.
pub(super) async fn decide(State(o): State<OAuth>, body: Bytes) -> Response {
    let bad = |m: &str| error_page(StatusCode::BAD_REQUEST, "Authorization refused", m);
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut checked: Vec<String> = vec![];
    for (k, v) in url::form_urlencoded::parse(&body) {
        if k == "scope" {
            checked.push(v.into_owned());
        } else {
            fields.insert(k.into_owned(), v.into_owned());
        }
    }
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let id = get("request").to_owned();
    let t = o.now();
    let pending = lock(&o.inner.pending).get(&id).filter(|p| p.created + PENDING_TTL > t).cloned();
    let Some(p) = pending else {
        return bad("This authorization request has expired or was already decided. Start again from the app.");
    };
    if !secret::ct_eq(get("csrf").as_bytes(), p.csrf.as_bytes()) {
        return bad("The form does not belong to this authorization request. Start again from the app.");
    }
    let deny = |o: &OAuth| {
        if lock(&o.inner.pending).remove(&id).is_none() {
            return bad("This authorization request was already decided.");
        }
        o.back(StatusCode::SEE_OTHER, &p.redirect_uri, p.state.as_deref(), &[("error", "access_denied")])
    };
    match get("decision") {
        "deny" => return deny(&o),
        "approve" => {}
        _ => return consent_page(&o, &id, &p, StatusCode::BAD_REQUEST, Some("Choose Approve or Deny."), None),
    }
    let locked_message = |wait: u64| {
        format!(
            "Too many wrong owner secrets: approvals are locked for {} more. Nothing was approved.",
            humantime::format_duration(Duration::from_secs(wait))
        )
    };
    if p.locked_until > t {
        let wait = p.locked_until - t;
        return consent_page(&o, &id, &p, StatusCode::TOO_MANY_REQUESTS, Some(&locked_message(wait)), Some(wait));
    }
    // The lockout is checked, the secret compared and a failure counted under one lock, so
    // parallel attempts cannot get more than five guesses past it.
    let given = get("owner_secret").to_owned();
    let inner = o.inner.clone();
    let verdict = tokio::task::spawn_blocking(move || {
        let mut lockout = lock(&inner.lockout);
        if let Some(wait) = lockout.retry_after(t) {
            return Verdict::Locked(wait);
        }
        match lock(&inner.store).check_owner_secret(&given) {
            Ok(Some(true)) => Verdict::Right,
            Ok(Some(false)) => Verdict::Wrong(lockout.fail(t)),
            Ok(None) => Verdict::NoSecret,
            Err(e) => Verdict::Failed(e.to_string()),
        }
    })
    .await
    .unwrap_or_else(|e| Verdict::Failed(e.to_string()));
    match verdict {
        Verdict::Right => {}
        Verdict::Locked(wait) => {
            return consent_page(&o, &id, &p, StatusCode::TOO_MANY_REQUESTS, Some(&locked_message(wait)), Some(wait));
        }
        Verdict::Wrong(left_hub) => {
            let left_request = {
                let mut all = lock(&o.inner.pending);
                match all.get_mut(&id) {
                    Some(q) => {
                        q.failures += 1;
                        if q.failures >= LOCK_AFTER {
                            q.locked_until = t + LOCK_WINDOW;
                        }
                        LOCK_AFTER.saturating_sub(q.failures)
                    }
                    None => 0,
                }
            };
            let left = left_hub.min(left_request);
            tracing::warn!(client = %p.client.name, "wrong owner secret on the consent page");
            if left == 0 {
                let m = "Wrong owner secret. Too many wrong attempts: approvals are locked for 15 minutes.";
                return consent_page(&o, &id, &p, StatusCode::TOO_MANY_REQUESTS, Some(m), Some(LOCK_WINDOW));
            }
            let m = format!("Wrong owner secret. {left} attempt(s) left before approvals are locked for 15 minutes.");
            return consent_page(&o, &id, &p, StatusCode::UNAUTHORIZED, Some(&m), None);
        }
        Verdict::NoSecret => {
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "No owner secret",
                "This hub has no owner secret. Run `bastion owner-secret` on the hub's machine.",
            );
        }
        Verdict::Failed(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Server error", &e),
    }
    let granted: Vec<&String> = p.scopes.iter().filter(|s| checked.contains(s)).collect();
    if granted.is_empty() {
        return deny(&o);
    }
    // The consent page offered only scopes of this hub; parsed here, where the grant is written.
    let granted = match crate::scope::parse_all(&granted) {
        Ok(g) => g,
        Err(e) => return bad(&e.to_string()),
    };
    if lock(&o.inner.pending).remove(&id).is_none() {
        return bad("This authorization request was already decided.");
    }
    let code = match secret::random_secret(crate::store::CODE_PREFIX) {
        Ok(c) => c,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Server error", &e),
    };
    let grant = CodeGrant {
        client_id: p.client.id.clone(),
        client_name: p.client.name.clone(),
        redirect_uri: p.redirect_uri.clone(),
        challenge: p.challenge.clone(),
        resource: p.resource.clone(),
        scopes: granted,
    };
    let expires = t + o.inner.lifetimes.code.as_secs();
    let stored = code.clone();
    match o.db(move |s| s.insert_code(&stored, &grant, expires)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Server error", &e.to_string()),
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Server error", &e),
    }
    tracing::info!(client = %p.client.name, "authorization approved");
    o.back(StatusCode::SEE_OTHER, &p.redirect_uri, p.state.as_deref(), &[("code", &code)])
}
