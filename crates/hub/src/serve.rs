//! `bastion serve`, `tools`, `check-config`, `token` and `owner-secret`: running the hub from its
//! [`HubSettings`] until a signal, and the commands around it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

use bastion_policy::audit::AuditLog;

use crate::cli::{CheckArgs, ToolsArgs};
use crate::http::{self, Auth};
use crate::router::Hub;
use crate::settings::{AuthSettings, HttpSettings, HubSettings, Transport};
use crate::upstream::{Restart, Status, Upstream, UpstreamSpec};
use bastion_auth::{SqliteStore, Store, now};

/// `bastion token ...`.
#[allow(missing_docs)] // the flattened `state` fields: their flag is documented in `StateDir`
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once on stdout and stored only as a hash.
    Create {
        /// Comma-separated scopes: {upstream|*}:{read|write|destructive|exec|*}, e.g. 'fs:read,git:*'.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<bastion_auth::Scope>,
        /// Name written to the audit line of every call made with the token.
        #[arg(long, default_value = "token")]
        name: String,
        /// Lifetime, e.g. 30d, 12h (default: never expires).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        /// Bind the token to this profile ([profile.NAME], served at /mcp/NAME); repeatable.
        /// A bound token reaches only its profiles (default: every surface).
        #[arg(long = "profile", value_name = "NAME", value_parser = profile_name)]
        profiles: Vec<String>,
        #[command(flatten)]
        state: StateDir,
    },
    /// List tokens and OAuth grants (never their secrets), with their temporary scopes.
    List {
        #[command(flatten)]
        state: StateDir,
    },
    /// Revoke the live token or OAuth grant with this name or id, or (--all) every one.
    Revoke {
        /// Token name or id, OAuth grant id, `oauth:CLIENT/ID` or client name.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Revoke every static token and every OAuth grant at once (the hub creates a new
        /// `owner` token at its next start).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        state: StateDir,
    },
    /// Add scopes to a live token or OAuth grant for a while; they lapse by themselves.
    Elevate {
        /// Token name or id, OAuth grant id, `oauth:CLIENT/ID` or client name.
        name: String,
        /// Comma-separated scopes to add, e.g. 'fs:write'.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<bastion_auth::Scope>,
        /// How long, e.g. 30m, 2h.
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[command(flatten)]
        state: StateDir,
    },
}

/// A `--profile` value: a valid profile name (whether the configuration has it is the hub's
/// business when the token is used).
fn profile_name(s: &str) -> Result<String, String> {
    if crate::profile::valid_profile_name(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("'{s}' is not a profile name ([a-z][a-z0-9_-]{{0,31}})"))
    }
}

/// The `--state-dir` and `--config` flags.
#[derive(Args, Debug)]
pub struct StateDir {
    /// Where tokens are kept (default: $XDG_STATE_HOME/bastion or ~/.local/state/bastion).
    #[arg(long = "state-dir", value_name = "DIR", env = "BASTION_STATE_DIR")]
    pub dir: Option<PathBuf>,
    /// The hub's configuration file: with a PostgreSQL `store` in it, act on that database
    /// (from any machine that reaches it); with the default SQLite store, on the state
    /// directory as without it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl StateDir {
    /// Whether `--config` names a shared (PostgreSQL) store.
    fn shared(&self) -> anyhow::Result<bool> {
        let Some(file) = &self.config else { return Ok(false) };
        let parsed = crate::config::HubConfig::load(file).map_err(anyhow::Error::msg)?;
        Ok(parsed.store.as_deref().is_some_and(|s| !s.trim().is_empty() && bastion_auth::store::is_postgres(s)))
    }

    fn path(&self) -> anyhow::Result<PathBuf> {
        match &self.dir {
            Some(d) => Ok(d.clone()),
            None => Ok(bastion_auth::state::default_dir()?),
        }
    }

    /// The store, created if needed: the configuration's PostgreSQL database, else the state
    /// directory's SQLite file.
    fn store(&self) -> anyhow::Result<Box<dyn Store>> {
        if let Some(shared) = crate::control_cli::shared_store(self.config.as_deref())? {
            return Ok(shared);
        }
        Ok(Box::new(SqliteStore::open(&self.path()?)?))
    }

    /// The store if there is one: listing or revoking never creates a SQLite file.
    fn existing(&self) -> anyhow::Result<Option<Box<dyn Store>>> {
        if let Some(shared) = crate::control_cli::shared_store(self.config.as_deref())? {
            return Ok(Some(shared));
        }
        Ok(SqliteStore::open_existing(&self.path()?)?.map(|s| Box::new(s) as Box<dyn Store>))
    }

    /// Appends an event to the hub's journal (`audit.jsonl` here, where `serve` writes by
    /// default), so elevations and revocations sit beside the calls they affect. Not with a
    /// shared store: the command may run on a machine no hub journals on, and the store keeps
    /// when each token was revoked.
    fn journal(&self, event: &str, detail: serde_json::Value) -> anyhow::Result<()> {
        if self.config.is_some() && self.shared()? {
            return Ok(());
        }
        let path = self.path()?.join("audit.jsonl");
        let log = AuditLog::open(&path).with_context(|| format!("opening {}", path.display()))?;
        log.event("hub", event, detail);
        Ok(())
    }
}

/// `bastion owner-secret`: creates or replaces the owner secret that approves OAuth clients on
/// the consent page, prints it once on stdout (one line) and stores only a salted hash, in
/// `auth.sqlite3` (mode 0600) in the state directory. The state directory is outside every
/// root, so no tool of the hub can read it, and the secret is typed only into the consent page
/// in the owner's browser: a model never sees it.
pub fn owner_secret(state: StateDir) -> anyhow::Result<()> {
    let store = state.store()?;
    let replaced = store.owner_secret_exists()?;
    let secret = store.set_owner_secret(now())?;
    if replaced {
        eprintln!(
            "replaced the owner secret (the old one no longer approves anything); stored hashed in {}",
            store.location()
        );
    } else {
        eprintln!("created the owner secret; stored hashed in {}", store.location());
    }
    eprintln!(
        "it is shown once: type it on the consent page when you connect ChatGPT, claude.ai or another OAuth client"
    );
    println!("{secret}");
    Ok(())
}

fn time(t: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

/// Scopes as listed: `a,b`, then each live elevation as `+c until TIME`.
fn listed_scopes(scopes: &[bastion_auth::Scope], elevations: &[bastion_auth::Elevation]) -> String {
    let mut out = scopes.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    for e in elevations {
        let added = e.scopes.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        out.push_str(&format!(" +{added} until {}", time(e.until)));
    }
    out
}

/// Runs a `bastion token` subcommand.
pub fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { scopes, name, expires, profiles, state } => {
            let mut store = state.store()?;
            let (rec, secret) = store.create_token_for(&name, &scopes, expires, &profiles, now())?;
            let bound = if profiles.is_empty() { String::new() } else { format!(", bound to {}", profiles.join(", ")) };
            eprintln!(
                "created token '{}' (id {}) with scopes {}{bound}; stored hashed in {}",
                rec.name,
                rec.id,
                listed_scopes(&rec.scopes, &[]),
                store.location()
            );
            eprintln!("the secret below is shown once:");
            println!("{secret}");
        }
        TokenCommand::List { state } => {
            let store = state.existing()?;
            let at = now();
            println!("{:<8}  {:<20}  {:<10}  {:<20}  SCOPES", "ID", "NAME", "STATE", "EXPIRES");
            let Some(store) = store else { return Ok(()) };
            for r in store.tokens(at)? {
                let st = match r.check(at) {
                    Ok(()) => "live",
                    Err(bastion_auth::Refusal::Revoked) => "revoked",
                    Err(_) => "expired",
                };
                let exp = r.expires.map_or("never".to_owned(), time);
                let bound =
                    if r.profiles.is_empty() { String::new() } else { format!(" (profiles {})", r.profiles.join(",")) };
                println!(
                    "{:<8}  {:<20}  {:<10}  {:<20}  {}{bound}",
                    r.id,
                    r.name,
                    st,
                    exp,
                    // A dead token's elevations no longer matter.
                    listed_scopes(&r.scopes, if st == "live" { &r.elevations } else { &[] })
                );
            }
            let grants = store.grants(at)?;
            if !grants.is_empty() {
                println!();
                println!(
                    "{:<12}  {:<24}  {:<8}  {:<20}  {:<20}  SCOPES",
                    "OAUTH GRANT", "CLIENT", "STATE", "CREATED", "LAST USED"
                );
                for g in grants {
                    println!(
                        "{:<12}  {:<24}  {:<8}  {:<20}  {:<20}  {}",
                        g.id,
                        g.client_name,
                        g.state,
                        time(g.created),
                        g.last_used.map_or("never".to_owned(), time),
                        listed_scopes(&g.scopes, if g.state == "live" { &g.elevations } else { &[] })
                    );
                }
            }
        }
        TokenCommand::Revoke { all: true, state, .. } => {
            let Some(mut store) = state.existing()? else {
                bail!("no tokens or OAuth grants in {}", state.path()?.display());
            };
            let r = store.revoke_all(now())?;
            state
                .journal("revoke_all", serde_json::json!({"tokens": r.tokens, "grants": r.grants, "channel": "cli"}))?;
            eprintln!("revoked every token ({}) and every OAuth grant ({}) with all their tokens", r.tokens, r.grants);
        }
        TokenCommand::Revoke { name, state, .. } => {
            let name = name.unwrap_or_default();
            let Some(mut store) = state.existing()? else {
                bail!("no live token or OAuth grant named or with id '{name}'");
            };
            let n = store.revoke_tokens(&name, now())?;
            // An OAuth grant by id, by `oauth:NAME/ID` (the audit journal's name) or by client
            // name: the grant and every token of it.
            let g = store.revoke_grants(&name, now())?;
            if n == 0 && g == 0 {
                bail!("no live token or OAuth grant named or with id '{name}'");
            }
            if n > 0 {
                eprintln!("revoked {n} token(s) '{name}'");
            }
            if g > 0 {
                eprintln!("revoked {g} OAuth grant(s) '{name}' with all their tokens");
            }
        }
        TokenCommand::Elevate { name, scopes, duration, state } => {
            let Some(mut store) = state.existing()? else {
                bail!("no live token or OAuth grant named or with id '{name}'");
            };
            let at = now();
            let until = at.saturating_add(duration.as_secs());
            let elevated = store.elevate(&name, &scopes, until, at)?;
            if elevated.is_empty() {
                bail!("no live token or OAuth grant named or with id '{name}'");
            }
            let added: Vec<String> = scopes.iter().map(ToString::to_string).collect();
            let detail = serde_json::json!({"name": name, "elevated": elevated, "scopes": added,
                "until": time(until), "seconds": duration.as_secs(), "channel": "cli"});
            state.journal("elevation", detail)?;
            eprintln!(
                "added {} to {} until {} ({})",
                listed_scopes(&scopes, &[]),
                elevated.join(", "),
                time(until),
                humantime::format_duration(duration)
            );
        }
    }
    Ok(())
}

/// The scopes the hub's current tools need (`fs:read`, `shell:exec`, ...), sorted: what OAuth
/// advertises and offers on the consent page.
fn hub_scopes(hub: &Hub) -> Vec<String> {
    let catalogue = hub.catalogue();
    let scopes: std::collections::BTreeSet<String> =
        catalogue.entries.iter().map(|e| e.tier.scope(&hub.upstreams()[e.upstream].spec.name)).collect();
    scopes.into_iter().collect()
}

/// Names of the upstreams, for the start-up banner.
fn names(specs: &[UpstreamSpec]) -> String {
    specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
}

async fn signalled() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// The upstreams and their supervisor tasks.
pub(crate) struct Supervised {
    pub(crate) upstreams: Vec<Arc<Upstream>>,
    supervisors: Vec<tokio::task::JoinHandle<()>>,
    /// Cancelling it stops every supervisor (and so every child).
    shutdown: CancellationToken,
}

impl Supervised {
    /// Starts a supervisor per upstream.
    pub(crate) fn start(specs: Vec<UpstreamSpec>) -> Supervised {
        let shutdown = CancellationToken::new();
        warn_uncontained(&specs);
        let upstreams: Vec<_> = specs.into_iter().map(Upstream::new).collect();
        let supervisors = upstreams
            .iter()
            .map(|u| tokio::spawn(u.clone().supervise(shutdown.child_token(), Restart::default())))
            .collect();
        Supervised { upstreams, supervisors, shutdown }
    }

    /// Stops the children (each supervisor closes its child's stdin, then signals it) and
    /// waits up to 10 s for each.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        for s in self.supervisors {
            let _ = tokio::time::timeout(Duration::from_secs(10), s).await;
        }
    }
}

/// Warns of each command upstream that runs uncontained.
fn warn_uncontained(specs: &[UpstreamSpec]) {
    for s in specs {
        if let crate::upstream::Source::Command { sandbox: None, program, .. } = &s.source {
            tracing::warn!(
                upstream = %s.name,
                program = %program.display(),
                "upstream runs uncontained (sandbox = false): it sees the hub's files and network"
            );
        }
    }
}

/// Waits until every upstream is ready (or `limit` passes).
pub(crate) async fn wait_ready(upstreams: &[Arc<Upstream>], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if upstreams.iter().all(|u| !u.spec.required || matches!(u.status(), Status::Ready { .. })) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `bastion serve`: runs the hub from its settings until a signal.
pub async fn serve(settings: HubSettings) -> anyhow::Result<()> {
    let HubSettings {
        upstreams: specs,
        transport,
        state_dir,
        store,
        audit_log: audit_path,
        call_timeout,
        drain_timeout,
        roots,
        allow_state_in_root,
        approvals: approval,
        journal,
        search_fetch,
        naming,
        tool_search,
        profiles,
        profile,
    } = settings;
    // A built-in that would refuse its roots or flags stops the hub here, before it listens,
    // with one line (the children would each die at start, and the hub serve without them).
    for specs in std::iter::once(&specs).chain(profiles.iter().map(|p| &p.upstreams)) {
        if let Err(why) = crate::startup::check_builtins(specs) {
            eprintln!("bastion: {why}");
            std::process::exit(2);
        }
    }
    // Bastion's own state, out of reach of every tool: refused inside a root unless allowed,
    // not trusted when another user could replace it (the children protect it: `--protect`).
    // The roots are the built-ins'; a hub of third-party upstreams only has none to keep it
    // out of (its default root, the current directory, is given to no one).
    let builtin_roots: Vec<std::path::PathBuf> = std::iter::once((&specs, &roots))
        .chain(profiles.iter().map(|p| (&p.upstreams, &p.roots)))
        .filter(|(specs, _)| crate::startup::has_builtins(specs))
        .flat_map(|(_, roots)| roots.iter().cloned())
        .collect();
    let own = bastion_policy::state::check_state_dir_outside_roots(&state_dir, &builtin_roots, allow_state_in_root)
        .and_then(|()| bastion_policy::state::check_private_dir(&state_dir));
    if let Err(e) = own {
        eprintln!("bastion: {}", e.message);
        std::process::exit(2);
    }
    let (stdio, http) = match transport {
        Transport::Stdio => (true, None),
        Transport::Http(http) => (false, Some(http)),
    };
    let (auth, oauth_settings) = match http.as_ref().map(|h| &h.auth) {
        None | Some(AuthSettings::None) => (Auth::open(), None),
        Some(AuthSettings::Tokens) => (Auth::tokens(bastion_auth::store::open(store.as_deref(), &state_dir)?), None),
        Some(AuthSettings::OAuth(s)) => {
            let mut s = s.clone();
            s.store = store.clone();
            (Auth::tokens(bastion_auth::store::open(store.as_deref(), &state_dir)?), Some(s))
        }
    };
    // The control socket lives in the state directory, so it exists whatever the journal's path.
    bastion_auth::state::ensure_dir(&state_dir)?;
    let audit =
        AuditLog::open_rotating(&audit_path, journal).with_context(|| format!("opening {}", audit_path.display()))?;
    let banner = names(&specs);
    let supervised = Supervised::start(specs.clone());
    let (upstreams, shutdown) = (supervised.upstreams.clone(), supervised.shutdown.clone());
    let stateful = http.as_ref().is_some_and(|h| h.stateful);
    let approvals = crate::approvals::HubApprovals::start(&approval, &roots, &specs, &audit_path)?;
    let control_socket = approvals.socket_path().to_path_buf();
    // With a shared store, mode, pause and approvals are one for every replica (kept until exit).
    let _feed = crate::approvals::shared::share(approvals.engine(), store.as_deref(), &state_dir)?;
    let hub = Hub::new(upstreams.clone(), audit, stdio)
        .with_call_timeout(call_timeout)
        .with_list_changed(stdio || stateful)
        .with_approvals(approvals)
        .with_naming(naming)
        .with_tool_search(tool_search);
    let hub = match search_fetch {
        Some(s) => hub.with_search_fetch(s),
        None => hub,
    };
    let hub = match profile {
        Some((name, offered)) => hub.as_profile(&name, offered),
        None => hub,
    };
    // Each profile's upstreams are processes of their own, started when the profile is first
    // used (its first request waits for them): a hub of many projects runs only those in use.
    let mut surfaces = vec![];
    for p in &profiles {
        warn_uncontained(&p.upstreams);
        let mut surface = hub.for_lazy_profile(p, p.upstreams.iter().cloned().map(Upstream::new).collect());
        if let Some(gate) = hub.approvals() {
            surface = surface.with_approvals(gate.for_profile(&p.roots, &p.upstreams));
        }
        surfaces.push((p.name.clone(), surface));
    }
    for h in std::iter::once(&hub).chain(surfaces.iter().map(|(_, h)| h)) {
        announce_changes(h);
    }
    let mut new_owner_secret = None;
    let auth = match oauth_settings {
        Some(settings) => {
            let hubs: Vec<Hub> = std::iter::once(hub.clone()).chain(surfaces.iter().map(|(_, h)| h.clone())).collect();
            let mut settings = *settings;
            settings.profiles = surfaces.iter().map(|(name, _)| name.clone()).collect();
            let scopes = move || {
                // A profile not used yet lists no tools: its upstreams start now, and their scopes
                // are offered from the next question on (the consent page comes after discovery).
                hubs.iter().for_each(Hub::start_soon);
                let all: std::collections::BTreeSet<String> = hubs.iter().flat_map(hub_scopes).collect();
                all.into_iter().collect()
            };
            let (oauth, created) = bastion_auth::OAuth::open(settings, Arc::new(scopes)).map_err(anyhow::Error::msg)?;
            new_owner_secret = created;
            auth.with_oauth(oauth)
        }
        None => auth,
    };

    if let Some(http) = http {
        let HttpSettings { listen, public_url, allowed, stateful, limits, sealing_key, .. } = http;
        // Read at start, so a missing variable or file stops the hub here rather than at the
        // first session.
        let sealing = match &sealing_key {
            Some(spec) => Some(Arc::new(crate::session::SealingKey::resolve(spec)?)),
            None => None,
        };
        if stateful && sealing.is_none() && store.is_some() {
            tracing::warn!(
                "--stateful without a sealing_key: a session lives on the hub that opened it (set sealing_key for replicas)"
            );
        }
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
        let local = listener.local_addr()?;
        let url = format!("http://{local}/mcp");
        println!("bastion hub: MCP over streamable HTTP at {url}");
        if let Some(p) = &public_url {
            println!("public URL: {p}");
        }
        println!("upstreams: {banner}");
        for p in &profiles {
            println!("profile {}: http://{local}/mcp/{} (upstreams: {})", p.name, p.name, names(&p.upstreams));
        }
        println!("audit journal: {}", audit_path.display());
        println!("approvals: bastion approvals --watch (control socket {})", control_socket.display());
        let tokens = auth.with_store(|store| -> anyhow::Result<_> {
            let live = store.tokens(now())?.iter().any(|r| r.check(now()).is_ok());
            let created = if live {
                None
            } else {
                Some(store.create_token("owner", &[bastion_auth::Scope::all()], None, now())?)
            };
            Ok((store.location(), created))
        });
        match tokens {
            None => println!("authentication: none (loopback only)"),
            Some(tokens) => {
                match tokens? {
                    (location, None) => println!(
                        "authentication: bearer tokens from {location} (bastion token create|list|revoke|elevate)"
                    ),
                    (location, Some((rec, secret))) => {
                        println!(
                            "no token existed: created '{}' with scope *:* (shown once, stored hashed in {location})",
                            rec.name,
                        );
                        println!("token: {secret}");
                    }
                }
                println!(
                    "connect: claude mcp add --transport http bastion {url} --header \"Authorization: Bearer <token>\""
                );
            }
        }
        if let Some(oauth) = auth.oauth() {
            println!(
                "OAuth: issuer {}; connect ChatGPT or claude.ai to {} (approve on the consent page with the owner secret)",
                oauth.issuer(),
                oauth.resource()
            );
            if let Some(secret) = &new_owner_secret {
                println!(
                    "no owner secret existed: created one (shown once, stored hashed; `bastion owner-secret` replaces it)"
                );
                println!("owner secret: {secret}");
            }
        }
        // The dashboard's sign-in base URL, for `bastion dashboard` (the public URL's origin
        // when there is one: the browser must reach the hub as its Origin check expects).
        let base = match &public_url {
            Some(p) => url::Url::parse(p)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_else(|_| format!("http://{local}")),
            None => format!("http://{local}"),
        };
        let secure = base.starts_with("https://");
        let _ = std::fs::write(state_dir.join(crate::dashboard::URL_FILE), format!("{base}\n"));
        println!("dashboard: {base}/dashboard (bastion dashboard prints a sign-in link)");
        let dashboard = crate::dashboard::Dashboard::for_hub(
            hub.clone(),
            &state_dir,
            store.as_deref(),
            audit_path.clone(),
            allowed.clone(),
            secure,
        )?;
        let app = http::app_with_profiles(
            hub,
            surfaces.clone(),
            allowed,
            auth,
            http::Sessions { stateful, sealing },
            shutdown.child_token(),
            limits,
            crate::dashboard::router(dashboard),
        );
        // Stop accepting on the first signal; calls in flight get `--drain-timeout` to finish,
        // then the children are stopped.
        let signal = CancellationToken::new();
        // The peer address is the front's per-address rate limit key and the journal's `client`.
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = axum::serve(listener, app).with_graceful_shutdown(signal.clone().cancelled_owned());
        let server = tokio::spawn(async move { server.await });
        tokio::pin!(server);
        tokio::select! {
            r = &mut server => { r??; }
            _ = signalled() => {
                tracing::info!("shutting down: draining calls in flight for up to {}", humantime::format_duration(drain_timeout));
                signal.cancel();
                if tokio::time::timeout(drain_timeout, &mut server).await.is_err() {
                    tracing::warn!("calls still in flight after the drain timeout; stopping anyway");
                    server.abort();
                }
            }
        }
    } else {
        // A stdio client lists tools right after initialising: give the children a moment.
        wait_ready(&upstreams, Duration::from_secs(30)).await;
        let running = hub.serve(rmcp::transport::stdio()).await?;
        tokio::select! {
            r = running.waiting() => { r?; }
            _ = signalled() => {}
        }
    }
    supervised.stop().await;
    for (_, surface) in &surfaces {
        surface.stop_started().await;
    }
    Ok(())
}

/// Tells the clients of `hub` that can hear it to list again whenever one of its upstreams'
/// tools change (it said so, restarted or went down).
fn announce_changes(hub: &Hub) {
    for u in hub.upstreams() {
        let (u, hub) = (u.clone(), hub.clone());
        tokio::spawn(async move {
            loop {
                u.on_change.notified().await;
                hub.announce_tool_list_changed().await;
            }
        });
    }
}

/// `bastion tools`: starts the upstreams, prints the merged surface with each tool's tier and
/// the scope it needs, and what could not be offered; exits non-zero unless every upstream came
/// up and every tool could be offered.
pub async fn tools(args: ToolsArgs) -> anyhow::Result<()> {
    let specs = HubSettings::upstreams_of(&args.upstreams)?;
    crate::startup::check_builtins(&specs).map_err(anyhow::Error::msg)?;
    let naming = HubSettings::naming_of(&args.upstreams)?;
    let supervised = Supervised::start(specs);
    let upstreams = supervised.upstreams.clone();
    wait_ready(&upstreams, Duration::from_secs(30)).await;
    let mut hub = Hub::new(upstreams.clone(), AuditLog::disabled(), true).with_naming(naming);
    let offer = HubSettings::search_fetch_of(&args.upstreams)?;
    if offer.on {
        hub = hub.with_search_fetch(crate::search_fetch::SearchFetch::new(offer.public_url.as_deref()));
    }
    let catalogue = hub.catalogue();
    let failed: Vec<String> = upstreams
        .iter()
        .filter_map(|u| match u.status() {
            Status::Ready { .. } => None,
            Status::Starting => Some(format!("{}: not ready after 30 s", u.spec.name)),
            Status::Failed(why) => Some(format!("{}: {why}", u.spec.name)),
        })
        .collect();
    if args.json {
        let tools: Vec<_> = catalogue
            .entries
            .iter()
            .map(|e| {
                let up = &upstreams[e.upstream].spec.name;
                serde_json::json!({"tool": e.tool, "tier": e.tier.as_str(), "scope": e.tier.scope(up)})
            })
            .collect();
        let out = serde_json::json!({"tools": tools, "problems": catalogue.problems, "failed_upstreams": failed});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{:<32}  {:<12}  {:<20}  TITLE", "TOOL", "TIER", "SCOPE");
        for e in &catalogue.entries {
            let up = &upstreams[e.upstream].spec.name;
            let title = e.tool.title.clone().or_else(|| e.tool.annotations.as_ref().and_then(|a| a.title.clone()));
            println!(
                "{:<32}  {:<12}  {:<20}  {}",
                e.tool.name,
                e.tier.as_str(),
                e.tier.scope(up),
                title.unwrap_or_default()
            );
        }
        for p in &catalogue.problems {
            eprintln!("not offered: {p}");
        }
        for f in &failed {
            eprintln!("upstream failed: {f}");
        }
    }
    supervised.stop().await;
    if !failed.is_empty() || !catalogue.problems.is_empty() {
        bail!("{} upstream(s) failed, {} tool(s) not offered", failed.len(), catalogue.problems.len());
    }
    Ok(())
}

/// `bastion check-config`: validates a configuration file without starting anything — syntax,
/// names, listen/auth combination, public URL, roots, that every command can be found and
/// every token variable is set — with the same messages `bastion serve` gives.
pub fn check_config(args: CheckArgs) -> anyhow::Result<()> {
    println!("{}", HubSettings::check_file(&args.config)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_config_reports_every_problem() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bastion.toml");
        std::fs::write(
            &file,
            "auth = \"none\"\nlisten = \"0.0.0.0:1\"\npublic_url = \"hub\"\nroots = [\"/no/such\"]\n\
             [[upstream]]\nname = \"x\"\ncommand = \"no-such-program-bastion\"\n\
             [[upstream]]\nname = \"y\"\nurl = \"https://y/mcp\"\nbearer_token_env = \"NO_SUCH_VAR_BASTION\"\n",
        )
        .unwrap();
        let e = check_config(CheckArgs { config: file.clone() }).unwrap_err().to_string();
        for want in ["5 problem(s)", "loopback", "no scheme", "/no/such", "not found", "NO_SUCH_VAR_BASTION"] {
            assert!(e.contains(want), "{want}: {e}");
        }
        std::fs::write(&file, "[[upstream]]\nname = \"x\"\ncommand = \"sh\"\n").unwrap();
        check_config(CheckArgs { config: file.clone() }).unwrap();
        // A root the built-in servers refuse is found before `serve` would stop on it.
        std::fs::write(&file, "roots = [\"/\"]\n[[upstream]]\nname = \"files\"\nbuiltin = \"fs\"\n").unwrap();
        let e = check_config(CheckArgs { config: file.clone() }).unwrap_err().to_string();
        assert!(e.contains("upstream 'files' (fs) would refuse to start") && e.contains("'/'"), "{e}");
        // Inline code and an uncontained upstream are warnings, not problems.
        std::fs::write(
            &file,
            "[[upstream]]\nname = \"x\"\ncommand = \"sh\"\nargs = [\"-c\", \"exit 0\"]\nsandbox = false\n",
        )
        .unwrap();
        let summary = HubSettings::check_file(&file).unwrap();
        assert!(summary.contains("warning: upstream 'x': `sh` runs inline code"), "{summary}");
        assert!(summary.contains("warning: upstream 'x': runs uncontained"), "{summary}");
    }

    #[test]
    fn check_config_checks_the_oauth_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bastion.toml");
        for (text, want) in [
            ("public_url = \"https://hub.example.com/other\"\n", "origin root"),
            ("public_url = \"http://hub.example.com\"\n", "OAuth needs https"),
            ("public_url = \"https://hub.example.com\"\n[oauth]\ncode_ttl = \"1h\"\n", "code_ttl"),
            ("public_url = \"https://h.example\"\n[oauth]\ncimd_extra_ca = [\"/no/such.pem\"]\n", "/no/such.pem"),
            (
                "public_url = \"https://h.example\"\n[[oauth.client]]\nclient_id = \"a\"\nclient_name = \"A\"\n\
                 redirect_uris = [\"http://a.example/cb\"]\n",
                "loopback",
            ),
        ] {
            std::fs::write(&file, text).unwrap();
            let e = check_config(CheckArgs { config: file.clone() }).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        std::fs::write(&file, "public_url = \"https://hub.example.com/mcp\"\n[oauth]\naccess_token_ttl = \"2s\"\n")
            .unwrap();
        check_config(CheckArgs { config: file.clone() }).unwrap();
        // Without OAuth mode the table is not checked against a public URL.
        std::fs::write(&file, "auth = \"none\"\npublic_url = \"https://hub.example.com/x\"\n").unwrap();
        check_config(CheckArgs { config: file }).unwrap();
    }
}
