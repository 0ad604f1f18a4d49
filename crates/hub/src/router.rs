//! The hub's MCP face: one `ServerHandler` whose tools are every upstream's tools, renamed
//! `{upstream}__{tool}`, filtered by the caller's scopes, and routed back by prefix.
//!
//! Tool definitions pass through unchanged (title, description, schemas, `_meta`) except the name
//! and missing annotation hints, which are filled conservatively (see [`crate::scope`]). Results
//! and JSON-RPC errors of upstreams are returned unchanged.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bastion_policy::audit::{AuditLog, AuditRecord, millis, now_rfc3339, redact};
use bastion_policy::{Error, ErrorCode, Tier};
use bastion_server_kit::{call_outcome, error_result};
#[allow(deprecated, reason = "SetLevelRequestParams: logging/setLevel is served on the legacy protocols")]
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, CallToolResult, CancelledNotificationParam,
    ClientRequest, CompleteRequestMethod, CompleteRequestParams, CompleteResult, DiscoverResult, Implementation,
    JsonObject, ListPromptsRequestMethod, ListPromptsResult, ListResourceTemplatesRequestMethod,
    ListResourceTemplatesResult, ListResourcesRequestMethod, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressToken, ServerCapabilities, ServerConfig, ServerResult, SetLevelRequestMethod,
    SetLevelRequestParams, Tool,
};
use rmcp::service::{NotificationContext, Peer, PeerRequestOptions, RequestContext, ServiceError};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, UpstreamGauge};
use crate::scope;
use crate::upstream::{Source, Status, Upstream};
use bastion_auth::Principal;

/// One tool of the merged surface.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Index of its upstream.
    pub upstream: usize,
    /// The upstream's own name for it.
    pub inner: String,
    /// Its tier, from its annotations.
    pub tier: Tier,
    /// The tier the default approval rules see: the same, except that a tool which does not
    /// declare `destructiveHint` (counted destructive for scopes, as MCP presumes) is not asked
    /// about by default as if it had declared it; a rule can still ask for it by server.
    pub approval_tier: Tier,
    /// The definition as offered (namespaced name, filled annotations).
    pub tool: Tool,
    /// `Some` for the hub's own `search` and `fetch`, answered by the hub through its upstream's
    /// tools rather than forwarded under `inner`.
    pub hub_tool: Option<crate::search_fetch::HubTool>,
}

/// The merged surface of the upstreams that are ready, plus the tools that could not be offered.
#[derive(Default)]
pub struct Catalogue {
    /// Offered tools, in upstream order then the upstream's order (deterministic).
    pub entries: Vec<Entry>,
    /// Why some tools are not offered (bad or over-long names, collisions).
    pub problems: Vec<String>,
}

/// Builds the catalogue from the upstreams' current tool lists.
pub fn catalogue(upstreams: &[Arc<Upstream>], naming: &scope::Naming) -> Catalogue {
    let ready: Vec<_> = upstreams
        .iter()
        .map(|u| match u.status() {
            Status::Ready { tools, .. } => Some(tools),
            _ => None,
        })
        .collect();
    merge(
        upstreams.iter().zip(&ready).enumerate().filter_map(|(i, (u, tools))| {
            tools.as_ref().map(|t| (i, u.spec.name.as_str(), &u.spec.source, t.as_slice()))
        }),
        naming,
    )
}

/// Merges `(index, upstream name, source, tools)` into one surface, named by `naming`. A tool
/// whose name is invalid, too long (and has no alias) or already taken is not offered (a client
/// would reject the whole list or call the wrong tool); it is reported in
/// [`Catalogue::problems`] (`/readyz`, `bastion tools`, the log) instead, as is an alias that
/// names no tool of an upstream that is up.
pub fn merge<'a>(
    upstreams: impl Iterator<Item = (usize, &'a str, &'a Source, &'a [Tool])>,
    naming: &scope::Naming,
) -> Catalogue {
    let mut cat = Catalogue::default();
    let mut seen = std::collections::HashSet::new();
    for (i, upstream, source, tools) in upstreams {
        for a in naming.aliases.iter().filter(|a| a.upstream == upstream) {
            if !tools.iter().any(|t| t.name == a.tool) {
                cat.problems.push(format!("{upstream}: [[alias]] '{}' names no tool '{}'", a.name, a.tool));
            }
        }
        for t in tools {
            let name = match naming.name_for(upstream, &t.name) {
                Ok(n) => n,
                Err(why) => {
                    cat.problems.push(format!("{upstream}: tool '{}' not offered: {why}", t.name));
                    continue;
                }
            };
            if !seen.insert(name.clone()) {
                cat.problems.push(format!("{upstream}: tool '{}' not offered: '{name}' is listed twice", t.name));
                continue;
            }
            let declared = t.annotations.as_ref().and_then(|a| a.destructive_hint).is_some();
            let mut tool = t.clone();
            tool.name = name.into();
            scope::fill_annotations(&mut tool);
            let tier = source.tier_of(&tool, &t.name);
            let approval_tier = if tier == Tier::Destructive && !declared { Tier::Write } else { tier };
            cat.entries.push(Entry {
                upstream: i,
                inner: t.name.to_string(),
                tier,
                approval_tier,
                tool,
                hub_tool: None,
            });
        }
    }
    cat
}

/// Sends a watched call's `Ended` however the call ends (answered, cancelled, dropped).
struct Ending<'a> {
    feed: &'a tokio::sync::broadcast::Sender<CallEvent>,
    seq: u64,
}

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        let _ = self.feed.send(CallEvent::Ended { seq: self.seq });
    }
}

/// Numbers the calls the feed reports.
static NEXT_CALL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Per-call timeout unless configured: above the shell server's longest command timeout, so
/// the servers' own limits normally answer first.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The aggregating server. Cheap to clone (the HTTP transport makes one per request).
#[derive(Clone)]
pub struct Hub {
    upstreams: Arc<Vec<Arc<Upstream>>>,
    /// The merged catalogue and the upstream generations it was built from.
    cache: Arc<Mutex<(Vec<u64>, Arc<Catalogue>)>>,
    audit: Arc<AuditLog>,
    /// Who a request without an attached principal is: nobody over HTTP (fail closed, should
    /// a transport path ever skip the auth layer's extension), everything over stdio.
    fallback: Arc<Principal>,
    /// Longest a call may take before the hub cancels it.
    call_timeout: Duration,
    metrics: Arc<Metrics>,
    /// Whether clients are told of tool list changes (stdio and stateful HTTP: the client
    /// keeps a stream open; stateless HTTP has none, so it declares `listChanged: false`).
    list_changed: bool,
    /// Clients that initialised and can be told of tool list changes.
    listeners: Arc<Mutex<Vec<Peer<RoleServer>>>>,
    /// The approval gate (`None`: every call that passes the scopes runs).
    approvals: Option<Arc<crate::approvals::HubApprovals>>,
    /// Calls starting and ending, for whoever watches (the dashboard's in-flight list). Sent only
    /// while someone subscribes: with no receiver a call pays one check of the receiver count.
    feed: tokio::sync::broadcast::Sender<CallEvent>,
    /// The hub's own `search` and `fetch` over a built-in fs upstream (`None`: not offered).
    search_fetch: Option<Arc<crate::search_fetch::SearchFetch>>,
    /// How offered tools are named (`max_tool_name`, `[[alias]]`).
    naming: Arc<scope::Naming>,
    /// Tool search (`find_tools`, `call_tool`) and when it replaces the whole list.
    search: Arc<crate::toolsearch::ToolSearch>,
    /// The profile this surface is (`None`: the hub's own, at `/mcp`): named in the journal and
    /// the metrics, and only principals bound to it (or to none) reach it.
    profile: Option<Arc<str>>,
    /// The offered names this surface serves (a profile's `allow_tools`/`deny_tools`).
    offered: Option<Arc<crate::upstream::ToolFilter>>,
    /// The upstreams of every profile made from this hub ([`Hub::for_profile`]), by profile:
    /// the probes and the metrics of `/readyz` and `/metrics` cover them too.
    profile_upstreams: Arc<Mutex<Vec<ProfileUpstreams>>>,
    /// `Some` when this surface's upstreams start on first use ([`Hub::ensure_started`]).
    lazy: Option<Arc<LazyStart>>,
}

/// A profile's name, its upstreams, and whether they start on first use.
type ProfileUpstreams = (Arc<str>, Arc<Vec<Arc<Upstream>>>, Option<Arc<LazyStart>>);

/// A surface whose upstreams start when it is first used (a profile's over HTTP): a hub of many
/// profiles does not run every profile's processes from the start.
pub struct LazyStart {
    /// Set when the supervisors were spawned.
    started: std::sync::atomic::AtomicBool,
    once: tokio::sync::OnceCell<()>,
    /// Stops the supervisors (and so the children).
    shutdown: CancellationToken,
    supervisors: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl LazyStart {
    fn started(&self) -> bool {
        self.started.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// A call starting or ending, as the hub's feed sends it ([`Hub::subscribe_calls`]).
#[derive(Clone, Debug)]
pub enum CallEvent {
    /// A call arrived (before routing, the scope check and the approval gate).
    Started {
        /// Its number (unique in this process), matching the `Ended` event.
        seq: u64,
        /// Who calls.
        principal: String,
        /// The namespaced tool.
        tool: String,
        /// The arguments, redacted as in the journal.
        args: serde_json::Value,
        /// When (RFC 3339).
        time: String,
    },
    /// The call with this number answered.
    Ended {
        /// As in `Started`.
        seq: u64,
    },
}

/// How many call events a slow watcher may fall behind before it misses some (it then reloads).
const FEED_CAPACITY: usize = 256;

/// A tool error in the Bastion shape (text `code: message`, structured `{code, message}`).
pub fn tool_error(code: ErrorCode, message: &str) -> CallToolResult {
    error_result(&Error::new(code, message))
}

/// Where a call came from, besides who made it: what cancels it (the caller went away or sent
/// `notifications/cancelled`) and, if the caller asked for progress, where progress goes.
pub struct CallSite {
    /// Fires when the caller gives up.
    pub cancelled: CancellationToken,
    /// The caller and the `progressToken` it gave, if any.
    pub progress: Option<(Peer<RoleServer>, ProgressToken)>,
    /// The caller, when it is reachable (not on the direct stateless path): its client name
    /// and, for approvals, whether it can be asked through elicitation.
    pub peer: Option<Peer<RoleServer>>,
}

impl CallSite {
    fn of(ctx: &RequestContext<RoleServer>) -> CallSite {
        CallSite {
            cancelled: ctx.ct.clone(),
            progress: ctx.meta.get_progress_token().map(|token| (ctx.peer.clone(), token)),
            peer: Some(ctx.peer.clone()),
        }
    }
}

/// Who is calling: the principal the HTTP auth layer attached to the request, else `fallback`.
fn principal(ctx: &RequestContext<RoleServer>, fallback: &Principal) -> Principal {
    ctx.extensions
        .get::<axum::http::request::Parts>()
        .and_then(|p| p.extensions.get::<Principal>().cloned())
        .unwrap_or_else(|| fallback.clone())
}

impl Hub {
    /// A hub over these upstreams; `trusted` (stdio) lets a request without a principal call
    /// everything, otherwise such a request sees and may call nothing.
    pub fn new(upstreams: Vec<Arc<Upstream>>, audit: AuditLog, trusted: bool) -> Hub {
        let fallback = if trusted { Principal::unrestricted("stdio") } else { Principal::nobody() };
        Hub {
            upstreams: Arc::new(upstreams),
            cache: Arc::new(Mutex::new((vec![], Arc::new(Catalogue::default())))),
            audit: Arc::new(audit),
            fallback: Arc::new(fallback),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            metrics: Arc::new(Metrics::default()),
            list_changed: trusted,
            listeners: Arc::default(),
            approvals: None,
            feed: tokio::sync::broadcast::channel(FEED_CAPACITY).0,
            search_fetch: None,
            naming: Arc::default(),
            search: Arc::default(),
            profile: None,
            offered: None,
            profile_upstreams: Arc::default(),
            lazy: None,
        }
    }

    /// The profile this surface is, if it is one.
    pub fn profile(&self) -> Option<&str> {
        self.profile.as_deref()
    }

    /// The metrics this surface records into.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Whether `who` may use this surface at all; for one it may not, the surface has no tools.
    fn reaches(&self, who: &Principal) -> bool {
        who.reaches(self.profile.as_deref())
    }

    /// A tool's name as the metrics and the live feed show it: `{profile}/{tool}` on a profile.
    fn shown_name(&self, name: &str) -> String {
        match &self.profile {
            Some(p) => format!("{p}/{name}"),
            None => name.to_owned(),
        }
    }

    /// Calls starting and ending from now on.
    pub fn subscribe_calls(&self) -> tokio::sync::broadcast::Receiver<CallEvent> {
        self.feed.subscribe()
    }

    /// How many watchers take the call feed now (0 when no dashboard page is open).
    pub fn call_watchers(&self) -> usize {
        self.feed.receiver_count()
    }

    /// The approval gate, if calls go through one.
    pub fn approvals(&self) -> Option<&Arc<crate::approvals::HubApprovals>> {
        self.approvals.as_ref()
    }

    /// Calls, errors and latency per upstream, from the metrics' histograms.
    pub fn upstream_stats(&self) -> Vec<crate::metrics::UpstreamStats> {
        self.metrics.per_upstream()
    }

    /// Offers `search` and `fetch` (ChatGPT's deep research names) over the first built-in fs
    /// upstream.
    pub fn with_search_fetch(mut self, search_fetch: crate::search_fetch::SearchFetch) -> Hub {
        self.search_fetch = Some(Arc::new(search_fetch));
        // A catalogue built before this was called lacks them.
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = (vec![], Arc::new(Catalogue::default()));
        self
    }

    /// Offers tool search (`find_tools`, `call_tool`) as `search` says.
    pub fn with_tool_search(mut self, search: crate::toolsearch::ToolSearch) -> Hub {
        self.search = Arc::new(search);
        self
    }

    /// Whether tool search (`find_tools`, `call_tool`) is served.
    pub fn tool_search_enabled(&self) -> bool {
        self.search.enabled()
    }

    /// What `tools/list` shows `who`: every tool it may call, or, with tool search on for it,
    /// the search tools and the pinned ones.
    pub fn listed_tools(&self, who: &Principal) -> Vec<Tool> {
        self.search.listed(self.visible_tools(who))
    }

    /// Names the offered tools by `naming` (longest name, aliases) instead of the defaults.
    pub fn with_naming(mut self, naming: scope::Naming) -> Hub {
        self.naming = Arc::new(naming);
        self
    }

    /// Puts calls through the approval gate (switches, rules, the person) before they are
    /// forwarded.
    pub fn with_approvals(mut self, approvals: Arc<crate::approvals::HubApprovals>) -> Hub {
        self.approvals = Some(approvals);
        self
    }

    /// Tells clients of tool list changes (stdio, stateful HTTP sessions): they are sent
    /// `notifications/tools/list_changed` whenever an upstream's tools change.
    pub fn with_list_changed(mut self, on: bool) -> Hub {
        self.list_changed = on;
        self
    }

    /// Sends `notifications/tools/list_changed` to every client still connected; forgets the
    /// others.
    pub async fn announce_tool_list_changed(&self) {
        let peers: Vec<_> = {
            let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            listeners.retain(|p| !p.is_transport_closed());
            listeners.clone()
        };
        for peer in peers {
            if peer.notify_tool_list_changed().await.is_err() {
                let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
                listeners.retain(|p| !p.is_transport_closed());
            }
        }
    }

    /// The Prometheus exposition text.
    pub fn metrics_text(&self) -> String {
        let gauges: Vec<_> = self
            .all_upstreams()
            .into_iter()
            .map(|(profile, u)| UpstreamGauge {
                name: match profile {
                    Some(p) => format!("{p}/{}", u.spec.name),
                    None => u.spec.name.clone(),
                },
                ready: matches!(u.status(), Status::Ready { .. }),
                restarts: u.restarts(),
            })
            .collect();
        self.metrics.render(&gauges)
    }

    /// Sets the per-call timeout.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Hub {
        self.call_timeout = timeout;
        self
    }

    /// The merged catalogue, rebuilt only when an upstream's status changed since the last call.
    pub fn catalogue(&self) -> Arc<Catalogue> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Compared in place: this runs on every call, and nearly always nothing changed.
        let current = cache.0.len() == self.upstreams.len()
            && cache.0.iter().zip(self.upstreams.iter()).all(|(seen, u)| *seen == u.generation());
        if !current {
            // Read the generations before the statuses: a change in between only causes one
            // more rebuild next time, never a stale catalogue kept.
            let generations = self.upstreams.iter().map(|u| u.generation()).collect();
            let mut fresh = catalogue(&self.upstreams, &self.naming);
            if let Some(offered) = &self.offered {
                fresh.entries.retain(|e| offered.permits(&e.tool.name));
            }
            if self.search_fetch.is_some() {
                crate::search_fetch::offer(&mut fresh, &self.upstreams);
            }
            // Said once per change, not per request: the catalogue is rebuilt only when an
            // upstream's tools changed.
            for p in fresh.problems.iter().filter(|p| !cache.1.problems.contains(p)) {
                tracing::warn!("tool not offered: {p}");
            }
            *cache = (generations, Arc::new(fresh));
        }
        cache.1.clone()
    }

    /// The upstreams.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// Tools `who` may see.
    pub fn visible_tools(&self, who: &Principal) -> Vec<Tool> {
        if !self.reaches(who) {
            return vec![];
        }
        let up = &self.upstreams;
        self.catalogue()
            .entries
            .iter()
            .filter(|e| scope::allowed_tool(&who.scopes, &up[e.upstream].spec.name, &e.inner, e.tier))
            .map(|e| e.tool.clone())
            .collect()
    }

    /// The scope `who` lacks to call the offered tool `name`, or `None` (allowed, or no such tool).
    pub fn required_scope(&self, who: &Principal, name: &str) -> Option<String> {
        if !self.reaches(who) {
            return None;
        }
        let catalogue = self.catalogue();
        let entry = catalogue.entries.iter().find(|e| e.tool.name == name)?;
        let upstream = &self.upstreams[entry.upstream].spec.name;
        (!scope::allowed_tool(&who.scopes, upstream, &entry.inner, entry.tier)).then(|| entry.tier.scope(upstream))
    }

    /// The tool a call of `name` really calls (`call_tool` seen through when tool search is
    /// on) and its tier, for the HTTP layer's per-tool rate limits; `None` when not offered.
    pub fn called_tool_tier(&self, name: &str, arguments: Option<&rmcp::model::JsonObject>) -> Option<(String, Tier)> {
        let name = if self.search.enabled() && name == crate::toolsearch::CALL_TOOL {
            crate::toolsearch::unwrap_call(arguments).ok()?.0
        } else {
            name.to_owned()
        };
        let tier = self.catalogue().entries.iter().find(|e| e.tool.name == name)?.tier;
        Some((name, tier))
    }

    /// Routes one call; every outcome is audited with the caller's name.
    pub async fn call(
        &self,
        who: &Principal,
        params: CallToolRequestParams,
        site: &CallSite,
    ) -> Result<CallToolResponse, McpError> {
        self.ensure_started().await;
        let started = Instant::now();
        let mut params = params;
        if self.search.enabled() && params.name == crate::toolsearch::FIND_TOOLS {
            let r = crate::toolsearch::find(&self.visible_tools(who), params.arguments.as_ref());
            let result = Ok(r.into());
            let (outcome, result_bytes) = call_outcome(&result);
            let args = redact(&params.arguments.clone().map(serde_json::Value::Object).unwrap_or_default());
            self.record(who, &params.name, args, &outcome, started, result_bytes, &serde_json::Map::new());
            return result;
        }
        if self.search.enabled() && params.name == crate::toolsearch::CALL_TOOL {
            // Unwrapped here, before anything else sees the call: scopes, approvals, the journal
            // and the metrics all see the real tool.
            match crate::toolsearch::unwrap_call(params.arguments.as_ref()) {
                Ok((inner, arguments)) => {
                    params.name = inner.into();
                    params.arguments = arguments;
                }
                Err(e) => {
                    let result = Ok(e.into());
                    self.record(
                        who,
                        &params.name,
                        serde_json::Value::Null,
                        &call_outcome(&result).0,
                        started,
                        0,
                        &serde_json::Map::new(),
                    );
                    return result;
                }
            }
        }
        let name = params.name.to_string();
        let args = if self.audit.enabled() {
            redact(&params.arguments.clone().map(serde_json::Value::Object).unwrap_or_default())
        } else {
            serde_json::Value::Null
        };
        // Nobody watching (the usual case): one look at the receiver count, nothing built.
        let watched = (self.feed.receiver_count() > 0).then(|| {
            let seq = NEXT_CALL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let args = if args.is_null() {
                redact(&params.arguments.clone().map(serde_json::Value::Object).unwrap_or_default())
            } else {
                args.clone()
            };
            let principal = who.name.clone();
            let tool = self.shown_name(&name);
            let _ = self.feed.send(CallEvent::Started { seq, principal, tool, args, time: now_rfc3339() });
            Ending { feed: &self.feed, seq }
        });
        let result = self.route(who, params, site).await;
        drop(watched);
        let (outcome, result_bytes) = call_outcome(&result);
        let mut notes = self.exit_notes(&name, &result);
        if let Some(p) = &self.profile {
            notes.insert("profile".to_owned(), serde_json::Value::String(p.to_string()));
        }
        self.record(who, &name, args, &outcome, started, result_bytes, &notes);
        result
    }

    /// Appends an event of the hub (such as `http_refused`) to its journal.
    pub fn event(&self, event: &str, detail: serde_json::Value) {
        self.audit.event("hub", event, detail);
    }

    /// A command's `exit_code` and `signal` (from the result of a tool of an upstream that runs
    /// programs: the built-in shell), for the call's audit line, as the shell's own journal has.
    fn exit_notes(
        &self,
        name: &str,
        result: &Result<CallToolResponse, McpError>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut notes = serde_json::Map::new();
        let catalogue = self.catalogue();
        let runs = catalogue
            .entries
            .iter()
            .find(|e| e.tool.name == name)
            .is_some_and(|e| self.upstreams[e.upstream].spec.source.runs_programs());
        if let (true, Ok(CallToolResponse::Complete(r))) = (runs, result)
            && let Some(serde_json::Value::Object(fields)) = &r.structured_content
        {
            for key in ["exit_code", "signal"] {
                if let Some(v) = fields.get(key) {
                    notes.insert(key.to_owned(), v.clone());
                }
            }
        }
        notes
    }

    /// A `tools/call` the HTTP layer refused with 403 before it reached the hub: audited and
    /// counted like any other outcome.
    pub fn refused(&self, who: &Principal, name: &str, outcome: &str) {
        self.record(who, name, serde_json::Value::Null, outcome, Instant::now(), 0, &serde_json::Map::new());
    }

    /// One metrics observation, one log line and one audit line per call.
    #[allow(clippy::too_many_arguments)] // the fields of one audit line
    fn record(
        &self,
        who: &Principal,
        name: &str,
        args: serde_json::Value,
        outcome: &str,
        started: Instant,
        result_bytes: usize,
        notes: &serde_json::Map<String, serde_json::Value>,
    ) {
        let took = started.elapsed();
        let catalogue = self.catalogue();
        let (upstream, tool) = match catalogue.entries.iter().find(|e| e.tool.name == name) {
            Some(e) => (self.upstreams[e.upstream].spec.name.as_str(), name),
            None => ("none", "unknown"),
        };
        let metric_outcome = if outcome.starts_with("protocol_error") { "protocol_error" } else { outcome };
        match &self.profile {
            Some(_) => self.metrics.record(&self.shown_name(upstream), &self.shown_name(tool), metric_outcome, took),
            None => self.metrics.record(upstream, tool, metric_outcome, took),
        }
        tracing::info!(
            target: "bastion::audit",
            token = %who.name,
            profile = self.profile.as_deref().unwrap_or(""),
            tool = %name,
            outcome = %outcome,
            ms = took.as_millis() as u64,
            "call"
        );
        if self.audit.enabled() {
            self.audit.record_noted(
                &AuditRecord {
                    time: now_rfc3339(),
                    server: "hub",
                    principal: &who.name,
                    tool: name,
                    args,
                    outcome,
                    duration_ms: millis(took),
                    result_bytes,
                },
                0,
                notes,
            );
        }
    }

    async fn route(
        &self,
        who: &Principal,
        params: CallToolRequestParams,
        site: &CallSite,
    ) -> Result<CallToolResponse, McpError> {
        let unavailable = |up: &Upstream, why: &str| -> Result<CallToolResponse, McpError> {
            Ok(tool_error(
                ErrorCode::UpstreamUnavailable,
                &format!("upstream '{}' is unavailable: {why}", up.spec.name),
            )
            .into())
        };
        let catalogue = self.catalogue();
        // A surface the caller may not use has no tools for it: not even whether one exists.
        let entry = catalogue.entries.iter().find(|e| e.tool.name == params.name).filter(|_| self.reaches(who));
        if !self.reaches(who) {
            return Err(McpError::invalid_params(
                format!("unknown tool '{}'; call tools/list for the tools this hub offers", params.name),
                None,
            ));
        }
        let Some(entry) = entry else {
            // Not offered: either its upstream is down (its tools are not listed meanwhile) or
            // there is no such tool.
            let up = scope::split(&params.name).and_then(|(p, _)| self.upstreams.iter().find(|u| u.spec.name == p));
            return match up.map(|u| (u, u.status())) {
                Some((u, Status::Starting)) => unavailable(u, "starting; retry shortly"),
                Some((u, Status::Failed(why))) => unavailable(u, &why),
                _ => Err(McpError::invalid_params(
                    format!("unknown tool '{}'; call tools/list for the tools this hub offers", params.name),
                    None,
                )),
            };
        };
        let up = &self.upstreams[entry.upstream];
        let prefix = up.spec.name.as_str();
        if !scope::allowed_tool(&who.scopes, prefix, &entry.inner, entry.tier) {
            return Ok(tool_error(
                ErrorCode::InsufficientScope,
                &format!("this token may not call '{}': it needs the scope {}", params.name, entry.tier.scope(prefix)),
            )
            .into());
        }
        let peer = match up.status() {
            Status::Ready { peer, .. } => peer,
            Status::Starting => return unavailable(up, "starting; retry shortly"),
            Status::Failed(why) => return unavailable(up, &why),
        };
        let inner = entry.inner.as_str();
        if let Some(gate) = &self.approvals {
            // The hub's own tools are judged as the fs tool they read with (`fetch` as
            // `read_file` of the path its id names), so path rules see a path.
            let gated = entry.hub_tool.map(|t| t.gated(params.arguments.as_ref()));
            let (inner, args) = match &gated {
                Some((inner, args)) => (*inner, Some(args)),
                None => (inner, params.arguments.as_ref()),
            };
            let call = crate::approvals::HubCall {
                upstream: prefix,
                kind: up.spec.source.kind(),
                inner,
                shown: &params.name,
                tier: entry.approval_tier,
                args,
            };
            // The caller giving up while the person decides withdraws the request.
            let decided = tokio::select! {
                r = gate.check(who, call, site) => r,
                _ = site.cancelled.cancelled() => {
                    return Err(McpError::internal_error("cancelled by the caller while waiting for approval", None));
                }
            };
            if let Err(e) = decided {
                return Ok(error_result(&e).into());
            }
        }
        if let (Some(tool), Some(search_fetch)) = (entry.hub_tool, &self.search_fetch) {
            let via = crate::search_fetch::Via { hub: self, upstream: up, peer: &peer, site };
            return Ok(search_fetch.run(tool, &via, params.arguments.as_ref()).await.into());
        }
        self.forward(up, &peer, inner, &params.name, params.arguments, site).await
    }

    /// Sends one call to an upstream's tool and waits for it, within the upstream's call
    /// timeout, cancelling it upstream if the caller gives up; `shown` names it in messages.
    pub(crate) async fn forward(
        &self,
        up: &Upstream,
        peer: &Peer<rmcp::RoleClient>,
        inner: &str,
        shown: &str,
        arguments: Option<rmcp::model::JsonObject>,
        site: &CallSite,
    ) -> Result<CallToolResponse, McpError> {
        let prefix = up.spec.name.as_str();
        let timeout = up.spec.call_timeout.unwrap_or(self.call_timeout);
        let params_name = shown;
        let mut forward = CallToolRequestParams::new(inner.to_owned());
        forward.arguments = arguments;
        let handle = match peer
            .send_cancellable_request(
                ClientRequest::CallToolRequest(CallToolRequest::new(forward)),
                PeerRequestOptions::no_options(),
            )
            .await
        {
            Ok(h) => h,
            Err(e) => return service_error(prefix, e),
        };
        let child_token = handle.progress_token.clone();
        if let Some(progress) = &site.progress {
            up.routes.lock().unwrap_or_else(|e| e.into_inner()).insert(child_token.clone(), progress.clone());
        }
        let (id, child) = (handle.id.clone(), handle.peer.clone());
        let response = tokio::select! {
            r = handle.await_response() => r,
            _ = site.cancelled.cancelled() => {
                // The caller gave up (notifications/cancelled, or its connection closed): tell
                // the child, which stops at its next step.
                let _ = child
                    .notify_cancelled(CancelledNotificationParam::new(Some(id), Some("cancelled by the hub's caller".into())))
                    .await;
                Err(ServiceError::Cancelled { reason: Some("cancelled by the caller".into()) })
            }
            _ = tokio::time::sleep(timeout) => {
                // Only this call is abandoned: the child is told to stop it and stays up for
                // the others.
                let _ = child
                    .notify_cancelled(CancelledNotificationParam::new(Some(id), Some("timed out in the hub".into())))
                    .await;
                up.routes.lock().unwrap_or_else(|e| e.into_inner()).remove(&child_token);
                return Ok(tool_error(
                    ErrorCode::Timeout,
                    &format!("'{params_name}' took longer than its call timeout of {}; it was cancelled", humantime::format_duration(timeout)),
                )
                .into());
            }
        };
        up.routes.lock().unwrap_or_else(|e| e.into_inner()).remove(&child_token);
        match response {
            Ok(ServerResult::CallToolResult(r)) => Ok(CallToolResponse::Complete(r)),
            Ok(ServerResult::InputRequiredResult(r)) => Ok(CallToolResponse::InputRequired(r)),
            Ok(ServerResult::CreateTaskResult(r)) => Ok(CallToolResponse::Task(r)),
            Ok(_) => {
                Ok(tool_error(ErrorCode::UpstreamError, &format!("upstream '{prefix}' sent an unexpected response"))
                    .into())
            }
            Err(e) => service_error(prefix, e),
        }
    }
}

/// A failed exchange with an upstream: its JSON-RPC errors pass through, a lost child is
/// `upstream_unavailable`, anything else `upstream_error`.
fn service_error(prefix: &str, e: ServiceError) -> Result<CallToolResponse, McpError> {
    match e {
        ServiceError::McpError(e) => Err(e),
        e @ (ServiceError::TransportClosed | ServiceError::TransportSend(_)) => {
            Ok(tool_error(ErrorCode::UpstreamUnavailable, &format!("upstream '{prefix}' went away: {e}")).into())
        }
        e => Ok(tool_error(ErrorCode::UpstreamError, &format!("upstream '{prefix}': {e}")).into()),
    }
}

impl ServerHandler for Hub {
    fn get_info(&self) -> ServerConfig {
        // Exactly what the hub serves: tools, and `logging/setLevel` on the protocols that have
        // it (logging is deprecated from 2026-07-28, SEP-2577, so `discover` leaves it out).
        // Prompts, resources and completions are not declared, and their methods answer -32601
        // (below) rather than rmcp's empty lists, so a client's discovery and its calls agree
        // (the conformance suite's `sep-2575-server-declares-prompts-in-discover`).
        let mut capabilities = if self.list_changed {
            ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build()
        } else {
            ServerCapabilities::builder().enable_tools().build()
        };
        capabilities.logging = Some(JsonObject::new());
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("bastion", env!("CARGO_PKG_VERSION")))
            .with_instructions(concat!(
                "Bastion hub: tools of several servers under one name space, {server}__{tool} \
                 (fs__ files, git__ repositories, shell__ allowlisted commands). Only the tools \
                 your token may call are listed. ",
                bastion_server_kit::untrusted_content!()
            ))
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        if self.list_changed {
            let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            listeners.retain(|p| !p.is_transport_closed());
            listeners.push(ctx.peer);
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.ensure_started().await;
        Ok(ListToolsResult::with_all_items(self.listed_tools(&principal(&ctx, &self.fallback))))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.call(&principal(&ctx, &self.fallback), request, &CallSite::of(&ctx)).await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        if self.search.enabled()
            && let Some(t) = crate::toolsearch::meta_tools().into_iter().find(|t| t.name == name)
        {
            return Some(t);
        }
        self.catalogue().entries.iter().find(|e| e.tool.name == name).map(|e| e.tool.clone())
    }

    /// The 2026-07-28 discovery: the capabilities of `initialize` less those that protocol
    /// serves differently here. No `logging` (deprecated, levels travel in `_meta`) and no
    /// `tools.listChanged`: list changes reach only legacy sessions (`on_initialized`); the hub
    /// has no `subscriptions/listen` stream to send them on.
    async fn discover(&self, _ctx: RequestContext<RoleServer>) -> Result<DiscoverResult, McpError> {
        let mut info = self.get_info();
        info.capabilities.logging = None;
        if let Some(tools) = info.capabilities.tools.as_mut() {
            tools.list_changed = None;
        }
        Ok(DiscoverResult::from_server_info(self.supported_protocol_versions().into_owned(), info))
    }

    /// Accepted on the protocols that have `logging/setLevel` (those with `initialize`; from
    /// 2026-07-28 a request carries its level in `_meta`). The hub itself sends no log
    /// notifications, so there is nothing to filter; the level is not kept.
    #[allow(deprecated, reason = "the legacy protocols the hub serves still have logging/setLevel")]
    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if ctx.protocol_version().is_none_or(|v| v.has_initialize()) {
            Ok(())
        } else {
            Err(McpError::method_not_found::<SetLevelRequestMethod>())
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Err(McpError::method_not_found::<ListPromptsRequestMethod>())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Err(McpError::method_not_found::<ListResourcesRequestMethod>())
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Err(McpError::method_not_found::<ListResourceTemplatesRequestMethod>())
    }

    async fn complete(
        &self,
        _request: CompleteRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        Err(McpError::method_not_found::<CompleteRequestMethod>())
    }
}

mod profiles;
#[cfg(test)]
mod tests;
