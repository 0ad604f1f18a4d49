//! The hub's approval gate: the hub is the outermost Bastion layer for every upstream, so it
//! decides there (its built-in children run with `--no-approvals`), with the same rules and
//! engine as a server alone (`bastion_policy::approval`, bastion-control), and the principal of
//! the caller's token.
//!
//! Paths are matched as the caller wrote them, made relative to the built-in roots and
//! lexically normalised (the hub does not open files beneath its children's roots); for the
//! human rendering and the `stale` fingerprint of an fs upstream, files are read beneath the
//! first root, refusing the deny list.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bastion_control::{Engine, socket};
use bastion_policy::approval::{ApprovalRules, CallFacts, path_arguments, program_arguments, relative_for_matching};
use bastion_policy::audit::AuditLog;
use bastion_policy::{Access, DenyRules, Error, Tier};
use bastion_server_kit::approvals::{Gated, Waiting, gate, render};
use rmcp::model::JsonObject;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::router::CallSite;
use crate::settings::ApprovalSettings;
use bastion_auth::Principal;

/// The hub's engine, rules and control socket.
pub struct HubApprovals {
    engine: Arc<Engine>,
    rules: ApprovalRules,
    roots: Vec<PathBuf>,
    deny: DenyRules,
    _socket: socket::ControlSocket,
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
    /// Compiles the rules and binds the control socket of `settings` (`control/hub-PID.sock` in
    /// the state directory); `roots` are the built-in servers' roots, paths are matched
    /// relative to them.
    pub fn start(
        settings: &ApprovalSettings,
        roots: &[PathBuf],
        audit_path: &Path,
    ) -> anyhow::Result<Arc<HubApprovals>> {
        let rules = ApprovalRules::new(&settings.config).map_err(|e| anyhow::anyhow!("[approval]: {}", e.message))?;
        let audit = AuditLog::open(audit_path)?;
        let engine = Engine::new("hub", Arc::new(audit));
        let path = &settings.control_socket;
        let listening = socket::listen(engine.clone(), path)
            .map_err(|e| anyhow::anyhow!("control socket {}: {e}", path.display()))?;
        let roots = roots.iter().map(|r| r.canonicalize().unwrap_or_else(|_| r.clone())).collect();
        Ok(Arc::new(HubApprovals { engine, rules, roots, deny: DenyRules::defaults(), _socket: listening }))
    }

    /// The control socket's path.
    pub fn socket_path(&self) -> &Path {
        self._socket.path()
    }

    /// Decides one call (see [`bastion_server_kit::approvals::gate`]).
    pub async fn check(&self, who: &Principal, call: HubCall<'_>, site: &CallSite) -> Result<(), Error> {
        self.engine.admit(call.shown, call.tier)?;
        if !self.rules.may_act(call.tier) {
            return Ok(());
        }
        let args = Value::Object(call.args.cloned().unwrap_or_default());
        let roots: Vec<&Path> = self.roots.iter().map(PathBuf::as_path).collect();
        let paths: Vec<String> = path_arguments(&args).iter().map(|p| relative_for_matching(p, &roots)).collect();
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
        let files = call.kind == "fs" && matches!(call.tier, Tier::Write | Tier::Destructive);
        let current = |p: &str| if files { self.read(p) } else { None };
        let fingerprint = || {
            if !files {
                return None;
            }
            let mut h = Sha256::new();
            for p in path_arguments(&args) {
                h.update(p.as_bytes());
                h.update([0]);
                match self.read_bytes(&p) {
                    Some(b) => h.update(Sha256::digest(&b)),
                    None => h.update(b"absent"),
                }
            }
            Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>())
        };
        let shown = call.shown;
        gate(
            Gated { engine: &self.engine, rules: &self.rules, facts, shown_tool: shown, args: &args },
            fingerprint,
            async { render(shown, &args, &current) },
            waiting,
        )
        .await
    }

    fn read_bytes(&self, raw: &str) -> Option<Vec<u8>> {
        let first = self.roots.first()?;
        let roots: Vec<&Path> = self.roots.iter().map(PathBuf::as_path).collect();
        let rel = relative_for_matching(raw, &roots);
        if rel.is_empty() || self.deny.is_denied(Path::new(&rel), Access::Read) {
            return None;
        }
        let path = first.join(&rel);
        // Only what stays inside the root after links, for the person's eyes alone.
        let real = path.canonicalize().ok()?;
        if !real.starts_with(first) {
            return None;
        }
        let meta = std::fs::metadata(&real).ok()?;
        if !meta.is_file() || meta.len() > (1 << 20) {
            use std::os::unix::fs::MetadataExt;
            return Some(
                format!("node {} {} {}.{}", meta.ino(), meta.len(), meta.ctime(), meta.ctime_nsec()).into_bytes(),
            );
        }
        std::fs::read(&real).ok()
    }

    fn read(&self, raw: &str) -> Option<String> {
        let bytes = self.read_bytes(raw)?;
        // Directories and large files come back as a node stamp, not as text to diff.
        (!bytes.starts_with(b"node ")).then_some(())?;
        String::from_utf8(bytes).ok()
    }
}
