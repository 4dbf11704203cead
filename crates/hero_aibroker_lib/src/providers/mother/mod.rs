//! Mother brokers (cascade): a child broker forwards to a mother over TCP, and each enabled
//! mother is one more provider (`kind: mother`, named by its id, `ai_broker_mother`, …) whose
//! models are the mother's `/v1/models` ([`super::listed`]). The wire is the OpenAI-compatible one,
//! plus the cascade headers: `x-aibroker-chain` (the ids of the brokers the request passed
//! through, this one last) and `x-aibroker-hop` (their count), so a loop or a chain longer than
//! `CASCADE_MAX_HOPS` is refused before any upstream call; the mother's own request id
//! (`x-aibroker-request-id`) is recorded beside the child's.

use futures_util::future::BoxFuture;
use hero_aibroker_sdk::admin::KeyCheck;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::openai_compat::{OpenAiCompat, request_builder};
use super::{Chunk, ClientRequest, Driver, Verdict};
use crate::error::ApiError;
use crate::health::pool::Instance;

/// The kind name of mother providers.
pub const KIND: &str = "mother";

/// The header carrying the chain of broker ids a request passed through.
pub const CHAIN_HEADER: &str = "x-aibroker-chain";

/// See the module docs.
#[derive(Debug)]
pub struct Mother;

static OPENAI_COMPAT: OpenAiCompat = OpenAiCompat;

impl Driver for Mother {
    fn request(
        &self,
        client: &reqwest::Client,
        instance: &Instance,
        req: &dyn ClientRequest,
        model_id: &str,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        // The mother's own drivers decide what its upstreams get (`plugins`, reasoning details).
        let rb = request_builder(client, instance, req, model_id, true)?;
        let chain = req.chain();
        Ok(rb
            .header(CHAIN_HEADER, chain.join(","))
            .header("x-aibroker-hop", chain.len().to_string()))
    }

    fn classify(&self, status: StatusCode, headers: &HeaderMap) -> Verdict {
        OPENAI_COMPAT.classify(status, headers)
    }

    fn chunk(&self, data: &str) -> Chunk {
        OPENAI_COMPAT.chunk(data)
    }

    fn upstream_request_id(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get("x-aibroker-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    fn check_key<'a>(
        &'a self,
        client: &'a reqwest::Client,
        instance: &'a Instance,
    ) -> BoxFuture<'a, KeyCheck> {
        OPENAI_COMPAT.check_key(client, instance)
    }
}
