//! The node's listener: the one-client-at-a-time WebSocket endpoint, and the handle tests
//! use to watch and disturb the node.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use protocol::batch::{
    BatchAck, ML_NODE_WS_PATH, REASON_ANOTHER_CLIENT, REASON_POW_NOT_RUNNING, REFUSED_CLOSE_CODE,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::SimConfig;
use crate::delivery;

/// Frames queued for the connected client; the delivery loop never waits on it (it uses
/// `try_send` and retries later when it is full).
const OUTBOUND_FRAMES: usize = 4096;
/// Ack latencies kept for [`SimHandle::ack_latencies`]; later ones are not recorded.
const MAX_LATENCIES: usize = 1_000_000;
/// Acks on their way from the connection to the delivery loop; the connection waits when
/// it is full (the loop drains it promptly and never waits on the connection).
const ACKS_IN_FLIGHT: usize = 4096;

/// A snapshot of the node's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Batches generated so far.
    pub generated: u64,
    /// Batches confirmed by either path (each counted once).
    pub confirmed: u64,
    /// Batches generated but not confirmed yet.
    pub pending: u64,
    /// WebSocket frames sent (attempts).
    pub sent_ws: u64,
    /// HTTP callbacks posted (attempts).
    pub sent_http: u64,
    /// Batches whose confirmation came over the WebSocket.
    pub acked_ws: u64,
    /// Batches whose confirmation came over HTTP.
    pub acked_http: u64,
    /// HTTP callbacks answered 2xx (a batch already confirmed by its ack counts too).
    pub http_ok: u64,
    /// HTTP callbacks that failed or were answered otherwise.
    pub http_errors: u64,
    /// Acks for attempts that had timed out or were unknown.
    pub late_acks: u64,
    /// WebSocket clients accepted.
    pub ws_accepted: u64,
    /// WebSocket clients refused with 1008.
    pub ws_refused: u64,
}

#[derive(Default)]
pub(crate) struct AtomicCounters {
    pub generated: AtomicU64,
    pub confirmed: AtomicU64,
    pub pending: AtomicU64,
    pub sent_ws: AtomicU64,
    pub sent_http: AtomicU64,
    pub acked_ws: AtomicU64,
    pub acked_http: AtomicU64,
    pub http_ok: AtomicU64,
    pub http_errors: AtomicU64,
    pub late_acks: AtomicU64,
    pub ws_accepted: AtomicU64,
    pub ws_refused: AtomicU64,
}

/// One change of the node's WebSocket client, with when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEvent {
    /// When it happened.
    pub at: Instant,
    /// What happened.
    pub kind: ConnectionEventKind,
}

/// What happened to a WebSocket client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEventKind {
    /// A client was accepted.
    Accepted,
    /// A client was closed with 1008 and this reason.
    Refused(String),
    /// The accepted client's connection ended.
    Closed,
}

/// What the node does to its current client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kick {
    None,
    /// Drop the socket without a close frame (a network cut).
    Cut,
    /// Close with 1008 "PoW is not running".
    PowStopped,
}

struct Client {
    id: u64,
    frames_tx: mpsc::Sender<String>,
    kick_tx: watch::Sender<Kick>,
}

pub(crate) struct Shared {
    pub config: SimConfig,
    pub counters: AtomicCounters,
    callback_url: Mutex<Option<String>>,
    pow_running: AtomicBool,
    generation_paused: AtomicBool,
    /// Wakes the delivery loop when generation resumes.
    pub wake: tokio::sync::Notify,
    client: Mutex<Option<Client>>,
    next_client: AtomicU64,
    log: Mutex<Vec<ConnectionEvent>>,
    ack_latencies: Mutex<Vec<Duration>>,
    http_latencies: Mutex<Vec<Duration>>,
    acks_tx: mpsc::Sender<String>,
    shutdown: CancellationToken,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only plain assignments happen under these locks; none panics mid-update.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The connected client's frame queue, if a client is connected.
    pub(crate) fn client_frames(&self) -> Option<mpsc::Sender<String>> {
        lock(&self.client)
            .as_ref()
            .map(|client| client.frames_tx.clone())
    }

    pub(crate) fn generation_paused(&self) -> bool {
        self.generation_paused.load(Ordering::Relaxed)
    }

    pub(crate) fn callback_url(&self) -> Option<String> {
        lock(&self.callback_url).clone()
    }

    pub(crate) fn record_ack_latency(&self, latency: Duration) {
        let mut latencies = lock(&self.ack_latencies);
        if latencies.len() < MAX_LATENCIES {
            latencies.push(latency);
        }
    }

    pub(crate) fn record_http_latency(&self, latency: Duration) {
        let mut latencies = lock(&self.http_latencies);
        if latencies.len() < MAX_LATENCIES {
            latencies.push(latency);
        }
    }

    fn log(&self, kind: ConnectionEventKind) {
        lock(&self.log).push(ConnectionEvent {
            at: Instant::now(),
            kind,
        });
    }
}

/// A bound simulated ML node.
pub struct MlNodeSim {
    listener: TcpListener,
    shared: Arc<Shared>,
    acks_rx: mpsc::Receiver<String>,
}

/// Watches and disturbs a running simulated node; cheap to clone.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
}

impl MlNodeSim {
    /// Binds the node's listener.
    ///
    /// # Errors
    /// The OS error when the address cannot be bound.
    pub async fn bind(config: SimConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let (acks_tx, acks_rx) = mpsc::channel(ACKS_IN_FLIGHT);
        let shared = Arc::new(Shared {
            callback_url: Mutex::new(config.callback_url.clone()),
            pow_running: AtomicBool::new(config.pow_running),
            generation_paused: AtomicBool::new(config.paused),
            wake: tokio::sync::Notify::new(),
            config,
            counters: AtomicCounters::default(),
            client: Mutex::new(None),
            next_client: AtomicU64::new(1),
            log: Mutex::new(Vec::new()),
            ack_latencies: Mutex::new(Vec::new()),
            http_latencies: Mutex::new(Vec::new()),
            acks_tx,
            shutdown: CancellationToken::new(),
        });
        Ok(Self {
            listener,
            shared,
            acks_rx,
        })
    }

    /// Returns the listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// Returns the node's WebSocket URL, `ws://<addr>/api/v1/pow/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{ML_NODE_WS_PATH}", self.local_addr())
    }

    /// Returns a handle for counters and fault injection.
    pub fn handle(&self) -> SimHandle {
        SimHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Generates and delivers batches until `shutdown`; then closes the client with 1001.
    ///
    /// # Errors
    /// The HTTP server's I/O error.
    pub async fn serve(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let MlNodeSim {
            listener,
            shared,
            acks_rx,
        } = self;
        let delivery = tokio::spawn(delivery::run(
            Arc::clone(&shared),
            acks_rx,
            shutdown.clone(),
        ));
        let router = Router::new()
            .route(ML_NODE_WS_PATH, get(pow_ws))
            .with_state(Arc::clone(&shared));
        let connections = shared.shutdown.clone();
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.cancelled().await;
                connections.cancel();
            })
            .await;
        shared.shutdown.cancel();
        // A join error means the loop panicked; the server result is what callers act on.
        let _ = delivery.await;
        served
    }
}

impl SimHandle {
    /// Returns the counters now.
    pub fn counters(&self) -> Counters {
        let c = &self.shared.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counters {
            generated: get(&c.generated),
            confirmed: get(&c.confirmed),
            pending: get(&c.pending),
            sent_ws: get(&c.sent_ws),
            sent_http: get(&c.sent_http),
            acked_ws: get(&c.acked_ws),
            acked_http: get(&c.acked_http),
            http_ok: get(&c.http_ok),
            http_errors: get(&c.http_errors),
            late_acks: get(&c.late_acks),
            ws_accepted: get(&c.ws_accepted),
            ws_refused: get(&c.ws_refused),
        }
    }

    /// Reports whether every batch of a finite run was generated and confirmed.
    pub fn all_confirmed(&self) -> bool {
        let counters = self.counters();
        Some(counters.generated) == self.shared.config.batches
            && counters.confirmed == counters.generated
    }

    /// Returns every client change so far, oldest first.
    pub fn connection_log(&self) -> Vec<ConnectionEvent> {
        lock(&self.shared.log).clone()
    }

    /// Reports whether a client is connected.
    pub fn is_client_connected(&self) -> bool {
        lock(&self.shared.client).is_some()
    }

    /// Drops the current client's socket without a close frame, like a network cut.
    /// Returns whether a client was connected.
    pub fn cut_connection(&self) -> bool {
        self.kick(Kick::Cut)
    }

    /// Starts or stops PoW. Stopping closes the current client with 1008 "PoW is not
    /// running" and refuses new ones until it is started again.
    pub fn set_pow_running(&self, running: bool) {
        self.shared.pow_running.store(running, Ordering::Relaxed);
        if !running {
            self.kick(Kick::PowStopped);
        }
    }

    /// Returns the send → ack time of every batch confirmed over the WebSocket (the first
    /// million), in confirmation order.
    pub fn ack_latencies(&self) -> Vec<Duration> {
        lock(&self.shared.ack_latencies).clone()
    }

    /// Returns the request → response time of every callback answered 2xx (the first
    /// million), connection set-up included (the simulator opens one per request).
    pub fn http_latencies(&self) -> Vec<Duration> {
        lock(&self.shared.http_latencies).clone()
    }

    /// Sends `text` to the connected client as a text frame, outside the delivery loop (to
    /// test how a client treats a malformed frame). Returns whether it was queued.
    pub fn send_raw_frame(&self, text: &str) -> bool {
        self.shared
            .client_frames()
            .is_some_and(|frames| frames.try_send(text.to_owned()).is_ok())
    }

    /// Starts generating batches when the node was configured [`SimConfig::paused`].
    pub fn resume_generation(&self) {
        self.shared
            .generation_paused
            .store(false, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }

    /// Changes the callback URL (`None`: WebSocket only).
    pub fn set_callback_url(&self, url: Option<String>) {
        *lock(&self.shared.callback_url) = url;
    }

    fn kick(&self, kick: Kick) -> bool {
        match lock(&self.shared.client).as_ref() {
            Some(client) => client.kick_tx.send(kick).is_ok(),
            None => false,
        }
    }
}

async fn pow_ws(State(shared): State<Arc<Shared>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| serve_client(shared, socket))
}

async fn refuse(shared: &Shared, mut socket: WebSocket, reason: &str) {
    shared.counters.ws_refused.fetch_add(1, Ordering::Relaxed);
    shared.log(ConnectionEventKind::Refused(reason.to_owned()));
    let close = CloseFrame {
        code: REFUSED_CLOSE_CODE,
        reason: reason.into(),
    };
    // The client may already be gone; the refusal is logged either way.
    let _ = socket.send(Message::Close(Some(close))).await;
}

async fn serve_client(shared: Arc<Shared>, mut socket: WebSocket) {
    let (frames_tx, mut frames_rx) = mpsc::channel(OUTBOUND_FRAMES);
    let (kick_tx, mut kick_rx) = watch::channel(Kick::None);
    let id = shared.next_client.fetch_add(1, Ordering::Relaxed);
    let refusal = {
        let mut client = lock(&shared.client);
        if !shared.pow_running.load(Ordering::Relaxed) {
            Some(REASON_POW_NOT_RUNNING)
        } else if client.is_some() {
            Some(REASON_ANOTHER_CLIENT)
        } else {
            *client = Some(Client {
                id,
                frames_tx,
                kick_tx,
            });
            None
        }
    };
    if let Some(reason) = refusal {
        refuse(&shared, socket, reason).await;
        return;
    }
    shared.counters.ws_accepted.fetch_add(1, Ordering::Relaxed);
    shared.log(ConnectionEventKind::Accepted);
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => {
                let close = CloseFrame { code: 1001, reason: "ml node shutting down".into() };
                let _ = socket.send(Message::Close(Some(close))).await;
                break;
            }
            changed = kick_rx.changed() => {
                let kick = *kick_rx.borrow_and_update();
                match (changed, kick) {
                    (Err(_), _) | (Ok(()), Kick::Cut) => break,
                    (Ok(()), Kick::PowStopped) => {
                        let close = CloseFrame {
                            code: REFUSED_CLOSE_CODE,
                            reason: REASON_POW_NOT_RUNNING.into(),
                        };
                        let _ = socket.send(Message::Close(Some(close))).await;
                        break;
                    }
                    (Ok(()), Kick::None) => {}
                }
            }
            Some(frame) = frames_rx.recv() => {
                if socket.send(Message::Text(frame.into())).await.is_err() {
                    break;
                }
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(ack) = serde_json::from_str::<BatchAck>(text.as_str())
                        && shared.acks_tx.send(ack.id).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    {
        let mut client = lock(&shared.client);
        if client.as_ref().is_some_and(|current| current.id == id) {
            *client = None;
        }
    }
    shared.log(ConnectionEventKind::Closed);
}
