-- What several hub processes must agree on beside authentication: the server-wide switches,
-- the approvals queue with its decisions, and the dynamic registration counters. Additive.
CREATE TABLE switches(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    paused BOOLEAN NOT NULL,
    observe BOOLEAN NOT NULL,
    changed BIGINT NOT NULL
);
CREATE TABLE approvals(
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    tool TEXT NOT NULL,
    args_hash TEXT NOT NULL,
    fingerprint TEXT,
    hold BOOLEAN NOT NULL,
    view TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    decision TEXT,
    reason TEXT,
    channel TEXT,
    decided_ms BIGINT
);
CREATE INDEX approvals_by_call ON approvals(principal, tool, args_hash);
CREATE TABLE registrations(
    key TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);
