//! The hub's approval gate: the hub is the outermost Bastion layer for every upstream, so it
//! decides there (its built-in children run with `--no-approvals`), with the same rules and
//! engine as a server alone (`bastion_policy::approval`, bastion-control), and the principal of
//! the caller's token.
//!
//! For a built-in fs upstream the hub builds the very [`Policy`] its child builds, from the
//! child's own arguments (roots, `--config` deny globs, protected paths), and resolves paths
//! through its `Roots` as a server alone does: rules match real paths (`notes -> .envrc` is
//! `.envrc`), and the human rendering and the `stale` fingerprint read files beneath the roots
//! with the deny list and protected paths applied. Only calls whose rules look at paths pay for
//! the resolution. Paths of other upstreams (git, shell) are matched as the caller wrote them,
//! made relative to the built-in roots and lexically normalised; nothing is opened for them.

pub mod shared;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bastion_control::{Engine, socket};
use bastion_policy::approval::{ApprovalRules, CallFacts, path_arguments, program_arguments, relative_for_matching};
use bastion_policy::audit::AuditLog;
use bastion_policy::{Error, Policy, Tier};
use bastion_server_kit::approvals::{Gated, Waiting, current_text, gate, real_paths, render};
use clap::Parser;
use rmcp::model::JsonObject;
use serde_json::Value;

use crate::router::CallSite;
use crate::settings::ApprovalSettings;
use crate::upstream::{Builtin, Source, UpstreamSpec};
use bastion_auth::Principal;

/// The hub's engine, rules and control socket.
pub struct HubApprovals {
    engine: Arc<Engine>,
    rules: Arc<ApprovalRules>,
    roots: Vec<PathBuf>,
    /// The policy of each built-in fs upstream, by upstream name.
    fs: HashMap<String, Policy>,
    _socket: Arc<socket::ControlSocket>,
}

/// The command line of a built-in fs child, parsed here as the child parses it.
#[derive(Parser)]
struct FsChild {
    #[command(flatten)]
    args: bastion_fs::FsArgs,
}

/// The policy a built-in fs child builds from `spec`'s arguments, without its journal (the
/// hub only resolves and reads through it).
fn child_policy(args: &[String]) -> anyhow::Result<Policy> {
    // clap takes the first word as the program name; the child's arguments follow it.
    let child = FsChild::try_parse_from(std::iter::once("fs").chain(args.iter().map(String::as_str)))?;
    let mut config = child.args.common.load().map_err(|e| anyhow::anyhow!("{}", e.message))?;
    child.args.tiers.apply(&mut config);
    config.audit_log = None;
    Policy::new(config).map_err(|e| anyhow::anyhow!("{}", e.message))
}

fn canonical(roots: &[PathBuf]) -> Vec<PathBuf> {
    roots.iter().map(|r| r.canonicalize().unwrap_or_else(|_| r.clone())).collect()
}

/// The policy of every built-in fs upstream among `upstreams`, by name.
fn fs_policies(upstreams: &[UpstreamSpec]) -> HashMap<String, Policy> {
    let mut fs = HashMap::new();
    for spec in upstreams {
        let Source::Builtin { server: Builtin::Fs, args, .. } = &spec.source else { continue };
        match child_policy(args) {
            Ok(policy) => {
                fs.insert(spec.name.clone(), policy);
            }
            // The child refuses the same arguments and never starts; its calls never come.
            Err(e) => tracing::warn!(upstream = %spec.name, error = %e, "approvals: no policy for this fs upstream"),
        }
    }
    fs
}

/// One call as the router knows it.
pub struct HubCall<'a> {
    /// The upstream's name.
    pub upstream: &'a str,
    /// The upstream's kind ([`crate::upstream::Source::kind`]: `fs`, `git`, `shell`, `stdio`,
    /// `http`).
    pub kind: &'a str,
    /// The upstream's own tool name.
    pub inner: &'a str,
    /// The namespaced name.
    pub shown: &'a str,
    /// The tier.
    pub tier: Tier,
    /// The arguments.
    pub args: Option<&'a JsonObject>,
}

impl HubApprovals {
    /// Compiles the rules, builds the policy of every built-in fs upstream among `upstreams`
    /// (so paths resolve exactly as in the child) and binds the control socket of `settings`
    /// (`control/hub-PID.sock` in the state directory); `roots` are the built-in servers' roots,
    /// against which other upstreams' paths are matched.
    pub fn start(
        settings: &ApprovalSettings,
        roots: &[PathBuf],
        upstreams: &[UpstreamSpec],
        audit_path: &Path,
    ) -> anyhow::Result<Arc<HubApprovals>> {
        let rules = ApprovalRules::new(&settings.config).map_err(|e| anyhow::anyhow!("[approval]: {}", e.message))?;
        let audit = AuditLog::open(audit_path)?;
        let engine = Engine::new("hub", Arc::new(audit));
        let path = &settings.control_socket;
        let listening = socket::listen(engine.clone(), path)
            .map_err(|e| anyhow::anyhow!("control socket {}: {e}", path.display()))?;
        let (roots, fs) = (canonical(roots), fs_policies(upstreams));
        Ok(Arc::new(HubApprovals { engine, rules: Arc::new(rules), roots, fs, _socket: Arc::new(listening) }))
    }

    /// The gate of a profile's surface: the same engine, rules, mode and control socket, with
    /// paths resolved under the profile's own roots and fs upstreams.
    pub fn for_profile(&self, roots: &[PathBuf], upstreams: &[UpstreamSpec]) -> Arc<HubApprovals> {
        Arc::new(HubApprovals {
            engine: self.engine.clone(),
            rules: self.rules.clone(),
            roots: canonical(roots),
            fs: fs_policies(upstreams),
            _socket: self._socket.clone(),
        })
    }

    /// The engine (the dashboard decides and switches through it, as the socket does).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The control socket's path.
    pub fn socket_path(&self) -> &Path {
        self._socket.path()
    }

    /// Decides one call (see [`bastion_server_kit::approvals::gate`]).
    pub async fn check(&self, who: &Principal, call: HubCall<'_>, site: &CallSite) -> Result<(), Error> {
        self.engine.admit(call.shown, call.tier)?;
        if !self.rules.may_act_on(call.tier, call.inner) {
            return Ok(());
        }
        let args = Value::Object(call.args.cloned().unwrap_or_default());
        let policy = if call.kind == "fs" { self.fs.get(call.upstream) } else { None };
        let paths: Vec<String> = match policy {
            _ if !self.rules.needs_paths(call.tier) => Vec::new(),
            Some(policy) => real_paths(policy, &args),
            None => {
                let roots: Vec<&Path> = self.roots.iter().map(PathBuf::as_path).collect();
                path_arguments(&args).iter().map(|p| relative_for_matching(p, &roots)).collect()
            }
        };
        let programs = program_arguments(&args);
        let client = site.peer.as_ref().and_then(|p| p.peer_info()).map(|i| i.client_info.name.clone());
        let facts = CallFacts {
            server: call.upstream,
            tool: call.inner,
            tier: call.tier,
            paths: &paths,
            programs: &programs,
            principal: &who.name,
            client: client.as_deref(),
        };
        let waiting = match &site.peer {
            Some(peer) => {
                let mut w = Waiting::of(peer, None, &self.rules);
                w.progress = site.progress.clone();
                w
            }
            None => Waiting { progress: site.progress.clone(), elicit: None },
        };
        let files = policy.filter(|_| matches!(call.tier, Tier::Write | Tier::Destructive));
        let current = |p: &str| files.and_then(|policy| current_text(policy, &args, p));
        let fingerprint = || files.and_then(|policy| bastion_server_kit::approvals::fingerprint(policy, &args));
        let shown = call.shown;
        gate(
            Gated { engine: &self.engine, rules: &self.rules, facts, shown_tool: shown, args: &args },
            fingerprint,
            async { render(shown, &args, &current) },
            waiting,
        )
        .await
    }
}
