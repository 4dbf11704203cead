//! What several brokers on one database share beyond the tables themselves: a configuration
//! version every admin change bumps (each broker polls it and reloads), and budget leases (a
//! broker spends a slice of a key's budget it was granted under the key row's lock, so brokers
//! together never spend more than the budget without asking the database per request).

use super::backend::{Cols, Dialect, on_pool};
use super::{Store, StoreError, to_i64, to_u64};

/// A key's budget lease of this broker, as the database holds it after a grant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lease {
    /// Granted to this broker in all (USD).
    pub granted_usd: f64,
    /// Of this broker's spending, what the ledger has written (USD).
    pub settled_usd: f64,
    /// The lease no longer counts after this (Unix ms) unless renewed.
    pub expires_ms: i64,
    /// What this grant added.
    pub added_usd: f64,
    /// The lease started afresh (asked so, or this broker had no lease row: pruned, or never
    /// made): `settled_usd` is the base the broker counts its spending from.
    pub fresh: bool,
}

impl Store {
    /// Adds one to the configuration version (after any change to keys, priorities or mothers).
    pub(super) async fn bump_config(&self) -> Result<(), StoreError> {
        on_pool!(&self.pool, |p, Db| sqlx::query(
            "UPDATE config_version SET version = version + 1 WHERE id = 1"
        )
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The configuration version: it changes whenever a key, priority or mother does.
    pub async fn config_version(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(&self.pool, |p, Db| sqlx::query_scalar(
            "SELECT version FROM config_version WHERE id = 1"
        )
        .fetch_one(p)
        .await?))
    }

    /// Grants this broker up to `want_usd` more of key `key_id`'s budget: what is left once
    /// the key's recorded spend and every other broker's unexpired lease remainder are taken
    /// off, under the key row's lock. `fresh` (the first grant of a process) first forgets
    /// what an earlier process of this broker was granted and did not spend. The lease then
    /// lasts `ttl_ms` from `now_ms`. `None` when the key has no budget (or no longer exists).
    pub async fn grant_lease(
        &self,
        key_id: &str,
        want_usd: f64,
        fresh: bool,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let me = self.broker_id();
        on_pool!(&self.pool, |p, Db| {
            let mut tx = p.begin_with(<Db as Dialect>::BEGIN_WRITE).await?;
            let key_sql = format!(
                "SELECT budget_usd, spent_usd FROM api_keys WHERE id = $1{}",
                <Db as Dialect>::FOR_UPDATE
            );
            let Some(key) = sqlx::query(sqlx::AssertSqlSafe(key_sql))
                .bind(key_id)
                .fetch_optional(&mut *tx)
                .await?
            else {
                return Ok(None);
            };
            let (Some(budget), spent) = (key.opt_real("budget_usd")?, key.real("spent_usd")?)
            else {
                return Ok(None);
            };
            let leases = sqlx::query(
                "SELECT broker_id, granted_usd, settled_usd, expires_ms FROM key_leases WHERE key_id = $1",
            )
            .bind(key_id)
            .fetch_all(&mut *tx)
            .await?;
            let (mut granted, mut settled, mut others) = (0.0, 0.0, 0.0);
            let mut found = false;
            for l in &leases {
                let (g, s) = (l.real("granted_usd")?, l.real("settled_usd")?);
                if l.text("broker_id")? == me {
                    (granted, settled, found) = (g, s, true);
                } else if l.int("expires_ms")? > now_ms {
                    others += (g - s).max(0.0);
                }
            }
            let fresh = fresh || !found;
            if fresh {
                granted = settled;
            }
            let mine = (granted - settled).max(0.0);
            let left = (budget - spent - others - mine).max(0.0);
            let added = want_usd.max(0.0).min(left);
            granted += added;
            let expires_ms = now_ms.saturating_add(ttl_ms);
            sqlx::query(
                "INSERT INTO key_leases (key_id, broker_id, granted_usd, settled_usd, expires_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id, broker_id) DO UPDATE SET \
                 granted_usd = excluded.granted_usd, settled_usd = excluded.settled_usd, \
                 expires_ms = excluded.expires_ms",
            )
            .bind(key_id)
            .bind(me)
            .bind(granted)
            .bind(settled)
            .bind(expires_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(Lease {
                granted_usd: granted,
                settled_usd: settled,
                expires_ms,
                added_usd: added,
                fresh,
            }))
        })
    }

    /// Shrinks this broker's lease on `key_id` to `granted_usd` (never below what the ledger
    /// settled) and extends it to `expires_ms`: the broker gives back what it will not spend.
    pub async fn return_lease(
        &self,
        key_id: &str,
        granted_usd: f64,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        let me = self.broker_id();
        on_pool!(&self.pool, |p, Db| {
            let sql = format!(
                "UPDATE key_leases SET granted_usd = {}(settled_usd, $1), expires_ms = $2 \
                 WHERE key_id = $3 AND broker_id = $4",
                <Db as Dialect>::GREATEST
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(granted_usd)
                .bind(expires_ms)
                .bind(key_id)
                .bind(me)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Forgets leases that expired before `before_ms` (their brokers stopped long ago; their
    /// spending is in `spent_usd`).
    pub async fn prune_leases(&self, before_ms: i64) -> Result<(), StoreError> {
        on_pool!(&self.pool, |p, Db| sqlx::query(
            "DELETE FROM key_leases WHERE expires_ms < $1"
        )
        .bind(before_ms)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Every lease of this broker goes back (at shutdown, once the ledger is drained: all its
    /// spending is settled).
    pub async fn release_leases(&self) -> Result<(), StoreError> {
        let me = self.broker_id();
        on_pool!(&self.pool, |p, Db| sqlx::query(
            "UPDATE key_leases SET granted_usd = settled_usd, expires_ms = 0 WHERE broker_id = $1"
        )
        .bind(me)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}

impl Store {
    /// Grants this broker up to `want_requests` requests and `want_tokens` tokens of key
    /// `key_id`'s minute `minute` (since the epoch), never beyond `rpm` / `tpm` (`None`: no
    /// limit) counted over every broker. Returns what was granted.
    pub async fn grant_window(
        &self,
        key_id: &str,
        minute: i64,
        want: (u64, u64),
        limits: (Option<u64>, Option<u64>),
    ) -> Result<(u64, u64), StoreError> {
        on_pool!(&self.pool, |p, Db| {
            let mut tx = p.begin_with(<Db as Dialect>::BEGIN_WRITE).await?;
            sqlx::query(
                "INSERT INTO key_windows (key_id, minute, requests, tokens) VALUES ($1, $2, 0, 0) \
                 ON CONFLICT (key_id, minute) DO NOTHING",
            )
            .bind(key_id)
            .bind(minute)
            .execute(&mut *tx)
            .await?;
            let sql = format!(
                "SELECT requests, tokens FROM key_windows WHERE key_id = $1 AND minute = $2{}",
                <Db as Dialect>::FOR_UPDATE
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(key_id)
                .bind(minute)
                .fetch_one(&mut *tx)
                .await?;
            let used = (to_u64(row.int("requests")?), to_u64(row.int("tokens")?));
            let grant = |want: u64, used: u64, limit: Option<u64>| {
                limit.map_or(want, |l| want.min(l.saturating_sub(used)))
            };
            let got = (
                grant(want.0, used.0, limits.0),
                grant(want.1, used.1, limits.1),
            );
            sqlx::query(
                "UPDATE key_windows SET requests = requests + $1, tokens = tokens + $2 \
                 WHERE key_id = $3 AND minute = $4",
            )
            .bind(to_i64(got.0))
            .bind(to_i64(got.1))
            .bind(key_id)
            .bind(minute)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(got)
        })
    }

    /// Forgets the windows of minutes before `minute`.
    pub async fn prune_windows(&self, minute: i64) -> Result<(), StoreError> {
        on_pool!(&self.pool, |p, Db| sqlx::query(
            "DELETE FROM key_windows WHERE minute < $1"
        )
        .bind(minute)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
