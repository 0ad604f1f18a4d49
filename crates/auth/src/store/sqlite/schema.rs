//! The SQLite store's schema: the first one and the additive steps after it.

/// The additive step for hub profiles (PostgreSQL's `0004_profiles.sql`): static tokens bound
/// to profiles. A token without rows here reaches every surface, as before the step.
pub(super) const PROFILES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS token_profiles(
    token_id TEXT NOT NULL,
    profile TEXT NOT NULL,
    PRIMARY KEY (token_id, profile)
);
";

/// The first schema, with every table the store had before the additive steps.
pub(super) const SCHEMA: &str = "
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
CREATE TABLE IF NOT EXISTS login_links(
    hash TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    used INTEGER
);
";
