//! How a session ends: farewell frames (error or `reconnect`), the close frame with the
//! documented close code, and the closing handshake that keeps it from being lost.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{SinkExt, StreamExt};
use protocol::{ErrorCode, ServerMessage, close_code};
use rand::Rng;

use super::{EndReason, FAREWELL_TIMEOUT, Session, Socket};
use crate::frames::encode_frame;

/// Close reason, and `bad_input_total` label, of a text frame that is not UTF-8.
const INVALID_UTF8: &str = "invalid_utf8";

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
        use tokio_tungstenite::tungstenite::Error as WsError;
        let error = error.into_inner();
        match error.downcast_ref::<WsError>() {
            Some(WsError::Capacity(_)) => {
                self.count_bad_input(ErrorCode::MessageTooLarge.as_str());
                self.farewell(ErrorCode::MessageTooLarge).await
            }
            // RFC 6455 §8.1: an endpoint that receives a text frame that is not UTF-8 fails
            // the connection with 1007. The frame is not a protocol message at all (no codec
            // ever saw it), so there is no `error` frame, only the close; tungstenite keeps
            // the connection writable after this error, so the close frame goes out.
            Some(WsError::Utf8(_)) => {
                self.count_bad_input(INVALID_UTF8);
                self.send_farewell(None, close_code::INVALID_PAYLOAD, INVALID_UTF8)
                    .await;
                EndReason::Error(ErrorCode::InvalidMessage)
            }
            _ => EndReason::SocketError,
        }
    }

    fn count_bad_input(&self, label: &str) {
        self.shared
            .metrics
            .bad_input
            .with_label_values(&[label])
            .inc();
    }
}
