//! Output helpers: tables, JSON, ages, money and timestamps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

/// A table with a header row and no outer borders, sized to the terminal when there is one.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    t
}

/// Pretty JSON of an RPC result.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)?)
}

/// `90s`, `30m`, `24h`, `7d`, `2w` (a bare number is seconds).
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not an age like 30m, 24h or 7d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{s}`: use s, m, h, d or w"
            ));
        }
    };
    Ok(Duration::from_secs(n * secs))
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `2025-01-31 14:05:09` (UTC) for Unix milliseconds.
pub fn timestamp(ms: i64) -> String {
    hero_aibroker_sdk::time::utc(ms)
}

/// `1h 02m 03s`.
pub fn uptime(secs: u64) -> String {
    match (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    ) {
        (0, 0, 0, s) => format!("{s}s"),
        (0, 0, m, s) => format!("{m}m {s:02}s"),
        (0, h, m, s) => format!("{h}h {m:02}m {s:02}s"),
        (d, h, m, _) => format!("{d}d {h:02}h {m:02}m"),
    }
}

/// US dollars with enough digits for sub-cent request costs.
pub fn usd(v: f64) -> String {
    if v == 0.0 {
        "$0".to_owned()
    } else if v.abs() < 0.01 {
        format!("${v:.6}")
    } else {
        format!("${v:.2}")
    }
}

/// An optional value, or `-`.
pub fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_age("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(1_209_600)));
        assert!(parse_age("5y").is_err());
        assert!(parse_age("h").is_err());
    }

    #[test]
    fn timestamps_and_money() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(timestamp(1_738_332_309_000), "2025-01-31 14:05:09");
        assert_eq!(usd(0.0), "$0");
        assert_eq!(usd(0.000_123), "$0.000123");
        assert_eq!(usd(12.5), "$12.50");
        assert_eq!(uptime(3723), "1h 02m 03s");
    }
}
