//! The event-driven streams: `topology_change` (room `topology`) whenever nodes join, come
//! back, go offline, stop, change layer or are forgotten, and the `alert`s the publisher
//! derives from those changes (room `alerts`: `node_offline` as a warning, `node_online` as
//! info). Only silence is an outage: a node whose agent sent its final state is `stopped`,
//! which raises no alert.
//!
//! The registry collects changes; [`run_sweeper`] finds silent nodes between stream ticks,
//! and [`run`] takes whatever has piled up and publishes it as one `topology_change` plus
//! one alert per offline/online change, if this replica leads. A standby takes and drops
//! them (counted), so after a takeover the new leader does not replay the old leader's news.

use std::sync::Arc;
use std::time::SystemTime;

use protocol::streams::{Alert, NodeChange, TopologyChange, events, rooms};
use store::Lease;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::emit::{self, RoomPublish};
use crate::leader::Leader;
use crate::registry::{Change, ChangeKind, NodeRegistry, as_u64};
use crate::state::Shared;

/// Sweeps the registry every `sweep_interval` so offline nodes are noticed between stream
/// ticks, and keeps the node gauges current.
pub(crate) async fn run_sweeper(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(shared.config.sweep_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let (changed, (online, offline), dropped) = {
            let mut registry = shared.registry();
            let changed = registry.sweep(Instant::now());
            (changed, registry.counts(), registry.dropped_changes())
        };
        let gauge = |count: u64| i64::try_from(count).unwrap_or(i64::MAX);
        let nodes = &shared.metrics.nodes;
        nodes.with_label_values(&["online"]).set(gauge(online));
        nodes.with_label_values(&["offline"]).set(gauge(offline));
        shared.metrics.changes_dropped.set(gauge(dropped));
        if changed {
            shared.changes_ready.notify_one();
        }
    }
}

/// Publishes topology changes and node alerts as they happen, until `shutdown`.
pub(crate) async fn run(shared: Arc<Shared>, leader: Leader, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = shared.changes_ready.notified() => {}
        }
        let (changes, topology) = {
            let mut registry = shared.registry();
            let changes = registry.take_changes();
            let topology = topology_after(&registry);
            (changes, topology)
        };
        if changes.is_empty() {
            continue;
        }
        let Some(lease) = leader.current() else {
            shared.metrics.events_skipped.inc_by(as_u64(changes.len()));
            continue;
        };
        let span = tracing::info_span!("topology_change", changes = changes.len());
        publish_changes(&shared, &lease, &changes, topology)
            .instrument(span)
            .await;
    }
}

async fn publish_changes(
    shared: &Shared,
    lease: &Lease,
    changes: &[Change],
    topology: TopologyChange,
) {
    let topology = TopologyChange {
        changes: changes
            .iter()
            .map(|change| NodeChange {
                node_id: change.node_id.clone(),
                layer: change.layer.clone(),
                change: change.kind.as_str().to_owned(),
            })
            .collect(),
        lease_epoch: lease.fencing_token,
        ..topology
    };
    let data = serde_json::to_value(&topology).expect("topology payload serialises to json");
    let message = RoomPublish {
        room: rooms::TOPOLOGY,
        event: events::TOPOLOGY_CHANGE,
        data,
        seq: None,
        priority: None,
    };
    emit::publish_room(shared, lease, message).await;
    for change in changes {
        let Some((alert, priority)) = alert_for(change, lease.fencing_token) else {
            continue;
        };
        let data = serde_json::to_value(&alert).expect("alert payload serialises to json");
        let message = RoomPublish {
            room: rooms::ALERTS,
            event: events::ALERT,
            data,
            seq: None,
            priority: Some(priority),
        };
        emit::publish_room(shared, lease, message).await;
    }
}

/// The topology as it is now (changes and epoch are filled in by the caller).
fn topology_after(registry: &NodeRegistry) -> TopologyChange {
    let mut topology = TopologyChange::default();
    for entry in registry.online_nodes() {
        topology
            .layers
            .entry(entry.state.layer.clone())
            .or_default()
            .push(entry.state.node_id.clone());
    }
    let (online, offline) = registry.counts();
    let stopped = registry.stopped_count();
    topology.active_nodes = online;
    topology.stopped_nodes = stopped;
    topology.total_nodes = online + offline + stopped;
    topology
}

/// The alert a change deserves, with its priority, if any.
fn alert_for(change: &Change, lease_epoch: u64) -> Option<(Alert, &'static str)> {
    let last_seen = humantime::format_rfc3339_millis(change.last_seen_wall);
    let (kind, severity, message) = match change.kind {
        ChangeKind::Offline => (
            "node_offline",
            "warning",
            format!(
                "node {} ({}) is offline; last report at {last_seen}",
                change.node_id, change.layer
            ),
        ),
        ChangeKind::Online => (
            "node_online",
            "info",
            format!("node {} ({}) reports again", change.node_id, change.layer),
        ),
        // A clean stop is what the operator asked for: shown in the topology, not alerted.
        ChangeKind::Joined | ChangeKind::Stopped | ChangeKind::Left | ChangeKind::LayerChanged => {
            return None;
        }
    };
    let alert = Alert {
        kind: kind.to_owned(),
        severity: severity.to_owned(),
        message,
        node_id: Some(change.node_id.clone()),
        metric: None,
        value: None,
        timestamp: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        lease_epoch: Some(lease_epoch),
    };
    Some((alert, severity))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: ChangeKind) -> Change {
        Change {
            node_id: "n-1".into(),
            layer: "edge".into(),
            kind,
            last_seen_wall: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn offline_is_a_warning_online_is_info_and_joins_are_not_alerts() {
        let (alert, priority) = alert_for(&change(ChangeKind::Offline), 7).unwrap();
        assert_eq!((alert.kind.as_str(), priority), ("node_offline", "warning"));
        assert_eq!(alert.node_id.as_deref(), Some("n-1"));
        assert_eq!(alert.lease_epoch, Some(7));
        assert!(
            alert.message.contains("1970-01-01T00:00:00.000Z"),
            "{}",
            alert.message
        );
        let (alert, priority) = alert_for(&change(ChangeKind::Online), 7).unwrap();
        assert_eq!((alert.kind.as_str(), priority), ("node_online", "info"));
        assert!(alert_for(&change(ChangeKind::Joined), 7).is_none());
        assert!(
            alert_for(&change(ChangeKind::Stopped), 7).is_none(),
            "a clean stop is no outage"
        );
    }
}
