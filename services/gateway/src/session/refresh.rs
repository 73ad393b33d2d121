//! In-band token renewal: `refresh {token}` replaces the connection's claims and expiry.
//!
//! The new token is verified exactly as at the upgrade and must name the connection's `sub`
//! and `node_id`: a connection is one identity for its whole life (the store's record, the
//! per-user limits and a node's command route are keyed by them). Rooms the new claims no
//! longer allow are left at once, so narrowing a token takes effect without a reconnect.

use auth::Claims;
use protocol::{ErrorCode, ServerMessage};
use tracing::debug;

use super::{Session, Socket};
use crate::presence::PresenceOp;

impl<S: Socket> Session<S> {
    /// Handles `refresh`: answers `refreshed`, or an `error` (with `recoverable: true`, since
    /// the connection stays on its old token) when the token is refused.
    pub(super) async fn refresh(&mut self, token: String) {
        let claims = match crate::handshake::verify_token(&self.shared, Some(&token)).await {
            Ok(claims) => claims,
            Err(code) => return self.refuse_refresh(code),
        };
        if claims.sub != self.claims.sub || claims.node_id != self.claims.node_id {
            return self.refuse_refresh(ErrorCode::TokenSubjectMismatch);
        }
        let left = self.leave_rooms_not_allowed_by(&claims);
        if !left.is_empty() {
            self.send_control(&ServerMessage::Unsubscribed {
                rooms: left,
                reason: Some(ErrorCode::Forbidden),
            });
        }
        let exp = claims.exp;
        debug!(old_exp = self.claims.exp, new_exp = exp, "token refreshed");
        self.claims = claims;
        self.shared
            .metrics
            .token_refreshes
            .with_label_values(&["accepted"])
            .inc();
        self.send_control(&ServerMessage::Refreshed { exp });
    }

    fn refuse_refresh(&self, code: ErrorCode) {
        self.shared
            .metrics
            .token_refreshes
            .with_label_values(&[code.as_str()])
            .inc();
        self.send_control(&ServerMessage::Error {
            code,
            message: code.description().to_owned(),
            recoverable: true,
            room: None,
            timestamp: protocol::time::now_rfc3339(),
        });
    }

    /// Leaves every joined room `claims` does not allow; returns them, sorted.
    fn leave_rooms_not_allowed_by(&mut self, claims: &Claims) -> Vec<String> {
        let mut forbidden: Vec<String> = self
            .rooms
            .iter()
            .filter(|room| !claims.can_subscribe(room))
            .cloned()
            .collect();
        forbidden.sort_unstable();
        let shared = self.shared.clone();
        for room in &forbidden {
            self.rooms.remove(room);
            shared.fanout.leave(room, self.conn.key);
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
        forbidden
    }
}
