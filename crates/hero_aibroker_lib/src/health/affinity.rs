//! Session affinity: requests with the same `x-session-id` header (or `user` field) for the
//! same model stick to the key and backend that last answered them while it stays healthy,
//! so the provider's prompt cache stays warm. A sharded map (no global lock), entries expire
//! after [`TTL`] and the map is bounded.

use std::hash::{BuildHasher, Hash, Hasher};
use std::time::Duration;

use dashmap::DashMap;

use crate::health::pool::unix_ms;

/// How long a session sticks after its last request.
pub const TTL: Duration = Duration::from_secs(30 * 60);
/// Sessions remembered at most; expired ones are swept when the map is full.
const CAPACITY: usize = 100_000;

/// Where a session's last request was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticky {
    pub instance: String,
    pub model_id: String,
    expires_ms: u64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Affinity {
    map: DashMap<u64, Sticky>,
    hasher: std::collections::hash_map::RandomState,
}

impl Affinity {
    fn key(&self, session: &str, model: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        session.hash(&mut h);
        model.hash(&mut h);
        h.finish()
    }

    /// The live sticky target of `session` for `model`, if any.
    pub fn get(&self, session: &str, model: &str) -> Option<Sticky> {
        let now = unix_ms();
        self.map
            .get(&self.key(session, model))
            .filter(|s| s.expires_ms > now)
            .map(|s| s.clone())
    }

    /// Remembers that `instance`/`model_id` answered `session` for `model`.
    pub fn set(&self, session: &str, model: &str, instance: &str, model_id: &str) {
        let now = unix_ms();
        if self.map.len() >= CAPACITY {
            self.map.retain(|_, s| s.expires_ms > now);
            if self.map.len() >= CAPACITY {
                self.map.clear();
            }
        }
        let expires_ms = now + u64::try_from(TTL.as_millis()).unwrap_or(u64::MAX);
        let key = self.key(session, model);
        // One shard lock, held only for this update.
        let mut entry = self.map.entry(key).or_insert_with(|| Sticky {
            instance: String::new(),
            model_id: String::new(),
            expires_ms,
        });
        if entry.instance != instance || entry.model_id != model_id {
            entry.instance = instance.to_owned();
            entry.model_id = model_id.to_owned();
        }
        entry.expires_ms = expires_ms;
    }

    /// Sessions remembered (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no session is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_stick_per_model() {
        let a = Affinity::default();
        assert_eq!(a.get("s1", "m"), None);
        a.set("s1", "m", "openai-1", "gpt");
        assert_eq!(
            a.get("s1", "m").map(|s| s.instance),
            Some("openai-1".into())
        );
        assert_eq!(a.get("s1", "other"), None);
        assert_eq!(a.get("s2", "m"), None);
        a.set("s1", "m", "openai-0", "gpt");
        assert_eq!(
            a.get("s1", "m").map(|s| s.instance),
            Some("openai-0".into())
        );
        assert_eq!(a.len(), 1);
    }
}
