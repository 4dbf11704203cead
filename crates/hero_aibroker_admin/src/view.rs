//! What every page shares (the frame around it: navigation, banners, the CSRF token) and how
//! numbers, money and times are written.

use crate::auth::Current;
use crate::console::Console;

/// The frame of a page.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// Which navigation entry is lit.
    pub active: &'static str,
    pub title: String,
    pub csrf: String,
    /// No `ADMIN_TOKEN`: the header says the console is unprotected.
    pub unprotected: bool,
    /// A key holder's session (only "My key" is shown).
    pub key_holder: bool,
    /// One line when the broker (or the aggregator) did not answer; the page recovers by
    /// itself on the next load or poll.
    pub trouble: Vec<String>,
    pub nav: Vec<NavItem>,
}

/// One navigation entry.
#[derive(Debug, Clone)]
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub active: bool,
}

impl Chrome {
    pub fn new(console: &Console, current: &Current, active: &'static str, title: &str) -> Self {
        Chrome {
            active,
            title: title.to_owned(),
            csrf: current.session.csrf.clone(),
            unprotected: !console.protected(),
            key_holder: matches!(current.session.role, crate::console::Role::Key(_)),
            trouble: Vec::new(),
            nav: NAV
                .iter()
                .map(|(href, label, key)| NavItem {
                    href,
                    label,
                    active: *key == active,
                })
                .collect(),
        }
    }

    /// Notes that a call failed: one line, no secret (the SDK's errors carry none).
    pub fn failed(&mut self, what: &str, e: impl std::fmt::Display) {
        let line = format!("{what}: {e}");
        if !self.trouble.contains(&line) {
            self.trouble.push(line);
        }
    }

    /// The value of a call, or `T::default()` with the failure noted.
    pub fn or_note<T: Default, E: std::fmt::Display>(&mut self, what: &str, r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| {
            self.failed(what, e);
            T::default()
        })
    }
}

/// The navigation: (path, label, key).
pub const NAV: &[(&str, &str, &str)] = &[
    ("/", "Overview", "overview"),
    ("/models", "Models", "models"),
    ("/providers", "Providers", "providers"),
    ("/keys", "Keys", "keys"),
    ("/usage", "Usage", "usage"),
    ("/logs", "Logs", "logs"),
    ("/inflight", "In flight", "inflight"),
    ("/routing", "Routing", "routing"),
    ("/cascade", "Cascade", "cascade"),
    ("/mcp", "MCP", "mcp"),
    ("/playground", "Playground", "playground"),
];

/// `1234567` → `1,234,567`.
pub fn int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Dollars with as many decimals as small amounts need.
pub fn usd(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let a = v.abs();
    if a == 0.0 {
        "$0".to_owned()
    } else if a < 0.01 {
        format!("${v:.6}")
    } else if a < 100.0 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

/// Milliseconds as `850 ms` or `2.4 s`.
pub fn ms(v: f64) -> String {
    if !v.is_finite() {
        "–".to_owned()
    } else if v < 1000.0 {
        format!("{v:.0} ms")
    } else {
        format!("{:.1} s", v / 1000.0)
    }
}

/// A Unix-ms time in UTC (`2026-12-07 10:58:35`); the page's script rewrites each
/// `<time data-ms>` into the viewer's own time zone.
pub fn utc(ms: i64) -> String {
    hero_aibroker_sdk::time::utc(ms)
}

/// An instance's cooldown and reason in a few words (`12 s left · HTTP 429`).
pub fn instance_detail(cooldown_seconds: Option<f64>, reason: Option<&str>) -> String {
    match (cooldown_seconds, reason) {
        (Some(s), Some(r)) => format!("{s:.0} s left · {r}"),
        (Some(s), None) => format!("{s:.0} s left"),
        (None, Some(r)) => r.to_owned(),
        (None, None) => String::new(),
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Usage buckets as uPlot's columns — times (seconds), requests, errors — with every bucket
/// from `from_ms` to `to_ms` present (empty ones as 0), so the chart's axis spans the range.
pub fn series(
    buckets: &[hero_aibroker_sdk::admin::UsageBucket],
    from_ms: i64,
    to_ms: i64,
    step_ms: i64,
) -> String {
    let step = step_ms.max(60_000);
    let (mut t, mut r, mut e) = (Vec::new(), Vec::new(), Vec::new());
    let mut at = from_ms;
    let mut it = buckets.iter().peekable();
    while at <= to_ms && t.len() < 10_000 {
        let (req, err) = match it.peek() {
            Some(b) if b.start_ms < at + step => {
                it.next().map_or((0, 0), |b| (b.requests, b.errors))
            }
            _ => (0, 0),
        };
        t.push(at / 1000);
        r.push(req);
        e.push(err);
        at += step;
    }
    serde_json::json!([t, r, e]).to_string()
}

/// A share as `12.5 %`.
pub fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".to_owned()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

/// The `p`-th percentile (0..=1) of `values`, sorted in place.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let i = ((values.len() - 1) as f64 * p).round() as usize;
    values.get(i).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_money_and_times() {
        assert_eq!(int(0), "0");
        assert_eq!(int(1234567), "1,234,567");
        assert_eq!(usd(0.0), "$0");
        assert_eq!(usd(0.000268), "$0.000268");
        assert_eq!(usd(5.5), "$5.5000");
        assert_eq!(usd(1234.5), "$1234.50");
        assert_eq!(ms(850.4), "850 ms");
        assert_eq!(ms(2400.0), "2.4 s");
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_763_711_999_123), "2025-11-21 07:59:59");
        assert_eq!(pct(1, 8), "12.5 %");
        assert_eq!(percentile(&mut [3.0, 1.0, 2.0], 0.5), Some(2.0));
        let b = |start_ms, requests| hero_aibroker_sdk::admin::UsageBucket {
            start_ms,
            requests,
            ..Default::default()
        };
        assert_eq!(
            series(&[b(120_000, 3)], 0, 180_000, 60_000),
            "[[0,60,120,180],[0,0,3,0],[0,0,0,0]]"
        );
    }
}
