//! The usage ledger: request rows go from the request path into a bounded in-memory queue and
//! one background writer task commits them to the store in batches. The queue, batching,
//! retries and drain are the host crate's [`group_commit`] writer (shared with the MCP audit);
//! this module says what a batch is ([`Store::insert_logs`], idempotent by row id) and how the
//! drain ends (a WAL checkpoint).
//!
//! - [`Ledger::record`] never blocks and never touches the database; a full queue counts the
//!   row in `dropped` and warns at most once per second.
//! - Rows leave memory only once their transaction committed; a failing database marks the
//!   ledger unhealthy and is retried with backoff while new rows wait in the queue.
//! - [`LedgerWriter::shutdown`] stops accepting rows, commits everything queued and
//!   checkpoints the WAL.
//!
//! **Spend is never lost with a row.** A key's spend reaches the store with its rows (in the
//! same transaction). A row the queue drops takes its cost to [`Ledger::unlogged_spend`]
//! instead, which the broker adds to the key in the store once a second
//! ([`Ledger::persist_unlogged_spend`]) — so a restart after a ledger outage does not refund
//! budgets.
//!
//! **What a crash can lose.** A committed row survives `kill -9` (SQLite WAL, synchronous
//! NORMAL). Only rows still in memory can be lost: at most `queue + batch` rows (10 256 with
//! the defaults), and that many only while the database is failing; with a healthy database
//! the loss is the rows of the last ~`linger` (20 ms) plus one commit.

use std::collections::HashMap;
use std::time::Duration;

use hero_aibroker_host::group_commit::{self, Config, Queue, Sink, Writer};
use hero_aibroker_sdk::admin::{LedgerHealth, RequestLog};

use crate::accounting::store::{Store, StoreError};

/// Sizes and timing of the ledger.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Rows the in-memory queue holds before [`Ledger::record`] drops (default 10 000).
    pub queue: usize,
    /// Most rows per transaction (default 256).
    pub batch: usize,
    /// How long the writer waits for more rows after the first before committing (default 20 ms).
    pub linger: Duration,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        let d = Config::named(NAME);
        LedgerConfig {
            queue: d.queue,
            batch: d.batch,
            linger: d.linger,
        }
    }
}

const NAME: &str = "usage ledger";

/// The store as the writer's sink.
struct Rows(Store);

impl Sink for Rows {
    type Row = RequestLog;
    type Error = StoreError;

    async fn commit(&self, rows: &[RequestLog]) -> Result<(), StoreError> {
        self.0.insert_logs(rows).await.map(drop)
    }

    /// The WAL holds the rows already (they are durable); the checkpoint just leaves a
    /// self-contained database file.
    async fn finish(&self, left: Duration) {
        match tokio::time::timeout(left, self.0.checkpoint()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "WAL checkpoint after draining the ledger failed")
            }
            Err(_) => tracing::warn!("WAL checkpoint after draining the ledger timed out"),
        }
    }
}

/// Handle to the ledger: records rows, reports health, flushes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Ledger {
    queue: Queue<RequestLog>,
    /// Cost of dropped rows by key id, not yet added to the store (rare path: a lock is fine).
    unlogged: std::sync::Arc<std::sync::Mutex<HashMap<String, f64>>>,
    store: Store,
}

/// Owner of the writer task; [`LedgerWriter::shutdown`] drains it.
#[derive(Debug)]
pub struct LedgerWriter(Writer<Rows>);

impl Ledger {
    /// Starts the writer task and returns the handle and the writer's owner. Call it inside a
    /// tokio runtime (it spawns the task there).
    pub fn start(store: Store, cfg: LedgerConfig) -> (Ledger, LedgerWriter) {
        let (queue, writer) = group_commit::start(
            Rows(store.clone()),
            Config {
                name: NAME,
                queue: cfg.queue,
                batch: cfg.batch,
                linger: cfg.linger,
            },
        );
        let ledger = Ledger {
            queue,
            unlogged: Default::default(),
            store,
        };
        (ledger, LedgerWriter(writer))
    }

    /// Queues a row for the writer. Never blocks, never touches the database: when the queue
    /// is full, or shutdown has begun, the row is counted in `dropped` (and a warning logged at
    /// most once per second).
    pub fn record(&self, row: RequestLog) {
        if let Some(row) = self.queue.record_or_take(row)
            && let Some(key) = row.key_id
            && row.cost_usd.is_finite()
            && row.cost_usd > 0.0
        {
            *self.lock().entry(key).or_default() += row.cost_usd;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, f64>> {
        self.unlogged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Spend of dropped rows not yet in the store, by key id.
    pub fn unlogged_spend(&self) -> HashMap<String, f64> {
        self.lock().clone()
    }

    /// Adds the spend of dropped rows to their keys in the store; what cannot be written now
    /// (the database is still failing) stays for the next call.
    pub async fn persist_unlogged_spend(&self) {
        let pending = std::mem::take(&mut *self.lock());
        if pending.is_empty() {
            return;
        }
        if let Err(e) = self.store.add_spend(&pending).await {
            tracing::warn!("cannot persist the spend of dropped ledger rows (retried): {e}");
            let mut m = self.lock();
            for (k, usd) in pending {
                *m.entry(k).or_default() += usd;
            }
        }
    }

    /// Like [`Ledger::record`] but hands the row back instead of dropping it when the queue is
    /// full or shutdown has begun; nothing is counted. For producers that can wait (bulk
    /// imports, the benchmark).
    #[expect(
        clippy::result_large_err,
        reason = "the caller's row handed back as is, without an allocation"
    )]
    pub fn try_record(&self, row: RequestLog) -> Result<(), RequestLog> {
        self.queue.try_record(row)
    }

    /// The writer's counters.
    pub fn health(&self) -> LedgerHealth {
        let c = self.queue.counters();
        LedgerHealth {
            queued: c.queued,
            written: c.written,
            dropped: c.dropped,
            write_errors: c.write_errors,
            healthy: c.healthy,
        }
    }

    /// Resolves once every row recorded before this call is committed (or the writer is
    /// gone). While the database fails this waits for it to recover.
    pub async fn flush(&self) {
        self.queue.flush().await;
    }
}

impl LedgerWriter {
    /// Stops accepting rows, commits everything queued, checkpoints the WAL and returns the
    /// number of rows committed during the drain. A queued row is lost only if the database
    /// keeps failing past `deadline` (then the loss is counted in `dropped` and logged).
    pub async fn shutdown(self, deadline: Duration) -> u64 {
        self.0.shutdown(deadline).await
    }
}
