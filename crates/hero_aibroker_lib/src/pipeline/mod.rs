//! The request pipeline: parse the client's body ([`request`], with [`transforms`] such as
//! `middle-out`), plan candidates ([`router`]), walk the plan through the providers' drivers
//! and relay the winner chunk by chunk ([`relay`]), reading upstream SSE ([`sse_parse`]) and
//! annotating what reaches the client with provider and cost ([`sse`]).

pub mod relay;
pub mod request;
pub mod router;
pub mod sse;
pub mod sse_parse;
pub mod transforms;
