//! The SQLite store: the shared behaviour (`store/suite.rs`), and what is the file's own:
//! permissions, reopening, the migration from `tokens.json` and `oauth.sqlite3`.

use super::*;
use crate::store::suite::{self, RES, refresh};
use std::os::unix::fs::PermissionsExt;

fn names(scopes: &[Scope]) -> Vec<String> {
    scopes.iter().map(Scope::to_string).collect()
}

fn issued(store: &mut SqliteStore, now: u64) -> Issued {
    suite::issued(store, now)
}

/// Handles on one SQLite file in a temporary state directory.
struct Sqlite(tempfile::TempDir);

impl suite::Backend for Sqlite {
    fn open(&self) -> Box<dyn Store> {
        Box::new(SqliteStore::open(self.0.path()).unwrap())
    }
}

suite::store_suite!(Some(Sqlite(tempfile::tempdir().unwrap())));

#[test]
fn file_is_private_and_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut store = SqliteStore::open(&state).unwrap();
    let owner = store.set_owner_secret(1).unwrap();
    let t = issued(&mut store, 1000);
    assert_eq!(fs::metadata(store.path()).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
    drop(store);
    let bytes = fs::read(state.join(FILE)).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for s in [&owner, &t.access_token, &t.refresh_token] {
        assert!(!text.contains(s.as_str()), "secret stored in clear");
    }
    assert!(text.contains(&secret::sha256_hex(&t.access_token)));
}

#[test]
fn state_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let owner = store.set_owner_secret(1).unwrap();
    let t = issued(&mut store, 1000);
    drop(store);
    let mut store = SqliteStore::open_existing(dir.path()).unwrap().unwrap();
    assert_eq!(store.check_owner_secret(&owner).unwrap(), Some(true));
    assert_eq!(store.check_owner_secret(&format!("  {owner}\n")).unwrap(), Some(true));
    assert_eq!(store.check_owner_secret("bos_wrong").unwrap(), Some(false));
    assert_eq!(
        store.verify_access(&t.access_token, RES, 1001).unwrap().scopes,
        ["fs:read", "git:read"].map(|s| s.parse().unwrap())
    );
    assert!(store.refresh(&refresh(&t.refresh_token), 1002, &Lifetimes::default()).is_ok());
    assert!(SqliteStore::open_existing(&dir.path().join("none")).unwrap().is_none());
}

// Static tokens (formerly the hub's `tokens.json`).

fn sc(list: &str) -> Vec<Scope> {
    scope::parse_list(list).unwrap()
}

#[test]
fn create_token_stores_only_the_hash_with_private_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut store = SqliteStore::open(&state).unwrap();
    let (rec, secret) = store.create_token("ci", &sc("fs:read"), None, 1).unwrap();
    assert!(secret.starts_with(TOKEN_PREFIX) && secret.len() > 40);
    assert_eq!(rec.sha256.len(), 64);
    let p = store.authenticate_token(&secret, 2).unwrap();
    assert_eq!(p.name, "ci");
    assert!(p.allows("fs", bastion_policy::Tier::Read));
    assert!(!p.allows("fs", bastion_policy::Tier::Write));
    assert_eq!(fs::metadata(store.path()).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
    drop(store);
    let bytes = fs::read(state.join(FILE)).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(&secret));
    assert!(text.contains(&secret::sha256_hex(&secret)));
}

/// A row whose scopes do not parse refuses the token; it is never narrowed silently.
#[test]
fn a_corrupt_scope_refuses_rather_than_drops() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let (_, secret) = store.create_token("x", &sc("fs:read git:read"), None, 1).unwrap();
    store.conn.execute("UPDATE bearer_tokens SET scopes = 'fs:read fs:admin'", []).unwrap();
    assert_eq!(store.authenticate_token(&secret, 2).unwrap_err(), Refusal::Unknown);
    assert!(store.tokens(2).is_err());
}

#[test]
fn tokens_json_is_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "bst_legacy-secret";
    let legacy = serde_json::json!([
        {"id": "aabbccdd", "name": "ci", "sha256": secret::sha256_hex(secret), "scopes": ["fs:read", "git:*"],
         "created": 100, "expires": null, "revoked": null},
        {"id": "11223344", "name": "old", "sha256": secret::sha256_hex("bst_old"), "scopes": ["*:*"],
         "created": 50, "expires": 5000, "revoked": 60},
        {"id": "55667788", "name": "dated", "sha256": secret::sha256_hex("bst_dated"), "scopes": ["*:read"],
         "created": 70, "expires": 150, "revoked": null}
    ]);
    fs::write(dir.path().join(LEGACY_TOKENS_FILE), serde_json::to_vec_pretty(&legacy).unwrap()).unwrap();
    fs::write(dir.path().join("tokens.lock"), "").unwrap();
    let store = SqliteStore::open_existing(dir.path()).unwrap().unwrap();
    assert!(!dir.path().join(LEGACY_TOKENS_FILE).exists());
    assert!(dir.path().join("tokens.json.migrated").exists());
    assert!(!dir.path().join("tokens.lock").exists());
    let records = store.tokens(200).unwrap();
    let got: Vec<_> =
        records.iter().map(|r| (r.id.as_str(), r.name.as_str(), r.created, r.expires, r.revoked)).collect();
    assert_eq!(
        got,
        [
            ("11223344", "old", 50, Some(5000), Some(60)),
            ("55667788", "dated", 70, Some(150), None),
            ("aabbccdd", "ci", 100, None, None)
        ]
    );
    assert_eq!(names(&records[2].scopes), ["fs:read", "git:*"]);
    assert_eq!(records[2].sha256, secret::sha256_hex(secret));
    let p = store.authenticate_token(secret, 200).unwrap();
    assert_eq!((p.name.as_str(), names(&p.scopes)), ("ci", vec!["fs:read".to_owned(), "git:*".to_owned()]));
    assert_eq!(store.authenticate_token("bst_old", 200).unwrap_err(), Refusal::Revoked);
    assert_eq!(store.authenticate_token("bst_dated", 200).unwrap_err(), Refusal::Expired);
    drop(store);
    // A second start imports nothing (the file is gone) and keeps what is there.
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.tokens(200).unwrap().len(), 3);
    // A corrupt legacy file stops the start with its name rather than losing tokens.
    let other = tempfile::tempdir().unwrap();
    fs::write(other.path().join(LEGACY_TOKENS_FILE), "[{\"id\": 1}]").unwrap();
    let e = SqliteStore::open(other.path()).err().unwrap().to_string();
    assert!(e.contains(LEGACY_TOKENS_FILE), "{e}");
}

#[test]
fn legacy_oauth_file_is_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let t = issued(&mut store, 1000);
    drop(store);
    fs::rename(dir.path().join(FILE), dir.path().join(LEGACY_FILE)).unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    assert!(!dir.path().join(LEGACY_FILE).exists());
    assert!(store.verify_access(&t.access_token, RES, 1001).is_ok());
}

#[test]
fn store_files_of_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    fs::set_permissions(dir.path().join(FILE), fs::Permissions::from_mode(0o666)).unwrap();
    let e = SqliteStore::open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("chmod 600"), "{e}");
}

#[test]
fn a_login_link_works_once_and_only_before_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let link = store.create_login_link(1_000 + 300, 1_000).unwrap();
    assert!(link.starts_with(LOGIN_LINK_PREFIX), "{link}");
    // Stored hashed: the secret itself is nowhere in the file.
    let bytes = std::fs::read(store.path()).unwrap();
    assert!(!bytes.windows(link.len()).any(|w| w == link.as_bytes()));
    assert!(!store.redeem_login_link("bdl_unknown", 1_001).unwrap());
    assert!(store.redeem_login_link(&link, 1_001).unwrap());
    assert!(!store.redeem_login_link(&link, 1_002).unwrap(), "single use");
    let late = store.create_login_link(2_000 + 300, 2_000).unwrap();
    assert!(!store.redeem_login_link(&late, 2_300).unwrap(), "expired");
}
