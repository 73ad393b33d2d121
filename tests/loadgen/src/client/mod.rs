//! One loader connection: the TCP socket (optionally bound to a source address), the
//! WebSocket handshake with small buffers, the target's setup exchange, and reading
//! delivered messages.

mod nats_ws;
mod switchboard;

use std::net::{IpAddr, SocketAddr};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::{Error, Target};

pub(crate) use nats_ws::NatsParser;

type Ws = WebSocketStream<TcpStream>;

/// The read buffer tungstenite allocates per connection up front (its default is 128 KiB);
/// 4 KiB holds about twenty 200-byte messages per read and keeps 19,000 connections small.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// The loader writes only a few small frames (setup, pongs): flush each at once.
const WRITE_BUFFER_BYTES: usize = 0;
/// Must exceed the flush threshold (tungstenite panics otherwise); holds any frame we send.
const MAX_WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Bound on one received message; benchmark messages are a few hundred bytes.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Why a connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The TCP connection failed (refused, out of ports or files …).
    #[error("tcp: {0}")]
    Tcp(#[source] std::io::Error),
    /// The WebSocket upgrade failed.
    #[error("websocket handshake: {0}")]
    Handshake(#[source] tungstenite::Error),
    /// The server answered the setup with an error.
    #[error("refused: {0}")]
    Refused(String),
    /// The server sent something the setup did not expect.
    #[error("unexpected: {0}")]
    Unexpected(String),
    /// The connection ended during setup.
    #[error("closed during setup")]
    Closed,
}

/// A WebSocket endpoint with its resolved address.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    url: String,
    addr: SocketAddr,
}

impl Endpoint {
    /// Parses and resolves `url` (`ws://host:port[/path]`).
    ///
    /// # Errors
    /// [`Error::Options`] when the URL does not parse or resolve.
    pub(crate) async fn resolve(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Options(format!("url {url:?}: {why}"));
        let uri: Uri = url.parse().map_err(|_| bad("does not parse"))?;
        if uri.scheme_str() != Some("ws") {
            return Err(bad("only ws:// is supported"));
        }
        let host = uri.host().ok_or_else(|| bad("has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| bad("does not resolve"))?
            .collect();
        let addr = addrs
            .iter()
            .find(|addr| addr.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| bad("resolves to nothing"))?;
        Ok(Endpoint {
            url: url.trim_end_matches('/').to_owned(),
            addr,
        })
    }
}

/// What one connection needs to set itself up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup<'a> {
    pub(crate) target: Target,
    pub(crate) endpoint: &'a Endpoint,
    pub(crate) source_ip: Option<IpAddr>,
    /// Switchboard: the JWT.
    pub(crate) token: Option<&'a str>,
    /// nats-ws: `auth_token` in CONNECT.
    pub(crate) nats_token: Option<&'a str>,
    /// Switchboard: the room; nats-ws: the subject. `None` connects without subscribing.
    pub(crate) subscribe_to: Option<&'a str>,
}

/// An established, optionally subscribed, connection.
pub(crate) struct Connection {
    ws: Ws,
    /// The NATS protocol state; `None` for Switchboard, where one frame is one message.
    nats: Option<NatsParser>,
}

/// What [`Connection::read_some`] saw.
#[derive(Debug)]
pub(crate) enum ReadOutcome {
    /// Frames were read; the connection is open.
    Open,
    /// The server closed the connection or it failed; the text says how.
    Ended(String),
}

impl Connection {
    /// Connects and runs the target's setup: for Switchboard up to `connection_established`
    /// (and `subscribed`), for nats-server up to the `PONG` after `CONNECT` (and `SUB`).
    pub(crate) async fn open(setup: Setup<'_>) -> Result<Self, ConnectError> {
        match setup.target {
            Target::Switchboard => switchboard::open(setup).await,
            Target::NatsWs => nats_ws::open(setup).await,
        }
    }

    /// Reads the next frame and passes every application message in it to `deliver`
    /// (Switchboard control messages are passed too; the caller tells them apart). Answers
    /// NATS `PING`s; tungstenite answers WebSocket pings by itself while reading.
    pub(crate) async fn read_some(&mut self, mut deliver: impl FnMut(&[u8])) -> ReadOutcome {
        let frame = match self.ws.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => return ReadOutcome::Ended(error.to_string()),
            None => return ReadOutcome::Ended("connection closed".to_owned()),
        };
        let bytes: &[u8] = match &frame {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
            Message::Close(close) => {
                let why = close.as_ref().map_or_else(
                    || "close frame".to_owned(),
                    |close| format!("close {} {}", u16::from(close.code), close.reason),
                );
                return ReadOutcome::Ended(why);
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return ReadOutcome::Open,
        };
        let Some(parser) = self.nats.as_mut() else {
            deliver(bytes);
            return ReadOutcome::Open;
        };
        let mut pings = 0;
        let mut server_error = None;
        let fed = parser.feed(bytes, |op| match op {
            nats_ws::Op::Msg(payload) => deliver(payload),
            nats_ws::Op::Ping => pings += 1,
            nats_ws::Op::Err(text) => {
                server_error = Some(String::from_utf8_lossy(text).into_owned())
            }
            _ => {}
        });
        if let Err(error) = fed {
            return ReadOutcome::Ended(error);
        }
        if let Some(error) = server_error {
            return ReadOutcome::Ended(format!("-ERR {error}"));
        }
        for _ in 0..pings {
            if let Err(error) = self.ws.send(nats_ws::pong()).await {
                return ReadOutcome::Ended(error.to_string());
            }
        }
        ReadOutcome::Open
    }

    /// Sends a close frame, briefly; the caller drops the connection afterwards.
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.ws.close(None)).await;
    }
}

/// Opens the TCP connection (bound to `source_ip` when given) and upgrades it to WebSocket.
async fn open_websocket(
    endpoint: &Endpoint,
    request_url: &str,
    source_ip: Option<IpAddr>,
    subprotocol: Option<&'static str>,
) -> Result<Ws, ConnectError> {
    let mut request = request_url
        .into_client_request()
        .map_err(ConnectError::Handshake)?;
    if let Some(subprotocol) = subprotocol {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(subprotocol),
        );
    }
    let socket = if endpoint.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(ConnectError::Tcp)?;
    if let Some(source_ip) = source_ip {
        // Lets a source port whose earlier connection lingers in TIME_WAIT be bound again.
        socket.set_reuseaddr(true).map_err(ConnectError::Tcp)?;
        socket
            .bind(SocketAddr::new(source_ip, 0))
            .map_err(ConnectError::Tcp)?;
    }
    let stream = socket
        .connect(endpoint.addr)
        .await
        .map_err(ConnectError::Tcp)?;
    stream.set_nodelay(true).map_err(ConnectError::Tcp)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config))
            .await
            .map_err(ConnectError::Handshake)?;
    Ok(ws)
}
