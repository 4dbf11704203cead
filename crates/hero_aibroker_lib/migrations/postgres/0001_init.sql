-- hero_aibroker schema, version 1, PostgreSQL dialect. The same tables as the SQLite
-- migration of the same number: TEXT, BIGINT, DOUBLE PRECISION and BOOLEAN. Every integer is
-- BIGINT here (SQLite's INTEGER is 64-bit; PostgreSQL's is not).

CREATE TABLE request_logs (
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
    http_status       BIGINT NOT NULL,
    error             TEXT
);
CREATE INDEX request_logs_started ON request_logs (started_ms);
CREATE INDEX request_logs_response ON request_logs (response_id);
CREATE INDEX request_logs_key ON request_logs (key_id);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    hash           TEXT NOT NULL UNIQUE,
    hint           TEXT NOT NULL,
    allowed_models TEXT,
    rpm            BIGINT,
    tpm            BIGINT,
    budget_usd     DOUBLE PRECISION,
    spent_usd      DOUBLE PRECISION NOT NULL DEFAULT 0,
    revoked        BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms     BIGINT NOT NULL
);

CREATE TABLE provider_priority (
    provider TEXT PRIMARY KEY NOT NULL,
    priority BIGINT NOT NULL
);

CREATE TABLE mothers (
    name       TEXT PRIMARY KEY NOT NULL,
    url        TEXT NOT NULL,
    token_env  TEXT,
    priority   BIGINT NOT NULL DEFAULT 0,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE key_state (
    instance   TEXT PRIMARY KEY NOT NULL,
    provider   TEXT NOT NULL,
    state      TEXT NOT NULL,
    reason     TEXT,
    until_ms   BIGINT,
    updated_ms BIGINT NOT NULL
);
