//! Broker API keys: created with 256 random bits and the `sk-hab-` prefix, stored only as a
//! SHA-256 hash, shown once. Every key lives in memory too, so the request path checks keys,
//! limits and budgets without touching the database: lookups are an `ArcSwap` load, limits a
//! per-key lock, spend an atomic. Changes go to the store first, then to memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use hero_aibroker_sdk::ErrorCode;
use hero_aibroker_sdk::admin::{ApiKeyInfo, KeyCreate, KeyCreated, KeyUpdate};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::accounting::store::{KeyRow, Store, StoreError};
use crate::error::ApiError;

mod lease;
pub use lease::LEASE_TTL_MS;

/// Prefix of every broker key secret.
pub const PREFIX: &str = "sk-hab-";

/// What can go wrong managing keys (RPC side).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no API key with id {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Settings of a key that change only through the admin API.
#[derive(Debug, Clone)]
struct Settings {
    name: String,
    hint: String,
    allowed_models: Option<Vec<String>>,
    rpm: Option<u64>,
    tpm: Option<u64>,
    max_concurrent: Option<u64>,
    budget_usd: Option<f64>,
    created_ms: i64,
}

impl Settings {
    fn of(row: &KeyRow) -> Self {
        Settings {
            name: row.name.clone(),
            hint: row.hint.clone(),
            allowed_models: row.allowed_models.clone(),
            rpm: row.rpm,
            tpm: row.tpm,
            max_concurrent: row.max_concurrent,
            budget_usd: row.budget_usd,
            created_ms: row.created_ms,
        }
    }
}

/// One-minute counters of a key.
#[derive(Debug, Default)]
struct Window {
    minute: u64,
    requests: u64,
    tokens: u64,
}

/// A key in memory.
#[derive(Debug)]
pub struct KeyEntry {
    pub id: String,
    hash: [u8; 32],
    settings: ArcSwap<Settings>,
    revoked: AtomicBool,
    /// Spend in pico-USD (1e-12), so tiny requests still add up exactly enough.
    spent_pico: AtomicU64,
    /// What requests in flight reserved against the budget at admission (pico-USD).
    reserved_pico: AtomicU64,
    window: std::sync::Mutex<Window>,
    /// Requests of this key in flight (held by [`KeySlot`]s).
    in_flight: Arc<AtomicU64>,
    /// This broker's budget lease when several brokers share the database.
    lease: lease::LeaseState,
}

/// Tokens a request reserved in its key's per-minute window at admission.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenReservation {
    minute: u64,
    tokens: u64,
}

/// A request counted against its key's `max_concurrent` until it is dropped.
#[derive(Debug)]
pub struct KeySlot(Arc<AtomicU64>);

impl Drop for KeySlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

const PICO: f64 = 1e12;

impl KeyEntry {
    fn from_row(row: &KeyRow) -> Self {
        KeyEntry {
            id: row.id.clone(),
            hash: row.hash,
            settings: ArcSwap::from_pointee(Settings::of(row)),
            revoked: AtomicBool::new(row.revoked),
            spent_pico: AtomicU64::new(to_pico(row.spent_usd)),
            reserved_pico: AtomicU64::new(0),
            window: std::sync::Mutex::new(Window::default()),
            in_flight: Arc::new(AtomicU64::new(0)),
            lease: lease::LeaseState::default(),
        }
    }

    /// Takes a stored row's settings, revocation and (`with_spend`) recorded spend: a change
    /// another broker made to the shared database.
    fn apply_row(&self, row: &KeyRow, with_spend: bool) {
        self.settings.store(Arc::new(Settings::of(row)));
        self.revoked.store(row.revoked, Ordering::Release);
        if with_spend {
            self.spent_pico
                .fetch_max(to_pico(row.spent_usd), Ordering::AcqRel);
        }
    }

    /// Counts a request against the key's `max_concurrent`, or refuses it (429) when the key
    /// already has that many in flight. The slot counts until it is dropped.
    pub fn enter(&self) -> Result<KeySlot, ApiError> {
        let prev = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let slot = KeySlot(self.in_flight.clone());
        match self.settings.load().max_concurrent {
            Some(max) if prev >= max => Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("This API key already has {max} requests in flight (max_concurrent)."),
            )
            .retry_after(1)),
            _ => Ok(slot),
        }
    }

    /// USD spent so far (committed and in flight to the ledger).
    pub fn spent_usd(&self) -> f64 {
        self.spent_pico.load(Ordering::Relaxed) as f64 / PICO
    }

    /// The public view (never the secret).
    pub fn info(&self) -> ApiKeyInfo {
        let s = self.settings.load();
        ApiKeyInfo {
            id: self.id.clone(),
            name: s.name.clone(),
            hint: s.hint.clone(),
            allowed_models: s.allowed_models.clone(),
            rpm: s.rpm,
            tpm: s.tpm,
            max_concurrent: s.max_concurrent,
            budget_usd: s.budget_usd,
            spent_usd: self.spent_usd(),
            revoked: self.revoked.load(Ordering::Relaxed),
            created_ms: s.created_ms,
        }
    }

    /// Whether the key has a budget.
    pub fn has_budget(&self) -> bool {
        self.settings.load().budget_usd.is_some()
    }

    /// Name of the key, for `/v1/key`.
    pub fn name(&self) -> String {
        self.settings.load().name.clone()
    }

    /// Whether the key may be served by `model` (by its name or one of its aliases), or by the
    /// model the client named as `requested` when that name is on the key's list. Keys without
    /// a list may use every model.
    pub fn allows(&self, model: &str, aliases: &[String], requested: Option<&str>) -> bool {
        let s = self.settings.load();
        let Some(allowed) = &s.allowed_models else {
            return true;
        };
        let listed = |name: &str| allowed.iter().any(|a| a == name);
        listed(model) || aliases.iter().any(|a| listed(a)) || requested.is_some_and(listed)
    }

    /// Reserves `estimate_usd` against the key's budget for a request about to be sent, or
    /// refuses it (402) while what is spent plus what requests in flight reserved reaches the
    /// budget — so concurrent requests cannot all pass on the same remaining cents. Returns
    /// the reservation (pico-USD) that [`KeyEntry::release`] gives back when the request ends;
    /// 0 for keys without a budget.
    pub fn reserve(&self, estimate_usd: f64) -> Result<u64, ApiError> {
        let Some(budget) = self.settings.load().budget_usd else {
            return Ok(0);
        };
        let budget_pico = to_pico(budget);
        let estimate = to_pico(estimate_usd).max(1);
        let taken =
            self.reserved_pico
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |reserved| {
                    let spent = self.spent_pico.load(Ordering::Acquire);
                    (spent.saturating_add(reserved) < budget_pico)
                        .then(|| reserved.saturating_add(estimate))
                });
        match taken {
            Ok(_) => Ok(estimate),
            Err(reserved) => Err(ApiError::new(
                ErrorCode::BudgetExceeded,
                format!(
                    "This API key's budget of ${budget:.2} is spent or reserved by its requests in flight (spent ${:.4}, reserved ${:.4}).",
                    self.spent_usd(),
                    reserved as f64 / PICO
                ),
            )),
        }
    }

    /// Gives back a reservation made by [`KeyEntry::reserve`] (the request's real cost is
    /// charged by [`KeyEntry::charge`]).
    pub fn release(&self, reservation: u64) {
        if reservation > 0 {
            let _ = self
                .reserved_pico
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                    Some(r.saturating_sub(reservation))
                });
        }
    }

    /// The checks of [`KeyEntry::admit`] before any limit: revoked, allowed model, budget
    /// already spent. Returns the key's settings.
    fn check_access(
        &self,
        model_names: &[&str],
    ) -> Result<arc_swap::Guard<Arc<Settings>>, ApiError> {
        if self.revoked.load(Ordering::Relaxed) {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "This API key has been revoked.",
            ));
        }
        let s = self.settings.load();
        if let Some(allowed) = &s.allowed_models
            && !model_names.iter().any(|m| allowed.iter().any(|a| a == m))
        {
            return Err(ApiError::new(
                ErrorCode::ModelNotAllowed,
                format!(
                    "This API key may not use the model \"{}\" (allowed: {}).",
                    crate::error::printable(model_names.first().copied().unwrap_or_default()),
                    allowed.join(", ")
                ),
            ));
        }
        if let Some(budget) = s.budget_usd
            && self.spent_usd() >= budget
        {
            return Err(ApiError::new(
                ErrorCode::BudgetExceeded,
                format!(
                    "This API key has spent its budget of ${budget:.2} (spent ${:.4}).",
                    self.spent_usd()
                ),
            ));
        }
        Ok(s)
    }

    /// Checks a request against the key before any upstream call: allowed model, budget,
    /// requests and tokens per minute. Counts the request when it passes, and with a `tpm`
    /// limit reserves `token_estimate` tokens in the current minute (refused while the tokens
    /// used plus those reserved reach the limit, so concurrent requests cannot all pass on
    /// the same remaining tokens). [`KeyEntry::charge`] settles the reservation it returns.
    pub fn admit(
        &self,
        model_names: &[&str],
        token_estimate: u64,
    ) -> Result<TokenReservation, ApiError> {
        let s = self.check_access(model_names)?;
        if s.rpm.is_none() && s.tpm.is_none() {
            return Ok(TokenReservation::default());
        }
        let now = now_secs();
        let minute = now / 60;
        let retry = 60 - now % 60;
        let mut w = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.minute != minute {
            *w = Window {
                minute,
                ..Window::default()
            };
        }
        if let Some(rpm) = s.rpm
            && w.requests >= rpm
        {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("This API key is limited to {rpm} requests per minute."),
            )
            .retry_after(retry));
        }
        if let Some(tpm) = s.tpm
            && w.tokens >= tpm
        {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("This API key is limited to {tpm} tokens per minute."),
            )
            .retry_after(retry));
        }
        w.requests += 1;
        if s.tpm.is_none() {
            return Ok(TokenReservation::default());
        }
        w.tokens = w.tokens.saturating_add(token_estimate);
        Ok(TokenReservation {
            minute,
            tokens: token_estimate,
        })
    }

    /// Accounts a finished request: tokens for the per-minute limit (replacing what it
    /// reserved, while the minute lasts), cost for the budget.
    pub fn charge(&self, tokens: u64, cost_usd: f64, reserved: TokenReservation) {
        self.lease.settle_tokens(reserved, tokens);
        if cost_usd > 0.0 {
            // Saturating: an absurd upstream usage must not wrap the spend back to zero.
            let add = to_pico(cost_usd);
            self.lease.charge(add);
            let _ = self
                .spent_pico
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                    Some(s.saturating_add(add))
                });
        }
        if (tokens > 0 || reserved.tokens > 0) && self.settings.load().tpm.is_some() {
            let minute = now_secs() / 60;
            let mut w = self
                .window
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if w.minute == minute {
                if reserved.minute == minute {
                    w.tokens = w.tokens.saturating_sub(reserved.tokens);
                }
                w.tokens = w.tokens.saturating_add(tokens);
            } else {
                *w = Window {
                    minute,
                    requests: 0,
                    tokens,
                };
            }
        }
    }
}

fn to_pico(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * PICO).round() as u64
    } else {
        0
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// SHA-256 of a secret.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// All keys, in memory, backed by the store.
#[derive(Debug)]
pub struct Keys {
    by_hash: ArcSwap<HashMap<[u8; 32], Arc<KeyEntry>>>,
    /// Admin changes are serialized (rare); the request path never takes this.
    admin: tokio::sync::Mutex<()>,
    require: bool,
}

impl Keys {
    /// Loads every key from the store. `require`: `REQUIRE_API_KEY=true`.
    pub async fn load(store: &Store, require: bool) -> Result<Self, StoreError> {
        let map = store
            .keys()
            .await?
            .iter()
            .map(|r| (r.hash, Arc::new(KeyEntry::from_row(r))))
            .collect();
        Ok(Keys {
            by_hash: ArcSwap::from_pointee(map),
            admin: tokio::sync::Mutex::new(()),
            require,
        })
    }

    /// Keys with no store behind them (tests of the request path).
    pub fn empty(require: bool) -> Self {
        Keys {
            by_hash: ArcSwap::from_pointee(HashMap::new()),
            admin: tokio::sync::Mutex::new(()),
            require,
        }
    }

    /// True when REST requests must carry a key: required by setting, or any key exists.
    pub fn required(&self) -> bool {
        self.require || !self.by_hash.load().is_empty()
    }

    /// Number of keys (revoked included).
    pub fn count(&self) -> usize {
        self.by_hash.load().len()
    }

    /// The key a request presents (`Authorization: Bearer <key>`, or `x-api-key: <key>` as
    /// Anthropic's clients send it), or the 401 to answer.
    pub fn authenticate(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<Option<Arc<KeyEntry>>, ApiError> {
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let presented = header(axum::http::header::AUTHORIZATION)
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .or_else(|| header(axum::http::HeaderName::from_static("x-api-key")))
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let Some(secret) = presented else {
            if self.required() {
                return Err(ApiError::new(
                    ErrorCode::Unauthorized,
                    "This broker requires an API key: send Authorization: Bearer sk-hab-… (or x-api-key: sk-hab-…)",
                ));
            }
            return Ok(None);
        };
        let h = hash(secret);
        let map = self.by_hash.load();
        // The map is keyed by the hash; the constant-time compare keeps the final check
        // independent of how many bytes match.
        match map.get(&h).filter(|e| bool::from(e.hash.ct_eq(&h))) {
            Some(e) if e.revoked.load(Ordering::Relaxed) => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "This API key has been revoked.",
            )),
            Some(e) => Ok(Some(e.clone())),
            None if self.required() || secret.starts_with(PREFIX) => {
                Err(ApiError::new(ErrorCode::Unauthorized, "Invalid API key."))
            }
            // Keys are not in use: a client's placeholder key (SDKs insist on one) is ignored.
            None => Ok(None),
        }
    }

    /// A key by id.
    pub fn get(&self, id: &str) -> Option<Arc<KeyEntry>> {
        self.by_hash.load().values().find(|e| e.id == id).cloned()
    }

    /// Every key, oldest first.
    pub fn list(&self) -> Vec<ApiKeyInfo> {
        let mut v: Vec<ApiKeyInfo> = self.by_hash.load().values().map(|e| e.info()).collect();
        v.sort_by(|a, b| {
            a.created_ms
                .cmp(&b.created_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        v
    }

    /// Creates a key; the secret is returned here and never again.
    pub async fn create(&self, store: &Store, p: KeyCreate) -> Result<KeyCreated, KeyError> {
        validate(&p.name, p.budget_usd, p.allowed_models.as_deref())?;
        let _g = self.admin.lock().await;
        let secret = format!("{PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
        let id = format!("key_{}", hex::encode(rand::random::<[u8; 8]>()));
        let row = KeyRow {
            id,
            name: p.name.trim().to_owned(),
            hash: hash(&secret),
            hint: format!("{PREFIX}…{}", &secret[secret.len() - 4..]),
            allowed_models: p.allowed_models,
            rpm: p.rpm,
            tpm: p.tpm,
            max_concurrent: p.max_concurrent,
            budget_usd: p.budget_usd,
            spent_usd: 0.0,
            revoked: false,
            created_ms: now_ms(),
        };
        store.insert_key(&row).await?;
        let entry = Arc::new(KeyEntry::from_row(&row));
        let mut map = HashMap::clone(&self.by_hash.load());
        map.insert(row.hash, entry.clone());
        self.by_hash.store(Arc::new(map));
        Ok(KeyCreated {
            key: entry.info(),
            secret,
        })
    }

    /// Applies an update (store first, then memory).
    pub async fn update(
        &self,
        store: &Store,
        id: &str,
        u: KeyUpdate,
    ) -> Result<ApiKeyInfo, KeyError> {
        let _g = self.admin.lock().await;
        let entry = self
            .get(id)
            .ok_or_else(|| KeyError::NotFound(id.to_owned()))?;
        let mut s = Settings::clone(&entry.settings.load());
        if let Some(n) = u.name {
            s.name = n.trim().to_owned();
        }
        if u.allowed_models.is_some() {
            s.allowed_models = u.allowed_models;
        }
        if u.rpm.is_some() {
            s.rpm = u.rpm;
        }
        if u.tpm.is_some() {
            s.tpm = u.tpm;
        }
        if u.max_concurrent.is_some() {
            s.max_concurrent = u.max_concurrent;
        }
        if u.budget_usd.is_some() {
            s.budget_usd = u.budget_usd;
        }
        for field in &u.clear {
            match field.as_str() {
                "allowed_models" => s.allowed_models = None,
                "rpm" => s.rpm = None,
                "tpm" => s.tpm = None,
                "max_concurrent" => s.max_concurrent = None,
                "budget_usd" => s.budget_usd = None,
                other => {
                    return Err(KeyError::Invalid(format!(
                        "cannot clear {other:?}: only allowed_models, rpm, tpm, max_concurrent, budget_usd"
                    )));
                }
            }
        }
        validate(&s.name, s.budget_usd, s.allowed_models.as_deref())?;
        let revoked = entry.revoked.load(Ordering::Relaxed);
        store.update_key(&row_of(&entry, &s, revoked)).await?;
        entry.settings.store(Arc::new(s));
        Ok(entry.info())
    }

    /// Revokes a key: effective for the next request.
    pub async fn revoke(&self, store: &Store, id: &str) -> Result<ApiKeyInfo, KeyError> {
        let _g = self.admin.lock().await;
        let entry = self
            .get(id)
            .ok_or_else(|| KeyError::NotFound(id.to_owned()))?;
        store
            .update_key(&row_of(&entry, &entry.settings.load(), true))
            .await?;
        entry.revoked.store(true, Ordering::Relaxed);
        Ok(entry.info())
    }

    /// Takes the keys as the store has them now (another broker of a shared database created,
    /// changed or revoked some): known keys change in place (requests in flight keep their
    /// entry), new ones are added. `with_spend`: the recorded spend of every broker counts.
    pub async fn reload(&self, store: &Store, with_spend: bool) -> Result<(), StoreError> {
        let _g = self.admin.lock().await;
        let rows = store.keys().await?;
        let current = self.by_hash.load();
        let mut map = HashMap::clone(&current);
        for row in &rows {
            match current.get(&row.hash) {
                Some(e) => e.apply_row(row, with_spend),
                None => {
                    map.insert(row.hash, Arc::new(KeyEntry::from_row(row)));
                }
            }
        }
        if map.len() != current.len() {
            self.by_hash.store(Arc::new(map));
        }
        Ok(())
    }
}

fn row_of(e: &KeyEntry, s: &Settings, revoked: bool) -> KeyRow {
    KeyRow {
        id: e.id.clone(),
        name: s.name.clone(),
        hash: e.hash,
        hint: s.hint.clone(),
        allowed_models: s.allowed_models.clone(),
        rpm: s.rpm,
        tpm: s.tpm,
        max_concurrent: s.max_concurrent,
        budget_usd: s.budget_usd,
        spent_usd: e.spent_usd(),
        revoked,
        created_ms: s.created_ms,
    }
}

fn validate(name: &str, budget: Option<f64>, allowed: Option<&[String]>) -> Result<(), KeyError> {
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(KeyError::Invalid(
            "name must be 1–200 printable characters".into(),
        ));
    }
    if let Some(b) = budget
        && (!b.is_finite() || b < 0.0)
    {
        return Err(KeyError::Invalid(format!(
            "budget_usd {b} must be a number >= 0"
        )));
    }
    if allowed.is_some_and(<[String]>::is_empty) {
        return Err(KeyError::Invalid(
            "allowed_models must name at least one model (clear it to allow all)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        rpm: Option<u64>,
        tpm: Option<u64>,
        budget: Option<f64>,
        allowed: Option<Vec<String>>,
    ) -> KeyEntry {
        KeyEntry::from_row(&KeyRow {
            id: "key_1".into(),
            name: "t".into(),
            hash: hash("sk-hab-x"),
            hint: "sk-hab-…x".into(),
            allowed_models: allowed,
            rpm,
            tpm,
            max_concurrent: None,
            budget_usd: budget,
            spent_usd: 0.0,
            revoked: false,
            created_ms: 0,
        })
    }

    #[test]
    fn max_concurrent_counts_requests_until_their_slot_drops() {
        let e = entry(None, None, None, None);
        e.settings.store(Arc::new(Settings {
            max_concurrent: Some(2),
            ..Settings::clone(&e.settings.load())
        }));
        let a = e.enter().expect("first");
        let _b = e.enter().expect("second");
        let err = e.enter().expect_err("third");
        assert_eq!(err.code, ErrorCode::RateLimited);
        drop(a);
        e.enter().expect("a slot came back");
    }

    #[test]
    fn rpm_limit_answers_429_with_retry_after() {
        let e = entry(Some(2), None, None, None);
        assert!(e.admit(&["m"], 0).is_ok());
        assert!(e.admit(&["m"], 0).is_ok());
        let err = e.admit(&["m"], 0).expect_err("third request in the minute");
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert!(err.retry_after.is_some_and(|s| (1..=60).contains(&s)));
    }

    #[test]
    fn tpm_and_budget_apply_after_charging() {
        let e = entry(None, Some(100), Some(0.01), None);
        let r = e.admit(&["m"], 0).expect("admitted");
        e.charge(150, 0.004, r);
        assert_eq!(
            e.admit(&["m"], 0).expect_err("tpm").code,
            ErrorCode::RateLimited
        );
        let e = entry(None, None, Some(0.01), None);
        e.charge(10, 0.006, TokenReservation::default());
        assert!(e.admit(&["m"], 0).is_ok());
        e.charge(10, 0.006, TokenReservation::default());
        let err = e.admit(&["m"], 0).expect_err("budget");
        assert_eq!(err.code, ErrorCode::BudgetExceeded);
        assert!((e.spent_usd() - 0.012).abs() < 1e-12);
    }

    #[test]
    fn tpm_reservations_hold_concurrent_requests_and_settle_to_the_real_count() {
        // A minute boundary between the calls resets the window: allow one retry.
        for _ in 0..2 {
            let e = entry(None, Some(100), None, None);
            let first = e.admit(&["m"], 80).expect("first reserves 80");
            let second = e.admit(&["m"], 80).expect("80 < 100: admitted");
            let third = e.admit(&["m"], 80);
            e.charge(10, 0.0, first);
            e.charge(10, 0.0, second);
            // Settled: 20 tokens used, so the next request passes again.
            let after = e.admit(&["m"], 80);
            if third.is_err() && after.is_ok() {
                assert_eq!(third.expect_err("third").code, ErrorCode::RateLimited);
                return;
            }
        }
        panic!("the tokens-per-minute reservation did not hold");
    }

    #[test]
    fn allowed_models_match_any_name() {
        let e = entry(None, None, None, Some(vec!["chat".into()]));
        assert!(e.admit(&["chat-alias", "chat"], 0).is_ok());
        assert_eq!(
            e.admit(&["other"], 0).expect_err("not allowed").code,
            ErrorCode::ModelNotAllowed
        );
    }

    fn with(name: &'static str, value: &'static str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert(name, axum::http::HeaderValue::from_static(value));
        h
    }

    #[test]
    fn authentication_rules() {
        let none = axum::http::HeaderMap::new();
        let keys = Keys::empty(false);
        assert!(keys.authenticate(&none).expect("open").is_none());
        assert!(
            keys.authenticate(&with("authorization", "Bearer sk-placeholder"))
                .expect("ignored")
                .is_none()
        );
        assert!(
            keys.authenticate(&with("authorization", "Bearer sk-hab-unknown"))
                .is_err(),
            "our prefix must be valid"
        );
        assert!(
            keys.authenticate(&with("x-api-key", "sk-hab-unknown"))
                .is_err(),
            "x-api-key is read too"
        );
        let keys = Keys::empty(true);
        assert_eq!(
            keys.authenticate(&none).expect_err("required").code,
            ErrorCode::Unauthorized
        );
        assert_eq!(
            keys.authenticate(&with("authorization", "Bearer nope"))
                .expect_err("unknown")
                .code,
            ErrorCode::Unauthorized
        );
    }
}
