//! Profiles in process: the surface of a profile (`Hub::for_profile`) over its own fs upstream
//! on its own root, called directly through `Hub::call` and over HTTP at `/mcp/{profile}`. A
//! principal bound to one profile finds no tool on any other surface (`unknown tool`, whatever
//! its scopes), and the profile's globs hide what it does not offer. The upstream is the real
//! `bastion fs`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bastion_auth::{Principal, Scope};
use bastion_hub::http::{Allowed, Auth, app_with_profiles};
use bastion_hub::limits::LimitsConfig;
use bastion_hub::profile::ProfileSettings;
use bastion_hub::router::{CallSite, Hub};
use bastion_hub::upstream::{Builtin, Restart, Source, Status, ToolFilter, Upstream, UpstreamSpec};
use bastion_policy::audit::AuditLog;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

fn fs_spec(root: &Path) -> UpstreamSpec {
    UpstreamSpec {
        name: "fs".into(),
        source: Source::Builtin {
            server: Builtin::Fs,
            program: env!("CARGO_BIN_EXE_bastion").into(),
            args: vec!["--root".into(), root.to_string_lossy().into_owned(), "--allow-write".into()],
        },
        filter: ToolFilter::default(),
        required: true,
        call_timeout: None,
    }
}

/// A supervised upstream, once ready.
async fn ready(spec: UpstreamSpec, shutdown: &CancellationToken) -> Arc<Upstream> {
    let up = Upstream::new(spec);
    tokio::spawn(up.clone().supervise(shutdown.child_token(), Restart::default()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !matches!(up.status(), Status::Ready { .. }) {
        assert!(tokio::time::Instant::now() < deadline, "fs upstream not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    up
}

fn bound(profiles: &[&str]) -> Principal {
    Principal {
        name: format!("bound-{}", profiles.join("-")),
        scopes: vec![Scope::all()],
        profiles: profiles.iter().map(|p| (*p).to_owned()).collect(),
    }
}

/// `Ok(text)` of a tool result, `Err(message)` of a protocol error.
async fn read(hub: &Hub, who: &Principal, tool: &str, path: &str) -> Result<String, String> {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = json!({"path": path}).as_object().cloned();
    let site = CallSite { cancelled: CancellationToken::new(), progress: None, peer: None };
    match hub.call(who, params, &site).await {
        Ok(r) => Ok(serde_json::to_string(&rmcp::model::ServerResult::from(r)).unwrap()),
        Err(e) => Err(e.message.to_string()),
    }
}

#[tokio::test]
async fn a_profile_is_a_surface_of_its_own() {
    let (hub_root, web_root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(hub_root.path().join("hub.txt"), "the hub's own\n").unwrap();
    std::fs::write(web_root.path().join("web.txt"), "the web project\n").unwrap();
    let shutdown = CancellationToken::new();
    let hub = Hub::new(vec![ready(fs_spec(hub_root.path()), &shutdown).await], AuditLog::disabled(), false);
    let web = ProfileSettings {
        name: "web".into(),
        upstreams: vec![fs_spec(web_root.path())],
        roots: vec![web_root.path().to_path_buf()],
        naming: Default::default(),
        tool_search: Default::default(),
        filter: ToolFilter::new(&[], &["fs__write_file".into()]).unwrap(),
    };
    let web_hub = hub.for_profile(&web, vec![ready(fs_spec(web_root.path()), &shutdown).await]);
    assert_eq!(web_hub.profile(), Some("web"));

    let (everyone, web_only, api_only) = (Principal::unrestricted("owner"), bound(&["web"]), bound(&["api"]));
    // Its own root, not the hub's; the tool it does not offer is not there.
    assert!(read(&web_hub, &everyone, "fs__read_file", "web.txt").await.unwrap().contains("the web project"));
    assert!(read(&web_hub, &everyone, "fs__read_file", "hub.txt").await.unwrap().contains("\"isError\":true"));
    let names: Vec<String> = web_hub.visible_tools(&everyone).into_iter().map(|t| t.name.to_string()).collect();
    assert!(names.contains(&"fs__read_file".to_owned()) && !names.contains(&"fs__write_file".to_owned()));
    assert!(read(&web_hub, &everyone, "fs__write_file", "x").await.unwrap_err().contains("unknown tool"));
    // Bound to web: web's tools, none of the hub's own surface, even with every scope.
    assert!(read(&web_hub, &web_only, "fs__read_file", "web.txt").await.unwrap().contains("the web project"));
    assert!(hub.visible_tools(&web_only).is_empty());
    assert_eq!(hub.required_scope(&web_only, "fs__read_file"), None);
    assert!(read(&hub, &web_only, "fs__read_file", "hub.txt").await.unwrap_err().contains("unknown tool"));
    // Bound to another profile: nothing of web's.
    assert!(web_hub.visible_tools(&api_only).is_empty());
    assert!(read(&web_hub, &api_only, "fs__read_file", "web.txt").await.unwrap_err().contains("unknown tool"));
    // The probes see the profile's upstream beside the hub's.
    let all: Vec<_> =
        hub.all_upstreams().into_iter().map(|(p, u)| (p.map(|p| p.to_string()), u.spec.name.clone())).collect();
    assert_eq!(all, [(None, "fs".to_owned()), (Some("web".to_owned()), "fs".to_owned())]);
    assert!(hub.metrics_text().contains("upstream=\"web/fs\""));

    // Over HTTP: /mcp/web is the profile's surface, an unknown profile is not found.
    let app = app_with_profiles(
        hub,
        vec![("web".into(), web_hub)],
        Allowed::loopback(),
        Auth::open(),
        bastion_hub::http::Sessions::default(),
        shutdown.child_token(),
        LimitsConfig::default(),
        axum::Router::new(),
    );
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "fs__read_file", "arguments": {"path": "web.txt"}}});
    for (path, status, want) in [
        ("/mcp/web", StatusCode::OK, "the web project"),
        ("/mcp/web/", StatusCode::OK, "the web project"),
        ("/mcp", StatusCode::OK, "isError"),
        ("/mcp/api", StatusCode::NOT_FOUND, ""),
    ] {
        let r = app
            .clone()
            .oneshot(
                Request::builder()
                    .method("POST")
                    .uri(path)
                    .header(header::HOST, "localhost")
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::ACCEPT, "application/json, text/event-stream")
                    .body(Body::from(call.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
        let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
        if status == StatusCode::OK {
            let answer: Value = serde_json::from_slice(&body).unwrap();
            assert!(answer.to_string().contains(want), "{path}: {answer}");
        }
    }
    shutdown.cancel();
}
