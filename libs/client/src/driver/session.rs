//! Serving one open WebSocket: greeting, resubscription, queue flush, frames in, commands out,
//! and the heartbeat watchdog.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::{ClientMessage, Codec, ErrorCode, ServerFrame, ServerMessage, close_code};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, warn};

use super::renewal::{Renewal, TOKEN_CODES};
use super::{Driver, Served};
use crate::client::{Command, Counters};
use crate::event::{ClientEvent, LostReason};
use crate::state::{ConnectionState, DisconnectReason};
use crate::token::TokenFuture;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a closing handshake may take before the socket is dropped anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A server's `retry_after` is capped so a bogus value cannot park the client for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What the session learned so far about the current connection.
#[derive(Default)]
struct Progress {
    greeted: bool,
    retry_after: Option<Duration>,
    last_error: Option<(ErrorCode, String)>,
    renewal: Renewal,
}

impl Progress {
    fn lost(&self, reason: LostReason) -> Served {
        Served::Lost {
            reason,
            greeted: self.greeted,
            retry_after: self.retry_after,
        }
    }
}

impl Driver {
    /// Serves `socket` until it ends; see [`Served`]. `token_exp` is the `exp` of the
    /// provider's token the connection was opened with (`None`: no in-band renewal).
    pub(super) async fn serve(&mut self, mut socket: Socket, token_exp: Option<u64>) -> Served {
        let timeout = self.settings.heartbeat_timeout;
        let mut progress = Progress::default();
        if let Some(exp) = token_exp {
            progress.renewal.plan(exp);
        }
        let mut last_frame = Instant::now();
        let mut pinged = false;
        // The provider's answer for a refresh, polled here rather than spawned, so it ends
        // with the connection.
        let mut fetching: Option<TokenFuture> = None;
        loop {
            let renewal_due = progress.renewal.due;
            // Any frame proves the connection alive. Half-way to the deadline a `ping` asks
            // the server for one, so an idle but healthy connection is never declared dead.
            let dead_at = last_frame + timeout;
            let ping_at = last_frame + timeout / 2;
            tokio::select! {
                () = sleep_until(dead_at) => {
                    Counters::add(&self.counters.watchdog_timeouts, 1);
                    debug!(?timeout, "no frame within the heartbeat timeout");
                    return progress.lost(LostReason::HeartbeatTimeout);
                }
                () = sleep_until(ping_at), if progress.greeted && !pinged => {
                    pinged = true;
                    if let Err(reason) = self.write(&mut socket, &ClientMessage::Ping).await {
                        return progress.lost(reason);
                    }
                }
                frame = socket.next() => {
                    last_frame = Instant::now();
                    pinged = false;
                    let message = match frame {
                        None => {
                            let reason = "connection ended without a close frame".to_owned();
                            return progress.lost(LostReason::Transport(reason));
                        }
                        Some(Err(error)) => {
                            return progress.lost(LostReason::Transport(error.to_string()));
                        }
                        Some(Ok(message)) => message,
                    };
                    if let Some(served) = self.on_message(&mut socket, &mut progress, message).await {
                        return served;
                    }
                }
                command = self.command_rx.recv() => {
                    if let Some(served) = self.on_command(&mut socket, &progress, command).await {
                        return served;
                    }
                }
                () = sleep_until(renewal_due.unwrap_or_else(Instant::now)),
                    if progress.greeted && renewal_due.is_some() && fetching.is_none() =>
                {
                    progress.renewal.due = None;
                    if let Some(provider) = &self.settings.token_provider {
                        fetching = Some(provider.fetch());
                    }
                }
                fetched = async {
                    match fetching.as_mut() {
                        Some(future) => future.await,
                        None => std::future::pending().await,
                    }
                }, if fetching.is_some() => {
                    fetching = None;
                    match fetched {
                        Ok(token) => {
                            progress.renewal.awaiting_answer = true;
                            if let Err(reason) =
                                self.write(&mut socket, &ClientMessage::Refresh { token }).await
                            {
                                return progress.lost(reason);
                            }
                        }
                        Err(error) => {
                            warn!(error = %error, "token provider failed; refresh retried");
                            progress.renewal.retry();
                        }
                    }
                }
            }
        }
    }

    async fn on_message(
        &mut self,
        socket: &mut Socket,
        progress: &mut Progress,
        message: Message,
    ) -> Option<Served> {
        // Text frames are JSON and binary frames MessagePack, whatever was negotiated.
        let (codec, bytes) = match &message {
            Message::Text(text) => (Codec::Json, text.as_bytes()),
            Message::Binary(bytes) => (Codec::MsgPack, &bytes[..]),
            Message::Close(frame) => {
                let (code, reason) = frame
                    .as_ref()
                    .map(|frame| (u16::from(frame.code), frame.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                // Reading on flushes tungstenite's queued close reply.
                drain_until_closed(socket).await;
                return Some(self.on_server_close(progress, code, reason));
            }
            // tungstenite answers pings itself; the reply goes out with the next read.
            _ => return None,
        };
        let frame = match ServerFrame::decode(codec, bytes) {
            Ok(frame) => frame,
            Err(error) => {
                debug!(error = %error, "undecodable server frame ignored");
                return None;
            }
        };
        match frame {
            ServerFrame::Room(room_message) => {
                if let Some(seq) = room_message.seq {
                    self.last_seq.insert(room_message.room.clone(), seq);
                }
                self.emit(ClientEvent::Room(room_message));
                None
            }
            ServerFrame::Direct(direct_message) => {
                self.emit(ClientEvent::Direct(direct_message));
                None
            }
            ServerFrame::Control(control) => self.on_control(socket, progress, control).await,
        }
    }

    async fn on_control(
        &mut self,
        socket: &mut Socket,
        progress: &mut Progress,
        control: ServerMessage,
    ) -> Option<Served> {
        match control {
            ServerMessage::ConnectionEstablished {
                connection_id,
                server_id,
                ..
            } => {
                if progress.greeted {
                    return None;
                }
                progress.greeted = true;
                Counters::add(&self.counters.connects, 1);
                debug!(%connection_id, %server_id, "connected");
                self.set_state(ConnectionState::Connected {
                    connection_id,
                    server_id,
                });
                if let Err(reason) = self.resubscribe_and_flush(socket).await {
                    return Some(progress.lost(reason));
                }
                None
            }
            ServerMessage::Subscribed { rooms, recovered } => {
                self.emit(ClientEvent::Subscribed { rooms, recovered });
                None
            }
            ServerMessage::Unsubscribed { rooms, reason } => {
                // Rooms the server left on its own (a narrower token) are not joined again.
                if reason.is_some() {
                    self.forget_rooms(&rooms);
                }
                self.emit(ClientEvent::Unsubscribed { rooms, reason });
                None
            }
            ServerMessage::Refreshed { exp } => {
                debug!(exp, "token refreshed");
                progress.renewal.plan(exp);
                self.emit(ClientEvent::TokenRefreshed { exp });
                None
            }
            ServerMessage::Pong { .. } | ServerMessage::Heartbeat { .. } => None,
            ServerMessage::Error {
                code,
                message,
                recoverable,
                room,
                ..
            } => {
                if recoverable && progress.renewal.awaiting_answer && TOKEN_CODES.contains(&code) {
                    warn!(%code, "refreshed token refused; refresh retried");
                    progress.renewal.retry();
                }
                progress.last_error = Some((code, message.clone()));
                self.emit(ClientEvent::Error {
                    code,
                    message,
                    recoverable,
                    room,
                });
                None
            }
            ServerMessage::Command { id, name, params } => {
                self.emit(ClientEvent::Command { id, name, params });
                None
            }
            ServerMessage::Reconnect {
                reason,
                retry_after,
            } => {
                let retry_after = Duration::try_from_secs_f64(retry_after)
                    .unwrap_or(Duration::ZERO)
                    .min(MAX_RETRY_AFTER);
                progress.retry_after = Some(retry_after);
                self.emit(ClientEvent::ReconnectRequested {
                    reason: reason.clone(),
                    retry_after,
                });
                // The server closes right after; closing from this side too honours the
                // request even from a server that forgets to.
                let closed = close_and_drain(socket, CloseCode::Normal).await;
                let (code, close_reason) = closed.unwrap_or((close_code::NORMAL, reason));
                Some(progress.lost(LostReason::ServerClosed {
                    code,
                    reason: close_reason,
                }))
            }
        }
    }

    fn on_server_close(&mut self, progress: &Progress, code: u16, reason: String) -> Served {
        // With a token provider an expired token is not final: the next attempt asks the
        // provider for a new one.
        if code == close_code::TOKEN_EXPIRED && self.settings.token_provider.is_some() {
            return progress.lost(LostReason::ServerClosed { code, reason });
        }
        let refused = [
            close_code::UNAUTHENTICATED,
            close_code::TOKEN_EXPIRED,
            close_code::FORBIDDEN,
        ];
        if refused.contains(&code) {
            let error = progress.last_error.as_ref().map(|(code, _)| *code);
            return Served::Refused(DisconnectReason::Refused {
                code,
                error,
                reason,
            });
        }
        progress.lost(LostReason::ServerClosed { code, reason })
    }

    async fn on_command(
        &mut self,
        socket: &mut Socket,
        progress: &Progress,
        command: Option<Command>,
    ) -> Option<Served> {
        let command = match command {
            None | Some(Command::Close) => {
                close_and_drain(socket, CloseCode::Normal).await;
                return Some(Served::Stopped);
            }
            Some(command) if !progress.greeted => {
                self.apply_offline(command);
                return None;
            }
            Some(command) => command,
        };
        let outcome = match command {
            Command::Subscribe(rooms) => {
                self.rooms.extend(rooms.iter().cloned());
                let message = ClientMessage::Subscribe {
                    rooms,
                    since: None,
                    min_interval_ms: None,
                };
                self.write(socket, &message).await
            }
            Command::Unsubscribe(rooms) => {
                self.forget_rooms(&rooms);
                self.write(socket, &ClientMessage::Unsubscribe { rooms })
                    .await
            }
            Command::Send(message) => {
                let outcome = self.write(socket, &message).await;
                if outcome.is_err() {
                    let dropped = self.queue.push_front(message);
                    self.note_queue(dropped);
                }
                outcome
            }
            Command::Close => Ok(()),
        };
        outcome.err().map(|reason| progress.lost(reason))
    }

    /// Joins every tracked room (with the last seen `seq` per room), then sends what waited
    /// in the offline queue, oldest first.
    async fn resubscribe_and_flush(&mut self, socket: &mut Socket) -> Result<(), LostReason> {
        if !self.rooms.is_empty() {
            let since: BTreeMap<String, u64> = self
                .rooms
                .iter()
                .filter_map(|room| self.last_seq.get(room).map(|seq| (room.clone(), *seq)))
                .collect();
            let subscribe = ClientMessage::Subscribe {
                rooms: self.rooms.iter().cloned().collect(),
                since: (!since.is_empty()).then_some(since),
                min_interval_ms: None,
            };
            self.write(socket, &subscribe).await?;
        }
        while let Some(message) = self.queue.pop() {
            if let Err(reason) = self.write(socket, &message).await {
                let dropped = self.queue.push_front(message);
                self.note_queue(dropped);
                return Err(reason);
            }
        }
        self.note_queue(0);
        Ok(())
    }

    /// Encodes and sends one message; a write that takes longer than the heartbeat timeout
    /// means the connection is dead.
    async fn write(&self, socket: &mut Socket, message: &ClientMessage) -> Result<(), LostReason> {
        let codec = self.settings.codec;
        let bytes = match codec.encode(message) {
            Ok(bytes) => bytes,
            Err(error) => {
                // Only values serde refuses get here; the connection is fine, so the message
                // is dropped rather than the connection.
                warn!(error = %error, "message cannot be encoded; dropped");
                return Ok(());
            }
        };
        let frame = match codec {
            Codec::Json => match String::from_utf8(bytes) {
                Ok(text) => Message::Text(text.into()),
                Err(error) => Message::Binary(error.into_bytes().into()),
            },
            Codec::MsgPack => Message::Binary(bytes.into()),
        };
        match tokio::time::timeout(self.settings.heartbeat_timeout, socket.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(LostReason::Transport(error.to_string())),
            Err(_) => Err(LostReason::Transport("write timed out".to_owned())),
        }
    }
}

/// Sends a close frame with `code` and reads until the server's close (or the end), bounded by
/// [`CLOSE_TIMEOUT`]. Returns the server's close code and reason if one came.
async fn close_and_drain(socket: &mut Socket, code: CloseCode) -> Option<(u16, String)> {
    let frame = CloseFrame {
        code,
        reason: "".into(),
    };
    tokio::time::timeout(CLOSE_TIMEOUT, async {
        let _ = socket.send(Message::Close(Some(frame))).await;
        let mut server_close = None;
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(Some(frame)) = message {
                server_close = Some((u16::from(frame.code), frame.reason.to_string()));
            }
        }
        server_close
    })
    .await
    .ok()
    .flatten()
}

/// Reads until the socket ends, bounded by [`CLOSE_TIMEOUT`], so the close reply is flushed.
async fn drain_until_closed(socket: &mut Socket) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}
