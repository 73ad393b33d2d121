//! This process's connections: one task each that connects (at most `concurrency` at once),
//! subscribes, and then reads until the run is cancelled, checking every benchmark message it
//! receives. The tasks share one latency histogram and a few counters the run watches.

mod result;
mod task;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::client::Endpoint;
use crate::histogram::Histogram;
use crate::payload::unix_now_ns;
use crate::{Error, Options, Scenario, Target};

pub(crate) use result::FleetResult;
use task::{ClientOutcome, ClientPlan, run_client, sign_tokens};

/// How often the waiting loops look at the counters.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How often progress is logged while waiting.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// Connection errors kept verbatim for the report; the rest are only counted.
const ERROR_SAMPLES: usize = 5;

/// Counters every connection task updates.
#[derive(Debug, Default)]
struct Shared {
    latency: Histogram,
    handshake: Histogram,
    connected: AtomicUsize,
    failed: AtomicUsize,
    completed: AtomicUsize,
    deliveries: AtomicU64,
    bytes: AtomicU64,
    last_receive_ns: AtomicU64,
    last_connected_ns: AtomicU64,
    error_samples: Mutex<Vec<String>>,
}

impl Shared {
    fn sample_error(&self, error: String) {
        let mut samples = self.error_samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() < ERROR_SAMPLES {
            samples.push(error);
        }
    }
}

/// How waiting for the messages ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Every connection received everything it expected.
    Complete,
    /// Nothing arrived for the stall timeout after publishing ended.
    Stalled,
    /// The run's deadline passed.
    TimedOut,
}

/// The connection tasks of this process.
pub(crate) struct Fleet {
    shared: Arc<Shared>,
    tasks: JoinSet<ClientOutcome>,
    cancel: CancellationToken,
    clients: usize,
    started_ns: u64,
}

impl Fleet {
    /// Starts one task per connection. With `subscribe` false the connections only
    /// authenticate (connect-rate). Tokens are signed before the first connection starts, so
    /// signing is not part of what is measured.
    ///
    /// # Errors
    /// Bad URLs or room names, or a token that cannot be signed.
    pub(crate) async fn start(options: &Options, subscribe: bool) -> Result<Fleet, Error> {
        let mut endpoints = Vec::with_capacity(options.urls.len());
        for url in &options.urls {
            endpoints.push(Endpoint::resolve(url).await?);
        }
        let endpoints = Arc::new(endpoints);
        let subjects = protocol::Subjects::new(&options.subject_prefix);
        let rooms = options.publish_rooms();
        let tokens = sign_tokens(options)?;
        let shared = Arc::new(Shared::default());
        let cancel = CancellationToken::new();
        let permits = Arc::new(Semaphore::new(options.concurrency));
        let started_ns = unix_now_ns();
        let mut tasks = JoinSet::new();
        for (local, token) in (0..options.clients).zip(tokens) {
            let global = options.client_offset + local;
            let room = options.room_of(global);
            let subscribe_to = match (subscribe, options.target) {
                (false, _) => None,
                (true, Target::Switchboard) => Some(room.clone()),
                (true, Target::NatsWs) => {
                    let name = protocol::RoomName::parse(&room)
                        .map_err(|error| Error::Options(format!("room {room:?}: {error}")))?;
                    Some(subjects.room(&name))
                }
            };
            let expected = match options.scenario {
                Scenario::Fanout | Scenario::Rooms => {
                    let room_index = rooms.iter().position(|r| *r == room).unwrap_or(0);
                    options.messages_for_room(room_index)
                }
                Scenario::Idle | Scenario::ConnectRate => 0,
            };
            let plan = ClientPlan {
                target: options.target,
                endpoints: endpoints.clone(),
                endpoint_index: global % endpoints.len(),
                source_ip: (!options.source_ips.is_empty())
                    .then(|| options.source_ips[global % options.source_ips.len()]),
                token,
                nats_token: options.nats_token.clone(),
                subscribe_to,
                expected,
                connect_timeout: options.connect_timeout,
            };
            tasks.spawn(run_client(
                plan,
                shared.clone(),
                permits.clone(),
                cancel.clone(),
            ));
        }
        Ok(Fleet {
            shared,
            tasks,
            cancel,
            clients: options.clients,
            started_ns,
        })
    }

    /// Returns the connections set up so far.
    pub(crate) fn connected(&self) -> usize {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Returns the connections that failed to set up.
    pub(crate) fn failed(&self) -> usize {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Returns the benchmark messages received so far.
    pub(crate) fn deliveries(&self) -> u64 {
        self.shared.deliveries.load(Ordering::Relaxed)
    }

    /// Waits until every connection is set up or has failed; false when `deadline` came first.
    pub(crate) async fn wait_connected(&self, deadline: Instant) -> bool {
        let mut next_progress = Instant::now() + PROGRESS_INTERVAL;
        loop {
            if self.connected() + self.failed() >= self.clients {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            if Instant::now() >= next_progress {
                info!(
                    connected = self.connected(),
                    failed = self.failed(),
                    "connecting"
                );
                next_progress += PROGRESS_INTERVAL;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until every connected client has all its messages, until nothing arrived for
    /// `stall_timeout` once `publishing_done` says so, or until `deadline`.
    pub(crate) async fn wait_complete(
        &self,
        deadline: Instant,
        stall_timeout: Duration,
        publishing_done: impl Fn() -> bool,
    ) -> Ending {
        let mut next_progress = Instant::now() + PROGRESS_INTERVAL;
        let (mut last_count, mut last_change) = (self.deliveries(), Instant::now());
        loop {
            let completed = self.shared.completed.load(Ordering::Relaxed);
            if completed >= self.connected() {
                return Ending::Complete;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ending::TimedOut;
            }
            let count = self.deliveries();
            if count != last_count {
                (last_count, last_change) = (count, now);
            } else if publishing_done() && now.duration_since(last_change) >= stall_timeout {
                return Ending::Stalled;
            }
            if now >= next_progress {
                info!(deliveries = count, completed, "receiving");
                next_progress += PROGRESS_INTERVAL;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Stops every task (each closes its connection) and sums what they saw.
    pub(crate) async fn finish(mut self) -> FleetResult {
        self.cancel.cancel();
        let mut result = FleetResult {
            clients: self.clients as u64,
            started_ns: self.started_ns,
            ..FleetResult::default()
        };
        while let Some(joined) = self.tasks.join_next().await {
            let Ok(outcome) = joined else {
                warn!("a connection task panicked");
                continue;
            };
            if !outcome.connected {
                result.connect_failures += 1;
                continue;
            }
            result.connected += 1;
            result.disconnects += u64::from(outcome.ended_early);
            result.expected += outcome.expected;
            result.unique += outcome.unique;
            result.duplicates += outcome.duplicates;
            result.out_of_order += outcome.out_of_order;
            result.invalid += outcome.invalid;
            result.control_messages += outcome.control_messages;
        }
        let shared = &self.shared;
        result.bytes = shared.bytes.load(Ordering::Relaxed);
        result.last_receive_ns = shared.last_receive_ns.load(Ordering::Relaxed);
        result.last_connected_ns = shared.last_connected_ns.load(Ordering::Relaxed);
        result.latency = shared.latency.snapshot();
        result.handshake = shared.handshake.snapshot();
        result.error_samples = shared
            .error_samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        result
    }
}
