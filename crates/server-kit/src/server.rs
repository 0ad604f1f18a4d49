//! The skeleton every Bastion server shares: a server is its tools (an rmcp `ToolRouter` and a
//! [`ToolTable`]) plus its state, described by [`BastionServer`]; [`Handler`] turns it into an
//! rmcp `ServerHandler` and [`run_stdio`] serves it on stdin/stdout.
//!
//! rmcp's `ServerHandler` is a foreign trait, so it cannot be implemented for every
//! `S: BastionServer` here; [`Handler`] is the one implementation, and a server never writes its
//! own. That keeps `get_info`, `list_tools`, `get_tool` and `call_tool` identical across
//! servers, and keeps every call on [`ToolTable::call`].

use std::future::Future;

use bastion_policy::Policy;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use tokio::sync::RwLock;

use crate::ToolTable;

/// What a Bastion MCP server is: its name and instructions, its tool table and router, its
/// policy, and optional hooks. [`Handler`] does the rest.
///
/// ```no_run
/// use std::sync::Arc;
/// use bastion_policy::{Policy, Tier};
/// use bastion_server_kit::{BastionServer, ToolSpec, ToolTable};
/// use rmcp::handler::server::router::tool::ToolRouter;
///
/// const TOOLS: ToolTable = ToolTable::new("demo", &[ToolSpec::new("ping", Tier::Read, "Ping")]);
///
/// struct Demo {
///     policy: Arc<Policy>,
///     router: ToolRouter<Demo>,
/// }
///
/// impl BastionServer for Demo {
///     const NAME: &'static str = "bastion-demo";
///     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
///     const INSTRUCTIONS: &'static str = "Call ping.";
///     fn table(&self) -> &'static ToolTable {
///         &TOOLS
///     }
///     fn tool_router(&self) -> &ToolRouter<Self> {
///         &self.router
///     }
///     fn policy(&self) -> &Policy {
///         &self.policy
///     }
/// }
/// ```
pub trait BastionServer: Send + Sync + Sized + 'static {
    /// The implementation name sent in `initialize` (`bastion-fs`, …).
    const NAME: &'static str;
    /// The implementation version sent in `initialize` (the server crate's
    /// `env!("CARGO_PKG_VERSION")`).
    const VERSION: &'static str;
    /// The instructions sent in `initialize`: what the model should know before the first call.
    const INSTRUCTIONS: &'static str;

    /// The tool table in force (the shell's depends on its profile).
    fn table(&self) -> &'static ToolTable;

    /// The rmcp router of the server's `#[tool]` functions.
    fn tool_router(&self) -> &ToolRouter<Self>;

    /// The policy in force: its tier cap decides what is offered and callable; its audit
    /// journal records every call.
    fn policy(&self) -> &Policy;

    /// A lock every call holds for reading while it runs, if the server needs one: the server
    /// takes it for writing while it changes something no call may see half-done (fs: while
    /// the client's roots are fetched, so no call runs on wider roots). `None` by default.
    fn call_gate(&self) -> Option<&RwLock<()>> {
        None
    }

    /// Runs when the client says it is initialised (fs fetches the client's roots here).
    fn on_initialized(&self, context: NotificationContext<RoleServer>) -> impl Future<Output = ()> + Send {
        let _ = context;
        // What rmcp's default `on_initialized` does, kept so every server logs the same.
        tracing::info!("client initialized");
        std::future::ready(())
    }

    /// Runs when the client says its roots changed.
    fn on_roots_list_changed(&self, context: NotificationContext<RoleServer>) -> impl Future<Output = ()> + Send {
        let _ = context;
        std::future::ready(())
    }

    /// The tools offered under the policy's tier cap, in table order, with tier-derived
    /// annotations.
    fn offered_tools(&self) -> Vec<Tool> {
        self.table().offered(self.tool_router(), self.policy().max_tier)
    }

    /// This server as an rmcp `ServerHandler`, ready for `serve(transport)`.
    fn into_handler(self) -> Handler<Self> {
        Handler(self)
    }
}

/// The rmcp `ServerHandler` of a [`BastionServer`]: the same `initialize` answer shape, tool
/// listing and call path for every server.
#[derive(Clone, Debug)]
pub struct Handler<S>(pub S);

impl<S> Handler<S> {
    /// The server inside.
    pub fn server(&self) -> &S {
        &self.0
    }
}

impl<S: BastionServer> ServerHandler for Handler<S> {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(S::NAME, S::VERSION))
            .with_instructions(S::INSTRUCTIONS.to_string())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.0.offered_tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.0.table().tool(self.0.tool_router(), name, self.0.policy().max_tier)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let server = &self.0;
        let _gate = match server.call_gate() {
            Some(gate) => Some(gate.read().await),
            None => None,
        };
        server.table().call(server, server.tool_router(), server.policy(), request, context).await
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.0.on_initialized(context).await
    }

    async fn on_roots_list_changed(&self, context: NotificationContext<RoleServer>) {
        self.0.on_roots_list_changed(context).await
    }
}

/// Serves `server` on stdin/stdout (see [`crate::stdio`]) until the client disconnects or
/// SIGTERM/SIGINT arrives, then removes the control socket (see [`crate::approvals::stop`]).
pub async fn run_stdio<S: BastionServer>(server: S) -> anyhow::Result<()> {
    // A guard, so an early error return removes the socket too.
    struct StopApprovals;
    impl Drop for StopApprovals {
        fn drop(&mut self) {
            crate::approvals::stop();
        }
    }
    let _stop = StopApprovals;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let serving = async {
        server.into_handler().serve(crate::stdio()).await?.waiting().await?;
        anyhow::Ok(())
    };
    // On a signal the service is dropped, which cancels it; calls in flight end with it.
    tokio::select! {
        r = serving => r?,
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Prints the policy's warnings (broad roots, dropped roots, …) to stderr, each prefixed with
/// the server's name, before anything else is logged.
pub fn print_warnings(name: &str, policy: &Policy) {
    for w in &policy.warnings {
        eprintln!("{name}: {w}");
    }
}

/// The real paths of the policy's roots, for the start log line and audit event.
pub fn root_paths(policy: &Policy) -> Vec<String> {
    policy.roots().iter().map(|r| r.real_path().display().to_string()).collect()
}

/// Runs a server's `main` future on a current-thread runtime. Servers run on one thread: stdio
/// is polled on it (see [`crate::stdio`]), blocking work goes to the blocking pool, and the
/// shell's parent-death signal is tied to this thread.
pub fn one_thread(main: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(main)
}

#[cfg(test)]
mod tests {
    use bastion_policy::{PolicyConfig, Tier};
    use rmcp::handler::server::wrapper::Parameters;
    use rmcp::{tool, tool_router};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::{Failure, Json, ToolSpec};

    const TOOLS: ToolTable = ToolTable::new(
        "demo",
        &[ToolSpec::new("ping", Tier::Read, "Ping"), ToolSpec::new("poke", Tier::Write, "Poke").idempotent()],
    );

    struct Demo {
        policy: Policy,
        router: ToolRouter<Demo>,
    }

    #[derive(Deserialize, JsonSchema)]
    struct NoArgs {}

    #[derive(Serialize, JsonSchema)]
    struct Pong {
        pong: bool,
    }

    #[tool_router(router = demo_router)]
    impl Demo {
        /// Answers pong, to check that the server is there.
        #[tool(name = "ping")]
        async fn ping(&self, Parameters(_a): Parameters<NoArgs>) -> Result<Json<Pong>, Failure> {
            Ok(Json(Pong { pong: true }))
        }

        /// Pokes, to check that write tools are offered only under a write cap.
        #[tool(name = "poke")]
        async fn poke(&self, Parameters(_a): Parameters<NoArgs>) -> Result<Json<Pong>, Failure> {
            Ok(Json(Pong { pong: false }))
        }
    }

    impl BastionServer for Demo {
        const NAME: &'static str = "bastion-demo";
        const VERSION: &'static str = "9.9.9";
        const INSTRUCTIONS: &'static str = "Call ping.";
        fn table(&self) -> &'static ToolTable {
            &TOOLS
        }
        fn tool_router(&self) -> &ToolRouter<Self> {
            &self.router
        }
        fn policy(&self) -> &Policy {
            &self.policy
        }
    }

    fn demo(max_tier: Tier) -> Handler<Demo> {
        let config = PolicyConfig { roots: vec![std::env::temp_dir()], max_tier, ..Default::default() };
        Demo { policy: Policy::new(config).unwrap(), router: Demo::demo_router() }.into_handler()
    }

    #[test]
    fn the_handler_answers_from_the_table_and_the_tier_cap() {
        let read = demo(Tier::Read);
        let info = read.get_info();
        assert_eq!((info.server_info.name.as_str(), info.server_info.version.as_str()), ("bastion-demo", "9.9.9"));
        assert_eq!(info.instructions.as_deref(), Some("Call ping."));
        assert!(info.capabilities.tools.is_some());
        let offered: Vec<String> = read.server().offered_tools().iter().map(|t| t.name.to_string()).collect();
        assert_eq!(offered, ["ping"]);
        assert!(read.get_tool("poke").is_none(), "a write tool is hidden under a read cap");
        assert!(read.get_tool("nope").is_none());
        let ping = read.get_tool("ping").unwrap();
        assert_eq!(ping.title.as_deref(), Some("Ping"));
        assert_eq!(ping.annotations.as_ref().and_then(|a| a.read_only_hint), Some(true));

        let write = demo(Tier::Write);
        let offered: Vec<String> = write.server().offered_tools().iter().map(|t| t.name.to_string()).collect();
        assert_eq!(offered, ["ping", "poke"]);
        let poke = write.get_tool("poke").unwrap();
        assert_eq!(poke.annotations.as_ref().and_then(|a| a.idempotent_hint), Some(true));
        assert!(write.server().call_gate().is_none());
    }
}
