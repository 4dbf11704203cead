//! The usage ledger: request rows go from the request path into a bounded in-memory queue and
//! one background writer task commits them to the store in batches (group commit).
//!
//! - [`Ledger::record`] never blocks and never touches the database: it is a `try_send` into a
//!   bounded channel. When the queue is full (the database is slow or failing) the row is
//!   counted in `dropped` and a warning is logged at most once per second; nothing is dropped
//!   silently.
//! - The writer waits for a first row, then gathers up to `batch` rows or until `linger`
//!   passes, and inserts them in one transaction ([`Store::insert_logs`], idempotent by row
//!   id). Rows leave memory only once that transaction has committed: a failed commit keeps
//!   the batch, marks the ledger unhealthy, counts a write error and retries with backoff
//!   (100 ms doubling to 5 s) while new rows wait in the queue.
//! - [`LedgerWriter::shutdown`] stops accepting rows, commits everything queued and
//!   checkpoints the WAL.
//!
//! **What a crash can lose.** A committed row survives `kill -9` (SQLite WAL, synchronous
//! NORMAL). Only rows still in memory can be lost, and memory never holds more than the
//! channel plus the batch being committed: at most `queue + batch` rows (10 256 with the
//! defaults). That bound is reached only while the database is failing; with a healthy
//! database the loss is the rows of the last ~`linger` (20 ms) plus one commit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::FutureExt;
use hero_aibroker_sdk::admin::{LedgerHealth, RequestLog};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::store::Store;

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
        LedgerConfig {
            queue: 10_000,
            batch: 256,
            linger: Duration::from_millis(20),
        }
    }
}

/// First and largest pause between retries of a failed commit.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Shutdown waits this much past its deadline for the writer to notice it before aborting it.
const ABORT_GRACE: Duration = Duration::from_secs(1);

#[expect(
    clippy::large_enum_variant,
    reason = "rows are nearly every message; boxing them would allocate on the request path"
)]
enum Msg {
    Row(RequestLog),
    /// Answered once every message before it is committed.
    Flush(oneshot::Sender<()>),
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never row contents in logs.
        f.write_str(match self {
            Msg::Row(_) => "Row",
            Msg::Flush(_) => "Flush",
        })
    }
}

/// Counters and flags shared by the handles and the writer.
#[derive(Debug)]
struct Shared {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
    healthy: AtomicBool,
    /// Set by shutdown: `record` refuses rows, the writer closes the channel and drains it.
    closing: AtomicBool,
    /// When shutdown stops retrying a failing database.
    deadline: OnceLock<Instant>,
    /// Wakes the writer when shutdown starts (it may be idle or sleeping between retries).
    wake: Notify,
    /// Milliseconds since `epoch` of the last "dropping rows" warning (rate limit).
    last_drop_warn_ms: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn drop_rows(&self, n: u64, why: &'static str) {
        let total = self.dropped.fetch_add(n, Ordering::Relaxed) + n;
        let now = u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1000);
        let last = self.last_drop_warn_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self
                .last_drop_warn_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                dropped_total = total,
                "usage ledger: request rows are being dropped ({why})"
            );
        }
    }
}

/// Handle to the ledger: records rows, reports health, flushes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Ledger {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
}

/// Owner of the writer task; [`LedgerWriter::shutdown`] drains it.
#[derive(Debug)]
pub struct LedgerWriter {
    shared: Arc<Shared>,
    store: Store,
    task: JoinHandle<()>,
}

impl Ledger {
    /// Starts the writer task and returns the handle and the writer's owner. Call it inside a
    /// tokio runtime (it spawns the task there).
    pub fn start(store: Store, cfg: LedgerConfig) -> (Ledger, LedgerWriter) {
        let cfg = LedgerConfig {
            queue: cfg.queue.max(1),
            batch: cfg.batch.max(1),
            linger: cfg.linger,
        };
        let (tx, rx) = mpsc::channel(cfg.queue);
        let shared = Arc::new(Shared {
            queued: AtomicU64::new(0),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            closing: AtomicBool::new(false),
            deadline: OnceLock::new(),
            wake: Notify::new(),
            last_drop_warn_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let writer = Writer {
            store: store.clone(),
            cfg,
            rx,
            shared: shared.clone(),
            closed: false,
        };
        let task = tokio::spawn(writer.run());
        (
            Ledger {
                tx,
                shared: shared.clone(),
            },
            LedgerWriter {
                shared,
                store,
                task,
            },
        )
    }

    /// Queues a row for the writer. Never blocks, never touches the database: when the queue
    /// is full, or shutdown has begun, the row is counted in `dropped` (and a warning logged at
    /// most once per second).
    pub fn record(&self, row: RequestLog) {
        if self.try_record(row).is_err() {
            let why = if self.shared.closing.load(Ordering::Relaxed) {
                "shutting down"
            } else {
                "queue full"
            };
            self.shared.drop_rows(1, why);
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
        if self.shared.closing.load(Ordering::Acquire) {
            return Err(row);
        }
        // Counted before sending so the writer's decrement can never come first.
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Msg::Row(row)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(m) | TrySendError::Closed(m)) => {
                self.shared.queued.fetch_sub(1, Ordering::Relaxed);
                match m {
                    Msg::Row(row) => Err(row),
                    Msg::Flush(_) => unreachable!("try_record sends rows only"),
                }
            }
        }
    }

    /// The writer's counters.
    pub fn health(&self) -> LedgerHealth {
        let s = &self.shared;
        LedgerHealth {
            queued: s.queued.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
            healthy: s.healthy.load(Ordering::Relaxed),
        }
    }

    /// Resolves once every row recorded before this call is committed (or the writer is
    /// gone). While the database fails this waits for it to recover.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        // The marker travels the same FIFO channel as the rows, behind every row queued before.
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

impl LedgerWriter {
    /// Stops accepting rows, commits everything queued, checkpoints the WAL and returns the
    /// number of rows committed during the drain. A queued row is lost only if the database
    /// keeps failing past `deadline` (then the loss is counted in `dropped` and logged).
    pub async fn shutdown(self, deadline: Duration) -> u64 {
        let LedgerWriter {
            shared,
            store,
            mut task,
        } = self;
        let before = shared.written.load(Ordering::Acquire);
        let until = Instant::now() + deadline;
        let _ = shared.deadline.set(until);
        shared.closing.store(true, Ordering::Release);
        shared.wake.notify_one();
        match tokio::time::timeout_at(until + ABORT_GRACE, &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "usage ledger writer task failed"),
            Err(_) => {
                task.abort();
                let lost = shared.queued.swap(0, Ordering::AcqRel);
                shared.dropped.fetch_add(lost, Ordering::Relaxed);
                tracing::error!(
                    rows = lost,
                    "usage ledger: writer did not finish by the shutdown deadline; rows not recorded"
                );
            }
        }
        let written = shared
            .written
            .load(Ordering::Acquire)
            .saturating_sub(before);
        // The WAL holds the rows already (they are durable); the checkpoint just leaves a
        // self-contained database file. Give it the time left, but at least a moment.
        let left = until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(500));
        match tokio::time::timeout(left, store.checkpoint()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "WAL checkpoint after draining the ledger failed")
            }
            Err(_) => tracing::warn!("WAL checkpoint after draining the ledger timed out"),
        }
        written
    }
}

/// The writer task's state.
struct Writer {
    store: Store,
    cfg: LedgerConfig,
    rx: mpsc::Receiver<Msg>,
    shared: Arc<Shared>,
    /// The channel is closed (shutdown): what is left is drained, then the task ends.
    closed: bool,
}

impl Writer {
    async fn run(mut self) {
        let mut batch: Vec<RequestLog> = Vec::with_capacity(self.cfg.batch);
        let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
        let mut buf: Vec<Msg> = Vec::with_capacity(self.cfg.batch);
        loop {
            if !self.closed && self.shared.closing.load(Ordering::Acquire) {
                // Senders now fail; messages already queued are still received.
                self.rx.close();
                self.closed = true;
            }
            // Wait for the first message, or for shutdown to begin.
            let n = tokio::select! {
                n = self.rx.recv_many(&mut buf, self.cfg.batch) => n,
                () = self.shared.wake.notified(), if !self.closed => continue,
            };
            if n == 0 {
                break; // closed and drained, or every handle dropped
            }
            absorb(&mut buf, &mut batch, &mut waiters);
            // Group commit: unless the batch is already full or a flush is waiting, sleep for
            // `linger` and then take what arrived. Sleeping (rather than receiving row by row)
            // means senders do not wake this task for every row: one wakeup per commit.
            if batch.len() < self.cfg.batch && waiters.is_empty() && !self.closed {
                tokio::select! {
                    () = tokio::time::sleep(self.cfg.linger) => {}
                    () = self.shared.wake.notified() => {}
                }
            }
            while batch.len() < self.cfg.batch {
                let room = self.cfg.batch - batch.len();
                match self.rx.recv_many(&mut buf, room).now_or_never() {
                    Some(n) if n > 0 => absorb(&mut buf, &mut batch, &mut waiters),
                    _ => break,
                }
            }
            if !self.commit(&batch).await {
                self.give_up(batch.len());
                return;
            }
            batch.clear();
            for w in waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    /// Commits `batch`, retrying until it succeeds. False only when shutdown's deadline passed
    /// with the database still failing.
    async fn commit(&self, batch: &[RequestLog]) -> bool {
        if batch.is_empty() {
            return true;
        }
        let n = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let mut backoff = BACKOFF_START;
        loop {
            let attempt = self.store.insert_logs(batch);
            // Shutdown's deadline only stops retrying a database that is failing: a healthy one
            // finishes its commit (within shutdown's abort grace). A cut attempt rolls back.
            let result = match self.shared.deadline.get() {
                Some(&d) if !self.shared.healthy.load(Ordering::Relaxed) => {
                    match tokio::time::timeout_at(d, attempt).await {
                        Ok(r) => r,
                        Err(_) => return false,
                    }
                }
                _ => attempt.await,
            };
            match result {
                Ok(_) => {
                    let s = &self.shared;
                    s.written.fetch_add(n, Ordering::AcqRel);
                    s.queued.fetch_sub(n, Ordering::Relaxed);
                    if !s.healthy.swap(true, Ordering::Relaxed) {
                        tracing::info!("usage ledger: the database accepts writes again");
                    }
                    return true;
                }
                Err(e) => {
                    self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                    self.shared.healthy.store(false, Ordering::Relaxed);
                    // The error only: row contents never reach the log.
                    tracing::warn!(error = %e, rows = n, retry_in_ms = backoff.as_millis(), "usage ledger: commit failed; rows kept, retrying");
                    let now = Instant::now();
                    let wake_at = match self.shared.deadline.get() {
                        Some(&d) if now >= d => return false,
                        Some(&d) => d.min(now + backoff),
                        None => now + backoff,
                    };
                    // Shutdown starting mid-sleep brings its deadline into force at once.
                    tokio::select! {
                        () = tokio::time::sleep_until(wake_at) => {}
                        () = self.shared.wake.notified() => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Shutdown's deadline passed with the database failing: count and report what is lost.
    fn give_up(&mut self, in_batch: usize) {
        self.rx.close();
        let mut lost = u64::try_from(in_batch).unwrap_or(u64::MAX);
        while let Ok(m) = self.rx.try_recv() {
            if matches!(m, Msg::Row(_)) {
                lost += 1;
            }
        }
        self.shared.queued.fetch_sub(lost, Ordering::Relaxed);
        self.shared.dropped.fetch_add(lost, Ordering::Relaxed);
        tracing::error!(
            rows = lost,
            "usage ledger: the database kept failing until the shutdown deadline; rows not recorded"
        );
    }
}

/// Moves received messages into the batch (rows) and the flush waiters.
fn absorb(buf: &mut Vec<Msg>, batch: &mut Vec<RequestLog>, waiters: &mut Vec<oneshot::Sender<()>>) {
    for m in buf.drain(..) {
        match m {
            Msg::Row(r) => batch.push(r),
            Msg::Flush(w) => waiters.push(w),
        }
    }
}
