-- Routing decisions and backend circuits (issue 4).

-- The routing trace of each request (JSON: candidates considered, rank, why skipped).
ALTER TABLE request_logs ADD COLUMN trace TEXT;

-- Circuit breaker state per backend (model + provider + upstream model id), written by the
-- background health task, restored at start-up.
CREATE TABLE IF NOT EXISTS circuit_state (
    model          TEXT NOT NULL,
    provider       TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    -- closed | open | half_open
    state          TEXT NOT NULL,
    failures       INTEGER NOT NULL DEFAULT 0,
    -- Unix ms when an open circuit lets its probe through.
    open_until_ms  INTEGER,
    updated_ms     INTEGER NOT NULL,
    PRIMARY KEY (model, provider, upstream_model)
);
