//! Annotating upstream replies on their way to the client: the top-level `provider` that names
//! the backend, `usage.cost` in USD (what the upstream reported it cost, else the registry's
//! prices), and the `x_aibroker` envelope (instance, served model, cost, attempts, request id)
//! on whole replies and on the chunk that carries usage. Stream chunks take a splice-only fast
//! path; only chunks that carry usage (or an upstream `provider`) are parsed.
//!
//! Replies of a verbatim driver (OpenRouter) are passed exactly as sent; they are only read
//! for their usage, cost and id.

use std::borrow::Cow;
use std::sync::LazyLock;

use bytes::{BufMut, BytesMut};
use hero_aibroker_sdk::Usage;
use indexmap::IndexMap;
use memchr::memmem::Finder;
use serde_json::value::RawValue;

use crate::config::registry::Prices;

/// The per-event key scans' searchers, built once (`memmem::find` builds one per call).
static USAGE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
static PROVIDER_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"provider\""));

/// A top-level key of a reply, borrowed from it unless it had escapes.
#[derive(Debug, PartialEq, Eq, Hash, serde::Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl std::borrow::Borrow<str> for Key<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&'static str> for Key<'_> {
    fn from(s: &'static str) -> Self {
        Key(Cow::Borrowed(s))
    }
}

/// A top-level value of a reply as raw JSON text: borrowed from the reply, or written by the
/// broker.
#[derive(Debug)]
enum Val<'a> {
    Borrowed(&'a RawValue),
    Owned(Box<RawValue>),
}

impl Val<'_> {
    fn get(&self) -> &str {
        match self {
            Val::Borrowed(r) => r.get(),
            Val::Owned(r) => r.get(),
        }
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Val<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(d).map(Val::Borrowed)
    }
}

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
    /// Pass replies as sent (read only).
    verbatim: bool,
    /// The broker's view added as `x_aibroker`.
    envelope: Option<Envelope>,
}

/// The broker's view of one answer, as the `x_aibroker` object of the reply.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The provider instance that answered (`openai-1`).
    pub instance: String,
    /// The upstream model id that served.
    pub model: String,
    /// Upstream calls made for the request, this one included.
    pub attempts: u32,
    /// The broker's request id (`x-aibroker-request-id`).
    pub request_id: String,
}

impl Annotator {
    /// An annotator for `provider` with its `prices`.
    pub fn new(provider: &str, prices: Prices) -> Self {
        let provider_json =
            serde_json::value::to_raw_value(provider).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Annotator {
            provider_json,
            prices,
            verbatim: false,
            envelope: None,
        }
    }

    /// Passes replies exactly as sent (`verbatim`), or adds `envelope` as `x_aibroker`.
    pub fn with(mut self, verbatim: bool, envelope: Envelope) -> Self {
        self.verbatim = verbatim;
        self.envelope = (!verbatim).then_some(envelope);
        self
    }

    /// The usage of a reply or chunk as the ledger takes it: `cost` is what the upstream
    /// reported it cost (kept as `upstream_cost` too) or, when it did not, the registry price.
    fn priced(&self, raw: &str) -> Result<Usage, serde_json::Error> {
        let mut u: Usage = serde_json::from_str(raw)?;
        let theirs = u.cost.take().filter(|c| c.is_finite() && *c >= 0.0);
        if let Some(theirs) = theirs {
            u.extra.insert("upstream_cost".into(), theirs.into());
        }
        u.cost = Some(theirs.unwrap_or_else(|| self.cost(&u)));
        Ok(u)
    }

    /// `x_aibroker` for a reply whose charged cost is `cost`.
    fn envelope_json(&self, cost: Option<f64>) -> Option<Box<RawValue>> {
        let e = self.envelope.as_ref()?;
        serde_json::value::to_raw_value(&serde_json::json!({
            "provider": e.instance,
            "model": e.model,
            "cost": cost,
            "attempts": e.attempts,
            "request_id": e.request_id,
        }))
        .ok()
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

    /// Rewrites one JSON object (a whole reply when `whole`, or a chunk that needs it): sets
    /// `provider` (an upstream's own `provider` moves to `upstream_provider`), fills `model` if
    /// absent, prices `usage` (an upstream's own cost is what is charged, also kept as
    /// `usage.upstream_cost`) and adds `x_aibroker` to whole replies and to chunks with usage.
    /// A verbatim annotator returns the object unchanged. Also returns the object's `id`.
    pub fn object(
        &self,
        json: &[u8],
        model_id: &str,
        whole: bool,
    ) -> Result<Annotated, serde_json::Error> {
        // Keys and values borrow from `json` (values stay raw text): the rewrite copies each
        // byte once, into the new body, instead of into a key string and a value box first.
        let mut map: IndexMap<Key<'_>, Val<'_>> = serde_json::from_slice(json)?;
        let id = map
            .get("id")
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
        let usage_out = match map.get("usage").filter(|raw| raw.get() != "null") {
            Some(raw) => Some(self.priced(raw.get())?),
            None => None,
        };
        if self.verbatim {
            return Ok(Annotated {
                body: json.to_vec(),
                usage: usage_out,
                id,
            });
        }
        if let Some(u) = &usage_out
            && let Some(raw) = map.get_mut("usage")
        {
            *raw = Val::Owned(serde_json::value::to_raw_value(u)?);
        }
        if let Some(theirs) = map.shift_remove("provider") {
            map.insert(Key::from("upstream_provider"), theirs);
        }
        let at = map.get_index_of("id").map_or(0, |i| i + 1);
        map.shift_insert(
            at,
            Key::from("provider"),
            Val::Borrowed(&self.provider_json),
        );
        if !map.contains_key("model") {
            map.insert(
                Key::from("model"),
                Val::Owned(serde_json::value::to_raw_value(model_id)?),
            );
        }
        if (whole || usage_out.is_some())
            && let Some(env) = self.envelope_json(usage_out.as_ref().and_then(|u| u.cost))
        {
            map.insert(Key::from("x_aibroker"), Val::Owned(env));
        }
        let mut body = Vec::with_capacity(json.len() + 256);
        body.push(b'{');
        for (i, (k, v)) in map.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            serde_json::to_writer(&mut body, k.0.as_ref())?;
            body.push(b':');
            body.extend_from_slice(v.get().as_bytes());
        }
        body.push(b'}');
        Ok(Annotated {
            body,
            usage: usage_out,
            id,
        })
    }

    /// Appends the client's SSE event for an upstream chunk's `data` to `out`; returns the
    /// usage the chunk carried, if any.
    pub fn chunk_into(&self, data: &str, model_id: &str, out: &mut BytesMut) -> Option<Usage> {
        let bytes = data.as_bytes();
        let has_usage = USAGE_KEY.find(bytes).is_some();
        if self.verbatim {
            // As sent; a chunk with usage is read for it.
            event_into(bytes, out);
            return has_usage
                .then(|| self.object(bytes, model_id, false).ok())
                .flatten()
                .and_then(|a| a.usage);
        }
        let needs_parse = has_usage || PROVIDER_KEY.find(bytes).is_some();
        if needs_parse && let Ok(a) = self.object(bytes, model_id, false) {
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

    fn envelope() -> Envelope {
        Envelope {
            instance: "openai-1".into(),
            model: "gpt-4o-2024-08-06".into(),
            attempts: 2,
            request_id: "req_1".into(),
        }
    }

    #[test]
    fn an_upstream_cost_is_charged_and_the_provider_kept_aside() {
        let Annotated { body: b, id, usage } = ann()
            .with(false, envelope())
            .object(br#"{"id":"g","provider":"DeepInfra","usage":{"prompt_tokens":10,"completion_tokens":0,"total_tokens":10,"cost":0.5}}"#, "m", true)
            .expect("valid");
        let v: Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(v["provider"], "openai");
        assert_eq!(v["upstream_provider"], "DeepInfra");
        assert_eq!(v["usage"]["upstream_cost"], 0.5);
        assert_eq!(
            v["usage"]["cost"], 0.5,
            "the upstream's figure is what is charged"
        );
        assert_eq!(usage.and_then(|u| u.cost), Some(0.5));
        assert_eq!(v["model"], "m", "model filled in when absent");
        assert_eq!(id.as_deref(), Some("g"));
        assert_eq!(
            v["x_aibroker"],
            json!({"provider": "openai-1", "model": "gpt-4o-2024-08-06", "cost": 0.5,
                   "attempts": 2, "request_id": "req_1"})
        );
    }

    #[test]
    fn verbatim_replies_and_chunks_pass_byte_for_byte_and_are_still_read() {
        let a = ann().with(true, envelope());
        let body = br#"{"id":"gen-1","provider":"DeepInfra","model":"x/y","usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,"cost":0.00042},"extra":{"k":[1,2]}}"#;
        let got = a.object(body, "m", true).expect("valid");
        assert_eq!(got.body, body.to_vec());
        let u = got.usage.expect("usage read");
        assert_eq!(u.cost, Some(0.00042));
        assert_eq!(u.extra["upstream_cost"], 0.00042);
        let mut out = BytesMut::new();
        let chunk =
            r#"{"id":"gen-1","provider":"DeepInfra","choices":[{"delta":{"content":"Hi"}}]}"#;
        assert!(a.chunk_into(chunk, "m", &mut out).is_none());
        assert_eq!(&out[..], format!("data: {chunk}\n\n").as_bytes());
        let mut out = BytesMut::new();
        let last = r#"{"id":"gen-1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"cost":0.1}}"#;
        let u = a.chunk_into(last, "m", &mut out).expect("usage read");
        assert_eq!(u.cost, Some(0.1));
        assert_eq!(&out[..], format!("data: {last}\n\n").as_bytes());
    }

    #[test]
    fn a_rewritten_reply_keeps_every_key_in_order_escapes_included() {
        let got = ann()
            .object(
                br#"{"id":"c","we\"ird":[1, {"x":"\u00e9"}],"choices":[],"dup":1,"dup":2,"usage":null}"#,
                "m",
                true,
            )
            .expect("valid");
        let text = String::from_utf8(got.body).expect("utf8");
        assert_eq!(
            text,
            r#"{"id":"c","provider":"openai","we\"ird":[1, {"x":"\u00e9"}],"choices":[],"dup":2,"usage":null,"model":"m"}"#
        );
        assert!(got.usage.is_none());
        assert_eq!(got.id.as_deref(), Some("c"));
    }

    #[test]
    fn without_an_upstream_cost_the_registry_prices_it() {
        let got = ann()
            .with(false, envelope())
            .object(br#"{"id":"c","usage":{"prompt_tokens":1000000,"completion_tokens":0,"total_tokens":1000000}}"#, "m", true)
            .expect("valid");
        let v: Value = serde_json::from_slice(&got.body).expect("json");
        assert!((v["usage"]["cost"].as_f64().expect("cost") - 2.5).abs() < 1e-9);
        assert!(v["usage"].get("upstream_cost").is_none());
        assert!((v["x_aibroker"]["cost"].as_f64().expect("cost") - 2.5).abs() < 1e-9);
    }
}
