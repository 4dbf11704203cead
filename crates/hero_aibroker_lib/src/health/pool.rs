//! Provider instances (one per API key) and their health. An instance is `healthy`,
//! `cooldown` (until a time, with a reason), `auth_failed` (its key was refused; sticky until an
//! operator resets it) or `disabled` (by an operator). State changes only in
//! [`Instance::observe`] (from the outcome of an attempt) and in the two operator actions; the
//! router reads it lock-free. Changes mark the instance dirty so a background task can persist
//! them (never a database write on the request path).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Outcome;
use crate::endpoint::Endpoint;
use crate::secret::Secret;

/// Wall-clock milliseconds (cooldowns are persisted, so they use the real clock).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An instance's health state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Cooldown,
    AuthFailed,
    Disabled,
}

impl Health {
    /// The name used in `providers.list` and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Cooldown => "cooldown",
            Health::AuthFailed => "auth_failed",
            Health::Disabled => "disabled",
        }
    }

    /// Parses a stored state name.
    pub fn parse(s: &str) -> Option<Health> {
        Some(match s {
            "healthy" => Health::Healthy,
            "cooldown" => Health::Cooldown,
            "auth_failed" => Health::AuthFailed,
            "disabled" => Health::Disabled,
            _ => return None,
        })
    }

    fn from_u8(v: u8) -> Health {
        match v {
            1 => Health::Cooldown,
            2 => Health::AuthFailed,
            3 => Health::Disabled,
            _ => Health::Healthy,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Health::Healthy => 0,
            Health::Cooldown => 1,
            Health::AuthFailed => 2,
            Health::Disabled => 3,
        }
    }
}

/// One provider + key: `openai-0`, `openai-1`, `local-0`.
#[derive(Debug)]
pub struct Instance {
    /// `<provider>-<n>`.
    pub id: String,
    pub provider: String,
    /// Base URL without a trailing slash, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// `None` for keyless local servers.
    pub key: Option<Secret>,
    /// `base_url` + each OpenAI endpoint path, parsed once (URL parsing showed up in profiles).
    urls: [Option<reqwest::Url>; Endpoint::ALL.len()],
    state: AtomicU8,
    /// Unix ms until which a cooldown lasts; 0 = none.
    cooldown_until: AtomicU64,
    /// Consecutive failures (timeouts, 5xx, connection errors), for the backoff.
    failures: AtomicU32,
    /// Why the instance is not healthy (operator-visible). Only touched on transitions.
    reason: Mutex<Option<String>>,
    /// Changed since the last time the persister looked.
    dirty: AtomicBool,
    /// Requests using this key right now (the least_busy strategy).
    in_flight: AtomicU32,
}

/// Counts one request on an instance while it lives (see [`Instance::busy`]).
#[derive(Debug)]
pub struct Busy(Arc<Instance>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Longest cooldown a rate limit sets, whatever `Retry-After` says.
const MAX_RATE_LIMIT_COOLDOWN: Duration = Duration::from_secs(3600);
/// Cooldown after a rate limit without `Retry-After`.
const DEFAULT_RATE_LIMIT_COOLDOWN: Duration = Duration::from_secs(5);
/// First backoff step after a failure, doubling per consecutive failure up to the cap.
const FAILURE_COOLDOWN: Duration = Duration::from_secs(1);
const MAX_FAILURE_COOLDOWN: Duration = Duration::from_secs(300);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Instance {
    /// A healthy instance.
    pub fn new(id: String, provider: String, base_url: String, key: Option<Secret>) -> Self {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let urls =
            Endpoint::ALL.map(|ep| reqwest::Url::parse(&format!("{base_url}{}", ep.path())).ok());
        Instance {
            id,
            provider,
            base_url,
            key,
            urls,
            state: AtomicU8::new(0),
            cooldown_until: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            reason: Mutex::new(None),
            dirty: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
        }
    }

    /// Marks one request as using this instance until the guard is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Requests using this instance right now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// `base_url` followed by the endpoint's OpenAI path, or `None` if that is not a valid URL.
    pub fn openai_url(&self, endpoint: Endpoint) -> Option<&reqwest::Url> {
        self.urls[endpoint.index()].as_ref()
    }

    /// The current state; an expired cooldown reads as healthy.
    pub fn health(&self) -> Health {
        match Health::from_u8(self.state.load(Ordering::Relaxed)) {
            Health::Cooldown if self.cooldown_until.load(Ordering::Relaxed) <= unix_ms() => {
                Health::Healthy
            }
            h => h,
        }
    }

    /// False for `auth_failed` and `disabled`: the router leaves such instances out.
    pub fn usable(&self) -> bool {
        !matches!(self.health(), Health::AuthFailed | Health::Disabled)
    }

    /// True while the instance is cooling down after a failure.
    pub fn cooling_down(&self) -> bool {
        self.health() == Health::Cooldown
    }

    /// Time left in the cooldown, if any.
    pub fn cooldown_left(&self) -> Option<Duration> {
        if !self.cooling_down() {
            return None;
        }
        let until = self.cooldown_until.load(Ordering::Relaxed);
        Some(Duration::from_millis(until.saturating_sub(unix_ms())))
    }

    /// Why the instance is not healthy.
    pub fn reason(&self) -> Option<String> {
        if self.health() == Health::Healthy {
            return None;
        }
        self.reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// What an attempt's outcome does to this key's health (through `Candidate::observe`).
    pub fn observe(&self, outcome: &Outcome) {
        match outcome {
            Outcome::Deadline => {}
            Outcome::Answered(_) => {
                self.failures.store(0, Ordering::Relaxed);
                if Health::from_u8(self.state.load(Ordering::Relaxed)) == Health::Cooldown {
                    self.transition(Health::Healthy, 0, None);
                }
            }
            Outcome::RateLimited(after) => {
                // An upstream asking for days is believed up to an hour.
                let d = after
                    .unwrap_or(DEFAULT_RATE_LIMIT_COOLDOWN)
                    .min(MAX_RATE_LIMIT_COOLDOWN);
                self.cool_down(
                    d,
                    format!("rate limited (429), retry after {:.1}s", d.as_secs_f64()),
                );
            }
            Outcome::Failed(why) => {
                let n = self
                    .failures
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                let d = FAILURE_COOLDOWN
                    .saturating_mul(1u32 << (n - 1).min(16))
                    .min(MAX_FAILURE_COOLDOWN);
                self.cool_down(d, format!("{n} consecutive failure(s), last: {why}"));
            }
            Outcome::KeyRefused(status) => {
                if self.usable() {
                    self.transition(
                        Health::AuthFailed,
                        0,
                        Some(format!("HTTP {status}: the provider refused the key; fix it, then providers.reset")),
                    );
                }
            }
        }
    }

    fn cool_down(&self, d: Duration, reason: String) {
        if !self.usable() {
            return;
        }
        let until = unix_ms().saturating_add(ms(d));
        // Never shorten a cooldown another request already set.
        let prev = self.cooldown_until.fetch_max(until, Ordering::Relaxed);
        if until > prev || self.health() != Health::Cooldown {
            self.transition(Health::Cooldown, prev.max(until), Some(reason));
        }
    }

    fn transition(&self, to: Health, until: u64, reason: Option<String>) {
        *self
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = reason;
        self.cooldown_until.store(until, Ordering::Relaxed);
        self.state.store(to.to_u8(), Ordering::Relaxed);
        self.dirty.store(true, Ordering::Release);
    }

    /// Operator action: back to healthy (clears auth_failed, disabled and cooldowns).
    pub fn reset(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.transition(Health::Healthy, 0, None);
    }

    /// Operator action: never route to this instance until reset.
    pub fn disable(&self, reason: Option<String>) {
        self.transition(
            Health::Disabled,
            0,
            Some(reason.unwrap_or_else(|| "disabled by an operator".into())),
        );
    }

    /// Restores a persisted state (at startup); an expired cooldown is ignored.
    pub fn restore(&self, state: Health, reason: Option<String>, until_ms: u64) {
        match state {
            Health::Cooldown if until_ms > unix_ms() => {
                self.transition(Health::Cooldown, until_ms, reason)
            }
            Health::AuthFailed | Health::Disabled => self.transition(state, 0, reason),
            _ => {}
        }
        self.dirty.store(false, Ordering::Release);
    }

    /// Takes a state another broker of a shared database learned: a cooldown that ends later
    /// than this one's, a rejected (`auth_failed`) or disabled key; a `healthy` row (an operator
    /// reset there) clears a local `auth_failed` or `disabled`. Not written back (it came from
    /// the store). True when the state changed.
    pub fn adopt(&self, state: Health, reason: Option<String>, until_ms: u64) -> bool {
        let now = self.health();
        let take = match state {
            Health::Cooldown => {
                until_ms > unix_ms()
                    && matches!(now, Health::Healthy | Health::Cooldown)
                    && until_ms > self.cooldown_until.load(Ordering::Relaxed)
            }
            Health::AuthFailed | Health::Disabled => now != state,
            Health::Healthy => matches!(now, Health::AuthFailed | Health::Disabled),
        };
        if take {
            let dirty = self.dirty.load(Ordering::Acquire);
            self.transition(
                state,
                if state == Health::Cooldown {
                    until_ms
                } else {
                    0
                },
                reason,
            );
            self.dirty.store(dirty, Ordering::Release);
        }
        take
    }

    /// State to persist, if it changed since the last call.
    /// Marks the state as not yet persisted again (a failed write is retried next time).
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    pub fn take_dirty(&self) -> Option<(Health, Option<String>, u64)> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return None;
        }
        let state = Health::from_u8(self.state.load(Ordering::Relaxed));
        let reason = self
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Some((state, reason, self.cooldown_until.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst() -> Instance {
        Instance::new(
            "openai-0".into(),
            "openai".into(),
            "http://x/v1/".into(),
            None,
        )
    }

    #[test]
    fn cooldown_is_set_extended_and_cleared() {
        let i = inst();
        assert_eq!(i.base_url, "http://x/v1");
        assert_eq!(
            i.openai_url(Endpoint::Embeddings).map(|u| u.as_str()),
            Some("http://x/v1/embeddings")
        );
        assert!(!i.cooling_down());
        i.observe(&Outcome::RateLimited(Some(Duration::from_secs(30))));
        assert!(i.cooling_down());
        assert!(i.reason().expect("reason").contains("429"));
        i.observe(&Outcome::Failed("HTTP 500".into())); // 1 s: must not shorten
        assert!(i.cooldown_left().expect("cooling") > Duration::from_secs(25));
        i.observe(&Outcome::Answered(Duration::ZERO));
        assert!(!i.cooling_down());
        assert_eq!(i.health(), Health::Healthy);
    }

    #[test]
    fn repeated_failures_back_off_exponentially() {
        let i = inst();
        let mut last = Duration::ZERO;
        for n in 1..=5 {
            i.observe(&Outcome::Failed("timeout".into()));
            let left = i.cooldown_left().expect("cooling");
            assert!(left > last, "failure {n}: {left:?} after {last:?}");
            last = left;
        }
        assert!(last >= Duration::from_secs(15), "1,2,4,8,16 s: {last:?}");
        assert!(i.reason().expect("reason").starts_with("5 consecutive"));
    }

    #[test]
    fn auth_failed_is_sticky_until_reset_and_disable_wins() {
        let i = inst();
        i.observe(&Outcome::KeyRefused(401));
        assert_eq!(i.health(), Health::AuthFailed);
        assert!(!i.usable());
        i.observe(&Outcome::Answered(Duration::ZERO));
        i.observe(&Outcome::RateLimited(None));
        assert_eq!(i.health(), Health::AuthFailed, "only an operator clears it");
        i.reset();
        assert!(i.usable());
        i.disable(None);
        assert_eq!(i.health(), Health::Disabled);
        assert_eq!(i.take_dirty().map(|d| d.0), Some(Health::Disabled));
        assert!(i.take_dirty().is_none(), "dirty is consumed");
        i.mark_dirty();
        assert_eq!(
            i.take_dirty().map(|d| d.0),
            Some(Health::Disabled),
            "a failed write is retried with the current state"
        );
    }

    #[test]
    fn restore_ignores_expired_cooldowns() {
        let i = inst();
        i.restore(Health::Cooldown, Some("x".into()), unix_ms() - 1);
        assert_eq!(i.health(), Health::Healthy);
        i.restore(Health::Cooldown, Some("x".into()), unix_ms() + 60_000);
        assert!(i.cooling_down());
        i.restore(Health::AuthFailed, None, 0);
        assert!(!i.usable());
    }
}
