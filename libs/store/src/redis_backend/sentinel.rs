//! Finding the Redis primary through Sentinel (`redis+sentinel://` URLs).
//!
//! The redis crate's `Sentinel` asks each sentinel for the primary of a monitored name
//! (`SENTINEL MASTERS`) and checks with `ROLE` that the node it names really is a primary, so
//! a sentinel that has not yet noticed a failover cannot send us to the demoted node. The
//! crate's `ConnectionManager`, however, keeps reconnecting to the one address it was built
//! with, so the store asks the sentinels again whenever a call finds the primary gone or
//! read-only, and swaps the manager when the answer is a different node (see
//! `connection.rs`).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};
use settings::SentinelUrl;

use crate::error::{BoxError, ConnectError};

/// Asks a set of sentinels for the current primary of one monitored name.
pub(crate) struct PrimaryLocator {
    sentinel: Sentinel,
    master_name: String,
    primary_info: SentinelNodeConnectionInfo,
    lookup_timeout: Duration,
    /// The sentinels, for the cheap periodic question ([`PrimaryLocator::named_primary`]).
    sentinel_infos: Vec<ConnectionInfo>,
    /// A connection kept to one sentinel for that question; another is tried on failure.
    watch: Option<MultiplexedConnection>,
    next_sentinel: usize,
}

impl PrimaryLocator {
    /// Builds a locator for `url`; nothing is contacted yet.
    pub(crate) fn new(url: &SentinelUrl, lookup_timeout: Duration) -> Result<Self, ConnectError> {
        let mut sentinel_settings = RedisConnectionInfo::default();
        if let Some(username) = &url.sentinel_username {
            sentinel_settings = sentinel_settings.set_username(username);
        }
        if let Some(password) = &url.sentinel_password {
            sentinel_settings = sentinel_settings.set_password(password);
        }
        let sentinels = url
            .sentinels
            .iter()
            .map(|(host, port)| {
                ConnectionAddr::Tcp(host.clone(), *port)
                    .into_connection_info()
                    .map(|info| info.set_redis_settings(sentinel_settings.clone()))
            })
            .collect::<Result<Vec<ConnectionInfo>, _>>()
            .map_err(|error| ConnectError::InvalidUrl(Box::new(error)))?;
        let sentinel = Sentinel::build(sentinels.clone())
            .map_err(|error| ConnectError::InvalidUrl(Box::new(error)))?;
        let mut primary_settings = RedisConnectionInfo::default().set_db(url.db);
        if let Some(username) = &url.username {
            primary_settings = primary_settings.set_username(username);
        }
        if let Some(password) = &url.password {
            primary_settings = primary_settings.set_password(password);
        }
        Ok(Self {
            sentinel,
            master_name: url.master_name.clone(),
            primary_info: SentinelNodeConnectionInfo::default()
                .set_redis_connection_info(primary_settings),
            lookup_timeout,
            sentinel_infos: sentinels,
            watch: None,
            next_sentinel: 0,
        })
    }

    /// Asks one sentinel which address it names as primary (`SENTINEL
    /// get-master-addr-by-name`), as `host:port`, over a connection kept between calls; `None`
    /// if no sentinel answers. Cheap enough to ask every second, unlike
    /// [`PrimaryLocator::locate`], which opens a connection to the primary to check its role.
    pub(crate) async fn named_primary(&mut self) -> Option<String> {
        for _ in 0..self.sentinel_infos.len() {
            if self.watch.is_none() {
                let index = self.next_sentinel % self.sentinel_infos.len();
                self.next_sentinel = self.next_sentinel.wrapping_add(1);
                let client = redis::Client::open(self.sentinel_infos[index].clone()).ok()?;
                let connecting = client.get_multiplexed_async_connection();
                match tokio::time::timeout(self.lookup_timeout, connecting).await {
                    Ok(Ok(connection)) => self.watch = Some(connection),
                    _ => continue,
                }
            }
            let connection = self.watch.as_mut()?;
            let mut question = redis::cmd("SENTINEL");
            question
                .arg("get-master-addr-by-name")
                .arg(&self.master_name);
            let asking = question.query_async::<Option<(String, u16)>>(connection);
            match tokio::time::timeout(self.lookup_timeout, asking).await {
                Ok(Ok(Some((host, port)))) => return Some(format!("{host}:{port}")),
                _ => self.watch = None,
            }
        }
        None
    }

    /// The monitored name, for logs.
    pub(crate) fn master_name(&self) -> &str {
        &self.master_name
    }

    /// Asks the sentinels for the primary and returns a client for it, once the node has
    /// confirmed it is a primary.
    ///
    /// Fails when no sentinel answers, none knows the name, or the node they name is down
    /// or not (yet) a primary, which is what a lookup sees during a failover; fails after
    /// the lookup timeout when sentinels or the node hang.
    pub(crate) async fn locate(&mut self) -> Result<redis::Client, LocateError> {
        let lookup = self
            .sentinel
            .async_master_for(&self.master_name, Some(&self.primary_info));
        match tokio::time::timeout(self.lookup_timeout, lookup).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(error)) => Err(LocateError::Failed(Box::new(error))),
            Err(_elapsed) => Err(LocateError::Timeout(self.lookup_timeout)),
        }
    }
}

/// Why the sentinels did not lead to a primary.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LocateError {
    /// No sentinel named a reachable primary.
    #[error("no sentinel named a reachable primary")]
    Failed(#[source] BoxError),
    /// The sentinels or the named node did not answer in time.
    #[error("sentinel lookup took longer than {0:?}")]
    Timeout(Duration),
}

impl From<LocateError> for ConnectError {
    fn from(error: LocateError) -> Self {
        match error {
            LocateError::Timeout(after) => ConnectError::Timeout(after),
            failed @ LocateError::Failed(_) => ConnectError::Unavailable(Box::new(failed)),
        }
    }
}

/// The address of the node `client` connects to, for comparing and logging.
pub(crate) fn node_address(client: &redis::Client) -> String {
    match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => format!("{other:?}"),
    }
}
