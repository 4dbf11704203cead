//! Translation between the client surfaces the broker speaks: OpenAI Chat, Anthropic
//! Messages and OpenAI Responses, one file per direction. A translation never drops what the
//! target can express; what it cannot express is refused with a 400 naming it, or — for
//! fields the Anthropic API documents as hints (thinking, `cache_control`, `top_k`) — left out
//! with a note the caller puts in the request's trace.

pub mod chat_request_to_messages;
pub mod chat_stream_to_messages;
pub mod chat_stream_to_responses;
pub mod chat_to_messages;
pub mod chat_to_responses;
pub mod messages_reply_to_chat;
pub mod messages_stream_to_chat;
pub mod messages_to_chat;
pub mod responses_to_chat;

use hero_aibroker_sdk::ErrorCode;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Adds `what` to the left-out list once.
pub(crate) fn note(dropped: &mut Vec<String>, what: &str) {
    if !dropped.iter().any(|d| d == what) {
        dropped.push(what.to_owned());
    }
}

/// Notes every non-null field of `obj` that is neither in `mapped` nor handled elsewhere:
/// a known hint by its name, anything else as `unknown field <name>`.
pub(crate) fn note_unmapped(
    obj: &Map<String, Value>,
    mapped: &[&str],
    hints: &[&str],
    dropped: &mut Vec<String>,
) {
    for (k, v) in obj {
        if v.is_null() || mapped.contains(&k.as_str()) {
            continue;
        }
        if hints.contains(&k.as_str()) {
            note(dropped, k);
        } else {
            note(dropped, &format!("unknown field {k}"));
        }
    }
}

/// A request the target surface cannot express.
pub(crate) fn refuse(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, format!("{what}"))
}
