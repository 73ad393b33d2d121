//! Publishing the benchmark messages straight to NATS over TCP: `RoomEnvelope`s on
//! `sb.room.<room>` for Switchboard, the bare JSON object on the same subject for nats-server.

use std::time::{Duration, Instant};

use async_nats::Subject;
use serde::{Deserialize, Serialize};

use crate::payload::{bus_payload, pad_for, unix_now_ns};
use crate::{Error, Options};

/// When publishing started and ended.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct PublishStats {
    pub(crate) sent: u64,
    pub(crate) first_send_ns: u64,
    pub(crate) last_send_ns: u64,
}

/// Connects to NATS with the options' token, if any.
///
/// # Errors
/// [`Error::Nats`] when the server cannot be reached.
pub(crate) async fn connect_nats(options: &Options) -> Result<async_nats::Client, Error> {
    let mut connect = async_nats::ConnectOptions::new().name("loadgen");
    if let Some(token) = &options.nats_token {
        connect = connect.token(token.clone());
    }
    connect
        .connect(options.nats_url.as_str())
        .await
        .map_err(Error::nats)
}

/// Publishes `options.messages` messages round-robin over the rooms, at `options.rate` per
/// second (0: as fast as the client takes them), each carrying its per-room sequence number
/// and its send time; then flushes.
///
/// # Errors
/// [`Error::Nats`] when a publish or the flush fails.
pub(crate) async fn publish(
    client: &async_nats::Client,
    options: &Options,
) -> Result<PublishStats, Error> {
    let rooms = options.publish_rooms();
    let subjects = protocol::Subjects::new(&options.subject_prefix);
    let mut targets: Vec<(Subject, String)> = Vec::with_capacity(rooms.len());
    for room in &rooms {
        let name = protocol::RoomName::parse(room)
            .map_err(|error| Error::Options(format!("room {room:?}: {error}")))?;
        let typical_seq = options.messages_for_room(0) / 2;
        let pad = pad_for(options.target, room, typical_seq, options.payload_bytes);
        targets.push((Subject::from(subjects.room(&name)), pad));
    }
    let room_count = rooms.len() as u64;
    let started = Instant::now();
    let mut stats = PublishStats::default();
    for index in 0..options.messages {
        if options.rate > 0.0 {
            let due = started + Duration::from_secs_f64(index as f64 / options.rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let (subject, pad) = &targets[(index % room_count) as usize];
        let seq = index / room_count;
        let sent_ns = unix_now_ns();
        let payload = bus_payload(options.target, seq, sent_ns, pad).map_err(Error::Encode)?;
        client
            .publish(subject.clone(), payload.into())
            .await
            .map_err(Error::nats)?;
        if stats.sent == 0 {
            stats.first_send_ns = sent_ns;
        }
        stats.sent += 1;
        stats.last_send_ns = sent_ns;
    }
    client.flush().await.map_err(Error::nats)?;
    Ok(stats)
}
