//! `transforms: ["middle-out"]` (and OpenRouter's `context-compression` plugin): when a
//! conversation does not fit the model's context window, drop messages from the middle —
//! keeping the first (usually the system prompt) and the most recent ones, and never leaving
//! a tool result without the assistant message that called it.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Bytes of JSON per token, the same rough estimate the capability filter uses.
pub const BYTES_PER_TOKEN: usize = 4;

#[derive(Deserialize)]
struct Role<'a> {
    #[serde(borrow, default)]
    role: Option<std::borrow::Cow<'a, str>>,
}

fn role(m: &RawValue) -> String {
    serde_json::from_str::<Role<'_>>(m.get())
        .ok()
        .and_then(|r| r.role)
        .map(|r| r.into_owned())
        .unwrap_or_default()
}

/// Messages trimmed so their estimated size fits `max_tokens`, or `None` when nothing had to
/// change (or the messages are not an array of objects). At least the first and the last
/// message are kept, even if they alone are too large.
pub fn middle_out(messages: &RawValue, max_tokens: u64) -> Option<Box<RawValue>> {
    let limit = usize::try_from(max_tokens)
        .unwrap_or(usize::MAX)
        .saturating_mul(BYTES_PER_TOKEN);
    if messages.get().len() <= limit {
        return None;
    }
    let msgs: Vec<&RawValue> = serde_json::from_str(messages.get()).ok()?;
    // Blocks: a message plus the tool results that follow it, removed together so no tool
    // result outlives the assistant message that called it (and no call loses its results).
    let mut blocks: Vec<Vec<&RawValue>> = Vec::with_capacity(msgs.len());
    for m in msgs {
        match blocks.last_mut() {
            Some(block) if role(m) == "tool" => block.push(m),
            _ => blocks.push(vec![m]),
        }
    }
    let size =
        |b: &[Vec<&RawValue>]| b.iter().flatten().map(|r| r.get().len() + 1).sum::<usize>() + 1;
    let before = blocks.len();
    while blocks.len() > 2 && size(&blocks) > limit {
        blocks.remove(blocks.len() / 2);
    }
    if blocks.len() == before {
        return None;
    }
    let msgs: Vec<&RawValue> = blocks.into_iter().flatten().collect();
    let mut out = String::with_capacity(msgs.iter().map(|m| m.get().len() + 1).sum());
    out.push('[');
    for (i, m) in msgs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(m.get());
    }
    out.push(']');
    RawValue::from_string(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn raw(v: &Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).expect("raw")
    }

    #[test]
    fn keeps_the_ends_and_drops_the_middle() {
        let filler = "x".repeat(400);
        let mut msgs = vec![json!({"role":"system","content":"be brief"})];
        for i in 0..10 {
            msgs.push(json!({"role":"user","content":format!("{i} {filler}")}));
        }
        msgs.push(json!({"role":"user","content":"the question"}));
        let v = Value::Array(msgs);
        assert!(middle_out(&raw(&v), 100_000).is_none(), "fits: untouched");
        let out = middle_out(&raw(&v), 400).expect("trimmed");
        let out: Vec<Value> = serde_json::from_str(out.get()).expect("json");
        assert!(out.len() < 12 && out.len() >= 2, "{}", out.len());
        assert_eq!(out[0]["content"], "be brief");
        assert_eq!(out[out.len() - 1]["content"], "the question");
        assert!(serde_json::to_string(&out).expect("s").len() <= 400 * BYTES_PER_TOKEN);
    }

    #[test]
    fn never_leaves_orphan_tool_results() {
        let filler = "y".repeat(300);
        let v = json!([
            {"role":"system","content":"s"},
            {"role":"user","content":filler},
            {"role":"user","content":filler},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":filler},
            {"role":"user","content":filler},
            {"role":"user","content":"last"}
        ]);
        let out = middle_out(&raw(&v), 250).expect("trimmed");
        let out: Vec<Value> = serde_json::from_str(out.get()).expect("json");
        for (i, m) in out.iter().enumerate() {
            if m["role"] == "tool" {
                assert!(
                    i > 0 && out[i - 1]["tool_calls"].is_array(),
                    "orphan: {out:?}"
                );
            }
        }
        assert_eq!(out.last().expect("last")["content"], "last");
    }
}
