//! `bastion`: one binary for every Bastion capability. Today it runs the built-in servers over
//! stdio (`bastion fs|shell|git`), each in its own process; the hub (`bastion serve`) arrives with
//! its own issue.

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    // `bastion shell` re-executes this binary as its sandbox trampoline: that must happen before
    // any thread exists.
    bastion_shell::maybe_run_trampoline();
    bastion_fs::init_logging();
    let command = Cli::parse().command;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        match command {
            Command::Fs(args) => bastion_fs::run_stdio(args).await,
            Command::Git(args) => bastion_git::run_stdio(args).await,
            Command::Shell(args) => bastion_shell::run_stdio(args).await,
        }
    })
}
