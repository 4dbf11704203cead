//! OpenRouter: the OpenAI-compatible wire plus what only OpenRouter understands — the
//! `plugins` request field, app attribution headers (`HTTP-Referer`, `X-Title`: the client's,
//! else `OPENROUTER_HTTP_REFERER` / `OPENROUTER_X_TITLE`), and its live model catalog
//! ([`catalog`]).

pub mod catalog;
pub mod endpoints;

use futures_util::future::BoxFuture;
use hero_aibroker_sdk::admin::KeyCheck;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::openai_compat::{OpenAiCompat, request_builder};
use super::{Chunk, ClientRequest, Driver, Verdict};
use crate::error::ApiError;
use crate::health::pool::Instance;

/// The kind name (`kind: openrouter`); the built-in provider `openrouter` has it.
pub const KIND: &str = "openrouter";

/// See the module docs.
#[derive(Debug)]
pub struct OpenRouter;

/// What OpenRouter shares with every OpenAI-compatible provider.
static OPENAI_COMPAT: OpenAiCompat = OpenAiCompat;

impl Driver for OpenRouter {
    fn request(
        &self,
        client: &reqwest::Client,
        instance: &Instance,
        req: &dyn ClientRequest,
        model_id: &str,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        let mut rb = request_builder(client, instance, req, model_id, true)?;
        let (referer, title) = req.attribution();
        if let Some(referer) = referer {
            rb = rb.header("HTTP-Referer", referer);
        }
        if let Some(title) = title {
            rb = rb.header("X-Title", title);
        }
        Ok(rb)
    }

    fn classify(&self, status: StatusCode, headers: &HeaderMap) -> Verdict {
        OPENAI_COMPAT.classify(status, headers)
    }

    fn chunk(&self, data: &str) -> Chunk {
        OPENAI_COMPAT.chunk(data)
    }

    fn verbatim(&self) -> bool {
        true
    }

    fn check_key<'a>(
        &'a self,
        client: &'a reqwest::Client,
        instance: &'a Instance,
    ) -> BoxFuture<'a, KeyCheck> {
        OPENAI_COMPAT.check_key(client, instance)
    }
}
