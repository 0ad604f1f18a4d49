//! The authorization server through its HTTP interface (the axum router, no listener), with an
//! injected clock and metadata fetcher. Test names carry the checklist item they cover.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use bastion_auth::net::Fetched;
use bastion_auth::secret::s256;
use bastion_auth::{Fetcher, OAuth, Refusal, Settings, StaticClient};
use serde_json::{Value, json};
use tower::ServiceExt;

const ISSUER: &str = "https://hub.example.com";
const RESOURCE: &str = "https://hub.example.com/mcp";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHATGPT_CB: &str = "https://chatgpt.com/connector_platform_oauth_redirect";
const CHATGPT_CIMD: &str = "https://chatgpt.com/oauth/client.json";
const T0: u64 = 1_800_000_000;

struct Hub {
    oauth: OAuth,
    app: Router,
    clock: Arc<AtomicU64>,
    fetches: Arc<AtomicUsize>,
    secret: String,
    dir: tempfile::TempDir,
}

fn scopes() -> Vec<String> {
    ["fs:read", "fs:write", "git:read", "shell:exec"].map(String::from).to_vec()
}

/// A fetcher serving ChatGPT's document, and a bad one at any other URL; counts its calls.
fn fake_fetcher(count: Arc<AtomicUsize>) -> Fetcher {
    Arc::new(move |url, _policy| {
        count.fetch_add(1, Ordering::SeqCst);
        let body = if url.as_str() == CHATGPT_CIMD {
            json!({
                "client_id": CHATGPT_CIMD,
                "client_name": "ChatGPT",
                "redirect_uris": [CHATGPT_CB],
                "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
            })
        } else {
            json!({"client_id": "https://elsewhere.example/client.json", "client_name": "X", "redirect_uris": [CHATGPT_CB]})
        };
        Box::pin(async move { Ok(Fetched { body: body.to_string().into_bytes(), cache_for: 300 }) })
    })
}

fn settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings::new(&format!("{ISSUER}/mcp"), dir).unwrap();
    s.clients.push(StaticClient {
        client_id: "static-one".into(),
        client_name: "Static One".into(),
        redirect_uris: vec!["https://static.example/cb".into()],
    });
    s
}

fn hub_in(dir: tempfile::TempDir) -> Hub {
    let clock = Arc::new(AtomicU64::new(T0));
    let fetches = Arc::new(AtomicUsize::new(0));
    let c = clock.clone();
    let (oauth, secret) = OAuth::build(
        settings(dir.path()),
        Arc::new(scopes),
        Arc::new(move || c.load(Ordering::SeqCst)),
        fake_fetcher(fetches.clone()),
    )
    .unwrap();
    let app = oauth.router();
    Hub { oauth, app, clock, fetches, secret: secret.unwrap_or_default(), dir }
}

fn hub() -> Hub {
    hub_in(tempfile::tempdir().unwrap())
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn location(&self) -> Option<url::Url> {
        self.headers.get("location").map(|l| url::Url::parse(l.to_str().unwrap()).unwrap())
    }

    fn query(&self) -> HashMap<String, String> {
        self.location().map(|u| u.query_pairs().into_owned().collect()).unwrap_or_default()
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The value of the hidden input `name` on a consent page.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start =
            self.body.find(&marker).map(|i| i + marker.len()).unwrap_or_else(|| panic!("{name} in {}", self.body));
        self.body[start..].split('"').next().unwrap().to_owned()
    }
}

impl Hub {
    async fn send(&self, req: Request<Body>) -> Reply {
        let r = self.app.clone().oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).unwrap()).await
    }

    async fn form(&self, path: &str, pairs: &[(&str, &str)]) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        self.send(
            Request::post(path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    async fn register(&self, body: Value) -> Reply {
        self.send(
            Request::post("/register")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    async fn client(&self, redirect: &str) -> String {
        let r = self.register(json!({"client_name": "Test", "redirect_uris": [redirect]})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.json()["client_id"].as_str().unwrap().to_owned()
    }

    async fn authorize(&self, params: &[(&str, &str)]) -> Reply {
        let q = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        self.get(&format!("/authorize?{q}")).await
    }

    async fn consent(&self, client_id: &str, redirect: &str, scope: &str) -> Reply {
        let challenge = s256(VERIFIER);
        let r = self
            .authorize(&[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", redirect),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("state", "st-1"),
                ("scope", scope),
                ("resource", RESOURCE),
            ])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r
    }

    async fn submit(&self, page: &Reply, secret: &str, scopes: &[&str], decision: &str) -> Reply {
        let (request, csrf) = (page.hidden("request"), page.hidden("csrf"));
        let mut pairs = vec![("request", request.as_str()), ("csrf", csrf.as_str()), ("owner_secret", secret)];
        pairs.extend(scopes.iter().map(|s| ("scope", *s)));
        pairs.push(("decision", decision));
        self.form("/authorize", &pairs).await
    }

    async fn code(&self, client_id: &str, redirect: &str, scopes: &[&str]) -> String {
        let page = self.consent(client_id, redirect, &scopes.join(" ")).await;
        let r = self.submit(&page, &self.secret.clone(), scopes, "approve").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        r.query()["code"].clone()
    }

    async fn exchange(&self, client_id: &str, redirect: &str, code: &str) -> Reply {
        self.form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("client_id", client_id),
                ("redirect_uri", redirect),
                ("code_verifier", VERIFIER),
                ("resource", RESOURCE),
            ],
        )
        .await
    }

    async fn tokens(&self, client_id: &str, redirect: &str, scopes: &[&str]) -> Value {
        let code = self.code(client_id, redirect, scopes).await;
        let r = self.exchange(client_id, redirect, &code).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.json()
    }

    async fn refresh(&self, client_id: &str, token: &str) -> Reply {
        self.form("/token", &[("grant_type", "refresh_token"), ("refresh_token", token), ("client_id", client_id)])
            .await
    }

    fn advance(&self, secs: u64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

/// RS-01, AS-01, CG-06: a PRM document for each URL of the one endpoint (RFC 9728 §3.3: its
/// `resource` is the URL it was made from, `/mcp` or the root), otherwise the same; AS metadata
/// under both names.
#[tokio::test]
async fn rs01_as01_discovery_documents() {
    let h = hub();
    let prm = h.get("/.well-known/oauth-protected-resource/mcp").await;
    let root = h.get("/.well-known/oauth-protected-resource").await;
    assert_eq!(prm.status, StatusCode::OK);
    assert_eq!(root.status, StatusCode::OK);
    let mut root = root.json();
    assert_eq!(root["resource"], format!("{ISSUER}/"));
    root["resource"] = json!(RESOURCE);
    assert_eq!(prm.json(), root, "the same document but for `resource`");
    let p = prm.json();
    assert_eq!(p["resource"], RESOURCE);
    assert_eq!(p["authorization_servers"], json!([ISSUER]));
    assert_eq!(p["bearer_methods_supported"], json!(["header"]));
    assert_eq!(p["resource_name"], "Bastion");
    assert_eq!(p["scopes_supported"], json!(scopes()));
    let m = h.get("/.well-known/oauth-authorization-server").await.json();
    assert_eq!(m, h.get("/.well-known/openid-configuration").await.json());
    assert_eq!(m["issuer"], ISSUER);
    for (k, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("registration_endpoint", "/register"),
        ("revocation_endpoint", "/revoke"),
    ] {
        assert_eq!(m[k], format!("{ISSUER}{path}"));
    }
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!(["none", "client_secret_basic", "client_secret_post"])
    );
    assert_eq!(m["grant_types_supported"], json!(["authorization_code", "refresh_token", "client_credentials"]));
    assert_eq!(m["client_id_metadata_document_supported"], true);
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert_eq!(m["scopes_supported"], p["scopes_supported"]);
    assert!(!m.to_string().contains("offline_access"));
    // Browser-based clients may read the JSON endpoints; the consent page is not for them.
    assert_eq!(prm.header("access-control-allow-origin"), "*");
    let pre = h.send(Request::options("/token").body(Body::empty()).unwrap()).await;
    assert_eq!(pre.status, StatusCode::NO_CONTENT);
    assert_eq!(pre.header("access-control-allow-origin"), "*");
    assert!(pre.header("access-control-allow-headers").contains("content-type"));
    let page = h.authorize(&[("client_id", "x")]).await;
    assert_eq!(page.header("access-control-allow-origin"), "");
    // RS-03: the challenge.
    let challenge = |r| {
        bastion_auth::challenge::oauth(&h.oauth.resource_metadata_url(), &h.oauth.scopes_supported(), r)
            .www_authenticate
    };
    assert_eq!(
        challenge(None),
        format!(
            "Bearer resource_metadata=\"{ISSUER}/.well-known/oauth-protected-resource/mcp\", scope=\"fs:read fs:write git:read shell:exec\""
        )
    );
    assert!(
        challenge(Some(Refusal::Expired)).ends_with(", error=\"invalid_token\", error_description=\"token expired\"")
    );
}

/// AS-02..AS-09, CU-01: Cursor's registration, consent with a narrowed scope, code, token,
/// access, refresh, revocation.
#[tokio::test]
async fn as04_as06_as07_whole_flow_with_cursor_registration() {
    let h = hub();
    let uris = json!([
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "https://www.cursor.com/agents/mcp/oauth/callback",
        "http://localhost:8787/callback"
    ]);
    let r = h
        .register(json!({"client_name": "Cursor", "redirect_uris": uris, "token_endpoint_auth_method": "client_secret_post", "application_type": "native"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let reg = r.json();
    assert_eq!(reg["redirect_uris"], uris);
    assert_eq!(reg["token_endpoint_auth_method"], "none");
    assert!(reg.get("client_secret").is_none());
    assert_eq!(r.header("cache-control"), "no-store");
    let id = s(&reg["client_id"]).to_owned();
    let cb = "cursor://anysphere.cursor-mcp/oauth/callback";

    let page = h.consent(&id, cb, "fs:read fs:write").await;
    assert!(page.header("content-type").starts_with("text/html"));
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert_eq!(page.header("cache-control"), "no-store");
    assert_eq!(page.header("referrer-policy"), "no-referrer");
    assert_eq!(
        page.header("content-security-policy"),
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' cursor:; frame-ancestors 'none'"
    );
    assert!(page.body.contains("Cursor") && page.body.contains("cursor://anysphere.cursor-mcp"));
    assert!(page.body.contains("dynamic client registration"));
    assert!(page.body.contains("value=\"fs:read\"") && page.body.contains("value=\"fs:write\""));
    assert!(!page.body.contains("value=\"shell:exec\""));

    // Only fs:read stays ticked.
    let r = h.submit(&page, &h.secret.clone(), &["fs:read"], "approve").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let loc = r.location().unwrap();
    assert!(loc.as_str().starts_with("cursor://anysphere.cursor-mcp/oauth/callback?code=bac_"), "{loc}");
    let q = r.query();
    assert_eq!((q["state"].as_str(), q["iss"].as_str()), ("st-1", ISSUER));
    // Single use once decided.
    let again = h.submit(&page, &h.secret.clone(), &["fs:read"], "approve").await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.location().is_none());

    let t = h.exchange(&id, cb, &q["code"]).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    assert_eq!(t.header("cache-control"), "no-store");
    assert_eq!(t.header("pragma"), "no-cache");
    let tok = t.json();
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["expires_in"], 3600);
    assert_eq!(tok["scope"], "fs:read");
    assert!(s(&tok["access_token"]).starts_with("bat_") && s(&tok["refresh_token"]).starts_with("brt_"));
    let access = h.oauth.verify(s(&tok["access_token"])).await.unwrap();
    assert_eq!(bastion_auth::scope::join(&access.scopes), "fs:read");
    assert_eq!(access.client_name, "Cursor");
    assert_eq!(h.oauth.verify("bst_not_mine").await, Err(Refusal::Unknown));

    // Refresh rotates; narrowing on refresh.
    let r = h.refresh(&id, s(&tok["refresh_token"])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let tok2 = r.json();
    assert_ne!(tok2["refresh_token"], tok["refresh_token"]);
    // Revocation: always 200; a refresh token takes the family.
    assert_eq!(h.form("/revoke", &[("token", "brt_unknown")]).await.status, StatusCode::OK);
    assert_eq!(h.form("/revoke", &[("token", s(&tok2["refresh_token"]))]).await.status, StatusCode::OK);
    assert_eq!(h.oauth.verify(s(&tok2["access_token"])).await, Err(Refusal::Revoked));
    assert_eq!(h.oauth.verify(s(&tok["access_token"])).await, Err(Refusal::Revoked));
    assert_eq!(h.form("/revoke", &[]).await.status, StatusCode::BAD_REQUEST);
}

/// AS-03, AS-06: an unknown client or an unregistered redirect gets an error page, never a
/// redirect.
#[tokio::test]
async fn as03_no_redirect_to_unverified_places() {
    let h = hub();
    let id = h.client("https://good.example/cb").await;
    let challenge = s256(VERIFIER);
    for (why, client, redirect) in [
        ("unregistered", id.as_str(), Some("https://evil.example/cb")),
        ("prefix", id.as_str(), Some("https://good.example/cb/x")),
        ("query", id.as_str(), Some("https://good.example/cb?x=1")),
        ("missing", id.as_str(), None),
        ("unknown client", "bcl_nope", Some("https://good.example/cb")),
        ("metadata client_id mismatch", "https://evil.example/client.json", Some(CHATGPT_CB)),
    ] {
        let mut p = vec![
            ("response_type", "code"),
            ("client_id", client),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "s"),
        ];
        if let Some(r) = redirect {
            p.push(("redirect_uri", r));
        }
        let r = h.authorize(&p).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{why}: {}", r.body);
        assert!(r.location().is_none(), "{why}");
        assert!(r.header("content-type").starts_with("text/html"), "{why}");
        assert!(r.header("content-security-policy").contains("default-src 'none'"));
    }
    let r = h.authorize(&[("client_id", "x"), ("client_id", "y")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// AS-02, AS-08, RS-05: errors after the redirect URI is known go back with state and iss.
#[tokio::test]
async fn as02_as08_error_redirects_carry_state_and_iss() {
    let h = hub();
    let id = h.client(CHATGPT_CB).await;
    let ch = s256(VERIFIER);
    let base =
        vec![("response_type", "code"), ("client_id", id.as_str()), ("redirect_uri", CHATGPT_CB), ("state", "xyz")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut p = base.clone();
        p.extend_from_slice(extra);
        p
    };
    let ch: &'static str = Box::leak(ch.into_boxed_str());
    for (why, params, error) in [
        ("no challenge", with(&[]), "invalid_request"),
        ("plain", with(&[("code_challenge", ch), ("code_challenge_method", "plain")]), "invalid_request"),
        ("no method", with(&[("code_challenge", ch)]), "invalid_request"),
        ("malformed", with(&[("code_challenge", "short"), ("code_challenge_method", "S256")]), "invalid_request"),
        (
            "other resource",
            with(&[
                ("code_challenge", ch),
                ("code_challenge_method", "S256"),
                ("resource", "https://other.example/mcp"),
            ]),
            "invalid_target",
        ),
    ] {
        let r = h.authorize(&params).await;
        assert_eq!(r.status, StatusCode::FOUND, "{why}: {}", r.body);
        let q = r.query();
        assert!(r.location().unwrap().as_str().starts_with(CHATGPT_CB), "{why}");
        assert_eq!(q.get("error").map(String::as_str), Some(error), "{why}");
        assert_eq!(q.get("state").map(String::as_str), Some("xyz"), "{why}");
        assert_eq!(q.get("iss").map(String::as_str), Some(ISSUER), "{why}");
    }
    let mut p = base.clone();
    p[0] = ("response_type", "token");
    assert_eq!(h.authorize(&p).await.query()["error"], "unsupported_response_type");
    // The resource with a trailing slash, or none at all, is the canonical one; so is the root
    // URL, the same endpoint (served at `/` too).
    for res in [Some("https://hub.example.com/mcp/"), None, Some("https://hub.example.com/"), Some(ISSUER)] {
        let mut p = with(&[("code_challenge", ch), ("code_challenge_method", "S256")]);
        if let Some(r) = res {
            p.push(("resource", r));
        }
        assert_eq!(h.authorize(&p).await.status, StatusCode::OK);
    }
    // Without state, no state comes back.
    let r = h.authorize(&[("response_type", "code"), ("client_id", &id), ("redirect_uri", CHATGPT_CB)]).await;
    assert!(!r.query().contains_key("state") && r.query()["iss"] == ISSUER);
}

/// AS-06: deny, and approve with nothing ticked, both end in access_denied.
#[tokio::test]
async fn as06_deny_and_empty_approval() {
    let h = hub();
    let id = h.client(CHATGPT_CB).await;
    for (decision, scopes) in [("deny", vec!["fs:read"]), ("approve", vec![])] {
        let page = h.consent(&id, CHATGPT_CB, "fs:read").await;
        let r = h.submit(&page, &h.secret.clone(), &scopes, decision).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{decision}");
        let q = r.query();
        assert_eq!(q["error"], "access_denied");
        assert_eq!(q["state"], "st-1");
        assert_eq!(q["iss"], ISSUER);
        assert!(!q.contains_key("code"));
    }
    // A forged csrf is refused without deciding.
    let page = h.consent(&id, CHATGPT_CB, "fs:read").await;
    let r = h
        .form(
            "/authorize",
            &[
                ("request", &page.hidden("request")),
                ("csrf", "forged"),
                ("owner_secret", &h.secret),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.submit(&page, &h.secret.clone(), &["fs:read"], "approve").await.status, StatusCode::SEE_OTHER);
    // A page older than 10 minutes is gone.
    let page = h.consent(&id, CHATGPT_CB, "fs:read").await;
    h.advance(601);
    assert_eq!(h.submit(&page, &h.secret.clone(), &["fs:read"], "approve").await.status, StatusCode::BAD_REQUEST);
}

/// AS-06: wrong owner secrets: 401 four times, then a 429 lockout that refuses even the right
/// secret until 15 minutes have passed.
#[tokio::test]
async fn as06_wrong_owner_secret_then_lockout() {
    let h = hub();
    let id = h.client(CHATGPT_CB).await;
    let spare = h.consent(&id, CHATGPT_CB, "fs:read").await;
    let mut statuses = vec![];
    for i in 0..5 {
        let page = h.consent(&id, CHATGPT_CB, "fs:read").await;
        let r = h.submit(&page, &format!("bos_wrong{i}"), &["fs:read"], "approve").await;
        assert!(r.location().is_none());
        assert!(r.body.contains("Wrong owner secret"));
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429]);
    let r = h.submit(&spare, &h.secret.clone(), &["fs:read"], "approve").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.location().is_none());
    assert!(r.header("retry-after").parse::<u64>().unwrap() > 0);
    h.advance(14 * 60);
    let page = h.consent(&id, CHATGPT_CB, "fs:read").await;
    assert_eq!(h.submit(&page, &h.secret.clone(), &["fs:read"], "approve").await.status, StatusCode::TOO_MANY_REQUESTS);
    h.advance(61);
    assert_eq!(h.submit(&page, &h.secret.clone(), &["fs:read"], "approve").await.status, StatusCode::SEE_OTHER);
}

/// AS-07: token endpoint errors, code replay revoking the tokens, and PKCE at the token.
#[tokio::test]
async fn as07_token_endpoint_errors_and_replay() {
    let h = hub();
    let cb = "http://127.0.0.1:9/cb";
    let id = h.client(cb).await;
    let code = h.code(&id, cb, &["fs:read"]).await;
    let err = |r: &Reply| (r.status.as_u16(), r.json()["error"].as_str().unwrap_or("").to_owned());
    assert_eq!(err(&h.exchange("bcl_nope", cb, &code).await), (401, "invalid_client".into()));
    let other = h.client(cb).await;
    assert_eq!(err(&h.exchange(&other, cb, &code).await), (400, "invalid_grant".into()));
    let wrong_verifier = h
        .form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", &id),
                ("redirect_uri", cb),
                ("code_verifier", &"a".repeat(43)),
            ],
        )
        .await;
    assert_eq!(err(&wrong_verifier), (400, "invalid_grant".into()));
    let r = h.form("/token", &[("grant_type", "password"), ("client_id", &id)]).await;
    assert_eq!(err(&r), (400, "unsupported_grant_type".into()));
    // A public client has no secret: client credentials are refused as client authentication.
    let r = h.form("/token", &[("grant_type", "client_credentials"), ("client_id", &id)]).await;
    assert_eq!(err(&r), (401, "invalid_client".into()));
    let r = h.form("/token", &[("grant_type", "authorization_code"), ("client_id", &id), ("client_id", &id)]).await;
    assert_eq!(err(&r), (400, "invalid_request".into()));
    assert_eq!(r.header("content-type"), "application/json");

    let first = h.exchange(&id, cb, &code).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let access = s(&first.json()["access_token"]).to_owned();
    assert!(h.oauth.verify(&access).await.is_ok());
    assert_eq!(err(&h.exchange(&id, cb, &code).await), (400, "invalid_grant".into()));
    assert_eq!(h.oauth.verify(&access).await, Err(Refusal::Revoked), "the replay revoked the first tokens");
    // An expired code.
    let code = h.code(&id, cb, &["fs:read"]).await;
    h.advance(601);
    assert_eq!(err(&h.exchange(&id, cb, &code).await), (400, "invalid_grant".into()));
}

/// AS-09, RS-05: reuse of a rotated refresh token revokes the family; access tokens expire.
#[tokio::test]
async fn as09_refresh_reuse_and_expiry() {
    let h = hub();
    let cb = "http://127.0.0.1:9/cb";
    let id = h.client(cb).await;
    let first = h.tokens(&id, cb, &["fs:read", "git:read"]).await;
    let second = h.refresh(&id, s(&first["refresh_token"])).await.json();
    let third = h.refresh(&id, s(&second["refresh_token"])).await.json();
    assert!(h.oauth.verify(s(&third["access_token"])).await.is_ok());
    let reuse = h.refresh(&id, s(&first["refresh_token"])).await;
    assert_eq!((reuse.status, reuse.json()["error"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_grant")));
    assert_eq!(h.oauth.verify(s(&third["access_token"])).await, Err(Refusal::Revoked));
    assert_eq!(h.refresh(&id, s(&third["refresh_token"])).await.status, StatusCode::BAD_REQUEST);
    // An unrelated grant is untouched; its access token expires after an hour.
    let other = h.tokens(&id, cb, &["fs:read"]).await;
    h.advance(3599);
    assert!(h.oauth.verify(s(&other["access_token"])).await.is_ok());
    h.advance(1);
    assert_eq!(h.oauth.verify(s(&other["access_token"])).await, Err(Refusal::Expired));
    let fresh = h.refresh(&id, s(&other["refresh_token"])).await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert!(h.oauth.verify(s(&fresh.json()["access_token"])).await.is_ok());
    // A refresh from another client, or for another resource.
    let r = h.refresh("bcl_nope", s(&fresh.json()["refresh_token"])).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = h
        .form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", s(&fresh.json()["refresh_token"])),
                ("client_id", &id),
                ("resource", "https://other.example/mcp"),
            ],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_target");
}

/// AS-05, CG-04: ChatGPT's metadata document reaches the consent page; the document is
/// cached; the flow completes with the URL as client_id.
#[tokio::test]
async fn as05_chatgpt_metadata_document_flow() {
    let h = hub();
    let page = h.consent(CHATGPT_CIMD, CHATGPT_CB, "fs:read").await;
    assert!(page.body.contains("ChatGPT") && page.body.contains("chatgpt.com"));
    assert!(page.body.contains("client metadata document"));
    assert!(page.header("content-security-policy").contains("form-action 'self' https://chatgpt.com;"));
    h.consent(CHATGPT_CIMD, CHATGPT_CB, "fs:read").await;
    assert_eq!(h.fetches.load(Ordering::SeqCst), 1, "cached");
    let tok = h.tokens(CHATGPT_CIMD, CHATGPT_CB, &["fs:read"]).await;
    assert_eq!(h.oauth.verify(s(&tok["access_token"])).await.unwrap().client_name, "ChatGPT");
    // A document that names another client_id is refused every time (errors are not cached).
    let bad = "https://evil.example/client.json";
    for _ in 0..2 {
        let r = h.authorize(&[("response_type", "code"), ("client_id", bad), ("redirect_uri", CHATGPT_CB)]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.body.contains("is not its URL"), "{}", r.body);
    }
    assert_eq!(h.fetches.load(Ordering::SeqCst), 3);
}

/// AS-05: with the real fetcher, metadata URLs on private addresses end on an error page.
#[tokio::test]
async fn as05_private_metadata_urls_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (oauth, _) = OAuth::open(settings(dir.path()), Arc::new(scopes)).unwrap();
    let app = oauth.router();
    for id in ["https://127.0.0.1/client.json", "https://[::1]/c.json", "https://169.254.169.254/latest/c.json"] {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("response_type", "code"), ("client_id", id), ("redirect_uri", CHATGPT_CB)])
            .finish();
        let r =
            app.clone().oneshot(Request::get(format!("/authorize?{q}")).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{id}");
        assert!(r.headers().get("location").is_none());
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("must be public"), "{id}");
    }
}

/// AS-06: a hostile client name is escaped on the consent page; a loopback redirect warns.
#[tokio::test]
async fn as06_hostile_client_name_is_escaped() {
    let h = hub();
    let r = h
        .register(json!({"client_name": "<script>alert(1)</script>", "redirect_uris": ["http://127.0.0.1:5/cb"]}))
        .await;
    let id = s(&r.json()["client_id"]).to_owned();
    let page = h.consent(&id, "http://127.0.0.1:5/cb", "fs:read").await;
    assert!(!page.body.contains("<script>alert(1)"));
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.body.contains("Warning:"), "loopback warning");
    assert!(page.body.contains("127.0.0.1:5"));
    assert!(page.header("content-security-policy").contains("form-action 'self' http://127.0.0.1:5;"));
    // A static client from the configuration.
    let page = h.consent("static-one", "https://static.example/cb", "fs:read").await;
    assert!(page.body.contains("Static One") && page.body.contains("configured by the hub"));
    assert!(!page.body.contains("Warning:"));
}

/// AS-04: registration errors are JSON 400s; registrations are rate limited.
#[tokio::test]
async fn as04_registration_errors_and_rate_limit() {
    let h = hub();
    for body in [
        json!({"redirect_uris": ["http://evil.example/cb"]}),
        json!({"redirect_uris": ["javascript:alert(1)"]}),
        json!({"redirect_uris": ["https://a.example/cb#f"]}),
        json!({"redirect_uris": [CHATGPT_CB, "http://evil.example/cb"]}),
        json!({"redirect_uris": []}),
        json!({"client_name": "no uris"}),
    ] {
        let r = h.register(body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.json()["error"], "invalid_redirect_uri", "{body}");
    }
    let r = h.send(Request::post("/register").body(Body::from("not json")).unwrap()).await;
    assert_eq!(r.json()["error"], "invalid_client_metadata");
    // Refused requests do not count: 60 registrations succeed, the next is refused.
    for _ in 0..60 {
        assert_eq!(h.register(json!({"redirect_uris": [CHATGPT_CB]})).await.status, StatusCode::CREATED);
    }
    let r = h.register(json!({"redirect_uris": [CHATGPT_CB]})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), "60");
    h.advance(61);
    assert_eq!(h.register(json!({"redirect_uris": [CHATGPT_CB]})).await.status, StatusCode::CREATED);
}

/// Persistence: a new server on the same state directory accepts the old tokens and keeps the
/// owner secret.
#[tokio::test]
async fn state_survives_a_restart() {
    let h = hub();
    let cb = "http://127.0.0.1:9/cb";
    let id = h.client(cb).await;
    let tok = h.tokens(&id, cb, &["fs:read"]).await;
    let secret = h.secret.clone();
    let Hub { oauth, app, dir, .. } = h;
    drop((oauth, app));
    let h = hub_in(dir);
    assert_eq!(h.secret, "", "no new owner secret on restart");
    assert!(h.oauth.verify(s(&tok["access_token"])).await.is_ok());
    assert_eq!(h.refresh(&id, s(&tok["refresh_token"])).await.status, StatusCode::OK);
    let page = h.consent(&id, cb, "fs:read").await;
    assert_eq!(h.submit(&page, &secret, &["fs:read"], "approve").await.status, StatusCode::SEE_OTHER);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(h.dir.path().join(bastion_auth::store::FILE)).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

/// AS-05: the hub fetches at most 30 metadata documents a minute (`/authorize` is public);
/// an over-long `state` is refused before anything else.
#[tokio::test]
async fn as05_fetch_budget_and_state_length() {
    let h = hub();
    let get = |id: String| {
        let h = &h;
        async move { h.authorize(&[("response_type", "code"), ("client_id", &id), ("redirect_uri", CHATGPT_CB)]).await }
    };
    for i in 0..30 {
        let r = get(format!("https://c{i}.example/client.json")).await;
        assert!(r.body.contains("is not its URL"), "{i}: {}", r.body);
    }
    let r = get("https://c31.example/client.json".into()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("too many client metadata documents"), "{}", r.body);
    assert_eq!(h.fetches.load(Ordering::SeqCst), 30);
    h.advance(61);
    assert!(get("https://c32.example/client.json".into()).await.body.contains("is not its URL"));

    let id = h.client(CHATGPT_CB).await;
    let long = "s".repeat(1025);
    let r = h
        .authorize(&[("response_type", "code"), ("client_id", &id), ("redirect_uri", CHATGPT_CB), ("state", &long)])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.location().is_none());
}

/// AS-06: parallel wrong secrets get no more than five guesses past the lockout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as06_parallel_guesses_are_counted() {
    let h = hub();
    let id = h.client(CHATGPT_CB).await;
    let mut forms = vec![];
    for i in 0..12 {
        let page = h.consent(&id, CHATGPT_CB, "fs:read").await;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("request", page.hidden("request").as_str()),
                ("csrf", page.hidden("csrf").as_str()),
                ("owner_secret", &format!("bos_guess{i}")),
                ("scope", "fs:read"),
                ("decision", "approve"),
            ])
            .finish();
        forms.push(body);
    }
    let tasks: Vec<_> = forms
        .into_iter()
        .map(|body| {
            let app = h.app.clone();
            tokio::spawn(async move {
                let req = Request::post("/authorize")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(body))
                    .unwrap();
                app.oneshot(req).await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut statuses = vec![];
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 4, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 8, "{statuses:?}");
}

/// A client given the root URL asks for the root resource at `/authorize` and `/token`; its
/// token is the canonical resource's, so it works at `/mcp` and at `/` alike. A path that is
/// neither is another resource.
#[tokio::test]
async fn root_resource_is_the_same_endpoint() {
    let h = hub();
    let id = h.client(CHATGPT_CB).await;
    let challenge = s256(VERIFIER);
    let authorize = |resource: &'static str| {
        let (id, challenge) = (id.clone(), challenge.clone());
        let h = &h;
        async move {
            h.authorize(&[
                ("response_type", "code"),
                ("client_id", &id),
                ("redirect_uri", CHATGPT_CB),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("scope", "fs:read"),
                ("resource", resource),
            ])
            .await
        }
    };
    let r = authorize("https://hub.example.com/elsewhere").await;
    assert_eq!(r.query()["error"], "invalid_target");
    let page = authorize("https://hub.example.com/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let r = h.submit(&page, &h.secret.clone(), &["fs:read"], "approve").await;
    let code = r.query()["code"].clone();
    let exchange = |resource: &'static str, code: String| {
        let id = id.clone();
        let h = &h;
        async move {
            h.form(
                "/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("client_id", &id),
                    ("redirect_uri", CHATGPT_CB),
                    ("code_verifier", VERIFIER),
                    ("resource", resource),
                ],
            )
            .await
        }
    };
    let r = exchange("https://hub.example.com", code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // verify() checks the token's audience against the canonical resource.
    assert!(h.oauth.verify(s(&r.json()["access_token"])).await.is_ok(), "one audience for both URLs");
}

/// Client credentials at `/token`: a machine client created in the store authenticates with
/// `client_secret_basic` or `client_secret_post` (never both), gets a short-lived access token
/// with at most its scopes and no refresh token, for this hub's resource; a wrong secret or a
/// revoked client is `401 invalid_client`.
#[tokio::test]
async fn client_credentials_grant() {
    use base64::Engine;
    use bastion_auth::store::{SqliteStore, Store};
    let h = hub();
    let (c, secret) = {
        let mut store = SqliteStore::open(h.dir.path()).unwrap();
        let scopes = bastion_auth::scope::parse_list("fs:read build01:fs:write").unwrap();
        store.create_machine_client("ci-runner", &scopes, T0).unwrap()
    };
    let basic = |id: &str, secret: &str| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
    };
    let post = |pairs: &[(&str, &str)], auth: Option<String>| {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        let mut b = Request::post("/token").header("content-type", "application/x-www-form-urlencoded");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(Body::from(body)).unwrap()
    };
    let r = h.send(post(&[("grant_type", "client_credentials")], Some(basic(&c.client_id, &secret)))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let tok = r.json();
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["expires_in"], 600);
    assert_eq!(tok["scope"], "fs:read build01:fs:write");
    assert!(tok.get("refresh_token").is_none(), "{tok}");
    assert_eq!(r.header("cache-control"), "no-store");
    let access = h.oauth.verify(tok["access_token"].as_str().unwrap()).await.unwrap();
    assert_eq!(access.client_name, "ci-runner");

    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", c.client_id.as_str()),
        ("client_secret", secret.as_str()),
        ("scope", "fs:read"),
        ("resource", ISSUER),
    ];
    let r = h.send(post(&form, None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["scope"], "fs:read");

    let err = |r: &Reply| (r.status.as_u16(), r.json()["error"].as_str().unwrap_or("").to_owned());
    let wrong = h.send(post(&[("grant_type", "client_credentials")], Some(basic(&c.client_id, "bcs_no")))).await;
    assert_eq!(err(&wrong), (401, "invalid_client".into()));
    assert!(wrong.header("www-authenticate").starts_with("Basic"));
    let both = h.send(post(&form, Some(basic(&c.client_id, &secret)))).await;
    assert_eq!(err(&both), (401, "invalid_client".into()));
    let wide = [
        ("grant_type", "client_credentials"),
        ("client_id", &c.client_id),
        ("client_secret", &secret),
        ("scope", "*:*"),
    ];
    assert_eq!(err(&h.send(post(&wide, None)).await), (400, "invalid_scope".into()));
    let elsewhere = [
        ("grant_type", "client_credentials"),
        ("client_id", &c.client_id),
        ("client_secret", &secret),
        ("resource", "https://other.example/mcp"),
    ];
    assert_eq!(err(&h.send(post(&elsewhere, None)).await), (400, "invalid_target".into()));

    SqliteStore::open(h.dir.path()).unwrap().revoke_machine_clients("ci-runner", T0).unwrap();
    assert_eq!(h.oauth.verify(tok["access_token"].as_str().unwrap()).await, Err(Refusal::Revoked));
    let r = h.send(post(&[("grant_type", "client_credentials")], Some(basic(&c.client_id, &secret)))).await;
    assert_eq!(err(&r), (401, "invalid_client".into()));
}

/// RFC 8707 and RFC 9728 per profile: `{issuer}/mcp/{profile}` is a resource of its own, with
/// its own metadata document, named by the challenges of its path; an unknown profile is no
/// resource.
#[tokio::test]
async fn a_profile_is_a_resource_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.profiles = vec!["web".into(), "api".into()];
    let (oauth, _) = OAuth::build(s, Arc::new(scopes), Arc::new(|| T0), fake_fetcher(Arc::default())).unwrap();
    let web = format!("{ISSUER}/mcp/web");
    assert_eq!(oauth.canonical_resource(&web), Some(web.as_str()));
    assert_eq!(oauth.canonical_resource(&format!("{web}/")), Some(web.as_str()));
    assert_eq!(oauth.canonical_resource(&format!("{ISSUER}/mcp/nope")), None);
    assert_eq!(oauth.canonical_resource(&format!("{ISSUER}/mcp")), Some(format!("{ISSUER}/mcp").as_str()));
    let at = oauth.endpoint_of("/mcp/api");
    assert_eq!(at, bastion_auth::Endpoint::Profile(1));
    assert_eq!(oauth.resource_at(at), format!("{ISSUER}/mcp/api"));
    assert_eq!(oauth.resource_metadata_url_at(at), format!("{ISSUER}/.well-known/oauth-protected-resource/mcp/api"));
    assert_eq!(oauth.endpoint_of("/mcp/nope"), bastion_auth::Endpoint::Mcp);
    assert_eq!(oauth.endpoint_of("/"), bastion_auth::Endpoint::Root);
    assert!(bastion_auth::is_public_path("/.well-known/oauth-protected-resource/mcp/web"));
    assert!(!bastion_auth::is_public_path("/.well-known/oauth-protected-resource/mcp/web/x"));
    let hub = Hub {
        oauth: oauth.clone(),
        app: oauth.router(),
        clock: Arc::default(),
        fetches: Arc::default(),
        secret: String::new(),
        dir,
    };
    let r = hub.get("/.well-known/oauth-protected-resource/mcp/web").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["resource"], web);
    assert_eq!(hub.get("/.well-known/oauth-protected-resource/mcp/nope").await.status, StatusCode::NOT_FOUND);
}
