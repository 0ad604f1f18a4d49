//! Static bearer tokens: created once (the secret is printed once and never stored), kept as
//! SHA-256 hashes in `tokens.json` in the state directory (mode 0600, directory 0700), checked
//! on every HTTP request.
//!
//! The file is re-read when its modification time or length changes, so `bastion token revoke`
//! in another process takes effect on the next request without restarting the hub.

pub use bastion_oauth::now;
use bastion_oauth::secret::{random_id, random_secret, sha256_hex as hash};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::scope::Scope;

/// Prefix of every secret, so a leaked one is recognisable (secret scanners, logs).
pub const SECRET_PREFIX: &str = "bst_";

/// One token as stored: never the secret itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenRecord {
    /// Short random id (also accepted by `revoke`).
    pub id: String,
    /// Human name; written to the audit lines of every call made with the token.
    pub name: String,
    /// Lower-case hex SHA-256 of the secret.
    pub sha256: String,
    /// Scopes as given (`fs:read`, `*:*`, ...).
    pub scopes: Vec<String>,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Expiry, seconds since the Unix epoch; `None` never expires.
    pub expires: Option<u64>,
    /// Revocation time, if revoked.
    pub revoked: Option<u64>,
}

/// What a request authenticated as.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The token's name (`anonymous` without auth, `stdio` over stdio).
    pub name: String,
    /// What it may call.
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// A principal allowed everything (stdio, `--no-auth` on loopback).
    pub fn unrestricted(name: &str) -> Principal {
        Principal { name: name.to_owned(), scopes: vec![Scope::all()] }
    }

    /// A principal allowed nothing.
    pub fn nobody() -> Principal {
        Principal { name: "unauthenticated".to_owned(), scopes: vec![] }
    }
}

/// Why a bearer token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such token.
    Unknown,
    /// Revoked.
    Revoked,
    /// Past its expiry.
    Expired,
}

/// The default state directory: `$XDG_STATE_HOME/bastion`, else `~/.local/state/bastion`.
pub fn default_state_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("bastion"));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).context("neither XDG_STATE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/state/bastion"))
}

struct Cache {
    stamp: Option<(SystemTime, u64)>,
    records: Vec<TokenRecord>,
}

/// The token file of one state directory.
pub struct TokenStore {
    path: PathBuf,
    cache: Mutex<Cache>,
}

impl TokenStore {
    /// The store in `state_dir` (created on first write).
    pub fn open(state_dir: &Path) -> TokenStore {
        TokenStore { path: state_dir.join("tokens.json"), cache: Mutex::new(Cache { stamp: None, records: vec![] }) }
    }

    /// Path of the token file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every record on disk.
    pub fn load(&self) -> anyhow::Result<Vec<TokenRecord>> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("reading {}", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.path.display())),
        }
    }

    /// Runs `change` on the records under an exclusive lock (`tokens.lock`, flock), then writes
    /// them back atomically: a `bastion token` command and a starting hub can write at once
    /// without losing each other's records.
    fn update<T>(&self, change: impl FnOnce(&mut Vec<TokenRecord>) -> anyhow::Result<(T, bool)>) -> anyhow::Result<T> {
        let dir = self.path.parent().context("token file has no directory")?;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        let lock_path = self.path.with_extension("lock");
        let lock = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("locking {}", lock_path.display()))?;
        let mut records = self.load()?;
        let (out, changed) = change(&mut records)?;
        if changed {
            let tmp = self.path.with_extension(format!("json.{}.tmp", std::process::id()));
            let _ = fs::remove_file(&tmp);
            let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(&records)?)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
        }
        // The lock is released when `lock` is closed.
        drop(lock);
        Ok(out)
    }

    /// Creates a token and returns its record and the secret (shown once, never stored).
    pub fn create(
        &self,
        name: &str,
        scopes: &[String],
        expires_in: Option<Duration>,
    ) -> anyhow::Result<(TokenRecord, String)> {
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
            bail!("a token name is 1 to 64 printable characters");
        }
        if scopes.is_empty() {
            bail!("a token needs at least one scope (for example --scopes '*:read')");
        }
        for s in scopes {
            Scope::parse(s).map_err(anyhow::Error::msg)?;
        }
        self.update(|records| {
            let at = now();
            if records.iter().any(|r| r.name == name && check(r, at).is_ok()) {
                bail!("a live token named '{name}' exists; revoke it first or pick another name");
            }
            let secret = random_secret(SECRET_PREFIX).map_err(anyhow::Error::msg)?;
            let id = random_id::<4>().map_err(anyhow::Error::msg)?;
            let record = TokenRecord {
                id,
                name: name.to_owned(),
                sha256: hash(&secret),
                scopes: scopes.to_vec(),
                created: at,
                expires: expires_in.map(|d| at.saturating_add(d.as_secs())),
                revoked: None,
            };
            records.push(record.clone());
            Ok(((record, secret), true))
        })
    }

    /// Revokes the live token with this name or id; returns how many were revoked.
    pub fn revoke(&self, name_or_id: &str) -> anyhow::Result<usize> {
        self.update(|records| {
            let at = now();
            let mut n = 0;
            for r in records.iter_mut().filter(|r| r.revoked.is_none() && (r.name == name_or_id || r.id == name_or_id))
            {
                r.revoked = Some(at);
                n += 1;
            }
            Ok((n, n > 0))
        })
    }

    /// Checks a presented secret against the store (re-read if the file changed).
    pub fn authenticate(&self, secret: &str) -> Result<Principal, Refusal> {
        let digest = hash(secret);
        let stamp = fs::metadata(&self.path).ok().map(|m| (m.modified().unwrap_or(UNIX_EPOCH), m.len()));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.stamp != stamp || stamp.is_none() {
            match self.load() {
                Ok(records) => *cache = Cache { stamp, records },
                Err(e) => {
                    // A corrupt file refuses everything rather than keeping stale grants.
                    tracing::error!("token store unreadable, refusing all tokens: {e:#}");
                    *cache = Cache { stamp: None, records: vec![] };
                }
            }
        }
        // Comparing hashes, not secrets: timing reveals nothing about a secret's bytes.
        let record = cache.records.iter().find(|r| r.sha256 == digest).ok_or(Refusal::Unknown)?;
        check(record, now())?;
        Ok(Principal {
            name: record.name.clone(),
            scopes: record.scopes.iter().filter_map(|s| Scope::parse(s).ok()).collect(),
        })
    }
}

/// Whether a record is usable at `at`.
pub fn check(record: &TokenRecord, at: u64) -> Result<(), Refusal> {
    if record.revoked.is_some() {
        return Err(Refusal::Revoked);
    }
    if record.expires.is_some_and(|e| at >= e) {
        return Err(Refusal::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bastion_policy::Tier;

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                // A store per thread, like separate processes.
                std::thread::spawn(move || {
                    TokenStore::open(&path).create(&format!("t{i}"), &["*:read".into()], None).unwrap()
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let mut names: Vec<_> = TokenStore::open(&path).load().unwrap().into_iter().map(|r| r.name).collect();
        names.sort();
        assert_eq!(names, (0..8).map(|i| format!("t{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn create_stores_only_the_hash_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(&dir.path().join("state"));
        let (rec, secret) = store.create("ci", &["fs:read".into()], None).unwrap();
        assert!(secret.starts_with(SECRET_PREFIX) && secret.len() > 40);
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains(&secret));
        assert!(text.contains(&hash(&secret)));
        assert_eq!(rec.sha256.len(), 64);
        let mode = fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(dir.path().join("state")).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        let p = store.authenticate(&secret).unwrap();
        assert_eq!(p.name, "ci");
        assert!(crate::scope::allowed(&p.scopes, "fs", Tier::Read));
        assert!(!crate::scope::allowed(&p.scopes, "fs", Tier::Write));
    }

    #[test]
    fn secrets_are_random() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path());
        let (_, a) = store.create("a", &["*:*".into()], None).unwrap();
        let (_, b) = store.create("b", &["*:*".into()], None).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn unknown_revoked_and_expired_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path());
        let (_, live) = store.create("live", &["*:read".into()], None).unwrap();
        let (rec, gone) = store.create("gone", &["*:read".into()], None).unwrap();
        assert_eq!(store.authenticate("bst_nope").unwrap_err(), Refusal::Unknown);
        assert_eq!(store.authenticate("").unwrap_err(), Refusal::Unknown);
        assert_eq!(store.revoke(&rec.id).unwrap(), 1);
        assert_eq!(store.revoke("gone").unwrap(), 0);
        assert_eq!(store.authenticate(&gone).unwrap_err(), Refusal::Revoked);
        assert!(store.authenticate(&live).is_ok());
        // A name can be reused once the old token is revoked.
        store.create("gone", &["*:read".into()], None).unwrap();
        assert!(store.create("live", &["*:read".into()], None).is_err());

        let mut r = rec.clone();
        r.revoked = None;
        r.expires = Some(100);
        assert_eq!(check(&r, 99), Ok(()));
        assert_eq!(check(&r, 100), Err(Refusal::Expired));
        let (_, soon) = store.create("soon", &["*:read".into()], Some(Duration::from_secs(0))).unwrap();
        assert_eq!(store.authenticate(&soon).unwrap_err(), Refusal::Expired);
        // An expired token's name can be reused too (the hub re-creates `owner` at start).
        let (_, again) = store.create("soon", &["*:read".into()], None).unwrap();
        assert!(store.authenticate(&again).is_ok());
    }

    #[test]
    fn revocation_by_another_process_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let hub = TokenStore::open(dir.path());
        let cli = TokenStore::open(dir.path());
        let (_, secret) = cli.create("x", &["*:*".into()], None).unwrap();
        assert!(hub.authenticate(&secret).is_ok());
        // The length changes with the revocation stamp, so even a same-second mtime is noticed.
        cli.revoke("x").unwrap();
        assert_eq!(hub.authenticate(&secret).unwrap_err(), Refusal::Revoked);
    }

    #[test]
    fn bad_input_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path());
        assert!(store.create("x", &[], None).is_err());
        assert!(store.create("x", &["fs:admin".into()], None).is_err());
        assert!(store.create("", &["*:*".into()], None).is_err());
        assert!(store.load().unwrap().is_empty());
    }
}
