-- hero_aibroker schema, version 1.
--
-- Kept portable to PostgreSQL: TEXT, BIGINT, DOUBLE PRECISION and BOOLEAN only (SQLite maps
-- them to its INTEGER/REAL affinities), no AUTOINCREMENT, no SQLite-only functions. Times are
-- Unix milliseconds, money is USD, lists are JSON text.

-- The usage ledger: one row per request, written in batches by the ledger writer.
CREATE TABLE request_logs (
    -- The broker's request id: a retried batch hits ON CONFLICT(id) DO NOTHING, never twice.
    id                TEXT PRIMARY KEY NOT NULL,
    response_id       TEXT,
    started_ms        BIGINT NOT NULL,
    ended_ms          BIGINT NOT NULL,
    client            TEXT NOT NULL,
    key_id            TEXT,
    endpoint          TEXT NOT NULL,
    requested_model   TEXT NOT NULL,
    model             TEXT,
    provider          TEXT,
    upstream_model    TEXT,
    stream            BOOLEAN NOT NULL,
    -- JSON array of {candidate, outcome}.
    attempts          TEXT NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens     BIGINT NOT NULL,
    reasoning_tokens  BIGINT NOT NULL,
    cost_usd          DOUBLE PRECISION NOT NULL,
    upstream_cost_usd DOUBLE PRECISION,
    latency_ms        DOUBLE PRECISION NOT NULL,
    ttfb_ms           DOUBLE PRECISION,
    status            TEXT NOT NULL,
    http_status       INTEGER NOT NULL,
    error             TEXT
);
-- The log pages and usage windows scan by time; the others back the filters.
CREATE INDEX request_logs_started ON request_logs (started_ms);
CREATE INDEX request_logs_response ON request_logs (response_id);
CREATE INDEX request_logs_key ON request_logs (key_id);
-- Every index costs each insert a b-tree update, and the ledger inserts at request rate. Admin
-- queries filtered by client or model scan a time range via request_logs_started instead.

-- Broker API keys. The secret is never stored: only its SHA-256 (hex) and a hint.
CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    hash           TEXT NOT NULL UNIQUE,
    hint           TEXT NOT NULL,
    -- JSON array of model names; NULL allows every model.
    allowed_models TEXT,
    rpm            BIGINT,
    tpm            BIGINT,
    budget_usd     DOUBLE PRECISION,
    -- Only ever added to by the ledger, in the transaction that inserts the request rows.
    spent_usd      DOUBLE PRECISION NOT NULL DEFAULT 0,
    revoked        BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms     BIGINT NOT NULL
);

-- Runtime priority overrides (priority.set); absent means the YAML priorities apply.
CREATE TABLE provider_priority (
    provider TEXT PRIMARY KEY NOT NULL,
    priority BIGINT NOT NULL
);

-- Mother brokers (cascade): providers named ai_broker_mother, ai_broker_mother2, ...
CREATE TABLE mothers (
    name       TEXT PRIMARY KEY NOT NULL,
    -- http://host:port of the mother's TCP listener.
    url        TEXT NOT NULL,
    -- Name of the environment variable holding the cascade token: never the token itself.
    token_env  TEXT,
    priority   BIGINT NOT NULL DEFAULT 0,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- Persisted state of the pool per (provider, key) instance, so a restart does not hammer a
-- key that was cooling down or rejected.
CREATE TABLE key_state (
    -- Provider instance id, e.g. openai-1.
    instance   TEXT PRIMARY KEY NOT NULL,
    provider   TEXT NOT NULL,
    -- healthy | cooldown | auth_failed | disabled
    state      TEXT NOT NULL,
    reason     TEXT,
    -- End of a cooldown.
    until_ms   BIGINT,
    updated_ms BIGINT NOT NULL
);
