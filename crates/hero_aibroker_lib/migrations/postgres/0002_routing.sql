-- Routing decisions and backend circuits (PostgreSQL dialect of the SQLite migration 0002).
ALTER TABLE request_logs ADD COLUMN trace TEXT;

CREATE TABLE IF NOT EXISTS circuit_state (
    model          TEXT NOT NULL,
    provider       TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    state          TEXT NOT NULL,
    failures       BIGINT NOT NULL DEFAULT 0,
    open_until_ms  BIGINT,
    updated_ms     BIGINT NOT NULL,
    PRIMARY KEY (model, provider, upstream_model)
);
