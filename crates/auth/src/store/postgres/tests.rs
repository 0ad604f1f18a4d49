//! The PostgreSQL store, on a real server (`testdb`): the shared behaviour (`store/suite.rs`),
//! including what two replicas must agree on, and what is PostgreSQL's own: versioned
//! migrations run once under the advisory lock, references to the connection string, and a
//! location that never shows a password.

use super::*;
use crate::now;
use crate::store::suite::{self, RES};

/// Handles on one fresh database.
struct Postgres(String);

impl suite::Backend for Postgres {
    fn open(&self) -> Box<dyn Store> {
        Box::new(PostgresStore::connect(&self.0).unwrap())
    }
}

suite::store_suite!(testdb::fresh_database().map(Postgres));

/// Replicas starting together migrate once; a later start finds the schema current.
#[test]
fn migrations_run_once_under_the_lock() {
    let Some(url) = testdb::fresh_database() else { return };
    let stores: Vec<PostgresStore> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..4).map(|_| s.spawn(|| PostgresStore::connect(&url).unwrap())).collect();
        starts.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for s in &stores {
        assert_eq!(s.schema_versions().unwrap(), MIGRATIONS.iter().map(|m| m.0).collect::<Vec<_>>());
    }
    let mut store = PostgresStore::connect(&url).unwrap();
    let (_, secret) = store.create_token("ci", &scope::parse_list("fs:read").unwrap(), None, 1).unwrap();
    assert_eq!(stores[0].authenticate_token(&secret, 2).unwrap().name, "ci");
    // A database migrated by a newer bastion is refused rather than misread.
    store.run(|c| c.execute("INSERT INTO schema_migrations VALUES (999, 0)", &[])).unwrap().unwrap();
    let e = PostgresStore::connect(&url).err().unwrap().to_string();
    assert!(e.contains("newer"), "{e}");
}

/// The store works from inside a tokio runtime, as the hub calls it (the blocking client must
/// not block on its runtime there).
#[test]
fn works_inside_an_async_runtime() {
    let Some(url) = testdb::fresh_database() else { return };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut store = open(Some(&url), std::path::Path::new("/nonexistent")).unwrap();
        let (_, secret) = store.create_token("x", &scope::parse_list("*:read").unwrap(), None, 1).unwrap();
        assert_eq!(store.authenticate_token(&secret, 2).unwrap().name, "x");
        let t = suite::issued(&mut *store, 1000);
        assert!(store.verify_access(&t.access_token, RES, 1001).is_ok());
    });
}

/// The connection string comes from the environment or a file; the location never shows
/// the password.
#[test]
fn references_and_location() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    std::fs::write(&file, "postgres://bastion:s3cret@db.example:6543/auth\n").unwrap();
    assert_eq!(
        resolve_url(&format!("file:{}", file.display())).unwrap(),
        "postgres://bastion:s3cret@db.example:6543/auth"
    );
    assert!(resolve_url("env:BASTION_TEST_SURELY_UNSET").unwrap_err().to_string().contains("not set"));
    assert!(resolve_url("file:/nonexistent/url").is_err());
    assert!(is_postgres("postgres://x") && is_postgres("postgresql://x") && is_postgres("env:X") && !is_postgres("/x"));
    let config = pg::Config::from_str("postgres://bastion:s3cret@db.example:6543/auth").unwrap();
    assert_eq!(describe(&config), "postgres://db.example:6543/auth");
    assert!(open(Some("mysql://x"), dir.path()).is_err());
    // A configuration names the database without its password.
    assert!(check_spec("env:BASTION_STORE_URL").is_ok() && check_spec("file:/run/secrets/db").is_ok());
    assert!(check_spec("postgres://bastion@db.example/auth").is_ok() && check_spec("").is_ok());
    for bad in ["postgres://bastion:s3cret@db.example/auth", "host=db.example password=s3cret dbname=auth"] {
        let e = check_spec(bad).unwrap_err();
        assert!(e.contains("env:NAME") && !e.contains("s3cret"), "{e}");
    }
    assert!(check_spec("/var/lib/auth.sqlite3").is_err());
    // Unreachable: refused within the connect timeout, with the location and not the secret.
    let e = PostgresStore::connect("postgres://u:s3cret@127.0.0.1:1/none").err().unwrap().to_string();
    assert!(e.contains("127.0.0.1:1") && !e.contains("s3cret"), "{e}");
    let Some(url) = testdb::fresh_database() else { return };
    let store = PostgresStore::connect(&url).unwrap();
    assert!(store.location().starts_with("postgres://") && !store.location().contains("user"), "{}", store.location());
    assert!(is_postgres(&url));
}

/// Connections the server drops (a restart, a failover, an administrator) are replaced: the
/// next read and the next write work, and nothing is written twice.
#[test]
fn lost_connections_are_replaced() {
    let Some(url) = testdb::fresh_database() else { return };
    let mut store = PostgresStore::connect(&url).unwrap();
    let (_, secret) = store.create_token("ci", &scope::parse_list("fs:read").unwrap(), None, 1).unwrap();
    let mut admin = pg::Client::connect(&url, pg::NoTls).unwrap();
    let kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()";
    assert!(!admin.query(kill, &[]).unwrap().is_empty(), "the store holds a connection");
    assert_eq!(store.authenticate_token(&secret, 2).unwrap().name, "ci");
    admin.query(kill, &[]).unwrap();
    store.create_token("second", &scope::parse_list("fs:read").unwrap(), None, 3).unwrap();
    let names: Vec<String> = store.tokens(3).unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["ci", "second"]);
}

/// Every change that must reach the other replicas is announced on the feed when committed:
/// switches, a static token's and a grant's revocation (also by refresh reuse), a decision.
#[test]
fn changes_are_announced_on_the_feed() {
    let Some(url) = testdb::fresh_database() else { return };
    let listener = PostgresStore::connect(&url).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let sub = listener
        .subscribe(Box::new(move |c| {
            let _ = tx.lock().unwrap().send(c);
        }))
        .unwrap()
        .unwrap();
    let next = || rx.recv_timeout(std::time::Duration::from_secs(1)).expect("a change within a second");
    assert_eq!(next(), Change::All, "connecting counts as everything changed");
    let mut other = PostgresStore::connect(&url).unwrap();
    other.set_switch(Switch::Paused(true), 1).unwrap();
    assert_eq!(next(), Change::Switches);
    let (rec, _) = other.create_token("ci", &scope::parse_list("fs:read").unwrap(), None, 1).unwrap();
    other.revoke_tokens("ci", 2).unwrap();
    assert_eq!(next(), Change::Token(rec.id));
    let t = suite::issued(&mut other, 1000);
    let req = RefreshRequest { token: t.refresh_token.clone(), client_id: "bcl_1".into(), ..Default::default() };
    other.refresh(&req, 1001, &Lifetimes::default()).unwrap();
    assert!(other.refresh(&req, 1002, &Lifetimes::default()).is_err(), "reuse");
    assert_eq!(next(), Change::Grant(t.grant_id));
    let r = ApprovalRecord {
        id: "a1".into(),
        principal: "p".into(),
        tool: "t".into(),
        args_hash: "h".into(),
        fingerprint: None,
        hold: true,
        view: serde_json::json!({}),
        created_ms: 1,
        expires_ms: 10_000,
        timeout_ms: 9_999,
        decision: None,
        decided_ms: None,
    };
    other.insert_approval(&r).unwrap();
    assert_eq!(next(), Change::Approval("a1".into()), "queued");
    let yes = ApprovalDecision { approved: true, reason: None, channel: "cli".into() };
    other.decide_approval("a1", &yes, 2).unwrap().unwrap();
    assert_eq!(next(), Change::Approval("a1".into()));
    // A rolled-back change announces nothing.
    assert!(other.decide_approval("a1", &yes, 3).unwrap().is_none());
    assert!(rx.recv_timeout(std::time::Duration::from_millis(300)).is_err());
    drop(sub);
}

/// Payloads read back as what was sent; an unknown kind is "everything".
#[test]
fn change_payloads() {
    for c in [
        Change::Token("x".into()),
        Change::Grant("g".into()),
        Change::Switches,
        Change::Approval("a".into()),
        Change::All,
    ] {
        assert_eq!(Change::parse(&c.payload()), c);
    }
    assert_eq!(Change::parse("profile p1"), Change::All);
    assert_eq!(Change::parse("token"), Change::All);
}

/// Whether the store's connections are encrypted, as the server sees them.
fn encrypted(store: &PostgresStore) -> bool {
    store.read(|c| c.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])).unwrap().get(0)
}

/// `sslmode=require` encrypts; `verify-full` with `sslrootcert` also checks the certificate and
/// the host name, in both forms of connection string; anything it cannot trust is refused.
#[test]
fn tls_to_postgresql() {
    let Some((port, cert)) = testdb::tls_cluster() else { return };
    let cert = cert.display().to_string();
    let kv = |extra: &str| format!("host=localhost port={port} user=postgres dbname=tls {extra}");
    assert!(!encrypted(&PostgresStore::connect(&kv("sslmode=disable")).unwrap()));
    assert!(encrypted(&PostgresStore::connect(&kv("sslmode=require")).unwrap()));
    let verified = PostgresStore::connect(&kv(&format!("sslmode=verify-full sslrootcert={cert}"))).unwrap();
    assert!(encrypted(&verified));
    let url =
        format!("postgres://postgres@localhost:{port}/tls?sslmode=verify-full&sslrootcert={cert}&application_name=t");
    let store = PostgresStore::connect(&url).unwrap();
    assert!(encrypted(&store));
    // The change feed's own connection is encrypted too.
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let _sub = store.subscribe(Box::new(move |c| drop(tx.lock().unwrap().send(c)))).unwrap();
    assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap(), Change::All);
    verified.set_switch(Switch::Paused(true), 1).unwrap();
    assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(1)).unwrap(), Change::Switches);
    // The certificate is for localhost, not for this other name of the same address.
    let e = PostgresStore::connect(&format!(
        "host=127.0.0.2 hostaddr=127.0.0.1 port={port} user=postgres dbname=tls sslmode=verify-full sslrootcert={cert}"
    ));
    assert!(e.is_err());
    // Another CA: refused.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.pem");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(dir.path().join("k"))
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success());
    let e = PostgresStore::connect(&kv(&format!("sslmode=verify-full sslrootcert={}", other.display()))).err().unwrap();
    assert!(e.to_string().contains("store postgres://localhost"), "{e}");
    for (bad, says) in [
        ("sslmode=verify-full", "needs sslrootcert"),
        ("sslmode=verify-ca", "verify-full"),
        ("sslmode=sometimes", "unknown sslmode"),
        ("sslmode=verify-full sslrootcert=/nonexistent", "sslrootcert /nonexistent"),
    ] {
        let e = PostgresStore::connect(&kv(bad)).err().unwrap().to_string();
        assert!(e.contains(says), "{bad}: {e}");
        if !bad.contains("nonexistent") {
            assert!(check_spec(&kv(bad)).is_err(), "{bad}");
        }
    }
    assert!(check_spec(&kv(&format!("sslmode=verify-full sslrootcert={cert}"))).is_ok());
}

/// A listener whose connection is cut connects again and reports everything as changed
/// (notifications sent meanwhile are lost), then hears later changes as before.
#[test]
fn the_feed_reconnects_and_reports_everything_changed() {
    let Some(url) = testdb::fresh_database() else { return };
    let store = PostgresStore::connect(&url).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let _sub = store.subscribe(Box::new(move |c| drop(tx.lock().unwrap().send(c)))).unwrap().unwrap();
    let wait = |secs| rx.recv_timeout(std::time::Duration::from_secs(secs)).expect("a change");
    assert_eq!(wait(5), Change::All);
    let cut = store
        .run(|c| {
            c.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
                &[],
            )
        })
        .unwrap()
        .unwrap();
    assert_eq!(cut.len(), 1, "the feed's connection");
    assert_eq!(wait(10), Change::All, "reconnected");
    store.set_switch(Switch::Observe(true), 1).unwrap();
    assert_eq!(wait(1), Change::Switches);
}

/// On a shared store a hub takes a verified static token on trust for at most
/// [`crate::authenticator::VERIFIED_FOR`]: a revocation by another process holds within it, and
/// one made through the hub's own store at the next request.
#[tokio::test(flavor = "multi_thread")]
async fn verified_tokens_honour_revocations_within_the_bound() {
    let Some(url) = testdb::fresh_database() else { return };
    let auth = crate::Authenticator::tokens(Box::new(PostgresStore::connect(&url).unwrap()));
    let mut other = PostgresStore::connect(&url).unwrap();
    let (_, a) = other.create_token("a", &scope::parse_list("fs:read").unwrap(), None, now()).unwrap();
    let (_, b) = other.create_token("b", &scope::parse_list("fs:read").unwrap(), None, now()).unwrap();
    let header = |t: &str| format!("Bearer {t}");
    assert_eq!(auth.authenticate(Some(&header(&a))).await.unwrap().name, "a");
    assert_eq!(auth.authenticate(Some(&header(&b))).await.unwrap().name, "b");
    // Revoked by another process (another replica, `bastion token revoke --config`).
    other.revoke_tokens("a", now()).unwrap();
    let revoked = std::time::Instant::now();
    loop {
        match auth.authenticate(Some(&header(&a))).await {
            Err(c) => {
                assert_eq!(c.refusal, Some(Refusal::Revoked));
                break;
            }
            Ok(_) => {
                assert!(revoked.elapsed() < crate::authenticator::VERIFIED_FOR + std::time::Duration::from_millis(200))
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Revoked through the hub's own store: refused at once.
    assert_eq!(auth.authenticate(Some(&header(&b))).await.unwrap().name, "b");
    auth.with_store(|s| s.revoke_tokens("b", now())).unwrap().unwrap();
    assert_eq!(auth.authenticate(Some(&header(&b))).await.unwrap_err().refusal, Some(Refusal::Revoked));
}
