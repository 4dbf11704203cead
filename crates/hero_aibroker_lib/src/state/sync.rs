//! Several brokers on one database: every `CONFIG_POLL_MS` the broker reads the configuration
//! version; when another broker changed keys, priorities or mothers it reloads them (no
//! restart). The same poll is the database's health check (`/health` → `store`), and on a
//! shared database the budget leases are kept alive beside it.

use std::collections::HashMap;
use std::sync::Arc;

use hero_aibroker_sdk::admin::StoreHealth;

use super::AppState;
use crate::accounting::keys::LEASE_TTL_MS;
use crate::health::pool::unix_ms;

/// Starts the poll for as long as the state lives.
pub(super) fn spawn_config_sync(state: &Arc<AppState>) {
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        let mut last: Option<i64> = None;
        let mut last_upkeep = unix_ms();
        // Instance health rows up to this time have been taken (none at start: the state
        // restored them all).
        let mut health_seen = i64::try_from(unix_ms()).unwrap_or(i64::MAX);
        loop {
            let Some(s) = weak.upgrade() else { break };
            let poll = s.settings.config_poll;
            match s.store.config_version().await {
                Ok(v) => {
                    s.store_health_ok(v);
                    if last.is_some_and(|l| l != v)
                        && let Err(e) = s.apply_shared_config().await
                    {
                        tracing::warn!(error = %e, "cannot reload the configuration another broker changed");
                    } else if s.store.shared()
                        && let Err(e) = s.keys.reload(&s.store, true).await
                    {
                        // Spend recorded by the other brokers, for keys.list and the console.
                        tracing::warn!(error = %e, "cannot read the keys' recorded spend");
                    }
                    last = Some(v);
                }
                Err(e) => s.store_health_err(&e.to_string()),
            }
            if s.store.shared() {
                health_seen = s.adopt_shared_health(health_seen).await;
            }
            if s.store.shared() && unix_ms() - last_upkeep >= (LEASE_TTL_MS / 3) as u64 {
                last_upkeep = unix_ms();
                s.keys.upkeep_leases(&s.store).await;
                s.keys.prune_shared(&s.store).await;
            }
            drop(s);
            tokio::time::sleep(poll).await;
        }
    });
}

impl AppState {
    /// Reloads what another broker may have changed: keys (with every broker's recorded
    /// spend), priorities, and mothers.
    async fn apply_shared_config(&self) -> Result<(), crate::accounting::store::StoreError> {
        self.keys.reload(&self.store, self.store.shared()).await?;
        let priorities: HashMap<String, i64> = self.store.priorities().await?.into_iter().collect();
        let mothers = self.store.list_mothers().await?;
        let mothers_changed = mothers != self.listed.rows();
        if mothers_changed {
            self.listed.set_rows(mothers);
            self.listed.refresh(&self.client).await;
        }
        if mothers_changed || priorities != **self.priorities.load() {
            let _g = self.admin.lock().await;
            let registry = self.build_registry(&self.models.load(), &priorities);
            self.priorities.store(Arc::new(priorities));
            self.registry.store(Arc::new(registry));
        }
        Ok(())
    }

    /// Takes the instance health other brokers wrote after `since_ms` (cooldowns, rejected
    /// keys, operator resets), so N brokers do not each burn a rate-limited key. Returns the
    /// newest row time seen.
    async fn adopt_shared_health(&self, since_ms: i64) -> i64 {
        let rows = match self.store.key_states_since(since_ms).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read shared instance health");
                return since_ms;
            }
        };
        let reg = self.registry.load();
        let mut newest = since_ms;
        for row in rows {
            newest = newest.max(row.updated_ms);
            let Some(h) = crate::health::pool::Health::parse(&row.state) else {
                continue;
            };
            if let Some(i) = reg
                .providers
                .get(&row.provider)
                .and_then(|p| p.instances.iter().find(|i| i.id == row.instance))
                && i.adopt(h, row.reason, u64::try_from(row.until_ms).unwrap_or(0))
            {
                tracing::info!(instance = %row.instance, state = %row.state, "instance health learned from another broker");
            }
        }
        newest
    }

    fn store_health_ok(&self, version: i64) {
        self.store_health.store(Arc::new(StoreHealth {
            kind: self.store.kind().as_str().into(),
            database: self.store.describe(),
            reachable: true,
            last_error: None,
            config_version: version,
            checked_ms: i64::try_from(unix_ms()).ok(),
        }));
    }

    fn store_health_err(&self, error: &str) {
        let before = self.store_health.load();
        if before.reachable {
            tracing::warn!(database = %self.store.describe(), error, "the database does not answer");
        }
        self.store_health.store(Arc::new(StoreHealth {
            reachable: false,
            last_error: Some(error.to_owned()),
            ..StoreHealth::clone(&before)
        }));
    }

    /// The database's health as the last poll saw it.
    pub fn store_health(&self) -> StoreHealth {
        StoreHealth::clone(&self.store_health.load())
    }
}

/// The health before the first poll: the store answered when it was opened.
pub(super) fn initial(store: &crate::accounting::store::Store) -> StoreHealth {
    StoreHealth {
        kind: store.kind().as_str().into(),
        database: store.describe(),
        reachable: true,
        last_error: None,
        config_version: 0,
        checked_ms: None,
    }
}
