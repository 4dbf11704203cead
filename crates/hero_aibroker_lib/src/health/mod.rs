//! Health: the live state routing reads and attempts change — per (provider, key) instance
//! health and cooldowns ([`pool`]), per-backend circuits ([`circuit`]) and latency and
//! throughput measurements ([`stats`]), and session affinity ([`affinity`]). Lock-free on the
//! request path. An attempt's [`Outcome`] changes it in one place, the pipeline's
//! `Candidate::observe`.

pub mod affinity;
pub mod circuit;
pub mod pool;
pub mod stats;

use std::time::Duration;

/// How one upstream attempt ended, as far as the health of what it used is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered (a 2xx, or a 4xx about the request itself, which proves the key
    /// works), after `took`.
    Answered(Duration),
    /// 429: cool the key down for at least the given time (or a short default).
    RateLimited(Option<Duration>),
    /// 5xx, timeout, connection error, in-band error, broken protocol: the key cools down with
    /// exponential backoff and the backend's circuit counts a failure.
    Failed(String),
    /// 401/403: the key is refused until an operator resets it.
    KeyRefused(u16),
    /// The request's own deadline passed: nothing was learnt about the upstream.
    Deadline,
}
