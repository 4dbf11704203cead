-- Every tool call through the aggregator (MCP sessions on /mcp and POST /tools/{name}).
CREATE TABLE IF NOT EXISTS tool_calls (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms       INTEGER NOT NULL,   -- unix ms, start of the call
    caller      TEXT    NOT NULL,   -- x-aibroker-caller, or uds:uid=<peer uid>
    server      TEXT,               -- owning server; NULL when the tool was unknown
    tool        TEXT    NOT NULL,   -- the name the client used
    duration_ms INTEGER NOT NULL,
    ok          INTEGER NOT NULL,   -- 0 on protocol errors and on isError results
    error       TEXT,               -- the message (truncated), when not ok
    arguments   TEXT,               -- JSON, only with MCP_AUDIT_ARGS=true
    via         TEXT    NOT NULL    -- mcp | rest
);
CREATE INDEX IF NOT EXISTS tool_calls_ts ON tool_calls (ts_ms);
