//! The route table's unit tests (the guard, the challenges, `/` beside `/mcp`).

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
    for (url, want) in [
        ("hub.example.com", "has no scheme"),
        ("ftp://hub.example.com", "must be http or https"),
        ("https:///mcp", "has no host"),
        ("https:mcp", "has no host"),
        ("https://user@hub.example.com/mcp", "has no host"),
        ("https://user:pw@hub.example.com/mcp", "has no host"),
        ("https://hub.example.com:99999/mcp", "invalid port"),
        ("https://[::1/mcp", "invalid IPv6"),
    ] {
        let e = Allowed::new(Some(url)).unwrap_err();
        assert!(e.contains(want), "{url}: {e}");
    }
}

#[test]
fn public_url_host_and_origin() {
    for (url, host, origin) in [
        ("https://Hub.Example.com/mcp", "hub.example.com", "https://hub.example.com"),
        ("https://hub.example.com:443/mcp", "hub.example.com", "https://hub.example.com"),
        ("https://hub.example.com:8443", "hub.example.com", "https://hub.example.com:8443"),
        ("http://[::1]:9000/mcp", "::1", "http://[::1]:9000"),
        ("http://127.0.0.1:9000", "127.0.0.1", "http://127.0.0.1:9000"),
    ] {
        let a = Allowed::new(Some(url)).unwrap();
        assert_eq!(a.hosts.last().map(String::as_str), Some(host), "{url}");
        assert_eq!(a.origins.last().map(String::as_str), Some(origin), "{url}");
    }
}

mod oauth_mode {
    use super::super::*;
    use axum::body::Body;
    use bastion_auth::store::{CodeExchange, CodeGrant, Lifetimes};
    use bastion_auth::{SqliteStore, Store};
    use tower::ServiceExt;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;

    /// An access token minted straight in the store, for `resource`.
    fn mint(dir: &std::path::Path, resource: &str) -> String {
        let mut store = SqliteStore::open(dir).unwrap();
        let code = format!("bac_{}", bastion_auth::secret::random_id::<8>().unwrap());
        let g = CodeGrant {
            client_id: "static".into(),
            client_name: "Test client".into(),
            redirect_uri: "https://a.example/cb".into(),
            challenge: bastion_auth::secret::s256(VERIFIER),
            resource: resource.into(),
            scopes: vec!["fs:read".parse().unwrap()],
        };
        let t = bastion_auth::now();
        store.insert_code(&code, &g, t + 600).unwrap();
        let req = CodeExchange {
            code,
            client_id: "static".into(),
            redirect_uri: Some("https://a.example/cb".into()),
            verifier: Some(VERIFIER.into()),
            resource: None,
        };
        store.exchange_code(&req, t, &Lifetimes::default()).unwrap().access_token
    }

    fn hub() -> Hub {
        Hub::new(vec![], bastion_policy::audit::AuditLog::disabled(), false)
    }

    async fn send(app: &Router, method: &str, uri: &str, host: &str, bearer: Option<&str>) -> Response {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", host)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(t) = bearer {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let body = if method == "POST" { Body::from(INIT) } else { Body::empty() };
        app.clone().oneshot(b.body(body).unwrap()).await.unwrap()
    }

    fn challenge(r: &Response) -> String {
        r.headers().get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    }

    /// RS-01..RS-05 through the hub's guard: public OAuth routes, OAuth challenges, both kinds
    /// of bearer token, audience binding, no token from the query string.
    #[tokio::test]
    async fn rs03_rs05_oauth_mode_guard() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path()).unwrap();
        let (_, bst) = store.create_token("ci", &["fs:read".parse().unwrap()], None, bastion_auth::now()).unwrap();
        let tokens = Auth::tokens(Box::new(store));
        let settings = bastion_auth::Settings::new("https://hub.example.com/mcp", dir.path()).unwrap();
        let (oauth, _) = bastion_auth::OAuth::open(settings, Arc::new(|| vec!["fs:read".into()])).unwrap();
        let allowed = Allowed::new(Some("https://hub.example.com/mcp")).unwrap();
        let app = app(hub(), allowed, tokens.with_oauth(oauth), false, CancellationToken::new());
        let h = "hub.example.com";
        let meta = "resource_metadata=\"https://hub.example.com/.well-known/oauth-protected-resource/mcp\"";

        let r = send(&app, "POST", "/mcp", h, None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(challenge(&r), format!("Bearer {meta}, scope=\"fs:read\""));
        assert_eq!(r.headers()[header::CONNECTION], "close", "the unread body ends the connection");
        for bad in ["garbage", "bat_unknown", "bst_unknown"] {
            let r = send(&app, "POST", "/mcp", h, Some(bad)).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{bad}");
            let c = challenge(&r);
            assert!(c.contains(meta) && c.contains("error=\"invalid_token\""), "{bad}: {c}");
        }
        let access = mint(dir.path(), "https://hub.example.com/mcp");
        assert_eq!(send(&app, "POST", "/mcp", h, Some(&access)).await.status(), StatusCode::OK);
        assert_eq!(send(&app, "POST", "/mcp/", h, Some(&bst)).await.status(), StatusCode::OK);
        // `/` is the same endpoint; its challenge names the root's metadata, whose `resource`
        // is the root URL.
        let r = send(&app, "POST", "/", h, None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let root_meta = "resource_metadata=\"https://hub.example.com/.well-known/oauth-protected-resource\"";
        assert_eq!(challenge(&r), format!("Bearer {root_meta}, scope=\"fs:read\""));
        for token in [&access, &bst] {
            let (root, mcp) =
                (send(&app, "POST", "/", h, Some(token)).await, send(&app, "POST", "/mcp", h, Some(token)).await);
            assert_eq!(root.status(), StatusCode::OK);
            let body = |r: Response| axum::body::to_bytes(r.into_body(), usize::MAX);
            assert_eq!(body(root).await.unwrap(), body(mcp).await.unwrap(), "the same answer at / and /mcp");
        }
        // The token in the query string is not a token.
        let r = send(&app, "POST", &format!("/mcp?access_token={access}"), h, None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        // A token minted for another resource (RS-05, RFC 8707).
        let other = mint(dir.path(), "https://other.example/mcp");
        let r = send(&app, "POST", "/mcp", h, Some(&other)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(challenge(&r).contains("another resource"));
        // RS-02: discovery without a token, but still behind the Host check.
        for path in bastion_auth::PUBLIC_PATHS.iter().filter(|p| p.starts_with("/.well-known")) {
            assert_eq!(send(&app, "GET", path, h, None).await.status(), StatusCode::OK, "{path}");
            assert_eq!(send(&app, "GET", path, "evil.example", None).await.status(), StatusCode::FORBIDDEN);
        }
        let r = send(&app, "GET", "/authorize?client_id=x", h, None).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "an error page, not a 401");
        // The consent form's post carries `Origin: null` (no-referrer); nowhere else is that
        // origin accepted.
        let null_origin = |method: &str, uri: &str| {
            Request::builder()
                .method(method)
                .uri(uri)
                .header("host", h)
                .header("origin", "null")
                .body(Body::from("request=x"))
                .unwrap()
        };
        let r = app.clone().oneshot(null_origin("POST", "/authorize")).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "the form's own checks answer");
        for (m, uri) in [("POST", "/token"), ("POST", "/mcp"), ("GET", "/authorize")] {
            let r = app.clone().oneshot(null_origin(m, uri)).await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{m} {uri}");
        }
    }

    /// RS-06: without OAuth (static tokens or no auth) the OAuth paths are 404 and the
    /// challenge names no metadata.
    #[tokio::test]
    async fn rs06_no_oauth_routes_without_oauth_mode() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = Allowed::new(Some("https://hub.example.com/mcp")).unwrap();
        let tokens = Auth::tokens(Box::new(SqliteStore::open(dir.path()).unwrap()));
        for auth in [tokens, Auth::open()] {
            let app = app(hub(), allowed.clone(), auth, false, CancellationToken::new());
            for path in bastion_auth::PUBLIC_PATHS {
                let method = if ["/token", "/register", "/revoke"].contains(path) { "POST" } else { "GET" };
                let r = send(&app, method, path, "hub.example.com", None).await;
                assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
            }
        }
        let app = app(
            hub(),
            allowed,
            Auth::tokens(Box::new(SqliteStore::open(dir.path()).unwrap())),
            false,
            CancellationToken::new(),
        );
        let r = send(&app, "POST", "/mcp", "hub.example.com", None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(challenge(&r), "Bearer");
    }
}

/// The front in process: octet-stream with a token is served, `text/plain` is 415 before
/// the body is read, a token over its rate gets 429 with `Retry-After` and `rate_limited`,
/// and every refusal is an `http_refused` event in the hub's journal.
#[tokio::test]
async fn front_media_types_rate_limit_and_refusals_journaled() {
    use axum::body::Body;
    use bastion_auth::{SqliteStore, Store};
    use tower::ServiceExt;

    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("audit.jsonl");
    let hub = Hub::new(vec![], bastion_policy::audit::AuditLog::open(&journal).unwrap(), false);
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let (_, token) = store.create_token("ci", &[Scope::all()], None, bastion_auth::now()).unwrap();
    let limits = LimitsConfig { requests_per_second: 1.0, burst: 3, ..LimitsConfig::unlimited() };
    let app =
        app_limited(hub, Allowed::loopback(), Auth::tokens(Box::new(store)), false, CancellationToken::new(), limits);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
    let send = |ctype: &'static str| {
        let req = Request::builder()
            .method("POST")
            .uri("/mcp")
            .header("host", "localhost")
            .header("content-type", ctype)
            .header("user-agent", "front-test")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(init))
            .unwrap();
        app.clone().oneshot(req)
    };
    assert_eq!(send("application/octet-stream").await.unwrap().status(), StatusCode::OK);
    let r = send("text/plain").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.headers()[header::CONNECTION], "close");
    assert_eq!(send("application/json").await.unwrap().status(), StatusCode::OK);
    assert_eq!(send("application/json").await.unwrap().status(), StatusCode::OK);
    let r = send("application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["data"]["code"], "rate_limited");

    let events: Vec<serde_json::Value> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "http_refused")
        .collect();
    let seen: Vec<(u64, &str)> = events
        .iter()
        .map(|e| (e["detail"]["status"].as_u64().unwrap(), e["detail"]["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [(415, "unsupported_media_type"), (429, "rate_limited")]);
    let d = &events[0]["detail"];
    assert_eq!(
        (d["method"].as_str(), d["path"].as_str(), d["user_agent"].as_str()),
        (Some("POST"), Some("/mcp"), Some("front-test"))
    );
    assert!(d["client"].is_null(), "no socket in process");
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
