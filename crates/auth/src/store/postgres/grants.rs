//! The OAuth grant flow's transactions: a code exchanged once and a refresh token rotated once
//! whichever replica receives it (rows read `FOR UPDATE`), and the token pair they issue.

use super::*;

pub(super) fn exchange_code(c: &mut Pg, req: &CodeExchange, now: u64, life: &Lifetimes) -> Result<Issued, GrantError> {
    let hash = secret::sha256_hex(&req.code);
    let mut tx = c.transaction()?;
    let row = tx.query_opt(
        "SELECT client_id, client_name, redirect_uri, challenge, resource, scopes, expires, used, grant_id
         FROM codes WHERE hash = $1 FOR UPDATE",
        &[&hash],
    )?;
    let Some(r) = row else {
        return Err(GrantError::InvalidGrant("unknown authorization code".into()));
    };
    let (client_id, client_name, redirect_uri, challenge, resource, scopes): (
        String,
        String,
        String,
        String,
        String,
        String,
    ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
    let (expires, used, grant_id): (i64, Option<i64>, Option<String>) = (r.get(6), r.get(7), r.get(8));
    if used.is_some() {
        if let Some(g) = &grant_id {
            revoke_family(&mut tx, g, now)?;
        }
        tx.commit()?;
        return Err(GrantError::InvalidGrant(
            "authorization code already used; the tokens issued for it are revoked".into(),
        ));
    }
    // Every refusal below returns without committing: the transaction rolls back and the
    // code stays redeemable by the right request.
    if now >= u(expires) {
        return Err(GrantError::InvalidGrant("authorization code expired".into()));
    }
    if req.client_id != client_id {
        return Err(GrantError::InvalidGrant("authorization code was issued to another client".into()));
    }
    match &req.redirect_uri {
        Some(r) if *r == redirect_uri => {}
        Some(_) => return Err(GrantError::InvalidGrant("redirect_uri differs from the authorization request".into())),
        None => return Err(GrantError::InvalidRequest("redirect_uri is required".into())),
    }
    match &req.verifier {
        Some(v) if secret::verify_pkce(v, &challenge) => {}
        Some(_) => return Err(GrantError::InvalidGrant("PKCE verification failed (code_verifier)".into())),
        None => return Err(GrantError::InvalidGrant("code_verifier is required (PKCE)".into())),
    }
    if let Some(r) = &req.resource
        && !same_resource(r, &resource)
    {
        return Err(GrantError::InvalidTarget(format!("resource must be {resource}, as in the authorization")));
    }
    let grant = secret::random_id::<6>().map_err(GrantError::Internal)?;
    tx.execute(
        "INSERT INTO grants(id, client_id, client_name, scopes, resource, created) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&grant, &client_id, &client_name, &scopes, &resource, &i(now)],
    )?;
    tx.execute("UPDATE codes SET used = $2, grant_id = $3 WHERE hash = $1", &[&hash, &i(now), &grant])?;
    let scopes = split(&scopes)?;
    let issued = issue(&mut tx, &grant, &scopes, &scopes, now, life)?;
    tx.commit()?;
    Ok(issued)
}

pub(super) fn refresh(c: &mut Pg, req: &RefreshRequest, now: u64, life: &Lifetimes) -> Result<Issued, GrantError> {
    let hash = secret::sha256_hex(&req.token);
    let mut tx = c.transaction()?;
    lock_grant_of(&mut tx, &hash)?;
    let row = tx.query_opt(
        "SELECT t.kind, t.grant_id, t.scopes, t.expires, t.revoked, t.rotated, g.client_id, g.resource, g.revoked
         FROM tokens t JOIN grants g ON g.id = t.grant_id WHERE t.hash = $1 FOR UPDATE OF t",
        &[&hash],
    )?;
    let Some(r) = row else {
        return Err(GrantError::InvalidGrant("unknown refresh token".into()));
    };
    let (kind, grant, scopes): (String, String, String) = (r.get(0), r.get(1), r.get(2));
    let (expires, revoked, rotated): (i64, Option<i64>, Option<i64>) = (r.get(3), r.get(4), r.get(5));
    let (client_id, resource, grant_revoked): (String, String, Option<i64>) = (r.get(6), r.get(7), r.get(8));
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
        revoke_family(&mut tx, &grant, now)?;
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
    let granted = split(&scopes)?;
    let access_scopes = match &req.scopes {
        Some(asked) => {
            if let Some(extra) = asked.iter().find(|s| !granted.contains(s)) {
                return Err(GrantError::InvalidScope(format!("scope '{extra}' was not granted")));
            }
            asked.clone()
        }
        None => granted.clone(),
    };
    tx.execute("UPDATE tokens SET rotated = $2 WHERE hash = $1", &[&hash, &i(now)])?;
    let issued = issue(&mut tx, &grant, &access_scopes, &granted, now, life)?;
    tx.commit()?;
    Ok(issued)
}

pub(super) fn issue(
    c: &mut impl GenericClient,
    grant: &str,
    access_scopes: &[Scope],
    refresh_scopes: &[Scope],
    now: u64,
    life: &Lifetimes,
) -> Result<Issued, GrantError> {
    let access = secret::random_secret(ACCESS_PREFIX).map_err(GrantError::Internal)?;
    let refresh = secret::random_secret(REFRESH_PREFIX).map_err(GrantError::Internal)?;
    let insert = "INSERT INTO tokens(hash, kind, grant_id, scopes, created, expires) VALUES ($1, $2, $3, $4, $5, $6)";
    c.execute(
        insert,
        &[
            &secret::sha256_hex(&access),
            &"access",
            &grant,
            &join(access_scopes),
            &i(now),
            &i(now.saturating_add(life.access.as_secs())),
        ],
    )?;
    c.execute(
        insert,
        &[
            &secret::sha256_hex(&refresh),
            &"refresh",
            &grant,
            &join(refresh_scopes),
            &i(now),
            &i(now.saturating_add(life.refresh.as_secs())),
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

/// Locks the grant of a token before the token itself: every transaction that locks both
/// (rotation, revocation by token or by grant, revoke-all) takes the grant first, so two of
/// them never wait on each other in a cycle. A token's grant never changes, so it is read
/// without a lock.
pub(super) fn lock_grant_of(c: &mut impl GenericClient, token_hash: &str) -> Result<(), pg::Error> {
    c.execute(
        "SELECT 1 FROM grants WHERE id = (SELECT grant_id FROM tokens WHERE hash = $1) FOR UPDATE",
        &[&token_hash],
    )?;
    Ok(())
}

pub(super) fn revoke_family(c: &mut impl GenericClient, grant: &str, now: u64) -> Result<(), pg::Error> {
    c.execute("UPDATE grants SET revoked = $2 WHERE id = $1 AND revoked IS NULL", &[&grant, &i(now)])?;
    c.execute("UPDATE tokens SET revoked = $2 WHERE grant_id = $1 AND revoked IS NULL", &[&grant, &i(now)])?;
    notify(c, &Change::Grant(grant.to_owned()))
}
