-- Hourly usage rollups (issue 17): the console's Usage pages and usage.summary / usage.series
-- over long ranges read these instead of scanning every ledger row. One row per UTC hour,
-- dimension (model | provider | key | client) and group; the ledger writer keeps them in the
-- same transaction as the rows. Retention prunes rows, never rollups.
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

-- The rows already in the ledger.
INSERT INTO usage_rollup
SELECT 'model', (started_ms / 3600000) * 3600000, requested_model, COUNT(*),
       SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), SUM(prompt_tokens), SUM(completion_tokens),
       SUM(cost_usd), COALESCE(SUM(upstream_cost_usd), 0.0), SUM(latency_ms), MIN(started_ms), MAX(started_ms)
FROM request_logs GROUP BY 2, 3;
INSERT INTO usage_rollup
SELECT 'provider', (started_ms / 3600000) * 3600000, COALESCE(provider, ''), COUNT(*),
       SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), SUM(prompt_tokens), SUM(completion_tokens),
       SUM(cost_usd), COALESCE(SUM(upstream_cost_usd), 0.0), SUM(latency_ms), MIN(started_ms), MAX(started_ms)
FROM request_logs GROUP BY 2, 3;
INSERT INTO usage_rollup
SELECT 'key', (started_ms / 3600000) * 3600000, COALESCE(key_id, ''), COUNT(*),
       SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), SUM(prompt_tokens), SUM(completion_tokens),
       SUM(cost_usd), COALESCE(SUM(upstream_cost_usd), 0.0), SUM(latency_ms), MIN(started_ms), MAX(started_ms)
FROM request_logs GROUP BY 2, 3;
INSERT INTO usage_rollup
SELECT 'client', (started_ms / 3600000) * 3600000, client, COUNT(*),
       SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), SUM(prompt_tokens), SUM(completion_tokens),
       SUM(cost_usd), COALESCE(SUM(upstream_cost_usd), 0.0), SUM(latency_ms), MIN(started_ms), MAX(started_ms)
FROM request_logs GROUP BY 2, 3;
