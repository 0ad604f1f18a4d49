-- Machine clients (OAuth client credentials, `bastion client create --machine`): the secret is
-- kept as SHA-256 only; each client has one grant (in `grants`) that its access tokens belong to.
CREATE TABLE machine_clients(
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    created BIGINT NOT NULL,
    revoked BIGINT,
    seq BIGSERIAL
);
CREATE INDEX machine_clients_by_name ON machine_clients(name);
