//! Redis only: the documented key layout, and no keys left behind by removal or sweeping.

use std::collections::BTreeSet;
use std::time::Duration;

use store::{RedisOptions, Store, StoreError};

use crate::harness::{Backend, LONG_TTL, SHORT_TTL, connection, eventually, gateway};

/// A store with a known key prefix and a raw connection to look at its keys.
async fn store_and_raw_connection(
    prefix: &str,
) -> (Backend, Store, redis::aio::MultiplexedConnection) {
    let backend = Backend::redis(prefix).await;
    let server = backend
        .redis
        .as_ref()
        .expect("a redis backend has a server");
    let raw = redis::Client::open(server.url())
        .expect("the server url is valid")
        .get_multiplexed_async_connection()
        .await
        .expect("the test redis-server accepts connections");
    let store = backend.store.clone();
    (backend, store, raw)
}

async fn keys(raw: &mut redis::aio::MultiplexedConnection) -> BTreeSet<String> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(raw)
        .await
        .expect("KEYS answers");
    keys.into_iter().collect()
}

/// Fills the store with one gateway's worth of entries.
async fn populate(store: &Store, gateway_id: &str, ttl: Duration) -> Result<(), StoreError> {
    store.register_gateway(&gateway(gateway_id), ttl).await?;
    store
        .add_connection(&connection(gateway_id, "c-1", "alice"))
        .await?;
    store.join_room(gateway_id, "c-1", "metrics").await?;
    store.set_node_route("n-1", gateway_id).await?;
    Ok(())
}

#[tokio::test]
async fn keys_follow_the_documented_layout() -> Result<(), StoreError> {
    let (_backend, store, mut raw) = store_and_raw_connection("layout").await;
    populate(&store, "gw-a", LONG_TTL).await?;
    store.add_messages(3).await?;
    store
        .hit_rate_counter("ip", Duration::from_secs(1 << 32))
        .await?;

    let expected: BTreeSet<String> = [
        "gateways",
        "gw:gw-a:alive",
        "gw:gw-a:conns",
        "gw:gw-a:rooms",
        "gw:gw-a:room:metrics",
        "gw:gw-a:conn:c-1:rooms",
        "gw:gw-a:nodes",
        "user:alice",
        "node:n-1",
        "rate:ip:0",
        "stats:total_connections",
        "stats:total_messages",
    ]
    .into_iter()
    .map(|key| format!("sbtest-layout:{key}"))
    .collect();
    assert_eq!(keys(&mut raw).await, expected);
    Ok(())
}

#[tokio::test]
async fn removal_and_sweeping_leave_only_the_cumulative_counters() -> Result<(), StoreError> {
    let (_backend, store, mut raw) = store_and_raw_connection("cleanup").await;
    populate(&store, "gw-removed", LONG_TTL).await?;
    store.remove_gateway("gw-removed").await?;
    let only_counter = BTreeSet::from(["sbtest-cleanup:stats:total_connections".to_owned()]);
    assert_eq!(keys(&mut raw).await, only_counter);

    populate(&store, "gw-dead", SHORT_TTL).await?;
    eventually("the gateway expires", async || {
        Ok::<_, StoreError>(store.live_gateways().await?.is_empty())
    })
    .await;
    assert_eq!(store.sweep_dead_gateways().await?, 1);
    assert_eq!(keys(&mut raw).await, only_counter);
    Ok(())
}

#[tokio::test]
async fn rate_counter_keys_expire_after_two_windows() -> Result<(), StoreError> {
    let (_backend, store, mut raw) = store_and_raw_connection("rate_ttl").await;
    let window = Duration::from_secs(1 << 32);
    store.hit_rate_counter("ip", window).await?;
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg("sbtest-rate_ttl:rate:ip:0")
        .query_async(&mut raw)
        .await
        .expect("PTTL answers");
    let two_windows_ms = i64::try_from((window * 2).as_millis()).expect("fits in i64");
    assert!(ttl_ms > 0 && ttl_ms <= two_windows_ms, "pttl {ttl_ms}");
    Ok(())
}

#[tokio::test]
async fn empty_key_prefix_leaves_keys_unprefixed() -> Result<(), StoreError> {
    let server = store::test_util::RedisServer::start().await;
    let options = RedisOptions {
        key_prefix: String::new(),
        ..RedisOptions::default()
    };
    let store = Store::connect_redis(&server.url(), options)
        .await
        .expect("the test redis-server accepts connections");
    store.add_messages(1).await?;
    let mut raw = redis::Client::open(server.url())
        .expect("the server url is valid")
        .get_multiplexed_async_connection()
        .await
        .expect("the test redis-server accepts connections");
    let expected = BTreeSet::from(["stats:total_messages".to_owned()]);
    assert_eq!(keys(&mut raw).await, expected);
    Ok(())
}
