//! Ledger durability: an outage of the database neither refunds budgets after a restart nor,
//! with `LEDGER_FAIL_CLOSED`, lets budgeted keys spend unrecorded; old rows are pruned under
//! `LEDGER_RETENTION_DAYS`.

use std::time::Duration;

use hero_aibroker_testkit::FakeProvider;
use serde_json::json;
use sqlx::Connection;

use crate::harness::*;

async fn ledger_healthy(b: &Broker) -> bool {
    b.get("/health").await.json["ledger"]["healthy"] == true
}

/// The database is write-locked by another process for a while: rows beyond the small queue
/// are dropped, yet their spend reaches the store once it recovers and survives a restart;
/// meanwhile a key with a budget is refused (fail closed), one without is served.
#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_outage_refunds_no_budget_and_can_fail_closed() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake)
        .env("LEDGER_QUEUE", "2")
        .env("LEDGER_BATCH", "1")
        .env("LEDGER_FAIL_CLOSED", "true")
        .start()
        .await;
    let (_, budgeted) = create_key(&b, json!({"name": "budgeted", "budget_usd": 100.0})).await;
    let (_, open) = create_key(&b, json!({"name": "open"})).await;
    let r = b
        .post_key("/v1/chat/completions", &chat_body("chat"), &budgeted)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Another process takes SQLite's write lock and keeps it.
    let url = format!("sqlite://{}", b.db_path().display());
    let mut lock = sqlx::SqliteConnection::connect(&url).await.expect("open");
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut lock)
        .await
        .expect("lock");
    for _ in 0..8 {
        let r = b
            .post_key("/v1/chat/completions", &chat_body("chat"), &open)
            .await;
        assert_eq!(r.status, 200, "served while the ledger waits: {}", r.text);
    }
    assert!(
        wait_until(Duration::from_secs(20), async || !ledger_healthy(&b).await).await,
        "the ledger never noticed the lock"
    );
    let refused = b
        .post_key("/v1/chat/completions", &chat_body("chat"), &budgeted)
        .await;
    let msg = refused.assert_error(503, "overloaded");
    assert!(msg.contains("LEDGER_FAIL_CLOSED"), "{msg}");
    let r = b
        .post_key("/v1/chat/completions", &chat_body("chat"), &open)
        .await;
    assert_eq!(r.status, 200, "a key without a budget is still served");
    let before = spent_of(&b.rpc("keys.list", json!([])).await, "open");
    assert!(before > 0.0);
    assert!(
        b.get("/health").await.json["ledger"]["dropped"].as_u64() > Some(0),
        "rows were dropped"
    );

    sqlx::query("ROLLBACK")
        .execute(&mut lock)
        .await
        .expect("unlock");
    drop(lock);
    assert!(
        wait_until(Duration::from_secs(30), async || ledger_healthy(&b).await).await,
        "the ledger recovered"
    );
    let r = b
        .post_key("/v1/chat/completions", &chat_body("chat"), &budgeted)
        .await;
    assert_eq!(r.status, 200, "served again once it recovered: {}", r.text);

    let mut b = b;
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(15)).await.success());
    let dir = b.into_dir();
    let b = Start::with_fake(&fake).in_dir(dir).start().await;
    let after = spent_of(&b.rpc("keys.list", json!([])).await, "open");
    assert!(
        (after - before).abs() < 1e-9,
        "spend after the restart {after} != before {before}: dropped rows refunded it"
    );
}

/// `LEDGER_RETENTION_DAYS` prunes rows older than the window at start and keeps the rest.
#[tokio::test(flavor = "multi_thread")]
async fn old_rows_are_pruned_under_the_retention_setting() {
    let fake = FakeProvider::start().await;
    let mut b = Start::with_fake(&fake).start().await;
    for _ in 0..3 {
        assert_eq!(
            b.post("/v1/chat/completions", &chat_body("chat"))
                .await
                .status,
            200
        );
    }
    b.wait_rows(3).await;
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(15)).await.success());
    // Two of the rows are made 40 days old.
    let url = format!("sqlite://{}", b.db_path().display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
    sqlx::query(
        "UPDATE request_logs SET started_ms = started_ms - 40 * 86400000 \
         WHERE id IN (SELECT id FROM request_logs ORDER BY started_ms LIMIT 2)",
    )
    .execute(&mut conn)
    .await
    .expect("age rows");
    conn.close().await.expect("close");

    let dir = b.into_dir();
    let b = Start::with_fake(&fake)
        .env("LEDGER_RETENTION_DAYS", "30")
        .in_dir(dir)
        .start()
        .await;
    let pruned = wait_until(Duration::from_secs(10), async || {
        let page = b.rpc("usage.logs", json!({"query": {"limit": 100}})).await;
        page["rows"].as_array().map(Vec::len) == Some(1)
    })
    .await;
    assert!(pruned, "the two old rows were pruned, the recent one kept");
}
