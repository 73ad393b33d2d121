//! Connection figures of node agents' connections, measured here and reported to the
//! publisher on `sb.gateway.nodes.<server_id>` (seed 001's node network figures).
//!
//! Each node connection (role `node` with a `node_id`, on `/api/ws/connect`) carries a
//! [`Meter`]: the round-trip time of the gateway's own WebSocket pings — the heartbeat sweep
//! queues one per `heartbeat_interval`, the writer stamps it with the time it is written,
//! and the pong that echoes that stamp gives the RTT (the newest, and a smoothed value
//! weighted 1/8 per sample as TCP's SRTT) — and the text/binary frames read from and written to
//! it. [`run`] publishes a full snapshot of this gateway's node connections (in pages) every
//! [`report_interval`], again shortly after a node connection closes, and an empty one when the
//! gateway stops, so the publisher's merged figures follow connections as they come and go.
//! A pong that does not echo the newest stamp (unsolicited, or a late answer to an older
//! ping) is not a measurement and is ignored.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use protocol::envelope::encode_bus;
use protocol::nodes::{NodeLink, NodeLinksReport};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::session::conn::Conn;
use crate::state::Shared;

/// Longest interval between two reports: the publisher's `nodes` stream runs every 5 s.
const MAX_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Round-trip times above this are not believed (a clock that jumped, a forged stamp).
const MAX_RTT: Duration = Duration::from_secs(60);

/// The report period: a new RTT comes once per `heartbeat_interval`, so reports are that
/// frequent, but at least every [`MAX_REPORT_INTERVAL`] for the message counts.
pub(crate) fn report_interval(heartbeat_interval: Duration) -> Duration {
    heartbeat_interval
        .min(MAX_REPORT_INTERVAL)
        .max(Duration::from_millis(100))
}

/// Sentinel for "no value yet" in the `f64`-bits atomics.
const NONE_BITS: u64 = u64::MAX;

/// One node connection's measurements. Written by its session task only (pings go out and
/// pongs come in there); read by [`run`].
pub(crate) struct Meter {
    /// Origin of the ping stamps (monotonic, per connection).
    epoch: Instant,
    /// Stamp (µs since `epoch`) of the newest ping written; 0 before the first.
    last_ping_us: AtomicU64,
    rtt_last_ms: AtomicU64,
    rtt_smoothed_ms: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
}

impl Meter {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_ping_us: AtomicU64::new(0),
            rtt_last_ms: AtomicU64::new(NONE_BITS),
            rtt_smoothed_ms: AtomicU64::new(NONE_BITS),
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
        }
    }

    /// The payload of a ping written now: its stamp, 8 bytes big-endian. Remembered, so only
    /// the pong echoing it counts.
    pub(crate) fn stamp_ping(&self) -> Bytes {
        // Offset by one so a stamp is never 0, which means "no ping yet".
        let stamp = micros(self.epoch.elapsed()).saturating_add(1);
        self.last_ping_us.store(stamp, Ordering::Relaxed);
        Bytes::copy_from_slice(&stamp.to_be_bytes())
    }

    /// Takes a pong: if it echoes the newest ping's stamp, records the round trip.
    /// Returns the RTT it measured.
    pub(crate) fn on_pong(&self, payload: &[u8]) -> Option<Duration> {
        let stamp = u64::from_be_bytes(payload.try_into().ok()?);
        let expected = self.last_ping_us.load(Ordering::Relaxed);
        if expected == 0 || stamp != expected {
            return None;
        }
        // Answered: a repeated pong with the same stamp is not a second sample.
        self.last_ping_us.store(0, Ordering::Relaxed);
        let rtt = self
            .epoch
            .elapsed()
            .checked_sub(Duration::from_micros(stamp - 1))?;
        if rtt > MAX_RTT {
            return None;
        }
        let rtt_ms = rtt.as_secs_f64() * 1000.0;
        self.rtt_last_ms.store(rtt_ms.to_bits(), Ordering::Relaxed);
        let smoothed = match load_ms(&self.rtt_smoothed_ms) {
            Some(previous) => previous + (rtt_ms - previous) / 8.0,
            None => rtt_ms,
        };
        self.rtt_smoothed_ms
            .store(smoothed.to_bits(), Ordering::Relaxed);
        Some(rtt)
    }

    pub(crate) fn count_in(&self) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_out(&self, frames: u64) {
        self.messages_out.fetch_add(frames, Ordering::Relaxed);
    }
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

fn load_ms(cell: &AtomicU64) -> Option<f64> {
    let bits = cell.load(Ordering::Relaxed);
    (bits != NONE_BITS).then(|| f64::from_bits(bits))
}

/// One node's figures while a snapshot is summed up: the link, its connections' smoothed
/// RTTs, and the newest RTT with the key of the connection it came from.
type Accumulated = (NodeLink, Vec<f64>, Option<(u64, f64)>);

/// This gateway's node connections, and the wake-up for a report after one closes.
#[derive(Default)]
pub(crate) struct NodeLinks {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    closed: Notify,
}

impl NodeLinks {
    /// Adds a node connection (one with a [`Meter`]).
    pub(crate) fn insert(&self, conn: Arc<Conn>) {
        self.lock().insert(conn.key, conn);
    }

    /// Removes a node connection and asks for a report at once.
    pub(crate) fn remove(&self, key: u64) {
        if self.lock().remove(&key).is_some() {
            self.closed.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The figures per node, sorted by node id.
    pub(crate) fn snapshot(&self) -> Vec<NodeLink> {
        let conns: Vec<Arc<Conn>> = self.lock().values().cloned().collect();
        let mut per_node: BTreeMap<String, Accumulated> = BTreeMap::new();
        for conn in conns {
            let (Some(node_id), Some(meter)) = (&conn.owner.node_id, conn.meter.as_deref()) else {
                continue;
            };
            let (link, smoothed, newest) = per_node.entry(node_id.clone()).or_insert_with(|| {
                let link = NodeLink {
                    node_id: node_id.clone(),
                    ..NodeLink::default()
                };
                (link, Vec::new(), None)
            });
            link.connections += 1;
            link.messages_in += meter.messages_in.load(Ordering::Relaxed);
            link.messages_out += meter.messages_out.load(Ordering::Relaxed);
            smoothed.extend(load_ms(&meter.rtt_smoothed_ms));
            // The connection connected last stands for the node's newest RTT.
            if let Some(last) = load_ms(&meter.rtt_last_ms)
                && newest.is_none_or(|(key, _)| conn.key > key)
            {
                *newest = Some((conn.key, last));
            }
        }
        per_node
            .into_values()
            .map(|(mut link, smoothed, newest)| {
                if !smoothed.is_empty() {
                    link.rtt_smoothed_ms =
                        Some(smoothed.iter().sum::<f64>() / smoothed.len() as f64);
                }
                link.rtt_last_ms = newest.map(|(_, rtt)| rtt);
                link
            })
            .collect()
    }
}

/// How long a report waits after a node connection closed, so a burst of closes (a drain, a
/// network split) makes one report rather than one per connection.
const CLOSE_DEBOUNCE: Duration = Duration::from_millis(100);

/// Publishes this gateway's node figures every [`report_interval`] and shortly after a node
/// connection closes, until `cancel`; then once more (empty once the sessions are gone).
pub(crate) async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    let interval = report_interval(shared.config.heartbeat_interval);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let links = &shared.registry.node_links;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticker.tick() => {}
            () = links.closed.notified() => {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(CLOSE_DEBOUNCE) => {}
                }
            }
        }
        publish(&shared, interval).await;
    }
    publish(&shared, interval).await;
}

/// Publishes the snapshot in pages of at most [`NodeLinksReport::MAX_NODES_PER_PAGE`] nodes
/// (one empty page when there are none).
async fn publish(shared: &Shared, interval: Duration) {
    let nodes = shared.registry.node_links.snapshot();
    let pages: Vec<&[NodeLink]> = if nodes.is_empty() {
        vec![&[]]
    } else {
        nodes.chunks(NodeLinksReport::MAX_NODES_PER_PAGE).collect()
    };
    let page_count = u32::try_from(pages.len()).unwrap_or(u32::MAX);
    let subject = shared.subjects.gateway_node_links(&shared.server_id);
    let timestamp_ms = protocol::time::now_unix_ms();
    for (index, page) in (0u32..).zip(pages) {
        let report = NodeLinksReport {
            gateway_id: shared.server_id.clone(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            timestamp_ms,
            page: index,
            pages: page_count,
            nodes: page.to_vec(),
        };
        let payload = match encode_bus(&report) {
            Ok(payload) => payload,
            Err(error) => {
                warn!(error = %error, "node links report cannot be encoded");
                return;
            }
        };
        if let Err(error) = shared.bus.publish(&subject, payload.into()).await {
            debug!(error = %error, "node links report not published");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pong_echoing_the_newest_ping_is_a_round_trip() {
        let meter = Meter::new();
        assert_eq!(meter.on_pong(&[0; 8]), None, "no ping yet");
        let first = meter.stamp_ping();
        let second = meter.stamp_ping();
        assert_eq!(meter.on_pong(&first), None, "an older ping's pong");
        assert_eq!(meter.on_pong(b"short"), None);
        let rtt = meter.on_pong(&second).expect("the newest ping's pong");
        assert!(rtt < MAX_RTT);
        assert_eq!(meter.on_pong(&second), None, "answered once");
        let last = load_ms(&meter.rtt_last_ms).unwrap();
        assert_eq!(load_ms(&meter.rtt_smoothed_ms), Some(last));
    }

    #[test]
    fn the_smoothed_rtt_moves_an_eighth_of_the_way_to_each_sample() {
        let meter = Meter::new();
        meter
            .rtt_smoothed_ms
            .store(8.0f64.to_bits(), Ordering::Relaxed);
        let stamp = meter.stamp_ping();
        let rtt = meter.on_pong(&stamp).unwrap().as_secs_f64() * 1000.0;
        let smoothed = load_ms(&meter.rtt_smoothed_ms).unwrap();
        assert!((smoothed - (8.0 + (rtt - 8.0) / 8.0)).abs() < 1e-9);
    }

    #[test]
    fn reports_are_as_frequent_as_pings_but_at_least_every_five_seconds() {
        assert_eq!(
            report_interval(Duration::from_secs(30)),
            MAX_REPORT_INTERVAL
        );
        assert_eq!(
            report_interval(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}
