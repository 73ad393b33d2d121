//! Heartbeats: WebSocket pings plus JSON `heartbeat` messages every interval, and the close
//! (4408) of a connection that sends nothing — not even a pong — within the timeout.

use std::time::Duration;

use gateway::test_util::{TestGateway, eventually};
use protocol::{ClientMessage, ServerFrame, ServerMessage};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    RawClient, SilentClient, assert_recent_rfc3339, data_bytes, metric, token, viewer,
};

const HEARTBEAT_TIMEOUT_CLOSES: &str =
    r#"switchboard_gateway_connections_closed_total{reason="heartbeat_timeout"}"#;

fn fast_heartbeats(config: &mut gateway::Config) {
    config.gateway.heartbeat_interval = Duration::from_millis(200);
    config.gateway.heartbeat_timeout = Duration::from_secs(1);
}

/// The `active_streams` of every heartbeat among `frames`, in order.
fn heartbeat_streams(client: &RawClient, frames: &[Message]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|frame| {
            match ServerFrame::decode(client.codec, &data_bytes(frame, client.codec)) {
                Ok(ServerFrame::Control(ServerMessage::Heartbeat {
                    timestamp,
                    active_streams,
                })) => {
                    assert_recent_rfc3339(&timestamp);
                    Some(active_streams)
                }
                _ => None,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_client_gets_heartbeats_counting_its_rooms_and_outlives_the_timeout() {
    let gateway = TestGateway::start_memory(fast_heartbeats).await;
    let mut client = RawClient::connect(&gateway, &token(&viewer("reader")), None).await;
    client.subscribe(&["nodes", "alerts"]).await;

    // Three heartbeat timeouts; tungstenite answers every ping while we read.
    let (frames, pings) = client.read_for(Duration::from_secs(3)).await;
    let streams = heartbeat_streams(&client, &frames);
    assert!(
        streams.len() >= 5,
        "about one heartbeat per 200ms, got {streams:?}"
    );
    assert!(pings >= 5, "about one ping per 200ms, got {pings}");
    // A heartbeat sampled just before `subscribed` may still say 0; every later one says 2.
    assert!(
        streams[1..].iter().all(|&count| count == 2),
        "active_streams after subscribing: {streams:?}"
    );

    client
        .send(&ClientMessage::Unsubscribe {
            rooms: vec!["alerts".into()],
        })
        .await;
    client
        .next_control(|m| matches!(m, ServerMessage::Unsubscribed { .. }))
        .await;
    client
        .next_control(|m| {
            matches!(
                m,
                ServerMessage::Heartbeat {
                    active_streams: 1,
                    ..
                }
            )
        })
        .await;
    assert_eq!(metric(gateway.addr, HEARTBEAT_TIMEOUT_CLOSES).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_answers_is_closed_with_4408_heartbeat_timeout() {
    let gateway = TestGateway::start_memory(fast_heartbeats).await;
    let silent = SilentClient::connect(gateway.addr, &token(&viewer("silent"))).await;
    let mut reader = RawClient::connect(&gateway, &token(&viewer("reader")), None).await;

    // The reader keeps reading (and so ponging) while the silent client times out.
    let watching = tokio::spawn(async move {
        reader.read_for(Duration::from_secs(2)).await;
        reader
    });
    eventually(Duration::from_secs(5), || async {
        metric(gateway.addr, HEARTBEAT_TIMEOUT_CLOSES).await == 1.0
    })
    .await;

    let frames = silent.frames().await;
    let close = frames.last().expect("the server sent frames");
    assert_eq!(close.close_code(), Some(4408), "{frames:?}");
    let error = frames
        .iter()
        .rev()
        .find(|frame| frame.opcode == 1)
        .expect("an error frame precedes the close");
    let error: serde_json::Value = serde_json::from_slice(&error.payload).unwrap();
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("heartbeat_timeout"))
    );
    assert!(
        frames.iter().any(|frame| frame.opcode == 9),
        "the silent client was pinged first"
    );

    // The reading client was never closed.
    let _reader = watching.await.expect("reader stayed connected");
    assert_eq!(metric(gateway.addr, HEARTBEAT_TIMEOUT_CLOSES).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_floods_pings_without_reading_the_pongs_is_still_disconnected() {
    let gateway = TestGateway::start_memory(|config| {
        fast_heartbeats(config);
        config.gateway.write_timeout = Duration::from_secs(1);
    })
    .await;
    let mut flooder =
        SilentClient::connect_with_small_receive_buffer(gateway.addr, &token(&viewer("flood")))
            .await;
    // 8 MiB of pings make 8 MiB of pongs: more than the server's socket buffers can hold
    // while the client reads nothing.
    flooder.flood_pings(8 << 20).await;

    // Whatever the server was doing with the pongs, a peer that stopped reading and
    // sending must not hold its connection (and its slot) for ever.
    eventually(Duration::from_secs(10), || async {
        metric(gateway.addr, "switchboard_gateway_connections_active").await == 0.0
    })
    .await;
    drop(flooder);
}
