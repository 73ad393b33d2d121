//! The NATS text protocol over WebSocket frames, client side: `INFO` → `CONNECT` (+ `SUB`) +
//! `PING` → `PONG`, then `MSG`s. A frame may hold several protocol messages or part of one,
//! so [`NatsParser`] keeps what is left of an incomplete message for the next frame.

use super::wire::{DataKind, WireError, WireSocket};
use super::{ConnectError, Connection, Setup, open_websocket};
use crate::payload::find;

/// The subscription id of the one subscription a loader connection holds.
const SID: u32 = 1;
/// An incomplete protocol message larger than this is a broken stream, not a slow one.
const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

/// One server protocol message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Op<'a> {
    /// `INFO {json}`.
    Info(&'a [u8]),
    /// The payload of a `MSG <subject> <sid> [reply] <len>`.
    Msg(&'a [u8]),
    /// `PING`: answer with `PONG`.
    Ping,
    /// `PONG`: the answer to our `PING`.
    Pong,
    /// `+OK` (only in verbose mode).
    Ok,
    /// `-ERR '<text>'`.
    Err(&'a [u8]),
    /// Anything else.
    Other(&'a [u8]),
}

/// Splits the server's byte stream into protocol messages.
#[derive(Debug, Default)]
pub(crate) struct NatsParser {
    pending: Vec<u8>,
}

impl NatsParser {
    /// Parses `bytes` after what was left over, calling `on_op` for every complete message.
    ///
    /// # Errors
    /// A description when the stream cannot be NATS protocol.
    pub(super) fn feed(
        &mut self,
        bytes: &[u8],
        mut on_op: impl FnMut(Op<'_>),
    ) -> Result<(), String> {
        if self.pending.is_empty() {
            // The usual case: whole messages in one frame, parsed without copying.
            let used = parse_ops(bytes, &mut on_op)?;
            self.pending.extend_from_slice(&bytes[used..]);
        } else {
            self.pending.extend_from_slice(bytes);
            let used = parse_ops(&self.pending, &mut on_op)?;
            self.pending.drain(..used);
        }
        if self.pending.len() > MAX_PENDING_BYTES {
            return Err("nats protocol message too large".to_owned());
        }
        Ok(())
    }
}

/// Parses complete messages at the start of `data`; returns how many bytes they took.
fn parse_ops(data: &[u8], on_op: &mut impl FnMut(Op<'_>)) -> Result<usize, String> {
    let mut position = 0;
    while let Some(line_length) = find(&data[position..], b"\r\n") {
        let line = &data[position..position + line_length];
        let body_start = position + line_length + 2;
        let verb_end = line
            .iter()
            .position(|byte| *byte == b' ')
            .unwrap_or(line.len());
        let verb = &line[..verb_end];
        let rest = line.get(verb_end + 1..).unwrap_or_default();
        if verb.eq_ignore_ascii_case(b"MSG") {
            let length: usize = rest
                .rsplit(|byte| *byte == b' ')
                .find(|field| !field.is_empty())
                .and_then(|field| std::str::from_utf8(field).ok())
                .and_then(|field| field.parse().ok())
                .ok_or_else(|| format!("bad MSG line {:?}", String::from_utf8_lossy(line)))?;
            let body_end = body_start + length;
            if data.len() < body_end + 2 {
                break;
            }
            on_op(Op::Msg(&data[body_start..body_end]));
            position = body_end + 2;
            continue;
        }
        let op = if verb.eq_ignore_ascii_case(b"PING") {
            Op::Ping
        } else if verb.eq_ignore_ascii_case(b"PONG") {
            Op::Pong
        } else if verb.eq_ignore_ascii_case(b"+OK") {
            Op::Ok
        } else if verb.eq_ignore_ascii_case(b"-ERR") {
            Op::Err(rest)
        } else if verb.eq_ignore_ascii_case(b"INFO") {
            Op::Info(rest)
        } else {
            Op::Other(line)
        };
        on_op(op);
        position = body_start;
    }
    Ok(position)
}

/// The answer to a server `PING`.
pub(super) const PONG: &[u8] = b"PONG\r\n";

pub(super) async fn open(setup: Setup<'_>) -> Result<Connection, ConnectError> {
    let mut ws =
        open_websocket(setup.endpoint, &setup.endpoint.path, setup.source_ip, None).await?;
    let mut parser = NatsParser::default();
    wait_for(&mut ws, &mut parser, |op| matches!(op, Op::Info(_))).await?;
    let mut connect = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "protocol": 1,
        "headers": false,
        "no_responders": false,
        "lang": "rust",
        "name": "loadgen",
    });
    if let Some(token) = setup.nats_token {
        connect["auth_token"] = serde_json::Value::from(token);
    }
    let mut commands = format!("CONNECT {connect}\r\n");
    if let Some(subject) = setup.subscribe_to {
        commands.push_str(&format!("SUB {subject} {SID}\r\n"));
    }
    // The PONG to this PING proves CONNECT was accepted and SUB registered.
    commands.push_str("PING\r\n");
    ws.send(DataKind::Binary, commands.as_bytes())
        .await
        .map_err(ConnectError::Handshake)?;
    wait_for(&mut ws, &mut parser, |op| matches!(op, Op::Pong)).await?;
    Ok(Connection {
        socket: ws,
        nats: Some(parser),
    })
}

/// Reads until a protocol message `wanted` accepts; `-ERR` or a close fails the setup,
/// server `PING`s are answered.
async fn wait_for(
    ws: &mut WireSocket,
    parser: &mut NatsParser,
    wanted: impl Fn(&Op<'_>) -> bool,
) -> Result<(), ConnectError> {
    loop {
        let (mut found, mut pings, mut refused, mut broken) = (false, 0, None, None);
        ws.read(|bytes| {
            let fed = parser.feed(bytes, |op| {
                if wanted(&op) {
                    found = true;
                }
                match op {
                    Op::Ping => pings += 1,
                    Op::Err(text) => refused = Some(String::from_utf8_lossy(text).into_owned()),
                    _ => {}
                }
            });
            if let Err(error) = fed {
                broken = Some(error);
            }
        })
        .await
        .map_err(|error| match error {
            WireError::Closed { code, reason } => {
                ConnectError::Refused(format!("close {code} {reason}"))
            }
            other => ConnectError::Handshake(other),
        })?;
        if let Some(error) = broken {
            return Err(ConnectError::Unexpected(error));
        }
        if let Some(text) = refused {
            return Err(ConnectError::Refused(text));
        }
        for _ in 0..pings {
            ws.send(DataKind::Binary, PONG)
                .await
                .map_err(ConnectError::Handshake)?;
        }
        if found {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(parser: &mut NatsParser, bytes: &[u8]) -> Vec<String> {
        let mut seen = Vec::new();
        parser
            .feed(bytes, |op| {
                seen.push(match op {
                    Op::Msg(payload) => format!("msg {}", String::from_utf8_lossy(payload)),
                    Op::Err(text) => format!("err {}", String::from_utf8_lossy(text)),
                    other => format!("{other:?}"),
                })
            })
            .unwrap();
        seen
    }

    #[test]
    fn several_messages_in_one_frame_are_all_parsed() {
        let mut parser = NatsParser::default();
        let seen = ops(
            &mut parser,
            b"INFO {\"a\":1}\r\nMSG s 1 3\r\nabc\r\nPING\r\nMSG s 1 r 2\r\nhi\r\n",
        );
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[1], "msg abc");
        assert_eq!(seen[2], "Ping");
        assert_eq!(seen[3], "msg hi");
        assert!(parser.pending.is_empty());
    }

    #[test]
    fn a_message_split_over_frames_is_reassembled() {
        let mut parser = NatsParser::default();
        assert!(ops(&mut parser, b"MSG s 1 10\r\n01234").is_empty());
        assert!(ops(&mut parser, b"567").is_empty());
        assert_eq!(ops(&mut parser, b"89\r\nPO"), ["msg 0123456789"]);
        assert_eq!(ops(&mut parser, b"NG\r\n"), ["Pong"]);
        assert!(parser.pending.is_empty());
    }

    #[test]
    fn payload_may_contain_line_breaks() {
        let mut parser = NatsParser::default();
        assert_eq!(
            ops(&mut parser, b"MSG s 1 4\r\n\r\n\r\n\r\n"),
            ["msg \r\n\r\n"]
        );
    }

    #[test]
    fn errors_are_reported_and_garbage_lengths_refused() {
        let mut parser = NatsParser::default();
        assert_eq!(
            ops(&mut parser, b"-ERR 'Authorization Violation'\r\n"),
            ["err 'Authorization Violation'"]
        );
        assert!(
            NatsParser::default()
                .feed(b"MSG s 1 x\r\n", |_| {})
                .is_err()
        );
    }
}
