//! Upstreams: MCP servers the hub talks to as a client. Today a stdio child process (a built-in
//! server as `bastion fs|git|shell ...`, or any command), kept alive by a supervisor task that
//! restarts it with exponential backoff and re-lists its tools after each restart.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;

use rmcp::model::{ClientConfig, Implementation, ProgressNotificationParam, ProgressToken, Tool};
use rmcp::service::{NotificationContext, Peer, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, RoleServer, ServiceExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// Progress routes of one upstream: the token the hub's request to the child carried (rmcp
/// always assigns its own) → the caller's peer and the token the caller asked for.
pub type ProgressRoutes = Arc<Mutex<HashMap<ProgressToken, (Peer<RoleServer>, ProgressToken)>>>;

/// The hub's client side towards one child: forwards the child's progress to whoever is waiting.
#[derive(Clone)]
pub struct ChildClient {
    routes: ProgressRoutes,
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

    fn get_info(&self) -> ClientConfig {
        let mut c = ClientConfig::default();
        c.client_info = Implementation::new("bastion-hub", env!("CARGO_PKG_VERSION"));
        c
    }
}

/// How to start an upstream.
#[derive(Clone, Debug)]
pub struct UpstreamSpec {
    /// Namespace prefix, `[a-z][a-z0-9]{0,15}`.
    pub name: String,
    /// `fs`, `git`, `shell` for built-ins (decides the exec rule in [`crate::scope`]), `stdio` for
    /// any other command.
    pub kind: String,
    /// Program to run.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

impl UpstreamSpec {
    /// A built-in server run as a child of this very binary (`bastion <kind> <args>`).
    pub fn builtin(kind: &str, args: Vec<String>) -> std::io::Result<UpstreamSpec> {
        let args = std::iter::once(kind.to_owned()).chain(args).collect();
        Ok(UpstreamSpec { name: kind.to_owned(), kind: kind.to_owned(), program: std::env::current_exe()?, args })
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
    /// Where the child's progress notifications go.
    pub routes: ProgressRoutes,
}

/// First and longest restart delays.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A child that stayed up this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// How long initialise plus tools/list may take.
const START_TIMEOUT: Duration = Duration::from_secs(30);

impl Upstream {
    /// An upstream not started yet.
    pub fn new(spec: UpstreamSpec) -> Arc<Upstream> {
        Arc::new(Upstream {
            spec,
            status: RwLock::new(Status::Starting),
            generation: AtomicU64::new(0),
            routes: ProgressRoutes::default(),
        })
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many times the status changed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn set(&self, s: Status) {
        *self.status.write().unwrap_or_else(|e| e.into_inner()) = s;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Starts the child, initialises it and lists its tools.
    async fn connect(&self) -> anyhow::Result<(RunningService<RoleClient, ChildClient>, Vec<Tool>)> {
        let mut cmd = Command::new(&self.spec.program);
        cmd.args(&self.spec.args);
        // The child's logs join the hub's on stderr; stdin/stdout are the MCP channel.
        let (transport, _) = TokioChildProcess::builder(cmd).stderr(Stdio::inherit()).spawn()?;
        let client = ChildClient { routes: self.routes.clone() };
        let service = tokio::time::timeout(START_TIMEOUT, client.serve(transport)).await??;
        let tools = tokio::time::timeout(START_TIMEOUT, service.list_all_tools()).await??;
        Ok((service, tools))
    }

    /// Keeps the upstream running until `shutdown` fires: start, mark ready, wait for the child
    /// to exit, back off, start again.
    pub async fn supervise(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let attempt = tokio::select! {
                r = self.connect() => r,
                _ = shutdown.cancelled() => return,
            };
            match attempt {
                Ok((service, tools)) => {
                    tracing::info!(upstream = %self.spec.name, tools = tools.len(), "upstream ready");
                    self.set(Status::Ready { peer: service.peer().clone(), tools: Arc::new(tools) });
                    let started = tokio::time::Instant::now();
                    let stop = service.cancellation_token();
                    let waiting = service.waiting();
                    tokio::pin!(waiting);
                    tokio::select! {
                        r = &mut waiting => {
                            let why = match r { Ok(q) => format!("{q:?}"), Err(e) => e.to_string() };
                            tracing::warn!(upstream = %self.spec.name, "upstream exited: {why}");
                            self.set(Status::Failed(format!("exited: {why}")));
                        }
                        _ = shutdown.cancelled() => {
                            // Closing the transport closes the child's stdin, then SIGTERM, then SIGKILL.
                            stop.cancel();
                            let _ = tokio::time::timeout(Duration::from_secs(8), waiting).await;
                            self.set(Status::Failed("hub shutting down".into()));
                            return;
                        }
                    }
                    if started.elapsed() >= HEALTHY_AFTER {
                        backoff = BACKOFF_MIN;
                    }
                }
                Err(e) => {
                    tracing::warn!(upstream = %self.spec.name, "upstream failed to start: {e:#}");
                    self.set(Status::Failed(format!("{e:#}")));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            self.set(Status::Starting);
        }
    }
}
