//! Redis behind Sentinel: the store follows the primary through a failover, and calls made
//! while there is none fail within the response timeout instead of hanging.

use std::time::Duration;

use store::test_util::SentinelCluster;
use store::{ConnectError, GatewayRefresh, RedisOptions, Store, StoreError};
use tokio::time::Instant;

use crate::harness::{LONG_TTL, gateway, sentinel_store};

const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Scheduling allowance on top of the timeout on a loaded test machine.
const SLACK: Duration = Duration::from_millis(500);
/// Sentinel needs `down-after-milliseconds` (1 s in the harness) plus an election; the rest
/// is room for a loaded machine.
const FAILOVER_BUDGET: Duration = Duration::from_secs(30);
const RETRY_INTERVAL: Duration = Duration::from_millis(50);

fn short_timeouts() -> RedisOptions {
    RedisOptions {
        connect_timeout: RESPONSE_TIMEOUT,
        response_timeout: RESPONSE_TIMEOUT,
        ..RedisOptions::default()
    }
}

/// What writing through a failover looked like.
#[derive(Debug)]
struct Recovery {
    /// From the fault to the first write that succeeded.
    first_write_after: Duration,
    failed_calls: usize,
    slowest_failed_call: Duration,
}

/// Writes every 50 ms from `since` until a write succeeds; every failed write must have
/// failed within the response timeout.
async fn write_until_it_succeeds(store: &Store, since: Instant) -> Recovery {
    let mut failed_calls = 0;
    let mut slowest_failed_call = Duration::ZERO;
    loop {
        let started = Instant::now();
        let outcome = store.add_messages(1).await;
        let took = started.elapsed();
        match outcome {
            Ok(()) => {
                return Recovery {
                    first_write_after: since.elapsed(),
                    failed_calls,
                    slowest_failed_call,
                };
            }
            Err(error) => {
                assert!(
                    took < RESPONSE_TIMEOUT + SLACK,
                    "a write during the failover took {took:?} ({error:?})"
                );
                failed_calls += 1;
                slowest_failed_call = slowest_failed_call.max(took);
            }
        }
        assert!(
            since.elapsed() < FAILOVER_BUDGET,
            "no write succeeded within {FAILOVER_BUDGET:?} of the fault"
        );
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

/// The total the sentinel-backed store reads must be the one the node the sentinels name as
/// primary holds: the store writes to the promoted replica, not to a stale address.
async fn assert_store_is_on_the_primary(
    cluster: &SentinelCluster,
    store: &Store,
    prefix_test_name: &str,
) -> Result<(), StoreError> {
    store.add_messages(1).await?;
    let direct = Store::connect_redis(
        &cluster.primary_url().await,
        RedisOptions {
            key_prefix: format!("sbtest-{prefix_test_name}"),
            ..RedisOptions::default()
        },
    )
    .await
    .expect("the primary the sentinels name accepts connections");
    assert_eq!(
        direct.cluster_stats().await?.total_messages,
        store.cluster_stats().await?.total_messages,
        "the store writes to the primary the sentinels name"
    );
    Ok(())
}

#[tokio::test]
async fn after_the_primary_is_killed_writes_reach_the_promoted_replica_within_seconds()
-> Result<(), StoreError> {
    let name = "sentinel_kill";
    let mut cluster = SentinelCluster::start().await;
    let store = sentinel_store(&cluster, name, short_timeouts()).await;
    let info = gateway("gw-a");
    store.register_gateway(&info, LONG_TTL).await?;
    store.add_messages(1).await?;

    let killed_at = Instant::now();
    let old_port = cluster.kill_primary().await;
    let recovery = write_until_it_succeeds(&store, killed_at).await;
    let new_port = cluster.wait_for_failover(old_port, FAILOVER_BUDGET).await;
    println!(
        "sentinel failover (SIGKILL primary {old_port} -> {new_port}): first successful write \
         {:.2} s after the kill; {} calls failed meanwhile, the slowest in {} ms",
        recovery.first_write_after.as_secs_f64(),
        recovery.failed_calls,
        recovery.slowest_failed_call.as_millis()
    );
    assert_store_is_on_the_primary(&cluster, &store, name).await?;
    // The replica had the liveness entry, so this failover lost nothing the gateway wrote.
    assert_eq!(
        store.refresh_gateway(&info, LONG_TTL).await?,
        GatewayRefresh::Continued
    );

    // The killed node comes back empty; the sentinels make it a replica of the new primary,
    // and the store stays on the primary.
    cluster.restart_killed_nodes().await;
    for _ in 0..5 {
        store.add_messages(1).await?;
    }
    assert_store_is_on_the_primary(&cluster, &store, name).await
}

#[tokio::test]
async fn a_primary_demoted_by_a_manual_failover_is_left_for_the_promoted_replica()
-> Result<(), StoreError> {
    let name = "sentinel_manual";
    let cluster = SentinelCluster::start().await;
    let store = sentinel_store(&cluster, name, short_timeouts()).await;
    store.add_messages(1).await?;
    let old_port = cluster.primary_port().await.expect("a sentinel answers");

    // The old primary stays up as a replica: the store's reconnect finds it read-only and
    // must ask the sentinels again.
    let started = Instant::now();
    let sentinel_port = cluster.sentinel_ports()[0];
    let client = redis::Client::open(format!("redis://127.0.0.1:{sentinel_port}"))
        .expect("a valid sentinel url");
    let mut sentinel = client
        .get_multiplexed_async_connection()
        .await
        .expect("the sentinel accepts connections");
    let mut failover = redis::cmd("SENTINEL");
    failover.arg("FAILOVER").arg(cluster.master_name());
    failover
        .query_async::<()>(&mut sentinel)
        .await
        .expect("the sentinel starts a failover");
    let new_port = cluster.wait_for_failover(old_port, FAILOVER_BUDGET).await;
    // Until the sentinels demote it (about 10 s later), the old primary still takes writes,
    // which the new primary never sees. The store's periodic lookup must move it to the new
    // primary well before that: a write through the store must raise the new primary's total.
    let on_new_primary = Store::connect_redis(
        &format!("redis://127.0.0.1:{new_port}"),
        RedisOptions {
            key_prefix: format!("sbtest-{name}"),
            ..RedisOptions::default()
        },
    )
    .await
    .expect("the promoted replica accepts connections");
    let deadline = Instant::now() + FAILOVER_BUDGET;
    loop {
        let before = on_new_primary.cluster_stats().await?.total_messages;
        let wrote = store.add_messages(1).await.is_ok();
        let after = on_new_primary.cluster_stats().await?.total_messages;
        if wrote && after > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store did not follow the manual failover"
        );
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
    let switched_after = started.elapsed();
    let old_role = cluster.role_of(old_port).await;
    println!(
        "sentinel manual failover ({old_port} -> {new_port}): writes reach the new primary \
         {:.2} s after SENTINEL FAILOVER (old primary's role then: {old_role:?})",
        switched_after.as_secs_f64()
    );
    assert_store_is_on_the_primary(&cluster, &store, name).await
}

#[tokio::test]
async fn passwords_of_the_primary_and_of_the_sentinels_come_from_the_url_and_survive_a_failover()
-> Result<(), StoreError> {
    let name = "sentinel_auth";
    let mut cluster =
        SentinelCluster::start_with_passwords(Some("redispw"), Some("sentinelpw")).await;
    let url = cluster.url();
    assert!(
        url.contains(":redispw@") && url.ends_with("?sentinel_password=sentinelpw"),
        "{url}"
    );
    let store = sentinel_store(&cluster, name, short_timeouts()).await;
    store.add_messages(1).await?;
    assert_store_is_on_the_primary(&cluster, &store, name).await?;

    let wrong_redis_password = url.replace(":redispw@", ":wrong@");
    let refused = Store::connect_redis(&wrong_redis_password, short_timeouts()).await;
    assert!(
        matches!(refused, Err(ConnectError::Unavailable(_))),
        "a wrong primary password is refused: {refused:?}"
    );
    let no_sentinel_password = url.replace("?sentinel_password=sentinelpw", "");
    let refused = Store::connect_redis(&no_sentinel_password, short_timeouts()).await;
    assert!(
        matches!(refused, Err(ConnectError::Unavailable(_))),
        "sentinels with requirepass refuse a lookup without it: {refused:?}"
    );

    let killed_at = Instant::now();
    let old_port = cluster.kill_primary().await;
    let recovery = write_until_it_succeeds(&store, killed_at).await;
    cluster.wait_for_failover(old_port, FAILOVER_BUDGET).await;
    println!(
        "sentinel failover with passwords: first successful write {:.2} s after the kill",
        recovery.first_write_after.as_secs_f64()
    );
    assert_store_is_on_the_primary(&cluster, &store, name).await
}
