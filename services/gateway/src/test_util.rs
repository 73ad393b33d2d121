//! Test helpers (feature `test-util`): an in-process gateway on port 0 and a raw WebSocket
//! client that speaks the protocol, used by this crate's integration tests and by `e2e`.

use std::future::Future;
use std::time::Duration;

use auth::test_keys;
use bus::Bus;
use futures_util::{SinkExt, StreamExt};
use protocol::{Codec, ErrorCode, RoomMessage, ServerFrame, ServerMessage};
use settings::Secret;
use store::Store;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::{Config, Gateway, RunError};

pub use http_front::test_pki::{IssuedCert, TestPki};

/// The API key test gateways accept on `POST /api/ws/publish`.
pub const TEST_API_KEY: &str = "test-api-key";

/// How long test helpers wait for an expected frame before failing.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// A configuration for tests: loopback port 0, the test HMAC secret and API key, fast
/// liveness so cluster tests run quickly.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.gateway.listen = "127.0.0.1:0".parse().expect("literal address parses");
    config.gateway.liveness_ttl = Duration::from_secs(2);
    config.gateway.drain_timeout = Duration::from_secs(3);
    config.auth.hmac_secret = Some(Secret::new(
        String::from_utf8_lossy(test_keys::TEST_HMAC_SECRET).into_owned(),
    ));
    config.auth.api_key = Some(Secret::new(TEST_API_KEY));
    config
}

/// A panic injected into one of the gateway's background tasks (see
/// [`Gateway::inject_fault`]), to test supervision without touching production paths.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    /// Which task panics: [`Fault::HEARTBEAT`], [`Fault::LIVENESS`],
    /// [`Fault::PRESENCE_WRITER`], or [`Fault::SERVE`] (the `serve` future itself).
    pub task: &'static str,
    /// How long after `serve` starts.
    pub after: Duration,
}

impl Fault {
    /// The heartbeat sweep.
    pub const HEARTBEAT: &'static str = "heartbeat";
    /// The liveness refresh.
    pub const LIVENESS: &'static str = "liveness";
    /// The presence writer.
    pub const PRESENCE_WRITER: &'static str = "presence writer";
    /// [`Gateway::serve`] itself (what an embedding process supervises).
    pub const SERVE: &'static str = "serve";

    /// The environment variable that injects a fault into the gateway binary when it is built
    /// with `test-util` (process-level supervision tests): `<task>@<milliseconds>`, e.g.
    /// `heartbeat@300`. Release builds do not have the feature and never read it.
    pub const ENV: &'static str = "SWITCHBOARD_TEST_FAULT";

    /// Reads [`Fault::ENV`]; `None` when unset or not `<known task>@<milliseconds>`.
    pub fn from_env() -> Option<Self> {
        let value = std::env::var(Self::ENV).ok()?;
        let (task, after_ms) = value.split_once('@')?;
        let task = [
            Self::HEARTBEAT,
            Self::LIVENESS,
            Self::PRESENCE_WRITER,
            Self::SERVE,
        ]
        .into_iter()
        .find(|known| *known == task)?;
        Some(Self {
            task,
            after: Duration::from_millis(after_ms.parse().ok()?),
        })
    }
}

/// A room message whose event is this makes the room's dispatch task panic (tests of what
/// the gateway does with a room whose task died).
pub const PANIC_EVENT: &str = "test_util.panic";

/// A gateway serving in this process.
pub struct TestGateway {
    /// `host:port` it listens on.
    pub addr: std::net::SocketAddr,
    /// Its server id.
    pub server_id: String,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<Result<(), RunError>>>,
}

impl TestGateway {
    /// Starts a gateway with `config` on `bus` and `store`.
    ///
    /// # Panics
    /// Panics when the gateway cannot bind; tests want that loudly.
    pub async fn start(config: Config, bus: Bus, store: Store) -> Self {
        let gateway = Gateway::bind(config, bus, store)
            .await
            .expect("test gateway binds");
        let addr = gateway.local_addr();
        let server_id = gateway.server_id().to_owned();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(gateway.serve(shutdown.clone()));
        Self {
            addr,
            server_id,
            shutdown,
            handle: Some(handle),
        }
    }

    /// Starts a gateway on a fresh in-memory bus and store with [`test_config`] changed by `adjust`.
    pub async fn start_memory(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config();
        adjust(&mut config);
        Self::start(config, Bus::memory(), Store::memory()).await
    }

    /// Returns `ws://addr/api/ws/connect?token=…`.
    pub fn ws_url(&self, token: &str) -> String {
        format!("ws://{}/api/ws/connect?token={token}", self.addr)
    }

    /// Returns `http://addr{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Connects a JSON client with `token` and waits for `connection_established`.
    pub async fn connect(&self, token: &str) -> TestClient {
        let mut client = TestClient::connect(&self.ws_url(token), Codec::Json)
            .await
            .expect("client connects");
        client.expect_established().await;
        client
    }

    /// Drains the gateway (as on SIGTERM) and waits for it to finish.
    pub async fn shutdown(mut self) -> Result<(), RunError> {
        self.shutdown.cancel();
        match self.handle.take() {
            Some(handle) => match handle.await {
                Ok(result) => result,
                Err(error) => std::panic::resume_unwind(error.into_panic()),
            },
            None => Ok(()),
        }
    }

    /// Stops the gateway abruptly: no drain, no deregistration (a crash as far as the
    /// cluster can tell).
    pub fn kill(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A raw protocol client.
pub struct TestClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    codec: Codec,
}

impl TestClient {
    /// Connects to `url`, asking for `codec`'s subprotocol.
    ///
    /// # Errors
    /// The handshake error, e.g. an HTTP 403 for a refused origin.
    pub async fn connect(url: &str, codec: Codec) -> Result<Self, tungstenite::Error> {
        Self::connect_with(url, codec, |_| {}).await
    }

    /// Connects with a chance to change the request (headers such as `Origin`).
    ///
    /// # Errors
    /// The handshake error.
    pub async fn connect_with(
        url: &str,
        codec: Codec,
        adjust: impl FnOnce(&mut tungstenite::handshake::client::Request),
    ) -> Result<Self, tungstenite::Error> {
        let mut request = url.into_client_request()?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(codec.subprotocol()),
        );
        adjust(&mut request);
        let (socket, _response) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self { socket, codec })
    }

    /// Sends a JSON value as a text frame.
    pub async fn send_json(&mut self, value: serde_json::Value) {
        self.send_raw(Message::Text(value.to_string().into())).await;
    }

    /// Sends a raw frame.
    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.expect("frame is sent");
    }

    /// Sends a frame, reporting failure instead of panicking (the server may have closed).
    pub async fn try_send_raw(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        self.socket.send(message).await
    }

    /// Subscribes to `rooms` and waits for `subscribed`.
    pub async fn subscribe(&mut self, rooms: &[&str]) -> Vec<String> {
        self.send_json(serde_json::json!({"type": "subscribe", "rooms": rooms}))
            .await;
        match self
            .next_control(|m| matches!(m, ServerMessage::Subscribed { .. }))
            .await
        {
            ServerMessage::Subscribed { rooms, .. } => rooms,
            _ => unreachable!("filtered to subscribed"),
        }
    }

    /// Waits for `connection_established`.
    pub async fn expect_established(&mut self) -> ServerMessage {
        self.next_control(|m| matches!(m, ServerMessage::ConnectionEstablished { .. }))
            .await
    }

    /// Returns the next frame from the server, decoded; `None` once the socket closed.
    /// Heartbeats, pings and pongs are passed over.
    pub async fn next_frame(&mut self) -> Option<Result<ServerFrame, Option<CloseFrame>>> {
        loop {
            let message = self.socket.next().await?;
            let bytes = match message {
                Ok(Message::Text(text)) => text.as_bytes().to_vec(),
                Ok(Message::Binary(bytes)) => bytes.to_vec(),
                Ok(Message::Close(frame)) => return Some(Err(frame)),
                Ok(_) => continue,
                Err(_) => return None,
            };
            let frame = ServerFrame::decode(self.codec, &bytes).expect("server frames decode");
            if matches!(frame, ServerFrame::Control(ServerMessage::Heartbeat { .. })) {
                continue;
            }
            return Some(Ok(frame));
        }
    }

    /// Waits for a control message matching `wanted`, skipping others.
    ///
    /// # Panics
    /// Panics after [`FRAME_TIMEOUT`] or when the connection closes first.
    pub async fn next_control(&mut self, wanted: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
        within(FRAME_TIMEOUT, async {
            loop {
                match self.next_frame().await {
                    Some(Ok(ServerFrame::Control(message))) if wanted(&message) => return message,
                    Some(Ok(_)) => continue,
                    other => {
                        panic!("connection ended while waiting for a control message: {other:?}")
                    }
                }
            }
        })
        .await
    }

    /// Waits for an `error` with `code`.
    pub async fn expect_error(&mut self, code: ErrorCode) -> ServerMessage {
        self.next_control(|m| matches!(m, ServerMessage::Error { code: got, .. } if *got == code))
            .await
    }

    /// Waits for the next room message.
    ///
    /// # Panics
    /// Panics after [`FRAME_TIMEOUT`] or when the connection closes first.
    pub async fn next_room_message(&mut self) -> RoomMessage {
        within(FRAME_TIMEOUT, async {
            loop {
                match self.next_frame().await {
                    Some(Ok(ServerFrame::Room(message))) => return message,
                    Some(Ok(_)) => continue,
                    other => panic!("connection ended while waiting for a room message: {other:?}"),
                }
            }
        })
        .await
    }

    /// Returns a room message if one arrives within `wait`, else `None`.
    pub async fn room_message_within(&mut self, wait: Duration) -> Option<RoomMessage> {
        tokio::time::timeout(wait, async {
            loop {
                match self.next_frame().await {
                    Some(Ok(ServerFrame::Room(message))) => return Some(message),
                    Some(Ok(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// Waits for the server's close frame (skipping everything else) and returns its code.
    ///
    /// # Panics
    /// Panics after [`FRAME_TIMEOUT`].
    pub async fn expect_close(&mut self) -> Option<u16> {
        within(FRAME_TIMEOUT, async {
            loop {
                match self.next_frame().await {
                    Some(Ok(_)) => continue,
                    Some(Err(frame)) => return frame.map(|frame| u16::from(frame.code)),
                    None => return None,
                }
            }
        })
        .await
    }
}

/// Awaits `future`, panicking with a clear message after `limit`.
pub async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .expect("expected event did not happen in time")
}

/// Polls `check` until it returns true, for at most `limit`.
///
/// # Panics
/// Panics when `check` never held.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition did not hold within {limit:?}");
}

/// A minimal HTTP/1.1 exchange for tests (`Connection: close`), so tests need no HTTP
/// client dependency. Returns the status and the body.
///
/// # Errors
/// I/O errors, or a response that is not HTTP.
pub async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(invalid)?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(invalid)?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size_line, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size_line.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// Publishes through `POST /api/ws/publish` with the test API key; returns the status.
pub async fn publish_http(
    addr: std::net::SocketAddr,
    room: &str,
    event: &str,
    data: serde_json::Value,
) -> u16 {
    let body = serde_json::json!({"room": room, "type": event, "data": data}).to_string();
    let auth = format!("Bearer {TEST_API_KEY}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    http_request(addr, "POST", "/api/ws/publish", &headers, &body)
        .await
        .map(|(status, _)| status)
        .unwrap_or(0)
}

/// Fetches `GET path` and parses the body as JSON.
///
/// # Panics
/// Panics when the request fails or the body is not JSON.
pub async fn get_json(addr: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_request(addr, "GET", path, &[], "")
        .await
        .expect("http request succeeds");
    (status, serde_json::from_str(&body).expect("body is JSON"))
}
