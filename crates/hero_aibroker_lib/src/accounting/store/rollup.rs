//! Hourly usage rollups (`usage_rollup`): one row per UTC hour, dimension and group, kept by
//! the ledger writer in the same transaction as the rows it adds. Usage over a long range reads
//! the rollups for its whole hours and the ledger rows only for the partial hours at its edges,
//! so a month of a million rows is a few thousand rollup rows. Queries scoped to one key read
//! that key's rows through its index instead (a key's share of the ledger is small).

use std::collections::HashMap;

use hero_aibroker_sdk::admin::{
    GroupBy, RequestLog, RequestStatus, SeriesQuery, UsageBucket, UsageGroup, UsageQuery,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

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

    /// Adds the increments to the rollups (one multi-row upsert per 100 groups).
    pub(super) async fn write(self, tx: &mut SqliteConnection) -> Result<(), StoreError> {
        let all: Vec<_> = self.0.into_iter().collect();
        for chunk in all.chunks(100) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO usage_rollup (dim, hour_ms, grp, requests, errors, prompt_tokens, \
                 completion_tokens, cost_usd, upstream_cost_usd, latency_sum_ms, first_ms, last_ms) ",
            );
            q.push_values(chunk, |mut b, ((dim, hour, grp), a)| {
                b.push_bind(*dim)
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
            q.push(
                " ON CONFLICT (dim, hour_ms, grp) DO UPDATE SET \
                 requests = requests + excluded.requests, errors = errors + excluded.errors, \
                 prompt_tokens = prompt_tokens + excluded.prompt_tokens, \
                 completion_tokens = completion_tokens + excluded.completion_tokens, \
                 cost_usd = cost_usd + excluded.cost_usd, \
                 upstream_cost_usd = upstream_cost_usd + excluded.upstream_cost_usd, \
                 latency_sum_ms = latency_sum_ms + excluded.latency_sum_ms, \
                 first_ms = MIN(first_ms, excluded.first_ms), last_ms = MAX(last_ms, excluded.last_ms)",
            );
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
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT grp, SUM(requests) AS requests, SUM(errors) AS errors, \
             SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens, \
             COALESCE(SUM(cost_usd), 0.0) AS cost_usd, COALESCE(SUM(upstream_cost_usd), 0.0) AS upstream_cost_usd, \
             CASE WHEN SUM(requests) > 0 THEN SUM(latency_sum_ms) / SUM(requests) ELSE 0.0 END AS avg_latency_ms, \
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
            .push(")) GROUP BY grp ORDER BY cost_usd DESC, grp");
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter().map(usage_group).collect()
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
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT ");
        push_bucket(&mut qb, "hour_ms", offset, q.bucket_ms);
        qb.push(
                " AS bucket, SUM(requests) AS requests, SUM(errors) AS errors, \
                 SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens, \
                 COALESCE(SUM(cost_usd), 0.0) AS cost_usd, \
                 CASE WHEN SUM(requests) > 0 THEN SUM(latency_sum_ms) / SUM(requests) ELSE 0.0 END AS avg_latency_ms \
                 FROM usage_rollup WHERE dim = 'model' AND hour_ms >= ",
            )
            .push_bind(q.from_ms)
            .push(" AND hour_ms < ")
            .push_bind(q.to_ms.unwrap_or(i64::MAX))
            .push(" GROUP BY bucket ORDER BY bucket");
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(usage_bucket)
            .collect::<Result<Vec<_>, StoreError>>()
            .map(Some)
    }
}

/// A `UsageGroup` from a row with the columns every usage query names.
pub(super) fn usage_group(r: &SqliteRow) -> Result<UsageGroup, StoreError> {
    Ok(UsageGroup {
        group: r.try_get("grp")?,
        requests: to_u64(r.try_get("requests")?),
        errors: to_u64(r.try_get("errors")?),
        prompt_tokens: to_u64(r.try_get("prompt_tokens")?),
        completion_tokens: to_u64(r.try_get("completion_tokens")?),
        cost_usd: r.try_get("cost_usd")?,
        upstream_cost_usd: r.try_get("upstream_cost_usd")?,
        avg_latency_ms: r.try_get("avg_latency_ms")?,
        first_ms: r.try_get("first_ms")?,
        last_ms: r.try_get("last_ms")?,
    })
}

/// A `UsageBucket` from a row with the columns every series query names.
pub(super) fn usage_bucket(r: &SqliteRow) -> Result<UsageBucket, StoreError> {
    Ok(UsageBucket {
        start_ms: r.try_get("bucket")?,
        requests: to_u64(r.try_get("requests")?),
        errors: to_u64(r.try_get("errors")?),
        prompt_tokens: to_u64(r.try_get("prompt_tokens")?),
        completion_tokens: to_u64(r.try_get("completion_tokens")?),
        cost_usd: r.try_get("cost_usd")?,
        avg_latency_ms: r.try_get("avg_latency_ms")?,
    })
}

/// `((column + offset) / bucket) * bucket - offset`: the start of the viewer's bucket that
/// `column` (Unix ms) falls in, for a viewer `offset` ms east of UTC.
pub(super) fn push_bucket(qb: &mut QueryBuilder<Sqlite>, column: &str, offset: i64, bucket: i64) {
    qb.push(format_args!("(({column} + "))
        .push_bind(offset)
        .push(") / ")
        .push_bind(bucket)
        .push(") * ")
        .push_bind(bucket)
        .push(" - ")
        .push_bind(offset);
}
