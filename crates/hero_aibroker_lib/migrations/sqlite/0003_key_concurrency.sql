-- Per-key concurrency limit (issue 16): requests of one key in flight at once; NULL = none.
ALTER TABLE api_keys ADD COLUMN max_concurrent INTEGER;
