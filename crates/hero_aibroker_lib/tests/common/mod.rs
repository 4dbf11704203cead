//! Helpers shared by the store and ledger-writer tests: temporary stores, raw connections,
//! sample rows and keys.
#![allow(dead_code, reason = "each test binary uses its own subset")]

use std::path::{Path, PathBuf};

use hero_aibroker_lib::accounting::store::{KeyRow, Store};
use hero_aibroker_sdk::admin::{AttemptLog, RequestLog, RequestStatus, RouteTrace, TraceCandidate};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

pub fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state").join("broker.db")
}

/// The PostgreSQL server these tests run on instead of SQLite files, when
/// `HERO_AIBROKER_TEST_PG` holds its URL (`postgres://user@host/postgres…`): scripts/test.sh
/// runs the store and ledger test binaries a second time that way, skipping the tests named
/// `sqlite_…` (file modes, WAL, SQLite's write lock).
pub fn pg_base() -> Option<String> {
    #[expect(
        clippy::disallowed_methods,
        reason = "which database the test binary runs on is chosen by its runner"
    )]
    std::env::var("HERO_AIBROKER_TEST_PG")
        .ok()
        .filter(|u| !u.is_empty())
}

pub fn on_pg() -> bool {
    pg_base().is_some()
}

/// The store URL of a test's directory: its SQLite file, or on PostgreSQL a database of its
/// own, named after the directory (created on first use, so reopening finds the same data).
pub async fn store_url(dir: &tempfile::TempDir) -> String {
    let Some(base) = pg_base() else {
        return format!("sqlite:{}", db_path(dir).display());
    };
    let name: String = dir
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("x")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    let name = format!("hab_{name}");
    let mut admin = sqlx::postgres::PgConnection::connect(&base)
        .await
        .expect("connect to HERO_AIBROKER_TEST_PG");
    let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .expect("pg_database");
    if exists == 0 {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create database");
    }
    admin.close().await.expect("close");
    pg_url(&base, &name)
}

/// `base` with its database name replaced by `name`.
pub fn pg_url(base: &str, name: &str) -> String {
    let (head, query) = base.split_once('?').unwrap_or((base, ""));
    let (server, _) = head.rsplit_once('/').expect("postgres://…/database");
    if query.is_empty() {
        format!("{server}/{name}")
    } else {
        format!("{server}/{name}?{query}")
    }
}

pub async fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&store_url(dir).await)
        .await
        .expect("open store")
}

/// Runs one statement on the test's database through a connection of its own (what another
/// process would do behind the broker's back).
pub async fn exec_raw(dir: &tempfile::TempDir, sql: &str) {
    let url = store_url(dir).await;
    if on_pg() {
        let mut c = sqlx::postgres::PgConnection::connect(&url)
            .await
            .expect("raw connect");
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut c)
            .await
            .expect("raw statement");
    } else {
        let mut c = raw(&db_path(dir)).await;
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut c)
            .await
            .expect("raw statement");
    }
}

/// A second, independent connection to the same file (what another process would see).
pub async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .expect("raw connect")
}

pub fn row(i: usize) -> RequestLog {
    RequestLog {
        id: format!("req_{i:06}"),
        response_id: Some(format!("chatcmpl-{i}")),
        started_ms: 1_000_000 + i64::try_from(i).expect("small"),
        ended_ms: 1_000_500 + i64::try_from(i).expect("small"),
        client: "uds:uid=1000,pid=42".into(),
        key_id: None,
        endpoint: "/v1/chat/completions".into(),
        requested_model: "gpt-4o".into(),
        model: Some("gpt-4o".into()),
        provider: Some("openai-1".into()),
        upstream_model: Some("gpt-4o-2024-08-06".into()),
        stream: i.is_multiple_of(2),
        attempts: vec![AttemptLog {
            candidate: "openai-1/gpt-4o".into(),
            outcome: "ok".into(),
            ..AttemptLog::default()
        }],
        prompt_tokens: 100,
        completion_tokens: 20,
        cached_tokens: 5,
        reasoning_tokens: 0,
        cost_usd: 0.001,
        upstream_cost_usd: None,
        list_cost_usd: Some(0.001),
        audio_seconds: None,
        characters: None,
        latency_ms: 500.0,
        ttfb_ms: Some(120.5),
        status: RequestStatus::Ok,
        http_status: 200,
        error: None,
        trace: i.is_multiple_of(3).then(|| RouteTrace {
            requested: "gpt-4o".into(),
            strategy: "priority".into(),
            candidates: vec![TraceCandidate {
                model: "gpt-4o".into(),
                provider: "openai".into(),
                instance: Some("openai-1".into()),
                upstream_model: "gpt-4o-2024-08-06".into(),
                rank: Some(0),
                ..TraceCandidate::default()
            }],
            ..RouteTrace::default()
        }),
    }
}

pub fn key(id: &str, secret: &str, created_ms: i64) -> KeyRow {
    use sha2::Digest;
    KeyRow {
        id: id.into(),
        name: format!("key {id}"),
        hash: sha2::Sha256::digest(secret.as_bytes()).into(),
        hint: format!("sk-hab-…{}", &secret[secret.len() - 4..]),
        allowed_models: Some(vec!["gpt-4o".into(), "claude-sonnet".into()]),
        rpm: Some(60),
        tpm: None,
        max_concurrent: Some(4),
        budget_usd: Some(10.0),
        spent_usd: 0.0,
        revoked: false,
        created_ms,
    }
}
