//! The ledger writer (batching, flush, shutdown drain, queue overflow, recovery from a locked
//! database) on temporary SQLite files.

use std::time::Duration;

use hero_aibroker_lib::accounting::ledger::{Ledger, LedgerConfig};
use hero_aibroker_lib::accounting::store::{Store, StoreOptions};
use hero_aibroker_sdk::admin::LogQuery;

mod common;
use common::*;

// ---- the ledger writer ----

#[tokio::test]
async fn recorded_rows_are_committed_by_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    let (ledger, writer) = Ledger::start(store.clone(), LedgerConfig::default());
    for i in 0..1000 {
        ledger.record(row(i));
    }
    ledger.flush().await;
    assert_eq!(store.count_logs().await.expect("count"), 1000);
    let h = ledger.health();
    assert_eq!(
        (h.queued, h.written, h.dropped, h.write_errors, h.healthy),
        (0, 1000, 0, 0, true)
    );
    // A flush with nothing queued returns too.
    ledger.flush().await;
    assert_eq!(writer.shutdown(Duration::from_secs(10)).await, 0);
}

#[tokio::test]
async fn shutdown_drains_every_queued_row_then_refuses_more() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    let (ledger, writer) = Ledger::start(store.clone(), LedgerConfig::default());
    for i in 0..5000 {
        ledger.record(row(i));
    }
    assert_eq!(writer.shutdown(Duration::from_secs(30)).await, 5000);
    assert_eq!(store.count_logs().await.expect("count"), 5000);

    ledger.record(row(9999));
    ledger.flush().await; // the writer is gone: returns at once
    let h = ledger.health();
    assert_eq!((h.written, h.dropped, h.queued), (5000, 1, 0));
    assert_eq!(store.count_logs().await.expect("count"), 5000);
}

#[tokio::test]
async fn sqlite_a_locked_database_keeps_rows_counts_drops_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    open(&dir).await.close().await;
    let opts = StoreOptions {
        busy_timeout: Duration::from_millis(50),
        ..Default::default()
    };
    let store = Store::open_with(path.to_str().expect("utf-8"), &opts)
        .await
        .expect("open");

    // Another connection holds the write lock: every commit of the ledger fails with "busy".
    let mut locker = raw(&path).await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut locker)
        .await
        .expect("lock");

    let cfg = LedgerConfig {
        queue: 8,
        batch: 4,
        linger: Duration::from_millis(1),
    };
    let (ledger, writer) = Ledger::start(store.clone(), cfg);
    // The test runtime is single-threaded: the writer has not run yet, so exactly the queue
    // (8 rows) is accepted and the rest is counted as dropped.
    for i in 0..50 {
        ledger.record(row(i));
    }
    let h = ledger.health();
    assert_eq!((h.queued, h.dropped), (8, 42));

    let mut waited = 0;
    while ledger.health().write_errors == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
        assert!(waited < 6000, "the writer never tried to commit");
    }
    let h = ledger.health();
    assert!(!h.healthy);
    assert_eq!(
        (h.queued, h.written, h.dropped),
        (8, 0, 42),
        "failed commits keep their rows"
    );

    sqlx::query("ROLLBACK")
        .execute(&mut locker)
        .await
        .expect("unlock");
    ledger.flush().await;
    let h = ledger.health();
    assert!(h.healthy);
    assert!(h.write_errors >= 1);
    assert_eq!((h.queued, h.written, h.dropped), (0, 8, 42));
    assert_eq!(store.count_logs().await.expect("count"), 8);
    let ids: Vec<String> = store
        .logs(&LogQuery::default())
        .await
        .expect("logs")
        .rows
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, (0..8).rev().map(|i| row(i).id).collect::<Vec<_>>());
    assert_eq!(writer.shutdown(Duration::from_secs(10)).await, 0);
}

#[tokio::test]
async fn sqlite_shutdown_gives_up_only_at_its_deadline_and_counts_the_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    open(&dir).await.close().await;
    let opts = StoreOptions {
        busy_timeout: Duration::from_millis(20),
        ..Default::default()
    };
    let store = Store::open_with(path.to_str().expect("utf-8"), &opts)
        .await
        .expect("open");
    let mut locker = raw(&path).await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut locker)
        .await
        .expect("lock");

    let (ledger, writer) = Ledger::start(store.clone(), LedgerConfig::default());
    for i in 0..10 {
        ledger.record(row(i));
    }
    assert_eq!(writer.shutdown(Duration::from_millis(300)).await, 0);
    let h = ledger.health();
    assert_eq!((h.queued, h.written, h.dropped), (0, 0, 10));
    assert!(!h.healthy);
    sqlx::query("ROLLBACK")
        .execute(&mut locker)
        .await
        .expect("unlock");
    assert_eq!(store.count_logs().await.expect("count"), 0);
}
