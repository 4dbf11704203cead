//! Starting the broker binary against a fake provider, and talking to it over `rest.sock`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hero_aibroker_testkit::process::Service;
use hero_aibroker_testkit::{BrokerConfig, BrokerProcess, FakeProvider};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_hero_aibroker_server");

/// Prices the tests compute costs with (USD per million tokens).
pub const IN_COST: f64 = 2.0;
pub const OUT_COST: f64 = 8.0;

/// A models file with two backends for `chat`: provider `fake` (keys FAKE_KEYS) priority 1,
/// provider `backup` (keyless) priority 2; `embed` and `legacy` on `fake`.
pub fn models_yaml(fake: &str, backup: &str) -> String {
    format!(
        r#"
providers:
  - {{name: fake, base_url: "{fake}", api_key_env: FAKE_KEYS}}
  - {{name: backup, base_url: "{backup}"}}
models:
  chat:
    display_name: Chat
    tier: standard
    context_window: 8192
    aliases: [chat-alias]
    backends:
      - {{provider: fake, model_id: up-chat, priority: 1, input_cost: {IN_COST}, output_cost: {OUT_COST}}}
      - {{provider: backup, model_id: up-backup, priority: 2, input_cost: 1.0, output_cost: 1.0}}
  solo:
    display_name: Solo
    tier: cheap
    context_window: 8192
    backends:
      - {{provider: fake, model_id: up-solo, priority: 1, input_cost: {IN_COST}, output_cost: {OUT_COST}}}
  embed:
    display_name: Embed
    tier: cheap
    capabilities: [embeddings]
    context_window: 8192
    backends:
      - {{provider: fake, model_id: up-embed, priority: 1, input_cost: 0.5, output_cost: 0}}
  legacy:
    display_name: Legacy
    tier: cheap
    capabilities: [completions]
    context_window: 4096
    backends:
      - {{provider: fake, model_id: up-legacy, priority: 1, input_cost: {IN_COST}, output_cost: {OUT_COST}}}
  unkeyed:
    display_name: Unkeyed
    tier: cheap
    context_window: 4096
    backends:
      - {{provider: groq, model_id: llama, priority: 1, input_cost: 0.1, output_cost: 0.1}}
"#
    )
}

/// A base URL nobody listens on (connection refused).
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}/v1")
}

/// A broker process (the testkit's [`BrokerProcess`]: temp dir, clean env, log printed on
/// failure, killed on drop) with HTTP clients for both sockets.
pub struct Broker {
    pub proc: BrokerProcess,
    pub sock: PathBuf,
    pub rpc_sock: PathBuf,
    pub client: reqwest::Client,
    pub rpc_client: reqwest::Client,
}

impl std::ops::Deref for Broker {
    type Target = BrokerProcess;
    fn deref(&self) -> &BrokerProcess {
        &self.proc
    }
}

impl std::ops::DerefMut for Broker {
    fn deref_mut(&mut self) -> &mut BrokerProcess {
        &mut self.proc
    }
}

/// Builder for a broker process: the testkit's [`BrokerConfig`] with the fake's keys set.
pub struct Start(BrokerConfig);

impl Start {
    pub fn new(yaml: String) -> Self {
        Start(BrokerConfig::new(yaml).env("FAKE_KEYS", "key-a,key-b"))
    }

    /// One fake provider as primary, a refused port as backup.
    pub fn with_fake(fake: &FakeProvider) -> Self {
        Start::new(models_yaml(&fake.base_url(), &dead_url()))
    }

    pub fn env(self, k: &str, v: &str) -> Self {
        Start(self.0.env(k, v))
    }

    pub fn in_dir(self, dir: tempfile::TempDir) -> Self {
        Start(self.0.in_dir(dir))
    }

    /// Adds command-line arguments.
    pub fn args(self, args: &[&str]) -> Self {
        Start(self.0.args(args))
    }

    /// Spawns the binary; does not wait for the socket.
    pub fn spawn(self) -> Broker {
        let proc = self.0.spawn();
        let sock = proc.rest_sock();
        let rpc_sock = proc.rpc_sock();
        let client = reqwest::Client::builder()
            .unix_socket(sock.clone())
            .build()
            .expect("client");
        let rpc_client = reqwest::Client::builder()
            .unix_socket(rpc_sock.clone())
            .build()
            .expect("client");
        Broker {
            proc,
            sock,
            rpc_sock,
            client,
            rpc_client,
        }
    }

    /// Spawns and waits until `rest.sock` and `rpc.sock` accept connections.
    pub async fn start(self) -> Broker {
        let mut b = self.spawn();
        b.wait_ready().await;
        b
    }
}

impl Broker {
    /// A JSON-RPC call on rpc.sock; returns the whole response object.
    pub async fn rpc_with(&self, method: &str, params: Value, token: Option<&str>) -> Value {
        let mut rb = self.rpc_client.post(Self::url("/rpc")).json(
            &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
        );
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        let r = rb.send().await.expect("rpc send");
        r.json().await.expect("rpc json")
    }

    /// A JSON-RPC call that must succeed; returns its result.
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        let v = self.rpc_with(method, params, None).await;
        assert!(v.get("error").is_none(), "{method} failed: {v}");
        v["result"].clone()
    }

    /// Waits until the ledger holds at least `n` rows; returns them newest first.
    pub async fn wait_rows(&self, n: usize) -> Vec<Value> {
        let t0 = Instant::now();
        loop {
            let page = self
                .rpc("usage.logs", serde_json::json!({"query": {"limit": 1000}}))
                .await;
            let rows = page["rows"].as_array().cloned().unwrap_or_default();
            if rows.len() >= n {
                return rows;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "only {} of {n} ledger rows: {page}",
                rows.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(path: &str) -> String {
        format!("http://localhost{path}")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(path, serde_json::to_vec(body).expect("json"))
            .await
    }

    /// POST with `Authorization: Bearer key`.
    pub async fn post_key(&self, path: &str, body: &Value, key: &str) -> Reply {
        let r = self
            .client
            .post(Self::url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("send");
        Reply::read(r).await
    }

    pub async fn get_key(&self, path: &str, key: &str) -> Reply {
        let r = self
            .client
            .get(Self::url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("send");
        Reply::read(r).await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> Reply {
        let r = self
            .client
            .post(Self::url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        Reply::read(r).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        let r = self.client.get(Self::url(path)).send().await.expect("send");
        Reply::read(r).await
    }

    /// Posts a streaming request and collects its SSE `data:` payloads as they arrive, with
    /// the time each arrived.
    pub async fn stream(&self, path: &str, body: &Value) -> Streamed {
        let t0 = Instant::now();
        let r = self
            .client
            .post(Self::url(path))
            .json(body)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let mut events = Vec::new();
        let mut buf = String::new();
        let mut body = r.bytes_stream();
        let mut broken = false;
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                broken = true;
                break;
            };
            buf.push_str(std::str::from_utf8(&chunk).expect("utf8"));
            while let Some(end) = buf.find("\n\n") {
                let ev: String = buf.drain(..end + 2).collect();
                for line in ev.lines() {
                    if let Some(d) = line.strip_prefix("data: ") {
                        events.push((d.to_owned(), t0.elapsed()));
                    }
                }
            }
        }
        Streamed {
            status,
            headers,
            events,
            broken,
            rest: buf,
        }
    }
}

impl Broker {
    /// Kills the broker and hands back its directory (database, sockets) for the next one.
    pub fn into_dir(self) -> tempfile::TempDir {
        Service::from(self.proc).into_dir()
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Reply {
    async fn read(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
            text,
        }
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts an OpenAI-shaped error with `status` and `code`; returns the message.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.text);
        let e = &self.json["error"];
        assert_eq!(e["code"], code, "body: {}", self.text);
        assert!(e["type"].is_string(), "body: {}", self.text);
        let msg = e["message"].as_str().expect("message").to_owned();
        assert!(!msg.is_empty());
        msg
    }
}

pub struct Streamed {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// `data:` payloads with their arrival time since the request was sent.
    pub events: Vec<(String, Duration)>,
    /// The body ended with a transport error.
    pub broken: bool,
    /// Bytes after the last complete event.
    pub rest: String,
}

impl Streamed {
    pub fn json_events(&self) -> Vec<Value> {
        self.events
            .iter()
            .filter(|(d, _)| d != "[DONE]")
            .map(|(d, _)| serde_json::from_str(d).unwrap_or_else(|e| panic!("bad event {d}: {e}")))
            .collect()
    }

    pub fn text(&self) -> String {
        self.json_events()
            .iter()
            .filter_map(|e| {
                e["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }

    pub fn ended_with_done(&self) -> bool {
        self.events.last().is_some_and(|(d, _)| d == "[DONE]")
    }
}

pub fn chat_body(model: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "What's the weather?"}]})
}

pub fn stream_body(model: &str) -> Value {
    let mut b = chat_body(model);
    b["stream"] = Value::Bool(true);
    b
}

pub fn expected_cost(input: f64, output: f64) -> f64 {
    (hero_aibroker_testkit::PROMPT_TOKENS as f64 * input
        + hero_aibroker_testkit::COMPLETION_TOKENS as f64 * output)
        / 1e6
}

pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
}

impl Broker {
    /// Waits until the ledger holds the row of request `id`; returns it.
    pub async fn wait_row(&self, id: &str) -> Value {
        let t0 = Instant::now();
        loop {
            let page = self
                .rpc("usage.logs", serde_json::json!({"query": {"limit": 1000}}))
                .await;
            let rows = page["rows"].as_array().cloned().unwrap_or_default();
            if let Some(row) = rows.into_iter().find(|r| r["id"] == id) {
                return row;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no ledger row {id}: {page}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Streamed {
    /// A response header as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Polls `done` every 10 ms for up to `limit`; returns its last answer.
pub async fn eventually(limit: Duration, done: impl Fn() -> bool) -> bool {
    let t0 = Instant::now();
    while !done() && t0.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

/// Polls the async `done` every 20 ms for up to `limit`; whether it became true. Tests wait on
/// the broker's own state this way, never on a wall-clock sleep standing in for a timer.
pub async fn wait_until(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if done().await {
            return true;
        }
        if t0.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Broker {
    /// The circuit of `model` on `provider` as `providers.list` shows it.
    pub async fn circuit(&self, provider: &str, model: &str) -> Value {
        let providers = self.rpc("providers.list", serde_json::json!([])).await;
        providers
            .as_array()
            .expect("providers")
            .iter()
            .filter(|p| p["name"] == provider)
            .flat_map(|p| p["circuits"].as_array().cloned().unwrap_or_default())
            .find(|c| c["model"] == model)
            .unwrap_or_else(|| panic!("no circuit for {provider}/{model} in {providers}"))
    }

    /// Waits (up to 15 s) until the circuit of `model` on `provider` lets its probe through
    /// (half-open) and `instance` is no longer cooling down.
    pub async fn wait_probe_ready(&self, provider: &str, model: &str, instance: &str) {
        let ready = wait_until(Duration::from_secs(15), async || {
            self.circuit(provider, model).await["state"] == "half_open"
                && self.instance(instance).await["cooldown_seconds"].is_null()
        })
        .await;
        assert!(
            ready,
            "{provider}/{model} never became ready to probe: {} {}",
            self.circuit(provider, model).await,
            self.instance(instance).await
        );
    }

    /// One provider instance as `providers.list` shows it.
    pub async fn instance(&self, id: &str) -> Value {
        let providers = self.rpc("providers.list", serde_json::json!([])).await;
        providers
            .as_array()
            .expect("providers")
            .iter()
            .flat_map(|p| p["instances"].as_array().cloned().unwrap_or_default())
            .find(|i| i["id"] == id)
            .unwrap_or_else(|| panic!("no instance {id}"))
    }

    /// POST with extra request headers.
    pub async fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut rb = self.client.post(Self::url(path)).json(body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        Reply::read(rb.send().await.expect("send")).await
    }
}

/// Creates a broker API key with `params` over RPC; its id and its secret (shown once).
pub async fn create_key(b: &Broker, params: Value) -> (String, String) {
    let k = b
        .rpc("keys.create", serde_json::json!({"params": params}))
        .await;
    let secret = k["secret"].as_str().expect("secret").to_owned();
    assert!(
        secret.starts_with("sk-hab-") && secret.len() >= 7 + 32,
        "{secret}"
    );
    (k["key"]["id"].as_str().expect("id").to_owned(), secret)
}

/// `spent_usd` of the key named `name` in a `keys.list` answer.
pub fn spent_of(keys: &Value, name: &str) -> f64 {
    keys.as_array()
        .expect("keys")
        .iter()
        .find(|k| k["name"] == name)
        .expect(name)["spent_usd"]
        .as_f64()
        .expect("spent")
}

/// The current minute since the epoch: limits with a one-minute window reset when it changes.
pub fn this_minute() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        / 60
}

/// The `x-aibroker-request-id` of a reply.
pub fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-aibroker-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request id")
        .to_owned()
}

impl Broker {
    /// Sends a streamed chat request for `model` and returns the response as it starts.
    pub async fn open_stream(&self, model: &str) -> reqwest::Response {
        self.client
            .post(Self::url("/v1/chat/completions"))
            .json(&stream_body(model))
            .send()
            .await
            .expect("send")
    }
}
