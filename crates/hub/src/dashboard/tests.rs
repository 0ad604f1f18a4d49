//! The dashboard's routes in process: sign-in, the session and CSRF checks, the headers.

use super::*;
use axum::body::Body;
use tower::ServiceExt;

const HOST: &str = "127.0.0.1:8765";

fn dash(dir: &std::path::Path) -> Arc<Dashboard> {
    let hub = Hub::new(vec![], AuditLog::disabled(), false);
    Dashboard::for_hub(hub, dir, None, dir.join("audit.jsonl"), Allowed::loopback(), false).unwrap()
}

async fn send(app: &Router, req: axum::http::request::Builder, body: &str) -> Response {
    app.clone().oneshot(req.header("host", HOST).body(Body::from(body.to_owned())).unwrap()).await.unwrap()
}

fn get(uri: &str) -> axum::http::request::Builder {
    Request::builder().method("GET").uri(uri)
}

fn post(uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", format!("http://{HOST}"))
}

async fn text(r: Response) -> String {
    String::from_utf8_lossy(&axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap()).into_owned()
}

#[tokio::test]
async fn a_link_signs_in_once_and_the_session_needs_its_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(dash(dir.path()));
    // Nothing without a session, whatever bearer token comes along.
    let r = send(&app, get("/dashboard/now").header("authorization", "Bearer bst_anything"), "").await;
    assert_eq!(
        (r.status(), &r.headers()[header::LOCATION]),
        (StatusCode::SEE_OTHER, &"/dashboard/login".parse::<HeaderValue>().unwrap())
    );
    for h in [header::CONTENT_SECURITY_POLICY, header::X_FRAME_OPTIONS] {
        assert!(r.headers().contains_key(&h), "{h}");
    }
    assert!(r.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("frame-ancestors 'none'"));
    let link = cli::new_link(dir.path(), &format!("http://{HOST}")).unwrap();
    let path = link.strip_prefix(&format!("http://{HOST}")).unwrap().to_owned();
    let r = send(&app, get(&path), "").await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert!(r.headers()[header::SET_COOKIE].to_str().unwrap().contains("HttpOnly; SameSite=Strict"));
    assert_eq!(send(&app, get(&path), "").await.status(), StatusCode::UNAUTHORIZED, "used once");
    let page = text(send(&app, get("/dashboard/now").header("cookie", &cookie), "").await).await;
    assert!(page.contains("Recent calls"), "{page}");
    let csrf = page.split("name=\"csrf-token\" content=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    // Pause without the token, with a wrong one, from another origin: refused.
    let r = send(&app, post("/dashboard/pause").header("cookie", &cookie), "").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = send(&app, post("/dashboard/pause").header("cookie", &cookie), "csrf=bcf_no").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let cross = post("/dashboard/pause").header("cookie", &cookie).header("origin", "http://127.0.0.1:1");
    let r = app
        .clone()
        .oneshot(cross.header("host", HOST).body(Body::from(format!("csrf={csrf}"))).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A bearer token is no session.
    let r = send(&app, post("/dashboard/pause").header("authorization", "Bearer x"), &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The session and its token: accepted (this hub has no approvals engine, so it says so).
    let r = send(&app, post("/dashboard/pause").header("cookie", &cookie), &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // A foreign Host is refused before anything.
    let r = app
        .clone()
        .oneshot(get("/dashboard/login").header("host", "evil.example").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_live_feed_runs_only_while_someone_watches() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::new(vec![], AuditLog::disabled(), false);
    let d =
        Dashboard::for_hub(hub.clone(), dir.path(), None, dir.path().join("audit.jsonl"), Allowed::loopback(), false)
            .unwrap();
    assert_eq!(hub.call_watchers(), 0, "nobody watches: calls send nothing");
    let rx = live::subscribe(&d);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while hub.call_watchers() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hub.call_watchers(), 1, "a page watching: the watcher takes the hub's feed");
    // A journal line appears on the feed.
    let mut rx = rx;
    AuditLog::open(&dir.path().join("audit.jsonl")).unwrap().event("hub", "pause", json!({"channel": "cli"}));
    let kind = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    assert_eq!(kind, "switch");
    drop(rx);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while hub.call_watchers() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hub.call_watchers(), 0, "the last page gone: the watcher stops");
}

#[tokio::test]
async fn refused_requests_and_searches_come_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(dash(dir.path()));
    let journal = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    journal.event(
        "hub",
        "http_refused",
        json!({"status": 401, "reason": "invalid_token", "method": "POST", "path": "/mcp",
               "client": "127.0.0.1:5555", "user_agent": "<b>agent</b>"}),
    );
    std::fs::write(dir.path().join("audit.jsonl.1"), "{\"time\":\"2026-01-01T00:00:00.000Z\",\"server\":\"hub\",\"principal\":\"old\",\"tool\":\"fs__rotated\",\"args\":{},\"outcome\":\"ok\",\"duration_ms\":1.0,\"result_bytes\":1}\n").unwrap();
    let link = cli::new_link(dir.path(), "").unwrap();
    let r = send(&app, get(&link), "").await;
    let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let now = text(send(&app, get("/dashboard/fragment/now").header("cookie", &cookie), "").await).await;
    for want in ["401", "invalid_token", "POST /mcp", "127.0.0.1:5555", "&lt;b&gt;agent&lt;/b&gt;"] {
        assert!(now.contains(want), "{want}: {now}");
    }
    let found = text(send(&app, get("/dashboard/journal?tool=rotated").header("cookie", &cookie), "").await).await;
    assert!(found.contains("fs__rotated") && found.contains("2 journal file(s)"), "{found}");
    // Fragments need the session too.
    assert_eq!(send(&app, get("/dashboard/fragment/now"), "").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(send(&app, get("/dashboard/events"), "").await.status(), StatusCode::UNAUTHORIZED);
}
