//! One loader connection: the TCP socket (optionally bound to a source address), the
//! WebSocket handshake with small buffers, the target's setup exchange, and reading
//! delivered messages.

mod nats_ws;
mod switchboard;
mod wire;

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

use crate::{Error, Target};

pub(crate) use nats_ws::NatsParser;
use wire::{DataKind, WireError, WireSocket};

/// Why a connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The TCP connection failed (refused, out of ports or files …).
    #[error("tcp: {0}")]
    Tcp(#[source] std::io::Error),
    /// The WebSocket upgrade or the setup exchange failed.
    #[error("websocket: {0}")]
    Handshake(#[source] WireError),
    /// The server answered the setup with an error.
    #[error("refused: {0}")]
    Refused(String),
    /// The server sent something the setup did not expect.
    #[error("unexpected: {0}")]
    Unexpected(String),
}

/// A WebSocket endpoint with its resolved address.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `host:port` as the `Host` header names it.
    authority: String,
    /// Path and query of the URL (`/` when it has none).
    path: String,
    addr: SocketAddr,
}

impl Endpoint {
    /// Parses and resolves `url` (`ws://host:port[/path]`).
    ///
    /// # Errors
    /// [`Error::Options`] when the URL does not parse or resolve.
    pub(crate) async fn resolve(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Options(format!("url {url:?}: {why}"));
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| bad("only ws:// is supported"))?;
        let (authority, path) = rest
            .find(['/', '?'])
            .map_or((rest, ""), |at| rest.split_at(at));
        if authority.is_empty() {
            return Err(bad("has no host"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                (host, port.parse::<u16>().map_err(|_| bad("bad port"))?)
            }
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
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
        let path = path.trim_end_matches('/');
        let path = match path {
            "" => "/".to_owned(),
            path if path.starts_with('?') => format!("/{path}"),
            path => path.to_owned(),
        };
        Ok(Endpoint {
            authority: authority.to_owned(),
            path,
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
    socket: WireSocket,
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

    /// Reads what has arrived and passes every application message in it to `deliver`
    /// (Switchboard control messages are passed too; the caller tells them apart). Answers
    /// NATS `PING`s and WebSocket pings.
    pub(crate) async fn read_some(&mut self, mut deliver: impl FnMut(&[u8])) -> ReadOutcome {
        let Some(parser) = self.nats.as_mut() else {
            return match self.socket.read(deliver).await {
                Ok(()) => ReadOutcome::Open,
                Err(error) => ReadOutcome::Ended(error.to_string()),
            };
        };
        let mut pings = 0;
        let mut failure = None;
        let read = self
            .socket
            .read(|bytes| {
                let fed = parser.feed(bytes, |op| match op {
                    nats_ws::Op::Msg(payload) => deliver(payload),
                    nats_ws::Op::Ping => pings += 1,
                    nats_ws::Op::Err(text) => {
                        failure = Some(format!("-ERR {}", String::from_utf8_lossy(text)));
                    }
                    _ => {}
                });
                if let Err(error) = fed {
                    failure = Some(error);
                }
            })
            .await;
        if let Err(error) = read {
            return ReadOutcome::Ended(error.to_string());
        }
        if let Some(failure) = failure {
            return ReadOutcome::Ended(failure);
        }
        for _ in 0..pings {
            if let Err(error) = self.socket.send(DataKind::Binary, nats_ws::PONG).await {
                return ReadOutcome::Ended(error.to_string());
            }
        }
        ReadOutcome::Open
    }

    /// Sends a close frame, briefly; the caller drops the connection afterwards.
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.socket.close()).await;
    }
}

/// Opens the TCP connection (bound to `source_ip` when given) and upgrades it to WebSocket
/// at `path` (path and query).
async fn open_websocket(
    endpoint: &Endpoint,
    path: &str,
    source_ip: Option<IpAddr>,
    subprotocol: Option<&'static str>,
) -> Result<WireSocket, ConnectError> {
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
    let stream: TcpStream = socket
        .connect(endpoint.addr)
        .await
        .map_err(ConnectError::Tcp)?;
    stream.set_nodelay(true).map_err(ConnectError::Tcp)?;
    WireSocket::upgrade(stream, &endpoint.authority, path, subprotocol)
        .await
        .map_err(ConnectError::Handshake)
}
