//! `bastion`: one binary for every Bastion capability. `bastion fs|shell|git|host` run the built-in
//! servers over stdio, each in its own process; `bastion serve` runs the hub (the
//! `bastion_hub` library), which starts them as its children and serves their tools,
//! namespaced, over MCP streamable HTTP (or stdio); `bastion token` manages the hub's bearer
//! tokens and OAuth grants; `bastion owner-secret` sets the secret that approves OAuth clients;
//! `bastion approvals|approve|deny|mode|pause|resume` talk to a running hub's control socket;
//! `bastion dashboard` prints a one-time link to its web dashboard;
//! `bastion setup|doctor|completions|man` install and check it.

use bastion_hub::cli::{Cli, Command};
use bastion_hub::settings::HubSettings;
use bastion_hub::{bundle, completions, control_cli, doctor, serve, setup};
use clap::{CommandFactory, Parser};

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
        Command::Host(args) => one_thread(bastion_host::run_stdio(args)),
        // One thread by default: the hub only moves messages between clients and children (which
        // do the work, in their own processes), and a call crosses several tasks; on one thread
        // those hand-offs are queue pushes rather than cross-thread wake-ups. `--threads N` for a
        // hub whose requests wait on PostgreSQL (15–45 % more calls with 2, BENCHMARKS.md).
        Command::Serve(args) => {
            let settings = HubSettings::from_serve_args(&args)?;
            match args.threads {
                0 | 1 => one_thread(serve::serve(settings)),
                n => tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(usize::from(n))
                    .enable_all()
                    .build()?
                    .block_on(serve::serve(settings)),
            }
        }
        Command::Tools(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            runtime.block_on(serve::tools(args))
        }
        Command::Openapi(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            runtime.block_on(bastion_hub::openapi::print(args))
        }
        Command::CheckConfig(args) => serve::check_config(args),
        Command::Token(cmd) => serve::token(cmd),
        Command::Client(cmd) => bastion_hub::client_cli::client(cmd),
        Command::OwnerSecret(state) => serve::owner_secret(state),
        Command::Approvals(args) => control_cli::approvals(args),
        Command::Approve(a) => control_cli::decide(&a.id, true, None, &a.target),
        Command::Deny(a) => control_cli::decide(&a.id, false, a.reason, &a.target),
        Command::Mode(a) => control_cli::switch(control_cli::mode_request(a.mode), &a.target),
        Command::Pause(a) => control_cli::switch(serde_json::json!({"op": "pause", "channel": "cli"}), &a.target),
        Command::Resume(a) => control_cli::switch(serde_json::json!({"op": "resume", "channel": "cli"}), &a.target),
        Command::Dashboard(args) => one_thread(bastion_hub::dashboard::cli::dashboard(args)),
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
        Command::BundleServe(args) => {
            one_thread(serve::serve(HubSettings::from_serve_args(&bundle::serve_args(args)?)?))
        }
    }
}

/// Runs a server on the current thread (no helper threads: one process per server).
fn one_thread(server: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(server)
}
