//! The dashboard: the person's web face of the hub (or of a server alone), at `/dashboard`.
//!
//! | route | what |
//! |---|---|
//! | `GET /dashboard/login?t=LINK`, `POST /dashboard/login` | sign in with a one-time link (`bastion dashboard`) or the owner secret |
//! | `GET /dashboard/{now,approvals,upstreams,access,journal,health}` | the pages |
//! | `GET /dashboard/fragment/PAGE` | a page's live region, re-fetched by the page script |
//! | `GET /dashboard/events` | the live feed (server-sent events, [`live`]) |
//! | `POST /dashboard/…` | decisions, pause/resume, mode, restarts, tokens: session + same origin + CSRF token |
//! | `GET /dashboard/assets/…` | the stylesheet and the one small script, compiled in |
//!
//! Who may use it: a person holding a cookie session ([`session`]). Bearer tokens never open
//! it: the hub's guard does not authenticate `/dashboard` paths and nothing here reads an
//! `Authorization` header. Every response carries a CSP without inline script or style,
//! `frame-ancestors 'none'`, `X-Frame-Options: DENY`; nothing is fetched from elsewhere.
//!
//! It reads the same sources whether it watches the hub ([`Backend::Hub`]: the router's call
//! feed, upstreams, metrics, the approvals engine, the auth store) or a server alone over stdio
//! ([`Backend::Standalone`]: its journal and control socket, `bastion dashboard --journal FILE
//! --control SOCKET`). Calls, refused requests and decisions come from the journal, which both
//! write.

pub mod cli;
pub mod journal;
pub mod live;
pub mod pages;
pub mod session;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bastion_auth::{SqliteStore, Store};
use bastion_control::{Engine, socket};
use bastion_policy::audit::AuditLog;
use serde_json::{Value, json};

use crate::http::Allowed;
use crate::router::Hub;
use crate::upstream::Status;
use pages::Frame;
use session::{Current, Refused, Sessions};

/// How long a one-time sign-in link stays valid.
pub const LINK_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Rows on Now.
const RECENT_CALLS: usize = 50;
/// Refused requests on Now.
const RECENT_REFUSED: usize = 20;
/// Results per journal page.
const PER_PAGE: usize = 50;
/// Minutes in the Health chart.
const CHART_MINUTES: usize = 30;
/// The largest form the dashboard reads.
const MAX_FORM: usize = 64 * 1024;

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// What the dashboard watches.
pub enum Backend {
    /// The hub it is served by.
    Hub {
        /// The hub.
        hub: Hub,
        /// Its approvals engine (pause, mode, decisions).
        engine: Option<Arc<Engine>>,
    },
    /// A server alone, through its control socket.
    Standalone {
        /// The socket.
        control: PathBuf,
    },
}

/// The dashboard's state.
pub struct Dashboard {
    backend: Backend,
    /// The state directory's SQLite store: sign-in links, which `bastion dashboard` writes there
    /// (a link opens the dashboard of a hub on this machine).
    store: Option<Mutex<SqliteStore>>,
    /// The hub's auth store (the SQLite one, or PostgreSQL shared by replicas): the owner
    /// secret, tokens and grants, so what the dashboard shows and changes is what the hub judges.
    auth: Option<Mutex<Box<dyn bastion_auth::store::Store>>>,
    journal: PathBuf,
    /// `Secure` cookies (the hub's public URL is https).
    secure: bool,
    allowed: Allowed,
    sessions: Sessions,
    live: live::Live,
}

/// Where the dashboard's sign-in URL is written for `bastion dashboard` (in the state directory).
pub const URL_FILE: &str = "dashboard-url";

impl Dashboard {
    /// The dashboard of `hub`, with the hub's auth store (`store`: the configuration's value,
    /// `None` for the state directory's SQLite file), sign-in links from the state directory,
    /// and the hub's journal.
    pub fn for_hub(
        hub: Hub,
        state_dir: &std::path::Path,
        store: Option<&str>,
        journal: PathBuf,
        allowed: Allowed,
        secure: bool,
    ) -> anyhow::Result<Arc<Dashboard>> {
        let engine = hub.approvals().map(|a| a.engine().clone());
        let auth = bastion_auth::store::open(store, state_dir)?;
        let store = SqliteStore::open(state_dir)?;
        Ok(Arc::new(Dashboard {
            backend: Backend::Hub { hub, engine },
            store: Some(Mutex::new(store)),
            auth: Some(Mutex::new(auth)),
            journal,
            secure,
            allowed,
            sessions: Sessions::default(),
            live: live::Live::default(),
        }))
    }

    /// The dashboard of a server alone: its journal and control socket; sign-in through the
    /// auth store of `state_dir`.
    pub fn standalone(
        control: PathBuf,
        journal: PathBuf,
        state_dir: &std::path::Path,
        allowed: Allowed,
    ) -> anyhow::Result<Arc<Dashboard>> {
        let store = SqliteStore::open(state_dir)?;
        let auth: Box<dyn bastion_auth::store::Store> = Box::new(SqliteStore::open(state_dir)?);
        Ok(Arc::new(Dashboard {
            backend: Backend::Standalone { control },
            store: Some(Mutex::new(store)),
            auth: Some(Mutex::new(auth)),
            journal,
            secure: false,
            allowed,
            sessions: Sessions::default(),
            live: live::Live::default(),
        }))
    }

    fn with_store<T>(&self, f: impl FnOnce(&mut SqliteStore) -> T) -> Option<T> {
        self.store.as_ref().map(|s| f(&mut s.lock().unwrap_or_else(|e| e.into_inner())))
    }

    fn with_auth<T>(&self, f: impl FnOnce(&mut dyn bastion_auth::store::Store) -> T) -> Option<T> {
        self.auth.as_ref().map(|s| f(&mut **s.lock().unwrap_or_else(|e| e.into_inner())))
    }

    /// A control request (the socket protocol of bastion-control), answered by the hub's engine
    /// or the server's socket.
    async fn control(&self, request: Value) -> Value {
        match &self.backend {
            Backend::Hub { engine: Some(engine), .. } => socket::answer(engine, &request),
            Backend::Hub { engine: None, .. } => {
                json!({"ok": false, "code": "not_found", "message": "this hub runs without approvals"})
            }
            Backend::Standalone { control } => {
                let path = control.clone();
                let answer = tokio::task::spawn_blocking(move || socket::request(&path, &request)).await;
                match answer {
                    Ok(Ok(v)) => v,
                    Ok(Err(e)) => {
                        json!({"ok": false, "code": "unavailable", "message": format!("control socket: {e}")})
                    }
                    Err(e) => json!({"ok": false, "code": "internal", "message": e.to_string()}),
                }
            }
        }
    }

    fn standalone_mode(&self) -> bool {
        matches!(self.backend, Backend::Standalone { .. })
    }

    fn journal_event(&self, event: &str, detail: Value) {
        match &self.backend {
            Backend::Hub { .. } => match AuditLog::open(&self.journal) {
                Ok(log) => log.event("hub", event, detail),
                Err(e) => tracing::warn!(error = %e, "dashboard: cannot journal {event}"),
            },
            Backend::Standalone { .. } => {}
        }
    }
}

/// The dashboard's routes, behind its own Host/Origin check and response headers.
pub fn router(dash: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/dashboard", get(|| async { see_other("/dashboard/now") }))
        .route("/dashboard/", get(|| async { see_other("/dashboard/now") }))
        .route("/dashboard/login", get(login_page).post(login_post))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/assets/{file}", get(asset))
        .route("/dashboard/events", get(events))
        .route("/dashboard/fragment/{page}", get(fragment))
        .route("/dashboard/{page}", get(page))
        .route("/dashboard/approvals/decide", post(decide))
        .route("/dashboard/pause", post(pause))
        .route("/dashboard/resume", post(resume))
        .route("/dashboard/mode", post(mode))
        .route("/dashboard/upstreams/{name}/restart", post(restart))
        .route("/dashboard/access/create", post(create_token))
        .route("/dashboard/access/revoke", post(revoke))
        .route("/dashboard/access/revoke-all", post(revoke_all))
        .route("/dashboard/access/elevate", post(elevate))
        .layer(middleware::from_fn_with_state(dash.clone(), protect))
        .with_state(dash)
}

/// The CSP: scripts, styles and fetches from this origin only; no frames, no plugins, no base
/// rewriting; forms post here only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Host/Origin (as the hub's guard: a server alone's dashboard has no other), then the
/// headers every dashboard response carries.
async fn protect(State(dash): State<Arc<Dashboard>>, req: Request, next: Next) -> Response {
    let h = req.headers();
    let host_ok = h.get_all(header::HOST).iter().count() == 1
        && h.get(header::HOST).and_then(|v| v.to_str().ok()).is_some_and(|v| dash.allowed.host_ok(v));
    let origins: Vec<_> = h.get_all(header::ORIGIN).iter().collect();
    let origin_ok = origins.len() <= 1 && origins.iter().all(|o| o.to_str().is_ok_and(|o| dash.allowed.origin_ok(o)));
    let mut r = if host_ok && origin_ok {
        next.run(req).await
    } else {
        (StatusCode::FORBIDDEN, "Forbidden: Host or Origin is not allowed\n").into_response()
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // `same-origin`, not `no-referrer`: with no referrer at all, browsers send `Origin: null` on
    // form posts, and the origin check needs the real one.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn plain(status: StatusCode, text: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{text}\n")).into_response()
}

fn query(req_query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req_query.unwrap_or("").as_bytes()).into_owned().collect()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A form body (urlencoded, at most [`MAX_FORM`]).
async fn form(req: Request) -> Result<(HeaderMap, Vec<(String, String)>), Response> {
    let (parts, body) = req.into_parts();
    let form_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "a form post is expected"));
    }
    let bytes = axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| plain(StatusCode::PAYLOAD_TOO_LARGE, "form too large"))?;
    Ok((parts.headers, url::form_urlencoded::parse(&bytes).into_owned().collect()))
}

/// A state-changing request's form, once the session, origin and CSRF checks passed.
async fn checked_form(dash: &Dashboard, req: Request) -> Result<(Current, Vec<(String, String)>), Response> {
    let (headers, pairs) = form(req).await?;
    match session::check_post(&dash.sessions, &headers, field(&pairs, "csrf")) {
        Ok(current) => Ok((current, pairs)),
        Err(Refused::NoSession) => Err(plain(StatusCode::UNAUTHORIZED, "sign in first: bastion dashboard")),
        Err(Refused::CrossOrigin) => {
            Err(plain(StatusCode::FORBIDDEN, "Forbidden: not sent by the dashboard's own page"))
        }
        Err(Refused::Csrf) => {
            Err(plain(StatusCode::FORBIDDEN, "Forbidden: missing or wrong CSRF token; reload the page"))
        }
    }
}

/// Back to the page the form was on, with a message.
fn done(dash: &Dashboard, current: &Current, back: &str, message: String) -> Response {
    dash.sessions.flash(&current.key, message);
    see_other(back)
}

fn back_to(pairs: &[(String, String)], default: &str) -> String {
    match field(pairs, "back") {
        Some(p) if pages::PAGES.iter().any(|(s, ..)| *p == format!("/dashboard/{s}")) => p.to_owned(),
        _ => default.to_owned(),
    }
}

fn sign_in(dash: &Dashboard, landing: String) -> Response {
    let Ok(id) = dash.sessions.open() else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "no randomness for a session id");
    };
    let mut r = html(StatusCode::OK, landing);
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&id, dash.secure)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn login_page(State(dash): State<Arc<Dashboard>>, req: Request) -> Response {
    let q = query(req.uri().query());
    let Some(link) = field(&q, "t") else {
        return html(StatusCode::OK, pages::login(None));
    };
    let redeemed = dash.with_store(|s| s.redeem_login_link(link, bastion_auth::now())).and_then(Result::ok);
    if redeemed != Some(true) {
        return html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some(
                "This sign-in link was already used or has expired. Run bastion dashboard for a new one.",
            )),
        );
    }
    sign_in(&dash, pages::signed_in())
}

async fn login_post(State(dash): State<Arc<Dashboard>>, req: Request) -> Response {
    let (headers, pairs) = match form(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    // No session yet, so no CSRF token: the origin check stands in (a forged sign-in would
    // need the owner secret anyway).
    if !session::same_origin(&headers) {
        return plain(StatusCode::FORBIDDEN, "Forbidden: not sent by the dashboard's own page");
    }
    let given = field(&pairs, "owner_secret").unwrap_or("");
    match dash.with_auth(|s| s.check_owner_secret(given)) {
        Some(Ok(Some(true))) => sign_in(&dash, pages::signed_in()),
        Some(Ok(None)) => html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some("No owner secret is set: run bastion owner-secret, or use bastion dashboard.")),
        ),
        _ => html(StatusCode::UNAUTHORIZED, pages::login(Some("That is not the owner secret."))),
    }
}

async fn logout(State(dash): State<Arc<Dashboard>>, req: Request) -> Response {
    let current = match checked_form(&dash, req).await {
        Ok((c, _)) => c,
        Err(r) => return r,
    };
    dash.sessions.close(&current.key);
    let mut r = see_other("/dashboard/login");
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(dash.secure)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "dashboard.css" => (CSS, "text/css; charset=utf-8"),
        "dashboard.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return plain(StatusCode::NOT_FOUND, "Not found"),
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "private, max-age=300")], body)
        .into_response()
}

/// The live feed for a signed-in page; it ends when the session does.
async fn events(State(dash): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    let Some(current) = dash.sessions.current(&headers, false) else {
        return plain(StatusCode::UNAUTHORIZED, "sign in first");
    };
    let rx = live::subscribe(&dash);
    let stream = futures_util::stream::unfold((rx, dash, current.key), |(mut rx, dash, key)| async move {
        loop {
            let kind = match rx.recv().await {
                Ok(k) => k,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => "all",
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            };
            if !dash.sessions.alive(&key) {
                return None;
            }
            if kind != "other" {
                let ev = Event::default().event("refresh").data(kind);
                return Some((Ok::<_, std::convert::Infallible>(ev), (rx, dash, key)));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

async fn status(dash: &Dashboard) -> (bool, String) {
    let s = dash.control(json!({"op": "status"})).await;
    (s["paused"] == true, s["mode"].as_str().unwrap_or("normal").to_owned())
}

async fn page(State(dash): State<Arc<Dashboard>>, Path(slug): Path<String>, req: Request) -> Response {
    if !pages::PAGES.iter().any(|(s, ..)| *s == slug) {
        return plain(StatusCode::NOT_FOUND, "Not found");
    }
    let Some(current) = dash.sessions.current(req.headers(), true) else {
        return see_other("/dashboard/login");
    };
    let q = query(req.uri().query());
    let body = render(&dash, &slug, &current, &q).await;
    let (paused, mode) = status(&dash).await;
    let frame = Frame {
        slug: &slug,
        csrf: &current.csrf,
        paused,
        mode: &mode,
        standalone: dash.standalone_mode(),
        flash: dash.sessions.take_flash(&current.key),
    };
    html(StatusCode::OK, pages::layout(&frame, &body))
}

async fn fragment(State(dash): State<Arc<Dashboard>>, Path(slug): Path<String>, req: Request) -> Response {
    if !pages::PAGES.iter().any(|(s, ..)| *s == slug) {
        return plain(StatusCode::NOT_FOUND, "Not found");
    }
    // A refresh is not a person's action: the idle clock keeps running.
    let Some(current) = dash.sessions.current(req.headers(), false) else {
        return plain(StatusCode::UNAUTHORIZED, "sign in first");
    };
    let q = query(req.uri().query());
    html(StatusCode::OK, render(&dash, &slug, &current, &q).await)
}

async fn render(dash: &Dashboard, slug: &str, current: &Current, q: &[(String, String)]) -> String {
    match slug {
        "now" => {
            let lines = journal::tail(&dash.journal);
            let calls: Vec<Value> = lines
                .iter()
                .rev()
                .filter(|l| journal::Kind::of(l) == journal::Kind::Call)
                .take(RECENT_CALLS)
                .cloned()
                .collect();
            let refused: Vec<Value> = lines
                .iter()
                .rev()
                .filter(|l| journal::Kind::of(l) == journal::Kind::Refused)
                .take(RECENT_REFUSED)
                .cloned()
                .collect();
            let inflight = match dash.backend {
                Backend::Hub { .. } => Some(dash.live.inflight()),
                Backend::Standalone { .. } => None,
            };
            pages::now(inflight.as_deref(), &calls, &refused)
        }
        "approvals" => {
            let list = dash.control(json!({"op": "list"})).await;
            let pending = list["pending"].as_array().cloned().unwrap_or_default();
            let recent: Vec<Value> = journal::tail(&dash.journal)
                .into_iter()
                .rev()
                .filter(|l| {
                    matches!(
                        l.get("event").and_then(Value::as_str),
                        Some("approval_decision" | "approval_expired" | "approval_withdrawn")
                    )
                })
                .take(20)
                .collect();
            let mut out = pages::approvals(&current.csrf, &pending, &recent);
            if list["ok"] != true {
                out.insert_str(
                    0,
                    &format!("<p class=\"error\">{}</p>", pages::esc(list["message"].as_str().unwrap_or(""))),
                );
            }
            out
        }
        "upstreams" => match &dash.backend {
            Backend::Hub { hub, .. } => {
                let stats = hub.upstream_stats();
                let rows: Vec<pages::UpstreamRow> = hub
                    .upstreams()
                    .iter()
                    .map(|u| {
                        let (state, tools) = match u.status() {
                            Status::Ready { tools, .. } => ("ready", tools.len()),
                            Status::Starting => ("starting", 0),
                            Status::Failed(_) => ("failed", 0),
                        };
                        let s = stats.iter().find(|s| s.upstream == u.spec.name);
                        pages::UpstreamRow {
                            name: u.spec.name.clone(),
                            kind: u.spec.source.kind().to_owned(),
                            state: state.to_owned(),
                            tools,
                            restarts: u.restarts(),
                            last_error: u.last_error(),
                            stats: s.map(|s| (s.calls, s.errors, s.p50, s.p95)),
                        }
                    })
                    .collect();
                pages::upstreams(&current.csrf, &rows)
            }
            Backend::Standalone { .. } => pages::standalone_status(&dash.control(json!({"op": "status"})).await),
        },
        "access" => {
            let (paused, mode) = status(dash).await;
            let now = bastion_auth::now();
            let mut data = pages::AccessData { tokens: vec![], grants: vec![], mode, paused, no_store: None };
            if dash.standalone_mode() {
                data.no_store = Some("A server alone over stdio has no tokens: its client starts it.");
            } else if let Some(Ok((tokens, grants))) =
                dash.with_auth(|s| Ok::<_, bastion_auth::StoreError>((s.tokens(now)?, s.grants(now)?)))
            {
                data.tokens = tokens;
                data.grants = grants;
            }
            pages::access(&current.csrf, &data, now)
        }
        "journal" => {
            let get = |k: &str| field(q, k).unwrap_or("").trim().to_owned();
            let query = journal::Query {
                from: get("from"),
                to: get("to"),
                principal: get("principal"),
                tool: get("tool"),
                outcome: get("outcome"),
                text: get("text"),
            };
            let page: usize = get("page").parse().unwrap_or(0).min(100_000);
            let path = dash.journal.clone();
            let q2 = query.clone();
            let result = tokio::task::spawn_blocking(move || journal::search(&path, &q2, page, PER_PAGE)).await;
            match result {
                Ok(r) => pages::journal(&query, page, &r),
                Err(e) => format!("<p class=\"error\">{}</p>", pages::esc(&e.to_string())),
            }
        }
        "health" => health(dash),
        _ => String::new(),
    }
}

fn health(dash: &Dashboard) -> String {
    let lines = journal::tail(&dash.journal);
    let now = std::time::SystemTime::now();
    let now_min = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() / 60).unwrap_or(0);
    let mut minutes: Vec<pages::Minute> = (0..CHART_MINUTES as u64)
        .rev()
        .map(|ago| {
            let m = now_min.saturating_sub(ago);
            pages::Minute { label: format!("{:02}:{:02}", (m / 60) % 24, m % 60), calls: 0, errors: 0 }
        })
        .collect();
    let mut durations: std::collections::BTreeMap<String, (Vec<f64>, u64)> = Default::default();
    for l in lines.iter().filter(|l| journal::Kind::of(l) == journal::Kind::Call) {
        let ok = l.get("outcome").and_then(Value::as_str) == Some("ok");
        let time = l.get("time").and_then(Value::as_str).unwrap_or("");
        if let Ok(t) = humantime::parse_rfc3339_weak(time) {
            let m = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() / 60).unwrap_or(0);
            if m <= now_min && now_min - m < CHART_MINUTES as u64 {
                let slot = &mut minutes[CHART_MINUTES - 1 - (now_min - m) as usize];
                slot.calls += 1;
                slot.errors += u64::from(!ok);
            }
        }
        let tool = l.get("tool").and_then(Value::as_str).unwrap_or("");
        let upstream = tool.split_once("__").map_or(tool, |(u, _)| u).to_owned();
        let e = durations.entry(upstream).or_default();
        e.0.push(l.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0) / 1000.0);
        e.1 += u64::from(!ok);
    }
    let (rows, source) = match &dash.backend {
        Backend::Hub { hub, .. } => (
            hub.upstream_stats()
                .into_iter()
                .map(|s| pages::HealthRow {
                    name: s.upstream,
                    calls: s.calls,
                    errors: s.errors,
                    p50: s.p50,
                    p95: s.p95,
                })
                .collect::<Vec<_>>(),
            "the hub's histograms since it started",
        ),
        Backend::Standalone { .. } => (
            durations
                .into_iter()
                .map(|(name, (mut d, errors))| {
                    d.sort_by(f64::total_cmp);
                    let at = |q: f64| {
                        d.get(((d.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0.0)
                    };
                    pages::HealthRow { name, calls: d.len() as u64, errors, p50: at(0.5), p95: at(0.95) }
                })
                .collect(),
            "the journal's recent calls",
        ),
    };
    pages::health(&minutes, &rows, source)
}

async fn decide(State(dash): State<Arc<Dashboard>>, req: Request) -> Response {
    let (current, pairs) = match checked_form(&dash, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let id = field(&pairs, "id").unwrap_or("");
    let approve = field(&pairs, "decision") == Some("approve");
    let reason = field(&pairs, "reason").map(str::trim).filter(|r| !r.is_empty());
    let op = if approve { "approve" } else { "deny" };
    let a = dash.control(json!({"op": op, "id": id, "reason": reason, "channel": "dashboard"})).await;
    let msg = if a["ok"] == true {
        format!("{} {id}", if approve { "Approved" } else { "Denied" })
    } else {
        format!("Could not {op} {id}: {}", a["message"].as_str().unwrap_or("error"))
    };
    done(&dash, &current, "/dashboard/approvals", msg)
}

async fn switch(dash: &Dashboard, req: Request, request: Value, what: &str) -> Response {
    let (current, pairs) = match checked_form(dash, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut request = request;
    if request["op"] == "mode" {
        request["mode"] = json!(field(&pairs, "mode").unwrap_or(""));
    }
    let a = dash.control(request).await;
    let msg =
        if a["ok"] == true { what.to_owned() } else { format!("Failed: {}", a["message"].as_str().unwrap_or("error")) };
    done(dash, &current, &back_to(&pairs, "/dashboard/access"), msg)
}

async fn pause(State(dash): State<Arc<Dashboard>>, req: Request) -> Response {
    switch(&dash, req, json!({"op": "pause", "channel": "dashboard"}), "Paused: every call is refused").await
}

async fn resume(State(dash): State<Arc<Dashboard>>, req: Request) -> Response {
    switch(&dash, req, json!({"op": "resume", "channel": "dashboard"}), "Resumed").await
}

async fn mode(State(dash): State<Arc<Dashboard>>, req: Request) -> Response {
    switch(&dash, req, json!({"op": "mode", "channel": "dashboard"}), "Mode set").await
}

async fn restart(State(dash): State<Arc<Dashboard>>, Path(name): Path<String>, req: Request) -> Response {
    let (current, _) = match checked_form(&dash, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let msg = match &dash.backend {
        Backend::Hub { hub, .. } => match hub.upstreams().iter().find(|u| u.spec.name == name) {
            Some(u) => {
                u.restart();
                dash.journal_event("upstream_restart", json!({"upstream": name, "channel": "dashboard"}));
                format!("Restarting {name}")
            }
            None => format!("No upstream named {name}"),
        },
        Backend::Standalone { .. } => "A server alone is restarted by its client".to_owned(),
    };
    done(&dash, &current, "/dashboard/upstreams", msg)
}

fn scopes(text: &str) -> Result<Vec<bastion_auth::Scope>, String> {
    text.split([',', ' ']).filter(|s| !s.is_empty()).map(|s| s.parse().map_err(|e| format!("{e}"))).collect()
}

async fn create_token(State(dash): State<Arc<Dashboard>>, req: Request) -> Response {
    let (current, pairs) = match checked_form(&dash, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if dash.standalone_mode() {
        return done(&dash, &current, "/dashboard/access", "A server alone has no tokens".into());
    }
    let name = field(&pairs, "name").unwrap_or("").trim().to_owned();
    let expires = match field(&pairs, "expires").map(str::trim).filter(|e| !e.is_empty()) {
        None => None,
        Some(e) => match humantime::parse_duration(e) {
            Ok(d) => Some(d),
            Err(e) => return done(&dash, &current, "/dashboard/access", format!("Expiry: {e}")),
        },
    };
    let scopes = match scopes(field(&pairs, "scopes").unwrap_or("")) {
        Ok(s) => s,
        Err(e) => return done(&dash, &current, "/dashboard/access", format!("Scopes: {e}")),
    };
    let created = dash.with_auth(|s| s.create_token(&name, &scopes, expires, bastion_auth::now()));
    match created {
        Some(Ok((rec, secret))) => {
            let listed: Vec<String> = rec.scopes.iter().map(ToString::to_string).collect();
            dash.journal_event(
                "token_created",
                json!({"name": rec.name, "id": rec.id, "scopes": listed, "channel": "dashboard"}),
            );
            let (paused, mode) = status(&dash).await;
            let frame =
                Frame { slug: "access", csrf: &current.csrf, paused, mode: &mode, standalone: false, flash: None };
            let mut r = html(StatusCode::OK, pages::layout(&frame, &pages::token_created(&rec.name, &secret)));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Some(Err(e)) => done(&dash, &current, "/dashboard/access", format!("Not created: {}", e.0)),
        None => done(&dash, &current, "/dashboard/access", "This hub has no token store".into()),
    }
}

async fn revoke(State(dash): State<Arc<Dashboard>>, req: Request) -> Response {
    let (current, pairs) = match checked_form(&dash, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let name = field(&pairs, "name").unwrap_or("").to_owned();
    let now = bastion_auth::now();
    let r = dash
        .with_auth(|s| Ok::<_, bastion_auth::StoreError>((s.revoke_tokens(&name, now)?, s.revoke_grants(&name, now)?)));
    let msg = match r {
        Some(Ok((0, 0))) => format!("Nothing live is named {name}"),
        Some(Ok((t, g))) => {
            dash.journal_event(
                "token_revoked",
                json!({"name": name, "tokens": t, "grants": g, "channel": "dashboard"}),
            );
            format!("Revoked {name}")
        }
        Some(Err(e)) => format!("Not revoked: {}", e.0),
        None => "No token store".into(),
    };
    done(&dash, &current, "/dashboard/access", msg)
}

async fn revoke_all(State(dash): State<Arc<Dashboard>>, req: Request) -> Response {
    let (current, pairs) = match checked_form(&dash, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if field(&pairs, "confirm") != Some("yes") {
        return done(&dash, &current, "/dashboard/access", "Tick the box to revoke everything".into());
    }
    let msg = match dash.with_auth(|s| s.revoke_all(bastion_auth::now())) {
        Some(Ok(r)) => {
            dash.journal_event("revoke_all", json!({"tokens": r.tokens, "grants": r.grants, "channel": "dashboard"}));
            format!("Revoked every token ({}) and every OAuth grant ({})", r.tokens, r.grants)
        }
        Some(Err(e)) => format!("Failed: {}", e.0),
        None => "No token store".into(),
    };
    done(&dash, &current, "/dashboard/access", msg)
}

async fn elevate(State(dash): State<Arc<Dashboard>>, req: Request) -> Response {
    let (current, pairs) = match checked_form(&dash, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let name = field(&pairs, "name").unwrap_or("").trim().to_owned();
    let added = match scopes(field(&pairs, "scopes").unwrap_or("")) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => return done(&dash, &current, "/dashboard/access", "Give the scopes to add".into()),
        Err(e) => return done(&dash, &current, "/dashboard/access", format!("Scopes: {e}")),
    };
    let duration = match humantime::parse_duration(field(&pairs, "for").unwrap_or("").trim()) {
        Ok(d) => d,
        Err(e) => return done(&dash, &current, "/dashboard/access", format!("Duration: {e}")),
    };
    let now = bastion_auth::now();
    let until = now.saturating_add(duration.as_secs());
    let msg = match dash.with_auth(|s| s.elevate(&name, &added, until, now)) {
        Some(Ok(e)) if e.is_empty() => format!("Nothing live is named {name}"),
        Some(Ok(elevated)) => {
            let listed: Vec<String> = added.iter().map(ToString::to_string).collect();
            let until_text =
                humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(until)).to_string();
            dash.journal_event(
                "elevation",
                json!({"name": name, "elevated": elevated, "scopes": listed, "until": until_text,
                       "seconds": duration.as_secs(), "channel": "dashboard"}),
            );
            format!("Added {} to {} until {until_text}", listed.join(", "), elevated.join(", "))
        }
        Some(Err(e)) => format!("Failed: {}", e.0),
        None => "No token store".into(),
    };
    done(&dash, &current, "/dashboard/access", msg)
}

/// Whether a request is for the dashboard (the hub's guard lets these through without a
/// bearer token; the dashboard's own session checks apply instead).
pub fn is_dashboard_path(path: &str) -> bool {
    path == "/dashboard" || path.starts_with("/dashboard/")
}

#[cfg(test)]
mod tests;
