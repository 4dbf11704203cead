//! Usage: grouped by model, provider, key or client over a range, with a chart (buckets in the
//! viewer's time zone), a table, CSV export, drill-down (key → its models → its requests) and
//! a reconciliation of each key's live spend counter against the ledger's sum.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hero_aibroker_sdk::admin::{GroupBy, SeriesQuery, UsageGroup, UsageQuery};
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;
use serde::Deserialize;

use super::overview::tz_offset;
use crate::auth::Current;
use crate::console::Console;
use crate::view::{self, Chrome};

#[derive(Debug, Clone, Deserialize)]
pub struct UsageForm {
    #[serde(default = "default_group")]
    group_by: String,
    /// `1h`, `24h`, `7d` or `30d`.
    #[serde(default = "default_range")]
    range: String,
    #[serde(default)]
    key_id: String,
}

fn default_group() -> String {
    "model".into()
}

fn default_range() -> String {
    "24h".into()
}

impl UsageForm {
    fn group(&self) -> GroupBy {
        match self.group_by.as_str() {
            "provider" => GroupBy::Provider,
            "key" => GroupBy::Key,
            "client" => GroupBy::Client,
            _ => GroupBy::Model,
        }
    }

    /// The range's length and the chart's bucket size, in ms.
    fn span(&self) -> (i64, i64) {
        const MIN: i64 = 60_000;
        const HOUR: i64 = 60 * MIN;
        match self.range.as_str() {
            "1h" => (HOUR, MIN),
            "7d" => (7 * 24 * HOUR, HOUR),
            // Hourly buckets, summed into the viewer's calendar days by the page's script (which
            // knows the time zone's daylight-saving changes; a fixed offset does not).
            "30d" => (30 * 24 * HOUR, HOUR),
            _ => (24 * HOUR, HOUR),
        }
    }

    /// The grouping's name, from the fixed set (never the raw query text).
    fn group_name(&self) -> &'static str {
        match self.group() {
            GroupBy::Model => "model",
            GroupBy::Provider => "provider",
            GroupBy::Key => "key",
            GroupBy::Client => "client",
        }
    }

    /// The range's name, from the fixed set.
    fn range_name(&self) -> &'static str {
        match self.range.as_str() {
            "1h" => "1h",
            "7d" => "7d",
            "30d" => "30d",
            _ => "24h",
        }
    }

    fn key(&self) -> Option<String> {
        Some(self.key_id.trim().to_owned()).filter(|k| !k.is_empty())
    }
}

/// One group row.
pub struct Row {
    pub group: String,
    /// Where the row drills down to.
    pub link: Option<String>,
    pub requests: String,
    pub errors: String,
    pub prompt: String,
    pub completion: String,
    pub cost: String,
    pub latency: String,
}

/// One key's or provider's spend as the live counter (keys only), the ledger and the
/// upstreams' own reports see it.
pub struct Reconcile {
    pub name: String,
    pub live: String,
    pub ledger: String,
    pub upstream: String,
    pub drift: String,
    pub flagged: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "usage.html")]
pub struct Page {
    c: Chrome,
    f: UsageForm,
    rows: Vec<Row>,
    total_requests: String,
    total_cost: String,
    series_json: String,
    /// The chart sums hourly buckets into local days.
    local_days: bool,
    reconcile: Vec<Reconcile>,
    reconcile_providers: Vec<Reconcile>,
    csv_href: String,
}

async fn groups(console: &Console, f: &UsageForm, from_ms: i64) -> Result<Vec<UsageGroup>, String> {
    console
        .rpc
        .usage_summary(UsageQuery {
            group_by: f.group(),
            from_ms: Some(from_ms),
            to_ms: None,
            key_id: f.key(),
        })
        .await
        .map_err(|e| e.to_string())
}

fn link(f: &UsageForm, g: &UsageGroup) -> Option<String> {
    let q = |s: &str| s.replace('&', "%26").replace(' ', "%20");
    match (f.group(), f.key()) {
        (GroupBy::Key, _) if !g.group.is_empty() => Some(format!(
            "/usage?group_by=model&range={}&key_id={}",
            f.range,
            q(&g.group)
        )),
        (GroupBy::Model, Some(k)) => Some(format!("/logs?key_id={}&model={}", q(&k), q(&g.group))),
        _ => None,
    }
}

pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(cur): Extension<Current>,
    Query(f): Query<UsageForm>,
    headers: HeaderMap,
) -> Page {
    let mut c = Chrome::new(&console, &cur, "usage", "Usage");
    let tz = tz_offset(&headers);
    let now = view::now_ms();
    let (span, bucket) = f.span();
    let off = i64::from(tz) * 60_000;
    // Buckets start at the viewer's whole minutes, hours and midnights.
    let from = ((now - span + off).div_euclid(bucket)) * bucket - off;
    let list = c.or_note("Usage", groups(&console, &f, from).await);
    let series = c.or_note(
        "Usage over time",
        console
            .rpc
            .usage_series(SeriesQuery {
                from_ms: from,
                to_ms: Some(now),
                bucket_ms: bucket,
                tz_offset_minutes: tz,
                key_id: f.key(),
            })
            .await,
    );
    let rows = list
        .iter()
        .map(|g| Row {
            link: link(&f, g),
            group: if g.group.is_empty() {
                "(none)".into()
            } else {
                g.group.clone()
            },
            requests: view::int(g.requests),
            errors: view::int(g.errors),
            prompt: view::int(g.prompt_tokens),
            completion: view::int(g.completion_tokens),
            cost: view::usd(g.cost_usd),
            latency: view::ms(g.avg_latency_ms),
        })
        .collect();

    // Reconciliation: each key's live counter against the ledger's sum of its rows, and each
    // provider's ledger cost against what the upstream itself reported (where it does).
    let all_time = |group_by| UsageQuery {
        group_by,
        ..UsageQuery::default()
    };
    let upstream = |g: &UsageGroup| {
        if g.upstream_cost_usd > 0.0 {
            view::usd(g.upstream_cost_usd)
        } else {
            "not reported".to_owned()
        }
    };
    let mut reconcile = Vec::new();
    if let (Ok(keys), Ok(ledger)) = (
        console.rpc.keys_list().await,
        console.rpc.usage_summary(all_time(GroupBy::Key)).await,
    ) {
        for k in keys {
            let g = ledger.iter().find(|g| g.group == k.id);
            let summed = g.map_or(0.0, |g| g.cost_usd);
            let drift = k.spent_usd - summed;
            reconcile.push(Reconcile {
                name: format!("{} ({})", k.name, k.id),
                live: view::usd(k.spent_usd),
                ledger: view::usd(summed),
                upstream: g.map_or_else(|| "not reported".to_owned(), upstream),
                drift: view::usd(drift),
                flagged: drift.abs() > 1e-6,
            });
        }
    }
    let reconcile_providers = console
        .rpc
        .usage_summary(all_time(GroupBy::Provider))
        .await
        .unwrap_or_default()
        .iter()
        .filter(|g| !g.group.is_empty())
        .map(|g| {
            let drift = g.cost_usd - g.upstream_cost_usd;
            Reconcile {
                name: g.group.clone(),
                live: "–".into(),
                ledger: view::usd(g.cost_usd),
                upstream: upstream(g),
                drift: if g.upstream_cost_usd > 0.0 {
                    view::usd(drift)
                } else {
                    "–".into()
                },
                flagged: g.upstream_cost_usd > 0.0
                    && drift.abs() > 0.01 * g.upstream_cost_usd.max(g.cost_usd),
            }
        })
        .collect();
    let local_days = f.range_name() == "30d";
    Page {
        csv_href: format!(
            "/usage.csv?group_by={}&range={}&key_id={}",
            f.group_by, f.range, f.key_id
        ),
        total_requests: view::int(list.iter().map(|g| g.requests).sum()),
        total_cost: view::usd(list.iter().map(|g| g.cost_usd).sum()),
        c,
        f,
        rows,
        series_json: view::series(&series, from, now, bucket),
        local_days,
        reconcile,
        reconcile_providers,
    }
}

/// The table as CSV.
pub async fn csv(State(console): State<Arc<Console>>, Query(f): Query<UsageForm>) -> Response {
    let (span, _) = f.span();
    let list = match groups(&console, &f, view::now_ms() - span).await {
        Ok(l) => l,
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_GATEWAY,
                format!("broker: {e}\n"),
            )
                .into_response();
        }
    };
    let field = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let mut out = format!(
        "{},requests,errors,prompt_tokens,completion_tokens,cost_usd,avg_latency_ms\n",
        f.group_name()
    );
    for g in &list {
        out.push_str(&format!(
            "{},{},{},{},{},{},{:.1}\n",
            field(&g.group),
            g.requests,
            g.errors,
            g.prompt_tokens,
            g.completion_tokens,
            g.cost_usd,
            g.avg_latency_ms
        ));
    }
    let mut r = out.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"usage-{}-{}.csv\"",
        f.group_name(),
        f.range_name()
    )) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
