//! The audit of tool calls: every call (MCP sessions and `POST /tools/{name}`) becomes a
//! [`CallRow`] that goes into a bounded in-memory queue; one writer task commits the rows to
//! the [`AuditDb`] in batches. The call path never touches the database. The queue, batching,
//! retries and drain are the host crate's [`group_commit`] writer (shared with the usage
//! ledger):
//!
//! - [`Audit::record`] is a `try_send`: when the queue is full (the database is slow or
//!   failing) the row is counted in `dropped` and a warning is logged at most once per second.
//! - The writer gathers up to `batch` rows or `linger` and inserts them in one transaction. A
//!   failed commit keeps the batch and retries with backoff (100 ms doubling to 5 s); rows
//!   leave memory only after COMMIT.
//! - [`AuditWriter::shutdown`] stops accepting rows, commits everything queued (giving a
//!   failing database until a deadline), and checkpoints and closes the database.
//!
//! A crash (`kill -9`) loses at most the rows still in memory: the queue plus one batch.

use std::path::PathBuf;
use std::time::Duration;

use hero_aibroker_host::group_commit::{self, Config, Queue, Sink, Writer};
use serde::Serialize;

pub use crate::audit_db::{AuditDb, AuditDbError, CallQuery, CallRow, Via};

/// Sizes and timing of the audit queue.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Rows the queue holds before [`Audit::record`] drops (default 10 000).
    pub queue: usize,
    /// Most rows per transaction (default 256).
    pub batch: usize,
    /// How long the writer waits for more rows after the first (default 20 ms).
    pub linger: Duration,
    /// Record the call arguments (`MCP_AUDIT_ARGS=true`); off by default since arguments can
    /// carry private data.
    pub record_arguments: bool,
}

const NAME: &str = "tool call audit";

impl Default for AuditOptions {
    fn default() -> Self {
        let d = Config::named(NAME);
        AuditOptions {
            queue: d.queue,
            batch: d.batch,
            linger: d.linger,
            record_arguments: false,
        }
    }
}

/// The audit database as the writer's sink.
struct Rows(AuditDb);

impl Sink for Rows {
    type Row = CallRow;
    type Error = AuditDbError;

    async fn commit(&self, rows: &[CallRow]) -> Result<(), AuditDbError> {
        self.0.insert(rows).await
    }

    async fn finish(&self, _left: Duration) {
        self.0.close().await;
    }
}

/// The audit's counters, for `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditHealth {
    pub path: String,
    /// Rows waiting to be committed.
    pub queued: u64,
    /// Rows committed since start.
    pub written: u64,
    /// Rows lost because the queue was full or shutdown had begun.
    pub dropped: u64,
    pub write_errors: u64,
    /// False while commits fail.
    pub healthy: bool,
    pub arguments: bool,
}

/// Handle to the audit: records rows, reads them back. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Audit {
    queue: Queue<CallRow>,
    db: AuditDb,
    record_arguments: bool,
}

/// Owner of the writer task; [`AuditWriter::shutdown`] drains it.
#[derive(Debug)]
pub struct AuditWriter(Writer<Rows>);

impl Audit {
    /// Starts the writer task on `db` (inside a tokio runtime).
    pub fn start(db: AuditDb, options: AuditOptions) -> (Audit, AuditWriter) {
        let (queue, writer) = group_commit::start(
            Rows(db.clone()),
            Config {
                name: NAME,
                queue: options.queue,
                batch: options.batch,
                linger: options.linger,
            },
        );
        (
            Audit {
                queue,
                db,
                record_arguments: options.record_arguments,
            },
            AuditWriter(writer),
        )
    }

    /// Whether call arguments are recorded.
    pub fn records_arguments(&self) -> bool {
        self.record_arguments
    }

    /// Queues a row. Never blocks and never touches the database; a full queue (or shutdown)
    /// drops the row and counts it.
    pub fn record(&self, mut row: CallRow) {
        if !self.record_arguments {
            row.arguments = None;
        }
        self.queue.record(row);
    }

    /// The recorded calls matching `q`, newest first. Reads the database: rows recorded in the
    /// last ~20 ms (the writer's linger) may not be committed yet and so not be listed.
    pub async fn calls(&self, q: &CallQuery) -> Result<Vec<CallRow>, AuditDbError> {
        self.db.calls(q).await
    }

    /// Counters for `/health`.
    pub fn health(&self) -> AuditHealth {
        let c = self.queue.counters();
        AuditHealth {
            path: self.db.path().display().to_string(),
            queued: c.queued,
            written: c.written,
            dropped: c.dropped,
            write_errors: c.write_errors,
            healthy: c.healthy,
            arguments: self.record_arguments,
        }
    }
}

impl AuditWriter {
    /// Stops accepting rows, commits what is queued (a failing database gets until
    /// `deadline`), checkpoints the WAL and closes the database.
    pub async fn shutdown(self, deadline: Duration) {
        self.0.shutdown(deadline).await;
    }
}

/// The default database path: `$HOME/hero/var/hero_aibroker/mcp_audit.db`.
pub fn default_path(home: &str) -> PathBuf {
    hero_aibroker_sdk::paths::data_dir(std::path::Path::new(home)).join("mcp_audit.db")
}
