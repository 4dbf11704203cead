//! The OpenAI-compatible driver: OpenAI, OpenRouter, Groq, SambaNova and any custom
//! `base_url` (llama.cpp, vLLM, Ollama). The request body passes through with only `model` and
//! `stream_options` changed.

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};

use super::{Driver, Verdict, retry_after};
use crate::error::ApiError;
use crate::pool::Instance;
use crate::request::ParsedRequest;

/// See the module docs.
#[derive(Debug)]
pub struct OpenAiCompat;

static USER_AGENT: &str = concat!("hero_aibroker/", env!("CARGO_PKG_VERSION"));

impl Driver for OpenAiCompat {
    fn request(
        &self,
        client: &reqwest::Client,
        instance: &Instance,
        req: &ParsedRequest,
        model_id: &str,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        let url = instance.openai_url(req.endpoint).cloned().ok_or_else(|| {
            ApiError::new(
                hero_aibroker_sdk::ErrorCode::Internal,
                format!("provider instance {} has an invalid base URL", instance.id),
            )
        })?;
        let openrouter = instance.provider == "openrouter";
        let mut rb = client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(reqwest::header::USER_AGENT, USER_AGENT)
            .header(
                ACCEPT,
                HeaderValue::from_static(if req.stream {
                    "text/event-stream"
                } else {
                    "application/json"
                }),
            )
            .body(req.openai_body(model_id, openrouter)?);
        if let Some(key) = &instance.key {
            rb = rb.bearer_auth(key.expose());
        }
        if openrouter {
            // OpenRouter's app attribution: the client's headers, else the configured defaults.
            if let Some(referer) = &req.attribution.0 {
                rb = rb.header("HTTP-Referer", referer);
            }
            if let Some(title) = &req.attribution.1 {
                rb = rb.header("X-Title", title);
            }
        }
        Ok(rb)
    }

    fn classify(&self, status: StatusCode, headers: &HeaderMap) -> Verdict {
        match status.as_u16() {
            429 => Verdict::Retry {
                rate_limited: true,
                retry_after: retry_after(headers),
            },
            408 | 409 | 425 => Verdict::Retry {
                rate_limited: false,
                retry_after: retry_after(headers),
            },
            401 | 403 => Verdict::AuthFailed,
            s if s >= 500 => Verdict::Retry {
                rate_limited: false,
                retry_after: retry_after(headers),
            },
            _ => Verdict::Fatal,
        }
    }

    fn in_band_error(&self, data: &str) -> Option<String> {
        // Cheap test first: chunks are large and errors are rare.
        memchr::memmem::find(data.as_bytes(), b"\"error\"")?;
        let v: serde_json::Value = serde_json::from_str(data).ok()?;
        let err = v.get("error")?;
        Some(
            err.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| err.to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn classifies_statuses() {
        let d = OpenAiCompat;
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(
            d.classify(StatusCode::TOO_MANY_REQUESTS, &h),
            Verdict::Retry {
                rate_limited: true,
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            d.classify(StatusCode::BAD_GATEWAY, &HeaderMap::new()),
            Verdict::Retry {
                rate_limited: false,
                ..
            }
        ));
        assert!(matches!(
            d.classify(StatusCode::REQUEST_TIMEOUT, &HeaderMap::new()),
            Verdict::Retry { .. }
        ));
        assert_eq!(
            d.classify(StatusCode::UNAUTHORIZED, &HeaderMap::new()),
            Verdict::AuthFailed
        );
        assert_eq!(
            d.classify(StatusCode::BAD_REQUEST, &HeaderMap::new()),
            Verdict::Fatal
        );
        assert_eq!(
            d.classify(StatusCode::NOT_FOUND, &HeaderMap::new()),
            Verdict::Fatal
        );
    }

    #[test]
    fn detects_in_band_errors() {
        let d = OpenAiCompat;
        assert_eq!(
            d.in_band_error(r#"{"error":{"message":"Overloaded","code":502}}"#)
                .as_deref(),
            Some("Overloaded")
        );
        assert_eq!(
            d.in_band_error(r#"{"id":"x","choices":[{"delta":{"content":"\"error\""}}]}"#),
            None
        );
    }
}
