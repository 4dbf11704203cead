//! Response bodies: one buffer with a known length, or a paced list of frames that can end
//! in a deliberate abort; and the [`Watch`] that counts replies the client abandoned.
//!
//! A hand-written [`Body`] instead of `StreamBody` over a channel: the frames are all known
//! up front, so pacing needs only a timer, not a producer task and a channel per stream.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::Shared;

/// The body error behind [`crate::Behavior::DropAfterChunks`]; hyper answers it by dropping
/// the connection without the chunked terminator, so the client sees a broken body.
#[derive(Debug)]
pub(crate) struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fake provider aborted the response body on purpose")
    }
}

impl std::error::Error for Aborted {}

/// Counts a reply the client abandoned (`FakeProvider::cancelled`): armed when the reply
/// starts, disarmed once its last frame (or scripted abort) is handed to hyper. hyper drops
/// the service future or the body when the client's connection closes, dropping this armed.
pub(crate) struct Watch(Option<Arc<Shared>>);

impl Watch {
    pub(crate) fn new(shared: Arc<Shared>) -> Watch {
        Watch(Some(shared))
    }

    fn complete(&mut self) {
        self.0 = None;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Body of every response the fake provider sends.
pub(crate) struct FakeBody {
    kind: Kind,
    /// Set by [`FakeBody::watched`] for scripted replies; error replies go unwatched.
    watch: Option<Watch>,
}

enum Kind {
    /// Sent in one write with `content-length`.
    Full(Option<Bytes>),
    /// Sent chunked, one frame per element (one SSE event each).
    Frames(Box<Frames>),
}

/// Frame-by-frame state.
pub(crate) struct Frames {
    frames: std::vec::IntoIter<Bytes>,
    delay: Duration,
    /// Reused across gaps so a slow stream allocates one timer, not one per event.
    sleep: Option<Pin<Box<Sleep>>>,
    timer_armed: bool,
    sent: usize,
    abort_after: Option<usize>,
    abort_flushed: bool,
}

impl FakeBody {
    pub(crate) fn full(bytes: Bytes) -> FakeBody {
        FakeBody {
            kind: Kind::Full(Some(bytes)),
            watch: None,
        }
    }

    /// Send `frames` one by one, pausing `delay` before each one after the first.
    pub(crate) fn frames(frames: Vec<Bytes>, delay: Duration) -> FakeBody {
        let frames = Box::new(Frames {
            frames: frames.into_iter(),
            delay,
            sleep: None,
            timer_armed: false,
            sent: 0,
            abort_after: None,
            abort_flushed: false,
        });
        FakeBody {
            kind: Kind::Frames(frames),
            watch: None,
        }
    }

    /// Send the first `n` of `frames` (paced like [`FakeBody::frames`]), then fail the body.
    pub(crate) fn aborting(frames: Vec<Bytes>, delay: Duration, n: usize) -> FakeBody {
        let mut body = FakeBody::frames(frames, delay);
        if let Kind::Frames(f) = &mut body.kind {
            f.abort_after = Some(n);
        }
        body
    }

    /// Count this body in `FakeProvider::cancelled` if it is dropped before its end.
    pub(crate) fn watched(mut self, watch: Watch) -> FakeBody {
        self.watch = Some(watch);
        self
    }
}

impl Frames {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        let out_of_frames = self.frames.as_slice().is_empty();
        // Running out of frames before N still aborts: the scripted failure is the point.
        if let Some(n) = self.abort_after
            && (self.sent >= n || out_of_frames)
        {
            return self.poll_abort(cx);
        }
        if out_of_frames {
            return Poll::Ready(None);
        }
        if self.sent > 0 && !self.delay.is_zero() {
            let deadline = Instant::now() + self.delay;
            let sleep = match &mut self.sleep {
                Some(sleep) => {
                    if !self.timer_armed {
                        sleep.as_mut().reset(deadline);
                    }
                    sleep
                }
                None => self
                    .sleep
                    .insert(Box::pin(tokio::time::sleep_until(deadline))),
            };
            self.timer_armed = true;
            ready!(sleep.as_mut().poll(cx));
            self.timer_armed = false;
        }
        match self.frames.next() {
            Some(frame) => {
                self.sent += 1;
                Poll::Ready(Some(Ok(Frame::data(frame))))
            }
            None => Poll::Ready(None),
        }
    }

    /// No frame left and no scripted abort to come.
    fn ends_cleanly_now(&self) -> bool {
        self.abort_after.is_none() && self.frames.as_slice().is_empty()
    }

    fn poll_abort(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        if self.abort_flushed {
            return Poll::Ready(Some(Err(Aborted)));
        }
        // hyper drops its write buffer when a body fails. Returning Pending once makes it
        // flush the events already produced, so the client really receives N of them.
        self.abort_flushed = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Body for FakeBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        let body = self.get_mut();
        let (poll, complete) = match &mut body.kind {
            Kind::Full(bytes) => (Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))), true),
            Kind::Frames(frames) => {
                let poll = frames.poll_next(cx);
                // Ended, aborted on purpose, or just handed out the last frame: a client that
                // closes right after reading it (before hyper polls again) got everything.
                let complete = match &poll {
                    Poll::Ready(None | Some(Err(_))) => true,
                    Poll::Ready(Some(Ok(_))) => frames.ends_cleanly_now(),
                    Poll::Pending => false,
                };
                (poll, complete)
            }
        };
        if complete && let Some(watch) = body.watch.as_mut() {
            watch.complete();
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            // An exact hint makes hyper send `content-length` instead of chunked encoding.
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Frames(_) => SizeHint::default(),
        }
    }
}
