//! Approval rules: which calls the person must approve before they run.
//!
//! One ordered list of rules, the same for a server alone and for the hub. A call is described
//! by [`CallFacts`] (server, tool, tier, the root-relative paths it touches, the programs it
//! runs, who calls and with which client); the first rule that matches decides `allow`, `ask`
//! or `deny`. When no rule matches, the built-in defaults apply (unless turned off):
//!
//! - `ask` for every `destructive` call;
//! - `ask` for writes, moves and deletes of [`EXECUTE_ON_OPEN`] files (files another program
//!   executes or obeys when it opens the project: `.mcp.json`, `.vscode/tasks.json`, CI
//!   workflows, …);
//! - `ask` for the host server's operations ([`HOST_OPERATIONS`]: starting, stopping,
//!   restarting or reloading a service, restarting a container);
//! - `allow` otherwise. Tiers and scopes are checked before any of this.
//!
//! ```toml
//! [approval]
//! mode = "hold"                 # hold: the call waits; return: approval_pending, then retry
//! approval_timeout = "5m"
//! approve_via_elicitation = false
//! extra_execute_on_open = ["Makefile"]
//!
//! [[approval.rule]]
//! name = "no-shell-rm"
//! programs = ["rm", "shred"]
//! action = "deny"
//!
//! [[approval.rule]]
//! server = "git"
//! tier = "write"
//! action = "ask"
//! mode = "return"
//! ```
//!
//! Path globs use the deny globs' syntax and semantics ([`crate::deny`]): matched
//! case-insensitively on the root-relative path, at any depth unless anchored with `/`.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::deny::{Access, DenyRules};
use crate::error::{Error, ErrorCode, Result};
use crate::tier::Tier;

/// Files that another program executes or obeys when it opens the project: editor tasks and
/// settings, MCP client configurations, CI workflows, direnv, git hook managers. Writing one is
/// code execution on the next open (the class of the 2025 Cursor `mcp.json` and Copilot
/// `settings.json` CVEs), so by default every write, move or delete of one asks the person.
pub const EXECUTE_ON_OPEN: &[&str] = &[
    ".mcp.json",
    ".cursor/**",
    ".vscode/settings.json",
    ".vscode/tasks.json",
    ".vscode/launch.json",
    ".claude/**",
    ".envrc",
    ".github/workflows/**",
    ".github/actions/**",
    ".gitlab-ci.yml",
    ".pre-commit-config.yaml",
    ".devcontainer/**",
    ".husky/**",
    ".circleci/**",
    ".windsurf/**",
    ".zed/settings.json",
    ".zed/tasks.json",
    ".idea/workspace.xml",
    ".idea/runConfigurations/**",
    ".gemini/settings.json",
    ".codex/**",
    ".gitattributes",
    ".gitmodules",
];

/// The host server's tools that change the host's state (`exec`): by default the person
/// approves each one, seeing the exact command.
pub const HOST_OPERATIONS: &[&str] = &["service_action", "container_action"];

/// What a rule decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The call runs.
    Allow,
    /// The person decides first.
    Ask,
    /// The call is refused (`approval_denied`).
    Deny,
}

/// How an `ask` waits for the person.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The call waits for the decision (with progress notifications), up to the timeout.
    #[default]
    Hold,
    /// The call returns `approval_pending` at once; the same call retried after approval runs once.
    Return,
}

impl Mode {
    /// `hold` or `return`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Hold => "hold",
            Mode::Return => "return",
        }
    }
}

/// One `[[approval.rule]]`: every condition given must match (an empty list or absent key
/// matches anything).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A name shown to the person and journaled (default `rule N`).
    #[serde(default)]
    pub name: Option<String>,
    /// Server names (`fs`, `shell`, `git`, or a hub upstream's name).
    #[serde(default, deserialize_with = "one_or_many")]
    pub server: Vec<String>,
    /// Globs on the tool name (the server's own name, e.g. `delete_*`).
    #[serde(default, deserialize_with = "one_or_many")]
    pub tool: Vec<String>,
    /// Tiers (`read`, `write`, `destructive`, `exec`).
    #[serde(default, deserialize_with = "one_or_many")]
    pub tier: Vec<Tier>,
    /// Globs on the root-relative real paths the call touches (any path matching is enough).
    #[serde(default, deserialize_with = "one_or_many")]
    pub paths: Vec<String>,
    /// Program names a command runs (shell).
    #[serde(default, deserialize_with = "one_or_many")]
    pub programs: Vec<String>,
    /// Principal names (a token's name, an OAuth client, `local` on stdio).
    #[serde(default, deserialize_with = "one_or_many")]
    pub principal: Vec<String>,
    /// Client names (the MCP `clientInfo.name`).
    #[serde(default, deserialize_with = "one_or_many")]
    pub client: Vec<String>,
    /// What to do.
    pub action: Action,
    /// How an `ask` waits (default: the section's `mode`).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// How long an `ask` may wait (default: the section's `approval_timeout`).
    #[serde(default, with = "opt_duration")]
    pub approval_timeout: Option<Duration>,
}

/// The `[approval]` section of a policy or hub configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalConfig {
    /// Ordered rules; the first that matches decides.
    #[serde(rename = "rule")]
    pub rules: Vec<RuleConfig>,
    /// Default waiting mode of an `ask`.
    pub mode: Mode,
    /// Longest an `ask` waits for a decision (hold), or an approval stays usable (return).
    #[serde(with = "duration")]
    pub approval_timeout: Duration,
    /// Whether the built-in defaults apply after the rules (ask for destructive calls and for
    /// writes of execute-on-open files).
    pub defaults: bool,
    /// Globs added to [`EXECUTE_ON_OPEN`].
    pub extra_execute_on_open: Vec<String>,
    /// Ask the person through MCP elicitation when the client declared the capability.
    pub approve_via_elicitation: bool,
}

/// Five minutes: long enough to read a diff, short enough that a forgotten call does not hang.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for ApprovalConfig {
    fn default() -> Self {
        ApprovalConfig {
            rules: Vec::new(),
            mode: Mode::Hold,
            approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
            defaults: true,
            extra_execute_on_open: Vec::new(),
            approve_via_elicitation: false,
        }
    }
}

/// What is known of a call when it is judged.
#[derive(Clone, Copy, Debug)]
pub struct CallFacts<'a> {
    /// Server (or hub upstream) name.
    pub server: &'a str,
    /// The server's own tool name.
    pub tool: &'a str,
    /// The tool's tier.
    pub tier: Tier,
    /// Root-relative paths the call touches.
    pub paths: &'a [String],
    /// Programs the call runs.
    pub programs: &'a [String],
    /// Who calls.
    pub principal: &'a str,
    /// The client's name, if it said.
    pub client: Option<&'a str>,
}

/// The verdict on one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Allow, ask or deny.
    pub action: Action,
    /// How an ask waits.
    pub mode: Mode,
    /// Longest wait.
    pub timeout: Duration,
    /// The rule that decided (`rule NAME`, `default: destructive`, `default: execute-on-open`,
    /// `default: allow`).
    pub rule: String,
}

struct Rule {
    name: String,
    server: Vec<String>,
    tool: Option<globset::GlobSet>,
    tier: Vec<Tier>,
    paths: Option<DenyRules>,
    programs: Vec<String>,
    principal: Vec<String>,
    client: Vec<String>,
    action: Action,
    mode: Mode,
    timeout: Duration,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule").field("name", &self.name).field("action", &self.action).finish_non_exhaustive()
    }
}

/// Compiled approval rules, ready to judge calls.
#[derive(Debug)]
pub struct ApprovalRules {
    rules: Vec<Rule>,
    defaults: bool,
    /// The execute-on-open globs, parsed at start and compiled on first use: only a call that
    /// changes files ever asks, and compiling them was a quarter of a read-only server's start.
    execute_on_open: Vec<String>,
    execute_on_open_set: std::sync::OnceLock<Option<DenyRules>>,
    mode: Mode,
    timeout: Duration,
    /// Whether any rule looks at paths (else paths need not be computed for allowed calls).
    uses_paths: bool,
    /// Whether elicitation may be offered.
    pub approve_via_elicitation: bool,
}

impl Default for ApprovalRules {
    fn default() -> Self {
        // The defaults are constants and compile; a failure is a bug the unit tests catch.
        ApprovalRules::new(&ApprovalConfig::default()).unwrap_or_else(|_| ApprovalRules {
            rules: Vec::new(),
            defaults: false,
            execute_on_open: EXECUTE_ON_OPEN.iter().map(|s| s.to_string()).collect(),
            execute_on_open_set: std::sync::OnceLock::new(),
            mode: Mode::Hold,
            timeout: DEFAULT_APPROVAL_TIMEOUT,
            uses_paths: false,
            approve_via_elicitation: false,
        })
    }
}

impl ApprovalRules {
    /// Compiles `config`. Errors name the rule and the glob.
    pub fn new(config: &ApprovalConfig) -> Result<Self> {
        let mut rules = Vec::with_capacity(config.rules.len());
        for (i, r) in config.rules.iter().enumerate() {
            let name = r.name.clone().unwrap_or_else(|| format!("rule {}", i + 1));
            let bad = |what: &str, e: String| {
                Error::new(ErrorCode::InvalidConfig, format!("approval rule '{name}': {what}: {e}"))
            };
            let tool = if r.tool.is_empty() {
                None
            } else {
                let mut b = globset::GlobSetBuilder::new();
                for g in &r.tool {
                    b.add(globset::Glob::new(g).map_err(|e| bad(&format!("tool glob '{g}'"), e.to_string()))?);
                }
                Some(b.build().map_err(|e| bad("tool globs", e.to_string()))?)
            };
            let paths = if r.paths.is_empty() {
                None
            } else {
                Some(DenyRules::new(&r.paths, &[]).map_err(|e| bad("paths", e.message))?)
            };
            rules.push(Rule {
                name,
                server: r.server.clone(),
                tool,
                tier: r.tier.clone(),
                paths,
                programs: r.programs.clone(),
                principal: r.principal.clone(),
                client: r.client.clone(),
                action: r.action,
                mode: r.mode.unwrap_or(config.mode),
                timeout: r.approval_timeout.unwrap_or(config.approval_timeout),
            });
        }
        let mut eoo: Vec<String> = EXECUTE_ON_OPEN.iter().map(|s| s.to_string()).collect();
        eoo.extend(config.extra_execute_on_open.iter().cloned());
        // Only the operator's globs are parsed now: the built-in ones are constants the unit
        // tests compile, and parsing them was a tenth of a server's start-up.
        crate::deny::validate(&config.extra_execute_on_open)
            .map_err(|e| Error::new(ErrorCode::InvalidConfig, format!("extra_execute_on_open: {}", e.message)))?;
        let uses_paths = config.defaults || rules.iter().any(|r| r.paths.is_some());
        Ok(ApprovalRules {
            rules,
            defaults: config.defaults,
            execute_on_open: eoo,
            execute_on_open_set: std::sync::OnceLock::new(),
            mode: config.mode,
            timeout: config.approval_timeout,
            uses_paths,
            approve_via_elicitation: config.approve_via_elicitation,
        })
    }

    /// Whether judging a call of `tier` may need its paths: callers compute paths (which costs
    /// a resolution per path) only then.
    pub fn needs_paths(&self, tier: Tier) -> bool {
        (self.defaults && changes_files(tier)) || self.rules.iter().any(|r| r.paths.is_some())
    }

    /// Whether any rule can do something other than allow a call of `tier` (the fast path: a
    /// read call with the defaults only is allowed without looking at anything else).
    pub fn may_act(&self, tier: Tier) -> bool {
        !self.rules.is_empty() || (self.defaults && changes_files(tier))
    }

    /// [`ApprovalRules::may_act`] for the tool `tool` (the server's own name): also true for
    /// the host operations the defaults ask about.
    pub fn may_act_on(&self, tier: Tier, tool: &str) -> bool {
        self.may_act(tier) || (self.defaults && tier == Tier::Exec && HOST_OPERATIONS.contains(&tool))
    }

    /// Whether rules look at paths at all.
    pub fn uses_paths(&self) -> bool {
        self.uses_paths
    }

    /// The default timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Judges one call: the first matching rule, else the defaults.
    pub fn decide(&self, call: &CallFacts<'_>) -> Verdict {
        for r in &self.rules {
            if r.matches(call) {
                return Verdict { action: r.action, mode: r.mode, timeout: r.timeout, rule: r.name.clone() };
            }
        }
        let verdict =
            |action, rule: &str| Verdict { action, mode: self.mode, timeout: self.timeout, rule: rule.into() };
        if self.defaults {
            if call.tier == Tier::Destructive {
                return verdict(Action::Ask, "default: destructive");
            }
            if changes_files(call.tier) && call.paths.iter().any(|p| self.is_execute_on_open(p)) {
                return verdict(Action::Ask, "default: execute-on-open");
            }
            if call.tier == Tier::Exec && HOST_OPERATIONS.contains(&call.tool) {
                return verdict(Action::Ask, "default: host operation");
            }
        }
        verdict(Action::Allow, "default: allow")
    }

    /// Whether the root-relative path `rel` is an execute-on-open file.
    pub fn is_execute_on_open(&self, rel: &str) -> bool {
        let set = self.execute_on_open_set.get_or_init(|| match DenyRules::new(&self.execute_on_open, &[]) {
            Ok(set) => Some(set),
            Err(e) => {
                tracing::warn!(error = %e.message, "execute-on-open globs do not compile; every file change asks");
                None
            }
        });
        // Globs that parsed at start but do not compile (a size limit) fail closed: ask.
        set.as_ref().is_none_or(|set| set.is_denied(Path::new(rel), Access::Read))
    }
}

/// Write and destructive calls change files; a command (exec) is judged by its program, not by
/// its working directory, so running one inside `.github/` does not ask by default.
fn changes_files(tier: Tier) -> bool {
    matches!(tier, Tier::Write | Tier::Destructive)
}

impl Rule {
    fn matches(&self, c: &CallFacts<'_>) -> bool {
        (self.server.is_empty() || self.server.iter().any(|s| s == c.server))
            && self.tool.as_ref().is_none_or(|g| g.is_match(c.tool))
            && (self.tier.is_empty() || self.tier.contains(&c.tier))
            && (self.principal.is_empty() || self.principal.iter().any(|p| p == c.principal))
            && (self.client.is_empty() || c.client.is_some_and(|n| self.client.iter().any(|p| p == n)))
            && (self.programs.is_empty() || c.programs.iter().any(|p| self.programs.contains(p)))
            && self.paths.as_ref().is_none_or(|g| c.paths.iter().any(|p| g.is_denied(Path::new(p), Access::Read)))
    }
}

/// A stable hash of a call's exact arguments: SHA-256 (lower-case hex) of their canonical JSON
/// (object keys sorted at every depth, no whitespace, serde_json's number and string forms), so
/// two calls hash equal exactly when their arguments are the same JSON value.
pub fn args_hash(args: &Value) -> String {
    let mut h = Sha256::new();
    canonical(args, &mut h);
    let digest = h.finalize();
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn canonical(v: &Value, h: &mut Sha256) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            h.update(b"{");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    h.update(b",");
                }
                h.update(Value::String(k.clone()).to_string().as_bytes());
                h.update(b":");
                if let Some(v) = map.get(k) {
                    canonical(v, h);
                }
            }
            h.update(b"}");
        }
        Value::Array(items) => {
            h.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    h.update(b",");
                }
                canonical(item, h);
            }
            h.update(b"]");
        }
        other => h.update(other.to_string().as_bytes()),
    }
}

/// The path arguments of a call, as the caller wrote them: the values of the keys every
/// Bastion tool uses for paths (`path`, `paths`, `source`, `destination`, `cwd`, …). Patch
/// texts are read for their `---`/`+++` file names.
pub fn path_arguments(args: &Value) -> Vec<String> {
    const KEYS: &[&str] = &["path", "paths", "source", "destination", "file", "files", "target", "cwd", "dir"];
    let mut out = Vec::new();
    let Value::Object(map) = args else { return out };
    for k in KEYS {
        match map.get(*k) {
            Some(Value::String(s)) => out.push(s.clone()),
            Some(Value::Array(items)) => out.extend(items.iter().filter_map(Value::as_str).map(str::to_owned)),
            _ => {}
        }
    }
    if let Some(Value::String(patch)) = map.get("patch") {
        for line in patch.lines() {
            let name = line.strip_prefix("+++ ").or_else(|| line.strip_prefix("--- "));
            if let Some(name) = name {
                let name = name.split('\t').next().unwrap_or(name).trim();
                let name = name.strip_prefix("a/").or_else(|| name.strip_prefix("b/")).unwrap_or(name);
                if name != "/dev/null" && !out.iter().any(|p| p == name) {
                    out.push(name.to_owned());
                }
            }
        }
    }
    out
}

/// The programs a call runs: the `program` argument (shell), by its base name.
pub fn program_arguments(args: &Value) -> Vec<String> {
    match args.get("program").and_then(Value::as_str) {
        Some(p) => vec![p.rsplit('/').next().unwrap_or(p).to_owned()],
        None => Vec::new(),
    }
}

/// A path made root-relative and lexically normalised for matching: `./a/../b` → `b`; an
/// absolute path under one of `roots` is made relative to it; other absolute paths keep their
/// form without the leading `/`.
pub fn relative_for_matching(raw: &str, roots: &[&Path]) -> String {
    let p = Path::new(raw);
    let rel = roots.iter().find_map(|r| p.strip_prefix(r).ok()).unwrap_or(p);
    let mut parts: Vec<&str> = Vec::new();
    for c in rel.to_str().unwrap_or(raw).split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

fn one_or_many<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        One(T),
        Many(Vec<T>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(t) => vec![t],
        OneOrMany::Many(v) => v,
    })
}

mod duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("'{s}': {e}")))
    }
}

mod opt_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(Some).map_err(|e| serde::de::Error::custom(format!("'{s}': {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts<'a>(
        server: &'a str,
        tool: &'a str,
        tier: Tier,
        paths: &'a [String],
        programs: &'a [String],
    ) -> CallFacts<'a> {
        CallFacts { server, tool, tier, paths, programs, principal: "local", client: Some("claude-code") }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_ask_for_destructive_and_execute_on_open_writes() {
        // The built-in globs are not parsed at start: they must compile here.
        assert!(DenyRules::new(&strings(EXECUTE_ON_OPEN), &[]).is_ok());
        let rules = ApprovalRules::default();
        let table: &[(&str, Tier, &[&str], Action, &str)] = &[
            ("read_file", Tier::Read, &[".mcp.json"], Action::Allow, "default: allow"),
            ("write_file", Tier::Write, &["src/main.rs"], Action::Allow, "default: allow"),
            ("delete_path", Tier::Destructive, &["src/main.rs"], Action::Ask, "default: destructive"),
            ("write_file", Tier::Write, &[".mcp.json"], Action::Ask, "default: execute-on-open"),
            ("write_file", Tier::Write, &["sub/.MCP.json"], Action::Ask, "default: execute-on-open"),
            ("edit_file", Tier::Write, &[".vscode/tasks.json"], Action::Ask, "default: execute-on-open"),
            ("edit_file", Tier::Write, &[".vscode/settings.json"], Action::Ask, "default: execute-on-open"),
            ("edit_file", Tier::Write, &[".vscode/launch.json"], Action::Ask, "default: execute-on-open"),
            ("edit_file", Tier::Write, &[".vscode/extensions.json"], Action::Allow, "default: allow"),
            ("write_file", Tier::Write, &[".cursor/rules/x.mdc"], Action::Ask, "default: execute-on-open"),
            ("create_directory", Tier::Write, &[".cursor"], Action::Ask, "default: execute-on-open"),
            ("write_file", Tier::Write, &[".claude/settings.json"], Action::Ask, "default: execute-on-open"),
            ("write_file", Tier::Write, &[".envrc"], Action::Ask, "default: execute-on-open"),
            ("write_file", Tier::Write, &[".github/workflows/ci.yml"], Action::Ask, "default: execute-on-open"),
            ("write_file", Tier::Write, &[".gitlab-ci.yml"], Action::Ask, "default: execute-on-open"),
            ("write_file", Tier::Write, &[".pre-commit-config.yaml"], Action::Ask, "default: execute-on-open"),
            ("write_file", Tier::Write, &[".devcontainer/devcontainer.json"], Action::Ask, "default: execute-on-open"),
            ("move_path", Tier::Write, &["notes.txt", ".envrc"], Action::Ask, "default: execute-on-open"),
            ("write_file", Tier::Write, &[".envrc.example"], Action::Allow, "default: allow"),
            ("write_file", Tier::Write, &["docs/github/workflows.md"], Action::Allow, "default: allow"),
            ("run_command", Tier::Exec, &[".github/workflows"], Action::Allow, "default: allow"),
            ("service_action", Tier::Exec, &[], Action::Ask, "default: host operation"),
            ("container_action", Tier::Exec, &[], Action::Ask, "default: host operation"),
            ("service_logs", Tier::Read, &[], Action::Allow, "default: allow"),
        ];
        for (tool, tier, paths, action, rule) in table {
            let paths = strings(paths);
            let v = rules.decide(&facts("fs", tool, *tier, &paths, &[]));
            assert_eq!((v.action, v.rule.as_str()), (*action, *rule), "{tool} {paths:?}");
            assert_eq!((v.mode, v.timeout), (Mode::Hold, DEFAULT_APPROVAL_TIMEOUT));
        }
    }

    #[test]
    fn rules_match_in_order_on_every_condition() {
        let config: ApprovalConfig = toml::from_str(
            r#"
            mode = "return"
            approval_timeout = "30s"
            extra_execute_on_open = ["Makefile"]
            [[rule]]
            name = "no-rm"
            programs = ["rm"]
            action = "deny"
            [[rule]]
            name = "ci-bot"
            principal = "ci"
            action = "allow"
            [[rule]]
            name = "git-writes"
            server = "git"
            tool = ["commit", "switch*"]
            tier = "write"
            action = "ask"
            mode = "hold"
            approval_timeout = "2m"
            [[rule]]
            name = "docs"
            paths = ["/docs/**"]
            tier = ["write", "destructive"]
            action = "allow"
            [[rule]]
            name = "cursor-client"
            client = "cursor"
            tier = "exec"
            action = "ask"
            "#,
        )
        .unwrap();
        let rules = ApprovalRules::new(&config).unwrap();
        let p = |v: &[&str]| strings(v);
        let none: Vec<String> = vec![];
        let rm = p(&["rm"]);
        let ls = p(&["ls"]);
        let v = rules.decide(&facts("shell", "run_command", Tier::Exec, &none, &rm));
        assert_eq!((v.action, v.rule.as_str()), (Action::Deny, "no-rm"));
        let v = rules.decide(&facts("shell", "run_command", Tier::Exec, &none, &ls));
        assert_eq!(v.action, Action::Allow);
        let ci = CallFacts { principal: "ci", ..facts("fs", "delete_path", Tier::Destructive, &none, &none) };
        assert_eq!(rules.decide(&ci).rule, "ci-bot");
        let v = rules.decide(&facts("git", "switch_branch", Tier::Write, &none, &none));
        assert_eq!((v.action, v.mode, v.timeout), (Action::Ask, Mode::Hold, Duration::from_secs(120)));
        let v = rules.decide(&facts("git", "add", Tier::Write, &none, &none));
        assert_eq!(v.rule, "default: allow");
        let docs = p(&["docs/old.md"]);
        let nested_docs = p(&["src/docs/old.md"]);
        assert_eq!(rules.decide(&facts("fs", "delete_path", Tier::Destructive, &docs, &none)).rule, "docs");
        let v = rules.decide(&facts("fs", "delete_path", Tier::Destructive, &nested_docs, &none));
        assert_eq!(
            (v.rule.as_str(), v.mode, v.timeout),
            ("default: destructive", Mode::Return, Duration::from_secs(30))
        );
        let make = p(&["Makefile"]);
        assert_eq!(
            rules.decide(&facts("fs", "write_file", Tier::Write, &make, &none)).rule,
            "default: execute-on-open"
        );
        let cursor = CallFacts { client: Some("cursor"), ..facts("shell", "run_command", Tier::Exec, &none, &ls) };
        assert_eq!(rules.decide(&cursor).rule, "cursor-client");
        let anon = CallFacts { client: None, ..cursor };
        assert_eq!(rules.decide(&anon).rule, "default: allow");
    }

    #[test]
    fn defaults_can_be_turned_off() {
        let config = ApprovalConfig { defaults: false, ..Default::default() };
        let rules = ApprovalRules::new(&config).unwrap();
        let none: Vec<String> = vec![];
        assert_eq!(rules.decide(&facts("fs", "delete_path", Tier::Destructive, &none, &none)).action, Action::Allow);
        assert!(!rules.may_act(Tier::Destructive));
        assert!(ApprovalRules::default().may_act(Tier::Write));
        assert!(!ApprovalRules::default().may_act(Tier::Read));
        assert!(!ApprovalRules::default().may_act(Tier::Exec));
        assert!(ApprovalRules::default().may_act_on(Tier::Exec, "service_action"));
        assert!(!ApprovalRules::default().may_act_on(Tier::Exec, "run_command"));
        assert!(!rules.may_act_on(Tier::Exec, "service_action"));
    }

    #[test]
    fn bad_config_is_named() {
        let table: &[(&str, &str)] = &[
            ("[[rule]]\naction = \"maybe\"", "maybe"),
            ("[[rule]]\ntier = \"root\"\naction = \"ask\"", "root"),
            ("[[rule]]\naction = \"ask\"\nflavour = 1", "flavour"),
            ("approval_timeout = \"soon\"", "soon"),
            ("mode = \"wait\"", "wait"),
        ];
        for (text, needle) in table {
            let err = toml::from_str::<ApprovalConfig>(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let config: ApprovalConfig = toml::from_str("[[rule]]\nname = \"x\"\ntool = \"a[\"\naction = \"ask\"").unwrap();
        let err = ApprovalRules::new(&config).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidConfig);
        assert!(err.message.contains("'x'") && err.message.contains("a["), "{}", err.message);
    }

    #[test]
    fn args_hash_is_canonical_and_exact() {
        let a = json!({"path": "a.txt", "content": "x", "opts": {"b": 1, "a": [1, 2]}});
        let b: Value = serde_json::from_str(r#"{"opts":{"a":[1,2],"b":1},"content":"x","path":"a.txt"}"#).unwrap();
        assert_eq!(args_hash(&a), args_hash(&b));
        assert_eq!(args_hash(&a).len(), 64);
        let table = [
            json!({"path": "a.txt", "content": "y", "opts": {"b": 1, "a": [1, 2]}}),
            json!({"path": "a.txt", "content": "x", "opts": {"b": 1, "a": [2, 1]}}),
            json!({"path": "a.txt", "content": "x", "opts": {"b": 1.0, "a": [1, 2]}}),
            json!({"path": "a.txt", "content": "x", "opts": {"b": 1, "a": [1, 2]}, "extra": null}),
            json!({"path": "a.txt ", "content": "x", "opts": {"b": 1, "a": [1, 2]}}),
        ];
        for other in table {
            assert_ne!(args_hash(&a), args_hash(&other), "{other}");
        }
        // A known value, so the hash never changes silently between releases.
        assert_eq!(args_hash(&json!({})), "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    }

    #[test]
    fn paths_and_programs_are_read_from_arguments() {
        let args = json!({"source": "a", "destination": ".envrc", "paths": ["x", "y"], "cwd": "sub"});
        assert_eq!(path_arguments(&args), ["x", "y", "a", ".envrc", "sub"]);
        let patch =
            json!({"patch": "--- a/src/x.rs\n+++ b/src/x.rs\n@@ -1 +1 @@\n-a\n+b\n--- /dev/null\n+++ b/.mcp.json\n"});
        assert_eq!(path_arguments(&patch), ["src/x.rs", ".mcp.json"]);
        assert_eq!(program_arguments(&json!({"program": "/usr/bin/rm"})), ["rm"]);
        let roots = [Path::new("/srv/p")];
        assert_eq!(relative_for_matching("/srv/p/./a/../.envrc", &roots), ".envrc");
        assert_eq!(relative_for_matching("./.vscode//tasks.json", &roots), ".vscode/tasks.json");
    }
}
