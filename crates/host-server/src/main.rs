//! `bastion-host`: Bastion's host inspection MCP server over stdio.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "bastion-host",
    version,
    about = "Bastion host MCP server (stdio): read-only inspection of this machine, and approved service actions."
)]
struct Cli {
    #[command(flatten)]
    args: bastion_host::HostArgs,
}

fn main() -> anyhow::Result<()> {
    // The sandbox trampoline must run before any thread exists.
    bastion_host::maybe_run_trampoline();
    bastion_host::init_logging();
    bastion_server_kit::one_thread(bastion_host::run_stdio(Cli::parse().args))
}
