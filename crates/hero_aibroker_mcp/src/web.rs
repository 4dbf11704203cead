//! What the web search and scraping servers (`mcp_serper`, `mcp_serpapi`, `mcp_exa`,
//! `mcp_scraperapi`, `mcp_scrapfly`) share: their keys and one HTTP exchange with the service.
//!
//! **Keys** come from one variable per service (`SERPER_API_KEYS`, …: comma-separated, a single
//! key works too) and are used in turn. A key the service refuses (401/403) is not used again by
//! this process; a key it rate-limits (429) cools for its `Retry-After` (60 s when absent, at
//! most an hour), and the call moves on to the next key, as the broker does with provider keys.
//! A missing variable is a one-line tool error naming it.
//!
//! **The service's URL** is its public one, or `<SERVICE>_BASE_URL` (a proxy, or the fake of the
//! tests). Keys are never written to logs or answers: errors name the key by its position.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

/// Longest a service may take to answer one call.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The cool-down of a rate-limited key whose answer says nothing of when to come back.
const DEFAULT_COOL: Duration = Duration::from_secs(60);
/// The longest cool-down a `Retry-After` can ask for.
const MAX_COOL: Duration = Duration::from_secs(3600);
/// The most of an answer's text a tool hands back (the structured content has it whole).
pub const MAX_TEXT: usize = 100_000;

#[derive(Debug)]
struct Key {
    secret: String,
    /// Refused by the service (401/403): never used again.
    refused: Mutex<bool>,
    /// Rate-limited until then.
    cool_until: Mutex<Option<Instant>>,
}

/// One service's keys, used in turn.
#[derive(Debug)]
pub struct KeyRing {
    var: &'static str,
    keys: Vec<Key>,
    cursor: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl KeyRing {
    /// The keys of `var` (comma-separated; blanks dropped).
    pub fn new(var: &'static str, value: Option<&str>) -> KeyRing {
        let keys = value
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| Key {
                secret: k.to_owned(),
                refused: Mutex::new(false),
                cool_until: Mutex::new(None),
            })
            .collect();
        KeyRing {
            var,
            keys,
            cursor: AtomicUsize::new(0),
        }
    }

    /// The variable the keys come from.
    pub fn var(&self) -> &'static str {
        self.var
    }

    /// The keys to try for one call, in turn from the next one: usable ones only. An error
    /// line when there are none.
    fn usable(&self) -> Result<Vec<usize>, String> {
        if self.keys.is_empty() {
            return Err(format!(
                "{} is not set: give this server one or more API keys (comma-separated)",
                self.var
            ));
        }
        let now = Instant::now();
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let n = self.keys.len();
        let order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
        let usable: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| {
                !*lock(&self.keys[i].refused)
                    && lock(&self.keys[i].cool_until).is_none_or(|t| t <= now)
            })
            .collect();
        if !usable.is_empty() {
            return Ok(usable);
        }
        let next = self
            .keys
            .iter()
            .filter(|k| !*lock(&k.refused))
            .filter_map(|k| *lock(&k.cool_until))
            .min();
        Err(match next {
            Some(t) => format!(
                "every key in {} is rate-limited; the first is usable again in {} s",
                self.var,
                t.saturating_duration_since(now).as_secs().max(1)
            ),
            None => format!(
                "the service refused every key in {} (401/403): check them",
                self.var
            ),
        })
    }
}

/// One service: its base URL, keys and HTTP client.
#[derive(Debug)]
pub struct Service {
    /// The service's name in messages (`Serper`, `Exa`…).
    pub name: &'static str,
    pub base_url: String,
    pub keys: KeyRing,
    client: reqwest::Client,
}

/// A service's answer: its status, content type and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: bytes::Bytes,
}

impl Reply {
    /// The body as JSON, or a line saying what came instead.
    pub fn json(&self, service: &str) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|_| {
            format!(
                "{service} answered {} with something that is not JSON: {}",
                self.status,
                snippet(&self.body)
            )
        })
    }
}

/// The first 200 characters of a body, on one line.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(200).collect()
}

/// How long a 429 asks to wait.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_COOL, |s| Duration::from_secs(s).min(MAX_COOL))
}

impl Service {
    /// The service `name` at `base_url` (its public URL unless `<SERVICE>_BASE_URL` moves it),
    /// with the keys of `keys`.
    pub fn new(name: &'static str, base_url: &str, keys: KeyRing) -> Result<Service, String> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Service {
            name,
            base_url: base_url.trim_end_matches('/').to_owned(),
            keys,
            client,
        })
    }

    /// Sends the request `build` makes with a key, trying the next key when one is refused or
    /// rate-limited. The reply of the first key that is neither, whatever its status.
    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<Reply, String> {
        let mut last = String::new();
        for i in self.keys.usable()? {
            let key = &self.keys.keys[i];
            let resp = build(&self.client, &key.secret)
                .send()
                .await
                .map_err(|e| format!("cannot reach {}: {}", self.name, without_url(&e)))?;
            let status = resp.status().as_u16();
            match status {
                401 | 403 => {
                    *lock(&key.refused) = true;
                    tracing::warn!(service = self.name, key = i + 1, "key refused ({status})");
                    last = format!(
                        "{} refused key {} of {} ({status})",
                        self.name,
                        i + 1,
                        self.keys.var
                    );
                }
                429 => {
                    let wait = retry_after(resp.headers());
                    *lock(&key.cool_until) = Some(Instant::now() + wait);
                    tracing::warn!(service = self.name, key = i + 1, ?wait, "key rate-limited");
                    last = format!(
                        "{} rate-limited key {} of {} (429, retry in {} s)",
                        self.name,
                        i + 1,
                        self.keys.var,
                        wait.as_secs()
                    );
                }
                _ => {
                    let content_type = resp
                        .headers()
                        .get(reqwest::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let body = resp.bytes().await.map_err(|e| {
                        format!("{} broke off its answer: {}", self.name, without_url(&e))
                    })?;
                    return Ok(Reply {
                        status,
                        content_type,
                        body,
                    });
                }
            }
        }
        Err(last)
    }

    /// A line for an answer that is not a success: the status and the service's own message.
    pub fn failed(&self, reply: &Reply, message: Option<&str>) -> String {
        format!(
            "{} answered {}: {}",
            self.name,
            reply.status,
            message.map_or_else(|| snippet(&reply.body), str::to_owned)
        )
    }
}

/// A reqwest error without its URL: the URL carries the key for the services that take it in
/// the query string.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<the service>");
    }
    text
}

/// A successful answer: `text` (cut at [`MAX_TEXT`] characters) and `structured` whole.
pub fn answer(text: String, structured: Value) -> CallToolResult {
    let text = if text.chars().count() > MAX_TEXT {
        let mut cut: String = text.chars().take(MAX_TEXT).collect();
        cut.push_str("\n[… cut; the whole answer is in structuredContent]");
        cut
    } else {
        text
    };
    let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
    r.structured_content = Some(structured);
    r
}

/// A tool error: one line.
pub fn failure(line: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(line)])
}

/// Reads a service's settings from the environment: its keys (`keys_var`) and its URL
/// (`url_var`, else `default_url`). For the binaries' `main`.
#[expect(
    clippy::disallowed_methods,
    reason = "a bundled MCP server is its own process: its keys come from its environment"
)]
pub fn from_env(
    name: &'static str,
    keys_var: &'static str,
    url_var: &str,
    default_url: &str,
) -> Result<Service, String> {
    let keys = KeyRing::new(keys_var, std::env::var(keys_var).ok().as_deref());
    let url = std::env::var(url_var).unwrap_or_else(|_| default_url.to_owned());
    Service::new(name, &url, keys)
}

/// A numbered list of `items`: `title_key` and `link_key` on the first line, `snippet_key`
/// under it (each when present).
pub fn numbered(
    items: Option<&Value>,
    title_key: &str,
    link_key: &str,
    snippet_key: &str,
) -> String {
    let mut text = String::new();
    for (i, item) in items
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let field = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or("");
        text.push_str(&format!(
            "{}. {} — {}\n",
            i + 1,
            field(title_key),
            field(link_key)
        ));
        let snippet = field(snippet_key);
        if !snippet.is_empty() {
            text.push_str(&format!("   {snippet}\n"));
        }
    }
    text
}

/// `(name, value)` query pairs of the set fields of a JSON object (strings as they are,
/// numbers and booleans written out).
pub fn query_pairs(object: &Value) -> Vec<(String, String)> {
    object
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((k.clone(), v))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_rotate_and_a_missing_variable_names_itself() {
        let ring = KeyRing::new("X_KEYS", Some(" a, b ,,c"));
        let firsts: Vec<usize> = (0..3).map(|_| ring.usable().expect("usable")[0]).collect();
        assert_eq!(firsts, [0, 1, 2]);
        let none = KeyRing::new("X_KEYS", None);
        let e = none.usable().expect_err("no keys");
        assert!(e.starts_with("X_KEYS is not set"), "{e}");
    }

    #[test]
    fn refused_and_cooling_keys_are_left_out_with_a_clear_line() {
        let ring = KeyRing::new("X_KEYS", Some("a,b"));
        *lock(&ring.keys[0].refused) = true;
        assert_eq!(ring.usable().expect("b"), [1]);
        *lock(&ring.keys[1].cool_until) = Some(Instant::now() + Duration::from_secs(30));
        let e = ring.usable().expect_err("none usable");
        assert!(e.contains("rate-limited") && e.contains("X_KEYS"), "{e}");
        *lock(&ring.keys[1].refused) = true;
        let e = ring.usable().expect_err("all refused");
        assert!(e.contains("refused every key in X_KEYS"), "{e}");
    }
}
