//! Switchboard setup: connect with the JSON subprotocol and a token, wait for
//! `connection_established`, then `subscribe` and wait for `subscribed`.

use futures_util::{SinkExt, StreamExt};
use protocol::{ClientMessage, Codec, ServerFrame, ServerMessage};
use tokio_tungstenite::tungstenite::Message;

use super::{ConnectError, Connection, Setup, Ws, open_websocket};

/// The gateway's WebSocket endpoint, added when the given URL names only host and port.
const CONNECT_PATH: &str = "/api/ws/connect";

pub(super) async fn open(setup: Setup<'_>) -> Result<Connection, ConnectError> {
    let token = setup.token.unwrap_or_default();
    let base = &setup.endpoint.url;
    let request_url = if base.contains(CONNECT_PATH) {
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}token={token}")
    } else {
        format!("{base}{CONNECT_PATH}?token={token}")
    };
    let mut ws = open_websocket(
        setup.endpoint,
        &request_url,
        setup.source_ip,
        Some(Codec::Json.subprotocol()),
    )
    .await?;
    next_control(&mut ws, |message| {
        matches!(message, ServerMessage::ConnectionEstablished { .. })
    })
    .await?;
    if let Some(room) = setup.subscribe_to {
        let subscribe = ClientMessage::Subscribe {
            rooms: vec![room.to_owned()],
            since: None,
        };
        let text = Codec::Json
            .encode(&subscribe)
            .map_err(|error| ConnectError::Unexpected(error.to_string()))?;
        let text =
            String::from_utf8(text).map_err(|error| ConnectError::Unexpected(error.to_string()))?;
        ws.send(Message::Text(text.into()))
            .await
            .map_err(ConnectError::Handshake)?;
        next_control(&mut ws, |message| {
            matches!(message, ServerMessage::Subscribed { .. })
        })
        .await?;
    }
    Ok(Connection { ws, nats: None })
}

/// Reads until a control message `wanted` accepts; an `error` or a close fails the setup,
/// anything else (heartbeats) is passed over.
async fn next_control(
    ws: &mut Ws,
    wanted: impl Fn(&ServerMessage) -> bool,
) -> Result<(), ConnectError> {
    loop {
        let frame = ws
            .next()
            .await
            .ok_or(ConnectError::Closed)?
            .map_err(ConnectError::Handshake)?;
        let bytes: &[u8] = match &frame {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
            Message::Close(close) => {
                return Err(ConnectError::Refused(close.as_ref().map_or_else(
                    || "closed".to_owned(),
                    |close| format!("close {} {}", u16::from(close.code), close.reason),
                )));
            }
            _ => continue,
        };
        match ServerFrame::decode(Codec::Json, bytes) {
            Ok(ServerFrame::Control(message)) if wanted(&message) => return Ok(()),
            Ok(ServerFrame::Control(ServerMessage::Error { code, message, .. })) => {
                return Err(ConnectError::Refused(format!(
                    "{} {message}",
                    code.as_str()
                )));
            }
            Ok(_) => continue,
            Err(error) => return Err(ConnectError::Unexpected(error.to_string())),
        }
    }
}
