//! The last overview's snapshot, kept in the state directory (`host/snapshot.json`), and what
//! changed since: packages, units, listening ports, disks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What `changes` compares: each map is name → a short description.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Snapshot {
    /// When it was taken (RFC 3339).
    pub taken_at: String,
    /// Package → version.
    pub packages: BTreeMap<String, String>,
    /// Unit → `active/running` (empty without systemd).
    pub units: BTreeMap<String, String>,
    /// `tcp 0.0.0.0:8080` → the command holding it.
    pub ports: BTreeMap<String, String>,
    /// Mount point → `ext4 /dev/sda1 20480 MiB`.
    pub disks: BTreeMap<String, String>,
}

/// The differences of one category.
#[derive(Clone, Debug, Default, Serialize, JsonSchema, PartialEq, Eq)]
pub struct Delta {
    /// New entries (`name: description`).
    pub added: Vec<String>,
    /// Entries gone.
    pub removed: Vec<String>,
    /// Entries whose description changed (`name: old -> new`).
    pub changed: Vec<String>,
}

impl Delta {
    fn of(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Delta {
        let mut d = Delta::default();
        for (k, v) in after {
            match before.get(k) {
                None => d.added.push(format!("{k}: {v}")),
                Some(old) if old != v => d.changed.push(format!("{k}: {old} -> {v}")),
                Some(_) => {}
            }
        }
        for (k, v) in before {
            if !after.contains_key(k) {
                d.removed.push(format!("{k}: {v}"));
            }
        }
        d
    }

    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// What changed between two snapshots.
#[derive(Clone, Debug, Default, Serialize, JsonSchema, PartialEq, Eq)]
pub struct Diff {
    /// Packages installed, removed or upgraded.
    pub packages: Delta,
    /// Units that appeared, went, or changed state.
    pub units: Delta,
    /// Listening ports opened, closed, or taken by another program.
    pub ports: Delta,
    /// File systems mounted, unmounted, or resized.
    pub disks: Delta,
}

impl Diff {
    /// `after` against `before`.
    pub fn between(before: &Snapshot, after: &Snapshot) -> Diff {
        Diff {
            packages: Delta::of(&before.packages, &after.packages),
            units: Delta::of(&before.units, &after.units),
            ports: Delta::of(&before.ports, &after.ports),
            disks: Delta::of(&before.disks, &after.disks),
        }
    }

    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty() && self.units.is_empty() && self.ports.is_empty() && self.disks.is_empty()
    }
}

/// Where snapshots live: `<state dir>/host/snapshot.json`.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Snapshots under `state_dir/host`.
    pub fn new(state_dir: &Path) -> Self {
        Store { dir: state_dir.join("host") }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("snapshot.json")
    }

    /// The last snapshot, if there is one that parses.
    pub fn load(&self) -> Option<Snapshot> {
        let text = std::fs::read_to_string(self.file()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Replaces the snapshot (a private directory, a temporary file renamed over the old one).
    pub fn save(&self, snapshot: &Snapshot) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let tmp = self.dir.join(format!(".snapshot.{}.tmp", std::process::id()));
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(&serde_json::to_vec(snapshot).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.file())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn diffs_name_what_was_added_removed_and_changed() {
        let before = Snapshot {
            packages: map(&[("nginx", "1.22"), ("curl", "7.88")]),
            ports: map(&[("tcp 0.0.0.0:80", "nginx")]),
            ..Default::default()
        };
        let after = Snapshot {
            packages: map(&[("nginx", "1.24"), ("redis", "7.0")]),
            ports: map(&[("tcp 0.0.0.0:80", "nginx"), ("tcp 127.0.0.1:6379", "redis-server")]),
            ..Default::default()
        };
        let d = Diff::between(&before, &after);
        assert_eq!(d.packages.added, ["redis: 7.0"]);
        assert_eq!(d.packages.removed, ["curl: 7.88"]);
        assert_eq!(d.packages.changed, ["nginx: 1.22 -> 1.24"]);
        assert_eq!(d.ports.added, ["tcp 127.0.0.1:6379: redis-server"]);
        assert!(d.units.is_empty() && d.disks.is_empty() && !d.is_empty());
        assert!(Diff::between(&after, &after).is_empty());
    }

    #[test]
    fn the_store_round_trips_privately() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert!(store.load().is_none());
        let s =
            Snapshot { taken_at: "now".into(), units: map(&[("a.service", "active/running")]), ..Default::default() };
        store.save(&s).unwrap();
        assert_eq!(store.load(), Some(s));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("host")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
