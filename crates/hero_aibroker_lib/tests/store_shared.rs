//! What brokers sharing one database rely on, on SQLite and (with `HERO_AIBROKER_TEST_PG`)
//! PostgreSQL: budget leases never grant beyond the budget and are settled by the ledger,
//! per-minute slices never beyond the limit, and every admin change bumps the configuration
//! version.

use hero_aibroker_lib::accounting::store::{MotherRow, Store, StoreOptions};

mod common;
use common::*;

const NOW: i64 = 1_800_000_000_000;
const TTL: i64 = 30_000;

/// Two brokers (two stores with their own broker ids) on the test's database.
async fn two_brokers(dir: &tempfile::TempDir) -> (Store, Store) {
    let url = store_url(dir).await;
    let open = |id: &str| StoreOptions {
        broker_id: id.to_owned(),
        ..StoreOptions::default()
    };
    let a = Store::open_with(&url, &open("brk_a")).await.expect("a");
    let b = Store::open_with(&url, &open("brk_b")).await.expect("b");
    (a, b)
}

fn close(x: f64, y: f64) -> bool {
    (x - y).abs() < 1e-9
}

#[tokio::test]
async fn leases_never_grant_more_than_the_budget_and_are_settled_by_the_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_brokers(&dir).await;
    let mut k = key("key_a", "sk-hab-aaaaaaaaaaaaaaaaaaaaaaaa-1111", 1);
    k.budget_usd = Some(1.0);
    a.insert_key(&k).await.expect("key");

    let la = a
        .grant_lease("key_a", 0.6, true, NOW, TTL)
        .await
        .expect("grant")
        .expect("budgeted");
    assert!(
        close(la.added_usd, 0.6) && close(la.granted_usd, 0.6),
        "{la:?}"
    );
    // B gets only what A's lease leaves.
    let lb = b
        .grant_lease("key_a", 0.6, true, NOW, TTL)
        .await
        .expect("grant")
        .expect("budgeted");
    assert!(close(lb.added_usd, 0.4), "{lb:?}");
    let none = a
        .grant_lease("key_a", 0.1, false, NOW, TTL)
        .await
        .expect("grant")
        .expect("budgeted");
    assert!(close(none.added_usd, 0.0), "budget fully leased: {none:?}");

    // A spends 0.25 (recorded by its ledger): spent_usd and A's settled part both grow, so the
    // total that can be leased stays the budget.
    let mut r = row(1);
    r.key_id = Some("key_a".into());
    r.cost_usd = 0.25;
    a.insert_logs(&[r]).await.expect("ledger");
    let again = a
        .grant_lease("key_a", 0.1, false, NOW, TTL)
        .await
        .expect("grant")
        .expect("budgeted");
    assert!(close(again.settled_usd, 0.25), "{again:?}");
    assert!(close(again.added_usd, 0.0), "{again:?}");

    // A gives back what it will not spend; B can then have it.
    a.return_lease("key_a", 0.25, NOW + TTL)
        .await
        .expect("return");
    let more = b
        .grant_lease("key_a", 1.0, false, NOW, TTL)
        .await
        .expect("grant")
        .expect("budgeted");
    assert!(close(more.added_usd, 0.35), "{more:?}");

    // A lease not renewed in time no longer counts: after B's expiry, A can lease it.
    let later = a
        .grant_lease("key_a", 1.0, false, NOW + TTL + 1, TTL)
        .await
        .expect("grant")
        .expect("budgeted");
    assert!(close(later.added_usd, 0.75), "{later:?}");

    // At shutdown every lease of a broker goes back.
    a.release_leases().await.expect("release");
    let after = b
        .grant_lease("key_a", 1.0, true, NOW + TTL + 2, TTL)
        .await
        .expect("grant")
        .expect("budgeted");
    assert!(close(after.added_usd, 0.75), "{after:?}");

    // A lease row pruned (its broker gone a day) starts afresh when that broker asks again.
    b.prune_leases(i64::MAX).await.expect("prune");
    let back = b
        .grant_lease("key_a", 0.1, false, NOW + TTL + 3, TTL)
        .await
        .expect("grant")
        .expect("budgeted");
    assert!(back.fresh && close(back.settled_usd, 0.0), "{back:?}");
    assert!(close(back.added_usd, 0.1), "{back:?}");

    // A key without a budget has no lease.
    let mut free = key("key_free", "sk-hab-ffffffffffffffffffffffff-2222", 2);
    free.budget_usd = None;
    a.insert_key(&free).await.expect("key");
    assert!(
        a.grant_lease("key_free", 1.0, true, NOW, TTL)
            .await
            .expect("grant")
            .is_none()
    );
}

#[tokio::test]
async fn minute_slices_never_exceed_the_limits_over_every_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_brokers(&dir).await;
    let limits = (Some(10), Some(1000));
    assert_eq!(
        a.grant_window("key_a", 7, (6, 600), limits)
            .await
            .expect("a"),
        (6, 600)
    );
    assert_eq!(
        b.grant_window("key_a", 7, (6, 600), limits)
            .await
            .expect("b"),
        (4, 400)
    );
    assert_eq!(
        a.grant_window("key_a", 7, (1, 1), limits).await.expect("a"),
        (0, 0)
    );
    // A new minute starts from zero; no limit grants what is asked.
    assert_eq!(
        a.grant_window("key_a", 8, (3, 5), limits).await.expect("a"),
        (3, 5)
    );
    assert_eq!(
        a.grant_window("key_b", 7, (50, 50), (None, None))
            .await
            .expect("a"),
        (50, 50)
    );
    a.prune_windows(8).await.expect("prune");
    assert_eq!(
        b.grant_window("key_a", 7, (10, 0), limits)
            .await
            .expect("b"),
        (10, 0),
        "a pruned minute counts from zero again"
    );
}

#[tokio::test]
async fn every_admin_change_bumps_the_configuration_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_brokers(&dir).await;
    let v0 = b.config_version().await.expect("version");
    let k = key("key_a", "sk-hab-aaaaaaaaaaaaaaaaaaaaaaaa-1111", 1);
    a.insert_key(&k).await.expect("insert");
    let v1 = b.config_version().await.expect("version");
    assert!(v1 > v0, "insert_key");
    a.update_key(&k).await.expect("update");
    let v2 = b.config_version().await.expect("version");
    assert!(v2 > v1, "update_key");
    a.set_priority("openai", Some(3)).await.expect("priority");
    let v3 = b.config_version().await.expect("version");
    assert!(v3 > v2, "set_priority");
    let m = a
        .add_mother(MotherRow {
            id: String::new(),
            address: "10.0.0.1".into(),
            port: 8080,
            label: None,
            priority: 1,
            enabled: true,
            token: None,
            created_ms: 1,
            updated_ms: 1,
        })
        .await
        .expect("mother");
    let v4 = b.config_version().await.expect("version");
    assert!(v4 > v3, "add_mother");
    assert!(a.remove_mother(&m.id).await.expect("remove"));
    assert!(
        b.config_version().await.expect("version") > v4,
        "remove_mother"
    );
}
