//! The PostgreSQL store, on a real server (`testdb`): the shared behaviour (`store/suite.rs`),
//! including what two replicas must agree on, and what is PostgreSQL's own: versioned
//! migrations run once under the advisory lock, references to the connection string, and a
//! location that never shows a password.

use super::*;
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
        assert_eq!(s.schema_versions().unwrap(), [1, 4]);
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
