//! The translation conformance suite: recorded wire fixtures under `tests/conformance/`, one
//! folder per case, grouped by direction (client surface → upstream wire):
//!
//! - `request.json`: what the client sent;
//! - `upstream_request.json`: what the upstream must receive — or `error.txt`: the text the
//!   400 must contain when the target cannot express the request;
//! - `upstream_reply.json` / `upstream_reply.sse`: what the upstream answered (optional);
//! - `reply.json` / `reply.sse`: what the client must receive.
//!
//! Every case also checks the invariants that hold whatever the fixture: streamed tool-call
//! arguments reassemble to the final arguments and to valid JSON, and every tool-call id the
//! upstream saw came from the client (ids stay linked). `docs/translation.md` lists every case.
//!
//! `CONFORMANCE_BLESS=1 cargo test --test conformance` rewrites the expected files from the
//! current translation; review the diff before committing it.

use std::path::{Path, PathBuf};

use hero_aibroker_lib::providers::anthropic;
use hero_aibroker_lib::translate::{
    chat_request_to_messages, chat_stream_to_messages, chat_stream_to_responses, chat_to_messages,
    chat_to_responses, messages_reply_to_chat, messages_stream_to_chat, messages_to_chat,
    responses_to_chat,
};
use serde_json::Value;

/// The upstream model id every case uses toward the upstream.
const UPSTREAM_MODEL: &str = "upstream-model";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

fn json(p: &Path) -> Option<Value> {
    read(p).map(|t| serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// The events of an SSE text: (event name or "", data as JSON, or the raw string).
fn events(sse: &str) -> Vec<(String, Value)> {
    sse.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .filter_map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("");
            let data = e.lines().find_map(|l| l.strip_prefix("data: "))?;
            let v = serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned()));
            Some((name.to_owned(), v))
        })
        .collect()
}

/// Clock-dependent fields set to 0 so recordings compare.
fn steady(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if matches!(k.as_str(), "created" | "created_at" | "completed_at")
                        && x.is_number()
                    {
                        *x = 0.into();
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

fn sse_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .map(|(n, d)| {
            let data = match d {
                Value::String(s) if s == "[DONE]" => s.clone(),
                other => other.to_string(),
            };
            if n.is_empty() {
                format!("data: {data}\n\n")
            } else {
                format!("event: {n}\ndata: {data}\n\n")
            }
        })
        .collect()
}

/// One direction's translation functions.
struct Direction {
    request: fn(&Value) -> Result<Value, String>,
    reply: fn(&Value, &Value) -> Result<Value, String>,
    stream: fn(&Value, &str) -> String,
}

fn feed_all(data: &str, mut f: impl FnMut(&str, &mut String)) -> String {
    let mut out = String::new();
    for (_, d) in events(data) {
        let payload = match &d {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        f(&payload, &mut out);
    }
    out
}

fn direction(name: &str) -> Direction {
    match name {
        // An Anthropic Messages client, an OpenAI-compatible upstream.
        "messages_to_chat" => Direction {
            request: |r| {
                messages_to_chat::translate(r)
                    .map(|t| t.body)
                    .map_err(|e| e.message)
            },
            reply: |reply, req| {
                chat_to_messages::translate(reply, req["model"].as_str().unwrap_or(""))
                    .map_err(|e| e.message)
            },
            stream: |req, sse| {
                let mut t = chat_stream_to_messages::StreamTranslator::new(
                    req["model"].as_str().unwrap_or(""),
                );
                let mut out = feed_all(sse, |d, o| t.feed(d, o));
                t.end(&mut out);
                out
            },
        },
        // An OpenAI Responses client, an OpenAI-compatible upstream.
        "responses_to_chat" => Direction {
            request: |r| {
                responses_to_chat::translate(r)
                    .map(|t| t.body)
                    .map_err(|e| e.message)
            },
            reply: |reply, req| chat_to_responses::translate(reply, req, 0).map_err(|e| e.message),
            stream: |req, sse| {
                let mut t = chat_stream_to_responses::ResponsesStream::new(req, 0);
                let mut out = feed_all(sse, |d, o| t.feed(d, o));
                t.end(&mut out);
                out
            },
        },
        // An OpenAI Chat client, the native Anthropic upstream.
        "chat_to_anthropic" => Direction {
            request: |r| {
                chat_request_to_messages::translate(r, UPSTREAM_MODEL)
                    .map(|t| t.body)
                    .map_err(|e| e.message)
            },
            reply: |reply, _| messages_reply_to_chat::translate(reply).map_err(|e| e.message),
            stream: |_, sse| {
                let mut t = messages_stream_to_chat::ChatStream::new();
                feed_all(sse, |d, o| t.feed(d, o))
            },
        },
        // An Anthropic Messages client, the native Anthropic upstream: passed through.
        "messages_to_anthropic" => Direction {
            request: |r| {
                let bytes = anthropic::pass_through(r.to_string().as_bytes(), UPSTREAM_MODEL)
                    .map_err(|e| e.message)?;
                serde_json::from_slice(&bytes).map_err(|e| e.to_string())
            },
            reply: |reply, _| Ok(reply.clone()),
            stream: |_, sse| sse.to_owned(),
        },
        other => panic!("unknown direction folder {other}"),
    }
}

/// Tool-call ids in a JSON tree (`tool_calls[].id`, `tool_use.id`, `tool_use_id`,
/// `tool_call_id`, `call_id`).
fn tool_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let is_id = matches!(k.as_str(), "tool_use_id" | "tool_call_id" | "call_id")
                    || (k == "id"
                        && (m
                            .get("type")
                            .is_some_and(|t| t == "tool_use" || t == "function")));
                if is_id && let Some(s) = x.as_str() {
                    out.push(s.to_owned());
                }
                tool_ids(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| tool_ids(x, out)),
        _ => {}
    }
}

/// Streamed arguments per call reassemble to valid JSON (Chat `tool_calls` deltas, Messages
/// `input_json_delta`, Responses `function_call_arguments.delta`).
fn check_streamed_arguments(case: &str, evs: &[(String, Value)]) {
    use std::collections::BTreeMap;
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    for (_, d) in evs {
        for c in d["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(p) = c["function"]["arguments"].as_str() {
                args.entry(format!("chat{}", c["index"]))
                    .or_default()
                    .push_str(p);
            }
        }
        if d["delta"]["type"] == "input_json_delta" {
            args.entry(format!("msg{}", d["index"]))
                .or_default()
                .push_str(d["delta"]["partial_json"].as_str().unwrap_or(""));
        }
        if d["type"] == "response.function_call_arguments.delta" {
            args.entry(format!("resp{}", d["output_index"]))
                .or_default()
                .push_str(d["delta"].as_str().unwrap_or(""));
        }
        if d["type"] == "response.function_call_arguments.done" {
            let k = format!("resp{}", d["output_index"]);
            assert_eq!(
                args.get(&k).map(String::as_str),
                d["arguments"].as_str(),
                "{case}: .done carries the deltas"
            );
        }
    }
    for (k, a) in &args {
        let v: Value = serde_json::from_str(a)
            .unwrap_or_else(|e| panic!("{case}: arguments of {k} are not JSON ({e}): {a}"));
        assert!(v.is_object(), "{case}: arguments of {k}: {a}");
    }
}

fn run_case(dir: &Path, bless: bool) {
    let case = format!(
        "{}/{}",
        dir.parent()
            .and_then(Path::file_name)
            .map(|s| s.to_string_lossy())
            .unwrap_or_default(),
        dir.file_name()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default()
    );
    let d = direction(&case[..case.find('/').expect("direction/case")]);
    let req = json(&dir.join("request.json")).unwrap_or_else(|| panic!("{case}: request.json"));
    match (d.request)(&req) {
        Err(message) => {
            let want = read(&dir.join("error.txt"))
                .unwrap_or_else(|| panic!("{case}: refused ({message}) but no error.txt"));
            assert!(
                message.contains(want.trim()),
                "{case}: {message:?} does not say {want:?}"
            );
            return;
        }
        Ok(up) => {
            assert!(
                !dir.join("error.txt").exists(),
                "{case}: should have been refused"
            );
            let path = dir.join("upstream_request.json");
            if bless {
                std::fs::write(
                    &path,
                    serde_json::to_string_pretty(&up).expect("json") + "\n",
                )
                .expect("write");
            }
            assert_eq!(
                up,
                json(&path).unwrap_or_else(|| panic!("{case}: upstream_request.json")),
                "{case}: upstream request"
            );
            let (mut from_client, mut upstream) = (Vec::new(), Vec::new());
            tool_ids(&req, &mut from_client);
            tool_ids(&up, &mut upstream);
            for id in upstream {
                let linked = from_client.contains(&id)
                    || from_client
                        .iter()
                        .any(|c| chat_request_to_messages::tool_id(c) == id);
                assert!(
                    linked,
                    "{case}: tool id {id} reached the upstream but the client never sent it"
                );
            }
        }
    }
    if let Some(reply) = json(&dir.join("upstream_reply.json")) {
        let got = steady((d.reply)(&reply, &req).unwrap_or_else(|e| panic!("{case}: {e}")));
        let path = dir.join("reply.json");
        if bless {
            std::fs::write(
                &path,
                serde_json::to_string_pretty(&got).expect("json") + "\n",
            )
            .expect("write");
        }
        assert_eq!(
            got,
            steady(json(&path).unwrap_or_else(|| panic!("{case}: reply.json"))),
            "{case}: reply"
        );
    }
    if let Some(sse) = read(&dir.join("upstream_reply.sse")) {
        check_streamed_arguments(&format!("{case} (upstream)"), &events(&sse));
        let got: Vec<(String, Value)> = events(&(d.stream)(&req, &sse))
            .into_iter()
            .map(|(n, v)| (n, steady(v)))
            .collect();
        check_streamed_arguments(&case, &got);
        let path = dir.join("reply.sse");
        if bless {
            std::fs::write(&path, sse_text(&got)).expect("write");
        }
        let want: Vec<(String, Value)> =
            events(&read(&path).unwrap_or_else(|| panic!("{case}: reply.sse")))
                .into_iter()
                .map(|(n, v)| (n, steady(v)))
                .collect();
        assert_eq!(got, want, "{case}: streamed reply");
    }
}

#[test]
#[expect(
    clippy::disallowed_methods,
    reason = "a developer switch of this test, not broker configuration"
)]
fn every_recorded_case_translates_as_recorded() {
    let bless = std::env::var("CONFORMANCE_BLESS").is_ok_and(|v| v == "1");
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/translation.md"),
    )
    .expect("docs/translation.md");
    let mut n = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root())
        .expect("tests/conformance")
        .map(|e| e.expect("entry").path())
        .collect();
    dirs.sort();
    for direction in dirs {
        let mut cases: Vec<PathBuf> = std::fs::read_dir(&direction)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .collect();
        cases.sort();
        for case in cases {
            run_case(&case, bless);
            let name = format!(
                "{}/{}",
                direction.file_name().expect("name").to_string_lossy(),
                case.file_name().expect("name").to_string_lossy()
            );
            assert!(
                doc.contains(&format!("`{name}`")),
                "docs/translation.md does not list the case `{name}`"
            );
            n += 1;
        }
    }
    assert!(n >= 20, "only {n} conformance cases");
}
