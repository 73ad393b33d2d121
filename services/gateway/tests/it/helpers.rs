//! Helpers of the gateway's integration tests: tokens, a raw WebSocket client that shows
//! every frame as it arrived (heartbeats, pings and the frame kind included), a client that
//! never answers anything, and small HTTP and `/metrics` readers.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use auth::test_keys;
use auth::{Claims, Role};
use futures_util::{SinkExt, StreamExt};
use gateway::test_util::{FRAME_TIMEOUT, TestGateway, within};
use protocol::{ClientMessage, Codec, ServerFrame, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Signs `claims` with the secret test gateways accept.
pub fn token(claims: &Claims) -> String {
    test_keys::hs256_token(claims)
}

/// A viewer `sub` that may subscribe to every room and publish to none.
pub fn viewer(sub: &str) -> Claims {
    test_keys::claims(sub)
}

/// A viewer that may also publish to rooms matching `patterns`.
pub fn publisher(sub: &str, patterns: &[&str]) -> Claims {
    let mut claims = viewer(sub);
    claims.publish = patterns.iter().map(|p| (*p).to_owned()).collect();
    claims
}

/// A node agent's claims for `node_id`.
pub fn node(sub: &str, node_id: &str) -> Claims {
    let mut claims = viewer(sub);
    claims.role = Role::Node;
    claims.node_id = Some(node_id.to_owned());
    claims
}

/// Asserts that `timestamp` is RFC 3339 and within a minute of now.
pub fn assert_recent_rfc3339(timestamp: &str) {
    let at = humantime::parse_rfc3339(timestamp)
        .unwrap_or_else(|error| panic!("{timestamp:?} is not RFC 3339: {error}"));
    let now = SystemTime::now();
    let skew = now
        .duration_since(at)
        .unwrap_or_else(|ahead| ahead.duration());
    assert!(
        skew < Duration::from_secs(60),
        "{timestamp} is {skew:?} away from now"
    );
}

/// Polls `attempt` until it yields a value, for at most `limit` (like `eventually`, but
/// keeping what the successful attempt produced).
pub async fn eventually_some<T, F, Fut>(limit: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt succeeded within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A WebSocket client that hands out frames exactly as they arrive. tungstenite answers the
/// server's pings by itself whenever the client reads.
pub struct RawClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The codec this client encodes its messages with.
    pub codec: Codec,
    /// The subprotocol the server selected, if any.
    pub selected_protocol: Option<String>,
}

impl RawClient {
    /// Connects to `gateway` with `token`, offering `codec`'s subprotocol (or none).
    pub async fn connect(gateway: &TestGateway, token: &str, codec: Option<Codec>) -> Self {
        let mut request = gateway
            .ws_url(token)
            .into_client_request()
            .expect("url is a request");
        if let Some(codec) = codec {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static(codec.subprotocol()),
            );
        }
        let (socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("upgrade succeeds");
        let selected_protocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Self {
            socket,
            codec: codec.unwrap_or(Codec::Json),
            selected_protocol,
        }
    }

    /// Encodes `message` with this client's codec: JSON as a text frame, MessagePack binary.
    pub async fn send(&mut self, message: &ClientMessage) {
        let bytes = self.codec.encode(message).expect("client message encodes");
        let frame = match self.codec {
            Codec::Json => Message::Text(String::from_utf8(bytes).expect("JSON is UTF-8").into()),
            Codec::MsgPack => Message::Binary(bytes.into()),
        };
        self.send_frame(frame).await;
    }

    /// Sends one raw frame.
    pub async fn send_frame(&mut self, frame: Message) {
        self.socket.send(frame).await.expect("frame is sent");
    }

    /// Returns the next text, binary or close frame (pings and pongs are passed over),
    /// failing after [`FRAME_TIMEOUT`] or when the connection ends without a close frame.
    pub async fn next_frame(&mut self) -> Message {
        within(FRAME_TIMEOUT, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(frame)) => return frame,
                    other => panic!("connection ended without a close frame: {other:?}"),
                }
            }
        })
        .await
    }

    /// Waits for a pong (other frames are passed over) and returns its payload.
    pub async fn next_pong(&mut self) -> Vec<u8> {
        within(FRAME_TIMEOUT, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Pong(payload))) => return payload.to_vec(),
                    Some(Ok(_)) => continue,
                    other => panic!("connection ended before a pong: {other:?}"),
                }
            }
        })
        .await
    }

    /// Returns the next data frame decoded, heartbeats included; panics on a close frame.
    pub async fn next_decoded(&mut self) -> ServerFrame {
        let frame = self.next_frame().await;
        let bytes = data_bytes(&frame, self.codec);
        ServerFrame::decode(self.codec, &bytes).expect("server frame decodes")
    }

    /// Waits for a control message matching `wanted`, skipping other frames.
    pub async fn next_control(&mut self, wanted: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
        loop {
            if let ServerFrame::Control(message) = self.next_decoded().await
                && wanted(&message)
            {
                return message;
            }
        }
    }

    /// Returns the next room message, skipping control messages.
    pub async fn next_room_message(&mut self) -> protocol::RoomMessage {
        loop {
            if let ServerFrame::Room(message) = self.next_decoded().await {
                return message;
            }
        }
    }

    /// Subscribes to `rooms` and waits for `subscribed`.
    pub async fn subscribe(&mut self, rooms: &[&str]) {
        self.send(&ClientMessage::Subscribe {
            rooms: rooms.iter().map(|room| (*room).to_owned()).collect(),
            since: None,
            min_interval_ms: None,
        })
        .await;
        self.next_control(|m| matches!(m, ServerMessage::Subscribed { .. }))
            .await;
    }

    /// Sends `per_tick` copies of `frame` every `tick` while reading what the server sends,
    /// until the server closes or `limit` passes. Returns the data frames seen and the close
    /// frame's code (`None` when `limit` passed with the connection still open).
    pub async fn flood_until_closed(
        &mut self,
        frame: Message,
        per_tick: usize,
        tick: Duration,
        limit: Duration,
    ) -> (Vec<Message>, Option<u16>) {
        let mut ticker = tokio::time::interval(tick);
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                () = &mut deadline => return (seen, None),
                _ = ticker.tick() => {
                    for _ in 0..per_tick {
                        if self.socket.feed(frame.clone()).await.is_err() {
                            break;
                        }
                    }
                    let _ = self.socket.flush().await;
                }
                incoming = self.socket.next() => match incoming {
                    Some(Ok(Message::Close(close))) => {
                        let code = close.map_or(1005, |close| u16::from(close.code));
                        return (seen, Some(code));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(data)) => seen.push(data),
                    other => panic!("connection ended without a close frame: {other:?}"),
                },
            }
        }
    }

    /// Reads (answering pings) until `duration` has passed; returns every data frame seen and
    /// the number of pings. Panics if the connection ends meanwhile.
    pub async fn read_for(&mut self, duration: Duration) -> (Vec<Message>, usize) {
        let mut frames = Vec::new();
        let mut pings = 0;
        let _ = tokio::time::timeout(duration, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Ping(_))) => pings += 1,
                    Some(Ok(Message::Pong(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        panic!("server closed the connection: {frame:?}")
                    }
                    Some(Ok(frame)) => frames.push(frame),
                    other => panic!("connection ended: {other:?}"),
                }
            }
        })
        .await;
        (frames, pings)
    }
}

/// The payload of a text or binary frame; asserts the frame kind matches `codec`.
pub fn data_bytes(frame: &Message, codec: Codec) -> Vec<u8> {
    match (frame, codec) {
        (Message::Text(text), Codec::Json) => text.as_bytes().to_vec(),
        (Message::Binary(bytes), Codec::MsgPack) => bytes.to_vec(),
        (other, codec) => panic!("unexpected frame for {codec:?}: {other:?}"),
    }
}

/// One WebSocket frame as sent by the server (unmasked).
#[derive(Debug)]
pub struct RawFrame {
    /// The opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong).
    pub opcode: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// A client that completes the WebSocket handshake by hand over raw TCP and then never
/// writes anything, so it never answers a ping and never sends a frame: to the server it
/// looks like a dead peer. [`SilentClient::frames`] reads what the server sent, at the end.
pub struct SilentClient {
    stream: TcpStream,
    received: Vec<u8>,
}

impl SilentClient {
    /// Upgrades `GET /api/ws/connect?token=…` and returns once the greeting arrived.
    pub async fn connect(addr: SocketAddr, token: &str) -> Self {
        Self::upgrade(
            TcpStream::connect(addr).await.expect("tcp connects"),
            addr,
            token,
        )
        .await
    }

    /// Like [`SilentClient::connect`], with a tiny socket receive buffer, so that a few
    /// kilobytes the client does not read fill the connection towards it.
    pub async fn connect_with_small_receive_buffer(addr: SocketAddr, token: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("receive buffer");
        let stream = socket.connect(addr).await.expect("tcp connects");
        Self::upgrade(stream, addr, token).await
    }

    async fn upgrade(mut stream: TcpStream, addr: SocketAddr, token: &str) -> Self {
        let request = format!(
            "GET /api/ws/connect?token={token} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("handshake is sent");
        let mut received = Vec::new();
        let head_end = within(FRAME_TIMEOUT, async {
            loop {
                if let Some(end) = find(&received, b"\r\n\r\n") {
                    return end + 4;
                }
                let mut chunk = [0u8; 1024];
                let read = stream.read(&mut chunk).await.expect("handshake answer");
                assert!(read > 0, "connection closed during the handshake");
                received.extend_from_slice(&chunk[..read]);
            }
        })
        .await;
        let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        received.drain(..head_end);
        // Wait for `connection_established`, so the session is running; read nothing after.
        within(FRAME_TIMEOUT, async {
            while parse_frames(&received).is_empty() {
                let mut chunk = [0u8; 1024];
                let read = stream.read(&mut chunk).await.expect("greeting");
                assert!(read > 0, "connection closed before the greeting");
                received.extend_from_slice(&chunk[..read]);
            }
        })
        .await;
        Self { stream, received }
    }

    /// Sends one client frame with `opcode` (1 text, 2 binary, …) and `payload` exactly as
    /// given: no UTF-8 check, so a text frame may carry bytes a real client would refuse.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        // Client frames are masked; an all-zero mask leaves the payload as it is.
        let mut frame = vec![0x80 | opcode];
        match u16::try_from(payload.len()) {
            Ok(len) if len < 126 => frame.push(0x80 | u8::try_from(len).expect("len < 126")),
            Ok(len) => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&len.to_be_bytes());
            }
            Err(_) => panic!("payload too long for this helper"),
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).await.expect("frame is sent");
    }

    /// Reads until a data frame containing `needle` has arrived (at most [`FRAME_TIMEOUT`]);
    /// what was read stays for [`SilentClient::frames`].
    pub async fn wait_for_text(&mut self, needle: &str) {
        within(FRAME_TIMEOUT, async {
            loop {
                let seen = parse_frames(&self.received)
                    .iter()
                    .any(|frame| find(&frame.payload, needle.as_bytes()).is_some());
                if seen {
                    return;
                }
                let mut chunk = [0u8; 4096];
                let read = self.stream.read(&mut chunk).await.expect("a frame");
                assert!(read > 0, "connection closed while waiting for {needle:?}");
                self.received.extend_from_slice(&chunk[..read]);
            }
        })
        .await;
    }

    /// Sends ping frames (125-byte payloads) until `bytes` were written or a write stalls
    /// for a second because the server stopped reading; returns the bytes written.
    pub async fn flood_pings(&mut self, bytes: usize) -> usize {
        // Client frames are masked; an all-zero mask leaves the payload as it is.
        let mut ping = vec![0x89, 0x80 | 125, 0, 0, 0, 0];
        ping.extend_from_slice(&[b'p'; 125]);
        let chunk: Vec<u8> = ping.repeat(512);
        let mut written = 0;
        while written < bytes {
            match tokio::time::timeout(Duration::from_secs(1), self.stream.write_all(&chunk)).await
            {
                Ok(Ok(())) => written += chunk.len(),
                Ok(Err(_)) | Err(_) => break,
            }
        }
        written
    }

    /// Reads until the server ends the connection (at most [`FRAME_TIMEOUT`]) and returns
    /// every frame it sent.
    pub async fn frames(mut self) -> Vec<RawFrame> {
        within(FRAME_TIMEOUT, async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => self.received.extend_from_slice(&chunk[..read]),
                }
            }
        })
        .await;
        parse_frames(&self.received)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn parse_frames(mut bytes: &[u8]) -> Vec<RawFrame> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        assert_eq!(bytes[1] & 0x80, 0, "server frames are not masked");
        let (len, header) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 if bytes.len() >= 10 => {
                let mut len = [0u8; 8];
                len.copy_from_slice(&bytes[2..10]);
                (
                    usize::try_from(u64::from_be_bytes(len)).expect("length fits"),
                    10,
                )
            }
            126 | 127 => break,
            short => (usize::from(short), 2),
        };
        if bytes.len() < header + len {
            break;
        }
        frames.push(RawFrame {
            opcode,
            payload: bytes[header..header + len].to_vec(),
        });
        bytes = &bytes[header + len..];
    }
    frames
}

/// `GET path` returning the status, the response head (lower-cased) and the body.
pub async fn http_get_with_head(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("tcp connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request is sent");
    let mut response = Vec::new();
    within(FRAME_TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("response is read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status code");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// The `/metrics` text of the gateway at `addr`.
pub async fn metrics_text(addr: SocketAddr) -> String {
    let (status, body) = gateway::test_util::http_request(addr, "GET", "/metrics", &[], "")
        .await
        .expect("metrics are served");
    assert_eq!(status, 200);
    body
}

/// The value of the sample `series` (`name` or `name{label="value"}`) in `text`, if present.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
}

/// The value of `series` on the gateway at `addr` (0 when the series is absent).
pub async fn metric(addr: SocketAddr, series: &str) -> f64 {
    metric_value(&metrics_text(addr).await, series).unwrap_or(0.0)
}

/// Connecting failed at the HTTP stage: returns the status and body of the refusal.
pub fn http_refusal(error: tungstenite::Error) -> (u16, String) {
    match error {
        tungstenite::Error::Http(response) => (
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}
