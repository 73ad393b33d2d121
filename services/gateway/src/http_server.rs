//! The gateway's HTTP front door: the shared accept loop of `http_front` with the limits of
//! `[gateway]` (header-read timeout, connection cap from accept on, probe headroom).

use http_front::{ConnectionCap, FrontDoor, Limits};

use crate::config::GatewayConfig;
use crate::metrics::Metrics;

/// The front door `config` asks for, and where its connection cap came from: `None` when
/// `max_connections` was set, the file limit it was derived from otherwise.
pub(crate) fn front_door(
    config: &GatewayConfig,
    metrics: &Metrics,
) -> (FrontDoor, Option<ConnectionCap>) {
    let derived = config
        .max_connections
        .is_none()
        .then(|| ConnectionCap::derive(config.probe_headroom));
    let limits = Limits {
        header_read_timeout: config.header_read_timeout,
        max_connections: config
            .max_connections
            .or(derived.map(|cap| cap.max_connections))
            .unwrap_or(1),
        probe_headroom: config.probe_headroom,
    };
    let door = FrontDoor::new(limits).count_refused(metrics.http_connections_refused.clone());
    (door, derived)
}
