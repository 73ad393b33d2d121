//! Switchboard setup: connect with the JSON subprotocol and a token, wait for
//! `connection_established`, then `subscribe` and wait for `subscribed`.

use protocol::{ClientMessage, Codec, ServerFrame, ServerMessage};

use super::wire::{DataKind, WireSocket};
use super::{ConnectError, Connection, Setup, open_websocket};

/// The gateway's WebSocket endpoint, added when the given URL names only host and port.
const CONNECT_PATH: &str = "/api/ws/connect";

pub(super) async fn open(setup: Setup<'_>) -> Result<Connection, ConnectError> {
    let token = setup.token.unwrap_or_default();
    let base = &setup.endpoint.path;
    let path = if base.contains(CONNECT_PATH) {
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}token={token}")
    } else {
        format!("{CONNECT_PATH}?token={token}")
    };
    let mut socket = open_websocket(
        setup.endpoint,
        &path,
        setup.source_ip,
        Some(Codec::Json.subprotocol()),
    )
    .await?;
    next_control(&mut socket, |message| {
        matches!(message, ServerMessage::ConnectionEstablished { .. })
    })
    .await?;
    if let Some(room) = setup.subscribe_to {
        let subscribe = ClientMessage::Subscribe {
            rooms: vec![room.to_owned()],
            since: None,
            min_interval_ms: None,
        };
        let text = Codec::Json
            .encode(&subscribe)
            .map_err(|error| ConnectError::Unexpected(error.to_string()))?;
        socket
            .send(DataKind::Text, &text)
            .await
            .map_err(ConnectError::Handshake)?;
        next_control(&mut socket, |message| {
            matches!(message, ServerMessage::Subscribed { .. })
        })
        .await?;
    }
    Ok(Connection { socket, nats: None })
}

/// Reads until a control message `wanted` accepts; an `error` or a close fails the setup,
/// anything else (heartbeats) is passed over.
async fn next_control(
    socket: &mut WireSocket,
    wanted: impl Fn(&ServerMessage) -> bool,
) -> Result<(), ConnectError> {
    loop {
        let mut verdict: Option<Result<(), ConnectError>> = None;
        socket
            .read(|bytes| {
                if verdict.is_some() {
                    return;
                }
                verdict = match ServerFrame::decode(Codec::Json, bytes) {
                    Ok(ServerFrame::Control(message)) if wanted(&message) => Some(Ok(())),
                    Ok(ServerFrame::Control(ServerMessage::Error { code, message, .. })) => {
                        Some(Err(ConnectError::Refused(format!(
                            "{} {message}",
                            code.as_str()
                        ))))
                    }
                    Ok(_) => None,
                    Err(error) => Some(Err(ConnectError::Unexpected(error.to_string()))),
                };
            })
            .await
            .map_err(|error| match error {
                super::wire::WireError::Closed { code, reason } => {
                    ConnectError::Refused(format!("close {code} {reason}"))
                }
                other => ConnectError::Handshake(other),
            })?;
        if let Some(verdict) = verdict {
            return verdict;
        }
    }
}
