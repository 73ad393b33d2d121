//! `metrics_update` (room `metrics`): system health from the registry and from probes of the
//! bus, the store and the gateways' liveness entries.
//!
//! Each component is `up`, `degraded`, `down` or `unknown`. The system is `critical` when
//! the bus or the store is down, `degraded` when anything else is degraded or down, and
//! `healthy` otherwise; `health_score` is the share of known components up, with degraded
//! ones counting half.

use std::collections::BTreeMap;
use std::time::Duration;

use protocol::metrics::MetricSample;
use protocol::streams::{MetricsUpdate, ServiceStatus};
use tokio::time::Instant;

use super::Stamp;
use crate::state::Shared;

/// What the probes found, gathered before the registry is locked.
#[derive(Debug, Clone)]
pub(super) struct Probes {
    pub bus_connected: bool,
    pub bus_backend: &'static str,
    /// The store's PING round trip, or why it failed.
    pub store: Result<Duration, String>,
    pub store_backend: &'static str,
    /// Gateways whose liveness has not expired, when the store could say.
    pub live_gateways: Option<usize>,
}

/// Probes the bus, the store and the gateways' liveness; each store call is bounded by the
/// store's response timeout.
pub(super) async fn probe(shared: &Shared) -> Probes {
    let started = Instant::now();
    let store = shared
        .store
        .ping()
        .await
        .map(|()| started.elapsed())
        .map_err(|error| error.to_string());
    let live_gateways = match store {
        Ok(_) => shared
            .store
            .live_gateways()
            .await
            .ok()
            .map(|gateways| gateways.len()),
        Err(_) => None,
    };
    Probes {
        bus_connected: shared.bus.is_connected(),
        bus_backend: shared.bus.backend_name(),
        store,
        store_backend: shared.store.backend_name(),
        live_gateways,
    }
}

/// Node-side figures for one update.
#[derive(Debug, Clone, Copy)]
pub(super) struct NodeFigures {
    pub online: u64,
    pub offline: u64,
    pub reports_per_second: f64,
    pub rejected_reports: u64,
}

fn status(status: &str, detail: Option<String>, latency_ms: Option<f64>) -> ServiceStatus {
    ServiceStatus {
        status: status.to_owned(),
        detail,
        latency_ms,
    }
}

/// Builds the update and its samples (`system.health_score`, `store.latency_ms`,
/// `ingest.reports_per_second`).
pub(super) fn build(
    probes: &Probes,
    nodes: NodeFigures,
    instance_id: &str,
    stamp: Stamp,
) -> (MetricsUpdate, Vec<MetricSample>) {
    let mut services = BTreeMap::new();
    let bus_status = if probes.bus_connected { "up" } else { "down" };
    services.insert(
        "bus".to_owned(),
        status(bus_status, Some(probes.bus_backend.to_owned()), None),
    );
    let store_latency_ms = probes
        .store
        .as_ref()
        .ok()
        .map(|rtt| rtt.as_secs_f64() * 1000.0);
    let store = match &probes.store {
        Ok(_) => status(
            "up",
            Some(probes.store_backend.to_owned()),
            store_latency_ms,
        ),
        Err(reason) => status("down", Some(reason.clone()), None),
    };
    services.insert("store".to_owned(), store);
    let gateways = match probes.live_gateways {
        Some(0) => status("down", Some("no live gateway".to_owned()), None),
        Some(count) => status("up", Some(format!("{count} live")), None),
        None => status("unknown", None, None),
    };
    services.insert("gateways".to_owned(), gateways);
    let total = nodes.online + nodes.offline;
    let node_status = match (nodes.online, nodes.offline) {
        (0, 0) => "unknown",
        (_, 0) => "up",
        (0, _) => "down",
        _ => "degraded",
    };
    let node_detail = (total > 0).then(|| format!("{} of {total} nodes online", nodes.online));
    services.insert("nodes".to_owned(), status(node_status, node_detail, None));
    services.insert(
        "publisher".to_owned(),
        status("up", Some(format!("leader {instance_id}")), None),
    );

    let core_down = ["bus", "store"]
        .iter()
        .any(|name| services.get(*name).is_some_and(|s| s.status == "down"));
    let any_unwell = services
        .values()
        .any(|s| s.status == "down" || s.status == "degraded");
    let system_health = if core_down {
        "critical"
    } else if any_unwell {
        "degraded"
    } else {
        "healthy"
    };
    let health_score = health_score(&services);
    let mut samples = vec![
        MetricSample::new("system.health_score", health_score, stamp.at_ms),
        MetricSample::new(
            "ingest.reports_per_second",
            nodes.reports_per_second,
            stamp.at_ms,
        ),
    ];
    if let Some(latency) = store_latency_ms {
        samples.push(MetricSample::new("store.latency_ms", latency, stamp.at_ms));
    }
    let update = MetricsUpdate {
        system_health: system_health.to_owned(),
        health_score,
        services,
        active_nodes: nodes.online,
        offline_nodes: nodes.offline,
        reports_per_second: nodes.reports_per_second,
        rejected_reports: nodes.rejected_reports,
        tick: stamp.tick,
        lease_epoch: stamp.lease_epoch,
    };
    (update, samples)
}

fn health_score(services: &BTreeMap<String, ServiceStatus>) -> f64 {
    let mut known = 0.0_f64;
    let mut score = 0.0_f64;
    for service in services.values() {
        let weight = match service.status.as_str() {
            "up" => 1.0,
            "degraded" => 0.5,
            "down" => 0.0,
            _ => continue,
        };
        known += 1.0;
        score += weight;
    }
    if known == 0.0 {
        100.0
    } else {
        (score / known * 1000.0).round() / 10.0
    }
}

/// Turns the ever-growing report counter into a per-second rate between two updates.
#[derive(Debug, Default)]
pub(super) struct ReportRate {
    last: Option<(u64, Instant)>,
}

impl ReportRate {
    pub(super) fn per_second(&mut self, reports: u64, now: Instant) -> f64 {
        let rate = match self.last {
            Some((before, then)) if now > then => {
                let delta = reports.saturating_sub(before) as f64;
                delta / now.duration_since(then).as_secs_f64()
            }
            _ => 0.0,
        };
        self.last = Some((reports, now));
        rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes() -> Probes {
        Probes {
            bus_connected: true,
            bus_backend: "memory",
            store: Ok(Duration::from_millis(2)),
            store_backend: "memory",
            live_gateways: Some(1),
        }
    }

    fn nodes(online: u64, offline: u64) -> NodeFigures {
        NodeFigures {
            online,
            offline,
            reports_per_second: 0.5,
            rejected_reports: 0,
        }
    }

    fn stamp() -> Stamp {
        Stamp {
            tick: 1,
            lease_epoch: 4,
            at_ms: 2,
        }
    }

    #[test]
    fn all_up_is_healthy_and_scores_100() {
        let (update, samples) = build(&probes(), nodes(3, 0), "pub-a", stamp());
        assert_eq!(update.system_health, "healthy");
        assert_eq!(update.health_score, 100.0);
        assert_eq!(update.services["store"].latency_ms, Some(2.0));
        assert!(samples.iter().any(|s| s.metric == "system.health_score"));
    }

    #[test]
    fn offline_nodes_degrade_and_a_down_store_is_critical() {
        let (update, _) = build(&probes(), nodes(2, 1), "pub-a", stamp());
        assert_eq!(update.system_health, "degraded");
        assert_eq!(update.services["nodes"].status, "degraded");
        assert_eq!(update.health_score, 90.0);

        let mut down = probes();
        down.store = Err("redis unavailable".into());
        down.live_gateways = None;
        let (update, _) = build(&down, nodes(0, 0), "pub-a", stamp());
        assert_eq!(update.system_health, "critical");
        assert_eq!(update.services["gateways"].status, "unknown");
        assert_eq!(update.services["nodes"].status, "unknown");
    }

    #[tokio::test(start_paused = true)]
    async fn report_rate_is_the_counter_delta_per_second() {
        let mut rate = ReportRate::default();
        let start = Instant::now();
        assert_eq!(rate.per_second(10, start), 0.0);
        assert_eq!(rate.per_second(30, start + Duration::from_secs(10)), 2.0);
    }
}
