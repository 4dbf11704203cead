//! Budgets shared by several brokers on one database (PostgreSQL): each broker spends from a
//! lease, a slice of the key's budget the database granted it under the key row's lock
//! ([`Store::grant_lease`]). Admission checks the lease in memory (an atomic, as with one
//! broker); only when a request does not fit does it wait for one grant — one transaction per
//! slice, not per request. A request is admitted only when its whole cost estimate fits in the
//! lease, so the brokers together spend at most the budget plus what requests cost beyond their
//! estimates (`docs/operations.md` states the bound).
//!
//! A lease lasts [`LEASE_TTL_MS`]; [`Keys::upkeep_leases`] extends the leases in use and gives
//! back what an idle key does not spend, and a stopping broker returns all of them
//! ([`Store::release_leases`]).

use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use hero_aibroker_sdk::ErrorCode;

use super::{KeyEntry, Keys, PICO, TokenReservation, now_ms, now_secs, to_pico};
use crate::accounting::store::Store;
use crate::error::ApiError;

/// How long a lease counts without renewal. A broker that stops without returning its leases
/// (killed) holds their remainder from the other brokers this long.
pub const LEASE_TTL_MS: i64 = 30_000;

/// A lease expired this long ago is deleted (a broker that comes back after it starts afresh).
const LEASE_FORGOTTEN_MS: i64 = 86_400_000;

/// A grant asks for this share of the key's budget (or the request's estimate, if larger).
const SLICE: f64 = 0.1;

/// A lease is renewed before it is this close to expiring.
const MARGIN_MS: i64 = 5_000;

/// One key's lease, as this broker holds it. Amounts are pico-USD in the database's terms:
/// `granted` is the lease row's `granted_usd`, `charged` its `settled_usd` at the first grant
/// plus every cost charged here since (recorded or not yet).
#[derive(Debug, Default)]
pub(super) struct LeaseState {
    granted: AtomicU64,
    charged: AtomicU64,
    expires_ms: AtomicI64,
    started: AtomicBool,
    /// Reservations made since the last upkeep (an idle lease is given back).
    used: AtomicBool,
    /// One grant at a time per key (requests waiting for it re-check the lease after).
    renew: tokio::sync::Mutex<()>,
    /// What this broker was granted of the key's current minute and has not used yet.
    window: std::sync::Mutex<MinuteLease>,
}

/// Requests and tokens of one minute this broker may still admit for a key.
#[derive(Debug, Default)]
struct MinuteLease {
    minute: u64,
    requests: u64,
    tokens: u64,
}

impl LeaseState {
    /// Adds a finished request's cost.
    pub(super) fn charge(&self, pico: u64) {
        self.charged.fetch_add(pico, Ordering::AcqRel);
    }

    /// Settles a finished request's tokens against what it reserved in its minute: tokens it
    /// did not use go back to this broker's slice, tokens beyond its estimate come off it.
    pub(super) fn settle_tokens(&self, reserved: TokenReservation, used: u64) {
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if w.minute == reserved.minute && reserved.tokens > 0 {
            w.tokens = (w.tokens + reserved.tokens).saturating_sub(used);
        }
    }

    /// Takes one request and `tokens` from this minute's slice, when both are there.
    fn take_window(&self, minute: u64, need: (u64, u64)) -> bool {
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if w.minute != minute {
            *w = MinuteLease {
                minute,
                ..MinuteLease::default()
            };
        }
        if w.requests < need.0 || w.tokens < need.1 {
            return false;
        }
        w.requests -= need.0;
        w.tokens -= need.1;
        true
    }

    fn add_window(&self, minute: u64, got: (u64, u64)) {
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if w.minute == minute {
            w.requests += got.0;
            w.tokens += got.1;
        }
    }
}

impl KeyEntry {
    /// [`KeyEntry::reserve`] for a store shared by several brokers: reserves `estimate_usd`
    /// from this broker's lease on the key's budget, asking the database for a larger lease
    /// when it does not fit. 402 when the budget has nothing left for it; 503 when the
    /// database cannot be reached to grant one.
    pub async fn reserve_leased(&self, store: &Store, estimate_usd: f64) -> Result<u64, ApiError> {
        let Some(budget) = self.settings.load().budget_usd else {
            return Ok(0);
        };
        let estimate = to_pico(estimate_usd).max(1);
        if self.take_from_lease(estimate) {
            return Ok(estimate);
        }
        let _one = self.lease.renew.lock().await;
        if self.take_from_lease(estimate) {
            return Ok(estimate);
        }
        let want = (budget * SLICE).max(estimate as f64 / PICO);
        let fresh = !self.lease.started.load(Ordering::Acquire);
        let granted = store
            .grant_lease(&self.id, want, fresh, now_ms(), LEASE_TTL_MS)
            .await
            .map_err(|e| {
                tracing::warn!(key = %self.id, error = %e, "cannot lease budget from the database");
                ApiError::new(
                    ErrorCode::Overloaded,
                    "The database that holds this API key's budget cannot be reached; requests of keys with a budget are refused until it answers.",
                )
                .retry_after(5)
            })?;
        let Some(lease) = granted else {
            // The database knows no budget for this key (removed on another broker): the next
            // configuration poll brings the change here.
            return Ok(0);
        };
        if lease.fresh {
            // Spending counts from what the database has settled for this lease.
            self.lease
                .charged
                .store(to_pico(lease.settled_usd), Ordering::Release);
            self.lease.started.store(true, Ordering::Release);
        }
        self.lease
            .granted
            .store(to_pico(lease.granted_usd), Ordering::Release);
        self.lease
            .expires_ms
            .store(lease.expires_ms, Ordering::Release);
        if self.take_from_lease(estimate) {
            return Ok(estimate);
        }
        Err(ApiError::new(
            ErrorCode::BudgetExceeded,
            format!(
                "This API key's budget of ${budget:.2} is spent or reserved by requests in flight on the brokers sharing it (this request may cost up to ${:.4}).",
                estimate as f64 / PICO
            ),
        ))
    }

    /// [`KeyEntry::admit`] for a store shared by several brokers: the same checks, with the
    /// key's `rpm` and `tpm` counted over every broker. Each broker takes slices of the key's
    /// current minute from the database (a tenth of each limit, or what this request needs) and
    /// admits from them in memory; a request that does not fit in what is left anywhere gets 429.
    pub async fn admit_leased(
        &self,
        store: &Store,
        model_names: &[&str],
        token_estimate: u64,
    ) -> Result<TokenReservation, ApiError> {
        let s = self.check_access(model_names)?;
        let (rpm, tpm) = (s.rpm, s.tpm);
        if rpm.is_none() && tpm.is_none() {
            return Ok(TokenReservation::default());
        }
        let now = now_secs();
        let minute = now / 60;
        let need = (u64::from(rpm.is_some()), tpm.map_or(0, |_| token_estimate));
        let reservation = TokenReservation {
            minute,
            tokens: need.1,
        };
        if self.lease.take_window(minute, need) {
            return Ok(reservation);
        }
        let _one = self.lease.renew.lock().await;
        if self.lease.take_window(minute, need) {
            return Ok(reservation);
        }
        let want = (
            rpm.map_or(0, |l| (l / 10).max(need.0)),
            tpm.map_or(0, |l| (l / 10).max(need.1)),
        );
        let got = store
            .grant_window(&self.id, i64::try_from(minute).unwrap_or(i64::MAX), want, (rpm, tpm))
            .await
            .map_err(|e| {
                tracing::warn!(key = %self.id, error = %e, "cannot take a minute slice from the database");
                ApiError::new(
                    ErrorCode::Overloaded,
                    "The database that counts this API key's per-minute limits cannot be reached; try again shortly.",
                )
                .retry_after(5)
            })?;
        self.lease.add_window(minute, got);
        if self.lease.take_window(minute, need) {
            return Ok(reservation);
        }
        let what = match (rpm, tpm) {
            (Some(r), _) if got.0 < need.0 => format!("{r} requests per minute"),
            (_, Some(t)) => format!("{t} tokens per minute"),
            (Some(r), None) => format!("{r} requests per minute"),
            (None, None) => "its per-minute limits".to_owned(),
        };
        Err(ApiError::new(
            ErrorCode::RateLimited,
            format!("This API key is limited to {what} (over every broker sharing it)."),
        )
        .retry_after(60 - now % 60))
    }

    /// Reserves `estimate` from the lease when all of it fits and the lease is not about to
    /// expire.
    fn take_from_lease(&self, estimate: u64) -> bool {
        if self.lease.expires_ms.load(Ordering::Acquire) - MARGIN_MS <= now_ms() {
            return false;
        }
        let lease = &self.lease;
        let took = self
            .reserved_pico
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |reserved| {
                let used = lease.charged.load(Ordering::Acquire);
                let granted = lease.granted.load(Ordering::Acquire);
                (used.saturating_add(reserved).saturating_add(estimate) <= granted)
                    .then(|| reserved.saturating_add(estimate))
            })
            .is_ok();
        if took {
            lease.used.store(true, Ordering::Relaxed);
        }
        took
    }
}

impl Keys {
    /// Forgets the shared per-minute counts of minutes that have ended, and leases that
    /// expired a day ago.
    pub async fn prune_shared(&self, store: &Store) {
        let minute = i64::try_from(now_secs() / 60).unwrap_or(i64::MAX);
        if let Err(e) = store.prune_windows(minute - 1).await {
            tracing::debug!(error = %e, "cannot prune the shared per-minute counts");
        }
        if let Err(e) = store.prune_leases(now_ms() - LEASE_FORGOTTEN_MS).await {
            tracing::debug!(error = %e, "cannot prune expired budget leases");
        }
    }

    /// Keeps this broker's leases (every `LEASE_TTL_MS / 3`): a lease used since the last
    /// upkeep is extended; an idle one gives back all it has not spent or reserved.
    pub async fn upkeep_leases(&self, store: &Store) {
        let entries: Vec<_> = self.by_hash.load().values().cloned().collect();
        for e in entries {
            let l = &e.lease;
            if !l.started.load(Ordering::Acquire) {
                continue;
            }
            let _one = l.renew.lock().await;
            let expires = now_ms() + LEASE_TTL_MS;
            let keep = if l.used.swap(false, Ordering::AcqRel) {
                l.granted.load(Ordering::Acquire)
            } else {
                l.charged
                    .load(Ordering::Acquire)
                    .saturating_add(e.reserved_pico.load(Ordering::Acquire))
            };
            match store.return_lease(&e.id, keep as f64 / PICO, expires).await {
                Ok(()) => {
                    l.granted.store(keep, Ordering::Release);
                    l.expires_ms.store(expires, Ordering::Release);
                }
                Err(err) => {
                    tracing::warn!(key = %e.id, error = %err, "cannot renew a budget lease")
                }
            }
        }
    }
}
