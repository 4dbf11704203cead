//! In-process router tests: requests through the axum router with `oneshot`, no socket.

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::rest_router;
use crate::accounting::ledger::{Ledger, LedgerConfig};
use crate::accounting::store::Store;
use crate::config::{ModelsConfig, Settings};
use crate::state::AppState;
use hero_aibroker_host::env::Env;

/// A router over a fresh state with its own temporary store (kept alive by the leaked dir).
async fn app(env: &[(&str, &str)]) -> axum::Router {
    let cfg = ModelsConfig::parse(Path::new("t.yml"), crate::config::registry::tests::CFG)
        .expect("valid");
    let env = Env::from_pairs(env.iter().copied());
    let settings = Settings::from_env(&env).expect("settings");
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(&dir.path().join("t.db").display().to_string())
        .await
        .expect("store");
    std::mem::forget(dir);
    let (ledger, writer) = Ledger::start(store.clone(), LedgerConfig::default());
    std::mem::forget(writer);
    rest_router(
        AppState::new(settings, cfg, env, store, ledger)
            .await
            .expect("state"),
    )
}

async fn call(app: axum::Router, method: &str, uri: &str, body: &[u8]) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("request");
    let resp = app.oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn assert_openai_error(v: &Value, code: &str) {
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(v["error"]["type"].is_string(), "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
}

#[tokio::test]
async fn errors_are_openai_shaped_with_the_right_status() {
    let cases: &[(&str, &str, &[u8], u16, &str)] = &[
        (
            "POST",
            "/v1/chat/completions",
            b"{not json",
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/v1/chat/completions",
            br#"{"messages":[]}"#,
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/chat/completions",
            br#"{"model":"nope","messages":[]}"#,
            404,
            "model_not_found",
        ),
        (
            "POST",
            "/v1/chat/completions",
            br#"{"model":"big","messages":[]}"#,
            503,
            "no_backend_available",
        ),
        ("GET", "/v1/nowhere", b"", 404, "not_found"),
        (
            "GET",
            "/v1/chat/completions",
            b"",
            405,
            "method_not_allowed",
        ),
        ("GET", "/v1/models/nope", b"", 404, "model_not_found"),
    ];
    for (method, uri, body, status, code) in cases {
        let (s, v) = call(app(&[]).await, method, uri, body).await;
        assert_eq!(s.as_u16(), *status, "{method} {uri}: {v}");
        assert_openai_error(&v, code);
    }
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = app(&[("MAX_BODY_BYTES", "1024")]).await;
    let big = format!(
        r#"{{"model":"small","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(4096)
    );
    let (s, v) = call(app, "POST", "/v1/chat/completions", big.as_bytes()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_openai_error(&v, "body_too_large");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("1024")
    );
}

#[tokio::test]
async fn models_say_which_are_servable() {
    let (s, v) = call(
        app(&[("OPENAI_API_KEY", "k")]).await,
        "GET",
        "/v1/models",
        b"",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["object"], "list");
    let by_id = |id: &str| {
        v["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .expect(id)
    };
    assert_eq!(by_id("small")["servable"], true);
    assert_eq!(by_id("big")["servable"], true, "openai key serves gpt-big");
    assert_eq!(
        by_id("big")["backends"][0]["instances"],
        0,
        "paid has no key"
    );
    let (_, v) = call(app(&[]).await, "GET", "/v1/models/tiny", b"").await;
    assert_eq!(v["id"], "small", "aliases resolve");
    assert_eq!(v["tier"], "cheap");
    let (s, v) = call(app(&[]).await, "GET", "/health", b"").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["servable_models"], 1);
}
