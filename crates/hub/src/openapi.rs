//! The OpenAPI facade, for clients that speak HTTP actions rather than MCP (ChatGPT's Custom GPT
//! Actions, Open WebUI's tool servers, any OpenAPI client):
//!
//! | route | what |
//! |---|---|
//! | `GET /openapi.json` | an OpenAPI 3.1 document with one `POST /tools/{name}` operation per tool the caller's token may call (`operationId` = the tool's name) |
//! | `POST /tools/{name}` | the call: the JSON body is the arguments; the answer the structured result (`application/json`) or the text (`text/plain`) |
//! | `GET /fetch/{id}` | the read route of `search`'s results: `fetch`'s text |
//!
//! They sit behind the same guard as `/mcp` (Host, Origin, bearer token or OAuth access token)
//! and every call goes through [`Hub::call`], so scopes, approvals, timeouts, metrics and the
//! journal are those of `/mcp`. A tool error is an HTTP error whose JSON body is Bastion's
//! `{"code","message"}`, the status chosen from the code ([`status_of`]).
//!
//! `bastion openapi` prints the same document for a `*:*` token, for pasting into a Custom GPT.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bastion_auth::Principal;
use clap::Args;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, JsonObject, Tool};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cli::UpstreamArgs;
use crate::router::{CallSite, Hub};

/// What the facade's routes share.
#[derive(Clone)]
struct Facade {
    hub: Hub,
    /// In OAuth mode, the issuer (the public origin): the document's server URL.
    public_origin: Option<Arc<str>>,
    /// In OAuth mode, the protected-resource metadata named in a 403's challenge.
    resource_metadata: Option<Arc<str>>,
    /// The per-tool rate limits, checked as on `/mcp`.
    limiter: crate::limits::Limiter,
}

/// The facade's routes (the caller's [`Principal`] is in the request's extensions, put there by
/// the guard); `auth` says whether the hub is in OAuth mode.
pub fn routes(hub: Hub, auth: &bastion_auth::Authenticator, limiter: crate::limits::Limiter) -> Router {
    let facade = Facade {
        hub,
        limiter,
        public_origin: auth.oauth().map(|o| Arc::from(o.issuer())),
        resource_metadata: auth.oauth().map(|o| Arc::from(o.resource_metadata_url())),
    };
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/tools/{name}", post(call_tool))
        .route("/fetch/{id}", get(fetch))
        .with_state(facade)
}

/// The OpenAPI 3.1 document of the tools `who` may call, served at `server_url`.
pub fn document(hub: &Hub, who: &Principal, server_url: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "description": "A refused or failed call: a stable snake_case code and what to do instead.",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"]
        }),
    );
    for tool in hub.visible_tools(who) {
        paths.insert(format!("/tools/{}", tool.name), json!({"post": operation(&tool, &mut schemas)}));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Bastion",
            "version": env!("CARGO_PKG_VERSION"),
            "description": concat!(
                "Bastion's tools (files, git, allowlisted commands) as HTTP actions: POST the arguments as JSON. ",
                "Only the tools this token may call are listed. ",
                bastion_server_kit::untrusted_content!()
            ),
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    })
}

/// GPT Actions refuse an operation whose description passes 300 characters.
const MAX_DESCRIPTION: usize = 300;

/// One `POST /tools/{name}` operation; subschemas the tool's schemas define (`$defs`) move to
/// `components/schemas` under the tool's name, since a `$ref` in the document resolves against
/// the document.
fn operation(tool: &Tool, schemas: &mut serde_json::Map<String, Value>) -> Value {
    let name = tool.name.as_ref();
    let mut description: String = tool.description.as_deref().unwrap_or_default().to_owned();
    if description.chars().count() > MAX_DESCRIPTION {
        description = description.chars().take(MAX_DESCRIPTION - 1).collect::<String>() + "…";
    }
    let summary = tool.title.clone().or_else(|| tool.annotations.as_ref().and_then(|a| a.title.clone()));
    let input = schema(name, "input", &tool.input_schema, schemas);
    let ok = match &tool.output_schema {
        Some(out) => json!({
            "description": "The tool's structured result.",
            "content": {"application/json": {"schema": schema(name, "output", out, schemas)}}
        }),
        // No declared output: the result as the tool gives it, structured when it is.
        None => json!({
            "description": "The tool's structured result when it gives one, else its text.",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/plain": {"schema": {"type": "string"}}
            }
        }),
    };
    let error = json!({
        "description": "Refused or failed: the code says why (insufficient_scope 403, not_found 404, timeout 504, …).",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    });
    let mut op = json!({
        "operationId": name,
        "description": description,
        "requestBody": {"required": true, "content": {"application/json": {"schema": input}}},
        "responses": {"200": ok, "default": error},
    });
    if let Some(s) = summary {
        op["summary"] = s.into();
    }
    if tool.annotations.as_ref().and_then(|a| a.read_only_hint) != Some(true) {
        op["x-openai-isConsequential"] = true.into();
    }
    op
}

/// A tool's schema made a schema of the document: without `$schema`, its `$defs` (or
/// `definitions`) moved to `components/schemas` as `{tool}.{kind}.{name}` and their `$ref`s
/// rewritten.
fn schema(tool: &str, kind: &str, given: &JsonObject, schemas: &mut serde_json::Map<String, Value>) -> Value {
    let mut s = given.clone();
    s.remove("$schema");
    let prefix = format!("{tool}.{kind}.");
    for key in ["$defs", "definitions"] {
        if let Some(Value::Object(defs)) = s.remove(key) {
            for (name, mut def) in defs {
                rewrite_refs(&mut def, &prefix);
                schemas.insert(format!("{prefix}{}", component_name(&name)), def);
            }
        }
    }
    let mut v = Value::Object(s);
    rewrite_refs(&mut v, &prefix);
    v
}

/// Component names must match `^[a-zA-Z0-9._-]+$`.
fn component_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
}

fn rewrite_refs(v: &mut Value, prefix: &str) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                let local = r.strip_prefix("#/$defs/").or_else(|| r.strip_prefix("#/definitions/"));
                if let Some(name) = local {
                    *r = format!("#/components/schemas/{prefix}{}", component_name(name));
                }
            }
            m.values_mut().for_each(|v| rewrite_refs(v, prefix));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| rewrite_refs(v, prefix)),
        _ => {}
    }
}

/// The HTTP status of a tool error, by its stable code: refusals 403, missing things 404,
/// conflicts 409, budgets 413, bad arguments 400, unavailable 503, upstream failures 502,
/// timeouts 504; any other failure of the tool 422.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "invalid_argument"
        | "invalid_path"
        | "invalid_revision"
        | "invalid_reference_name"
        | "argument_not_allowed" => StatusCode::BAD_REQUEST,
        "insufficient_scope"
        | "tier_not_allowed"
        | "path_outside_root"
        | "denied_by_glob"
        | "protected_path"
        | "permission_denied"
        | "command_not_allowed"
        | "approval_denied"
        | "mode_observe"
        | "repository_not_owned"
        | "hardlinked_file"
        | "redacted_content" => StatusCode::FORBIDDEN,
        "not_found" | "process_not_found" => StatusCode::NOT_FOUND,
        "already_exists"
        | "stale"
        | "precondition_failed"
        | "would_overwrite_changes"
        | "merge_conflict"
        | "edit_mismatch"
        | "busy"
        | "approval_pending" => StatusCode::CONFLICT,
        "too_large" | "budget_exceeded" => StatusCode::PAYLOAD_TOO_LARGE,
        "upstream_unavailable" | "paused" | "sandbox_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "upstream_error" => StatusCode::BAD_GATEWAY,
        "timeout" | "approval_timeout" => StatusCode::GATEWAY_TIMEOUT,
        "io_error" | "invalid_config" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], json!({"code": code, "message": message}).to_string())
        .into_response()
}

fn caller(principal: Option<axum::Extension<Principal>>) -> Principal {
    // The guard attaches a principal to every request it lets through here; without one the
    // caller is nobody (fail closed).
    principal.map(|p| p.0).unwrap_or_else(Principal::nobody)
}

async fn openapi_json(
    State(f): State<Facade>,
    principal: Option<axum::Extension<Principal>>,
    headers: HeaderMap,
) -> Response {
    let server = match &f.public_origin {
        Some(origin) => origin.to_string(),
        None => {
            // The guard has checked Host against the allowed hosts: loopback (plain http) or the
            // public URL's host (https behind its proxy).
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
            let loopback = ["localhost", "127.", "[::1]"].iter().any(|l| host.starts_with(l));
            format!("{}://{host}", if loopback { "http" } else { "https" })
        }
    };
    let doc = document(&f.hub, &caller(principal), &server);
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], doc.to_string()).into_response()
}

async fn call_tool(
    State(f): State<Facade>,
    Path(name): Path<String>,
    principal: Option<axum::Extension<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = caller(principal);
    let arguments = if body.iter().all(u8::is_ascii_whitespace) {
        JsonObject::new()
    } else {
        // Only JSON runs anything: a browser may send a cross-site text/plain or form POST
        // without a preflight.
        let json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_argument",
                "send the arguments as a JSON object with Content-Type: application/json",
            );
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return error(StatusCode::BAD_REQUEST, "invalid_argument", "the body must be a JSON object"),
            Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_argument", &format!("the body is not JSON: {e}")),
        }
    };
    match run(&f, who.clone(), &name, arguments).await {
        Ok(result) => answer(&f, &who, &name, result, |r| match r.structured_content {
            Some(v) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response(),
            None => text_answer(&r),
        }),
        Err(response) => response,
    }
}

/// `GET /fetch/{id}`: the text `fetch` answers, as `text/plain`.
async fn fetch(
    State(f): State<Facade>,
    Path(id): Path<String>,
    principal: Option<axum::Extension<Principal>>,
) -> Response {
    let who = caller(principal);
    let mut args = JsonObject::new();
    args.insert("id".into(), id.into());
    match run(&f, who.clone(), "fetch", args).await {
        Ok(result) => answer(&f, &who, "fetch", result, |r| {
            let text = r.structured_content.as_ref().and_then(|v| v["text"].as_str()).unwrap_or_default().to_owned();
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }),
        Err(response) => response,
    }
}

fn text_answer(r: &CallToolResult) -> Response {
    let texts: Vec<&str> = r.content.iter().filter_map(|c| c.as_text().map(|t| t.text.as_str())).collect();
    if texts.is_empty() && !r.content.is_empty() {
        // Images and other blocks: the content as MCP has it.
        let body = serde_json::to_string(&r.content).unwrap_or_default();
        return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], texts.join("\n")).into_response()
}

/// Runs one call through [`Hub::call`] in its own task (cancelled upstream if the client goes
/// away, as on `/mcp`); a JSON-RPC error becomes its HTTP answer.
async fn run(f: &Facade, who: Principal, name: &str, arguments: JsonObject) -> Result<CallToolResult, Response> {
    let hub = &f.hub;
    if let Err(limited) = crate::limits::check_tool(&f.limiter, hub, &who, name, Some(&arguments)) {
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", &limited.to_error().message);
        r.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from(limited.retry_after_secs()));
        return Err(r);
    }
    let cancelled = CancellationToken::new();
    let on_disconnect = cancelled.clone().drop_guard();
    let site = CallSite { cancelled, progress: None, peer: None };
    let mut params = CallToolRequestParams::new(name.to_owned());
    params.arguments = Some(arguments);
    let hub = hub.clone();
    let outcome = tokio::spawn(async move { hub.call(&who, params, &site).await }).await;
    on_disconnect.disarm();
    match outcome {
        Ok(Ok(CallToolResponse::Complete(r))) => Ok(r),
        Ok(Ok(_)) => Err(error(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "the tool asked for input or started a task, which an HTTP action cannot follow; use /mcp",
        )),
        Ok(Err(e)) if e.code == rmcp::model::ErrorCode::INVALID_PARAMS && e.message.starts_with("unknown tool") => {
            Err(error(StatusCode::NOT_FOUND, "not_found", &e.message))
        }
        Ok(Err(e)) if e.code == rmcp::model::ErrorCode::INVALID_PARAMS => {
            Err(error(StatusCode::BAD_REQUEST, "invalid_argument", &e.message))
        }
        Ok(Err(e)) => Err(error(StatusCode::BAD_GATEWAY, "upstream_error", &e.message)),
        Err(panic) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "io_error", &format!("the call failed: {panic}"))),
    }
}

/// A successful result through `ok`; a tool error as its status and `{code, message}`, with the
/// scope challenge on an `insufficient_scope`.
fn answer(
    f: &Facade,
    who: &Principal,
    name: &str,
    r: CallToolResult,
    ok: impl FnOnce(CallToolResult) -> Response,
) -> Response {
    if r.is_error != Some(true) {
        return ok(r);
    }
    let (code, message) = match &r.structured_content {
        Some(v) if v["code"].is_string() => {
            (v["code"].as_str().unwrap_or_default().to_owned(), v["message"].as_str().unwrap_or_default().to_owned())
        }
        _ => {
            let text: Vec<&str> = r.content.iter().filter_map(|c| c.as_text().map(|t| t.text.as_str())).collect();
            ("upstream_error".to_owned(), text.join("\n"))
        }
    };
    let mut response = error(status_of(&code), &code, &message);
    if code == "insufficient_scope"
        && let Some(needed) = f.hub.required_scope(who, name)
    {
        let challenge = bastion_auth::challenge::insufficient_scope(&needed, f.resource_metadata.as_deref(), &message);
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    response
}

/// Flags of `bastion openapi`.
#[derive(Args, Debug)]
pub struct OpenapiArgs {
    /// Which upstreams (as `bastion serve` would run them).
    #[command(flatten)]
    pub upstreams: UpstreamArgs,
    /// The URL the document names as its server (default: the configuration's public URL's
    /// origin, else http://127.0.0.1:8765).
    #[arg(long, value_name = "URL")]
    pub server_url: Option<String>,
}

/// `bastion openapi`: starts the upstreams, prints the OpenAPI document of every tool (as a
/// `*:*` token sees it), and exits.
pub async fn print(args: OpenapiArgs) -> anyhow::Result<()> {
    let specs = crate::settings::HubSettings::upstreams_of(&args.upstreams)?;
    let offer = crate::settings::HubSettings::search_fetch_of(&args.upstreams)?;
    let server_url = match args.server_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => crate::search_fetch::SearchFetch::new(offer.public_url.as_deref())
            .public_base
            .unwrap_or_else(|| format!("http://{}", crate::settings::DEFAULT_LISTEN)),
    };
    let supervised = crate::serve::Supervised::start(specs);
    let upstreams = supervised.upstreams.clone();
    crate::serve::wait_ready(&upstreams, Duration::from_secs(30)).await;
    let mut hub = Hub::new(upstreams, bastion_policy::audit::AuditLog::disabled(), true);
    if offer.on {
        hub = hub.with_search_fetch(crate::search_fetch::SearchFetch::new(offer.public_url.as_deref()));
    }
    let doc = document(&hub, &Principal::unrestricted("openapi"), &server_url);
    println!("{}", serde_json::to_string_pretty(&doc)?);
    supervised.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defs_move_to_components() {
        let given: JsonObject = serde_json::from_value(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/Thing"}, "b": {"type": "array", "items": {"$ref": "#/$defs/Thing"}}},
            "$defs": {"Thing": {"type": "object", "properties": {"c": {"$ref": "#/$defs/Other"}}}, "Other": {"type": "string"}}
        }))
        .unwrap();
        let mut schemas = serde_json::Map::new();
        let s = schema("fs__x", "input", &given, &mut schemas);
        assert!(s.get("$schema").is_none() && s.get("$defs").is_none());
        assert_eq!(s["properties"]["a"]["$ref"], "#/components/schemas/fs__x.input.Thing");
        assert_eq!(s["properties"]["b"]["items"]["$ref"], "#/components/schemas/fs__x.input.Thing");
        assert_eq!(schemas["fs__x.input.Thing"]["properties"]["c"]["$ref"], "#/components/schemas/fs__x.input.Other");
        assert_eq!(schemas["fs__x.input.Other"], json!({"type": "string"}));
    }

    #[test]
    fn codes_map_to_statuses() {
        for (code, status) in [
            ("insufficient_scope", 403),
            ("denied_by_glob", 403),
            ("approval_denied", 403),
            ("not_found", 404),
            ("invalid_argument", 400),
            ("stale", 409),
            ("too_large", 413),
            ("upstream_unavailable", 503),
            ("timeout", 504),
            ("binary_file", 422),
        ] {
            assert_eq!(status_of(code).as_u16(), status, "{code}");
        }
    }
}
