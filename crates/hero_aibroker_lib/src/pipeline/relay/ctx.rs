//! The life of one request as the ledger sees it: who asked, what was tried, how it ended.
//! Every request that got past the in-flight cap ends in exactly one ledger row: answered,
//! rejected, failed, or cancelled (dropped before it finished, e.g. the client went away).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hero_aibroker_sdk::Usage;
use hero_aibroker_sdk::admin::{AttemptLog, RequestLog, RequestStatus, RouteTrace};
use tokio::sync::OwnedSemaphorePermit;

use crate::accounting::clients::ClientSlot;
use crate::accounting::keys::{KeyEntry, KeySlot, TokenReservation};
use crate::accounting::running::Registration;
use crate::accounting::telemetry::Sample;
use crate::config::registry::Target;
use crate::error::{ApiError, printable};
use crate::health::pool::Busy;
use crate::pipeline::router::{Candidate, Endpoint};
use crate::state::AppState;

/// How a request ended, for [`Ctx::finish`].
#[derive(Debug, Default)]
pub(crate) struct Finish<'a> {
    pub cand: Option<&'a Candidate>,
    pub status: RequestStatus,
    pub http_status: u16,
    pub usage: Option<&'a Usage>,
    pub ttfb: Option<Duration>,
    pub error: Option<String>,
    pub response_id: Option<String>,
    /// What a speech request used (instead of tokens): it is priced by this.
    pub audio: Option<AudioUse>,
}

/// What a speech request used: characters spoken (`audio.speech`) or seconds of audio heard
/// (`audio.transcriptions`, `audio.translations`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct AudioUse {
    pub characters: Option<u64>,
    pub seconds: Option<f64>,
}

/// What the client's headers ask of routing.
#[derive(Debug, Clone, Default)]
pub struct Hints {
    /// `x-session-id`: session affinity (else the body's `user`).
    pub session: Option<String>,
    /// `x-aibroker-max-wait-ms`: capacity wait (else `CAPACITY_WAIT_MS`).
    pub max_wait: Option<Duration>,
    /// `HTTP-Referer` and `X-Title`, forwarded to OpenRouter.
    pub referer: Option<String>,
    pub title: Option<String>,
    /// `x-aibroker-chain`: the brokers a cascaded request already passed through.
    pub chain: Vec<String>,
}

/// One request in flight. Holds the in-flight permit until it is dropped.
pub struct Ctx {
    pub(crate) state: Arc<AppState>,
    pub(crate) id: String,
    pub(crate) started: Instant,
    started_ms: i64,
    client: String,
    pub(crate) key: Option<Arc<KeyEntry>>,
    pub(crate) endpoint: Endpoint,
    /// The client's surface when it is not the endpoint relayed (`messages` for Anthropic
    /// Messages relayed as Chat): the ledger's `endpoint`.
    pub surface: Option<&'static str>,
    /// What translation left out (see [`RouteTrace::dropped`]), put in the trace at the end.
    pub dropped: Vec<String>,
    /// The client's Anthropic Messages request, for a native Anthropic upstream.
    pub native: Option<crate::providers::NativeMessages>,
    /// A transcription's spooled upload, for the relay's request.
    pub upload: Option<std::sync::Arc<crate::pipeline::audio::Upload>>,
    /// Characters a speech request asks to be spoken (what it is priced by).
    pub(crate) characters: u64,
    pub(crate) requested: String,
    pub(crate) stream: bool,
    attempts: Vec<AttemptLog>,
    /// Routing hints from the headers.
    pub(crate) hints: Hints,
    /// The routing decision, for the ledger row.
    pub(crate) trace: Option<RouteTrace>,
    /// Counts this request on the key it is using (least_busy).
    pub(crate) busy: Option<Busy>,
    /// What the key reserved against its budget at admission (pico-USD), given back at the end.
    pub(crate) reserved_pico: u64,
    /// What the key reserved in its tokens-per-minute window at admission.
    pub(crate) reserved_tokens: TokenReservation,
    /// The request's prompt estimate: the least it is charged once an upstream answered.
    pub(crate) prompt_estimate: u64,
    done: bool,
    /// Counts the request against its key's `max_concurrent`.
    pub(crate) key_slot: Option<KeySlot>,
    /// Its entry among the running requests (and its cancel token).
    pub(crate) running: Registration,
    _client_slot: ClientSlot,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("id", &self.id)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A new request id: `req_` and 24 hex digits, the first 12 the start in milliseconds since
/// the epoch and the rest random. Ids of one broker then sort by time, so the ledger's primary
/// key index grows at its end: a batch of rows dirties a few pages, not one random page per
/// row, as a random id did (half the ledger writer's CPU per row at a hundred thousand rows).
fn request_id(started_ms: i64) -> String {
    let mut raw = [0u8; 12];
    raw[..6].copy_from_slice(&started_ms.to_be_bytes()[2..]);
    raw[6..].copy_from_slice(&rand::random::<[u8; 6]>());
    format!("req_{}", hex::encode(raw))
}

impl Ctx {
    /// Starts accounting for a request from `client`, admitted with `permit` (the broker's
    /// in-flight cap) and `client_slot` (the client's own limits).
    pub fn new(
        state: Arc<AppState>,
        endpoint: Endpoint,
        client: String,
        permit: OwnedSemaphorePermit,
        client_slot: ClientSlot,
    ) -> Self {
        let started_ms = unix_ms();
        let id = request_id(started_ms);
        let running = state.running.register(&id, &client, started_ms);
        Ctx {
            state,
            id,
            started: Instant::now(),
            started_ms,
            client,
            key: None,
            endpoint,
            surface: None,
            dropped: Vec::new(),
            native: None,
            upload: None,
            characters: 0,
            requested: String::new(),
            stream: false,
            attempts: Vec::new(),
            hints: Hints::default(),
            trace: None,
            busy: None,
            reserved_pico: 0,
            reserved_tokens: TokenReservation::default(),
            prompt_estimate: 0,
            done: false,
            key_slot: None,
            running,
            _client_slot: client_slot,
            _permit: permit,
        }
    }

    /// Notes one upstream attempt and its outcome.
    pub(crate) fn attempt(
        &mut self,
        cand: &Candidate,
        outcome: String,
        http_status: Option<u16>,
        took: Duration,
    ) {
        self.attempts.push(AttemptLog {
            candidate: cand.label(),
            outcome,
            http_status,
            latency_ms: took.as_secs_f64() * 1000.0,
        });
    }

    /// Number of attempts so far.
    pub(crate) fn attempts(&self) -> u32 {
        u32::try_from(self.attempts.len()).unwrap_or(u32::MAX)
    }

    /// Ends the request: one ledger row, metrics, the key's spend, one log line.
    pub(crate) fn finish(&mut self, f: Finish<'_>) {
        if self.done {
            return;
        }
        self.done = true;
        let (mut prompt, completion) = f
            .usage
            .map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
        // An upstream that answered read the prompt: a stream cut short, abandoned, or ended
        // without a usage chunk is charged at least the prompt estimate.
        let answered = matches!(
            f.status,
            RequestStatus::Ok | RequestStatus::Partial | RequestStatus::ClientCancelled
        );
        if prompt == 0 && answered && f.cand.is_some() {
            prompt = self.prompt_estimate;
        }
        // The registry's price of what was used: the estimate, and the charge when the
        // upstream did not say what the request cost.
        let list_cost = match (f.cand, f.usage.is_some() || prompt > 0) {
            (Some(c), _) if f.audio.is_some() => {
                let used = f.audio.unwrap_or_default();
                c.backend().audio_cost(used.characters, used.seconds)
            }
            (Some(c), true) => c.backend().prices().cost(
                prompt,
                completion,
                f.usage.map_or(0, Usage::cached_tokens),
                f.usage.map_or(0, Usage::cache_write_tokens),
            ),
            _ => 0.0,
        };
        let upstream_cost = f
            .usage
            .and_then(|u| u.extra.get("upstream_cost"))
            .and_then(serde_json::Value::as_f64)
            .filter(|c| c.is_finite() && *c >= 0.0);
        // What the upstream billed is what the key is charged; the difference from the list
        // price stays in the row (`list_cost_usd`) for reconciliation.
        let cost = upstream_cost.unwrap_or(list_cost);
        let latency = self.started.elapsed();
        if let (Some(c), Some(ttfb), true) = (f.cand, f.ttfb, f.status == RequestStatus::Ok) {
            c.backend()
                .stats
                .throughput(completion, latency.saturating_sub(ttfb));
        }
        self.busy = None;
        if let Some(k) = &self.key {
            k.charge(
                prompt.saturating_add(completion),
                cost,
                std::mem::take(&mut self.reserved_tokens),
            );
            k.release(std::mem::take(&mut self.reserved_pico));
        }
        let provider = f.cand.map(|c| c.instance.id.clone());
        let mut trace = self.trace.take();
        if !self.dropped.is_empty() {
            trace.get_or_insert_with(RouteTrace::default).dropped =
                std::mem::take(&mut self.dropped);
        }
        let row = RequestLog {
            id: self.id.clone(),
            response_id: f.response_id,
            started_ms: self.started_ms,
            ended_ms: unix_ms(),
            client: self.client.clone(),
            key_id: self.key.as_ref().map(|k| k.id.clone()),
            endpoint: self.surface.unwrap_or(self.endpoint.name()).to_owned(),
            requested_model: printable(&self.requested),
            model: f.cand.map(|c| c.model.name.clone()),
            provider: provider.clone(),
            upstream_model: f.cand.map(|c| c.backend().model_id.clone()),
            stream: self.stream,
            attempts: std::mem::take(&mut self.attempts),
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: f.usage.map_or(0, Usage::cached_tokens),
            reasoning_tokens: f.usage.map_or(0, Usage::reasoning_tokens),
            cost_usd: cost,
            upstream_cost_usd: upstream_cost,
            list_cost_usd: Some(list_cost),
            audio_seconds: f.audio.and_then(|a| a.seconds),
            characters: f.audio.and_then(|a| a.characters),
            latency_ms: latency.as_secs_f64() * 1000.0,
            ttfb_ms: f.ttfb.map(|t| t.as_secs_f64() * 1000.0),
            status: f.status,
            http_status: f.http_status,
            error: f.error,
            trace,
        };
        // Client text never becomes a metric label: a name the registry does not know is
        // `unknown`, so random model names cannot grow `/metrics` without bound.
        let label = match f.cand {
            Some(c) => c.model.name.clone(),
            None => self.model_label(),
        };
        self.state.telemetry.request(&Sample {
            model: &label,
            provider: provider.as_deref().unwrap_or(""),
            status: f.status,
            prompt_tokens: prompt,
            completion_tokens: completion,
            cost_usd: cost,
            latency_s: latency.as_secs_f64(),
            ttfb_s: f.ttfb.map(|t| t.as_secs_f64()),
        });
        tracing::info!(
            target: "hero_aibroker::requests",
            id = %row.id,
            client = %row.client,
            key = row.key_id.as_deref(),
            model = %row.requested_model,
            provider = row.provider.as_deref(),
            upstream_model = row.upstream_model.as_deref(),
            status = f.status.as_str(),
            http_status = f.http_status,
            attempts = row.attempts.len(),
            prompt_tokens = prompt,
            completion_tokens = completion,
            cost_usd = cost,
            latency_ms = row.latency_ms,
            ttfb_ms = row.ttfb_ms,
            error = row.error.as_deref(),
            "request"
        );
        self.state.ledger.record(row);
    }

    /// The metric label of the model the client named, when no candidate was chosen: its
    /// canonical name if the registry knows it, `auto` for the `auto*` names, else `unknown`.
    fn model_label(&self) -> String {
        match self.state.registry.load().resolve(&self.requested) {
            Some(Target::Model { model, .. }) => model.name.clone(),
            Some(Target::Auto(_)) => "auto".to_owned(),
            None => "unknown".to_owned(),
        }
    }

    /// Ends the request with `err` (rejected before any upstream call, or every attempt
    /// failed) and hands the error back for the response.
    pub(crate) fn fail(mut self, err: ApiError) -> ApiError {
        let status = if err.code.http_status() < 500 {
            RequestStatus::Rejected
        } else {
            RequestStatus::Error
        };
        self.finish(Finish {
            status,
            http_status: err.code.http_status(),
            error: Some(err.message.clone()),
            ..Finish::default()
        });
        let mut err = err;
        err.request_id = Some(self.id.clone());
        err
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // Dropped unfinished: the handler or stream was dropped because the client went away
        // (which also dropped, and so cancelled, the upstream call).
        self.finish(Finish {
            status: RequestStatus::ClientCancelled,
            http_status: 499,
            ..Finish::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::request_id;

    #[test]
    fn request_ids_sort_by_start_and_differ_within_a_millisecond() {
        let a = request_id(1_765_000_000_000);
        let b = request_id(1_765_000_000_000);
        let c = request_id(1_765_000_000_001);
        assert_eq!(a.len(), "req_".len() + 24);
        assert!(a.starts_with("req_") && a[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(a[..16], b[..16]);
        assert!(a.max(b) < c);
    }
}
