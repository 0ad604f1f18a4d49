//! Profiles: named tool surfaces of one hub, one per project, each served at `/mcp/{name}`
//! (and `bastion serve --stdio --profile NAME`) beside the default surface at `/mcp`.
//!
//! ```toml
//! [profile.web]
//! roots = ["/home/me/web"]          # the built-ins' roots (default: the hub's)
//! upstreams = ["fs", "git", "docs"] # which of the hub's upstreams (default: all of them)
//! allow_tools = ["fs__*", "git__*", "docs__*"]   # globs on offered names (default: all)
//! deny_tools = ["*__write_file"]
//! tool_search = "on"                # default: the hub's
//!
//! [[profile.web.upstream]]          # upstreams of this profile only, as [[upstream]]
//! name = "npm"
//! command = "npm-mcp"
//!
//! [[profile.web.alias]]             # as [[alias]]; default: the hub's, for the upstreams kept
//! upstream = "docs"
//! tool = "searchTheWholeDocumentationSite"
//! name = "docs__search"
//! ```
//!
//! A profile is a [`HubConfig`] of its own, derived from the hub's ([`ProfileConfig::derive`]):
//! its built-in servers are separate processes started with its roots, so one profile's files
//! are out of reach of another's tools whatever a token's scopes. A token or OAuth grant bound
//! to profiles ([`bastion_auth::Principal::profiles`]) reaches only their paths.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{AliasConfig, HubConfig, UpstreamConfig};
use crate::upstream::ToolFilter;

/// Longest profile name.
pub const MAX_PROFILE_LEN: usize = 32;

/// Whether `name` may name a profile: `[a-z][a-z0-9_-]{0,31}` (it is a path segment of the URL
/// and a word of the journal).
pub fn valid_profile_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= MAX_PROFILE_LEN
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// The profile a request path addresses: `NAME` of `/mcp/NAME` (or `/mcp/NAME/`, as `/mcp/` is
/// `/mcp`), if the name is valid.
pub fn of_path(path: &str) -> Option<&str> {
    let name = path.strip_prefix("/mcp/")?;
    Some(name.strip_suffix('/').unwrap_or(name)).filter(|p| valid_profile_name(p))
}

/// One `[profile.NAME]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Roots of its built-in upstreams (default: the hub's).
    #[serde(default)]
    pub roots: Vec<PathBuf>,
    /// The hub's upstreams it serves, by name (default: all).
    pub upstreams: Option<Vec<String>>,
    /// Upstreams of its own, as `[[upstream]]`.
    #[serde(default, rename = "upstream")]
    pub own: Vec<UpstreamConfig>,
    /// Globs on offered tool names (`fs__*`): only these are offered (default: all).
    #[serde(default)]
    pub allow_tools: Vec<String>,
    /// Globs on offered tool names: never offered.
    #[serde(default)]
    pub deny_tools: Vec<String>,
    /// `[[profile.NAME.alias]]` (default: the hub's aliases of the upstreams it keeps).
    #[serde(default, rename = "alias")]
    pub aliases: Vec<AliasConfig>,
    /// `off`, `on` or `auto` (default: the hub's `tool_search`).
    pub tool_search: Option<crate::toolsearch::Mode>,
    /// As the hub's `tool_search_budget` (default: the hub's).
    pub tool_search_budget: Option<usize>,
    /// As the hub's `pinned_tools` (default: the hub's).
    pub pinned_tools: Option<Vec<String>>,
}

/// The upstreams a hub serves when its file lists none: fs, git, and shell read-only.
fn default_upstreams() -> Vec<UpstreamConfig> {
    let builtin = |name: &str, args: &[&str]| UpstreamConfig {
        name: name.to_owned(),
        builtin: Some(name.to_owned()),
        command: None,
        url: None,
        bearer_token_env: None,
        client_id: None,
        client_secret: None,
        client_scope: None,
        tls_ca: None,
        tls_client_cert: None,
        tls_client_key: None,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: Default::default(),
        pass_env: vec![],
        sandbox: Default::default(),
        allow_tools: vec![],
        deny_tools: vec![],
        required: true,
        call_timeout: None,
        ping_interval: None,
    };
    vec![builtin("fs", &[]), builtin("git", &[]), builtin("shell", &["--profile", "read-only"])]
}

impl ProfileConfig {
    /// The hub configuration this profile runs as: the hub's, with the profile's roots,
    /// upstreams, aliases and tool search. Errors name what does not fit (an upstream it names
    /// that the hub lacks, an own upstream whose name is taken, a bad glob).
    pub fn derive(&self, name: &str, hub: &HubConfig) -> Result<HubConfig, String> {
        let what = format!("[profile.{name}]");
        let base = if hub.upstreams.is_empty() { default_upstreams() } else { hub.upstreams.clone() };
        let mut upstreams = match &self.upstreams {
            None => base,
            Some(names) => {
                let mut picked = vec![];
                for n in names {
                    match base.iter().find(|u| &u.name == n) {
                        Some(u) if !picked.iter().any(|p: &UpstreamConfig| &p.name == n) => picked.push(u.clone()),
                        Some(_) => return Err(format!("{what}: upstream '{n}' is named twice")),
                        None => return Err(format!("{what}: there is no upstream '{n}'")),
                    }
                }
                picked
            }
        };
        for u in &self.own {
            if upstreams.iter().any(|k| k.name == u.name) {
                return Err(format!("{what}: upstream '{}' is defined twice", u.name));
            }
            upstreams.push(u.clone());
        }
        if upstreams.is_empty() {
            return Err(format!("{what}: serves no upstream"));
        }
        ToolFilter::new(&self.allow_tools, &self.deny_tools).map_err(|e| format!("{what}: {e}"))?;
        let kept: HashSet<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
        let aliases = if self.aliases.is_empty() {
            hub.aliases.iter().filter(|a| kept.contains(a.upstream.as_str())).cloned().collect()
        } else {
            self.aliases.clone()
        };
        let derived = HubConfig {
            roots: if self.roots.is_empty() { hub.roots.clone() } else { self.roots.clone() },
            upstreams,
            aliases,
            max_tool_name: hub.max_tool_name,
            tool_search: self.tool_search.unwrap_or(hub.tool_search),
            tool_search_budget: self.tool_search_budget.or(hub.tool_search_budget),
            pinned_tools: self.pinned_tools.clone().unwrap_or_else(|| hub.pinned_tools.clone()),
            ..HubConfig::default()
        };
        derived.check_surface().map_err(|e| format!("{what}: {e}"))?;
        Ok(derived)
    }

    /// The filter of offered names (checked by [`ProfileConfig::derive`]).
    pub fn filter(&self) -> ToolFilter {
        ToolFilter::new(&self.allow_tools, &self.deny_tools).unwrap_or_default()
    }
}

/// Checks every `[profile.NAME]` of a parsed file: names, and that each derives.
pub fn check(config: &HubConfig) -> Result<(), String> {
    for (name, p) in &config.profiles {
        if !valid_profile_name(name) {
            return Err(format!("profile name '{name}' must match [a-z][a-z0-9_-]{{0,31}}"));
        }
        p.derive(name, config)?;
    }
    Ok(())
}

/// A profile as the hub serves it.
pub struct ProfileSettings {
    /// Its name (`/mcp/{name}`).
    pub name: String,
    /// Its upstreams, resolved as the hub's are (its own processes).
    pub upstreams: Vec<crate::upstream::UpstreamSpec>,
    /// The roots of its built-ins.
    pub roots: Vec<PathBuf>,
    /// How its tools are named.
    pub naming: crate::scope::Naming,
    /// Its tool search.
    pub tool_search: crate::toolsearch::ToolSearch,
    /// Which offered names it serves.
    pub filter: ToolFilter,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HubConfig, String> {
        HubConfig::parse(text)
    }

    #[test]
    fn names_and_paths() {
        for ok in ["a", "web", "proj-2", "my_app", &"a".repeat(32)] {
            assert!(valid_profile_name(ok), "{ok}");
        }
        for bad in ["", "Web", "2x", "a/b", "a.b", &"a".repeat(33), "-a"] {
            assert!(!valid_profile_name(bad), "{bad}");
        }
        assert_eq!(of_path("/mcp/web"), Some("web"));
        assert_eq!(of_path("/mcp/web/"), Some("web"));
        for none in ["/mcp", "/mcp/", "/mcp/web/x", "/mcp/web//", "/mcp/Web", "/", "/tools/web"] {
            assert_eq!(of_path(none), None, "{none}");
        }
    }

    #[test]
    fn a_profile_derives_its_own_surface() {
        let c = parse(
            "roots = [\"/srv\"]\ntool_search = \"auto\"\n\
             [[upstream]]\nname = \"fs\"\nbuiltin = \"fs\"\n\
             [[upstream]]\nname = \"git\"\nbuiltin = \"git\"\n\
             [[upstream]]\nname = \"docs\"\ncommand = \"docs-mcp\"\n\
             [[alias]]\nupstream = \"docs\"\ntool = \"searchAll\"\nname = \"docs__search\"\n\
             [profile.web]\nroots = [\"/srv/web\"]\nupstreams = [\"fs\"]\ndeny_tools = [\"*__write_file\"]\n\
             tool_search = \"on\"\n\
             [[profile.web.upstream]]\nname = \"npm\"\ncommand = \"npm-mcp\"\n\
             [profile.docs]\n",
        )
        .unwrap();
        assert_eq!(c.profiles.len(), 2);
        let web = c.profiles["web"].derive("web", &c).unwrap();
        assert_eq!(web.roots, [PathBuf::from("/srv/web")]);
        let names: Vec<_> = web.upstreams.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["fs", "npm"]);
        assert!(web.aliases.is_empty(), "the docs alias goes with docs");
        assert_eq!(web.tool_search, crate::toolsearch::Mode::On);
        let filter = c.profiles["web"].filter();
        assert!(filter.permits("fs__read_file") && !filter.permits("fs__write_file"));
        // An empty table is the hub's surface, under its own processes.
        let docs = c.profiles["docs"].derive("docs", &c).unwrap();
        assert_eq!(docs.roots, [PathBuf::from("/srv")]);
        assert_eq!(docs.upstreams.len(), 3);
        assert_eq!(docs.aliases.len(), 1);
        assert_eq!(docs.tool_search, crate::toolsearch::Mode::Auto);
    }

    #[test]
    fn the_default_builtins_can_be_picked() {
        let c = parse("[profile.p]\nupstreams = [\"fs\", \"shell\"]\n").unwrap();
        let p = c.profiles["p"].derive("p", &c).unwrap();
        let got: Vec<_> = p.upstreams.iter().map(|u| (u.name.as_str(), u.args.clone())).collect();
        assert_eq!(got, [("fs", vec![]), ("shell", vec!["--profile".to_owned(), "read-only".to_owned()])]);
    }

    #[test]
    fn bad_profiles_are_refused() {
        let up = "[[upstream]]\nname = \"fs\"\nbuiltin = \"fs\"\n";
        for (text, want) in [
            ("[profile.Web]\n".to_owned(), "profile name 'Web'"),
            (format!("{up}[profile.p]\nupstreams = [\"git\"]\n"), "[profile.p]: there is no upstream 'git'"),
            (format!("{up}[profile.p]\nupstreams = [\"fs\", \"fs\"]\n"), "named twice"),
            (format!("{up}[profile.p]\n[[profile.p.upstream]]\nname = \"fs\"\nbuiltin = \"git\"\n"), "defined twice"),
            (format!("{up}[profile.p]\nupstreams = []\n"), "serves no upstream"),
            (format!("{up}[profile.p]\nallow_tools = [\"[\"]\n"), "tool pattern"),
            (format!("{up}[profile.p]\nroot = [\"/x\"]\n"), "unknown field"),
            (
                format!("{up}[profile.p]\n[[profile.p.alias]]\nupstream = \"x\"\ntool = \"t\"\nname = \"a\"\n"),
                "there is no upstream 'x'",
            ),
            (
                format!("{up}[profile.p]\n[[profile.p.upstream]]\nname = \"Bad\"\ncommand = \"x\"\n"),
                "upstream name 'Bad'",
            ),
        ] {
            let e = parse(&text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
