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

use super::shared::{APPROVAL_COLUMNS, decision_of, decision_word, view_of};
use super::*;
use crate::client::Source;
use crate::scope::{self, ScopeError};
use crate::{secret, state};
use schema::{PROFILES_SCHEMA, SCHEMA};

/// The file name in the state directory.
pub const FILE: &str = "auth.sqlite3";
/// The OAuth store's earlier name, renamed to `auth.sqlite3` on first open.
pub const LEGACY_FILE: &str = "oauth.sqlite3";
/// The static tokens' earlier file, imported on first open and renamed `tokens.json.migrated`.
pub const LEGACY_TOKENS_FILE: &str = "tokens.json";

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
        // The shared-state step, after the first schema (additive, as every later step).
        conn.execute_batch(super::shared::SQLITE_SCHEMA)?;
        conn.execute_batch(machine::SCHEMA)?;
        conn.execute_batch(PROFILES_SCHEMA)?;
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

    fn switches(&self) -> Result<Switches, StoreError> {
        let row = self
            .conn
            .query_row("SELECT paused, observe FROM switches WHERE id = 1", [], |r| {
                Ok(Switches { paused: r.get(0)?, observe: r.get(1)? })
            })
            .optional()?;
        Ok(row.unwrap_or_default())
    }

    fn set_switch(&self, switch: Switch, now: u64) -> Result<Switches, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let before = tx
            .query_row("SELECT paused, observe FROM switches WHERE id = 1", [], |r| {
                Ok(Switches { paused: r.get(0)?, observe: r.get(1)? })
            })
            .optional()?
            .unwrap_or_default();
        let mut after = before;
        match switch {
            Switch::Paused(p) => after.paused = p,
            Switch::Observe(o) => after.observe = o,
        }
        tx.execute(
            "INSERT OR REPLACE INTO switches(id, paused, observe, changed) VALUES (1, ?1, ?2, ?3)",
            params![after.paused, after.observe, i(now)],
        )?;
        tx.commit()?;
        Ok(before)
    }

    fn insert_approval(&self, r: &ApprovalRecord) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "DELETE FROM approvals WHERE max(expires_ms, COALESCE(decided_ms, 0) + timeout_ms) < ?1",
            params![i(r.created_ms) - 3_600_000],
        )?;
        tx.execute(
            "INSERT INTO approvals(id, principal, tool, args_hash, fingerprint, hold, view, created_ms, expires_ms,
             timeout_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                r.id,
                r.principal,
                r.tool,
                r.args_hash,
                r.fingerprint,
                r.hold,
                r.view.to_string(),
                i(r.created_ms),
                i(r.expires_ms),
                i(r.timeout_ms)
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn pending_approvals(&self, now_ms: u64) -> Result<Vec<ApprovalRecord>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE decision IS NULL AND expires_ms > ?1 ORDER BY created_ms, id"
        ))?;
        let rows = st.query_map(params![i(now_ms)], approval_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(&format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1"), params![id], approval_row)
            .optional()?)
    }

    fn decide_approval(
        &self,
        id: &str,
        d: &ApprovalDecision,
        now_ms: u64,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "UPDATE approvals SET decision = ?2, reason = ?3, channel = ?4, decided_ms = ?5
                     WHERE id = ?1 AND decision IS NULL AND expires_ms > ?5 RETURNING {APPROVAL_COLUMNS}"
                ),
                params![id, decision_word(d), d.reason, d.channel, i(now_ms)],
                approval_row,
            )
            .optional()?)
    }

    fn remove_approval(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.conn.execute("DELETE FROM approvals WHERE id = ?1", params![id])? > 0)
    }

    fn take_approval(
        &self,
        principal: &str,
        tool: &str,
        args_hash: &str,
        now_ms: u64,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "DELETE FROM approvals WHERE id = (SELECT id FROM approvals WHERE principal = ?1 AND tool = ?2
                     AND args_hash = ?3 AND NOT hold AND decision = 'approved' AND decided_ms + timeout_ms > ?4
                     ORDER BY decided_ms LIMIT 1) RETURNING {APPROVAL_COLUMNS}"
                ),
                params![principal, tool, args_hash, i(now_ms)],
                approval_row,
            )
            .optional()?)
    }

    fn count_registration(&self, key: &str, window_start: u64, limit: u64) -> Result<bool, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM registrations WHERE key = ?1 AND window_start < ?2", params![key, i(window_start)])?;
        let n: i64 = tx.query_row(
            "INSERT INTO registrations(key, window_start, count) VALUES (?1, ?2, 1)
             ON CONFLICT (key, window_start) DO UPDATE SET count = count + 1 RETURNING count",
            params![key, i(window_start)],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(u(n) <= limit)
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
        if !req.audience.is_empty() && !super::within_resource(&resource, &req.audience) {
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
        if !super::within_resource(&aud, resource) {
            return Err(Refusal::WrongAudience);
        }
        let profile = super::profile_of_resource(&aud, resource).map(str::to_owned);
        // At most one write a minute per grant: a request is otherwise read-only.
        if last_used.is_none_or(|l| u(l) + 60 <= now) {
            let _ = self.conn.execute("UPDATE grants SET last_used = ?2 WHERE id = ?1", params![grant, i(now)]);
        }
        scopes.extend(elevations.into_iter().flat_map(|e| e.scopes));
        Ok(Access { grant_id: grant, client_name, scopes, profile })
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
            profiles: {
                let mut p = profiles.to_vec();
                p.sort();
                p.dedup();
                p
            },
        };
        insert_token(&tx, &record)?;
        for p in profiles {
            tx.execute(
                "INSERT OR IGNORE INTO token_profiles(token_id, profile) VALUES (?1, ?2)",
                params![record.id, p],
            )?;
        }
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
            "SELECT t.id, t.name, t.hash, t.scopes, t.created, t.expires, t.revoked, {},
                    (SELECT group_concat(profile, ',') FROM (SELECT p.profile FROM token_profiles p WHERE p.token_id = t.id ORDER BY p.profile))
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
                profiles: super::profile_list(r.get(8)?),
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
        type Row = (String, Vec<Scope>, Option<i64>, Option<i64>, Vec<Elevation>, Vec<String>);
        // One lookup on the hash's unique index per request; nothing cached, so a revocation
        // written by another process is seen by the next request.
        let row: Option<Row> = self
            .conn
            .prepare_cached(&format!(
                "SELECT t.name, t.scopes, t.expires, t.revoked, {},
                        (SELECT group_concat(profile, ',') FROM
                            (SELECT p.profile FROM token_profiles p WHERE p.token_id = t.id ORDER BY p.profile))
                 FROM bearer_tokens t WHERE t.hash = ?1",
                elevations_of("'token:' || t.id")
            ))
            .and_then(|mut st| {
                st.query_row(params![secret::sha256_hex(secret), i(now)], |r| {
                    let profiles: Option<String> = r.get(5)?;
                    Ok((
                        r.get(0)?,
                        scopes_at(r, 1)?,
                        r.get(2)?,
                        r.get(3)?,
                        elevations_at(r, 4)?,
                        super::profile_list(profiles),
                    ))
                })
                .optional()
            })
            .map_err(|e| {
                // An unreadable store refuses everything rather than keeping stale grants.
                tracing::error!("token store unreadable, refusing the token: {e}");
                Refusal::Unknown
            })?;
        let (name, scopes, expires, revoked, elevations, profiles) = row.ok_or(Refusal::Unknown)?;
        super::judge_token(name, scopes, expires.map(u), revoked.is_some(), elevations, now)
            .map(|p| Principal { profiles, ..p })
    }

    fn elevate(&mut self, name_or_id: &str, scopes: &[Scope], until: u64, now: u64) -> Result<Vec<String>, StoreError> {
        super::check_elevation(scopes, until, now)?;
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

    fn create_machine_client(
        &mut self,
        name: &str,
        scopes: &[Scope],
        now: u64,
    ) -> Result<(MachineClient, String), StoreError> {
        machine::create(&mut self.conn, name, scopes, now)
    }

    fn machine_clients(&self) -> Result<Vec<MachineClient>, StoreError> {
        machine::list(&self.conn)
    }

    fn revoke_machine_clients(&mut self, id_or_name: &str, now: u64) -> Result<usize, StoreError> {
        machine::revoke(&mut self.conn, id_or_name, now)
    }

    fn client_credentials(
        &mut self,
        req: &ClientCredentials,
        now: u64,
        life: &Lifetimes,
    ) -> Result<Issued, GrantError> {
        machine::issue(&mut self.conn, req, now, life)
    }

    fn create_login_link(&self, expires: u64, now: u64) -> Result<String, StoreError> {
        let secret = secret::random_secret(LOGIN_LINK_PREFIX).map_err(StoreError)?;
        self.conn.execute("DELETE FROM login_links WHERE expires <= ?1", [i(now)])?;
        self.conn.execute(
            "INSERT INTO login_links(hash, created, expires) VALUES (?1, ?2, ?3)",
            params![secret::sha256_hex(&secret), i(now), i(expires)],
        )?;
        Ok(secret)
    }

    fn redeem_login_link(&self, given: &str, now: u64) -> Result<bool, StoreError> {
        // One statement: two browsers racing with the same link cannot both be signed in.
        let n = self.conn.execute(
            "UPDATE login_links SET used = ?2 WHERE hash = ?1 AND used IS NULL AND expires > ?2",
            params![secret::sha256_hex(given.trim()), i(now)],
        )?;
        Ok(n == 1)
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

/// An approval row of [`APPROVAL_COLUMNS`].
fn approval_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApprovalRecord> {
    Ok(ApprovalRecord {
        id: r.get(0)?,
        principal: r.get(1)?,
        tool: r.get(2)?,
        args_hash: r.get(3)?,
        fingerprint: r.get(4)?,
        hold: r.get(5)?,
        view: view_of(&r.get::<_, String>(6)?),
        created_ms: u(r.get(7)?),
        expires_ms: u(r.get(8)?),
        timeout_ms: u(r.get(9)?),
        decision: decision_of(r.get(10)?, r.get(11)?, r.get(12)?),
        decided_ms: r.get::<_, Option<i64>>(13)?.map(u),
    })
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

mod machine;
mod schema;
#[cfg(test)]
mod tests;
