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

use crate::error::ApiError;

/// A request the target surface cannot express.
pub(crate) fn refuse(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, format!("{what}"))
}
