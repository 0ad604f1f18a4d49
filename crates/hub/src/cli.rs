//! The command line of `bastion`, as clap parses it: raw flags only. The hub never decides
//! anything from them directly: [`crate::settings::HubSettings`] turns these flags and the
//! configuration file into the one value it runs from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::serve::{StateDir, TokenCommand};
use crate::{bundle, completions, control_cli, dashboard, doctor, setup};

/// `bastion`.
#[derive(Parser)]
#[command(name = "bastion", version, about = "Bastion: safe, auditable MCP servers for files, commands and git")]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Run the filesystem MCP server over stdio (same flags as bastion-fs).
    Fs(bastion_fs::FsArgs),
    /// Run the git MCP server over stdio (same flags as bastion-git).
    Git(bastion_git::GitArgs),
    /// Run the shell MCP server over stdio (same flags as bastion-shell).
    Shell(bastion_shell::ShellArgs),
    /// Run the host inspection MCP server over stdio (same flags as bastion-host).
    Host(bastion_host::HostArgs),
    /// Run the hub: the built-in servers on the roots, as one MCP server over HTTP or stdio.
    Serve(ServeArgs),
    /// Start the hub's upstreams, print the merged tools with their tier and scope, and exit.
    Tools(ToolsArgs),
    /// Start the hub's upstreams, print the OpenAPI document of their tools (for a Custom GPT's
    /// Actions or Open WebUI), and exit.
    Openapi(crate::openapi::OpenapiArgs),
    /// Check a hub configuration file without starting anything.
    CheckConfig(CheckArgs),
    /// Manage the hub's bearer tokens (and list or revoke OAuth grants).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage the machine clients of the hub's OAuth server (client credentials).
    #[command(subcommand)]
    Client(crate::client_cli::ClientCommand),
    /// Create or replace the owner secret that approves OAuth clients; printed once on stdout.
    OwnerSecret(StateDir),
    /// List the calls waiting for your approval (with --watch, as they come).
    Approvals(control_cli::ApprovalsArgs),
    /// Approve a pending call by its id.
    Approve(control_cli::ApproveArgs),
    /// Deny a pending call by its id.
    Deny(control_cli::DenyArgs),
    /// Cap the running hub and servers: observe (reading only) or normal.
    Mode(control_cli::ModeArgs),
    /// Refuse every call (`paused`) until `bastion resume`; calls in flight finish.
    Pause(control_cli::SwitchArgs),
    /// Undo `bastion pause`.
    Resume(control_cli::SwitchArgs),
    /// Print a one-time sign-in link to the hub's dashboard (--open opens it); with --journal
    /// and --control, serve the dashboard of a server alone.
    Dashboard(dashboard::cli::DashboardArgs),
    /// Add Bastion to an MCP client's configuration (Claude Desktop, Claude Code, Cursor, VS Code, Codex).
    Setup(setup::SetupArgs),
    /// Check the kernel, the sandbox, the state directory, the configuration and the public URL.
    Doctor(doctor::DoctorArgs),
    /// Print the shell completion script for bash, zsh or fish.
    Completions(completions::CompletionsArgs),
    /// Print the man page, or write every page into a directory.
    Man(completions::ManArgs),
    /// The Claude Desktop bundle's entry point: `serve --stdio` for the directories given.
    #[command(hide = true)]
    BundleServe(bundle::BundleArgs),
}

/// Which upstreams to run (shared by `serve` and `tools`).
#[derive(Args, Debug, Default)]
pub struct UpstreamArgs {
    /// A directory the built-in servers may use (repeatable; default: the current directory).
    #[arg(long = "root", value_name = "DIR")]
    pub roots: Vec<PathBuf>,
    /// Offer the write tools of the built-in fs and git servers (default: read-only).
    #[arg(long)]
    pub allow_write: bool,
    /// Let the built-in servers use a root that is or contains the home directory or a .ssh
    /// directory (they refuse one otherwise, and the hub does not start).
    #[arg(long)]
    pub allow_broad_roots: bool,
    /// A hub configuration file (listen address, auth, roots, upstreams); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Offer `search` and `fetch` (the tools ChatGPT's deep research calls) over the fs
    /// server's roots: true or false (default: true in OAuth mode, that is with a public URL
    /// and authentication on).
    #[arg(long, value_name = "BOOL")]
    pub search_fetch: Option<bool>,
}

/// Flags of `bastion check-config`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The hub configuration file to check.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Flags of `bastion tools`.
#[derive(Args, Debug)]
pub struct ToolsArgs {
    /// Which upstreams.
    #[command(flatten)]
    pub upstreams: UpstreamArgs,
    /// Print JSON (the tools as `tools/list` would show them to a `*:*` token, with tier and
    /// scope) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `bastion serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Which upstreams.
    #[command(flatten)]
    pub upstreams: UpstreamArgs,
    /// Address to listen on (default: 127.0.0.1:8765).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The URL clients use when the hub sits behind a tunnel or proxy; its host is allowed in
    /// `Host` and its origin in `Origin` besides loopback. With authentication on it also turns
    /// on OAuth mode (for ChatGPT and claude.ai): the hub becomes its own authorization server
    /// with issuer scheme://host[:port] of this URL, which must be https (http on loopback) and
    /// have no path but /mcp.
    #[arg(long, value_name = "URL")]
    #[allow(rustdoc::broken_intra_doc_links)] // the text is clap's help: `[:port]` is no link
    pub public_url: Option<String>,
    /// Serve MCP on stdin/stdout instead of HTTP (no tokens: the parent process is trusted).
    #[arg(long)]
    pub stdio: bool,
    /// With --stdio: serve the configuration's [profile.NAME] instead of the hub's surface
    /// (over HTTP every profile is served at /mcp/NAME).
    #[arg(long, value_name = "NAME", requires = "stdio")]
    pub profile: Option<String>,
    /// Serve HTTP without authentication. Refused unless --listen is a loopback address.
    #[arg(long)]
    pub no_auth: bool,
    /// Where tokens and the audit journal are kept (default: $XDG_STATE_HOME/bastion or
    /// ~/.local/state/bastion).
    #[arg(long, value_name = "DIR", env = "BASTION_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Append the hub's JSON-lines audit journal (one line per call, with the token's name) to
    /// FILE (default: audit.jsonl in the state directory).
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Longest a tool call may take before the hub cancels it (e.g. 90s, 15m; default 15m);
    /// the upstream stays up for other calls.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub call_timeout: Option<Duration>,
    /// Serve MCP sessions (`Mcp-Session-Id`) instead of stateless requests, so that clients
    /// keeping a stream open are told when the tools change. Stateless suits ChatGPT and
    /// claude.ai, which do not keep sessions reliably.
    #[arg(long)]
    pub stateful: bool,
    /// On SIGTERM or Ctrl-C, how long calls in flight may take to finish before the hub exits.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "30s")]
    pub drain_timeout: Duration,
    /// Allow a --state-dir inside a root (it still stays unreachable to every tool).
    #[arg(long)]
    pub allow_state_in_root: bool,
    /// Requests per second one token or OAuth grant may make on average, in bursts of ten
    /// seconds' worth (default 500; 0: no limit). Over it: 429 with Retry-After.
    #[arg(long, value_name = "RPS")]
    pub rate_limit: Option<f64>,
    /// No request-rate limit, per token or per client address (benchmarks of the hub itself);
    /// the caps on requests in flight and sessions stay.
    #[arg(long, conflicts_with = "rate_limit")]
    pub no_rate_limits: bool,
    /// Requests of one token or OAuth grant in flight at once (default 64; 0: no limit).
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<u32>,
    /// MCP sessions open at once with --stateful (default 1000; 0: no limit).
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<u32>,
    /// Threads of the hub's runtime (default 1; more: tokio's multi-threaded runtime). The hub
    /// moves messages between clients and its children, which do the work in their own
    /// processes; more threads help where a request waits on something outside the runtime (a
    /// PostgreSQL store's queries). BENCHMARKS.md has the measurements.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub threads: u16,
}
