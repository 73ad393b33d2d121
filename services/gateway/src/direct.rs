//! Messages without a room: to every connection of a user (`sb.user.<sub>`), to one
//! connection (`sb.conn.<connection_id>`) and to every connection (`sb.broadcast`). A
//! connection of `/api/ws/connect` gets them without subscribing.
//!
//! Subscriptions, and why each is shaped so:
//! - **users**: interest-based, like rooms. The gateway holds `sb.user.<sub>` while it holds
//!   a connection of that user and drops it with the last one, so a gateway only receives the
//!   users it serves. The first connection of a user waits for the subscription (and a bus
//!   flush) before its greeting, so a message published after `connection_established` is
//!   delivered; further connections of the user join the live subscription at no bus cost.
//!   With `gateway.user_subscriptions = "shared"` the gateway holds one `sb.user.*`
//!   subscription instead and routes by the subject's last token (no cost per held user, but
//!   every gateway receives every personal message; see the config key).
//! - **connections**: one wildcard subscription `sb.conn.*` per gateway, routed by the
//!   subject's last token through a map of the local connections. A per-connection
//!   subscription would add a subscribe and a flush round trip to every connect and a SUB/UNSUB
//!   pair per connection to NATS, worst during a reconnect storm; messages to one connection
//!   are rare (replies to one client), and a gateway that does not hold the id drops the
//!   message on a hash lookup of the subject, before decoding anything.
//! - **broadcast**: one subscription on `sb.broadcast` per gateway. A broadcast of type
//!   `reconnect` is a maintenance request: each connection gets the control frame
//!   `reconnect {reason, retry_after}` with its own random delay (see
//!   [`ReconnectRequest`]), which the official clients honour by reconnecting.
//!
//! Delivery reuses the room fan-out's pattern: each bus message is decoded once, encoded at
//! most once per codec, and the same bytes are pushed to every target's queue without
//! blocking (`session::conn`'s overflow policy applies). None of this touches the room
//! dispatch path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bus::Bus;
use futures_util::FutureExt;
use protocol::direct::{
    DirectEnvelope, DirectMessage, RECONNECT_EVENT, ReconnectRequest, Target, decode_envelope,
};
use protocol::{Codec, Subjects};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::config::UserSubscriptions;
use crate::frames::encode_frame;
use crate::metrics::Metrics;
use crate::session::conn::{Conn, Outgoing};

/// Shards of the connection map: connects and closes of different connections rarely
/// contend, and a broadcast holds one shard's read lock at a time.
const SHARDS: usize = 16;

/// Most bus messages handled as one batch (as for rooms): one queue push and one wake-up per
/// target for a burst.
const DISPATCH_BATCH_MESSAGES: usize = 64;

/// Longest a new connection's greeting waits for its user's subscription: a healthy bus
/// answers within milliseconds, and a client must not time out its connect on a bus outage.
const ATTACH_WAIT: Duration = Duration::from_secs(2);

/// Wait before subscribing again after a subscription ended or failed.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(200);

/// The local connections of one user, and its bus subscription.
struct User {
    sub: String,
    members: RwLock<HashMap<u64, Arc<Conn>>>,
    /// Set once the subscription is live (`true`) or failed (`false`).
    subscribed: OnceCell<bool>,
    cancel: CancellationToken,
}

/// Messages to users, connections and everyone, for one gateway.
pub(crate) struct Direct {
    bus: Bus,
    mode: UserSubscriptions,
    subjects: Subjects,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Every attached connection by connection id, sharded by the id's hash.
    connections: [RwLock<HashMap<String, Arc<Conn>>>; SHARDS],
    users: Mutex<HashMap<String, Arc<User>>>,
    user_out: prometheus::IntCounter,
    connection_out: prometheus::IntCounter,
    broadcast_out: prometheus::IntCounter,
}

impl Direct {
    pub fn new(
        bus: Bus,
        mode: UserSubscriptions,
        subjects: Subjects,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            user_out: metrics.messages_out.with_label_values(&["user"]),
            connection_out: metrics.messages_out.with_label_values(&["connection"]),
            broadcast_out: metrics.messages_out.with_label_values(&["broadcast"]),
            bus,
            mode,
            subjects,
            metrics,
            tasks,
            shutdown,
            connections: std::array::from_fn(|_| RwLock::new(HashMap::new())),
            users: Mutex::new(HashMap::new()),
        }
    }

    fn shard(&self, connection_id: &str) -> &RwLock<HashMap<String, Arc<Conn>>> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(connection_id);
        &self.connections[(hash % SHARDS as u64) as usize]
    }

    /// Makes `conn` a receiver of its user's messages, its own and broadcasts. Returns once
    /// the user's subscription is live (at once when another connection of the user holds
    /// it); when it cannot be made the connection still gets its own and broadcast messages.
    pub async fn attach(self: &Arc<Self>, conn: &Arc<Conn>) {
        self.shard(&conn.connection_id)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(conn.connection_id.clone(), conn.clone());
        let sub = conn.owner.user_id.as_str();
        let user = {
            let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
            let user = users
                .entry(sub.to_owned())
                .or_insert_with(|| {
                    Arc::new(User {
                        sub: sub.to_owned(),
                        members: RwLock::new(HashMap::new()),
                        subscribed: OnceCell::new(),
                        cancel: self.shutdown.child_token(),
                    })
                })
                .clone();
            // Under the map lock, so a concurrent last detach cannot drop the entry we join.
            user.members
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(conn.key, conn.clone());
            user
        };
        if self.mode == UserSubscriptions::Shared {
            // `sb.user.*` is held for the gateway's life; the user entry only routes.
            return;
        }
        if let Some(&live) = user.subscribed.get() {
            if !live {
                self.leave_user(sub, conn.key);
            }
            return;
        }
        // On a task of its own, so a bus that does not answer (NATS unreachable) delays the
        // greeting by at most `ATTACH_WAIT` while the subscription still completes later.
        let direct = self.clone();
        let key = conn.key;
        let subscribing = self.tasks.spawn(async move {
            let live = *user
                .subscribed
                .get_or_init(|| subscribe_user(direct.clone(), user.clone()))
                .await;
            if !live {
                direct.leave_user(&user.sub, key);
            }
        });
        if tokio::time::timeout(ATTACH_WAIT, subscribing)
            .await
            .is_err()
        {
            warn!("user subscription not live yet; greeting the connection anyway");
        }
    }

    /// Undoes [`Direct::attach`]; the user's last connection drops its subscription.
    pub fn detach(&self, conn: &Conn) {
        self.shard(&conn.connection_id)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&conn.connection_id);
        self.leave_user(&conn.owner.user_id, conn.key);
    }

    fn leave_user(&self, sub: &str, key: u64) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let Some(user) = users.get(sub) else {
            return;
        };
        let now_empty = {
            let mut members = user.members.write().unwrap_or_else(|p| p.into_inner());
            members.remove(&key);
            members.is_empty()
        };
        if now_empty {
            user.cancel.cancel();
            users.remove(sub);
        }
    }

    /// Returns how many users hold a bus subscription on this gateway.
    #[cfg(test)]
    fn user_count(&self) -> usize {
        self.users.lock().map(|users| users.len()).unwrap_or(0)
    }

    /// Subscribes `sb.conn.*` and `sb.broadcast`; awaited before the gateway accepts, so
    /// every accepted connection gets them. A subscription that fails here is retried by
    /// [`Direct::run`].
    pub async fn subscribe_wide(&self) -> Wide {
        let connections = subscribe(&self.bus, &self.subjects.all_connections()).await;
        let broadcast = subscribe(&self.bus, &self.subjects.broadcast()).await;
        let users = match self.mode {
            UserSubscriptions::Shared => subscribe(&self.bus, &self.subjects.all_users()).await,
            UserSubscriptions::PerUser => None,
        };
        if let Err(error) = self.bus.flush().await {
            warn!(error = %error, "bus flush after direct subscriptions failed");
        }
        Wide {
            connections,
            broadcast,
            users,
        }
    }

    /// Delivers what the wide subscriptions receive until `stop`, subscribing again when
    /// the bus ends one.
    pub async fn run(self: Arc<Self>, wide: Wide, stop: CancellationToken) {
        let Wide {
            connections,
            broadcast,
            users,
        } = wide;
        let this = self.clone();
        let to_connections = this.follow(
            self.subjects.all_connections(),
            connections,
            stop.clone(),
            Self::dispatch_to_connections,
        );
        let to_everyone = self.follow(
            self.subjects.broadcast(),
            broadcast,
            stop.clone(),
            Self::dispatch_broadcast,
        );
        let to_users = async {
            if self.mode == UserSubscriptions::Shared {
                self.follow(
                    self.subjects.all_users(),
                    users,
                    stop.clone(),
                    Self::dispatch_to_users,
                )
                .await;
            }
        };
        futures_util::future::join3(to_connections, to_everyone, to_users).await;
    }

    /// Delivers one wide subscription's messages with `dispatch` until `stop`.
    async fn follow(
        &self,
        subject: String,
        first: Option<bus::Subscription>,
        stop: CancellationToken,
        dispatch: fn(&Self, &[bus::Message]),
    ) {
        let mut current = first;
        let mut batch = Vec::new();
        loop {
            let mut subscription = match current.take() {
                Some(subscription) => subscription,
                None => {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
                    }
                    match subscribe(&self.bus, &subject).await {
                        Some(subscription) => subscription,
                        None => continue,
                    }
                }
            };
            while next_batch(&mut subscription, &stop, &mut batch).await {
                dispatch(self, &batch);
            }
            if stop.is_cancelled() {
                return;
            }
            debug!(subject, "direct subscription ended; subscribing again");
        }
    }

    /// Delivers `sb.conn.<id>` messages to the local connection with that id, if any.
    fn dispatch_to_connections(&self, messages: &[bus::Message]) {
        for message in messages {
            let Some(connection_id) = self.subjects.connection_of(&message.subject) else {
                continue;
            };
            let conn = self
                .shard(connection_id)
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(connection_id)
                .cloned();
            let Some(conn) = conn else {
                continue;
            };
            let Some(decoded) = self.decode(&message.payload) else {
                continue;
            };
            let delivered = DirectMessage::from_envelope(
                Target::Connection(connection_id.to_owned()),
                decoded.envelope,
                protocol::time::now_rfc3339,
            );
            if let Some((frame, bytes)) = encode_frame(conn.codec, &delivered) {
                let outgoing = Outgoing {
                    message: frame,
                    bytes,
                    published_at_ms: decoded.published_at_ms,
                };
                let pushed = conn.push_all(std::slice::from_ref(&outgoing));
                self.count(&self.connection_out, pushed);
            }
        }
    }

    /// `shared` mode: delivers `sb.user.<sub>` messages to the local connections of `sub`,
    /// dropping those of users this gateway does not hold before decoding them.
    fn dispatch_to_users(&self, messages: &[bus::Message]) {
        for message in messages {
            let Some(sub) = self.subjects.user_of(&message.subject) else {
                continue;
            };
            let user = self
                .users
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&sub)
                .cloned();
            if let Some(user) = user {
                self.dispatch_to_user(&user, std::slice::from_ref(message));
            }
        }
    }

    /// Delivers `sb.broadcast` messages to every attached connection (of the role, if named).
    fn dispatch_broadcast(&self, messages: &[bus::Message]) {
        for message in messages {
            let Some(decoded) = self.decode_allowing(&message.payload, true) else {
                continue;
            };
            if decoded.envelope.event == RECONNECT_EVENT {
                self.request_reconnect(decoded.envelope);
                continue;
            }
            let role = decoded.envelope.role.clone();
            let delivered = DirectMessage::from_envelope(
                Target::Broadcast,
                decoded.envelope,
                protocol::time::now_rfc3339,
            );
            let mut frames = Frames::new(&delivered, decoded.published_at_ms);
            let mut totals = crate::session::conn::PushedCounts::default();
            for shard in &self.connections {
                let connections = shard.read().unwrap_or_else(|p| p.into_inner());
                for conn in connections.values() {
                    if role.as_deref().is_some_and(|role| role != conn.owner.role) {
                        continue;
                    }
                    add(&mut totals, conn.push_all(frames.get(conn.codec)));
                }
            }
            self.count(&self.broadcast_out, totals);
        }
    }

    /// A broadcast `reconnect`: every attached connection (of the role, if named) gets the
    /// control frame `reconnect {reason, retry_after}` with its own random delay in
    /// `[0, within_s]`, so the clients do not all come back at the same moment. Encoded per
    /// connection (the delay differs); a maintenance request is rare.
    #[cold]
    fn request_reconnect(&self, envelope: DirectEnvelope) {
        use rand::Rng;
        let request: ReconnectRequest = serde_json::from_value(envelope.data).unwrap_or_default();
        let within = request.within();
        let reason = request.reason.unwrap_or_else(|| "maintenance".to_owned());
        let mut totals = crate::session::conn::PushedCounts::default();
        let mut rng = rand::rng();
        for shard in &self.connections {
            let connections = shard.read().unwrap_or_else(|p| p.into_inner());
            for conn in connections.values() {
                if envelope
                    .role
                    .as_deref()
                    .is_some_and(|role| role != conn.owner.role)
                {
                    continue;
                }
                let retry_after = rng.random_range(0.0..=within);
                let reconnect = protocol::ServerMessage::Reconnect {
                    reason: reason.clone(),
                    retry_after: (retry_after * 1000.0).round() / 1000.0,
                };
                if let Some(outgoing) = crate::frames::control(conn.codec, &reconnect) {
                    add(&mut totals, conn.push_all(std::slice::from_ref(&outgoing)));
                }
            }
        }
        self.count(&self.broadcast_out, totals);
    }

    /// Delivers a batch of a user's messages to the user's local connections.
    fn dispatch_to_user(&self, user: &User, messages: &[bus::Message]) {
        let decoded: Vec<(DirectMessage, u64)> = messages
            .iter()
            .filter_map(|message| self.decode(&message.payload))
            .map(|decoded| {
                let delivered = DirectMessage::from_envelope(
                    Target::User(user.sub.clone()),
                    decoded.envelope,
                    protocol::time::now_rfc3339,
                );
                (delivered, decoded.published_at_ms)
            })
            .collect();
        if decoded.is_empty() {
            return;
        }
        let mut json = None;
        let mut msgpack = None;
        let mut totals = crate::session::conn::PushedCounts::default();
        let members = user.members.read().unwrap_or_else(|p| p.into_inner());
        for conn in members.values() {
            let slot = match conn.codec {
                Codec::Json => &mut json,
                Codec::MsgPack => &mut msgpack,
            };
            let frames =
                slot.get_or_insert_with(|| crate::frames::encode_published(conn.codec, &decoded));
            add(&mut totals, conn.push_all(frames));
        }
        drop(members);
        self.count(&self.user_out, totals);
    }

    fn decode(&self, payload: &[u8]) -> Option<Decoded> {
        self.decode_allowing(payload, false)
    }

    /// Decodes a direct envelope; `reconnect_allowed` lets the broadcast's `reconnect` through.
    fn decode_allowing(&self, payload: &[u8], reconnect_allowed: bool) -> Option<Decoded> {
        let envelope = match decode_envelope(payload) {
            Ok(envelope)
                if protocol::message::is_valid_event_name(&envelope.event)
                    || (reconnect_allowed && envelope.event == RECONNECT_EVENT) =>
            {
                envelope
            }
            Ok(_) | Err(_) => {
                self.metrics
                    .bad_input
                    .with_label_values(&["bus_direct_envelope"])
                    .inc();
                debug!("undecodable direct envelope dropped");
                return None;
            }
        };
        let published_at_ms = envelope
            .timestamp
            .as_deref()
            .and_then(|timestamp| humantime::parse_rfc3339_weak(timestamp).ok())
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(0))
            .unwrap_or_else(protocol::time::now_unix_ms);
        Some(Decoded {
            envelope,
            published_at_ms,
        })
    }

    fn count(&self, counter: &prometheus::IntCounter, pushed: crate::session::conn::PushedCounts) {
        counter.inc_by(pushed.queued);
        if pushed.dropped > 0 {
            self.metrics.messages_dropped.inc_by(pushed.dropped);
        }
        if pushed.slow_consumer {
            self.metrics.slow_consumer_closes.inc();
        }
    }
}

/// The gateway-wide subscriptions, made before accepting.
pub(crate) struct Wide {
    connections: Option<bus::Subscription>,
    broadcast: Option<bus::Subscription>,
    /// `sb.user.*`, in `shared` mode only.
    users: Option<bus::Subscription>,
}

struct Decoded {
    envelope: DirectEnvelope,
    published_at_ms: u64,
}

/// One message's frame, encoded lazily once per codec.
struct Frames<'a> {
    message: &'a DirectMessage,
    published_at_ms: u64,
    json: Option<Vec<Outgoing>>,
    msgpack: Option<Vec<Outgoing>>,
}

impl<'a> Frames<'a> {
    fn new(message: &'a DirectMessage, published_at_ms: u64) -> Self {
        Self {
            message,
            published_at_ms,
            json: None,
            msgpack: None,
        }
    }

    fn get(&mut self, codec: Codec) -> &[Outgoing] {
        let slot = match codec {
            Codec::Json => &mut self.json,
            Codec::MsgPack => &mut self.msgpack,
        };
        let (message, published_at_ms) = (self.message, self.published_at_ms);
        slot.get_or_insert_with(|| {
            crate::frames::encode_published(codec, &[(message.clone(), published_at_ms)])
        })
    }
}

fn add(
    totals: &mut crate::session::conn::PushedCounts,
    pushed: crate::session::conn::PushedCounts,
) {
    totals.queued += pushed.queued;
    totals.dropped += pushed.dropped;
    totals.slow_consumer |= pushed.slow_consumer;
}

async fn subscribe(bus: &Bus, subject: &str) -> Option<bus::Subscription> {
    match bus.subscribe(subject).await {
        Ok(subscription) => Some(subscription),
        Err(error) => {
            warn!(subject, error = %error, "direct subscription failed; retrying");
            None
        }
    }
}

/// Waits for the next message and takes whatever else has already arrived with it into
/// `batch`; false when `stop` fired or the subscription ended (an end seen while taking
/// the rest of a batch leaves that batch to be delivered, and the next call reports it).
async fn next_batch(
    subscription: &mut bus::Subscription,
    stop: &CancellationToken,
    batch: &mut Vec<bus::Message>,
) -> bool {
    batch.clear();
    let first = tokio::select! {
        () = stop.cancelled() => return false,
        next = subscription.next() => next,
    };
    let Some(first) = first else {
        return false;
    };
    batch.push(first);
    while batch.len() < DISPATCH_BATCH_MESSAGES {
        match subscription.next().now_or_never() {
            Some(Some(message)) => batch.push(message),
            // Ended: deliver what we have; the next call sees the end.
            Some(None) | None => break,
        }
    }
    true
}

/// Subscribes `sb.user.<sub>` and spawns its dispatch task; returns whether it is live.
async fn subscribe_user(direct: Arc<Direct>, user: Arc<User>) -> bool {
    let subject = direct.subjects.user(&user.sub);
    let Some(subscription) = subscribe(&direct.bus, &subject).await else {
        return false;
    };
    // A flush makes the server register the subscription before the greeting goes out.
    if let Err(error) = direct.bus.flush().await {
        warn!(error = %error, "bus flush after user subscribe failed");
    }
    direct
        .tasks
        .clone()
        .spawn(run_user(direct, user, subject, subscription));
    true
}

/// Delivers a user's messages until its last local connection leaves.
async fn run_user(direct: Arc<Direct>, user: Arc<User>, subject: String, first: bus::Subscription) {
    let mut subscription = first;
    let mut batch = Vec::new();
    loop {
        while next_batch(&mut subscription, &user.cancel, &mut batch).await {
            direct.dispatch_to_user(&user, &batch);
        }
        if user.cancel.is_cancelled() {
            return;
        }
        debug!(subject, "user subscription ended; subscribing again");
        subscription = loop {
            tokio::select! {
                () = user.cancel.cancelled() => return,
                () = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
            }
            if let Some(renewed) = subscribe(&direct.bus, &subject).await {
                break renewed;
            }
        };
    }
}

#[cfg(test)]
mod tests;
