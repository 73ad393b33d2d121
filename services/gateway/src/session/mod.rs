//! One WebSocket connection's life: greeting, inbound messages, the writer side of its
//! outbound queue, token expiry, heartbeat timeout, slow-consumer close and drain.
//!
//! The session is one task. It waits on four things at once — the socket, its queue, its
//! token's expiry and the gateway's shutdown — and handles whichever comes first. Writing
//! drains the whole queue into the socket with one flush (coalescing frames into few
//! writes), bounded by `write_timeout`.

mod close;
pub(crate) mod conn;
mod inbound;
pub(crate) mod ratelimit;
mod refresh;
mod seed;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use auth::{Claims, Role};
use axum::extract::ws::Message;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use protocol::{Codec, ErrorCode, ServerMessage};
use tracing::{Instrument, debug, info_span};

use crate::frames::control;
use crate::nodes::{self, NodeLink};
use crate::presence::PresenceOp;
use crate::state::Shared;
pub(crate) use close::close_gracefully;
use conn::{Conn, Outgoing, Owner};
use ratelimit::{MessageLimit, Verdict};
pub(crate) use seed::{run_health, run_power};

/// Batches up to this many frames release their buffer after the write.
const SMALL_BATCH: usize = 4;

/// How long the farewell frames (error, reconnect, close) may take before the socket is dropped.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

/// How often a blocked socket write looks whether the connection was asked to close: the
/// delay between fan-out's slow-consumer decision and the session acting on it.
const CLOSE_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Why a session ended; the label of `switchboard_gateway_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndReason {
    ClientClosed,
    SocketError,
    Error(ErrorCode),
}

impl EndReason {
    fn label(self) -> &'static str {
        match self {
            EndReason::ClientClosed => "client_closed",
            EndReason::SocketError => "socket_error",
            EndReason::Error(code) => code.as_str(),
        }
    }
}

/// Returns the role's name as the store records it.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Node => "node",
        Role::Device => "device",
        Role::Admin => "admin",
    }
}

/// Which endpoint a session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `/api/ws/connect`: the whole protocol.
    Protocol,
    /// Seed 003's `/api/v1/ws/v2/power`: one device room, flat frames, no greeting; the
    /// client may only `ping`.
    Power,
    /// Seed 003's `/api/v1/ws/v2/health`: heartbeats and `ping` → `pong` only.
    Health,
}

/// Anything a WebSocket session can run on: axum's socket, or channels in unit tests.
pub(crate) trait Socket:
    Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin + Send
{
}
impl<T> Socket for T where
    T: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Unpin
        + Send
{
}

pub(crate) struct Session<S> {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    claims: Claims,
    socket: S,
    rooms: HashSet<String>,
    message_limit: MessageLimit,
    node: Option<Arc<NodeLink>>,
    batch: VecDeque<Outgoing>,
    kind: Kind,
}

enum Event {
    Shutdown,
    Expired,
    Work,
    Inbound(Option<Result<Message, axum::Error>>),
}

/// Runs an accepted, authenticated connection to its end.
///
/// A plain function returning the future (not an `async fn`): the session is built before
/// the first poll, so the task does not keep the arguments and the session side by side.
pub(crate) fn run<S: Socket>(
    shared: Arc<Shared>,
    socket: S,
    claims: Claims,
    codec: Codec,
) -> impl Future<Output = ()> + Send {
    let session = Session::new(shared, socket, claims, codec, Kind::Protocol);
    let span = session.span();
    session.run().instrument(span)
}

impl<S: Socket> Session<S> {
    fn new(shared: Arc<Shared>, socket: S, claims: Claims, codec: Codec, kind: Kind) -> Self {
        let key = shared.registry.next_key();
        let connection_id = uuid::Uuid::new_v4().to_string();
        let owner = Owner {
            user_id: claims.sub.clone(),
            role: role_name(claims.role),
            node_id: claims.node_id.clone(),
            connected_at_ms: protocol::time::now_unix_ms(),
        };
        let conn = Conn::new(
            key,
            connection_id,
            codec,
            owner,
            shared.registry.queue_limits,
        );
        // Node agents' connections are measured for the node network figures.
        let is_node_agent =
            kind == Kind::Protocol && claims.role == Role::Node && claims.node_id.is_some();
        let conn = if is_node_agent { conn.metered() } else { conn };
        let config = &shared.config;
        Session {
            message_limit: MessageLimit::new(config.messages_per_second, config.message_burst),
            shared: shared.clone(),
            conn: Arc::new(conn),
            claims,
            socket,
            rooms: HashSet::new(),
            node: None,
            batch: VecDeque::new(),
            kind,
        }
    }

    fn span(&self) -> tracing::Span {
        info_span!("session", conn_id = %self.conn.connection_id, user_id = %self.claims.sub, role = ?self.claims.role, endpoint = ?self.kind)
    }

    /// A plain function returning an `async move` block rather than an `async fn`: the
    /// block borrows the captured session in place, where an `async fn` would move its
    /// argument into a second slot of the task (one more socket-sized copy per connection).
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would copy the session into a second slot"
    )]
    fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            let shared = self.shared.clone();
            shared.registry.connections.insert(self.conn.clone());
            if self.conn.meter.is_some() {
                shared.registry.node_links.insert(self.conn.clone());
            }
            shared.metrics.connections_active.inc();
            shared.metrics.connections_opened.inc();
            shared.presence.submit(
                PresenceOp::AddConnection(self.conn.record(&shared.server_id)),
                &shared.metrics,
            );
            debug!("connection accepted");

            let reason = self.serve().await;

            // Attached in `serve` (a no-op when it never got that far).
            if self.kind == Kind::Protocol {
                shared.direct.detach(&self.conn);
            }

            for room in std::mem::take(&mut self.rooms) {
                shared.fanout.leave(&room, self.conn.key);
            }
            if let Some(link) = self.node.take() {
                link.stop();
                shared.presence.submit(
                    PresenceOp::RemoveNodeRoute(link.node_id.clone()),
                    &shared.metrics,
                );
            }
            shared.registry.connections.remove(self.conn.key);
            shared.registry.node_links.remove(self.conn.key);
            shared.presence.submit(
                PresenceOp::RemoveConnection(self.conn.record(&shared.server_id)),
                &shared.metrics,
            );
            shared.metrics.connections_active.dec();
            shared
                .metrics
                .connections_closed
                .with_label_values(&[reason.label()])
                .inc();
            debug!(reason = reason.label(), "connection closed");
        }
    }

    async fn serve(&mut self) -> EndReason {
        // Seed 003's endpoints send only the frames seed 003 shows: no greeting.
        if self.kind == Kind::Protocol {
            let greeting = ServerMessage::ConnectionEstablished {
                connection_id: self.conn.connection_id.clone(),
                server_id: self.shared.server_id.clone(),
                heartbeat_interval_ms: u64::try_from(
                    self.shared.config.heartbeat_interval.as_millis(),
                )
                .unwrap_or(u64::MAX),
                timestamp: protocol::time::now_rfc3339(),
            };
            self.send_control(&greeting);
            // After the greeting is queued, so nothing addressed to this connection goes out
            // before it; before the writer runs, so the greeting leaves only once the user's
            // subscription is live and a message published after the client saw it is
            // delivered. Boxed: the subscribe path would otherwise stay inline in every idle
            // connection's task for its whole life.
            Box::pin(self.shared.direct.attach(&self.conn)).await;
        }
        if self.kind == Kind::Protocol
            && self.claims.role == Role::Node
            && let Some(node_id) = self.claims.node_id.clone()
        {
            Box::pin(self.start_node(&node_id)).await;
        }
        let expiry = tokio::time::sleep(self.time_until_expiry());
        tokio::pin!(expiry);
        let mut expired = false;
        // The `exp` the timer is armed for; an accepted `refresh` changes the claims' `exp`,
        // and the timer moves with it.
        let mut armed_exp = self.claims.exp;
        loop {
            let event = tokio::select! {
                biased;
                () = self.shared.drain.sessions_shutdown.cancelled() => Event::Shutdown,
                () = &mut expiry, if !expired => Event::Expired,
                () = self.conn.wait_for_work() => Event::Work,
                inbound = self.socket.next() => Event::Inbound(inbound),
            };
            match event {
                Event::Shutdown => return Box::pin(self.farewell_reconnect()).await,
                Event::Expired => {
                    expired = true;
                    self.conn.close(ErrorCode::TokenExpired);
                }
                Event::Work => {
                    if let Some(reason) = self.conn.close_reason() {
                        return Box::pin(self.farewell(reason)).await;
                    }
                    // Boxed: the write carries a timeout timer; one allocation per batch is
                    // noise next to the syscall, and idle tasks stay small.
                    if let Err(reason) = Box::pin(self.write_queued()).await {
                        return reason;
                    }
                }
                Event::Inbound(None) => return EndReason::ClientClosed,
                Event::Inbound(Some(Err(error))) => {
                    return Box::pin(self.on_socket_error(error)).await;
                }
                Event::Inbound(Some(Ok(message))) => {
                    // Boxed: inbound handling (subscribe, publish) has deep futures that would
                    // otherwise sit inline in every idle connection's task for its whole life.
                    if let Some(reason) = Box::pin(self.on_frame(message)).await {
                        return reason;
                    }
                    if self.claims.exp != armed_exp && !expired {
                        armed_exp = self.claims.exp;
                        expiry
                            .as_mut()
                            .reset(tokio::time::Instant::now() + self.time_until_expiry());
                    }
                }
            }
        }
    }

    /// Time left until the token's `exp` plus `gateway.token_expiry_grace`.
    fn time_until_expiry(&self) -> Duration {
        let expires_at = self.claims.expires_at() + self.shared.config.token_expiry_grace;
        expires_at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }

    async fn start_node(&mut self, node_id: &str) {
        match nodes::serve_commands(&self.shared, &self.conn, node_id).await {
            Ok(link) => {
                self.shared.presence.submit(
                    PresenceOp::SetNodeRoute(node_id.to_owned()),
                    &self.shared.metrics,
                );
                self.node = Some(link);
            }
            Err(error) => {
                tracing::warn!(node_id, error = %error, "node commands unavailable for this connection")
            }
        }
    }

    /// Queues a control message to this connection.
    fn send_control<T: serde::Serialize>(&self, message: &T) {
        if let Some(outgoing) = control(self.conn.codec, message) {
            self.conn.push(outgoing);
            self.shared
                .metrics
                .messages_out
                .with_label_values(&["control"])
                .inc();
        }
    }

    fn send_error(&self, code: ErrorCode, room: Option<String>) {
        self.send_control(&ServerMessage::error(code, room));
    }

    /// Writes everything queued, coalesced into one flush.
    ///
    /// A write the client does not read blocks; meanwhile fan-out may decide to close the
    /// connection (its queue stayed full for `slow_consumer_grace`), or another close may be
    /// asked for. The write is therefore awaited in steps of [`CLOSE_CHECK_INTERVAL`], and a
    /// requested close ends it at once, so the close happens at the grace rather than when
    /// `write_timeout` expires. Only a write that blocks longer than that, while nothing asked
    /// for a close, arms a timer again; writes that complete in time cost what they did.
    async fn write_queued(&mut self) -> Result<(), EndReason> {
        self.conn.take_queued(&mut self.batch);
        if self.batch.is_empty() {
            return Ok(());
        }
        let write_timeout = self.shared.config.write_timeout;
        let step = CLOSE_CHECK_INTERVAL.min(write_timeout);
        let mut waited = Duration::ZERO;
        let written = {
            let conn = &self.conn;
            let socket = &mut self.socket;
            let batch = &self.batch;
            let meter = conn.meter.as_deref();
            let write = async {
                for outgoing in batch {
                    let message = match (&outgoing.message, meter) {
                        // Stamped as it is written, so the round trip excludes queueing.
                        (Message::Ping(_), Some(meter)) => Message::Ping(meter.stamp_ping()),
                        (message, _) => message.clone(),
                    };
                    socket.feed(message).await?;
                }
                socket.flush().await
            };
            tokio::pin!(write);
            loop {
                match tokio::time::timeout(step, &mut write).await {
                    Ok(result) => break Some(result),
                    Err(_) if conn.close_reason().is_some() => break None,
                    Err(_) if waited + step >= write_timeout => {
                        // Nothing asked for a close, yet the client has not taken a write for
                        // `write_timeout`: a slow consumer all the same (counted once, here or
                        // where the close was first asked for).
                        if conn.close(ErrorCode::SlowConsumer) {
                            self.shared.metrics.slow_consumer_closes.inc();
                        }
                        break None;
                    }
                    Err(_) => waited += step,
                }
            }
        };
        match written {
            // The unfinished write is dropped: what tungstenite already buffered stays in
            // order ahead of the farewell, which gets as far as the socket allows within
            // `FAREWELL_TIMEOUT`.
            None => {
                let reason = self.conn.close_reason().unwrap_or(ErrorCode::SlowConsumer);
                self.batch.clear();
                return Err(Box::pin(self.farewell(reason)).await);
            }
            Some(Err(_)) => return Err(EndReason::SocketError),
            Some(Ok(())) => {}
        }
        if let Some(meter) = self.conn.meter.as_deref() {
            let messages = self
                .batch
                .iter()
                .filter(|outgoing| {
                    matches!(outgoing.message, Message::Text(_) | Message::Binary(_))
                })
                .count();
            meter.count_out(u64::try_from(messages).unwrap_or(u64::MAX));
        }
        // One observation per write, of its oldest room message: the worst wait in the write,
        // at a cost that does not grow with the burst.
        if let Some(oldest) = self
            .batch
            .iter()
            .find(|outgoing| outgoing.published_at_ms > 0)
        {
            let latency_ms = protocol::time::now_unix_ms().saturating_sub(oldest.published_at_ms);
            self.shared
                .metrics
                .publish_to_write_seconds
                .observe(latency_ms as f64 / 1000.0);
        }
        // Small batches (the idle and trickle case) give their buffer back, so an idle
        // connection holds one queue buffer instead of two; bursts keep it to avoid
        // allocating on every write.
        if self.batch.len() <= SMALL_BATCH {
            self.batch = VecDeque::new();
        } else {
            self.batch.clear();
            if self.batch.capacity() > 256 {
                self.batch.shrink_to(16);
            }
        }
        Ok(())
    }

    /// Applies the per-connection message limit (see `ratelimit`); returns false when the
    /// message must be dropped. A flood is closed with 4429 through the close request, so
    /// queued frames and the `error` farewell still go out in order.
    fn admit_message(&mut self) -> bool {
        let config = &self.shared.config;
        let verdict = self
            .message_limit
            .check(config.message_burst, config.rate_limit_close_after);
        if verdict == Verdict::Accepted {
            return true;
        }
        self.shared
            .metrics
            .rate_limited
            .with_label_values(&["messages"])
            .inc();
        match verdict {
            Verdict::Flooding => {
                self.conn.close(ErrorCode::RateLimited);
            }
            Verdict::Dropped { warn: true } => self.send_error(ErrorCode::RateLimited, None),
            Verdict::Dropped { warn: false } | Verdict::Accepted => {}
        }
        false
    }
}

#[cfg(test)]
mod tests;
