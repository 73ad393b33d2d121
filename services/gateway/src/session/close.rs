//! How a session ends: farewell frames (error or `reconnect`), the close frame with the
//! documented close code, and the closing handshake that keeps it from being lost.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{SinkExt, StreamExt};
use protocol::{ErrorCode, ServerMessage};
use rand::Rng;

use super::{EndReason, FAREWELL_TIMEOUT, Session, Socket};
use crate::frames::encode_frame;

/// Sends `frame` (if any) and a close frame, then reads and discards until the peer's close
/// or [`FAREWELL_TIMEOUT`]. Dropping a socket with unread input makes the kernel answer with
/// a reset, which destroys the close frame in the peer's buffer; draining avoids that.
pub(crate) async fn close_gracefully<S: Socket>(
    socket: &mut S,
    frame: Option<Message>,
    close_code: u16,
    reason: &'static str,
) {
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, async {
        if let Some(frame) = frame
            && socket.feed(frame).await.is_err()
        {
            return;
        }
        let close = CloseFrame {
            code: close_code,
            reason: Utf8Bytes::from_static(reason),
        };
        if socket.send(Message::Close(Some(close))).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = socket.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

impl<S: Socket> Session<S> {
    /// Sends `error` and a close frame with the code's close code, then ends.
    pub(super) async fn farewell(&mut self, code: ErrorCode) -> EndReason {
        let error = encode_frame(self.conn.codec, &ServerMessage::error(code, None))
            .map(|(frame, _)| frame);
        self.send_farewell(error, code.close_code(), code.as_str())
            .await;
        EndReason::Error(code)
    }

    /// Drain: tells the client to reconnect elsewhere after a jittered delay, then closes with 1001.
    pub(super) async fn farewell_reconnect(&mut self) -> EndReason {
        let (min, max) = (
            self.shared.config.reconnect_delay_min,
            self.shared.config.reconnect_delay_max,
        );
        let retry_after = rand::rng().random_range(min.as_secs_f64()..=max.as_secs_f64());
        let reconnect = ServerMessage::Reconnect {
            reason: "server shutting down".to_owned(),
            retry_after: (retry_after * 1000.0).round() / 1000.0,
        };
        let frame = encode_frame(self.conn.codec, &reconnect).map(|(frame, _)| frame);
        let code = ErrorCode::ShuttingDown;
        self.send_farewell(frame, code.close_code(), code.as_str())
            .await;
        EndReason::Error(code)
    }

    pub(super) async fn send_farewell(
        &mut self,
        frame: Option<Message>,
        close_code: u16,
        reason: &'static str,
    ) {
        close_gracefully(&mut self.socket, frame, close_code, reason).await;
    }

    pub(super) async fn on_socket_error(&mut self, error: axum::Error) -> EndReason {
        let too_big = error
            .into_inner()
            .downcast_ref::<tokio_tungstenite::tungstenite::Error>()
            .is_some_and(|inner| {
                matches!(inner, tokio_tungstenite::tungstenite::Error::Capacity(_))
            });
        if too_big {
            self.shared
                .metrics
                .bad_input
                .with_label_values(&[ErrorCode::MessageTooLarge.as_str()])
                .inc();
            return self.farewell(ErrorCode::MessageTooLarge).await;
        }
        EndReason::SocketError
    }
}
