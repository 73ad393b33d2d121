//! The four periodic streams (`nodes`, `tasks`, `metrics`, `resources`) and the loop that
//! publishes each on its wall-clock ticks while this replica leads.
//!
//! Each stream runs [`run`]: at every tick boundary (`unix_ms / interval`) it checks that
//! this replica holds the lease, claims the tick in the store under that lease, and only then
//! builds the payload from the registry and publishes it, with `seq` = the tick. A tick
//! another replica already claimed is skipped, and a replica that has just become leader
//! publishes the current tick at once if nobody has: so no tick is ever published twice, and
//! a takeover costs at most the lease TTL plus one renewal interval.

mod health;
mod nodes;
mod resources;
mod tasks;

use std::sync::{Arc, MutexGuard};
use std::time::{Duration, SystemTime};

use protocol::metrics::MetricSample;
use protocol::streams::{events, rooms};
use store::TickClaim;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, warn};

use crate::config::PublisherConfig;
use crate::emit::{self, RoomPublish};
use crate::leader::Leader;
use crate::registry::NodeRegistry;
use crate::schedule::{tick_at, tick_series, unix_ms, until_next_tick};
use crate::state::Shared;

/// One of the periodic streams of seed 001.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Periodic {
    Nodes,
    Tasks,
    Metrics,
    Resources,
}

impl Periodic {
    /// All four, in the order they are started.
    pub(crate) const ALL: [Periodic; 4] = [
        Periodic::Nodes,
        Periodic::Tasks,
        Periodic::Metrics,
        Periodic::Resources,
    ];

    pub(crate) fn room(self) -> &'static str {
        match self {
            Periodic::Nodes => rooms::NODES,
            Periodic::Tasks => rooms::TASKS,
            Periodic::Metrics => rooms::METRICS,
            Periodic::Resources => rooms::RESOURCES,
        }
    }

    fn event(self) -> &'static str {
        match self {
            Periodic::Nodes => events::NODE_STATUS_UPDATE,
            Periodic::Tasks => events::TASK_PROGRESS_UPDATE,
            Periodic::Metrics => events::METRICS_UPDATE,
            Periodic::Resources => events::RESOURCE_UPDATE,
        }
    }

    pub(crate) fn interval(self, config: &PublisherConfig) -> Duration {
        match self {
            Periodic::Nodes => config.nodes_interval,
            Periodic::Tasks => config.tasks_interval,
            Periodic::Metrics => config.metrics_interval,
            Periodic::Resources => config.resources_interval,
        }
    }
}

/// What every payload of one tick is stamped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub tick: u64,
    pub lease_epoch: u64,
    /// Publish time, for metric samples.
    pub at_ms: u64,
}

/// State a stream keeps between its ticks.
#[derive(Debug, Default)]
struct StreamState {
    report_rate: health::ReportRate,
}

/// Publishes `stream` on its ticks until `shutdown`.
pub(crate) async fn run(
    shared: Arc<Shared>,
    stream: Periodic,
    mut leader: Leader,
    shutdown: CancellationToken,
) {
    let interval = stream.interval(&shared.config);
    let series = tick_series(stream.room(), interval);
    let mut state = StreamState::default();
    // The last tick this replica published or saw claimed; a tick is attempted once, except
    // that a standby retries the current tick when it becomes leader (the catch-up).
    let mut settled: Option<u64> = None;
    loop {
        let tick = tick_at(unix_ms(SystemTime::now()), interval);
        if settled.is_none_or(|done| tick > done) {
            // One span per tick, so the published message carries a trace context.
            let span = tracing::info_span!("stream_tick", room = stream.room(), tick);
            let outcome = publish_tick(&shared, stream, &series, tick, &leader, &mut state)
                .instrument(span)
                .await;
            if let Some(done) = outcome {
                settled = Some(done);
            }
        }
        let wait = until_next_tick(unix_ms(SystemTime::now()), interval);
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
            () = leader.changed() => {}
        }
    }
}

/// Tries to publish `tick`; returns the tick to count as settled, or `None` to try the
/// current tick again at the next wake-up (after a leadership change or a store error).
async fn publish_tick(
    shared: &Shared,
    stream: Periodic,
    series: &str,
    tick: u64,
    leader: &Leader,
    state: &mut StreamState,
) -> Option<u64> {
    let room = stream.room();
    let skipped = |reason: &str| {
        shared
            .metrics
            .ticks_skipped
            .with_label_values(&[room, reason])
            .inc();
    };
    let Some(lease) = leader.current() else {
        skipped("standby");
        return None;
    };
    match shared.store.claim_lease_tick(&lease, series, tick).await {
        Ok(TickClaim::Claimed) => {}
        Ok(TickClaim::AlreadyClaimed { last }) => {
            debug!(room, tick, last, "tick already published");
            skipped("already_published");
            return Some(tick.max(last));
        }
        Ok(TickClaim::LeaseLost) => {
            skipped("lease_lost");
            return None;
        }
        Err(error) => {
            warn!(room, tick, error = %error, "tick cannot be claimed; not publishing it");
            skipped("store_error");
            return None;
        }
    }
    let stamp = Stamp {
        tick,
        lease_epoch: lease.fencing_token,
        at_ms: unix_ms(SystemTime::now()),
    };
    let (data, samples) = build(shared, stream, stamp, state).await;
    emit::publish_room(
        shared,
        &lease,
        RoomPublish {
            room,
            event: stream.event(),
            data,
            seq: Some(tick),
            priority: None,
        },
    )
    .await;
    emit::publish_samples(shared, &lease, &samples).await;
    Some(tick)
}

/// Builds one payload from the registry as it is now (swept first, so online flags are
/// current) and the samples that go with it.
async fn build(
    shared: &Shared,
    stream: Periodic,
    stamp: Stamp,
    state: &mut StreamState,
) -> (serde_json::Value, Vec<MetricSample>) {
    let reports = shared.metrics.reports.get();
    match stream {
        Periodic::Nodes => {
            let registry = swept_registry(shared, Instant::now());
            to_json(nodes::build(&registry, reports, stamp))
        }
        Periodic::Tasks => to_json(tasks::build(&swept_registry(shared, Instant::now()), stamp)),
        Periodic::Resources => to_json(resources::build(
            &swept_registry(shared, Instant::now()),
            stamp,
        )),
        Periodic::Metrics => {
            // Probes await the store, so they run before the registry is locked.
            let probes = health::probe(shared).await;
            let now = Instant::now();
            let (online, offline) = swept_registry(shared, now).counts();
            let figures = health::NodeFigures {
                online,
                offline,
                reports_per_second: state.report_rate.per_second(reports, now),
                rejected_reports: rejected_reports(shared),
            };
            to_json(health::build(&probes, figures, &shared.instance_id, stamp))
        }
    }
}

/// Locks the registry after sweeping it, and wakes the topology task if that changed it.
fn swept_registry(shared: &Shared, now: Instant) -> MutexGuard<'_, NodeRegistry> {
    let mut registry = shared.registry();
    if registry.sweep(now) {
        shared.changes_ready.notify_one();
    }
    registry
}

fn rejected_reports(shared: &Shared) -> u64 {
    crate::inputs::REJECT_REASONS
        .iter()
        .map(|reason| {
            shared
                .metrics
                .reports_rejected
                .with_label_values(&[reason])
                .get()
        })
        .sum()
}

fn to_json<T: serde::Serialize>(
    (payload, samples): (T, Vec<MetricSample>),
) -> (serde_json::Value, Vec<MetricSample>) {
    // The payload types are plain structs of strings, numbers, lists and string-keyed maps.
    let data = serde_json::to_value(payload).expect("stream payloads serialise to json");
    (data, samples)
}
