//! Overview: the health of each service, the last hour's traffic, today's tokens and spend,
//! charts of the last hour and day, the top models, keys and clients, and the providers in
//! trouble first. The numbers refresh every 5 s (htmx polls `/partials/overview`).

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use hero_aibroker_sdk::admin::{GroupBy, LogQuery, SeriesQuery, UsageGroup, UsageQuery};
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;

use crate::auth::Current;
use crate::console::Console;
use crate::view::{self, Chrome};

/// One service's line.
pub struct Service {
    pub name: &'static str,
    pub state: String,
    pub ok: bool,
    pub detail: String,
}

/// One stat tile.
pub struct Tile {
    pub label: &'static str,
    pub value: String,
}

/// One row of a top list.
pub struct Top {
    pub name: String,
    pub requests: String,
    pub cost: String,
}

/// A titled top list.
pub struct TopList {
    pub title: &'static str,
    pub rows: Vec<Top>,
}

/// A provider instance or circuit that needs attention.
pub struct Trouble {
    pub what: String,
    pub state: String,
    pub detail: String,
}

/// Everything the live part shows.
#[derive(Default)]
pub struct Data {
    pub services: Vec<Service>,
    pub tiles: Vec<Tile>,
    pub tops: Vec<TopList>,
    pub trouble: Vec<Trouble>,
    /// `[[t…], [requests…], [errors…]]` as JSON for uPlot: the last hour by minute.
    pub hour_json: String,
    /// The last day by hour.
    pub day_json: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "overview.html")]
pub struct Page {
    c: Chrome,
    o: Data,
}

#[derive(Template, WebTemplate)]
#[template(path = "_overview.html")]
pub struct Live {
    o: Data,
}

/// The viewer's offset east of UTC in minutes, from the `tzo` cookie the page's script sets.
pub fn tz_offset(headers: &HeaderMap) -> i32 {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "tzo")
        .and_then(|(_, v)| v.parse::<i32>().ok())
        .filter(|m| (-1440..=1440).contains(m))
        .unwrap_or(0)
}

/// The viewer's last midnight, in Unix ms.
pub fn midnight(now_ms: i64, tz_minutes: i32) -> i64 {
    let off = i64::from(tz_minutes) * 60_000;
    (now_ms + off).div_euclid(86_400_000) * 86_400_000 - off
}

fn top(groups: &[UsageGroup]) -> Vec<Top> {
    groups
        .iter()
        .take(5)
        .map(|g| Top {
            name: if g.group.is_empty() {
                "(none)".to_owned()
            } else {
                g.group.clone()
            },
            requests: view::int(g.requests),
            cost: view::usd(g.cost_usd),
        })
        .collect()
}

async fn gather(console: &Console, c: &mut Chrome, tz: i32) -> Data {
    let rpc = &console.rpc;
    let now = view::now_ms();
    let hour_ago = now - 3_600_000;
    let mut o = Data::default();

    match rpc.health().await {
        Ok(h) => {
            o.services.push(Service {
                name: "broker",
                ok: h.status == "ok",
                state: h.status.clone(),
                detail: format!("version {} · up {}", h.version, uptime(h.uptime_seconds)),
            });
            o.services.push(Service {
                name: "store",
                ok: h.ledger.healthy,
                state: if h.ledger.healthy { "ok" } else { "failing" }.into(),
                detail: format!(
                    "{} rows written · {} queued · {} dropped",
                    view::int(h.ledger.written),
                    view::int(h.ledger.queued),
                    view::int(h.ledger.dropped)
                ),
            });
            o.services.push(match &h.catalog {
                Some(cat) => Service {
                    name: "catalog",
                    ok: cat.last_error.is_none(),
                    state: if cat.last_error.is_none() {
                        "ok"
                    } else {
                        "stale"
                    }
                    .into(),
                    detail: cat
                        .last_error
                        .clone()
                        .unwrap_or_else(|| format!("{} OpenRouter models", view::int(cat.models))),
                },
                None => Service {
                    name: "catalog",
                    ok: true,
                    state: "off".into(),
                    detail: "the live OpenRouter catalog is off".into(),
                },
            });
        }
        Err(e) => {
            c.failed("The broker does not answer on rpc.sock", &e);
            o.services.push(Service {
                name: "broker",
                ok: false,
                state: "down".into(),
                detail: e.to_string(),
            });
        }
    }
    match rpc.mcp_servers().await {
        Ok(servers) => {
            let ready = servers.iter().filter(|s| s.state == "ready").count();
            o.services.push(Service {
                name: "aggregator",
                ok: ready == servers.len(),
                state: format!("{ready}/{} servers ready", servers.len()),
                detail: servers
                    .iter()
                    .filter(|s| s.state != "ready")
                    .map(|s| format!("{}: {}", s.name, s.state))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Err(e) => o.services.push(Service {
            name: "aggregator",
            ok: false,
            state: "down".into(),
            detail: e.to_string(),
        }),
    }

    let hour_from = hour_ago - hour_ago % 60_000;
    let hour = c.or_note(
        "Usage of the last hour",
        rpc.usage_series(SeriesQuery {
            from_ms: hour_from,
            to_ms: Some(now),
            bucket_ms: 60_000,
            tz_offset_minutes: tz,
            key_id: None,
        })
        .await,
    );
    let off = i64::from(tz) * 60_000;
    let day_from = (now - 24 * 3_600_000 + off).div_euclid(3_600_000) * 3_600_000 - off;
    let day = c.or_note(
        "Usage of the last day",
        rpc.usage_series(SeriesQuery {
            from_ms: day_from,
            to_ms: Some(now),
            bucket_ms: 3_600_000,
            tz_offset_minutes: tz,
            key_id: None,
        })
        .await,
    );
    let recent = c.or_note(
        "Recent requests",
        rpc.usage_logs(LogQuery {
            limit: Some(1000),
            from_ms: Some(hour_ago),
            ..LogQuery::default()
        })
        .await,
    );
    let today = midnight(now, tz);
    let by = |group_by| UsageQuery {
        group_by,
        from_ms: Some(today),
        to_ms: None,
        key_id: None,
    };
    let models = c.or_note("Usage today", rpc.usage_summary(by(GroupBy::Model)).await);
    let keys = c.or_note("Usage today", rpc.usage_summary(by(GroupBy::Key)).await);
    let clients = c.or_note("Usage today", rpc.usage_summary(by(GroupBy::Client)).await);

    let requests: u64 = hour.iter().map(|b| b.requests).sum();
    let errors: u64 = hour.iter().map(|b| b.errors).sum();
    let mut latency: Vec<f64> = recent.rows.iter().map(|r| r.latency_ms).collect();
    let mut ttfb: Vec<f64> = recent.rows.iter().filter_map(|r| r.ttfb_ms).collect();
    let p = |v: &mut Vec<f64>, q| view::percentile(v, q).map_or("–".into(), view::ms);
    let tokens: u64 = models
        .iter()
        .map(|g| g.prompt_tokens + g.completion_tokens)
        .sum();
    let spend: f64 = models.iter().map(|g| g.cost_usd).sum();
    o.tiles = vec![
        Tile {
            label: "requests / min (last hour)",
            value: format!("{:.1}", requests as f64 / 60.0),
        },
        Tile {
            label: "error rate (last hour)",
            value: view::pct(errors, requests),
        },
        Tile {
            label: "latency p50 / p95",
            value: format!("{} / {}", p(&mut latency, 0.5), p(&mut latency, 0.95)),
        },
        Tile {
            label: "time to first byte p50 / p95",
            value: format!("{} / {}", p(&mut ttfb, 0.5), p(&mut ttfb, 0.95)),
        },
        Tile {
            label: "tokens today",
            value: view::int(tokens),
        },
        Tile {
            label: "spend today",
            value: view::usd(spend),
        },
    ];
    o.tops = vec![
        TopList {
            title: "Top models today",
            rows: top(&models),
        },
        TopList {
            title: "Top keys today",
            rows: top(&keys),
        },
        TopList {
            title: "Top clients today",
            rows: top(&clients),
        },
    ];
    o.hour_json = view::series(&hour, hour_from, now, 60_000);
    o.day_json = view::series(&day, day_from, now, 3_600_000);

    if let Ok(providers) = rpc.providers_list().await {
        for p in &providers {
            for i in p.instances.iter().filter(|i| i.state != "healthy") {
                o.trouble.push(Trouble {
                    what: i.id.clone(),
                    state: i.state.clone(),
                    detail: view::instance_detail(i.cooldown_seconds, i.reason.as_deref()),
                });
            }
            for ci in p.circuits.iter().filter(|ci| ci.state != "closed") {
                o.trouble.push(Trouble {
                    what: format!("{} → {}", p.name, ci.model),
                    state: format!("circuit {}", ci.state),
                    detail: ci
                        .open_seconds
                        .map(|s| format!("probe in {s:.0} s"))
                        .unwrap_or_default(),
                });
            }
        }
    }
    o
}

fn uptime(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(cur): Extension<Current>,
    headers: HeaderMap,
) -> Page {
    let mut c = Chrome::new(&console, &cur, "overview", "Overview");
    let o = gather(&console, &mut c, tz_offset(&headers)).await;
    Page { c, o }
}

pub async fn live(
    State(console): State<Arc<Console>>,
    Extension(cur): Extension<Current>,
    headers: HeaderMap,
) -> Live {
    let mut c = Chrome::new(&console, &cur, "overview", "Overview");
    let o = gather(&console, &mut c, tz_offset(&headers)).await;
    Live { o }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight_follows_the_viewer() {
        // 2026-12-07 01:30 UTC.
        let now = 1_796_607_000_000;
        assert_eq!(view::utc(midnight(now, 0)), "2026-12-07 00:00:00");
        // UTC+2: 03:30 local, local midnight is 22:00 UTC the day before.
        assert_eq!(view::utc(midnight(now, 120)), "2026-12-06 22:00:00");
        // UTC-5: 20:30 local on the 6th; local midnight is 05:00 UTC on the 6th.
        assert_eq!(view::utc(midnight(now, -300)), "2026-12-06 05:00:00");
    }
}
