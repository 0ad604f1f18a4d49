//! Scopes: what a bearer token or an OAuth grant of the hub may call. A scope is
//! `{upstream}:{tier}` with `*` allowed on either side (`fs:read`, `*:read`, `git:*`, `*:*`);
//! scopes do not imply one another (`fs:write` does not grant `fs:read`), so a token says
//! exactly what it may do.

use crate::Tier;

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

/// A validated scope: `{upstream|*}:{tier|*}`.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    pub fn parse(s: &str) -> Result<Scope, String> {
        let bad = || format!("invalid scope '{s}': expected {{upstream|*}}:{{read|write|destructive|exec|*}}");
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
    fn coverage() {
        let p = |s: &str| Scope::parse(s).unwrap();
        assert!(p("*:read").covers(&p("fs:read")) && p("fs:*").covers(&p("fs:exec")) && p("*:*").covers(&p("*:read")));
        assert!(p("fs:read").covers(&p("fs:read")));
        assert!(!p("fs:read").covers(&p("*:read")) && !p("fs:read").covers(&p("git:read")));
        assert!(!p("*:read").covers(&p("fs:write")));
    }
}
