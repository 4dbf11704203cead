//! The store (migrations, ledger rows, keys, priorities), on temporary SQLite files; the
//! ledger writer is in `ledger_writer.rs`.

use std::os::unix::fs::PermissionsExt;

use hero_aibroker_lib::accounting::store::{KeyRow, Store, StoreError};
use hero_aibroker_sdk::admin::{
    AttemptLog, GroupBy, LogQuery, RequestLog, RequestStatus, UsageQuery,
};
use sqlx::{Connection, Row};

mod common;
use common::*;

// ---- opening and migrations ----

#[tokio::test]
async fn sqlite_open_creates_private_files_and_reopen_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = open(&dir).await;
    assert_eq!(store.describe(), format!("sqlite:{}", path.display()));
    let dir_mode = std::fs::metadata(path.parent().expect("parent"))
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    let file_mode = std::fs::metadata(&path)
        .expect("db file")
        .permissions()
        .mode();
    assert_eq!(file_mode & 0o777, 0o600);
    assert_eq!(store.count_logs().await.expect("count"), 0);
    assert_eq!(store.insert_logs(&[row(1)]).await.expect("insert"), 1);
    store.close().await;

    // Plain path this time; the migration is not applied twice and the data is still there.
    let again = Store::open(path.to_str().expect("utf-8"))
        .await
        .expect("reopen");
    assert_eq!(again.count_logs().await.expect("count"), 1);
    let mut conn = raw(&path).await;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
        .fetch_all(&mut conn)
        .await
        .expect("versions");
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    for table in [
        "request_logs",
        "api_keys",
        "provider_priority",
        "mothers",
        "key_state",
        "circuit_state",
    ] {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
        )
        .bind(table)
        .fetch_one(&mut conn)
        .await
        .expect("table");
        assert_eq!(n, 1, "table {table}");
    }
    again.close().await;
}

#[tokio::test]
async fn newer_schema_is_refused_with_our_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    open(&dir).await.close().await;
    let checksum = if on_pg() { "'\\x00'" } else { "X'00'" };
    exec_raw(
        &dir,
        &format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99999, 'from the future', TRUE, {checksum}, 0)"
        ),
    )
    .await;

    let err = Store::open(&store_url(&dir).await)
        .await
        .expect_err("newer schema must be refused");
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 99999,
                known: 8
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the database schema (version 99999) is newer than this hero_aibroker knows (version 8); \
         upgrade hero_aibroker or use another database"
    );
}

#[tokio::test]
async fn sqlite_unusable_locations_are_one_line_errors() {
    let err = Store::open("postgres://bob:hunter2@db.local/broker")
        .await
        .expect_err("not sqlite");
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot open the database postgres://bob:***@db.local/broker: "),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"));

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let err = Store::open(&format!("sqlite:{}/db.sqlite", file.display()))
        .await
        .expect_err("parent is a file");
    assert!(
        err.to_string()
            .starts_with("cannot open the database sqlite:"),
        "{err}"
    );
}

// ---- ledger rows ----

#[tokio::test]
async fn insert_logs_is_idempotent_and_charges_keys_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    store
        .insert_key(&key("key_a", "sk-hab-aaaa1111", 1))
        .await
        .expect("key");
    let mut rows: Vec<RequestLog> = (0..4).map(row).collect();
    rows[0].key_id = Some("key_a".into());
    rows[0].cost_usd = 0.5;
    rows[1].key_id = Some("key_a".into());
    rows[1].cost_usd = 0.25;
    rows[2].key_id = Some("key_a".into());
    rows[2].cost_usd = 0.0;
    rows[3].key_id = Some("key_unknown".into());

    assert_eq!(store.insert_logs(&rows).await.expect("first"), 4);
    assert_eq!(store.insert_logs(&rows).await.expect("retry"), 0);
    assert_eq!(store.count_logs().await.expect("count"), 4);
    assert_eq!(store.keys().await.expect("keys")[0].spent_usd, 0.75);

    // A batch mixing stored and new rows (and a duplicate inside the batch) charges only the new.
    let mut fresh = row(10);
    fresh.key_id = Some("key_a".into());
    fresh.cost_usd = 1.0;
    let batch = vec![rows[0].clone(), fresh.clone(), fresh];
    assert_eq!(store.insert_logs(&batch).await.expect("mixed"), 1);
    assert_eq!(store.keys().await.expect("keys")[0].spent_usd, 1.75);
    assert_eq!(store.insert_logs(&[]).await.expect("empty"), 0);
}

#[tokio::test]
async fn rows_round_trip_and_are_found_by_id_or_response_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    let mut full = row(1);
    full.key_id = Some("key_a".into());
    full.upstream_cost_usd = Some(0.0021);
    full.attempts.insert(
        0,
        AttemptLog {
            candidate: "groq-1/llama".into(),
            outcome: "rate_limited".into(),
            ..AttemptLog::default()
        },
    );
    full.prompt_tokens = u64::MAX; // saturates to i64::MAX instead of panicking
    let mut bare = row(2);
    bare.response_id = None;
    bare.model = None;
    bare.provider = None;
    bare.upstream_model = None;
    bare.ttfb_ms = None;
    bare.attempts.clear();
    bare.status = RequestStatus::Rejected;
    bare.http_status = 429;
    bare.error = Some("rate limit of key key_a".into());
    store
        .insert_logs(&[full.clone(), bare.clone()])
        .await
        .expect("insert");

    let got = store
        .log("req_000001")
        .await
        .expect("by id")
        .expect("found");
    assert_eq!(got.prompt_tokens, i64::MAX as u64);
    assert_eq!(
        got,
        RequestLog {
            prompt_tokens: i64::MAX as u64,
            ..full.clone()
        }
    );
    assert_eq!(
        store.log("chatcmpl-1").await.expect("by response id"),
        Some(got)
    );
    assert_eq!(store.log("req_000002").await.expect("bare"), Some(bare));
    assert_eq!(store.log("nope").await.expect("missing"), None);
}

#[tokio::test]
async fn logs_filter_and_page_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    let rows: Vec<RequestLog> = (0..7)
        .map(|i| {
            let mut r = row(i);
            if i >= 4 {
                r.requested_model = "auto".into();
                r.model = Some("claude-sonnet".into());
                r.provider = Some("anthropic-1".into());
                r.client = "10.0.0.9".into();
                r.key_id = Some("key_b".into());
            }
            if i == 5 {
                r.status = RequestStatus::Error;
            }
            r
        })
        .collect();
    store.insert_logs(&rows).await.expect("insert");
    let ids = |page: &hero_aibroker_sdk::admin::LogPage| {
        page.rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
    };

    let all = store.logs(&LogQuery::default()).await.expect("all");
    assert_eq!(
        ids(&all),
        [
            "req_000006",
            "req_000005",
            "req_000004",
            "req_000003",
            "req_000002",
            "req_000001",
            "req_000000"
        ]
    );
    assert_eq!(all.next_offset, None);

    let p1 = store
        .logs(&LogQuery {
            limit: Some(3),
            ..Default::default()
        })
        .await
        .expect("p1");
    assert_eq!(ids(&p1), ["req_000006", "req_000005", "req_000004"]);
    assert_eq!(p1.next_offset, Some(3));
    let p2 = store
        .logs(&LogQuery {
            limit: Some(3),
            offset: p1.next_offset,
            ..Default::default()
        })
        .await
        .expect("p2");
    assert_eq!(ids(&p2), ["req_000003", "req_000002", "req_000001"]);
    assert_eq!(p2.next_offset, Some(6));
    let p3 = store
        .logs(&LogQuery {
            limit: Some(3),
            offset: p2.next_offset,
            ..Default::default()
        })
        .await
        .expect("p3");
    assert_eq!(ids(&p3), ["req_000000"]);
    assert_eq!(p3.next_offset, None);
    let exact = store
        .logs(&LogQuery {
            limit: Some(7),
            ..Default::default()
        })
        .await
        .expect("exact");
    assert_eq!((exact.rows.len(), exact.next_offset), (7, None));

    // `model` matches the requested model or the one that served.
    let q = |f: fn(&mut LogQuery)| {
        let mut q = LogQuery::default();
        f(&mut q);
        q
    };
    let by_served = store
        .logs(&q(|q| q.model = Some("claude-sonnet".into())))
        .await
        .expect("model");
    assert_eq!(ids(&by_served), ["req_000006", "req_000005", "req_000004"]);
    let by_requested = store
        .logs(&q(|q| q.model = Some("auto".into())))
        .await
        .expect("requested");
    assert_eq!(by_requested.rows.len(), 3);
    assert_eq!(
        store
            .logs(&q(|q| q.provider = Some("openai-1".into())))
            .await
            .expect("provider")
            .rows
            .len(),
        4
    );
    assert_eq!(
        store
            .logs(&q(|q| q.key_id = Some("key_b".into())))
            .await
            .expect("key")
            .rows
            .len(),
        3
    );
    assert_eq!(
        store
            .logs(&q(|q| q.client = Some("10.0.0.9".into())))
            .await
            .expect("client")
            .rows
            .len(),
        3
    );
    let errors = store
        .logs(&q(|q| q.status = Some(RequestStatus::Error)))
        .await
        .expect("status");
    assert_eq!(ids(&errors), ["req_000005"]);
    // Filters are AND-ed; the time window is [from, to).
    let window = LogQuery {
        from_ms: Some(1_000_002),
        to_ms: Some(1_000_005),
        provider: Some("openai-1".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(&store.logs(&window).await.expect("window")),
        ["req_000003", "req_000002"]
    );
    let none = store
        .logs(&q(|q| q.client = Some("x' OR '1'='1".into())))
        .await
        .expect("injection");
    assert!(none.rows.is_empty());
}

#[tokio::test]
async fn usage_groups_sum_and_count_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    let mut rows = Vec::new();
    for i in 0..6 {
        let mut r = row(i);
        r.cost_usd = 0.5;
        r.latency_ms = 100.0 * (i as f64 + 1.0);
        if i >= 3 {
            r.requested_model = "cheap".into();
            r.provider = Some("groq-1".into());
            r.key_id = Some("key_a".into());
            r.client = "10.0.0.1".into();
            r.cost_usd = 0.1;
            r.prompt_tokens = 10;
            r.completion_tokens = 1;
        }
        if i == 4 {
            r.status = RequestStatus::Partial;
        }
        if i == 5 {
            r.status = RequestStatus::Rejected;
            r.provider = None;
        }
        rows.push(r);
    }
    store.insert_logs(&rows).await.expect("insert");

    let by_model = store
        .usage(&UsageQuery {
            group_by: GroupBy::Model,
            ..Default::default()
        })
        .await
        .expect("model");
    assert_eq!(by_model.len(), 2);
    let g = &by_model[0];
    assert_eq!((g.group.as_str(), g.requests, g.errors), ("gpt-4o", 3, 0));
    assert_eq!((g.prompt_tokens, g.completion_tokens), (300, 60));
    assert!((g.cost_usd - 1.5).abs() < 1e-9);
    assert!((g.avg_latency_ms - 200.0).abs() < 1e-9);
    assert_eq!((g.first_ms, g.last_ms), (1_000_000, 1_000_002));
    let g = &by_model[1];
    assert_eq!(
        (
            g.group.as_str(),
            g.requests,
            g.errors,
            g.prompt_tokens,
            g.completion_tokens
        ),
        ("cheap", 3, 2, 30, 3)
    );
    assert!((g.cost_usd - 0.3).abs() < 1e-9);
    assert_eq!((g.first_ms, g.last_ms), (1_000_003, 1_000_005));

    let by_provider = store
        .usage(&UsageQuery {
            group_by: GroupBy::Provider,
            ..Default::default()
        })
        .await
        .expect("p");
    let summary: Vec<(&str, u64, u64)> = by_provider
        .iter()
        .map(|g| (g.group.as_str(), g.requests, g.errors))
        .collect();
    assert_eq!(summary, [("openai-1", 3, 0), ("groq-1", 2, 1), ("", 1, 1)]);

    let by_key = store
        .usage(&UsageQuery {
            group_by: GroupBy::Key,
            ..Default::default()
        })
        .await
        .expect("key");
    let summary: Vec<(&str, u64)> = by_key
        .iter()
        .map(|g| (g.group.as_str(), g.requests))
        .collect();
    assert_eq!(summary, [("", 3), ("key_a", 3)]);
    let only_a = store
        .usage(&UsageQuery {
            group_by: GroupBy::Key,
            key_id: Some("key_a".into()),
            ..Default::default()
        })
        .await
        .expect("one key");
    assert_eq!(only_a.len(), 1, "{only_a:?}");
    assert_eq!((only_a[0].group.as_str(), only_a[0].requests), ("key_a", 3));

    let window = UsageQuery {
        group_by: GroupBy::Client,
        from_ms: Some(1_000_001),
        to_ms: Some(1_000_004),
        key_id: None,
    };
    let by_client = store.usage(&window).await.expect("client");
    let summary: Vec<(&str, u64)> = by_client
        .iter()
        .map(|g| (g.group.as_str(), g.requests))
        .collect();
    assert_eq!(summary, [("uds:uid=1000,pid=42", 2), ("10.0.0.1", 1)]);

    let empty = UsageQuery {
        from_ms: Some(5_000_000),
        ..Default::default()
    };
    assert!(store.usage(&empty).await.expect("empty").is_empty());
}

// ---- keys and priorities ----

#[tokio::test]
async fn keys_round_trip_store_only_the_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = open(&dir).await;
    let secret = "sk-hab-CANARYSECRETCANARYSECRET-9f3e";
    let mut a = key("key_a", secret, 10);
    let mut b = key("key_b", "sk-hab-bbbbbbbbbbbbbbbbbbbbbbbb-2222", 20);
    b.allowed_models = None;
    b.budget_usd = None;
    b.rpm = Some(u64::MAX);
    store.insert_key(&b).await.expect("b");
    store.insert_key(&a).await.expect("a");
    let mut expected_b = b.clone();
    expected_b.rpm = Some(i64::MAX as u64);
    assert_eq!(
        store.keys().await.expect("keys"),
        vec![a.clone(), expected_b]
    );
    assert!(store.insert_key(&a).await.is_err(), "duplicate id");

    // Spend comes from the ledger; update_key writes everything else.
    let mut charged = row(1);
    charged.key_id = Some("key_a".into());
    charged.cost_usd = 2.5;
    store.insert_logs(&[charged]).await.expect("charge");
    a.name = "renamed".into();
    a.revoked = true;
    a.tpm = Some(1000);
    a.allowed_models = None;
    a.spent_usd = 99.0;
    store.update_key(&a).await.expect("update");
    let got = store
        .keys()
        .await
        .expect("keys")
        .into_iter()
        .find(|k| k.id == "key_a")
        .expect("a");
    assert_eq!(
        got,
        KeyRow {
            spent_usd: 2.5,
            ..a.clone()
        }
    );
    let missing = store
        .update_key(&KeyRow {
            id: "key_zz".into(),
            ..a
        })
        .await
        .expect_err("no such key");
    assert!(
        matches!(missing, StoreError::NoSuchKey(ref id) if id == "key_zz"),
        "{missing:?}"
    );

    if on_pg() {
        // The raw column check below reads the SQLite file.
        return;
    }
    let mut conn = raw(&path).await;
    let stored: String = sqlx::query("SELECT hash FROM api_keys WHERE id = 'key_a'")
        .fetch_one(&mut conn)
        .await
        .expect("hash")
        .get("hash");
    assert_eq!(stored, hex::encode(got.hash));
    assert_eq!(stored.len(), 64);
    conn.close().await.expect("close raw");
    store.close().await;
    for file in std::fs::read_dir(path.parent().expect("dir")).expect("ls") {
        let bytes = std::fs::read(file.expect("entry").path()).expect("read");
        assert!(
            !bytes.windows(13).any(|w| w == b"CANARYSECRETC"),
            "the secret reached the database"
        );
    }
}

#[tokio::test]
async fn priorities_set_overwrite_and_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    assert!(store.priorities().await.expect("empty").is_empty());
    store.set_priority("openai", Some(5)).await.expect("set");
    store.set_priority("groq", Some(-1)).await.expect("set");
    store
        .set_priority("openai", Some(7))
        .await
        .expect("overwrite");
    assert_eq!(
        store.priorities().await.expect("list"),
        vec![("groq".into(), -1), ("openai".into(), 7)]
    );
    store.set_priority("openai", None).await.expect("clear");
    store
        .set_priority("never-set", None)
        .await
        .expect("clear absent");
    assert_eq!(
        store.priorities().await.expect("list"),
        vec![("groq".into(), -1)]
    );
}
