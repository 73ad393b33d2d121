//! One connection's task: connect under a concurrency permit, then read and check every
//! benchmark message until the run is cancelled.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::client::{Connection, Endpoint, ReadOutcome, Setup};
use crate::payload::{parse_bench, unix_now_ns};
use crate::tracker::SeqTracker;
use crate::{Error, Options, Target};

/// What one connection saw.
#[derive(Debug, Default)]
pub(super) struct ClientOutcome {
    pub(super) connected: bool,
    pub(super) expected: u64,
    pub(super) unique: u64,
    pub(super) duplicates: u64,
    pub(super) out_of_order: u64,
    pub(super) invalid: u64,
    pub(super) control_messages: u64,
    /// Set when the server ended the connection before the run did.
    pub(super) ended_early: bool,
}

/// Signs one HS256 token per connection (switchboard only), before any connection starts,
/// so signing is not part of what is measured.
pub(super) fn sign_tokens(options: &Options) -> Result<Vec<Option<String>>, Error> {
    let Some(secret) = options
        .secret
        .as_ref()
        .filter(|_| options.target == Target::Switchboard)
    else {
        return Ok(vec![None; options.clients]);
    };
    let issuer = auth::Issuer::hs256(secret);
    let now = unix_now_ns() / 1_000_000_000;
    (0..options.clients)
        .map(|local| {
            let claims = auth::Claims {
                // One subject per connection: the gateway limits connections per user.
                sub: format!(
                    "loadgen-{}-{}",
                    options.run_id,
                    options.client_offset + local
                ),
                exp: now + 24 * 3600,
                iat: Some(now),
                rooms: vec![">".to_owned()],
                publish: Vec::new(),
                role: auth::Role::Viewer,
                node_id: None,
            };
            issuer.issue(&claims).map(Some).map_err(Error::Token)
        })
        .collect()
}

/// Everything one connection task owns.
pub(super) struct ClientPlan {
    pub(super) target: Target,
    pub(super) endpoints: Arc<Vec<Endpoint>>,
    pub(super) endpoint_index: usize,
    pub(super) source_ip: Option<IpAddr>,
    pub(super) token: Option<String>,
    pub(super) nats_token: Option<String>,
    pub(super) subscribe_to: Option<String>,
    pub(super) expected: u64,
    pub(super) connect_timeout: Duration,
}

pub(super) async fn run_client(
    plan: ClientPlan,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
) -> ClientOutcome {
    let mut outcome = ClientOutcome {
        expected: plan.expected,
        ..ClientOutcome::default()
    };
    let setup = Setup {
        target: plan.target,
        endpoint: &plan.endpoints[plan.endpoint_index],
        source_ip: plan.source_ip,
        token: plan.token.as_deref(),
        nats_token: plan.nats_token.as_deref(),
        subscribe_to: plan.subscribe_to.as_deref(),
    };
    let opened = tokio::select! {
        biased;
        _ = cancel.cancelled() => Err("cancelled before connecting".to_owned()),
        opened = open_with_permit(setup, &permits, plan.connect_timeout) => opened,
    };
    let mut connection = match opened {
        Ok((connection, handshake)) => {
            shared.handshake.record(handshake.as_nanos() as u64);
            shared
                .last_connected_ns
                .fetch_max(unix_now_ns(), Ordering::Relaxed);
            shared.connected.fetch_add(1, Ordering::Relaxed);
            outcome.connected = true;
            connection
        }
        Err(error) => {
            shared.sample_error(error);
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return outcome;
        }
    };
    let mut tracker = SeqTracker::new(plan.expected);
    let mut complete = tracker.complete();
    if complete {
        shared.completed.fetch_add(1, Ordering::Relaxed);
    }
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        let mut tally = ReadTally::default();
        let read = tokio::select! {
            biased;
            _ = &mut cancelled => None,
            read = connection.read_some(|message| {
                tally.receive(message, &mut tracker, &shared, &mut outcome.control_messages)
            }) => Some(read),
        };
        tally.publish(&shared);
        match read {
            None => {
                connection.close().await;
                break;
            }
            Some(ReadOutcome::Open) => {
                if !complete && tracker.complete() {
                    complete = true;
                    shared.completed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(ReadOutcome::Ended(why)) => {
                shared.sample_error(format!("disconnected: {why}"));
                outcome.ended_early = true;
                break;
            }
        }
    }
    let counts = tracker.counts();
    outcome.unique = counts.unique;
    outcome.duplicates = counts.duplicates;
    outcome.out_of_order = counts.out_of_order;
    outcome.invalid = counts.invalid;
    outcome
}

/// Connects under a concurrency permit, released once the setup is done.
async fn open_with_permit(
    setup: Setup<'_>,
    permits: &Semaphore,
    timeout: Duration,
) -> Result<(Connection, Duration), String> {
    let _permit = permits
        .acquire()
        .await
        .map_err(|_| "connection permits closed".to_owned())?;
    let started = Instant::now();
    match tokio::time::timeout(timeout, Connection::open(setup)).await {
        Ok(Ok(connection)) => Ok((connection, started.elapsed())),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("setup timed out after {timeout:?}")),
    }
}

/// What one read delivered, added to the shared counters once per read rather than once
/// per message.
#[derive(Default)]
struct ReadTally {
    /// Receive time of everything in this read (one syscall's worth arrives together).
    now_ns: Option<u64>,
    deliveries: u64,
    bytes: u64,
}

impl ReadTally {
    /// Checks one received message: benchmark messages are tracked and timed, the rest
    /// counted.
    fn receive(
        &mut self,
        message: &[u8],
        tracker: &mut SeqTracker,
        shared: &Shared,
        control_messages: &mut u64,
    ) {
        let Some((seq, sent_ns)) = parse_bench(message) else {
            *control_messages += 1;
            return;
        };
        let now = *self.now_ns.get_or_insert_with(unix_now_ns);
        shared.latency.record(now.saturating_sub(sent_ns));
        tracker.record(seq);
        self.deliveries += 1;
        self.bytes += message.len() as u64;
    }

    fn publish(&self, shared: &Shared) {
        let Some(now) = self.now_ns else {
            return;
        };
        shared
            .deliveries
            .fetch_add(self.deliveries, Ordering::Relaxed);
        shared.bytes.fetch_add(self.bytes, Ordering::Relaxed);
        shared.last_receive_ns.fetch_max(now, Ordering::Relaxed);
    }
}
