//! Response bodies: one buffer with a known length, or a paced list of frames that can end
//! in a deliberate abort.
//!
//! A hand-written [`Body`] instead of `StreamBody` over a channel: the frames are all known
//! up front, so pacing needs only a timer, not a producer task and a channel per stream.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

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

/// Body of every response the fake provider sends.
pub(crate) enum FakeBody {
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
        FakeBody::Full(Some(bytes))
    }

    /// Send `frames` one by one, pausing `delay` before each one after the first.
    pub(crate) fn frames(frames: Vec<Bytes>, delay: Duration) -> FakeBody {
        FakeBody::Frames(Box::new(Frames {
            frames: frames.into_iter(),
            delay,
            sleep: None,
            timer_armed: false,
            sent: 0,
            abort_after: None,
            abort_flushed: false,
        }))
    }

    /// Send the first `n` of `frames` (paced like [`FakeBody::frames`]), then fail the body.
    pub(crate) fn aborting(frames: Vec<Bytes>, delay: Duration, n: usize) -> FakeBody {
        let mut body = FakeBody::frames(frames, delay);
        if let FakeBody::Frames(f) = &mut body {
            f.abort_after = Some(n);
        }
        body
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
        match self.get_mut() {
            FakeBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            FakeBody::Frames(frames) => frames.poll_next(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, FakeBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            // An exact hint makes hyper send `content-length` instead of chunked encoding.
            FakeBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            FakeBody::Frames(_) => SizeHint::default(),
        }
    }
}
