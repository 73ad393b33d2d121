//! Handling of client messages: subscribe, unsubscribe, ping, publish, node_state, ack
//! (`refresh` is in `refresh.rs`).

use axum::extract::ws::Message;
use bus::Headers;
use futures_util::SinkExt;
use protocol::envelope::{HEADER_ORIGIN_SERVER, HEADER_TRACEPARENT, encode_bus};
use protocol::{
    Ack, ClientMessage, Codec, ErrorCode, NodeState, RoomEnvelope, RoomName, ServerMessage,
};
use serde_json::Value;

use super::{EndReason, Kind, Session, Socket};
use crate::conflate::{Delivery, Render};
use crate::presence::PresenceOp;

impl<S: Socket> Session<S> {
    /// Handles one inbound frame; returns a reason when the session must end.
    pub(super) async fn on_frame(&mut self, frame: Message) -> Option<EndReason> {
        self.conn.touch();
        let meter = self.conn.meter.as_deref();
        if let (Some(meter), Message::Text(_) | Message::Binary(_)) = (meter, &frame) {
            meter.count_in();
        }
        match frame {
            // Text frames are JSON and binary frames MessagePack, whatever was negotiated.
            Message::Text(text) => self.on_data(Codec::Json, text.as_bytes()).await,
            Message::Binary(bytes) => self.on_data(Codec::MsgPack, &bytes).await,
            // The answer to the heartbeat's ping: a round trip on a node connection.
            Message::Pong(payload) => {
                if let Some(meter) = meter {
                    meter.on_pong(&payload);
                }
                None
            }
            // tungstenite queues the pong and sends it on the next read without blocking;
            // awaiting a flush here would stall the session on a peer that does not read.
            Message::Ping(_) => None,
            // Send the close reply tungstenite queued (bounded: the peer may not read).
            Message::Close(_) => {
                let _ = tokio::time::timeout(super::FAREWELL_TIMEOUT, self.socket.flush()).await;
                Some(EndReason::ClientClosed)
            }
        }
    }

    async fn on_data(&mut self, codec: Codec, bytes: &[u8]) -> Option<EndReason> {
        if !self.admit_message() {
            return None;
        }
        // Seed 003's health check sends a bare `ping` text frame.
        if codec == Codec::Json && bytes == b"ping" {
            self.send_control(&ServerMessage::Pong {
                timestamp: protocol::time::now_rfc3339(),
            });
            return None;
        }
        let message = match codec.decode_client(bytes) {
            // Seed 003's endpoints take nothing but `ping` (bare, or as a protocol message).
            Ok(ClientMessage::Ping) if self.kind != Kind::Protocol => {
                self.send_control(&ServerMessage::Pong {
                    timestamp: protocol::time::now_rfc3339(),
                });
                return None;
            }
            Ok(_) if self.kind != Kind::Protocol => {
                self.reject(ErrorCode::UnknownType, None);
                return None;
            }
            Ok(message) => message,
            Err(error) => {
                let code = error.code();
                self.shared
                    .metrics
                    .bad_input
                    .with_label_values(&[code.as_str()])
                    .inc();
                self.send_error(code, None);
                return None;
            }
        };
        self.shared
            .metrics
            .messages_in
            .with_label_values(&[message_type(&message)])
            .inc();
        match message {
            ClientMessage::Subscribe {
                rooms,
                since,
                min_interval_ms,
            } => {
                self.subscribe(rooms, since.is_some(), min_interval_ms)
                    .await
            }
            ClientMessage::Unsubscribe { rooms } => self.unsubscribe(rooms),
            ClientMessage::Ping => {
                self.send_control(&ServerMessage::Pong {
                    timestamp: protocol::time::now_rfc3339(),
                });
            }
            ClientMessage::Publish { room, event, data } => self.publish(room, event, data).await,
            ClientMessage::NodeState(state) => self.node_state(state).await,
            ClientMessage::Ack(ack) => self.ack(ack),
            ClientMessage::Refresh { token } => self.refresh(token).await,
        }
        None
    }

    fn reject(&self, code: ErrorCode, room: Option<String>) {
        self.shared
            .metrics
            .bad_input
            .with_label_values(&[code.as_str()])
            .inc();
        self.send_error(code, room);
    }

    async fn subscribe(
        &mut self,
        rooms: Vec<String>,
        asked_recovery: bool,
        min_interval_ms: Option<u64>,
    ) {
        let shared = self.shared.clone();
        let delivery = match self.delivery(min_interval_ms) {
            Ok(delivery) => delivery,
            Err(message) => {
                self.shared
                    .metrics
                    .bad_input
                    .with_label_values(&[ErrorCode::InvalidMessage.as_str()])
                    .inc();
                self.send_control(&ServerMessage::Error {
                    code: ErrorCode::InvalidMessage,
                    message,
                    recoverable: true,
                    room: None,
                    timestamp: protocol::time::now_rfc3339(),
                });
                return;
            }
        };
        let mut joined = Vec::with_capacity(rooms.len());
        for raw in rooms {
            let Ok(room) = RoomName::parse(&raw) else {
                self.reject(ErrorCode::InvalidRoom, Some(raw));
                continue;
            };
            if !self.claims.can_subscribe(room.as_str()) {
                self.reject(ErrorCode::Forbidden, Some(raw));
                continue;
            }
            if self.rooms.contains(room.as_str()) {
                // Subscribing again sets the room's rate anew (a no-op when unchanged).
                if shared
                    .fanout
                    .join(&room, &self.conn, delivery)
                    .await
                    .is_err()
                {
                    self.send_error(ErrorCode::Unavailable, Some(raw));
                    continue;
                }
                joined.push(raw);
                continue;
            }
            if self.rooms.len() >= shared.config.max_rooms_per_connection {
                self.reject(ErrorCode::Forbidden, Some(raw));
                continue;
            }
            if shared
                .fanout
                .join(&room, &self.conn, delivery)
                .await
                .is_err()
            {
                self.send_error(ErrorCode::Unavailable, Some(raw));
                continue;
            }
            self.rooms.insert(raw.clone());
            self.conn
                .room_count
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            shared.presence.submit(
                PresenceOp::Join {
                    connection_id: self.conn.connection_id.clone(),
                    room: raw.clone(),
                },
                &shared.metrics,
            );
            joined.push(raw);
        }
        if !joined.is_empty() {
            // No room has history yet, so a requested recovery is always reported as incomplete.
            let recovered = asked_recovery.then_some(false);
            self.send_control(&ServerMessage::Subscribed {
                rooms: joined,
                recovered,
            });
        }
    }

    /// How `subscribe`'s `min_interval_ms` asks rooms to be delivered, or why it is refused.
    fn delivery(&self, min_interval_ms: Option<u64>) -> Result<Delivery, String> {
        let Some(ms) = min_interval_ms.filter(|ms| *ms > 0) else {
            return Ok(Delivery::Every);
        };
        let floor = protocol::message::MIN_DELIVERY_INTERVAL_MS;
        let ceiling =
            u64::try_from(self.shared.config.max_delivery_interval.as_millis()).unwrap_or(u64::MAX);
        if !(floor..=ceiling).contains(&ms) {
            return Err(format!(
                "min_interval_ms must be 0 (every message) or from {floor} to {ceiling}"
            ));
        }
        Ok(Delivery::Conflated {
            interval: std::time::Duration::from_millis(ms),
            render: Render::Room,
        })
    }

    fn unsubscribe(&mut self, rooms: Vec<String>) {
        let shared = self.shared.clone();
        let mut left = Vec::with_capacity(rooms.len());
        for room in rooms {
            if RoomName::parse(&room).is_err() {
                self.reject(ErrorCode::InvalidRoom, Some(room));
                continue;
            }
            if self.rooms.remove(&room) {
                shared.fanout.leave(&room, self.conn.key);
                self.conn
                    .room_count
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                shared.presence.submit(
                    PresenceOp::Leave {
                        connection_id: self.conn.connection_id.clone(),
                        room: room.clone(),
                    },
                    &shared.metrics,
                );
            }
            left.push(room);
        }
        if !left.is_empty() {
            self.send_control(&ServerMessage::Unsubscribed {
                rooms: left,
                reason: None,
            });
        }
    }

    async fn publish(&mut self, raw_room: String, event: String, data: Value) {
        let Ok(room) = RoomName::parse(&raw_room) else {
            return self.reject(ErrorCode::InvalidRoom, Some(raw_room));
        };
        if !self.claims.can_publish(room.as_str()) {
            return self.reject(ErrorCode::Forbidden, Some(raw_room));
        }
        if !protocol::message::is_valid_event_name(&event) {
            return self.reject(ErrorCode::InvalidMessage, Some(raw_room));
        }
        let envelope = RoomEnvelope {
            event,
            data,
            timestamp: Some(protocol::time::now_rfc3339()),
            seq: None,
            priority: None,
        };
        let Ok(payload) = encode_bus(&envelope) else {
            return self.reject(ErrorCode::InvalidMessage, Some(raw_room));
        };
        let subject = self.shared.subjects.room(&room);
        let headers = self.bus_headers();
        if self
            .shared
            .bus
            .publish_with_headers(&subject, headers, payload.into())
            .await
            .is_err()
        {
            self.send_error(ErrorCode::Unavailable, Some(raw_room));
        }
    }

    async fn node_state(&mut self, state: NodeState) {
        // The spec (`node_state.schema.json`, `error-codes.md`): only a token carrying a
        // `node_id` equal to the report's may send it, whatever its role; an admin token
        // without one may not speak for every node (an operator tool gets a node token).
        let allowed = self.claims.node_id.as_deref() == Some(state.node_id.as_str());
        if !allowed {
            return self.reject(ErrorCode::Forbidden, None);
        }
        if protocol::room::validate_node_id(&state.node_id).is_err() {
            return self.reject(ErrorCode::InvalidMessage, None);
        }
        let Ok(payload) = encode_bus(&state) else {
            return self.reject(ErrorCode::InvalidMessage, None);
        };
        let subject = self.shared.subjects.ingest_node(&state.node_id);
        let headers = self.bus_headers();
        if self
            .shared
            .bus
            .publish_with_headers(&subject, headers, payload.into())
            .await
            .is_err()
        {
            self.send_error(ErrorCode::Unavailable, None);
        }
    }

    fn ack(&mut self, ack: Ack) {
        let resolved = self.node.as_ref().is_some_and(|link| link.resolve(ack));
        if !resolved {
            tracing::debug!("ack for an unknown or expired command ignored");
        }
    }

    fn bus_headers(&self) -> Headers {
        let mut headers = Headers::new();
        headers.insert(HEADER_ORIGIN_SERVER, &self.shared.server_id);
        if let Some(traceparent) = telemetry::current_traceparent() {
            headers.insert(HEADER_TRACEPARENT, &traceparent);
        }
        headers
    }
}

fn message_type(message: &ClientMessage) -> &'static str {
    match message {
        ClientMessage::Subscribe { .. } => "subscribe",
        ClientMessage::Unsubscribe { .. } => "unsubscribe",
        ClientMessage::Ping => "ping",
        ClientMessage::Publish { .. } => "publish",
        ClientMessage::NodeState(_) => "node_state",
        ClientMessage::Ack(_) => "ack",
        ClientMessage::Refresh { .. } => "refresh",
    }
}
