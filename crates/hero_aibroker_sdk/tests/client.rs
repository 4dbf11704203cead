//! The SDK clients against a small axum app on temporary Unix sockets: `/rpc` runs the stub of
//! the admin API (gating mutating methods on a token like the broker does, and answering
//! batches in reverse order), and a fake REST surface answers models, chat (plain, streamed,
//! failing) and embeddings with the OpenAI wire shapes.

mod common;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use futures_util::StreamExt;
use hero_aibroker_sdk::client::{ClientError, RestClient, RpcClient};
use hero_aibroker_sdk::rpc::{HeroAiBrokerApiClient, MUTATING_METHODS, codes};
use hero_aibroker_sdk::{ChatCompletionRequest, ChatMessage, EmbeddingRequest};
use jsonrpsee::RpcModule;
use jsonrpsee::core::ClientError as RpcError;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::rpc_params;
use serde_json::{Value, json};
use tokio::net::UnixListener;

const ADMIN: &str = "admin-token";
const API_KEY: &str = "sk-hab-test";

struct Fake {
    module: RpcModule<()>,
    /// `Authorization` of every request, in order.
    seen_auth: Mutex<Vec<Option<String>>>,
    /// Connections accepted on either socket.
    connections: Arc<AtomicUsize>,
}

struct Sockets {
    _dir: tempfile::TempDir,
    rpc: PathBuf,
    rest: PathBuf,
    fake: Arc<Fake>,
}

async fn serve(path: &Path, app: Router, connections: Arc<AtomicUsize>) {
    let listener = UnixListener::bind(path)
        .expect("binds the temp socket")
        .tap_io(move |_| {
            connections.fetch_add(1, Ordering::SeqCst);
        });
    tokio::spawn(async move { axum::serve(listener, app).await });
}

async fn start() -> Sockets {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = Arc::new(Fake {
        module: common::module(true),
        seen_auth: Mutex::new(Vec::new()),
        connections: Arc::new(AtomicUsize::new(0)),
    });
    let rpc = dir.path().join("rpc.sock");
    let rest = dir.path().join("rest.sock");
    serve(
        &rpc,
        Router::new()
            .route("/rpc", post(rpc_handler))
            .with_state(fake.clone()),
        fake.connections.clone(),
    )
    .await;
    serve(
        &rest,
        Router::new()
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(chat))
            .route("/v1/embeddings", post(embeddings))
            .with_state(fake.clone()),
        fake.connections.clone(),
    )
    .await;
    Sockets {
        _dir: dir,
        rpc,
        rest,
        fake,
    }
}

impl Fake {
    fn record(&self, headers: &HeaderMap) -> Option<String> {
        let auth = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().expect("ascii").to_owned());
        self.seen_auth.lock().expect("lock").push(auth.clone());
        auth
    }

    async fn call(&self, call: Value, authorized: bool) -> Value {
        let method = call["method"].as_str().unwrap_or_default();
        if !authorized && MUTATING_METHODS.contains(&method) {
            return json!({"jsonrpc": "2.0", "id": call["id"], "error": {
                "code": codes::UNAUTHORIZED,
                "message": format!("{method} needs the admin token: send Authorization: Bearer <ADMIN_TOKEN>"),
            }});
        }
        let (answer, _) = self
            .module
            .raw_json_request(&call.to_string(), 1)
            .await
            .expect("well-formed call");
        serde_json::from_str(answer.get()).expect("JSON answer")
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn rpc_handler(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: String) -> Response {
    let authorized = fake.record(&headers).as_deref() == Some(&format!("Bearer {ADMIN}"));
    let request: Value = serde_json::from_str(&body).expect("the client sends JSON");
    let answer = match request {
        Value::Array(calls) => {
            let mut answers = Vec::new();
            for call in calls {
                answers.push(fake.call(call, authorized).await);
            }
            // Answers may come in any order; the client must put them back.
            answers.reverse();
            Value::Array(answers)
        }
        call => fake.call(call, authorized).await,
    };
    json_response(StatusCode::OK, &answer)
}

fn openai_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}}),
    )
}

/// The refusal when the request lacks the API key.
fn refused(fake: &Fake, headers: &HeaderMap) -> Option<Response> {
    if fake.record(headers).as_deref() == Some(&format!("Bearer {API_KEY}")) {
        None
    } else {
        Some(openai_error(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "no valid broker API key",
        ))
    }
}

async fn models(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    if let Some(refused) = refused(&fake, &headers) {
        return refused;
    }
    let model = common::Stub { full: true }.model("gpt-4o");
    json_response(StatusCode::OK, &json!({"object": "list", "data": [model]}))
}

fn chunk(content: &str) -> String {
    let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]});
    format!("data: {chunk}\n\n")
}

/// An SSE body cut into pieces at awkward places, as a network would.
fn sse(text: String) -> Response {
    let bytes = text.into_bytes();
    let pieces: Vec<Result<Bytes, Infallible>> = bytes
        .chunks(7)
        .map(|piece| Ok(Bytes::copy_from_slice(piece)))
        .collect();
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(futures_util::stream::iter(pieces)),
    )
        .into_response()
}

async fn chat(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: String) -> Response {
    if let Some(refused) = refused(&fake, &headers) {
        return refused;
    }
    let req: Value = serde_json::from_str(&body).expect("JSON body");
    let model = req["model"].as_str().unwrap_or_default();
    if model == "missing" {
        return openai_error(
            StatusCode::NOT_FOUND,
            "model_not_found",
            "model `missing` does not exist",
        );
    }
    if req["stream"] != json!(true) {
        return json_response(
            StatusCode::OK,
            &json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                "provider": "openai-1",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
        );
    }
    let text = match model {
        "midfail" => format!(
            "{}data: {}\n\n",
            chunk("Hel"),
            json!({"error": {"message": "upstream reset the stream", "type": "upstream_error", "code": "stream_interrupted"}})
        ),
        "cut" => chunk("Hel"),
        _ => {
            let usage = json!({"id": "c1", "model": "m", "choices": [],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}});
            format!(
                ": keep-alive\n\n{}{}{}data: {usage}\n\ndata: [DONE]\n\n",
                chunk("Hello"),
                chunk(", "),
                chunk("world!")
            )
        }
    };
    sse(text)
}

async fn embeddings(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: String) -> Response {
    if let Some(refused) = refused(&fake, &headers) {
        return refused;
    }
    let req: Value = serde_json::from_str(&body).expect("JSON body");
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "model": req["model"], "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}]}),
    )
}

fn chat_request(model: &str) -> ChatCompletionRequest {
    ChatCompletionRequest {
        model: model.to_owned(),
        messages: vec![ChatMessage::text("user", "hi")],
        ..Default::default()
    }
}

#[tokio::test]
async fn generated_methods_work_over_the_socket() {
    let s = start().await;
    let client = RpcClient::connect(&s.rpc).await.expect("connects");
    let health = client.health().await.expect("health");
    assert_eq!(health.status, "ok");
    assert_eq!(health.ledger.written, 2);
    let model = client
        .models_get("gpt-4o".to_owned())
        .await
        .expect("models.get");
    assert_eq!(model.id, "gpt-4o");
    let page = client
        .usage_logs(hero_aibroker_sdk::admin::LogQuery {
            model: Some("m1".to_owned()),
            offset: Some(4),
            ..Default::default()
        })
        .await
        .expect("usage.logs");
    assert_eq!(page.rows[0].model.as_deref(), Some("m1"));
    assert_eq!(page.next_offset, Some(5));
    // Read-only: no admin token needed.
    let trace = client
        .routing_explain(hero_aibroker_sdk::admin::ExplainQuery {
            model: "gpt-4o-mini".to_owned(),
            session: Some("conv-42".to_owned()),
            ..Default::default()
        })
        .await
        .expect("routing.explain");
    assert_eq!(trace.requested, "gpt-4o-mini");
    assert_eq!(trace.candidates[0].rank, Some(0));
    assert!(trace.affinity.is_some());
    // Sequential calls share one kept-alive connection (the one `connect` opened).
    for _ in 0..5 {
        client.info().await.expect("info");
    }
    assert_eq!(s.fake.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn error_codes_and_the_token_round_trip() {
    let s = start().await;
    let anonymous = RpcClient::new(&s.rpc);
    match anonymous.priority_set("groq".to_owned(), Some(3)).await {
        Err(RpcError::Call(e)) => {
            assert_eq!(e.code(), codes::UNAUTHORIZED);
            assert_eq!(
                e.message(),
                "priority.set needs the admin token: send Authorization: Bearer <ADMIN_TOKEN>"
            );
        }
        other => panic!("expected an unauthorized call error, got {other:?}"),
    }
    match anonymous
        .request::<Value, _>("no.such.method", rpc_params![])
        .await
    {
        Err(RpcError::Call(e)) => assert_eq!(e.code(), -32601),
        other => panic!("expected method not found, got {other:?}"),
    }

    let admin = RpcClient::new(&s.rpc).with_token(ADMIN);
    let entry = admin
        .priority_set("groq".to_owned(), Some(3))
        .await
        .expect("authorized");
    assert_eq!((entry.provider.as_str(), entry.priority), ("groq", Some(3)));
    let seen = s.fake.seen_auth.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec![None, None, Some(format!("Bearer {ADMIN}"))],
        "the token is sent only by the client that has it"
    );
}

#[tokio::test]
async fn batches_come_back_in_request_order() {
    let s = start().await;
    let client = RpcClient::new(&s.rpc);
    let mut batch = BatchRequestBuilder::new();
    batch
        .insert("models.get", rpc_params!["first"])
        .expect("params");
    batch.insert("nope", rpc_params![]).expect("params");
    batch
        .insert("models.get", rpc_params!["third"])
        .expect("params");
    let answers = client.batch_request::<Value>(batch).await.expect("batch");
    assert_eq!(
        (answers.num_successful_calls(), answers.num_failed_calls()),
        (2, 1)
    );
    let answers: Vec<_> = answers.into_iter().collect();
    assert_eq!(answers[0].as_ref().expect("ok")["id"], "first");
    assert_eq!(answers[1].as_ref().expect_err("fails").code(), -32601);
    assert_eq!(answers[2].as_ref().expect("ok")["id"], "third");
}

#[tokio::test]
async fn a_missing_socket_fails_with_its_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.sock");
    let err = RpcClient::connect(&path).await.expect_err("no socket");
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.sock"), "{err}");
    match RestClient::new(&path).models().await {
        Err(ClientError::Connect { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn rest_models_chat_and_embeddings() {
    let s = start().await;
    let client = RestClient::new(&s.rest).with_api_key(API_KEY);
    let models = client.models().await.expect("models");
    assert_eq!(models.data[0].id, "gpt-4o");
    assert_eq!(models.data[0].backends[0].instances, 2);

    // `stream: true` in the request must not turn `chat` into a stream.
    let mut req = chat_request("gpt-4o");
    req.stream = Some(true);
    let reply = client.chat(&req).await.expect("chat");
    assert_eq!(reply.choices[0].message.content_text(), Some("Hello!"));
    assert_eq!(reply.provider.as_deref(), Some("openai-1"));
    assert_eq!(reply.usage.expect("usage").total_tokens, 5);

    let embedding = client
        .embeddings(&EmbeddingRequest {
            model: "embed".to_owned(),
            input: json!("hi"),
            extra: Default::default(),
        })
        .await
        .expect("embeddings");
    assert_eq!(embedding["data"][0]["embedding"], json!([0.5, -0.25]));
    let seen = s.fake.seen_auth.lock().expect("lock").clone();
    assert!(
        seen.iter()
            .all(|a| a.as_deref() == Some("Bearer sk-hab-test")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_streamed_chat_is_assembled_from_its_chunks() {
    let s = start().await;
    let client = RestClient::new(&s.rest).with_api_key(API_KEY);
    let mut stream = client
        .chat_stream(&chat_request("gpt-4o"))
        .await
        .expect("stream opens");
    let mut text = String::new();
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        for choice in &chunk.choices {
            text.push_str(choice.delta["content"].as_str().unwrap_or_default());
        }
        usage = chunk.usage.or(usage);
    }
    assert_eq!(text, "Hello, world!");
    assert_eq!(usage.expect("usage chunk").completion_tokens, 4);
    // The client can be used again after a stream.
    assert_eq!(client.models().await.expect("models").data.len(), 1);
}

#[tokio::test]
async fn stream_errors_end_the_stream_as_err_items() {
    let s = start().await;
    let client = RestClient::new(&s.rest).with_api_key(API_KEY);
    let items: Vec<_> = client
        .chat_stream(&chat_request("midfail"))
        .await
        .expect("stream opens")
        .collect()
        .await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items[0].is_ok());
    match &items[1] {
        Err(ClientError::Stream { body }) => {
            assert_eq!(body.error.message, "upstream reset the stream");
            assert_eq!(body.error.code, Some(json!("stream_interrupted")));
        }
        other => panic!("expected a stream error, got {other:?}"),
    }

    let items: Vec<_> = client
        .chat_stream(&chat_request("cut"))
        .await
        .expect("stream opens")
        .collect()
        .await;
    assert!(
        matches!(items.last(), Some(Err(ClientError::Incomplete))),
        "{items:?}"
    );
}

#[tokio::test]
async fn openai_error_bodies_become_api_errors() {
    let s = start().await;
    let client = RestClient::new(&s.rest).with_api_key(API_KEY);
    for result in [
        client.chat(&chat_request("missing")).await.map(|_| ()),
        client
            .chat_stream(&chat_request("missing"))
            .await
            .map(|_| ()),
    ] {
        match result {
            Err(ClientError::Api { status, body }) => {
                assert_eq!(status, 404);
                assert_eq!(body.error.code, Some(json!("model_not_found")));
                assert_eq!(body.error.kind, "invalid_request_error");
                assert_eq!(body.error.message, "model `missing` does not exist");
            }
            other => panic!("expected an API error, got {other:?}"),
        }
    }
    let anonymous = RestClient::new(&s.rest);
    let err = anonymous.models().await.expect_err("no key");
    assert!(
        matches!(&err, ClientError::Api { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.body().map(|b| b.error.message.as_str()),
        Some("no valid broker API key")
    );
}
