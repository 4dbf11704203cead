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

/// `Retry-After` in seconds or as an HTTP date; we take the seconds form only, which the
/// providers we speak use.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Body bytes of an error for logs: bounded, lossy UTF-8.
pub fn snippet(body: &Bytes) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(300)]);
    crate::error::printable(&s)
}
