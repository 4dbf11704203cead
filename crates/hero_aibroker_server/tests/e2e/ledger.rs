//! The usage ledger: one row per request with tokens, cost and attempts; nothing lost on
//! SIGTERM; a bounded loss on kill -9; usage REST endpoints.

use std::time::Duration;

use hero_aibroker_testkit::{Behavior, COMPLETION_TOKENS, FakeProvider, PROMPT_TOKENS, Rule};
use serde_json::{Value, json};

use crate::harness::*;

fn row<'a>(rows: &'a [Value], id: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no row {id} in {rows:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_has_a_row_with_tokens_cost_and_attempts() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake)
        .env("MAX_ATTEMPTS", "3")
        .env("RETRY_AFTER_CAP_MS", "50")
        .start()
        .await;

    let json_reply = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(json_reply.status, 200);
    let s = b.stream("/v1/chat/completions", &stream_body("chat")).await;
    assert!(s.ended_with_done());
    fake.script(Rule::for_key(
        "key-a",
        Behavior::Status {
            status: 429,
            retry_after: None,
        },
    ));
    let fallback = b.post("/v1/chat/completions", &chat_body("solo")).await;
    assert_eq!(fallback.status, 200);
    fake.clear_rules();
    fake.script(Rule::any(Behavior::Status {
        status: 500,
        retry_after: None,
    }));
    let failed = b.post("/v1/chat/completions", &chat_body("solo")).await;
    assert_eq!(failed.status, 502);
    let rejected = b.post("/v1/chat/completions", &chat_body("nope")).await;
    assert_eq!(rejected.status, 404);

    let rows = b.wait_rows(5).await;
    let cost = expected_cost(IN_COST, OUT_COST);

    let r = row(&rows, json_reply.header("x-aibroker-request-id"));
    assert_eq!(r["status"], "ok");
    assert_eq!(
        (r["prompt_tokens"].as_u64(), r["completion_tokens"].as_u64()),
        (Some(PROMPT_TOKENS), Some(COMPLETION_TOKENS))
    );
    assert!((r["cost_usd"].as_f64().expect("cost") - cost).abs() < 1e-12);
    assert_eq!(r["provider"], json_reply.header("x-aibroker-provider"));
    assert_eq!(r["upstream_model"], "up-chat");
    assert_eq!(r["requested_model"], "chat");
    assert_eq!(r["response_id"], json_reply.json["id"]);
    assert!(
        r["client"]
            .as_str()
            .expect("client")
            .starts_with("uds:uid="),
        "{r}"
    );
    assert!(r["latency_ms"].as_f64().expect("latency") > 0.0);

    let r = row(
        &rows,
        s.headers["x-aibroker-request-id"].to_str().expect("id"),
    );
    assert_eq!(r["stream"], true);
    assert_eq!(r["status"], "ok");
    assert_eq!(r["completion_tokens"], COMPLETION_TOKENS);
    assert!((r["cost_usd"].as_f64().expect("cost") - cost).abs() < 1e-12);

    let r = row(&rows, fallback.header("x-aibroker-request-id"));
    let attempts = r["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{r}");
    assert!(
        attempts[0]["outcome"]
            .as_str()
            .expect("o")
            .contains("HTTP 429"),
        "{r}"
    );
    assert_eq!(attempts[1]["outcome"], "ok");

    let r = rows
        .iter()
        .find(|r| r["status"] == "error")
        .expect("failed request row");
    assert_eq!(r["http_status"], 502);
    assert_eq!(r["attempts"].as_array().expect("attempts").len(), 3);
    assert!(r["error"].as_str().expect("error").contains("HTTP 500"));
    let r = rows
        .iter()
        .find(|r| r["status"] == "rejected")
        .expect("rejected request row");
    assert_eq!(r["http_status"], 404);
    assert_eq!(r["requested_model"], "nope");

    // usage.summary groups the same rows.
    let by_model = b
        .rpc("usage.summary", json!({"query": {"group_by": "model"}}))
        .await;
    let chat = by_model
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["group"] == "chat")
        .expect("chat group");
    assert_eq!(chat["requests"], 2);
    assert_eq!(chat["prompt_tokens"], 2 * PROMPT_TOKENS);
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_rest_endpoints() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    let rows = b.wait_rows(1).await;
    let client = rows[0]["client"].as_str().expect("client").to_owned();

    let u = b.get("/billing/usage").await;
    assert_eq!(u.status, 200, "{}", u.text);
    assert_eq!(u.json["total"]["requests"], 1);
    assert_eq!(u.json["groups"][0]["group"], "chat");
    let u = b.get("/billing/usage?group_by=provider").await;
    assert_eq!(
        u.json["groups"][0]["group"],
        r.header("x-aibroker-provider")
    );
    let u = b.get(&format!("/billing/usage/{client}")).await;
    assert_eq!(u.status, 200, "{}", u.text);
    assert_eq!(u.json["usage"]["requests"], 1);
    assert_eq!(u.json["recent"].as_array().expect("recent").len(), 1);
    b.get("/billing/usage/10.9.9.9")
        .await
        .assert_error(404, "not_found");

    let g = b
        .get(&format!(
            "/v1/generation?id={}",
            r.json["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.json["data"]["tokens_completion"], COMPLETION_TOKENS);
    assert!(
        (g.json["data"]["total_cost"].as_f64().expect("cost") - expected_cost(IN_COST, OUT_COST))
            .abs()
            < 1e-12
    );
    let g2 = b
        .get(&format!(
            "/v1/generation?id={}",
            r.header("x-aibroker-request-id")
        ))
        .await;
    assert_eq!(g2.json["data"]["id"], g.json["data"]["id"]);
    b.get("/v1/generation?id=nope")
        .await
        .assert_error(404, "not_found");
    b.get("/v1/generation")
        .await
        .assert_error(400, "invalid_request");

    let c = b.get("/v1/credits").await;
    assert!(
        (c.json["data"]["total_usage"].as_f64().expect("usage") - expected_cost(IN_COST, OUT_COST))
            .abs()
            < 1e-12
    );
    b.get("/v1/key").await.assert_error(401, "invalid_api_key");

    let m = b.get("/metrics").await;
    assert_eq!(m.status, 200);
    assert!(
        m.headers["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/plain")
    );
    assert!(
        m.text
            .contains(r#"hero_aibroker_requests_total{model="chat",provider="fake-"#),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("hero_aibroker_request_duration_seconds_bucket"),
        "{}",
        m.text
    );
    assert!(
        m.text.contains("hero_aibroker_in_flight_requests 0"),
        "{}",
        m.text
    );

    let d = b.get("/metrics/detailed").await;
    assert_eq!(d.status, 200, "{}", d.text);
    let c0 = &d.json["clients"][0];
    assert_eq!(c0["client"], client.as_str());
    assert_eq!(c0["requests"], 1);
    assert_eq!(c0["in_flight"], 0);
    assert_eq!(c0["last_requests"].as_array().expect("last").len(), 1);
    assert!(c0["first_request_ms"].as_i64().expect("first") > 0);
}

/// Fires `n` chat requests from `conc` tasks; returns how many got any HTTP answer.
/// `n` chat requests on `conc` connections until the broker stops answering; the request ids
/// (`x-aibroker-request-id`) of those answered in full.
async fn load(b: &Broker, n: usize, conc: usize) -> tokio::task::JoinHandle<Vec<String>> {
    let client = b.client.clone();
    tokio::spawn(async move {
        let per = n / conc;
        let mut tasks = Vec::new();
        for _ in 0..conc {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let mut answered = Vec::new();
                for _ in 0..per {
                    let r = client
                        .post(Broker::url("/v1/chat/completions"))
                        .json(&chat_body("chat"))
                        .send()
                        .await;
                    let Ok(r) = r else { break };
                    let id = r
                        .headers()
                        .get("x-aibroker-request-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    if r.bytes().await.is_err() {
                        break;
                    }
                    answered.push(id.expect("every answer names its request id"));
                }
                answered
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap_or_default());
        }
        all
    })
}

/// The ids of every row in the ledger.
async fn ids_in_db(path: &std::path::Path) -> std::collections::HashSet<String> {
    use sqlx::Connection;
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open db");
    let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM request_logs")
        .fetch_all(&mut conn)
        .await
        .expect("ids");
    ids.into_iter().map(|(id,)| id).collect()
}

async fn rows_in_db(path: &std::path::Path) -> u64 {
    let store = hero_aibroker_lib::accounting::store::Store::open(&path.display().to_string())
        .await
        .expect("open db");
    let n = store.count_logs().await.expect("count");
    store.close().await;
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_loses_no_row() {
    sigterm_under_load_loses_no_row_on(None).await;
}

/// SIGTERM in the middle of a load on the store at `database_url` (the broker's own SQLite file
/// when `None`): every answered request has its row once the broker has exited.
pub(crate) async fn sigterm_under_load_loses_no_row_on(database_url: Option<&str>) {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::DelayFirstByte(Duration::from_millis(
        5,
    ))));
    let start = Start::with_fake(&fake);
    let mut b = match database_url {
        Some(url) => start.env("DATABASE_URL", url),
        None => start,
    }
    .start()
    .await;
    let handle = load(&b, 4000, 16).await;
    // Stop in the middle of the load: once a few hundred calls went upstream.
    assert!(eventually(Duration::from_secs(20), || fake.call_count() >= 300).await);
    b.signal("TERM");
    let answered = handle.await.expect("load");
    assert!(
        b.wait_exit(Duration::from_secs(20)).await.success(),
        "{}",
        b.logs()
    );
    assert!(answered.len() > 50, "load ran: {}", answered.len());
    // Every request that got an answer has its own row (by id, not by count: a row of a
    // request cut at shutdown must not stand in for a lost one).
    let ids = match database_url {
        Some(url) => ids_in_pg(url).await,
        None => ids_in_db(&b.db_path()).await,
    };
    let missing: Vec<&String> = answered.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests have no ledger row: {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(5)]
    );
}

/// The ids of every row in the ledger of a PostgreSQL store.
async fn ids_in_pg(url: &str) -> std::collections::HashSet<String> {
    use sqlx::Connection;
    let mut conn = sqlx::postgres::PgConnection::connect(url)
        .await
        .expect("connect");
    let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM request_logs")
        .fetch_all(&mut conn)
        .await
        .expect("ids");
    ids.into_iter().map(|(id,)| id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_loses_at_most_the_queue_bound() {
    let fake = FakeProvider::start().await;
    let queue = 1024u64;
    let batch = 64u64;
    let mut b = Start::with_fake(&fake)
        .env("LEDGER_QUEUE", &queue.to_string())
        .env("LEDGER_BATCH", &batch.to_string())
        .start()
        .await;
    let handle = load(&b, 100_000, 16).await;
    // Kill in the middle of the load, once a few thousand calls went through.
    assert!(eventually(Duration::from_secs(30), || fake.call_count() >= 3000).await);
    // Rows the ledger refused because its queue was full are counted, not lost to the kill.
    let dropped = b.rpc("health", serde_json::json!([])).await["ledger"]["dropped"]
        .as_u64()
        .expect("dropped");
    b.signal("KILL");
    let answered = handle.await.expect("load").len() as u64;
    b.wait_exit(Duration::from_secs(5)).await;
    let rows = rows_in_db(&b.db_path()).await;
    assert!(answered > 500, "load ran: {answered}");
    // Rows still in memory at the kill: at most the queue plus the batch being committed.
    // (Requests in flight at the kill have no row and no answer, so they do not count.)
    let lost = answered.saturating_sub(rows + dropped);
    assert!(
        lost <= queue + batch,
        "lost {lost} rows to the kill, bound {}",
        queue + batch
    );
    assert!(
        rows <= answered + 16,
        "no phantom rows: {rows} rows, {answered} answered"
    );
}
