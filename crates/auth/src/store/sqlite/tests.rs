//! The SQLite store: OAuth codes, grants and tokens (AS-07, AS-09, RS-05), static tokens,
//! their migration from `tokens.json`, elevations and revoke-all.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn names(scopes: &[Scope]) -> Vec<String> {
    scopes.iter().map(Scope::to_string).collect()
}

const RES: &str = "https://hub.example.com/mcp";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn code_grant(scopes: &[&str]) -> CodeGrant {
    CodeGrant {
        client_id: "bcl_1".into(),
        client_name: "Test".into(),
        redirect_uri: "http://127.0.0.1:9/cb".into(),
        challenge: secret::s256(VERIFIER),
        resource: RES.into(),
        scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
    }
}

fn exchange(code: &str) -> CodeExchange {
    CodeExchange {
        code: code.into(),
        client_id: "bcl_1".into(),
        redirect_uri: Some("http://127.0.0.1:9/cb".into()),
        verifier: Some(VERIFIER.into()),
        resource: Some(RES.into()),
    }
}

fn issued(store: &mut SqliteStore, now: u64) -> Issued {
    let code = format!("bac_{}", secret::random_id::<8>().unwrap());
    store.insert_code(&code, &code_grant(&["fs:read", "git:read"]), now + 600).unwrap();
    store.exchange_code(&exchange(&code), now, &Lifetimes::default()).unwrap()
}

fn refresh(token: &str) -> RefreshRequest {
    RefreshRequest {
        token: token.into(),
        client_id: "bcl_1".into(),
        scopes: None,
        resource: None,
        audience: String::new(),
    }
}

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

/// AS-07: a code is single use; a replay revokes what the first use issued.
#[test]
fn as07_code_replay_revokes_the_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store.insert_code("bac_x", &code_grant(&["fs:read"]), 2000).unwrap();
    let t = store.exchange_code(&exchange("bac_x"), 1000, &Lifetimes::default()).unwrap();
    assert!(store.verify_access(&t.access_token, RES, 1001).is_ok());
    let e = store.exchange_code(&exchange("bac_x"), 1002, &Lifetimes::default()).unwrap_err();
    assert!(matches!(e, GrantError::InvalidGrant(ref d) if d.contains("already used")), "{e:?}");
    assert_eq!(store.verify_access(&t.access_token, RES, 1003), Err(Refusal::Revoked));
    let e = store.refresh(&refresh(&t.refresh_token), 1003, &Lifetimes::default()).unwrap_err();
    assert!(matches!(e, GrantError::InvalidGrant(_)));
}

/// AS-02 / AS-07: a failed check refuses without using the code up.
#[test]
fn as02_bad_exchanges_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store.insert_code("bac_x", &code_grant(&["fs:read"]), 2000).unwrap();
    let life = Lifetimes::default();
    let mut wrong_verifier = exchange("bac_x");
    wrong_verifier.verifier = Some("a".repeat(43));
    let mut no_verifier = exchange("bac_x");
    no_verifier.verifier = None;
    let mut other_client = exchange("bac_x");
    other_client.client_id = "bcl_2".into();
    let mut other_redirect = exchange("bac_x");
    other_redirect.redirect_uri = Some("http://127.0.0.1:9/cb2".into());
    let mut other_resource = exchange("bac_x");
    other_resource.resource = Some("https://other.example/mcp".into());
    for (req, want) in [
        (wrong_verifier, "InvalidGrant"),
        (no_verifier, "InvalidGrant"),
        (other_client, "InvalidGrant"),
        (other_redirect, "InvalidGrant"),
        (other_resource, "InvalidTarget"),
        (exchange("bac_unknown"), "InvalidGrant"),
    ] {
        let e = store.exchange_code(&req, 1000, &life).unwrap_err();
        assert!(format!("{e:?}").starts_with(want), "{req:?}: {e:?}");
    }
    assert!(matches!(store.exchange_code(&exchange("bac_x"), 2000, &life), Err(GrantError::InvalidGrant(_))));
    let mut slash = exchange("bac_x");
    slash.resource = Some(format!("{RES}/"));
    assert!(store.exchange_code(&slash, 1999, &life).is_ok());
}

/// AS-09: refresh rotates; reusing a rotated refresh token revokes the family.
#[test]
fn as09_refresh_rotation_and_family_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let life = Lifetimes::default();
    let first = issued(&mut store, 1000);
    let second = store.refresh(&refresh(&first.refresh_token), 1010, &life).unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.grant_id, first.grant_id);
    assert!(store.verify_access(&second.access_token, RES, 1011).is_ok());
    // Narrowing works; widening does not.
    let mut narrower = refresh(&second.refresh_token);
    narrower.scopes = Some(vec!["fs:read".parse().unwrap()]);
    let mut wider = refresh(&second.refresh_token);
    wider.scopes = Some(vec!["shell:exec".parse().unwrap()]);
    assert!(matches!(store.refresh(&wider, 1012, &life), Err(GrantError::InvalidScope(_))));
    let mut other = refresh(&second.refresh_token);
    other.client_id = "bcl_2".into();
    assert!(matches!(store.refresh(&other, 1012, &life), Err(GrantError::InvalidGrant(_))));
    let third = store.refresh(&narrower, 1012, &life).unwrap();
    assert_eq!(names(&third.scopes), ["fs:read"]);
    assert_eq!(store.verify_access(&third.access_token, RES, 1013).unwrap().scopes, ["fs:read".parse().unwrap()]);
    // The first refresh token again: theft assumed, everything of the grant dies.
    let e = store.refresh(&refresh(&first.refresh_token), 1014, &life).unwrap_err();
    assert!(matches!(e, GrantError::InvalidGrant(ref d) if d.contains("already used")), "{e:?}");
    for t in [&second.access_token, &third.access_token] {
        assert_eq!(store.verify_access(t, RES, 1015), Err(Refusal::Revoked));
    }
    assert!(store.refresh(&refresh(&third.refresh_token), 1016, &life).is_err());
    assert_eq!(store.grants(1016).unwrap()[0].state, "revoked");
}

/// RS-05: audience, expiry, kind.
#[test]
fn rs05_access_checks() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let t = issued(&mut store, 1000);
    assert!(store.verify_access(&t.access_token, &format!("{RES}/"), 1001).is_ok());
    // Last use is recorded to the minute.
    assert_eq!(store.grants(1001).unwrap()[0].last_used, Some(1001));
    store.verify_access(&t.access_token, RES, 1030).unwrap();
    assert_eq!(store.grants(1030).unwrap()[0].last_used, Some(1001));
    store.verify_access(&t.access_token, RES, 1061).unwrap();
    assert_eq!(store.grants(1061).unwrap()[0].last_used, Some(1061));
    assert_eq!(store.verify_access(&t.access_token, "https://other.example/mcp", 1001), Err(Refusal::WrongAudience));
    assert_eq!(store.verify_access(&t.access_token, RES, 1000 + 3600), Err(Refusal::Expired));
    assert_eq!(store.verify_access(&t.refresh_token, RES, 1001), Err(Refusal::Unknown));
    assert_eq!(store.verify_access("bat_nope", RES, 1001), Err(Refusal::Unknown));
    // A grant for the hub's old public URL is not refreshed.
    let mut moved = refresh(&t.refresh_token);
    moved.audience = "https://new.example.com/mcp".into();
    let e = store.refresh(&moved, 1001, &Lifetimes::default()).unwrap_err();
    assert!(matches!(e, GrantError::InvalidGrant(ref d) if d.contains("authorize again")), "{e:?}");
    // An expired refresh token is refused too.
    let e = store.refresh(&refresh(&t.refresh_token), 1000 + 31 * 24 * 3600, &Lifetimes::default()).unwrap_err();
    assert!(matches!(e, GrantError::InvalidGrant(ref d) if d.contains("expired")), "{e:?}");
}

#[test]
fn revocation_by_token_and_by_grant() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let a = issued(&mut store, 1000);
    let b = issued(&mut store, 1000);
    // Revoking an access token leaves the refresh token.
    store.revoke_token(&a.access_token, 1001).unwrap();
    assert_eq!(store.verify_access(&a.access_token, RES, 1002), Err(Refusal::Revoked));
    let a2 = store.refresh(&refresh(&a.refresh_token), 1002, &Lifetimes::default()).unwrap();
    // Revoking a refresh token takes the family.
    store.revoke_token(&a2.refresh_token, 1003).unwrap();
    assert_eq!(store.verify_access(&a2.access_token, RES, 1004), Err(Refusal::Revoked));
    store.revoke_token("brt_unknown", 1004).unwrap();
    // By id from another handle (the CLI).
    let mut cli = SqliteStore::open_existing(dir.path()).unwrap().unwrap();
    assert_eq!(cli.revoke_grants(&b.grant_id, 1005).unwrap(), 1);
    assert_eq!(cli.revoke_grants(&b.grant_id, 1005).unwrap(), 0);
    assert_eq!(store.verify_access(&b.access_token, RES, 1006), Err(Refusal::Revoked));
    let c = issued(&mut store, 1000);
    assert_eq!(cli.revoke_grants(&format!("oauth:Test/{}", c.grant_id), 1007).unwrap(), 1);
    let d = issued(&mut store, 1000);
    assert_eq!(cli.revoke_grants("Test", 1008).unwrap(), 1);
    assert_eq!(store.verify_access(&d.access_token, RES, 1009), Err(Refusal::Revoked));
    assert!(store.grants(1010).unwrap().iter().all(|g| g.state == "revoked"));
}

#[test]
fn clients_and_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let c = |id: &str| Client {
        id: id.into(),
        name: "C".into(),
        redirect_uris: vec!["https://a.example/cb".into()],
        source: Source::Dynamic,
    };
    store.insert_client(&c("bcl_a"), 100).unwrap();
    store.insert_client(&c("bcl_b"), 100).unwrap();
    assert_eq!(store.client("bcl_a").unwrap(), Some(c("bcl_a")));
    assert_eq!(store.client("bcl_z").unwrap(), None);
    store.touch_client("bcl_a", 150).unwrap();
    assert_eq!(store.prune_clients(200).unwrap(), 1);
    assert_eq!(store.client_count().unwrap(), 1);
    assert!(store.client("bcl_a").unwrap().is_some());
}

// Static tokens (formerly the hub's `tokens.json`).

fn sc(list: &str) -> Vec<Scope> {
    scope::parse_list(list).unwrap()
}

#[test]
fn concurrent_token_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    SqliteStore::open(&path).unwrap();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let path = path.clone();
            // A store per thread, like separate processes.
            std::thread::spawn(move || {
                SqliteStore::open(&path).unwrap().create_token(&format!("t{i}"), &sc("*:read"), None, 1).unwrap()
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let mut names: Vec<_> = store.tokens(1).unwrap().into_iter().map(|r| r.name).collect();
    names.sort();
    assert_eq!(names, (0..8).map(|i| format!("t{i}")).collect::<Vec<_>>());
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

#[test]
fn token_secrets_are_random() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let (_, a) = store.create_token("a", &sc("*:*"), None, 1).unwrap();
    let (_, b) = store.create_token("b", &sc("*:*"), None, 1).unwrap();
    assert_ne!(a, b);
}

#[test]
fn unknown_revoked_and_expired_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let (_, live) = store.create_token("live", &sc("*:read"), None, 100).unwrap();
    let (rec, gone) = store.create_token("gone", &sc("*:read"), None, 100).unwrap();
    assert_eq!(store.authenticate_token("bst_nope", 101).unwrap_err(), Refusal::Unknown);
    assert_eq!(store.authenticate_token("", 101).unwrap_err(), Refusal::Unknown);
    assert_eq!(store.revoke_tokens(&rec.id, 101).unwrap(), 1);
    assert_eq!(store.revoke_tokens("gone", 101).unwrap(), 0);
    assert_eq!(store.authenticate_token(&gone, 102).unwrap_err(), Refusal::Revoked);
    assert!(store.authenticate_token(&live, 102).is_ok());
    // A name can be reused once the old token is revoked.
    store.create_token("gone", &sc("*:read"), None, 102).unwrap();
    assert!(store.create_token("live", &sc("*:read"), None, 102).is_err());

    let mut r = rec.clone();
    r.revoked = None;
    r.expires = Some(100);
    assert_eq!(r.check(99), Ok(()));
    assert_eq!(r.check(100), Err(Refusal::Expired));
    let (_, soon) = store.create_token("soon", &sc("*:read"), Some(Duration::from_secs(0)), 103).unwrap();
    assert_eq!(store.authenticate_token(&soon, 103).unwrap_err(), Refusal::Expired);
    // An expired token's name can be reused too (the hub re-creates `owner` at start).
    let (_, again) = store.create_token("soon", &sc("*:read"), None, 103).unwrap();
    assert!(store.authenticate_token(&again, 103).is_ok());
}

#[test]
fn token_revocation_by_another_process_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let hub = SqliteStore::open(dir.path()).unwrap();
    let mut cli = SqliteStore::open(dir.path()).unwrap();
    let (_, secret) = cli.create_token("x", &sc("*:*"), None, 1).unwrap();
    assert!(hub.authenticate_token(&secret, 1).is_ok());
    cli.revoke_tokens("x", 1).unwrap();
    assert_eq!(hub.authenticate_token(&secret, 1).unwrap_err(), Refusal::Revoked);
}

#[test]
fn bad_token_input_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    assert!(store.create_token("x", &[], None, 1).is_err());
    assert!(store.create_token("", &sc("*:*"), None, 1).is_err());
    assert!(store.create_token(&"n".repeat(65), &sc("*:*"), None, 1).is_err());
    assert!(store.create_token("a\nb", &sc("*:*"), None, 1).is_err());
    // A bad scope cannot even reach the store: it is refused where it is written.
    assert!(scope::parse_all(&["fs:admin"]).is_err());
    assert!(store.tokens(1).unwrap().is_empty());
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

/// Issue 12: elevations add scopes to a token or a grant and lapse by themselves.
#[test]
fn elevations_lapse() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let (rec, secret) = store.create_token("ci", &sc("fs:read"), None, 1000).unwrap();
    let t = issued(&mut store, 1000);
    assert_eq!(store.elevate("ci", &sc("fs:write"), 1000 + 1800, 1000).unwrap(), ["ci"]);
    let p = store.authenticate_token(&secret, 1001).unwrap();
    assert_eq!(names(&p.scopes), ["fs:read", "fs:write"]);
    // By id, stacked, and listed with their end.
    store.elevate(&rec.id, &sc("git:write"), 1000 + 60, 1000).unwrap();
    assert_eq!(names(&store.authenticate_token(&secret, 1001).unwrap().scopes), ["fs:read", "fs:write", "git:write"]);
    let listed = &store.tokens(1001).unwrap()[0];
    assert_eq!(listed.elevations.len(), 2);
    assert!(listed.elevations.iter().any(|e| e.until == 2800 && names(&e.scopes) == ["fs:write"]));
    // The shorter one lapses first, then the other; the token's own scopes remain.
    assert_eq!(names(&store.authenticate_token(&secret, 1060).unwrap().scopes), ["fs:read", "fs:write"]);
    assert_eq!(names(&store.authenticate_token(&secret, 2800).unwrap().scopes), ["fs:read"]);
    assert!(store.tokens(2800).unwrap()[0].elevations.is_empty());

    // An OAuth grant, by id or by its audit name.
    let grant = format!("oauth:Test/{}", t.grant_id);
    assert_eq!(store.elevate(&t.grant_id, &sc("shell:exec"), 1100, 1000).unwrap(), std::slice::from_ref(&grant));
    assert_eq!(
        names(&store.verify_access(&t.access_token, RES, 1001).unwrap().scopes),
        ["fs:read", "git:read", "shell:exec"]
    );
    assert_eq!(names(&store.grants(1001).unwrap()[0].elevations[0].scopes), ["shell:exec"]);
    assert_eq!(names(&store.verify_access(&t.access_token, RES, 1100).unwrap().scopes), ["fs:read", "git:read"]);
    assert_eq!(store.elevate(&grant, &sc("fs:write"), 1200, 1000).unwrap(), std::slice::from_ref(&grant));

    // Nothing to elevate, nothing elevated; no elevation of a dead token; no empty ones.
    assert!(store.elevate("nobody", &sc("fs:write"), 2000, 1000).unwrap().is_empty());
    store.revoke_tokens("ci", 1001).unwrap();
    assert!(store.elevate("ci", &sc("fs:write"), 2000, 1001).unwrap().is_empty());
    assert!(store.elevate(&t.grant_id, &[], 2000, 1000).is_err());
    assert!(store.elevate(&t.grant_id, &sc("fs:write"), 1000, 1000).is_err());
}

/// Issue 12: one command revokes every static token and every OAuth grant, seen by the
/// next request of another handle (the hub).
#[test]
fn revoke_all_takes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let hub = SqliteStore::open(dir.path()).unwrap();
    let (_, a) = store.create_token("a", &sc("*:*"), None, 1000).unwrap();
    let (_, b) = store.create_token("b", &sc("fs:read"), None, 1000).unwrap();
    let g1 = issued(&mut store, 1000);
    let g2 = issued(&mut store, 1000);
    store.insert_code("bac_pending", &code_grant(&["fs:read"]), 2000).unwrap();
    assert!(hub.authenticate_token(&a, 1001).is_ok());
    let r = store.revoke_all(1001).unwrap();
    assert_eq!(r, RevokedAll { tokens: 2, grants: 2 });
    for s in [&a, &b] {
        assert_eq!(hub.authenticate_token(s, 1002).unwrap_err(), Refusal::Revoked);
    }
    for g in [&g1, &g2] {
        assert_eq!(hub.verify_access(&g.access_token, RES, 1002), Err(Refusal::Revoked));
        assert!(store.refresh(&refresh(&g.refresh_token), 1002, &Lifetimes::default()).is_err());
    }
    // A code approved before is no longer redeemable.
    assert!(store.exchange_code(&exchange("bac_pending"), 1002, &Lifetimes::default()).is_err());
    assert!(store.grants(1002).unwrap().iter().all(|g| g.state == "revoked"));
    assert_eq!(store.revoke_all(1003).unwrap(), RevokedAll::default());
    // New tokens work again afterwards.
    let (_, c) = store.create_token("a", &sc("*:*"), None, 1004).unwrap();
    assert!(hub.authenticate_token(&c, 1005).is_ok());
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
