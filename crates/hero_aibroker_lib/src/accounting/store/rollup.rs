//! Hourly usage rollups (`usage_rollup`): one row per UTC hour, dimension and group, kept by
//! the ledger writer in the same transaction as the rows it adds. Usage over a long range reads
//! the rollups for its whole hours and the ledger rows only for the partial hours at its edges,
//! so a month of a million rows is a few thousand rollup rows. Queries scoped to one key read
//! that key's rows through its index instead (a key's share of the ledger is small).

use std::collections::HashMap;

use hero_aibroker_sdk::admin::{
    GroupBy, RequestLog, RequestStatus, SeriesQuery, UsageBucket, UsageGroup, UsageQuery,
};
use sqlx::{Database, Encode, Executor, QueryBuilder, Type};

use super::backend::{Cols, Dialect, on_pool};
use super::{Store, StoreError, to_u64};

/// One hour in milliseconds.
pub(super) const HOUR_MS: i64 = 3_600_000;

/// Dimension names in `usage_rollup.dim`, and the ledger column each groups by.
pub(super) fn dim(g: GroupBy) -> (&'static str, &'static str) {
    match g {
        GroupBy::Model => ("model", "requested_model"),
        GroupBy::Provider => ("provider", "COALESCE(provider, '')"),
        GroupBy::Key => ("key", "COALESCE(key_id, '')"),
        GroupBy::Client => ("client", "client"),
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Agg {
    requests: i64,
    errors: i64,
    prompt: i64,
    completion: i64,
    cost: f64,
    upstream: f64,
    latency: f64,
    first: i64,
    last: i64,
}

/// The rollup increments of one batch of new rows.
#[derive(Debug, Default)]
pub(super) struct Increments(HashMap<(&'static str, i64, String), Agg>);

impl Increments {
    /// Counts one newly stored row in its hour under each dimension.
    pub(super) fn add(&mut self, r: &RequestLog) {
        let hour = r.started_ms.div_euclid(HOUR_MS) * HOUR_MS;
        let groups = [
            ("model", r.requested_model.clone()),
            ("provider", r.provider.clone().unwrap_or_default()),
            ("key", r.key_id.clone().unwrap_or_default()),
            ("client", r.client.clone()),
        ];
        let upstream = r.upstream_cost_usd.filter(|c| c.is_finite()).unwrap_or(0.0);
        let cost = if r.cost_usd.is_finite() {
            r.cost_usd
        } else {
            0.0
        };
        let latency = if r.latency_ms.is_finite() {
            r.latency_ms
        } else {
            0.0
        };
        for (dim, grp) in groups {
            let a = self.0.entry((dim, hour, grp)).or_insert(Agg {
                first: r.started_ms,
                last: r.started_ms,
                ..Agg::default()
            });
            a.requests += 1;
            a.errors += i64::from(r.status != RequestStatus::Ok);
            a.prompt = a
                .prompt
                .saturating_add(i64::try_from(r.prompt_tokens).unwrap_or(i64::MAX));
            a.completion = a
                .completion
                .saturating_add(i64::try_from(r.completion_tokens).unwrap_or(i64::MAX));
            a.cost += cost;
            a.upstream += upstream;
            a.latency += latency;
            a.first = a.first.min(r.started_ms);
            a.last = a.last.max(r.started_ms);
        }
    }

    /// Adds the increments to the rollups (one multi-row upsert per 100 groups), in key
    /// order, so two brokers writing the same hours lock the rows in the same order.
    pub(super) async fn write<DB: Database + Dialect>(
        self,
        tx: &mut DB::Connection,
    ) -> Result<(), StoreError>
    where
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        String: for<'t> Encode<'t, DB> + Type<DB>,
        i64: for<'t> Encode<'t, DB> + Type<DB>,
        f64: for<'t> Encode<'t, DB> + Type<DB>,
        DB::Arguments: sqlx::IntoArguments<DB>,
    {
        let mut all: Vec<_> = self.0.into_iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for chunk in all.chunks(100) {
            let mut q = QueryBuilder::<DB>::new(
                "INSERT INTO usage_rollup (dim, hour_ms, grp, requests, errors, prompt_tokens, \
                 completion_tokens, cost_usd, upstream_cost_usd, latency_sum_ms, first_ms, last_ms) ",
            );
            q.push_values(chunk, |mut b, ((dim, hour, grp), a)| {
                b.push_bind((*dim).to_owned())
                    .push_bind(*hour)
                    .push_bind(grp.clone())
                    .push_bind(a.requests)
                    .push_bind(a.errors)
                    .push_bind(a.prompt)
                    .push_bind(a.completion)
                    .push_bind(a.cost)
                    .push_bind(a.upstream)
                    .push_bind(a.latency)
                    .push_bind(a.first)
                    .push_bind(a.last);
            });
            q.push(format_args!(
                " ON CONFLICT (dim, hour_ms, grp) DO UPDATE SET \
                 requests = usage_rollup.requests + excluded.requests, \
                 errors = usage_rollup.errors + excluded.errors, \
                 prompt_tokens = usage_rollup.prompt_tokens + excluded.prompt_tokens, \
                 completion_tokens = usage_rollup.completion_tokens + excluded.completion_tokens, \
                 cost_usd = usage_rollup.cost_usd + excluded.cost_usd, \
                 upstream_cost_usd = usage_rollup.upstream_cost_usd + excluded.upstream_cost_usd, \
                 latency_sum_ms = usage_rollup.latency_sum_ms + excluded.latency_sum_ms, \
                 first_ms = {least}(usage_rollup.first_ms, excluded.first_ms), \
                 last_ms = {greatest}(usage_rollup.last_ms, excluded.last_ms)",
                least = DB::LEAST,
                greatest = DB::GREATEST,
            ));
            q.build().execute(&mut *tx).await?;
        }
        Ok(())
    }
}

impl Store {
    /// `usage` over the whole store, not scoped to a key: whole hours from the rollups, the
    /// partial hours at the range's edges from the ledger rows.
    pub(super) async fn usage_rolled(&self, q: &UsageQuery) -> Result<Vec<UsageGroup>, StoreError> {
        let (dim, column) = dim(q.group_by);
        let from = q.from_ms.unwrap_or(i64::MIN);
        let to = q.to_ms.unwrap_or(i64::MAX);
        // The whole hours inside [from, to).
        let h1 = if from == i64::MIN {
            i64::MIN
        } else {
            from.div_euclid(HOUR_MS) * HOUR_MS + if from % HOUR_MS == 0 { 0 } else { HOUR_MS }
        };
        let h2 = if to == i64::MAX {
            i64::MAX
        } else {
            to.div_euclid(HOUR_MS) * HOUR_MS
        };
        let (h1, h2) = if h1 >= h2 { (from, from) } else { (h1, h2) };
        on_pool!(&self.pool, |p, Db| {
            let mut qb = QueryBuilder::<Db>::new(
                "SELECT grp, CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(errors) AS BIGINT) AS errors, \
             CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, \
             CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens, \
             COALESCE(SUM(cost_usd), 0.0) AS cost_usd, COALESCE(SUM(upstream_cost_usd), 0.0) AS upstream_cost_usd, \
             CAST(CASE WHEN SUM(requests) > 0 THEN SUM(latency_sum_ms) / SUM(requests) ELSE 0.0 END \
             AS DOUBLE PRECISION) AS avg_latency_ms, \
             MIN(first_ms) AS first_ms, MAX(last_ms) AS last_ms FROM (\
             SELECT grp, requests, errors, prompt_tokens, completion_tokens, cost_usd, upstream_cost_usd, latency_sum_ms, first_ms, last_ms \
             FROM usage_rollup WHERE dim = ",
            );
            qb.push_bind(dim)
                .push(" AND hour_ms >= ")
                .push_bind(h1)
                .push(" AND hour_ms < ")
                .push_bind(h2);
            qb.push(format_args!(
            " UNION ALL SELECT {column} AS grp, 1, CASE WHEN status <> 'ok' THEN 1 ELSE 0 END, \
             prompt_tokens, completion_tokens, cost_usd, COALESCE(upstream_cost_usd, 0.0), latency_ms, started_ms, started_ms \
             FROM request_logs WHERE (started_ms >= "
        ));
            qb.push_bind(from)
                .push(" AND started_ms < ")
                .push_bind(h1.max(from).min(to))
                .push(") OR (started_ms >= ")
                .push_bind(h2.max(from))
                .push(" AND started_ms < ")
                .push_bind(to)
                .push(")) AS rolled GROUP BY grp ORDER BY cost_usd DESC, grp");
            qb.build()
                .fetch_all(p)
                .await?
                .iter()
                .map(usage_group)
                .collect()
        })
    }

    /// `usage_series` from the rollups, when they can answer exactly: no key filter, buckets of
    /// whole hours aligned to UTC hours (a time zone a whole number of hours from UTC) and a
    /// range starting on an hour. `None` otherwise (the caller reads the ledger rows).
    pub(super) async fn series_rolled(
        &self,
        q: &SeriesQuery,
    ) -> Result<Option<Vec<UsageBucket>>, StoreError> {
        let offset = i64::from(q.tz_offset_minutes) * 60_000;
        if q.key_id.is_some()
            || q.bucket_ms % HOUR_MS != 0
            || offset % HOUR_MS != 0
            || q.from_ms.rem_euclid(HOUR_MS) != 0
        {
            return Ok(None);
        }
        on_pool!(&self.pool, |p, Db| {
            let mut qb = QueryBuilder::<Db>::new("SELECT ");
            push_bucket(&mut qb, "hour_ms", offset, q.bucket_ms);
            qb.push(
                " AS bucket, CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(errors) AS BIGINT) AS errors, \
                 CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, \
                 CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens, \
                 COALESCE(SUM(cost_usd), 0.0) AS cost_usd, \
                 CAST(CASE WHEN SUM(requests) > 0 THEN SUM(latency_sum_ms) / SUM(requests) ELSE 0.0 END \
                 AS DOUBLE PRECISION) AS avg_latency_ms \
                 FROM usage_rollup WHERE dim = 'model' AND hour_ms >= ",
            )
            .push_bind(q.from_ms)
            .push(" AND hour_ms < ")
            .push_bind(q.to_ms.unwrap_or(i64::MAX))
            .push(" GROUP BY bucket ORDER BY bucket");
            qb.build()
                .fetch_all(p)
                .await?
                .iter()
                .map(usage_bucket)
                .collect::<Result<Vec<_>, StoreError>>()
                .map(Some)
        })
    }
}

/// A `UsageGroup` from a row with the columns every usage query names.
pub(super) fn usage_group(r: &impl Cols) -> Result<UsageGroup, StoreError> {
    Ok(UsageGroup {
        group: r.text("grp")?,
        requests: to_u64(r.int("requests")?),
        errors: to_u64(r.int("errors")?),
        prompt_tokens: to_u64(r.int("prompt_tokens")?),
        completion_tokens: to_u64(r.int("completion_tokens")?),
        cost_usd: r.real("cost_usd")?,
        upstream_cost_usd: r.real("upstream_cost_usd")?,
        avg_latency_ms: r.real("avg_latency_ms")?,
        first_ms: r.int("first_ms")?,
        last_ms: r.int("last_ms")?,
    })
}

/// A `UsageBucket` from a row with the columns every series query names.
pub(super) fn usage_bucket(r: &impl Cols) -> Result<UsageBucket, StoreError> {
    Ok(UsageBucket {
        start_ms: r.int("bucket")?,
        requests: to_u64(r.int("requests")?),
        errors: to_u64(r.int("errors")?),
        prompt_tokens: to_u64(r.int("prompt_tokens")?),
        completion_tokens: to_u64(r.int("completion_tokens")?),
        cost_usd: r.real("cost_usd")?,
        avg_latency_ms: r.real("avg_latency_ms")?,
    })
}

/// `((column + offset) / bucket) * bucket - offset`: the start of the viewer's bucket that
/// `column` (Unix ms) falls in, for a viewer `offset` ms east of UTC.
pub(super) fn push_bucket<DB: Database>(
    qb: &mut QueryBuilder<DB>,
    column: &str,
    offset: i64,
    bucket: i64,
) where
    i64: for<'t> Encode<'t, DB> + Type<DB>,
{
    qb.push(format_args!("(({column} + "))
        .push_bind(offset)
        .push(") / ")
        .push_bind(bucket)
        .push(") * ")
        .push_bind(bucket)
        .push(" - ")
        .push_bind(offset);
}
