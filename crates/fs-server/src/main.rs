//! `bastion-fs`: Bastion's filesystem MCP server over stdio.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "bastion-fs",
    version,
    about = "Bastion filesystem MCP server (stdio). Read-only unless --allow-write."
)]
struct Cli {
    #[command(flatten)]
    args: bastion_fs::FsArgs,
}

fn main() -> anyhow::Result<()> {
    bastion_fs::init_logging();
    bastion_server_kit::one_thread(bastion_fs::run_stdio(Cli::parse().args))
}
