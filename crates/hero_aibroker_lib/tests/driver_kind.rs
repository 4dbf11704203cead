//! A provider kind the core does not know, added from outside it: a test-only driver
//! registered with one line, picked by `kind:` in the models file, and a real request routed
//! through it (JSON and stream) to the scripted fake provider. No core file names it.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::future::BoxFuture;
use hero_aibroker_host::env::Env;
use hero_aibroker_lib::accounting::ledger::{Ledger, LedgerConfig};
use hero_aibroker_lib::accounting::store::Store;
use hero_aibroker_lib::config::{ModelsConfig, Settings};
use hero_aibroker_lib::error::ApiError;
use hero_aibroker_lib::health::pool::Instance;
use hero_aibroker_lib::providers::openai_compat::OpenAiCompat;
use hero_aibroker_lib::providers::{Chunk, ClientRequest, Driver, Drivers, Verdict};
use hero_aibroker_lib::state::{AppState, StateError};
use hero_aibroker_lib::surfaces::api::rest_router;
use hero_aibroker_sdk::admin::KeyCheck;
use hero_aibroker_testkit::FakeProvider;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// "Shout": the OpenAI wire, except that it builds its own URL, upper-cases the upstream
/// model id and marks every request with `x-shout: yes`.
#[derive(Debug)]
struct Shout;

static OPENAI: OpenAiCompat = OpenAiCompat;

impl Driver for Shout {
    fn request(
        &self,
        client: &reqwest::Client,
        instance: &Instance,
        req: &dyn ClientRequest,
        model_id: &str,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        let url = format!("{}/chat/completions", instance.base_url);
        let body = req.openai_body(&model_id.to_uppercase(), false)?;
        let mut rb = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-shout", "yes")
            .body(body);
        if let Some(key) = &instance.key {
            rb = rb.bearer_auth(key.expose());
        }
        Ok(rb)
    }

    fn classify(
        &self,
        status: reqwest::StatusCode,
        headers: &reqwest::header::HeaderMap,
    ) -> Verdict {
        OPENAI.classify(status, headers)
    }

    fn chunk(&self, data: &str) -> Chunk {
        OPENAI.chunk(data)
    }

    fn check_key<'a>(
        &'a self,
        client: &'a reqwest::Client,
        instance: &'a Instance,
    ) -> BoxFuture<'a, KeyCheck> {
        OPENAI.check_key(client, instance)
    }
}

fn models(fake: &str, kind: &str) -> String {
    format!(
        r#"
providers:
  - {{name: loud, kind: {kind}, base_url: "{fake}", api_key_env: LOUD_KEY}}
models:
  m:
    display_name: M
    tier: standard
    context_window: 8192
    backends:
      - {{provider: loud, model_id: up-model, priority: 1, input_cost: 1, output_cost: 2}}
"#
    )
}

async fn state(fake: &str, kind: &str) -> Result<Arc<AppState>, StateError> {
    let cfg = ModelsConfig::parse(Path::new("m.yml"), &models(fake, kind)).expect("valid yaml");
    let env = Env::from_pairs([("LOUD_KEY", "sk-loud")]);
    let settings = Settings::from_env(&env).expect("settings");
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(&dir.path().join("b.db").display().to_string())
        .await
        .expect("store");
    std::mem::forget(dir);
    let (ledger, writer) = Ledger::start(store.clone(), LedgerConfig::default());
    std::mem::forget(writer);
    let mut drivers = Drivers::builtin();
    drivers.register("shout", Arc::new(Shout)); // the registration line
    AppState::with_drivers(settings, cfg, env, store, ledger, drivers).await
}

async fn post(app: axum::Router, body: Value) -> (StatusCode, String) {
    let req = Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let resp = app.oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registered_driver_kind_serves_json_and_streams() {
    let fake = FakeProvider::start().await;
    let app = rest_router(state(&fake.base_url(), "shout").await.expect("state"));
    let msg = json!([{"role": "user", "content": "hi"}]);

    let (status, text) = post(app.clone(), json!({"model": "m", "messages": msg})).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        v["model"], "UP-MODEL",
        "the driver chose the upstream model id: {v}"
    );
    assert_eq!(v["provider"], "loud");
    assert!(v["usage"]["cost"].as_f64().is_some_and(|c| c > 0.0), "{v}");

    let (status, text) = post(app, json!({"model": "m", "messages": msg, "stream": true})).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    for call in &calls {
        assert_eq!(call.path, "/v1/chat/completions");
        assert_eq!(call.model.as_deref(), Some("UP-MODEL"));
        assert_eq!(call.key.as_deref(), Some("sk-loud"));
        assert!(
            call.headers
                .iter()
                .any(|(k, v)| k == "x-shout" && v == "yes"),
            "the request went through the registered driver: {:?}",
            call.headers
        );
    }
}

#[tokio::test]
async fn an_unknown_kind_is_refused_with_file_and_key() {
    let err = state("http://127.0.0.1:9/v1", "whisper")
        .await
        .expect_err("unknown kind");
    let msg = err.to_string();
    assert!(
        msg.contains("m.yml") && msg.contains("providers[0].kind"),
        "{msg}"
    );
    assert!(
        msg.contains("\"whisper\"") && msg.contains("shout"),
        "{msg}"
    );
}
