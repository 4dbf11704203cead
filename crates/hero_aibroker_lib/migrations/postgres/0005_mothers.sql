-- Mother brokers (PostgreSQL dialect of the SQLite migration 0005).
DROP TABLE mothers;
CREATE TABLE mothers (
    id         TEXT PRIMARY KEY NOT NULL,
    address    TEXT NOT NULL,
    port       BIGINT NOT NULL,
    label      TEXT,
    priority   BIGINT NOT NULL DEFAULT 1,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    token      TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
