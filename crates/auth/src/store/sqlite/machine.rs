//! Machine clients in the SQLite store (the client credentials grant): the `machine_clients`
//! table, an additive step after the first schema, and the store methods on it.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{i, join, split, u};
use crate::secret;
use crate::store::*;

/// The additive schema step of machine clients (after [`super::SCHEMA`]).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS machine_clients(
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    created INTEGER NOT NULL,
    revoked INTEGER
);
";

pub(super) fn create(
    conn: &mut Connection,
    name: &str,
    scopes: &[Scope],
    now: u64,
) -> Result<(MachineClient, String), StoreError> {
    check_machine_client(name, scopes)?;
    // One immediate transaction: two processes creating the same name cannot both succeed.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let live: i64 = tx.query_row(
        "SELECT COUNT(*) FROM machine_clients m JOIN grants g ON g.id = m.grant_id
         WHERE m.name = ?1 AND m.revoked IS NULL AND g.revoked IS NULL",
        [name],
        |r| r.get(0),
    )?;
    if live > 0 {
        return Err(StoreError(format!("a live machine client named '{name}' exists; revoke it first")));
    }
    let client_id = format!("{MACHINE_CLIENT_PREFIX}{}", secret::random_id::<12>().map_err(StoreError)?);
    let secret = secret::random_secret(MACHINE_SECRET_PREFIX).map_err(StoreError)?;
    let grant_id = secret::random_id::<6>().map_err(StoreError)?;
    // The grant's resource is filled in by the first token request (the audience the hub asks
    // for): the CLI that creates the client need not know the hub's public URL.
    tx.execute(
        "INSERT INTO grants(id, client_id, client_name, scopes, resource, created) VALUES (?1, ?2, ?3, ?4, '', ?5)",
        params![grant_id, client_id, name, join(scopes), i(now)],
    )?;
    tx.execute(
        "INSERT INTO machine_clients(client_id, name, secret_hash, scopes, grant_id, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![client_id, name, secret::sha256_hex(&secret), join(scopes), grant_id, i(now)],
    )?;
    tx.commit()?;
    let c = MachineClient {
        client_id,
        name: name.to_owned(),
        scopes: scopes.to_vec(),
        grant_id,
        created: now,
        last_used: None,
        revoked: None,
    };
    Ok((c, secret))
}

pub(super) fn list(conn: &Connection) -> Result<Vec<MachineClient>, StoreError> {
    let mut st = conn.prepare(
        "SELECT m.client_id, m.name, m.scopes, m.grant_id, m.created, g.last_used, COALESCE(m.revoked, g.revoked)
         FROM machine_clients m LEFT JOIN grants g ON g.id = m.grant_id ORDER BY m.created, m.rowid",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, Option<i64>>(5)?,
            r.get::<_, Option<i64>>(6)?,
        ))
    })?;
    let mut out = vec![];
    for row in rows {
        let (client_id, name, scopes, grant_id, created, last_used, revoked) = row?;
        out.push(MachineClient {
            client_id,
            name,
            scopes: split(&scopes)?,
            grant_id,
            created: u(created),
            last_used: last_used.map(u),
            revoked: revoked.map(u),
        });
    }
    Ok(out)
}

pub(super) fn revoke(conn: &mut Connection, id_or_name: &str, now: u64) -> Result<usize, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let grants: Vec<String> = {
        let mut st =
            tx.prepare("SELECT grant_id FROM machine_clients WHERE revoked IS NULL AND (client_id = ?1 OR name = ?1)")?;
        st.query_map([id_or_name], |r| r.get(0))?.collect::<Result<_, _>>()?
    };
    for g in &grants {
        tx.execute("UPDATE machine_clients SET revoked = ?2 WHERE grant_id = ?1", params![g, i(now)])?;
        super::revoke_family(&tx, g, now)?;
    }
    tx.commit()?;
    Ok(grants.len())
}

pub(super) fn issue(
    conn: &mut Connection,
    req: &ClientCredentials,
    now: u64,
    life: &Lifetimes,
) -> Result<Issued, GrantError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    type Row = (String, String, String, Option<i64>, Option<i64>);
    let row: Option<Row> = tx
        .query_row(
            "SELECT m.secret_hash, m.scopes, m.grant_id, m.revoked, g.revoked
             FROM machine_clients m JOIN grants g ON g.id = m.grant_id WHERE m.client_id = ?1",
            [&req.client_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((hash, scopes, grant, revoked, grant_revoked)) = row else {
        return Err(GrantError::InvalidClient("unknown client".into()));
    };
    // The hash is compared even for a revoked client, so the answer's time does not say which.
    let right = secret::ct_eq(secret::sha256_hex(&req.secret).as_bytes(), hash.as_bytes());
    if !right {
        return Err(GrantError::InvalidClient("client authentication failed".into()));
    }
    if revoked.is_some() || grant_revoked.is_some() {
        return Err(GrantError::InvalidClient("this client is revoked".into()));
    }
    let granted = split(&scopes).map_err(|e| GrantError::Internal(e.to_string()))?;
    let token_scopes = machine_token_scopes(&granted, req.scopes.as_deref())?;
    let expires_in = machine_access_life(life);
    let access = secret::random_secret(ACCESS_PREFIX).map_err(GrantError::Internal)?;
    tx.execute(
        "INSERT INTO tokens(hash, kind, grant_id, scopes, created, expires) VALUES (?1, 'access', ?2, ?3, ?4, ?5)",
        params![secret::sha256_hex(&access), grant, join(&token_scopes), i(now), i(now.saturating_add(expires_in))],
    )?;
    tx.execute("UPDATE grants SET resource = ?2 WHERE id = ?1 AND resource <> ?2", params![grant, req.resource])?;
    tx.commit()?;
    Ok(Issued { access_token: access, refresh_token: String::new(), scopes: token_scopes, expires_in, grant_id: grant })
}
