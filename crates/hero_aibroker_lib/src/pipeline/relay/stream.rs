//! A committed stream: relays upstream SSE events to the client as they arrive. Every event an
//! upstream read completed goes out in one write (the relay lets hyper's connection task hand
//! over all of a read's frames first, two scheduler turns); nothing waits for more.
//!
//! Only `[DONE]`, or a clean end after a `finish_reason`, is a success. After bytes reached
//! the client, a break, an idle stall, an in-band error or an end before the finish closes
//! the stream with one error event and no `[DONE]`; the row says `partial`. Dropping the relay
//! (client gone) drops the upstream response, which cancels the call; the row says
//! `client_cancelled` (HTTP 499). Both keep the tokens seen: the upstream's usage chunk if it
//! came, else the chunks that carried text (each is at least one token, so a lower bound).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use hero_aibroker_sdk::admin::RequestStatus;
use hero_aibroker_sdk::{ErrorCode, Usage};

use super::ctx::{Ctx, Finish};
use super::root_cause;
use crate::error::ApiError;
use crate::pipeline::router::Candidate;
use crate::pipeline::sse::{self, Annotator};
use crate::providers::{Chunk, Driver, Wire, anthropic};
use hero_aibroker_sdk::sse::{SseEvent, SseParser};

/// Why a stream that outlived `STREAM_MAX_DURATION_MS` ended.
const TOO_LONG: &str = "the stream ran past its maximum duration (STREAM_MAX_DURATION_MS)";

/// A batch bigger than this goes out without waiting for more of what is already there.
const BATCH_BYTES: usize = 64 * 1024;

/// Scheduler turns a batch waits for more of the upstream's frames before it is written.
const UPSTREAM_TURNS: usize = 2;

/// The upstream body as the relay reads it.
pub(super) type Body = crate::providers::ByteStream;

/// See the module docs.
pub(super) struct StreamRelay {
    ctx: Ctx,
    cand: Candidate,
    body: Body,
    parser: SseParser,
    first: Option<SseEvent>,
    annotator: Annotator,
    driver: Arc<dyn Driver>,
    usage: Option<Usage>,
    /// Events relayed that carried generated text: a lower bound on completion tokens.
    text_events: u64,
    response_id: Option<String>,
    ttfb: Duration,
    finished: bool,
    saw_finish: bool,
    /// The wire relayed: Chat (annotated chunks, `[DONE]`), or Anthropic Messages passed
    /// through untouched (named events, `message_stop`).
    wire: Wire,
    /// Anthropic's usage counts so far, for a passed-through Messages stream.
    anthropic_usage: serde_json::Map<String, serde_json::Value>,
    /// When the upstream last delivered bytes.
    last_read: Instant,
    /// Armed at or before the silence limit and moved on lazily: when it fires before the
    /// limit (bytes came meanwhile) it is re-armed, so a stream costs one timer per
    /// `UPSTREAM_IDLE_TIMEOUT_MS` of activity instead of a timer per read.
    idle: Pin<Box<tokio::time::Sleep>>,
}

#[derive(serde::Deserialize)]
struct IdOnly {
    id: Option<String>,
}

impl StreamRelay {
    #[expect(
        clippy::too_many_arguments,
        reason = "one constructor call site, all parts distinct"
    )]
    pub(super) fn new(
        ctx: Ctx,
        cand: Candidate,
        body: Body,
        parser: SseParser,
        first: SseEvent,
        annotator: Annotator,
        driver: Arc<dyn Driver>,
        ttfb: Duration,
        wire: Wire,
    ) -> Self {
        // The upstream's completion id, once per stream, for `/v1/generation?id=`.
        let response_id = match wire {
            Wire::Chat => serde_json::from_str::<IdOnly>(&first.data)
                .ok()
                .and_then(|v| v.id),
            Wire::Messages => anthropic::stream_id(&first.data),
        };
        let last_read = Instant::now();
        let idle = Box::pin(tokio::time::sleep_until(silence_limit(&ctx, last_read)));
        StreamRelay {
            ctx,
            cand,
            body,
            parser,
            first: Some(first),
            annotator,
            driver,
            usage: None,
            text_events: 0,
            response_id,
            ttfb,
            finished: false,
            saw_finish: false,
            wire,
            anthropic_usage: serde_json::Map::new(),
            last_read,
            idle,
        }
    }

    /// Records `id` (the upstream's own request id, a mother's) as the row's response id.
    pub(super) fn with_response_id(mut self, id: Option<String>) -> Self {
        if id.is_some() {
            self.response_id = id;
        }
        self
    }

    /// The client's body: one item per batch of upstream events.
    pub(super) fn into_stream(
        self,
    ) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
        futures_util::stream::unfold(self, |mut s| async move {
            let out = s.next_batch().await?;
            s.ctx.running.add_bytes(out.len());
            Some((Ok(out), s))
        })
    }

    async fn next_batch(&mut self) -> Option<Bytes> {
        let mut out = BytesMut::new();
        loop {
            if let Some(ev) = self.first.take() {
                self.emit(&ev, &mut out);
            }
            while !self.finished {
                match self.parser.next_event() {
                    Ok(Some(ev)) => self.emit(&ev, &mut out),
                    Ok(None) => break,
                    Err(e) => self.fail(
                        ErrorCode::StreamInterrupted,
                        &format!("the upstream stream is not valid SSE: {e}"),
                        &mut out,
                    ),
                }
            }
            if self.finished {
                return (!out.is_empty()).then(|| out.freeze());
            }
            // Take whatever the upstream already delivered (hyper yields one item per chunked
            // frame, often many per read) into this batch; never wait for more once we have
            // something to send.
            // The stream's total duration, when limited, bounds the wait as well as the idle
            // timeout does.
            if self.past_max_duration() {
                self.fail(ErrorCode::UpstreamTimeout, TOO_LONG, &mut out);
                continue;
            }
            let next = if out.is_empty() {
                tokio::select! {
                    biased;
                    () = std::future::poll_fn(|cx| self.ctx.running.poll_cancelled(cx)) => {
                        self.cancelled(&mut out);
                        continue;
                    }
                    item = self.body.next() => Ok(item),
                    () = self.idle.as_mut() => {
                        let limit = silence_limit(&self.ctx, self.last_read);
                        if tokio::time::Instant::now() < limit {
                            // Bytes came since it was armed: wait on from the last of them.
                            self.idle.as_mut().reset(limit);
                            continue;
                        }
                        Err(())
                    }
                }
            } else if out.len() >= BATCH_BYTES {
                return Some(out.freeze());
            } else {
                // hyper's client hands the chunked frames of one upstream read over one at a
                // time from its connection task, which decodes the next only once this one is
                // taken. Let that task have its turns before flushing, so that what one read
                // brought goes out in one write, not in one write per event. One turn batched
                // nothing here (the connection task runs after the tasks queued before it); two
                // batched whole reads: 35% more streams/s at a quarter less CPU each, at c=32
                // against the zero-delay fake provider. When the upstream has nothing more,
                // the flush waits for two scheduler turns, not for a timer.
                let mut item = None;
                for _ in 0..UPSTREAM_TURNS {
                    let mut turn = std::pin::pin!(tokio::task::yield_now());
                    let body = &mut self.body;
                    item = std::future::poll_fn(|cx| {
                        if let Poll::Ready(item) = body.poll_next_unpin(cx) {
                            return Poll::Ready(Some(item));
                        }
                        turn.as_mut().poll(cx).map(|()| None)
                    })
                    .await;
                    if item.is_some() {
                        break;
                    }
                }
                match item {
                    Some(item) => Ok(item),
                    None => return Some(out.freeze()),
                }
            };
            if let Ok(Some(Ok(_))) = &next {
                self.last_read = Instant::now();
            }
            match next {
                Err(()) if self.past_max_duration() => {
                    self.fail(ErrorCode::UpstreamTimeout, TOO_LONG, &mut out)
                }
                Err(()) => self.fail(
                    ErrorCode::UpstreamTimeout,
                    "the upstream went silent mid-stream (idle timeout)",
                    &mut out,
                ),
                Ok(Some(Err(e))) => {
                    let msg = format!("the upstream stream broke: {}", root_cause(&e));
                    self.fail(ErrorCode::StreamInterrupted, &msg, &mut out);
                }
                Ok(None) if self.saw_finish && !self.parser.has_partial() => {
                    // Some servers end after the finish chunk without `[DONE]`: complete it.
                    match self.wire {
                        Wire::Chat => out.put_slice(sse::DONE),
                        Wire::Messages => out.put_slice(
                            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
                        ),
                    }
                    self.end(RequestStatus::Ok);
                }
                Ok(None) => self.fail(
                    ErrorCode::StreamInterrupted,
                    "the upstream stream ended before it finished",
                    &mut out,
                ),
                Ok(Some(Ok(chunk))) => self.parser.push(&chunk),
            }
        }
    }

    /// The stream ran as long as `STREAM_MAX_DURATION_MS` allows.
    fn past_max_duration(&self) -> bool {
        self.ctx
            .state
            .settings
            .stream_max_duration
            .is_some_and(|max| self.ctx.started.elapsed() >= max)
    }

    fn emit(&mut self, ev: &SseEvent, out: &mut BytesMut) {
        let data = ev.data.trim();
        let says = match self.wire {
            Wire::Chat => self.driver.chunk(data),
            Wire::Messages => anthropic::classify_event(data),
        };
        match says {
            Chunk::Done => {
                match self.wire {
                    Wire::Chat => out.put_slice(sse::DONE),
                    Wire::Messages => named_event_into(ev, out),
                }
                self.end(RequestStatus::Ok);
                return;
            }
            Chunk::Error(msg) => {
                // Forward the upstream's own error event, then stop: no [DONE].
                tracing::warn!(
                    "upstream error event mid-stream: {}",
                    crate::error::printable(&msg)
                );
                match self.wire {
                    Wire::Chat => sse::event_into(data.as_bytes(), out),
                    Wire::Messages => named_event_into(ev, out),
                }
                self.end(RequestStatus::Partial);
                return;
            }
            Chunk::Data { finish, text } => {
                self.saw_finish |= finish;
                self.text_events += u64::from(text);
            }
        }
        if self.wire == Wire::Messages {
            if anthropic::merge_event_usage(data, &mut self.anthropic_usage) {
                self.usage = anthropic::usage(&self.anthropic_usage);
            }
            named_event_into(ev, out);
            return;
        }
        if let Some(u) = self
            .annotator
            .chunk_into(data, &self.cand.backend().model_id, out)
        {
            self.usage = Some(u);
        }
    }

    /// The client's error event for a stream the broker ends, in the relayed wire.
    fn error_event(&self, code: ErrorCode, msg: &str, out: &mut BytesMut) {
        match self.wire {
            Wire::Chat => {
                let body = ApiError::new(code, msg).body();
                sse::event_into(&serde_json::to_vec(&body).unwrap_or_default(), out);
            }
            Wire::Messages => {
                let kind = if code == ErrorCode::UpstreamTimeout {
                    "timeout_error"
                } else {
                    "api_error"
                };
                out.put_slice(anthropic::error_event(kind, msg).as_bytes());
            }
        }
    }

    fn fail(&mut self, code: ErrorCode, msg: &str, out: &mut BytesMut) {
        tracing::warn!(request = %self.ctx.id, "stream failed after the first byte: {msg}");
        self.end_with(RequestStatus::Partial, 200, Some(msg.to_owned()));
        self.error_event(code, msg, out);
    }

    /// The operator cancelled the request: one error event, no `[DONE]`, recorded as
    /// cancelled (the upstream call is dropped with the relay).
    fn cancelled(&mut self, out: &mut BytesMut) {
        tracing::info!(request = %self.ctx.id, "stream cancelled by the operator");
        let msg = "The operator cancelled this request.";
        self.end_with(RequestStatus::ClientCancelled, 499, Some(msg.to_owned()));
        self.error_event(ErrorCode::Cancelled, msg, out);
    }

    fn end(&mut self, status: RequestStatus) {
        self.end_with(status, 200, None);
    }

    fn end_with(&mut self, status: RequestStatus, http_status: u16, error: Option<String>) {
        self.finished = true;
        // A stream without its usage chunk (cut short, or an upstream that sends none) is
        // charged for what reached the client.
        let counted = self.usage.is_none().then(|| Usage {
            completion_tokens: self.text_events,
            total_tokens: self.text_events,
            ..Usage::default()
        });
        self.ctx.finish(Finish {
            cand: Some(&self.cand),
            status,
            http_status,
            usage: self.usage.as_ref().or(counted.as_ref()),
            ttfb: Some(self.ttfb),
            error,
            response_id: self.response_id.take(),
            audio: None,
        });
    }
}

impl Drop for StreamRelay {
    fn drop(&mut self) {
        // Still unfinished: the client went away mid-stream (finish is a no-op otherwise).
        if !self.finished {
            self.end_with(RequestStatus::ClientCancelled, 499, None);
        }
    }
}

/// When a stream whose upstream last delivered bytes at `last_read` has been silent too long
/// (`UPSTREAM_IDLE_TIMEOUT_MS`), or has run for `STREAM_MAX_DURATION_MS`, whichever is first.
fn silence_limit(ctx: &Ctx, last_read: Instant) -> tokio::time::Instant {
    let settings = &ctx.state.settings;
    let silent = last_read + settings.idle_timeout;
    let limit = settings
        .stream_max_duration
        .map_or(silent, |max| silent.min(ctx.started + max));
    tokio::time::Instant::from_std(limit)
}

/// Appends an event with its name (`event: <name>`), as Anthropic's SDKs read it.
fn named_event_into(ev: &SseEvent, out: &mut BytesMut) {
    let name = if ev.event.is_empty() {
        "message"
    } else {
        ev.event.as_str()
    };
    out.reserve(name.len() + ev.data.len() + 16);
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\n");
    sse::event_into(ev.data.as_bytes(), out);
}
