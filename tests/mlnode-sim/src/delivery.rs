//! The node's delivery loop: generates batches, sends each attempt over the WebSocket or the
//! HTTP callback, and keeps unconfirmed batches in a retry queue, like the seed's ML node.
//!
//! One task owns all state. It never waits on the client connection (frames go through
//! `try_send`), so acks always get through. Timers are a sorted set of `(when, batch)`;
//! an entry whose batch has moved on is skipped when it fires.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use protocol::batch::{Batch, BatchFrame};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::server::Shared;
use crate::{DeliveryMode, batch_at, http_client};

/// How long the loop sleeps when nothing is scheduled (it wakes on acks and HTTP results).
const IDLE: Duration = Duration::from_secs(3600);

struct Pending {
    batch: Arc<Batch>,
    /// The outstanding WebSocket attempt: its id and ack deadline.
    ws_attempt: Option<(String, Instant)>,
    /// When the outstanding WebSocket attempt was sent, for the ack latency.
    ws_sent_at: Option<Instant>,
    /// An HTTP callback is queued or in flight.
    http_busy: bool,
    /// When the batch is due for its next attempt (in the retry queue).
    retry_at: Option<Instant>,
}

enum Confirmation {
    WebSocket,
    Http,
}

struct Loop {
    shared: Arc<Shared>,
    next_index: u64,
    next_generate_at: Instant,
    pending: HashMap<u64, Pending>,
    timers: BTreeSet<(Instant, u64)>,
    ws_ids: HashMap<String, u64>,
    http: JoinSet<(u64, Result<u16, String>, Duration)>,
    http_queue: VecDeque<u64>,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    mut acks_rx: mpsc::Receiver<String>,
    shutdown: CancellationToken,
) {
    let mut state = Loop {
        shared,
        next_index: 0,
        next_generate_at: Instant::now(),
        pending: HashMap::new(),
        timers: BTreeSet::new(),
        ws_ids: HashMap::new(),
        http: JoinSet::new(),
        http_queue: VecDeque::new(),
    };
    loop {
        let now = Instant::now();
        state.generate(now);
        state.fire_timers(now);
        let wake = state.next_wake(now);
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(id) = acks_rx.recv() => state.on_ack(&id),
            Some(done) = state.http.join_next(), if !state.http.is_empty() => {
                // A join error means the request task panicked; treat it as a failed post.
                if let Ok((index, result, took)) = done {
                    state.on_http_result(index, result, took);
                }
            }
            () = tokio::time::sleep_until(wake) => {}
            () = state.shared.wake.notified() => {}
        }
    }
    state.http.shutdown().await;
}

impl Loop {
    fn can_generate(&self) -> bool {
        let config = &self.shared.config;
        !self.shared.generation_paused()
            && config.batches.is_none_or(|total| self.next_index < total)
            && self.pending.len() < config.max_pending
    }

    fn generate(&mut self, now: Instant) {
        let interval = self.shared.config.interval;
        if self.next_index == 0 {
            // Generation starts now, not when the loop started (it may have been paused).
            self.next_generate_at = self.next_generate_at.max(now);
        }
        while self.can_generate() && now >= self.next_generate_at {
            let index = self.next_index;
            self.next_index += 1;
            let batch = Arc::new(batch_at(&self.shared.config, index));
            self.pending.insert(
                index,
                Pending {
                    batch,
                    ws_attempt: None,
                    ws_sent_at: None,
                    http_busy: false,
                    retry_at: None,
                },
            );
            bump(&self.shared.counters.generated);
            self.shared.counters.pending.fetch_add(1, Ordering::Relaxed);
            self.attempt(index, now);
            // Catch up at most one interval: a node that stalled does not burst afterwards.
            self.next_generate_at = (self.next_generate_at + interval).max(now);
        }
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let timer = self.timers.first().map(|(at, _)| *at);
        let generation = self.can_generate().then_some(self.next_generate_at);
        [timer, generation]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + IDLE)
    }

    /// Sends one attempt: over the WebSocket when a client is connected, over HTTP when not
    /// (or also, in [`DeliveryMode::Both`]); into the retry queue when neither is possible.
    fn attempt(&mut self, index: u64, now: Instant) {
        let config = &self.shared.config;
        let (ack_timeout, retry_interval, mode) =
            (config.ack_timeout, config.retry_interval, config.mode);
        let Some(pending) = self.pending.get_mut(&index) else {
            return;
        };
        let mut sent = false;
        if let Some(frames) = self.shared.client_frames() {
            let id = uuid::Uuid::new_v4().to_string();
            let frame = BatchFrame::new((*pending.batch).clone(), id.clone()).to_json();
            // A full queue or a closing client counts as "no client" for this attempt.
            if frames.try_send(frame).is_ok() {
                let deadline = now + ack_timeout;
                self.ws_ids.insert(id.clone(), index);
                pending.ws_attempt = Some((id, deadline));
                pending.ws_sent_at = Some(now);
                self.timers.insert((deadline, index));
                bump(&self.shared.counters.sent_ws);
                sent = true;
            }
        }
        let use_http =
            (!sent || mode == DeliveryMode::Both) && self.shared.callback_url().is_some();
        if use_http && !pending.http_busy {
            self.post(index);
            sent = true;
        }
        if !sent {
            self.schedule_retry(index, now + retry_interval);
        }
    }

    fn schedule_retry(&mut self, index: u64, at: Instant) {
        if let Some(pending) = self.pending.get_mut(&index) {
            pending.retry_at = Some(at);
            self.timers.insert((at, index));
        }
    }

    fn post(&mut self, index: u64) {
        let Some(pending) = self.pending.get_mut(&index) else {
            return;
        };
        pending.http_busy = true;
        if self.http.len() < self.shared.config.max_http_in_flight {
            self.spawn_post(index);
        } else {
            self.http_queue.push_back(index);
        }
    }

    fn spawn_post(&mut self, index: u64) {
        let (Some(pending), Some(base)) = (self.pending.get(&index), self.shared.callback_url())
        else {
            return;
        };
        let url = format!("{base}/{}", pending.batch.kind().as_str());
        let body = pending.batch.to_json();
        let timeout = self.shared.config.http_timeout;
        bump(&self.shared.counters.sent_http);
        self.http.spawn(async move {
            let started = Instant::now();
            let result = http_client::post_json(&url, body, timeout).await;
            (index, result, started.elapsed())
        });
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(&(at, index)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(pending) = self.pending.get_mut(&index) else {
                continue;
            };
            if let Some((id, deadline)) = pending.ws_attempt.clone()
                && deadline <= now
            {
                // No ack in time: forget this attempt's id and fall back to the callback.
                self.ws_ids.remove(&id);
                pending.ws_attempt = None;
                let busy = pending.http_busy;
                if self.shared.callback_url().is_some() {
                    if !busy {
                        self.post(index);
                    }
                } else {
                    self.schedule_retry(index, now + self.shared.config.retry_interval);
                }
                continue;
            }
            let due = pending.retry_at.is_some_and(|retry_at| retry_at <= now);
            if due && pending.ws_attempt.is_none() && !pending.http_busy {
                pending.retry_at = None;
                self.attempt(index, now);
            }
        }
    }

    fn on_ack(&mut self, id: &str) {
        match self.ws_ids.remove(id) {
            Some(index) => self.confirm(index, Confirmation::WebSocket),
            None => bump(&self.shared.counters.late_acks),
        }
    }

    fn on_http_result(&mut self, index: u64, result: Result<u16, String>, took: Duration) {
        let ok = matches!(result, Ok(status) if (200..300).contains(&status));
        if ok {
            bump(&self.shared.counters.http_ok);
            self.shared.record_http_latency(took);
        } else {
            bump(&self.shared.counters.http_errors);
            if let Err(error) = &result {
                tracing::debug!(error = %error, "callback failed");
            }
        }
        // One slot freed: start the next queued post whose batch still waits.
        while let Some(next) = self.http_queue.pop_front() {
            if self.pending.contains_key(&next) {
                self.spawn_post(next);
                break;
            }
        }
        let Some(pending) = self.pending.get_mut(&index) else {
            return;
        };
        pending.http_busy = false;
        if ok {
            self.confirm(index, Confirmation::Http);
        } else if pending.ws_attempt.is_none() {
            let at = Instant::now() + self.shared.config.retry_interval;
            self.schedule_retry(index, at);
        }
    }

    fn confirm(&mut self, index: u64, by: Confirmation) {
        let Some(pending) = self.pending.remove(&index) else {
            return;
        };
        if let Some((id, _)) = pending.ws_attempt {
            self.ws_ids.remove(&id);
        }
        let counters = &self.shared.counters;
        bump(&counters.confirmed);
        counters.pending.fetch_sub(1, Ordering::Relaxed);
        match by {
            Confirmation::WebSocket => {
                bump(&counters.acked_ws);
                if let Some(sent_at) = pending.ws_sent_at {
                    self.shared.record_ack_latency(sent_at.elapsed());
                }
            }
            Confirmation::Http => bump(&counters.acked_http),
        }
    }
}
