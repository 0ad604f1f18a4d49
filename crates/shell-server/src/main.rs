//! `bastion-shell`: Bastion's allowlisted command MCP server over stdio.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "bastion-shell",
    version,
    about = "Bastion shell MCP server (stdio): allowlisted programs as argv in a kernel sandbox."
)]
struct Cli {
    #[command(flatten)]
    args: bastion_shell::ShellArgs,
}

fn main() -> anyhow::Result<()> {
    // The sandbox trampoline must run before any thread exists.
    bastion_shell::maybe_run_trampoline();
    bastion_shell::init_logging();
    bastion_server_kit::one_thread(bastion_shell::run_stdio(Cli::parse().args))
}
