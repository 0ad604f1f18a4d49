//! `bastion`: one binary for every Bastion capability. `bastion fs|shell|git` run the built-in
//! servers over stdio, each in its own process; `bastion serve` runs the hub, which starts them
//! as its children and serves their tools, namespaced, over MCP streamable HTTP (or stdio);
//! `bastion token` manages the hub's bearer tokens and OAuth grants; `bastion owner-secret` sets
//! the secret that approves OAuth clients.

mod approvals;
mod bundle;
mod completions;
mod config;
mod control_cli;
mod doctor;
mod http;
mod metrics;
mod router;
mod scope;
mod serve;
mod setup;
mod upstream;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bastion", version, about = "Bastion: safe, auditable MCP servers for files, commands and git")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the filesystem MCP server over stdio (same flags as bastion-fs).
    Fs(bastion_fs::FsArgs),
    /// Run the git MCP server over stdio (same flags as bastion-git).
    Git(bastion_git::GitArgs),
    /// Run the shell MCP server over stdio (same flags as bastion-shell).
    Shell(bastion_shell::ShellArgs),
    /// Run the hub: the built-in servers on the roots, as one MCP server over HTTP or stdio.
    Serve(serve::ServeArgs),
    /// Start the hub's upstreams, print the merged tools with their tier and scope, and exit.
    Tools(serve::ToolsArgs),
    /// Check a hub configuration file without starting anything.
    CheckConfig(serve::CheckArgs),
    /// Manage the hub's bearer tokens (and list or revoke OAuth grants).
    #[command(subcommand)]
    Token(serve::TokenCommand),
    /// Create or replace the owner secret that approves OAuth clients; printed once on stdout.
    OwnerSecret(serve::StateDir),
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

fn main() -> anyhow::Result<()> {
    // `bastion shell` re-executes this binary as its sandbox trampoline: that must happen before
    // any thread exists.
    bastion_shell::maybe_run_trampoline();
    // TLS for remote https:// upstreams: reqwest is built without a provider (see Cargo.toml).
    let _ = rustls::crypto::ring::default_provider().install_default();
    bastion_fs::init_logging();
    match Cli::parse().command {
        Command::Fs(args) => one_thread(bastion_fs::run_stdio(args)),
        Command::Git(args) => one_thread(bastion_git::run_stdio(args)),
        Command::Shell(args) => one_thread(bastion_shell::run_stdio(args)),
        Command::Serve(args) => {
            // One thread: the hub only moves messages between clients and children (which do
            // the work, in their own processes), and a call crosses several tasks; on one
            // thread those hand-offs are queue pushes rather than cross-thread wake-ups.
            one_thread(serve::serve(args))
        }
        Command::Tools(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            runtime.block_on(serve::tools(args))
        }
        Command::CheckConfig(args) => serve::check_config(args),
        Command::Token(cmd) => serve::token(cmd),
        Command::OwnerSecret(state) => serve::owner_secret(state),
        Command::Approvals(args) => control_cli::approvals(args),
        Command::Approve(a) => control_cli::decide(&a.id, true, None, &a.target),
        Command::Deny(a) => control_cli::decide(&a.id, false, a.reason, &a.target),
        Command::Mode(a) => control_cli::switch(control_cli::mode_request(a.mode), &a.target),
        Command::Pause(a) => control_cli::switch(serde_json::json!({"op": "pause", "channel": "cli"}), &a.target),
        Command::Resume(a) => control_cli::switch(serde_json::json!({"op": "resume", "channel": "cli"}), &a.target),
        Command::Setup(args) => setup::setup(args),
        // A failed check is an answer, not an error: the report is printed, the status says it.
        Command::Doctor(args) => {
            if doctor::doctor(args)? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Command::Completions(args) => completions::completions(&args, Cli::command()),
        Command::Man(args) => completions::man(&args, Cli::command()),
        Command::BundleServe(args) => one_thread(serve::serve(bundle::serve_args(args)?)),
    }
}

/// Runs a stdio server on the current thread (no helper threads: one process per server).
fn one_thread(server: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(server)
}
