//! The request pipeline: parse the client's body ([`request`], with [`transforms`] such as
//! `middle-out`), plan candidates ([`router`]), walk the plan through the providers' drivers
//! and relay the winner chunk by chunk ([`relay`]), reading upstream SSE with the SDK's parser and
//! annotating what reaches the client with provider and cost ([`sse`]).

pub mod audio;
pub mod relay;
pub mod request;
pub mod router;
pub mod sse;
pub mod transforms;
