//! Backends under test, record builders and `eventually`.

use std::fmt::Debug;
use std::time::Duration;

use store::test_util::{RedisServer, SentinelCluster};
use store::{ConnectionRecord, GatewayInfo, RedisOptions, Store};

/// A TTL no test outlives: the gateway stays live throughout.
pub const LONG_TTL: Duration = Duration::from_secs(60);
/// A TTL short enough to watch expire.
pub const SHORT_TTL: Duration = Duration::from_millis(300);
/// How long `eventually` waits; generous so a loaded machine does not flake.
const EVENTUALLY_TIMEOUT: Duration = Duration::from_secs(10);
const EVENTUALLY_INTERVAL: Duration = Duration::from_millis(20);

/// A backend under test; keeps the Redis server (if any) running while the store is used.
pub struct Backend {
    pub store: Store,
    pub redis: Option<RedisServer>,
}

impl Backend {
    pub fn memory() -> Backend {
        Backend {
            store: Store::memory(),
            redis: None,
        }
    }

    /// A fresh redis-server and a store on it whose key prefix is unique to the test.
    pub async fn redis(test_name: &str) -> Backend {
        Self::redis_with(test_name, RedisOptions::default()).await
    }

    pub async fn redis_with(test_name: &str, options: RedisOptions) -> Backend {
        let server = RedisServer::start().await;
        let options = RedisOptions {
            key_prefix: format!("sbtest-{test_name}"),
            ..options
        };
        let store = Store::connect_redis(&server.url(), options)
            .await
            .expect("the test redis-server accepts connections");
        Backend {
            store,
            redis: Some(server),
        }
    }
}

/// A store on `cluster` through its `redis+sentinel://` URL, with a key prefix unique to
/// the test.
pub async fn sentinel_store(
    cluster: &SentinelCluster,
    test_name: &str,
    options: RedisOptions,
) -> Store {
    let options = RedisOptions {
        key_prefix: format!("sbtest-{test_name}"),
        ..options
    };
    Store::connect_redis(&cluster.url(), options)
        .await
        .expect("the test sentinels name a primary that accepts connections")
}

pub fn gateway(id: &str) -> GatewayInfo {
    GatewayInfo {
        id: id.to_owned(),
        address: format!("10.0.0.1:{}", id.len()),
        started_at_ms: 1_700_000_000_000,
    }
}

pub fn connection(gateway_id: &str, connection_id: &str, user_id: &str) -> ConnectionRecord {
    ConnectionRecord {
        connection_id: connection_id.to_owned(),
        gateway_id: gateway_id.to_owned(),
        user_id: user_id.to_owned(),
        role: "dashboard".to_owned(),
        node_id: None,
        connected_at_ms: 1_700_000_000_123,
    }
}

/// Polls `check` until it returns `Ok(true)`; errors count as "not yet".
///
/// # Panics
/// Panics, naming `what` and the last result, if that does not happen within 10 s.
pub async fn eventually<E: Debug>(what: &str, mut check: impl AsyncFnMut() -> Result<bool, E>) {
    let deadline = tokio::time::Instant::now() + EVENTUALLY_TIMEOUT;
    loop {
        let outcome = check().await;
        if matches!(outcome, Ok(true)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}; last result: {outcome:?}"
        );
        tokio::time::sleep(EVENTUALLY_INTERVAL).await;
    }
}
