//! Machine clients in the PostgreSQL store (the client credentials grant), with the SQLite
//! store's rules: live names unique under a transaction advisory lock, the client's row locked
//! while a token is issued so a revocation on another replica is never outrun.

use pg::Client as Pg;

use super::{MIGRATION_LOCK, i, join, split, u};
use crate::secret;
use crate::store::*;
use ::postgres as pg;

/// The transaction advisory lock that makes live machine client names unique.
const MACHINE_NAME_LOCK: i64 = MIGRATION_LOCK + 2;

pub(super) fn create(
    c: &mut Pg,
    name: &str,
    scopes: &[Scope],
    now: u64,
) -> Result<(MachineClient, String), StoreError> {
    check_machine_client(name, scopes)?;
    let client_id = format!("{MACHINE_CLIENT_PREFIX}{}", secret::random_id::<12>().map_err(StoreError)?);
    let secret = secret::random_secret(MACHINE_SECRET_PREFIX).map_err(StoreError)?;
    let grant_id = secret::random_id::<6>().map_err(StoreError)?;
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MACHINE_NAME_LOCK])?;
    let live: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM machine_clients m JOIN grants g ON g.id = m.grant_id
             WHERE m.name = $1 AND m.revoked IS NULL AND g.revoked IS NULL",
            &[&name],
        )?
        .get(0);
    if live > 0 {
        return Err(StoreError(format!("a live machine client named '{name}' exists; revoke it first")));
    }
    // The grant's resource is filled in by the first token request (see the SQLite store).
    tx.execute(
        "INSERT INTO grants(id, client_id, client_name, scopes, resource, created) VALUES ($1, $2, $3, $4, '', $5)",
        &[&grant_id, &client_id, &name, &join(scopes), &i(now)],
    )?;
    tx.execute(
        "INSERT INTO machine_clients(client_id, name, secret_hash, scopes, grant_id, created)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&client_id, &name, &secret::sha256_hex(&secret), &join(scopes), &grant_id, &i(now)],
    )?;
    tx.commit()?;
    let mc = MachineClient {
        client_id,
        name: name.to_owned(),
        scopes: scopes.to_vec(),
        grant_id,
        created: now,
        last_used: None,
        revoked: None,
    };
    Ok((mc, secret))
}

pub(super) fn list(rows: &[pg::Row]) -> Result<Vec<MachineClient>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok(MachineClient {
                client_id: r.get(0),
                name: r.get(1),
                scopes: split(r.get::<_, &str>(2))?,
                grant_id: r.get(3),
                created: u(r.get(4)),
                last_used: r.get::<_, Option<i64>>(5).map(u),
                revoked: r.get::<_, Option<i64>>(6).map(u),
            })
        })
        .collect()
}

/// The query [`list`] parses.
pub(super) const LIST: &str = "SELECT m.client_id, m.name, m.scopes, m.grant_id, m.created, g.last_used,
        COALESCE(m.revoked, g.revoked)
     FROM machine_clients m LEFT JOIN grants g ON g.id = m.grant_id ORDER BY m.created, m.seq";

pub(super) fn revoke(c: &mut Pg, id_or_name: &str, now: u64) -> Result<usize, StoreError> {
    let mut tx = c.transaction()?;
    let grants: Vec<String> = tx
        .query(
            "SELECT grant_id FROM machine_clients WHERE revoked IS NULL AND (client_id = $1 OR name = $1) FOR UPDATE",
            &[&id_or_name],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for g in &grants {
        tx.execute("UPDATE machine_clients SET revoked = $2 WHERE grant_id = $1", &[g, &i(now)])?;
        super::revoke_family(&mut tx, g, now)?;
    }
    tx.commit()?;
    Ok(grants.len())
}

pub(super) fn issue(c: &mut Pg, req: &ClientCredentials, now: u64, life: &Lifetimes) -> Result<Issued, GrantError> {
    let mut tx = c.transaction()?;
    let row = tx.query_opt(
        "SELECT m.secret_hash, m.scopes, m.grant_id, m.revoked, g.revoked
         FROM machine_clients m JOIN grants g ON g.id = m.grant_id WHERE m.client_id = $1 FOR UPDATE OF m, g",
        &[&req.client_id],
    )?;
    let Some(r) = row else {
        return Err(GrantError::InvalidClient("unknown client".into()));
    };
    let (hash, scopes, grant): (String, String, String) = (r.get(0), r.get(1), r.get(2));
    let (revoked, grant_revoked): (Option<i64>, Option<i64>) = (r.get(3), r.get(4));
    // The hash is compared even for a revoked client, so the answer's time does not say which.
    if !secret::ct_eq(secret::sha256_hex(&req.secret).as_bytes(), hash.as_bytes()) {
        return Err(GrantError::InvalidClient("client authentication failed".into()));
    }
    if revoked.is_some() || grant_revoked.is_some() {
        return Err(GrantError::InvalidClient("this client is revoked".into()));
    }
    let granted = split(&scopes)?;
    let token_scopes = machine_token_scopes(&granted, req.scopes.as_deref())?;
    let expires_in = machine_access_life(life);
    let access = secret::random_secret(ACCESS_PREFIX).map_err(GrantError::Internal)?;
    tx.execute(
        "INSERT INTO tokens(hash, kind, grant_id, scopes, created, expires) VALUES ($1, 'access', $2, $3, $4, $5)",
        &[&secret::sha256_hex(&access), &grant, &join(&token_scopes), &i(now), &i(now.saturating_add(expires_in))],
    )?;
    tx.execute("UPDATE grants SET resource = $2 WHERE id = $1 AND resource <> $2", &[&grant, &req.resource])?;
    tx.commit()?;
    Ok(Issued { access_token: access, refresh_token: String::new(), scopes: token_scopes, expires_in, grant_id: grant })
}
