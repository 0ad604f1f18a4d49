//! Upstreams: MCP servers the hub talks to as a client — a stdio child process (a built-in
//! server as `bastion fs|git|shell ...`, or any command) or a remote server over streamable
//! HTTP — kept alive by a supervisor task that reconnects with exponential backoff and re-lists
//! the tools after each restart.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;

use rmcp::model::{ClientConfig, Implementation, ProgressNotificationParam, ProgressToken, Tool};
use rmcp::service::{NotificationContext, Peer, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, RoleServer, ServiceExt};
use tokio::process::Command;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Progress routes of one upstream: the token the hub's request to the child carried (rmcp
/// always assigns its own) → the caller's peer and the token the caller asked for.
pub type ProgressRoutes = Arc<Mutex<HashMap<ProgressToken, (Peer<RoleServer>, ProgressToken)>>>;

/// The hub's client side towards one child: forwards the child's progress to whoever is waiting.
#[derive(Clone)]
pub struct ChildClient {
    routes: ProgressRoutes,
    list_changed: Arc<Notify>,
}

impl ClientHandler for ChildClient {
    async fn on_progress(&self, mut p: ProgressNotificationParam, _: NotificationContext<RoleClient>) {
        let route = self.routes.lock().unwrap_or_else(|e| e.into_inner()).get(&p.progress_token).cloned();
        // A notification that arrives before the route is recorded, or after the call ended,
        // is dropped: progress is advisory.
        if let Some((caller, token)) = route {
            p.progress_token = token;
            let _ = caller.notify_progress(p).await;
        }
    }

    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        // The supervisor lists the child's tools again.
        self.list_changed.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        let mut c = ClientConfig::default();
        c.client_info = Implementation::new("bastion-hub", env!("CARGO_PKG_VERSION"));
        c
    }
}

/// A built-in server of this binary (`bastion fs|git|shell|host`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// `bastion fs`.
    Fs,
    /// `bastion git`.
    Git,
    /// `bastion shell`: every tool that is not read-only runs a program.
    Shell,
    /// `bastion host`: the machine itself (off unless configured); its tools that are not
    /// read-only run `systemctl` or a container runtime.
    Host,
}

impl Builtin {
    /// The three, in the order the hub starts them when none is configured.
    pub const ALL: [Builtin; 3] = [Builtin::Fs, Builtin::Git, Builtin::Shell];
    /// Every built-in a configuration may name: the three and `host`, which inspects the
    /// machine rather than the roots and so is never started unless an `[[upstream]]` asks.
    pub const KNOWN: [Builtin; 4] = [Builtin::Fs, Builtin::Git, Builtin::Shell, Builtin::Host];

    /// Its subcommand, also its default upstream name.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Fs => "fs",
            Builtin::Git => "git",
            Builtin::Shell => "shell",
            Builtin::Host => "host",
        }
    }

    /// `fs`, `git`, `shell` or `host`.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::KNOWN.into_iter().find(|b| b.name() == name)
    }

    /// Whether it works beneath the roots (takes `--root`): all but `host`.
    pub fn takes_roots(self) -> bool {
        self != Builtin::Host
    }
}

/// Where an upstream's tools come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A built-in server run as a child of this very binary: `program server args...`.
    Builtin {
        /// Which one.
        server: Builtin,
        /// This binary.
        program: PathBuf,
        /// Its arguments after the subcommand (`--root ...`, `--allow-write`, the file's `args`).
        args: Vec<String>,
    },
    /// Any stdio MCP server.
    Command {
        /// Program to run (a path, or a name looked up on `$PATH`).
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
        /// Its whole environment ([`crate::contain::environment`]: an allowlist of the hub's,
        /// `pass_env`, `env`).
        env: Vec<(String, String)>,
        /// How it is contained; `None` with `sandbox = false`.
        sandbox: Option<crate::contain::Containment>,
    },
    /// A remote MCP server over streamable HTTP.
    Remote(Remote),
}

impl Source {
    /// Whether every tool of it that is not read-only runs a program (bastion-shell, and
    /// bastion-host's operate tier): such tools are `exec`, which their annotations alone
    /// cannot say (exec tools carry the same hints as destructive ones).
    pub fn runs_programs(&self) -> bool {
        matches!(self, Source::Builtin { server: Builtin::Shell | Builtin::Host, .. })
    }

    /// `fs`, `git`, `shell` or `host` for a built-in, `stdio` for any other command, `http` for a
    /// remote server: what the approval gate tells apart (an fs call's files are shown to the
    /// person who decides).
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Builtin { server, .. } => server.name(),
            Source::Command { .. } => "stdio",
            Source::Remote(_) => "http",
        }
    }

    /// The tier of one of its tools (annotations already filled): the rule of [`crate::scope`].
    /// A remote Bastion host (reached with client credentials) offers its own `shell` and
    /// `host` upstreams' tools as `shell__…` and `host__…`: those run programs there, so they
    /// are `exec` here too, as on the host (`build01:shell:exec`). `inner` is the tool's own
    /// name on the upstream.
    pub fn tier_of(&self, tool: &Tool, inner: &str) -> bastion_policy::Tier {
        let bastion_host_runs_programs = matches!(self, Source::Remote(Remote { credentials: Some(_), .. }))
            && matches!(bastion_auth::scope::inner_upstream(inner), Some("shell" | "host"));
        crate::scope::tier_of(tool, self.runs_programs() || bastion_host_runs_programs)
    }
}

/// How to start an upstream.
#[derive(Clone, Debug)]
pub struct UpstreamSpec {
    /// Namespace prefix, `[a-z][a-z0-9]{0,15}`.
    pub name: String,
    /// What to start or connect to.
    pub source: Source,
    /// Which of its tools are offered.
    pub filter: ToolFilter,
    /// Whether the hub is ready only when this upstream is (`/readyz`).
    pub required: bool,
    /// Longest a call to it may take, if not the hub's default.
    pub call_timeout: Option<Duration>,
}

/// How often a remote upstream is polled unless configured.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(15);
/// How long a poll may take before the remote upstream counts as gone.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// A remote upstream: its MCP endpoint and the bearer token the hub presents to it (its own
/// credential for that server, never a caller's token).
#[derive(Clone)]
pub struct Remote {
    /// `http://` or `https://` URL of the endpoint.
    pub url: String,
    /// Bearer token, without the `Bearer ` prefix.
    pub bearer: Option<String>,
    /// A remote Bastion host: the hub gets its tokens by client credentials instead (see
    /// [`crate::remote_auth`]).
    pub credentials: Option<crate::remote_auth::MachineCredentials>,
    /// Mutual TLS: the CA the remote's certificate must chain to and the client certificate
    /// the hub presents.
    pub tls: Option<crate::remote_auth::RemoteTls>,
    /// How often its tools are listed again (default [`DEFAULT_PING_INTERVAL`]): that notices
    /// it went away before a call does, and picks up tool changes a stateless remote cannot
    /// announce. Children are not polled: their exit is seen at once, they can announce
    /// changes, and a busy single-threaded server may not answer while it works.
    pub ping_interval: Duration,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .field("credentials", &self.credentials)
            .field("tls", &self.tls)
            .field("ping_interval", &self.ping_interval)
            .finish()
    }
}

/// Per-upstream tool selection, by glob on the upstream's own tool names: a tool is offered if
/// it matches `allow` (when given) and does not match `deny`. Tools filtered out are neither
/// listed nor callable.
#[derive(Clone, Debug, Default)]
pub struct ToolFilter {
    allow: Option<globset::GlobSet>,
    deny: Option<globset::GlobSet>,
}

impl ToolFilter {
    /// Builds a filter; an empty `allow` list means "everything".
    pub fn new(allow: &[String], deny: &[String]) -> Result<ToolFilter, String> {
        let set = |globs: &[String]| -> Result<Option<globset::GlobSet>, String> {
            if globs.is_empty() {
                return Ok(None);
            }
            let mut b = globset::GlobSetBuilder::new();
            for g in globs {
                b.add(globset::Glob::new(g).map_err(|e| format!("tool pattern '{g}': {e}"))?);
            }
            b.build().map(Some).map_err(|e| e.to_string())
        };
        Ok(ToolFilter { allow: set(allow)?, deny: set(deny)? })
    }

    /// Whether the tool named `name` is offered.
    pub fn permits(&self, name: &str) -> bool {
        self.allow.as_ref().is_none_or(|a| a.is_match(name)) && !self.deny.as_ref().is_some_and(|d| d.is_match(name))
    }

    fn apply(&self, tools: Vec<Tool>) -> Vec<Tool> {
        tools.into_iter().filter(|t| self.permits(&t.name)).collect()
    }
}

/// What the hub knows about an upstream right now.
#[derive(Clone, Default)]
pub enum Status {
    /// Not started yet, or restarting.
    #[default]
    Starting,
    /// Initialised and its tools listed.
    Ready {
        /// Handle for requests.
        peer: Peer<RoleClient>,
        /// Tools as the upstream listed them (unprefixed).
        tools: Arc<Vec<Tool>>,
    },
    /// The last attempt failed; the supervisor retries after a backoff.
    Failed(String),
}

/// One upstream and its live state.
pub struct Upstream {
    /// How it is started.
    pub spec: UpstreamSpec,
    status: RwLock<Status>,
    /// Bumped on every status change, so the hub knows when to rebuild its catalogue.
    generation: AtomicU64,
    /// Starts after the first.
    restarts: AtomicU64,
    /// Where the child's progress notifications go.
    pub routes: ProgressRoutes,
    /// Set by the child's `notifications/tools/list_changed`.
    list_changed: Arc<Notify>,
    /// Notified whenever the upstream's offered tools change: it became ready with a (possibly
    /// new) tool list, or stopped being ready.
    pub on_change: Arc<Notify>,
    /// The operator asked for a restart (the dashboard).
    restart_now: Notify,
    /// Why it last failed or exited, kept after it is back up.
    last_error: RwLock<Option<String>>,
    /// A remote Bastion host's machine tokens, kept across reconnections (a token still valid
    /// after the host restarted is used again).
    tokens: std::sync::OnceLock<Arc<crate::remote_auth::TokenSource>>,
}

/// How a dead child is restarted.
#[derive(Clone, Copy, Debug)]
pub struct Restart {
    /// First delay; doubled after each failure.
    pub backoff_min: Duration,
    /// Longest delay.
    pub backoff_max: Duration,
    /// A child that stayed up this long was healthy: the backoff and failure count reset.
    pub healthy_after: Duration,
    /// Consecutive failures (start errors or exits before `healthy_after`) after which the
    /// supervisor gives up (crash-loop breaker); the upstream stays failed until the hub restarts.
    pub max_failures: u32,
}

impl Default for Restart {
    fn default() -> Self {
        Restart {
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
            max_failures: 10,
        }
    }
}

/// How long initialise plus tools/list may take.
const START_TIMEOUT: Duration = Duration::from_secs(30);

impl Upstream {
    /// An upstream not started yet.
    pub fn new(spec: UpstreamSpec) -> Arc<Upstream> {
        Arc::new(Upstream {
            spec,
            status: RwLock::new(Status::Starting),
            generation: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            routes: ProgressRoutes::default(),
            list_changed: Arc::default(),
            on_change: Arc::default(),
            restart_now: Notify::new(),
            last_error: RwLock::new(None),
            tokens: std::sync::OnceLock::new(),
        })
    }

    /// Stops the running child so its supervisor starts it again (calls in flight on it fail
    /// `upstream_unavailable`). A no-op for an upstream the crash-loop breaker gave up on.
    pub fn restart(&self) {
        self.restart_now.notify_one();
    }

    /// Why it last failed or exited, if it ever did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many times it was started again after the first start.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// How many times the status changed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn set(&self, s: Status) {
        if let Status::Failed(why) = &s {
            *self.last_error.write().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
        }
        let ready = matches!(s, Status::Ready { .. });
        let was_ready = matches!(
            std::mem::replace(&mut *self.status.write().unwrap_or_else(|e| e.into_inner()), s),
            Status::Ready { .. }
        );
        self.generation.fetch_add(1, Ordering::AcqRel);
        // The offered tools change when it becomes ready (again, or with a new list) and when it
        // stops being ready (its tools are withdrawn until it is back).
        if ready || was_ready {
            self.on_change.notify_one();
        }
    }

    /// Starts the child, initialises it and lists its tools.
    async fn connect(&self) -> anyhow::Result<(RunningService<RoleClient, ChildClient>, Vec<Tool>)> {
        let client = ChildClient { routes: self.routes.clone(), list_changed: self.list_changed.clone() };
        let service = match &self.spec.source {
            Source::Remote(remote) if remote.credentials.is_none() && remote.tls.is_none() => {
                let mut config = StreamableHttpClientTransportConfig::with_uri(remote.url.as_str());
                if let Some(token) = &remote.bearer {
                    config = config.auth_header(token.as_str());
                }
                let transport = StreamableHttpClientTransport::from_config(config);
                tokio::time::timeout(START_TIMEOUT, client.serve(transport)).await??
            }
            Source::Remote(remote) => {
                let http = crate::remote_auth::http_client(remote.tls.as_ref()).map_err(anyhow::Error::msg)?;
                let mut config = StreamableHttpClientTransportConfig::with_uri(remote.url.as_str());
                if let Some(creds) = &remote.credentials {
                    crate::remote_auth::host_ready(&http, &remote.url).await.map_err(anyhow::Error::msg)?;
                    let source =
                        self.tokens.get_or_init(|| crate::remote_auth::TokenSource::new(creds.clone(), http.clone()));
                    let authed = crate::remote_auth::AuthedClient::new(source.clone(), http);
                    let transport = StreamableHttpClientTransport::with_client(authed, config);
                    tokio::time::timeout(START_TIMEOUT, client.serve(transport)).await??
                } else {
                    if let Some(token) = &remote.bearer {
                        config = config.auth_header(token.as_str());
                    }
                    let transport = StreamableHttpClientTransport::with_client(http, config);
                    tokio::time::timeout(START_TIMEOUT, client.serve(transport)).await??
                }
            }
            Source::Builtin { server, program, args } => {
                let mut cmd = Command::new(program);
                cmd.arg(server.name()).args(args);
                // The child's logs join the hub's on stderr; stdin/stdout are the MCP channel.
                let (transport, _) = TokioChildProcess::builder(cmd).stderr(Stdio::inherit()).spawn()?;
                tokio::time::timeout(START_TIMEOUT, client.serve(transport)).await??
            }
            Source::Command { program, args, env, sandbox } => {
                let cmd = match sandbox {
                    Some(c) => crate::contain::command(c, &program.to_string_lossy(), args, env).await?,
                    None => {
                        let mut cmd = Command::new(program);
                        cmd.args(args).env_clear().envs(env.iter().map(|(k, v)| (k, v)));
                        cmd
                    }
                };
                // The child's logs join the hub's on stderr; stdin/stdout are the MCP channel.
                let (transport, _) = TokioChildProcess::builder(cmd).stderr(Stdio::inherit()).spawn()?;
                tokio::time::timeout(START_TIMEOUT, client.serve(transport)).await??
            }
        };
        let tools = tokio::time::timeout(START_TIMEOUT, service.list_all_tools()).await??;
        Ok((service, self.spec.filter.apply(tools)))
    }

    /// Lists the tools again and, if they changed, makes them the offered ones.
    async fn relist(&self, peer: &Peer<RoleClient>, limit: Duration) -> Result<(), String> {
        let tools = match tokio::time::timeout(limit, peer.list_all_tools()).await {
            Ok(Ok(tools)) => self.spec.filter.apply(tools),
            Ok(Err(e)) => return Err(format!("did not answer tools/list: {e}")),
            Err(_) => return Err(format!("did not answer tools/list within {limit:?}")),
        };
        if !matches!(self.status(), Status::Ready { tools: ref t, .. } if **t == tools) {
            tracing::info!(upstream = %self.spec.name, tools = tools.len(), "upstream tools changed");
            self.set(Status::Ready { peer: peer.clone(), tools: Arc::new(tools) });
        }
        Ok(())
    }

    /// Keeps the upstream running until `shutdown` fires: start, mark ready, wait for the child
    /// to exit, back off, start again.
    pub async fn supervise(self: Arc<Self>, shutdown: CancellationToken, restart: Restart) {
        let mut backoff = restart.backoff_min;
        let mut failures = 0u32;
        loop {
            let mut requested = false;
            let attempt = tokio::select! {
                r = self.connect() => r,
                _ = shutdown.cancelled() => return,
            };
            let why = match attempt {
                Ok((service, tools)) => {
                    tracing::info!(upstream = %self.spec.name, tools = tools.len(), "upstream ready");
                    let peer = service.peer().clone();
                    self.set(Status::Ready { peer: peer.clone(), tools: Arc::new(tools) });
                    let started = tokio::time::Instant::now();
                    let stop = service.cancellation_token();
                    let waiting = service.waiting();
                    tokio::pin!(waiting);
                    let (remote, every) = match &self.spec.source {
                        Source::Remote(r) => (true, r.ping_interval),
                        _ => (false, DEFAULT_PING_INTERVAL),
                    };
                    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                    let why = loop {
                        tokio::select! {
                            r = &mut waiting => break match r { Ok(q) => format!("exited: {q:?}"), Err(e) => format!("exited: {e}") },
                            _ = ping.tick(), if remote => {
                                // Listing is the ping: it proves the remote is there and picks
                                // up tool changes a stateless remote has no stream to announce.
                                if let Err(why) = self.relist(&peer, PING_TIMEOUT).await {
                                    stop.cancel();
                                    break why;
                                }
                            }
                            _ = self.restart_now.notified() => {
                                stop.cancel();
                                let _ = tokio::time::timeout(Duration::from_secs(8), &mut waiting).await;
                                // Asked for, not a failure: no backoff, no count toward the breaker.
                                tracing::info!(upstream = %self.spec.name, "restarting on the operator's request");
                                requested = true;
                                break "restarted by the operator".to_owned();
                            }
                            _ = self.list_changed.notified() => {
                                if let Err(why) = self.relist(&peer, START_TIMEOUT).await {
                                    tracing::warn!(upstream = %self.spec.name, "re-listing tools: {why}");
                                }
                            }
                            _ = shutdown.cancelled() => {
                                // Closing the transport closes the child's stdin, then SIGTERM, then SIGKILL.
                                stop.cancel();
                                let _ = tokio::time::timeout(Duration::from_secs(8), waiting).await;
                                self.set(Status::Failed("hub shutting down".into()));
                                return;
                            }
                        }
                    };
                    tracing::warn!(upstream = %self.spec.name, "upstream {why}");
                    if started.elapsed() >= restart.healthy_after {
                        backoff = restart.backoff_min;
                        failures = 0;
                    }
                    why
                }
                Err(e) => {
                    tracing::warn!(upstream = %self.spec.name, "upstream failed to start: {e:#}");
                    format!("failed to start: {e:#}")
                }
            };
            if requested {
                *self.last_error.write().unwrap_or_else(|e| e.into_inner()) = Some(why);
                self.restarts.fetch_add(1, Ordering::Relaxed);
                self.set(Status::Starting);
                continue;
            }
            failures += 1;
            // A remote host that went away is not a crash loop of ours: it comes back when the
            // host does, without a hub restart. It is tried again at most every ping interval.
            let remote_every = match &self.spec.source {
                Source::Remote(r) => Some(r.ping_interval.max(restart.backoff_min)),
                _ => None,
            };
            if failures >= restart.max_failures && remote_every.is_none() {
                tracing::error!(upstream = %self.spec.name, failures, "upstream keeps failing; not restarting it again");
                self.set(Status::Failed(format!(
                    "crash loop: {failures} failures in a row, not restarted; last: {why}"
                )));
                return;
            }
            self.set(Status::Failed(why));
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(restart.backoff_max).min(remote_every.unwrap_or(Duration::MAX));
            self.restarts.fetch_add(1, Ordering::Relaxed);
            self.set(Status::Starting);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(max_failures: u32) -> Restart {
        Restart {
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(4),
            healthy_after: Duration::from_secs(60),
            max_failures,
        }
    }

    fn spec(program: &str, args: &[&str]) -> UpstreamSpec {
        UpstreamSpec {
            name: "t".into(),
            source: Source::Command {
                program: program.into(),
                args: args.iter().map(|a| a.to_string()).collect(),
                env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
                sandbox: None,
            },
            filter: ToolFilter::default(),
            required: true,
            call_timeout: None,
        }
    }

    /// Waits for the supervisor to give up on its own.
    async fn gives_up(task: tokio::task::JoinHandle<()>) {
        tokio::time::timeout(Duration::from_secs(20), task).await.unwrap().unwrap();
    }

    #[test]
    fn tool_filters() {
        let f = ToolFilter::new(&["read_*".into(), "list_*".into()], &["read_many_*".into()]).unwrap();
        assert!(f.permits("read_file") && f.permits("list_directory"));
        assert!(!f.permits("read_many_files") && !f.permits("write_file"));
        let deny_only = ToolFilter::new(&[], &["delete_*".into()]).unwrap();
        assert!(deny_only.permits("write_file") && !deny_only.permits("delete_path"));
        assert!(ToolFilter::default().permits("anything"));
        assert!(ToolFilter::new(&["[".into()], &[]).unwrap_err().contains("tool pattern '['"));
    }

    #[tokio::test]
    async fn a_crash_loop_is_broken() {
        // `true` exits at once without speaking MCP: every attempt fails.
        let up = Upstream::new(spec("true", &[]));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(up.clone().supervise(shutdown.clone(), fast(3)));
        gives_up(task).await;
        let Status::Failed(why) = up.status() else { panic!("not failed") };
        assert!(why.starts_with("crash loop: 3 failures in a row"), "{why}");
    }

    #[tokio::test]
    async fn a_missing_program_is_reported() {
        let up = Upstream::new(spec("/nonexistent/bastion-upstream", &[]));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(up.clone().supervise(shutdown.clone(), fast(1)));
        gives_up(task).await;
        let Status::Failed(why) = up.status() else { panic!("not failed") };
        assert!(why.contains("failed to start") && why.contains("No such file"), "{why}");
    }

    #[tokio::test]
    async fn a_remote_host_that_is_gone_is_tried_again_without_giving_up() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A port nothing listens on: every attempt fails at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = spec("unused", &[]);
        s.source = Source::Remote(Remote {
            url: format!("http://127.0.0.1:{port}/mcp"),
            bearer: None,
            credentials: None,
            tls: None,
            ping_interval: Duration::from_millis(2),
        });
        let up = Upstream::new(s);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(up.clone().supervise(shutdown.clone(), fast(2)));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while up.restarts() < 5 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(up.restarts() >= 5, "tried again past the crash-loop limit of 2: {}", up.restarts());
        assert!(!task.is_finished(), "still supervised");
        if let Status::Failed(why) = up.status() {
            assert!(!why.starts_with("crash loop"), "{why}");
        }
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn shutdown_stops_the_supervisor() {
        let up = Upstream::new(spec("true", &[]));
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let task = tokio::spawn(up.clone().supervise(shutdown.clone(), Restart::default()));
        // With the default ten attempts and a 0.5 s first backoff, only the shutdown ends it
        // this fast.
        tokio::time::timeout(Duration::from_secs(2), task).await.unwrap().unwrap();
        assert!(!matches!(up.status(), Status::Ready { .. }));
    }
}
