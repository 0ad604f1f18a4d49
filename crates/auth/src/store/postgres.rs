//! The PostgreSQL store (`store = "postgres://…"` in the hub's configuration): the same tables
//! and the same answers as the SQLite store, in a database that several hub replicas and the
//! `bastion token …` commands of any machine share.
//!
//! What must hold across replicas is decided by PostgreSQL, never by a replica's memory: an
//! authorization code and a refresh token are read `FOR UPDATE` inside the transaction that
//! uses them, so two replicas presenting the same one at once are serialised by the row lock
//! and exactly one wins; the other sees it used and revokes the family in its own transaction.
//! Static token names are unique among live tokens under a transaction-scoped advisory lock.
//!
//! The schema is versioned (`schema_migrations`); migrations run at open under a session
//! advisory lock, so replicas starting together apply each one once. Connections come from a
//! small pool; every statement has a time limit. Reads that change nothing are retried once
//! when the connection broke (a restarted server); a statement that writes is never retried, so
//! a retry cannot issue a second grant.
//!
//! TLS follows libpq's `sslmode` (`disable`, `prefer`, `require`, `verify-full` with
//! `sslrootcert`), read out of the connection string here since rust-postgres knows neither
//! `verify-full` nor `sslrootcert`; the connector is rustls (tokio-postgres-rustls, ring).
//!
//! The client is rust-postgres' blocking one. It drives its connection with a tokio runtime of
//! its own, which must not be blocked on from a thread that is running async tasks: a call
//! made on such a thread (the hub checks static tokens inline) is run on a short-lived scoped
//! thread instead.

use std::str::FromStr;
use std::time::Duration;

use ::postgres as pg;
use pg::config::Host;
use pg::{Client as Pg, GenericClient, Row};
use r2d2_postgres::{PostgresConnectionManager, r2d2};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::shared::{APPROVAL_COLUMNS, CHANNEL, decision_of, decision_word, view_of};
use super::*;
use crate::client::Source;
use crate::scope;
use crate::secret;
use feed::{approval_row, listen, notify};
use grants::{exchange_code, lock_grant_of, refresh, revoke_family};
use tls::{SslMode, connector, tls_settings};

/// The migrations, in order; each runs once, in a transaction, recorded in `schema_migrations`.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("postgres/0001_initial.sql")),
    (2, include_str!("postgres/0002_shared_state.sql")),
    (3, include_str!("postgres/0003_machine_clients.sql")),
    (4, include_str!("postgres/0004_profiles.sql")),
];

/// The session advisory lock held while migrating (an arbitrary constant: "bastion" in ASCII).
const MIGRATION_LOCK: i64 = 0x0062_6173_7469_6f6e;
/// The transaction advisory lock that makes live static token names unique.
const TOKEN_NAME_LOCK: i64 = MIGRATION_LOCK + 1;

/// How long opening a connection, or waiting for one from the pool, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Limits set on every connection (unless the URL sets `options` itself): a statement, a wait
/// for a row lock, and a transaction left idle by a stuck process.
const SESSION_OPTIONS: &str =
    "-c statement_timeout=10000 -c lock_timeout=5000 -c idle_in_transaction_session_timeout=30000";
/// Connections per store handle.
const POOL_SIZE: u32 = 8;

type Pool = r2d2::Pool<PostgresConnectionManager<MakeRustlsConnect>>;

impl From<pg::Error> for StoreError {
    fn from(e: pg::Error) -> StoreError {
        StoreError(pg_message(&e))
    }
}

impl From<pg::Error> for GrantError {
    fn from(e: pg::Error) -> GrantError {
        GrantError::Internal(pg_message(&e))
    }
}

impl From<StoreError> for GrantError {
    fn from(e: StoreError) -> GrantError {
        GrantError::Internal(e.0)
    }
}

/// The error with the server's message when there is one (the `Display` of a database error
/// is only "db error").
fn pg_message(e: &pg::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("postgresql: {} ({})", db.message(), db.code().code()),
        None => format!("postgresql: {e}"),
    }
}

/// Whether an error is the connection's rather than the statement's: a read that failed so
/// may be made again on another connection.
fn connection_lost(e: &pg::Error) -> bool {
    match e.as_db_error() {
        // 08: connection exception; 57P: the server is shutting down or restarting.
        Some(db) => {
            let c = db.code().code();
            c.starts_with("08") || c.starts_with("57P")
        }
        None => e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

fn i(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn join(scopes: &[Scope]) -> String {
    scope::join(scopes)
}

/// The scopes of a column: a row whose scopes do not parse is an error, never a narrower token.
fn split(text: &str) -> Result<Vec<Scope>, StoreError> {
    Ok(scope::parse_list(text)?)
}

/// The elevations column of a query (`until scopes` pairs joined by `;`), parsed.
fn elevations(text: Option<&str>) -> Result<Vec<Elevation>, StoreError> {
    let mut out = vec![];
    for item in text.unwrap_or("").split(';').filter(|x| !x.is_empty()) {
        let bad = || StoreError(format!("malformed elevation '{item}'"));
        let (until, scopes) = item.split_once(' ').ok_or_else(bad)?;
        out.push(Elevation { scopes: split(scopes)?, until: until.parse().map_err(|_| bad())? });
    }
    Ok(out)
}

/// The subquery listing a subject's live elevations as `until scopes;...`; `now` is the
/// parameter holding the time.
fn elevations_of(subject: &str, now: &str) -> String {
    format!(
        "(SELECT string_agg(e.until || ' ' || e.scopes, ';' ORDER BY e.created, e.seq) FROM elevations e \
         WHERE e.subject = {subject} AND e.until > {now})"
    )
}

/// A connection string: `postgres://…`/`postgresql://…` as written, or a reference to where it
/// is kept, so the secret it holds is never in a configuration file in clear:
/// `env:NAME` (an environment variable) or `file:/path` (a file's first line, such as a
/// mounted secret).
pub fn resolve_url(spec: &str) -> Result<String, StoreError> {
    let spec = spec.trim();
    if let Some(name) = spec.strip_prefix("env:") {
        return std::env::var(name)
            .map(|v| v.trim().to_owned())
            .map_err(|_| StoreError(format!("store = \"{spec}\": the environment variable {name} is not set")));
    }
    if let Some(path) = spec.strip_prefix("file:") {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StoreError(format!("store = \"{spec}\": reading {path}: {e}")))?;
        return Ok(text.lines().next().unwrap_or("").trim().to_owned());
    }
    Ok(spec.to_owned())
}

/// Checks a configuration's `store` value without connecting: empty (SQLite), or PostgreSQL
/// whose password, if any, is not written in it (a reference keeps it out of the file).
pub fn check_spec(spec: &str) -> Result<(), String> {
    let spec = spec.trim();
    if spec.is_empty() || spec.starts_with("env:") || spec.starts_with("file:") {
        return Ok(());
    }
    if !is_postgres(spec) {
        return Err(format!("store = \"{spec}\": expected a postgres:// URL, env:NAME or file:/path"));
    }
    let (rest, _, _) = tls_settings(spec).map_err(|e| e.0)?;
    let config = pg::Config::from_str(&rest).map_err(|e| format!("store: not a PostgreSQL connection string: {e}"))?;
    if config.get_password().is_some() {
        return Err(format!(
            "store = \"{}\" holds a password: write store = \"env:NAME\" or \"file:/path\" and keep the URL there",
            describe(&config)
        ));
    }
    Ok(())
}

/// Whether a `store` value names PostgreSQL: a URL, a `key=value` connection string
/// (`host=/run/postgresql dbname=bastion`), or a reference to one.
pub fn is_postgres(spec: &str) -> bool {
    let spec = spec.trim();
    let key_values = !spec.is_empty() && spec.split_whitespace().all(|kv| kv.contains('='));
    key_values || ["postgres://", "postgresql://", "env:", "file:"].iter().any(|p| spec.starts_with(p))
}

/// Runs `f` where blocking on the client's own runtime is allowed: here, or on a scoped thread
/// when this thread is inside a tokio runtime.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The PostgreSQL store. Cheap to open more than once: each handle has its own pool.
pub struct PostgresStore {
    /// `None` only while dropping.
    pool: Option<Pool>,
    location: String,
    /// The connection settings, for the change feed's own connection.
    config: pg::Config,
    /// The TLS connector of every connection.
    tls: MakeRustlsConnect,
}

impl Drop for PostgresStore {
    /// Closing a connection blocks on the client's runtime too: the pool is dropped where that
    /// is allowed.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            off_runtime(move || drop(pool));
        }
    }
}

impl PostgresStore {
    /// Connects to `url` (a `postgres://` URL or a `key=value` connection string), with the
    /// store's timeouts unless the URL sets its own, and brings the schema up to date.
    pub fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let (rest, mode, root) = tls_settings(url)?;
        let mut config = pg::Config::from_str(&rest)
            .map_err(|e| StoreError(format!("store: not a PostgreSQL connection string: {e}")))?;
        let location = describe(&config);
        config.ssl_mode(match mode {
            SslMode::Disable => pg::config::SslMode::Disable,
            SslMode::Prefer => pg::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => pg::config::SslMode::Require,
        });
        let tls = connector(mode, root.as_deref()).map_err(|e| StoreError(format!("store {location}: {}", e.0)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_options().is_none() {
            config.options(SESSION_OPTIONS);
        }
        config.keepalives(true).keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("bastion");
        }
        let manager = PostgresConnectionManager::new(config.clone(), tls.clone());
        off_runtime(move || {
            let pool = r2d2::Pool::builder()
                .max_size(POOL_SIZE)
                .min_idle(Some(1))
                .connection_timeout(CONNECT_TIMEOUT)
                .build(manager)
                .map_err(|e| StoreError(format!("store {location}: {e}")))?;
            let mut conn = pool.get().map_err(|e| StoreError(format!("store {location}: {e}")))?;
            migrate(&mut conn).map_err(|e| StoreError(format!("store {location}: {}", e.0)))?;
            drop(conn);
            Ok(PostgresStore { pool: Some(pool), location, config, tls })
        })
    }

    /// Runs `f` on a pooled connection.
    fn run<T: Send>(&self, f: impl FnOnce(&mut Pg) -> T + Send) -> Result<T, StoreError> {
        off_runtime(|| {
            let pool = self.pool.as_ref().ok_or_else(|| StoreError("store closed".into()))?;
            let mut conn = pool.get().map_err(|e| StoreError(format!("store {}: {e}", self.location)))?;
            Ok(f(&mut conn))
        })
    }

    /// Runs a read that changes nothing, once more on a fresh connection if the first one was
    /// lost (the server restarted since the pool opened it).
    fn read<T: Send>(&self, f: impl Fn(&mut Pg) -> Result<T, pg::Error> + Send + Sync) -> Result<T, StoreError> {
        match self.run(&f)? {
            Err(e) if connection_lost(&e) => {
                tracing::warn!("store {}: {}; retrying the read once", self.location, pg_message(&e));
                Ok(self.run(&f)??)
            }
            r => Ok(r?),
        }
    }

    /// Runs a read made of several queries, parsed into a value (retried like [`Self::read`]).
    fn read_rows<T: Send>(
        &self,
        query: &str,
        params: &[&(dyn pg::types::ToSql + Sync)],
        parse: impl Fn(&Row) -> Result<T, StoreError> + Send + Sync,
    ) -> Result<Vec<T>, StoreError> {
        let rows = self.read(|c| c.query(query, params))?;
        rows.iter().map(parse).collect()
    }
}

/// Where the database is, for messages: never the user or password.
fn describe(config: &pg::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("postgres://{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

/// Brings the schema up to date under the migration lock; refuses a database migrated by a
/// newer Bastion (its tables may mean something this one does not know).
fn migrate(c: &mut Pg) -> Result<(), StoreError> {
    c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let result = (|| -> Result<(), StoreError> {
        c.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, applied BIGINT NOT NULL)",
        )?;
        let done: Vec<i32> = c.query("SELECT version FROM schema_migrations", &[])?.iter().map(|r| r.get(0)).collect();
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        if let Some(newer) = done.iter().find(|v| **v > known) {
            return Err(StoreError(format!(
                "the database's schema is at version {newer}, newer than this bastion knows ({known}); upgrade bastion"
            )));
        }
        for (version, sql) in MIGRATIONS {
            if done.contains(version) {
                continue;
            }
            let mut tx = c.transaction()?;
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations(version, applied) VALUES ($1, extract(epoch FROM now())::bigint)",
                &[version],
            )?;
            tx.commit()?;
            tracing::info!("auth store: schema migration {version} applied");
        }
        Ok(())
    })();
    let unlocked = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    result?;
    unlocked?;
    Ok(())
}

impl PostgresStore {
    /// The schema versions applied, in order (diagnostics, tests).
    pub fn schema_versions(&self) -> Result<Vec<i32>, StoreError> {
        self.read_rows("SELECT version FROM schema_migrations ORDER BY version", &[], |r| Ok(r.get(0)))
    }
}

impl Store for PostgresStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn subscribe(&self, on_change: OnChange) -> Result<Option<Subscription>, StoreError> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (config, location, flag) = (self.config.clone(), self.location.clone(), stop.clone());
        let tls = self.tls.clone();
        std::thread::Builder::new()
            .name("bastion-store-feed".into())
            .spawn(move || listen(&config, &tls, &location, &flag, &on_change))?;
        Ok(Some(Subscription { stop }))
    }

    fn switches(&self) -> Result<Switches, StoreError> {
        let row = self.read(|c| c.query_opt("SELECT paused, observe FROM switches WHERE id = 1", &[]))?;
        Ok(row.map(|r| Switches { paused: r.get(0), observe: r.get(1) }).unwrap_or_default())
    }

    fn set_switch(&self, switch: Switch, now: u64) -> Result<Switches, StoreError> {
        self.run(|c| -> Result<Switches, pg::Error> {
            let mut tx = c.transaction()?;
            tx.execute(
                "INSERT INTO switches(id, paused, observe, changed) VALUES (1, false, false, $1) ON CONFLICT DO NOTHING",
                &[&i(now)],
            )?;
            let r = tx.query_one("SELECT paused, observe FROM switches WHERE id = 1 FOR UPDATE", &[])?;
            let before = Switches { paused: r.get(0), observe: r.get(1) };
            match switch {
                Switch::Paused(p) => tx.execute("UPDATE switches SET paused = $1, changed = $2", &[&p, &i(now)])?,
                Switch::Observe(o) => tx.execute("UPDATE switches SET observe = $1, changed = $2", &[&o, &i(now)])?,
            };
            notify(&mut tx, &Change::Switches)?;
            tx.commit()?;
            Ok(before)
        })?
        .map_err(StoreError::from)
    }

    fn insert_approval(&self, r: &ApprovalRecord) -> Result<(), StoreError> {
        let view = r.view.to_string();
        self.run(|c| -> Result<(), pg::Error> {
            let mut tx = c.transaction()?;
            // A decided return-mode approval stays usable for its timeout after the decision;
            // an hour past every expiry nothing is left to use.
            tx.execute(
                "DELETE FROM approvals WHERE GREATEST(expires_ms, COALESCE(decided_ms, 0) + timeout_ms) < $1",
                &[&(i(r.created_ms) - 3_600_000)],
            )?;
            tx.execute(
                "INSERT INTO approvals(id, principal, tool, args_hash, fingerprint, hold, view, created_ms, expires_ms,
                 timeout_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &r.id,
                    &r.principal,
                    &r.tool,
                    &r.args_hash,
                    &r.fingerprint,
                    &r.hold,
                    &view,
                    &i(r.created_ms),
                    &i(r.expires_ms),
                    &i(r.timeout_ms),
                ],
            )?;
            // Other replicas' dashboards show it as it comes.
            notify(&mut tx, &Change::Approval(r.id.clone()))?;
            tx.commit()
        })??;
        Ok(())
    }

    fn pending_approvals(&self, now_ms: u64) -> Result<Vec<ApprovalRecord>, StoreError> {
        let query = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE decision IS NULL AND expires_ms > $1 ORDER BY created_ms, id"
        );
        self.read_rows(&query, &[&i(now_ms)], |r| Ok(approval_row(r)))
    }

    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        let query = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1");
        Ok(self.read(|c| c.query_opt(&query, &[&id]))?.map(|r| approval_row(&r)))
    }

    fn decide_approval(
        &self,
        id: &str,
        d: &ApprovalDecision,
        now_ms: u64,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        let query = format!(
            "UPDATE approvals SET decision = $2, reason = $3, channel = $4, decided_ms = $5
             WHERE id = $1 AND decision IS NULL AND expires_ms > $5 RETURNING {APPROVAL_COLUMNS}"
        );
        let row = self.run(|c| -> Result<Option<Row>, pg::Error> {
            let mut tx = c.transaction()?;
            let row = tx.query_opt(&query, &[&id, &decision_word(d), &d.reason, &d.channel, &i(now_ms)])?;
            if row.is_some() {
                notify(&mut tx, &Change::Approval(id.to_owned()))?;
            }
            tx.commit()?;
            Ok(row)
        })??;
        Ok(row.map(|r| approval_row(&r)))
    }

    fn remove_approval(&self, id: &str) -> Result<bool, StoreError> {
        let n = self.run(|c| -> Result<u64, pg::Error> {
            let mut tx = c.transaction()?;
            let n = tx.execute("DELETE FROM approvals WHERE id = $1", &[&id])?;
            if n > 0 {
                notify(&mut tx, &Change::Approval(id.to_owned()))?;
            }
            tx.commit()?;
            Ok(n)
        })??;
        Ok(n > 0)
    }

    fn take_approval(
        &self,
        principal: &str,
        tool: &str,
        args_hash: &str,
        now_ms: u64,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        // One statement: of two replicas retrying the same call at once, one deletes the row.
        let query = format!(
            "DELETE FROM approvals WHERE id = (SELECT id FROM approvals WHERE principal = $1 AND tool = $2
             AND args_hash = $3 AND NOT hold AND decision = 'approved' AND decided_ms + timeout_ms > $4
             ORDER BY decided_ms LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {APPROVAL_COLUMNS}"
        );
        let row = self.run(|c| c.query_opt(&query, &[&principal, &tool, &args_hash, &i(now_ms)]))??;
        Ok(row.map(|r| approval_row(&r)))
    }

    fn count_registration(&self, key: &str, window_start: u64, limit: u64) -> Result<bool, StoreError> {
        let count = self.run(|c| -> Result<i64, pg::Error> {
            let mut tx = c.transaction()?;
            tx.execute("DELETE FROM registrations WHERE key = $1 AND window_start < $2", &[&key, &i(window_start)])?;
            // The upsert takes the row's lock: concurrent registrations count one after another.
            let n: i64 = tx
                .query_one(
                    "INSERT INTO registrations(key, window_start, count) VALUES ($1, $2, 1)
                     ON CONFLICT (key, window_start) DO UPDATE SET count = registrations.count + 1 RETURNING count",
                    &[&key, &i(window_start)],
                )?
                .get(0);
            tx.commit()?;
            Ok(n)
        })??;
        Ok(u(count) <= limit)
    }

    fn owner_secret_exists(&self) -> Result<bool, StoreError> {
        self.read(|c| c.query_opt("SELECT 1 FROM owner WHERE id = 1", &[])).map(|r| r.is_some())
    }

    fn set_owner_secret(&self, now: u64) -> Result<String, StoreError> {
        let secret = secret::random_secret(OWNER_PREFIX).map_err(StoreError)?;
        let salt = secret::random_id::<16>().map_err(StoreError)?;
        let hash = secret::salted_hash(&salt, &secret);
        self.run(|c| {
            c.execute(
                "INSERT INTO owner(id, salt, hash, created) VALUES (1, $1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET salt = excluded.salt, hash = excluded.hash, created = excluded.created",
                &[&salt, &hash, &i(now)],
            )
        })??;
        Ok(secret)
    }

    fn check_owner_secret(&self, given: &str) -> Result<Option<bool>, StoreError> {
        let row = self.read(|c| c.query_opt("SELECT salt, hash FROM owner WHERE id = 1", &[]))?;
        Ok(row.map(|r| {
            let (salt, hash): (String, String) = (r.get(0), r.get(1));
            secret::ct_eq(secret::salted_hash(&salt, given.trim()).as_bytes(), hash.as_bytes())
        }))
    }

    fn insert_client(&self, cl: &Client, now: u64) -> Result<(), StoreError> {
        let uris = serde_json::to_string(&cl.redirect_uris).map_err(|e| StoreError(e.to_string()))?;
        self.run(|c| {
            c.execute(
                "INSERT INTO clients(client_id, client_name, redirect_uris, created) VALUES ($1, $2, $3, $4)",
                &[&cl.id, &cl.name, &uris, &i(now)],
            )
        })??;
        Ok(())
    }

    fn client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let row =
            self.read(|c| c.query_opt("SELECT client_name, redirect_uris FROM clients WHERE client_id = $1", &[&id]))?;
        Ok(row.map(|r| Client {
            id: id.to_owned(),
            name: r.get(0),
            redirect_uris: serde_json::from_str(r.get::<_, &str>(1)).unwrap_or_default(),
            source: Source::Dynamic,
        }))
    }

    fn touch_client(&self, id: &str, now: u64) -> Result<(), StoreError> {
        self.run(|c| c.execute("UPDATE clients SET last_used = $2 WHERE client_id = $1", &[&id, &i(now)]))??;
        Ok(())
    }

    fn client_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.read(|c| c.query_one("SELECT COUNT(*) FROM clients", &[]))?.get(0);
        Ok(u(n))
    }

    fn prune_clients(&self, before: u64) -> Result<usize, StoreError> {
        let n =
            self.run(|c| c.execute("DELETE FROM clients WHERE last_used IS NULL AND created < $1", &[&i(before)]))??;
        Ok(n as usize)
    }

    fn insert_code(&self, code: &str, g: &CodeGrant, expires: u64) -> Result<(), StoreError> {
        let (hash, scopes) = (secret::sha256_hex(code), join(&g.scopes));
        self.run(|c| {
            c.execute(
                "INSERT INTO codes(hash, client_id, client_name, redirect_uri, challenge, resource, scopes, expires)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &hash,
                    &g.client_id,
                    &g.client_name,
                    &g.redirect_uri,
                    &g.challenge,
                    &g.resource,
                    &scopes,
                    &i(expires),
                ],
            )
        })??;
        Ok(())
    }

    /// Redeems an authorization code (AS-07), with the SQLite store's rules. The code's row is
    /// locked for the transaction: a second redemption, on any replica, waits for the first
    /// and then finds the code used.
    fn exchange_code(&mut self, req: &CodeExchange, now: u64, life: &Lifetimes) -> Result<Issued, GrantError> {
        self.run(|c| exchange_code(c, req, now, life))?
    }

    /// Rotates a refresh token (AS-09). The token's row is locked for the transaction: of two
    /// replicas presenting the same refresh token at once, one rotates it and the other sees a
    /// reuse and revokes the family.
    fn refresh(&mut self, req: &RefreshRequest, now: u64, life: &Lifetimes) -> Result<Issued, GrantError> {
        self.run(|c| refresh(c, req, now, life))?
    }

    fn revoke_token(&mut self, token: &str, now: u64) -> Result<(), StoreError> {
        let hash = secret::sha256_hex(token);
        self.run(|c| -> Result<(), StoreError> {
            let mut tx = c.transaction()?;
            lock_grant_of(&mut tx, &hash)?;
            let row = tx.query_opt("SELECT kind, grant_id FROM tokens WHERE hash = $1 FOR UPDATE", &[&hash])?;
            if let Some(r) = row {
                let (kind, grant): (String, String) = (r.get(0), r.get(1));
                if kind == "refresh" {
                    revoke_family(&mut tx, &grant, now)?;
                } else {
                    tx.execute(
                        "UPDATE tokens SET revoked = $2 WHERE hash = $1 AND revoked IS NULL",
                        &[&hash, &i(now)],
                    )?;
                }
            }
            tx.commit()?;
            Ok(())
        })?
    }

    fn verify_access(&self, token: &str, resource: &str, now: u64) -> Result<Access, Refusal> {
        let hash = secret::sha256_hex(token);
        let query = format!(
            "SELECT t.kind, t.scopes, t.expires, t.revoked, g.id, g.client_name, g.resource, g.revoked, g.last_used, {}
             FROM tokens t JOIN grants g ON g.id = t.grant_id WHERE t.hash = $1",
            elevations_of("'grant:' || g.id", "$2")
        );
        let row = self.read(|c| c.query_opt(&query, &[&hash, &i(now)])).map_err(|e| {
            tracing::error!("OAuth store unreadable, refusing the token: {e}");
            Refusal::Unavailable
        })?;
        let Some(r) = row else {
            return Err(Refusal::Unknown);
        };
        let parsed = (|| -> Result<_, StoreError> { Ok((split(r.get(1))?, elevations(r.get(9))?)) })();
        let (mut scopes, elevations) = parsed.map_err(|e| {
            tracing::error!("OAuth store row unreadable, refusing the token: {e}");
            Refusal::Unknown
        })?;
        let (kind, expires, revoked): (&str, i64, Option<i64>) = (r.get(0), r.get(2), r.get(3));
        let (grant, client_name, aud, grant_revoked, last_used): (String, String, &str, Option<i64>, Option<i64>) =
            (r.get(4), r.get(5), r.get(6), r.get(7), r.get(8));
        if kind != "access" {
            return Err(Refusal::Unknown);
        }
        if revoked.is_some() || grant_revoked.is_some() {
            return Err(Refusal::Revoked);
        }
        if now >= u(expires) {
            return Err(Refusal::Expired);
        }
        if !super::within_resource(aud, resource) {
            return Err(Refusal::WrongAudience);
        }
        let profile = super::profile_of_resource(aud, resource).map(str::to_owned);
        // At most one write a minute per grant: a request is otherwise read-only.
        if last_used.is_none_or(|l| u(l) + 60 <= now) {
            let _ = self.run(|c| c.execute("UPDATE grants SET last_used = $2 WHERE id = $1", &[&grant, &i(now)]));
        }
        scopes.extend(elevations.into_iter().flat_map(|e| e.scopes));
        Ok(Access { grant_id: grant, client_name, scopes, profile })
    }

    fn grants(&self, now: u64) -> Result<Vec<GrantInfo>, StoreError> {
        let query = format!(
            "SELECT g.id, g.client_id, g.client_name, g.scopes, g.created, g.last_used, g.revoked,
                    EXISTS(SELECT 1 FROM tokens t WHERE t.grant_id = g.id AND t.revoked IS NULL
                           AND t.rotated IS NULL AND t.expires > $1),
                    {}
             FROM grants g ORDER BY g.created DESC, g.id",
            elevations_of("'grant:' || g.id", "$1")
        );
        self.read_rows(&query, &[&i(now)], |r| {
            let revoked: Option<i64> = r.get(6);
            let live: bool = r.get(7);
            Ok(GrantInfo {
                id: r.get(0),
                client_id: r.get(1),
                client_name: r.get(2),
                scopes: split(r.get(3))?,
                elevations: elevations(r.get(8))?,
                created: u(r.get(4)),
                last_used: r.get::<_, Option<i64>>(5).map(u),
                state: if revoked.is_some() {
                    "revoked"
                } else if live {
                    "live"
                } else {
                    "expired"
                },
            })
        })
    }

    fn revoke_grants(&mut self, id_or_name: &str, now: u64) -> Result<usize, StoreError> {
        self.run(|c| -> Result<usize, StoreError> {
            let mut tx = c.transaction()?;
            let ids: Vec<String> = tx
                .query(
                    "SELECT id FROM grants WHERE revoked IS NULL
                     AND (id = $1 OR client_name = $1 OR 'oauth:' || client_name || '/' || id = $1) FOR UPDATE",
                    &[&id_or_name],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for g in &ids {
                revoke_family(&mut tx, g, now)?;
            }
            tx.commit()?;
            Ok(ids.len())
        })?
    }

    fn prune(&self, now: u64) -> Result<(), StoreError> {
        let day = i(now).saturating_sub(24 * 3600);
        let month = i(now).saturating_sub(30 * 24 * 3600);
        self.run(|c| -> Result<(), StoreError> {
            let mut tx = c.transaction()?;
            tx.execute("DELETE FROM codes WHERE expires < $1", &[&day])?;
            tx.execute("DELETE FROM tokens WHERE expires < $1", &[&day])?;
            tx.execute("DELETE FROM tokens WHERE grant_id IN (SELECT id FROM grants WHERE revoked < $1)", &[&month])?;
            tx.execute("DELETE FROM grants WHERE revoked < $1", &[&month])?;
            tx.commit()?;
            Ok(())
        })?
    }

    fn create_token(
        &mut self,
        name: &str,
        scopes: &[Scope],
        expires_in: Option<Duration>,
        now: u64,
    ) -> Result<(TokenRecord, String), StoreError> {
        self.create_token_for(name, scopes, expires_in, &[], now)
    }

    fn create_token_for(
        &mut self,
        name: &str,
        scopes: &[Scope],
        expires_in: Option<Duration>,
        profiles: &[String],
        now: u64,
    ) -> Result<(TokenRecord, String), StoreError> {
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
            return Err(StoreError("a token name is 1 to 64 printable characters".into()));
        }
        if scopes.is_empty() {
            return Err(StoreError("a token needs at least one scope (for example --scopes '*:read')".into()));
        }
        let secret = secret::random_secret(TOKEN_PREFIX).map_err(StoreError)?;
        let id = secret::random_id::<4>().map_err(StoreError)?;
        let record = TokenRecord {
            id,
            name: name.to_owned(),
            sha256: secret::sha256_hex(&secret),
            scopes: scopes.to_vec(),
            created: now,
            expires: expires_in.map(|d| now.saturating_add(d.as_secs())),
            revoked: None,
            elevations: vec![],
            profiles: {
                let mut p = profiles.to_vec();
                p.sort();
                p.dedup();
                p
            },
        };
        self.run(|c| -> Result<(), StoreError> {
            let mut tx = c.transaction()?;
            // Two processes creating the same name: the second waits, then sees the first's.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&TOKEN_NAME_LOCK])?;
            let live: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM bearer_tokens
                     WHERE name = $1 AND revoked IS NULL AND (expires IS NULL OR expires > $2)",
                    &[&name, &i(now)],
                )?
                .get(0);
            if live > 0 {
                return Err(StoreError(format!(
                    "a live token named '{name}' exists; revoke it first or pick another name"
                )));
            }
            insert_token(&mut tx, &record)?;
            for p in profiles {
                tx.execute(
                    "INSERT INTO token_profiles(token_id, profile) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&record.id, p],
                )?;
            }
            tx.commit()?;
            Ok(())
        })??;
        Ok((record, secret))
    }

    fn import_tokens(&mut self, records: &[TokenRecord]) -> Result<usize, StoreError> {
        self.run(|c| -> Result<usize, StoreError> {
            let mut tx = c.transaction()?;
            let mut n = 0;
            for r in records {
                n += insert_token(&mut tx, r)?;
            }
            tx.commit()?;
            Ok(n)
        })?
    }

    fn tokens(&self, now: u64) -> Result<Vec<TokenRecord>, StoreError> {
        let query = format!(
            "SELECT t.id, t.name, t.hash, t.scopes, t.created, t.expires, t.revoked, {},
                    (SELECT string_agg(p.profile, ',' ORDER BY p.profile) FROM token_profiles p WHERE p.token_id = t.id)
             FROM bearer_tokens t ORDER BY t.created, t.seq",
            elevations_of("'token:' || t.id", "$1")
        );
        self.read_rows(&query, &[&i(now)], |r| {
            Ok(TokenRecord {
                id: r.get(0),
                name: r.get(1),
                sha256: r.get(2),
                scopes: split(r.get(3))?,
                created: u(r.get(4)),
                expires: r.get::<_, Option<i64>>(5).map(u),
                revoked: r.get::<_, Option<i64>>(6).map(u),
                elevations: elevations(r.get(7))?,
                profiles: super::profile_list(r.get(8)),
            })
        })
    }

    fn revoke_tokens(&mut self, name_or_id: &str, now: u64) -> Result<usize, StoreError> {
        let n = self.run(|c| -> Result<u64, pg::Error> {
            let mut tx = c.transaction()?;
            let ids = tx.query(
                "UPDATE bearer_tokens SET revoked = $2 WHERE revoked IS NULL AND (name = $1 OR id = $1) RETURNING id",
                &[&name_or_id, &i(now)],
            )?;
            for r in &ids {
                notify(&mut tx, &Change::Token(r.get(0)))?;
            }
            tx.commit()?;
            Ok(ids.len() as u64)
        })??;
        Ok(n as usize)
    }

    fn authenticate_token(&self, secret: &str, now: u64) -> Result<Principal, Refusal> {
        let hash = secret::sha256_hex(secret);
        let query = format!(
            "SELECT t.name, t.scopes, t.expires, t.revoked, {},
                    (SELECT string_agg(p.profile, ',' ORDER BY p.profile) FROM token_profiles p WHERE p.token_id = t.id)
             FROM bearer_tokens t WHERE t.hash = $1",
            elevations_of("'token:' || t.id", "$2")
        );
        // One lookup on the hash's unique index; the store caches nothing (the hub's
        // authenticator takes a verified token on trust for half a second, `VERIFIED_FOR`), so a
        // revocation written by another replica or process is seen by the next lookup.
        let row = self.read(|c| c.query_opt(&query, &[&hash, &i(now)])).map_err(|e| {
            // An unreachable store refuses everything rather than keeping stale grants; the hub
            // says so (503), since the token itself was not judged.
            tracing::error!("token store unreadable, refusing the token: {e}");
            Refusal::Unavailable
        })?;
        let row = row
            .map(|r| -> Result<_, StoreError> {
                let (name, expires, revoked): (String, Option<i64>, Option<i64>) = (r.get(0), r.get(2), r.get(3));
                let profiles: Option<String> = r.get(5);
                Ok((name, split(r.get(1))?, expires, revoked, elevations(r.get(4))?, super::profile_list(profiles)))
            })
            .transpose()
            .map_err(|e| {
                // A row that does not parse refuses the token; it is never narrowed silently.
                tracing::error!("token store row unreadable, refusing the token: {e}");
                Refusal::Unknown
            })?;
        let (name, scopes, expires, revoked, elevations, profiles) = row.ok_or(Refusal::Unknown)?;
        super::judge_token(name, scopes, expires.map(u), revoked.is_some(), elevations, now)
            .map(|p| Principal { profiles, ..p })
    }

    fn elevate(&mut self, name_or_id: &str, scopes: &[Scope], until: u64, now: u64) -> Result<Vec<String>, StoreError> {
        super::check_elevation(scopes, until, now)?;
        let joined = join(scopes);
        self.run(|c| -> Result<Vec<String>, StoreError> {
            let mut tx = c.transaction()?;
            let mut subjects: Vec<(String, String)> = vec![];
            for r in tx.query(
                "SELECT 'token:' || id, name FROM bearer_tokens
                 WHERE revoked IS NULL AND (expires IS NULL OR expires > $2) AND (name = $1 OR id = $1)
                 ORDER BY created, seq",
                &[&name_or_id, &i(now)],
            )? {
                subjects.push((r.get(0), r.get(1)));
            }
            for r in tx.query(
                "SELECT 'grant:' || id, 'oauth:' || client_name || '/' || id FROM grants WHERE revoked IS NULL
                 AND (id = $1 OR client_name = $1 OR 'oauth:' || client_name || '/' || id = $1) ORDER BY created, id",
                &[&name_or_id],
            )? {
                subjects.push((r.get(0), r.get(1)));
            }
            for (subject, _) in &subjects {
                tx.execute(
                    "INSERT INTO elevations(subject, scopes, created, until) VALUES ($1, $2, $3, $4)",
                    &[subject, &joined, &i(now), &i(until)],
                )?;
            }
            tx.execute("DELETE FROM elevations WHERE until <= $1", &[&i(now)])?;
            tx.commit()?;
            Ok(subjects.into_iter().map(|(_, name)| name).collect())
        })?
    }

    fn create_machine_client(
        &mut self,
        name: &str,
        scopes: &[Scope],
        now: u64,
    ) -> Result<(MachineClient, String), StoreError> {
        self.run(|c| machine::create(c, name, scopes, now))?
    }

    fn machine_clients(&self) -> Result<Vec<MachineClient>, StoreError> {
        let rows = self.read(|c| c.query(machine::LIST, &[]))?;
        machine::list(&rows)
    }

    fn revoke_machine_clients(&mut self, id_or_name: &str, now: u64) -> Result<usize, StoreError> {
        self.run(|c| machine::revoke(c, id_or_name, now))?
    }

    /// The client credentials grant. The client's row and its grant's are locked for the
    /// transaction, so a revocation on another replica either comes first (and is seen) or
    /// waits for the token and revokes it with the rest.
    fn client_credentials(
        &mut self,
        req: &ClientCredentials,
        now: u64,
        life: &Lifetimes,
    ) -> Result<Issued, GrantError> {
        self.run(|c| machine::issue(c, req, now, life))?
    }

    fn revoke_all(&mut self, now: u64) -> Result<RevokedAll, StoreError> {
        self.run(|c| -> Result<RevokedAll, StoreError> {
            let mut tx = c.transaction()?;
            let tokens = tx.execute("UPDATE bearer_tokens SET revoked = $1 WHERE revoked IS NULL", &[&i(now)])?;
            let grants = tx.execute("UPDATE grants SET revoked = $1 WHERE revoked IS NULL", &[&i(now)])?;
            tx.execute("UPDATE tokens SET revoked = $1 WHERE revoked IS NULL", &[&i(now)])?;
            // A code approved but not yet exchanged would become a new grant after this.
            tx.execute("DELETE FROM codes WHERE used IS NULL", &[])?;
            notify(&mut tx, &Change::All)?;
            tx.commit()?;
            Ok(RevokedAll { tokens: tokens as usize, grants: grants as usize })
        })?
    }
}

/// Inserts a token record unless its id (or hash) is stored already; returns 1 if inserted.
fn insert_token(c: &mut impl GenericClient, r: &TokenRecord) -> Result<usize, StoreError> {
    let n = c.execute(
        "INSERT INTO bearer_tokens(id, name, hash, scopes, created, expires, revoked)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        &[&r.id, &r.name, &r.sha256, &join(&r.scopes), &i(r.created), &r.expires.map(i), &r.revoked.map(i)],
    )?;
    Ok(n as usize)
}

mod feed;
mod grants;
mod machine;
#[cfg(test)]
pub(crate) mod testdb;
#[cfg(test)]
mod tests;
mod tls;
