//! Provider instances (one per API key) and their health. State changes only in
//! [`Instance::observe`], from the outcome of an attempt; the router reads it lock-free.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::router::Endpoint;
use crate::secret::Secret;

/// Milliseconds since the first call: a monotonic clock that fits in an atomic.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
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
    urls: [Option<reqwest::Url>; 3],
    /// Monotonic ms until which the instance should be tried last; 0 = healthy.
    cooldown_until: AtomicU64,
}

/// What an attempt taught us about an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    Success,
    /// Rate limited; cool down for the given time (or a short default).
    RateLimited(Option<Duration>),
    /// 5xx, timeout, connection error.
    Failed,
}

/// Cooldown after a rate limit without `Retry-After`, and after a plain failure.
const DEFAULT_RATE_LIMIT_COOLDOWN: Duration = Duration::from_secs(5);
const FAILURE_COOLDOWN: Duration = Duration::from_secs(1);

impl Instance {
    /// A healthy instance.
    pub fn new(id: String, provider: String, base_url: String, key: Option<Secret>) -> Self {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let urls = [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings]
            .map(|ep| reqwest::Url::parse(&format!("{base_url}{}", ep.path())).ok());
        Instance {
            id,
            provider,
            base_url,
            key,
            urls,
            cooldown_until: AtomicU64::new(0),
        }
    }

    /// `base_url` followed by the endpoint's OpenAI path, or `None` if that is not a valid URL.
    pub fn openai_url(&self, endpoint: Endpoint) -> Option<&reqwest::Url> {
        let i = match endpoint {
            Endpoint::Chat => 0,
            Endpoint::Completions => 1,
            Endpoint::Embeddings => 2,
        };
        self.urls[i].as_ref()
    }

    /// True while the instance is cooling down after a failure.
    pub fn cooling_down(&self) -> bool {
        let until = self.cooldown_until.load(Ordering::Relaxed);
        until != 0 && until > now_ms()
    }

    /// Time left in the cooldown, if any.
    pub fn cooldown_left(&self) -> Option<Duration> {
        let until = self.cooldown_until.load(Ordering::Relaxed);
        let now = now_ms();
        (until > now).then(|| Duration::from_millis(until - now))
    }

    /// The one place instance health changes.
    pub fn observe(&self, obs: Observation) {
        let cooldown = match obs {
            Observation::Success => {
                self.cooldown_until.store(0, Ordering::Relaxed);
                return;
            }
            Observation::RateLimited(after) => after.unwrap_or(DEFAULT_RATE_LIMIT_COOLDOWN),
            Observation::Failed => FAILURE_COOLDOWN,
        };
        let until =
            now_ms().saturating_add(u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX));
        // Never shorten a cooldown another request already set.
        self.cooldown_until.fetch_max(until, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldown_is_set_extended_and_cleared() {
        let i = Instance::new(
            "openai-0".into(),
            "openai".into(),
            "http://x/v1/".into(),
            None,
        );
        assert_eq!(i.base_url, "http://x/v1");
        assert_eq!(
            i.openai_url(Endpoint::Embeddings).map(|u| u.as_str()),
            Some("http://x/v1/embeddings")
        );
        assert!(!i.cooling_down());
        i.observe(Observation::RateLimited(Some(Duration::from_secs(30))));
        assert!(i.cooling_down());
        i.observe(Observation::Failed); // shorter: must not shorten
        assert!(i.cooldown_left().expect("cooling") > Duration::from_secs(25));
        i.observe(Observation::Success);
        assert!(!i.cooling_down());
    }
}
