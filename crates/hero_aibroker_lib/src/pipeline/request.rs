//! A client request as the relay needs it: the few fields the broker acts on (`model`,
//! `stream`), checked, and every other top-level field kept as raw JSON so it reaches the
//! upstream byte for byte without a deep parse.

use bytes::Bytes;
use hero_aibroker_sdk::ErrorCode;
use indexmap::IndexMap;
use serde_json::value::RawValue;

use crate::error::{ApiError, printable};
use crate::pipeline::router::{Endpoint, PARAMETERS, ProviderPrefs, RouteOptions};
use crate::providers::ClientRequest;

/// Fields a client may not set: the broker alone chooses where a request goes (no SSRF).
const FORBIDDEN_FIELDS: &[&str] = &[
    "api_base",
    "base_url",
    "api_url",
    "api_key",
    "custom_llm_provider",
];

/// OpenRouter routing fields the broker acts on itself; never sent upstream as the client
/// wrote them (OpenRouter gets `provider` as [`forwarded_provider`] makes it).
const ROUTING_FIELDS: &[&str] = &["models", "route", "provider", "transforms"];

/// A parsed, validated request body.
#[derive(Debug)]
pub struct ParsedRequest {
    pub endpoint: Endpoint,
    pub model: String,
    pub stream: bool,
    /// All top-level fields in client order, including `model` and `stream`.
    pub fields: IndexMap<String, Box<RawValue>>,
    /// `models`, `provider`, `user` (session) and the parameters used.
    pub route: RouteOptions,
    /// `transforms: ["middle-out"]` or the `context-compression` plugin.
    pub middle_out: bool,
    /// `HTTP-Referer` and `X-Title` for OpenRouter upstreams (the client's or the defaults).
    pub attribution: (Option<String>, Option<String>),
    /// The client's Anthropic Messages request this Chat request was translated from, for a
    /// native Anthropic upstream to pass through.
    pub native: Option<crate::providers::NativeMessages>,
    /// A transcription's spooled upload (the body above is only its routing JSON).
    pub upload: Option<std::sync::Arc<crate::pipeline::audio::Upload>>,
    /// The brokers the request passed through (`x-aibroker-chain`), this one last.
    pub chain: Vec<String>,
    /// The client's `provider` object as it goes to OpenRouter upstreams: the names of the
    /// broker's own providers taken out of `order`, `only` and `ignore` (the broker applied
    /// those), everything else as sent (see [`forwarded_provider`]).
    pub provider_forward: Option<Box<RawValue>>,
}

/// The `provider` object `raw` for OpenRouter: each of `order`, `only`, `ignore` without the
/// names `is_ours` says are the broker's providers (a list left empty is left out), every
/// other field as the client sent it. `None` when nothing is left to forward.
pub fn forwarded_provider(raw: &str, is_ours: impl Fn(&str) -> bool) -> Option<Box<RawValue>> {
    let mut obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw).ok()?;
    for list in ["order", "only", "ignore"] {
        let Some(serde_json::Value::Array(names)) = obj.get_mut(list) else {
            continue;
        };
        names.retain(|n| n.as_str().is_some_and(|n| !is_ours(n)));
        if names.is_empty() {
            obj.remove(list);
        }
    }
    if obj.is_empty() {
        return None;
    }
    serde_json::value::to_raw_value(&obj).ok()
}

impl ParsedRequest {
    /// A top-level string field, if the request has it as a string.
    pub fn text_field(&self, name: &str) -> Option<String> {
        serde_json::from_str(self.fields.get(name)?.get()).ok()
    }

    /// Parses and validates a body for `endpoint`; errors are 400s naming the problem.
    pub fn parse(endpoint: Endpoint, body: &[u8]) -> Result<Self, ApiError> {
        if body.is_empty() {
            return Err(invalid(
                ErrorCode::InvalidJson,
                "The request body is empty; send a JSON object.",
            ));
        }
        let fields: IndexMap<String, Box<RawValue>> =
            serde_json::from_slice(body).map_err(|e| {
                let msg = if e.is_data() && body.first().is_some_and(|b| *b != b'{') {
                    "The request body must be a JSON object.".to_owned()
                } else {
                    format!("The request body is not valid JSON: {e}.")
                };
                invalid(ErrorCode::InvalidJson, msg)
            })?;
        for f in FORBIDDEN_FIELDS {
            if fields.contains_key(*f) {
                return Err(invalid(
                    ErrorCode::InvalidRequest,
                    format!(
                        "The field `{f}` is not allowed: the broker chooses the upstream provider and its credentials."
                    ),
                ));
            }
        }
        let mut models: Vec<String> = match fields.get("models") {
            None => Vec::new(),
            Some(raw) => serde_json::from_str::<Option<Vec<String>>>(raw.get())
                .map_err(|_| {
                    invalid(
                        ErrorCode::InvalidRequest,
                        "The field `models` must be an array of model names.",
                    )
                })?
                .unwrap_or_default(),
        };
        let model: String = match fields.get("model") {
            None if !models.is_empty() => models.remove(0),
            None => return Err(missing("model")),
            Some(raw) => serde_json::from_str(raw.get()).map_err(|_| {
                invalid(
                    ErrorCode::InvalidRequest,
                    "The field `model` must be a string.",
                )
            })?,
        };
        models.retain(|m| *m != model && !m.is_empty());
        models.dedup();
        if model.is_empty() {
            return Err(invalid(
                ErrorCode::InvalidRequest,
                "The field `model` must not be empty.",
            ));
        }
        let stream = match fields.get("stream") {
            None => false,
            Some(raw) => serde_json::from_str::<Option<bool>>(raw.get())
                .map_err(|_| {
                    invalid(
                        ErrorCode::InvalidRequest,
                        "The field `stream` must be a boolean.",
                    )
                })?
                .unwrap_or(false),
        };
        let (required, shape) = match endpoint {
            Endpoint::Chat => ("messages", Shape::Array),
            Endpoint::Completions => ("prompt", Shape::Any),
            Endpoint::Embeddings | Endpoint::Speech => ("input", Shape::Any),
            // The audio upload: the multipart surface names it here for the router.
            Endpoint::Transcriptions | Endpoint::Translations => ("file", Shape::Any),
        };
        match fields.get(required) {
            None => return Err(missing(required)),
            Some(raw) if shape == Shape::Array && !raw.get().starts_with('[') => {
                return Err(invalid(
                    ErrorCode::InvalidRequest,
                    format!("The field `{required}` must be an array."),
                ));
            }
            Some(_) => {}
        }
        if endpoint == Endpoint::Embeddings && stream {
            return Err(invalid(
                ErrorCode::InvalidRequest,
                "Embeddings cannot be streamed.",
            ));
        }
        let (route, middle_out) = routing(&fields, models)?;
        Ok(ParsedRequest {
            endpoint,
            model,
            stream,
            fields,
            route,
            middle_out,
            attribution: (None, None),
            native: None,
            upload: None,
            chain: Vec::new(),
            provider_forward: None,
        })
    }

    /// Applies `middle-out` for a model with `context_window` tokens: the oldest messages after
    /// the first are dropped until the prompt estimate fits (leaving room for `max_tokens`).
    /// Returns true if messages were dropped.
    pub fn trim_to_context(&mut self, context_window: u64) -> bool {
        if !self.middle_out || self.endpoint != Endpoint::Chat {
            return false;
        }
        let reserve = self.max_output_tokens().unwrap_or(0);
        let budget = context_window.saturating_sub(reserve).max(1);
        let Some(messages) = self.fields.get("messages") else {
            return false;
        };
        match crate::pipeline::transforms::middle_out(messages, budget) {
            Some(trimmed) => {
                self.fields.insert("messages".to_owned(), trimmed);
                true
            }
            None => false,
        }
    }

    /// The output limit the client set (`max_completion_tokens`, else `max_tokens`).
    pub fn max_output_tokens(&self) -> Option<u64> {
        ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|k| self.fields.get(*k))
            .and_then(|v| v.get().parse::<u64>().ok())
    }

    /// What this request needs of a model: capabilities it uses and a prompt-size estimate
    /// (about 4 bytes of JSON per token, deliberately rough: it only rules out models whose
    /// context window is clearly too small). Reads raw JSON only, no deep parse.
    pub fn needs(&self) -> crate::pipeline::router::Needs {
        let raw = |k: &str| self.fields.get(k).map(|v| v.get());
        let non_empty_array = |k: &str| {
            raw(k).is_some_and(|v| {
                v.starts_with('[') && v.trim_start_matches('[').trim_start() != "]"
            })
        };
        let mut caps = Vec::new();
        let chat = self.endpoint == Endpoint::Chat;
        if chat && non_empty_array("tools") || non_empty_array("functions") {
            caps.push("tools");
        }
        let messages = raw("messages").unwrap_or_default();
        if chat
            && (memchr::memmem::find(messages.as_bytes(), b"\"image_url\"").is_some()
                || memchr::memmem::find(messages.as_bytes(), b"\"input_image\"").is_some())
        {
            caps.push("vision");
        }
        if chat && raw("response_format").is_some_and(|v| v.contains("\"json_schema\"")) {
            caps.push("json_schema");
        }
        if chat && raw("reasoning").is_some_and(|v| v != "null")
            || raw("reasoning_effort").is_some_and(|v| v != "null")
        {
            caps.push("reasoning");
        }
        let prompt = match self.endpoint {
            Endpoint::Chat => messages.len(),
            Endpoint::Completions => raw("prompt").map_or(0, str::len),
            Endpoint::Embeddings | Endpoint::Speech => raw("input").map_or(0, str::len),
            Endpoint::Transcriptions | Endpoint::Translations => 0,
        };
        crate::pipeline::router::Needs {
            capabilities: caps,
            prompt_tokens: (prompt / 4) as u64,
        }
    }

    /// The requested model, safe to echo.
    pub fn model_printable(&self) -> String {
        printable(&self.model)
    }
}

/// Reads the OpenRouter routing fields and the session (`user`).
fn routing(
    fields: &IndexMap<String, Box<RawValue>>,
    fallbacks: Vec<String>,
) -> Result<(RouteOptions, bool), ApiError> {
    let bad = |m: String| invalid(ErrorCode::InvalidRequest, m);
    if let Some(raw) = fields.get("route") {
        match serde_json::from_str::<Option<String>>(raw.get()) {
            Ok(None) => {}
            Ok(Some(r)) if r == "fallback" => {}
            _ => {
                return Err(bad(
                    "The field `route` must be \"fallback\" (the only routing mode; list fallback models in `models`).".into(),
                ));
            }
        }
    }
    let prefs = match fields.get("provider") {
        None => ProviderPrefs {
            allow_fallbacks: true,
            ..ProviderPrefs::default()
        },
        Some(raw) => ProviderPrefs::parse(raw.get()).map_err(bad)?,
    };
    let mut middle_out = false;
    if let Some(raw) = fields.get("transforms") {
        let transforms: Vec<String> = serde_json::from_str::<Option<Vec<String>>>(raw.get())
            .map_err(|_| bad("The field `transforms` must be an array of strings.".into()))?
            .unwrap_or_default();
        for t in transforms {
            match t.as_str() {
                "middle-out" => middle_out = true,
                other => {
                    return Err(bad(format!(
                        "Unknown transform {:?}: the broker supports \"middle-out\".",
                        printable(other)
                    )));
                }
            }
        }
    }
    if let Some(raw) = fields.get("plugins")
        && memchr::memmem::find(raw.get().as_bytes(), b"context-compression").is_some()
    {
        middle_out = true;
    }
    let session = fields
        .get("user")
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
        .filter(|s| !s.is_empty());
    let params = fields
        .keys()
        .filter(|k| PARAMETERS.contains(&k.as_str()))
        .cloned()
        .collect();
    Ok((
        RouteOptions {
            fallbacks,
            prefs,
            session,
            params,
        },
        middle_out,
    ))
}

#[derive(PartialEq)]
enum Shape {
    Array,
    Any,
}

fn write_key(out: &mut Vec<u8>, key: &str) {
    // A String always serializes.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
}

fn invalid(code: ErrorCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(code, msg)
}

fn missing(field: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidRequest,
        format!("The required field `{field}` is missing."),
    )
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::new(
        ErrorCode::Internal,
        format!("could not build the upstream request: {e}"),
    )
}

/// The messages without OpenRouter's `reasoning` / `reasoning_details` (for upstreams that know
/// no such fields).
fn without_reasoning(messages: &str) -> Result<Vec<u8>, ApiError> {
    let mut list: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(messages)
        .map_err(|_| {
            invalid(
                ErrorCode::InvalidRequest,
                "The field `messages` must be a list of objects.",
            )
        })?;
    for m in &mut list {
        if m.remove("reasoning_details").is_some() {
            m.remove("reasoning");
        }
    }
    serde_json::to_vec(&list).map_err(internal)
}

impl ClientRequest for ParsedRequest {
    fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    fn stream(&self) -> bool {
        self.stream
    }

    fn attribution(&self) -> (Option<&str>, Option<&str>) {
        (self.attribution.0.as_deref(), self.attribution.1.as_deref())
    }

    fn native_messages(&self) -> Option<&crate::providers::NativeMessages> {
        self.native.as_ref()
    }

    fn chain(&self) -> &[String] {
        &self.chain
    }

    fn has_reasoning_details(&self) -> bool {
        self.fields.get("messages").is_some_and(|m| {
            memchr::memmem::find(m.get().as_bytes(), b"\"reasoning_details\"").is_some()
        })
    }

    /// The body for an OpenAI-compatible upstream: the client's fields in order with `model`
    /// replaced by the backend's id and, for streams, `stream_options.include_usage` forced on
    /// (other `stream_options` keys are kept). The routing fields the broker consumed
    /// (`models`, `route`, `provider`, `transforms`) are left out; `plugins` and the messages'
    /// `reasoning` / `reasoning_details` only reach OpenRouter.
    fn openai_body(&self, model_id: &str, keep_plugins: bool) -> Result<Bytes, ApiError> {
        let mut out = Vec::with_capacity(
            self.fields
                .values()
                .map(|v| v.get().len() + 16)
                .sum::<usize>()
                + 64,
        );
        out.push(b'{');
        write_key(&mut out, "model");
        serde_json::to_writer(&mut out, model_id).map_err(internal)?;
        for (k, v) in &self.fields {
            if k == "model"
                || (self.stream && k == "stream_options")
                || ROUTING_FIELDS.contains(&k.as_str())
                || (k == "plugins" && !keep_plugins)
            {
                continue;
            }
            out.push(b',');
            write_key(&mut out, k);
            if k == "messages" && !keep_plugins && self.has_reasoning_details() {
                out.extend_from_slice(&without_reasoning(v.get())?);
            } else {
                out.extend_from_slice(v.get().as_bytes());
            }
        }
        if keep_plugins && let Some(p) = &self.provider_forward {
            out.push(b',');
            write_key(&mut out, "provider");
            out.extend_from_slice(p.get().as_bytes());
        }
        if self.stream {
            let mut opts: serde_json::Map<String, serde_json::Value> =
                match self.fields.get("stream_options") {
                    Some(raw) => serde_json::from_str::<Option<_>>(raw.get())
                        .map_err(|_| {
                            invalid(
                                ErrorCode::InvalidRequest,
                                "The field `stream_options` must be an object.",
                            )
                        })?
                        .unwrap_or_default(),
                    None => serde_json::Map::new(),
                };
            opts.insert("include_usage".into(), serde_json::Value::Bool(true));
            out.push(b',');
            write_key(&mut out, "stream_options");
            serde_json::to_writer(&mut out, &opts).map_err(internal)?;
        }
        out.push(b'}');
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(ep: Endpoint, body: &str) -> Result<ParsedRequest, ApiError> {
        ParsedRequest::parse(ep, body.as_bytes())
    }

    #[test]
    fn unknown_fields_pass_through_in_order_and_model_is_replaced() {
        let r = parse(
            Endpoint::Chat,
            r#"{"model":"small","messages":[{"role":"user","content":"hi"}],"vendor_x":{"deep":[1,2]},"temperature":0.5}"#,
        )
        .expect("valid");
        let out: Value = serde_json::from_slice(&r.openai_body("gpt-small", false).expect("body"))
            .expect("json");
        assert_eq!(
            out,
            json!({"model":"gpt-small","messages":[{"role":"user","content":"hi"}],"vendor_x":{"deep":[1,2]},"temperature":0.5})
        );
    }

    #[test]
    fn streams_ask_for_usage_and_keep_other_stream_options() {
        let r = parse(
            Endpoint::Chat,
            r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":false,"include_obfuscation":false}}"#,
        )
        .expect("valid");
        assert!(r.stream);
        let out: Value =
            serde_json::from_slice(&r.openai_body("x", false).expect("body")).expect("json");
        assert_eq!(
            out["stream_options"],
            json!({"include_usage":true,"include_obfuscation":false})
        );
        assert_eq!(out["stream"], true);
    }

    #[test]
    fn bad_bodies_are_clear_400s() {
        let cases = [
            ("", "empty"),
            ("{", "not valid JSON"),
            ("[1]", "must be a JSON object"),
            (r#"{"messages":[]}"#, "`model` is missing"),
            (r#"{"model":7,"messages":[]}"#, "`model` must be a string"),
            (r#"{"model":"m"}"#, "`messages` is missing"),
            (
                r#"{"model":"m","messages":"hi"}"#,
                "`messages` must be an array",
            ),
            (
                r#"{"model":"m","messages":[],"stream":"yes"}"#,
                "`stream` must be a boolean",
            ),
            (
                r#"{"model":"m","messages":[],"api_base":"http://169.254.169.254"}"#,
                "`api_base` is not allowed",
            ),
        ];
        for (body, want) in cases {
            let e = parse(Endpoint::Chat, body).expect_err(body);
            assert_eq!(e.code.http_status(), 400, "{body}");
            assert!(e.message.contains(want), "{body}: {}", e.message);
        }
        let e = ParsedRequest::parse(Endpoint::Chat, b"{\"model\":\"\xff\",\"messages\":[]}")
            .expect_err("utf8");
        assert_eq!(e.code, ErrorCode::InvalidJson);
    }

    #[test]
    fn needs_are_read_from_the_request() {
        let r = parse(
            Endpoint::Chat,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:"}}]}],
                "tools":[{"type":"function","function":{"name":"f"}}],"response_format":{"type":"json_schema","json_schema":{}},
                "reasoning_effort":"high"}"#,
        )
        .expect("valid");
        assert_eq!(
            r.needs().capabilities,
            ["tools", "vision", "json_schema", "reasoning"]
        );
        let plain = parse(
            Endpoint::Chat,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[]}"#,
        )
        .expect("valid");
        assert!(
            plain.needs().capabilities.is_empty(),
            "an empty tools list needs nothing"
        );
        assert!(plain.needs().prompt_tokens < 20);
    }

    #[test]
    fn endpoint_specific_fields() {
        assert!(parse(Endpoint::Embeddings, r#"{"model":"e","input":"x"}"#).is_ok());
        assert!(
            parse(
                Endpoint::Embeddings,
                r#"{"model":"e","input":"x","stream":true}"#
            )
            .is_err()
        );
        assert!(parse(Endpoint::Completions, r#"{"model":"c","prompt":"x"}"#).is_ok());
        assert!(parse(Endpoint::Completions, r#"{"model":"c"}"#).is_err());
    }
}
