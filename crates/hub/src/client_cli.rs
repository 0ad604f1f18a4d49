//! `bastion client create --machine | list | revoke`: the confidential machine clients of the
//! hub's authorization server. A machine client (another Bastion hub aggregating this one, a CI
//! job) authenticates at `/token` with `grant_type=client_credentials` and its id and secret,
//! and gets short-lived access tokens with at most its scopes. The secret is printed once and
//! stored only as a SHA-256 hash, in the state directory's store like every other credential.

use std::path::PathBuf;

use anyhow::Context;
use bastion_auth::store::{SqliteStore, Store};
use clap::{Args, Subcommand};

/// The `bastion client` subcommands.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Create a machine client; its id and secret are printed once (the secret on stdout).
    Create(CreateArgs),
    /// List the machine clients.
    List(StateArgs),
    /// Revoke a machine client by name or id, with its grant and every token it holds.
    Revoke(RevokeArgs),
}

/// Where the store is.
#[derive(Args, Debug)]
pub struct StateArgs {
    /// The hub's state directory (default: $XDG_STATE_HOME/bastion or ~/.local/state/bastion).
    #[arg(long = "state-dir", value_name = "DIR", env = "BASTION_STATE_DIR")]
    pub dir: Option<PathBuf>,
    /// The hub's configuration file: its `store` (a PostgreSQL database that several hubs
    /// share) is the one acted on, from any machine that reaches it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Flags of `bastion client create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// A confidential machine client (client credentials); the only kind `create` makes, said
    /// explicitly so that a reader of the command line knows a secret follows.
    #[arg(long, required = true)]
    pub machine: bool,
    /// Its name, written to the audit line of every call made with its tokens.
    #[arg(long)]
    pub name: String,
    /// The most its tokens may carry (repeatable or comma-separated): `fs:read`, `*:*`, or a
    /// host-qualified `build01:fs:write`.
    #[arg(long = "scope", value_delimiter = ',', required = true)]
    pub scopes: Vec<bastion_auth::Scope>,
    /// Where the store is.
    #[command(flatten)]
    pub state: StateArgs,
}

/// Flags of `bastion client revoke`.
#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The client's name or id.
    pub name_or_id: String,
    /// Where the store is.
    #[command(flatten)]
    pub state: StateArgs,
}

impl StateArgs {
    fn path(&self) -> anyhow::Result<PathBuf> {
        match &self.dir {
            Some(d) => Ok(d.clone()),
            None => Ok(bastion_auth::state::default_dir()?),
        }
    }

    /// The configuration's `store`, if a file with one was given.
    fn configured_store(&self) -> anyhow::Result<Option<String>> {
        let Some(file) = &self.config else { return Ok(None) };
        let config = crate::config::HubConfig::load(file).map_err(anyhow::Error::msg)?;
        Ok(config.store.filter(|s| !s.trim().is_empty()))
    }

    /// The store, created if needed.
    fn open(&self) -> anyhow::Result<Box<dyn Store>> {
        let store = self.configured_store()?;
        Ok(bastion_auth::store::open(store.as_deref(), &self.path()?)?)
    }

    /// The store if there is one: listing or revoking never creates a SQLite file.
    fn existing(&self) -> anyhow::Result<Option<Box<dyn Store>>> {
        if let Some(store) = self.configured_store()? {
            return Ok(Some(bastion_auth::store::open(Some(&store), &self.path()?)?));
        }
        Ok(SqliteStore::open_existing(&self.path()?)?.map(|s| Box::new(s) as Box<dyn Store>))
    }
}

/// Runs a `bastion client` subcommand.
pub fn client(cmd: ClientCommand) -> anyhow::Result<()> {
    let now = bastion_auth::now();
    match cmd {
        ClientCommand::Create(a) => {
            let mut store = a.state.open()?;
            let (c, secret) = store.create_machine_client(&a.name, &a.scopes, now)?;
            eprintln!(
                "created machine client '{}' with scopes {}; its secret is stored hashed in {}",
                c.name,
                bastion_auth::scope::join(&c.scopes),
                store.location()
            );
            eprintln!("client_id: {}", c.client_id);
            eprintln!(
                "the client_secret below is shown once (keep it in an env: or file: reference, never in a config):"
            );
            println!("{secret}");
        }
        ClientCommand::List(state) => {
            println!("{:<28}  {:<20}  {:<8}  {:<20}  SCOPES", "CLIENT_ID", "NAME", "STATE", "LAST USED");
            let Some(store) = state.existing()? else { return Ok(()) };
            for c in store.machine_clients()? {
                let used = c.last_used.map_or("never".to_owned(), |t| {
                    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t))
                        .to_string()
                });
                println!(
                    "{:<28}  {:<20}  {:<8}  {:<20}  {}",
                    c.client_id,
                    c.name,
                    if c.revoked.is_some() { "revoked" } else { "live" },
                    used,
                    bastion_auth::scope::join(&c.scopes)
                );
            }
        }
        ClientCommand::Revoke(a) => {
            let mut store = a
                .state
                .existing()?
                .with_context(|| format!("no store in {}", a.state.path().unwrap_or_default().display()))?;
            let n = store.revoke_machine_clients(&a.name_or_id, now)?;
            if n == 0 {
                anyhow::bail!("no live machine client named or with id '{}'", a.name_or_id);
            }
            eprintln!("revoked {n} machine client(s) '{}' and their tokens", a.name_or_id);
        }
    }
    Ok(())
}
