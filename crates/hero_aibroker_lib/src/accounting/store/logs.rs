//! The `request_logs` table: the ledger's batch insert (idempotent, charging key spend in the
//! same transaction) and the queries behind `usage.logs` and `usage.summary`.

use std::collections::{BTreeMap, HashMap, HashSet};

use hero_aibroker_sdk::admin::{
    AttemptLog, GroupBy, LogPage, LogQuery, RequestLog, SeriesQuery, UsageBucket, UsageGroup,
    UsageQuery,
};
use sqlx::{Database, Encode, QueryBuilder, Type};

use super::backend::{Cols, Dialect, on_pool};
use super::{Store, StoreError, decode_err, to_i64, to_u64};

/// Rows per `INSERT` statement. One full default batch (256) is one statement, so the
/// statement is prepared once and reused from the connection's cache; 256 rows × 28 columns
/// stays far below SQLite's (32 766) and PostgreSQL's (65 535) bind-parameter limits.
const ROWS_PER_STATEMENT: usize = 256;

/// Default and maximum page size of [`Store::logs`].
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

/// Every column (in [`RequestLog`] order, but for `list_cost_usd`, added by migration 7, and
/// `audio_seconds`, `characters`, by migration 8).
const COLUMNS: &str = "id, response_id, started_ms, ended_ms, client, key_id, endpoint, requested_model, model, \
     provider, upstream_model, stream, attempts, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, \
     cost_usd, upstream_cost_usd, latency_ms, ttfb_ms, status, http_status, error, trace, list_cost_usd, audio_seconds, characters";

impl Store {
    /// Inserts a batch of ledger rows in one transaction (`BEGIN IMMEDIATE`, so the write lock
    /// is taken up front instead of failing at the first write). Rows whose id is already
    /// stored are skipped (`ON CONFLICT (id) DO NOTHING`), so a retried batch never
    /// double-counts; each row actually inserted with a key and a positive cost adds its cost
    /// to that key's `spent_usd` in the same transaction. Returns the number of rows inserted.
    pub async fn insert_logs(&self, rows: &[RequestLog]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let broker = self.broker_id();
        on_pool!(&self.pool, |p, Db| {
            let mut tx = p.begin_with(<Db as Dialect>::BEGIN_WRITE).await?;
            let mut inserted = 0u64;
            // Ordered so that concurrent writers (PostgreSQL, several brokers) lock keys in the
            // same order and cannot deadlock each other.
            let mut spend: BTreeMap<&str, f64> = BTreeMap::new();
            // Ids met so far: of duplicate ids inside a batch only the first is stored, and
            // charged.
            let mut seen: HashSet<&str> = HashSet::with_capacity(rows.len());
            // The hourly rollups of the rows actually added (see [`super::rollup`]).
            let mut rollup = super::rollup::Increments::default();
            for chunk in pow2_chunks(rows) {
                // Which rows are already stored (a retried batch)? They add neither spend nor
                // usage. Asked before the insert, inside the same write transaction, so the
                // answer cannot change underneath. This costs one round trip; `INSERT …
                // RETURNING id` streams every new id back from SQLite's worker thread one
                // message at a time, which cost a quarter of the throughput in
                // `examples/ledger_bench.rs`.
                let mut q = QueryBuilder::<Db>::new("SELECT id FROM request_logs WHERE id IN (");
                let mut ids = q.separated(", ");
                for r in chunk {
                    ids.push_bind(r.id.clone());
                }
                q.push(")");
                let stored: HashSet<String> = q
                    .build_query_scalar::<String>()
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect();
                inserted += insert_statement::<Db>(chunk)
                    .build()
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                for r in chunk {
                    if !seen.insert(r.id.as_str()) || stored.contains(&r.id) {
                        continue;
                    }
                    rollup.add(r);
                    if let Some((key, usd)) = charge(r) {
                        *spend.entry(key).or_default() += usd;
                    }
                }
            }
            rollup.write::<Db>(&mut tx).await?;
            for (key, usd) in spend {
                sqlx::query("UPDATE api_keys SET spent_usd = spent_usd + $1 WHERE id = $2")
                    .bind(usd)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                // What this broker spent is now in spent_usd: its lease counts it as settled.
                sqlx::query(
                    "UPDATE key_leases SET settled_usd = settled_usd + $1 \
                     WHERE key_id = $2 AND broker_id = $3",
                )
                .bind(usd)
                .bind(key)
                .bind(broker)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(inserted)
        })
    }

    /// One ledger row, by the broker's request id or by the upstream's response id.
    pub async fn log(&self, id: &str) -> Result<Option<RequestLog>, StoreError> {
        // The broker id wins when both match (two queries keep each on its own index).
        let by_id = format!("SELECT {COLUMNS} FROM request_logs WHERE id = $1");
        let found = on_pool!(&self.pool, |p, Db| sqlx::query(sqlx::AssertSqlSafe(by_id))
            .bind(id)
            .fetch_optional(p)
            .await?
            .map(|r| request_log(&r))
            .transpose()?);
        if found.is_some() {
            return Ok(found);
        }
        let by_response = format!(
            "SELECT {COLUMNS} FROM request_logs WHERE response_id = $1 ORDER BY started_ms DESC, id LIMIT 1"
        );
        on_pool!(&self.pool, |p, Db| sqlx::query(sqlx::AssertSqlSafe(
            by_response
        ))
        .bind(id)
        .fetch_optional(p)
        .await?
        .map(|r| request_log(&r))
        .transpose())
    }

    /// A page of ledger rows, newest first (`started_ms` descending, then id). Filters are
    /// AND-ed; `model` matches the requested or the serving model; `from_ms` is inclusive,
    /// `to_ms` exclusive. `limit` defaults to 50 and is capped at 1000.
    pub async fn logs(&self, q: &LogQuery) -> Result<LogPage, StoreError> {
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let offset = q.offset.unwrap_or(0);
        let fetched = on_pool!(&self.pool, |p, Db| {
            let mut qb =
                QueryBuilder::<Db>::new(format!("SELECT {COLUMNS} FROM request_logs WHERE 1 = 1"));
            if let Some(m) = &q.model {
                qb.push(" AND (requested_model = ")
                    .push_bind(m.clone())
                    .push(" OR model = ")
                    .push_bind(m.clone())
                    .push(")");
            }
            let status = q.status.map(|s| s.as_str().to_owned());
            for (column, value) in [
                ("provider", &q.provider),
                ("key_id", &q.key_id),
                ("client", &q.client),
                ("status", &status),
            ] {
                if let Some(v) = value {
                    qb.push(format_args!(" AND {column} = "))
                        .push_bind(v.clone());
                }
            }
            time_window(&mut qb, q.from_ms, q.to_ms);
            // One row more than asked tells whether another page exists.
            qb.push(" ORDER BY started_ms DESC, id LIMIT ")
                .push_bind(i64::from(limit) + 1)
                .push(" OFFSET ")
                .push_bind(to_i64(offset));
            qb.build()
                .fetch_all(p)
                .await?
                .iter()
                .map(request_log)
                .collect::<Result<Vec<_>, _>>()?
        });
        let more = fetched.len() > limit as usize;
        let rows: Vec<RequestLog> = fetched.into_iter().take(limit as usize).collect();
        let next_offset = more.then(|| offset.saturating_add(u64::from(limit)));
        Ok(LogPage { rows, next_offset })
    }

    /// Usage totals grouped by requested model, provider instance, key or client, over an
    /// optional time window (`from_ms` inclusive, `to_ms` exclusive). An error is a row whose
    /// status is not `ok`. Sorted by cost, highest first, then by group.
    pub async fn usage(&self, q: &UsageQuery) -> Result<Vec<UsageGroup>, StoreError> {
        if q.key_id.is_none() {
            return self.usage_rolled(q).await;
        }
        self.usage_rows(q).await
    }

    /// [`Store::usage`] from the ledger rows themselves (a key's usage: its rows through the
    /// key index).
    async fn usage_rows(&self, q: &UsageQuery) -> Result<Vec<UsageGroup>, StoreError> {
        // A fixed expression per variant: nothing from the caller reaches the SQL text.
        let group = match q.group_by {
            GroupBy::Model => "requested_model",
            GroupBy::Provider => "COALESCE(provider, '')",
            GroupBy::Key => "COALESCE(key_id, '')",
            GroupBy::Client => "client",
        };
        // CASTs: PostgreSQL's SUM(BIGINT) is NUMERIC; the 0.0 keeps REAL sums REAL in SQLite.
        on_pool!(&self.pool, |p, Db| {
            let mut qb = QueryBuilder::<Db>::new(format!(
                "SELECT {group} AS grp, COUNT(*) AS requests, \
             CAST(SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
             CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, \
             CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens, \
             COALESCE(SUM(cost_usd), 0.0) AS cost_usd, COALESCE(SUM(upstream_cost_usd), 0.0) AS upstream_cost_usd, \
             CAST(COALESCE(AVG(latency_ms), 0.0) AS DOUBLE PRECISION) AS avg_latency_ms, \
             MIN(started_ms) AS first_ms, MAX(started_ms) AS last_ms \
             FROM request_logs WHERE 1 = 1"
            ));
            time_window(&mut qb, q.from_ms, q.to_ms);
            if let Some(key) = &q.key_id {
                qb.push(" AND key_id = ").push_bind(key.clone());
            }
            qb.push(format_args!(
                " GROUP BY {group} ORDER BY cost_usd DESC, grp"
            ));
            qb.build()
                .fetch_all(p)
                .await?
                .iter()
                .map(super::rollup::usage_group)
                .collect()
        })
    }

    /// Usage in buckets of `q.bucket_ms` aligned to the viewer's clock; empty buckets are left
    /// out. One indexed range scan and a GROUP BY: the store aggregates, nothing is loaded row
    /// by row. The caller checks the bucket size and count.
    pub async fn usage_series(&self, q: &SeriesQuery) -> Result<Vec<UsageBucket>, StoreError> {
        if let Some(rolled) = self.series_rolled(q).await? {
            return Ok(rolled);
        }
        let offset = i64::from(q.tz_offset_minutes) * 60_000;
        let to = q.to_ms.unwrap_or(i64::MAX);
        on_pool!(&self.pool, |p, Db| {
            let mut qb = QueryBuilder::<Db>::new("SELECT ");
            super::rollup::push_bucket(&mut qb, "started_ms", offset, q.bucket_ms);
            qb.push(
                " AS bucket, COUNT(*) AS requests, \
                 CAST(SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
                 CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, \
                 CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens, \
                 COALESCE(SUM(cost_usd), 0.0) AS cost_usd, \
                 CAST(COALESCE(AVG(latency_ms), 0.0) AS DOUBLE PRECISION) AS avg_latency_ms \
                 FROM request_logs WHERE started_ms >= ",
            )
            .push_bind(q.from_ms)
            .push(" AND started_ms < ")
            .push_bind(to);
            if let Some(key) = &q.key_id {
                qb.push(" AND key_id = ").push_bind(key.clone());
            }
            qb.push(" GROUP BY bucket ORDER BY bucket");
            qb.build()
                .fetch_all(p)
                .await?
                .iter()
                .map(super::rollup::usage_bucket)
                .collect()
        })
    }

    /// Adds `usd` to each key's persisted spend, in one transaction (the spend of ledger rows
    /// that were dropped: it must outlive a restart even though the rows did not).
    pub async fn add_spend(&self, spend: &HashMap<String, f64>) -> Result<(), StoreError> {
        on_pool!(&self.pool, |p, Db| {
            let mut tx = p.begin().await?;
            for (key, usd) in spend {
                sqlx::query("UPDATE api_keys SET spent_usd = spent_usd + $1 WHERE id = $2")
                    .bind(finite(*usd))
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Deletes ledger rows that started before `before_ms`, at most `batch` of them (so a
    /// large backlog is pruned in small steps that never hold the write lock for long).
    /// Returns how many went.
    pub async fn prune_logs(&self, before_ms: i64, batch: u32) -> Result<u64, StoreError> {
        Ok(on_pool!(&self.pool, |p, Db| sqlx::query(
            "DELETE FROM request_logs WHERE id IN \
             (SELECT id FROM request_logs WHERE started_ms < $1 LIMIT $2)",
        )
        .bind(before_ms)
        .bind(i64::from(batch))
        .execute(p)
        .await?
        .rows_affected()))
    }

    /// Number of ledger rows.
    pub async fn count_logs(&self) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(&self.pool, |p, Db| sqlx::query_scalar(
            "SELECT COUNT(*) FROM request_logs"
        )
        .fetch_one(p)
        .await?);
        Ok(to_u64(n))
    }

    /// Mother brokers registered.
    pub async fn count_mothers(&self) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(&self.pool, |p, Db| sqlx::query_scalar(
            "SELECT COUNT(*) FROM mothers"
        )
        .fetch_one(p)
        .await?);
        Ok(to_u64(n))
    }
}

/// The key to charge for a row and how much, if the row costs anything.
fn charge(r: &RequestLog) -> Option<(&str, f64)> {
    let usd = finite(r.cost_usd);
    r.key_id.as_deref().filter(|_| usd > 0.0).map(|k| (k, usd))
}

/// Non-finite numbers become 0: SQLite stores NaN as NULL, which a NOT NULL column rejects,
/// and one such row would block its whole batch forever.
fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

fn finite_opt(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// `INSERT INTO request_logs (...) VALUES (...), (...) ON CONFLICT (id) DO NOTHING`.
/// Splits `rows` into chunks whose sizes are powers of two (at most `ROWS_PER_STATEMENT`).
/// sqlx caches a prepared statement per distinct SQL text, and a multi-row statement's text
/// depends on its row count: with arbitrary batch sizes the cache filled with up to 256 large
/// statements per connection (tens of MiB); with powers of two there are at most 9 shapes.
fn pow2_chunks(rows: &[RequestLog]) -> impl Iterator<Item = &[RequestLog]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = rest.len().min(ROWS_PER_STATEMENT);
        let n = 1usize << (usize::BITS - 1 - len.leading_zeros());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

fn insert_statement<DB: Database>(chunk: &[RequestLog]) -> QueryBuilder<DB>
where
    String: for<'t> Encode<'t, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + Type<DB>,
    f64: for<'t> Encode<'t, DB> + Type<DB>,
    bool: for<'t> Encode<'t, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + Type<DB>,
    Option<f64>: for<'t> Encode<'t, DB> + Type<DB>,
    Option<i64>: for<'t> Encode<'t, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::<DB>::new(format!("INSERT INTO request_logs ({COLUMNS}) "));
    qb.push_values(chunk, |mut b, r| {
        // Attempts of our own serde type cannot fail to serialize; "[]" keeps the row if it did.
        let attempts = serde_json::to_string(&r.attempts).unwrap_or_else(|_| "[]".to_owned());
        let trace = r.trace.as_ref().and_then(|t| serde_json::to_string(t).ok());
        b.push_bind(r.id.clone())
            .push_bind(r.response_id.clone())
            .push_bind(r.started_ms)
            .push_bind(r.ended_ms)
            .push_bind(r.client.clone())
            .push_bind(r.key_id.clone())
            .push_bind(r.endpoint.clone())
            .push_bind(r.requested_model.clone())
            .push_bind(r.model.clone())
            .push_bind(r.provider.clone())
            .push_bind(r.upstream_model.clone())
            .push_bind(r.stream)
            .push_bind(attempts)
            .push_bind(to_i64(r.prompt_tokens))
            .push_bind(to_i64(r.completion_tokens))
            .push_bind(to_i64(r.cached_tokens))
            .push_bind(to_i64(r.reasoning_tokens))
            .push_bind(finite(r.cost_usd))
            .push_bind(finite_opt(r.upstream_cost_usd))
            .push_bind(finite(r.latency_ms))
            .push_bind(finite_opt(r.ttfb_ms))
            .push_bind(r.status.as_str().to_owned())
            .push_bind(i64::from(r.http_status))
            .push_bind(r.error.clone())
            .push_bind(trace)
            .push_bind(finite_opt(r.list_cost_usd))
            .push_bind(finite_opt(r.audio_seconds))
            .push_bind(r.characters.map(to_i64));
    });
    qb.push(" ON CONFLICT (id) DO NOTHING");
    qb
}

/// `started_ms` in `[from, to)`.
fn time_window<DB: Database>(qb: &mut QueryBuilder<DB>, from_ms: Option<i64>, to_ms: Option<i64>)
where
    i64: for<'t> Encode<'t, DB> + Type<DB>,
{
    if let Some(from) = from_ms {
        qb.push(" AND started_ms >= ").push_bind(from);
    }
    if let Some(to) = to_ms {
        qb.push(" AND started_ms < ").push_bind(to);
    }
}

fn request_log(r: &impl Cols) -> Result<RequestLog, StoreError> {
    let attempts: Vec<AttemptLog> = serde_json::from_str(&r.text("attempts")?)
        .map_err(|e| decode_err("request_logs.attempts", e))?;
    Ok(RequestLog {
        id: r.text("id")?,
        response_id: r.opt_text("response_id")?,
        started_ms: r.int("started_ms")?,
        ended_ms: r.int("ended_ms")?,
        client: r.text("client")?,
        key_id: r.opt_text("key_id")?,
        endpoint: r.text("endpoint")?,
        requested_model: r.text("requested_model")?,
        model: r.opt_text("model")?,
        provider: r.opt_text("provider")?,
        upstream_model: r.opt_text("upstream_model")?,
        stream: r.flag("stream")?,
        attempts,
        prompt_tokens: to_u64(r.int("prompt_tokens")?),
        completion_tokens: to_u64(r.int("completion_tokens")?),
        cached_tokens: to_u64(r.int("cached_tokens")?),
        reasoning_tokens: to_u64(r.int("reasoning_tokens")?),
        cost_usd: r.real("cost_usd")?,
        upstream_cost_usd: r.opt_real("upstream_cost_usd")?,
        list_cost_usd: r.opt_real("list_cost_usd")?,
        audio_seconds: r.opt_real("audio_seconds")?,
        characters: r.opt_int("characters")?.map(to_u64),
        latency_ms: r.real("latency_ms")?,
        ttfb_ms: r.opt_real("ttfb_ms")?,
        status: r
            .text("status")?
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        http_status: u16::try_from(r.int("http_status")?).unwrap_or(0),
        error: r.opt_text("error")?,
        trace: match r.opt_text("trace")? {
            Some(t) => {
                Some(serde_json::from_str(&t).map_err(|e| decode_err("request_logs.trace", e))?)
            }
            None => None,
        },
    })
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_covering_every_row() {
        for n in [0usize, 1, 2, 3, 100, 255, 256, 257, 700] {
            let rows = vec![RequestLog::default(); n];
            let sizes: Vec<usize> = pow2_chunks(&rows).map(<[RequestLog]>::len).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n);
            assert!(
                sizes
                    .iter()
                    .all(|s| s.is_power_of_two() && *s <= ROWS_PER_STATEMENT),
                "{n}: {sizes:?}"
            );
        }
    }
}
