//! `bastion dashboard`: prints (and with `--open` opens) a one-time sign-in link to the running
//! hub's dashboard; with `--journal FILE --control SOCKET`, serves the dashboard of a server
//! alone (stdio) from its journal and control socket.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{Dashboard, LINK_LIFETIME, URL_FILE};
use crate::http::Allowed;
use bastion_auth::{SqliteStore, Store};

/// Flags of `bastion dashboard`.
#[derive(Args, Debug)]
pub struct DashboardArgs {
    /// Open the link in the default browser (xdg-open) as well as printing it.
    #[arg(long)]
    pub open: bool,
    /// The dashboard's base URL (default: what the running hub wrote in the state directory,
    /// else http://127.0.0.1:8765).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The state directory holding the auth store (default: $XDG_STATE_HOME/bastion or
    /// ~/.local/state/bastion, as the hub's).
    #[arg(long = "state-dir", value_name = "DIR", env = "BASTION_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Serve the dashboard of a server alone from its journal (with --control).
    #[arg(long, value_name = "FILE", requires = "control")]
    pub journal: Option<PathBuf>,
    /// The control socket of that server (with --journal).
    #[arg(long, value_name = "SOCKET", requires = "journal")]
    pub control: Option<PathBuf>,
    /// Where the standalone dashboard listens (loopback only; default 127.0.0.1:8766).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

fn state_dir(args: &DashboardArgs) -> anyhow::Result<PathBuf> {
    match &args.state_dir {
        Some(d) => Ok(d.clone()),
        None => Ok(bastion_auth::state::default_dir()?),
    }
}

/// A fresh one-time link to `base`'s dashboard, stored hashed in `state_dir`'s auth store.
pub fn new_link(state_dir: &std::path::Path, base: &str) -> anyhow::Result<String> {
    let store = SqliteStore::open(state_dir)?;
    let now = bastion_auth::now();
    let secret = store.create_login_link(now + LINK_LIFETIME.as_secs(), now)?;
    Ok(format!("{}/dashboard/login?t={secret}", base.trim_end_matches('/')))
}

fn open_in_browser(url: &str) {
    match std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            let _ = child.wait();
        }
        Err(e) => eprintln!("bastion: could not run xdg-open ({e}); open the link yourself"),
    }
}

/// Runs `bastion dashboard`.
pub async fn dashboard(args: DashboardArgs) -> anyhow::Result<()> {
    let state = state_dir(&args)?;
    let (Some(journal), Some(control)) = (args.journal.clone(), args.control.clone()) else {
        let base = match &args.url {
            Some(u) => u.clone(),
            None => std::fs::read_to_string(state.join(URL_FILE))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "http://127.0.0.1:8765".to_owned()),
        };
        let link = new_link(&state, &base)?;
        eprintln!("one-time sign-in link, valid for {} minutes:", LINK_LIFETIME.as_secs() / 60);
        println!("{link}");
        if args.open {
            open_in_browser(&link);
        }
        return Ok(());
    };
    let listen = args.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8766)));
    if !listen.ip().is_loopback() {
        anyhow::bail!("the standalone dashboard listens on loopback only; {listen} is not");
    }
    let dash = Dashboard::standalone(control, journal, &state, Allowed::loopback())?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("bastion dashboard (a server alone): {base}/dashboard");
    let link = new_link(&state, &base)?;
    println!("sign in: {link}");
    if args.open {
        open_in_browser(&link);
    }
    let app = super::router(dash).fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "Not found\n") });
    axum::serve(listener, app).await?;
    Ok(())
}
