//! OpenRouter's per-model endpoint lists (`GET /models/{author}/{slug}/endpoints`): which
//! sub-providers serve a model, at what price, with what uptime. Refreshed on the catalog's
//! schedule for the OpenRouter models the registry routes to — the models file's first, at most
//! [`MAX_MODELS`] of them, a few at a time — each model keeping its last good list when a fetch
//! fails. `GET /v1/models/{id}/endpoints` shows them beside the broker's own backends.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures_util::StreamExt;
use serde_json::Value;

use super::catalog::{PROVIDER, Timeouts, get};
use crate::config::registry::Registry;
use crate::secret::Secret;

/// Models whose endpoint lists are kept.
pub const MAX_MODELS: usize = 100;

/// Endpoint lists fetched at once.
const CONCURRENCY: usize = 4;

/// A model's sub-provider endpoints, as OpenRouter lists them.
pub type Endpoints = Arc<Vec<Value>>;

/// The last good endpoint list of each OpenRouter model.
#[derive(Debug, Default)]
pub struct SubEndpoints(ArcSwap<HashMap<String, Endpoints>>);

impl SubEndpoints {
    /// The last good list of OpenRouter model `model_id`, if one was fetched.
    pub fn get(&self, model_id: &str) -> Option<Endpoints> {
        self.0.load().get(model_id).cloned()
    }

    /// The OpenRouter model ids `registry` routes to: the models file's first, then the
    /// catalog's, without repeats, at most [`MAX_MODELS`].
    pub fn wanted(registry: &Registry) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for from_catalog in [false, true] {
            for m in registry
                .models
                .values()
                .filter(|m| m.from_catalog == from_catalog)
            {
                for b in m.backends.iter().filter(|b| b.provider == PROVIDER) {
                    if ids.len() < MAX_MODELS && !ids.contains(&b.model_id) {
                        ids.push(b.model_id.clone());
                    }
                }
            }
        }
        ids
    }

    /// Fetches the lists of `ids` from OpenRouter at `base`; each success replaces that model's
    /// list, each failure keeps the last good one. Returns (fetched, failed).
    pub async fn refresh(
        &self,
        client: &reqwest::Client,
        base: &str,
        key: &Secret,
        ids: Vec<String>,
        timeouts: Timeouts,
    ) -> (usize, usize) {
        let base = base.trim_end_matches('/').to_owned();
        let results: Vec<(String, Option<Vec<Value>>)> = futures_util::stream::iter(ids)
            .map(|id| {
                let url = format!("{base}/models/{id}/endpoints");
                async move {
                    let list = match reqwest::Url::parse(&url) {
                        Ok(url) => get(client, url, key, timeouts)
                            .await
                            .ok()
                            .and_then(|body| endpoints_of(&body)),
                        Err(_) => None,
                    };
                    (id, list)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut map = HashMap::clone(&self.0.load());
        let (mut fetched, mut failed) = (0, 0);
        for (id, list) in results {
            match list {
                Some(list) => {
                    fetched += 1;
                    map.insert(id, Arc::new(list));
                }
                None => failed += 1,
            }
        }
        self.0.store(Arc::new(map));
        if failed > 0 {
            tracing::warn!(
                fetched,
                failed,
                "some OpenRouter endpoint lists could not be fetched; their last good copies stay"
            );
        }
        (fetched, failed)
    }
}

/// `data.endpoints` of an endpoints document.
fn endpoints_of(body: &[u8]) -> Option<Vec<Value>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("data")?.get("endpoints")?.as_array().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_recorded_endpoints_document() {
        let list = endpoints_of(include_bytes!(
            "../../../../hero_aibroker_testkit/fixtures/openrouter/endpoints.json"
        ))
        .expect("endpoints");
        assert_eq!(list[0]["provider_name"], "OpenAI");
        assert!(endpoints_of(b"{\"data\":{}}").is_none());
        assert!(endpoints_of(b"not json").is_none());
    }
}
