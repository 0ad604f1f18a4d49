//! `bastion`: one binary for every Bastion capability. Today it runs the built-in filesystem
//! server (`bastion fs`); the hub (`bastion serve`) arrives with its own issue.

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
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    bastion_fs::init_logging();
    match Cli::parse().command {
        Command::Fs(args) => bastion_fs::run_stdio(args).await,
        Command::Git(args) => bastion_git::run_stdio(args).await,
    }
}
