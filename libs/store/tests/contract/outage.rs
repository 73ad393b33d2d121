//! Redis only: an outage makes calls fail fast, never hang, and the store recovers.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::Duration;

use store::{ConnectError, GatewayRefresh, RedisOptions, Store, StoreError};
use tokio::time::Instant;

use crate::harness::{Backend, LONG_TTL, eventually, gateway};

const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Scheduling allowance on top of the timeout on a loaded test machine.
const SLACK: Duration = Duration::from_millis(500);

fn short_timeouts() -> RedisOptions {
    RedisOptions {
        connect_timeout: RESPONSE_TIMEOUT,
        response_timeout: RESPONSE_TIMEOUT,
        ..RedisOptions::default()
    }
}

async fn assert_fails_within_the_timeout<T: Debug>(
    what: &str,
    call: impl Future<Output = Result<T, StoreError>>,
) {
    let started = Instant::now();
    let outcome = call.await;
    let took = started.elapsed();
    assert!(outcome.is_err(), "{what} succeeded: {outcome:?}");
    assert!(took < RESPONSE_TIMEOUT + SLACK, "{what} took {took:?}");
}

/// Several rounds, because the first call after a drop fails differently (connection
/// lost) from later ones (waiting on the reconnect).
async fn assert_calls_fail_fast(store: &Store) {
    for _ in 0..3 {
        assert_fails_within_the_timeout("cluster_stats", store.cluster_stats()).await;
        assert_fails_within_the_timeout("add_messages", store.add_messages(1)).await;
        let window = Duration::from_secs(1);
        let hit = store.hit_rate_counter("k", window);
        assert_fails_within_the_timeout("hit_rate_counter", hit).await;
        let info = gateway("gw-a");
        let heartbeat = store.register_gateway(&info, LONG_TTL);
        assert_fails_within_the_timeout("register_gateway", heartbeat).await;
    }
}

#[tokio::test]
async fn calls_fail_within_the_response_timeout_while_redis_is_down_and_work_after_restart() {
    let mut backend = Backend::redis_with("outage_down", short_timeouts()).await;
    let store = backend.store.clone();
    let server = backend
        .redis
        .as_mut()
        .expect("a redis backend has a server");
    store
        .register_gateway(&gateway("gw-a"), LONG_TTL)
        .await
        .unwrap();

    server.stop().await;
    assert_calls_fail_fast(&store).await;

    server.restart().await;
    eventually("the store reconnects", async || {
        store.ping().await.map(|()| true)
    })
    .await;
    // The restarted server is empty (no persistence); the gateway's next heartbeat
    // registers it again.
    assert!(store.live_gateways().await.unwrap().is_empty());
    store
        .register_gateway(&gateway("gw-a"), LONG_TTL)
        .await
        .unwrap();
    assert_eq!(store.live_gateways().await.unwrap(), vec![gateway("gw-a")]);
    assert_eq!(
        store
            .hit_rate_counter("k", Duration::from_secs(1 << 32))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn calls_time_out_while_redis_hangs_and_work_once_it_resumes() {
    let backend = Backend::redis_with("outage_frozen", short_timeouts()).await;
    let store = backend.store.clone();
    let server = backend
        .redis
        .as_ref()
        .expect("a redis backend has a server");
    store
        .register_gateway(&gateway("gw-a"), LONG_TTL)
        .await
        .unwrap();

    server.pause().await;
    let started = Instant::now();
    let outcome = store.live_gateways().await;
    assert!(
        matches!(outcome, Err(StoreError::Timeout(_))),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < RESPONSE_TIMEOUT + SLACK,
        "took {:?}",
        started.elapsed()
    );
    assert_calls_fail_fast(&store).await;

    server.resume().await;
    eventually("the store answers again", async || {
        Ok::<_, StoreError>(store.live_gateways().await? == vec![gateway("gw-a")])
    })
    .await;
}

/// Ids of the clients connected to the server, except `raw` itself.
async fn other_client_ids(raw: &mut redis::aio::MultiplexedConnection) -> BTreeSet<u64> {
    let own_id: u64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(raw)
        .await
        .expect("CLIENT ID answers");
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(raw)
        .await
        .expect("CLIENT LIST answers");
    list.lines()
        .filter_map(|line| line.strip_prefix("id=")?.split(' ').next()?.parse().ok())
        .filter(|id| *id != own_id)
        .collect()
}

/// A hung Redis never closes the socket, so the client library alone would keep waiting
/// on the dead connection; the store replaces it after a few timeouts in a row.
#[tokio::test]
async fn connection_that_stops_answering_is_replaced() {
    let backend = Backend::redis_with("outage_replaced", short_timeouts()).await;
    let store = backend.store.clone();
    let server = backend
        .redis
        .as_ref()
        .expect("a redis backend has a server");
    let mut raw = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    store.ping().await.unwrap();
    let original_clients = other_client_ids(&mut raw).await;
    assert!(!original_clients.is_empty());

    server.pause().await;
    for _ in 0..3 {
        assert!(matches!(store.ping().await, Err(StoreError::Timeout(_))));
    }
    server.resume().await;

    eventually("the store answers again", async || {
        store.ping().await.map(|()| true)
    })
    .await;
    eventually("the hung connection is closed", async || {
        let current = other_client_ids(&mut raw).await;
        Ok::<_, StoreError>(current.is_disjoint(&original_clients))
    })
    .await;
}

#[tokio::test]
async fn connecting_fails_fast_when_redis_is_down() {
    let mut backend = Backend::redis_with("connect_down", short_timeouts()).await;
    let server = backend
        .redis
        .as_mut()
        .expect("a redis backend has a server");
    server.stop().await;
    let started = Instant::now();
    let outcome = Store::connect_redis(&server.url(), short_timeouts()).await;
    assert!(
        matches!(
            outcome,
            Err(ConnectError::Unavailable(_) | ConnectError::Timeout(_))
        ),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < RESPONSE_TIMEOUT + SLACK,
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connecting_rejects_a_malformed_url() {
    let outcome = Store::connect_redis("not a url", RedisOptions::default()).await;
    assert!(
        matches!(outcome, Err(ConnectError::InvalidUrl(_))),
        "{outcome:?}"
    );
}

/// A Redis restarted without its data, quickly enough that no call of ours failed: the
/// gateway's next refresh still learns that the store lost its entries.
#[tokio::test]
async fn a_refresh_after_a_quick_restart_reports_the_liveness_entry_missing() {
    let mut backend = Backend::redis_with("outage_restart", short_timeouts()).await;
    let store = backend.store.clone();
    let info = gateway("gw-a");
    store.register_gateway(&info, LONG_TTL).await.unwrap();
    assert_eq!(
        store.refresh_gateway(&info, LONG_TTL).await.unwrap(),
        GatewayRefresh::Continued
    );

    backend
        .redis
        .as_mut()
        .expect("a redis backend has a server")
        .restart()
        .await;
    // The first call may see the dropped connection; the refresh after it must not be
    // mistaken for a continuation.
    let mut refreshes = Vec::new();
    eventually("a refresh succeeds after the restart", async || {
        let refresh = store.refresh_gateway(&info, LONG_TTL).await;
        let succeeded = refresh.is_ok();
        refreshes.push(refresh);
        Ok::<_, StoreError>(succeeded)
    })
    .await;
    assert!(
        matches!(refreshes.last(), Some(Ok(GatewayRefresh::Missing))),
        "{refreshes:?}"
    );
}
