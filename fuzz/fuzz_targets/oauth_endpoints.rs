//! The authorization server's endpoints, driven in process through its router with arbitrary
//! input: the `/authorize` query, the consent form (`POST /authorize`, after a real consent
//! page so the request id and CSRF token are valid), the token endpoint's form (with and
//! without HTTP Basic credentials) and the registration JSON.
//!
//! Invariants: no panic and no 5xx; every `Location` the server sends is a valid redirect URI
//! (`redirect::check`) carrying `iss`, and goes to a URI registered for a client (the browser
//! is never sent anywhere unchecked); every response has a body type.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use bastion_auth::{OAuth, Settings, StaticClient, net::Fetched, redirect};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const REDIRECT: &str = "https://app.example/cb?keep=1";

struct Fixture {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    app: axum::Router,
}

static CLOCK: AtomicU64 = AtomicU64::new(1_800_000_000);

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::new("https://hub.example.com/mcp", dir.path()).unwrap();
        settings.clients.push(StaticClient {
            client_id: "app".into(),
            client_name: "App".into(),
            redirect_uris: vec![REDIRECT.into(), "cursor://app/cb".into(), "http://127.0.0.1:9/cb".into()],
        });
        let fetcher: bastion_auth::Fetcher = Arc::new(|url, _| {
            Box::pin(async move {
                let body = serde_json::json!({
                    "client_id": url.as_str(), "client_name": "Doc", "redirect_uris": ["https://doc.example/cb"],
                });
                Ok(Fetched { body: body.to_string().into_bytes(), cache_for: 60 })
            })
        });
        let clock: bastion_auth::Clock = Arc::new(|| CLOCK.load(Ordering::Relaxed));
        let scopes: bastion_auth::ScopesFn =
            Arc::new(|| vec!["fs:read".into(), "fs:write".into(), "shell:exec".into()]);
        let (oauth, _) = OAuth::build(settings, scopes, clock, fetcher).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Fixture { _dir: dir, rt, app: oauth.router() }
    })
}

async fn send(app: &axum::Router, req: Request<Body>) -> (Response<Body>, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (Response::from_parts(parts, Body::empty()), String::from_utf8_lossy(&bytes).into_owned())
}

fn check(resp: &Response<Body>, body: &str, what: &str) {
    assert_ne!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR, "{what}: {body}");
    if let Some(loc) = resp.headers().get(header::LOCATION) {
        let loc = loc.to_str().unwrap();
        // `state` (up to 1024 characters, percent-encoded) may take a Location past the length
        // limit on registered URIs; a long one is checked for its characters only.
        if loc.len() <= redirect::MAX_LEN {
            redirect::check(loc).unwrap_or_else(|e| panic!("{what}: Location {loc:?}: {e}"));
        } else {
            assert!(loc.bytes().all(|b| b.is_ascii_graphic() && !b"'\"<>\\^`{|}".contains(&b)), "{what}: {loc:?}");
        }
        assert!(loc.contains("iss=https%3A%2F%2Fhub.example.com"), "{what}: Location {loc:?} without iss");
        let known = [REDIRECT, "cursor://app/cb", "http://127.0.0.1:9/cb", "https://doc.example/cb"];
        assert!(known.iter().any(|k| loc.starts_with(k)), "{what}: Location {loc:?} to an unregistered URI");
    }
}

/// The request id and CSRF token of a consent page.
fn hidden(body: &str, name: &str) -> Option<String> {
    let at = body.find(&format!("name=\"{name}\" value=\""))? + name.len() + 15;
    Some(body[at..].split('"').next()?.to_owned())
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    CLOCK.fetch_add(7, Ordering::Relaxed);
    let Some((&which, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    f.rt.block_on(async {
        let post = |path: &str, ctype: &str, body: Vec<u8>| {
            Request::post(path).header(header::CONTENT_TYPE, ctype).body(Body::from(body)).unwrap()
        };
        match which % 5 {
            0 => {
                // Arbitrary query; a `?` may already be in it, or bytes a URI cannot hold.
                let Ok(req) = Request::get(format!("/authorize?{text}")).body(Body::empty()) else { return };
                let (r, b) = send(&f.app, req).await;
                check(&r, &b, "GET /authorize");
            }
            1 => {
                let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
                let q = format!(
                    "/authorize?response_type=code&client_id=app&redirect_uri={}&code_challenge={challenge}\
                     &code_challenge_method=S256&state=s",
                    url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
                );
                let (r, page) = send(&f.app, Request::get(q).body(Body::empty()).unwrap()).await;
                if r.status() != StatusCode::OK {
                    return; // too many consent pages waiting: a 503, checked below in other runs
                }
                let (Some(id), Some(csrf)) = (hidden(&page, "request"), hidden(&page, "csrf")) else {
                    panic!("consent page without request id or csrf: {page}")
                };
                let mut form = format!("request={id}&csrf={csrf}&").into_bytes();
                form.extend_from_slice(rest);
                let (r, b) = send(&f.app, post("/authorize", "application/x-www-form-urlencoded", form)).await;
                check(&r, &b, "POST /authorize");
            }
            2 | 3 => {
                let mut req = post("/token", "application/x-www-form-urlencoded", rest.to_vec());
                if which % 5 == 3
                    && let Some((user, form)) = text.split_once('\n')
                {
                    use std::fmt::Write as _;
                    let mut b64 = String::new();
                    for chunk in user.as_bytes().chunks(3) {
                        // A small base64 encoder keeps the target's dependencies to the crates under test.
                        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                        let n = chunk.iter().fold(0u32, |n, &c| n << 8 | c as u32) << (8 * (3 - chunk.len()));
                        for i in 0..4 {
                            let _ = if i <= chunk.len() {
                                b64.write_char(A[(n >> (18 - 6 * i) & 63) as usize] as char)
                            } else {
                                b64.write_char('=')
                            };
                        }
                    }
                    req = post("/token", "application/x-www-form-urlencoded", form.as_bytes().to_vec());
                    if let Ok(v) = format!("Basic {b64}").parse() {
                        req.headers_mut().insert(header::AUTHORIZATION, v);
                    }
                }
                let (r, b) = send(&f.app, req).await;
                check(&r, &b, "POST /token");
                assert!(serde_json::from_str::<serde_json::Value>(&b).is_ok(), "/token answered non-JSON: {b}");
            }
            _ => {
                let (r, b) = send(&f.app, post("/register", "application/json", rest.to_vec())).await;
                check(&r, &b, "POST /register");
                if r.status() == StatusCode::CREATED {
                    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
                    for u in v["redirect_uris"].as_array().unwrap() {
                        redirect::check(u.as_str().unwrap()).unwrap();
                    }
                }
            }
        }
    });
});
