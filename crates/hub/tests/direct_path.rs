//! The direct `tools/call` path (`POST /mcp` answered by the hub itself) against rmcp's general
//! path, in process through the axum application: the same call with an empty `_meta` goes
//! through rmcp, and the two answers must be byte for byte the same — status, content type and
//! body — for a result, a tool error, an unknown tool, bad arguments, numeric and string ids,
//! and every legacy protocol version the hub accepts. The OpenAPI facade (`POST /tools/{name}`)
//! is held to the same answers. The upstream is the real `bastion fs`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bastion_hub::http::{Allowed, Auth, app, direct};
use bastion_hub::router::Hub;
use bastion_hub::upstream::{Builtin, Restart, Source, Status, ToolFilter, Upstream, UpstreamSpec};
use bastion_policy::audit::AuditLog;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A hub over one built-in fs upstream on `root`, once the upstream is ready.
async fn hub_over_fs(root: &std::path::Path, shutdown: &CancellationToken) -> Hub {
    let spec = UpstreamSpec {
        name: "fs".into(),
        source: Source::Builtin {
            server: Builtin::Fs,
            program: env!("CARGO_BIN_EXE_bastion").into(),
            args: vec!["--root".into(), root.to_string_lossy().into_owned()],
        },
        filter: ToolFilter::default(),
        required: true,
        call_timeout: None,
    };
    let up = Upstream::new(spec);
    tokio::spawn(up.clone().supervise(shutdown.child_token(), Restart::default()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !matches!(up.status(), Status::Ready { .. }) {
        assert!(tokio::time::Instant::now() < deadline, "fs upstream not ready: {}", status_text(&up));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Hub::new(vec![up], AuditLog::disabled(), false)
}

fn status_text(up: &Arc<Upstream>) -> String {
    match up.status() {
        Status::Failed(why) => why,
        Status::Starting => "starting".into(),
        Status::Ready { .. } => "ready".into(),
    }
}

/// Status, content type and body of `POST /mcp` with `body`.
async fn post(app: &axum::Router, body: &Value, version: Option<&str>) -> (StatusCode, String, Vec<u8>) {
    let mut b = Request::builder()
        .method("POST")
        .uri("/mcp")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream");
    if let Some(v) = version {
        b = b.header("mcp-protocol-version", v);
    }
    let r = app.clone().oneshot(b.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let status = r.status();
    let content_type =
        r.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let bytes = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
    (status, content_type, bytes.to_vec())
}

#[tokio::test]
async fn the_direct_path_answers_byte_for_byte_like_rmcp() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hello.txt"), "hello\n").unwrap();
    let shutdown = CancellationToken::new();
    let hub = hub_over_fs(root.path(), &shutdown).await;
    let app = app(hub, Allowed::loopback(), Auth::open(), false, shutdown.child_token());

    // (tool, arguments, id, what the answer must be)
    let cases = [
        ("fs__read_file", json!({"path": "hello.txt"}), json!(1), "result"),
        ("fs__read_file", json!({"path": "../etc/passwd"}), json!("s-1"), "tool error"),
        ("nope__x", json!({}), json!(3), "protocol error"),
        ("fs__read_file", json!({"nopath": 1}), json!(4), "bad arguments"),
    ];
    let versions = std::iter::once(None).chain(direct::LEGACY_VERSIONS.map(Some));
    let mut compared = 0;
    for version in versions {
        for (tool, arguments, id, want) in &cases {
            let plain = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                               "params": {"name": tool, "arguments": arguments}});
            let via_rmcp = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                                  "params": {"name": tool, "arguments": arguments, "_meta": {}}});
            // The first takes the direct path, the second cannot.
            let body = plain.to_string();
            assert!(matches!(direct::parse(body.as_bytes()), direct::Parsed::Call(_)), "{body}");
            let body = via_rmcp.to_string();
            assert!(matches!(direct::parse(body.as_bytes()), direct::Parsed::Other), "{body}");

            let a = post(&app, &plain, version).await;
            let b = post(&app, &via_rmcp, version).await;
            let show = |r: &(StatusCode, String, Vec<u8>)| String::from_utf8_lossy(&r.2).into_owned();
            assert_eq!(a, b, "{tool} {version:?}: direct {} vs rmcp {}", show(&a), show(&b));
            assert_eq!(a.0, StatusCode::OK);
            assert_eq!(a.1, "application/json");
            let answer: Value = serde_json::from_slice(&a.2).unwrap();
            assert_eq!(&answer["id"], id);
            match *want {
                "result" => {
                    assert_ne!(answer["result"]["isError"], true, "{answer}");
                    assert!(answer["result"]["content"][0]["text"].as_str().unwrap().contains("hello"), "{answer}");
                }
                "tool error" => assert_eq!(answer["result"]["isError"], true, "{answer}"),
                "protocol error" => {
                    assert_eq!(answer["error"]["code"], -32602, "{answer}");
                    assert!(answer["error"]["message"].as_str().unwrap().contains("unknown tool"), "{answer}");
                }
                "bad arguments" => {
                    let refused = answer["result"]["isError"] == true || answer["error"].is_object();
                    assert!(refused, "{answer}");
                }
                _ => unreachable!(),
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 16);
    shutdown.cancel();
}

#[tokio::test]
async fn only_plain_legacy_calls_qualify() {
    use axum::http::{HeaderMap, HeaderValue, Method};
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    assert!(direct::headers_qualify(&Method::POST, &h));
    assert!(!direct::headers_qualify(&Method::GET, &h));
    for v in direct::LEGACY_VERSIONS {
        h.insert("mcp-protocol-version", HeaderValue::from_static(v));
        assert!(direct::headers_qualify(&Method::POST, &h), "{v}");
    }
    h.insert("mcp-protocol-version", HeaderValue::from_static("2026-07-28"));
    assert!(!direct::headers_qualify(&Method::POST, &h));
    h.remove("mcp-protocol-version");
    h.insert("mcp-method", HeaderValue::from_static("tools/call"));
    assert!(!direct::headers_qualify(&Method::POST, &h));
    for (body, what) in [
        (r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, "other method"),
        (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{}}}"#, "_meta"),
        (r#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"x"}}"#, "not 2.0"),
        (r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}]"#, "batch"),
    ] {
        assert!(matches!(direct::parse(body.as_bytes()), direct::Parsed::Other), "{what}");
    }
    assert!(matches!(direct::parse(b"{not json"), direct::Parsed::NotJson(_)));
    let escaped = br#"{"jsonrpc":"2\u002e0","id":1,"method":"tools\/call","params":{"name":"x"}}"#;
    assert!(matches!(direct::parse(escaped), direct::Parsed::Call(_)), "escaped strings still parse");
}

/// Status, content type and body of a request to `uri` (`POST` with `body`, else `GET`).
async fn request(app: &axum::Router, uri: &str, body: Option<&Value>) -> (StatusCode, String, Vec<u8>) {
    let b = Request::builder()
        .method(if body.is_some() { "POST" } else { "GET" })
        .uri(uri)
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json");
    let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
    let r = app.clone().oneshot(b.body(body).unwrap()).await.unwrap();
    let status = r.status();
    let content_type =
        r.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, content_type, axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap().to_vec())
}

/// The OpenAPI facade answers what `/mcp` answers, from the same `Hub::call`: a result's
/// structured content is the body, a tool error's `{code, message}` is the body of its HTTP
/// error; `search` and `fetch` the same way; the document lists every tool.
#[tokio::test]
async fn the_openapi_facade_answers_what_mcp_answers() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hello.txt"), "hello\n").unwrap();
    let shutdown = CancellationToken::new();
    let hub =
        hub_over_fs(root.path(), &shutdown).await.with_search_fetch(bastion_hub::search_fetch::SearchFetch::new(None));
    let app = app(hub, Allowed::loopback(), Auth::open(), false, shutdown.child_token());
    let search = json!({"query": "hello"});
    let mut cases = vec![
        ("fs__read_file", json!({"path": "hello.txt"}), StatusCode::OK),
        ("fs__read_file", json!({"path": "../etc/passwd"}), StatusCode::FORBIDDEN),
        ("fs__read_file", json!({"path": "missing"}), StatusCode::NOT_FOUND),
        ("search", search.clone(), StatusCode::OK),
        ("fetch", json!({"id": "forged"}), StatusCode::BAD_REQUEST),
    ];
    let (_, _, found) = request(&app, "/tools/search", Some(&search)).await;
    let found: Value = serde_json::from_slice(&found).unwrap();
    let id = found["results"][0]["id"].as_str().unwrap().to_owned();
    cases.push(("fetch", json!({"id": id}), StatusCode::OK));
    for (tool, arguments, status) in cases {
        let (got, content_type, body) = request(&app, &format!("/tools/{tool}"), Some(&arguments)).await;
        let mcp = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                         "params": {"name": tool, "arguments": arguments}});
        let (_, _, answer) = post(&app, &mcp, None).await;
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        let shown = String::from_utf8_lossy(&body).into_owned();
        assert_eq!((got, content_type.as_str()), (status, "application/json"), "{tool}: {shown}");
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), answer["result"]["structuredContent"], "{tool}");
    }
    let (_, _, text) = request(&app, &format!("/fetch/{id}"), None).await;
    assert_eq!(text, b"hello\n");
    let (status, _, doc) = request(&app, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(doc["servers"][0]["url"], "http://localhost");
    for tool in ["fs__read_file", "fs__search_text", "search", "fetch"] {
        assert_eq!(doc["paths"][format!("/tools/{tool}")]["post"]["operationId"], tool);
    }
    shutdown.cancel();
}
