//! The audit of tool calls: every call (MCP sessions and `POST /tools/{name}`) becomes a
//! [`CallRow`] that goes into a bounded in-memory queue; one writer task commits the rows to
//! the [`AuditDb`] in batches. The call path never touches the database.
//!
//! - [`Audit::record`] is a `try_send`: when the queue is full (the database is slow or
//!   failing) the row is counted in `dropped` and a warning is logged at most once per second.
//! - The writer waits for a first row, gathers up to `batch` rows or `linger`, and inserts them
//!   in one transaction. A failed commit keeps the batch and retries with backoff (100 ms
//!   doubling to 5 s); rows leave memory only after COMMIT.
//! - [`AuditWriter::shutdown`] stops accepting rows, commits everything queued (giving a
//!   failing database until a deadline), and checkpoints the WAL.
//!
//! A crash (`kill -9`) loses at most the rows still in memory: the queue plus one batch.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::audit_db::{AuditDb, CallQuery, CallRow, Via};

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

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            queue: 10_000,
            batch: 256,
            linger: Duration::from_millis(20),
            record_arguments: false,
        }
    }
}

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Shared {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
    healthy: AtomicBool,
    last_drop_warn: std::sync::Mutex<Option<Instant>>,
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
    tx: mpsc::Sender<CallRow>,
    shared: Arc<Shared>,
    db: AuditDb,
    record_arguments: bool,
}

/// Owner of the writer task; [`AuditWriter::shutdown`] drains it.
#[derive(Debug)]
pub struct AuditWriter {
    closing: CancellationToken,
    deadline: Arc<std::sync::OnceLock<tokio::time::Instant>>,
    task: JoinHandle<()>,
    db: AuditDb,
}

impl Audit {
    /// Starts the writer task on `db` (inside a tokio runtime).
    pub fn start(db: AuditDb, options: AuditOptions) -> (Audit, AuditWriter) {
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let shared = Arc::new(Shared {
            queued: AtomicU64::new(0),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            last_drop_warn: std::sync::Mutex::new(None),
        });
        let closing = CancellationToken::new();
        let deadline = Arc::new(std::sync::OnceLock::new());
        let writer = Writer {
            db: db.clone(),
            rx,
            shared: shared.clone(),
            batch: options.batch.max(1),
            linger: options.linger,
            closing: closing.clone(),
            deadline: deadline.clone(),
        };
        let task = tokio::spawn(writer.run());
        (
            Audit {
                tx,
                shared,
                db: db.clone(),
                record_arguments: options.record_arguments,
            },
            AuditWriter {
                closing,
                deadline,
                task,
                db,
            },
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
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(row).is_err() {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            let total = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let mut last = self
                .shared
                .last_drop_warn
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                *last = Some(Instant::now());
                tracing::warn!(
                    dropped_total = total,
                    "tool call audit: rows are being dropped (queue full or shutting down)"
                );
            }
        }
    }

    /// The recorded calls matching `q`, newest first. Reads the database: rows recorded in the
    /// last ~20 ms (the writer's linger) may not be committed yet and so not be listed.
    pub async fn calls(
        &self,
        q: &CallQuery,
    ) -> Result<Vec<CallRow>, crate::audit_db::AuditDbError> {
        self.db.calls(q).await
    }

    /// Counters for `/health`.
    pub fn health(&self) -> AuditHealth {
        let s = &self.shared;
        AuditHealth {
            path: self.db.path().display().to_string(),
            queued: s.queued.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
            healthy: s.healthy.load(Ordering::Relaxed),
            arguments: self.record_arguments,
        }
    }
}

impl AuditWriter {
    /// Stops accepting rows, commits what is queued (a failing database gets until
    /// `deadline`), checkpoints the WAL and closes the database.
    pub async fn shutdown(self, deadline: Duration) {
        let until = tokio::time::Instant::now() + deadline;
        let _ = self.deadline.set(until);
        self.closing.cancel();
        let mut task = self.task;
        match tokio::time::timeout_at(until + Duration::from_secs(1), &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "tool call audit writer task failed"),
            Err(_) => {
                task.abort();
                tracing::error!("tool call audit: writer did not finish by the shutdown deadline");
            }
        }
        self.db.close().await;
    }
}

struct Writer {
    db: AuditDb,
    rx: mpsc::Receiver<CallRow>,
    shared: Arc<Shared>,
    batch: usize,
    linger: Duration,
    closing: CancellationToken,
    deadline: Arc<std::sync::OnceLock<tokio::time::Instant>>,
}

impl Writer {
    async fn run(mut self) {
        let mut rows: Vec<CallRow> = Vec::with_capacity(self.batch);
        let mut closed = false;
        loop {
            let n = tokio::select! {
                n = self.rx.recv_many(&mut rows, self.batch) => n,
                () = self.closing.cancelled(), if !closed => {
                    // Senders fail from now on; rows already queued are still received.
                    self.rx.close();
                    closed = true;
                    continue;
                }
            };
            if n == 0 {
                break; // closed and drained
            }
            if rows.len() < self.batch && !closed {
                // Group commit: one wakeup and one transaction per `linger`, not per row.
                tokio::select! {
                    () = tokio::time::sleep(self.linger) => {}
                    () = self.closing.cancelled() => {}
                }
                while rows.len() < self.batch {
                    match self.rx.try_recv() {
                        Ok(row) => rows.push(row),
                        Err(_) => break,
                    }
                }
            }
            if !self.commit(&rows).await {
                let lost = self.shared.queued.swap(0, Ordering::AcqRel);
                self.shared.dropped.fetch_add(lost, Ordering::Relaxed);
                tracing::error!(
                    rows = lost,
                    "tool call audit: the database kept failing past the shutdown deadline; rows not recorded"
                );
                return;
            }
            rows.clear();
        }
    }

    /// Commits `rows`, retrying with backoff. False only when shutdown's deadline passed with
    /// the database still failing.
    async fn commit(&self, rows: &[CallRow]) -> bool {
        let n = rows.len() as u64;
        let mut backoff = BACKOFF_START;
        loop {
            match self.db.insert(rows).await {
                Ok(()) => {
                    let s = &self.shared;
                    s.written.fetch_add(n, Ordering::Relaxed);
                    s.queued.fetch_sub(n, Ordering::Relaxed);
                    if !s.healthy.swap(true, Ordering::Relaxed) {
                        tracing::info!("tool call audit: the database accepts writes again");
                    }
                    return true;
                }
                Err(e) => {
                    self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                    self.shared.healthy.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %e, rows = n, retry_in_ms = backoff.as_millis() as u64, "tool call audit: commit failed; rows kept, retrying");
                    let now = tokio::time::Instant::now();
                    let wake = match self.deadline.get() {
                        Some(&d) if now >= d => return false,
                        Some(&d) => d.min(now + backoff),
                        None => now + backoff,
                    };
                    tokio::select! {
                        () = tokio::time::sleep_until(wake) => {}
                        () = self.closing.cancelled(), if self.deadline.get().is_none() => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// The default database path: `$HOME/hero/var/hero_aibroker/mcp_audit.db`.
pub fn default_path(home: &str) -> PathBuf {
    PathBuf::from(home).join("hero/var/hero_aibroker/mcp_audit.db")
}
