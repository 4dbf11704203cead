-- Per-key concurrency limit (PostgreSQL dialect of the SQLite migration 0003).
ALTER TABLE api_keys ADD COLUMN max_concurrent BIGINT;
