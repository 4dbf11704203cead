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

pub async fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&format!("sqlite:{}", db_path(dir).display()))
        .await
        .expect("open store")
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
