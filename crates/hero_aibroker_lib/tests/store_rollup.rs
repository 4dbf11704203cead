//! The hourly rollups answer exactly what the ledger rows answer: usage over ranges that start
//! and end mid-hour, every grouping, the series, a retried batch that must not count twice,
//! and rows pruned by retention (the rollups keep them).

use hero_aibroker_lib::accounting::store::Store;
use hero_aibroker_sdk::admin::{GroupBy, RequestLog, RequestStatus, SeriesQuery, UsageQuery};

mod common;
use common::*;

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_765_000_800_000; // a UTC hour

/// 300 rows over ~5 hours: four models, three clients, a few keys, some errors.
fn rows() -> Vec<RequestLog> {
    (0..300usize)
        .map(|i| {
            let mut r = row(i);
            r.started_ms = T0 + i64::try_from(i).expect("small") * 61_000;
            r.requested_model = ["a", "b", "c", "d"][i % 4].into();
            r.provider = (i % 5 != 0).then(|| format!("p{}", i % 3));
            r.key_id = (i % 3 == 0).then(|| format!("key_{}", i % 2));
            r.client = format!("uds:uid={}", i % 3);
            r.cost_usd = 0.001 * (1 + i % 7) as f64;
            r.latency_ms = 100.0 + i as f64;
            r.upstream_cost_usd = (i % 4 == 3).then_some(0.002);
            if i % 11 == 0 {
                r.status = RequestStatus::Error;
            }
            r
        })
        .collect()
}

fn key(g: &hero_aibroker_sdk::admin::UsageGroup) -> (String, u64, u64, u64, u64, i64, i64, i64) {
    (
        g.group.clone(),
        g.requests,
        g.errors,
        g.prompt_tokens,
        g.completion_tokens,
        (g.cost_usd * 1e9).round() as i64,
        (g.avg_latency_ms * 1e3).round() as i64,
        g.first_ms ^ g.last_ms,
    )
}

/// The same query through the rollups (no key) and through the rows: a key filter that every
/// row passes is not available, so compare against a plain in-memory aggregation instead.
fn expected(
    rows: &[RequestLog],
    g: GroupBy,
    from: Option<i64>,
    to: Option<i64>,
) -> Vec<(String, u64, u64, i64)> {
    let mut m: std::collections::BTreeMap<String, (u64, u64, f64)> = Default::default();
    for r in rows
        .iter()
        .filter(|r| from.is_none_or(|f| r.started_ms >= f) && to.is_none_or(|t| r.started_ms < t))
    {
        let k = match g {
            GroupBy::Model => r.requested_model.clone(),
            GroupBy::Provider => r.provider.clone().unwrap_or_default(),
            GroupBy::Key => r.key_id.clone().unwrap_or_default(),
            GroupBy::Client => r.client.clone(),
        };
        let e = m.entry(k).or_default();
        e.0 += 1;
        e.1 += u64::from(r.status != RequestStatus::Ok);
        e.2 += r.cost_usd;
    }
    m.into_iter()
        .map(|(k, (n, e, c))| (k, n, e, (c * 1e9).round() as i64))
        .collect()
}

async fn got(
    store: &Store,
    g: GroupBy,
    from: Option<i64>,
    to: Option<i64>,
) -> Vec<(String, u64, u64, i64)> {
    let mut v: Vec<_> = store
        .usage(&UsageQuery {
            group_by: g,
            from_ms: from,
            to_ms: to,
            key_id: None,
        })
        .await
        .expect("usage")
        .iter()
        .map(|g| {
            let k = key(g);
            (k.0, k.1, k.2, k.5)
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn rollups_answer_like_the_rows_over_any_range() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(&dir).await;
    let all = rows();
    store.insert_logs(&all[..150]).await.expect("insert");
    // A retried batch (the first 150 again, with the rest): nothing counts twice.
    store.insert_logs(&all).await.expect("insert");
    let ranges = [
        (None, None),
        (Some(T0), None),
        (Some(T0 + 1_234), Some(T0 + 3 * HOUR + 777)),
        (Some(T0 + HOUR), Some(T0 + 2 * HOUR)),
        (Some(T0 + 600_000), Some(T0 + 1_200_000)),
        (None, Some(T0 + 2 * HOUR + 5)),
        (Some(T0 + 10 * HOUR), None),
    ];
    for g in [
        GroupBy::Model,
        GroupBy::Provider,
        GroupBy::Key,
        GroupBy::Client,
    ] {
        for (from, to) in ranges {
            assert_eq!(
                got(&store, g, from, to).await,
                expected(&all, g, from, to),
                "{g:?} {from:?}..{to:?}"
            );
        }
    }
    // Upstream-reported cost is summed too (rollups and edge rows alike).
    for (from, to) in ranges {
        let groups = store
            .usage(&UsageQuery {
                group_by: GroupBy::Model,
                from_ms: from,
                to_ms: to,
                key_id: None,
            })
            .await
            .expect("usage");
        let got: f64 = groups.iter().map(|g| g.upstream_cost_usd).sum();
        let want: f64 = all
            .iter()
            .filter(|r| {
                from.is_none_or(|f| r.started_ms >= f) && to.is_none_or(|t| r.started_ms < t)
            })
            .filter_map(|r| r.upstream_cost_usd)
            .sum();
        assert!(
            (got - want).abs() < 1e-9,
            "{from:?}..{to:?}: {got} vs {want}"
        );
    }
    // Average latency and first/last come out right too.
    let whole = store
        .usage(&UsageQuery {
            group_by: GroupBy::Model,
            ..UsageQuery::default()
        })
        .await
        .expect("usage");
    let a = whole.iter().find(|g| g.group == "a").expect("a");
    let rows_a: Vec<&RequestLog> = all.iter().filter(|r| r.requested_model == "a").collect();
    let avg = rows_a.iter().map(|r| r.latency_ms).sum::<f64>() / rows_a.len() as f64;
    assert!(
        (a.avg_latency_ms - avg).abs() < 1e-6,
        "{} vs {avg}",
        a.avg_latency_ms
    );
    assert_eq!(a.first_ms, rows_a[0].started_ms);
    assert_eq!(a.last_ms, rows_a[rows_a.len() - 1].started_ms);

    // The series: hourly buckets from the rollups equal the rows' counts per hour, in UTC and
    // two hours east of it.
    for tz in [0, 120] {
        let series = store
            .usage_series(&SeriesQuery {
                from_ms: T0,
                to_ms: Some(T0 + 6 * HOUR),
                bucket_ms: HOUR,
                tz_offset_minutes: tz,
                key_id: None,
            })
            .await
            .expect("series");
        let per_hour: Vec<u64> = (0..6)
            .map(|h| {
                all.iter()
                    .filter(|r| r.started_ms >= T0 + h * HOUR && r.started_ms < T0 + (h + 1) * HOUR)
                    .count() as u64
            })
            .filter(|n| *n > 0)
            .collect();
        assert_eq!(
            series.iter().map(|b| b.requests).collect::<Vec<_>>(),
            per_hour,
            "tz {tz}"
        );
    }

    // Retention prunes rows, not rollups: the totals stay.
    let before = got(&store, GroupBy::Key, None, None).await;
    assert!(
        store
            .prune_logs(T0 + 2 * HOUR, 10_000)
            .await
            .expect("prune")
            > 0
    );
    assert_eq!(got(&store, GroupBy::Key, None, None).await, before);
}

#[tokio::test]
async fn a_key_scoped_query_reads_the_key_rows() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(&dir).await;
    let all = rows();
    store.insert_logs(&all).await.expect("insert");
    let mine = store
        .usage(&UsageQuery {
            group_by: GroupBy::Model,
            from_ms: Some(T0 + 1_000),
            to_ms: None,
            key_id: Some("key_0".into()),
        })
        .await
        .expect("usage");
    let n: u64 = mine.iter().map(|g| g.requests).sum();
    let want = all
        .iter()
        .filter(|r| r.key_id.as_deref() == Some("key_0") && r.started_ms >= T0 + 1_000)
        .count() as u64;
    assert_eq!(n, want);
}
