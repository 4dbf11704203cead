//! Limits per client (the peer: `uds:uid=1000` on Unix sockets, the IP on TCP), whatever key
//! it uses: requests per minute (`CLIENT_RPM`), requests at once (`CLIENT_MAX_CONCURRENT`),
//! and a throttle on invalid-key attempts (`AUTH_FAILURES_PER_MINUTE`). Each client's counters
//! are behind its own lock in a sharded map: no global lock on the request path. Clients idle
//! for a minute are forgotten by [`Clients::prune`], so the map stays as small as the set of
//! recent peers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use hero_aibroker_sdk::ErrorCode;

pub use crate::config::settings::ClientLimits;
use crate::error::ApiError;

#[derive(Debug, Default)]
struct Window {
    minute: u64,
    requests: u64,
    auth_failures: u64,
}

#[derive(Debug, Default)]
struct Client {
    window: std::sync::Mutex<Window>,
    in_flight: Arc<AtomicU64>,
}

/// Every recent client's counters.
#[derive(Debug, Default)]
pub struct Clients {
    limits: ClientLimits,
    map: DashMap<String, Arc<Client>>,
}

/// A request counted against its client's concurrency until it is dropped.
#[derive(Debug)]
pub struct ClientSlot(Arc<AtomicU64>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Clients {
    pub fn new(limits: ClientLimits) -> Self {
        Clients {
            limits,
            map: DashMap::new(),
        }
    }

    fn entry(&self, client: &str) -> Arc<Client> {
        if let Some(c) = self.map.get(client) {
            return c.clone();
        }
        self.map.entry(client.to_owned()).or_default().clone()
    }

    /// Runs `f` on the client's window of the current minute; also returns the seconds left
    /// in that minute.
    fn with_window<T>(&self, c: &Client, f: impl FnOnce(&mut Window) -> T) -> (T, u64) {
        let now = now_secs();
        let mut w = c
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.minute != now / 60 {
            *w = Window {
                minute: now / 60,
                ..Window::default()
            };
        }
        (f(&mut w), 60 - now % 60)
    }

    /// Admits one request of `client` or refuses it (429): its rate or its concurrency is at
    /// the limit. The slot counts the request until it is dropped.
    pub fn admit(&self, client: &str) -> Result<ClientSlot, ApiError> {
        let c = self.entry(client);
        let prev = c.in_flight.fetch_add(1, Ordering::Relaxed);
        let slot = ClientSlot(c.in_flight.clone());
        let max = self.limits.max_concurrent;
        if max > 0 && prev >= max {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "This client ({}) already has {max} requests in flight (CLIENT_MAX_CONCURRENT).",
                    crate::error::printable(client)
                ),
            )
            .retry_after(1));
        }
        let rpm = self.limits.rpm;
        if rpm > 0 {
            let (over, retry) = self.with_window(&c, |w| {
                let over = w.requests >= rpm;
                if !over {
                    w.requests += 1;
                }
                over
            });
            if over {
                return Err(ApiError::new(
                    ErrorCode::RateLimited,
                    format!(
                        "This client ({}) is limited to {rpm} requests per minute (CLIENT_RPM).",
                        crate::error::printable(client)
                    ),
                )
                .retry_after(retry));
            }
        }
        Ok(slot)
    }

    /// Notes an invalid-key attempt of `client`.
    pub fn auth_failed(&self, client: &str) {
        if self.limits.auth_failures_per_minute > 0 {
            let c = self.entry(client);
            self.with_window(&c, |w| w.auth_failures += 1);
        }
    }

    /// Seconds until `client` may try a key again, while it is over the invalid-key limit.
    pub fn auth_blocked(&self, client: &str) -> Option<u64> {
        let max = self.limits.auth_failures_per_minute;
        if max == 0 {
            return None;
        }
        let c = self.map.get(client)?.clone();
        let (blocked, retry) = self.with_window(&c, |w| w.auth_failures >= max);
        blocked.then_some(retry)
    }

    /// Forgets clients with nothing in flight and no request in the current minute.
    pub fn prune(&self) {
        let minute = now_secs() / 60;
        self.map.retain(|_, c| {
            c.in_flight.load(Ordering::Relaxed) > 0
                || c.window
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .minute
                    == minute
        });
    }

    /// Requests of `client` in flight now.
    pub fn in_flight(&self, client: &str) -> u64 {
        self.map
            .get(client)
            .map_or(0, |c| c.in_flight.load(Ordering::Relaxed))
    }

    /// Number of clients remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_is_counted_until_the_slot_drops() {
        let c = Clients::new(ClientLimits {
            max_concurrent: 2,
            ..ClientLimits::default()
        });
        let a = c.admit("uds:uid=1").expect("first");
        let _b = c.admit("uds:uid=1").expect("second");
        let e = c.admit("uds:uid=1").expect_err("third");
        assert_eq!(e.code, ErrorCode::RateLimited);
        c.admit("uds:uid=2")
            .expect("another client is not affected");
        drop(a);
        c.admit("uds:uid=1").expect("a slot came back");
    }

    #[test]
    fn rpm_and_invalid_key_throttle() {
        let c = Clients::new(ClientLimits {
            rpm: 2,
            auth_failures_per_minute: 3,
            ..ClientLimits::default()
        });
        // A minute boundary between the calls would reset the window: allow one retry.
        for attempt in 0..2 {
            let c = if attempt == 0 {
                &c
            } else {
                &Clients::new(c.limits)
            };
            let ok = c.admit("ip").is_ok() && c.admit("ip").is_ok();
            let refused = c.admit("ip").is_err();
            (0..3).for_each(|_| c.auth_failed("ip"));
            if ok && refused && c.auth_blocked("ip").is_some() {
                assert!(c.auth_blocked("other").is_none());
                return;
            }
        }
        panic!("the limits did not hold");
    }

    #[test]
    fn idle_clients_are_forgotten() {
        let c = Clients::new(ClientLimits::default());
        let slot = c.admit("busy").expect("admit");
        drop(c.admit("idle").expect("admit"));
        c.map
            .get("idle")
            .expect("idle")
            .window
            .lock()
            .expect("lock")
            .minute = 0;
        c.map
            .get("busy")
            .expect("busy")
            .window
            .lock()
            .expect("lock")
            .minute = 0;
        c.prune();
        assert_eq!(c.len(), 1, "only the client with a request in flight stays");
        drop(slot);
    }
}
