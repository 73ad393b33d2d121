//! `metrics_update` (room `metrics`): system health from the registry and from probes of the
//! bus, the store, the gateways' liveness entries and the liveness every other service
//! announces in the store (`sb:svc:<service>`: publisher, aggregator, batch_ingest,
//! device_reader; see `store::liveness`).
//!
//! Each component is `up`, `degraded`, `down` or `unknown`. A service of instances is `up`
//! when every instance seen in the last hour is live, `degraded` when only some are, `down`
//! when it was seen and none is live now (silence past its liveness TTL: a crash or a hang;
//! an instance that stops cleanly withdraws and is not counted), and `unknown` when no
//! instance was ever seen or the store cannot say. The system is `critical` when
//! the bus or the store is down, `degraded` when anything else is degraded or down, and
//! `healthy` otherwise; `health_score` is the share of known components up, with degraded
//! ones counting half.

use std::collections::BTreeMap;
use std::time::Duration;

use protocol::metrics::MetricSample;
use protocol::streams::{MetricsUpdate, ServiceStatus, components};
use store::ServiceInstance;
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
    /// The announced instances of each service in [`components::ANNOUNCED`]; `None` when
    /// the store could not say.
    pub instances: BTreeMap<&'static str, Option<Vec<ServiceInstance>>>,
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
    let store_answers = store.is_ok();
    let live_gateways = match store {
        Ok(_) => shared
            .store
            .live_gateways()
            .await
            .ok()
            .map(|gateways| gateways.len()),
        Err(_) => None,
    };
    let mut instances = BTreeMap::new();
    for service in components::ANNOUNCED {
        let listed = if store_answers {
            shared.store.service_instances(service).await.ok()
        } else {
            None
        };
        instances.insert(service, listed);
    }
    Probes {
        bus_connected: shared.bus.is_connected(),
        bus_backend: shared.bus.backend_name(),
        store,
        store_backend: shared.store.backend_name(),
        live_gateways,
        instances,
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
        ..ServiceStatus::default()
    }
}

/// The status of a service from its announced instances (see the module docs).
fn instances_status(instances: Option<&[ServiceInstance]>) -> ServiceStatus {
    let Some(instances) = instances else {
        return status("unknown", Some("store unavailable".to_owned()), None);
    };
    if instances.is_empty() {
        return status("unknown", Some("no instance seen".to_owned()), None);
    }
    let total = instances.len();
    let up = instances.iter().filter(|instance| instance.live).count();
    let (state, detail) = if up == total {
        ("up", format!("{up} of {total} instances up"))
    } else if up > 0 {
        ("degraded", format!("{up} of {total} instances up"))
    } else {
        let last_seen = instances
            .iter()
            .map(|instance| instance.since_last_seen)
            .min()
            .unwrap_or_default();
        (
            "down",
            format!(
                "0 of {total} instances up, last seen {}s ago",
                last_seen.as_secs()
            ),
        )
    };
    ServiceStatus {
        instances_up: Some(crate::registry::as_u64(up)),
        instances: Some(crate::registry::as_u64(total)),
        ..status(state, Some(detail), None)
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
        Some(count) => ServiceStatus {
            instances_up: Some(crate::registry::as_u64(count)),
            instances: Some(crate::registry::as_u64(count)),
            ..status("up", Some(format!("{count} live")), None)
        },
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
    for service in components::ANNOUNCED {
        let mut listed = probes.instances.get(service).cloned().flatten();
        if service == components::PUBLISHER {
            // The leader building this update is alive, whatever the store says (its first
            // announcement may still be on its way, or the store may be down).
            let listed = listed.get_or_insert_with(Vec::new);
            if !listed
                .iter()
                .any(|instance| instance.instance == instance_id)
            {
                listed.push(ServiceInstance {
                    instance: instance_id.to_owned(),
                    live: true,
                    since_last_seen: Duration::ZERO,
                });
            }
        }
        let mut service_status = instances_status(listed.as_deref());
        if service == components::PUBLISHER {
            let detail = service_status.detail.take().unwrap_or_default();
            service_status.detail = Some(format!("{detail}, leader {instance_id}"));
        }
        services.insert(service.to_owned(), service_status);
    }

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

    fn instance(id: &str, live: bool) -> ServiceInstance {
        ServiceInstance {
            instance: id.to_owned(),
            live,
            since_last_seen: Duration::from_secs(if live { 1 } else { 42 }),
        }
    }

    /// Every announced service with one live instance.
    fn probes() -> Probes {
        Probes {
            bus_connected: true,
            bus_backend: "memory",
            store: Ok(Duration::from_millis(2)),
            store_backend: "memory",
            live_gateways: Some(1),
            instances: components::ANNOUNCED
                .into_iter()
                .map(|service| (service, Some(vec![instance(&format!("{service}-1"), true)])))
                .collect(),
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
        // Seven components up, the nodes degraded (half): 7.5 of 8.
        assert_eq!(update.health_score, 93.8);

        let mut down = probes();
        down.store = Err("redis unavailable".into());
        down.live_gateways = None;
        for listed in down.instances.values_mut() {
            *listed = None;
        }
        let (update, _) = build(&down, nodes(0, 0), "pub-a", stamp());
        assert_eq!(update.system_health, "critical");
        assert_eq!(update.services["gateways"].status, "unknown");
        assert_eq!(update.services["nodes"].status, "unknown");
    }

    #[test]
    fn every_service_is_covered_with_its_instances() {
        let (update, _) = build(&probes(), nodes(1, 0), "pub-a", stamp());
        for service in [
            "bus",
            "store",
            "gateways",
            "nodes",
            "publisher",
            "aggregator",
            "batch_ingest",
            "device_reader",
        ] {
            assert_eq!(update.services[service].status, "up", "{service}");
        }
        let aggregator = &update.services["aggregator"];
        assert_eq!(aggregator.detail.as_deref(), Some("1 of 1 instances up"));
        assert_eq!(
            (aggregator.instances_up, aggregator.instances),
            (Some(1), Some(1))
        );
        assert_eq!(
            update.services["publisher"].detail.as_deref(),
            Some("2 of 2 instances up, leader pub-a"),
            "the listed replica and the leader itself"
        );
    }

    #[test]
    fn a_service_seen_then_silent_is_down_and_one_never_seen_is_unknown() {
        let mut probes = probes();
        probes.instances.insert(
            components::AGGREGATOR,
            Some(vec![instance("agg-1", true), instance("agg-2", false)]),
        );
        probes.instances.insert(
            components::BATCH_INGEST,
            Some(vec![instance("bi-1", false)]),
        );
        probes
            .instances
            .insert(components::DEVICE_READER, Some(Vec::new()));
        let (update, _) = build(&probes, nodes(1, 0), "pub-a", stamp());
        assert_eq!(update.services["aggregator"].status, "degraded");
        assert_eq!(
            update.services["aggregator"].detail.as_deref(),
            Some("1 of 2 instances up")
        );
        let batch_ingest = &update.services["batch_ingest"];
        assert_eq!(batch_ingest.status, "down");
        assert_eq!(
            batch_ingest.detail.as_deref(),
            Some("0 of 1 instances up, last seen 42s ago")
        );
        assert_eq!(update.services["device_reader"].status, "unknown");
        assert_eq!(
            update.services["device_reader"].detail.as_deref(),
            Some("no instance seen")
        );
        assert_eq!(update.system_health, "degraded");
    }

    #[tokio::test(start_paused = true)]
    async fn report_rate_is_the_counter_delta_per_second() {
        let mut rate = ReportRate::default();
        let start = Instant::now();
        assert_eq!(rate.per_second(10, start), 0.0);
        assert_eq!(rate.per_second(30, start + Duration::from_secs(10)), 2.0);
    }
}
