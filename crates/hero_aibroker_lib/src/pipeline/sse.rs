//! Annotating upstream replies on their way to the client: the top-level `provider` that names
//! the backend, and `usage.cost` in USD from the registry's prices. Stream chunks take a
//! splice-only fast path; only chunks that carry usage (or an upstream `provider`) are parsed.

use bytes::{BufMut, BytesMut};
use hero_aibroker_sdk::Usage;
use indexmap::IndexMap;
use serde_json::value::RawValue;

use crate::config::registry::Prices;

/// A rewritten JSON object with what the broker read from it.
#[derive(Debug)]
pub struct Annotated {
    pub body: Vec<u8>,
    pub usage: Option<Usage>,
    /// The object's `id` (the upstream's completion id).
    pub id: Option<String>,
}

/// Rewrites replies of one backend.
#[derive(Debug, Clone)]
pub struct Annotator {
    /// `"openai"` as a JSON string, quotes included.
    provider_json: Box<RawValue>,
    prices: Prices,
}

impl Annotator {
    /// An annotator for `provider` with its `prices`.
    pub fn new(provider: &str, prices: Prices) -> Self {
        let provider_json =
            serde_json::value::to_raw_value(provider).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Annotator {
            provider_json,
            prices,
        }
    }

    /// USD cost of the given usage, cache reads and writes at their own rates.
    pub fn cost(&self, u: &Usage) -> f64 {
        self.prices.cost(
            u.prompt_tokens,
            u.completion_tokens,
            u.cached_tokens(),
            u.cache_write_tokens(),
        )
    }

    /// Rewrites one JSON object (a whole reply, or a chunk that needs it): sets `provider`
    /// (an upstream's own `provider` moves to `upstream_provider`), fills `model` if absent and
    /// prices `usage` (an upstream's own cost moves to `usage.upstream_cost`).
    /// Also returns the object's `id`.
    pub fn object(&self, json: &[u8], model_id: &str) -> Result<Annotated, serde_json::Error> {
        let mut map: IndexMap<String, Box<RawValue>> = serde_json::from_slice(json)?;
        let mut usage_out = None;
        if let Some(raw) = map.get_mut("usage")
            && raw.get() != "null"
        {
            let mut u: Usage = serde_json::from_str(raw.get())?;
            if let Some(theirs) = u.cost.take() {
                u.extra.insert("upstream_cost".into(), theirs.into());
            }
            u.cost = Some(self.cost(&u));
            *raw = serde_json::value::to_raw_value(&u)?;
            usage_out = Some(u);
        }
        if let Some(theirs) = map.shift_remove("provider") {
            map.insert("upstream_provider".into(), theirs);
        }
        let at = map.get_index_of("id").map_or(0, |i| i + 1);
        map.shift_insert(at, "provider".into(), self.provider_json.clone());
        if !map.contains_key("model") {
            map.insert("model".into(), serde_json::value::to_raw_value(model_id)?);
        }
        let id = map
            .get("id")
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
        Ok(Annotated {
            body: serde_json::to_vec(&map)?,
            usage: usage_out,
            id,
        })
    }

    /// Appends the client's SSE event for an upstream chunk's `data` to `out`; returns the
    /// usage the chunk carried, if any.
    pub fn chunk_into(&self, data: &str, model_id: &str, out: &mut BytesMut) -> Option<Usage> {
        let bytes = data.as_bytes();
        let needs_parse = memchr::memmem::find(bytes, b"\"usage\"").is_some()
            || memchr::memmem::find(bytes, b"\"provider\"").is_some();
        if needs_parse && let Ok(a) = self.object(bytes, model_id) {
            event_into(&a.body, out);
            return a.usage;
        }
        let Some(rest) = data.trim_start().strip_prefix('{') else {
            event_into(bytes, out);
            return None;
        };
        out.reserve(data.len() + self.provider_json.get().len() + 24);
        out.put_slice(b"data: {\"provider\":");
        out.put_slice(self.provider_json.get().as_bytes());
        if !rest.trim_start().starts_with('}') {
            out.put_u8(b',');
        }
        out.put_slice(rest.as_bytes());
        out.put_slice(b"\n\n");
        None
    }
}

/// Appends `data: <payload>\n\n` to `out`.
pub fn event_into(payload: &[u8], out: &mut BytesMut) {
    out.reserve(payload.len() + 8);
    out.put_slice(b"data: ");
    out.put_slice(payload);
    out.put_slice(b"\n\n");
}

/// The stream terminator.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn ann() -> Annotator {
        Annotator::new(
            "openai",
            Prices {
                input: 2.5,
                output: 10.0,
                cache_read: 2.5,
                cache_write: 2.5,
            },
        )
    }

    fn chunk(data: &str) -> (BytesMut, Option<Usage>) {
        let mut out = BytesMut::new();
        let u = ann().chunk_into(data, "m", &mut out);
        (out, u)
    }

    fn parse_event(b: &[u8]) -> Value {
        let s = std::str::from_utf8(b).expect("utf8");
        let payload = s
            .strip_prefix("data: ")
            .and_then(|s| s.strip_suffix("\n\n"))
            .expect("framed");
        serde_json::from_str(payload).expect("json")
    }

    #[test]
    fn plain_chunk_gets_provider_spliced() {
        let (b, u) = chunk(r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#);
        assert!(u.is_none());
        let v = parse_event(&b);
        assert_eq!(v["provider"], "openai");
        assert_eq!(v["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(parse_event(&chunk("{}").0), json!({"provider":"openai"}));
    }

    #[test]
    fn usage_chunk_is_priced() {
        let (b, u) = chunk(
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":1000000,"completion_tokens":100000,"total_tokens":1100000}}"#,
        );
        let u = u.expect("usage seen");
        assert_eq!(u.prompt_tokens, 1_000_000);
        let v = parse_event(&b);
        assert!((v["usage"]["cost"].as_f64().expect("cost") - 3.5).abs() < 1e-9);
        assert_eq!(v["provider"], "openai");
        let (_, none) = chunk(r#"{"id":"c","choices":[],"usage":null}"#);
        assert!(none.is_none());
    }

    #[test]
    fn upstream_provider_and_cost_are_kept_aside() {
        let Annotated { body: b, id, .. } = ann()
            .object(br#"{"id":"g","provider":"DeepInfra","usage":{"prompt_tokens":10,"completion_tokens":0,"total_tokens":10,"cost":0.5}}"#, "m")
            .expect("valid");
        let v: Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(v["provider"], "openai");
        assert_eq!(v["upstream_provider"], "DeepInfra");
        assert_eq!(v["usage"]["upstream_cost"], 0.5);
        assert_eq!(v["model"], "m", "model filled in when absent");
        assert_eq!(id.as_deref(), Some("g"));
    }
}
