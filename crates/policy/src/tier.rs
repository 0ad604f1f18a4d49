//! Tiers: how much a tool can change, mapped 1:1 to MCP tool annotations and to scopes.

use serde::{Deserialize, Serialize};

/// How much a tool can change. Ordered: a cap of `Write` allows `Read` and `Write`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Observes only.
    Read,
    /// Creates or changes; nothing the model has not seen is lost.
    Write,
    /// Deletes or discards.
    Destructive,
    /// Runs programs (arbitrary code by design; only inside the sandbox).
    Exec,
}

/// The MCP tool annotation hints a tier implies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hints {
    /// `readOnlyHint`.
    pub read_only: bool,
    /// `destructiveHint`.
    pub destructive: bool,
    /// `openWorldHint`: false for every built-in tool; they only touch the roots.
    pub open_world: bool,
}

impl Tier {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Read => "read",
            Tier::Write => "write",
            Tier::Destructive => "destructive",
            Tier::Exec => "exec",
        }
    }

    /// The tier named `s` (`read`, `write`, `destructive`, `exec`).
    pub fn parse(s: &str) -> Option<Tier> {
        Some(match s {
            "read" => Tier::Read,
            "write" => Tier::Write,
            "destructive" => Tier::Destructive,
            "exec" => Tier::Exec,
            _ => return None,
        })
    }

    /// The annotation hints for tools of this tier.
    pub fn hints(self) -> Hints {
        Hints {
            read_only: self == Tier::Read,
            destructive: matches!(self, Tier::Destructive | Tier::Exec),
            open_world: false,
        }
    }

    /// The scope a caller needs for this tier on `server` (`fs:read`, `fs:write`, …).
    pub fn scope(self, server: &str) -> String {
        format!("{server}:{}", self.as_str())
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
