//! Bad input gets an OpenAI-shaped error with the right status, never a panic or empty reply.

use hero_aibroker_testkit::FakeProvider;
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_openai_shaped_errors() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake)
        .env("MAX_BODY_BYTES", "4096")
        .start()
        .await;

    b.post_raw(
        "/v1/chat/completions",
        b"{\"model\": \"chat\", \"messages\": [".to_vec(),
    )
    .await
    .assert_error(400, "invalid_json");
    b.post_raw("/v1/chat/completions", b"\xff\xfe".to_vec())
        .await
        .assert_error(400, "invalid_json");
    let m = b
        .post("/v1/chat/completions", &json!({"messages": []}))
        .await
        .assert_error(400, "invalid_request");
    assert!(m.contains("`model`"), "{m}");
    let m = b
        .post("/v1/chat/completions", &json!({"model": "chat"}))
        .await
        .assert_error(400, "invalid_request");
    assert!(m.contains("`messages`"), "{m}");
    b.post(
        "/v1/chat/completions",
        &json!({"model": ["x"], "messages": []}),
    )
    .await
    .assert_error(400, "invalid_request");
    b.post("/v1/embeddings", &json!({"model": "embed"}))
        .await
        .assert_error(400, "invalid_request");
    let m = b
        .post(
            "/v1/chat/completions",
            &json!({"model": "chat", "messages": [], "base_url": "http://169.254.169.254/"}),
        )
        .await
        .assert_error(400, "invalid_request");
    assert!(m.contains("base_url"), "{m}");

    let m = b
        .post("/v1/chat/completions", &chat_body("no-such-model"))
        .await
        .assert_error(404, "model_not_found");
    assert!(m.contains("GET /v1/models"), "says how to list models: {m}");
    let m = b
        .post("/v1/chat/completions", &chat_body("../../etc/passwd\u{7}"))
        .await
        .assert_error(404, "model_not_found");
    assert!(!m.contains('\u{7}'), "control characters are escaped: {m}");
    let m = b
        .post("/v1/chat/completions", &chat_body("unkeyed"))
        .await
        .assert_error(503, "no_backend_available");
    assert!(m.contains("groq"), "{m}");

    let big =
        json!({"model": "chat", "messages": [{"role": "user", "content": "x".repeat(10_000)}]});
    let m = b
        .post("/v1/chat/completions", &big)
        .await
        .assert_error(413, "body_too_large");
    assert!(m.contains("4096"), "{m}");

    b.get("/v1/does-not-exist")
        .await
        .assert_error(404, "not_found");
    b.get("/v1/chat/completions")
        .await
        .assert_error(405, "method_not_allowed");
    b.get("/v1/models/nope")
        .await
        .assert_error(404, "model_not_found");
    assert_eq!(fake.call_count(), 0, "no bad request reached the upstream");

    // Deep nesting in a pass-through field: the broker never parses it deeply (no stack to
    // overflow) and relays it byte for byte; the upstream decides.
    let deep = format!(
        "{{\"model\":\"chat\",\"messages\":[],\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let b2 = Start::with_fake(&fake).start().await;
    assert_eq!(
        b2.post_raw("/v1/chat/completions", deep.into_bytes())
            .await
            .status,
        200
    );
    // Unbalanced deep nesting is malformed JSON.
    let bad = format!(
        "{{\"model\":\"chat\",\"messages\":[],\"x\":{}}}",
        "[".repeat(100_000)
    );
    b2.post_raw("/v1/chat/completions", bad.into_bytes())
        .await
        .assert_error(400, "invalid_json");
    assert_eq!(b2.get("/health").await.status, 200, "still alive");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_a_model_cannot_serve_are_refused_before_any_upstream_call() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let mut body = chat_body("chat");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let m = b
        .post("/v1/chat/completions", &body)
        .await
        .assert_error(400, "invalid_request");
    assert!(m.contains("needs tools"), "{m}");
    let mut body = chat_body("chat");
    body["messages"][0]["content"] =
        json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]);
    let m = b
        .post("/v1/chat/completions", &body)
        .await
        .assert_error(400, "invalid_request");
    assert!(m.contains("needs vision"), "{m}");
    let mut body = chat_body("chat");
    body["messages"][0]["content"] = json!("x".repeat(40_000));
    let m = b
        .post("/v1/chat/completions", &body)
        .await
        .assert_error(400, "invalid_request");
    assert!(
        m.contains("context window of at least") && m.contains("8192"),
        "{m}"
    );
    assert_eq!(fake.call_count(), 0, "no upstream call");
    // An empty tools list needs nothing.
    let mut body = chat_body("chat");
    body["tools"] = json!([]);
    assert_eq!(b.post("/v1/chat/completions", &body).await.status, 200);
}
