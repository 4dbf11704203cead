//! A circuit breaker per backend (provider + upstream model): after `threshold` consecutive
//! failures (5xx, timeouts, connection and protocol errors — not rate limits or refused keys,
//! which are about one key) it opens and the router stops sending traffic; after the open time
//! one request is let through as a probe (half-open); a success closes it, a failure opens it
//! again. Lock-free: three atomics read on every plan.
//!
//! Like instance health, a circuit survives a restart: changes mark it dirty, a background task
//! writes [`Circuit::take_dirty`] snapshots to the store (never the request path) and start-up
//! hands them back to [`Circuit::restore`].

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::health::pool::unix_ms;

/// What the router may do with a backend right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    /// The name used in `providers.list` and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    /// Parses a stored state name.
    pub fn parse(s: &str) -> Option<CircuitState> {
        Some(match s {
            "closed" => CircuitState::Closed,
            "open" => CircuitState::Open,
            "half_open" => CircuitState::HalfOpen,
            _ => return None,
        })
    }
}

/// A circuit as persisted and shown to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitSnapshot {
    pub state: CircuitState,
    /// Consecutive failures.
    pub failures: u32,
    /// Unix ms an open circuit lets its probe through; 0 when closed.
    pub open_until_ms: u64,
}

impl CircuitSnapshot {
    /// Time left until the probe as of `now_ms`: `None` when closed, zero once half-open.
    pub fn probe_in(&self, now_ms: u64) -> Option<Duration> {
        match self.state {
            CircuitState::Closed => None,
            CircuitState::Open | CircuitState::HalfOpen => Some(Duration::from_millis(
                self.open_until_ms.saturating_sub(now_ms),
            )),
        }
    }
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
    /// Changed since the persister last looked (failures or open/closed; not probes, which
    /// are not persisted).
    dirty: AtomicBool,
}

impl Circuit {
    /// The state as of now.
    pub fn state(&self) -> CircuitState {
        state_of(self.open_until.load(Ordering::Relaxed))
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

    /// What [`admit`](Circuit::admit) would answer now, without taking the probe
    /// (`routing.explain`).
    pub fn would_admit(&self) -> bool {
        match self.state() {
            CircuitState::Closed => true,
            CircuitState::Open => false,
            CircuitState::HalfOpen => {
                let prev = self.probe_at.load(Ordering::Relaxed);
                prev == 0 || unix_ms().saturating_sub(prev) > self.open_ms.load(Ordering::Relaxed)
            }
        }
    }

    /// A request through this backend succeeded: close.
    pub fn success(&self) {
        // Read first: the common case (closed, no failures) writes nothing, so successes on a
        // hot backend do not bounce its cache line between cores.
        let mut changed = false;
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
            changed = true;
        }
        if self.open_until.load(Ordering::Relaxed) != 0 {
            self.open_until.store(0, Ordering::Relaxed);
            self.probe_at.store(0, Ordering::Relaxed);
            changed = true;
        }
        if changed {
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Operator action (`providers.reset`): close now and forget the failures.
    pub fn reset(&self) {
        self.success();
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
        self.dirty.store(true, Ordering::Release);
    }

    /// Carries state over from the same backend of a previous registry snapshot, including a
    /// change not persisted yet (the persister only walks the current snapshot).
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
        self.dirty
            .store(other.dirty.load(Ordering::Acquire), Ordering::Release);
    }

    /// State, failures and probe time as of now.
    pub fn snapshot(&self) -> CircuitSnapshot {
        let open_until_ms = self.open_until.load(Ordering::Relaxed);
        CircuitSnapshot {
            state: state_of(open_until_ms),
            failures: self.failures.load(Ordering::Relaxed),
            open_until_ms,
        }
    }

    /// The state to persist, if it changed since the last call.
    pub fn take_dirty(&self) -> Option<CircuitSnapshot> {
        self.dirty
            .swap(false, Ordering::AcqRel)
            .then(|| self.snapshot())
    }

    /// Marks the circuit changed again, e.g. when writing its last snapshot failed.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Restores a persisted state (at start-up). An open circuit keeps its probe time, capped
    /// at `open_for` from now (the configured open time may have been shortened since); one
    /// whose time has passed comes back half-open, ready for its probe; a closed one keeps its
    /// failure count. Not dirty afterwards: the store already says so.
    pub fn restore(&self, snap: CircuitSnapshot, open_for: Duration) {
        let open_ms = u64::try_from(open_for.as_millis()).unwrap_or(u64::MAX);
        let until = match snap.state {
            CircuitState::Closed => 0,
            CircuitState::Open | CircuitState::HalfOpen => snap
                .open_until_ms
                .min(unix_ms().saturating_add(open_ms))
                .max(1),
        };
        self.failures.store(snap.failures, Ordering::Relaxed);
        self.open_ms.store(open_ms, Ordering::Relaxed);
        self.probe_at.store(0, Ordering::Relaxed);
        self.open_until.store(until, Ordering::Relaxed);
        self.dirty.store(false, Ordering::Release);
    }
}

/// The state of a circuit whose `open_until` is this.
fn state_of(open_until_ms: u64) -> CircuitState {
    match open_until_ms {
        0 => CircuitState::Closed,
        until if until > unix_ms() => CircuitState::Open,
        _ => CircuitState::HalfOpen,
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

    #[test]
    fn changes_are_dirty_once_and_quiet_successes_are_not() {
        let c = Circuit::default();
        c.success();
        assert_eq!(c.take_dirty(), None, "nothing changed");
        c.failure(3, Duration::from_secs(60));
        let snap = c.take_dirty().expect("a failure is a change");
        assert_eq!(
            (snap.state, snap.failures, snap.open_until_ms),
            (CircuitState::Closed, 1, 0)
        );
        assert_eq!(c.take_dirty(), None, "dirty is consumed");
        c.failure(2, Duration::from_secs(60));
        let snap = c.take_dirty().expect("opened");
        assert_eq!((snap.state, snap.failures), (CircuitState::Open, 2));
        let left = snap.probe_in(unix_ms()).expect("open");
        assert!(
            left > Duration::from_secs(58) && left <= Duration::from_secs(60),
            "{left:?}"
        );
        c.mark_dirty();
        assert_eq!(c.take_dirty().map(|s| s.state), Some(CircuitState::Open));
        c.reset();
        let snap = c.take_dirty().expect("closed by the operator");
        assert_eq!((snap.state, snap.failures), (CircuitState::Closed, 0));
        assert_eq!(snap.probe_in(unix_ms()), None);
        c.success();
        assert_eq!(c.take_dirty(), None);
    }

    #[test]
    fn restore_keeps_open_circuits_open_and_expired_ones_ready_to_probe() {
        let open = |until: u64| CircuitSnapshot {
            state: CircuitState::Open,
            failures: 4,
            open_until_ms: until,
        };
        let c = Circuit::default();
        c.restore(open(unix_ms() + 20_000), Duration::from_secs(30));
        assert_eq!(c.state(), CircuitState::Open);
        assert!(!c.admit());
        assert_eq!(c.take_dirty(), None, "restored state is not rewritten");
        assert_eq!(c.snapshot().failures, 4);

        // The configured open time was shortened since: the probe comes no later than that.
        c.restore(open(unix_ms() + 3_600_000), Duration::from_secs(30));
        let left = c.snapshot().probe_in(unix_ms()).expect("open");
        assert!(left <= Duration::from_secs(30), "{left:?}");

        // Its time passed while the broker was down: exactly one probe, then a success closes.
        c.restore(open(unix_ms() - 1_000), Duration::from_secs(30));
        assert_eq!(c.state(), CircuitState::HalfOpen);
        assert_eq!(c.snapshot().probe_in(unix_ms()), Some(Duration::ZERO));
        assert!(c.admit(), "the probe");
        assert!(
            !c.admit(),
            "only one, and not stale: the open time was restored"
        );
        c.success();
        assert_eq!(c.state(), CircuitState::Closed);

        // A closed circuit keeps counting from its stored failures.
        let d = Circuit::default();
        d.restore(
            CircuitSnapshot {
                state: CircuitState::Closed,
                failures: 2,
                open_until_ms: 0,
            },
            Duration::from_secs(30),
        );
        d.failure(3, Duration::from_secs(30));
        assert_eq!(d.state(), CircuitState::Open);
    }

    #[test]
    fn reload_carries_unsaved_changes_and_names_round_trip() {
        let old = Circuit::default();
        old.failure(1, Duration::from_secs(60));
        let new = Circuit::default();
        new.copy_from(&old);
        assert_eq!(new.take_dirty().map(|s| s.state), Some(CircuitState::Open));
        for s in [
            CircuitState::Closed,
            CircuitState::Open,
            CircuitState::HalfOpen,
        ] {
            assert_eq!(CircuitState::parse(s.as_str()), Some(s));
        }
        assert_eq!(CircuitState::parse("ajar"), None);
    }
}
