//! Scopes: what a bearer token or an OAuth grant of the hub may call. A scope is
//! `{upstream}:{tier}` with `*` allowed on either side (`fs:read`, `*:read`, `git:*`, `*:*`);
//! scopes do not imply one another (`fs:write` does not grant `fs:read`), so a token says
//! exactly what it may do.
//!
//! **Host-qualified scopes.** A remote Bastion host is one upstream of the hub (`build01`); its
//! tools keep the host's own names, `fs__write_file`, and are offered as
//! `build01__fs__write_file`. The three-part form `{upstream}:{inner}:{tier}` narrows a scope to
//! the tools of `upstream` whose own name starts with `{inner}__`: `build01:fs:write` allows
//! `build01__fs__write_file` and not `build01__shell__run`. That is the one rule; everything
//! else follows from it:
//!
//! * the two-part form is the three-part form with `*` in the middle: `build01:write` (=
//!   `build01:*:write`) allows every write tool of build01, whatever its host's upstream;
//! * `*:fs:write` allows the `fs` write tools of every remote host;
//! * a three-part scope never allows a tool whose own name has no `__` (a local upstream's
//!   `write_file`): `fs:fs:write` does not allow `fs__write_file` of the local `fs`.
//!
//! `build01:*:write` is written back as `build01:write`.
//!
//! A scope is parsed once, where it is written (`bastion token create`, the consent page, the
//! token endpoint, the store when it reads its own rows), into a [`Scope`]; it travels typed from
//! there and is serialised as its string form. A string that does not parse is an error at that
//! point, never dropped later.

use std::fmt;
use std::str::FromStr;

use bastion_policy::Tier;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest upstream name.
pub const MAX_UPSTREAM_LEN: usize = 16;

/// Whether `name` is a valid upstream name: `[a-z][a-z0-9]{0,15}`. No `_`, so the first `__` of
/// a namespaced tool name always ends the upstream.
pub fn valid_upstream_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= MAX_UPSTREAM_LEN
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9'))
}

/// A string that is not a scope.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid scope '{0}': expected {{upstream|*}}:{{read|write|destructive|exec|*}} or {{upstream|*}}:{{inner}}:{{tier|*}}"
)]
pub struct ScopeError(pub String);

/// A validated scope: `{upstream|*}:{tier|*}`, or host-qualified `{upstream|*}:{inner}:{tier|*}`
/// (see the module's documentation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    upstream: Option<String>,
    /// The remote host's own upstream (`fs` of `build01:fs:write`); `None` is any tool.
    inner: Option<String>,
    tier: Option<Tier>,
}

/// The host's own upstream of a tool's own name: `fs` of `fs__write_file`; `None` when the name
/// has no `__` or what precedes it is not an upstream name.
pub fn inner_upstream(tool: &str) -> Option<&str> {
    tool.split_once("__").map(|(p, _)| p).filter(|p| valid_upstream_name(p))
}

impl Scope {
    /// `*:*`: everything.
    pub fn all() -> Scope {
        Scope { upstream: None, inner: None, tier: None }
    }

    /// Parses `fs:read`, `*:write`, `git:*`, `*:*`, and host-qualified `build01:fs:write`,
    /// `*:git:*`.
    pub fn parse(s: &str) -> Result<Scope, ScopeError> {
        let bad = || ScopeError(s.to_owned());
        let name = |part: &str| match part {
            "*" => Ok(None),
            p if valid_upstream_name(p) => Ok(Some(p.to_owned())),
            _ => Err(bad()),
        };
        let parts: Vec<&str> = s.split(':').collect();
        let (u, inner, t) = match parts[..] {
            [u, t] => (u, None, t),
            [u, i, t] => (u, name(i)?, t),
            _ => return Err(bad()),
        };
        let tier = match t {
            "*" => None,
            t => Some(Tier::parse(t).ok_or_else(bad)?),
        };
        Ok(Scope { upstream: name(u)?, inner, tier })
    }

    /// Whether this scope allows everything `other` allows (`*:read` covers `fs:read`; `fs:read`
    /// does not cover `*:read`; `build01:write` covers `build01:fs:write`).
    pub fn covers(&self, other: &Scope) -> bool {
        (self.upstream.is_none() || self.upstream == other.upstream)
            && (self.inner.is_none() || self.inner == other.inner)
            && (self.tier.is_none() || self.tier == other.tier)
    }

    /// Whether this scope allows a tool of `tier` on `upstream`, whatever the tool's own name:
    /// what a two-part scope decides. A host-qualified scope allows nothing here (it needs the
    /// tool's name: [`Scope::allows_tool`]).
    pub fn allows(&self, upstream: &str, tier: Tier) -> bool {
        self.inner.is_none()
            && self.upstream.as_deref().is_none_or(|u| u == upstream)
            && self.tier.is_none_or(|t| t == tier)
    }

    /// Whether this scope allows the tool `tool` (its upstream's own name for it) of `tier` on
    /// `upstream`: the one rule of the module's documentation.
    pub fn allows_tool(&self, upstream: &str, tool: &str, tier: Tier) -> bool {
        self.upstream.as_deref().is_none_or(|u| u == upstream)
            && self.inner.as_deref().is_none_or(|i| inner_upstream(tool) == Some(i))
            && self.tier.is_none_or(|t| t == tier)
    }
}

/// Parses every scope of a list; the first bad one is the error.
pub fn parse_all<S: AsRef<str>>(scopes: &[S]) -> Result<Vec<Scope>, ScopeError> {
    scopes.iter().map(|s| Scope::parse(s.as_ref())).collect()
}

/// Parses a space-separated list (the OAuth `scope` form and the store's columns).
pub fn parse_list(scopes: &str) -> Result<Vec<Scope>, ScopeError> {
    scopes.split_whitespace().map(Scope::parse).collect()
}

/// `a b c`: the OAuth form of a list of scopes.
pub fn join(scopes: &[Scope]) -> String {
    scopes.iter().map(Scope::to_string).collect::<Vec<_>>().join(" ")
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.upstream.as_deref().unwrap_or("*"))?;
        f.write_str(":")?;
        if let Some(i) = &self.inner {
            f.write_str(i)?;
            f.write_str(":")?;
        }
        f.write_str(self.tier.map_or("*", Tier::as_str))
    }
}

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Scope, ScopeError> {
        Scope::parse(s)
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scope, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Scope::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether any of `scopes` allows a tool of `tier` on `upstream`, whatever its name.
pub fn allowed(scopes: &[Scope], upstream: &str, tier: Tier) -> bool {
    scopes.iter().any(|s| s.allows(upstream, tier))
}

/// Whether any of `scopes` allows the tool `tool` (its upstream's own name) of `tier` on
/// `upstream` (see [`Scope::allows_tool`]).
pub fn allowed_tool(scopes: &[Scope], upstream: &str, tool: &str, tier: Tier) -> bool {
    scopes.iter().any(|s| s.allows_tool(upstream, tool, tier))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_names() {
        for (name, ok) in [
            ("fs", true),
            ("a", true),
            ("abcdefghijklmnop", true),
            ("abcdefghijklmnopq", false),
            ("", false),
            ("1fs", false),
            ("my_fs", false),
            ("Fs", false),
            ("f-s", false),
        ] {
            assert_eq!(valid_upstream_name(name), ok, "{name}");
        }
    }

    #[test]
    fn scopes() {
        let p = |s: &str| Scope::parse(s).unwrap();
        assert!(p("fs:read").allows("fs", Tier::Read));
        assert!(!p("fs:read").allows("fs", Tier::Write));
        assert!(!p("fs:read").allows("git", Tier::Read));
        assert!(!p("fs:write").allows("fs", Tier::Read));
        assert!(p("*:read").allows("git", Tier::Read));
        assert!(p("git:*").allows("git", Tier::Destructive));
        assert!(p("*:*").allows("shell", Tier::Exec));
        assert!(allowed(&[p("fs:read"), p("git:write")], "git", Tier::Write));
        assert!(!allowed(&[], "git", Tier::Read));
        for bad in [
            "fs",
            "fs:",
            ":read",
            "fs:admin",
            "FS:read",
            "my_fs:read",
            "fs:read:x",
            "",
            "a:b:c:read",
            "b1::read",
            "b1:F:read",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_qualified_scopes() {
        let p = |s: &str| Scope::parse(s).unwrap();
        let w = Tier::Write;
        for (scope, upstream, tool, tier, ok) in [
            ("build01:fs:write", "build01", "fs__write_file", w, true),
            ("build01:fs:write", "build01", "fs__read_file", Tier::Read, false),
            ("build01:fs:write", "build01", "shell__run", w, false),
            ("build01:fs:write", "build02", "fs__write_file", w, false),
            ("build01:fs:write", "build01", "write_file", w, false),
            ("build01:write", "build01", "shell__run", w, true),
            ("build01:*:write", "build01", "git__commit", w, true),
            ("*:fs:write", "build02", "fs__write_file", w, true),
            ("*:fs:*", "build02", "fs__delete", Tier::Destructive, true),
            ("fs:fs:write", "fs", "write_file", w, false),
            ("*:*", "build01", "shell__run", Tier::Exec, true),
            ("fs:write", "fs", "write_file", w, true),
        ] {
            assert_eq!(p(scope).allows_tool(upstream, tool, tier), ok, "{scope} {upstream} {tool}");
        }
        assert!(!p("build01:fs:write").allows("build01", w), "a host-qualified scope needs the tool's name");
        assert!(p("build01:write").allows("build01", w));
        assert!(p("build01:write").covers(&p("build01:fs:write")) && p("*:*").covers(&p("build01:fs:write")));
        assert!(
            !p("build01:fs:write").covers(&p("build01:write"))
                && !p("build01:fs:write").covers(&p("build01:git:write"))
        );
        assert_eq!(p("build01:*:write").to_string(), "build01:write");
        assert_eq!(p("build01:fs:*").to_string(), "build01:fs:*");
        assert_eq!(inner_upstream("fs__read_file"), Some("fs"));
        assert_eq!(inner_upstream("read_file"), None);
        assert!(allowed_tool(&[p("fs:read"), p("build01:git:read")], "build01", "git__status", Tier::Read));
    }

    #[test]
    fn display_and_serde_round_trip() {
        for s in ["fs:read", "*:write", "git:*", "*:*", "shell:exec", "fs:destructive", "build01:fs:write", "*:git:*"] {
            let scope = Scope::parse(s).unwrap();
            assert_eq!(scope.to_string(), s);
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
        }
        assert!(serde_json::from_str::<Scope>("\"fs:admin\"").is_err());
        assert_eq!(parse_list("fs:read  git:*").unwrap(), parse_all(&["fs:read", "git:*"]).unwrap());
        assert_eq!(join(&parse_list("fs:read git:*").unwrap()), "fs:read git:*");
        assert_eq!(parse_list("fs:read nope").unwrap_err(), ScopeError("nope".into()));
    }

    #[test]
    fn coverage() {
        let p = |s: &str| Scope::parse(s).unwrap();
        assert!(p("*:read").covers(&p("fs:read")) && p("fs:*").covers(&p("fs:exec")) && p("*:*").covers(&p("*:read")));
        assert!(p("fs:read").covers(&p("fs:read")));
        assert!(!p("fs:read").covers(&p("*:read")) && !p("fs:read").covers(&p("git:read")));
        assert!(!p("*:read").covers(&p("fs:write")));
    }
}
