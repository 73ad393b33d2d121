//! Fixed-window rate counters and the cumulative totals.

use std::time::Duration;

use store::{Store, StoreError};

use crate::harness::{LONG_TTL, connection, eventually, gateway};

pub async fn rate_counter_counts_hits_within_a_window_per_key(
    store: &Store,
) -> Result<(), StoreError> {
    // Windows are aligned to the Unix epoch; one of 2^32 s (136 years) has no boundary
    // before 2106, so the hits cannot straddle two windows.
    let window = Duration::from_secs(1 << 32);
    assert_eq!(store.hit_rate_counter("conn:10.0.0.1", window).await?, 1);
    assert_eq!(store.hit_rate_counter("conn:10.0.0.1", window).await?, 2);
    assert_eq!(store.hit_rate_counter("conn:10.0.0.2", window).await?, 1);
    assert_eq!(store.hit_rate_counter("conn:10.0.0.1", window).await?, 3);
    Ok(())
}

pub async fn rate_counter_starts_again_in_the_next_window(store: &Store) -> Result<(), StoreError> {
    let window = Duration::from_millis(200);
    let mut hits = vec![store.hit_rate_counter("publish:alice", window).await?];
    // Within a window every hit raises the count, so a count of 1 after the first hit
    // means a new window has started from zero.
    eventually("a new window starts from zero", async || {
        let count = store.hit_rate_counter("publish:alice", window).await?;
        hits.push(count);
        Ok::<_, StoreError>(count == 1)
    })
    .await;
    assert!(hits.len() >= 2);
    Ok(())
}

pub async fn total_counters_are_cumulative(store: &Store) -> Result<(), StoreError> {
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    let first = connection("gw-a", "c-1", "alice");
    store.add_connection(&first).await?;
    store
        .add_connection(&connection("gw-a", "c-2", "bob"))
        .await?;
    store.remove_connection(&first).await?;
    store.add_messages(5).await?;
    store.add_messages(0).await?;
    store.add_messages(7).await?;

    let stats = store.cluster_stats().await?;
    assert_eq!((stats.total_connections, stats.active_connections), (2, 1));
    assert_eq!(stats.total_messages, 12);

    store.remove_gateway("gw-a").await?;
    assert_eq!(store.sweep_dead_gateways().await?, 0);
    let stats = store.cluster_stats().await?;
    assert_eq!((stats.total_connections, stats.active_connections), (2, 0));
    assert_eq!(stats.total_messages, 12);
    Ok(())
}
