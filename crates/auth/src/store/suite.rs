//! The behaviour every store backend shares, run against each of them (SQLite in
//! `sqlite/tests.rs`, PostgreSQL in `postgres/tests.rs`) through [`store_suite!`]: OAuth codes,
//! grants and tokens (AS-07, AS-09, RS-05), static tokens, elevations and revoke-all, and what
//! several handles on one store (processes, hub replicas) must agree on.

use std::sync::Barrier;
use std::time::Duration;

use super::*;
use crate::client::Source;
use crate::{scope, secret};

/// Opens handles on one store (each test gets a fresh store): two handles are two processes,
/// or two hub replicas, sharing it.
pub(crate) trait Backend: Sync {
    /// A new handle on the test's store.
    fn open(&self) -> Box<dyn Store>;
}

/// One `#[test]` per behaviour of the suite, each with a fresh store from `$backend` (an
/// expression giving `Option<impl Backend>`; `None` skips).
macro_rules! store_suite {
    ($backend:expr) => {
        $crate::store::suite::store_suite!(@tests $backend;
            as07_code_replay_revokes_the_tokens, as02_bad_exchanges_are_refused,
            as09_refresh_rotation_and_family_revocation, rs05_access_checks, revocation_by_token_and_by_grant,
            clients_and_pruning, concurrent_token_writers_lose_nothing, token_secrets_are_random,
            unknown_revoked_and_expired_tokens_are_refused, token_revocation_by_another_process_is_seen,
            bad_token_input_is_rejected, elevations_lapse, revoke_all_takes_everything,
            owner_secret_is_shared, one_code_redeemed_at_once_by_two_handles,
            refresh_reuse_on_another_handle_revokes_the_family, one_refresh_token_rotated_at_once_by_two_handles,
            refresh_while_the_grant_is_revoked, switches_are_shared, approvals_are_queued_and_decided_once,
            return_mode_approvals_are_used_once, registrations_are_counted_across_handles,
            machine_clients_get_capped_short_tokens, machine_client_revocation_ends_its_tokens,
            tokens_bound_to_profiles, grants_for_a_profile_are_bound_to_it);
    };
    (@tests $backend:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                if let Some(b) = $backend {
                    $crate::store::suite::$name(&b);
                }
            }
        )*
    };
}
pub(crate) use store_suite;

fn names(scopes: &[Scope]) -> Vec<String> {
    scopes.iter().map(Scope::to_string).collect()
}

pub(crate) const RES: &str = "https://hub.example.com/mcp";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

pub(crate) fn code_grant(scopes: &[&str]) -> CodeGrant {
    CodeGrant {
        client_id: "bcl_1".into(),
        client_name: "Test".into(),
        redirect_uri: "http://127.0.0.1:9/cb".into(),
        challenge: secret::s256(VERIFIER),
        resource: RES.into(),
        scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
    }
}

pub(crate) fn exchange(code: &str) -> CodeExchange {
    CodeExchange {
        code: code.into(),
        client_id: "bcl_1".into(),
        redirect_uri: Some("http://127.0.0.1:9/cb".into()),
        verifier: Some(VERIFIER.into()),
        resource: Some(RES.into()),
    }
}

pub(crate) fn issued(store: &mut dyn Store, now: u64) -> Issued {
    let code = format!("bac_{}", secret::random_id::<8>().unwrap());
    store.insert_code(&code, &code_grant(&["fs:read", "git:read"]), now + 600).unwrap();
    store.exchange_code(&exchange(&code), now, &Lifetimes::default()).unwrap()
}

pub(crate) fn refresh(token: &str) -> RefreshRequest {
    RefreshRequest {
        token: token.into(),
        client_id: "bcl_1".into(),
        scopes: None,
        resource: None,
        audience: String::new(),
    }
}

fn sc(list: &str) -> Vec<Scope> {
    scope::parse_list(list).unwrap()
}

/// AS-07: a code is single use; a replay revokes what the first use issued.
pub(crate) fn as07_code_replay_revokes_the_tokens(b: &dyn Backend) {
    let mut store = b.open();
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
pub(crate) fn as02_bad_exchanges_are_refused(b: &dyn Backend) {
    let mut store = b.open();
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
pub(crate) fn as09_refresh_rotation_and_family_revocation(b: &dyn Backend) {
    let mut store = b.open();
    let life = Lifetimes::default();
    let first = issued(&mut *store, 1000);
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
pub(crate) fn rs05_access_checks(b: &dyn Backend) {
    let mut store = b.open();
    let t = issued(&mut *store, 1000);
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

pub(crate) fn revocation_by_token_and_by_grant(backend: &dyn Backend) {
    let mut store = backend.open();
    let a = issued(&mut *store, 1000);
    let b = issued(&mut *store, 1000);
    // Revoking an access token leaves the refresh token.
    store.revoke_token(&a.access_token, 1001).unwrap();
    assert_eq!(store.verify_access(&a.access_token, RES, 1002), Err(Refusal::Revoked));
    let a2 = store.refresh(&refresh(&a.refresh_token), 1002, &Lifetimes::default()).unwrap();
    // Revoking a refresh token takes the family.
    store.revoke_token(&a2.refresh_token, 1003).unwrap();
    assert_eq!(store.verify_access(&a2.access_token, RES, 1004), Err(Refusal::Revoked));
    store.revoke_token("brt_unknown", 1004).unwrap();
    // By id from another handle (the CLI).
    let mut cli = backend.open();
    assert_eq!(cli.revoke_grants(&b.grant_id, 1005).unwrap(), 1);
    assert_eq!(cli.revoke_grants(&b.grant_id, 1005).unwrap(), 0);
    assert_eq!(store.verify_access(&b.access_token, RES, 1006), Err(Refusal::Revoked));
    let c = issued(&mut *store, 1000);
    assert_eq!(cli.revoke_grants(&format!("oauth:Test/{}", c.grant_id), 1007).unwrap(), 1);
    let d = issued(&mut *store, 1000);
    assert_eq!(cli.revoke_grants("Test", 1008).unwrap(), 1);
    assert_eq!(store.verify_access(&d.access_token, RES, 1009), Err(Refusal::Revoked));
    assert!(store.grants(1010).unwrap().iter().all(|g| g.state == "revoked"));
}

pub(crate) fn clients_and_pruning(b: &dyn Backend) {
    let store = b.open();
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

pub(crate) fn concurrent_token_writers_lose_nothing(b: &dyn Backend) {
    b.open();
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..8)
            .map(|i| {
                // A store per thread, like separate processes.
                s.spawn(move || b.open().create_token(&format!("t{i}"), &sc("*:read"), None, 1).unwrap())
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
    });
    let store = b.open();
    let mut names: Vec<_> = store.tokens(1).unwrap().into_iter().map(|r| r.name).collect();
    names.sort();
    assert_eq!(names, (0..8).map(|i| format!("t{i}")).collect::<Vec<_>>());
}

pub(crate) fn token_secrets_are_random(b: &dyn Backend) {
    let mut store = b.open();
    let (_, a) = store.create_token("a", &sc("*:*"), None, 1).unwrap();
    let (_, b) = store.create_token("b", &sc("*:*"), None, 1).unwrap();
    assert_ne!(a, b);
}

pub(crate) fn unknown_revoked_and_expired_tokens_are_refused(b: &dyn Backend) {
    let mut store = b.open();
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

pub(crate) fn token_revocation_by_another_process_is_seen(b: &dyn Backend) {
    let hub = b.open();
    let mut cli = b.open();
    let (_, secret) = cli.create_token("x", &sc("*:*"), None, 1).unwrap();
    assert!(hub.authenticate_token(&secret, 1).is_ok());
    cli.revoke_tokens("x", 1).unwrap();
    assert_eq!(hub.authenticate_token(&secret, 1).unwrap_err(), Refusal::Revoked);
}

pub(crate) fn bad_token_input_is_rejected(b: &dyn Backend) {
    let mut store = b.open();
    assert!(store.create_token("x", &[], None, 1).is_err());
    assert!(store.create_token("", &sc("*:*"), None, 1).is_err());
    assert!(store.create_token(&"n".repeat(65), &sc("*:*"), None, 1).is_err());
    assert!(store.create_token("a\nb", &sc("*:*"), None, 1).is_err());
    // A bad scope cannot even reach the store: it is refused where it is written.
    assert!(scope::parse_all(&["fs:admin"]).is_err());
    assert!(store.tokens(1).unwrap().is_empty());
}

/// Issue 12: elevations add scopes to a token or a grant and lapse by themselves.
pub(crate) fn elevations_lapse(b: &dyn Backend) {
    let mut store = b.open();
    let (rec, secret) = store.create_token("ci", &sc("fs:read"), None, 1000).unwrap();
    let t = issued(&mut *store, 1000);
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
pub(crate) fn revoke_all_takes_everything(b: &dyn Backend) {
    let mut store = b.open();
    let hub = b.open();
    let (_, a) = store.create_token("a", &sc("*:*"), None, 1000).unwrap();
    let (_, b) = store.create_token("b", &sc("fs:read"), None, 1000).unwrap();
    let g1 = issued(&mut *store, 1000);
    let g2 = issued(&mut *store, 1000);
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

/// The owner secret set through one handle is checked through another.
pub(crate) fn owner_secret_is_shared(b: &dyn Backend) {
    let store = b.open();
    assert!(!store.owner_secret_exists().unwrap());
    assert_eq!(store.check_owner_secret("bos_x").unwrap(), None);
    let owner = store.set_owner_secret(1).unwrap();
    let other = b.open();
    assert!(other.owner_secret_exists().unwrap());
    assert_eq!(other.check_owner_secret(&owner).unwrap(), Some(true));
    assert_eq!(other.check_owner_secret(&format!("  {owner}\n")).unwrap(), Some(true));
    assert_eq!(other.check_owner_secret("bos_wrong").unwrap(), Some(false));
    let again = other.set_owner_secret(2).unwrap();
    assert_eq!(store.check_owner_secret(&owner).unwrap(), Some(false));
    assert_eq!(store.check_owner_secret(&again).unwrap(), Some(true));
}

/// Two handles (two replicas) redeeming the same code at the same moment: exactly one gets
/// tokens; the other is a replay, which revokes them (RFC 6749 §4.1.2).
pub(crate) fn one_code_redeemed_at_once_by_two_handles(b: &dyn Backend) {
    for round in 0..10 {
        let code = format!("bac_race{round}");
        b.open().insert_code(&code, &code_grant(&["fs:read"]), 2000).unwrap();
        let barrier = Barrier::new(2);
        let results: Vec<Result<Issued, GrantError>> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    let (code, barrier) = (&code, &barrier);
                    let mut store = b.open();
                    s.spawn(move || {
                        barrier.wait();
                        store.exchange_code(&exchange(code), 1000, &Lifetimes::default())
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let won: Vec<&Issued> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "round {round}: {results:?}");
        let lost = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(matches!(lost, GrantError::InvalidGrant(d) if d.contains("already used")), "{lost:?}");
        assert_eq!(b.open().verify_access(&won[0].access_token, RES, 1001), Err(Refusal::Revoked));
    }
    let grants = b.open().grants(1001).unwrap();
    assert_eq!(grants.len(), 10, "one grant per code, never two");
    assert!(grants.iter().all(|g| g.state == "revoked"));
}

/// A refresh token rotated through one handle and presented again through another: every
/// token of the grant dies, including those the first handle issued.
pub(crate) fn refresh_reuse_on_another_handle_revokes_the_family(b: &dyn Backend) {
    let life = Lifetimes::default();
    let mut a = b.open();
    let mut other = b.open();
    let first = issued(&mut *a, 1000);
    let second = a.refresh(&refresh(&first.refresh_token), 1010, &life).unwrap();
    assert!(other.verify_access(&second.access_token, RES, 1011).is_ok());
    let e = other.refresh(&refresh(&first.refresh_token), 1012, &life).unwrap_err();
    assert!(matches!(e, GrantError::InvalidGrant(ref d) if d.contains("already used")), "{e:?}");
    assert_eq!(a.verify_access(&second.access_token, RES, 1013), Err(Refusal::Revoked));
    assert_eq!(a.verify_access(&first.access_token, RES, 1013), Err(Refusal::Revoked));
    assert!(a.refresh(&refresh(&second.refresh_token), 1014, &life).is_err());
    assert_eq!(a.grants(1014).unwrap()[0].state, "revoked");
}

/// Two handles rotating the same refresh token at the same moment: one rotation, never two
/// live successors; the loser's reuse revokes the family.
pub(crate) fn one_refresh_token_rotated_at_once_by_two_handles(b: &dyn Backend) {
    for round in 0..10 {
        let t = issued(&mut *b.open(), 1000);
        let barrier = Barrier::new(2);
        let results: Vec<Result<Issued, GrantError>> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    let (token, barrier) = (&t.refresh_token, &barrier);
                    let mut store = b.open();
                    s.spawn(move || {
                        barrier.wait();
                        store.refresh(&refresh(token), 1010, &Lifetimes::default())
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "round {round}: {results:?}");
        let won = results.iter().find_map(|r| r.as_ref().ok()).unwrap();
        assert_eq!(b.open().verify_access(&won.access_token, RES, 1011), Err(Refusal::Revoked));
    }
}

/// A rotation on one handle while another revokes the grant (`bastion token revoke` during a
/// refresh): both finish without a store error (no lock cycle), and the grant ends revoked with
/// every token it issued, the new ones included.
pub(crate) fn refresh_while_the_grant_is_revoked(b: &dyn Backend) {
    for round in 0..10 {
        let t = issued(&mut *b.open(), 1000);
        let barrier = Barrier::new(2);
        let (rotated, revoked) = std::thread::scope(|s| {
            let mut a = b.open();
            let mut other = b.open();
            let (t, barrier) = (&t, &barrier);
            let rotation = s.spawn(move || {
                barrier.wait();
                a.refresh(&refresh(&t.refresh_token), 1010, &Lifetimes::default())
            });
            let revocation = s.spawn(move || {
                barrier.wait();
                other.revoke_grants(&t.grant_id, 1010)
            });
            (rotation.join().unwrap(), revocation.join().unwrap())
        });
        assert_eq!(revoked.unwrap(), 1, "round {round}");
        let store = b.open();
        match rotated {
            Ok(new) => assert_eq!(store.verify_access(&new.access_token, RES, 1011), Err(Refusal::Revoked)),
            Err(e) => assert!(matches!(e, GrantError::InvalidGrant(ref d) if d.contains("revoked")), "{e:?}"),
        }
        assert_eq!(store.verify_access(&t.access_token, RES, 1011), Err(Refusal::Revoked));
    }
}

/// Mode and pause written through one handle are read through another; each write returns the
/// switches as they were.
pub(crate) fn switches_are_shared(b: &impl Backend) {
    let (a, other) = (b.open(), b.open());
    assert_eq!(other.switches().unwrap(), Switches::default());
    assert_eq!(a.set_switch(Switch::Paused(true), 1).unwrap(), Switches::default());
    assert_eq!(other.switches().unwrap(), Switches { paused: true, observe: false });
    assert_eq!(other.set_switch(Switch::Observe(true), 2).unwrap(), Switches { paused: true, observe: false });
    a.set_switch(Switch::Paused(false), 3).unwrap();
    assert_eq!(other.switches().unwrap(), Switches { paused: false, observe: true });
}

fn approval(id: &str, hold: bool, created_ms: u64, timeout_ms: u64) -> ApprovalRecord {
    ApprovalRecord {
        id: id.into(),
        principal: "alice".into(),
        tool: "fs__delete_path".into(),
        args_hash: "h1".into(),
        fingerprint: Some("fp".into()),
        hold,
        view: serde_json::json!({"id": id, "tool": "fs__delete_path", "rendering": "delete a.txt"}),
        created_ms,
        expires_ms: created_ms + timeout_ms,
        timeout_ms,
        decision: None,
        decided_ms: None,
    }
}

/// A request queued by one process is listed and decided by another, exactly once; an expired
/// or withdrawn one cannot be decided.
pub(crate) fn approvals_are_queued_and_decided_once(b: &impl Backend) {
    let (a, other) = (b.open(), b.open());
    a.insert_approval(&approval("r1", true, 1_000, 5_000)).unwrap();
    a.insert_approval(&approval("r2", true, 2_000, 1_000)).unwrap();
    let listed: Vec<String> = other.pending_approvals(2_500).unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(listed, ["r1", "r2"]);
    assert_eq!(other.pending_approvals(3_000).unwrap().len(), 1, "r2 expired");
    let listed = other.pending_approvals(3_000).unwrap()[0].listed(3_000);
    assert_eq!((listed["waiting_s"].as_u64(), listed["expires_in_s"].as_u64()), (Some(2), Some(3)));
    let deny = ApprovalDecision { approved: false, reason: Some("no".into()), channel: "cli".into() };
    assert!(other.decide_approval("r2", &deny, 3_000).unwrap().is_none(), "expired");
    let decided = other.decide_approval("r1", &deny, 3_000).unwrap().unwrap();
    assert_eq!((decided.decision.as_ref(), decided.decided_ms), (Some(&deny), Some(3_000)));
    assert!(a.decide_approval("r1", &deny, 3_001).unwrap().is_none(), "decided once");
    assert_eq!(a.approval("r1").unwrap().unwrap().decision, Some(deny));
    assert!(a.pending_approvals(3_000).unwrap().is_empty());
    assert!(a.remove_approval("r1").unwrap());
    assert!(!a.remove_approval("r1").unwrap());
    assert!(a.approval("r1").unwrap().is_none());
}

/// A return-mode approval is used once, by the same principal, tool and arguments, within its
/// timeout counted from the decision; a hold-mode one never.
pub(crate) fn return_mode_approvals_are_used_once(b: &impl Backend) {
    let (a, other) = (b.open(), b.open());
    let yes = ApprovalDecision { approved: true, reason: None, channel: "dashboard".into() };
    a.insert_approval(&approval("ret", false, 1_000, 5_000)).unwrap();
    a.insert_approval(&approval("held", true, 1_000, 5_000)).unwrap();
    assert!(other.take_approval("alice", "fs__delete_path", "h1", 1_500).unwrap().is_none(), "undecided");
    other.decide_approval("held", &yes, 1_500).unwrap().unwrap();
    assert!(other.take_approval("alice", "fs__delete_path", "h1", 1_600).unwrap().is_none(), "hold mode");
    other.decide_approval("ret", &yes, 4_000).unwrap().unwrap();
    assert!(a.take_approval("bob", "fs__delete_path", "h1", 4_100).unwrap().is_none());
    assert!(a.take_approval("alice", "fs__write_file", "h1", 4_100).unwrap().is_none());
    assert!(a.take_approval("alice", "fs__delete_path", "h2", 4_100).unwrap().is_none());
    // Valid until decision + timeout (9 000), past the request's own expiry (6 000).
    let used = a.take_approval("alice", "fs__delete_path", "h1", 8_000).unwrap().unwrap();
    assert_eq!((used.id.as_str(), used.fingerprint.as_deref()), ("ret", Some("fp")));
    assert!(other.take_approval("alice", "fs__delete_path", "h1", 8_000).unwrap().is_none(), "used once");
    a.insert_approval(&approval("late", false, 10_000, 1_000)).unwrap();
    other.decide_approval("late", &yes, 10_500).unwrap().unwrap();
    assert!(a.take_approval("alice", "fs__delete_path", "h1", 11_600).unwrap().is_none(), "lapsed");
}

/// Registrations counted from several handles at once never exceed the limit together.
pub(crate) fn registrations_are_counted_across_handles(b: &impl Backend) {
    let handles: Vec<Box<dyn Store>> = (0..4).map(|_| b.open()).collect();
    let admitted: usize = std::thread::scope(|s| {
        let runs: Vec<_> = handles
            .into_iter()
            .map(|h| s.spawn(move || (0..5).filter(|_| h.count_registration("1.2.3.4", 60, 7).unwrap()).count()))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).sum()
    });
    assert_eq!(admitted, 7);
    // Another key, or the next window, counts afresh.
    let (a, other) = (b.open(), b.open());
    assert!(a.count_registration("5.6.7.8", 60, 7).unwrap());
    assert!(!a.count_registration("1.2.3.4", 60, 7).unwrap());
    assert!(other.count_registration("1.2.3.4", 120, 7).unwrap());
}

fn credentials(id: &str, secret: &str, scopes: Option<&str>) -> ClientCredentials {
    ClientCredentials { client_id: id.into(), secret: secret.into(), scopes: scopes.map(sc), resource: RES.into() }
}

/// Client credentials: the secret is checked (kept hashed), the token's scopes are capped by
/// the client's, its life by [`MACHINE_ACCESS_MAX`], there is no refresh token, and the token is
/// an access token of the client's grant like any other.
pub(crate) fn machine_clients_get_capped_short_tokens(b: &dyn Backend) {
    let mut store = b.open();
    let (c, secret) = store.create_machine_client("build-hub", &sc("fs:read build01:fs:write"), 100).unwrap();
    assert!(c.client_id.starts_with(MACHINE_CLIENT_PREFIX) && secret.starts_with(MACHINE_SECRET_PREFIX));
    let listed = store.machine_clients().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), names(&listed[0].scopes)),
        ("build-hub", vec!["fs:read".into(), "build01:fs:write".into()])
    );
    assert_eq!(listed[0].revoked, None);
    let e = store.create_machine_client("build-hub", &sc("fs:read"), 101).unwrap_err();
    assert!(e.0.contains("exists"), "{e}");
    assert!(store.create_machine_client("x", &[], 101).is_err());
    assert!(store.create_machine_client("", &sc("fs:read"), 101).is_err());

    let life = Lifetimes::default();
    let t = store.client_credentials(&credentials(&c.client_id, &secret, None), 1000, &life).unwrap();
    assert!(t.refresh_token.is_empty());
    assert_eq!(t.expires_in, MACHINE_ACCESS_MAX.as_secs());
    assert_eq!(names(&t.scopes), ["fs:read", "build01:fs:write"]);
    let a = store.verify_access(&t.access_token, RES, 1001).unwrap();
    assert_eq!(a.grant_id, c.grant_id);
    assert_eq!(a.clone().into_principal().name, format!("oauth:build-hub/{}", c.grant_id));
    assert_eq!(store.verify_access(&t.access_token, RES, 1000 + 600), Err(Refusal::Expired));
    assert_eq!(store.verify_access(&t.access_token, "https://other.example/mcp", 1001), Err(Refusal::WrongAudience));

    let short = Lifetimes { access: Duration::from_secs(60), ..life };
    let t = store.client_credentials(&credentials(&c.client_id, &secret, Some("fs:read")), 1000, &short).unwrap();
    assert_eq!((t.expires_in, names(&t.scopes)), (60, vec!["fs:read".to_owned()]));
    for (req, want) in [
        (credentials(&c.client_id, "bcs_wrong", None), "InvalidClient"),
        (credentials("bmc_nobody", &secret, None), "InvalidClient"),
        (credentials(&c.client_id, &secret, Some("fs:write")), "InvalidScope"),
        (credentials(&c.client_id, &secret, Some("*:*")), "InvalidScope"),
    ] {
        let e = store.client_credentials(&req, 1000, &life).unwrap_err();
        assert!(format!("{e:?}").starts_with(want), "{req:?}: {e:?}");
    }
    // Another handle (another process, another replica) sees the same client.
    let other = b.open();
    assert_eq!(other.machine_clients().unwrap().len(), 1);
}

/// Revoking a machine client (by name or id), or its grant, ends its tokens and refuses new ones.
pub(crate) fn machine_client_revocation_ends_its_tokens(b: &dyn Backend) {
    let mut store = b.open();
    let life = Lifetimes::default();
    let (c, secret) = store.create_machine_client("m1", &sc("*:read"), 100).unwrap();
    let t = store.client_credentials(&credentials(&c.client_id, &secret, None), 1000, &life).unwrap();
    assert_eq!(store.revoke_machine_clients("nobody", 1001).unwrap(), 0);
    assert_eq!(b.open().revoke_machine_clients("m1", 1001).unwrap(), 1);
    assert_eq!(store.verify_access(&t.access_token, RES, 1002), Err(Refusal::Revoked));
    let e = store.client_credentials(&credentials(&c.client_id, &secret, None), 1002, &life).unwrap_err();
    assert!(matches!(e, GrantError::InvalidClient(ref d) if d.contains("revoked")), "{e:?}");
    assert_eq!(store.machine_clients().unwrap()[0].revoked, Some(1001));
    assert_eq!(store.revoke_machine_clients(&c.client_id, 1003).unwrap(), 0, "already revoked");
    // The name is free again; `bastion token revoke` of the grant ends the client too.
    let (c2, s2) = store.create_machine_client("m1", &sc("*:read"), 1004).unwrap();
    store.client_credentials(&credentials(&c2.client_id, &s2, None), 1005, &life).unwrap();
    assert_eq!(store.revoke_grants(&c2.grant_id, 1006).unwrap(), 1);
    assert!(matches!(
        store.client_credentials(&credentials(&c2.client_id, &s2, None), 1007, &life),
        Err(GrantError::InvalidClient(_))
    ));
    assert!(store.machine_clients().unwrap().iter().all(|m| m.revoked.is_some()));
}

/// A static token bound to profiles carries them into its principal (sorted), through an
/// elevation too; an unbound one carries none (every surface).
pub(crate) fn tokens_bound_to_profiles(b: &dyn Backend) {
    let mut store = b.open();
    let profiles = ["web".to_owned(), "api".to_owned()];
    let (bound, secret) = store.create_token_for("bound", &sc("fs:read"), None, &profiles, 1000).unwrap();
    let (_, free) = store.create_token_for("free", &sc("fs:read"), None, &[], 1000).unwrap();
    let p = store.authenticate_token(&secret, 1001).unwrap();
    assert_eq!((p.name.as_str(), p.profiles.clone()), ("bound", vec!["api".to_owned(), "web".to_owned()]));
    assert!(p.reaches(Some("web")) && p.reaches(Some("api")) && !p.reaches(Some("ops")) && !p.reaches(None));
    assert!(store.authenticate_token(&free, 1001).unwrap().profiles.is_empty());
    assert_eq!(bound.profiles, ["api", "web"]);
    let listed: Vec<_> = store.tokens(1001).unwrap().into_iter().map(|t| (t.name, t.profiles)).collect();
    assert_eq!(listed, [("bound".to_owned(), vec!["api".to_owned(), "web".to_owned()]), ("free".to_owned(), vec![])]);
    // Another handle (process, replica) sees the binding; an elevation keeps it.
    let other = b.open();
    store.elevate(&bound.id, &sc("fs:write"), 2000, 1001).unwrap();
    let p = other.authenticate_token(&secret, 1002).unwrap();
    assert_eq!(p.profiles, ["api", "web"]);
    assert_eq!(names(&p.scopes), ["fs:read", "fs:write"]);
    // Revocation still wins.
    store.revoke_tokens("bound", 1003).unwrap();
    assert_eq!(other.authenticate_token(&secret, 1004), Err(Refusal::Revoked));
}

/// RFC 8707: a grant whose resource is a profile's (`{resource}/web`) is accepted at the hub's
/// resource and bound to that profile, and refreshed there; one for the hub's resource is not
/// bound; a resource below a profile is not the hub's.
pub(crate) fn grants_for_a_profile_are_bound_to_it(b: &dyn Backend) {
    let mut store = b.open();
    let web = format!("{RES}/web");
    let mut grant = code_grant(&["fs:read"]);
    grant.resource = web.clone();
    store.insert_code("bac_web", &grant, 2000).unwrap();
    let mut ex = exchange("bac_web");
    ex.resource = Some(web.clone());
    let t = store.exchange_code(&ex, 1000, &Lifetimes::default()).unwrap();
    let access = store.verify_access(&t.access_token, RES, 1001).unwrap();
    assert_eq!(access.profile.as_deref(), Some("web"));
    assert_eq!(access.into_principal().profiles, ["web"]);
    let mut again = refresh(&t.refresh_token);
    again.audience = RES.into();
    let r = store.refresh(&again, 1002, &Lifetimes::default()).unwrap();
    assert_eq!(store.verify_access(&r.access_token, RES, 1003).unwrap().profile.as_deref(), Some("web"));
    let plain = issued(&mut *store, 1000);
    assert_eq!(store.verify_access(&plain.access_token, RES, 1001).unwrap().profile, None);
    assert_eq!(profile_of_resource(&format!("{RES}/web/x"), RES), None);
    assert_eq!(profile_of_resource(&format!("{RES}web"), RES), None);
    assert_eq!(profile_of_resource(&format!("{RES}/web/"), RES), Some("web"));
}
