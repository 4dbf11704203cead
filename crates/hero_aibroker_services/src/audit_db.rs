//! The audit database: a SQLite file (WAL) with one table, `tool_calls`, created by the
//! embedded migrations in `migrations/`. Only the audit writer task inserts
//! ([`AuditDb::insert`]); `GET /calls` reads ([`AuditDb::calls`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor, QueryBuilder, Row, Sqlite, SqlitePool};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Rows per `INSERT` statement (10 columns each: far below SQLite's bind limit).
const ROWS_PER_STATEMENT: usize = 256;

/// Default and largest page of [`AuditDb::calls`].
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 1000;

/// Why the audit database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditDbError {
    #[error("cannot open the audit database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot migrate the audit database {}: {source}", path.display())]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("audit database: {0}")]
    Sql(#[from] sqlx::Error),
}

/// How a call reached the aggregator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// A `tools/call` in an MCP session on `/mcp`.
    Mcp,
    /// `POST /tools/{name}`.
    Rest,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Mcp => "mcp",
            Via::Rest => "rest",
        }
    }
}

/// One tool call, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRow {
    /// Assigned by the database; 0 before the row is stored.
    pub id: i64,
    /// Unix ms at the start of the call.
    pub ts_ms: i64,
    pub caller: String,
    /// The owning server; `None` when the name matched no tool.
    pub server: Option<String>,
    /// The name the client called (the exposed name, e.g. `ping__echo`).
    pub tool: String,
    pub duration_ms: i64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Only recorded with `MCP_AUDIT_ARGS=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    pub via: Via,
}

/// Filters of `GET /calls`.
#[derive(Debug, Clone, Default)]
pub struct CallQuery {
    pub limit: Option<u32>,
    pub server: Option<String>,
    pub tool: Option<String>,
    pub caller: Option<String>,
    pub since_ms: Option<i64>,
}

/// The open audit database.
#[derive(Debug, Clone)]
pub struct AuditDb {
    pool: SqlitePool,
    path: PathBuf,
}

impl AuditDb {
    /// Opens (creating if needed: the directory 0700, the file 0600) and migrates the database
    /// at `path`. WAL, `synchronous=NORMAL` (a commit survives `kill -9`), `busy_timeout` 5 s.
    pub async fn open(path: &Path) -> Result<AuditDb, AuditDbError> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| AuditDbError::Open {
            path: path.to_owned(),
            source,
        };
        let path = std::path::absolute(path).map_err(|e| open_err(e.into()))?;
        hero_aibroker_host::socket::prepare_file(&path).map_err(|e| open_err(e.into()))?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        // One connection for the writer, one for `GET /calls` (WAL readers run beside it).
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| open_err(e.into()))?;
        if let Err(source) = MIGRATOR.run(&pool).await {
            pool.close().await;
            return Err(AuditDbError::Migrate { path, source });
        }
        Ok(AuditDb { pool, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Inserts `rows` in one transaction (`BEGIN IMMEDIATE`: the write lock up front).
    pub async fn insert(&self, rows: &[CallRow]) -> Result<(), AuditDbError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO tool_calls (ts_ms, caller, server, tool, duration_ms, ok, error, arguments, via) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.ts_ms)
                    .push_bind(r.caller.clone())
                    .push_bind(r.server.clone())
                    .push_bind(r.tool.clone())
                    .push_bind(r.duration_ms)
                    .push_bind(r.ok)
                    .push_bind(r.error.clone())
                    .push_bind(r.arguments.as_ref().map(Value::to_string))
                    .push_bind(r.via.as_str());
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Calls matching `q`, newest first (by start time, then id).
    pub async fn calls(&self, q: &CallQuery) -> Result<Vec<CallRow>, AuditDbError> {
        let mut b = QueryBuilder::<Sqlite>::new(
            "SELECT id, ts_ms, caller, server, tool, duration_ms, ok, error, arguments, via \
             FROM tool_calls WHERE 1 = 1",
        );
        if let Some(s) = &q.server {
            b.push(" AND server = ").push_bind(s.clone());
        }
        if let Some(t) = &q.tool {
            b.push(" AND tool = ").push_bind(t.clone());
        }
        if let Some(c) = &q.caller {
            b.push(" AND caller = ").push_bind(c.clone());
        }
        if let Some(since) = q.since_ms {
            b.push(" AND ts_ms >= ").push_bind(since);
        }
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        b.push(" ORDER BY ts_ms DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = b.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let via: String = r.try_get("via")?;
                let arguments: Option<String> = r.try_get("arguments")?;
                Ok(CallRow {
                    id: r.try_get("id")?,
                    ts_ms: r.try_get("ts_ms")?,
                    caller: r.try_get("caller")?,
                    server: r.try_get("server")?,
                    tool: r.try_get("tool")?,
                    duration_ms: r.try_get("duration_ms")?,
                    ok: r.try_get("ok")?,
                    error: r.try_get("error")?,
                    arguments: arguments.and_then(|a| serde_json::from_str(&a).ok()),
                    via: if via == "mcp" { Via::Mcp } else { Via::Rest },
                })
            })
            .collect()
    }

    /// Checkpoints the WAL into the database file and closes the connections.
    pub async fn close(&self) {
        if let Err(e) = self.pool.execute("PRAGMA wal_checkpoint(TRUNCATE)").await {
            tracing::warn!(error = %e, "audit database: WAL checkpoint failed");
        }
        self.pool.close().await;
    }
}
