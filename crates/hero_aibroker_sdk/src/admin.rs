//! Types of the JSON-RPC admin API (`rpc.sock`): what the methods of [`crate::rpc`] take and
//! return. Times are Unix milliseconds; money is USD.

use serde::{Deserialize, Serialize};

/// `health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or `degraded` when the ledger cannot write, the database does not answer or the last
    /// catalog refresh failed.
    pub status: String,
    pub version: String,
    pub uptime_seconds: u64,
    pub ledger: LedgerHealth,
    /// The live OpenRouter catalog; absent when it is off (no OpenRouter key, or
    /// `OPENROUTER_CATALOG_INTERVAL=0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogHealth>,
    /// The database: which kind, and whether it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreHealth>,
}

/// State of the broker's database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreHealth {
    /// `sqlite` or `postgres`.
    pub kind: String,
    /// `sqlite:/path` or the PostgreSQL URL without its password.
    pub database: String,
    /// Whether the last check (the configuration poll, every `CONFIG_POLL_MS`) reached it.
    pub reachable: bool,
    /// Why the last check failed; `None` when it succeeded.
    pub last_error: Option<String>,
    /// The shared configuration version last seen (changes with every key, priority or
    /// mother change on any broker of this database).
    pub config_version: i64,
    /// When the database last answered (Unix ms); `None` before the first check.
    pub checked_ms: Option<i64>,
}

/// State of the live OpenRouter catalog.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogHealth {
    /// Models in the last good catalog (before merging; YAML models may hide some).
    pub models: u64,
    /// When the last good catalog was fetched; `None` before the first success.
    pub refreshed_ms: Option<i64>,
    /// Why the last refresh failed; `None` when it succeeded (or none has ended yet).
    pub last_error: Option<String>,
    /// When the next refresh is due; `None` while the first one runs.
    pub next_refresh_ms: Option<i64>,
}

/// State of the usage ledger's writer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerHealth {
    /// Rows waiting in memory.
    pub queued: u64,
    /// Rows committed since start.
    pub written: u64,
    /// Rows that could not be queued (queue full) since start.
    pub dropped: u64,
    /// Failed commits since start (rows are kept and retried).
    pub write_errors: u64,
    /// False while the last commit failed.
    pub healthy: bool,
}

/// `info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub uptime_seconds: u64,
    pub sockets: Sockets,
    pub database: String,
    pub models: u64,
    pub servable_models: u64,
    pub providers: u64,
    pub instances: u64,
    pub keys: u64,
    pub requests: u64,
    /// Started with `--mother`: this broker serves child brokers over TCP.
    #[serde(default)]
    pub is_mother: bool,
    /// Mother brokers this broker forwards to.
    #[serde(default)]
    pub mother_count: u64,
}

/// `mothers.list`: a mother broker this broker forwards to. Its token is never shown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MotherInfo {
    /// `ai_broker_mother`, `ai_broker_mother2`, …: also its provider name.
    pub id: String,
    pub address: String,
    pub port: u16,
    #[serde(default)]
    pub label: Option<String>,
    /// Its backends' priority (lower is tried first), in the same table as direct providers.
    pub priority: i64,
    pub enabled: bool,
    /// Whether a token is set (a broker key of the mother, or its cascade token).
    pub has_token: bool,
    /// Models it serves, from its last `/v1/models`.
    pub models: u64,
    /// Its provider instance's health: `healthy`, `cooldown`, `auth_failed`, `disabled`, or
    /// `absent` when it is not in the registry (disabled).
    pub state: String,
    /// Why its last model list failed, if it did.
    #[serde(default)]
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// `mothers.add` / `mothers.remove`: the mother's id and whether it was done.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MotherChange {
    pub id: String,
    pub success: bool,
}

/// Socket paths of this broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sockets {
    pub rest: String,
    pub rpc: String,
    /// The TCP listener (`IP:port`), when the broker has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
}

/// `providers.list`: one provider and its instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderInfo {
    pub name: String,
    /// The driver that speaks to it: `openai_compat`, `openrouter`, `anthropic`, or `mother`
    /// (a mother broker: the cascade).
    #[serde(default)]
    pub kind: String,
    pub base_url: String,
    pub keyless: bool,
    /// Where the keys come from (environment variable names), never the keys.
    pub key_source: String,
    /// Runtime priority override (`priority.set`), if any.
    pub priority_override: Option<i64>,
    pub instances: Vec<InstanceInfo>,
    /// Models with at least one backend on this provider.
    pub models: Vec<String>,
    /// The circuit breaker of every backend on this provider (absent from brokers older than
    /// this field, hence the default).
    #[serde(default)]
    pub circuits: Vec<CircuitInfo>,
}

/// The circuit breaker of one backend (model + provider + upstream model id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CircuitInfo {
    pub model: String,
    /// The provider's own model id.
    pub upstream_model: String,
    /// `closed`, `open` (no traffic until the probe) or `half_open` (the next request is the
    /// probe).
    pub state: String,
    /// Consecutive failures.
    pub failures: u32,
    /// Seconds until the probe; 0 when half-open, null when closed.
    pub open_seconds: Option<f64>,
}

/// One provider instance (one key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub id: String,
    /// `***abcd`: never more than the last four characters.
    pub key_hint: Option<String>,
    /// `healthy`, `cooldown`, `auth_failed` or `disabled`.
    pub state: String,
    /// Why it is not healthy.
    pub reason: Option<String>,
    pub cooldown_seconds: Option<f64>,
}

/// `providers.check`: whether one provider instance's key works, by a cheap `GET /models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyCheck {
    /// The instance id, e.g. `openai-1`.
    pub instance: String,
    pub provider: String,
    /// `***abcd`: never more than the last four characters; null for keyless providers.
    pub key_hint: Option<String>,
    /// The provider answered 2xx.
    pub ok: bool,
    /// The provider's HTTP status; null when it could not be reached.
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    /// Models the provider listed (when it answered with a list).
    pub models: Option<u64>,
    /// Why the check failed: the provider's message or the connection error (never the key).
    pub error: Option<String>,
}

/// `keys.create` parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyCreate {
    pub name: String,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens per minute (prompt + completion).
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Requests of this key in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
    #[serde(default)]
    pub budget_usd: Option<f64>,
}

/// `keys.update` parameters: fields given are set; fields named in `clear` are removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    pub rpm: Option<u64>,
    #[serde(default)]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
    #[serde(default)]
    pub budget_usd: Option<f64>,
    /// Any of `allowed_models`, `rpm`, `tpm`, `max_concurrent`, `budget_usd`.
    #[serde(default)]
    pub clear: Vec<String>,
}

/// A broker API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    /// `sk-hab-…abcd`.
    pub hint: String,
    pub allowed_models: Option<Vec<String>>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    #[serde(default)]
    pub max_concurrent: Option<u64>,
    pub budget_usd: Option<f64>,
    pub spent_usd: f64,
    pub revoked: bool,
    pub created_ms: i64,
}

/// `keys.create` result: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyCreated {
    pub key: ApiKeyInfo,
    pub secret: String,
}

/// How `usage.summary` groups rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    #[default]
    Model,
    Provider,
    Key,
    Client,
}

/// `usage.summary` parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageQuery {
    #[serde(default)]
    pub group_by: GroupBy,
    /// Also accepted as `since` (the seed's name).
    #[serde(default, alias = "since")]
    pub from_ms: Option<i64>,
    #[serde(default)]
    pub to_ms: Option<i64>,
    /// Only the rows of this broker key (the REST usage routes set it to the caller's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// `usage.series` parameters: time buckets of `bucket_ms` from `from_ms` to `to_ms` (now when
/// absent), aligned to the viewer's clock (`tz_offset_minutes` east of UTC), so a day bucket is
/// the viewer's midnight to midnight.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesQuery {
    pub from_ms: i64,
    #[serde(default)]
    pub to_ms: Option<i64>,
    /// At least 60 000 (a minute); at most 10 000 buckets in the range.
    pub bucket_ms: i64,
    #[serde(default)]
    pub tz_offset_minutes: i32,
    /// Only the rows of this broker key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// One bucket of `usage.series`; buckets without requests are left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageBucket {
    /// Unix milliseconds of the bucket's start.
    pub start_ms: i64,
    pub requests: u64,
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    pub avg_latency_ms: f64,
}

/// A request running now (`requests.list`, `requests.cancel`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunningRequest {
    /// The broker's request id (`x-aibroker-request-id`).
    pub id: String,
    pub started_ms: i64,
    /// How long it has been running.
    pub age_ms: u64,
    pub client: String,
    pub key_id: Option<String>,
    /// The model the client named (empty until the body is read).
    pub model: String,
    /// The provider instance being tried or streaming.
    pub provider: Option<String>,
    pub stream: bool,
    /// Bytes sent to the client so far.
    pub bytes: u64,
    /// The operator cancelled it (it ends at once).
    pub cancelled: bool,
}

/// One group of `usage.summary`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageGroup {
    /// The model, provider instance, key id or client; `null` rows (e.g. no key) as "".
    pub group: String,
    pub requests: u64,
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    /// What upstreams themselves reported these requests cost (OpenRouter's `usage.cost`);
    /// 0 when none reported one.
    #[serde(default)]
    pub upstream_cost_usd: f64,
    pub avg_latency_ms: f64,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// `usage.logs` parameters. Newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogQuery {
    /// At most this many rows (default 50, max 1000).
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u64>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub status: Option<RequestStatus>,
    #[serde(default)]
    pub from_ms: Option<i64>,
    #[serde(default)]
    pub to_ms: Option<i64>,
}

/// A page of `usage.logs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    pub rows: Vec<RequestLog>,
    /// Pass as `offset` for the next page; absent on the last page.
    pub next_offset: Option<u64>,
}

/// One upstream attempt of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptLog {
    /// `openai-1/gpt-4o`.
    pub candidate: String,
    /// `ok`, or why it failed.
    pub outcome: String,
    /// HTTP status the upstream answered with, when it answered.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// How long the attempt took, until its verdict (first event for streams).
    #[serde(default)]
    pub latency_ms: f64,
}

/// The routing decision for one request (`routing.explain`, the ledger, `/v1/generation`):
/// every candidate the resolver considered, in the order it would try them, and why the
/// others were left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteTrace {
    /// The model as requested (`auto`, an alias, `provider/model`…).
    pub requested: String,
    /// Fallback models the request named (`models: [...]`), in order.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// `priority`, `round_robin`, `least_busy`, `latency`, `cheapest`, `best`, or a
    /// `provider.sort` override such as `sort:price`.
    pub strategy: String,
    /// Set when session affinity put a sticky candidate first.
    #[serde(default)]
    pub affinity: Option<String>,
    /// Milliseconds spent waiting for a cooling candidate (capacity wait).
    #[serde(default)]
    pub waited_ms: Option<u64>,
    /// Candidates in plan order first (`rank` 0, 1, …), then the skipped ones.
    pub candidates: Vec<TraceCandidate>,
    /// Why no candidate was left, when none was.
    #[serde(default)]
    pub error: Option<String>,
    /// What a translated request (Anthropic Messages or Responses relayed as Chat) carried
    /// that the upstream's wire cannot, and was left out: `thinking`, `cache_control`,
    /// unknown fields, `anthropic-beta` flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
}

/// `routing.explain`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExplainQuery {
    /// The model as a client would request it.
    pub model: String,
    /// `chat` (default), `completions` or `embeddings`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// A request body (its `model` is replaced by `model`): OpenRouter fields such as
    /// `models` and `provider`, tools, images, `user`… shape the decision as they would for
    /// a real request.
    #[serde(default)]
    pub request: Option<serde_json::Value>,
    /// `x-session-id`, for session affinity.
    #[serde(default)]
    pub session: Option<String>,
}

/// One backend and key the resolver looked at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceCandidate {
    /// Registry model.
    pub model: String,
    /// Provider name (`openai`, `openrouter`…).
    pub provider: String,
    /// Provider instance (key), e.g. `openai-1`; absent when the backend has no usable key.
    pub instance: Option<String>,
    /// The model id sent upstream.
    pub upstream_model: String,
    /// Position in the plan (0 = tried first); absent when skipped.
    pub rank: Option<u32>,
    /// Why it was left out: health, capability, price, provider order…
    pub skipped: Option<String>,
    /// Notes that shaped its rank, e.g. `cooling down 12s`, `circuit open`, `sticky session`.
    #[serde(default)]
    pub note: Option<String>,
}

/// How a request ended: the `status` of its ledger row, the `status` label of the request
/// metrics, and the `status` filter of `usage.logs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Answered in full.
    Ok,
    /// A stream that broke, stalled or reported an error after bytes reached the client.
    Partial,
    /// The client went away before the answer ended (HTTP 499); the upstream call was cancelled.
    ClientCancelled,
    /// The upstream refused the request itself (a 4xx passed through).
    ClientError,
    /// Every upstream attempt failed, or the broker failed.
    #[default]
    Error,
    /// Refused before any upstream call (bad request, unknown model, key limits).
    Rejected,
}

impl RequestStatus {
    /// Every status.
    pub const ALL: [RequestStatus; 6] = [
        RequestStatus::Ok,
        RequestStatus::Partial,
        RequestStatus::ClientCancelled,
        RequestStatus::ClientError,
        RequestStatus::Error,
        RequestStatus::Rejected,
    ];

    /// The wire and database spelling (`client_cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Ok => "ok",
            RequestStatus::Partial => "partial",
            RequestStatus::ClientCancelled => "client_cancelled",
            RequestStatus::ClientError => "client_error",
            RequestStatus::Error => "error",
            RequestStatus::Rejected => "rejected",
        }
    }
}

impl std::fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RequestStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestStatus::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown request status {s:?}"))
    }
}

/// One row of the ledger: a request and what it cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestLog {
    /// The broker's id (`x-aibroker-request-id`).
    pub id: String,
    /// The upstream reply's `id` (e.g. `chatcmpl-…`, `gen-…`).
    pub response_id: Option<String>,
    pub started_ms: i64,
    pub ended_ms: i64,
    /// `uds:uid=1000,pid=4242` or an IP for TCP clients.
    pub client: String,
    pub key_id: Option<String>,
    pub endpoint: String,
    pub requested_model: String,
    /// Registry model that served it.
    pub model: Option<String>,
    /// Provider instance that answered, e.g. `openai-1`.
    pub provider: Option<String>,
    pub upstream_model: Option<String>,
    pub stream: bool,
    pub attempts: Vec<AttemptLog>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    /// What the request is charged (and counts against its key's budget): what the upstream
    /// reported it cost (OpenRouter's `usage.cost`) when it did, else the registry price.
    pub cost_usd: f64,
    /// As reported by the upstream (OpenRouter), if it did.
    pub upstream_cost_usd: Option<f64>,
    /// The registry (list) price of the same usage, kept beside the charge for reconciliation;
    /// `None` on rows written before it was recorded.
    #[serde(default)]
    pub list_cost_usd: Option<f64>,
    /// Seconds of audio transcribed or translated (`audio.transcriptions`,
    /// `audio.translations`); `None` on other requests.
    #[serde(default)]
    pub audio_seconds: Option<f64>,
    /// Characters of text spoken (`audio.speech`); `None` on other requests.
    #[serde(default)]
    pub characters: Option<u64>,
    pub latency_ms: f64,
    pub ttfb_ms: Option<f64>,
    pub status: RequestStatus,
    pub http_status: u16,
    pub error: Option<String>,
    /// The routing decision (candidates considered, why each was skipped).
    #[serde(default)]
    pub trace: Option<RouteTrace>,
}

/// `priority.list` / `priority.set`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorityEntry {
    pub provider: String,
    /// The runtime override; `null` means the YAML priorities apply.
    pub priority: Option<i64>,
}

/// `config.reload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadResult {
    pub path: String,
    pub models: u64,
    pub servable_models: u64,
}
