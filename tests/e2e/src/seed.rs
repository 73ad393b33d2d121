//! Seed 003's client side, as its `useWebSocketWithReconnect` hook behaves: a plain JSON socket
//! ([`SeedSocket`]) and a client that reconnects with exponential backoff and jitter
//! ([`ReconnectingClient`], 1 s → 30 s, at most 10 attempts) and records every attempt, so
//! tests can assert the delays it waited as well as the data it got.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a socket gave next.
#[derive(Debug)]
pub enum Next {
    /// A JSON text frame.
    Frame(Value),
    /// The connection ended, with the close code when there was a close frame.
    Closed(Option<u16>),
    /// Nothing arrived in time.
    Timeout,
}

/// One seed 003 WebSocket: JSON text frames in, text out.
pub struct SeedSocket {
    stream: WsStream,
}

impl SeedSocket {
    /// Opens `url`.
    ///
    /// # Errors
    /// The handshake's error (refused, HTTP error status, closed).
    pub async fn connect(url: &str) -> Result<Self, tungstenite::Error> {
        let (stream, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self { stream })
    }

    /// Sends a text frame (seed 003's health client sends `ping`).
    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::text(text))
            .await
            .expect("text frame sent");
    }

    /// The next JSON frame within `limit`, skipping WebSocket control frames.
    pub async fn next(&mut self, limit: Duration) -> Next {
        let deadline = Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Next::Timeout,
                Ok(None) | Ok(Some(Err(_))) => return Next::Closed(None),
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Next::Frame(serde_json::from_str(&text).expect("frames are JSON"));
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Next::Closed(frame.map(|frame| u16::from(frame.code)));
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The next frame of `kind` (its `type`) within `limit`, skipping others.
    ///
    /// # Panics
    /// When none arrives in time or the connection ends.
    pub async fn next_of(&mut self, kind: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            match self
                .next(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Next::Frame(frame) if frame["type"] == kind => return frame,
                Next::Frame(_) => {}
                other => panic!("expected a {kind} frame within {limit:?}, got {other:?}"),
            }
        }
    }

    /// Every frame arriving within `window`, with its arrival time.
    ///
    /// # Panics
    /// When the connection ends.
    pub async fn collect(&mut self, window: Duration) -> Vec<(Instant, Value)> {
        let deadline = Instant::now() + window;
        let mut frames = Vec::new();
        loop {
            match self
                .next(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Next::Frame(frame) => frames.push((Instant::now(), frame)),
                Next::Timeout => return frames,
                Next::Closed(code) => panic!("connection closed ({code:?}) while collecting"),
            }
        }
    }
}

/// Seed 003's reconnect schedule: the delay before attempt n is `initial × 2^(n−1)`, at most
/// `max`, plus up to `jitter` of it at random; after `max_attempts` failed attempts in a row the
/// client gives up. A successful open starts the count again.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Delay before the first attempt.
    pub initial: Duration,
    /// Longest delay before jitter.
    pub max: Duration,
    /// Failed attempts in a row before giving up.
    pub max_attempts: u32,
    /// Random extra delay, as a fraction of the delay (0.2: up to 20 % more).
    pub jitter: f64,
}

impl Backoff {
    /// The seed's hook: 1 s → 30 s, 10 attempts, up to 20 % jitter.
    pub const SEED_003: Backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(30),
        max_attempts: 10,
        jitter: 0.2,
    };

    /// The delay before attempt `attempt` (1-based) without jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }

    /// The delay before attempt `attempt`, jitter included.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.base_delay(attempt)
            .mul_f64(1.0 + self.jitter * rand::random::<f64>())
    }

    /// Whether `delay` fits attempt `attempt`'s schedule (base to base + jitter), with
    /// `slack` for a loaded machine's timers.
    pub fn allows(&self, attempt: u32, delay: Duration, slack: Duration) -> bool {
        let base = self.base_delay(attempt);
        delay >= base && delay <= base.mul_f64(1.0 + self.jitter) + slack
    }
}

/// A reconnect attempt and how it went.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// 1 for the first attempt after a connection was lost.
    pub number: u32,
    /// How long the client waited before it (the backoff delay).
    pub delay: Duration,
    /// When it was made.
    pub at: Instant,
    /// Whether the WebSocket opened.
    pub opened: bool,
}

/// A frame and the connection (0 first, 1 after the first reconnect …) that carried it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Which connection.
    pub connection: u32,
    /// When it arrived.
    pub at: Instant,
    /// The frame.
    pub frame: Value,
}

/// Everything a [`ReconnectingClient`] did.
#[derive(Debug, Default, Clone)]
pub struct ClientLog {
    /// Frames in arrival order.
    pub frames: Vec<Received>,
    /// Reconnect attempts in order.
    pub attempts: Vec<Attempt>,
    /// When each connection was lost.
    pub lost_at: Vec<Instant>,
    /// Whether it gave up after `max_attempts`.
    pub gave_up: bool,
}

impl ClientLog {
    /// `data` frames carried by connection `connection`.
    pub fn data_on(&self, connection: u32) -> usize {
        self.frames
            .iter()
            .filter(|received| {
                received.connection == connection && received.frame["type"] == "data"
            })
            .count()
    }

    /// Connections opened so far.
    pub fn connections(&self) -> u32 {
        1 + self
            .attempts
            .iter()
            .filter(|attempt| attempt.opened)
            .count() as u32
    }
}

/// A seed 003 client that reconnects with [`Backoff`] whenever its connection ends, in a task
/// of its own, recording frames and attempts in a [`ClientLog`].
pub struct ReconnectingClient {
    log: Arc<Mutex<ClientLog>>,
    task: JoinHandle<()>,
}

impl ReconnectingClient {
    /// Opens `url` (this first connection must succeed) and keeps it open from then on.
    ///
    /// # Panics
    /// When the first connection fails.
    pub async fn connect(url: &str, backoff: Backoff) -> Self {
        let first = SeedSocket::connect(url)
            .await
            .expect("first connection opens");
        let log = Arc::new(Mutex::new(ClientLog::default()));
        let task = tokio::spawn(keep_connected(
            url.to_owned(),
            backoff,
            first,
            Arc::clone(&log),
        ));
        Self { log, task }
    }

    /// A copy of the log so far.
    pub fn log(&self) -> ClientLog {
        self.log.lock().expect("log lock").clone()
    }
}

impl Drop for ReconnectingClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn keep_connected(
    url: String,
    backoff: Backoff,
    first: SeedSocket,
    log: Arc<Mutex<ClientLog>>,
) {
    let mut socket = first;
    let mut connection = 0;
    loop {
        // Read until the connection ends (a close, an error, or an hour of nothing).
        while let Next::Frame(frame) = socket.next(Duration::from_secs(3600)).await {
            log.lock().expect("log lock").frames.push(Received {
                connection,
                at: Instant::now(),
                frame,
            });
        }
        log.lock().expect("log lock").lost_at.push(Instant::now());
        let mut attempt = 0;
        socket = loop {
            attempt += 1;
            if attempt > backoff.max_attempts {
                log.lock().expect("log lock").gave_up = true;
                return;
            }
            let delay = backoff.delay(attempt);
            tokio::time::sleep(delay).await;
            let at = Instant::now();
            let opened = SeedSocket::connect(&url).await.ok();
            log.lock().expect("log lock").attempts.push(Attempt {
                number: attempt,
                delay,
                at,
                opened: opened.is_some(),
            });
            if let Some(socket) = opened {
                break socket;
            }
        };
        connection += 1;
    }
}
