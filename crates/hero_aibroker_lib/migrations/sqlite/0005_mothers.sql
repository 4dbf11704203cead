-- Mother brokers (issue 19): the child forwards to them over TCP. Reshapes the placeholder
-- table of 0001 (never written): ids ai_broker_mother, ai_broker_mother2, …; the token the
-- child presents (a broker key of the mother, or its cascade token) is never returned by the
-- API or shown.
DROP TABLE mothers;
CREATE TABLE mothers (
    id         TEXT PRIMARY KEY NOT NULL,
    address    TEXT NOT NULL,
    port       INTEGER NOT NULL,
    label      TEXT,
    priority   BIGINT NOT NULL DEFAULT 1,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    token      TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
