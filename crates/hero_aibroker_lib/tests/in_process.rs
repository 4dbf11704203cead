//! A whole broker in-process through the library's own start/stop sequence (what
//! `hero_aibroker_server` runs): start binds both sockets, a chat request over `rest.sock` and
//! an RPC call over `rpc.sock` are answered, and shutdown drains, commits the ledger row and
//! removes the sockets.

use hero_aibroker_host::Drained;
use hero_aibroker_host::env::Env;
use hero_aibroker_lib::accounting::store::Store;
use hero_aibroker_lib::config::{ModelsConfig, Settings};
use hero_aibroker_lib::providers::Drivers;
use hero_aibroker_lib::surfaces::server;
use hero_aibroker_testkit::{FakeProvider, uds_http};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn start_serve_drain_flush_and_remove_sockets() {
    let fake = FakeProvider::start().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("broker.db").display().to_string();
    let models = ModelsConfig::parse(
        &tmp.path().join("models.yml"),
        &format!(
            r#"
providers:
  - {{name: fake, base_url: "{}", api_key_env: FAKE_KEY}}
models:
  chat:
    display_name: Chat
    tier: standard
    context_window: 8192
    backends:
      - {{provider: fake, model_id: up-chat, priority: 1, input_cost: 2, output_cost: 8}}
"#,
            fake.base_url()
        ),
    )
    .expect("models");
    let env = Env::from_pairs([
        ("FAKE_KEY", "sk-fake"),
        ("HOME", tmp.path().to_str().expect("utf-8")),
        (
            "HERO_SOCKET_DIR",
            &tmp.path().join("sockets").display().to_string(),
        ),
        ("DATABASE_URL", &db),
    ]);
    let settings = Settings::from_env(&env).expect("settings");

    let broker = server::start(settings, models, env, Drivers::builtin())
        .await
        .expect("started");
    let rest = std::path::PathBuf::from(&broker.sockets().rest);
    let rpc = std::path::PathBuf::from(&broker.sockets().rpc);
    assert!(rest.exists() && rpc.exists(), "both sockets bound by start");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(broker.run(async {
        let _ = stopped.await;
    }));

    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]});
    let (status, reply) = uds_http(
        &rest,
        "POST",
        "/v1/chat/completions",
        &[],
        Some(&body.to_string()),
    )
    .await
    .expect("chat");
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["provider"], "fake");
    let (status, health) = uds_http(
        &rpc,
        "POST",
        "/rpc",
        &[],
        Some(r#"{"jsonrpc":"2.0","id":1,"method":"health"}"#),
    )
    .await
    .expect("rpc");
    assert_eq!(status, 200);
    assert_eq!(health["result"]["status"], "ok", "{health}");

    stop.send(()).expect("stop");
    let stopped = running.await.expect("join").expect("served");
    assert_eq!(stopped.drained, Drained::Clean);
    assert!(!rest.exists() && !rpc.exists(), "sockets removed on stop");

    // The request's row was committed before the broker returned.
    let store = Store::open(&db).await.expect("reopen");
    let page = store
        .logs(&hero_aibroker_sdk::admin::LogQuery::default())
        .await
        .expect("logs");
    assert_eq!(page.rows.len(), 1, "{:?}", page.rows);
    assert_eq!(page.rows[0].model.as_deref(), Some("chat"));
    assert_eq!(page.rows[0].status.as_str(), "ok");
    store.close().await;
}
