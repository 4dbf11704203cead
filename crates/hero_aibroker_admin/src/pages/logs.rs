//! Logs: recent requests with filters and a live tail (htmx polls the first page), and one
//! request's page: its routing trace as a timeline (candidates considered, skipped and why,
//! each attempt with status and latency), tokens, cost and the upstream's own cost.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Path, Query, State};
use hero_aibroker_sdk::admin::{LogQuery, RequestLog, RequestStatus};
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;
use serde::Deserialize;

use crate::auth::Current;
use crate::console::Console;
use crate::view::{self, Chrome};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogForm {
    #[serde(default)]
    status: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    key_id: String,
    #[serde(default)]
    client: String,
    /// `1h`, `24h`, `7d`, or empty for all time.
    #[serde(default)]
    range: String,
    #[serde(default)]
    offset: u64,
}

impl LogForm {
    fn query(&self) -> LogQuery {
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let span = match self.range.as_str() {
            "1h" => Some(3_600_000),
            "24h" => Some(86_400_000),
            "7d" => Some(7 * 86_400_000),
            _ => None,
        };
        LogQuery {
            limit: Some(50),
            offset: Some(self.offset),
            model: text(&self.model),
            provider: None,
            key_id: text(&self.key_id),
            client: text(&self.client),
            status: serde_json::from_value(serde_json::Value::String(self.status.clone())).ok(),
            from_ms: span.map(|s| view::now_ms() - s),
            to_ms: None,
        }
    }

    /// This form's query string with another offset.
    fn with_offset(&self, offset: u64) -> String {
        let enc = |s: &str| {
            s.replace('%', "%25")
                .replace('&', "%26")
                .replace(' ', "%20")
                .replace('#', "%23")
        };
        format!(
            "status={}&model={}&key_id={}&client={}&range={}&offset={offset}",
            enc(&self.status),
            enc(&self.model),
            enc(&self.key_id),
            enc(&self.client),
            enc(&self.range)
        )
    }
}

/// One request as the list shows it.
pub struct Row {
    pub id: String,
    pub started_ms: i64,
    pub started: String,
    pub model: String,
    pub provider: String,
    pub key: String,
    pub client: String,
    pub status: String,
    pub ok: bool,
    pub http: u16,
    pub tokens: String,
    pub cost: String,
    pub latency: String,
}

impl From<&RequestLog> for Row {
    fn from(r: &RequestLog) -> Self {
        Row {
            id: r.id.clone(),
            started_ms: r.started_ms,
            started: view::utc(r.started_ms),
            model: r.requested_model.clone(),
            provider: r.provider.clone().unwrap_or_default(),
            key: r.key_id.clone().unwrap_or_default(),
            client: r.client.clone(),
            ok: r.status == RequestStatus::Ok,
            status: r.status.as_str().to_owned(),
            http: r.http_status,
            tokens: used(r),
            cost: view::usd(r.cost_usd),
            latency: view::ms(r.latency_ms),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "logs.html")]
pub struct Page {
    c: Chrome,
    f: LogForm,
    rows: Vec<Row>,
    query: String,
    next: Option<String>,
    statuses: Vec<&'static str>,
}

#[derive(Template, WebTemplate)]
#[template(path = "_log_rows.html")]
pub struct Rows {
    rows: Vec<Row>,
}

const STATUSES: &[&str] = &["ok", "partial", "client_cancelled", "rejected", "error"];

pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(cur): Extension<Current>,
    Query(f): Query<LogForm>,
) -> Page {
    let mut c = Chrome::new(&console, &cur, "logs", "Logs");
    let page = c.or_note("Logs", console.rpc.usage_logs(f.query()).await);
    Page {
        rows: page.rows.iter().map(Row::from).collect(),
        query: f.with_offset(0),
        next: page.next_offset.map(|o| f.with_offset(o)),
        c,
        f,
        statuses: STATUSES.to_vec(),
    }
}

/// The first page's rows, for the live tail.
pub async fn rows(State(console): State<Arc<Console>>, Query(f): Query<LogForm>) -> Rows {
    let rows = match console
        .rpc
        .usage_logs(LogForm { offset: 0, ..f }.query())
        .await
    {
        Ok(p) => p.rows.iter().map(Row::from).collect(),
        Err(_) => Vec::new(),
    };
    Rows { rows }
}

/// One step of a request's timeline.
pub struct Step {
    pub label: String,
    pub outcome: String,
    pub ok: bool,
    pub http: String,
    pub latency: String,
    /// Width of its bar, as a share of the request's whole latency (0–100).
    pub width: u32,
}

/// One labelled fact of a request.
pub struct Fact {
    pub k: &'static str,
    pub v: String,
}

/// A candidate the router considered.
pub struct Considered {
    pub rank: String,
    pub what: String,
    pub skipped: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "request.html")]
pub struct RequestPage {
    c: Chrome,
    id: String,
    found: bool,
    row: Option<Row>,
    facts: Vec<Fact>,
    steps: Vec<Step>,
    considered: Vec<Considered>,
    error: Option<String>,
}

pub async fn request(
    State(console): State<Arc<Console>>,
    Extension(cur): Extension<Current>,
    Path(id): Path<String>,
) -> RequestPage {
    let mut c = Chrome::new(&console, &cur, "logs", "Request");
    let log = match console.rpc.usage_log(id.clone()).await {
        Ok(r) => Some(r),
        Err(e) => {
            let text = e.to_string();
            if !text.contains("no ledger row") {
                c.failed("Request", text);
            }
            None
        }
    };
    let Some(r) = log else {
        return RequestPage {
            c,
            id,
            found: false,
            row: None,
            facts: Vec::new(),
            steps: Vec::new(),
            considered: Vec::new(),
            error: None,
        };
    };
    let whole = r.latency_ms.max(1.0);
    let steps = r
        .attempts
        .iter()
        .map(|a| Step {
            label: a.candidate.clone(),
            ok: a.outcome == "ok",
            outcome: a.outcome.clone(),
            http: a.http_status.map(|s| s.to_string()).unwrap_or_default(),
            latency: view::ms(a.latency_ms),
            width: ((a.latency_ms / whole) * 100.0).clamp(1.0, 100.0).round() as u32,
        })
        .collect();
    let considered = r
        .trace
        .as_ref()
        .map(|t| {
            t.candidates
                .iter()
                .map(|cand| Considered {
                    rank: cand
                        .rank
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "–".into()),
                    what: format!(
                        "{} · {}{} · {}",
                        cand.model,
                        cand.provider,
                        cand.instance
                            .as_deref()
                            .map(|i| format!(" ({i})"))
                            .unwrap_or_default(),
                        cand.upstream_model
                    ),
                    skipped: cand
                        .skipped
                        .clone()
                        .or_else(|| cand.note.clone())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let served = format!(
        "{} → {}",
        r.provider.clone().unwrap_or_else(|| "–".into()),
        r.upstream_model.clone().unwrap_or_else(|| "–".into())
    );
    let tokens = match (r.audio_seconds, r.characters) {
        (None, None) => format!(
            "{} prompt · {} completion · {} cached · {} reasoning",
            view::int(r.prompt_tokens),
            view::int(r.completion_tokens),
            view::int(r.cached_tokens),
            view::int(r.reasoning_tokens)
        ),
        _ => used(&r),
    };
    let latency = format!(
        "{} · first byte {}",
        view::ms(r.latency_ms),
        r.ttfb_ms.map_or_else(|| "–".into(), view::ms)
    );
    let facts = vec![
        Fact {
            k: "endpoint",
            v: r.endpoint.clone(),
        },
        Fact {
            k: "streamed",
            v: r.stream.to_string(),
        },
        Fact {
            k: "served by",
            v: served,
        },
        Fact {
            k: "tokens",
            v: tokens,
        },
        Fact {
            k: "cost",
            v: view::usd(r.cost_usd),
        },
        Fact {
            k: "upstream's own cost",
            v: r.upstream_cost_usd
                .map_or_else(|| "not reported".into(), view::usd),
        },
        Fact {
            k: "latency",
            v: latency,
        },
        Fact {
            k: "strategy",
            v: r.trace
                .as_ref()
                .map(|t| t.strategy.clone())
                .unwrap_or_default(),
        },
        Fact {
            k: "left out in translation",
            v: r.trace
                .as_ref()
                .filter(|t| !t.dropped.is_empty())
                .map_or_else(|| "nothing".into(), |t| t.dropped.join(", ")),
        },
    ];

    RequestPage {
        c,
        id,
        found: true,
        error: r.error.clone(),
        row: Some(Row::from(&r)),
        facts,
        steps,
        considered,
    }
}

/// What a request used, for the tables: its tokens, or for the speech endpoints the seconds of
/// audio heard or the characters spoken.
fn used(r: &RequestLog) -> String {
    match (r.audio_seconds, r.characters) {
        (Some(seconds), _) => format!("{seconds:.1} s of audio"),
        (None, Some(chars)) => format!("{} characters", view::int(chars)),
        (None, None) => view::int(r.prompt_tokens + r.completion_tokens),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_rows_show_seconds_or_characters_instead_of_tokens() {
        let heard = RequestLog {
            audio_seconds: Some(3.456),
            ..RequestLog::default()
        };
        assert_eq!(used(&heard), "3.5 s of audio");
        let spoken = RequestLog {
            characters: Some(1234),
            ..RequestLog::default()
        };
        assert_eq!(used(&spoken), format!("{} characters", view::int(1234)));
        let chat = RequestLog {
            prompt_tokens: 10,
            completion_tokens: 5,
            ..RequestLog::default()
        };
        assert_eq!(used(&chat), view::int(15));
    }
}
