//! Providers: everything a provider does differently lives behind [`Driver`] — the upstream
//! URL and body, what a status means, whether a stream opened, what each stream chunk says,
//! and how a key is checked — and the core never asks which provider it talks to. A provider's
//! `kind` (in `modelsconfig.yml`, or the built-in's) picks its driver from [`Drivers`].
//!
//! Adding a protocol (an Anthropic driver, a mother broker) is one driver module and one
//! [`Drivers::register`] line. Also here: the live OpenRouter catalog
//! ([`openrouter::catalog`]) and `providers.check` ([`keycheck`]).

pub mod anthropic;
pub mod keycheck;
pub mod listed;
pub mod mother;
pub mod openai_compat;
pub mod openrouter;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use hero_aibroker_sdk::admin::KeyCheck;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::config::registry::Registry;
use crate::endpoint::Endpoint;
use crate::error::ApiError;
use crate::health::pool::Instance;
use crate::secret::{Secret, redact};

/// How the relay should treat a non-success upstream status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try the next candidate (408, 429, 5xx, and a 3xx redirect, which is never followed);
    /// `retry_after` from the upstream's headers.
    Retry {
        rate_limited: bool,
        retry_after: Option<Duration>,
    },
    /// The key was refused (401/403): not the caller's fault, move on to another key.
    AuthFailed,
    /// The request itself is wrong (other 4xx): hand the upstream's answer to the client.
    Fatal,
}

/// What one stream event (its `data:` payload) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// The end-of-stream marker.
    Done,
    /// An error reported in the stream itself, with its message.
    Error(String),
    /// Content: whether it carries a finish reason, and whether it carries generated text
    /// (each such chunk is at least one token, the lower bound when no usage chunk comes).
    Data { finish: bool, text: bool },
}

/// The wire a relayed reply is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI Chat (every driver's replies, after its `adapt_*`).
    Chat,
    /// Anthropic Messages, passed through untouched: a Messages client on a native Anthropic
    /// upstream.
    Messages,
}

/// An upstream body as the relay reads it.
pub type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// The client's own Anthropic Messages request, for a native Anthropic upstream to pass
/// through untouched (unknown fields and thinking signatures kept).
#[derive(Debug, Clone)]
pub struct NativeMessages {
    /// The body as the client sent it.
    pub body: Bytes,
    /// The client's `anthropic-beta` header.
    pub beta: Option<String>,
}

/// What a driver reads of the client's request: implemented by the pipeline's parsed request,
/// so providers do not depend on the pipeline.
pub trait ClientRequest: Send + Sync {
    /// Which endpoint the client called.
    fn endpoint(&self) -> Endpoint;
    /// Whether the client asked for a stream.
    fn stream(&self) -> bool;
    /// The client's body in OpenAI's shape for an OpenAI-compatible upstream: `model` replaced
    /// by `model_id`, streams asking for usage, routing fields consumed; `plugins` kept only
    /// with `keep_plugins` (OpenRouter).
    fn openai_body(&self, model_id: &str, keep_plugins: bool) -> Result<Bytes, ApiError>;
    /// App attribution for OpenRouter: `HTTP-Referer` and `X-Title`.
    fn attribution(&self) -> (Option<&str>, Option<&str>);
    /// The client's Anthropic Messages request, when it spoke Messages.
    fn native_messages(&self) -> Option<&NativeMessages> {
        None
    }
    /// The ids of the brokers the request passed through, this one last (for a mother).
    fn chain(&self) -> &[String] {
        &[]
    }
    /// Whether its messages carry `reasoning_details` (signed reasoning passed back), which
    /// only OpenRouter understands: [`ClientRequest::openai_body`] keeps them for OpenRouter
    /// (`keep_plugins`) and leaves them out otherwise.
    fn has_reasoning_details(&self) -> bool {
        false
    }
}

/// A provider's wire protocol.
pub trait Driver: Send + Sync + std::fmt::Debug {
    /// The upstream request for `req` on `instance`, asking for `model_id`: URL, headers, body.
    fn request(
        &self,
        client: &reqwest::Client,
        instance: &Instance,
        req: &dyn ClientRequest,
        model_id: &str,
    ) -> Result<reqwest::RequestBuilder, ApiError>;

    /// What a non-2xx status (with its headers) means for routing.
    fn classify(&self, status: StatusCode, headers: &HeaderMap) -> Verdict;

    /// Whether a 2xx answer to a stream request is a stream; the reason when it is not.
    fn stream_opened(&self, headers: &HeaderMap) -> Result<(), String> {
        let sse = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if sse {
            Ok(())
        } else {
            Err("the upstream did not answer the stream request with an event stream".into())
        }
    }

    /// Reads one stream event's data (in the Chat wire, after [`Driver::adapt_stream`]).
    fn chunk(&self, data: &str) -> Chunk;

    /// Whether replies go to the client exactly as the upstream sent them (OpenRouter: its
    /// clients read its own `provider`, `usage.cost` and fields), instead of annotated with the
    /// broker's `provider`, cost and `x_aibroker` envelope.
    fn verbatim(&self) -> bool {
        false
    }

    /// The wire the reply to `req` is relayed in.
    fn reply_wire(&self, _req: &dyn ClientRequest) -> Wire {
        Wire::Chat
    }

    /// A 2xx JSON reply, in the relayed wire.
    fn adapt_json(&self, body: Bytes, _req: &dyn ClientRequest) -> Result<Bytes, String> {
        Ok(body)
    }

    /// An error reply handed to the client, in the relayed wire.
    fn adapt_error(&self, body: Bytes, _req: &dyn ClientRequest) -> Bytes {
        body
    }

    /// A stream, in the relayed wire.
    fn adapt_stream(&self, body: ByteStream, _req: &dyn ClientRequest) -> ByteStream {
        body
    }

    /// What of `req` the upstream's wire cannot carry and the driver left out, for the
    /// request's trace (`RouteTrace.dropped`).
    fn left_out(&self, _req: &dyn ClientRequest) -> Vec<String> {
        Vec::new()
    }

    /// The upstream's own id of the request, from its reply's headers, recorded beside the
    /// broker's (a mother broker's `x-aibroker-request-id`).
    fn upstream_request_id(&self, _headers: &HeaderMap) -> Option<String> {
        None
    }

    /// Tests `instance`'s key with a cheap read-only call (`providers.check`).
    fn check_key<'a>(
        &'a self,
        client: &'a reqwest::Client,
        instance: &'a Instance,
    ) -> BoxFuture<'a, KeyCheck>;
}

/// The driver of every provider kind the broker knows, by kind name.
#[derive(Clone)]
pub struct Drivers {
    by_kind: HashMap<String, Arc<dyn Driver>>,
}

impl std::fmt::Debug for Drivers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds()).finish()
    }
}

impl Default for Drivers {
    fn default() -> Self {
        Drivers::builtin()
    }
}

impl Drivers {
    /// The built-in kinds: `openai_compat`, its specialisation `openrouter`, and `anthropic`.
    pub fn builtin() -> Drivers {
        let mut d = Drivers {
            by_kind: HashMap::new(),
        };
        d.register(openai_compat::KIND, Arc::new(openai_compat::OpenAiCompat));
        d.register(openrouter::KIND, Arc::new(openrouter::OpenRouter));
        d.register(anthropic::KIND, Arc::new(anthropic::Anthropic));
        d.register(mother::KIND, Arc::new(mother::Mother));
        d
    }

    /// Adds (or replaces) the driver of `kind`.
    pub fn register(&mut self, kind: impl Into<String>, driver: Arc<dyn Driver>) {
        self.by_kind.insert(kind.into(), driver);
    }

    /// The known kinds, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        let mut k: Vec<&str> = self.by_kind.keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    /// The driver of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Driver>> {
        self.by_kind.get(kind)
    }

    /// The driver of the provider named `provider` in `registry`. Kinds are checked when the
    /// configuration loads, so the fallback (`openai_compat`) only covers a provider that
    /// vanished from a newer snapshot mid-request.
    pub fn for_provider(&self, registry: &Registry, provider: &str) -> Arc<dyn Driver> {
        registry
            .providers
            .get(provider)
            .and_then(|p| self.by_kind.get(&p.kind))
            .or_else(|| self.by_kind.get(openai_compat::KIND))
            .cloned()
            .unwrap_or_else(|| Arc::new(openai_compat::OpenAiCompat))
    }
}

/// How long a rate-limited upstream asks us to wait: `Retry-After` (seconds; the HTTP-date form
/// is not used by the providers we speak) and OpenAI-style `x-ratelimit-reset-requests` /
/// `x-ratelimit-reset-tokens` (Go durations such as `6m0s`) for whichever limit is exhausted
/// (`x-ratelimit-remaining-*: 0`). The longest wins; `None` when the upstream gave no hint.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let mut waits: Vec<Duration> = Vec::new();
    // Upstream text is hostile: `Retry-After: 1e20` must not panic (from_secs_f64 would).
    if let Some(wait) = header("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
    {
        waits.push(wait);
    }
    let mut resets = Vec::new();
    for kind in ["requests", "tokens"] {
        let Some(reset) = header(&format!("x-ratelimit-reset-{kind}")).and_then(go_duration) else {
            continue;
        };
        if header(&format!("x-ratelimit-remaining-{kind}")) == Some("0") {
            waits.push(reset);
        }
        resets.push(reset);
    }
    if waits.is_empty() {
        // No exhausted limit named: the soonest reset is the least we should wait.
        return resets.into_iter().min();
    }
    waits.into_iter().max()
}

/// Parses a Go duration (`1s`, `6m0s`, `1.5s`, `12ms`, `1h2m`).
pub fn go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Body bytes of an upstream error for messages, the ledger and logs: bounded, lossy UTF-8,
/// credentials redacted (`key`, the instance's own, included).
pub fn snippet(body: &Bytes, key: Option<&Secret>) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(300)]);
    crate::error::printable(&redact(&s, key))
}

/// An upstream error body passed on to the client (a 4xx about the request itself), with
/// credentials redacted; untouched when it names none.
pub fn redact_body(body: Bytes, key: Option<&Secret>) -> Bytes {
    let text = String::from_utf8_lossy(&body);
    let clean = redact(&text, key);
    if clean == text {
        body
    } else {
        Bytes::from(clean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(go_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(go_duration("soon"), None);
        assert_eq!(
            go_duration("99999999999999999999h"),
            None,
            "overflow is no duration"
        );
        assert_eq!(go_duration(""), None);
    }

    #[test]
    fn retry_after_takes_the_exhausted_limit_reset() {
        // The wire fixture's headers: Retry-After 1, nothing exhausted.
        let h = headers(&[
            ("retry-after", "1"),
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-remaining-tokens", "149984"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(1)));
        // Tokens exhausted: their reset is longer than Retry-After and wins.
        let h = headers(&[
            ("retry-after", "1"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(360)));
        // No Retry-After, no exhausted limit named: the soonest reset.
        let h = headers(&[
            ("x-ratelimit-reset-requests", "2s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
        // Hostile values are ignored, never a panic.
        assert_eq!(retry_after(&headers(&[("retry-after", "1e20")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-5")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "NaN")])), None);
    }
}
