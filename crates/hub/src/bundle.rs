//! `bastion bundle-serve [--allow-write=BOOL] DIR...`: the entry point of the Claude Desktop
//! bundle (`cargo xtask mcpb`). A bundle's manifest can only splice its `user_config` values
//! into the command line — the project directories as separate arguments, the write toggle as
//! the string `true` or `false` — so this takes them in that shape and runs exactly
//! `bastion serve --stdio --root DIR... [--allow-write]`.

use std::path::PathBuf;

use clap::{ArgAction, Args, FromArgMatches};

use crate::cli::ServeArgs;

/// Flags of `bastion bundle-serve`.
#[derive(Args, Debug)]
pub struct BundleArgs {
    /// Offer the write tools (`true` or `false`, as the bundle's toggle is spliced in).
    #[arg(long, action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value = "false")]
    allow_write: bool,
    /// The project directories (at least one).
    #[arg(value_name = "DIR", required = true)]
    roots: Vec<PathBuf>,
}

/// The `bastion serve` arguments this bundle invocation stands for.
pub fn serve_args(args: BundleArgs) -> anyhow::Result<ServeArgs> {
    let mut argv: Vec<std::ffi::OsString> = vec!["serve".into(), "--stdio".into()];
    for root in args.roots {
        argv.push("--root".into());
        argv.push(root.into_os_string());
    }
    if args.allow_write {
        argv.push("--allow-write".into());
    }
    // Parsed by serve's own definition, so the bundle can never mean anything `serve` would
    // not accept from a person.
    let matches = ServeArgs::augment_args(clap::Command::new("serve")).try_get_matches_from(argv)?;
    Ok(ServeArgs::from_arg_matches(&matches)?)
}
