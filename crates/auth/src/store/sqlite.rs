//! The SQLite store: one file, `auth.sqlite3` in the hub's state directory (mode 0600, owner
//! checked; directory 0700), so tokens and grants survive restarts and `bastion token …` in
//! another process sees and changes the same state. The hub queries it on every request (one
//! lookup by hash on an index, a few microseconds), so a revocation by another process takes
//! effect on the next request without a cache to invalidate.
//!
//! Earlier versions kept static tokens in `tokens.json` and the OAuth state in `oauth.sqlite3`:
//! the first open imports the one (renamed `tokens.json.migrated`) and renames the other.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::*;
use crate::client::Source;
use crate::scope::{self, ScopeError};
use crate::{secret, state};

/// The file name in the state directory.
pub const FILE: &str = "auth.sqlite3";
/// The OAuth store's earlier name, renamed to [`FILE`] on first open.
pub const LEGACY_FILE: &str = "oauth.sqlite3";
/// The static tokens' earlier file, imported on first open and renamed `tokens.json.migrated`.
pub const LEGACY_TOKENS_FILE: &str = "tokens.json";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS owner(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    salt TEXT NOT NULL,
    hash TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS clients(
    client_id TEXT PRIMARY KEY,
    client_name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    created INTEGER NOT NULL,
    last_used INTEGER
);
CREATE TABLE IF NOT EXISTS codes(
    hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    client_name TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    challenge TEXT NOT NULL,
    resource TEXT NOT NULL,
    scopes TEXT NOT NULL,
    expires INTEGER NOT NULL,
    used INTEGER,
    grant_id TEXT
);
CREATE TABLE IF NOT EXISTS grants(
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    client_name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    resource TEXT NOT NULL,
    created INTEGER NOT NULL,
    last_used INTEGER,
    revoked INTEGER
);
CREATE TABLE IF NOT EXISTS tokens(
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    grant_id TEXT NOT NULL REFERENCES grants(id),
    scopes TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    revoked INTEGER,
    rotated INTEGER
);
CREATE INDEX IF NOT EXISTS tokens_by_grant ON tokens(grant_id);
CREATE TABLE IF NOT EXISTS bearer_tokens(
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER,
    revoked INTEGER
);
CREATE TABLE IF NOT EXISTS elevations(
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created INTEGER NOT NULL,
    until INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS elevations_by_subject ON elevations(subject, until);
";

fn join(scopes: &[Scope]) -> String {
    scope::join(scopes)
}

/// The scopes of a column: a row whose scopes do not parse is an error, never a narrower token.
fn split(scopes: &str) -> Result<Vec<Scope>, ScopeError> {
    scope::parse_list(scopes)
}

/// [`split`] inside a row mapping.
fn scopes_at(r: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Vec<Scope>> {
    let text: String = r.get(idx)?;
    split(&text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

/// The elevations column of a query (`scopes until` pairs joined by `;`), parsed.
fn elevations_at(r: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Vec<Elevation>> {
    let text: Option<String> = r.get(idx)?;
    let bad = |e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e)
    };
    let mut out = vec![];
    for item in text.as_deref().unwrap_or("").split(';').filter(|x| !x.is_empty()) {
        let (until, scopes) = item.split_once(' ').ok_or_else(|| bad("malformed elevation".into()))?;
        let until = until.parse().map_err(|e: std::num::ParseIntError| bad(Box::new(e)))?;
        out.push(Elevation { scopes: split(scopes).map_err(|e| bad(Box::new(e)))?, until });
    }
    Ok(out)
}

/// The subquery listing a subject's live elevations as `until scopes;...` (`?2` is now).
fn elevations_of(subject: &str) -> String {
    format!(
        "(SELECT group_concat(x, ';') FROM (SELECT e.until || ' ' || e.scopes AS x FROM elevations e \
         WHERE e.subject = {subject} AND e.until > ?2 ORDER BY e.created, e.rowid))"
    )
}

fn i(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The SQLite store.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the store of `state_dir`: the directory made 0700, the file
    /// created 0600 before SQLite writes to it, both checked to be this user's. An earlier
    /// `oauth.sqlite3` is renamed, an earlier `tokens.json` imported.
    pub fn open(state_dir: &Path) -> Result<SqliteStore, StoreError> {
        state::ensure_dir(state_dir)?;
        let path = state_dir.join(FILE);
        let legacy = state_dir.join(LEGACY_FILE);
        if !path.exists() && legacy.exists() {
            state::check_private_file(&legacy)?;
            for suffix in ["-journal", "-wal", "-shm"] {
                let side = state_dir.join(format!("{LEGACY_FILE}{suffix}"));
                if side.exists() {
                    fs::rename(&side, state_dir.join(format!("{FILE}{suffix}")))?;
                }
            }
            fs::rename(&legacy, &path)?;
        }
        state::create_private_file(&path)?;
        let mut store = SqliteStore::connect(path)?;
        store.migrate_tokens_json(state_dir)?;
        Ok(store)
    }

    /// Opens the store of `state_dir` if there is one (or an earlier file to migrate): the CLI
    /// never creates one just to list it.
    pub fn open_existing(state_dir: &Path) -> Result<Option<SqliteStore>, StoreError> {
        if [FILE, LEGACY_FILE, LEGACY_TOKENS_FILE].iter().all(|f| !state_dir.join(f).exists()) {
            return Ok(None);
        }
        SqliteStore::open(state_dir).map(Some)
    }

    fn connect(path: PathBuf) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(&path)?;
        // The hub and a CLI command may write at once: wait for the lock rather than fail.
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore { conn, path })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Imports `tokens.json` (static tokens of earlier versions) with their ids, names, hashes,
    /// scopes and times, then renames it `tokens.json.migrated` so it is imported once.
    fn migrate_tokens_json(&mut self, state_dir: &Path) -> Result<(), StoreError> {
        let legacy = state_dir.join(LEGACY_TOKENS_FILE);
        let bytes = match fs::read(&legacy) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError(format!("reading {}: {e}", legacy.display()))),
        };
        let records: Vec<TokenRecord> = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError(format!("{}: {e}; fix or remove it", legacy.display())))?;
        let n = self.import_tokens(&records)?;
        fs::rename(&legacy, state_dir.join(format!("{LEGACY_TOKENS_FILE}.migrated")))?;
        let _ = fs::remove_file(state_dir.join("tokens.lock"));
        tracing::info!("imported {n} token(s) from {} into {}", legacy.display(), self.path.display());
        Ok(())
    }
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    /// Whether an owner secret is set.
    fn owner_secret_exists(&self) -> Result<bool, StoreError> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM owner", [], |r| r.get::<_, i64>(0))? > 0)
    }

    /// Creates or replaces the owner secret; returns it (shown once, stored hashed).
    fn set_owner_secret(&self, now: u64) -> Result<String, StoreError> {
        let secret = secret::random_secret(OWNER_PREFIX).map_err(StoreError)?;
        let salt = secret::random_id::<16>().map_err(StoreError)?;
        self.conn.execute(
            "INSERT OR REPLACE INTO owner(id, salt, hash, created) VALUES (1, ?1, ?2, ?3)",
            params![salt, secret::salted_hash(&salt, &secret), i(now)],
        )?;
        Ok(secret)
    }

    /// Whether `given` is the owner secret; `None` if there is none.
    fn check_owner_secret(&self, given: &str) -> Result<Option<bool>, StoreError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row("SELECT salt, hash FROM owner WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row.map(|(salt, hash)| secret::ct_eq(secret::salted_hash(&salt, given.trim()).as_bytes(), hash.as_bytes())))
    }

    /// Stores a dynamically registered client.
    fn insert_client(&self, c: &Client, now: u64) -> Result<(), StoreError> {
        let uris = serde_json::to_string(&c.redirect_uris).map_err(|e| StoreError(e.to_string()))?;
        self.conn.execute(
            "INSERT INTO clients(client_id, client_name, redirect_uris, created) VALUES (?1, ?2, ?3, ?4)",
            params![c.id, c.name, uris, i(now)],
        )?;
        Ok(())
    }

    /// A dynamically registered client.
    fn client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row("SELECT client_name, redirect_uris FROM clients WHERE client_id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        Ok(row.map(|(name, uris)| Client {
            id: id.to_owned(),
            name,
            redirect_uris: serde_json::from_str(&uris).unwrap_or_default(),
            source: Source::Dynamic,
        }))
    }

    /// Notes that a client started an authorization (used clients are never pruned).
    fn touch_client(&self, id: &str, now: u64) -> Result<(), StoreError> {
        self.conn.execute("UPDATE clients SET last_used = ?2 WHERE client_id = ?1", params![id, i(now)])?;
        Ok(())
    }

    /// How many dynamically registered clients are stored.
    fn client_count(&self) -> Result<u64, StoreError> {
        Ok(u(self.conn.query_row("SELECT COUNT(*) FROM clients", [], |r| r.get(0))?))
    }

    /// Deletes registered clients never used for an authorization and created before `before`.
    fn prune_clients(&self, before: u64) -> Result<usize, StoreError> {
        Ok(self.conn.execute("DELETE FROM clients WHERE last_used IS NULL AND created < ?1", [i(before)])?)
    }

    /// Stores an authorization code (hashed) valid until `expires`.
    fn insert_code(&self, code: &str, g: &CodeGrant, expires: u64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO codes(hash, client_id, client_name, redirect_uri, challenge, resource, scopes, expires)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                secret::sha256_hex(code),
                g.client_id,
                g.client_name,
                g.redirect_uri,
                g.challenge,
                g.resource,
                join(&g.scopes),
                i(expires)
            ],
        )?;
        Ok(())
    }

    /// Redeems an authorization code (AS-07). A code is single use: presenting it again revokes
    /// every token issued from it (RFC 6749 §4.1.2). A request that fails a check (client,
    /// redirect URI, PKCE verifier, resource) does not use the code up.
    fn exchange_code(&mut self, req: &CodeExchange, now: u64, life: &Lifetimes) -> Result<Issued, GrantError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        type Row = (String, String, String, String, String, String, i64, Option<i64>, Option<String>);
        let row: Option<Row> = tx
            .query_row(
                "SELECT client_id, client_name, redirect_uri, challenge, resource, scopes, expires, used, grant_id
                 FROM codes WHERE hash = ?1",
                [secret::sha256_hex(&req.code)],
                |r| Row::try_from(r),
            )
            .optional()?;
        let Some((client_id, client_name, redirect_uri, challenge, resource, scopes, expires, used, grant_id)) = row
        else {
            return Err(GrantError::InvalidGrant("unknown authorization code".into()));
        };
        if used.is_some() {
            if let Some(g) = &grant_id {
                revoke_family(&tx, g, now)?;
            }
            tx.commit()?;
            return Err(GrantError::InvalidGrant(
                "authorization code already used; the tokens issued for it are revoked".into(),
            ));
        }
        if now >= u(expires) {
            return Err(GrantError::InvalidGrant("authorization code expired".into()));
        }
        if req.client_id != client_id {
            return Err(GrantError::InvalidGrant("authorization code was issued to another client".into()));
        }
        match &req.redirect_uri {
            Some(r) if *r == redirect_uri => {}
            Some(_) => {
                return Err(GrantError::InvalidGrant("redirect_uri differs from the authorization request".into()));
            }
            None => return Err(GrantError::InvalidRequest("redirect_uri is required".into())),
        }
        match &req.verifier {
            Some(v) if secret::verify_pkce(v, &challenge) => {}
            Some(_) => return Err(GrantError::InvalidGrant("PKCE verification failed (code_verifier)".into())),
            // OAuth 2.1 §4.1.3: a code issued with a challenge and redeemed without a verifier
            // is an invalid grant.
            None => return Err(GrantError::InvalidGrant("code_verifier is required (PKCE)".into())),
        }
        if let Some(r) = &req.resource
            && !same_resource(r, &resource)
        {
            return Err(GrantError::InvalidTarget(format!("resource must be {resource}, as in the authorization")));
        }
        tx.execute("UPDATE codes SET used = ?2 WHERE hash = ?1", params![secret::sha256_hex(&req.code), i(now)])?;
        let grant = secret::random_id::<6>().map_err(GrantError::Internal)?;
        tx.execute(
            "INSERT INTO grants(id, client_id, client_name, scopes, resource, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![grant, client_id, client_name, scopes, resource, i(now)],
        )?;
        tx.execute("UPDATE codes SET grant_id = ?2 WHERE hash = ?1", params![secret::sha256_hex(&req.code), grant])?;
        let scopes = split(&scopes).map_err(|e| GrantError::Internal(e.to_string()))?;
        let issued = issue(&tx, &grant, &scopes, &scopes, now, life)?;
        tx.commit()?;
        Ok(issued)
    }

    /// Rotates a refresh token (AS-09): a new access and refresh token, the old refresh token
    /// dead. Presenting a refresh token that was already rotated revokes the whole family: one
    /// of the two presenters is not the client. There is no grace period for a retried request
    /// (a client that lost the response connects again).
    fn refresh(&mut self, req: &RefreshRequest, now: u64, life: &Lifetimes) -> Result<Issued, GrantError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let hash = secret::sha256_hex(&req.token);
        type Row = (String, String, String, i64, Option<i64>, Option<i64>, String, String, Option<i64>);
        let row: Option<Row> = tx
            .query_row(
                "SELECT t.kind, t.grant_id, t.scopes, t.expires, t.revoked, t.rotated, g.client_id, g.resource, g.revoked
                 FROM tokens t JOIN grants g ON g.id = t.grant_id WHERE t.hash = ?1",
                [&hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?)),
            )
            .optional()?;
        let Some((kind, grant, scopes, expires, revoked, rotated, client_id, resource, grant_revoked)) = row else {
            return Err(GrantError::InvalidGrant("unknown refresh token".into()));
        };
        if kind != "refresh" {
            return Err(GrantError::InvalidGrant("not a refresh token".into()));
        }
        if req.client_id != client_id {
            return Err(GrantError::InvalidGrant("refresh token was issued to another client".into()));
        }
        if revoked.is_some() || grant_revoked.is_some() {
            return Err(GrantError::InvalidGrant("refresh token revoked".into()));
        }
        if rotated.is_some() {
            revoke_family(&tx, &grant, now)?;
            tx.commit()?;
            return Err(GrantError::InvalidGrant(
                "refresh token already used; every token of this grant is now revoked".into(),
            ));
        }
        if now >= u(expires) {
            return Err(GrantError::InvalidGrant("refresh token expired".into()));
        }
        if !req.audience.is_empty() && !same_resource(&req.audience, &resource) {
            return Err(GrantError::InvalidGrant(format!(
                "this grant is for {resource}, not {}; authorize again",
                req.audience
            )));
        }
        if let Some(r) = &req.resource
            && !same_resource(r, &resource)
        {
            return Err(GrantError::InvalidTarget(format!("resource must be {resource}, as in the grant")));
        }
        let granted = split(&scopes).map_err(|e| GrantError::Internal(e.to_string()))?;
        let access_scopes = match &req.scopes {
            Some(asked) => {
                if let Some(extra) = asked.iter().find(|s| !granted.contains(s)) {
                    return Err(GrantError::InvalidScope(format!("scope '{extra}' was not granted")));
                }
                asked.clone()
            }
            None => granted.clone(),
        };
        tx.execute("UPDATE tokens SET rotated = ?2 WHERE hash = ?1", params![hash, i(now)])?;
        let issued = issue(&tx, &grant, &access_scopes, &granted, now, life)?;
        tx.commit()?;
        Ok(issued)
    }

    /// Revokes a token (RFC 7009): an access token alone, a refresh token with its family.
    /// Unknown tokens are ignored.
    fn revoke_token(&mut self, token: &str, now: u64) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let hash = secret::sha256_hex(token);
        let row: Option<(String, String)> = tx
            .query_row("SELECT kind, grant_id FROM tokens WHERE hash = ?1", [&hash], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match row {
            Some((kind, grant)) if kind == "refresh" => revoke_family(&tx, &grant, now)?,
            Some(_) => {
                tx.execute(
                    "UPDATE tokens SET revoked = ?2 WHERE hash = ?1 AND revoked IS NULL",
                    params![hash, i(now)],
                )?;
            }
            None => {}
        }
        tx.commit()?;
        Ok(())
    }

    /// Checks an access token presented to `/mcp` (RS-05): known, an access token, neither it
    /// nor its grant revoked, not expired, issued for `resource`.
    fn verify_access(&self, token: &str, resource: &str, now: u64) -> Result<Access, Refusal> {
        type Row =
            (String, Vec<Scope>, i64, Option<i64>, String, String, String, Option<i64>, Option<i64>, Vec<Elevation>);
        let row: Option<Row> = self
            .conn
            .prepare_cached(&format!(
                "SELECT t.kind, t.scopes, t.expires, t.revoked, g.id, g.client_name, g.resource, g.revoked, g.last_used,
                        {}
                 FROM tokens t JOIN grants g ON g.id = t.grant_id WHERE t.hash = ?1",
                elevations_of("'grant:' || g.id")
            ))
            .and_then(|mut st| {
                st.query_row(params![secret::sha256_hex(token), i(now)], |r| {
                    Ok((
                        r.get(0)?,
                        scopes_at(r, 1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        elevations_at(r, 9)?,
                    ))
                })
                .optional()
            })
            .map_err(|e| {
                tracing::error!("OAuth store unreadable, refusing the token: {e}");
                Refusal::Unknown
            })?;
        let Some((kind, mut scopes, expires, revoked, grant, client_name, aud, grant_revoked, last_used, elevations)) =
            row
        else {
            return Err(Refusal::Unknown);
        };
        if kind != "access" {
            return Err(Refusal::Unknown);
        }
        if revoked.is_some() || grant_revoked.is_some() {
            return Err(Refusal::Revoked);
        }
        if now >= u(expires) {
            return Err(Refusal::Expired);
        }
        if !same_resource(&aud, resource) {
            return Err(Refusal::WrongAudience);
        }
        // At most one write a minute per grant: a request is otherwise read-only.
        if last_used.is_none_or(|l| u(l) + 60 <= now) {
            let _ = self.conn.execute("UPDATE grants SET last_used = ?2 WHERE id = ?1", params![grant, i(now)]);
        }
        scopes.extend(elevations.into_iter().flat_map(|e| e.scopes));
        Ok(Access { grant_id: grant, client_name, scopes })
    }

    /// Every grant, newest first.
    fn grants(&self, now: u64) -> Result<Vec<GrantInfo>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT g.id, g.client_id, g.client_name, g.scopes, g.created, g.last_used, g.revoked,
                        EXISTS(SELECT 1 FROM tokens t WHERE t.grant_id = g.id AND t.revoked IS NULL
                               AND t.rotated IS NULL AND t.expires > ?1),
                        {}
                 FROM grants g ORDER BY g.created DESC, g.id",
            elevations_of("'grant:' || g.id")
        ))?;
        let rows = st.query_map([i(now), i(now)], |r| {
            let revoked: Option<i64> = r.get(6)?;
            let live: bool = r.get(7)?;
            Ok(GrantInfo {
                id: r.get(0)?,
                client_id: r.get(1)?,
                client_name: r.get(2)?,
                scopes: scopes_at(r, 3)?,
                elevations: elevations_at(r, 8)?,
                created: u(r.get(4)?),
                last_used: r.get::<_, Option<i64>>(5)?.map(u),
                state: if revoked.is_some() {
                    "revoked"
                } else if live {
                    "live"
                } else {
                    "expired"
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes the live grants with this id, principal name (`oauth:NAME/ID`) or client name,
    /// and all their tokens; returns how many grants.
    fn revoke_grants(&mut self, id_or_name: &str, now: u64) -> Result<usize, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids: Vec<String> = {
            let mut st = tx.prepare(
                "SELECT id FROM grants WHERE revoked IS NULL
                 AND (id = ?1 OR client_name = ?1 OR 'oauth:' || client_name || '/' || id = ?1)",
            )?;
            st.query_map([id_or_name], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        for g in &ids {
            revoke_family(&tx, g, now)?;
        }
        tx.commit()?;
        Ok(ids.len())
    }

    /// Forgets what can no longer be used: codes and tokens expired for a day, grants revoked
    /// for 30 days.
    fn prune(&self, now: u64) -> Result<(), StoreError> {
        let day = i(now).saturating_sub(24 * 3600);
        let month = i(now).saturating_sub(30 * 24 * 3600);
        self.conn.execute("DELETE FROM codes WHERE expires < ?1", [day])?;
        self.conn.execute("DELETE FROM tokens WHERE expires < ?1", [day])?;
        self.conn
            .execute("DELETE FROM tokens WHERE grant_id IN (SELECT id FROM grants WHERE revoked < ?1)", [month])?;
        self.conn.execute("DELETE FROM grants WHERE revoked < ?1", [month])?;
        Ok(())
    }

    fn create_token(
        &mut self,
        name: &str,
        scopes: &[Scope],
        expires_in: Option<Duration>,
        now: u64,
    ) -> Result<(TokenRecord, String), StoreError> {
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
            return Err(StoreError("a token name is 1 to 64 printable characters".into()));
        }
        if scopes.is_empty() {
            return Err(StoreError("a token needs at least one scope (for example --scopes '*:read')".into()));
        }
        // One immediate transaction: two processes creating the same name cannot both succeed.
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let live: i64 = tx.query_row(
            "SELECT COUNT(*) FROM bearer_tokens WHERE name = ?1 AND revoked IS NULL AND (expires IS NULL OR expires > ?2)",
            params![name, i(now)],
            |r| r.get(0),
        )?;
        if live > 0 {
            return Err(StoreError(format!(
                "a live token named '{name}' exists; revoke it first or pick another name"
            )));
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
        };
        insert_token(&tx, &record)?;
        tx.commit()?;
        Ok((record, secret))
    }

    fn import_tokens(&mut self, records: &[TokenRecord]) -> Result<usize, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut n = 0;
        for r in records {
            n += insert_token(&tx, r)?;
        }
        tx.commit()?;
        Ok(n)
    }

    fn tokens(&self, now: u64) -> Result<Vec<TokenRecord>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT t.id, t.name, t.hash, t.scopes, t.created, t.expires, t.revoked, {}
             FROM bearer_tokens t ORDER BY t.created, t.rowid",
            elevations_of("'token:' || t.id")
        ))?;
        let rows = st.query_map(params![i(now), i(now)], |r| {
            Ok(TokenRecord {
                id: r.get(0)?,
                name: r.get(1)?,
                sha256: r.get(2)?,
                scopes: scopes_at(r, 3)?,
                created: u(r.get(4)?),
                expires: r.get::<_, Option<i64>>(5)?.map(u),
                revoked: r.get::<_, Option<i64>>(6)?.map(u),
                elevations: elevations_at(r, 7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn revoke_tokens(&mut self, name_or_id: &str, now: u64) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "UPDATE bearer_tokens SET revoked = ?2 WHERE revoked IS NULL AND (name = ?1 OR id = ?1)",
            params![name_or_id, i(now)],
        )?)
    }

    fn authenticate_token(&self, secret: &str, now: u64) -> Result<Principal, Refusal> {
        type Row = (String, Vec<Scope>, Option<i64>, Option<i64>, Vec<Elevation>);
        // One lookup on the hash's unique index per request; nothing cached, so a revocation
        // written by another process is seen by the next request.
        let row: Option<Row> = self
            .conn
            .prepare_cached(&format!(
                "SELECT t.name, t.scopes, t.expires, t.revoked, {} FROM bearer_tokens t WHERE t.hash = ?1",
                elevations_of("'token:' || t.id")
            ))
            .and_then(|mut st| {
                st.query_row(params![secret::sha256_hex(secret), i(now)], |r| {
                    Ok((r.get(0)?, scopes_at(r, 1)?, r.get(2)?, r.get(3)?, elevations_at(r, 4)?))
                })
                .optional()
            })
            .map_err(|e| {
                // An unreadable store refuses everything rather than keeping stale grants.
                tracing::error!("token store unreadable, refusing the token: {e}");
                Refusal::Unknown
            })?;
        let (name, mut scopes, expires, revoked, elevations) = row.ok_or(Refusal::Unknown)?;
        if revoked.is_some() {
            return Err(Refusal::Revoked);
        }
        if expires.is_some_and(|e| now >= u(e)) {
            return Err(Refusal::Expired);
        }
        scopes.extend(elevations.into_iter().flat_map(|e| e.scopes));
        Ok(Principal { name, scopes })
    }

    fn elevate(&mut self, name_or_id: &str, scopes: &[Scope], until: u64, now: u64) -> Result<Vec<String>, StoreError> {
        if scopes.is_empty() {
            return Err(StoreError("an elevation needs at least one scope".into()));
        }
        if until <= now {
            return Err(StoreError("an elevation must last at least a second".into()));
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut subjects: Vec<(String, String)> = vec![];
        {
            let mut st = tx.prepare(
                "SELECT 'token:' || id, name FROM bearer_tokens
                 WHERE revoked IS NULL AND (expires IS NULL OR expires > ?2) AND (name = ?1 OR id = ?1)",
            )?;
            for row in st.query_map(params![name_or_id, i(now)], |r| Ok((r.get(0)?, r.get(1)?)))? {
                subjects.push(row?);
            }
            let mut st = tx.prepare(
                "SELECT 'grant:' || id, 'oauth:' || client_name || '/' || id FROM grants WHERE revoked IS NULL
                 AND (id = ?1 OR client_name = ?1 OR 'oauth:' || client_name || '/' || id = ?1)",
            )?;
            for row in st.query_map([name_or_id], |r| Ok((r.get(0)?, r.get(1)?)))? {
                subjects.push(row?);
            }
        }
        for (subject, _) in &subjects {
            tx.execute(
                "INSERT INTO elevations(subject, scopes, created, until) VALUES (?1, ?2, ?3, ?4)",
                params![subject, join(scopes), i(now), i(until)],
            )?;
        }
        tx.execute("DELETE FROM elevations WHERE until <= ?1", [i(now)])?;
        tx.commit()?;
        Ok(subjects.into_iter().map(|(_, name)| name).collect())
    }

    fn revoke_all(&mut self, now: u64) -> Result<RevokedAll, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let tokens = tx.execute("UPDATE bearer_tokens SET revoked = ?1 WHERE revoked IS NULL", [i(now)])?;
        let grants = tx.execute("UPDATE grants SET revoked = ?1 WHERE revoked IS NULL", [i(now)])?;
        tx.execute("UPDATE tokens SET revoked = ?1 WHERE revoked IS NULL", [i(now)])?;
        // A code approved but not yet exchanged would become a new grant after this.
        tx.execute("DELETE FROM codes WHERE used IS NULL", [])?;
        tx.commit()?;
        Ok(RevokedAll { tokens, grants })
    }
}

/// Inserts a token record unless its id is stored already; returns 1 if it was inserted.
fn insert_token(conn: &Connection, r: &TokenRecord) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "INSERT OR IGNORE INTO bearer_tokens(id, name, hash, scopes, created, expires, revoked)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![r.id, r.name, r.sha256, join(&r.scopes), i(r.created), r.expires.map(i), r.revoked.map(i)],
    )?)
}

fn revoke_family(conn: &Connection, grant: &str, now: u64) -> Result<(), rusqlite::Error> {
    conn.execute("UPDATE grants SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL", params![grant, i(now)])?;
    conn.execute("UPDATE tokens SET revoked = ?2 WHERE grant_id = ?1 AND revoked IS NULL", params![grant, i(now)])?;
    Ok(())
}

fn issue(
    conn: &Connection,
    grant: &str,
    access_scopes: &[Scope],
    refresh_scopes: &[Scope],
    now: u64,
    life: &Lifetimes,
) -> Result<Issued, GrantError> {
    let access = secret::random_secret(ACCESS_PREFIX).map_err(GrantError::Internal)?;
    let refresh = secret::random_secret(REFRESH_PREFIX).map_err(GrantError::Internal)?;
    let insert = "INSERT INTO tokens(hash, kind, grant_id, scopes, created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    conn.execute(
        insert,
        params![
            secret::sha256_hex(&access),
            "access",
            grant,
            join(access_scopes),
            i(now),
            i(now.saturating_add(life.access.as_secs()))
        ],
    )?;
    conn.execute(
        insert,
        params![
            secret::sha256_hex(&refresh),
            "refresh",
            grant,
            join(refresh_scopes),
            i(now),
            i(now.saturating_add(life.refresh.as_secs()))
        ],
    )?;
    Ok(Issued {
        access_token: access,
        refresh_token: refresh,
        scopes: access_scopes.to_vec(),
        expires_in: life.access.as_secs(),
        grant_id: grant.to_owned(),
    })
}

#[cfg(test)]
mod tests {
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
        assert_eq!(
            store.verify_access(&t.access_token, "https://other.example/mcp", 1001),
            Err(Refusal::WrongAudience)
        );
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
        assert_eq!(
            names(&store.authenticate_token(&secret, 1001).unwrap().scopes),
            ["fs:read", "fs:write", "git:write"]
        );
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
}
