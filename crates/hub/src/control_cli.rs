//! `bastion approvals | approve | deny | mode | pause | resume`: the person's side of the
//! control plane, over the control sockets (bastion-control) of the running hub and servers.
//!
//! Without `--control`, every live socket of the state directory is addressed: a hub and any
//! standalone servers sharing the state directory are listed together, an id is approved where
//! it is pending, and `mode`/`pause`/`resume` reach them all.
//!
//! With `--config FILE` whose `store` is PostgreSQL, the commands act on the database instead:
//! the queue and the switches every hub replica on it shares, from any machine that reaches
//! it; the replicas hear of each change through the store's feed. With the default SQLite
//! store, `--config` changes nothing: the state directory's sockets are used as without it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use bastion_auth::store::{ApprovalDecision, Store, Switch};
use bastion_control::socket;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

/// Which running servers to address.
#[derive(Args, Debug, Clone)]
pub struct ControlTarget {
    /// The state directory whose control sockets to use (default: $XDG_STATE_HOME/bastion or
    /// ~/.local/state/bastion, as the hub's).
    #[arg(long = "state-dir", value_name = "DIR", env = "BASTION_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// One control socket, instead of every socket of the state directory (wins over
    /// --state-dir).
    #[arg(long, value_name = "SOCKET")]
    pub control: Option<PathBuf>,
    /// The hub's configuration file: with a PostgreSQL `store` in it, act on that database
    /// (every replica on it) rather than on running processes' sockets.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The store a `--config` file names, when it is shared (PostgreSQL); `None` without a file
/// or with the default SQLite store. The error when the database cannot be reached starts with
/// `store_unreachable:` (scripts may match it).
pub fn shared_store(config: Option<&std::path::Path>) -> anyhow::Result<Option<Box<dyn Store>>> {
    let Some(file) = config else { return Ok(None) };
    let parsed = crate::config::HubConfig::load(file).map_err(anyhow::Error::msg)?;
    let Some(spec) = parsed.store.as_deref().map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    if !bastion_auth::store::is_postgres(spec) {
        bail!("{}: store = \"{spec}\": expected a postgres:// URL, env:NAME or file:/path", file.display());
    }
    let url = bastion_auth::store::resolve_url(spec).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    match bastion_auth::store::PostgresStore::connect(&url) {
        Ok(store) => Ok(Some(Box::new(store))),
        Err(e) => bail!("store_unreachable: the store of {} cannot be reached: {e}", file.display()),
    }
}

/// `bastion approvals`.
#[derive(Args, Debug)]
pub struct ApprovalsArgs {
    /// Keep printing requests and decisions as they happen.
    #[arg(long)]
    pub watch: bool,
    /// JSON (one array; with --watch one event per line).
    #[arg(long)]
    pub json: bool,
    /// Which running servers.
    #[command(flatten)]
    pub target: ControlTarget,
}

/// `bastion approve ID`.
#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The request's id, as `bastion approvals` shows it.
    pub id: String,
    /// Which running servers.
    #[command(flatten)]
    pub target: ControlTarget,
}

/// `bastion deny ID`.
#[derive(Args, Debug)]
pub struct DenyArgs {
    /// The request's id.
    pub id: String,
    /// Why; the model is told.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Which running servers.
    #[command(flatten)]
    pub target: ControlTarget,
}

/// The mode a server runs in.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ModeName {
    /// Only reading tools run; writes, deletions and commands are refused (`mode_observe`).
    Observe,
    /// As configured.
    Normal,
}

/// `bastion mode observe|normal`.
#[derive(Args, Debug)]
pub struct ModeArgs {
    /// observe or normal.
    pub mode: ModeName,
    /// Which running servers.
    #[command(flatten)]
    pub target: ControlTarget,
}

/// `bastion pause` / `bastion resume`.
#[derive(Args, Debug)]
pub struct SwitchArgs {
    /// Which running servers.
    #[command(flatten)]
    pub target: ControlTarget,
}

impl ControlTarget {
    fn sockets(&self) -> anyhow::Result<Vec<PathBuf>> {
        if let Some(s) = &self.control {
            return Ok(vec![s.clone()]);
        }
        let dir = match &self.state_dir {
            Some(d) => d.clone(),
            None => bastion_control::default_state_dir().context("neither XDG_STATE_HOME nor HOME is set")?,
        };
        let found = socket::sockets(&dir);
        if found.is_empty() {
            bail!(
                "no running Bastion hub or server has a control socket in {} (start one, or pass --state-dir / --control)",
                socket::socket_dir(&dir).display()
            );
        }
        Ok(found)
    }

    /// Sends `request` to every socket; the answers, each with its socket.
    fn broadcast(&self, request: &Value) -> anyhow::Result<Vec<(PathBuf, Value)>> {
        let mut out = Vec::new();
        for s in self.sockets()? {
            match socket::request(&s, request) {
                Ok(v) => out.push((s, v)),
                Err(e) => eprintln!("bastion: {}: {e}", s.display()),
            }
        }
        if out.is_empty() {
            bail!("no control socket answered");
        }
        Ok(out)
    }
}

/// `bastion approvals [--watch] [--json]`.
pub fn approvals(args: ApprovalsArgs) -> anyhow::Result<()> {
    if let Some(store) = shared_store(args.target.config.as_deref())? {
        return shared_approvals(&*store, &args);
    }
    let answers = args.target.broadcast(&json!({"op": "list"}))?;
    let mut pending = Vec::new();
    for (_, a) in &answers {
        check(a)?;
        if let Some(Value::Array(list)) = a.get("pending") {
            pending.extend(list.iter().cloned());
        }
    }
    let mut out = std::io::stdout().lock();
    if !args.watch {
        if args.json {
            writeln!(out, "{}", serde_json::to_string_pretty(&pending)?)?;
        } else if pending.is_empty() {
            writeln!(out, "no pending approvals")?;
        } else {
            for p in &pending {
                write!(out, "{}", human_request(p))?;
            }
        }
        return Ok(());
    }
    if !args.json {
        writeln!(out, "watching {} server(s); Ctrl-C to stop", answers.len())?;
        for p in &pending {
            write!(out, "{}", human_request(p))?;
        }
    } else {
        for p in &pending {
            writeln!(out, "{}", json!({"event": "request", "request": p}))?;
        }
    }
    out.flush()?;
    drop(out);
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    for (path, _) in answers {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut first = true;
            let _ = socket::watch_socket(&path, |ev| {
                // The first line repeats the list already printed.
                if std::mem::take(&mut first) {
                    return true;
                }
                tx.send(ev).is_ok()
            });
            let _ = tx.send(json!({"event": "gone", "socket": path}));
        });
    }
    drop(tx);
    for ev in rx {
        let kind = ev.get("event").and_then(Value::as_str).unwrap_or("");
        if kind == "heartbeat" {
            continue;
        }
        let line = if args.json { format!("{ev}\n") } else { human_event(&ev) };
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}

/// `bastion approve ID` / `bastion deny ID`: sent to every server; the one holding the id
/// answers.
pub fn decide(id: &str, approve: bool, reason: Option<String>, target: &ControlTarget) -> anyhow::Result<()> {
    if let Some(store) = shared_store(target.config.as_deref())? {
        let d = ApprovalDecision { approved: approve, reason, channel: "cli".into() };
        let now = crate::approvals::shared::now_ms();
        if store.decide_approval(id, &d, now)?.is_none() {
            bail!("no pending approval has the id '{id}' (decided, expired or withdrawn) in {}", store.location());
        }
        println!("{} {id} ({})", if approve { "approved" } else { "denied" }, store.location());
        return Ok(());
    }
    let op = if approve { "approve" } else { "deny" };
    let answers = target.broadcast(&json!({"op": op, "id": id, "reason": reason, "channel": "cli"}))?;
    match answers.iter().find(|(_, a)| a["ok"] == true) {
        Some((_, a)) => {
            println!("{} {id} ({})", if approve { "approved" } else { "denied" }, a["server"].as_str().unwrap_or("?"));
            Ok(())
        }
        None => {
            let why = answers.first().and_then(|(_, a)| a["message"].as_str()).unwrap_or("unknown id");
            bail!("{why}")
        }
    }
}

/// `bastion mode`, `bastion pause`, `bastion resume`: every server addressed.
pub fn switch(request: Value, target: &ControlTarget) -> anyhow::Result<()> {
    if let Some(store) = shared_store(target.config.as_deref())? {
        let switch = match (request["op"].as_str(), request["mode"].as_str()) {
            (Some("pause"), _) => Switch::Paused(true),
            (Some("resume"), _) => Switch::Paused(false),
            (Some("mode"), Some(m)) => Switch::Observe(m == "observe"),
            _ => bail!("unknown switch {request}"),
        };
        store.set_switch(switch, bastion_auth::now())?;
        let done = match switch {
            Switch::Paused(true) => "paused".to_owned(),
            Switch::Paused(false) => "resumed".to_owned(),
            Switch::Observe(o) => format!("mode {}", if o { "observe" } else { "normal" }),
        };
        println!("{}: {done} (every hub on this store)", store.location());
        return Ok(());
    }
    for (_, a) in target.broadcast(&request)? {
        check(&a)?;
        let server = a["server"].as_str().unwrap_or("?");
        match (a.get("mode"), a.get("paused")) {
            (Some(m), _) => println!("{server}: mode {}", m.as_str().unwrap_or("?")),
            (_, Some(p)) => println!("{server}: {}", if p == true { "paused" } else { "resumed" }),
            _ => println!("{server}: ok"),
        }
    }
    Ok(())
}

/// The `mode` request for `bastion mode`.
pub fn mode_request(mode: ModeName) -> Value {
    let name = match mode {
        ModeName::Observe => "observe",
        ModeName::Normal => "normal",
    };
    json!({"op": "mode", "mode": name, "channel": "cli"})
}

/// `bastion approvals --config F` on a shared store: the requests of every replica; with
/// `--watch`, the list again whenever it changes (read again on each change the store's feed
/// announces, and every five seconds for expiries).
fn shared_approvals(store: &dyn Store, args: &ApprovalsArgs) -> anyhow::Result<()> {
    let read = || -> anyhow::Result<Vec<Value>> {
        let now = crate::approvals::shared::now_ms();
        Ok(crate::approvals::shared::listed(&store.pending_approvals(now)?, now))
    };
    let print = |pending: &[Value]| -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        if args.json {
            writeln!(out, "{}", serde_json::to_string_pretty(pending)?)?;
        } else if pending.is_empty() {
            writeln!(out, "no pending approvals")?;
        } else {
            for p in pending {
                write!(out, "{}", human_request(p))?;
            }
        }
        out.flush()?;
        Ok(())
    };
    let mut shown = read()?;
    print(&shown)?;
    if !args.watch {
        return Ok(());
    }
    let ids = |l: &[Value]| l.iter().map(|p| p["id"].to_string()).collect::<Vec<_>>();
    let (tx, changes) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let _feed = store.subscribe(Box::new(move |_| {
        let _ = tx.lock().map(|t| t.send(()));
    }))?;
    loop {
        if let Err(std::sync::mpsc::RecvTimeoutError::Disconnected) =
            changes.recv_timeout(std::time::Duration::from_secs(5))
        {
            // No feed: read every half second instead.
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let now = read()?;
        if ids(&now) != ids(&shown) {
            print(&now)?;
            shown = now;
        }
    }
}

fn check(a: &Value) -> anyhow::Result<()> {
    if a["ok"] == true {
        return Ok(());
    }
    bail!("{}: {}", a["code"].as_str().unwrap_or("error"), a["message"].as_str().unwrap_or(""))
}

/// A pending request as the person reads it.
pub fn human_request(p: &Value) -> String {
    let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("?");
    let id = s("id");
    let client = p.get("client").and_then(Value::as_str).map(|c| format!(" via {c}")).unwrap_or_default();
    let mut out = format!(
        "── approval {id} ─ {} {} ({})\n   by {}{client} · rule: {} · {} mode · waiting {}s, expires in {}s\n",
        s("server"),
        s("tool"),
        s("tier"),
        s("principal"),
        s("rule"),
        s("mode"),
        p["waiting_s"].as_u64().unwrap_or(0),
        p["expires_in_s"].as_u64().unwrap_or(0),
    );
    for line in s("rendering").lines() {
        out.push_str("   │ ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("   → bastion approve {id}    or    bastion deny {id} --reason TEXT\n\n"));
    out
}

fn human_event(ev: &Value) -> String {
    let s = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("?");
    match s("event") {
        "request" => human_request(&ev["request"]),
        "decision" => {
            let reason = ev.get("reason").and_then(Value::as_str).map(|r| format!(": {r}")).unwrap_or_default();
            format!("   {} {} by {}{reason}\n\n", s("id"), s("decision"), s("channel"))
        }
        "expired" => format!("   {} expired: nobody decided in time\n\n", s("id")),
        "withdrawn" => format!("   {} withdrawn: the caller went away\n\n", s("id")),
        "approval_used" => format!("   {} used by a retry of the same call\n\n", s("id")),
        "mode_change" => format!("   mode {} ({})\n", s("mode"), s("channel")),
        "pause" => format!("   paused ({})\n", s("channel")),
        "resume" => format!("   resumed ({})\n", s("channel")),
        "gone" => format!("   a server went away ({})\n", s("socket")),
        other => format!("   {other}: {ev}\n"),
    }
}
