//! Serving the admin API on `rpc.sock` the Hero way: JSON-RPC 2.0 over HTTP/1.1 at `POST /rpc`
//! (single calls, batches, notifications), plus `GET /openrpc.json`, `GET /health` and
//! `GET /.well-known/heroservice.json`.
//!
//! The JSON-RPC envelope is handled here rather than by jsonrpsee's HTTP server: the broker
//! already speaks axum on its sockets, and the admin token has to be checked per call (also
//! inside a batch) before jsonrpsee's `RpcModule` runs it. Neither the token nor request
//! bodies are ever logged.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::future::join_all;
use hero_aibroker_sdk::rpc::MUTATING_METHODS;
use hero_aibroker_sdk::{ErrorBody, ErrorCode, OPENRPC_JSON};
use jsonrpsee::Methods;
use jsonrpsee::types::error::{INVALID_REQUEST_CODE, OVERSIZED_REQUEST_CODE, PARSE_ERROR_CODE};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// Largest `POST /rpc` body accepted: admin calls are small; a larger body is a mistake.
pub const MAX_BODY: usize = 1 << 20;

/// Most calls in one batch; a larger batch is refused whole (one call per method would be far
/// fewer, so a larger one is a mistake or an attempt to make the broker work for nothing).
pub const MAX_BATCH: usize = 100;

/// Methods that answer without the admin token even when reads are gated: liveness only.
const OPEN_METHODS: &[&str] = &["health"];

/// Who may call what on `rpc.sock`.
#[derive(Debug, Clone, Default)]
pub struct RpcAccess {
    /// `ADMIN_TOKEN`: mutating methods need it when it is set.
    pub token: Option<Secret>,
    /// `RPC_READS_NEED_TOKEN`: every method but `health` needs it (needs a token).
    pub gate_reads: bool,
}

impl From<Option<Secret>> for RpcAccess {
    fn from(token: Option<Secret>) -> Self {
        RpcAccess {
            token,
            gate_reads: false,
        }
    }
}

/// What `/.well-known/heroservice.json` and `/health` report.
#[derive(Debug, Clone)]
pub struct ServiceMeta {
    /// `hero_aibroker`.
    pub name: String,
    pub version: String,
    pub rest_socket: String,
    pub rpc_socket: String,
}

struct RpcState {
    methods: Methods,
    /// SHA-256 of the admin token: comparing digests keeps the comparison constant-time even
    /// when the lengths differ, and the token itself is not kept in this state.
    token_digest: Option<[u8; 32]>,
    gate_reads: bool,
    health: Bytes,
    heroservice: Bytes,
}

/// The rpc.sock router. `module` is the jsonrpsee module built from the trait impl.
pub fn rpc_router(
    module: jsonrpsee::RpcModule<()>,
    meta: ServiceMeta,
    access: impl Into<RpcAccess>,
) -> Router {
    let access = access.into();
    let health_body = serde_json::json!({
        "status": "ok",
        "name": meta.name,
        "version": meta.version,
    });
    let heroservice_body = serde_json::json!({
        "name": meta.name,
        "version": meta.version,
        "description": "LLM request broker: one OpenAI-compatible surface in front of many providers",
        "protocol": "openrpc",
        "sockets": { "rest": meta.rest_socket, "rpc": meta.rpc_socket },
        "spec": "/openrpc.json",
        "endpoints": { "rpc": "/rpc", "health": "/health" },
    });
    let state = Arc::new(RpcState {
        methods: module.into(),
        gate_reads: access.gate_reads && access.token.is_some(),
        token_digest: access.token.map(|t| digest(t.expose().as_bytes())),
        health: Bytes::from(health_body.to_string()),
        heroservice: Bytes::from(heroservice_body.to_string()),
    });
    Router::new()
        .route("/rpc", post(rpc))
        .route("/openrpc.json", get(openrpc))
        .route("/health", get(health))
        .route("/.well-known/heroservice.json", get(heroservice))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Caps what the `Bytes` extractor buffers; `rpc` turns the rejection into a JSON-RPC error.
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn json(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.into(),
    )
        .into_response()
}

async fn openrpc() -> Response {
    json(StatusCode::OK, OPENRPC_JSON)
}

async fn health(State(state): State<Arc<RpcState>>) -> Response {
    json(StatusCode::OK, state.health.clone())
}

async fn heroservice(State(state): State<Arc<RpcState>>) -> Response {
    json(StatusCode::OK, state.heroservice.clone())
}

async fn not_found(method: Method, uri: Uri) -> Response {
    let body = ErrorBody::new(
        ErrorCode::NotFound,
        format!(
            "no route {method} {}: rpc.sock serves POST /rpc, GET /openrpc.json, GET /health and GET /.well-known/heroservice.json",
            uri.path()
        ),
    );
    error_body(StatusCode::NOT_FOUND, &body)
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let body = ErrorBody::new(
        ErrorCode::MethodNotAllowed,
        format!("{} does not answer {method}", uri.path()),
    );
    error_body(StatusCode::METHOD_NOT_ALLOWED, &body)
}

fn error_body(status: StatusCode, body: &ErrorBody) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => json(status, text),
        Err(_) => status.into_response(),
    }
}

/// A JSON-RPC error response as sent on the wire.
#[derive(Serialize)]
struct ErrorResponse<'a> {
    jsonrpc: &'static str,
    error: ErrorPayload<'a>,
    id: &'a RawValue,
}

#[derive(Serialize)]
struct ErrorPayload<'a> {
    code: i32,
    message: &'a str,
}

/// What [`rpc_error`] sends if serializing an error ever failed.
const INTERNAL_ERROR: &str =
    r#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"internal error"},"id":null}"#;

fn rpc_error(id: Option<&RawValue>, code: i32, message: &str) -> String {
    let response = ErrorResponse {
        jsonrpc: "2.0",
        error: ErrorPayload { code, message },
        id: id.unwrap_or(RawValue::NULL),
    };
    serde_json::to_string(&response).unwrap_or_else(|_| INTERNAL_ERROR.to_owned())
}

/// The fields of one call that the envelope handling needs; `params` is left to jsonrpsee.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    jsonrpc: Option<String>,
    /// `Some` when the member is present, even as `null`: only an absent id is a notification.
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// A notification rewritten as a call, since jsonrpsee's module only runs calls.
#[derive(Serialize)]
struct AsCall<'a> {
    jsonrpc: &'static str,
    id: u32,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a RawValue>,
}

/// A call with its own id, its params rewritten by [`wrap_flat`].
#[derive(Serialize)]
struct AsCallWithId<'a> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    method: &'a str,
    params: &'a RawValue,
}

/// By-name `params` of `method` given flat, rewritten into the declared (wrapped) form;
/// `None` when there is nothing to rewrite (not such a method, positional params, or the
/// wrapped form already).
fn wrap_flat(method: &str, params: &RawValue) -> Option<Box<RawValue>> {
    let (_, wrapper, kept) = hero_aibroker_sdk::rpc::FLAT_PARAMS
        .iter()
        .find(|(m, _, _)| *m == method)?;
    let serde_json::Value::Object(mut flat) = serde_json::from_str(params.get()).ok()? else {
        return None;
    };
    if flat.contains_key(*wrapper) {
        return None;
    }
    let mut wrapped = serde_json::Map::new();
    for k in *kept {
        if let Some(v) = flat.remove(*k) {
            wrapped.insert((*k).to_owned(), v);
        }
    }
    wrapped.insert((*wrapper).to_owned(), serde_json::Value::Object(flat));
    serde_json::value::to_raw_value(&wrapped).ok()
}

impl RpcState {
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token_digest else {
            return true;
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match presented {
            Some(token) => bool::from(digest(token.as_bytes()).ct_eq(expected)),
            None => false,
        }
    }

    /// Runs one call of a request or batch; `None` for a notification (no answer is sent).
    async fn call(&self, raw: &RawValue, authorized: bool) -> Option<String> {
        let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(raw.get()) else {
            return Some(rpc_error(
                None,
                INVALID_REQUEST_CODE,
                "invalid request: not a JSON-RPC 2.0 call object",
            ));
        };
        // An id that is not a string, number or null cannot be echoed back.
        let id = envelope.id.filter(|id| {
            matches!(
                id.get().as_bytes().first(),
                Some(b'"' | b'n' | b'-' | b'0'..=b'9')
            )
        });
        if envelope.id.is_some() && id.is_none() {
            return Some(rpc_error(
                None,
                INVALID_REQUEST_CODE,
                "invalid request: id must be a string, a number or null",
            ));
        }
        let Some(method) = envelope.method.as_deref() else {
            return Some(rpc_error(
                id,
                INVALID_REQUEST_CODE,
                "invalid request: method is missing",
            ));
        };
        if envelope.jsonrpc.as_deref() != Some("2.0") {
            return Some(rpc_error(
                id,
                INVALID_REQUEST_CODE,
                "invalid request: jsonrpc must be \"2.0\"",
            ));
        }
        let gated = MUTATING_METHODS.contains(&method)
            || (self.gate_reads && !OPEN_METHODS.contains(&method));
        if !authorized && gated {
            tracing::warn!(method, "refused an RPC call without a valid admin token");
            let message =
                format!("{method} needs the admin token: send Authorization: Bearer <ADMIN_TOKEN>");
            return id.map(|id| rpc_error(Some(id), ErrorCode::Unauthorized.rpc_code(), &message));
        }
        tracing::debug!(method, notification = id.is_none(), "RPC call");
        let flat = envelope.params.and_then(|p| wrap_flat(method, p));
        let params = flat.as_deref().or(envelope.params);
        let Some(id) = id else {
            let call = AsCall {
                jsonrpc: "2.0",
                id: 0,
                method,
                params,
            };
            if let Ok(text) = serde_json::to_string(&call) {
                let _ = self.methods.raw_json_request(&text, 1).await;
            }
            return None;
        };
        let rewritten = flat.as_ref().and_then(|p| {
            serde_json::to_string(&AsCallWithId {
                jsonrpc: "2.0",
                id,
                method,
                params: p,
            })
            .ok()
        });
        let request = rewritten.as_deref().unwrap_or(raw.get());
        match self.methods.raw_json_request(request, 1).await {
            Ok((answer, _)) => Some(Box::<str>::from(answer).into_string()),
            // jsonrpsee refuses ids it cannot represent (negative or fractional numbers).
            Err(_) => Some(rpc_error(
                Some(id),
                INVALID_REQUEST_CODE,
                "invalid request: unsupported id",
            )),
        }
    }
}

async fn rpc(
    State(state): State<Arc<RpcState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let message = format!("request body is larger than {} KiB", MAX_BODY / 1024);
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                rpc_error(None, OVERSIZED_REQUEST_CODE, &message),
            );
        }
        Err(_) => {
            // The client went away or sent a broken chunked body: nothing sensible to parse.
            return json(
                StatusCode::BAD_REQUEST,
                rpc_error(
                    None,
                    PARSE_ERROR_CODE,
                    "parse error: the body could not be read",
                ),
            );
        }
    };
    let Ok(request) = serde_json::from_slice::<&RawValue>(&body) else {
        return json(
            StatusCode::OK,
            rpc_error(None, PARSE_ERROR_CODE, "parse error: the body is not JSON"),
        );
    };
    let authorized = state.authorized(&headers);

    if !request.get().starts_with('[') {
        return match state.call(request, authorized).await {
            Some(answer) => json(StatusCode::OK, answer),
            None => StatusCode::NO_CONTENT.into_response(),
        };
    }
    // Parsing the outer array again only splits it; the elements stay borrowed from `body`.
    let Ok(calls) = serde_json::from_str::<Vec<&RawValue>>(request.get()) else {
        return json(
            StatusCode::OK,
            rpc_error(None, PARSE_ERROR_CODE, "parse error: the body is not JSON"),
        );
    };
    if calls.is_empty() {
        return json(
            StatusCode::OK,
            rpc_error(None, INVALID_REQUEST_CODE, "invalid request: empty batch"),
        );
    }
    if calls.len() > MAX_BATCH {
        return json(
            StatusCode::OK,
            rpc_error(
                None,
                INVALID_REQUEST_CODE,
                &format!(
                    "invalid request: a batch of {} calls; at most {MAX_BATCH} per batch",
                    calls.len()
                ),
            ),
        );
    }
    let answers: Vec<String> = join_all(calls.iter().map(|call| state.call(call, authorized)))
        .await
        .into_iter()
        .flatten()
        .collect();
    if answers.is_empty() {
        // A batch of notifications only: the spec says to answer nothing at all.
        return StatusCode::NO_CONTENT.into_response();
    }
    let mut out = String::with_capacity(answers.iter().map(|a| a.len() + 1).sum::<usize>() + 1);
    out.push('[');
    for (i, answer) in answers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(answer);
    }
    out.push(']');
    json(StatusCode::OK, out)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Body;
    use axum::http::{HeaderValue, Request};
    use http_body_util::BodyExt;
    use jsonrpsee::RpcModule;
    use jsonrpsee::types::ErrorObjectOwned;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;

    const TOKEN: &str = "admin-canary-token-1234";

    /// `health` (open) and `keys.create` (mutating, counts how often it really ran).
    fn app(token: Option<&str>) -> (Router, Arc<AtomicUsize>) {
        let ran = Arc::new(AtomicUsize::new(0));
        let mut module = RpcModule::new(());
        module
            .register_method("health", |_, _, _| {
                Ok::<_, ErrorObjectOwned>(json!({"status": "ok"}))
            })
            .expect("registers");
        let counter = ran.clone();
        module
            .register_method("keys.create", move |params, _, _| {
                counter.fetch_add(1, Ordering::SeqCst);
                // By name as the real method declares it, `{"params": {"name": …}}`; a flat
                // `{"name": …}` reaches it rewritten so.
                let name: String = params.sequence().next().or_else(|_| {
                    #[derive(Deserialize)]
                    struct Inner {
                        name: String,
                    }
                    #[derive(Deserialize)]
                    struct ByName {
                        params: Inner,
                    }
                    params.parse::<ByName>().map(|p| p.params.name)
                })?;
                Ok::<_, ErrorObjectOwned>(json!({"created": name}))
            })
            .expect("registers");
        let meta = ServiceMeta {
            name: "hero_aibroker".to_owned(),
            version: "0.1.0".to_owned(),
            rest_socket: "/s/rest.sock".to_owned(),
            rpc_socket: "/s/rpc.sock".to_owned(),
        };
        (rpc_router(module, meta, token.map(Secret::new)), ran)
    }

    async fn send(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let resp = app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            headers,
            String::from_utf8(body.to_vec()).expect("utf-8"),
        )
    }

    async fn post(
        app: &Router,
        body: impl Into<Body>,
        bearer: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = Request::post("/rpc").header(header::CONTENT_TYPE, "application/json");
        if let Some(auth) = bearer {
            req = req.header(header::AUTHORIZATION, auth);
        }
        let (status, _, body) = send(app, req.body(body.into()).expect("request")).await;
        (status, body)
    }

    fn parse(body: &str) -> Value {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }

    #[tokio::test]
    async fn a_call_is_answered() {
        let (app, _) = app(None);
        let (status, body) =
            post(&app, r#"{"jsonrpc":"2.0","id":7,"method":"health"}"#, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            parse(&body),
            json!({"jsonrpc": "2.0", "id": 7, "result": {"status": "ok"}})
        );

        let (_, body) = post(&app, r#"{"jsonrpc":"2.0","id":"a","method":"nope"}"#, None).await;
        let v = parse(&body);
        assert_eq!(
            (v["id"].clone(), v["error"]["code"].clone()),
            (json!("a"), json!(-32601))
        );
    }

    #[tokio::test]
    async fn a_batch_answers_calls_in_order_and_skips_notifications() {
        let (app, ran) = app(None);
        // Leading whitespace must not hide that this is a batch.
        let batch = r#"
        [
            {"jsonrpc":"2.0","id":1,"method":"health"},
            {"jsonrpc":"2.0","method":"keys.create","params":["quiet"]},
            {"jsonrpc":"2.0","id":2,"method":"keys.create","params":{"name":"ci"}},
            5
        ]"#;
        let (status, body) = post(&app, batch, None).await;
        assert_eq!(status, StatusCode::OK);
        let v = parse(&body);
        assert_eq!(v.as_array().map(Vec::len), Some(3), "{body}");
        assert_eq!(
            v[0],
            json!({"jsonrpc": "2.0", "id": 1, "result": {"status": "ok"}})
        );
        assert_eq!(
            v[1],
            json!({"jsonrpc": "2.0", "id": 2, "result": {"created": "ci"}})
        );
        assert_eq!(
            (v[2]["id"].clone(), v[2]["error"]["code"].clone()),
            (Value::Null, json!(-32600))
        );
        // The notification ran too; it just has no answer.
        assert_eq!(ran.load(Ordering::SeqCst), 2);

        let (status, body) = post(&app, r#"[{"jsonrpc":"2.0","method":"health"}]"#, None).await;
        assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
        let (status, body) = post(&app, r#"{"jsonrpc":"2.0","method":"health"}"#, None).await;
        assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
        let (_, body) = post(&app, "[]", None).await;
        assert_eq!(parse(&body)["error"]["code"], json!(-32600));
    }

    #[tokio::test]
    async fn malformed_bodies_get_json_rpc_errors() {
        let (app, _) = app(None);
        let (status, body) = post(&app, "{not json", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            parse(&body),
            json!({"jsonrpc": "2.0", "error": {"code": -32700, "message": "parse error: the body is not JSON"}, "id": null})
        );
        let (_, body) = post(&app, r#"{"id":3,"method":"health"}"#, None).await;
        let v = parse(&body);
        assert_eq!(
            (v["id"].clone(), v["error"]["code"].clone()),
            (json!(3), json!(-32600))
        );
        let (_, body) = post(
            &app,
            r#"{"jsonrpc":"2.0","id":{"x":1},"method":"health"}"#,
            None,
        )
        .await;
        assert_eq!(parse(&body)["error"]["code"], json!(-32600));

        let big = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"health","params":["{}"]}}"#,
            "x".repeat(MAX_BODY)
        );
        let (status, body) = post(&app, big, None).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(parse(&body)["error"]["code"], json!(OVERSIZED_REQUEST_CODE));
    }

    #[tokio::test]
    async fn mutating_methods_need_the_admin_token() {
        let (app, ran) = app(Some(TOKEN));
        let create = r#"{"jsonrpc":"2.0","id":1,"method":"keys.create","params":["ci"]}"#;
        let refused = json!({"jsonrpc": "2.0", "id": 1, "error": {
            "code": hero_aibroker_sdk::rpc::codes::UNAUTHORIZED,
            "message": "keys.create needs the admin token: send Authorization: Bearer <ADMIN_TOKEN>"
        }});
        for bearer in [
            None,
            Some("Bearer wrong"),
            Some("Basic admin-canary-token-1234"),
            Some("Bearer "),
        ] {
            let (status, body) = post(&app, create, bearer).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(parse(&body), refused, "with {bearer:?}");
            assert!(!body.contains(TOKEN));
        }
        assert_eq!(ran.load(Ordering::SeqCst), 0, "a refused call must not run");

        // Inside a batch, each mutating call is gated on its own; open methods still answer.
        let batch = format!(
            r#"[{create},{{"jsonrpc":"2.0","id":2,"method":"health"}},{{"jsonrpc":"2.0","method":"keys.create","params":["n"]}}]"#
        );
        let v = parse(&post(&app, batch, None).await.1);
        assert_eq!(v[0], refused);
        assert_eq!(v[1]["result"], json!({"status": "ok"}));
        assert_eq!(v.as_array().map(Vec::len), Some(2));
        assert_eq!(ran.load(Ordering::SeqCst), 0);

        let bearer = format!("Bearer {TOKEN}");
        let v = parse(&post(&app, create, Some(&bearer)).await.1);
        assert_eq!(v["result"], json!({"created": "ci"}));
        let lower = format!("bearer {TOKEN}");
        let v = parse(&post(&app, create, Some(&lower)).await.1);
        assert_eq!(v["result"], json!({"created": "ci"}));
        assert_eq!(ran.load(Ordering::SeqCst), 2);

        // Without a configured token everything is open.
        let (open, ran) = self::app(None);
        let v = parse(&post(&open, create, None).await.1);
        assert_eq!(v["result"], json!({"created": "ci"}));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn get_routes_describe_the_service() {
        let (app, _) = app(Some(TOKEN));
        let get = |path: &str| Request::get(path).body(Body::empty()).expect("request");

        let (status, headers, body) = send(&app, get("/openrpc.json")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body, OPENRPC_JSON);
        assert_eq!(parse(&body)["openrpc"], "1.3.2");

        let (status, headers, body) = send(&app, get("/health")).await;
        assert_eq!(
            (status, &headers[header::CONTENT_TYPE]),
            (
                StatusCode::OK,
                &HeaderValue::from_static("application/json")
            )
        );
        assert_eq!(
            parse(&body),
            json!({"status": "ok", "name": "hero_aibroker", "version": "0.1.0"})
        );

        let (status, _, body) = send(&app, get("/.well-known/heroservice.json")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            parse(&body),
            json!({
                "name": "hero_aibroker",
                "version": "0.1.0",
                "description": "LLM request broker: one OpenAI-compatible surface in front of many providers",
                "protocol": "openrpc",
                "sockets": {"rest": "/s/rest.sock", "rpc": "/s/rpc.sock"},
                "spec": "/openrpc.json",
                "endpoints": {"rpc": "/rpc", "health": "/health"}
            })
        );

        let (status, headers, body) = send(&app, get("/nope")).await;
        assert_eq!(
            (status, &headers[header::CONTENT_TYPE]),
            (
                StatusCode::NOT_FOUND,
                &HeaderValue::from_static("application/json")
            )
        );
        assert_eq!(parse(&body)["error"]["code"], "not_found");
        let (status, _, body) = send(&app, get("/rpc")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(parse(&body)["error"]["code"], "method_not_allowed");
    }
    /// The SDK's client against this router on a real Unix socket: gating, notifications
    /// (204) and batches as a caller sees them.
    #[tokio::test]
    async fn the_sdk_client_works_against_this_router() {
        use hero_aibroker_sdk::client::RpcClient;
        use jsonrpsee::core::ClientError;
        use jsonrpsee::core::client::ClientT;
        use jsonrpsee::core::params::{ArrayParams, BatchRequestBuilder};

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("rpc.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("binds");
        let (router, ran) = app(Some(TOKEN));
        let server = tokio::spawn(async move { axum::serve(listener, router).await });

        let mut params = ArrayParams::new();
        params.insert("ci").expect("params");
        let anonymous = RpcClient::connect(&path).await.expect("connects");
        match anonymous
            .request::<Value, _>("keys.create", params.clone())
            .await
        {
            Err(ClientError::Call(e)) => {
                assert_eq!(e.code(), hero_aibroker_sdk::rpc::codes::UNAUTHORIZED)
            }
            other => panic!("expected unauthorized, got {other:?}"),
        }
        let health: Value = anonymous
            .request("health", ArrayParams::new())
            .await
            .expect("open method");
        assert_eq!(health, json!({"status": "ok"}));

        let admin = RpcClient::new(&path).with_token(TOKEN);
        let created: Value = admin
            .request("keys.create", params.clone())
            .await
            .expect("authorized");
        assert_eq!(created, json!({"created": "ci"}));
        admin
            .notification("keys.create", params.clone())
            .await
            .expect("a notification gets 204");
        let mut batch = BatchRequestBuilder::new();
        batch.insert("health", ArrayParams::new()).expect("params");
        batch.insert("keys.create", params).expect("params");
        let answers = anonymous
            .batch_request::<Value>(batch)
            .await
            .expect("batch");
        assert_eq!(
            (answers.num_successful_calls(), answers.num_failed_calls()),
            (1, 1)
        );
        assert_eq!(
            ran.load(Ordering::SeqCst),
            2,
            "only the authorized call and notification ran"
        );
        server.abort();
    }
}
