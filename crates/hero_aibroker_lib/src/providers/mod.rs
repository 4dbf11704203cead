//! Provider drivers: everything a provider does differently lives behind [`Driver`]. Adding a
//! provider means one driver file and one line in [`driver_for`].

pub mod openai_compat;

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::error::ApiError;
use crate::pool::Instance;
use crate::request::ParsedRequest;

/// How the relay should treat a non-success upstream status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try the next candidate (408, 429, 5xx); `retry_after` from the upstream's headers.
    Retry {
        rate_limited: bool,
        retry_after: Option<Duration>,
    },
    /// The key was refused (401/403): not the caller's fault, move on to another key.
    AuthFailed,
    /// The request itself is wrong (other 4xx): hand the upstream's answer to the client.
    Fatal,
}

/// A provider's wire protocol.
pub trait Driver: Send + Sync + std::fmt::Debug {
    /// The upstream request for `req` on `instance`, asking for `model_id`.
    fn request(
        &self,
        client: &reqwest::Client,
        instance: &Instance,
        req: &ParsedRequest,
        model_id: &str,
    ) -> Result<reqwest::RequestBuilder, ApiError>;

    /// What a non-2xx status means for routing.
    fn classify(&self, status: StatusCode, headers: &HeaderMap) -> Verdict;

    /// If `data`, the first event of a stream, is an in-band error, its message.
    fn in_band_error(&self, data: &str) -> Option<String>;
}

/// The driver for a provider name. Every provider is OpenAI-compatible today.
pub fn driver_for(_provider: &str) -> &'static dyn Driver {
    &openai_compat::OpenAiCompat
}

/// How long a rate-limited upstream asks us to wait: `Retry-After` (seconds; the HTTP-date form
/// is not used by the providers we speak) and OpenAI-style `x-ratelimit-reset-requests` /
/// `x-ratelimit-reset-tokens` (Go durations such as `6m0s`) for whichever limit is exhausted
/// (`x-ratelimit-remaining-*: 0`). The longest wins; `None` when the upstream gave no hint.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let mut waits: Vec<Duration> = Vec::new();
    if let Some(secs) = header("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
    {
        waits.push(Duration::from_secs_f64(secs));
    }
    let mut resets = Vec::new();
    for kind in ["requests", "tokens"] {
        let Some(reset) = header(&format!("x-ratelimit-reset-{kind}")).and_then(go_duration) else {
            continue;
        };
        if header(&format!("x-ratelimit-remaining-{kind}")) == Some("0") {
            waits.push(reset);
        }
        resets.push(reset);
    }
    if waits.is_empty() {
        // No exhausted limit named: the soonest reset is the least we should wait.
        return resets.into_iter().min();
    }
    waits.into_iter().max()
}

/// Parses a Go duration (`1s`, `6m0s`, `1.5s`, `12ms`, `1h2m`).
pub fn go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total))
}

/// Body bytes of an error for logs: bounded, lossy UTF-8.
pub fn snippet(body: &Bytes) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(300)]);
    crate::error::printable(&s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(go_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(go_duration("soon"), None);
        assert_eq!(go_duration(""), None);
    }

    #[test]
    fn retry_after_takes_the_exhausted_limit_reset() {
        // The wire fixture's headers: Retry-After 1, nothing exhausted.
        let h = headers(&[
            ("retry-after", "1"),
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-remaining-tokens", "149984"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(1)));
        // Tokens exhausted: their reset is longer than Retry-After and wins.
        let h = headers(&[
            ("retry-after", "1"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(360)));
        // No Retry-After, no exhausted limit named: the soonest reset.
        let h = headers(&[
            ("x-ratelimit-reset-requests", "2s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
