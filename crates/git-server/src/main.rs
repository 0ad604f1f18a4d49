//! `bastion-git`: Bastion's git MCP server over stdio.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "bastion-git",
    version,
    about = "Bastion git MCP server (stdio, libgit2 only). Read-only unless --allow-write."
)]
struct Cli {
    #[command(flatten)]
    args: bastion_git::GitArgs,
}

fn main() -> anyhow::Result<()> {
    bastion_git::init_logging();
    bastion_server_kit::one_thread(bastion_git::run_stdio(Cli::parse().args))
}
