-- What the registry's prices make of a request's usage, beside what it was charged (cost_usd:
-- the upstream's own figure when it reported one): kept for reconciliation (issue 21).
ALTER TABLE request_logs ADD COLUMN list_cost_usd DOUBLE PRECISION;
