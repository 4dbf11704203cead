-- Hourly usage rollups (PostgreSQL dialect of the SQLite migration 0004). A new database has
-- no ledger rows to roll up; the table is the same.
CREATE TABLE usage_rollup (
    dim               TEXT NOT NULL,
    hour_ms           BIGINT NOT NULL,
    grp               TEXT NOT NULL,
    requests          BIGINT NOT NULL,
    errors            BIGINT NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost_usd          DOUBLE PRECISION NOT NULL,
    upstream_cost_usd DOUBLE PRECISION NOT NULL,
    latency_sum_ms    DOUBLE PRECISION NOT NULL,
    first_ms          BIGINT NOT NULL,
    last_ms           BIGINT NOT NULL,
    PRIMARY KEY (dim, hour_ms, grp)
);
