//! A bounded queue in front of one writer task that commits rows in batches (group commit):
//! the shape of the usage ledger and of the MCP tool-call audit, written once. What a row is
//! and how a batch is committed belong to the [`Sink`]; the queue, batching, retries, health
//! counters and the shutdown drain live here.
//!
//! - [`Queue::record`] never blocks and never touches the database: it is a `try_send` into a
//!   bounded channel. When the queue is full (the database is slow or failing) or shutdown has
//!   begun, the row is counted in `dropped` and a warning is logged at most once per second;
//!   nothing is dropped silently.
//! - The writer waits for a first row, then gathers up to `batch` rows or until `linger`
//!   passes, and hands them to [`Sink::commit`] as one transaction. Rows leave memory only once
//!   that commit succeeded: a failed commit keeps the batch, marks the queue unhealthy, counts a
//!   write error and retries with backoff (100 ms doubling to 5 s) while new rows wait.
//! - [`Writer::shutdown`] stops accepting rows, commits everything queued (a failing database
//!   gets until the deadline), then calls [`Sink::finish`] (checkpoint, close).
//!
//! **What a crash can lose**: only rows still in memory, at most `queue + batch` of them, and
//! that many only while the database is failing; with a healthy one, about `linger`'s worth.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Where the rows go.
pub trait Sink: Send + Sync + 'static {
    /// One record.
    type Row: Send + Sync + 'static;
    /// Why a commit failed (logged; never row contents).
    type Error: std::fmt::Display + Send;
    /// Commits `rows` in one transaction; must be idempotent, since a batch whose commit
    /// failed is committed again.
    fn commit(&self, rows: &[Self::Row]) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Runs once after the drain, with the time left before the shutdown deadline
    /// (a WAL checkpoint, closing the pool).
    fn finish(&self, left: Duration) -> impl Future<Output = ()> + Send;
}

/// Sizes and timing of a queue.
#[derive(Debug, Clone)]
pub struct Config {
    /// Names the queue in log lines (`usage ledger`, `tool call audit`).
    pub name: &'static str,
    /// Rows the in-memory queue holds before [`Queue::record`] drops (default 10 000).
    pub queue: usize,
    /// Most rows per transaction (default 256).
    pub batch: usize,
    /// How long the writer waits for more rows after the first before committing (default 20 ms).
    pub linger: Duration,
}

impl Config {
    /// The defaults under `name`.
    pub fn named(name: &'static str) -> Config {
        Config {
            name,
            queue: 10_000,
            batch: 256,
            linger: Duration::from_millis(20),
        }
    }
}

/// The writer's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Rows waiting to be committed.
    pub queued: u64,
    /// Rows committed since start.
    pub written: u64,
    /// Rows lost: the queue was full, shutdown had begun, or the database failed past the
    /// shutdown deadline.
    pub dropped: u64,
    /// Commits that failed (and were retried).
    pub write_errors: u64,
    /// False while commits fail.
    pub healthy: bool,
}

/// First and largest pause between retries of a failed commit.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Shutdown waits this much past its deadline for the writer to notice it before aborting it.
const ABORT_GRACE: Duration = Duration::from_secs(1);

enum Msg<R> {
    Row(R),
    /// Answered once every message before it is committed.
    Flush(oneshot::Sender<()>),
}

/// Counters and flags shared by the handles and the writer.
#[derive(Debug)]
struct Shared {
    name: &'static str,
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
                "{}: rows are being dropped ({why})",
                self.name
            );
        }
    }
}

/// Handle to a queue: records rows, reports counters, flushes. Cheap to clone.
pub struct Queue<R> {
    tx: mpsc::Sender<Msg<R>>,
    shared: Arc<Shared>,
}

impl<R> Clone for Queue<R> {
    fn clone(&self) -> Self {
        Queue {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<R> std::fmt::Debug for Queue<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never row contents.
        f.debug_struct("Queue")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

/// Owner of the writer task; [`Writer::shutdown`] drains it.
pub struct Writer<S: Sink> {
    shared: Arc<Shared>,
    sink: Arc<S>,
    task: JoinHandle<()>,
}

impl<S: Sink> std::fmt::Debug for Writer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

/// Starts the writer task on `sink` and returns the queue handle and the writer's owner. Call
/// it inside a tokio runtime (it spawns the task there).
pub fn start<S: Sink>(sink: S, cfg: Config) -> (Queue<S::Row>, Writer<S>) {
    let cfg = Config {
        queue: cfg.queue.max(1),
        batch: cfg.batch.max(1),
        ..cfg
    };
    let (tx, rx) = mpsc::channel(cfg.queue);
    let shared = Arc::new(Shared {
        name: cfg.name,
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
    let sink = Arc::new(sink);
    let task = tokio::spawn(
        Task {
            sink: sink.clone(),
            batch: cfg.batch,
            linger: cfg.linger,
            rx,
            shared: shared.clone(),
            closed: false,
        }
        .run(),
    );
    (
        Queue {
            tx,
            shared: shared.clone(),
        },
        Writer { shared, sink, task },
    )
}

impl<R: Send + 'static> Queue<R> {
    /// Queues a row for the writer. Never blocks, never touches the database: when the queue
    /// is full, or shutdown has begun, the row is counted in `dropped` (and a warning logged at
    /// most once per second).
    pub fn record(&self, row: R) {
        drop(self.record_or_take(row));
    }

    /// [`Queue::record`] that hands a dropped row back (counted in `dropped` all the same), so
    /// the caller can keep what the row carried that must not be lost with it.
    pub fn record_or_take(&self, row: R) -> Option<R> {
        let row = self.try_record(row).err()?;
        let why = if self.shared.closing.load(Ordering::Relaxed) {
            "shutting down"
        } else {
            "queue full"
        };
        self.shared.drop_rows(1, why);
        Some(row)
    }

    /// Like [`Queue::record`] but hands the row back instead of dropping it when the queue is
    /// full or shutdown has begun; nothing is counted. For producers that can wait.
    pub fn try_record(&self, row: R) -> Result<(), R> {
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
                    // Only rows are sent here; a marker would have nothing to hand back.
                    Msg::Flush(_) => unreachable!("try_record sends rows only"),
                }
            }
        }
    }

    /// The writer's counters.
    pub fn counters(&self) -> Counters {
        let s = &self.shared;
        Counters {
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

impl<S: Sink> Writer<S> {
    /// Stops accepting rows, commits everything queued, runs [`Sink::finish`] and returns the
    /// number of rows committed during the drain. A queued row is lost only if the database
    /// keeps failing past `deadline` (then the loss is counted in `dropped` and logged).
    pub async fn shutdown(self, deadline: Duration) -> u64 {
        let Writer {
            shared,
            sink,
            mut task,
        } = self;
        let before = shared.written.load(Ordering::Acquire);
        let until = Instant::now() + deadline;
        let _ = shared.deadline.set(until);
        shared.closing.store(true, Ordering::Release);
        shared.wake.notify_one();
        match tokio::time::timeout_at(until + ABORT_GRACE, &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "{}: writer task failed", shared.name),
            Err(_) => {
                task.abort();
                let lost = shared.queued.swap(0, Ordering::AcqRel);
                shared.dropped.fetch_add(lost, Ordering::Relaxed);
                tracing::error!(
                    rows = lost,
                    "{}: writer did not finish by the shutdown deadline; rows not recorded",
                    shared.name
                );
            }
        }
        let written = shared
            .written
            .load(Ordering::Acquire)
            .saturating_sub(before);
        // The rows are durable already; finishing (a checkpoint) gets the time left, but at
        // least a moment.
        let left = until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(500));
        sink.finish(left).await;
        written
    }
}

/// The writer task's state.
struct Task<S: Sink> {
    sink: Arc<S>,
    batch: usize,
    linger: Duration,
    rx: mpsc::Receiver<Msg<S::Row>>,
    shared: Arc<Shared>,
    /// The channel is closed (shutdown): what is left is drained, then the task ends.
    closed: bool,
}

impl<S: Sink> Task<S> {
    async fn run(mut self) {
        let mut batch: Vec<S::Row> = Vec::with_capacity(self.batch);
        let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
        let mut buf: Vec<Msg<S::Row>> = Vec::with_capacity(self.batch);
        loop {
            if !self.closed && self.shared.closing.load(Ordering::Acquire) {
                // Senders now fail; messages already queued are still received.
                self.rx.close();
                self.closed = true;
            }
            // Wait for the first message, or for shutdown to begin.
            let n = tokio::select! {
                n = self.rx.recv_many(&mut buf, self.batch) => n,
                () = self.shared.wake.notified(), if !self.closed => continue,
            };
            if n == 0 {
                break; // closed and drained, or every handle dropped
            }
            absorb(&mut buf, &mut batch, &mut waiters);
            // Group commit: unless the batch is already full or a flush is waiting, sleep for
            // `linger` and then take what arrived. Sleeping (rather than receiving row by row)
            // means senders do not wake this task for every row: one wakeup per commit.
            if batch.len() < self.batch && waiters.is_empty() && !self.closed {
                tokio::select! {
                    () = tokio::time::sleep(self.linger) => {}
                    () = self.shared.wake.notified() => {}
                }
            }
            while batch.len() < self.batch {
                let room = self.batch - batch.len();
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
    async fn commit(&self, batch: &[S::Row]) -> bool {
        if batch.is_empty() {
            return true;
        }
        let name = self.shared.name;
        let n = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let mut backoff = BACKOFF_START;
        loop {
            let attempt = self.sink.commit(batch);
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
                Ok(()) => {
                    let s = &self.shared;
                    s.written.fetch_add(n, Ordering::AcqRel);
                    s.queued.fetch_sub(n, Ordering::Relaxed);
                    if !s.healthy.swap(true, Ordering::Relaxed) {
                        tracing::info!("{name}: the database accepts writes again");
                    }
                    return true;
                }
                Err(e) => {
                    self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                    self.shared.healthy.store(false, Ordering::Relaxed);
                    // The error only: row contents never reach the log.
                    tracing::warn!(error = %e, rows = n, retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX), "{name}: commit failed; rows kept, retrying");
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
            "{}: the database kept failing until the shutdown deadline; rows not recorded",
            self.shared.name
        );
    }
}

/// Moves received messages into the batch (rows) and the flush waiters.
fn absorb<R>(buf: &mut Vec<Msg<R>>, batch: &mut Vec<R>, waiters: &mut Vec<oneshot::Sender<()>>) {
    for m in buf.drain(..) {
        match m {
            Msg::Row(r) => batch.push(r),
            Msg::Flush(w) => waiters.push(w),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A sink that keeps committed batches in memory and fails while `failing` is set.
    #[derive(Default)]
    struct Memory {
        batches: Mutex<Vec<Vec<u32>>>,
        failing: AtomicBool,
        finished: AtomicBool,
    }

    impl Sink for Arc<Memory> {
        type Row = u32;
        type Error = &'static str;
        async fn commit(&self, rows: &[u32]) -> Result<(), &'static str> {
            if self.failing.load(Ordering::SeqCst) {
                return Err("disk full");
            }
            self.batches.lock().expect("lock").push(rows.to_vec());
            Ok(())
        }
        async fn finish(&self, _left: Duration) {
            self.finished.store(true, Ordering::SeqCst);
        }
    }

    fn committed(m: &Memory) -> Vec<u32> {
        m.batches
            .lock()
            .expect("lock")
            .iter()
            .flatten()
            .copied()
            .collect()
    }

    #[tokio::test]
    async fn rows_are_grouped_into_few_commits() {
        let mem = Arc::new(Memory::default());
        let (q, w) = start(mem.clone(), Config::named("test"));
        for i in 0..1000 {
            q.record(i);
        }
        q.flush().await;
        assert_eq!(committed(&mem), (0..1000).collect::<Vec<_>>());
        let commits = mem.batches.lock().expect("lock").len();
        assert!(commits <= 8, "1000 rows in {commits} commits (batch 256)");
        assert_eq!(q.counters().written, 1000);
        assert_eq!(q.counters().queued, 0);
        w.shutdown(Duration::from_secs(1)).await;
        assert!(mem.finished.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_full_queue_counts_drops_and_try_record_hands_back() {
        let mem = Arc::new(Memory::default());
        mem.failing.store(true, Ordering::SeqCst);
        let cfg = Config {
            queue: 4,
            batch: 2,
            ..Config::named("test")
        };
        let (q, w) = start(mem.clone(), cfg);
        for i in 0..50 {
            q.record(i);
        }
        assert!(q.counters().dropped > 0, "a full queue drops and counts");
        let mut accepted = 0u64;
        let mut handed_back = false;
        for i in 0..50 {
            match q.try_record(i) {
                Ok(()) => accepted += 1,
                Err(back) => {
                    assert_eq!(back, i);
                    handed_back = true;
                }
            }
        }
        assert!(handed_back, "a full queue hands the row back");
        mem.failing.store(false, Ordering::SeqCst);
        w.shutdown(Duration::from_secs(5)).await;
        let c = q.counters();
        assert_eq!(c.queued, 0);
        assert_eq!(committed(&mem).len() as u64, c.written);
        // Every row recorded is either committed or counted as dropped: none vanish.
        assert_eq!(c.written + c.dropped, 50 + accepted);
    }

    #[tokio::test]
    async fn a_failing_database_keeps_rows_until_it_recovers() {
        let mem = Arc::new(Memory::default());
        mem.failing.store(true, Ordering::SeqCst);
        let (q, w) = start(mem.clone(), Config::named("test"));
        q.record(1);
        q.record(2);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let c = q.counters();
        assert!(!c.healthy);
        assert!(c.write_errors >= 1);
        assert_eq!(c.queued, 2, "rows stay queued while commits fail");
        mem.failing.store(false, Ordering::SeqCst);
        q.flush().await;
        assert_eq!(committed(&mem), vec![1, 2]);
        assert!(q.counters().healthy);
        w.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn shutdown_commits_the_queue_then_refuses() {
        let mem = Arc::new(Memory::default());
        let (q, w) = start(mem.clone(), Config::named("test"));
        for i in 0..10 {
            q.record(i);
        }
        let drained = w.shutdown(Duration::from_secs(1)).await;
        assert_eq!(drained, 10);
        assert_eq!(committed(&mem).len(), 10);
        q.record(99);
        assert_eq!(
            q.counters().dropped,
            1,
            "rows after shutdown are counted, not kept"
        );
    }

    #[tokio::test]
    async fn a_database_failing_past_the_deadline_counts_the_loss() {
        let mem = Arc::new(Memory::default());
        mem.failing.store(true, Ordering::SeqCst);
        let (q, w) = start(mem.clone(), Config::named("test"));
        for i in 0..5 {
            q.record(i);
        }
        w.shutdown(Duration::from_millis(300)).await;
        let c = q.counters();
        assert_eq!(c.dropped, 5);
        assert_eq!(c.queued, 0);
        assert!(committed(&mem).is_empty());
        assert!(mem.finished.load(Ordering::SeqCst), "finish runs even then");
    }
}
