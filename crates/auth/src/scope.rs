//! Scopes: what a bearer token or an OAuth grant of the hub may call. A scope is
//! `{upstream}:{tier}` with `*` allowed on either side (`fs:read`, `*:read`, `git:*`, `*:*`);
//! scopes do not imply one another (`fs:write` does not grant `fs:read`), so a token says
//! exactly what it may do.
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
#[error("invalid scope '{0}': expected {{upstream|*}}:{{read|write|destructive|exec|*}}")]
pub struct ScopeError(pub String);

/// A validated scope: `{upstream|*}:{tier|*}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    upstream: Option<String>,
    tier: Option<Tier>,
}

impl Scope {
    /// `*:*`: everything.
    pub fn all() -> Scope {
        Scope { upstream: None, tier: None }
    }

    /// Parses `fs:read`, `*:write`, `git:*`, `*:*`.
    pub fn parse(s: &str) -> Result<Scope, ScopeError> {
        let bad = || ScopeError(s.to_owned());
        let (u, t) = s.split_once(':').ok_or_else(bad)?;
        let upstream = match u {
            "*" => None,
            u if valid_upstream_name(u) => Some(u.to_owned()),
            _ => return Err(bad()),
        };
        let tier = match t {
            "*" => None,
            t => Some(Tier::parse(t).ok_or_else(bad)?),
        };
        Ok(Scope { upstream, tier })
    }

    /// Whether this scope allows everything `other` allows (`*:read` covers `fs:read`; `fs:read`
    /// does not cover `*:read`).
    pub fn covers(&self, other: &Scope) -> bool {
        (self.upstream.is_none() || self.upstream == other.upstream) && (self.tier.is_none() || self.tier == other.tier)
    }

    /// Whether this scope allows a tool of `tier` on `upstream`.
    pub fn allows(&self, upstream: &str, tier: Tier) -> bool {
        self.upstream.as_deref().is_none_or(|u| u == upstream) && self.tier.is_none_or(|t| t == tier)
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

/// Whether any of `scopes` allows a tool of `tier` on `upstream`.
pub fn allowed(scopes: &[Scope], upstream: &str, tier: Tier) -> bool {
    scopes.iter().any(|s| s.allows(upstream, tier))
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
        for bad in ["fs", "fs:", ":read", "fs:admin", "FS:read", "my_fs:read", "fs:read:x", ""] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_and_serde_round_trip() {
        for s in ["fs:read", "*:write", "git:*", "*:*", "shell:exec", "fs:destructive"] {
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
