//! The two codecs: JSON in text frames (the default) and named MessagePack in binary frames
//! (`switchboard.v1.msgpack`).

use gateway::test_util::{TestGateway, publish_http};
use protocol::codec::{SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};
use protocol::{ClientMessage, Codec, ServerFrame, ServerMessage};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{RawClient, data_bytes, publisher, token, viewer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgpack_clients_get_binary_frames_holding_named_maps() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client =
        RawClient::connect(&gateway, &token(&viewer("packer")), Some(Codec::MsgPack)).await;
    assert_eq!(
        client.selected_protocol.as_deref(),
        Some(SUBPROTOCOL_MSGPACK)
    );

    let greeting = client.next_frame().await;
    assert!(matches!(greeting, Message::Binary(_)), "{greeting:?}");
    // Named maps decode to objects with field names; compact (array) encoding would not.
    let map: Value = Codec::MsgPack
        .decode(&data_bytes(&greeting, Codec::MsgPack))
        .expect("greeting is MessagePack");
    assert_eq!(map["type"], "connection_established");
    assert_eq!(map["server_id"].as_str(), Some(gateway.server_id.as_str()));
    assert!(map["heartbeat_interval_ms"].is_u64(), "{map}");

    // A binary subscribe is read as MessagePack and answered in kind.
    client
        .send(&ClientMessage::Subscribe {
            rooms: vec!["alerts".into()],
            since: None,
            min_interval_ms: None,
        })
        .await;
    let answer = client.next_frame().await;
    let map: Value = Codec::MsgPack
        .decode(&data_bytes(&answer, Codec::MsgPack))
        .expect("answer is MessagePack");
    assert_eq!(map, json!({"type": "subscribed", "rooms": ["alerts"]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_msgpack_clients_in_one_room_receive_the_same_room_message() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut json_client =
        RawClient::connect(&gateway, &token(&viewer("json")), Some(Codec::Json)).await;
    let mut msgpack_client =
        RawClient::connect(&gateway, &token(&viewer("msgpack")), Some(Codec::MsgPack)).await;
    assert_eq!(
        json_client.selected_protocol.as_deref(),
        Some(SUBPROTOCOL_JSON)
    );
    json_client.subscribe(&["nodes"]).await;
    msgpack_client.subscribe(&["nodes"]).await;

    let data = json!({
        "node": "edge-1",
        "cpu": 0.75,
        "updates": 42,
        "online": true,
        "last_error": null,
        "tags": ["a", "b"],
        "nested": {"depth": {"ok": [1, 2, 3]}},
    });
    assert_eq!(
        publish_http(gateway.addr, "nodes", "node_status_update", data.clone()).await,
        202
    );

    let as_json = json_client.next_frame().await;
    let as_msgpack = msgpack_client.next_frame().await;
    assert!(matches!(as_json, Message::Text(_)), "{as_json:?}");
    assert!(matches!(as_msgpack, Message::Binary(_)), "{as_msgpack:?}");
    let from_json = ServerFrame::decode(Codec::Json, &data_bytes(&as_json, Codec::Json))
        .expect("JSON frame decodes");
    let from_msgpack =
        ServerFrame::decode(Codec::MsgPack, &data_bytes(&as_msgpack, Codec::MsgPack))
            .expect("MessagePack frame decodes");
    assert_eq!(from_json, from_msgpack);
    match from_json {
        ServerFrame::Room(message) => {
            assert_eq!(message.event, "node_status_update");
            assert_eq!(message.room, "nodes");
            assert_eq!(message.data, data);
        }
        other => panic!("expected a room message, got {other:?}"),
    }
    // Both are field-named maps of the same shape.
    let json_map: Value = Codec::Json
        .decode(&data_bytes(&as_json, Codec::Json))
        .unwrap();
    let msgpack_map: Value = Codec::MsgPack
        .decode(&data_bytes(&as_msgpack, Codec::MsgPack))
        .unwrap();
    assert_eq!(json_map, msgpack_map);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_subprotocol_speaks_json() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client = RawClient::connect(&gateway, &token(&viewer("plain")), None).await;
    assert_eq!(client.selected_protocol, None);
    let greeting = client.next_frame().await;
    assert!(matches!(greeting, Message::Text(_)), "{greeting:?}");
    client.subscribe(&["tasks"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_are_decoded_by_their_kind_whatever_the_subprotocol() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let claims = publisher("mixed", &["lab.>"]);
    let mut msgpack_client =
        RawClient::connect(&gateway, &token(&claims), Some(Codec::MsgPack)).await;
    let mut json_client =
        RawClient::connect(&gateway, &token(&viewer("reader")), Some(Codec::Json)).await;
    json_client.subscribe(&["lab.bench"]).await;

    // A text frame on a MessagePack connection is JSON; answers still come as MessagePack.
    msgpack_client
        .send_frame(Message::Text(r#"{"type":"ping"}"#.into()))
        .await;
    let pong = msgpack_client
        .next_control(|m| !matches!(m, ServerMessage::ConnectionEstablished { .. }))
        .await;
    assert!(matches!(pong, ServerMessage::Pong { .. }), "{pong:?}");

    // A binary publish from the MessagePack client reaches the JSON client as JSON text.
    msgpack_client
        .send(&ClientMessage::Publish {
            room: "lab.bench".into(),
            event: "reading".into(),
            data: json!({"volts": 3.3}),
        })
        .await;
    let message = json_client.next_room_message().await;
    assert_eq!(
        (message.event.as_str(), message.room.as_str(), message.data),
        ("reading", "lab.bench", json!({"volts": 3.3}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_on_a_msgpack_connection_gets_a_binary_error_then_4401() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client = RawClient::connect(&gateway, "not-a-jwt", Some(Codec::MsgPack)).await;
    let error = client.next_frame().await;
    let map: Value = Codec::MsgPack
        .decode(&data_bytes(&error, Codec::MsgPack))
        .expect("the error is MessagePack");
    assert_eq!(
        (
            map["type"].as_str(),
            map["code"].as_str(),
            map["recoverable"].as_bool()
        ),
        (Some("error"), Some("token_invalid"), Some(false))
    );
    match client.next_frame().await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4401),
        other => panic!("expected a close frame, got {other:?}"),
    }
}
