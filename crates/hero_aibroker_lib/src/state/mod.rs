//! Shared state of a running broker: the registry snapshot (and what it is built from),
//! settings, the upstream HTTP client, the in-flight cap, the store, the ledger, API keys and
//! metrics. Cloned cheaply into every handler as an `Arc`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;

mod sync;

use crate::accounting::keys::Keys;
use crate::accounting::ledger::Ledger;
use crate::accounting::store::{CircuitRow, KeyStateRow, Store, StoreError};
use crate::accounting::telemetry::Telemetry;
use crate::config::registry::Registry;
use crate::config::{ConfigError, ModelsConfig, Settings};
use crate::health::circuit::Circuit;
use crate::health::pool::Health;
use crate::providers::Drivers;
use crate::providers::openrouter::catalog::{LiveCatalog, Timeouts};
use crate::providers::openrouter::endpoints::SubEndpoints;
use hero_aibroker_host::env::Env;

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot build the upstream HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// State shared by all requests.
#[derive(Debug)]
pub struct AppState {
    /// Swapped whole on reload; a request keeps the snapshot it loaded.
    pub registry: ArcSwap<Registry>,
    /// The models file the registry was built from.
    pub models: ArcSwap<ModelsConfig>,
    /// Runtime provider priorities (`priority.set`), persisted in the store.
    pub priorities: ArcSwap<HashMap<String, i64>>,
    pub env: Env,
    pub settings: Settings,
    pub client: reqwest::Client,
    /// Permits for requests in flight (streams hold theirs until they end).
    pub inflight: Arc<Semaphore>,
    pub started: Instant,
    pub store: Store,
    pub ledger: Ledger,
    pub keys: Keys,
    /// Per-client limits and the invalid-key throttle.
    pub clients: crate::accounting::clients::Clients,
    /// The requests running now (`requests.list`, `requests.cancel`).
    pub running: crate::accounting::running::Running,
    pub telemetry: Telemetry,
    /// Session affinity (`x-session-id` / `user` → key and backend).
    pub affinity: crate::health::affinity::Affinity,
    /// The live OpenRouter catalog, merged behind the models file into the registry.
    pub catalog: LiveCatalog,
    /// Persisted circuits whose backend is not in the registry yet (catalog models before the
    /// first refresh); applied by the next rebuild that has it.
    pending_circuits: std::sync::Mutex<Vec<CircuitRow>>,
    /// Serializes reloads and priority changes (admin only, never the request path).
    admin: tokio::sync::Mutex<()>,
    /// The MCP aggregator on `<socket dir>/mcp.sock`.
    pub mcp: crate::mcp::McpLink,
    /// The driver of every provider kind.
    pub drivers: Drivers,
    /// This broker's id in cascade chains (`x-aibroker-chain`), new at every start.
    pub broker_id: String,
    /// The providers that list their own models (mothers, a local server, the demo), and
    /// what they serve.
    pub listed: crate::providers::listed::Listed,
    /// The database as the last configuration poll saw it.
    store_health: ArcSwap<hero_aibroker_sdk::admin::StoreHealth>,
    /// One [`AppState::persist_health`] at a time: a caller returns only once what was dirty
    /// is written, even when the background task had just taken it.
    persisting: tokio::sync::Mutex<()>,
}

impl AppState {
    /// Builds the state: keys and priorities from the store, the registry from `models`,
    /// `env` and the priorities, an upstream client per `settings`.
    pub async fn new(
        settings: Settings,
        models: ModelsConfig,
        env: Env,
        store: Store,
        ledger: Ledger,
    ) -> Result<Arc<Self>, StateError> {
        Self::with_drivers(settings, models, env, store, ledger, Drivers::builtin()).await
    }

    /// [`AppState::new`] with a chosen set of provider drivers (the built-ins plus any
    /// registered kind); every provider's `kind` must be one of them.
    pub async fn with_drivers(
        settings: Settings,
        models: ModelsConfig,
        env: Env,
        store: Store,
        ledger: Ledger,
        drivers: Drivers,
    ) -> Result<Arc<Self>, StateError> {
        models.check_kinds(&drivers.kinds())?;
        models.check_env(&env)?;
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
        let priorities: HashMap<String, i64> = store.priorities().await?.into_iter().collect();
        let keys = Keys::load(&store, settings.require_api_key).await?;
        let broker_id = store.broker_id().to_owned();
        let store_health = ArcSwap::from_pointee(sync::initial(&store));
        let listed = crate::providers::listed::Listed::from_env(&env);
        listed.set_rows(store.list_mothers().await?);
        let (merged, merged_env) = listed.merge(&models, &env);
        let registry = Registry::build_with(&merged, &merged_env, &priorities, None);
        for warning in registry.cleartext_key_warnings() {
            tracing::warn!("{warning}");
        }
        let catalog = LiveCatalog::for_registry(&registry, settings.catalog_interval);
        // Instance health survives restarts: auth failures and disabled keys stay so, and
        // cooldowns that have not ended yet resume.
        for row in store.key_states().await? {
            let Some(h) = Health::parse(&row.state) else {
                continue;
            };
            if let Some(i) = registry
                .providers
                .values()
                .flat_map(|p| p.instances.iter())
                .find(|i| i.id == row.instance)
            {
                i.restore(h, row.reason, u64::try_from(row.until_ms).unwrap_or(0));
            }
        }
        // So do backend circuits: an open one keeps its backend out until its probe.
        // Rows of backends not (yet) in the registry — live catalog models arrive with the
        // first refresh — wait for the next rebuild.
        let pending_circuits = restore_circuits(
            &registry,
            store.load_circuit_states().await?,
            settings.circuit_open,
        );
        let clients = crate::accounting::clients::Clients::new(settings.client_limits);
        let mcp = crate::mcp::McpLink::new(
            settings
                .socket_dir()
                .join(hero_aibroker_sdk::paths::MCP_SOCK),
        );
        let state = Arc::new(AppState {
            mcp,
            registry: ArcSwap::from_pointee(registry),
            models: ArcSwap::from_pointee(models),
            priorities: ArcSwap::from_pointee(priorities),
            inflight: Arc::new(Semaphore::new(settings.max_concurrent)),
            env,
            settings,
            client,
            started: Instant::now(),
            store,
            ledger,
            keys,
            clients,
            running: crate::accounting::running::Running::default(),
            telemetry: Telemetry::new(),
            affinity: crate::health::affinity::Affinity::default(),
            catalog,
            admin: tokio::sync::Mutex::new(()),
            pending_circuits: std::sync::Mutex::new(pending_circuits),
            drivers,
            broker_id,
            listed,
            store_health,
            persisting: tokio::sync::Mutex::new(()),
        });
        sync::spawn_config_sync(&state);
        spawn_catalog_refresh(&state);
        spawn_listed_refresh(&state);
        spawn_retention(&state);
        // Background upkeep for as long as the state lives: metrics every 5 s, instance health
        // changes persisted every second (never from the request path).
        let weak = Arc::downgrade(&state);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            let mut n = 0u64;
            loop {
                tick.tick().await;
                let Some(s) = weak.upgrade() else { break };
                n += 1;
                if n.is_multiple_of(5) {
                    s.telemetry.upkeep();
                    s.clients.prune();
                }
                s.persist_health().await;
                s.ledger.persist_unlogged_spend().await;
            }
        });
        Ok(state)
    }

    /// Writes instance health and backend circuits that changed since the last call to the
    /// store.
    pub async fn persist_health(&self) {
        let _one = self.persisting.lock().await;
        let reg = self.registry.load_full();
        let now = i64::try_from(crate::health::pool::unix_ms()).unwrap_or(i64::MAX);
        let (instances, rows): (Vec<&Arc<crate::health::pool::Instance>>, Vec<KeyStateRow>) = reg
            .providers
            .values()
            .flat_map(|p| p.instances.iter())
            .filter_map(|i| {
                let (h, reason, until) = i.take_dirty()?;
                Some((
                    i,
                    KeyStateRow {
                        instance: i.id.clone(),
                        provider: i.provider.clone(),
                        state: h.as_str().to_owned(),
                        reason,
                        until_ms: i64::try_from(until).unwrap_or(i64::MAX),
                        updated_ms: now,
                    },
                ))
            })
            .unzip();
        if let Err(e) = self.store.save_key_states(&rows).await {
            tracing::warn!("cannot persist provider instance health (retried next time): {e}");
            instances.iter().for_each(|i| i.mark_dirty());
        }
        let (circuits, rows): (Vec<&Circuit>, Vec<CircuitRow>) =
            dirty_circuits(&reg, now).into_iter().unzip();
        if let Err(e) = self.store.save_circuit_states(&rows).await {
            tracing::warn!("cannot persist backend circuits (retried next time): {e}");
            circuits.iter().for_each(|c| c.mark_dirty());
        }
    }

    /// The `health` answer (RPC and REST): `degraded` while the ledger cannot write or the
    /// last catalog refresh failed (the broker serves, but from a stale catalog).
    pub fn health(&self) -> hero_aibroker_sdk::admin::Health {
        let ledger = self.ledger.health();
        let catalog = self.catalog.health();
        let catalog_failing = catalog.as_ref().is_some_and(|c| c.last_error.is_some());
        let store = self.store_health();
        hero_aibroker_sdk::admin::Health {
            status: if ledger.healthy && !catalog_failing && store.reachable {
                "ok"
            } else {
                "degraded"
            }
            .into(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            ledger,
            catalog,
            store: Some(store),
        }
    }

    /// Requests in flight right now.
    pub fn in_flight(&self) -> u64 {
        (self.settings.max_concurrent - self.inflight.available_permits()) as u64
    }

    /// Re-reads the models file; a valid one replaces the registry atomically (instances keep
    /// their health), an invalid one changes nothing.
    pub async fn reload(&self) -> Result<Arc<Registry>, ConfigError> {
        let _g = self.admin.lock().await;
        let path = self.models.load().path.clone();
        let cfg = tokio::task::spawn_blocking(move || ModelsConfig::load(&path))
            .await
            .map_err(|e| ConfigError::Env {
                var: "reload".into(),
                message: e.to_string(),
            })??;
        cfg.check_kinds(&self.drivers.kinds())?;
        let registry = Arc::new(self.build_registry(&cfg, &self.priorities.load()));
        self.models.store(Arc::new(cfg));
        self.registry.store(registry.clone());
        Ok(registry)
    }

    /// Rebuilds the registry from the current models file and priorities (after a catalog
    /// refresh); instances keep their health.
    pub async fn rebuild_registry(&self) {
        let _g = self.admin.lock().await;
        let registry = self.build_registry(&self.models.load(), &self.priorities.load());
        self.registry.store(Arc::new(registry));
    }

    /// The one place a running broker builds its registry: the models file, then the live
    /// catalog behind it, with `priorities`; health, circuits and stats carry over.
    fn build_registry(&self, cfg: &ModelsConfig, priorities: &HashMap<String, i64>) -> Registry {
        let (cfg, env) = self.listed.merge(cfg, &self.env);
        let registry = crate::providers::openrouter::catalog::build_registry(
            &cfg,
            &self.catalog.entries(),
            &env,
            priorities,
            Some(&self.registry.load()),
        );
        let mut pending = self
            .pending_circuits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !pending.is_empty() {
            *pending = restore_circuits(
                &registry,
                std::mem::take(&mut *pending),
                self.settings.circuit_open,
            );
        }
        registry
    }

    /// Sets or clears a provider's runtime priority: persisted first, then applied.
    pub async fn set_priority(
        &self,
        provider: &str,
        priority: Option<i64>,
    ) -> Result<(), StoreError> {
        let _g = self.admin.lock().await;
        self.store.set_priority(provider, priority).await?;
        let mut map = HashMap::clone(&self.priorities.load());
        match priority {
            Some(p) => map.insert(provider.to_owned(), p),
            None => map.remove(provider),
        };
        let registry = self.build_registry(&self.models.load(), &map);
        self.priorities.store(Arc::new(map));
        self.registry.store(Arc::new(registry));
        Ok(())
    }
}

/// Puts persisted circuits back on the backends they belong to (same model, provider and
/// upstream model id); returns the rows whose backend is not in `registry`.
fn restore_circuits(
    registry: &Registry,
    rows: Vec<CircuitRow>,
    open_for: std::time::Duration,
) -> Vec<CircuitRow> {
    let mut unmatched = Vec::new();
    for row in rows {
        let Some(snap) = row.snapshot() else {
            continue;
        };
        match registry.backend(&row.model, &row.provider, &row.upstream_model) {
            Some(b) => b.circuit.restore(snap, open_for),
            None => unmatched.push(row),
        }
    }
    unmatched
}

/// Circuits that changed since the last call, with the rows to write.
fn dirty_circuits(registry: &Registry, now_ms: i64) -> Vec<(&Circuit, CircuitRow)> {
    registry
        .models
        .values()
        .flat_map(|m| m.backends.iter().map(move |b| (m, b)))
        .filter_map(|(m, b)| {
            let snap = b.circuit.take_dirty()?;
            let row = CircuitRow::new(&m.name, &b.provider, &b.model_id, &snap, now_ms);
            Some((&b.circuit, row))
        })
        .collect()
}

/// Ledger rows pruned per statement: small enough that a backlog never holds SQLite's write
/// lock for long (the ledger writer commits between two of them).
const PRUNE_BATCH: u32 = 1000;

/// With `LEDGER_RETENTION_DAYS` set, deletes older ledger rows: at start, then every 10
/// minutes, in batches of [`PRUNE_BATCH`], for as long as the state lives.
fn spawn_retention(state: &Arc<AppState>) {
    let days = state.settings.ledger_retention_days;
    if days == 0 {
        return;
    }
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            let Some(s) = weak.upgrade() else { break };
            let keep_ms = i64::from(days) * 86_400_000;
            let before = i64::try_from(crate::health::pool::unix_ms())
                .unwrap_or(i64::MAX)
                .saturating_sub(keep_ms);
            let mut pruned = 0u64;
            loop {
                match s.store.prune_logs(before, PRUNE_BATCH).await {
                    Ok(n) => {
                        pruned += n;
                        if n < u64::from(PRUNE_BATCH) {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    Err(e) => {
                        tracing::warn!("ledger retention: pruning failed (retried later): {e}");
                        break;
                    }
                }
            }
            if pruned > 0 {
                tracing::info!(rows = pruned, days, "ledger retention: pruned old rows");
            }
            drop(s);
            tokio::time::sleep(std::time::Duration::from_secs(600)).await;
        }
    });
}

impl AppState {
    /// Re-reads the mothers from the store after a change, lists their models and rebuilds
    /// the registry: the change applies without a restart.
    pub async fn reload_mothers(&self) -> Result<(), crate::accounting::store::StoreError> {
        self.listed.set_rows(self.store.list_mothers().await?);
        self.listed.refresh(&self.client).await;
        self.rebuild_registry().await;
        Ok(())
    }
}

/// Lists the models of every enabled mother and of a local server on `CASCADE_REFRESH_SECS` (at
/// once at start), for as long as the state lives; a change rebuilds the registry.
fn spawn_listed_refresh(state: &Arc<AppState>) {
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            let Some(s) = weak.upgrade() else { break };
            if s.listed.any_to_list() && s.listed.refresh(&s.client).await {
                s.rebuild_registry().await;
            }
            let delay = s.settings.cascade_refresh;
            drop(s);
            tokio::time::sleep(delay).await;
        }
    });
}

/// Refreshes the live OpenRouter catalog when it is on: the first refresh at once (start-up does
/// not wait for it), then on its schedule, for as long as the state lives; a changed catalog
/// rebuilds the registry.
fn spawn_catalog_refresh(state: &Arc<AppState>) {
    if state.catalog.next_delay().is_none() {
        return;
    }
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            let Some(s) = weak.upgrade() else { break };
            let source = LiveCatalog::source(&s.registry.load());
            let timeouts = Timeouts {
                first_byte: s.settings.first_byte_timeout,
                idle: s.settings.idle_timeout,
                total: s.settings.request_deadline,
            };
            if s.catalog.refresh(&s.client, source.clone(), timeouts).await {
                s.rebuild_registry().await;
            }
            if let Some((base, key)) = source {
                let ids = SubEndpoints::wanted(&s.registry.load());
                s.catalog
                    .endpoints
                    .refresh(&s.client, &base, &key, ids, timeouts)
                    .await;
            }
            let Some(delay) = s.catalog.next_delay() else {
                break;
            };
            drop(s);
            tokio::time::sleep(delay).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::registry::tests::registry;
    use crate::health::circuit::CircuitState;
    use std::time::Duration;

    #[test]
    fn circuits_of_backends_not_loaded_yet_wait_for_them() {
        let before = registry(&[("OPENAI_API_KEY", "k")]);
        let b = &before.models["big"].backends[1];
        b.circuit.failure(1, Duration::from_secs(60));
        let snap = b.circuit.snapshot();
        let rows = vec![
            CircuitRow::new("big", "openai", "gpt-big", &snap, 0),
            CircuitRow::new("vendor/x", "openrouter", "vendor/x", &snap, 0),
        ];
        let after = registry(&[("OPENAI_API_KEY", "k")]);
        let left = restore_circuits(&after, rows, Duration::from_secs(60));
        assert_eq!(
            after.models["big"].backends[1].circuit.state(),
            CircuitState::Open
        );
        assert_eq!(left.len(), 1, "the catalog model's row waits");
        assert_eq!(left[0].model, "vendor/x");
    }
}
