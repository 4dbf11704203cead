-- Several brokers on one database (issue 20).

-- Bumped by every change to keys, priorities and mothers; each broker polls it and reloads
-- what changed, so a key revoked on one broker is refused by the others within the poll period.
CREATE TABLE config_version (
    id      BIGINT PRIMARY KEY NOT NULL,
    version BIGINT NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

-- Budget leases: the slice of a key's budget each broker may spend without asking the
-- database. granted_usd is what the broker was granted in all, settled_usd what of its spending
-- the ledger has written (added here in the transaction that adds it to api_keys.spent_usd), so
-- granted - settled is what it may still spend or has spent unrecorded. A lease is granted under
-- the key row's lock, only while spent_usd plus every unexpired lease's remainder stays within
-- budget_usd. A lease not renewed before expires_ms no longer counts (its broker stopped).
CREATE TABLE key_leases (
    key_id      TEXT NOT NULL,
    broker_id   TEXT NOT NULL,
    granted_usd DOUBLE PRECISION NOT NULL,
    settled_usd DOUBLE PRECISION NOT NULL,
    expires_ms  BIGINT NOT NULL,
    PRIMARY KEY (key_id, broker_id)
);

-- Per-minute limits shared by the brokers: requests and tokens of a key granted in a minute,
-- in slices, under the row's lock, never beyond the key's rpm / tpm. Rows of past minutes are
-- pruned.
CREATE TABLE key_windows (
    key_id   TEXT NOT NULL,
    minute   BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    tokens   BIGINT NOT NULL,
    PRIMARY KEY (key_id, minute)
);
