-- The auth store's first schema: the SQLite store's tables, with a sequence where SQLite's
-- rowid kept insertion order.
CREATE TABLE owner(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    salt TEXT NOT NULL,
    hash TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE TABLE clients(
    client_id TEXT PRIMARY KEY,
    client_name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    created BIGINT NOT NULL,
    last_used BIGINT
);
CREATE TABLE codes(
    hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    client_name TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    challenge TEXT NOT NULL,
    resource TEXT NOT NULL,
    scopes TEXT NOT NULL,
    expires BIGINT NOT NULL,
    used BIGINT,
    grant_id TEXT
);
CREATE TABLE grants(
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    client_name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    resource TEXT NOT NULL,
    created BIGINT NOT NULL,
    last_used BIGINT,
    revoked BIGINT
);
CREATE TABLE tokens(
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    grant_id TEXT NOT NULL REFERENCES grants(id),
    scopes TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    revoked BIGINT,
    rotated BIGINT
);
CREATE INDEX tokens_by_grant ON tokens(grant_id);
CREATE TABLE bearer_tokens(
    seq BIGSERIAL,
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT,
    revoked BIGINT
);
CREATE TABLE elevations(
    seq BIGSERIAL PRIMARY KEY,
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created BIGINT NOT NULL,
    until BIGINT NOT NULL
);
CREATE INDEX elevations_by_subject ON elevations(subject, until);
