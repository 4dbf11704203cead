//! A circuit breaker per backend (provider + upstream model): after `threshold` consecutive
//! failures (5xx, timeouts, connection and protocol errors — not rate limits or refused keys,
//! which are about one key) it opens and the router stops sending traffic; after the open time
//! one request is let through as a probe (half-open); a success closes it, a failure opens it
//! again. Lock-free: three atomics read on every plan.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::pool::unix_ms;

/// What the router may do with a backend right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Circuit {
    failures: AtomicU32,
    /// Unix ms the circuit may half-open; 0 = closed.
    open_until: AtomicU64,
    /// Unix ms the current probe was handed out; 0 = none.
    probe_at: AtomicU64,
    /// How long it stays open (ms), remembered for the probe's own timeout.
    open_ms: AtomicU64,
}

impl Circuit {
    /// The state as of now.
    pub fn state(&self) -> CircuitState {
        match self.open_until.load(Ordering::Relaxed) {
            0 => CircuitState::Closed,
            until if until > unix_ms() => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    /// True if a request may use the backend: always when closed; never when open; when
    /// half-open, for exactly one probe at a time (a probe that never reported back is
    /// replaced after the open time).
    pub fn admit(&self) -> bool {
        match self.state() {
            CircuitState::Closed => true,
            CircuitState::Open => false,
            CircuitState::HalfOpen => {
                let now = unix_ms();
                let prev = self.probe_at.load(Ordering::Relaxed);
                let stale =
                    prev != 0 && now.saturating_sub(prev) > self.open_ms.load(Ordering::Relaxed);
                (prev == 0 || stale)
                    && self
                        .probe_at
                        .compare_exchange(prev, now, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
            }
        }
    }

    /// A request through this backend succeeded: close.
    pub fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        if self.open_until.load(Ordering::Relaxed) != 0 {
            self.open_until.store(0, Ordering::Relaxed);
            self.probe_at.store(0, Ordering::Relaxed);
        }
    }

    /// A request through this backend failed; opens after `threshold` in a row (or at once
    /// when a half-open probe fails).
    pub fn failure(&self, threshold: u32, open_for: Duration) {
        let n = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let probing = self.state() == CircuitState::HalfOpen;
        if n >= threshold.max(1) || probing {
            let ms = u64::try_from(open_for.as_millis()).unwrap_or(u64::MAX);
            self.open_ms.store(ms, Ordering::Relaxed);
            self.open_until
                .store(unix_ms().saturating_add(ms).max(1), Ordering::Relaxed);
            self.probe_at.store(0, Ordering::Relaxed);
        }
    }

    /// Carries state over from the same backend of a previous registry snapshot.
    pub fn copy_from(&self, other: &Circuit) {
        for (a, b) in [
            (&self.open_until, &other.open_until),
            (&self.probe_at, &other.probe_at),
            (&self.open_ms, &other.open_ms),
        ] {
            a.store(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.failures
            .store(other.failures.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_probes_once_and_closes_on_success() {
        let c = Circuit::default();
        for _ in 0..2 {
            c.failure(3, Duration::from_millis(50));
            assert_eq!(c.state(), CircuitState::Closed);
        }
        c.failure(3, Duration::from_millis(50));
        assert_eq!(c.state(), CircuitState::Open);
        assert!(!c.admit());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.state(), CircuitState::HalfOpen);
        assert!(c.admit(), "one probe");
        assert!(!c.admit(), "only one");
        c.success();
        assert_eq!(c.state(), CircuitState::Closed);
        assert!(c.admit() && c.admit());
    }

    #[test]
    fn a_failed_probe_opens_again_and_successes_reset_the_count() {
        let c = Circuit::default();
        c.failure(1, Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(30));
        assert!(c.admit());
        c.failure(5, Duration::from_millis(20));
        assert_eq!(c.state(), CircuitState::Open, "the probe failed");
        let d = Circuit::default();
        d.failure(3, Duration::from_secs(1));
        d.failure(3, Duration::from_secs(1));
        d.success();
        d.failure(3, Duration::from_secs(1));
        assert_eq!(d.state(), CircuitState::Closed, "not three in a row");
    }
}
