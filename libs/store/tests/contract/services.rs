//! Run-time alert rules and the liveness of service instances.

use std::time::Duration;

use store::{Store, StoreError};

use crate::harness::{LONG_TTL, SHORT_TTL, eventually};

pub async fn alert_rules_are_stored_replaced_and_deleted(store: &Store) -> Result<(), StoreError> {
    assert_eq!(store.alert_rules().await?, None);
    assert!(!store.delete_alert_rules().await?, "nothing to delete yet");
    store.put_alert_rules(r#"[{"name":"a"}]"#).await?;
    assert_eq!(
        store.alert_rules().await?.as_deref(),
        Some(r#"[{"name":"a"}]"#)
    );
    store.put_alert_rules("[]").await?;
    assert_eq!(store.alert_rules().await?.as_deref(), Some("[]"));
    assert!(store.delete_alert_rules().await?);
    assert_eq!(store.alert_rules().await?, None);
    Ok(())
}

pub async fn announced_instances_are_live_until_withdrawn_or_silent(
    store: &Store,
) -> Result<(), StoreError> {
    assert!(store.service_instances("aggregator").await?.is_empty());
    store
        .announce_instance("aggregator", "agg-b", LONG_TTL)
        .await?;
    store
        .announce_instance("aggregator", "agg-a", SHORT_TTL)
        .await?;
    store
        .announce_instance("device_reader", "dr-1", LONG_TTL)
        .await?;
    let instances = store.service_instances("aggregator").await?;
    let listed: Vec<(&str, bool)> = instances
        .iter()
        .map(|instance| (instance.instance.as_str(), instance.live))
        .collect();
    assert_eq!(listed, [("agg-a", true), ("agg-b", true)]);
    assert!(instances[0].since_last_seen < Duration::from_secs(5));

    // Silence: the short-lived one stays listed, no longer live.
    eventually("agg-a's announcement expires", async || {
        let instances = store.service_instances("aggregator").await?;
        Ok::<_, StoreError>(instances.len() == 2 && !instances[0].live && instances[1].live)
    })
    .await;
    // Announcing again makes it live again.
    store
        .announce_instance("aggregator", "agg-a", LONG_TTL)
        .await?;
    assert!(
        store
            .service_instances("aggregator")
            .await?
            .iter()
            .all(|instance| instance.live)
    );
    // A clean stop removes it; other services are independent.
    store.withdraw_instance("aggregator", "agg-a").await?;
    let left: Vec<String> = store
        .service_instances("aggregator")
        .await?
        .into_iter()
        .map(|instance| instance.instance)
        .collect();
    assert_eq!(left, ["agg-b"]);
    assert_eq!(store.service_instances("device_reader").await?.len(), 1);
    Ok(())
}

pub async fn keep_announced_refreshes_until_stopped_then_withdraws(
    store: &Store,
) -> Result<(), StoreError> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let announcer = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .keep_announced("batch_ingest", "bi-1", SHORT_TTL, async {
                    let _ = stop_rx.await;
                })
                .await;
        })
    };
    eventually("the instance is announced", async || {
        let instances = store.service_instances("batch_ingest").await?;
        Ok::<_, StoreError>(instances.len() == 1 && instances[0].live)
    })
    .await;
    // Several TTLs later it is still live: the announcer refreshes it (waiting out the
    // TTLs is the point here, not a synchronisation).
    tokio::time::sleep(SHORT_TTL * 3).await;
    let instances = store.service_instances("batch_ingest").await?;
    assert!(instances[0].live, "refreshed past its first ttl");
    let _ = stop_tx.send(());
    announcer.await.expect("the announcer ends when stopped");
    assert!(store.service_instances("batch_ingest").await?.is_empty());
    Ok(())
}
