//! Backend circuits survive a restart: the `circuit_state` table round-trips, the broker's
//! health task writes only circuits that changed, and a new state on the same database puts
//! them back on their backends.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod common;

use hero_aibroker_host::env::Env;
use hero_aibroker_lib::accounting::ledger::{Ledger, LedgerConfig};
use hero_aibroker_lib::accounting::store::{CircuitRow, Store};
use hero_aibroker_lib::config::{ModelsConfig, Settings};
use hero_aibroker_lib::health::circuit::{Circuit, CircuitSnapshot, CircuitState};
use hero_aibroker_lib::health::pool::unix_ms;
use hero_aibroker_lib::state::AppState;

const MODELS: &str = r#"
providers:
  - {name: local, base_url: "http://127.0.0.1:9/v1"}
  - {name: other, base_url: "http://127.0.0.1:9/v1"}
models:
  small:
    display_name: Small
    tier: cheap
    context_window: 8192
    backends:
      - {provider: local, model_id: small-gguf, priority: 1, input_cost: 0, output_cost: 0}
      - {provider: other, model_id: small-q8, priority: 2, input_cost: 0, output_cost: 0}
  big:
    display_name: Big
    tier: frontier
    context_window: 8192
    backends:
      - {provider: local, model_id: small-gguf, priority: 1, input_cost: 0, output_cost: 0}
"#;

async fn store(dir: &tempfile::TempDir) -> Store {
    common::open(dir).await
}

async fn state(store: Store) -> Arc<AppState> {
    let cfg = ModelsConfig::parse(Path::new("m.yml"), MODELS).expect("valid models");
    let env = Env::from_pairs([("CIRCUIT_OPEN_MS", "60000")]);
    let settings = Settings::from_env(&env).expect("settings");
    let (ledger, writer) = Ledger::start(store.clone(), LedgerConfig::default());
    // The writer task runs until the ledger is shut down; these tests record no rows.
    std::mem::forget(writer);
    AppState::new(settings, cfg, env, store, ledger)
        .await
        .expect("state")
}

/// Runs `f` on the circuit of `model`'s backend on `provider`.
fn with_circuit<R>(s: &AppState, model: &str, provider: &str, f: impl FnOnce(&Circuit) -> R) -> R {
    let reg = s.registry.load();
    let b = reg.models[model]
        .backends
        .iter()
        .find(|b| b.provider == provider)
        .expect("backend");
    f(&b.circuit)
}

/// Trips a failure on `model`'s backend on `provider` (opens at the second in a row).
fn fail(s: &AppState, model: &str, provider: &str) {
    with_circuit(s, model, provider, |c| {
        c.failure(2, Duration::from_secs(60))
    });
}

/// Empties `circuit_state` behind the broker's back, through a second connection.
async fn delete_all(dir: &tempfile::TempDir) {
    common::exec_raw(dir, "DELETE FROM circuit_state").await;
}

fn row(state: &str, failures: u32, open_until_ms: Option<i64>) -> CircuitRow {
    CircuitRow {
        model: "small".into(),
        provider: "local".into(),
        upstream_model: "small-gguf".into(),
        state: state.into(),
        failures,
        open_until_ms,
        updated_ms: 1_000,
    }
}

#[tokio::test]
async fn circuit_rows_upsert_and_load() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(&dir).await;
    assert!(s.load_circuit_states().await.expect("load").is_empty());
    s.save_circuit_states(&[row("open", 5, Some(9_000)), {
        let mut r = row("closed", 1, None);
        r.model = "big".into();
        r
    }])
    .await
    .expect("save");
    // The same backend again: one row, the newest state.
    s.save_circuit_states(&[row("half_open", 6, Some(9_500))])
        .await
        .expect("upsert");
    let rows = s.load_circuit_states().await.expect("load");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (
            rows[0].model.as_str(),
            rows[0].state.as_str(),
            rows[0].failures
        ),
        ("big", "closed", 1)
    );
    assert_eq!(rows[0].open_until_ms, None);
    assert_eq!(rows[1], row("half_open", 6, Some(9_500)));

    // Rows and snapshots convert both ways; an unknown state name is not guessed at.
    let snap = CircuitSnapshot {
        state: CircuitState::Open,
        failures: 3,
        open_until_ms: 12_345,
    };
    let r = CircuitRow::new("small", "local", "small-gguf", &snap, 7);
    assert_eq!(r.open_until_ms, Some(12_345));
    assert_eq!(r.snapshot(), Some(snap));
    assert_eq!(row("ajar", 1, None).snapshot(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn open_circuits_are_persisted_when_they_change_and_restored_on_their_backend() {
    let dir = tempfile::tempdir().expect("tmp");
    let st = state(store(&dir).await).await;
    // `small` and `big` share local/small-gguf: each model's backend has its own circuit.
    fail(&st, "small", "local");
    fail(&st, "small", "local");
    fail(&st, "small", "other");
    st.persist_health().await;
    let rows = st.store.load_circuit_states().await.expect("load");
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.model.as_str(),
                r.provider.as_str(),
                r.state.as_str(),
                r.failures,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("small", "local", "open", 2),
            ("small", "other", "closed", 1)
        ],
        "only circuits that changed have rows"
    );
    let until = rows[0].open_until_ms.expect("open until");
    let left = until - i64::try_from(unix_ms()).expect("ms");
    assert!((55_000..=60_000).contains(&left), "{left}");

    // Nothing changed since: nothing is written (rows deleted behind its back stay gone) ...
    delete_all(&dir).await;
    st.persist_health().await;
    assert!(
        st.store
            .load_circuit_states()
            .await
            .expect("load")
            .is_empty()
    );
    // ... until the next change, which writes that circuit alone.
    fail(&st, "small", "local");
    st.persist_health().await;
    let rows = st.store.load_circuit_states().await.expect("load");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].state.as_str(), rows[0].failures), ("open", 3));
    let until = rows[0].open_until_ms.expect("open until");
    let store_handle = st.store.clone();
    drop(st);

    // A restart on the same database: the circuit is open on its own backend only, with the
    // probe time it had; the row of a backend no longer configured is ignored.
    store_handle
        .save_circuit_states(&[CircuitRow {
            model: "gone".into(),
            ..row("open", 9, Some(until))
        }])
        .await
        .expect("save");
    let st = state(store_handle).await;
    let snap = with_circuit(&st, "small", "local", |c| c.snapshot());
    assert_eq!(
        (
            snap.state,
            snap.failures,
            i64::try_from(snap.open_until_ms).ok()
        ),
        (CircuitState::Open, 3, Some(until))
    );
    assert!(
        !with_circuit(&st, "small", "local", |c| c.admit()),
        "no traffic while open"
    );
    for (model, provider) in [("big", "local"), ("small", "other")] {
        assert_eq!(
            with_circuit(&st, model, provider, |c| c.state()),
            CircuitState::Closed,
            "{model}/{provider}: only `small`'s local backend failed since the last write"
        );
    }
    // Restored circuits are not written back: the store already says so.
    delete_all(&dir).await;
    st.persist_health().await;
    assert!(
        st.store
            .load_circuit_states()
            .await
            .expect("load")
            .is_empty()
    );
}
