//! A scripted fake OpenAI-compatible provider for hero_aibroker's tests and benchmarks.
//!
//! [`FakeProvider`] is a real HTTP/1.1 server on a loopback port that replays recorded OpenAI
//! wire fixtures (see `fixtures/`), echoes the requested model, and misbehaves on demand:
//! tests [`script`](FakeProvider::script) [`Rule`]s (rate limits, hangs, slow or broken
//! streams, tool calls) and then check what the provider received with
//! [`calls`](FakeProvider::calls) / [`count`](FakeProvider::count), and how many replies
//! the client abandoned with [`cancelled`](FakeProvider::cancelled).
//!
//! It is built on hyper directly (no router, no per-request serde round trip) because the
//! benchmark runs it next to the broker and the load generator on two cores.

mod agent;
mod anthropic;
pub mod audio;
mod body;
mod catalog;
mod fixtures;
pub mod process;
mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hyper::HeaderMap;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use catalog::catalog_entry;
pub use process::{AggregatorConfig, AggregatorProcess, BrokerConfig, BrokerProcess};

/// The assistant text every chat and legacy-completion reply carries, whole in JSON replies
/// and split into deltas in streams (the text of the `chat-stream.sse` recording).
pub const CHAT_TEXT: &str = "I'm unable to provide real-time weather updates. To get the current weather in San Francisco, I recommend checking a reliable weather website or a weather app.";
/// `usage.prompt_tokens` of every chat/completion reply and stream usage chunk.
pub const PROMPT_TOKENS: u64 = 14;
/// `usage.completion_tokens` of every chat/completion reply and stream usage chunk.
pub const COMPLETION_TOKENS: u64 = 30;
/// `usage.prompt_tokens` (and `total_tokens`) of every embeddings reply.
pub const EMBEDDING_PROMPT_TOKENS: u64 = 8;

/// How the provider answers a request that a [`Rule`] (or the default) selected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// Normal reply: JSON, or SSE when the body has `"stream": true`.
    Ok,
    /// Error reply with an OpenAI-shaped body. 429 replays the `error-429` fixture and its
    /// `x-ratelimit-*` headers; `retry_after` (seconds) becomes a `retry-after` header.
    Status {
        /// HTTP status code (out-of-range values become 500).
        status: u16,
        /// Seconds for the `retry-after` header; `None` sends no header.
        retry_after: Option<u64>,
    },
    /// Read the request and never answer, until the client goes away or the provider drops
    /// (a client that goes away counts in [`FakeProvider::cancelled`]).
    Hang,
    /// Normal reply after this delay (before the status line).
    DelayFirstByte(Duration),
    /// Streams: sleep this long before each event after the first. JSON: delay the reply.
    SlowChunks(Duration),
    /// Streams: send this many SSE events, then break the connection mid-body. JSON replies
    /// send the first half of the body (when N > 0) and break the same way.
    DropAfterChunks(usize),
    /// Streams: 200 `text/event-stream` whose only event is `data: {"error":{...}}`, then a
    /// clean end. JSON: 200 with that `{"error":{...}}` object as the body.
    ErrorEvent,
    /// Chat replies carry tool calls (`chat-response-tool-calls.json` or the tool-call
    /// stream); other endpoints answer as [`Behavior::Ok`].
    ToolCalls,
    /// Chat replies replay OpenRouter recordings with the requested model: streams send
    /// `openrouter/chat-stream-reasoning.sse` as recorded (`: OPENROUTER PROCESSING` comments,
    /// `delta.reasoning`, the usage chunk with `cost`, cached and reasoning tokens — always,
    /// as OpenRouter does — and `[DONE]`); JSON replies send `openrouter/chat-response.json`.
    /// The text and usage are the recordings', not [`CHAT_TEXT`]. Other endpoints answer as
    /// [`Behavior::Ok`].
    Reasoning,
    /// Streams: send the first N events of the normal reply (never its finish chunk), then
    /// end the body cleanly with no `finish_reason`, usage or `[DONE]`. JSON replies send the
    /// first half of the body and end cleanly: a truncated document.
    EndWithoutDone(usize),
    /// An error with this status whose message echoes the request's `Authorization` header,
    /// as some upstreams and proxies do ("Incorrect API key provided: Bearer sk-…").
    EchoAuth(u16),
    /// Chat replies act as a tool-using model (see `agent.rs`): tool results are answered
    /// with text quoting them; otherwise the first offered tool named here (name, arguments
    /// as a JSON string) is called; otherwise a short text. Other endpoints answer as
    /// [`Behavior::Ok`].
    Agent(Vec<(String, String)>),
}

/// A scripted answer: applies to requests matching `key` and `model` (`None` = any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Match `Authorization: Bearer <key>`.
    pub key: Option<String>,
    /// Match the JSON body's `"model"`.
    pub model: Option<String>,
    /// What to do with a matching request.
    pub behavior: Behavior,
    /// Remaining matching calls this rule applies to; `None` = forever.
    pub times: Option<usize>,
}

impl Rule {
    /// A rule for every request.
    pub fn any(behavior: Behavior) -> Rule {
        Rule {
            key: None,
            model: None,
            behavior,
            times: None,
        }
    }

    /// A rule for requests sent with `Authorization: Bearer <key>`.
    pub fn for_key(key: &str, behavior: Behavior) -> Rule {
        Rule {
            key: Some(key.to_owned()),
            ..Rule::any(behavior)
        }
    }

    /// A rule for requests whose JSON body names `model`.
    pub fn for_model(model: &str, behavior: Behavior) -> Rule {
        Rule {
            model: Some(model.to_owned()),
            ..Rule::any(behavior)
        }
    }

    /// Limit the rule to the next `n` matching calls; later rules take over after that.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }

    fn matches(&self, key: Option<&str>, model: Option<&str>) -> bool {
        self.times != Some(0)
            && self.key.as_deref().is_none_or(|k| key == Some(k))
            && self.model.as_deref().is_none_or(|m| model == Some(m))
    }
}

/// One request the provider received.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// Request path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The bearer token from `Authorization`, if any.
    pub key: Option<String>,
    /// The JSON body's `"model"`, if any.
    pub model: Option<String>,
    /// Whether the body asked for `"stream": true`.
    pub stream: bool,
    /// The parsed body: `Null` when empty, a JSON string holding the raw text when invalid.
    pub body: serde_json::Value,
    /// Request headers, names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body exactly as received (a multipart upload is not JSON).
    pub raw: bytes::Bytes,
}

impl Call {
    /// The value of header `name` (lowercase), if it came.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Server-wide settings; [`FakeProvider::start`] uses the defaults.
#[derive(Clone, Debug)]
pub struct Options {
    /// Pause before each stream event after the first when no rule says otherwise
    /// (the binary's `--chunk-delay-ms`). Zero sends events back to back.
    pub chunk_delay: Duration,
    /// Keep every request for [`FakeProvider::calls`]. The benchmark binary turns this off so
    /// memory stays flat; [`FakeProvider::call_count`] still counts.
    pub record_calls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            chunk_delay: Duration::ZERO,
            record_calls: true,
        }
    }
}

/// A running fake provider; dropping it stops the listener and every open connection.
pub struct FakeProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeProvider {
    /// Bind `127.0.0.1:0` and serve in a tokio task.
    ///
    /// # Panics
    /// If the loopback interface cannot be bound (a broken test environment).
    pub async fn start() -> FakeProvider {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("fake provider: binding 127.0.0.1:0");
        FakeProvider::serve(listener, Options::default())
            .expect("fake provider: reading the bound address")
    }

    /// Serve on an already bound listener (the binary binds `--host`/`--port` itself).
    pub fn serve(listener: TcpListener, options: Options) -> std::io::Result<FakeProvider> {
        let addr = listener.local_addr()?;
        // Build the reply templates now so the first request doesn't pay for it.
        fixtures::warm_up();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rules: Vec::new(),
                calls: Vec::new(),
                options,
            }),
            received: AtomicUsize::new(0),
            cancelled: AtomicUsize::new(0),
            catalog: catalog::Catalog::default(),
        });
        let task = tokio::spawn(server::accept_loop(listener, Arc::clone(&shared)));
        Ok(FakeProvider { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL an OpenAI client expects.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Append a rule. The first matching rule wins; a rule limited by
    /// [`Rule::times`] hands over to later rules once used up.
    pub fn script(&self, rule: Rule) {
        self.shared.lock().rules.push(rule);
    }

    /// Forget every rule: all requests get [`Behavior::Ok`] again.
    pub fn clear_rules(&self) {
        self.shared.lock().rules.clear();
    }

    /// Pause between stream events for requests no rule paces (see [`Options::chunk_delay`]).
    pub fn set_chunk_delay(&self, delay: Duration) {
        self.shared.lock().options.chunk_delay = delay;
    }

    /// Every request received so far, in arrival order (empty if recording is off).
    pub fn calls(&self) -> Vec<Call> {
        self.shared
            .lock()
            .calls
            .iter()
            .map(RawCall::to_call)
            .collect()
    }

    /// How many requests arrived (counted even when recording is off).
    pub fn call_count(&self) -> usize {
        self.shared.received.load(Ordering::Relaxed)
    }

    /// Recorded calls with this bearer key and/or model (`None` = any).
    pub fn count(&self, key: Option<&str>, model: Option<&str>) -> usize {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|c| {
                key.is_none_or(|k| server::bearer(&c.headers) == Some(k))
                    && model.is_none_or(|m| c.model.as_deref() == Some(m))
            })
            .count()
    }

    /// How many replies the client abandoned before the provider finished sending them:
    /// streams whose connection closed mid-body, hung or delayed requests whose client left.
    /// Scripted cuts ([`Behavior::DropAfterChunks`]) are the provider's doing and don't count.
    pub fn cancelled(&self) -> usize {
        self.shared.cancelled.load(Ordering::Relaxed)
    }

    /// Forget the recorded calls and reset [`call_count`](FakeProvider::call_count) and
    /// [`cancelled`](FakeProvider::cancelled).
    pub fn clear_calls(&self) {
        let mut state = self.shared.lock();
        state.calls.clear();
        self.shared.received.store(0, Ordering::Relaxed);
        self.shared.cancelled.store(0, Ordering::Relaxed);
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        // The accept loop owns the listener and a JoinSet of connections; aborting it drops
        // both, so the port closes and hung or streaming requests end.
        self.task.abort();
    }
}

impl std::fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProvider")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// State shared between the handle and the connection tasks.
struct Shared {
    state: Mutex<State>,
    received: AtomicUsize,
    /// See [`FakeProvider::cancelled`]; incremented by [`body::Watch`].
    cancelled: AtomicUsize,
    /// OpenRouter's catalog: see [`FakeProvider::set_catalog`].
    catalog: catalog::Catalog,
}

struct State {
    rules: Vec<Rule>,
    calls: Vec<RawCall>,
    options: Options,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge the provider for everyone else.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Pick the behaviour for a request and use up one of its rule's `times`.
    fn take_behavior(&mut self, key: Option<&str>, model: Option<&str>) -> Behavior {
        let Some(rule) = self.rules.iter_mut().find(|r| r.matches(key, model)) else {
            return Behavior::Ok;
        };
        if let Some(n) = rule.times.as_mut() {
            *n -= 1;
        }
        rule.behavior.clone()
    }
}

/// A request as received; turned into a [`Call`] only when a test asks, which keeps JSON
/// parsing and header copying off the request path.
struct RawCall {
    path: String,
    headers: HeaderMap,
    model: Option<String>,
    stream: bool,
    body: Bytes,
}

impl RawCall {
    fn to_call(&self) -> Call {
        let body = if self.body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&self.body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&self.body).into_owned())
            })
        };
        Call {
            path: self.path.clone(),
            key: server::bearer(&self.headers).map(str::to_owned),
            model: self.model.clone(),
            stream: self.stream,
            body,
            headers: self
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), value)
                })
                .collect(),
            raw: self.body.clone(),
        }
    }
}

/// `target/<profile>/<name>`: another binary of the workspace, next to the calling test's
/// `deps/`. `cargo build --workspace` (scripts/test.sh) builds them all; a missing one fails
/// the test with that hint.
pub fn sibling_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>/deps/<test>")
        .join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A plain HTTP/1.1 GET over the Unix socket.
pub async fn uds_get(
    sock: &std::path::Path,
    path: &str,
) -> std::io::Result<(u16, serde_json::Value)> {
    uds_http(sock, "GET", path, &[], None).await
}

/// An HTTP/1.1 request over the Unix socket (through the SDK's dialer); the answer's status
/// and JSON body (`Null` when the body is not JSON).
pub async fn uds_http(
    sock: &std::path::Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(u16, serde_json::Value)> {
    use http_body_util::BodyExt;
    let invalid = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(http_body_util::Full::new(Bytes::from(
            body.unwrap_or("").to_owned(),
        )))
        .map_err(|e| invalid(&e))?;
    let resp = match hero_aibroker_sdk::client::uds::send(sock, req).await {
        Ok(r) => r,
        Err(hero_aibroker_sdk::client::ClientError::Connect { source, .. }) => return Err(source),
        Err(e) => return Err(invalid(&e)),
    };
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| invalid(&e))?
        .to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    ))
}
