//! Who a request is: the principal a bearer token, an OAuth grant or the transport stands for.

use bastion_policy::Tier;

use crate::scope::{self, Scope};

/// What a request authenticated as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (`anonymous` without auth, `stdio` over stdio, `oauth:CLIENT/GRANT` for
    /// an OAuth grant); written to the audit line of every call.
    pub name: String,
    /// What it may call: its own scopes and any elevation that has not lapsed.
    pub scopes: Vec<Scope>,
    /// The hub profiles (`/mcp/{profile}`) it is bound to; empty: not bound, every surface.
    pub profiles: Vec<String>,
}

impl Principal {
    /// A principal allowed everything (stdio, `--no-auth` on loopback).
    pub fn unrestricted(name: &str) -> Principal {
        Principal { name: name.to_owned(), scopes: vec![Scope::all()], profiles: vec![] }
    }

    /// A principal allowed nothing.
    pub fn nobody() -> Principal {
        Principal { name: "unauthenticated".to_owned(), scopes: vec![], profiles: vec![] }
    }

    /// Whether it holds `*:*` (no per-call scope check is needed).
    pub fn is_unrestricted(&self) -> bool {
        self.scopes.contains(&Scope::all())
    }

    /// Whether it may use the surface of `profile` (`None`: the hub's own, at `/mcp`): a
    /// principal bound to profiles uses only theirs.
    pub fn reaches(&self, profile: Option<&str>) -> bool {
        self.profiles.is_empty() || profile.is_some_and(|p| self.profiles.iter().any(|b| b == p))
    }

    /// Whether it may call a tool of `tier` on `upstream`.
    pub fn allows(&self, upstream: &str, tier: Tier) -> bool {
        scope::allowed(&self.scopes, upstream, tier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrestricted_and_nobody() {
        let all = Principal::unrestricted("stdio");
        assert!(all.is_unrestricted() && all.allows("shell", Tier::Exec));
        let none = Principal::nobody();
        assert!(!none.is_unrestricted() && !none.allows("fs", Tier::Read));
        let some = Principal { name: "ci".into(), scopes: scope::parse_list("fs:read").unwrap(), profiles: vec![] };
        assert!(some.allows("fs", Tier::Read) && !some.allows("fs", Tier::Write) && !some.is_unrestricted());
        assert!(some.reaches(None) && some.reaches(Some("web")));
        let bound = Principal { profiles: vec!["web".into()], ..some };
        assert!(bound.reaches(Some("web")) && !bound.reaches(Some("api")) && !bound.reaches(None));
    }
}
