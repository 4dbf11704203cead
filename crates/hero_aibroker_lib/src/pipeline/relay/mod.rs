//! The relay: walks a routing plan within the retry limit and one deadline, fails over only
//! before the first byte reached the client, and relays the winner (JSON or an SSE stream,
//! chunk by chunk) with `provider` and `usage.cost` added. Every request ends in one ledger row
//! through [`Ctx`].

mod attempt;
mod ctx;
mod explain;
mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use hero_aibroker_sdk::ErrorCode;
use hero_aibroker_sdk::admin::RequestStatus;

pub(crate) use ctx::AudioUse;
pub(crate) use ctx::Finish;
pub use ctx::{Ctx, Hints};

use attempt::attempt;
pub use explain::explain;
use stream::StreamRelay;

use crate::config::registry::{Registry, Target};
use crate::error::ApiError;
use crate::health::Outcome;
use crate::pipeline::request::ParsedRequest;
use crate::pipeline::router::{
    Candidate, CircuitPolicy, Decision, Defaults, Endpoint, Needs, Pin, Rejection, Resolve,
};
use crate::pipeline::sse::{Annotator, Envelope};
use crate::providers::{Chunk, Driver, Verdict, Wire, redact_body, snippet};
use crate::state::AppState;
use hero_aibroker_sdk::sse::{SseEvent, SseParser};

/// First backoff step before a candidate is tried a second time.
const BACKOFF_BASE: Duration = Duration::from_millis(200);

/// Why one attempt failed.
#[derive(Debug, Clone)]
pub enum Failure {
    Connect(String),
    Timeout(&'static str),
    /// The request's overall deadline passed during this attempt.
    Deadline,
    Status {
        status: u16,
        detail: String,
    },
    Auth(u16),
    InBand(String),
    Protocol(String),
}

impl Failure {
    /// What this failure tells the health of the key and backend it used.
    fn outcome(&self, retry_after: Option<Duration>) -> Outcome {
        match self {
            // 529 is Anthropic's "overloaded": like a 429, it says how long to stay away.
            Failure::Status {
                status: 429 | 529, ..
            } => Outcome::RateLimited(retry_after),
            Failure::Auth(status) => Outcome::KeyRefused(*status),
            // A deadline says nothing about this instance; the request simply ran out of time.
            Failure::Deadline => Outcome::Deadline,
            other => Outcome::Failed(other.to_string()),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "connection failed ({e})"),
            Failure::Timeout(phase) => write!(f, "timed out waiting for {phase}"),
            Failure::Deadline => write!(f, "the request deadline (REQUEST_DEADLINE_MS) passed"),
            Failure::Status { status, detail } => write!(f, "HTTP {status}: {detail}"),
            Failure::Auth(s) => write!(f, "HTTP {s}: the provider refused the API key"),
            Failure::InBand(m) => write!(f, "error event before any content: {m}"),
            Failure::Protocol(m) => write!(f, "{m}"),
        }
    }
}

/// What one attempt produced.
enum AttemptResult {
    Ok(Success),
    Failed(Failure, Option<Duration>),
}

/// A successful attempt.
enum Success {
    /// A complete JSON reply, already annotated.
    Json {
        body: Vec<u8>,
        usage: Option<hero_aibroker_sdk::Usage>,
        response_id: Option<String>,
        wire: Wire,
    },
    /// The upstream refused the request itself (4xx): its answer goes to the client as is.
    Passthrough {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
        wire: Wire,
    },
    /// Speech audio whose first bytes arrived: relayed as it comes.
    Audio {
        first: Bytes,
        rest: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>,
        content_type: Option<HeaderValue>,
    },
    /// A transcript, rendered in the client's format.
    Transcript {
        body: Vec<u8>,
        content_type: &'static str,
        seconds: Option<f64>,
    },
    /// A stream whose first event checked out: commit to it.
    Stream {
        body: stream::Body,
        parser: SseParser,
        first: SseEvent,
        wire: Wire,
        /// The upstream's own id of the request (a mother's), when it gave one.
        upstream_id: Option<String>,
    },
}

/// Relays a request body: parse, plan, admit (key limits), attempt candidates, answer.
pub async fn relay(mut ctx: Ctx, body: Bytes) -> Result<Response, ApiError> {
    let mut req = match ParsedRequest::parse(ctx.endpoint, &body) {
        Ok(r) => r,
        Err(e) => return Err(ctx.fail(e)),
    };
    drop(body);
    req.native = ctx.native.take();
    req.upload = ctx.upload.take();
    if req.endpoint == Endpoint::Speech {
        ctx.characters = crate::pipeline::audio::characters(req.text_field("input").as_deref());
    }
    req.chain = std::mem::take(&mut ctx.hints.chain);
    req.chain.push(ctx.state.broker_id.clone());
    ctx.requested.clone_from(&req.model);
    ctx.stream = req.stream;
    ctx.running.set_model(&req.model);
    if req.stream {
        ctx.running.set_stream();
    }
    let state = ctx.state.clone();
    let settings = &state.settings;
    if let Some(s) = ctx.hints.session.take() {
        req.route.session = Some(s);
    }
    req.attribution = (
        ctx.hints
            .referer
            .take()
            .or_else(|| settings.openrouter_referer.clone()),
        ctx.hints
            .title
            .take()
            .or_else(|| settings.openrouter_title.clone()),
    );
    let mut registry = state.registry.load_full();
    let needs = prepare(&mut req, &registry);
    let deadline = tokio::time::Instant::now() + settings.request_deadline;
    let max_wait = ctx.hints.max_wait.unwrap_or(settings.capacity_wait);
    let mut waited = Duration::ZERO;
    let decision = loop {
        let d = match decide(&state, &registry, &req, &needs, false) {
            Ok(d) => d,
            Err(r) => {
                let (err, trace) = rejected(r);
                ctx.trace = Some(trace);
                return Err(ctx.fail(err));
            }
        };
        // Capacity wait: every candidate is cooling down; wait for the first to recover
        // rather than hammer a key that asked us to back off.
        if let Some(recovery) = recovery(&d.plan)
            && waited + recovery <= max_wait
            && tokio::time::Instant::now() + recovery < deadline
        {
            let nap = recovery + Duration::from_millis(5);
            tokio::time::sleep(nap).await;
            waited += nap;
            registry = state.registry.load_full();
            continue;
        }
        break d;
    };
    let Decision {
        mut plan,
        mut trace,
    } = decision;
    if !waited.is_zero() {
        trace.waited_ms = Some(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX));
    }
    ctx.trace = Some(trace);
    if let Some(key) = &ctx.key {
        // The key's model list holds for every candidate — `models` fallbacks, candidates left
        // by `provider` preferences, failover — not only the first.
        // The name the client sent counts for the candidates of that very target (an alias or
        // `provider/model_id` of the model; `auto` if listed), not for `models` fallbacks.
        let target = registry.resolve(&req.model);
        let of_target = |c: &Candidate| match &target {
            Some(Target::Model { model, .. }) => model.name == c.model.name,
            Some(Target::Auto(_)) => true,
            None => false,
        };
        plan.retain(|c| {
            let requested = of_target(c).then_some(req.model.as_str());
            key.allows(&c.model.name, &c.model.aliases, requested)
        });
        if plan.is_empty() {
            let err = ApiError::new(
                ErrorCode::ModelNotAllowed,
                format!(
                    "This API key may not use the model \"{}\", nor any model this request could fall back to.",
                    req.model_printable()
                ),
            );
            return Err(ctx.fail(err));
        }
        let tokens = needs
            .prompt_tokens
            .saturating_add(req.max_output_tokens().unwrap_or(DEFAULT_OUTPUT_ESTIMATE));
        let names = [req.model.as_str(), plan[0].model.name.as_str()];
        let admitted = if ctx.state.store.shared() {
            key.admit_leased(&ctx.state.store, &names, tokens).await
        } else {
            key.admit(&names, tokens)
        };
        match admitted {
            Ok(reserved) => ctx.reserved_tokens = reserved,
            Err(e) => return Err(ctx.fail(e)),
        }
        if settings.ledger_fail_closed && key.has_budget() && !ctx.state.ledger.health().healthy {
            let err = ApiError::new(
                ErrorCode::Overloaded,
                "The usage ledger cannot write right now; requests of keys with a budget are refused until it recovers (LEDGER_FAIL_CLOSED).",
            )
            .retry_after(5);
            return Err(ctx.fail(err));
        }
        // Budgets hold under concurrency: reserve what this request may cost before it is
        // sent; the real cost replaces the reservation when it ends.
        let estimate = cost_estimate(&plan, &needs, &req);
        let reserved = if ctx.state.store.shared() {
            key.reserve_leased(&ctx.state.store, estimate).await
        } else {
            key.reserve(estimate)
        };
        match reserved {
            Ok(reserved) => ctx.reserved_pico = reserved,
            Err(e) => return Err(ctx.fail(e)),
        }
    }
    ctx.prompt_estimate = needs.prompt_tokens;
    let mut failed: Vec<(String, Failure, Option<Duration>)> = Vec::new();

    for n in 0..settings.max_attempts as usize {
        let cand = &plan[n % plan.len()];
        if n >= plan.len() {
            // Every candidate failed once: wait before trying them again (full jitter,
            // honouring Retry-After up to the cap), unless the deadline would pass first.
            let wait = backoff(
                n / plan.len(),
                failed.last().and_then(|f| f.2),
                settings.retry_after_cap,
            );
            if tokio::time::Instant::now() + wait >= deadline {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        let driver = state
            .drivers
            .for_provider(&registry, &cand.instance.provider);
        ctx.busy = Some(cand.instance.busy());
        ctx.running.set_provider(&cand.instance.id);
        let began = Instant::now();
        let envelope = Envelope {
            instance: cand.instance.id.clone(),
            model: cand.backend().model_id.clone(),
            attempts: u32::try_from(n + 1).unwrap_or(u32::MAX),
            request_id: ctx.id.clone(),
        };
        let outcome = tokio::time::timeout_at(
            deadline,
            attempt(&state, driver.as_ref(), &req, cand, &envelope),
        )
        .await;
        let took = began.elapsed();
        let policy = CircuitPolicy {
            failures: settings.circuit_failures,
            open: settings.circuit_open,
        };
        let (failure, retry_after) = match outcome {
            Ok(Ok(AttemptResult::Failed(f, ra))) => (f, ra),
            Ok(Ok(AttemptResult::Ok(success))) => {
                let pin = req.route.session.as_deref().map(|session| Pin {
                    affinity: &state.affinity,
                    session,
                    requested: &req.model,
                });
                cand.observe(&Outcome::Answered(took), policy, pin);
                let status = match &success {
                    Success::Passthrough { status, .. } => status.as_u16(),
                    _ => 200,
                };
                ctx.attempt(cand, "ok".into(), Some(status), took);
                let left_out = driver.left_out(&req);
                return Ok(answer(ctx, cand, driver, success, left_out));
            }
            Ok(Err(e)) => return Err(ctx.fail(e)),
            Err(_) => (Failure::Deadline, None),
        };
        cand.observe(&failure.outcome(retry_after), policy, None);
        tracing::warn!(
            request = %ctx.id, model = %req.model_printable(), candidate = %cand.label(), attempt = n + 1,
            "upstream attempt failed: {failure}"
        );
        let status = match &failure {
            Failure::Status { status, .. } | Failure::Auth(status) => Some(*status),
            _ => None,
        };
        ctx.attempt(cand, failure.to_string(), status, took);
        let deadline_hit = matches!(failure, Failure::Deadline);
        failed.push((cand.label(), failure, retry_after));
        if deadline_hit {
            break;
        }
    }
    let err = all_failed(&req, &failed);
    Err(ctx.fail(err))
}

/// Runs the resolver for a parsed request (`dry_run` for `routing.explain`).
pub fn decide(
    state: &AppState,
    registry: &Registry,
    req: &ParsedRequest,
    needs: &Needs,
    dry_run: bool,
) -> Result<Decision, Rejection> {
    Resolve {
        registry,
        endpoint: req.endpoint,
        model: &req.model,
        needs,
        options: &req.route,
        defaults: Defaults {
            strategy: state.settings.strategy,
            auto: state.settings.auto_strategy,
        },
        affinity: Some(&state.affinity),
        dry_run,
    }
    .run()
}

/// Output tokens assumed for a budget reservation when the client set no limit.
const DEFAULT_OUTPUT_ESTIMATE: u64 = 256;

/// What a request may cost at most on any candidate of `plan`: its prompt estimate at the
/// highest input price and its output limit (or [`DEFAULT_OUTPUT_ESTIMATE`]) at the highest
/// output price. Only a reservation; the charge is the real usage.
fn cost_estimate(plan: &[Candidate], needs: &Needs, req: &ParsedRequest) -> f64 {
    let (input, output) = plan.iter().fold((0f64, 0f64), |(i, o), c| {
        let b = c.backend();
        (i.max(b.input_cost), o.max(b.output_cost))
    });
    if req.endpoint == Endpoint::Speech {
        return crate::pipeline::audio::characters(req.text_field("input").as_deref()) as f64
            * input
            / 1e6;
    }
    if let Some(upload) = &req.upload {
        return upload.estimated_seconds() * input / 60.0;
    }
    let out_tokens = req.max_output_tokens().unwrap_or(DEFAULT_OUTPUT_ESTIMATE);
    (needs.prompt_tokens as f64 * input + out_tokens as f64 * output) / 1_000_000.0
}

/// Applies `middle-out` for the model the request names, then reads what the request needs
/// of a model (capabilities, prompt size).
pub(crate) fn prepare(req: &mut ParsedRequest, registry: &Registry) -> Needs {
    if let Some(raw) = req.fields.get("provider") {
        req.provider_forward = crate::pipeline::request::forwarded_provider(raw.get(), |name| {
            registry
                .providers
                .keys()
                .any(|p| p.eq_ignore_ascii_case(name))
        });
    }
    if req.middle_out
        && let Some(Target::Model { model, .. }) = registry.resolve(&req.model)
    {
        req.trim_to_context(model.context_window);
    }
    req.needs()
}

/// A refusal as the client's error and the trace that explains it.
pub(crate) fn rejected(r: Rejection) -> (ApiError, hero_aibroker_sdk::admin::RouteTrace) {
    let err = ApiError::from(r.error);
    let mut trace = *r.trace;
    trace.error = Some(err.message.clone());
    (err, trace)
}

/// When every candidate of `plan` is cooling down: how long until the first recovers.
fn recovery(plan: &[Candidate]) -> Option<Duration> {
    plan.iter()
        .map(|c| c.instance.cooldown_left())
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .min()
}

/// Builds the client's response from a successful attempt and ends (or, for a stream, hands
/// over) the request's accounting.
fn answer(
    mut ctx: Ctx,
    cand: &Candidate,
    driver: Arc<dyn Driver>,
    result: Success,
    left_out: Vec<String>,
) -> Response {
    let ttfb = ctx.started.elapsed();
    let wire = match &result {
        Success::Json { wire, .. }
        | Success::Stream { wire, .. }
        | Success::Passthrough { wire, .. } => *wire,
        Success::Audio { .. } | Success::Transcript { .. } => Wire::Chat,
    };
    if wire == Wire::Messages {
        // The client's own request went through untouched: nothing was left out.
        ctx.dropped.clear();
    }
    for what in left_out {
        if !ctx.dropped.contains(&what) {
            ctx.dropped.push(what);
        }
    }
    let attempts = ctx.attempts();
    let request_id = ctx.id.clone();
    let mut r = match result {
        Success::Json {
            body,
            usage,
            response_id,
            ..
        } => {
            ctx.finish(Finish {
                cand: Some(cand),
                status: RequestStatus::Ok,
                http_status: 200,
                usage: usage.as_ref(),
                ttfb: Some(ttfb),
                response_id,
                ..Finish::default()
            });
            let mut r = Response::new(Body::from(body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Success::Audio {
            first,
            rest,
            content_type,
        } => {
            let characters = ctx.characters;
            let audio = crate::pipeline::audio::AudioBody::new(
                ctx,
                cand.clone(),
                first,
                rest,
                characters,
                ttfb,
            );
            let mut r = Response::new(Body::from_stream(audio));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                content_type
                    .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream")),
            );
            r
        }
        Success::Transcript {
            body,
            content_type,
            seconds,
        } => {
            ctx.finish(Finish {
                cand: Some(cand),
                status: RequestStatus::Ok,
                http_status: 200,
                ttfb: Some(ttfb),
                audio: Some(AudioUse {
                    characters: None,
                    seconds,
                }),
                ..Finish::default()
            });
            let mut r = Response::new(Body::from(body));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        }
        Success::Passthrough {
            status,
            content_type,
            body,
            ..
        } => {
            ctx.finish(Finish {
                cand: Some(cand),
                status: RequestStatus::ClientError,
                http_status: status.as_u16(),
                ttfb: Some(ttfb),
                error: Some(snippet(&body, cand.instance.key.as_ref())),
                ..Finish::default()
            });
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                content_type.unwrap_or_else(|| HeaderValue::from_static("application/json")),
            );
            r
        }
        Success::Stream {
            body,
            parser,
            first,
            wire,
            upstream_id,
        } => {
            let backend = cand.backend();
            let annotator = Annotator::new(&cand.instance.provider, backend.prices()).with(
                driver.verbatim(),
                Envelope {
                    instance: cand.instance.id.clone(),
                    model: backend.model_id.clone(),
                    attempts,
                    request_id: request_id.clone(),
                },
            );
            let relay = StreamRelay::new(
                ctx,
                cand.clone(),
                body,
                parser,
                first,
                annotator,
                driver,
                ttfb,
                wire,
            );
            let relay = relay.with_response_id(upstream_id);
            let mut r = Response::new(Body::from_stream(relay.into_stream()));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            r
        }
    };
    decorate(&mut r, cand, attempts, &request_id);
    r.extensions_mut().insert(wire);
    r
}

/// Full-jitter exponential backoff for round `round` (1 = second pass), or the upstream's
/// `Retry-After` when it asked for longer, never past `cap`.
fn backoff(round: usize, retry_after: Option<Duration>, cap: Duration) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << round.min(10));
    let jitter = exp.mul_f64(rand::random::<f64>());
    retry_after.map_or(jitter, |ra| ra.max(jitter)).min(cap)
}

fn all_failed(req: &ParsedRequest, failed: &[(String, Failure, Option<Duration>)]) -> ApiError {
    let detail: Vec<String> = failed
        .iter()
        .map(|(label, f, _)| format!("{label}: {f}"))
        .collect();
    let all = |p: fn(&Failure) -> bool| !failed.is_empty() && failed.iter().all(|a| p(&a.1));
    let code = if all(|f| matches!(f, Failure::Timeout(_) | Failure::Deadline)) {
        ErrorCode::UpstreamTimeout
    } else if all(|f| matches!(f, Failure::Status { status: 429, .. })) {
        ErrorCode::UpstreamRateLimited
    } else {
        ErrorCode::UpstreamFailed
    };
    let mut err = ApiError::new(
        code,
        format!(
            "All {} upstream attempts for model \"{}\" failed: {}",
            failed.len(),
            req.model_printable(),
            detail.join("; ")
        ),
    );
    if code == ErrorCode::UpstreamRateLimited {
        let secs = failed
            .iter()
            .filter_map(|a| a.2)
            .min()
            .map_or(1, |d| d.as_secs().max(1));
        err = err.retry_after(secs);
    }
    err
}

/// Headers that explain the routing decision to the client.
fn decorate(r: &mut Response, cand: &Candidate, attempts: u32, request_id: &str) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-aibroker-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&cand.instance.id) {
        h.insert("x-aibroker-provider", v);
    }
    if let Ok(v) = HeaderValue::from_str(&cand.backend().model_id) {
        h.insert("x-aibroker-upstream-model", v);
    }
    if let Ok(v) = HeaderValue::from_str(&cand.model.name) {
        h.insert("x-aibroker-model", v);
    }
    h.insert("x-aibroker-attempts", HeaderValue::from(attempts));
}

/// The innermost error message: reqwest's own text is generic ("error sending request").
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    crate::error::printable(&cur.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_honours_retry_after_and_cap() {
        let cap = Duration::from_secs(2);
        assert!(backoff(1, None, cap) <= Duration::from_millis(400));
        assert_eq!(
            backoff(1, Some(Duration::from_secs(1)), cap),
            Duration::from_secs(1)
        );
        assert_eq!(backoff(1, Some(Duration::from_secs(30)), cap), cap);
        assert!(backoff(20, None, cap) <= cap);
    }
}
