//! The JSON-RPC admin API on rpc.sock: keys gate access, limits and budgets, priorities,
//! reload, the hero service routes, and the SDK client calling every method.

use std::time::Duration;

use hero_aibroker_testkit::{FakeProvider, Rule};
use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn keys_gate_access_limits_and_budgets() {
    let fake = FakeProvider::start().await;
    let mut b = Start::with_fake(&fake).start().await;
    assert_eq!(
        b.post("/v1/chat/completions", &chat_body("chat"))
            .await
            .status,
        200,
        "open without keys"
    );

    let (id, secret) = create_key(&b, json!({"name": "alice"})).await;
    let m = b
        .post("/v1/chat/completions", &chat_body("chat"))
        .await
        .assert_error(401, "invalid_api_key");
    assert!(m.contains("Authorization: Bearer"), "{m}");
    b.post_key("/v1/chat/completions", &chat_body("chat"), "sk-hab-wrong")
        .await
        .assert_error(401, "invalid_api_key");
    assert_eq!(
        b.post_key("/v1/chat/completions", &chat_body("chat"), &secret)
            .await
            .status,
        200
    );

    // The key shows up with a hint only; its secret is nowhere.
    let list = b.rpc("keys.list", json!([])).await;
    let listed = &list.as_array().expect("keys")[0];
    assert_eq!(listed["name"], "alice");
    assert!(
        listed["hint"]
            .as_str()
            .expect("hint")
            .ends_with(&secret[secret.len() - 4..])
    );
    assert!(!list.to_string().contains(&secret));

    // Per-key limits answer 429 with Retry-After.
    let (_, limited) = create_key(&b, json!({"name": "rpm", "rpm": 2})).await;
    for _ in 0..2 {
        assert_eq!(
            b.post_key("/v1/chat/completions", &chat_body("chat"), &limited)
                .await
                .status,
            200
        );
    }
    let r = b
        .post_key("/v1/chat/completions", &chat_body("chat"), &limited)
        .await;
    r.assert_error(429, "rate_limit_exceeded");
    assert!(
        r.header("retry-after")
            .parse::<u64>()
            .is_ok_and(|s| (1..=60).contains(&s))
    );

    // A budget below one request's cost: the first request spends it, the next gets 402.
    let (poor_id, poor) = create_key(&b, json!({"name": "poor", "budget_usd": 0.0001})).await;
    assert_eq!(
        b.post_key("/v1/chat/completions", &chat_body("chat"), &poor)
            .await
            .status,
        200
    );
    let m = b
        .post_key("/v1/chat/completions", &chat_body("chat"), &poor)
        .await
        .assert_error(402, "budget_exceeded");
    assert!(m.contains("budget"), "{m}");
    let k = b.get_key("/v1/key", &poor).await;
    assert_eq!(k.json["data"]["limit"], 0.0001);
    assert!(k.json["data"]["usage"].as_f64().expect("usage") > 0.0001);
    // Raising the budget lets it through again.
    b.rpc(
        "keys.update",
        json!({"id": poor_id, "update": {"budget_usd": 1.0}}),
    )
    .await;
    assert_eq!(
        b.post_key("/v1/chat/completions", &chat_body("chat"), &poor)
            .await
            .status,
        200
    );

    // Allowed models.
    let (_, narrow) = create_key(&b, json!({"name": "narrow", "allowed_models": ["solo"]})).await;
    b.post_key("/v1/chat/completions", &chat_body("chat"), &narrow)
        .await
        .assert_error(403, "model_not_allowed");
    assert_eq!(
        b.post_key("/v1/chat/completions", &chat_body("solo"), &narrow)
            .await
            .status,
        200
    );

    // Revocation applies to the very next request.
    let revoked = b.rpc("keys.revoke", json!({"id": id})).await;
    assert_eq!(revoked["revoked"], true);
    b.post_key("/v1/chat/completions", &chat_body("chat"), &secret)
        .await
        .assert_error(401, "invalid_api_key");

    // Rows carry the key id; spend survives a restart (persisted by the ledger).
    let rows = b.wait_rows(8).await;
    assert!(rows.iter().any(|r| r["key_id"] == id.as_str()));
    let spent_before = b.rpc("keys.list", json!([])).await;
    b.signal("TERM");
    b.wait_exit(Duration::from_secs(10)).await;
    let logs = b.logs();
    let db = std::fs::read(b.db_path()).expect("db");
    let wal = std::fs::read(b.db_path().with_extension("db-wal")).unwrap_or_default();
    for s in [&secret, &limited, &poor, &narrow] {
        assert!(!logs.contains(s.as_str()), "a key secret is in the logs");
        let needle = s.as_bytes();
        assert!(
            !db.windows(needle.len()).any(|w| w == needle),
            "a key secret is in the database"
        );
        assert!(
            !wal.windows(needle.len()).any(|w| w == needle),
            "a key secret is in the WAL"
        );
    }
    let dir = b.into_dir();
    let b = Start::with_fake(&fake).in_dir(dir).start().await;
    let after = b.rpc("keys.list", json!([])).await;
    let spent = spent_of;
    assert!((spent(&after, "poor") - spent(&spent_before, "poor")).abs() < 1e-9);
    assert!(spent(&after, "poor") > 0.0);
    b.post_key("/v1/chat/completions", &chat_body("chat"), &secret)
        .await
        .assert_error(401, "invalid_api_key");
}

#[tokio::test(flavor = "multi_thread")]
async fn priority_set_reroutes_without_restart_and_persists() {
    let fake = FakeProvider::start().await;
    let backup = FakeProvider::start().await;
    let yaml = models_yaml(&fake.base_url(), &backup.base_url());
    let mut b = Start::new(yaml.clone()).start().await;
    assert_eq!(
        b.post("/v1/chat/completions", &chat_body("chat"))
            .await
            .json["provider"],
        "fake"
    );
    let set = b
        .rpc("priority.set", json!({"provider": "backup", "priority": 0}))
        .await;
    assert_eq!(set, json!({"provider": "backup", "priority": 0}));
    assert_eq!(
        b.post("/v1/chat/completions", &chat_body("chat"))
            .await
            .json["provider"],
        "backup"
    );
    let list = b.rpc("priority.list", json!([])).await;
    assert!(
        list.as_array()
            .expect("list")
            .contains(&json!({"provider": "backup", "priority": 0}))
    );
    let providers = b.rpc("providers.list", json!([])).await;
    let bk = providers
        .as_array()
        .expect("providers")
        .iter()
        .find(|p| p["name"] == "backup")
        .expect("backup");
    assert_eq!(bk["priority_override"], 0);

    b.signal("TERM");
    b.wait_exit(Duration::from_secs(10)).await;
    let dir = b.into_dir();
    let b = Start::new(yaml).in_dir(dir).start().await;
    assert_eq!(
        b.post("/v1/chat/completions", &chat_body("chat"))
            .await
            .json["provider"],
        "backup",
        "survives restart"
    );
    b.rpc(
        "priority.set",
        json!({"provider": "backup", "priority": null}),
    )
    .await;
    assert_eq!(
        b.post("/v1/chat/completions", &chat_body("chat"))
            .await
            .json["provider"],
        "fake",
        "null clears"
    );
    let e = b
        .rpc_with(
            "priority.set",
            json!({"provider": "nowhere", "priority": 1}),
            None,
        )
        .await;
    assert_eq!(e["error"]["code"], -32004, "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_reload_swaps_a_valid_file_and_keeps_serving_on_a_bad_one() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::for_model(
        "up-solo",
        hero_aibroker_testkit::Behavior::SlowChunks(Duration::from_millis(40)),
    ));
    let b = Start::with_fake(&fake).start().await;
    let models = b.dir().join("models.yml");
    let good = std::fs::read_to_string(&models).expect("yaml");

    // A stream in flight across both reloads keeps its snapshot and finishes.
    let client = b.client.clone();
    let inflight = tokio::spawn(async move {
        client
            .post(Broker::url("/v1/chat/completions"))
            .json(&stream_body("solo"))
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("body")
    });

    std::fs::write(&models, good.replace("tier: standard", "tier: godlike")).expect("write");
    let e = b.rpc_with("config.reload", json!([]), None).await;
    assert_eq!(e["error"]["code"], -32010, "{e}");
    let msg = e["error"]["message"].as_str().expect("message");
    assert!(msg.contains("models.yml") && msg.contains("tier"), "{msg}");
    assert_eq!(
        b.post("/v1/chat/completions", &chat_body("chat"))
            .await
            .status,
        200,
        "old config serves"
    );

    let extra = "\n  fresh:\n    display_name: Fresh\n    tier: cheap\n    context_window: 1000\n    backends:\n      - {provider: fake, model_id: up-fresh, priority: 1, input_cost: 1, output_cost: 1}\n";
    std::fs::write(&models, format!("{good}{extra}")).expect("write");
    let ok = b.rpc("config.reload", json!([])).await;
    assert_eq!(ok["models"], 6);
    assert_eq!(
        b.post("/v1/chat/completions", &chat_body("fresh"))
            .await
            .json["model"],
        "up-fresh"
    );
    let body = inflight.await.expect("join");
    assert!(
        body.trim_end().ends_with("data: [DONE]"),
        "in-flight stream finished: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rpc_socket_speaks_the_hero_service_conventions() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake)
        .env("ADMIN_TOKEN", "tok-0123456789abcdef")
        .start()
        .await;
    assert_eq!(mode(&b.rpc_sock), 0o600);
    let h = b.rpc("health", json!([])).await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["ledger"]["healthy"], true);
    let info = b.rpc("info", json!([])).await;
    assert_eq!(info["sockets"]["rpc"], b.rpc_sock.display().to_string());
    assert_eq!(info["models"], 5);
    let doc = b.rpc("rpc.discover", json!([])).await;
    assert_eq!(
        doc["openrpc"].as_str().map(|s| s.starts_with("1.")),
        Some(true)
    );
    let get = |p: &'static str| {
        let c = b.rpc_client.clone();
        async move {
            c.get(Broker::url(p))
                .send()
                .await
                .expect("get")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    assert_eq!(get("/openrpc.json").await, doc);
    assert_eq!(get("/health").await["status"], "ok");
    let wk = get("/.well-known/heroservice.json").await;
    assert_eq!(wk["name"], "hero_aibroker");
    assert_eq!(wk["spec"], "/openrpc.json");

    // Mutating methods need the admin token; reading ones do not.
    let e = b
        .rpc_with("keys.create", json!({"params": {"name": "x"}}), None)
        .await;
    assert_eq!(e["error"]["code"], -32001, "{e}");
    let e = b
        .rpc_with(
            "keys.create",
            json!({"params": {"name": "x"}}),
            Some("wrong"),
        )
        .await;
    assert_eq!(e["error"]["code"], -32001, "{e}");
    let ok = b
        .rpc_with(
            "keys.create",
            json!({"params": {"name": "x"}}),
            Some("tok-0123456789abcdef"),
        )
        .await;
    assert!(ok["result"]["secret"].is_string(), "{ok}");
    assert!(b.rpc_with("keys.list", json!([]), None).await["result"].is_array());
    let e = b.rpc_with("no.such.method", json!([]), None).await;
    assert_eq!(e["error"]["code"], -32601);
    let e = b
        .rpc_with(
            "keys.update",
            json!({"id": "key_nope", "update": {}}),
            Some("tok-0123456789abcdef"),
        )
        .await;
    assert_eq!(e["error"]["code"], -32004);
    assert!(
        !b.logs().contains("tok-0123456789abcdef"),
        "admin token in logs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_schema_is_refused_with_a_clear_message() {
    let fake = FakeProvider::start().await;
    let mut b = Start::with_fake(&fake).start().await;
    b.signal("TERM");
    b.wait_exit(Duration::from_secs(10)).await;
    let db = b.db_path();
    // Mark a migration from the future, as a newer hero_aibroker would have.
    let url = format!("sqlite:{}", db.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
         VALUES (99999, 'from the future', CURRENT_TIMESTAMP, 1, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .expect("insert");
    drop(conn);
    let dir = b.into_dir();
    let mut again = Start::with_fake(&fake).in_dir(dir).spawn();
    assert!(!again.wait_exit(Duration::from_secs(10)).await.success());
    let logs = again.logs();
    assert!(
        logs.contains("newer than this hero_aibroker knows"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_clients_call_every_method() {
    use futures_util::StreamExt;
    use hero_aibroker_sdk::admin::{
        ExplainQuery, GroupBy, KeyCreate, KeyUpdate, LogQuery, UsageQuery,
    };
    use hero_aibroker_sdk::client::{RestClient, RpcClient};
    use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;
    use hero_aibroker_sdk::{ChatCompletionRequest, ChatMessage};

    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake)
        .env("ADMIN_TOKEN", "tok-sdk-0123456789")
        .start()
        .await;
    let rpc = RpcClient::new(&b.rpc_sock).with_token("tok-sdk-0123456789");

    assert_eq!(rpc.health().await.expect("health").status, "ok");
    assert_eq!(rpc.info().await.expect("info").name, "hero_aibroker");
    assert_eq!(rpc.models_list().await.expect("models").len(), 5);
    assert_eq!(
        rpc.models_get("chat-alias".into()).await.expect("model").id,
        "chat"
    );
    let providers = rpc.providers_list().await.expect("providers");
    let fake_p = providers
        .iter()
        .find(|p| p.name == "fake")
        .expect("fake provider");
    assert_eq!(fake_p.instances.len(), 2);
    assert!(
        fake_p
            .instances
            .iter()
            .all(|i| i.key_hint.as_deref() != Some("key-a")),
        "keys are masked"
    );
    // Each key tested by a models call at the fake provider; keys masked here too.
    let checks = rpc
        .providers_check(Some("fake".into()))
        .await
        .expect("check");
    assert_eq!(checks.len(), 2);
    assert!(
        checks
            .iter()
            .all(|c| c.ok && c.http_status == Some(200) && c.models.is_some_and(|n| n > 0)),
        "{checks:?}"
    );
    assert!(
        checks
            .iter()
            .all(|c| c.key_hint.as_deref() != Some("key-a"))
    );

    let created = rpc
        .keys_create(KeyCreate {
            name: "sdk".into(),
            rpm: Some(100),
            ..KeyCreate::default()
        })
        .await
        .expect("create");
    assert_eq!(rpc.keys_list().await.expect("list").len(), 1);
    let updated = rpc
        .keys_update(
            created.key.id.clone(),
            KeyUpdate {
                budget_usd: Some(2.0),
                clear: vec!["rpm".into()],
                ..KeyUpdate::default()
            },
        )
        .await
        .expect("update");
    assert_eq!((updated.budget_usd, updated.rpm), (Some(2.0), None));

    let rest = RestClient::new(&b.sock).with_api_key(created.secret.clone());
    let req = ChatCompletionRequest {
        model: "chat".into(),
        messages: vec![ChatMessage::text("user", "What's the weather?")],
        ..ChatCompletionRequest::default()
    };
    let reply = rest.chat(&req).await.expect("chat");
    assert_eq!(
        reply.choices[0].message.content_text(),
        Some(hero_aibroker_testkit::CHAT_TEXT)
    );
    let mut chunks = rest.chat_stream(&req).await.expect("stream");
    let mut text = String::new();
    while let Some(c) = chunks.next().await {
        let c = c.expect("chunk");
        if let Some(t) = c
            .choices
            .first()
            .and_then(|ch| ch.delta.get("content"))
            .and_then(|v| v.as_str())
        {
            text.push_str(t);
        }
    }
    assert_eq!(text, hero_aibroker_testkit::CHAT_TEXT);
    assert_eq!(rest.models().await.expect("models").data.len(), 5);
    let err = RestClient::new(&b.sock)
        .chat(&req)
        .await
        .expect_err("no key");
    assert_eq!(
        err.body().map(|e| e.error.code.clone()),
        Some(Some(serde_json::json!("invalid_api_key")))
    );

    b.wait_rows(2).await;
    let by_key = rpc
        .usage_summary(UsageQuery {
            group_by: GroupBy::Key,
            ..UsageQuery::default()
        })
        .await
        .expect("summary");
    assert_eq!(
        by_key
            .iter()
            .find(|g| g.group == created.key.id)
            .map(|g| g.requests),
        Some(2)
    );
    let logs = rpc
        .usage_logs(LogQuery {
            limit: Some(1),
            ..LogQuery::default()
        })
        .await
        .expect("logs");
    assert_eq!(logs.rows.len(), 1);
    assert_eq!(logs.next_offset, Some(1));
    let one = rpc
        .usage_log(logs.rows[0].id.clone())
        .await
        .expect("one row by id");
    assert_eq!(one, logs.rows[0]);
    let now_ms = logs.rows[0].started_ms + 1;
    let series = rpc
        .usage_series(hero_aibroker_sdk::admin::SeriesQuery {
            from_ms: now_ms - 3_600_000,
            to_ms: Some(now_ms + 60_000),
            bucket_ms: 60_000,
            tz_offset_minutes: 90,
            key_id: Some(created.key.id.clone()),
        })
        .await
        .expect("series");
    assert_eq!(
        series.iter().map(|b| b.requests).sum::<u64>(),
        2,
        "{series:?}"
    );
    // Buckets start at the viewer's whole minutes (a 90-minute offset is whole minutes too).
    assert!(
        series.iter().all(|b| b.start_ms % 60_000 == 0),
        "{series:?}"
    );
    assert!(rpc.requests_list().await.expect("running").is_empty());
    match rpc.requests_cancel("req_nope".into()).await {
        Err(jsonrpsee::core::ClientError::Call(e)) => assert_eq!(e.code(), -32004),
        other => panic!("expected -32004, got {other:?}"),
    }
    // The relayed rows (the key's) carry their routing decision.
    let keyed = rpc
        .usage_logs(LogQuery {
            key_id: Some(created.key.id.clone()),
            ..LogQuery::default()
        })
        .await
        .expect("logs of the key");
    assert_eq!(keyed.rows.len(), 2);
    for row in &keyed.rows {
        let trace = row.trace.as_ref().expect("a relayed row keeps its trace");
        assert_eq!(trace.requested, "chat");
        assert_eq!(trace.candidates[0].rank, Some(0), "{trace:?}");
        assert_eq!(row.attempts[0].http_status, Some(200), "{row:?}");
    }

    // routing.explain is read-only (no admin token) and runs the real resolver: a servable
    // model ranks a keyed candidate first; asking twice takes no round-robin turn.
    let explain = |model: &str| {
        let anon = RpcClient::new(&b.rpc_sock);
        let query = ExplainQuery {
            model: model.into(),
            ..ExplainQuery::default()
        };
        async move { anon.routing_explain(query).await.expect("routing.explain") }
    };
    let trace = explain("chat-alias").await;
    assert_eq!(trace.requested, "chat-alias");
    assert_eq!(trace.error, None, "{trace:?}");
    // Two keys under round_robin: a real request would rotate between them.
    assert_eq!(trace.strategy, "round_robin");
    let first = trace
        .candidates
        .iter()
        .find(|c| c.rank == Some(0))
        .expect("a candidate ranked first");
    assert_eq!(
        (
            first.model.as_str(),
            first.provider.as_str(),
            first.skipped.as_deref()
        ),
        ("chat", "fake", None),
        "{trace:?}"
    );
    assert!(
        first
            .instance
            .as_deref()
            .is_some_and(|i| i.starts_with("fake-")),
        "{trace:?}"
    );
    assert_eq!(explain("chat-alias").await, trace, "explaining took a turn");
    // A model no key can serve is explained, not refused: skipped candidates and `error`.
    let unkeyed = explain("unkeyed").await;
    assert!(
        unkeyed.error.is_some() && !unkeyed.candidates.is_empty(),
        "{unkeyed:?}"
    );
    assert!(
        unkeyed
            .candidates
            .iter()
            .all(|c| c.rank.is_none()
                && c.skipped.as_deref() == Some("provider groq has no API key")),
        "{unkeyed:?}"
    );
    match rpc
        .routing_explain(ExplainQuery {
            model: "chat".into(),
            endpoint: Some("images".into()),
            ..ExplainQuery::default()
        })
        .await
    {
        Err(jsonrpsee::core::ClientError::Call(e)) => assert_eq!(e.code(), -32602),
        other => panic!("expected -32602 for an unknown endpoint, got {other:?}"),
    }
    assert!(
        rpc.priority_list()
            .await
            .expect("priorities")
            .iter()
            .all(|p| p.priority.is_none())
    );
    assert_eq!(
        rpc.priority_set("backup".into(), Some(3))
            .await
            .expect("set")
            .priority,
        Some(3)
    );
    assert_eq!(rpc.config_reload().await.expect("reload").models, 5);
    let doc = rpc.rpc_discover().await.expect("discover");
    assert_eq!(doc["methods"].as_array().map(Vec::len), Some(31));
    assert!(
        rpc.keys_revoke(created.key.id.clone())
            .await
            .expect("revoke")
            .revoked
    );

    // Without the admin token a mutating call is refused with the documented code.
    let anon = RpcClient::new(&b.rpc_sock);
    match anon.priority_set("backup".into(), None).await {
        Err(jsonrpsee::core::ClientError::Call(e)) => {
            assert_eq!(e.code(), hero_aibroker_sdk::rpc::codes::UNAUTHORIZED)
        }
        other => panic!("expected -32001, got {other:?}"),
    }
}

/// `RPC_READS_NEED_TOKEN=true` gates every JSON-RPC method but `health` behind the admin
/// token (and means nothing without one: refused at start); a batch over 100 calls is refused
/// whole.
#[tokio::test(flavor = "multi_thread")]
async fn rpc_reads_can_be_gated_and_batches_are_capped() {
    const TOKEN: &str = "reads-token-0123456789abcdef";
    let fake = FakeProvider::start().await;
    let mut lone = Start::with_fake(&fake)
        .env("RPC_READS_NEED_TOKEN", "true")
        .spawn();
    assert!(!lone.wait_exit(Duration::from_secs(10)).await.success());
    assert!(
        lone.logs()
            .contains("RPC_READS_NEED_TOKEN: is true but ADMIN_TOKEN is not set"),
        "{}",
        lone.logs()
    );

    let b = Start::with_fake(&fake)
        .env("ADMIN_TOKEN", TOKEN)
        .env("RPC_READS_NEED_TOKEN", "true")
        .start()
        .await;
    for method in ["keys.list", "usage.logs", "providers.list", "info"] {
        let v = b.rpc_with(method, json!({}), None).await;
        assert_eq!(v["error"]["code"], -32001, "{method}: {v}");
    }
    let open = b.rpc_with("health", json!({}), None).await;
    assert!(open.get("result").is_some(), "{open}");
    let with = b.rpc_with("keys.list", json!({}), Some(TOKEN)).await;
    assert_eq!(with["result"], json!([]), "{with}");

    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "health"});
    let batch = |n: usize| Value::Array(vec![call.clone(); n]);
    let client = &b.rpc_client;
    let send = |body: Value| async move {
        let r = client
            .post(Broker::url("/rpc"))
            .json(&body)
            .send()
            .await
            .expect("send");
        r.json::<Value>().await.expect("json")
    };
    let ok = send(batch(100)).await;
    assert_eq!(ok.as_array().map(Vec::len), Some(100), "{ok}");
    let refused = send(batch(101)).await;
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("at most 100")),
        "{refused}"
    );
}

/// JSON-RPC methods take their parameters flat, as the seed's methods do, beside the declared
/// wrapped forms: `keys.create {name, budget_usd}`, `keys.update {id, …patch}`, `usage.summary
/// {group_by, since}`, `usage.logs {limit}`, `routing.explain {model}`.
#[tokio::test(flavor = "multi_thread")]
async fn rpc_methods_take_flat_params_and_the_wrapped_forms_still_work() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let created = b
        .rpc(
            "keys.create",
            json!({"name": "flat", "budget_usd": 2.5, "rpm": 7}),
        )
        .await;
    assert_eq!(created["key"]["name"], "flat", "{created}");
    assert_eq!(created["key"]["budget_usd"], 2.5, "{created}");
    assert_eq!(created["key"]["rpm"], 7, "{created}");
    let id = created["key"]["id"].as_str().expect("id").to_owned();
    let secret = created["secret"].as_str().expect("secret").to_owned();

    let updated = b
        .rpc(
            "keys.update",
            json!({"id": id, "name": "renamed", "tpm": 1000}),
        )
        .await;
    assert_eq!(updated["name"], "renamed", "{updated}");
    assert_eq!(updated["tpm"], 1000, "{updated}");
    let wrapped = b
        .rpc(
            "keys.update",
            json!({"id": id, "update": {"name": "wrapped"}}),
        )
        .await;
    assert_eq!(wrapped["name"], "wrapped", "{wrapped}");

    let r = b
        .post_key("/v1/chat/completions", &chat_body("chat"), &secret)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    b.wait_rows(1).await;
    let flat = b
        .rpc("usage.summary", json!({"group_by": "model", "since": 0}))
        .await;
    let wrapped = b
        .rpc(
            "usage.summary",
            json!({"query": {"group_by": "model", "from_ms": 0}}),
        )
        .await;
    assert_eq!(flat, wrapped);
    assert_eq!(flat[0]["group"], "chat", "{flat}");
    let logs = b.rpc("usage.logs", json!({"limit": 1})).await;
    assert_eq!(logs["rows"].as_array().map(Vec::len), Some(1), "{logs}");
    let explained = b.rpc("routing.explain", json!({"model": "chat"})).await;
    assert!(
        explained["candidates"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{explained}"
    );
}
