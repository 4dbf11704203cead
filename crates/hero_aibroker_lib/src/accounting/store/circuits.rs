//! The `circuit_state` table: the circuit breaker of each backend (model + provider + upstream
//! model id), written by the background health task and read back at start-up.

use super::backend::{Cols, on_pool};
use super::{Store, StoreError, to_i64, to_u64};
use crate::health::circuit::{CircuitSnapshot, CircuitState};

/// One row of `circuit_state`.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitRow {
    pub model: String,
    pub provider: String,
    pub upstream_model: String,
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// Consecutive failures.
    pub failures: u32,
    /// Unix ms an open circuit lets its probe through; `None` when closed.
    pub open_until_ms: Option<i64>,
    pub updated_ms: i64,
}

impl CircuitRow {
    /// The row of a backend's circuit snapshot taken at `now_ms`.
    pub fn new(
        model: &str,
        provider: &str,
        upstream_model: &str,
        snap: &CircuitSnapshot,
        now_ms: i64,
    ) -> CircuitRow {
        CircuitRow {
            model: model.to_owned(),
            provider: provider.to_owned(),
            upstream_model: upstream_model.to_owned(),
            state: snap.state.as_str().to_owned(),
            failures: snap.failures,
            open_until_ms: (snap.state != CircuitState::Closed).then(|| to_i64(snap.open_until_ms)),
            updated_ms: now_ms,
        }
    }

    /// The snapshot this row stores, or `None` for a state name this version does not know.
    pub fn snapshot(&self) -> Option<CircuitSnapshot> {
        Some(CircuitSnapshot {
            state: CircuitState::parse(&self.state)?,
            failures: self.failures,
            open_until_ms: self.open_until_ms.map_or(0, to_u64),
        })
    }
}

impl Store {
    /// Upserts circuit rows in one transaction.
    pub async fn save_circuit_states(&self, rows: &[CircuitRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        on_pool!(&self.pool, |p, Db| {
            let mut tx = p.begin().await?;
            for r in rows {
                sqlx::query(
                "INSERT INTO circuit_state (model, provider, upstream_model, state, failures, open_until_ms, updated_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (model, provider, upstream_model) DO UPDATE SET state = excluded.state, \
                 failures = excluded.failures, open_until_ms = excluded.open_until_ms, updated_ms = excluded.updated_ms",
            )
            .bind(&r.model)
            .bind(&r.provider)
            .bind(&r.upstream_model)
            .bind(&r.state)
            .bind(i64::from(r.failures))
            .bind(r.open_until_ms)
            .bind(r.updated_ms)
            .execute(&mut *tx)
            .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every persisted circuit, in key order.
    pub async fn load_circuit_states(&self) -> Result<Vec<CircuitRow>, StoreError> {
        on_pool!(&self.pool, |p, Db| sqlx::query(
            "SELECT model, provider, upstream_model, state, failures, open_until_ms, updated_ms \
             FROM circuit_state ORDER BY model, provider, upstream_model",
        )
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| {
            Ok(CircuitRow {
                model: r.text("model")?,
                provider: r.text("provider")?,
                upstream_model: r.text("upstream_model")?,
                state: r.text("state")?,
                failures: u32::try_from(r.int("failures")?.max(0)).unwrap_or(u32::MAX),
                open_until_ms: r.opt_int("open_until_ms")?,
                updated_ms: r.int("updated_ms")?,
            })
        })
        .collect())
    }
}
