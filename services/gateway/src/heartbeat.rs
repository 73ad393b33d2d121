//! Shared heartbeat timer. One task visits one shard of connections per
//! `heartbeat_interval / SHARDS`: each connection gets a WebSocket ping and a JSON
//! `heartbeat {timestamp, active_streams}`, and connections silent for longer than
//! `heartbeat_timeout` are closed (4408). One timer for all connections instead of one per
//! connection keeps idle CPU and memory flat, and sharding spreads the writes over time.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::ws::Message;
use bytes::Bytes;
use protocol::{Codec, ErrorCode, ServerMessage};
use tokio_util::sync::CancellationToken;

use crate::connections::SHARDS;
use crate::frames::encode_frame;
use crate::session::conn::Outgoing;
use crate::state::Shared;

/// Runs the heartbeat sweep until `cancel`.
pub(crate) async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    let shards = u32::try_from(SHARDS).unwrap_or(1);
    let mut ticker = tokio::time::interval(shared.config.heartbeat_interval / shards);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shard = 0;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        sweep_shard(&shared, shard);
        shard = (shard + 1) % SHARDS;
    }
}

fn sweep_shard(shared: &Shared, shard: usize) {
    let now_ms = protocol::time::now_unix_ms();
    let timeout_ms = u64::try_from(shared.config.heartbeat_timeout.as_millis()).unwrap_or(u64::MAX);
    let timestamp = protocol::time::now_rfc3339();
    // Connections differ only by codec and room count, so a handful of encodings serve all.
    let mut heartbeats: HashMap<(Codec, u32), Option<(Message, usize)>> = HashMap::new();
    let mut queued = 0usize;
    let seed_connections = shared.registry.seed_connections.snapshot();
    let device_streams = u32::try_from(shared.metrics.device_streams.get()).unwrap_or(0);
    for conn in shared.registry.connections.shard(shard) {
        if now_ms.saturating_sub(conn.last_inbound_ms()) > timeout_ms {
            conn.close(ErrorCode::HeartbeatTimeout);
            continue;
        }
        conn.push(Outgoing {
            message: Message::Ping(Bytes::new()),
            bytes: 2,
            published_at_ms: 0,
        });
        // Seed 003's endpoints count the gateway's instrument streams, as seed 003's server does.
        let active_streams = if seed_connections.contains(&conn.key) {
            device_streams
        } else {
            conn.room_count.load(Ordering::Relaxed)
        };
        let frame = heartbeats
            .entry((conn.codec, active_streams))
            .or_insert_with(|| {
                let heartbeat = ServerMessage::Heartbeat {
                    timestamp: timestamp.clone(),
                    active_streams: u64::from(active_streams),
                };
                encode_frame(conn.codec, &heartbeat)
            });
        if let Some((message, bytes)) = frame.clone() {
            conn.push(Outgoing {
                message,
                bytes,
                published_at_ms: 0,
            });
        }
        queued += conn.queued_len();
    }
    shared.registry.queued_per_shard[shard].store(queued, Ordering::Relaxed);
    let total: usize = shared
        .registry
        .queued_per_shard
        .iter()
        .map(|depth| depth.load(Ordering::Relaxed))
        .sum();
    shared
        .metrics
        .outbound_queued_messages
        .set(i64::try_from(total).unwrap_or(i64::MAX));
}
