//! Messages without a room reach the SDK as `ClientEvent::Direct`, with no subscribe.

use std::time::Duration;

use bus::Bus;
use client::{Client, ClientEvent, Codec, ConnectionState};
use protocol::Subjects;
use store::Store;

use crate::helpers::*;

#[tokio::test]
async fn personal_connection_and_broadcast_messages_arrive_as_direct_events_without_subscribing() {
    let bus = Bus::memory();
    let gateway = gateway_on(&bus, &Store::memory(), None, Duration::from_millis(50)).await;
    let client = Client::builder(ws_url(gateway.addr))
        .token(viewer_token("frank"))
        .codec(Codec::MsgPack)
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    let connected = next_matching(&mut events, |e| {
        matches!(
            e,
            ClientEvent::StateChanged(ConnectionState::Connected { .. })
        )
    })
    .await;
    let ClientEvent::StateChanged(ConnectionState::Connected { connection_id, .. }) = connected
    else {
        unreachable!("filtered to connected states")
    };
    let subjects = Subjects::default();
    for (subject, event) in [
        (subjects.user("frank"), "to_user"),
        (subjects.connection(&connection_id), "to_connection"),
        (subjects.broadcast(), "to_everyone"),
    ] {
        let payload = format!(r#"{{"type":"{event}","data":{{"n":1}}}}"#);
        bus.publish(&subject, payload.into_bytes().into())
            .await
            .unwrap();
        let ClientEvent::Direct(message) =
            next_matching(&mut events, |e| matches!(e, ClientEvent::Direct(_))).await
        else {
            unreachable!("filtered to direct messages")
        };
        assert_eq!(message.event, event);
        assert_eq!(message.data, serde_json::json!({"n": 1}));
        match event {
            "to_user" => assert_eq!(message.user.as_deref(), Some("frank")),
            "to_connection" => {
                assert_eq!(
                    message.connection_id.as_deref(),
                    Some(connection_id.as_str())
                );
            }
            _ => assert_eq!(message.broadcast, Some(true)),
        }
    }
    client.close().await;
}
