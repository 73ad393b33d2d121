//! Test helpers: tokens, gateways on a shared in-memory bus, a cuttable TCP proxy, a fake
//! server that never speaks, and waiting on events and states with bounded timeouts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use auth::{Claims, Role};
use bus::Bus;
use client::{Client, ClientEvent, ConnectionState, Events, ReconnectPolicy};
use futures_util::{SinkExt, StreamExt};
use gateway::test_util::{TestGateway, test_config};
use store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;

pub use gateway::test_util::{eventually, publish_http, within};

/// Upper bound for anything a test waits for.
pub const WAIT: Duration = Duration::from_secs(10);

/// Viewer claims (subscribe anywhere) that may also publish to `news`.
pub fn viewer_claims(sub: &str) -> Claims {
    let mut claims = auth::test_keys::claims(sub);
    claims.publish = vec!["news".to_owned()];
    claims
}

/// A token for [`viewer_claims`].
pub fn viewer_token(sub: &str) -> String {
    auth::test_keys::hs256_token(&viewer_claims(sub))
}

/// A node token for `node_id`.
pub fn node_token(node_id: &str) -> String {
    let mut claims = auth::test_keys::claims(node_id);
    claims.role = Role::Node;
    claims.node_id = Some(node_id.to_owned());
    auth::test_keys::hs256_token(&claims)
}

/// Reconnects within tens of milliseconds, so fault tests run fast.
pub fn fast_policy() -> ReconnectPolicy {
    ReconnectPolicy::exponential(Duration::from_millis(20), Duration::from_millis(200))
}

/// `ws://addr/api/ws/connect`.
pub fn ws_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/api/ws/connect")
}

/// Starts a gateway on `bus`/`store`, on `listen` (port 0 when `None`), with a quick drain
/// and reconnect delay of `retry_after` (min = max) and no practical per-user connection limit.
pub async fn gateway_on(
    bus: &Bus,
    store: &Store,
    listen: Option<SocketAddr>,
    retry_after: Duration,
) -> TestGateway {
    let mut config = test_config();
    if let Some(addr) = listen {
        config.gateway.listen = addr;
    }
    config.gateway.connections_per_user_per_minute = 10_000;
    config.gateway.reconnect_delay_min = retry_after;
    config.gateway.reconnect_delay_max = retry_after;
    TestGateway::start(config, bus.clone(), store.clone()).await
}

/// Waits for the first event matching `wanted`, skipping others.
///
/// # Panics
/// After [`WAIT`], or when the stream ends first.
pub async fn next_matching(
    events: &mut Events,
    wanted: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    within(WAIT, async {
        loop {
            match events.recv().await {
                Some(event) if wanted(&event) => return event,
                Some(_) => continue,
                None => panic!("event stream ended while waiting"),
            }
        }
    })
    .await
}

/// Waits for a room message with `event` name and returns its data.
pub async fn next_room_event(events: &mut Events, event: &str) -> serde_json::Value {
    match next_matching(
        events,
        |e| matches!(e, ClientEvent::Room(m) if m.event == event),
    )
    .await
    {
        ClientEvent::Room(message) => message.data,
        _ => unreachable!("filtered to room messages"),
    }
}

/// Waits for a `Subscribed` event naming `room`.
pub async fn subscribed_to(events: &mut Events, room: &str) {
    next_matching(
        events,
        |e| matches!(e, ClientEvent::Subscribed { rooms, .. } if rooms.iter().any(|r| r == room)),
    )
    .await;
}

/// Waits until the client's state matches `wanted` and returns it.
pub async fn state_reaches(
    client: &Client,
    wanted: impl Fn(&ConnectionState) -> bool,
) -> ConnectionState {
    let mut state_rx = client.watch_state();
    within(WAIT, state_rx.wait_for(|state| wanted(state)))
        .await
        .map(|state| state.clone())
        .expect("client state is watchable")
}

/// A TCP proxy between client and gateway whose connections can be cut and whose listener can
/// go away and come back on the same port.
pub struct TcpProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    target: SocketAddr,
    accepting: Option<JoinHandle<()>>,
}

impl TcpProxy {
    /// Starts forwarding a fresh loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        Self {
            addr,
            target,
            accepting: Some(tokio::spawn(forward(listener, target))),
        }
    }

    /// Cuts every forwarded connection and stops listening (new connections are refused).
    pub fn cut(&mut self) {
        if let Some(accepting) = self.accepting.take() {
            // The accept task owns the pipes' JoinSet; aborting it drops and aborts them all.
            accepting.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&mut self) {
        let listener = within(WAIT, async {
            loop {
                // The aborted accept task releases the port asynchronously.
                match TcpListener::bind(self.addr).await {
                    Ok(listener) => return listener,
                    Err(_) => tokio::task::yield_now().await,
                }
            }
        })
        .await;
        self.accepting = Some(tokio::spawn(forward(listener, self.target)));
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

async fn forward(listener: TcpListener, target: SocketAddr) {
    let mut pipes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut inbound, _)) = accepted else { continue };
                pipes.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
            Some(_) = pipes.join_next(), if !pipes.is_empty() => {}
        }
    }
}

/// A WebSocket server that completes the upgrade (with the JSON subprotocol), optionally
/// sends `connection_established`, and then never sends anything. Every frame it receives is
/// forwarded to [`FakeServer::frames_rx`].
pub struct FakeServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    /// Frames clients sent, in order.
    pub frames_rx: mpsc::Receiver<Message>,
    task: JoinHandle<()>,
}

impl FakeServer {
    /// Starts the server; `greet` sends one `connection_established` per connection.
    pub async fn start(greet: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("fake binds");
        let addr = listener.local_addr().expect("fake address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let (frames_tx, frames_rx) = mpsc::channel(1024);
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    next = listener.accept() => {
                        let Ok((stream, _)) = next else { continue };
                        counter.fetch_add(1, Ordering::SeqCst);
                        connections.spawn(serve_silently(stream, greet, frames_tx.clone()));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Self {
            addr,
            accepted,
            frames_rx,
            task,
        }
    }

    /// Returns the number of accepted connections.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_silently(stream: TcpStream, greet: bool, frames_tx: mpsc::Sender<Message>) {
    // tungstenite's callback signature fixes the large error type.
    #[allow(clippy::result_large_err)]
    let choose_json = |_: &Request, mut response: Response| {
        response.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(protocol::codec::SUBPROTOCOL_JSON),
        );
        Ok(response)
    };
    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, choose_json).await else {
        return;
    };
    if greet {
        let greeting = serde_json::json!({
            "type": "connection_established",
            "connection_id": "fake-conn",
            "server_id": "fake",
            "heartbeat_interval_ms": 30_000,
            "timestamp": "2025-01-01T00:00:00.000Z",
        });
        if socket
            .send(Message::Text(greeting.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
    }
    while let Some(Ok(message)) = socket.next().await {
        if frames_tx.send(message).await.is_err() {
            return;
        }
    }
}
