//! Shared state of a running broker: the registry snapshot, settings, the upstream HTTP client
//! and the in-flight cap. Cloned cheaply into every handler.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;

use crate::config::{ModelsConfig, Settings};
use crate::env::Env;
use crate::registry::Registry;

/// State shared by all requests.
#[derive(Debug)]
pub struct AppState {
    /// Swapped whole on reload; a request keeps the snapshot it loaded.
    pub registry: ArcSwap<Registry>,
    pub settings: Settings,
    pub client: reqwest::Client,
    /// Permits for requests in flight (streams hold theirs until they end).
    pub inflight: Arc<Semaphore>,
    pub started: Instant,
}

impl AppState {
    /// Builds the state: registry from `models` and `env`, an upstream client per `settings`.
    pub fn new(
        settings: Settings,
        models: &ModelsConfig,
        env: &Env,
    ) -> Result<Arc<Self>, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            // The relay is the one retry loop; the client must not retry or follow redirects
            // (a redirect to a metadata address is an SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build()?;
        Ok(Arc::new(AppState {
            registry: ArcSwap::from_pointee(Registry::build(models, env)),
            inflight: Arc::new(Semaphore::new(settings.max_concurrent)),
            settings,
            client,
            started: Instant::now(),
        }))
    }
}
