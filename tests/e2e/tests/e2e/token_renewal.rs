//! Token renewal end to end: an SDK client with a token provider stays on one connection to a
//! gateway on real NATS and Redis while its short-lived tokens are replaced in-band, and keeps
//! receiving room messages published on NATS throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use client::{Client, ClientEvent};
use e2e::{Stack, token, viewer, within};
use protocol::RoomEnvelope;
use protocol::envelope::encode_bus;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

async fn next_event(
    events: &mut client::Events,
    wanted: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    within(WAIT, async {
        loop {
            match events.recv().await {
                Some(event) if wanted(&event) => return event,
                Some(_) => continue,
                None => panic!("event stream ended"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn one_sdk_connection_survives_three_token_rotations_on_nats_and_redis() {
    const ROOM: &str = "e2e.rotation";
    let stack = Stack::start().await;
    let gateway = stack.gateway(|_| {}).await;
    let bus = stack.bus().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let client = Client::builder(format!("ws://{}/api/ws/connect", gateway.addr))
        .token_provider({
            let calls = calls.clone();
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
                // 3-second tokens: the SDK renews each at 80 % of what is left.
                let mut claims = viewer("e2e-rotating-user");
                claims.exp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |since| since.as_secs())
                    + 3;
                let signed = token(&claims);
                async move { Ok(signed) }
            }
        })
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    client.subscribe([ROOM]).await.unwrap();
    next_event(&mut events, |e| matches!(e, ClientEvent::Subscribed { .. })).await;

    for rotation in 0..3u64 {
        next_event(&mut events, |e| {
            matches!(e, ClientEvent::TokenRefreshed { .. })
        })
        .await;
        let envelope = RoomEnvelope {
            event: "tick".into(),
            data: json!({ "n": rotation }),
            timestamp: None,
            seq: None,
            priority: None,
        };
        bus.publish(
            &format!("sb.room.{ROOM}"),
            Bytes::from(encode_bus(&envelope).unwrap()),
        )
        .await
        .unwrap();
        let message = next_event(
            &mut events,
            |e| matches!(e, ClientEvent::Room(m) if m.event == "tick"),
        )
        .await;
        assert!(matches!(message, ClientEvent::Room(m) if m.data == json!({ "n": rotation })));
    }
    let stats = client.stats();
    assert_eq!(
        (stats.attempts, stats.connects),
        (1, 1),
        "one connection throughout"
    );
    assert!(calls.load(Ordering::SeqCst) >= 4);
    client.close().await;
    gateway.shutdown().await.unwrap();
}
