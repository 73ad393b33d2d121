//! One ML node's worker: owns the WebSocket connection to the node, reconnects every 3-5 s
//! (jittered) while the node's work is started, and turns frames into stored batches and
//! acks.
//!
//! A connection is served by one task holding both halves of the socket: it reads frames,
//! keeps up to `max_in_flight` batches being stored at once (further frames stay unread in
//! the socket, which pushes back on the node), and writes each ack as soon as its batch is
//! stored. Acks may leave in a different order than the frames came; the node matches them
//! by `id`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use protocol::batch::{BatchAck, BatchFrame, ConnectionState, REFUSED_CLOSE_CODE};
use rand::Rng;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::NodeStatus;
use crate::pipeline::{Delivery, Path, Pipeline};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What every worker needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSettings {
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub connect_timeout: Duration,
    pub max_batch_bytes: usize,
    pub max_in_flight: usize,
    /// How long a stopping connection waits for its in-flight batches before closing.
    pub drain_timeout: Duration,
    /// TLS of `wss://` nodes (platform roots plus `batch_ingest.tls_ca_file`); `None` when
    /// no root is available at all.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A batch's attempt id, when it arrived, and whether it is now stored (so to acknowledge).
type Stored = (String, Instant, bool);

/// How one connection ended.
enum End {
    /// The node closed with 1008 (another client, PoW not running).
    Refused(String),
    /// The node closed, or the socket failed.
    Lost(String),
    /// The worker was stopped.
    Stopped,
}

/// Runs the worker until `stop` is cancelled. Waits for `previous` first: a worker that was
/// stopped and started again must not race its predecessor's connection (the node accepts
/// one client at a time).
pub(crate) async fn run(
    status: Arc<NodeStatus>,
    pipeline: Pipeline,
    settings: WorkerSettings,
    previous: Option<JoinHandle<()>>,
    stop: CancellationToken,
) {
    if let Some(previous) = previous {
        // A join error only means the predecessor panicked or was aborted: it is gone.
        let _ = previous.await;
    }
    let node = status.id.as_str();
    #[cfg(feature = "test-util")]
    if status.url.ends_with(crate::test_util::PANIC_NODE_PATH) {
        panic!("injected fault in the ml node worker of {node}");
    }
    while !stop.is_cancelled() {
        status.report(&pipeline, ConnectionState::Connecting);
        let end = match connect(&status.url, &settings).await {
            Ok(socket) => {
                status.report(&pipeline, ConnectionState::Connected);
                pipeline
                    .metrics()
                    .node_connects
                    .with_label_values(&[node])
                    .inc();
                info!(node, url = %status.url, "connected to ml node");
                serve(socket, &status, &pipeline, &settings, &stop).await
            }
            Err(error) => End::Lost(error),
        };
        let cause = match &end {
            End::Stopped => break,
            End::Refused(reason) => {
                status.report(&pipeline, ConnectionState::Refused);
                info!(node, reason = %reason, "ml node refused the connection; retrying");
                "refused"
            }
            End::Lost(error) => {
                status.report(&pipeline, ConnectionState::Connecting);
                debug!(node, error = %error, "ml node connection lost or failed; retrying");
                "lost"
            }
        };
        pipeline
            .metrics()
            .node_disconnects
            .with_label_values(&[node, cause])
            .inc();
        let delay = reconnect_delay(&settings);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => break,
        }
    }
    status.report(&pipeline, ConnectionState::Stopped);
    debug!(node, "ml node worker stopped");
}

/// Draws the next reconnect delay uniformly from `[reconnect_min, reconnect_max]`.
fn reconnect_delay(settings: &WorkerSettings) -> Duration {
    let (low, high) = (settings.reconnect_min, settings.reconnect_max);
    if high <= low {
        return low;
    }
    rand::rng().random_range(low..=high)
}

async fn connect(url: &str, settings: &WorkerSettings) -> Result<Socket, String> {
    // A frame is one batch plus its envelope; allow a little over the batch limit.
    let max_message = settings.max_batch_bytes + 1024;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let connector = settings.tls.clone().map(client::tls::connector);
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(url, Some(config), false, connector);
    match tokio::time::timeout(settings.connect_timeout, connecting).await {
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!(
            "connect timed out after {:?}",
            settings.connect_timeout
        )),
    }
}

/// Serves one connection until it ends or `stop` is cancelled.
async fn serve(
    mut socket: Socket,
    status: &NodeStatus,
    pipeline: &Pipeline,
    settings: &WorkerSettings,
    stop: &CancellationToken,
) -> End {
    let node = status.id.as_str();
    let in_flight_gauge = pipeline
        .metrics()
        .in_flight
        .with_label_values(&["websocket"]);
    let ack_seconds = pipeline
        .metrics()
        .ack_seconds
        .with_label_values(&["websocket"]);
    let mut in_flight: FuturesUnordered<BoxFuture<'static, Stored>> = FuturesUnordered::new();
    let end = loop {
        let can_read = in_flight.len() < settings.max_in_flight;
        tokio::select! {
            () = stop.cancelled() => break End::Stopped,
            Some((id, received_at, stored)) = in_flight.next(), if !in_flight.is_empty() => {
                in_flight_gauge.dec();
                if stored {
                    let ack = BatchAck { id }.to_json();
                    if let Err(error) = socket.send(Message::text(ack)).await {
                        break End::Lost(error.to_string());
                    }
                    ack_seconds.observe(received_at.elapsed().as_secs_f64());
                }
            }
            frame = socket.next(), if can_read => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                    // ML nodes send text; accept JSON in binary frames too.
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(close))) => break closed(close),
                    Some(Err(error)) => break End::Lost(error.to_string()),
                    None => break End::Lost("connection closed".to_owned()),
                };
                let received_at = Instant::now();
                let (batch, id) = match BatchFrame::from_json(&text) {
                    Ok(frame) => frame.into_parts(),
                    Err(error) => {
                        pipeline
                            .metrics()
                            .invalid
                            .with_label_values(&["websocket", error.reason()])
                            .inc();
                        pipeline.progress().record_invalid(node);
                        warn!(node, reason = error.reason(), error = %error, "invalid frame from ml node; not acknowledged");
                        continue;
                    }
                };
                let delivery = Delivery { batch, path: Path::WebSocket, node: Some(status.id.clone()) };
                let pipeline = pipeline.clone();
                in_flight_gauge.inc();
                in_flight.push(Box::pin(async move {
                    let stored = pipeline.process_next_batch(delivery).await.is_ok();
                    (id, received_at, stored)
                }));
            }
        }
    };
    finish(socket, in_flight, &in_flight_gauge, &end, settings).await;
    end
}

/// Lets in-flight batches finish (acknowledging those stored, while the socket still
/// works) within the drain timeout, then closes: 1001 when stopping, otherwise whatever
/// close handshake is left.
async fn finish(
    mut socket: Socket,
    mut in_flight: FuturesUnordered<BoxFuture<'static, Stored>>,
    in_flight_gauge: &prometheus::IntGauge,
    end: &End,
    settings: &WorkerSettings,
) {
    let socket_usable = matches!(end, End::Stopped);
    let deadline = Instant::now() + settings.drain_timeout;
    while !in_flight.is_empty() {
        let Ok(Some((id, _, stored))) = tokio::time::timeout_at(deadline, in_flight.next()).await
        else {
            break;
        };
        in_flight_gauge.dec();
        if stored && socket_usable {
            // A failed ack only means the node will resend; the batch is stored.
            let _ = socket.send(Message::text(BatchAck { id }.to_json())).await;
        }
    }
    // Batches still in flight are abandoned unacknowledged; the node resends them.
    let abandoned = in_flight.len();
    if abandoned > 0 {
        in_flight_gauge.sub(i64::try_from(abandoned).unwrap_or(i64::MAX));
    }
    if socket_usable {
        let close = CloseFrame {
            code: CloseCode::Away,
            reason: "batch-ingest stopping".into(),
        };
        let _ = tokio::time::timeout(settings.drain_timeout, socket.close(Some(close))).await;
    }
}

fn closed(close: Option<CloseFrame>) -> End {
    match close {
        Some(frame) if u16::from(frame.code) == REFUSED_CLOSE_CODE => {
            End::Refused(frame.reason.to_string())
        }
        Some(frame) => End::Lost(format!("closed by node: {} {}", frame.code, frame.reason)),
        None => End::Lost("closed by node".to_owned()),
    }
}

#[cfg(test)]
mod tests;
