//! The HTTP side: the accept loop, routing, recording each request, and acting out the
//! scripted [`Behavior`].

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::body::{FakeBody, Watch};
use crate::fixtures::{ModelJson, templates};
use crate::{Behavior, RawCall, Shared};

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");

/// Accept connections until the task is aborted (see `FakeProvider::drop`).
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut builder = http1::Builder::new();
    // Keep-alive because the broker pools connections; no header timeout so idle pooled
    // connections are not cut after 30 s (and hyper needs no timer). Flattening writes
    // (copying frames into one buffer) beat writev here: an unpaced stream is ~35 small
    // chunked frames, which as iovecs took more syscalls (measured ~1.4x more streams/s).
    builder
        .keep_alive(true)
        .header_read_timeout(None)
        .writev(false);
    // Owning the connection tasks here means aborting this task also ends every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // SSE events are small writes; Nagle would hold them back.
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "fake provider: set_nodelay failed");
                    }
                    let shared = Arc::clone(&shared);
                    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    connections.spawn(async move {
                        // Errors here are mostly scripted aborts and clients going away.
                        if let Err(error) = conn.await {
                            tracing::debug!(%error, "fake provider: connection ended");
                        }
                    });
                }
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "fake provider: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The endpoints the fake provider serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Chat,
    Completions,
    Embeddings,
    Models,
    /// Anthropic Messages (`POST /v1/messages`).
    Messages,
    /// `POST /v1/audio/speech`.
    Speech,
    /// `POST /v1/audio/transcriptions` (`translate: false`) and `/translations`.
    Transcribe {
        translate: bool,
    },
}

impl Route {
    fn of(method: &Method, path: &str) -> Option<Route> {
        // OpenRouter's layout (`/api/v1/...`, see `FakeProvider::openrouter_url`) too.
        let path = path.strip_prefix("/api").unwrap_or(path);
        match (method, path) {
            (&Method::POST, "/v1/chat/completions") => Some(Route::Chat),
            (&Method::POST, "/v1/completions") => Some(Route::Completions),
            (&Method::POST, "/v1/embeddings") => Some(Route::Embeddings),
            (&Method::GET, "/v1/models") => Some(Route::Models),
            (&Method::POST, "/v1/messages") => Some(Route::Messages),
            (&Method::POST, "/v1/audio/speech") => Some(Route::Speech),
            (&Method::POST, "/v1/audio/transcriptions") => {
                Some(Route::Transcribe { translate: false })
            }
            (&Method::POST, "/v1/audio/translations") => {
                Some(Route::Transcribe { translate: true })
            }
            _ => None,
        }
    }
}

/// The few request fields the fake provider acts on; everything else is ignored.
#[derive(Default, Deserialize)]
struct Meta<'a> {
    #[serde(borrow)]
    model: Option<ModelName<'a>>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

/// A newtype so serde borrows the model from the body instead of allocating.
#[derive(Deserialize)]
struct ModelName<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// The bearer token of `Authorization: Bearer <token>`, else Anthropic's `x-api-key`.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return headers.get("x-api-key")?.to_str().ok();
    };
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<FakeBody>, Infallible> {
    let (mut parts, body) = req.into_parts();
    if let Some(reply) = crate::catalog::answer(&shared, &parts) {
        return Ok(reply);
    }
    let route = Route::of(&parts.method, parts.uri.path());
    // Read the whole request before anything else, even for Hang: the brief is "the
    // provider got the request and then went silent". A client that vanished mid-body
    // leaves an empty body, which is recorded as such.
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    // A transcription upload is a form: its model field names the model.
    let form = match route {
        Some(Route::Transcribe { .. }) => crate::audio::form(
            parts
                .headers
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            &body,
        ),
        _ => None,
    };
    let meta = match route {
        Some(Route::Models) | None => Ok(Meta::default()),
        Some(Route::Transcribe { .. }) => match &form {
            Some(f) => Ok(Meta {
                model: crate::audio::form_model(f).map(|m| ModelName(Cow::Owned(m))),
                ..Meta::default()
            }),
            None => serde_json::from_slice::<Meta<'_>>(b"not a form"),
        },
        Some(_) => serde_json::from_slice::<Meta<'_>>(&body),
    };
    let (model, stream, include_usage) = match &meta {
        Ok(meta) => (
            meta.model.as_ref().map(|m| &*m.0),
            meta.stream == Some(true),
            meta.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true),
        ),
        Err(_) => (None, false, false),
    };

    let authorization = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // One lock per request: count, pick the rule, record.
    let (behavior, chunk_delay) = {
        let mut state = shared.lock();
        shared.received.fetch_add(1, Ordering::Relaxed);
        let behavior = match (route, &meta) {
            (Some(_), Ok(_)) => Some(state.take_behavior(bearer(&parts.headers), model)),
            _ => None,
        };
        if state.options.record_calls {
            state.calls.push(RawCall {
                path: parts.uri.path().to_owned(),
                headers: std::mem::take(&mut parts.headers),
                model: model.map(str::to_owned),
                stream,
                body: body.clone(),
            });
        }
        (behavior, state.options.chunk_delay)
    };

    let Some(route) = route else {
        let message = format!("Invalid URL ({} {})", parts.method, parts.uri.path());
        return Ok(error_response(
            StatusCode::NOT_FOUND,
            &message,
            "invalid_request_error",
            None,
        ));
    };
    let Some(behavior) = behavior else {
        return Ok(error_response(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            "invalid_request_error",
            None,
        ));
    };
    let reply = ReplyTo {
        route,
        model_name: model.unwrap_or_default(),
        model: ModelJson::new(model.unwrap_or_default()),
        stream: stream && matches!(route, Route::Chat | Route::Completions | Route::Messages),
        include_usage,
        chunk_delay,
        authorization,
    };
    // Alive across `act` (so a client leaving a hung or delayed request drops it armed), then
    // handed to the body, which disarms it once the reply is complete.
    let watch = Watch::new(shared);
    if matches!(route, Route::Speech | Route::Transcribe { .. }) {
        return Ok(act_audio(&reply, behavior, &body, form.as_deref())
            .await
            .map(|body| body.watched(watch)));
    }
    Ok(act(&reply, behavior, &body)
        .await
        .map(|body| body.watched(watch)))
}

/// What a successful reply has to fit.
struct ReplyTo<'a> {
    route: Route,
    model_name: &'a str,
    model: ModelJson<'a>,
    /// A streaming endpoint asked for `"stream": true`.
    stream: bool,
    include_usage: bool,
    /// Default pause between stream events.
    chunk_delay: Duration,
    /// The request's `Authorization` header, for [`Behavior::EchoAuth`].
    authorization: Option<String>,
}

/// A rendered success body, before pacing.
enum Reply {
    Json(Bytes),
    Sse(Vec<Bytes>),
}

/// Which recording a chat reply replays.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Text,
    Tools,
    Reasoning,
}

impl ReplyTo<'_> {
    fn render(&self, flavor: Flavor) -> Reply {
        let t = templates();
        let model = &self.model;
        match self.route {
            Route::Chat if self.stream => match flavor {
                Flavor::Text => Reply::Sse(t.chat_stream.render(model, self.include_usage)),
                Flavor::Tools => Reply::Sse(t.chat_tools_stream.render(model, self.include_usage)),
                Flavor::Reasoning => Reply::Sse(t.reasoning_stream.render(model)),
            },
            Route::Chat => Reply::Json(match flavor {
                Flavor::Text => t.chat.render(model),
                Flavor::Tools => t.chat_tools.render(model),
                Flavor::Reasoning => t.reasoning.render(model),
            }),
            Route::Completions if self.stream => {
                Reply::Sse(t.completion_stream.render(model, self.include_usage))
            }
            Route::Completions => Reply::Json(t.completion.render(model)),
            Route::Embeddings => Reply::Json(t.embeddings.render(model)),
            Route::Models => Reply::Json(t.models.clone()),
            // Answered by `act_messages` and `act_audio`; never rendered here.
            Route::Messages | Route::Speech | Route::Transcribe { .. } => Reply::Json(Bytes::new()),
        }
    }

    /// The first `n` events of a stream before its finish chunk; the first half of a JSON
    /// reply.
    fn render_unfinished(&self, n: usize) -> Reply {
        let t = templates();
        match self.route {
            Route::Chat if self.stream => {
                Reply::Sse(t.chat_stream.render_unfinished(&self.model, n))
            }
            Route::Completions if self.stream => {
                Reply::Sse(t.completion_stream.render_unfinished(&self.model, n))
            }
            _ => match self.render(Flavor::Text) {
                Reply::Json(bytes) => Reply::Json(bytes.slice(..bytes.len() / 2)),
                sse @ Reply::Sse(_) => sse,
            },
        }
    }
}

/// Act out `behavior` for one request.
async fn act(reply: &ReplyTo<'_>, behavior: Behavior, body: &[u8]) -> Response<FakeBody> {
    let pace = reply.chunk_delay;
    if reply.route == Route::Messages {
        return act_messages(reply, behavior, body).await;
    }
    match behavior {
        Behavior::Ok => send(reply.render(Flavor::Text), pace),
        Behavior::ToolCalls => send(reply.render(Flavor::Tools), pace),
        Behavior::Agent(script) => match crate::agent::reply(body, &script, reply.stream)
            .filter(|_| reply.route == Route::Chat)
        {
            Some(mut frames) if !reply.stream => send(Reply::Json(frames.remove(0)), pace),
            Some(frames) => send(Reply::Sse(frames), pace),
            None => send(reply.render(Flavor::Text), pace),
        },
        Behavior::Reasoning => send(reply.render(Flavor::Reasoning), pace),
        Behavior::EndWithoutDone(n) => match reply.render_unfinished(n) {
            // Chunked (no content-length) with a clean end: a short, well-formed body.
            Reply::Json(bytes) => response(
                StatusCode::OK,
                JSON,
                FakeBody::frames(vec![bytes], Duration::ZERO),
            ),
            Reply::Sse(frames) => {
                response(StatusCode::OK, EVENT_STREAM, FakeBody::frames(frames, pace))
            }
        },
        Behavior::DelayFirstByte(delay) => {
            tokio::time::sleep(delay).await;
            send(reply.render(Flavor::Text), pace)
        }
        Behavior::SlowChunks(delay) => match reply.render(Flavor::Text) {
            Reply::Json(bytes) => {
                tokio::time::sleep(delay).await;
                response(StatusCode::OK, JSON, FakeBody::full(bytes))
            }
            Reply::Sse(frames) => response(
                StatusCode::OK,
                EVENT_STREAM,
                FakeBody::frames(frames, delay),
            ),
        },
        Behavior::DropAfterChunks(n) => match reply.render(Flavor::Text) {
            Reply::Json(bytes) => {
                // Chunked (no content-length), so the cut shows as a broken body.
                let half = bytes.slice(..bytes.len() / 2);
                let body = FakeBody::aborting(
                    vec![half, bytes.slice(bytes.len() / 2..)],
                    Duration::ZERO,
                    n.min(1),
                );
                response(StatusCode::OK, JSON, body)
            }
            Reply::Sse(frames) => response(
                StatusCode::OK,
                EVENT_STREAM,
                FakeBody::aborting(frames, pace, n),
            ),
        },
        Behavior::ErrorEvent => {
            let t = templates();
            if reply.stream {
                let body = FakeBody::frames(vec![t.error_event_sse.clone()], Duration::ZERO);
                response(StatusCode::OK, EVENT_STREAM, body)
            } else {
                response(
                    StatusCode::OK,
                    JSON,
                    FakeBody::full(t.error_event_json.clone()),
                )
            }
        }
        Behavior::Hang => {
            // Dropped with the connection when the client leaves or the provider stops.
            let never: Infallible = std::future::pending().await;
            match never {}
        }
        Behavior::Status {
            status,
            retry_after,
        } => status_response(status, retry_after),
        Behavior::EchoAuth(status) => error_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &format!(
                "Incorrect API key provided: {}",
                reply.authorization.as_deref().unwrap_or("(none)")
            ),
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
    }
}

/// [`act`] for the speech endpoints: audio in pieces, or a transcript; scripted failures as
/// for chat.
async fn act_audio(
    reply: &ReplyTo<'_>,
    behavior: Behavior,
    body: &[u8],
    form: Option<&[hero_aibroker_sdk::multipart::Part]>,
) -> Response<FakeBody> {
    match behavior {
        Behavior::Status {
            status,
            retry_after,
        } => return status_response(status, retry_after),
        Behavior::Hang => {
            let never: Infallible = std::future::pending().await;
            match never {}
        }
        Behavior::DelayFirstByte(delay) => tokio::time::sleep(delay).await,
        _ => {}
    }
    match reply.route {
        Route::Speech => {
            let format = crate::audio::speech_format(body);
            let content_type = HeaderValue::from_static(crate::audio::speech_content_type(&format));
            response(
                StatusCode::OK,
                content_type,
                FakeBody::frames(crate::audio::speech_frames(body), reply.chunk_delay),
            )
        }
        Route::Transcribe { translate } => {
            match form.and_then(|f| crate::audio::transcript(f, translate)) {
                Some((content_type, text)) => response(
                    StatusCode::OK,
                    HeaderValue::from_static(content_type),
                    FakeBody::full(text),
                ),
                None => error_response(
                    StatusCode::BAD_REQUEST,
                    "Could not parse multipart form: the field `file` is missing.",
                    "invalid_request_error",
                    None,
                ),
            }
        }
        _ => error_response(
            StatusCode::NOT_FOUND,
            "not an audio route",
            "invalid_request_error",
            None,
        ),
    }
}

/// [`act`] on Anthropic's wire.
async fn act_messages(reply: &ReplyTo<'_>, behavior: Behavior, body: &[u8]) -> Response<FakeBody> {
    use crate::anthropic::{Kind, agent, error_body, render};
    let pace = reply.chunk_delay;
    let frames = |frames: Vec<Bytes>| {
        if reply.stream {
            send(Reply::Sse(frames), pace)
        } else {
            send(
                Reply::Json(frames.into_iter().next().unwrap_or_default()),
                pace,
            )
        }
    };
    let model = reply.model_name;
    match behavior {
        Behavior::ToolCalls => frames(render(Kind::ToolUse, model, reply.stream)),
        Behavior::Reasoning => frames(render(Kind::Thinking, model, reply.stream)),
        Behavior::Agent(script) => frames(
            agent(body, &script, reply.stream)
                .unwrap_or_else(|| render(Kind::Text, model, reply.stream)),
        ),
        Behavior::Status {
            status,
            retry_after,
        } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = response(code, JSON, FakeBody::full(error_body(code.as_u16())));
            r.headers_mut()
                .insert("request-id", HeaderValue::from_static("req_fake01"));
            if let Some(seconds) = retry_after {
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(seconds));
            }
            r
        }
        Behavior::Hang => {
            let never: Infallible = std::future::pending().await;
            match never {}
        }
        Behavior::DelayFirstByte(delay) => {
            tokio::time::sleep(delay).await;
            frames(render(Kind::Text, model, reply.stream))
        }
        Behavior::DropAfterChunks(n) if reply.stream => response(
            StatusCode::OK,
            EVENT_STREAM,
            FakeBody::aborting(render(Kind::Text, model, true), pace, n),
        ),
        Behavior::ErrorEvent if reply.stream => {
            let e = Bytes::from_static(
                b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
            );
            response(
                StatusCode::OK,
                EVENT_STREAM,
                FakeBody::frames(vec![e], Duration::ZERO),
            )
        }
        _ => frames(render(Kind::Text, model, reply.stream)),
    }
}

fn send(reply: Reply, pace: Duration) -> Response<FakeBody> {
    match reply {
        Reply::Json(bytes) => response(StatusCode::OK, JSON, FakeBody::full(bytes)),
        Reply::Sse(frames) => {
            response(StatusCode::OK, EVENT_STREAM, FakeBody::frames(frames, pace))
        }
    }
}

fn response(status: StatusCode, content_type: HeaderValue, body: FakeBody) -> Response<FakeBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

/// A scripted error status with an OpenAI-shaped body.
fn status_response(status: u16, retry_after: Option<u64>) -> Response<FakeBody> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = if status == StatusCode::TOO_MANY_REQUESTS {
        let t = templates();
        let mut response = response(status, JSON, FakeBody::full(t.error_429.clone()));
        for (name, value) in &t.error_429_headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response
    } else {
        let (message, kind, code) = describe(status);
        error_response(status, message, kind, code)
    };
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Message, `type` and `code` resembling what OpenAI sends for `status`.
fn describe(status: StatusCode) -> (&'static str, &'static str, Option<&'static str>) {
    match status.as_u16() {
        401 => (
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => (
            "You are not allowed to sample from this model.",
            "invalid_request_error",
            None,
        ),
        404 => (
            "The model does not exist or you do not have access to it.",
            "invalid_request_error",
            Some("model_not_found"),
        ),
        503 => (
            "The engine is currently overloaded, please try again later.",
            "server_error",
            None,
        ),
        500..=599 => (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        _ => (
            "The fake provider was scripted to reject this request.",
            "invalid_request_error",
            None,
        ),
    }
}

/// `{"error":{"message","type","param","code"}}`.
fn error_response(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: Option<&str>,
) -> Response<FakeBody> {
    let body = serde_json::json!({"error": {
        "message": message,
        "type": kind,
        "param": null,
        "code": code,
    }});
    response(status, JSON, FakeBody::full(Bytes::from(body.to_string())))
}
